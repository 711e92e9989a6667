"""Probes: what the spiking layers of a network do, step by step, for one batch.

A :class:`Probe` is the ``record`` callback of :meth:`Network.forward_stepwise`.
At every step t it keeps, for each chosen spiking layer l, the quantities of
Eq. 2-5 (the names of :mod:`diet_np.lif`):

* ``current``: the input current I_l^t;
* ``u``: the membrane potential u_l^t = lambda_l m_l^{t-1} + I_l^t, after
  integration and before the reset (Eq. 2), the value compared with v_l;
* ``m``: the potential m_l^t = u_l^t - v_l o_l^t after the reset (Eq. 5);
* ``spikes``: o_l^t = H(u_l^t / v_l - 1) (Eq. 3-4), booleans.

:func:`probe_network` runs the whole thing and returns, per layer, arrays shaped
(T, B, ...) (the layer's neuron shape after T and the batch).  They are NumPy
arrays on the host by default (``host=True``: one explicit copy per array at the
end of the run), or arrays on the input's device (``host=False``: CuPy arrays
for CuPy input).  Recording costs memory: T x B x neurons per quantity, so a
deep network is probed on a few images, or on some layers and quantities only.
"""
from __future__ import annotations

from typing import NamedTuple

from .backend import array_module, to_host

QUANTITIES = ("current", "u", "m", "spikes")


def check_layers(net, layers) -> None:
    """Raise a KeyError naming the first of ``layers`` (None: all) that is not a
    spiking layer of ``net``."""
    unknown = [n for n in (layers or ()) if n not in net.neurons]
    if unknown:
        raise KeyError(f"{net.name} has no spiking layer {unknown[0]!r}; its spiking "
                       f"layers are {', '.join(net.neurons)}")


class LayerRecord(NamedTuple):
    """The recorded steps of one spiking layer; a quantity not recorded is None.

    ``leak`` and ``threshold`` are the layer's lambda_l and v_l (host floats).
    """
    name: str
    current: object
    u: object
    m: object
    spikes: object
    leak: float
    threshold: float

    @property
    def T(self) -> int:
        return next(a for a in self[1:5] if a is not None).shape[0]

    def spike_counts(self):
        """Spikes per neuron summed over the T steps, shaped (B, ...)."""
        if self.spikes is None:
            raise ValueError("this record holds no spikes (probe with 'spikes' among quantities)")
        return self.spikes.sum(axis=0)


class Probe:
    """A ``record`` callback for :meth:`Network.forward_stepwise` that keeps the
    per-step arrays of ``layers`` (default: every spiking layer) for the
    ``quantities`` named (a subset of :data:`QUANTITIES`).

    The arrays are copied as they arrive (the step path may reuse its buffers)
    and stay on their device until :meth:`records` stacks them.
    """

    def __init__(self, layers=None, quantities=QUANTITIES):
        unknown = [q for q in quantities if q not in QUANTITIES]
        if unknown or not quantities:
            raise ValueError(f"unknown probe quantities {unknown}; choose from {QUANTITIES}")
        self.layers = None if layers is None else list(layers)
        self.quantities = tuple(quantities)
        self._steps = {}            # layer -> quantity -> list of per-step arrays

    def __call__(self, name, t, step):
        if self.layers is not None and name not in self.layers:
            return
        kept = self._steps.setdefault(name, {q: [] for q in self.quantities})
        if len(kept[self.quantities[0]]) != t:
            raise RuntimeError(f"probe of layer {name} got step {t} after "
                               f"{len(kept[self.quantities[0]])} steps; use a fresh Probe per run")
        for q in self.quantities:
            kept[q].append(getattr(step, q).copy())

    def records(self, net, params, host=True) -> dict:
        """``{layer: LayerRecord}`` in the network's layer order, each array
        stacked to (T, B, ...): NumPy on the host if ``host``, else on the device."""
        check_layers(net, self.layers)
        out = {}
        for name in net.neurons:
            if name not in self._steps:
                continue
            arrays = {}
            for q in QUANTITIES:
                steps = self._steps[name].get(q)
                if steps is None:
                    arrays[q] = None
                    continue
                stacked = array_module(steps[0]).stack(steps)
                arrays[q] = to_host(stacked) if host else stacked
            out[name] = LayerRecord(name, **arrays, leak=float(params[f"{name}.leak"]),
                                    threshold=float(params[f"{name}.threshold"]))
        return out


def probe_network(net, params, x, T, layers=None, quantities=QUANTITIES, host=True):
    """Run the SNN on the batch ``x`` for T steps and record its spiking layers.

    Returns ``(logits, records)``: the logits U^T (on the device) and
    ``{layer: LayerRecord}`` as :meth:`Probe.records` gives them.
    """
    check_layers(net, layers)
    probe = Probe(layers, quantities)
    logits, _ = net.forward_stepwise(params, x, T=T, mode="snn", record=probe)
    return logits, probe.records(net, params, host)
