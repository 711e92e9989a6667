"""Spike rates, FLOPs and the compute-energy model of the paper.

* Spike rate of a layer: spikes per neuron summed over all T steps, averaged
  over neurons and images.  The network average weights layers by their neuron
  counts (total spikes / total neurons); the plain mean over layers is
  reported beside it.
* FLOPs (MACs) per image: conv k*k*C_in*C_out*H_out*W_out, linear in*out.
* Energy (45 nm): E_MAC = 4.6 pJ, E_AC = 0.9 pJ.
  E_ANN = 4.6 * sum_l FLOPs_l;
  E_SNN = 4.6 * FLOPs_1 + 0.9 * sum_{l>=2} FLOPs_l * zeta_{l-1}, where zeta is the
  spike rate of the layer feeding layer l.  The first layer sees the analog
  image and is counted once, not T times.  Under rate-coded input
  (:mod:`diet_np.encoding`) it sees spikes instead: its term is
  0.9 * FLOPs_1 * zeta_input, with zeta_input the input spikes per pixel over
  all T steps (rate ``"input"``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .encoding import INPUT

E_MAC_PJ = 4.6
E_AC_PJ = 0.9


def spike_rates(net, spike_counts: dict, images: int) -> dict:
    """Per-layer spikes per neuron over all steps: count / (images * neurons).

    ``spike_counts`` are host numbers summed over ``images`` images.  A count of
    rate-coded input spikes (key ``"input"``) gives an ``"input"`` rate per pixel.
    """
    if images < 1:
        raise ValueError(f"spike rates need at least one image; got {images}")
    rates = {name: float(spike_counts[name]) / (images * n) for name, n in net.neurons.items()}
    if INPUT in spike_counts:
        rates[INPUT] = float(spike_counts[INPUT]) / (images * int(np.prod(net.input_shape)))
    return rates


def network_spike_rate(net, rates: dict) -> tuple[float, float]:
    """(neuron-weighted average, plain mean over layers) of per-layer spike rates."""
    total = sum(net.neurons.values())
    weighted = sum(rates[k] * n for k, n in net.neurons.items()) / total
    return weighted, sum(rates[k] for k in net.neurons) / len(net.neurons)


@dataclass
class EnergyRow:
    layer: str
    flops: int
    source_rate: float | None   # spike rate of the feeding layer (or input); None: analog
    ann_pj: float
    snn_pj: float


def energy_table(net, rates: dict) -> list[EnergyRow]:
    """Per compute layer: FLOPs, the feeding layer's spike rate and both energies (pJ).
    The first layer is priced as MACs on analog input, or as accumulates at the
    input spike rate when ``rates`` has one (``"input"``: rate-coded input)."""
    rows = []
    for name, flops, source in net.compute_layers():
        ann = E_MAC_PJ * flops
        if source is None:
            source = INPUT if INPUT in rates else None
        if source is None:
            rate, snn = None, E_MAC_PJ * flops
        else:
            rate = rates[source]
            snn = E_AC_PJ * flops * rate
        rows.append(EnergyRow(name, flops, rate, ann, snn))
    return rows


def energy_totals(rows) -> dict:
    """Total FLOPs, E_ANN, E_SNN (in joules per image) and the ratio E_ANN / E_SNN."""
    ann = sum(r.ann_pj for r in rows) * 1e-12
    snn = sum(r.snn_pj for r in rows) * 1e-12
    return {"flops": sum(r.flops for r in rows), "ann_joules": ann, "snn_joules": snn,
            "ratio": ann / snn if snn > 0 else float("inf")}


def format_energy_table(rows) -> str:
    """A markdown table of :func:`energy_table` rows with totals."""
    lines = ["| layer | FLOPs | input spike rate | E_ANN (uJ) | E_SNN (uJ) |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        rate = "analog (MAC)" if r.source_rate is None else f"{r.source_rate:.3f}"
        lines.append(f"| {r.layer} | {r.flops:,} | {rate} | {r.ann_pj * 1e-6:.3f} | "
                     f"{r.snn_pj * 1e-6:.3f} |")
    t = energy_totals(rows)
    lines.append(f"| **total** | {t['flops']:,} | | {t['ann_joules'] * 1e6:.3f} | "
                 f"{t['snn_joules'] * 1e6:.3f} |")
    lines.append(f"\nE_ANN / E_SNN = {t['ratio']:.2f}x")
    return "\n".join(lines)


def format_flops_table(rows) -> str:
    """A markdown table of per-layer FLOPs (MACs per image), their share and the
    ANN's energy (``E_ANN``, no spike rates needed), with totals."""
    t = energy_totals(rows)
    lines = ["| layer | FLOPs (MACs) | share | E_ANN (uJ) |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {r.layer} | {r.flops:,} | {r.flops / t['flops']:.2%} | {r.ann_pj * 1e-6:.3f} |"
              for r in rows]
    lines.append(f"| **total** | {t['flops']:,} | 100.00% | {t['ann_joules'] * 1e6:.3f} |")
    return "\n".join(lines)


def format_spike_rates(net, rates: dict) -> str:
    """A markdown table of per-layer spike rates plus both network averages."""
    lines = ["| layer | neurons | spikes / neuron (all T) |", "| --- | ---: | ---: |"]
    lines += [f"| {k} | {net.neurons[k]:,} | {rates[k]:.3f} |" for k in net.neurons]
    if INPUT in rates:
        lines.insert(2, f"| input (rate-coded) | {int(np.prod(net.input_shape)):,} | "
                        f"{rates[INPUT]:.3f} |")
    weighted, mean = network_spike_rate(net, rates)
    lines.append(f"| network (neuron-weighted) | {sum(net.neurons.values()):,} | {weighted:.3f} |")
    lines.append(f"| mean over layers | | {mean:.3f} |")
    return "\n".join(lines)
