"""Layer-sequential unit-variance (LSUV) initialisation of an ANN's weights.

Mishkin & Matas's data-dependent start for deep plain networks: walk the
weighted layers from input to output and rescale each layer's weights so that
its output (the input current I of Eq. 2 that its ReLU, later its LIF neuron,
receives; the logits for the output layer) has unit variance on a batch of
training images.  The layers have no bias and ReLU is positively homogeneous,
so one rescaling makes a layer exact: a plain VGG's conv, or a residual block's
second conv together with its 1x1 shortcut conv (the two sum into one neuron).
Where the shortcut is the identity only the conv is rescaled, for a few rounds.

Why: at Kaiming's fan-in init the pre-activation variance of ``vgg16_w4`` on the
first 256 CIFAR-10 training images falls from 1.36 at conv1 to 0.03 at conv13
(the inverse squares of the products of the factors ``train-ann`` prints: zero
padding on the small maps and the average pools shrink it): conv13's input current
starts with a standard deviation 7 times smaller than conv1's.  The network and
what conversion does with it are unchanged: the weights only start at another scale.
"""
from __future__ import annotations

from .backend import array_module, to_host
from .network import StopStep


def _output_std(net, params, x, layer) -> float:
    """The standard deviation of ``layer``'s output on ``x`` (ANN mode): the input
    current of the neuron named ``layer``, or the logits for the output layer."""
    seen = []

    def observe(name, t, current):
        if name == layer:
            seen.append(current)
            raise StopStep

    logits, _ = net.forward_stepwise(params, x, T=1, mode="ann", observe=observe, check=False)
    out = seen[0] if seen else logits
    return float(to_host(array_module(out).std(out, dtype="float64")))


def lsuv_init(net, params, x, tol=0.02, rounds=5) -> dict:
    """Rescale ``params``' weights in place, input to output, so that every weighted
    layer's output has unit variance on the normalised images ``x`` (on the
    parameters' device; the recipes use 256 training images).

    A layer is rescaled by ``1 / std`` until ``|std - 1| <= tol`` or ``rounds``
    tries (a block's 1x1 shortcut conv with its second conv).  Returns
    ``{weight key: total factor applied}``.  A layer whose output
    is all zeros (a dead ReLU path) is a ValueError: no scale can fix it.
    """
    readout = net.body.layers[-1].name
    factors = {}
    for layer in [*net.spiking_layers(), readout]:
        keys = [f"{layer}.weight"]
        shortcut = layer.rpartition(".")[0] + ".shortcut.weight"
        if layer.endswith(".conv2") and shortcut in params:
            keys.append(shortcut)
        factors.update((key, 1.0) for key in keys)
        for _ in range(rounds):
            std = _output_std(net, params, x, layer if layer != readout else None)
            if not std > 0.0:
                raise ValueError(f"LSUV: layer {layer}'s output is constant on these "
                                 f"{len(x)} images; it cannot be rescaled")
            if abs(std - 1.0) <= tol:
                break
            for key in keys:
                params[key] *= params[key].dtype.type(1.0 / std)
                factors[key] /= std
    return factors
