"""Host memory for CPU training: keep what a step frees for the next step.

Reference: glibc's malloc as it comes (nothing to equal: only where pages come
from changes, never a value).  Measured (benchmarks/README.md): diet_np's vgg5
step 82 -> 69 ms with pinned AVX2 kernels (scratch A/B before commit 03a2d8a),
58 -> 56 ms with OpenBLAS's own kernels (commit 586d9e1).

Every training step allocates and frees the same large arrays: the trace of the
forward pass (potentials, spikes, layer outputs) and the gradients of the
backward.  glibc's malloc serves allocations above a size threshold with fresh
mappings and gives the top of its heap back to the system once enough of it is
free, so each step takes its memory anew and pays a page fault for every page
it touches (for NumPy's arrays of 4 MiB or more, which it asks to be backed by
2 MiB pages, the fault also zeroes the whole 2 MiB).  On the project's 2-core
machine this was about 15% of a small VGG's step, for diet_np and for PyTorch
alike, and most of the step-to-step variation.

:func:`keep_freed_memory` asks glibc (``mallopt``) to serve large allocations
from its heap and never to trim it: a step reuses the pages of the step before,
and the process keeps the largest step's memory, which training needs again at
the next step anyway.  The setting is process-wide, so it also applies to any
other library in the process: the command line makes it, through
:func:`diet_np.engine.apply_process_settings`; the environment variable
``DIET_NP_KEEP_MEMORY=0`` leaves malloc as it is.  Where the C library is not
glibc, nothing changes.
"""
from __future__ import annotations

import ctypes

from .. import settings

M_TRIM_THRESHOLD = -1
"""mallopt parameter: free bytes at the top of the heap before it is trimmed."""
M_MMAP_THRESHOLD = -3
"""mallopt parameter: allocations of at least this many bytes get their own mapping."""

NEVER_TRIM = 2**31 - 1
MMAP_THRESHOLDS = (1 << 30, 32 << 20)
"""Tried in turn: 1 GiB, then the 32 MiB that every glibc accepts."""

_kept = None


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory in the process (see the module's text).

    Returns True once the setting is in place (later calls return at once),
    False where ``DIET_NP_KEEP_MEMORY=0`` or the C library has no glibc
    ``mallopt``."""
    global _kept
    if not settings.keep_memory():
        return False
    if _kept is None:
        _kept = _set_glibc()
    return _kept


def _set_glibc() -> bool:
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version                    # glibc only
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    if not any(mallopt(M_MMAP_THRESHOLD, size) == 1 for size in MMAP_THRESHOLDS):
        return False
    return mallopt(M_TRIM_THRESHOLD, NEVER_TRIM) == 1
