"""An exported NIR graph read and run by someone else's code: snnTorch's
``import_from_nir`` (with NIRTorch's graph executor).  Opt-in: skipped unless
``snntorch`` (with torch and nirtorch) is installed.

What snnTorch 1.0's importer does with the graph, and so what is compared:

* it reads a LIF node as ``snn.Leaky(beta = 1 - dt/tau, threshold = v)`` with
  dt = 1e-4 (diet-np's default dt, so beta is the leak) and **reset to zero**,
  ignoring the node's ``reset = "subtract"`` metadata;
* it has no integrator (``nir.I``): the readout's ``I`` node is removed here and
  the output layer's currents are summed over the steps, which is what ``I`` does;
* it turns ``Flatten(start_dim = 0)`` into ``torch.nn.Flatten(0, -1)``, which
  would flatten the batch too, so images are fed one at a time, unbatched;
* it reads IF nodes only with r = 1 and then gives them leak 0.9: a leak-1 layer
  (r = 1/dt) is refused.

As imported, spikes equal diet-np's at the first step only (reset to zero
differs from Eq. 5 after a neuron's first spike).  With the reset set to
subtraction, as the graph's metadata asks, snnTorch's neuron is Eq. 2-5 except
for one rule: when a neuron's membrane after its last reset is still above
threshold, snnTorch subtracts the threshold *before* testing for a spike, so it
stays silent where diet-np fires if v < u <= 2v.  Spikes then equal diet-np's
in every layer at every step before that rule first applies in the layer or
upstream of it (never, in these networks' first layer).
"""
import numpy as np
import pytest

from conftest import lively_params
from diet_np.architectures import build_network
from diet_np.nir_format import to_nir

torch = pytest.importorskip("torch")
pytest.importorskip("nirtorch")
snn = pytest.importorskip("snntorch")
from snntorch.import_nir import import_from_nir  # noqa: E402

T = 5


def consumer(net, params, arch):
    """snnTorch's module for the graph (readout integrator removed) and its neurons."""
    graph = to_nir(net, params, arch=arch, T=T)
    graph.nodes.pop("out_sum")
    graph.edges = [e for e in graph.edges if "out_sum" not in e] + [("out", "output")]
    model = import_from_nir(graph)
    leaky = {name: m for name, m in model.named_modules() if isinstance(m, snn.Leaky)}
    return model, leaky


def run_consumer(model, leaky, x):
    """Logits (summed readout) and per-layer spikes (T, B, ...) of snnTorch's module."""
    spikes = {name: [] for name in leaky}
    hooks = [m.register_forward_hook(lambda m, i, o, name=name:
                                     spikes[name].append(o.detach().numpy().copy()))
             for name, m in leaky.items()]
    logits = []
    with torch.no_grad():
        for image in x:
            for m in leaky.values():
                m.mem = torch.zeros(0)              # fresh state for each image
            total = 0.0
            for _ in range(T):
                out, _ = model(torch.from_numpy(image))
                total = total + out.numpy()
            logits.append(total)
    for h in hooks:
        h.remove()
    shape = lambda s: np.stack(s).reshape((len(x), T) + s[0].shape).swapaxes(0, 1)
    return np.array(logits), {name: shape(s) for name, s in spikes.items()}


def diet_np_run(net, params, x):
    """diet-np's logits, per-layer spikes (T, B, ...) and, per layer, the first step
    at which snnTorch's subtract rule departs from Eq. 5 (previous m > v and
    v < u <= 2v), or T."""
    spikes, depart, prev = {}, {}, {}

    def record(name, t, step):
        v = float(params[f"{name}.threshold"])
        u = np.asarray(step.u)
        odd = (prev.get(name, np.zeros_like(u)) > v) & (u > v) & (u <= 2 * v)
        if odd.any():
            depart.setdefault(name, t)
        prev[name] = np.asarray(step.m)
        spikes.setdefault(name, []).append(np.asarray(step.spikes))

    logits, _ = net.forward_stepwise(params, x, T=T, record=record)
    return logits, {k: np.stack(v) for k, v in spikes.items()}, depart


@pytest.mark.parametrize("arch", ["vgg5", "vgg6_w8"])
def test_snntorch_runs_the_exported_graph(arch):
    net = build_network(arch, 10)
    params = {k: v.astype(np.float32) for k, v in lively_params(net, 0).items()}
    x = np.random.default_rng(1).normal(size=(2, 3, 32, 32)).astype(np.float32)
    ours, spikes, depart = diet_np_run(net, params, x)
    model, leaky = consumer(net, params, arch)
    layers = list(net.neurons)
    assert [n.replace(".", "_") + "_lif" for n in layers] == list(leaky)
    for name in layers:                    # the parameters arrive: leak as beta, threshold
        m = leaky[name.replace(".", "_") + "_lif"]
        np.testing.assert_allclose(m.beta.numpy(), params[f"{name}.leak"], rtol=1e-6)
        assert float(m.threshold) == pytest.approx(float(params[f"{name}.threshold"]), 1e-6)
        assert m.reset_mechanism == "zero"

    # as imported: reset to zero -- equal at the first step, not after
    _, theirs = run_consumer(model, leaky, x)
    for name in layers:
        np.testing.assert_array_equal(theirs[name.replace(".", "_") + "_lif"][0],
                                      spikes[name][0], err_msg=name)
    first = layers[0].replace(".", "_") + "_lif"
    assert theirs[first].sum() < spikes[layers[0]].sum()   # zero reset loses the residue

    # reset by subtraction, as the graph's metadata asks
    for m in leaky.values():
        m.reset_mechanism = "subtract"
    logits, theirs = run_consumer(model, leaky, x)
    limit, compared = T, 0
    for name in layers:
        limit = min(limit, depart.get(name, T))
        got = theirs[name.replace(".", "_") + "_lif"]
        np.testing.assert_array_equal(got[:limit], spikes[name][:limit], err_msg=name)
        compared += limit
    assert depart.get(layers[0], T) == T and compared > T    # layer 1 equal at all T steps
    if not depart:
        np.testing.assert_allclose(logits, ours, rtol=1e-5, atol=1e-5)


def test_snntorch_refuses_a_leak_one_layer():
    net = build_network("vgg5", 10)
    params = {k: v.astype(np.float32) for k, v in lively_params(net, 0).items()}
    params["conv2.leak"][...] = 1.0                     # IF with r = 1/dt
    with pytest.raises(AssertionError, match="r != 1 not supported"):
        consumer(net, params, "vgg5")
