"""Fully connected layer without bias: the reference (:mod:`diet_np.fast.linear`
splits the products over the CPU pool)."""
from __future__ import annotations


def check_shapes(x, w):
    """Raise a clear error unless x is (N, F_in) for a weight (F_out, F_in)."""
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[1]:
        raise ValueError(f"linear expects x (N, {w.shape[-1]}) for weight {tuple(w.shape)}; "
                         f"got x {tuple(x.shape)}")


def linear_forward(x, w):
    """out = x W^T (I = W g(o), Eq. 2's input current).  x: (N, F_in), w: (F_out, F_in)
    -> (N, F_out).  The cache is ``(x, w)``."""
    check_shapes(x, w)
    return x.astype(w.dtype, copy=False) @ w.T, (x, w)


def linear_backward(dout, cache, need_dx: bool = True):
    """Returns ``(dx, dw)``: dw = dout^T x (Eq. 12 for a dense layer), dx = dout W
    (``None`` with ``need_dx=False``)."""
    x, w = cache
    dw = dout.T @ x.astype(w.dtype, copy=False)
    return (dout @ w if need_dx else None), dw
