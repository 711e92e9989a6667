"""CPU threads for the fast engine's hot loops: independent chunks on a small pool.

Reference: each function that calls :func:`map_chunks` computes what one call
of its plain twin in :mod:`diet_np.lif`, :mod:`diet_np.ops` or
:mod:`diet_np.optim` computes, chunk by chunk; results come back in the order
of the chunks, so sums over them are the same whatever the number of workers.
Measured (benchmarks/README.md, commit 586d9e1, 2 cores): a vgg5 training step
takes 56 ms on two workers and 83 ms of CPU on one; VGG16 460 and 724.

NumPy releases the GIL inside matrix products and large element-wise loops, so
plain Python threads run chunks of a convolution (see :mod:`diet_np.fast.conv`)
or slices of a LIF layer's neurons (see :mod:`diet_np.fast.lif`) on several cores at
once.  OpenBLAS's own threads help little on products of a chunk's size, and
once used they keep spinning on cores for a while (on two cores a chunked
convolution ran slower with two BLAS threads than with one), so during a
network's forward and backward pass (:func:`pool_scope`) OpenBLAS is set to
one thread, whatever the number of workers, and restored afterwards.

The number of workers is the engine's ``threads`` inside :func:`pool_scope`,
else the documented default of :func:`diet_np.settings.threads`
(``DIET_NP_THREADS``, or the CPUs this process may run on).  With one worker,
or for arrays that are not NumPy's (CuPy, the strict test device), chunks run
in order in the calling thread.
"""
from __future__ import annotations

import contextlib
import contextvars
import ctypes
import functools
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .. import settings

_threads = contextvars.ContextVar("diet_np_threads", default=None)


def num_workers() -> int:
    """Workers of the CPU pool: those of the enclosing :func:`pool_scope`, else
    :func:`diet_np.settings.threads`."""
    count = _threads.get()
    return settings.threads() if count is None else count


def workers(xp=np) -> int:
    """Workers for arrays of ``xp``: :func:`num_workers` for NumPy, 1 otherwise."""
    return num_workers() if xp is np else 1


@functools.lru_cache(maxsize=None)
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(workers, thread_name_prefix="diet_np")


def map_chunks(fn, chunks, xp=np) -> list:
    """``[fn(c) for c in chunks]``, on the CPU pool when ``xp`` is NumPy and there
    is more than one worker and one chunk (OpenBLAS single-threaded meanwhile)."""
    chunks = list(chunks)
    count = workers(xp)
    if count == 1 or len(chunks) == 1:
        return [fn(c) for c in chunks]
    with single_threaded_blas():
        return list(_pool(count).map(fn, chunks))


def slices(n: int, xp=np) -> list[slice]:
    """Contiguous slices covering range(n), one per worker (a single slice
    unless ``xp`` is NumPy and the pool has several workers)."""
    parts = max(1, min(workers(xp), n))
    bounds = [n * i // parts for i in range(parts + 1)]
    return [slice(lo, hi) for lo, hi in zip(bounds, bounds[1:])]


def sum_in_order(terms, xp=np):
    """terms[0] + terms[1] + ... in list order, into terms[0] (arrays of one
    shape), row blocks on the pool: the same sum whatever the number of workers."""
    total = terms[0]
    if len(terms) > 1:
        rows = total.reshape(total.shape[0], -1)

        def add(part):
            for term in terms[1:]:
                rows[part] += term.reshape(rows.shape)[part]

        map_chunks(add, slices(rows.shape[0], xp), xp)
    return total


def blocks(part: slice, stop: int, size: int, xp=np) -> list[slice]:
    """``part`` of range(stop) cut into consecutive slices of at most ``size``: a
    CPU worker walks its share block by block, so that a dozen passes over a block
    hit the cache instead of memory.  CuPy gets ``[part]`` (one launch per pass
    is what counts there); the strict test device is cut like NumPy, so that
    both add the same partial sums."""
    start, end, _ = part.indices(stop)
    size = max(1, end - start) if getattr(xp, "__name__", "") == "cupy" else max(1, size)
    return [slice(lo, min(lo + size, end)) for lo in range(start, end, size)]


@contextlib.contextmanager
def pool_scope(xp, threads=None):
    """Context for a whole forward or backward pass: ``threads`` workers (None:
    the default) and, for NumPy arrays, OpenBLAS single-threaded, so that no idle
    BLAS thread spins on a core the pool needs.  With one worker too: there the
    BLAS threads would be the pass's only parallelism, on products of a chunk's
    size, and on a busy machine they slowed a vgg5 DIET step four times (measured
    once on two cores beside a two-worker training run: 1.85 s against 0.45 s at
    batch 64, T = 5)."""
    token = _threads.set(threads) if threads is not None else None
    try:
        with single_threaded_blas() if xp is np else contextlib.nullcontext():
            yield
    finally:
        if token is not None:
            _threads.reset(token)


# --------------------------------------------------------------------------- OpenBLAS
class OpenBLAS:
    """The OpenBLAS that NumPy loaded: its kernel name and thread count."""

    def __init__(self, lib, prefix, suffix):
        self._get = getattr(lib, f"{prefix}get_num_threads{suffix}")
        self._set = getattr(lib, f"{prefix}set_num_threads{suffix}")
        self._core = getattr(lib, f"{prefix}get_corename{suffix}")
        self._core.restype = ctypes.c_char_p

    @property
    def corename(self) -> str:
        return self._core().decode()

    @property
    def threads(self) -> int:
        return int(self._get())

    def set_threads(self, n: int) -> None:
        self._set(int(n))


@functools.lru_cache(maxsize=None)
def openblas() -> OpenBLAS | None:
    """NumPy's OpenBLAS, found among the libraries this process has loaded, or
    None (another BLAS, or not Linux)."""
    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return None
    paths = sorted({line.split()[-1] for line in maps
                    if "openblas" in line.lower() and "numpy" in line})
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("scipy_openblas_", "64_"), ("openblas_", ""),
                               ("scipy_openblas_", "")):
            try:
                return OpenBLAS(lib, prefix, suffix)
            except AttributeError:
                continue
    return None


_blas_lock = threading.Lock()
_blas_depth = 0
_blas_saved = None


class single_threaded_blas:
    """Context manager: OpenBLAS runs one thread inside, as many as before after.
    Nests, and may be entered from several threads at once."""

    def __enter__(self):
        global _blas_depth, _blas_saved
        lib = openblas()
        with _blas_lock:
            if _blas_depth == 0 and lib is not None:
                _blas_saved = lib.threads
                if _blas_saved != 1:
                    lib.set_threads(1)
            _blas_depth += 1
        return self

    def __exit__(self, *exc):
        global _blas_depth
        lib = openblas()
        with _blas_lock:
            _blas_depth -= 1
            if _blas_depth == 0 and lib is not None and _blas_saved not in (None, 1):
                lib.set_threads(_blas_saved)
        return False
