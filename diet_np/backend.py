"""The one place that knows about array libraries.

diet_np runs the same code on NumPy (CPU), CuPy (GPU) or the strict test device
(:mod:`diet_np.strict`, a CPU array that behaves like CuPy's in refusing implicit
host conversion).  The user picks a *device* name at run time; every other module
asks :func:`array_module` for the library its *inputs* live in, so nothing here
is a global switch and nothing is ever copied between host and device unless
:func:`to_device` or :func:`to_host` is called.

Dtype policy: training runs in :data:`TRAIN_DTYPE` (float32); gradient checks run
in :data:`CHECK_DTYPE` (float64).
"""
from __future__ import annotations

import numpy as np

from . import settings
from .errors import DietError, ParameterTypeError

TRAIN_DTYPE = np.float32
CHECK_DTYPE = np.float64
DEVICES = ("cpu", "gpu", "strict")


class BackendError(DietError, ValueError):
    """A device that cannot be used, or arrays from two libraries mixed."""


_gpu_probe: tuple[bool, str] | None = None


def gpu_status() -> tuple[bool, str]:
    """Return ``(usable, reason)`` for the GPU; never raises.

    Importing CuPy and counting devices is done once and cached.  Setting the
    environment variable ``DIET_NP_NO_GPU=1`` makes the probe report no GPU
    without touching CuPy at all.
    """
    global _gpu_probe
    if _gpu_probe is None:
        _gpu_probe = _probe_gpu()
    return _gpu_probe


def _probe_gpu() -> tuple[bool, str]:
    if settings.no_gpu():
        return False, f"{settings.NO_GPU} is set"
    try:
        import cupy
    except Exception as exc:  # ImportError, or a broken CUDA install
        return False, f"CuPy is not importable ({type(exc).__name__}: {exc})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return False, f"CuPy found no usable CUDA device ({type(exc).__name__}: {exc})"
    if count < 1:
        return False, "CuPy found no CUDA device"
    return True, f"{count} CUDA device(s)"


def gpu_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    return gpu_status()[0]


def get_xp(device: str = "cpu"):
    """Return the array module for a device name: ``cpu``, ``gpu`` or ``strict``."""
    if device == "cpu":
        return np
    if device == "gpu":
        ok, reason = gpu_status()
        if not ok:
            raise BackendError(f"device 'gpu' was asked for but is not usable: {reason}")
        import cupy

        return cupy
    if device == "strict":
        from . import strict

        return strict.xp
    raise BackendError(f"unknown device {device!r}; expected one of {', '.join(DEVICES)}")


def _library_of(a) -> str | None:
    """'numpy', 'cupy', 'strict' or None (not an array: Python or NumPy scalar)."""
    if isinstance(a, np.ndarray):
        return "numpy"
    module = type(a).__module__
    if module.startswith("cupy"):
        return "cupy"
    if module == "diet_np.strict":
        return "strict"
    return None


def array_module(*arrays):
    """The array module that all array arguments live in.

    Scalars and ``None`` are ignored.  Arrays from two different libraries raise
    :class:`BackendError` naming both, instead of failing later inside NumPy.
    """
    found = {}
    for i, a in enumerate(arrays):
        lib = _library_of(a)
        if lib is not None:
            found.setdefault(lib, i)
    if len(found) > 1:
        desc = ", ".join(f"argument {i} is a {lib} array" for lib, i in found.items())
        raise BackendError(f"arrays from different backends were mixed: {desc}; "
                           "move them with diet_np.backend.to_device first")
    lib = next(iter(found), "numpy")
    if lib == "numpy":
        return np
    if lib == "cupy":
        import cupy

        return cupy
    from . import strict

    return strict.xp


def device_of(a) -> str:
    """Device name ('cpu', 'gpu', 'strict') of an array."""
    return {"numpy": "cpu", "cupy": "gpu", "strict": "strict", None: "cpu"}[_library_of(a)]


def to_device(a, xp):
    """Explicit copy of an array (or a dict of arrays) onto ``xp``'s device."""
    if isinstance(a, dict):
        return {k: to_device(v, xp) for k, v in a.items()}
    if array_module(a) is xp:
        return a
    return xp.asarray(to_host(a))


def to_host(a):
    """Explicit copy of an array (or a dict of arrays) to a NumPy array."""
    if isinstance(a, dict):
        return {k: to_host(v) for k, v in a.items()}
    lib = _library_of(a)
    if lib == "cupy":
        return a.get()
    if lib == "strict":
        return a.to_numpy()
    return np.asarray(a)


def default_rng(xp, seed):
    """A random Generator that makes arrays on ``xp``'s device."""
    if xp is np:
        return np.random.default_rng(seed)
    return xp.random.default_rng(seed)


def require_array(name: str, a) -> None:
    """Raise a clear ``ParameterTypeError`` (a ``TypeError``) naming ``name`` when ``a``
    is not a NumPy, CuPy or strict-device array (a list, a Python number, ...).  A NumPy
    scalar (what arithmetic on a 0-d NumPy array returns) counts as a 0-d host array."""
    if _library_of(a) is None and not isinstance(a, np.generic):
        raise ParameterTypeError(f"{name} must be an array (NumPy, CuPy or strict device); "
                                 f"got {type(a).__name__} {a!r:.60}")


def check_float_dtype(name: str, a, allowed=(np.float32, np.float64)) -> None:
    """Raise a clear ``ParameterTypeError`` (a ``TypeError``) when ``a`` is not of a
    floating dtype we train in."""
    if np.dtype(a.dtype) not in [np.dtype(d) for d in allowed]:
        names = " or ".join(np.dtype(d).name for d in allowed)
        raise ParameterTypeError(f"{name} has dtype {np.dtype(a.dtype).name}; expected {names}")
