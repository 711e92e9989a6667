"""Fully connected layer without bias.

On the CPU each product is split over the workers of :mod:`diet_np.parallel` so
that each worker reads its own part of the weight (the largest operand at these
batch sizes, read from memory): output features for out and dw, input features
for dx; each part is written in place into the result.
"""
from __future__ import annotations

from ..backend import array_module
from ..parallel import map_chunks, slices


def linear_forward(x, w):
    """out = x W^T.  x: (N, F_in), w: (F_out, F_in) -> (N, F_out)."""
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[1]:
        raise ValueError(f"linear expects x (N, {w.shape[-1]}) for weight {tuple(w.shape)}; "
                         f"got x {tuple(x.shape)}")
    xp = array_module(x, w)
    out = xp.empty((x.shape[0], w.shape[0]), dtype=w.dtype)

    xw = x.astype(w.dtype, copy=False)

    def features(f):
        xp.matmul(xw, w[f].T, out=out[:, f])

    map_chunks(features, slices(w.shape[0], xp), xp)
    return out, (x, w)                          # x as given: spikes stay compact


def linear_backward(dout, cache, need_dx: bool = True):
    """Returns ``(dx, dw)``: dw = dout^T x (Eq. 12 for a dense layer), dx = dout W."""
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
