"""``diet-np inspect``: the figures of :mod:`diet_np.viz` for a trained SNN.

For a few test images (drawn with ``seed``) the SNN runs step by step under a
probe (:mod:`diet_np.probe`); the figures written to the output folder are

* ``raster_<layer>.png`` and ``traces_<layer>.png`` for the first, a middle and
  the last spiking layer (spikes of 64 neurons; u^t, m^t and v of four);
* ``spike_rates.png`` and ``rate_histogram.png`` over every spiking layer;
* ``leak_threshold.png`` from the ``log.jsonl`` beside the checkpoint, when it
  is there and logged leaks and thresholds (a DIET fine-tuning run);
* ``surrogates.png``, the surrogate gradients of Eq. 8 and the alternatives.

No existing file is replaced unless ``overwrite`` is set; the check names the
first such file before anything is computed.
"""
from __future__ import annotations

import os
import sys

import numpy as np

from . import viz
from .architectures import arch_name
from .backend import default_rng
from .data import iterate_batches
from .errors import ConfigError, RunError
from .limits import check_fits
from .outputs import check_output_folder, writing
from .probe import Probe
from .records import RunLog
from .training import LOG


def shown_layers(net) -> list:
    """The first, a middle and the last spiking layer (fewer for small networks)."""
    names = net.spiking_layers()
    return list(dict.fromkeys([names[0], names[len(names) // 2], names[-1]]))


def _log_records(checkpoint_path) -> list:
    """The records of the ``log.jsonl`` beside the checkpoint, for the one figure that
    uses them; a log that cannot be read is reported (its bad line named) and left out."""
    path = os.path.join(os.path.dirname(os.path.abspath(checkpoint_path)), LOG)
    try:
        records = RunLog(path).read()
    except (ValueError, OSError) as exc:
        print(f"note: {exc}; leak_threshold.png is left out", file=sys.stderr)
        return []
    for n, record in enumerate(records, start=1):
        if not _plottable(record):
            print(f"note: {path} record {n} is not an epoch record with numeric leaks and "
                  "thresholds; leak_threshold.png is left out", file=sys.stderr)
            return []
    return records


def _plottable(record) -> bool:
    if not isinstance(record, dict) or not isinstance(record.get("epoch"), int):
        return False
    maps = [record.get(k) or {} for k in ("leaks", "thresholds")]
    return all(isinstance(m, dict) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                           for v in m.values()) for m in maps)


def _planned(out, layers, log_records):
    files = [f"raster_{n}.png" for n in layers] + [f"traces_{n}.png" for n in layers]
    files += ["spike_rates.png", "rate_histogram.png", "surrogates.png"]
    if any(r.get("leaks") or r.get("thresholds") for r in log_records):
        files.append("leak_threshold.png")
    return [os.path.join(out, f) for f in files]


def inspect_checkpoint(net, params, model, dataset, out, *, xp=np, T=None, images=8, seed=0,
                       overwrite=False):
    """Write the figures for the SNN ``net``/``params`` read from ``model`` (a
    :class:`diet_np.model_file.ModelFile`, by :func:`diet_np.pipeline.load_model`)
    to the folder ``out``, probing ``images`` test images of ``dataset`` for T
    steps (default: the checkpoint's T).  Returns the paths written."""
    T = model.T if T is None else T
    check_output_folder(out)
    if images > len(dataset.x_test):
        raise ConfigError(f"--images {images} is more than the {len(dataset.x_test)} test images")
    check_fits(net, images, T, xp, training=False, what=f"--images {images}, --timesteps {T}")
    log_records = _log_records(model.path)
    layers = shown_layers(net)
    paths = _planned(out, layers, log_records)
    if not overwrite:
        existing = [p for p in paths if os.path.exists(p)]
        if existing:
            raise RunError(f"{existing[0]} exists; pass --overwrite to replace the figures "
                             f"in {out}")

    pick = np.sort(np.random.default_rng(seed).choice(len(dataset.x_test), images, replace=False))
    x, y = next(iterate_batches(dataset.x_test[pick], dataset.y_test[pick], images, xp,
                                shuffle=False, mean=dataset.mean, std=dataset.std))
    every_layer, detail = Probe(quantities=("spikes",)), Probe(layers)

    def record(name, t, step):
        every_layer(name, t, step)
        detail(name, t, step)

    logits, _ = net.forward_stepwise(params, x, T=T, mode="snn", record=record,
                                     rng=default_rng(xp, seed))    # rate-coded input spikes
    correct = int((logits.argmax(axis=1) == y).sum())
    print(f"{arch_name(model.arch)} at T={T}: {correct} of {images} probed test images classified correctly")
    counts = {n: r.spike_counts() for n, r in every_layer.records(net, params).items()}
    detailed = detail.records(net, params)

    figures = []
    for name in layers:
        figures.append(viz.raster(detailed[name], seed=seed))
    for name in layers:
        figures.append(viz.membrane_traces(detailed[name]))
    rates = {n: float(c.mean()) for n, c in counts.items()}
    figures.append(viz.spike_rate_bars(rates, net.neurons, T=T))
    figures.append(viz.rate_histogram(counts, T))
    figures.append(viz.surrogate_shapes())
    if len(paths) > len(figures):
        figures.append(viz.leak_threshold_trajectories(log_records))
    for fig, path in zip(figures, paths):
        with writing(path):
            viz.save_figure(fig, path, overwrite)
        print(f"[figure] {path}")
    return paths
