"""Figures the lessons draw, kept out of the lessons so that their cells are about the idea.

Each function draws on pyplot (the lessons' figures are shown inline in a notebook),
returns the Figure, and leaves saving to :func:`diet_np.lessons.common.save`.  Labels
use matplotlib's mathtext, so the symbols read as in the lessons' equations.
"""
from __future__ import annotations

import numpy as np

from .common import plt

VALUE, GRAD = "#1a7f37", "#c0392b"          # forward values green, gradients red (CS231n style)


def unrolled_neuron_graph(values, grads, steps=3):
    """Lesson 3's neuron unrolled over ``steps`` steps, with its numbers on every node.

    ``values`` and ``grads`` map ``"I", "u", "o", "m", "L"`` to per-step lists (forward
    values and gradients dL/dX, Python index t holding step t + 1) and ``"v"`` to the
    threshold (value) and its per-step terms of Eq. 14 (gradient).  Edges carry the
    local derivatives; the spike inside the reset is dashed grey (detached).
    """
    fig, ax = plt.subplots(figsize=(13, 7.5))
    ax.set_xlim(-0.9, 4.3 * steps - 0.3)
    ax.set_ylim(-1.0, 5.4)
    ax.axis("off")
    ax.grid(False)
    names = {"I": "I^{%d}", "u": "u^{%d}", "m": "m^{%d}", "o": "o^{%d}", "v": "v",
             "L": "c_{%d}\\,o^{%d}"}
    pos = {}
    for k in range(steps):
        x0 = 0.4 + 4.3 * k
        for key, xy in (("I", (x0, 4.4)), ("u", (x0, 3.0)), ("m", (x0 + 2.3, 3.0)),
                        ("o", (x0, 1.5)), ("v", (x0 + 2.3, 1.5)), ("L", (x0, 0.0))):
            pos[key, k] = xy
            label = names[key].replace("%d", str(k + 1))
            ax.text(*xy, f"${label}$", ha="center", va="center", fontsize=17,
                    bbox=dict(boxstyle="round,pad=0.35", fc="white",
                              ec=GRAD if key == "v" else "k", lw=1.4))
            value = values[key] if key == "v" else values[key][k]
            grad = grads[key][k]
            for number, colour, up in ((value, VALUE, 1), (grad, GRAD, -1)):
                ax.annotate(f"{number:.3f}", xy, xytext=(-34 if key == "L" else -24, 3 * up),
                            textcoords="offset points", color=colour, fontsize=13, ha="right",
                            va="bottom" if up > 0 else "top")

    def arrow(a, b, text, dx=0.0, dy=0.0, style="-", colour="k"):
        ax.annotate("", xy=pos[b], xytext=pos[a],
                    arrowprops=dict(arrowstyle="-|>", ls=style, color=colour, lw=1.6,
                                    shrinkA=20, shrinkB=20))
        mx, my = (pos[a][0] + pos[b][0]) / 2, (pos[a][1] + pos[b][1]) / 2
        ax.text(mx + dx, my + dy, text, fontsize=13, color=colour, ha="center", va="center")

    for k in range(steps):
        arrow(("I", k), ("u", k), "$1$", dx=0.2)
        arrow(("u", k), ("m", k), "$1$", dy=0.22)
        arrow(("u", k), ("o", k), r"$\sigma'(z)/v$", dx=0.55)
        arrow(("o", k), ("m", k), "$-v$ (detached)", dx=0.75, dy=-0.3, style="--",
              colour="0.5")
        arrow(("v", k), ("o", k), r"$-\sigma'(z)\,u/v^2$", dy=-0.3, colour=GRAD)
        arrow(("v", k), ("m", k), "$-o$", dx=0.3, style=":", colour=GRAD)
        arrow(("o", k), ("L", k), f"$c_{k + 1}$", dx=0.25)
        if k + 1 < steps:
            arrow(("m", k), ("u", k + 1), r"$\lambda$", dy=0.22)
    ax.text(-0.85, 5.35, "green: forward value    red: gradient $\\partial L/\\partial X$"
            "    edges: local derivatives", fontsize=13, va="top")
    ax.text(-0.85, -0.75, "the red $v$ is one number, drawn once per step: its gradient "
            "there is that step's term of Eq. 14", fontsize=12, color=GRAD)
    return fig


def tangent_check(v_scan, loss_scan, v0, loss0, slopes, ax):
    """A loss curve in one parameter with the tangent lines that ``slopes`` predict at v0."""
    ax.plot(v_scan, loss_scan, "k-", lw=2, label="smooth-mode loss $L(v)$")
    for (label, slope), style in zip(slopes.items(), ("C0--", "C3:", "C2-.")):
        ax.plot(v_scan, loss0 + slope * (v_scan - v0), style, lw=2,
                label=f"{label} ($\\partial L/\\partial v$ = {slope:+.3f})")
    ax.axvline(v0, color="0.5", lw=0.8)
    ax.set_xlabel("threshold $v$ ($w$ and $\\lambda$ fixed)")
    ax.set_ylabel("loss $L$")
    ax.legend(fontsize=9)


def step_bars(series, spikes, ax, ylabel):
    """Per-step terms side by side (``series``: label -> values over t = 1..T), with the
    steps that spiked marked above the bars."""
    T = len(spikes)
    steps = np.arange(1, T + 1)
    width = 0.8 / len(series)
    for j, (label, values) in enumerate(series.items()):
        ax.bar(steps + (j - (len(series) - 1) / 2) * width, values, width, label=label,
               color=f"C{[0, 3, 2][j]}")
    low, high = ax.get_ylim()
    ax.set_ylim(low, high + 0.15 * (high - low))
    for t, o in zip(steps, spikes):
        if o:
            ax.text(t, high + 0.07 * (high - low), "spike", ha="center", fontsize=9)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(steps)
    ax.set_xlabel("time step $t$")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=9, loc="lower left")


def lines(ax, x, series, xlabel, ylabel, title, styles=None, legend=True):
    """One line per entry of ``series`` (label -> y values over ``x``), labelled axes.

    ``styles`` maps a label to matplotlib keyword arguments (colour, line style, marker).
    """
    for k, (label, y) in enumerate(series.items()):
        ax.plot(x, y, **{"color": f"C{k}", **(styles or {}).get(label, {})}, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if legend:
        ax.legend(fontsize=8)


def membrane_trace(current, u, m, spikes, threshold, title):
    """Input current, membrane potential (u^t, and m^t after each reset) and spikes of
    one neuron over time: lesson 1's trace."""
    fig, axes = plt.subplots(3, 1, figsize=(8, 6), sharex=True,
                             gridspec_kw={"height_ratios": [1, 2.5, 0.8]})
    steps = np.arange(1, len(current) + 1)
    axes[0].step(steps, current, where="mid", color="C2")
    axes[0].set_ylabel("input $I^t$")
    axes[0].set_title(title)
    # the path the potential takes: up to u^t by integration, down to m^t by the reset
    axes[1].plot(np.repeat(steps, 2), np.column_stack([u, m]).ravel(), "-", color="0.6", lw=1)
    axes[1].plot(steps, u, ".", color="C0", label="$u^t$ (after integration, Eq. 2)")
    axes[1].plot(steps[spikes], m[spikes], "v", color="C3", ms=5,
                 label="$m^t = u^t - v$ after a spike (Eq. 5)")
    axes[1].axhline(threshold, color="k", ls="--", lw=1, label="threshold $v$")
    axes[1].set_ylabel("membrane potential")
    axes[1].legend(loc="upper left", fontsize=8)
    axes[2].vlines(steps[spikes], 0, 1, color="C3")
    axes[2].set_yticks([])
    axes[2].set_ylabel("spikes $o^t$")
    axes[2].set_xlabel("time step $t$")
    return fig


def loss_landscape(ax, xs, ys, loss, path, start, goal, xlabel, ylabel, title):
    """log10 of a loss over a grid (rows: ``ys``, columns: ``xs``), with an optimiser's
    ``path`` (x values, y values), its ``start`` and the ``goal`` point on top."""
    mesh = ax.pcolormesh(xs, ys, np.log10(loss + 1e-2), shading="auto", cmap="viridis")
    ax.figure.colorbar(mesh, ax=ax, label=r"$\log_{10}(\mathrm{loss} + 0.01)$")
    ax.plot(*path, "w.-", ms=2, lw=1, label="Adam path")
    ax.plot(*start, "wo", ms=7, label="start")
    ax.plot(*goal, "r*", ms=14, label=f"teacher {goal}")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend(fontsize=8, loc="upper left")


def count_histograms(ax, counts, T, xlabel):
    """Histograms of integer spike counts 0..T, one per entry of ``counts`` (label ->
    array); the first is drawn filled grey, the others as outlines."""
    bins = np.arange(T + 2) - 0.5
    for k, (label, c) in enumerate(counts.items()):
        style = (dict(histtype="stepfilled", color="0.8") if k == 0 else
                 dict(histtype="step", lw=2, ls="-" if k == 1 else "--", color=f"C{k + 1}"))
        ax.hist(np.ravel(c), bins=bins, label=label, **style)
    ax.set(xlabel=xlabel, ylabel="number of (input, neuron) pairs", title="Spike counts")
    ax.legend(fontsize=8)


def grouped_bars(ax, categories, series, ylabel, title, colours=None, rotation=0):
    """Bars grouped by category (a layer, say), one bar per entry of ``series`` (label ->
    values in the order of ``categories``), side by side."""
    pos = np.arange(len(categories))
    width = 0.8 / len(series)
    for j, (label, values) in enumerate(series.items()):
        ax.bar(pos + (j - (len(series) - 1) / 2) * width, values, width, label=label,
               color=(colours or {}).get(label, f"C{j}"))
    ax.set_xticks(pos)
    ax.set_xticklabels(categories, rotation=rotation)
    ax.set(ylabel=ylabel, title=title)
    ax.legend(fontsize=9)
