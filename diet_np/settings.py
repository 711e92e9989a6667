"""The environment variables diet_np reads, and the one place it reads them.

Each is a documented default, read when it is needed (not at import), so that a
variable set before a call applies to it.  An explicit argument always wins:
``Network.forward(..., engine=Engine("fast", conv="im2col", threads=1))``
ignores ``DIET_NP_CONV`` and ``DIET_NP_THREADS`` (see :mod:`diet_np.engine`).

=====================  =========================================================
``DIET_NP_THREADS``    workers of the fast engine's CPU pool (default: the CPUs
                       this process may run on); OpenBLAS runs one thread
                       during the engine's passes, so this is its CPU count
``DIET_NP_CONV``       the fast engine's convolution algorithm: ``auto``
                       (default), ``im2col``, ``winograd`` or ``winograd-4x4``
``DIET_NP_FUSED_LIF``  ``0`` turns the fast engine's fused CUDA LIF kernels off
``DIET_NP_KEEP_MEMORY`` ``0``: :func:`diet_np.engine.apply_process_settings`
                       leaves glibc's malloc as it is (default ``1``)
``DIET_NP_NO_GPU``     any value: report no GPU without importing CuPy
=====================  =========================================================
"""
from __future__ import annotations

import os

from .errors import ConfigError

THREADS = "DIET_NP_THREADS"
CONV = "DIET_NP_CONV"
FUSED_LIF = "DIET_NP_FUSED_LIF"
KEEP_MEMORY = "DIET_NP_KEEP_MEMORY"
NO_GPU = "DIET_NP_NO_GPU"

CONV_ALGORITHMS = ("auto", "im2col", "winograd", "winograd-4x4")


def threads() -> int:
    """``DIET_NP_THREADS``, or the number of CPUs this process may run on."""
    value = os.environ.get(THREADS)
    if value is None:
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:                      # not Linux
            return os.cpu_count() or 1
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"{THREADS} must be a whole number >= 1; got {value!r}")
    return int(value)


def conv_algorithm() -> str:
    """``DIET_NP_CONV``, one of :data:`CONV_ALGORITHMS` (default ``auto``)."""
    value = os.environ.get(CONV, "auto")
    if value not in CONV_ALGORITHMS:
        raise ConfigError(f"{CONV} must be one of {', '.join(CONV_ALGORITHMS)}; got {value!r}")
    return value


def fused_lif() -> bool:
    """False when ``DIET_NP_FUSED_LIF=0``."""
    return os.environ.get(FUSED_LIF, "1") != "0"


def keep_memory() -> bool:
    """``DIET_NP_KEEP_MEMORY``: ``1`` (default) or ``0``."""
    value = os.environ.get(KEEP_MEMORY, "1")
    if value not in ("0", "1"):
        raise ConfigError(f"{KEEP_MEMORY} must be 0 or 1; got {value!r}")
    return value == "1"


def no_gpu() -> bool:
    """True when ``DIET_NP_NO_GPU`` is set to anything but the empty string."""
    return bool(os.environ.get(NO_GPU))
