"""Figures of a DIET network: rasters, membrane traces, spike rates, leak and
threshold trajectories, surrogate shapes.

Every function draws on matplotlib's object interface (a ``Figure`` with an Agg
canvas, no pyplot state), returns the Figure, and saves it as a PNG when given
``path`` (refusing to replace an existing file unless ``overwrite=True``).
Functions that draw one panel also accept ``ax=`` to draw into an existing
axes (a lesson's pyplot figure, say); those that draw several accept ``fig=``.

The probe records come from :func:`diet_np.probe.probe_network` (host arrays);
the names follow Eq. 2-5: u^t before the reset, m^t after it, v the threshold.
"""
from __future__ import annotations

import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, MaxNLocator, NullLocator

from .records import _layer_panel
from .surrogates import SURROGATES, get_surrogate


# -- figures and files ------------------------------------------------------
def new_figure(width, height) -> Figure:
    """A Figure with its own Agg canvas and constrained layout."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path, overwrite=False, dpi=110):
    """Write ``fig`` to ``path`` as PNG; an existing file is an error unless
    ``overwrite`` (the file is created exclusively, so it is never replaced by
    accident).  Returns the path."""
    path = os.fspath(path)
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb" if overwrite else "xb") as f:
        fig.savefig(f, format="png", dpi=dpi)
    return path


def _finish(fig, path, overwrite):
    if path is not None:
        save_figure(fig, path, overwrite)
    return fig


def _one_axes(ax, width, height):
    if ax is not None:
        return ax.figure, ax
    fig = new_figure(width, height)
    return fig, fig.add_subplot()


def _integer_steps(ax, T):
    ax.set_xlim(0.5, T + 0.5)
    if T <= 12:
        ax.set_xticks(range(1, T + 1))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("time step t")


# -- which neurons to show ---------------------------------------------------
def _firing_first(counts, k, rng):
    """``k`` indices into ``counts`` drawn at random from the firing neurons, topped up
    with silent ones if fewer fire; sorted from most to least active."""
    firing, silent = np.flatnonzero(counts > 0), np.flatnonzero(counts == 0)
    pick = rng.choice(firing, min(k, len(firing)), replace=False)
    pick = np.concatenate([pick, rng.choice(silent, min(k - len(pick), len(silent)),
                                            replace=False)]).astype(int)
    return pick[np.lexsort((pick, -counts[pick]))]


def select_neurons(counts, n=64, channels=8, seed=0):
    """Neurons of one image to show: ``(flat indices, row labels)``.

    ``counts``: spikes per neuron of one image, shaped like the layer's neurons.
    A flat layer gives ``n`` neurons drawn at random (seeded) from those that
    fire, topped up with silent ones.  A conv layer (C, H, W) gives
    ``channels`` channels spread evenly over the firing ones, from the most to
    the least active, and in each ``n // channels`` positions drawn the same
    way: rows are grouped by channel, labelled ``"ch c"``.  Rows go from most
    to least active (within a group).
    """
    counts = np.asarray(counts)
    rng = np.random.default_rng(seed)
    if counts.ndim == 1:
        pick = _firing_first(counts, min(n, counts.size), rng)
        return pick, [None] * len(pick)
    if counts.ndim != 3:
        raise ValueError(f"expected a flat or a (C, H, W) layer; got neuron shape {counts.shape}")
    c, h, w = counts.shape
    per_channel = counts.reshape(c, -1).sum(axis=1)
    order = np.argsort(-per_channel, kind="stable")         # most active first
    firing = max(int((per_channel > 0).sum()), min(channels, c))
    chosen = order[np.unique(np.linspace(0, firing - 1, min(channels, c)).round().astype(int))]
    per = max(1, min(n // len(chosen), h * w))
    rows, labels = [], []
    for ch in sorted(chosen):
        rows.extend(ch * h * w + _firing_first(counts[ch].reshape(-1), per, rng))
        labels.extend([f"ch {ch}"] * per)
    return np.array(rows), labels


# -- probes: rasters and traces ---------------------------------------------
def raster(record, image=0, neurons=64, channels=8, seed=0, ax=None, path=None,
           overwrite=False):
    """Spike raster of one layer for one image: neurons (rows) x time steps.

    ``record`` is a :class:`diet_np.probe.LayerRecord` with spikes.  ``neurons``
    is a count (rows chosen by :func:`select_neurons`) or a list of flat neuron
    indices, shown in that order.
    """
    spikes = np.asarray(record.spikes[:, image])               # (T, ...) of one image
    T = spikes.shape[0]
    counts = spikes.sum(axis=0)
    if np.isscalar(neurons):
        rows, labels = select_neurons(counts, neurons, channels, seed)
    else:
        rows, labels = np.asarray(neurons), [None] * len(neurons)
    grid = spikes.reshape(T, -1)[:, rows].T                     # (rows, T)
    fig, ax = _one_axes(ax, 7.0, 5.5)
    ax.imshow(grid, aspect="auto", cmap="Greys", vmin=0, vmax=1, interpolation="nearest",
              extent=(0.5, T + 0.5, len(rows) - 0.5, -0.5))
    _integer_steps(ax, T)
    ax.grid(False)
    total = counts.size
    shown_firing = int((counts.reshape(-1)[rows] > 0).sum())
    if labels[0] is None:
        ax.set_ylabel(f"neuron ({shown_firing} firing, {len(rows) - shown_firing} silent "
                      f"of {total})")
    else:
        starts = [i for i in range(len(labels)) if i == 0 or labels[i] != labels[i - 1]]
        ends = starts[1:] + [len(labels)]
        for s in starts[1:]:
            ax.axhline(s - 0.5, color="C0", lw=0.8)
        ax.set_yticks([(s + e - 1) / 2 for s, e in zip(starts, ends)])
        ax.set_yticklabels([labels[s] for s in starts])
        ax.set_ylabel(f"channel ({ends[0] - starts[0]} positions each)")
    rate = float(counts.mean())
    ax.set_title(f"{record.name}: spikes of image {image} "
                 f"({rate:.2f} per neuron over T={T}, all {total} neurons)", fontsize=10)
    return _finish(fig, path, overwrite)


def _trace_neurons(counts, u, n):
    """``n - 1`` neurons spread from the most to the least active firing one, and
    the silent neuron that came closest to its threshold (largest u)."""
    firing = np.flatnonzero(counts > 0)
    firing = firing[np.argsort(-counts[firing], kind="stable")]
    picks = firing[np.unique(np.linspace(0, len(firing) - 1, min(n - 1, len(firing)))
                             .round().astype(int))] if len(firing) else firing
    silent = np.flatnonzero(counts == 0)
    closest = silent[np.argsort(-u.max(axis=0)[silent], kind="stable")][:n - len(picks)]
    return np.concatenate([picks, closest]).astype(int)


def membrane_traces(record, image=0, neurons=4, fig=None, path=None, overwrite=False):
    """Membrane potential of a few neurons of one layer for one image (Eq. 2-5).

    Each neuron gets a row: the potential rises to u^t (Eq. 2) and, at a spike
    (a star), drops by v to m^t (Eq. 5); the dashed line is the threshold v, the
    grey steps the input current I^t.  ``neurons`` is a count (firing neurons
    from the most to the least active, and the silent one closest to firing) or
    a list of flat neuron indices.
    """
    if record.u is None or record.m is None or record.spikes is None:
        raise ValueError("membrane_traces needs a record with u, m and spikes")
    u = np.asarray(record.u[:, image]).reshape(record.u.shape[0], -1)
    m = np.asarray(record.m[:, image]).reshape(u.shape)
    spikes = np.asarray(record.spikes[:, image]).reshape(u.shape)
    current = None if record.current is None else \
        np.asarray(record.current[:, image]).reshape(u.shape)
    T = u.shape[0]
    picked = _trace_neurons(spikes.sum(axis=0), u, neurons) if np.isscalar(neurons) else \
        np.asarray(neurons)
    fig = fig or new_figure(8.0, 1.2 + 1.6 * len(picked))
    axes = fig.subplots(len(picked), 1, sharex=True, squeeze=False)[:, 0]
    steps = np.arange(1, T + 1)
    for ax, j in zip(axes, picked):
        x = np.concatenate([[0], np.repeat(steps, 2)])
        y = np.concatenate([[0.0], np.stack([u[:, j], m[:, j]], axis=1).reshape(-1)])
        ax.plot(x, y, color="C0", lw=1.2, label="potential: u^t, then m^t after a reset")
        if current is not None:
            ax.stairs(current[:, j], np.arange(0.5, T + 1), color="0.6", lw=1,
                      label="input current I^t")
        fired = spikes[:, j]
        n_fired = int(fired.sum())
        ax.plot(steps[fired], u[fired, j], "*", color="C3", ms=8, label="spike o^t = 1")
        ax.axhline(record.threshold, color="C3", ls="--", lw=1,
                   label=f"threshold v = {record.threshold:.3g}")
        ax.set_ylabel("potential")
        ax.set_title(f"neuron {j}: {n_fired} spike{'' if n_fired == 1 else 's'}", fontsize=9, loc="left")
    axes[0].legend(fontsize=8, loc="lower left", bbox_to_anchor=(0.0, 1.15), ncol=2,
                   frameon=False)
    _integer_steps(axes[-1], T)
    axes[-1].set_xlim(0, T + 0.5)
    fig.suptitle(f"{record.name}: membrane potential, image {image} "
                 f"(leak {record.leak:.3g})", fontsize=11)
    return _finish(fig, path, overwrite)


# -- rates ---------------------------------------------------------------------
def spike_rate_bars(rates, neurons=None, T=None, ax=None, path=None, overwrite=False):
    """Bars of each layer's spike rate (spikes per neuron over all T steps).

    ``rates``: ``{layer: rate}`` (``Evaluation.spike_rates`` or from a probe);
    ``neurons``: ``{layer: neurons per image}`` (``net.neurons``) adds the
    neuron-weighted network average beside the plain mean over layers.
    """
    names = list(rates)
    values = np.array([rates[n] for n in names], dtype=float)
    fig, ax = _one_axes(ax, max(5.0, 0.5 * len(names) + 2.5), 4.0)
    bars = ax.bar(range(len(names)), values, color="C0")
    ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=45 if len(names) > 6 else 0, ha="right"
                       if len(names) > 6 else "center")
    ax.axhline(values.mean(), color="k", ls=":", lw=1,
               label=f"mean over layers {values.mean():.3f}")
    if neurons is not None:
        counts = np.array([neurons[n] for n in names], dtype=float)
        weighted = float((values * counts).sum() / counts.sum())
        ax.axhline(weighted, color="C3", ls="--", lw=1,
                   label=f"network average (per neuron) {weighted:.3f}")
    ax.set_ylabel("spikes per neuron" + (f" over T={T}" if T else ""))
    ax.set_ylim(0, 1.3 * max(values.max(), 1e-9))
    ax.set_title("Spike rate of each layer")
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(alpha=0.3, axis="y")
    return _finish(fig, path, overwrite)


def rate_histogram(counts, T, fig=None, path=None, overwrite=False):
    """Per layer, the fraction of neurons that fired k times in T steps (log scale).

    ``counts``: ``{layer: spikes per neuron}`` (any shape, e.g. a probe's
    ``record.spike_counts()`` over a batch).  One small panel per layer; above
    30 steps the counts are grouped into about 30 bins.
    """
    names = list(counts)
    cols = min(4, len(names))
    rows = -(-len(names) // cols)
    fig = fig or new_figure(3.0 * cols, 2.3 * rows + 0.4)
    axes = fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False).ravel()
    smallest = min(np.asarray(counts[n]).size for n in names)
    edges = np.arange(-0.5, T + 1.5) if T <= 30 else np.linspace(-0.5, T + 0.5, 31)
    for ax, name in zip(axes, names):
        c = np.asarray(counts[name]).reshape(-1)
        hist, _ = np.histogram(c, bins=edges)
        ax.stairs(hist / c.size, edges, fill=True, color="C0", alpha=0.8)
        ax.set_yscale("log")
        ax.set_ylim(0.5 / smallest, 1.5)
        ax.yaxis.set_major_locator(LogLocator(numticks=5))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.set_title(f"{name}: {100 * np.mean(c == 0):.0f}% silent, mean {c.mean():.2f}",
                     fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    for ax in axes[(rows - 1) * cols:]:
        ax.set_xlabel(f"spikes per neuron in T={T} steps")
    for ax in axes[::cols]:
        ax.set_ylabel("fraction of neurons")
    fig.suptitle("How often each neuron fires", fontsize=11)
    return _finish(fig, path, overwrite)


# -- training logs ---------------------------------------------------------------
def leak_threshold_trajectories(records, fig=None, path=None, overwrite=False):
    """Each spiking layer's leak lambda_l and threshold v_l over the epochs of a run.

    ``records``: the per-epoch dicts of a ``log.jsonl``
    (:meth:`diet_np.records.RunLog.read`), which DIET fine-tuning logs with
    ``leaks`` and ``thresholds``.
    """
    if not any(r.get("leaks") or r.get("thresholds") for r in records):
        raise ValueError("the log holds no 'leaks' or 'thresholds' (an ANN run, or an empty "
                         "log): nothing to draw")
    layers = {n for r in records for n in (r.get("leaks") or {})}
    fig = fig or new_figure(12.0 if len(layers) <= 6 else 15.0, 4.2)   # room for legends
    ax1, ax2 = fig.subplots(1, 2)
    _layer_panel(ax1, records, "leaks", "Leak per layer (lambda_l)", "leak")
    _layer_panel(ax2, records, "thresholds", "Threshold per layer (v_l)", "threshold")
    for ax in (ax1, ax2):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return _finish(fig, path, overwrite)


# -- surrogates -------------------------------------------------------------------
def surrogate_shapes(surrogates=None, fig=None, path=None, overwrite=False):
    """The surrogate gradients sigma'(z) and their primitives over z = u / v - 1.

    ``surrogates``: instances or names (default: every one in
    :data:`diet_np.surrogates.SURROGATES` with its default parameters; Eq. 8's
    triangle first).
    """
    chosen = [get_surrogate(s) for s in (surrogates or SURROGATES)]
    z = np.linspace(-3.0, 3.0, 601)
    fig = fig or new_figure(11.0, 3.8)
    ax1, ax2 = fig.subplots(1, 2)
    for i, s in enumerate(chosen):
        label = s.name + (" (Eq. 8)" if s.name == "triangle" else "")
        ax1.plot(z, s.grad(z), color=f"C{i}", lw=2, label=label)
        ax2.plot(z, s.primitive(z), color=f"C{i}", lw=2, label=label)
    ax1.set_title("surrogate gradient sigma'(z), used for dH/dz")
    ax2.set_title("its primitive (the smooth-mode forward)")
    for ax in (ax1, ax2):
        ax.axvline(0.0, color="0.5", lw=0.8, ls=":")
        ax.set_xlabel("z = u / v - 1  (Eq. 3)")
        ax.legend(fontsize=8, loc="upper left")
        ax.grid(alpha=0.3)
    return _finish(fig, path, overwrite)

