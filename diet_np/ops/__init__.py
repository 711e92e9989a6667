"""Stateless ops, each a ``*_forward(...) -> (out, cache)`` / ``*_backward(dout, cache)`` pair.

All ops take their array module from their inputs, so they run on NumPy, CuPy or
the strict test device unchanged.  Shapes follow NCHW for images and (N, F) for
vectors; the network folds time into N before calling them.
"""
from .activations import relu_backward, relu_forward
from .conv import col2im, conv2d_backward, conv2d_forward, conv_output_size, im2col
from .dropout import dropout_backward, dropout_forward, dropout_mask
from .linear import linear_backward, linear_forward
from .loss import softmax, softmax_cross_entropy
from .pooling import (avgpool_backward, avgpool_forward, maxpool_backward,
                      maxpool_forward)

__all__ = [
    "relu_forward", "relu_backward", "im2col", "col2im", "conv_output_size",
    "conv2d_forward", "conv2d_backward", "dropout_mask", "dropout_forward",
    "dropout_backward", "linear_forward", "linear_backward", "softmax",
    "softmax_cross_entropy", "avgpool_forward", "avgpool_backward",
    "maxpool_forward", "maxpool_backward",
]
