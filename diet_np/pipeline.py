"""The paper's pipeline as stages: ANN training, conversion, DIET fine-tuning, reports.

Each stage reads and writes model checkpoints (:mod:`diet_np.model_file`), so
the CLI can run them one at a time and :func:`run_all` can chain them.
"""
from __future__ import annotations

import json
import os
import time

import numpy as np

from .architectures import build_network
from .backend import get_xp
from .checkpoint import check_compatible
from .conversion import convert
from .data import DataError, Dataset, iterate_batches, load_dataset
from .errors import ChanceLevelError, chance_level
from .metrics import energy_table, energy_totals, format_energy_table, format_spike_rates
from .model_file import data_record, read_model, write_model
from .outputs import check_output_file, check_run_dir, writing
from .training import evaluate, fit

#: The embedded data set's default size (``shapes``).
SHAPES_DEFAULT = {"n_train": 5000, "n_test": 1000}


def load_data(name, root=None, download=True, n_train=None, n_test=None, seed=0,
              show_progress=True):
    """The data set by name, cut to its first ``n_train`` / ``n_test`` images when given.

    ``shapes`` is drawn from ``seed`` (default 5,000 / 1,000 images); CIFAR is
    downloaded when missing and allowed (a progress bar unless ``show_progress``
    is False); for CIFAR,
    ``n_train`` / ``n_test`` take the first images of the official files (their
    order is already random), and the normalisation comes from that subset; an
    image folder (``imagenet``, at ``root``) takes its first images taken class by
    class in turn, normalised with ImageNet's mean and std.
    """
    if name == "imagenet":
        return load_dataset(name, root=root, n_train=n_train, n_test=n_test)
    if name == "shapes":
        return load_dataset(name, n_train=n_train or SHAPES_DEFAULT["n_train"],
                            n_test=n_test or SHAPES_DEFAULT["n_test"], seed=seed)
    dataset = load_dataset(name, root=root, download=download, show_progress=show_progress)
    if n_train in (None, len(dataset.x_train)) and n_test in (None, len(dataset.x_test)):
        return dataset
    sizes = {"training": (n_train, len(dataset.x_train)), "test": (n_test, len(dataset.x_test))}
    for split, (n, have) in sizes.items():
        if n is not None and n > have:
            raise DataError(f"{name} has {have} {split} images here; {n} were asked for")
    n_train = n_train or len(dataset.x_train)
    n_test = n_test or len(dataset.x_test)
    note = f"{dataset.note}; first {n_train} training and {n_test} test images".lstrip("; ")
    return Dataset.from_arrays(name, dataset.x_train[:n_train], dataset.y_train[:n_train],
                               dataset.x_test[:n_test], dataset.y_test[:n_test],
                               dataset.class_names, note=note)


def load_model(path, xp, expect_kind=None):
    """Rebuild a network from a model checkpoint: ``(net, params, model)``, where
    ``model`` is the :class:`diet_np.model_file.ModelFile` (its data record,
    history, origin).  Raises :class:`~diet_np.checkpoint.CheckpointError` for a
    checkpoint of another kind, with non-finite parameters, or that does not fit
    its own architecture."""
    model = read_model(path, xp, expect_kind)
    data = model.data
    net = build_network(model.arch, data["num_classes"], tuple(data["input_shape"]))
    check_compatible(model.params, net.param_shapes(), what=str(path))
    net.encoding = model.encoding
    return net, model.params, model


def use_model_normalisation(dataset, model) -> None:
    """Normalise ``dataset`` as ``model`` was trained (its recorded mean and std)."""
    dataset.mean = np.asarray(model.data["mean"], np.float32)
    dataset.std = np.asarray(model.data["std"], np.float32)


def model_dataset(model, show_progress=False):
    """The data set ``model`` records (name, subset, generator seed), normalised as it
    was trained (:func:`use_model_normalisation`)."""
    data = model.data
    dataset = load_data(data["name"], root=data.get("folder"), n_train=data["n_train"],
                        n_test=data["n_test"],
                        seed=data["seed"] or 0, show_progress=show_progress)
    use_model_normalisation(dataset, model)
    return dataset


def conversion_batch(dataset, n, xp, seed=0):
    """``n`` normalised training images (no augmentation) for the threshold search."""
    if n < 1:
        raise ValueError(f"the threshold search needs at least one image; got {n}")
    rng = np.random.default_rng(seed)
    x, _ = next(iterate_batches(dataset.x_train, dataset.y_train, min(n, len(dataset.x_train)),
                                xp, shuffle=True, rng=rng, mean=dataset.mean, std=dataset.std))
    return x


def convert_model(net, ann_params, dataset, xp, *, T_find, scale, images, seed=0,
                  show_progress=True):
    """Stage 2: ANN -> SNN with per-layer 99.7th-percentile thresholds, searched
    under the network's input encoding (``net.encoding``)."""
    x = conversion_batch(dataset, images, xp, seed)
    return convert(net, ann_params, x, T_find=T_find, scale=scale, show_progress=show_progress)


def save_model(path, params, *, arch, kind, T, data, origin=None) -> None:
    """A model checkpoint without a training run (a converted SNN, an imported ANN)."""
    with writing(path):
        write_model(path, params, arch=arch, kind=kind, T=T, data=data, origin=origin)


def require_learned(evaluation, num_classes, what) -> None:
    """Stop with :class:`ChanceLevelError` when ``evaluation`` is at chance level:
    such a network's spike rates and energy are not results."""
    if evaluation.at_chance(num_classes):
        raise ChanceLevelError(
            f"{what} test accuracy {evaluation.accuracy:.4f} is at chance level (under "
            f"{chance_level(num_classes):.3f} for {num_classes} classes): the network did not "
            "learn, so the pipeline stops here")


def report(net, evaluation, title):
    """Markdown: accuracy, spike-rate table and energy table of an SNN evaluation."""
    rows = energy_table(net, evaluation.spike_rates)
    top5 = "" if evaluation.top5 is None else f", top-5 {evaluation.top5:.4f}"
    return "\n\n".join([f"### {title}",
                        f"accuracy {evaluation.accuracy:.4f}{top5} at T={evaluation.T}",
                        format_spike_rates(net, evaluation.spike_rates), format_energy_table(rows)])


def run_all(dataset, arch, run_dir, ann_cfg, diet_cfg, *, device="cpu", T_find=100, scale=0.7,
            images=512, long_T=100, resume=False, overwrite=False, show_progress=True,
            engine=None, init="spec"):
    """ANN -> conversion -> DIET fine-tuning, with accuracy at each stage, spike rates
    and the energy table.  Writes ``ann/``, ``converted.npz``, ``diet/``,
    ``summary.json`` and ``summary.md`` in ``run_dir`` and returns the summary dict.

    Every output path is checked before training starts; an earlier run there is
    continued only with ``resume`` (finished stages are loaded, not retrained)
    and replaced only with ``overwrite``.  A stage whose network stays at chance
    level stops the pipeline (:class:`ChanceLevelError`).  ``engine``: the
    network's engine (:mod:`diet_np.engine`; None: the fast one); ``init``: the ANN's
    initialisation (:meth:`~diet_np.network.Network.init_params`).
    """
    xp = get_xp(device)
    tic = time.perf_counter()
    dirs = {stage: os.path.join(run_dir, stage) for stage in ("ann", "diet")}
    for path in dirs.values():
        check_run_dir(path, resume=resume, overwrite=overwrite)
    outputs = {name: os.path.join(run_dir, name)
               for name in ("converted.npz", "summary.json", "summary.md")}
    for path in outputs.values():
        check_output_file(path, overwrite=resume or overwrite)
    net = build_network(arch, dataset.num_classes)
    net.engine = engine
    ann_params = net.init_params(ann_cfg.seed, xp, init=init)
    fit(net, ann_params, dataset, ann_cfg, dirs["ann"], arch=arch, xp=xp, resume=resume,
        overwrite=overwrite,
        show_progress=show_progress, finished="load")
    ev = dict(xp=xp, batch_size=ann_cfg.eval_batch_size, show_progress=show_progress)
    test = (dataset.x_test, dataset.y_test, dataset)
    ann_eval = evaluate(net, ann_params, *test, T=1, mode="ann", desc="ANN test", **ev)
    print(f"ANN test accuracy: {ann_eval.accuracy:.4f}", flush=True)
    require_learned(ann_eval, net.num_classes, "ANN")

    snn_params, found = convert_model(net, ann_params, dataset, xp, T_find=T_find, scale=scale,
                                      images=images, show_progress=show_progress)
    conversion = {"converted_from": os.path.join(dirs["ann"], "checkpoint.npz"),
                  "unscaled_thresholds": found, "scale": scale, "T_find": T_find,
                  "images": images}
    save_model(outputs["converted.npz"], snn_params, arch=arch, kind="snn", T=diet_cfg.T,
               data=data_record(dataset), origin=conversion)
    conv_short = evaluate(net, snn_params, *test, T=diet_cfg.T, mode="snn",
                          desc=f"converted T={diet_cfg.T}", **ev)
    # At long T the unscaled thresholds are the right ones (rates then approximate the
    # ANN's activations); the scaled ones trade that for speed at short T.
    unscaled = {k: (v / scale if k.endswith(".threshold") else v) for k, v in snn_params.items()}
    conv_long = evaluate(net, unscaled, *test, T=long_T, mode="snn",
                         desc=f"converted T={long_T}", **ev)
    print(f"converted SNN: T={diet_cfg.T} (thresholds x{scale}) {conv_short.accuracy:.4f}, "
          f"T={long_T} (unscaled) {conv_long.accuracy:.4f}", flush=True)

    fit(net, snn_params, dataset, diet_cfg, dirs["diet"], arch=arch, xp=xp, resume=resume,
        overwrite=overwrite,
        show_progress=show_progress, origin=conversion, finished="load")
    diet_eval = evaluate(net, snn_params, *test, T=diet_cfg.T, mode="snn",
                         desc=f"DIET T={diet_cfg.T}", **ev)
    require_learned(diet_eval, net.num_classes, "DIET-SNN")
    seconds = time.perf_counter() - tic
    totals = energy_totals(energy_table(net, diet_eval.spike_rates))
    summary = {
        "dataset": dataset.name, "arch": arch, "device": device, "seconds": seconds,
        "ann_accuracy": ann_eval.accuracy,
        "converted": {"T": diet_cfg.T, "accuracy": conv_short.accuracy,
                      "long_T": long_T, "long_T_accuracy": conv_long.accuracy,
                      "thresholds_unscaled": found, "scale": scale},
        "diet": diet_eval.summary(net), "energy": totals,
        "converted_spike_rates": conv_short.spike_rates,
    }
    table = "\n".join([
        "| stage | T | test accuracy |", "| --- | ---: | ---: |",
        f"| ANN | 1 | {ann_eval.accuracy:.4f} |",
        f"| converted SNN, thresholds x{scale} | {diet_cfg.T} | {conv_short.accuracy:.4f} |",
        f"| converted SNN, unscaled thresholds | {long_T} | {conv_long.accuracy:.4f} |",
        f"| DIET-SNN | {diet_cfg.T} | {diet_eval.accuracy:.4f} |"])
    text = "\n\n".join([f"## {dataset.name} / {arch} on {device}", table,
                        report(net, diet_eval, f"DIET-SNN, T={diet_cfg.T}"),
                        f"wall time {seconds:.0f} s"])
    with writing(outputs["summary.json"]), open(outputs["summary.json"], "w") as f:
        json.dump(summary, f, indent=2)
    with writing(outputs["summary.md"]), open(outputs["summary.md"], "w") as f:
        f.write(text + "\n")
    print(text, flush=True)
    return summary

