"""ReLU: the ANN's neuron, which the SNN's LIF neuron replaces after conversion."""
from __future__ import annotations


def relu_forward(x):
    """max(x, 0); the cache is the boolean mask x > 0."""
    mask = x > 0
    return x * mask, mask


def relu_backward(dout, mask):
    return dout * mask
