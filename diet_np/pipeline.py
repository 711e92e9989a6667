"""The paper's pipeline as stages: ANN training, conversion, DIET fine-tuning, reports.

Each stage reads and writes checkpoints (:mod:`diet_np.checkpoint`), so the CLI
can run them one at a time and :func:`run_all` can chain them.
"""
from __future__ import annotations

import json
import os
import time

import numpy as np

from .architectures import build_network
from .backend import get_xp
from .checkpoint import CheckpointError, check_compatible, load_checkpoint, save_checkpoint
from .conversion import convert
from .data import iterate_batches, load_dataset
from .metrics import energy_table, energy_totals, format_energy_table, format_spike_rates
from .training import TrainConfig, checkpoint_meta, evaluate, fit


def load_data(name, root=None, download=True, **kw):
    """The data set by name; ``shapes`` takes ``n_train``/``n_test``/``seed``."""
    return load_dataset(name, root=root, download=download, **kw)


def load_model(path, xp, expect_kind=None, dataset=None):
    """Rebuild a network from a checkpoint and return ``(net, params, meta)``.

    Raises :class:`CheckpointError` when the checkpoint is of another kind, another
    data set's class count, or does not match its own architecture.
    """
    ckpt = load_checkpoint(path, xp)
    meta = ckpt.meta
    for key in ("arch", "num_classes", "input_shape", "kind"):
        if key not in meta:
            raise CheckpointError(f"{path}: not a diet-np model checkpoint (no {key!r} in its meta)")
    if expect_kind is not None and meta["kind"] not in expect_kind:
        raise CheckpointError(f"{path} holds a {meta['kind'].upper()} model; this step needs "
                              f"{' or '.join(k.upper() for k in expect_kind)}")
    if dataset is not None and dataset.num_classes != meta["num_classes"]:
        raise CheckpointError(f"{path} was trained for {meta['num_classes']} classes but "
                              f"{dataset.name} has {dataset.num_classes}")
    net = build_network(meta["arch"], meta["num_classes"], tuple(meta["input_shape"]))
    check_compatible(ckpt.params, net.param_shapes(), what=str(path))
    return net, ckpt.params, meta


def conversion_batch(dataset, n, xp, seed=0):
    """``n`` normalised training images (no augmentation) for the threshold search."""
    if n < 1:
        raise ValueError(f"the threshold search needs at least one image; got {n}")
    rng = np.random.default_rng(seed)
    x, _ = next(iterate_batches(dataset.x_train, dataset.y_train, min(n, len(dataset.x_train)),
                                xp, shuffle=True, rng=rng, mean=dataset.mean, std=dataset.std))
    return x


def train_ann(dataset, arch, cfg, run_dir, xp, resume=False, show_progress=True, seed=0):
    """Stage 1: train the ANN.  Returns ``(net, params, records)``."""
    net = build_network(arch, dataset.num_classes)
    params = net.init_params(seed, xp)
    records = fit(net, params, dataset, cfg, run_dir, arch=arch, xp=xp, resume=resume,
                  show_progress=show_progress)
    return net, params, records


def convert_model(net, ann_params, dataset, xp, *, T_find, scale, images, seed=0,
                  show_progress=True):
    """Stage 2: ANN -> SNN with per-layer 99.7th-percentile thresholds."""
    x = conversion_batch(dataset, images, xp, seed)
    return convert(net, ann_params, x, T_find=T_find, scale=scale, show_progress=show_progress)


def save_model(path, net, params, arch, dataset, kind, T, extra=None):
    """A model checkpoint without optimiser state (a converted SNN, say)."""
    cfg = TrainConfig(mode=kind, T=T, epochs=1)
    save_checkpoint(path, params, checkpoint_meta(net, arch, dataset, cfg, 0, extra))


def report(net, evaluation, title):
    """Markdown: accuracy, spike-rate table and energy table of an SNN evaluation."""
    rows = energy_table(net, evaluation.spike_rates)
    return "\n\n".join([f"### {title}", f"accuracy {evaluation.accuracy:.4f} at T={evaluation.T}",
                        format_spike_rates(net, evaluation.spike_rates), format_energy_table(rows)])


def run_all(dataset, arch, run_dir, ann_cfg, diet_cfg, *, device="cpu", T_find=100, scale=0.7,
            images=512, long_T=100, resume=False, show_progress=True):
    """ANN -> conversion -> DIET fine-tuning, with accuracy at each stage, spike rates
    and the energy table.  Writes ``summary.json`` and ``summary.md`` in ``run_dir``
    and returns the summary dict."""
    xp = get_xp(device)
    tic = time.perf_counter()
    os.makedirs(run_dir, exist_ok=True)
    net, ann_params, _ = train_ann(dataset, arch, ann_cfg, os.path.join(run_dir, "ann"), xp,
                                   resume, show_progress, ann_cfg.seed)
    ev = dict(xp=xp, batch_size=ann_cfg.eval_batch_size, show_progress=show_progress)
    test = (dataset.x_test, dataset.y_test, dataset)
    ann_eval = evaluate(net, ann_params, *test, T=1, mode="ann", desc="ANN test", **ev)
    print(f"ANN test accuracy: {ann_eval.accuracy:.4f}", flush=True)

    snn_params, found = convert_model(net, ann_params, dataset, xp, T_find=T_find, scale=scale,
                                      images=images, show_progress=show_progress)
    save_model(os.path.join(run_dir, "converted.npz"), net, snn_params, arch, dataset, "snn",
               diet_cfg.T, {"unscaled_thresholds": found, "scale": scale, "T_find": T_find})
    conv_short = evaluate(net, snn_params, *test, T=diet_cfg.T, mode="snn",
                          desc=f"converted T={diet_cfg.T}", **ev)
    # At long T the unscaled thresholds are the right ones (rates then approximate the
    # ANN's activations); the scaled ones trade that for speed at short T.
    unscaled = {k: (v / scale if k.endswith(".threshold") else v) for k, v in snn_params.items()}
    conv_long = evaluate(net, unscaled, *test, T=long_T, mode="snn",
                         desc=f"converted T={long_T}", **ev)
    print(f"converted SNN: T={diet_cfg.T} (thresholds x{scale}) {conv_short.accuracy:.4f}, "
          f"T={long_T} (unscaled) {conv_long.accuracy:.4f}", flush=True)

    fit(net, snn_params, dataset, diet_cfg, os.path.join(run_dir, "diet"), arch=arch, xp=xp,
        resume=resume, show_progress=show_progress)
    diet_eval = evaluate(net, snn_params, *test, T=diet_cfg.T, mode="snn",
                         desc=f"DIET T={diet_cfg.T}", **ev)
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
        f"| stage | T | test accuracy |", "| --- | ---: | ---: |",
        f"| ANN | 1 | {ann_eval.accuracy:.4f} |",
        f"| converted SNN, thresholds x{scale} | {diet_cfg.T} | {conv_short.accuracy:.4f} |",
        f"| converted SNN, unscaled thresholds | {long_T} | {conv_long.accuracy:.4f} |",
        f"| DIET-SNN | {diet_cfg.T} | {diet_eval.accuracy:.4f} |"])
    text = "\n\n".join([f"## {dataset.name} / {arch} on {device}", table,
                        report(net, diet_eval, f"DIET-SNN, T={diet_cfg.T}"),
                        f"wall time {seconds:.0f} s"])
    with open(os.path.join(run_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    with open(os.path.join(run_dir, "summary.md"), "w") as f:
        f.write(text + "\n")
    print(text, flush=True)
    return summary

