"""The fast engine's average pooling: boolean spikes counted in bytes, blocks of
images on the CPU pool.

Reference: :func:`diet_np.ops.pooling.avgpool_forward` / ``avgpool_backward``
(boolean spikes bit for bit for k = 2, a count times 1/4 being exact; floats
to rounding; ``tests/test_fast.py``).  Measured: not timed on its own; boolean
spikes (commit 1606b93) cut the traffic of every layer that reads spikes to a
quarter of float32's, and belong to the vgg5 step of 56 ms / VGG16 of 460 ms
with a peak memory of 167 / 1192 MiB (benchmarks/README.md, commit 586d9e1).

Average pooling adds the k*k strided slices of the window view (a NumPy
reduction over its two non-adjacent window axes is many times slower) and its
backward assigns to them, a block of images per worker of
:mod:`diet_np.fast.parallel`.
"""
from __future__ import annotations

import numpy as np

from ..backend import array_module
from ..ops.pooling import window_view
from .parallel import map_chunks, slices

SPIKE_MEANS = np.float32
"""Default dtype of average-pooled boolean spikes: counts times 1/k^2, exact for k = 2."""


def avgpool_forward(x, k: int = 2, dtype=None):
    """Average pooling: (N, C, H, W) -> (N, C, H/k, W/k).  On spikes the result is
    non-binary (multiples of 1/k^2), as the paper notes.

    Boolean spikes are counted in bytes (a quarter of float32's memory traffic)
    and scaled into ``dtype`` (default :data:`SPIKE_MEANS`); float input keeps
    its own dtype."""
    xp = array_module(x)
    spikes = x.dtype == bool
    win = window_view(x.view(xp.uint8) if spikes else x, k)
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
    win = window_view(dx, k)

    def images(b):
        scaled = dout[b] * (1.0 / (k * k))
        for i in range(k):
            for j in range(k):
                win[b, :, :, i, :, j] = scaled

    map_chunks(images, slices(shape[0], xp), xp)
    return dx
