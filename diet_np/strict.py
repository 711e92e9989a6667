"""The strict test device: a CPU array that refuses to mix with NumPy, like CuPy.

CI has no GPU, yet code that silently converts device arrays to NumPy (or mixes
the two) would break on CuPy.  :class:`StrictArray` wraps a NumPy array and

* raises in ``__array__`` (no implicit ``np.asarray(x)``),
* rejects NumPy-array operands in operators, ``__array_ufunc__`` and
  ``__array_function__`` (Python and NumPy *scalars* are allowed, as on CuPy),
* rejects NumPy arrays as indices or as values assigned into it.

:data:`xp` is its array module: ``xp.zeros``, ``xp.maximum``, ``xp.random`` ...
forward to NumPy and wrap the results.  ``xp.asarray`` is the one explicit way in
(like ``cupy.asarray``); :func:`diet_np.backend.to_host` is the way out.
Select it with ``diet_np.backend.get_xp("strict")``.
"""
from __future__ import annotations

import numpy as np

from .errors import DietError


class StrictDeviceError(DietError, TypeError):
    """A NumPy array met a strict-device array, or an implicit conversion was tried."""


def _reject(what: str):
    raise StrictDeviceError(
        f"{what}: NumPy arrays and strict-device arrays cannot be mixed (CuPy would fail "
        "here too); move data explicitly with diet_np.backend.to_device / to_host")


def _unwrap(obj, allow_numpy: bool = False):
    """Replace StrictArrays by their NumPy data, refusing NumPy arrays."""
    if isinstance(obj, StrictArray):
        return obj._a
    if isinstance(obj, np.ndarray):
        if allow_numpy:
            return obj
        _reject(f"a NumPy array of shape {obj.shape} was passed")
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unwrap(o, allow_numpy) for o in obj)
    if isinstance(obj, dict):
        return {k: _unwrap(v, allow_numpy) for k, v in obj.items()}
    return obj


def _wrap(obj):
    """Wrap NumPy results (arrays, scalars, tuples of them, generators)."""
    if isinstance(obj, np.ndarray):
        return StrictArray(obj)
    if isinstance(obj, np.generic):
        return StrictArray(np.asarray(obj))
    if isinstance(obj, tuple):
        return tuple(_wrap(o) for o in obj)
    if isinstance(obj, list):
        return [_wrap(o) for o in obj]
    if isinstance(obj, np.random.Generator):
        return _Proxy(obj)
    return obj


def _call(fn, args, kwargs, allow_numpy=False):
    return _wrap(fn(*_unwrap(args, allow_numpy), **_unwrap(kwargs, allow_numpy)))


def _binary(name):
    def op(self, other):
        return _wrap(getattr(self._a, name)(_unwrap(other)))

    op.__name__ = name
    return op


def _inplace(name):
    def op(self, other):
        getattr(self._a, name)(_unwrap(other))
        return self

    op.__name__ = name
    return op


def _unary(name):
    def op(self):
        return _wrap(getattr(self._a, name)())

    op.__name__ = name
    return op


class StrictArray:
    """A NumPy array in disguise that behaves like a device array."""

    __slots__ = ("_a",)
    __array_priority__ = 1000

    def __init__(self, data: np.ndarray):
        self._a = data

    # -- the strictness -------------------------------------------------
    def __array__(self, *args, **kwargs):
        raise StrictDeviceError(
            "implicit conversion of a strict-device array to NumPy is not allowed; "
            "use diet_np.backend.to_host")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return _call(getattr(ufunc, method), inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        return _call(func, args, kwargs)

    def to_numpy(self) -> np.ndarray:
        """Explicit copy to the host."""
        return self._a.copy()

    # -- array protocol ---------------------------------------------------
    @property
    def shape(self):
        return self._a.shape

    @property
    def dtype(self):
        return self._a.dtype

    @property
    def ndim(self):
        return self._a.ndim

    @property
    def size(self):
        return self._a.size

    @property
    def nbytes(self):
        return self._a.nbytes

    @property
    def T(self):
        return StrictArray(self._a.T)

    def __getattr__(self, name):
        if name.startswith("__"):  # hides __array_interface__, __array_struct__, ...
            raise AttributeError(name)
        attr = getattr(self._a, name)
        if callable(attr):
            return lambda *args, **kwargs: _call(attr, args, kwargs)
        return _wrap(attr)

    def __getitem__(self, index):
        return _wrap(self._a[_unwrap(index)])

    def __setitem__(self, index, value):
        self._a[_unwrap(index)] = _unwrap(value)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (_wrap(row) for row in self._a)

    # Size-1 conversions are allowed, as on CuPy (each one is a device sync there).
    def __bool__(self):
        return bool(self._a)

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __index__(self):
        return self._a.__index__()

    def __repr__(self):
        return f"StrictArray({self._a!r})"

    __hash__ = None

    for _n in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul",
               "and", "or", "xor", "lshift", "rshift"):
        locals()[f"__{_n}__"] = _binary(f"__{_n}__")
        locals()[f"__r{_n}__"] = _binary(f"__r{_n}__")
        locals()[f"__i{_n}__"] = _inplace(f"__i{_n}__")
    for _n in ("lt", "le", "gt", "ge", "eq", "ne"):
        locals()[f"__{_n}__"] = _binary(f"__{_n}__")
    for _n in ("neg", "pos", "abs", "invert"):
        locals()[f"__{_n}__"] = _unary(f"__{_n}__")
    del _n


class _Proxy:
    """Wraps a NumPy object (a module, a Generator) so its results are strict."""

    def __init__(self, target, explicit_entry=()):
        self._target = target
        self._entry = frozenset(explicit_entry)

    def __getattr__(self, name):
        attr = getattr(self._target, name)
        if name == "ndarray":
            return StrictArray
        if isinstance(attr, type) or not callable(attr):
            if type(attr).__name__ == "module":
                return _Proxy(attr)
            return attr
        if name in self._entry:
            return lambda *args, **kwargs: _call(attr, _copied(args), kwargs, allow_numpy=True)
        return lambda *args, **kwargs: _call(attr, args, kwargs)


def _copied(args):
    """A NumPy array entering the strict device is copied, as a transfer to a GPU
    would copy it: the two never share memory."""
    return tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args)


#: The strict device's array module.  ``asarray``/``array`` accept NumPy input:
#: they are the explicit host-to-device transfer, as ``cupy.asarray`` is.
xp = _Proxy(np, explicit_entry=("asarray", "array", "ascontiguousarray"))
