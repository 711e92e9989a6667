"""A PyTorch ``.pth`` file read without PyTorch, and without running its code.

``torch.save`` (since PyTorch 1.6) writes a zip archive: ``<root>/data.pkl`` is
a pickle of the saved object in which every tensor is a call
``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`` and
every storage a *persistent id* ``("storage", torch.FloatStorage, key,
location, numel)`` whose bytes are the entry ``<root>/data/<key>``.

A pickle is a program: an ordinary ``pickle.load`` imports and calls whatever
globals the file names (``os.system`` included).  This reader resolves only
the few globals a state dict needs (the tensor and parameter rebuilders, the
storage types, ``collections.OrderedDict``); any other global, and any
persistent id that is not a storage, stops the read with a
:class:`PthError` before anything is called.  Tensors
come back as NumPy arrays (bfloat16 widened to float32, exactly); containers as
dicts, lists, tuples; numbers and strings as themselves.  The legacy (pre-1.6,
not zip) format is refused with the way to re-save it.
"""
from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
import zlib

import numpy as np

from .errors import DietError

# storage class name -> NumPy dtype ("bf16": the upper half of a float32)
STORAGE_DTYPES = {"FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2",
                  "BFloat16Storage": "bf16", "LongStorage": "<i8", "IntStorage": "<i4",
                  "ShortStorage": "<i2", "CharStorage": "i1", "ByteStorage": "u1",
                  "BoolStorage": "?"}


class PthError(DietError, ValueError):
    """A ``.pth`` file that is damaged, legacy, or asks for code to run."""


class _Storage:
    """One storage's bytes as a flat NumPy array."""

    def __init__(self, values):
        self.values = values


class _StorageType:
    def __init__(self, name):
        self.name = name


def _rebuild_tensor(path, storage, offset, size, stride, *_):
    """``_rebuild_tensor_v2``: a view ``(offset, size, stride)`` of a storage, copied,
    after checking that every element it reaches lies inside the storage."""
    if not isinstance(storage, _Storage):
        raise PthError(f"{path}: a tensor is rebuilt from {type(storage).__name__}, not a storage")
    try:
        offset, size, stride = int(offset), tuple(map(int, size)), tuple(map(int, stride))
    except (TypeError, ValueError) as exc:
        raise PthError(f"{path}: a tensor has a malformed size or stride") from exc
    values = storage.values
    if len(size) != len(stride) or offset < 0 or min(size + stride, default=0) < 0:
        raise PthError(f"{path}: a tensor has size {size}, stride {stride}, offset {offset}")
    if 0 in size:
        return np.zeros(size, values.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= values.size or int(np.prod(size, dtype=np.float64)) > values.size:
        raise PthError(f"{path}: a tensor (size {size}, stride {stride}, offset {offset}) "
                       f"reaches beyond its storage of {values.size} elements, or has more")
    item = values.itemsize
    view = np.lib.stride_tricks.as_strided(values[offset:], size, [s * item for s in stride],
                                           writeable=False)
    return view.copy()


def _rebuild_parameter(data, *_):
    return data


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals of tensors and plain containers; storages come
    from the archive's entries."""

    def __init__(self, file, path, archive, root):
        super().__init__(file)
        self.path, self.archive, self.root = path, archive, root

    def find_class(self, module, name):
        allowed = {("collections", "OrderedDict"): collections.OrderedDict,
                   ("torch._utils", "_rebuild_tensor_v2"):
                       lambda *a: _rebuild_tensor(self.path, *a),
                   ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
                   ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter}
        if (module, name) in allowed:
            return allowed[(module, name)]
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise PthError(f"{self.path}: refused to load global {module}.{name} (this reader "
                       "takes tensors and plain containers only; a pickle can run code)")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise PthError(f"{self.path}: unknown persistent id {str(pid)[:80]!r}")
        kind, key, numel = pid[1].name, str(pid[2]), int(pid[4])
        dtype = STORAGE_DTYPES[kind]
        itemsize = 2 if dtype == "bf16" else np.dtype(dtype).itemsize
        name = f"{self.root}/data/{key}"
        try:
            info = self.archive.getinfo(name)
        except KeyError:
            raise PthError(f"{self.path}: storage {key} has no entry {name!r}") from None
        if info.compress_type != zipfile.ZIP_STORED:     # torch.save stores, never deflates
            raise PthError(f"{self.path}: storage {key} is compressed; torch.save writes "
                           "storages uncompressed")
        if info.file_size != numel * itemsize:
            raise PthError(f"{self.path}: storage {key} ({kind}, {numel} elements) has "
                           f"{info.file_size} bytes, not {numel * itemsize}")
        raw = self.archive.read(name)
        if dtype == "bf16":
            bits = np.frombuffer(raw, "<u2").astype(np.uint32) << 16
            return _Storage(bits.view(np.float32))
        return _Storage(np.frombuffer(raw, dtype))


def read_pth(path):
    """The object a ``torch.save`` file holds, tensors as NumPy arrays; refuses any
    global other than a tensor's, a parameter's, a storage type or OrderedDict."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise PthError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):
        raise PthError(f"{path}: not a zip-format torch file (a legacy pre-1.6 file, or not "
                       "a .pth at all); re-save it with torch.save(torch.load(f), f) in "
                       "PyTorch >= 1.6")
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")
                       and n.count("/") == 1]
            if len(pickles) != 1:
                raise PthError(f"{path}: expected one <root>/data.pkl entry, found "
                               f"{len(pickles)}")
            root = pickles[0].split("/")[0]
            order = f"{root}/byteorder"
            if order in archive.namelist() and archive.read(order).strip() != b"little":
                raise PthError(f"{path}: written big-endian; diet-np reads little-endian files")
            data = archive.read(pickles[0])
            return _RestrictedUnpickler(io.BytesIO(data), path, archive, root).load()
    except PthError:
        raise
    except (zipfile.BadZipFile, zlib.error, struct.error, pickle.UnpicklingError, EOFError,
            ValueError, TypeError, AttributeError, IndexError, KeyError, OverflowError,
            MemoryError, RecursionError, NotImplementedError, RuntimeError, OSError) as exc:
        # a damaged archive or pickle: zipfile, zlib and pickle raise all of these
        raise PthError(f"{path}: not a readable torch file ({type(exc).__name__}: "
                       f"{str(exc)[:120]})") from exc
