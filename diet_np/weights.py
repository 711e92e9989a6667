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
import os

import numpy as np

from .architectures import VGG_CONFIGS, arch_name, build_network, split_width
from .backend import TRAIN_DTYPE, to_host
from .checkpoint import atomic_write
from .errors import DietError
from .model_file import data_record
from .outputs import check_output_file
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
def read_safetensors(path) -> tuple[dict, dict]:
    """``(tensors, metadata)`` of a ``.safetensors`` file: host NumPy arrays in the
    file's dtypes (BF16 widened to float32, exactly) and the string metadata."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise WeightsError(f"{path}: {len(data)} bytes, too short for a safetensors file")
    n = int.from_bytes(data[:8], "little")
    if n > min(len(data) - 8, _HEADER_LIMIT):
        raise WeightsError(f"{path}: header length {n} does not fit the file's {len(data)} "
                           "bytes (not a safetensors file, or truncated)")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{path}: the safetensors header is not JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise WeightsError(f"{path}: the safetensors header is not a JSON object")
    metadata = header.pop(METADATA, None) or {}
    body = memoryview(data)[8 + n:]
    tensors = {}
    for name, entry in header.items():
        tensors[name] = _st_tensor(path, name, entry, body)
    return tensors, metadata


def _st_tensor(path, name, entry, body):
    try:
        dtype, shape, (begin, end) = entry["dtype"], tuple(entry["shape"]), entry["data_offsets"]
    except (TypeError, KeyError, ValueError) as exc:
        raise WeightsError(f"{path}: tensor {name!r} has a malformed header entry "
                           f"{entry!r}") from exc
    if dtype != "BF16" and dtype not in _ST_DTYPES:
        raise WeightsError(f"{path}: tensor {name!r} has dtype {dtype}, which diet-np does not "
                           f"read (it reads BF16, {', '.join(_ST_DTYPES)})")
    itemsize = 2 if dtype == "BF16" else np.dtype(_ST_DTYPES[dtype]).itemsize
    size = int(np.prod(shape, dtype=np.int64))
    if not 0 <= begin <= end <= len(body) or end - begin != size * itemsize:
        raise WeightsError(f"{path}: tensor {name!r} ({dtype}, shape {list(shape)}) has data "
                           f"offsets [{begin}, {end}] that do not fit its size or the file "
                           f"({len(body)} data bytes)")
    raw = body[begin:end]
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
    """``(tensors, metadata)`` of a ``.safetensors`` or ``.npz`` file (host arrays)."""
    suffix = _suffix(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights file {os.fspath(path)!r} does not exist")
    if suffix == ".safetensors":
        return read_safetensors(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            tensors = {name: archive[name] for name in archive.files}
    except Exception as exc:
        raise WeightsError(f"{path}: not a readable .npz file ({type(exc).__name__}: {exc}); "
                           "an .npz of a state dict is np.savez(path, **{k: v.numpy()})") from exc
    if "__meta__" in tensors:
        raise WeightsError(f"{path} is a diet-np checkpoint, not a file of named tensors: "
                           "use it as it is, or write one with diet-np export")
    metadata = tensors.pop(METADATA, None)
    try:
        metadata = {} if metadata is None else json.loads(str(metadata[()]))
    except (ValueError, IndexError) as exc:
        raise WeightsError(f"{path}: its {METADATA!r} entry is not a JSON object") from exc
    return tensors, metadata


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
    the keys of the other VGGs and of the ``_w<k>`` widths)."""
    if not isinstance(arch, str) or (arch != "resnet20"
                                     and split_width(arch)[0] not in VGG_CONFIGS):
        raise WeightsError(f"no key map for the authors' {arch_name(arch)!r}: the authors' "
                           "layout exists for resnet20 and the named VGGs (or use --format "
                           "diet-np)")
    names = _authors_resnet_names(net) if arch == "resnet20" else _authors_vgg_names(arch)
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


def import_params(path, arch, num_classes, fmt="authors", saved=None):
    """Read a weights file into a new network's parameters.

    Returns ``(net, params, kind)``: ``kind`` is ``"snn"`` when the file (in
    diet-np names) holds every spiking layer's leak and threshold, else
    ``"ann"`` (leaks and thresholds then keep their initial value 1, and the
    weights go on to conversion).  Every tensor of the file must find its
    parameter and every weight its tensor, with the right shape; float16,
    bfloat16 and float64 tensors are cast to float32.  ``authors`` files may
    also be ``.pth`` and hold leaks and thresholds (:mod:`diet_np.authors_format`);
    ``saved`` (a dict), when given, receives the file's ``timesteps`` (or None).
    """
    if fmt not in FORMATS:
        raise WeightsError(f"unknown weights format {fmt!r}; choose from {', '.join(FORMATS)}")
    if fmt == "authors":
        tensors, file_saved = authors_format.read_authors_file(path, WeightsError)
        metadata = {}
    else:
        tensors, metadata = read_tensors(path)
        tensors = _strip_module_prefix(tensors)
    if metadata.get("format") == "diet-np" and metadata.get("arch") != json.dumps(arch):
        raise WeightsError(f"{path} was exported from a {arch_name(json.loads(metadata['arch']))} "
                           f"network, not {arch}")
    net = build_network(arch, num_classes)
    params = {k: np.ones(s.shape, TRAIN_DTYPE) for k, s in net.specs.items() if s.kind != "weight"}
    names = authors_names(arch, net) if fmt == "authors" else \
        {k: k for k, s in net.specs.items() if s.kind == "weight"}
    if fmt == "authors":
        names.update(authors_format.authors_neurons(path, tensors, file_saved, arch, net,
                                                    WeightsError))
        if saved is not None:
            saved["timesteps"] = authors_format.saved_timesteps(path, file_saved, WeightsError)
    if fmt == "diet-np":
        neuron_keys = [k for k, s in net.specs.items() if s.kind != "weight"]
        present = [k for k in neuron_keys if k in tensors]
        if present and len(present) != len(neuron_keys):
            absent = next(k for k in neuron_keys if k not in tensors)
            raise WeightsError(f"{path} holds {len(present)} of the {len(neuron_keys)} leaks "
                               f"and thresholds of {arch}; {absent!r} is missing (all or none)")
        names.update({k: k for k in present})
    unused = [name for name in tensors if name not in names.values()]
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
        net.validate(params, mode="snn")
    return net, params, kind


def export_params(path, params, model) -> None:
    """Write every parameter (weights, leaks, thresholds) under diet-np's names
    to ``path`` (``.safetensors`` or ``.npz``), with the checkpoint's
    architecture, kind, T and class count as metadata (``model``: a
    :class:`diet_np.model_file.ModelFile`)."""
    metadata = {"format": "diet-np", "arch": json.dumps(model.arch), "kind": model.kind,
                "T": str(model.T), "num_classes": str(model.data["num_classes"])}
    write_tensors(path, params, metadata)


def import_checkpoint(source, arch, fmt, dataset, out, T=None, overwrite=False):
    """``diet-np import``: a weights file -> a diet-np checkpoint at ``out``, written
    by :func:`diet_np.pipeline.save_model` (an ANN that ``convert`` accepts, or an
    SNN when the file holds leaks and thresholds, at ``T``: by default the file's
    own ``timesteps``, else 5).  Returns the kind."""
    check_output_file(out, overwrite=overwrite, inputs=[source])
    saved = {}
    if fmt == "nir":
        net, params, kind, saved["timesteps"] = nir_format.import_nir(source, arch,
                                                                      dataset.num_classes)
    else:
        net, params, kind = import_params(source, arch, dataset.num_classes, fmt, saved)
    T = T or saved.get("timesteps") or 5
    save_model(out, params, arch=arch, kind=kind, T=T if kind == "snn" else 1,
               data=data_record(dataset),
               origin={"imported_from": os.path.abspath(source), "import_format": fmt})
    taken = "weights, leaks and thresholds" if kind == "snn" else "weights"
    at = f" at T = {T}" if kind == "snn" else ""
    print(f"{kind.upper()} {arch}{at} written to {out} ({taken} from {source})")
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
    if fmt == "authors":
        authors_format.write_authors(out, params, model.arch, net, model.kind, model.T,
                                     WeightsError)
    elif fmt == "nir":
        nir_format.export_nir(out, net, params, model)
    else:
        export_params(out, params, model)
    print(f"{len(params)} parameters of the {model.kind.upper()} {arch_name(model.arch)} "
          f"written to {out} (--format {fmt})")
