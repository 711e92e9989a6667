"""Non-overlapping k x k pooling (stride k), average and max: the reference.

The image is viewed as (N, C, H/k, k, W/k, k), whose axes 3 and 5 run over a
window.  :mod:`diet_np.fast.pooling` averages boolean spikes in bytes on several
cores; max pooling has one version, this one, for both engines.
"""
from __future__ import annotations

from ..backend import array_module


def window_view(x, k):
    """x (N, C, H, W) viewed as (N, C, H/k, k, W/k, k): axes 3 and 5 walk a window."""
    if x.ndim != 4 or x.shape[2] % k or x.shape[3] % k:
        raise ValueError(f"{k}x{k} pooling needs (N, C, H, W) with H and W divisible by {k}; "
                         f"got {tuple(x.shape)}")
    n, c, h, w = x.shape
    return x.reshape(n, c, h // k, k, w // k, k)


def avgpool_forward(x, k: int = 2):
    """Average pooling: (N, C, H, W) -> (N, C, H/k, W/k).  On spikes the result is
    non-binary (multiples of 1/k^2), as the paper notes.  The cache is ``(x.shape, k)``."""
    return window_view(x, k).mean(axis=(3, 5)), (x.shape, k)


def avgpool_backward(dout, cache):
    """Each input in a window receives dout / k^2."""
    xp = array_module(dout)
    shape, k = cache
    return xp.repeat(xp.repeat(dout, k, axis=2), k, axis=3) / (k * k)


def maxpool_forward(x, k: int = 2):
    """Max pooling: (N, C, H, W) -> (N, C, H/k, W/k).  Ties go to the first element
    of the window (row-major), which is the one that receives the gradient."""
    n, c, h, w = x.shape
    win = window_view(x, k).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h // k, w // k, k * k)
    arg = win.argmax(axis=-1)
    xp = array_module(x)
    out = xp.take_along_axis(win, arg[..., None], axis=-1)[..., 0]
    return out, (x.shape, k, arg.astype(xp.uint8))


def maxpool_backward(dout, cache):
    """Route dout to the arg-max of each window."""
    xp = array_module(dout)
    shape, k, arg = cache
    n, c, ho, wo = dout.shape
    onehot = arg[..., None] == xp.arange(k * k, dtype=xp.uint8)
    dwin = onehot * dout[..., None]
    return dwin.reshape(n, c, ho, wo, k, k).transpose(0, 1, 2, 4, 3, 5).reshape(shape)
