"""Fully connected layer without bias.

On the CPU the products are split by rows of the result, one block per worker
of :mod:`diet_np.parallel`.
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

    def rows(r):
        out[r] = x[r].astype(w.dtype, copy=False) @ w.T

    map_chunks(rows, slices(x.shape[0], xp), xp)
    return out, (x, w)


def linear_backward(dout, cache, need_dx: bool = True):
    """Returns ``(dx, dw)``: dw = dout^T x (Eq. 12 for a dense layer), dx = dout W."""
    x, w = cache
    xp = array_module(dout, w)
    dw = xp.empty(w.shape, dtype=w.dtype)
    dx = xp.empty((dout.shape[0], w.shape[1]), dtype=w.dtype) if need_dx else None

    def dw_rows(r):
        dw[r] = dout[:, r].T @ x.astype(w.dtype, copy=False)

    def dx_rows(r):
        dx[r] = dout[r] @ w

    map_chunks(dw_rows, slices(w.shape[0], xp), xp)
    if need_dx:
        map_chunks(dx_rows, slices(dout.shape[0], xp), xp)
    return dx, dw
