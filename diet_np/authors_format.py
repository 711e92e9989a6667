"""The authors' SNN files in and out: their leak and threshold keys, and the
``.pth`` dict their ``snn.py`` saves.

Their spiking models (``self_models/vgg_spiking.py``, ``resnet_spiking.py``)
keep one leak and one threshold per spiking layer in two ``nn.ParameterDict``
s, ``leak`` and ``threshold``, keyed ``l{i}`` and ``t{i}``: for a VGG, i is the
index of the layer's Conv2d in ``features``, or ``len(features)`` plus the index
of its Linear in ``classifier``; for ResNet20, i is 0, 3, 6 for the three
pre-process convolutions (their index in ``pre_process``), then
``len(pre_process)`` = 9 plus 2 (block - 1) for a block's first neuron and one
more for its second.  The state-dict keys are therefore ``threshold.t{i}`` and
``leak.l{i}``, 0-d tensors.  ``snn.py`` saves ``{"state_dict", "thresholds",
"leak", "timesteps", ...}``, the two lists in the order of i; a model whose
leaks and thresholds are not registered parameters has only the lists.

Reading: ``.pth`` through :func:`diet_np.pth_reader.read_pth` (no PyTorch, no
code from the file), ``.safetensors`` and ``.npz`` through
:func:`diet_np.weights.read_weights`.  Writing ``.pth`` needs PyTorch
(``torch.save``); ``.safetensors`` and ``.npz`` do not.
"""
from __future__ import annotations

import numbers
import os

import numpy as np

from .architectures import split_width
from .pth_reader import read_pth

SAVED_LISTS = ("thresholds", "leak")
PTH_SUFFIXES = (".pth", ".pt")


def neuron_names(arch, net) -> dict:
    """``{diet-np leak/threshold key: the authors' key}``, e.g. ``conv1.leak`` ->
    ``leak.l0``, ``fc1.threshold`` -> ``threshold.t39`` (VGG16)."""
    from .weights import authors_names
    index = {}
    if isinstance(arch, str) and split_width(arch)[0] == "resnet20":
        index = {f"pre{j}": 3 * (j - 1) for j in (1, 2, 3)}
        for block in range(1, 9):
            index[f"block{block}.conv1"] = 9 + 2 * (block - 1)
            index[f"block{block}.conv2"] = 10 + 2 * (block - 1)
    else:
        weights = authors_names(arch, net)
        n_features = 3 * sum(1 for k in weights if k.startswith("conv"))
        for key, name in weights.items():
            where, i, _ = name.split(".")
            if key != "out.weight":
                index[key[:-len(".weight")]] = int(i) + (n_features if where == "classifier"
                                                         else 0)
    names = {}
    for layer, i in index.items():
        names[f"{layer}.leak"], names[f"{layer}.threshold"] = f"leak.l{i}", f"threshold.t{i}"
    neurons = [k for k, s in net.specs.items() if s.kind != "weight"]
    assert sorted(names) == sorted(neurons), "the neuron key map and the network disagree"
    return {k: names[k] for k in neurons}       # the network's order: the order of i


def read_authors_file(path, error):
    """``(state dict, saved)`` of a ``.pth`` file: its named tensors and, from a dict
    as ``snn.py`` saves it, the ``state_dict`` entry's tensors and its
    ``thresholds``, ``leak`` and ``timesteps`` entries (``saved``; empty for a plain
    state dict).  ``error``: the exception class to raise."""
    obj = read_pth(path)
    saved = {}
    if isinstance(obj, dict) and "state_dict" in obj:
        saved = {k: obj[k] for k in (*SAVED_LISTS, "timesteps") if k in obj}
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj:
        raise error(f"{path}: holds {type(obj).__name__}, not a state dict (a dict of named "
                    "tensors) nor a dict with a 'state_dict' entry")
    bad = next((k for k, v in obj.items() if not isinstance(k, str)
                or not isinstance(v, np.ndarray)), None)
    if bad is not None:
        raise error(f"{path}: state-dict entry {bad!r} is {type(obj[bad]).__name__}, "
                    "not a named tensor")
    return dict(obj), saved


def _saved_values(path, saved, key, count, error):
    value = saved[key]
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        value = [value] * count                      # one leak for every layer
    if isinstance(value, np.ndarray):
        value = value.reshape(-1).tolist()
    if not isinstance(value, (list, tuple)) or len(value) != count or \
            not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value):
        raise error(f"{path}: its {key!r} entry is {str(value)[:60]}; expected {count} numbers "
                    f"(one per spiking layer)")
    return [np.asarray(v, np.float32) for v in value]


def authors_neurons(path, tensors, saved, arch, net, error) -> dict:
    """``{diet-np key: authors' key}`` of the leaks and thresholds the file holds:
    all of them (from its state dict, or from its ``thresholds`` and ``leak``
    lists, which are then added to ``tensors``), or none (an ANN).  Lists and
    state dict both present must agree."""
    names = neuron_names(arch, net)
    present = [k for k, name in names.items() if name in tensors]
    if present and len(present) != len(names):
        absent = next(k for k in names if names[k] not in tensors)
        raise error(f"{path} holds {len(present)} of the {len(names)} leaks and thresholds of "
                    f"{arch}; {names[absent]!r} (diet-np's {absent}) is missing (all or none)")
    if not all(k in saved for k in SAVED_LISTS):
        return names if present else {}
    count = len(names) // 2
    lists = {kind: _saved_values(path, saved, key, count, error)
             for kind, key in (("threshold", "thresholds"), ("leak", "leak"))}
    for kind, values in lists.items():
        for key, value in zip([k for k in names if k.endswith("." + kind)], values):
            if not present:
                tensors[names[key]] = value
            elif not np.isclose(float(tensors[names[key]]), float(value), rtol=1e-6, atol=0):
                raise error(f"{path}: its state dict's {names[key]!r} = "
                            f"{float(tensors[names[key]]):.6g} disagrees with its saved "
                            f"{kind} list ({float(value):.6g})")
    return names


def saved_timesteps(path, saved, error):
    """The ``timesteps`` entry of a ``snn.py`` dict, or None."""
    T = saved.get("timesteps")
    if T is None:
        return None
    if isinstance(T, bool) or not isinstance(T, numbers.Integral) or T < 1:
        raise error(f"{path}: its 'timesteps' entry {T!r} is not a positive integer")
    return int(T)


def authors_state(params, arch, net) -> dict:
    """The authors' state dict (their keys, NumPy arrays) of diet-np parameters:
    weights always, leaks and thresholds as 0-d ``leak.l{i}``/``threshold.t{i}``."""
    from .weights import authors_names
    names = {**authors_names(arch, net), **neuron_names(arch, net)}
    return {names[k]: np.asarray(params[k], np.float32) for k in net.specs}


def write_authors(path, params, net, model, metadata, error) -> None:
    """Write the authors' state dict of a checkpoint (``model``: its
    :class:`~diet_np.model_file.ModelFile`): ``.safetensors``/``.npz`` (keys without
    ``module.``, for ``model.load_state_dict``; ``metadata`` as a diet-np export's);
    ``.pth`` as ``snn.py`` saves it (``module.`` keys of ``nn.DataParallel``,
    ``thresholds``, ``leak`` and ``timesteps``; an ANN's without the neuron
    entries), through PyTorch."""
    from .checkpoint import atomic_write
    from .weights import write_tensors
    arch, kind = model.arch, model.kind
    state = authors_state(params, arch, net)
    if kind == "ann":
        state = {k: v for k, v in state.items() if not k.startswith(("leak.", "threshold."))}
    if not os.fspath(path).endswith(".pth"):
        write_tensors(path, state, metadata)
        return
    try:
        import torch
    except ImportError:
        raise error(f"{path}: writing a .pth file needs PyTorch (pip install torch); "
                    "without it write .safetensors or .npz") from None
    obj = {"state_dict": {f"module.{k}": torch.from_numpy(np.array(v)) for k, v in state.items()}}
    if kind == "snn":
        neurons = neuron_names(arch, net)
        obj["thresholds"] = [float(params[k]) for k in neurons if k.endswith(".threshold")]
        obj["leak"] = [float(params[k]) for k in neurons if k.endswith(".leak")]
        obj["timesteps"] = int(model.T)
    else:       # their snn.py prints an ANN file's accuracy; diet-np does not store one
        obj["accuracy"] = float("nan")
    atomic_write(path, lambda f: torch.save(obj, f))
