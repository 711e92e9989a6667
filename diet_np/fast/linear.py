"""The fast engine's fully connected layer: each product split over the CPU pool.

Reference: :func:`diet_np.ops.linear.linear_forward` / ``linear_backward`` (equal
to rounding: each output element is the same dot product, which BLAS may block
differently; ``tests/test_fast.py``).  Measured: part of the CPU pool's step
(commit e11f89d; benchmarks/README.md: a vgg5 step 56 ms on two workers against
83 ms of CPU on one, commit 586d9e1).  Each worker reads its own part of the
weight (the largest operand at these batch sizes, read from memory): output
features for out and dw, input features for dx; each part is written in place
into the result.
"""
from __future__ import annotations

from ..backend import array_module
from ..ops.linear import check_shapes
from .parallel import map_chunks, slices


def linear_forward(x, w):
    """:func:`diet_np.ops.linear.linear_forward`: out = x W^T."""
    check_shapes(x, w)
    xp = array_module(x, w)
    out = xp.empty((x.shape[0], w.shape[0]), dtype=w.dtype)

    xw = x.astype(w.dtype, copy=False)

    def features(f):
        xp.matmul(xw, w[f].T, out=out[:, f])

    map_chunks(features, slices(w.shape[0], xp), xp)
    return out, (x, w)                          # x as given: spikes stay compact


def linear_backward(dout, cache, need_dx: bool = True):
    """:func:`diet_np.ops.linear.linear_backward`: dw = dout^T x, dx = dout W."""
    x, w = cache
    xp = array_module(dout, w)
    dw = xp.empty(w.shape, dtype=w.dtype)
    dx = xp.empty((dout.shape[0], w.shape[1]), dtype=w.dtype) if need_dx else None

    x = x.astype(w.dtype, copy=False)

    def dw_rows(r):
        xp.matmul(dout[:, r].T, x, out=dw[r])

    def dx_columns(c):
        xp.matmul(dout, w[:, c], out=dx[:, c])

    map_chunks(dw_rows, slices(w.shape[0], xp), xp)
    if need_dx:
        map_chunks(dx_columns, slices(w.shape[1], xp), xp)
    return dx, dw
