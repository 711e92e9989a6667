"""Checkpoints: one ``.npz`` per save, written atomically.

Layout of the ``.npz`` (all entries plain NumPy arrays, readable with
``numpy.load(path, allow_pickle=False)``):

* ``__meta__``: a 0-d string array holding one JSON document ``{"format":
  "diet_np.checkpoint", "version": 1, "params": [keys in order], "optimizer":
  skeleton or null, "meta": the caller's meta dict}``.
* ``param/<key>``: one entry per model parameter (``param/conv1.weight``).
* ``optim/<path>``: the optimiser state's arrays.  A nested state such as
  ``{"state": {"fc.weight": {"exp_avg": a}}}`` is flattened to the entry
  ``optim/state/fc.weight/exp_avg``: the dict keys along the way joined by ``/``
  (list items by their index), with ``%`` and ``/`` inside a key escaped as
  ``%25`` and ``%2F``.  The JSON *skeleton* keeps the structure and the plain
  scalars (step count, hyper-parameters): an array is ``{"__array__": entry}``,
  a dict ``{"__dict__": {...}}``, a list ``{"__list__": [...]}``, a tuple
  ``{"__tuple__": [...]}``.

``meta`` must be JSON-serialisable; NumPy scalars are stored as Python numbers and
small host arrays (e.g. an MT19937 key) as ``{"__ndarray__": [...], "dtype": ...}``,
so ``rng.bit_generator.state`` (nested dicts with big ints) round-trips.  Tuples
come back as lists.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from typing import NamedTuple

import numpy as np

from .backend import to_device, to_host
from .errors import DietError

FORMAT = "diet_np.checkpoint"
VERSION = 1
META_ENTRY = "__meta__"
PARAM_PREFIX = "param/"
OPTIM_PREFIX = "optim/"


class CheckpointError(DietError, ValueError):
    """A checkpoint that is missing, damaged, not ours, or does not fit the model."""


class Checkpoint(NamedTuple):
    params: dict
    optimizer_state: dict | None
    meta: dict


# --------------------------------------------------------------------------
# JSON for meta
# --------------------------------------------------------------------------
def _is_array(obj) -> bool:
    return hasattr(obj, "shape") and hasattr(obj, "dtype") and not isinstance(obj, np.generic)


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": obj.dtype.str}
    if _is_array(obj):
        raise TypeError(f"meta holds a device array of shape {tuple(obj.shape)}; store a host "
                        "value (diet_np.backend.to_host or float()) instead")
    raise TypeError(f"meta holds a {type(obj).__name__}, which is not JSON-serialisable")


def _json_hook(d: dict):
    if set(d) == {"__ndarray__", "dtype"}:
        return np.array(d["__ndarray__"], dtype=np.dtype(d["dtype"]))
    return d


# --------------------------------------------------------------------------
# optimiser state flattening
# --------------------------------------------------------------------------
def _escape(key) -> str:
    return str(key).replace("%", "%25").replace("/", "%2F")


def _flatten(obj, path: str, arrays: dict):
    """Return the JSON skeleton of ``obj`` and put its arrays (on the host) in ``arrays``."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"optimiser state key {k!r} at {path or '/'} is not a string")
            out[k] = _flatten(v, f"{path}/{_escape(k)}" if path else _escape(k), arrays)
        return {"__dict__": out}
    if isinstance(obj, (list, tuple)):
        items = [_flatten(v, f"{path}/{i}" if path else str(i), arrays) for i, v in enumerate(obj)]
        return {"__tuple__" if isinstance(obj, tuple) else "__list__": items}
    if isinstance(obj, np.generic):
        return obj.item()
    if _is_array(obj):
        name = OPTIM_PREFIX + path
        arrays[name] = to_host(obj)
        return {"__array__": name}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"optimiser state at {path or '/'} holds a {type(obj).__name__}; "
                    "expected arrays, dicts, lists and plain scalars")


def _unflatten(node, arrays: dict, xp):
    if isinstance(node, dict):
        if "__array__" in node:
            return to_device(arrays[node["__array__"]], xp)
        if "__dict__" in node:
            return {k: _unflatten(v, arrays, xp) for k, v in node["__dict__"].items()}
        if "__list__" in node:
            return [_unflatten(v, arrays, xp) for v in node["__list__"]]
        if "__tuple__" in node:
            return tuple(_unflatten(v, arrays, xp) for v in node["__tuple__"])
        raise ValueError(f"unknown node {sorted(node)} in the optimiser skeleton")
    return node


def _skeleton_entries(node) -> list:
    if isinstance(node, dict):
        if "__array__" in node:
            return [node["__array__"]]
        children = next(iter(node.values()), [])
        children = children.values() if isinstance(children, dict) else children
        return [e for c in children for e in _skeleton_entries(c)]
    return []


# --------------------------------------------------------------------------
# save / load
# --------------------------------------------------------------------------
def _write_arrays(fileobj, arrays: dict) -> None:
    """Write the entries to an open binary file (a hook the tests replace)."""
    np.savez(fileobj, **arrays)


def save_checkpoint(path, params: dict, meta: dict, optimizer_state: dict | None = None) -> None:
    """Write ``params``, ``meta`` and the optimiser state to one ``.npz``, atomically.

    Arrays are copied to the host explicitly (:func:`diet_np.backend.to_host`); the
    file is written by :func:`atomic_write`.
    """
    path = os.fspath(path)
    if not isinstance(params, dict) or not params:
        raise ValueError("params must be a non-empty dict of arrays")
    if not isinstance(meta, dict):
        raise ValueError(f"meta must be a dict, got {type(meta).__name__}")
    if optimizer_state is not None and not isinstance(optimizer_state, dict):
        raise ValueError(f"optimizer_state must be a dict or None, got {type(optimizer_state).__name__}")
    arrays = {}
    for key, value in params.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"parameter names must be non-empty strings, got {key!r}")
        if not _is_array(value):
            raise ValueError(f"parameter {key!r} is a {type(value).__name__}, not an array")
        arrays[PARAM_PREFIX + key] = to_host(value)
    skeleton = None if optimizer_state is None else _flatten(optimizer_state, "", arrays)
    header = {"format": FORMAT, "version": VERSION, "params": list(params),
              "optimizer": skeleton, "meta": meta}
    try:
        text = json.dumps(header, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"cannot store the checkpoint meta as JSON: {exc}") from exc
    arrays[META_ENTRY] = np.array(text)

    atomic_write(path, lambda f: _write_arrays(f, arrays))


def atomic_write(path, write, mode="wb") -> None:
    """Write a file through ``write(fileobj)``, atomically.

    The data goes to a temporary file ``.<name>.<random>.tmp`` in the same
    folder, is flushed and fsynced, then moved over ``path`` with
    ``os.replace``: a crash leaves either the old file or the new one, never a
    half-written one (and at worst a stale ``.tmp`` that a training run removes).
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable (POSIX)
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def load_checkpoint(path, xp=np) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Arrays are moved to ``xp``'s device explicitly (:func:`diet_np.backend.to_device`).
    A missing, truncated or corrupt file, or an ``.npz`` that is not a diet_np
    checkpoint, raises :class:`CheckpointError` naming the path and the problem.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path!r} does not exist"
                              if not os.path.exists(path) else f"checkpoint {path!r} is not a file")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"checkpoint {path!r} is not an .npz (zip) file (truncated or corrupt, "
                              "or another kind of file)")
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path!r} is not a readable .npz file (truncated or "
                              f"corrupt?): {type(exc).__name__}: {exc}") from exc
    if not hasattr(archive, "files"):
        raise CheckpointError(f"{path!r} holds a single .npy array, not a diet_np checkpoint")
    with archive:
        if META_ENTRY not in archive.files:
            raise CheckpointError(f"{path!r} is an .npz file but not a diet_np checkpoint "
                                  f"(no {META_ENTRY!r} entry)")
        try:
            entries = {name: archive[name] for name in archive.files}
        except Exception as exc:
            raise CheckpointError(f"checkpoint {path!r} is damaged (truncated or corrupt?): "
                                  f"{type(exc).__name__}: {exc}") from exc
    try:
        header = json.loads(str(entries.pop(META_ENTRY)[()]), object_hook=_json_hook)
    except (ValueError, TypeError, IndexError) as exc:
        raise CheckpointError(f"checkpoint {path!r} has an unreadable {META_ENTRY!r} entry: {exc}") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(f"{path!r} is an .npz file but not a diet_np checkpoint "
                              f"(its {META_ENTRY!r} entry has no format {FORMAT!r})")
    if header.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {path!r} has format version {header.get('version')!r}; "
                              f"this diet_np reads version {VERSION}")
    keys = header.get("params")
    skeleton = header.get("optimizer")
    if not isinstance(keys, list) or not isinstance(header.get("meta"), dict):
        raise CheckpointError(f"checkpoint {path!r} has a malformed header (params list or meta missing)")
    wanted = [PARAM_PREFIX + k for k in keys] + _skeleton_entries(skeleton)
    missing = [name for name in wanted if name not in entries]
    if missing:
        raise CheckpointError(f"checkpoint {path!r} lacks entry {missing[0]!r}"
                              + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
                              + " that its header lists (damaged file?)")
    params = {k: to_device(entries[PARAM_PREFIX + k], xp) for k in keys}
    try:
        optimizer_state = None if skeleton is None else _unflatten(skeleton, entries, xp)
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {path!r} has a malformed optimiser state: {exc}") from exc
    return Checkpoint(params, optimizer_state, header["meta"])


# --------------------------------------------------------------------------
# compatibility
# --------------------------------------------------------------------------
def param_shapes(params: dict) -> dict:
    """``{key: shape tuple}`` of a parameter dict (the ``expected_shapes`` of a model)."""
    return {k: tuple(v.shape) for k, v in params.items()}


def check_compatible(ckpt_params: dict, expected_shapes: dict, what: str = "checkpoint") -> None:
    """Raise :class:`CheckpointError` unless the checkpoint's parameters have exactly
    the expected keys and shapes; the message names the first differing key (in
    the model's order) and both shapes."""
    got = {k: tuple(v.shape) if hasattr(v, "shape") else tuple(v) for k, v in ckpt_params.items()}
    expected = {k: tuple(v) for k, v in expected_shapes.items()}
    for key, shape in expected.items():
        if key not in got:
            n = sum(k not in got for k in expected)
            raise CheckpointError(
                f"{what} does not fit the model: it has no parameter {key!r} (shape {shape} in "
                f"the model){f'; {n} model parameters are missing in all' if n > 1 else ''} "
                "(another architecture?)")
        if got[key] != shape:
            hint = ""
            if key.endswith(".weight") and len(shape) == 2 and got[key][1:] == shape[1:]:
                hint = " (a different number of classes?)"
            raise CheckpointError(f"{what} does not fit the model: parameter {key!r} has shape "
                                  f"{got[key]} in it but {shape} in the model{hint}")
    extra = [k for k in got if k not in expected]
    if extra:
        raise CheckpointError(
            f"{what} does not fit the model: it has parameter {extra[0]!r} (shape {got[extra[0]]}) "
            f"that the model lacks{f', and {len(extra) - 1} more' if len(extra) > 1 else ''} "
            "(another architecture?)")
