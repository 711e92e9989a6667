"""Weights in and out: safetensors and ``.npz`` files of named tensors, and the
key maps between diet-np's parameter names and the authors' PyTorch models.

Files (read and written here, without PyTorch or the ``safetensors`` package):

* ``.safetensors``: an 8-byte little-endian unsigned header length n, then n
  bytes of JSON ``{name: {"dtype": "F32", "shape": [...], "data_offsets":
  [begin, end]}, ..., "__metadata__": {str: str}}``, then the raw little-endian
  tensor bytes, offsets counted from the end of the header;
* ``.npz``: one entry per tensor (``numpy.savez``); an optional 0-d string
  entry ``__metadata__`` holds a JSON object of strings.

Names: ``diet-np`` files use diet-np's own keys (``conv1.weight``,
``conv1.leak``, ``conv1.threshold``, ..., what :func:`export_checkpoint`
writes); ``authors`` files use the state-dict keys of the authors' PyTorch
ANNs (``self_models/vgg.py`` and ``resnet.py`` of their DIET-SNN code), see
:func:`authors_key`.  Their convolutions and linear layers have no bias and
store weights as (C_out, C_in, k, k) and (out, in), as diet-np does, so an
import is a renaming, checked shape by shape.
"""
from __future__ import annotations

import json
import math
import os

import numpy as np

from .architectures import NARROWABLE, VGG_CONFIGS, arch_name, build_network, split_width
from .backend import TRAIN_DTYPE, to_host
from .checkpoint import atomic_write
from .errors import DietError
from .model_file import KINDS, check_neuron_ranges, data_record
from .outputs import check_output_file, writing
from .pipeline import load_model, save_model
from . import authors_format, nir_format

FORMATS = ("authors", "diet-np")
EXPORT_FORMATS = ("diet-np", "authors", "nir")
METADATA = "__metadata__"

_ST_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4",
              "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}
_ST_NAMES = {np.dtype(v): k for k, v in _ST_DTYPES.items()}
_HEADER_LIMIT = 100 * 2 ** 20     # a header above 100 MiB is a damaged file, not a model


class WeightsError(DietError, ValueError):
    """A weights file that is damaged, of an unknown kind, or does not fit the network."""


# -- safetensors ----------------------------------------------------------------
# The parser is ours, not the maintained ``safetensors`` package: diet-np depends on
# NumPy alone, the format is a JSON header and raw bytes, and the package reads BF16
# only through torch.  It checks what the package checks: a JSON object header, each
# entry's dtype, shape and offsets, and tensors that tile the data bytes exactly (no
# gap, no overlap, nothing after).  tests/test_fuzz_readers.py feeds both the same
# damaged files and asserts that this one accepts only what the package accepts, and
# reads it equally.
def read_safetensors(path) -> tuple[dict, dict]:
    """``(tensors, metadata)`` of a ``.safetensors`` file: host NumPy arrays in the
    file's dtypes (BF16 widened to float32, exactly) and the string metadata.
    Anything malformed is a :class:`WeightsError` naming the file and the entry."""
    path = os.fspath(path)
    data = _read_bytes(path)
    if len(data) < 8:
        raise WeightsError(f"{path}: {len(data)} bytes, too short for a safetensors file")
    n = int.from_bytes(data[:8], "little")
    if n > min(len(data) - 8, _HEADER_LIMIT):
        raise WeightsError(f"{path}: header length {n} does not fit the file's {len(data)} "
                           "bytes (not a safetensors file, or truncated)")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise WeightsError(f"{path}: the safetensors header is not JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise WeightsError(f"{path}: the safetensors header is not a JSON object")
    metadata = header.pop(METADATA, {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise WeightsError(f"{path}: its {METADATA!r} is {metadata!r:.80}, not a map of "
                           "strings to strings")
    body = memoryview(data)[8 + n:]
    entries = {name: _st_entry(path, name, entry) for name, entry in header.items()}
    end = 0
    for name, (_, _, (begin, stop)) in sorted(entries.items(), key=lambda item: item[1][2]):
        if begin != end:
            raise WeightsError(f"{path}: tensor {name!r} starts at data byte {begin}, where "
                               f"the tensors before it end at {end} (overlapping or a gap)")
        end = stop
    if end != len(body):
        raise WeightsError(f"{path}: the tensors end at data byte {end} but the file holds "
                           f"{len(body)} (truncated, or bytes after the last tensor)")
    return {name: _st_array(body, *entry) for name, entry in entries.items()}, metadata


def _read_bytes(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise WeightsError(f"cannot read weights file {path}: {exc.strerror or exc}") from exc


def _whole(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _st_entry(path, name, entry):
    """``(dtype, shape, (begin, end))`` of one header entry, checked."""
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise WeightsError(f"{path}: tensor {name!r} has a malformed header entry {entry!r:.120} "
                           "(it needs exactly dtype, shape and data_offsets)")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str) or dtype != "BF16" and dtype not in _ST_DTYPES:
        raise WeightsError(f"{path}: tensor {name!r} has dtype {str(dtype):.40}, which diet-np "
                           f"does not read (it reads BF16, {', '.join(_ST_DTYPES)})")
    if not isinstance(shape, list) or not all(_whole(s) and s >= 0 for s in shape):
        raise WeightsError(f"{path}: tensor {name!r} has shape {shape!r:.80}, not a list of "
                           "whole numbers >= 0")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_whole, offsets))
            and 0 <= offsets[0] <= offsets[1]):
        raise WeightsError(f"{path}: tensor {name!r} has data_offsets {offsets!r:.80}, not "
                           "[begin, end] with 0 <= begin <= end")
    itemsize = 2 if dtype == "BF16" else np.dtype(_ST_DTYPES[dtype]).itemsize
    size = math.prod(shape) * itemsize
    if offsets[1] - offsets[0] != size:
        raise WeightsError(f"{path}: tensor {name!r} ({dtype}, shape {shape}) needs {size} "
                           f"bytes; its data offsets {offsets} span {offsets[1] - offsets[0]}")
    return dtype, tuple(shape), tuple(offsets)


def _st_array(body, dtype, shape, offsets):
    raw = body[offsets[0]:offsets[1]]
    if dtype == "BF16":     # the upper half of a float32: shift the bits back in place
        bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return bits.view(np.float32).reshape(shape)
    return np.frombuffer(raw, dtype=_ST_DTYPES[dtype]).reshape(shape).copy()


def write_safetensors(path, tensors: dict, metadata: dict | None = None) -> None:
    """Write host or device arrays (float16/32/64, integers, bool) as ``.safetensors``,
    atomically; ``metadata`` maps strings to strings."""
    header, chunks, offset = {}, [], 0
    for name, value in tensors.items():
        a = np.asarray(to_host(value))
        st = _ST_NAMES.get(a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype)
        if st is None:
            raise WeightsError(f"tensor {name!r} has dtype {a.dtype}, which safetensors "
                               "files here do not hold")
        raw = a.astype(_ST_DTYPES[st], copy=False).tobytes(order="C")
        header[name] = {"dtype": st, "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    if metadata:
        header[METADATA] = _string_map(metadata)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)           # the tensor bytes start 8-byte aligned
    atomic_write(path, lambda f: f.write(len(text).to_bytes(8, "little") + text
                                          + b"".join(chunks)))


def _string_map(metadata):
    bad = [k for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)]
    if bad:
        raise WeightsError(f"metadata entry {bad[0]!r} is not a string -> string pair")
    return dict(metadata)


# -- any file -----------------------------------------------------------------------
def _suffix(path):
    path = os.fspath(path)
    for suffix in (".safetensors", ".npz"):
        if path.endswith(suffix):
            return suffix
    raise WeightsError(f"{path}: expected a .safetensors or .npz file name")


def read_tensors(path) -> tuple[dict, dict]:
    """``(tensors, metadata)`` of a ``.safetensors`` or ``.npz`` file (host arrays;
    metadata: a map of strings to strings).  A missing, unreadable or malformed file
    is a :class:`WeightsError` naming it."""
    suffix = _suffix(path)
    if not os.path.isfile(path):
        raise WeightsError(f"weights file {os.fspath(path)} does not exist"
                           if not os.path.exists(path) else f"{os.fspath(path)} is not a file")
    if suffix == ".safetensors":
        return read_safetensors(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            tensors = {name: archive[name] for name in archive.files}
    except Exception as exc:       # zipfile, zlib, format and pickle errors alike: not ours
        raise WeightsError(f"{path}: not a readable .npz file ({type(exc).__name__}: {exc}); "
                           "an .npz of a state dict is np.savez(path, **{k: v.numpy()})") from exc
    if "__meta__" in tensors:
        raise WeightsError(f"{path} is a diet-np checkpoint, not a file of named tensors: "
                           "use it as it is, or write one with diet-np export")
    entry = tensors.pop(METADATA, None)
    if entry is None:
        return tensors, {}
    try:
        metadata = json.loads(str(entry[()])) if entry.shape == () and entry.dtype.kind == "U" \
            else None
    except (json.JSONDecodeError, RecursionError):
        metadata = None
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise WeightsError(f"{path}: its {METADATA!r} entry is not one string holding a JSON "
                           "object of strings")
    return tensors, metadata


#: What an export's metadata may say of the model: key -> (parse, check, what it must be).
_RECORD = {"arch": (json.loads, lambda v: isinstance(v, (str, dict)), "an architecture (JSON)"),
           "kind": (str, lambda v: v in KINDS, f"one of {', '.join(KINDS)}"),
           "T": (int, lambda v: v >= 1, "a whole number >= 1"),
           "num_classes": (int, lambda v: v >= 1, "a whole number >= 1")}


def file_record(path, metadata) -> dict:
    """What a ``diet-np export`` file says of its model, checked: ``arch``, ``kind``,
    ``T`` and ``num_classes``, each left out when the metadata does not give it."""
    record = {}
    for key, (parse, check, what) in _RECORD.items():
        if key in metadata:
            try:
                value = parse(metadata[key])
            except (ValueError, RecursionError):
                value = None
            if value is None or not check(value):
                raise WeightsError(f"{path}: its metadata {key!r} is {metadata[key]!r:.80}, "
                                   f"not {what}")
            record[key] = value
    return record


def write_tensors(path, tensors: dict, metadata: dict | None = None) -> None:
    """Write named arrays to a ``.safetensors`` or ``.npz`` file (by its suffix)."""
    if _suffix(path) == ".safetensors":
        write_safetensors(path, tensors, metadata)
        return
    arrays = {name: to_host(a) for name, a in tensors.items()}
    if metadata:
        arrays[METADATA] = np.array(json.dumps(_string_map(metadata)))
    atomic_write(path, lambda f: np.savez(f, **arrays))


# -- the authors' names ----------------------------------------------------------------
def _authors_vgg_names(arch) -> dict:
    """diet-np key -> the authors' key for their VGG (``self_models/vgg.py``).

    Their ``features`` list holds Conv2d, ReLU, Dropout per conv; at a pool the
    last Dropout is popped and an AvgPool2d appended, so a pool takes the index
    of the dropout it replaces.  ``classifier`` is Linear, ReLU, Dropout per
    hidden layer, then the output Linear.
    """
    features, classifier = VGG_CONFIGS[split_width(arch)[0]]   # widths do not move keys
    names, index, conv = {}, 0, 0
    for token in features:
        if token in ("A", "M"):
            continue                       # pop the Dropout (-1), append the pool (+1)
        conv += 1
        names[f"conv{conv}.weight"] = f"features.{index}.weight"
        index += 3
    for j in range(1, len(classifier) + 1):
        names[f"fc{j}.weight"] = f"classifier.{3 * (j - 1)}.weight"
    names["out.weight"] = f"classifier.{3 * len(classifier)}.weight"
    return names


def _authors_resnet_names(net) -> dict:
    """diet-np key -> the authors' key for their ResNet20 (``self_models/resnet.py``):
    ``pre_process`` is conv, ReLU, Dropout, conv, ReLU, Dropout, conv, ReLU, pool;
    block k of diet-np is ``layer{stage}.{i}`` (two blocks per stage), with
    ``residual.0`` / ``residual.3`` (conv, ReLU, Dropout, conv) and ``identity.0``
    (the 1x1 shortcut)."""
    names = {f"pre{i}.weight": f"pre_process.{3 * (i - 1)}.weight" for i in (1, 2, 3)}
    parts = {"conv1": "residual.0", "conv2": "residual.3", "shortcut": "identity.0"}
    for key, spec in net.specs.items():
        if spec.kind == "weight" and key.startswith("block"):
            block, part, _ = key.split(".")
            k = int(block[len("block"):]) - 1
            names[key] = f"layer{k // 2 + 1}.{k % 2}.{parts[part]}.weight"
    names["out.weight"] = "classifier.0.weight"
    return names


def authors_names(arch, net) -> dict:
    """``{diet-np weight key: the authors' state-dict key}`` for ``resnet20`` and
    every named VGG (their VGG5 is diet-np's ``vgg6``; their layer-list rule gives
    the keys of the other VGGs; the ``_w<k>`` widths share their network's keys)."""
    base = split_width(arch)[0] if isinstance(arch, str) else None
    if base not in NARROWABLE:
        raise WeightsError(f"no key map for the authors' {arch_name(arch)!r}: the authors' "
                           "layout exists for resnet20 and the named VGGs (or use --format "
                           "diet-np)")
    names = _authors_resnet_names(net) if base == "resnet20" else _authors_vgg_names(arch)
    weights = [k for k, s in net.specs.items() if s.kind == "weight"]
    assert sorted(names) == sorted(weights), "the key map and the network disagree"
    return names


# -- import and export ---------------------------------------------------------------
def _strip_module_prefix(tensors):
    """Keys saved from ``nn.DataParallel`` start with ``module.`` (the authors'
    checkpoints do): drop it when every key has it."""
    if tensors and all(k.startswith("module.") for k in tensors):
        return {k[len("module."):]: v for k, v in tensors.items()}
    return tensors


def _float_param(path, name, key, value, shape):
    if tuple(value.shape) != tuple(shape):
        raise WeightsError(f"{path}: tensor {name!r} (diet-np's {key}) has shape "
                           f"{tuple(value.shape)}; the network expects {tuple(shape)}")
    if value.dtype.kind != "f":
        raise WeightsError(f"{path}: tensor {name!r} has dtype {value.dtype}; weights must "
                           "be floating point")
    return np.asarray(value, dtype=TRAIN_DTYPE)


def read_weights(path, fmt="diet-np") -> tuple[dict, dict]:
    """``(tensors, record)`` of a weights file, checked as data before any use: the
    file (:func:`read_tensors`; for ``authors`` also ``.pth``,
    :func:`diet_np.authors_format.read_authors_file`), what its metadata says of
    the model (:func:`file_record`; a ``.pth``'s ``timesteps`` is its ``T``, its
    ``thresholds`` and ``leak`` lists go in ``lists``) and every floating-point
    tensor finite.  Keys saved from ``nn.DataParallel`` lose their ``module.``
    prefix."""
    if fmt == "authors" and os.fspath(path).endswith(authors_format.PTH_SUFFIXES):
        tensors, lists = authors_format.read_authors_file(path, WeightsError)
        record = {"lists": lists}
        T = authors_format.saved_timesteps(path, lists, WeightsError)
        if T is not None:
            record["T"] = T
    else:
        tensors, metadata = read_tensors(path)
        record = file_record(path, metadata)
    for name, value in tensors.items():
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise WeightsError(f"{path}: tensor {name!r} holds NaN or infinite values; a "
                               "network with them computes nothing (a diverged run?)")
    return _strip_module_prefix(tensors), record


def _neuron_names(path, arch, net, tensors, kind):
    """The leaks and thresholds a ``diet-np`` file gives: all of them for an SNN,
    none for an ANN (an exported ANN carries its unused leaks and thresholds of 1),
    all or none when the file does not say its kind."""
    keys = [k for k, s in net.specs.items() if s.kind != "weight"]
    present = [k for k in keys if k in tensors]
    if kind == "ann":
        return {}
    if (kind == "snn" or present) and len(present) != len(keys):
        absent = next(k for k in keys if k not in tensors)
        said = "an SNN by its metadata, yet it " if kind == "snn" else ""
        raise WeightsError(f"{path} is {said}holds {len(present)} of the {len(keys)} leaks and "
                           f"thresholds of {arch}; {absent!r} is missing (all or none)")
    return {k: k for k in present}


def import_params(path, arch, num_classes, fmt="authors", contents=None):
    """Read a weights file into a new network's parameters.

    Returns ``(net, params, kind)``: ``kind`` is the file's recorded kind (a
    ``diet-np export``), else ``"snn"`` when the file (in diet-np names) holds
    every spiking layer's leak and threshold, else ``"ann"`` (leaks and
    thresholds then keep their initial value 1, and the weights go on to
    conversion).  Every tensor of the file must find its parameter and every
    weight its tensor, with the right shape; float16, bfloat16 and float64
    tensors are cast to float32.  A recorded architecture or class count that
    differs is refused.  ``contents``: :func:`read_weights`'s result, when read.
    """
    if fmt not in FORMATS:
        raise WeightsError(f"unknown weights format {fmt!r}; choose from {', '.join(FORMATS)}")
    tensors, record = read_weights(path, fmt) if contents is None else contents
    if record.get("arch", arch) != arch:
        raise WeightsError(f"{path} was exported from a {arch_name(record['arch'])} network, "
                           f"not {arch_name(arch)}")
    if record.get("num_classes", num_classes) != num_classes:
        raise WeightsError(f"{path} holds a network of {record['num_classes']} classes; the "
                           f"data set has {num_classes}")
    net = build_network(arch, num_classes)
    params = {k: np.ones(s.shape, TRAIN_DTYPE) for k, s in net.specs.items() if s.kind != "weight"}
    names = authors_names(arch, net) if fmt == "authors" else \
        {k: k for k, s in net.specs.items() if s.kind == "weight"}
    ignored = set()
    if fmt == "authors" and record.get("kind") != "ann":
        names.update(authors_format.authors_neurons(path, tensors, record.get("lists", {}),
                                                    arch, net, WeightsError))
    if fmt == "diet-np":
        names.update(_neuron_names(path, arch, net, tensors, record.get("kind")))
        if record.get("kind") == "ann":    # an exported ANN's leaks and thresholds: unused
            ignored = {k for k, s in net.specs.items() if s.kind != "weight"}
    unused = [name for name in tensors if name not in names.values() and name not in ignored]
    if unused:
        raise WeightsError(f"{path}: tensor {unused[0]!r} (shape {tuple(tensors[unused[0]].shape)}) "
                           f"has no place in {arch}'s parameters"
                           + (f", nor do {len(unused) - 1} more" if len(unused) > 1 else "")
                           + f" (another architecture or format? this is --format {fmt})")
    missing = [key for key, name in names.items() if name not in tensors]
    if missing:
        key = missing[0]
        more = f", nor {len(missing) - 1} more" if len(missing) > 1 else ""
        raise WeightsError(f"{path} has no tensor {names[key]!r} (diet-np's {key}, shape "
                           f"{net.specs[key].shape}){more}; another architecture or format? "
                           f"(this is --format {fmt})")
    for key, name in names.items():
        params[key] = _float_param(path, name, key, tensors[name], net.specs[key].shape)
    params = {k: params[k] for k in net.specs}      # the network's order
    kind = "snn" if len(names) == len(net.specs) else "ann"
    if kind == "snn":
        check_neuron_ranges(params, str(path), WeightsError)
    return net, params, kind


def export_params(path, params, model) -> None:
    """Write every parameter (weights, leaks, thresholds) under diet-np's names
    to ``path`` (``.safetensors`` or ``.npz``), with the checkpoint's
    architecture, kind, T and class count as metadata (``model``: a
    :class:`diet_np.model_file.ModelFile`)."""
    write_tensors(path, params, export_metadata(model))


def export_metadata(model, fmt="diet-np") -> dict:
    """The metadata an export records: format, architecture (JSON), kind, T, classes."""
    return {"format": fmt, "arch": json.dumps(model.arch), "kind": model.kind,
            "T": str(model.T), "num_classes": str(model.data["num_classes"])}


def import_checkpoint(source, arch, fmt, dataset, out, T=None, overwrite=False):
    """``diet-np import``: a weights file -> a diet-np checkpoint at ``out``, written
    by :func:`diet_np.pipeline.save_model` (an ANN that ``convert`` accepts, or an
    SNN at T when the file holds leaks and thresholds).  ``arch`` and ``T`` may be
    None: the file's (a ``diet-np export`` or a NIR graph records them, an authors'
    ``.pth`` its T; T then defaults to 5).  ``fmt``: ``authors``, ``diet-np`` or
    ``nir`` (:mod:`diet_np.nir_format`).
    ``dataset``: the data set, or a function that loads it, called once the file is
    read and checked (a damaged file is refused before any download).  Nothing is
    written unless the import succeeds.  Returns the kind."""
    check_output_file(out, overwrite=overwrite, inputs=[source])
    if fmt == "nir":
        graph, record = nir_format.read_nir(source)
    else:
        contents = read_weights(source, fmt)
        record = contents[1]
    arch = arch or record.get("arch")
    if arch is None:
        raise WeightsError(f"{source} does not record its architecture: pass --arch")
    ann_with_T = f"{source} holds an ANN (one step, no leaks and thresholds); --timesteps " \
                 "applies to an SNN"
    if T is not None and record.get("kind") == "ann":
        raise WeightsError(ann_with_T)
    if T is not None and record.get("T", T) != T:
        raise WeightsError(f"{source} holds an SNN of T={record['T']}; --timesteps {T} disagrees "
                           "(leave it out to keep the file's)")
    given, T = T is not None, T or record.get("T", 5)
    if callable(dataset):
        dataset = dataset()
    if fmt == "nir":
        net, params, kind = nir_format.from_nir(graph, arch, dataset.num_classes, source)
    else:
        net, params, kind = import_params(source, arch, dataset.num_classes, fmt, contents)
    if given and kind == "ann":
        raise WeightsError(ann_with_T)
    with writing(out):
        save_model(out, params, arch=arch, kind=kind, T=T if kind == "snn" else 1,
                   data=data_record(dataset),
                   origin={"imported_from": os.path.abspath(source), "import_format": fmt})
    taken = "weights, leaks and thresholds" if kind == "snn" else "weights"
    at = f" at T = {T}" if kind == "snn" else ""
    print(f"{kind.upper()} {arch_name(arch)}{at} written to {out} ({taken} from {source})")
    return kind


def export_checkpoint(checkpoint, out, overwrite=False, fmt="diet-np"):
    """``diet-np export``: a checkpoint's parameters to ``out``: ``diet-np`` names
    (.safetensors/.npz), the authors' (.safetensors/.npz/.pth, see
    :mod:`diet_np.authors_format`) or a NIR graph (.nir, :mod:`diet_np.nir_format`)."""
    if fmt not in EXPORT_FORMATS:
        raise WeightsError(f"unknown export format {fmt!r}; choose from "
                           f"{', '.join(EXPORT_FORMATS)}")
    suffixes = {"diet-np": (".safetensors", ".npz"),
                "authors": (".safetensors", ".npz", ".pth"), "nir": (".nir",)}[fmt]
    if not os.fspath(out).endswith(suffixes):
        raise WeightsError(f"{out}: --format {fmt} writes a {' or '.join(suffixes)} file")
    check_output_file(out, overwrite=overwrite, inputs=[checkpoint])
    net, params, model = load_model(checkpoint, np)
    with writing(out):
        if fmt == "authors":
            authors_format.write_authors(out, params, net, model, export_metadata(model, fmt),
                                         WeightsError)
        elif fmt == "nir":
            nir_format.export_nir(out, net, params, model)
        else:
            export_params(out, params, model)
    print(f"{len(params)} parameters of the {model.kind.upper()} {arch_name(model.arch)} "
          f"written to {out} (--format {fmt})")
