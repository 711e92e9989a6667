"""The fast engine's dropout product: blocks of the mask's images on the CPU pool.

Reference: :func:`diet_np.ops.dropout.dropout_forward` / ``dropout_backward``
(bit for bit: the same products; ``tests/test_fast.py``).  Measured: not timed
on its own; it is one of the serial remainders of a step that commit 333b424
moved onto the pool (with the chunk sums and Winograd's weight transforms),
part of the CPU pool's 56 ms vgg5 step on two workers against 83 ms of CPU on
one (benchmarks/README.md, commit 586d9e1).
"""
from __future__ import annotations

import numpy as np

from ..backend import array_module
from .parallel import map_chunks, slices


def dropout_forward(x, mask):
    """:func:`diet_np.ops.dropout.dropout_forward`: x * mask."""
    return _times_mask(x, mask), mask


def dropout_backward(dout, mask):
    """:func:`diet_np.ops.dropout.dropout_backward`: dout * mask."""
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
