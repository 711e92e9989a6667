"""Inverted dropout with a mask that is held for all timesteps.

The paper's SNN draws one mask per minibatch and applies it at every step t, so a
dropped neuron stays dropped for the whole presentation of the image.
"""
from __future__ import annotations

import numpy as np

from ..backend import array_module
from ..parallel import map_chunks, slices


def dropout_mask(shape, p: float, rng, dtype):
    """Keep-mask scaled by 1/(1-p): entries are 0 or 1/(1-p).  ``rng`` is a Generator
    on the device the mask should live on."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1); got {p}")
    keep = rng.random(shape) >= p
    return keep.astype(dtype) * (1.0 / (1.0 - p))


def dropout_forward(x, mask):
    """x: (T, N, ...) (or (N, ...)); mask: (N, ...) broadcast over the leading T."""
    return _times_mask(x, mask), mask


def dropout_backward(dout, mask):
    """The same mask scales the gradient."""
    return _times_mask(dout, mask)


def _times_mask(x, mask):
    """x * mask, blocks of the mask's leading axis on the CPU pool."""
    xp = array_module(x, mask)
    out = xp.empty(x.shape, dtype=np.result_type(x.dtype, mask.dtype))
    lead = (slice(None),) * (x.ndim - mask.ndim)      # (:,) for (T, N, ...), () for (N, ...)

    def part(n):
        xp.multiply(x[lead + (n,)], mask[n], out=out[lead + (n,)])

    map_chunks(part, slices(mask.shape[0], xp), xp)
    return out
