"""Model checkpoints: what one records, written and read in this one module.

A model checkpoint is a :mod:`diet_np.checkpoint` file whose meta follows
schema :data:`SCHEMA`::

    {"schema": 2,
     "arch": "vgg16",               # diet_np.architectures name
     "kind": "ann" | "snn",         # ReLU network, or DIET-SNN (leak, threshold)
     "T": 5,                        # timesteps it was trained or converted for
     "epoch": 12,                   # finished training epochs (0: converted, imported)
     "data": {...},                 # data_record(): data set, subset, normalisation
     "config": {...} | null,        # TrainConfig of a training run
     "history": [{...}, ...],       # one log.jsonl record per finished epoch
     "origin": {...}}               # where it came from (conversion settings, ...)

Every command reads the checkpoint before it loads any data, so the data set,
its subset and its normalisation come from here, and a flag that disagrees is
refused.  The history makes the checkpoint the authority on what was done: a
resumed run rewrites ``log.jsonl`` from it.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from .architectures import build_network
from .backend import TRAIN_DTYPE, array_module, to_host
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .encoding import ENCODINGS

SCHEMA = 2
KINDS = ("ann", "snn")

#: Fields of :func:`data_record` that name which images a model was trained on.
DATA_IDENTITY = ("name", "n_train", "seed", "num_classes", "input_shape")
_DATA_TYPES = {"name": (str,), "n_train": (int,), "n_test": (int,), "seed": (int, type(None)),
               "num_classes": (int,), "input_shape": (list,), "mean": (list,), "std": (list,),
               "fingerprint": (str,)}


@dataclass
class ModelFile:
    """A model checkpoint as read by :func:`read_model`."""
    path: str
    arch: str
    kind: str
    T: int
    epoch: int
    data: dict
    config: dict | None
    history: list
    origin: dict
    params: dict
    optimizer_state: dict | None

    @property
    def encoding(self) -> str:
        """The input encoding the SNN was trained (config) or converted (origin) with."""
        return (self.config or self.origin or {}).get("encoding", "direct")


# --------------------------------------------------------------------------
# writer
# --------------------------------------------------------------------------
def fingerprint(dataset) -> str:
    """A short SHA-256 of the training images and labels: tells two copies of
    the same data set apart (the shared CIFAR-10 copy is lossy, say).  An image
    folder's is that of its class names and training files' paths."""
    if getattr(dataset.x_train, "fingerprint", None):
        return dataset.x_train.fingerprint
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(dataset.x_train))
    h.update(np.ascontiguousarray(dataset.y_train, dtype=np.int64))
    return h.hexdigest()[:16]


def data_record(dataset) -> dict:
    """What a model records of its training data: the data set, its subset
    (image counts, generator seed), class count, input shape, normalisation; for
    an image folder also its path and class names."""
    folder = getattr(dataset.x_train, "root", None)
    return {**({"folder": folder, "classes": list(dataset.class_names)} if folder else {}),
            "name": dataset.name, "n_train": int(len(dataset.x_train)),
            "n_test": int(dataset.test_of or len(dataset.x_test)), "seed": dataset.seed,
            "num_classes": int(dataset.num_classes),
            "input_shape": [int(s) for s in dataset.x_train.shape[1:]],
            "mean": [float(v) for v in dataset.mean], "std": [float(v) for v in dataset.std],
            "fingerprint": fingerprint(dataset)}


def write_model(path, params, *, arch, kind, T, data, epoch=0, config=None, history=(),
                origin=None, optimizer_state=None) -> None:
    """Write a model checkpoint (atomically; see :func:`diet_np.checkpoint.save_checkpoint`)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
    meta = {"schema": SCHEMA, "arch": arch, "kind": kind, "T": int(T), "epoch": int(epoch),
            "data": dict(data), "config": config, "history": list(history),
            "origin": dict(origin or {})}
    save_checkpoint(path, params, meta, optimizer_state)


# --------------------------------------------------------------------------
# reader
# --------------------------------------------------------------------------
def _field(meta, key, types, path, where="meta"):
    if key not in meta:
        raise CheckpointError(f"checkpoint {path}: its {where} has no {key!r} (damaged, or not a "
                              "diet-np model checkpoint)")
    value = meta[key]
    if not isinstance(value, types) or isinstance(value, bool):
        raise CheckpointError(f"checkpoint {path}: {where} field {key!r} is {value!r}, not a "
                              f"{' or '.join(t.__name__ for t in types)}")
    return value


def read_model(path, xp=np, expect_kind=None) -> ModelFile:
    """Read and check a model checkpoint: its meta against the schema, the kind
    (``expect_kind``: a tuple of accepted kinds), and every parameter finite.

    Raises :class:`CheckpointError` naming the path and what is wrong.
    """
    path = str(path)
    ckpt = load_checkpoint(path, xp)
    meta = ckpt.meta
    schema = meta.get("schema")
    if schema != SCHEMA:
        raise CheckpointError(
            f"checkpoint {path} has meta schema {schema!r}; this diet-np reads schema {SCHEMA} "
            "(an older diet-np's checkpoint records no data set or subset: train it again)")
    arch = _field(meta, "arch", (str, dict), path)
    kind = _field(meta, "kind", (str,), path)
    if kind not in KINDS:
        raise CheckpointError(f"checkpoint {path}: kind is {kind!r}; expected one of {KINDS}")
    T = _field(meta, "T", (int,), path)
    epoch = _field(meta, "epoch", (int,), path)
    if T < 1 or epoch < 0:
        raise CheckpointError(f"checkpoint {path}: T={T}, epoch={epoch} are out of range")
    data = _field(meta, "data", (dict,), path)
    for key, types in _DATA_TYPES.items():
        _field(data, key, types, path, "data")
    config = meta.get("config")
    if config is not None and not isinstance(config, dict):
        raise CheckpointError(f"checkpoint {path}: config is {config!r}, not a dict")
    history = _field(meta, "history", (list,), path)
    for n, record in enumerate(history, start=1):
        if not isinstance(record, dict) or not all(
                _real(record[k]) for k in ("test_acc", "train_loss") if k in record):
            raise CheckpointError(f"checkpoint {path}: history record {n} is {record!r:.80}, "
                                  "not an epoch record")
    if config is not None and len(history) != epoch:
        raise CheckpointError(f"checkpoint {path}: it says {epoch} epochs were trained but "
                              f"records {len(history)} (damaged meta?)")
    epochs = (config or {}).get("epochs", epoch)
    if isinstance(epochs, bool) or not isinstance(epochs, int):
        raise CheckpointError(f"checkpoint {path}: config epochs is {epochs!r:.40}, not a whole "
                              "number")
    if config is not None and epoch > epochs:
        raise CheckpointError(f"checkpoint {path}: epoch {epoch} is past the run's "
                              f"{config.get('epochs')} epochs (damaged meta?)")
    origin = meta.get("origin") or {}
    if not isinstance(origin, dict):
        raise CheckpointError(f"checkpoint {path}: origin is {origin!r:.80}, not a dict")
    encoding = (config or origin).get("encoding", "direct")
    if encoding not in ENCODINGS:
        raise CheckpointError(f"checkpoint {path}: input encoding {encoding!r:.40} is not one "
                              f"of {', '.join(ENCODINGS)}")
    if expect_kind is not None and kind not in expect_kind:
        raise CheckpointError(f"{path} holds an {kind.upper()} model; this step needs "
                              f"{' or '.join(k.upper() for k in expect_kind)}")
    _check_data(path, data)
    _check_arch(path, arch, data)
    params = checked_params(ckpt.params, f"checkpoint {path}")
    bad = first_non_finite(params)
    if bad is not None:
        raise CheckpointError(f"checkpoint {path}: parameter {bad!r} holds non-finite values "
                              "(NaN or inf): the run that wrote it diverged")
    check_neuron_ranges(params, f"checkpoint {path}", CheckpointError)
    return ModelFile(path, arch, kind, T, epoch, data, config, history, origin, params,
                     ckpt.optimizer_state)


def _check_data(path, data):
    """The data record's values, beyond their types: counts >= 1, a seed >= 0, an image
    shape of three sizes, a finite mean and a positive std per channel."""
    shape = data["input_shape"]
    if len(shape) != 3 or not all(_whole(s) and s >= 1 for s in shape):
        raise CheckpointError(f"checkpoint {path}: data input_shape is {shape!r}, not three "
                              "sizes >= 1 (channels, height, width)")
    if data["seed"] is not None and data["seed"] < 0:
        raise CheckpointError(f"checkpoint {path}: data seed is {data['seed']}; it must be >= 0")
    for key in ("n_train", "n_test", "num_classes"):
        if data[key] < 1:
            raise CheckpointError(f"checkpoint {path}: data {key} is {data[key]!r}; it must be "
                                  ">= 1")
    for key, low in (("mean", -np.inf), ("std", 0.0)):
        values = data[key]
        if len(values) != shape[0] or not all(_real(v) and low < v < np.inf for v in values):
            raise CheckpointError(f"checkpoint {path}: data {key} is {values!r}, not "
                                  f"{shape[0]} finite numbers" + (" > 0" if low == 0 else ""))


def _whole(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _real(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_arch(path, arch, data):
    """An architecture this diet-np can build for the recorded classes and image shape."""
    try:
        build_network(arch, data["num_classes"], tuple(data["input_shape"]))
    except (ValueError, TypeError, KeyError) as exc:
        raise CheckpointError(f"checkpoint {path}: its architecture {arch!r:.80} cannot be "
                              f"built here: {exc}") from exc


def checked_params(params: dict, source: str) -> dict:
    """``params`` with every floating-point array in float32, the dtype diet-np trains
    in: a float64 or float16 parameter (written by hand or another tool) is cast, as
    an import casts, since float32 holds every value a float16 holds and rounds a
    float64 as training in float32 would.  Any other dtype (an integer, a bool, a
    complex number) is refused with a :class:`CheckpointError` naming the key."""
    out = {}
    for key, value in params.items():
        kind = np.dtype(value.dtype).kind
        if kind != "f":
            raise CheckpointError(f"{source}: parameter {key!r} has dtype "
                                  f"{np.dtype(value.dtype).name}; parameters are floating point "
                                  f"(float32; float16 and float64 are cast)")
        out[key] = value if value.dtype == TRAIN_DTYPE else value.astype(TRAIN_DTYPE)
    return out


def check_neuron_ranges(params: dict, source: str, error) -> None:
    """Raise ``error`` naming the first leak outside [0, 1] or threshold <= 0 (Eq. 2-3
    need 0 <= lambda_l <= 1 and v_l > 0; :func:`diet_np.optim.clamp_neuron_params`
    keeps training there)."""
    for key, value in params.items():
        v = to_host(value)
        if key.endswith(".leak") and not ((v >= 0) & (v <= 1)).all():
            raise error(f"{source}: {key} is {v.ravel()[:3].tolist()}; a leak lies in [0, 1]")
        if key.endswith(".threshold") and not (v > 0).all():
            raise error(f"{source}: {key} is {v.ravel()[:3].tolist()}; a threshold is > 0")


def first_non_finite(tree, prefix=""):
    """The name of the first array in a (nested) dict/list of arrays that holds
    a NaN or inf, or None.  One reduction per array, read back to the host."""
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, (list, tuple)):
        items = enumerate(tree)
    elif hasattr(tree, "dtype") and np.issubdtype(tree.dtype, np.floating):
        xp = array_module(tree)
        return None if bool(to_host(xp.isfinite(tree).all())) else prefix
    else:
        return None
    for key, value in items:
        bad = first_non_finite(value, f"{prefix}/{key}" if prefix else str(key))
        if bad is not None:
            return bad
    return None


def data_conflicts(recorded: dict, wanted: dict) -> list[str]:
    """``"field: recorded vs wanted"`` for each identity field on which a
    requested data set (``wanted``, the fields a user asked for) differs from
    the one a model was trained on; an empty list when they agree."""
    return [f"{key} {recorded.get(key)!r} in the checkpoint, {wanted[key]!r} asked for"
            for key in DATA_IDENTITY if key in wanted and wanted[key] != recorded.get(key)]
