"""Per-epoch run logs (JSON lines) and training-curve plots.

A record is one JSON object per epoch with an integer ``"epoch"`` and any host
numbers, e.g. ``{"epoch": 3, "lr": 1e-4, "train_loss": 0.41, "test_loss": 0.52,
"train_acc": 0.86, "test_acc": 0.83, "leaks": {"conv1": 0.97, ...},
"thresholds": {"conv1": 1.8, ...}}``.  :func:`plot_curves` draws every key with
``loss`` in its name on one panel, every key with ``acc`` on another, and the
per-layer ``leaks`` / ``thresholds`` (lambda_l, v_l of Eq. 15) when present.
"""
from __future__ import annotations

import json
import math
import os

import numpy as np

from .checkpoint import atomic_write
from .errors import RunError


def _to_json(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray) and obj.ndim == 0:
        return obj.item()
    if hasattr(obj, "shape") and hasattr(obj, "dtype"):
        raise TypeError(f"a record holds an array of shape {tuple(obj.shape)}; log host "
                        "numbers (float(...)) instead")
    raise TypeError(f"a record holds a {type(obj).__name__}, which is not JSON-serialisable")


class RunLog:
    """Append-only JSON-lines log, one record per epoch.

    Resuming a run opens the same path and appends; call :meth:`truncate_after`
    with the checkpoint's epoch first so epochs after it are not logged twice.  A
    partial last line (left by a crash while writing) is ignored by :meth:`read`
    and removed before the next append.
    """

    def __init__(self, path):
        self.path = os.fspath(path)

    def append(self, record: dict) -> None:
        """Write one record as one line and flush it."""
        if not isinstance(record, dict):
            raise TypeError(f"a record must be a dict, got {type(record).__name__}")
        epoch = record.get("epoch")
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)):
            raise ValueError(f"a record needs an integer 'epoch', got {epoch!r}")
        line = json.dumps(record, default=_to_json)
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, exist_ok=True)
        self._drop_partial_tail()
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()

    def _lines(self) -> list[str]:
        """Complete lines of the file (a last line without newline is dropped)."""
        if not os.path.exists(self.path):
            return []
        with open(self.path, encoding="utf-8") as f:
            text = f.read()
        lines = text.split("\n")
        return lines[:-1]  # the piece after the last newline is '' or a partial line

    def _drop_partial_tail(self) -> None:
        if not os.path.exists(self.path):
            return
        with open(self.path, "rb+") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)

    def read(self) -> list[dict]:
        """All complete records, in file order."""
        records = []
        for i, line in enumerate(self._lines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise RunError(f"{self.path} line {i} is not valid JSON: {exc}") from exc
        return records

    def truncate_after(self, epoch: int) -> int:
        """Drop the records with ``"epoch" > epoch`` (atomically); return how many."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)):
            raise ValueError(f"epoch must be an integer, got {epoch!r}")
        if not os.path.exists(self.path):
            return 0
        records = self.read()
        keep = [r for r in records if r.get("epoch", -math.inf) <= epoch]
        self.rewrite(keep)
        return len(records) - len(keep)

    def rewrite(self, records: list[dict]) -> None:
        """Replace the whole log by ``records`` (atomically): a resumed run makes its
        log the history its checkpoint holds."""
        atomic_write(self.path, lambda f: f.writelines(
            json.dumps(r, default=_to_json) + "\n" for r in records), mode="w")


def _series(records, key):
    xs, ys = [], []
    for r in records:
        v = r.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            xs.append(r["epoch"])
            ys.append(v)
    return xs, ys


def _layer_panel(ax, records, field, title, ylabel):
    layers = []
    for r in records:
        for name in (r.get(field) or {}):
            if name not in layers:
                layers.append(name)
    import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    for i, name in enumerate(layers):
        xs = [r["epoch"] for r in records if name in (r.get(field) or {})]
        ys = [r[field][name] for r in records if name in (r.get(field) or {})]
        colour = cmap(i / max(len(layers) - 1, 1))
        ax.plot(xs, ys, marker="." if len(xs) < 30 else None, color=colour, label=name)
    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    if len(layers) > 6:  # many layers: keep the legend off the curves
        ax.legend(fontsize="x-small", ncol=1 + len(layers) // 12, loc="center left",
                  bbox_to_anchor=(1.01, 0.5))
    elif layers:
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3)


def plot_curves(records: list[dict], png_path) -> None:
    """Save loss, accuracy, learning-rate and (if logged) per-layer leak and
    threshold curves over epochs to ``png_path`` (matplotlib, Agg canvas)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError("plot_curves needs matplotlib (pip install matplotlib)") from exc
    records = [r for r in records if isinstance(r, dict) and "epoch" in r]
    if not records:
        raise ValueError("no records with an 'epoch' to plot")
    keys = []
    for r in records:
        keys.extend(k for k in r if k not in keys)
    loss_keys = [k for k in keys if "loss" in k and _series(records, k)[0]]
    acc_keys = [k for k in keys if "acc" in k and _series(records, k)[0]]
    from matplotlib.ticker import MaxNLocator
    panels = [("loss", loss_keys, "Loss", "cross-entropy (Eq. 7)"),
              ("acc", acc_keys, "Accuracy", "accuracy")]
    if _series(records, "lr")[0]:
        panels.append(("lr", ["lr"], "Learning rate", "lr"))
    if _series(records, "spike_rate")[0]:
        panels.append(("spike_rate", ["spike_rate"], "Network spike rate (test)",
                       "spikes per neuron over T"))
    for field, title, ylabel in (("leaks", "Leak per layer (lambda_l)", "leak"),
                                 ("thresholds", "Threshold per layer (v_l)", "threshold")):
        if any(isinstance(r.get(field), dict) and r[field] for r in records):
            panels.append((field, None, title, ylabel))

    ncols = 2
    nrows = math.ceil(len(panels) / ncols)
    fig = Figure(figsize=(6.0 * ncols, 4.0 * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (field, series_keys, title, ylabel) in zip(axes, panels):
        if series_keys is None:
            _layer_panel(ax, records, field, title, ylabel)
            continue
        for k in series_keys:
            xs, ys = _series(records, k)
            ax.plot(xs, ys, marker="." if len(xs) < 30 else None, label=k)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        lrs = _series(records, "lr")[1] if field == "lr" else []
        if len(set(lrs)) > 1 and all(y > 0 for y in lrs):
            ax.set_yscale("log")
        if len(series_keys) > 1:            # beside the panel, never over the curves
            ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
        elif not series_keys:
            ax.text(0.5, 0.5, f"no {title.lower()} logged", ha="center", va="center",
                    transform=ax.transAxes)
        ax.grid(alpha=0.3)
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    parent = os.path.dirname(os.path.abspath(os.fspath(png_path)))
    os.makedirs(parent, exist_ok=True)
    fig.savefig(png_path, dpi=100)
