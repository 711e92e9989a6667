"""The fast engine's Adam update: a worker's rows in cache-sized blocks, in place.

Reference: :meth:`diet_np.optim.Adam._update` (the same formulas in the same
order, bit for bit on NumPy; ``tests/test_fast.py``).  Measured: not timed on
its own; blocks (commit ad8dc5e) let the update's dozen passes run on data in
the CPU's cache instead of streaming each array from memory a dozen times, on
the CPU pool's row blocks (commit e11f89d), with one reused scratch buffer
instead of temporaries; it is part of the training step of benchmarks/README.md
(vgg5 56 ms, VGG16 460 ms, commit 586d9e1).
"""
from __future__ import annotations

from ..backend import array_module
from .parallel import blocks, map_chunks, slices

UPDATE_BLOCK = 1 << 16
"""Elements per block of the update (six float32 arrays of 256 KiB)."""


def adam_update(p, g, m, s, s_max, tmp, b1, b2, eps, step_size, bc2_sqrt):
    """One Adam (AMSGrad when ``s_max`` is not None) step of parameter ``p``, in
    place on ``p``, ``m``, ``s`` and ``s_max``; ``tmp`` is scratch shaped like ``p``."""
    xp = array_module(p)
    arrays = (p, g, m, s, tmp, s_max)
    hyper = (b1, b2, eps, step_size, bc2_sqrt)
    if p.ndim == 0:
        _update_block(xp, arrays, hyper, ...)
        return

    def rows(part):
        for block in blocks(part, p.shape[0], UPDATE_BLOCK // max(1, p[0].size), xp):
            _update_block(xp, arrays, hyper, block)

    map_chunks(rows, slices(p.shape[0], xp), xp)


def _update_block(xp, arrays, hyper, rows):
    """The update of one block of rows, on views, every pass written in place."""
    p, g, m, s, tmp, s_max = (None if a is None else a[rows] for a in arrays)
    b1, b2, eps, step_size, bc2_sqrt = hyper
    xp.multiply(g, 1.0 - b1, out=tmp)
    m *= b1
    m += tmp                                                     # m = b1 m + (1-b1) g
    xp.multiply(g, g, out=tmp)
    tmp *= 1.0 - b2
    s *= b2
    s += tmp                                                     # s = b2 s + (1-b2) g^2
    if s_max is not None:
        xp.maximum(s_max, s, out=s_max)                          # AMSGrad
        s = s_max
    xp.sqrt(s, out=tmp)
    tmp /= bc2_sqrt
    tmp += eps                                                   # denominator
    xp.divide(m, tmp, out=tmp)
    tmp *= step_size
    p -= tmp
