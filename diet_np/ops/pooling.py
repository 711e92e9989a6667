"""Non-overlapping k x k pooling (stride k), average and max.

The image is viewed as (N, C, H/k, k, W/k, k).  Average pooling adds the k*k
strided slices of that view (a NumPy reduction over its two non-adjacent window
axes is many times slower) and its backward assigns to them, a block of images
per worker of :mod:`diet_np.parallel`; max pooling reduces a transposed copy.
"""
from __future__ import annotations

import numpy as np

from ..backend import array_module
from ..parallel import map_chunks, slices

SPIKE_MEANS = np.float32
"""Default dtype of average-pooled boolean spikes: counts times 1/k^2, exact for k = 2."""


def _windows(x, k):
    if x.ndim != 4 or x.shape[2] % k or x.shape[3] % k:
        raise ValueError(f"{k}x{k} pooling needs (N, C, H, W) with H and W divisible by {k}; "
                         f"got {tuple(x.shape)}")
    n, c, h, w = x.shape
    return x.reshape(n, c, h // k, k, w // k, k)


def avgpool_forward(x, k: int = 2, dtype=None):
    """Average pooling: (N, C, H, W) -> (N, C, H/k, W/k).  On spikes the result is
    non-binary (multiples of 1/k^2), as the paper notes.

    Boolean spikes are counted in bytes (a quarter of float32's memory traffic)
    and scaled into ``dtype`` (default :data:`SPIKE_MEANS`); float input keeps
    its own dtype."""
    xp = array_module(x)
    spikes = x.dtype == bool
    win = _windows(x.view(xp.uint8) if spikes else x, k)
    n, c, ho, _, wo, _ = win.shape
    means = SPIKE_MEANS if dtype is None else dtype
    out = xp.empty((n, c, ho, wo), dtype=means if spikes else x.dtype)
    counts = xp.uint8 if k * k < 256 else xp.int32
    scale = out.dtype.type(1.0 / (k * k))

    def images(b):
        taps = [win[b, :, :, i, :, j] for i in range(k) for j in range(k)]
        total = xp.empty(out[b].shape, dtype=counts) if spikes else out[b]
        if len(taps) == 1:
            total[...] = taps[0]
        else:
            xp.add(taps[0], taps[1], out=total, dtype=total.dtype)
        for tap in taps[2:]:
            xp.add(total, tap, out=total, dtype=total.dtype)
        xp.multiply(total, scale, out=out[b])

    map_chunks(images, slices(n, xp), xp)
    return out, (x.shape, k)


def avgpool_backward(dout, cache):
    """Each input in a window receives dout / k^2."""
    xp = array_module(dout)
    shape, k = cache
    dx = xp.empty(shape, dtype=dout.dtype)
    win = _windows(dx, k)

    def images(b):
        scaled = dout[b] * (1.0 / (k * k))
        for i in range(k):
            for j in range(k):
                win[b, :, :, i, :, j] = scaled

    map_chunks(images, slices(shape[0], xp), xp)
    return dx


def maxpool_forward(x, k: int = 2):
    """Max pooling: (N, C, H, W) -> (N, C, H/k, W/k).  Ties go to the first element
    of the window (row-major), which is the one that receives the gradient."""
    n, c, h, w = x.shape
    win = _windows(x, k).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h // k, w // k, k * k)
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
