"""Inverted dropout with a mask that is held for all timesteps: the reference.

The paper's SNN draws one mask per minibatch and applies it at every step t, so a
dropped neuron stays dropped for the whole presentation of the image.
"""
from __future__ import annotations


def dropout_mask(shape, p: float, rng, dtype):
    """Keep-mask scaled by 1/(1-p): entries are 0 or 1/(1-p).  ``rng`` is a Generator
    on the device the mask should live on."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1); got {p}")
    keep = rng.random(shape) >= p
    return keep.astype(dtype) * (1.0 / (1.0 - p))


def dropout_forward(x, mask):
    """x: (T, N, ...) (or (N, ...)); mask: (N, ...) broadcast over the leading T."""
    return x * mask, mask


def dropout_backward(dout, mask):
    """The same mask scales the gradient."""
    return dout * mask
