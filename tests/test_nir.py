"""NIR export and import: the round trip, the graph run by NIR's own equations,
and refusals.  Skipped where the ``nir`` package is not installed (an optional
extra); tests/test_nir_snntorch.py runs the graph in snnTorch.

:func:`euler_run` is a small simulator written from NIR's node definitions (a
forward-Euler step of length dt of each ODE, spikes where v > v_threshold) and
no diet-np code: it checks that the exported parameters mean what
docs/interop.md says they mean.
"""
import sys

import numpy as np
import pytest

from conftest import lively_params
from diet_np.architectures import build_network
from diet_np.cli import main
from diet_np.errors import DietError
from diet_np.model_file import data_record
from diet_np.nir_format import from_nir, plan, read_nir, to_nir
from diet_np.pipeline import load_data, load_model, save_model

nir = pytest.importorskip("nir")

FLAGS = ["--dataset", "shapes", "--n-train", "10", "--n-test", "10"]
T = 5


def snn(arch, seed=0, leak_one=()):
    """A float32 SNN with every layer active; the layers in ``leak_one`` get leak 1."""
    net = build_network(arch, 10)
    params = {k: v.astype(np.float32) for k, v in lively_params(net, seed).items()}
    for name in leak_one:
        params[f"{name}.leak"][...] = 1.0
    return net, params


def checkpoint(tmp_path, arch, params, kind="snn"):
    data = load_data("shapes", n_train=10, n_test=10, seed=0)
    path = tmp_path / f"{arch}_{kind}.npz"
    save_model(path, params, arch=arch, kind=kind, T=T, data=data_record(data))
    return path


def per_step_spikes(net, params, x):
    spikes = {}
    record = lambda name, t, step: spikes.setdefault(name, []).append(np.asarray(step.spikes))
    logits, _ = net.forward_stepwise(params, x, T=T, record=record)
    return logits, {k: np.stack(v) for k, v in spikes.items()}


# -- a simulator of NIR's equations ---------------------------------------------------------
def _conv(x, node):
    w, (s, _), (p, _) = node.weight, node.stride, node.padding
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    k = w.shape[-1]
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::s, ::s]
    return np.einsum("bchwij,ocij->bohw", win, w) + node.bias[None, :, None, None]


def euler_run(graph, x, steps):
    """Run ``graph`` for ``steps`` Euler steps of length dt on a constant input ``x``:
    the output node's value after the last step, and each spiking node's spikes."""
    dt = float(graph.metadata["dt"])
    order, done = [], set()
    while len(order) < len(graph.nodes):
        for name in graph.nodes:
            sources = [a for a, b in graph.edges if b == name]
            if name not in done and all(s in done for s in sources):
                order.append(name)
                done.add(name)
    state, spikes, out = {}, {}, None
    for _ in range(steps):
        value = {}
        for name in order:
            node = graph.nodes[name]
            inp = sum(value[a] for a, b in graph.edges if b == name) if name != "input" else x
            if isinstance(node, nir.Conv2d):
                value[name] = _conv(inp, node)
            elif isinstance(node, nir.AvgPool2d):
                k = int(node.kernel_size[0])
                b, c, h, w = inp.shape
                value[name] = inp.reshape(b, c, h // k, k, w // k, k).mean(axis=(3, 5))
            elif isinstance(node, nir.Flatten):
                value[name] = inp.reshape(inp.shape[0], -1)
            elif isinstance(node, nir.Linear):
                value[name] = inp @ node.weight.T
            elif isinstance(node, (nir.LIF, nir.IF)):
                v = state.get(name, 0.0)
                if isinstance(node, nir.LIF):       # tau dv/dt = (v_leak - v) + r I
                    v = v + dt / node.tau * (node.v_leak - v + node.r * inp)
                else:                               # dv/dt = r I
                    v = v + dt * node.r * inp
                fire = (v > node.v_threshold).astype(float)
                assert node.metadata["reset"] == "subtract"
                state[name] = v - node.v_threshold * fire
                spikes.setdefault(name, []).append(fire)
                value[name] = fire
            elif isinstance(node, nir.I):           # dv/dt = r I
                state[name] = state.get(name, 0.0) + dt * node.r * inp
                value[name] = state[name]
            else:                                   # input, output
                value[name] = inp
        out = value["output"]
    return out, {k: np.stack(v) for k, v in spikes.items()}


@pytest.mark.parametrize("arch,leak_one", [("vgg5", ("conv2",)), ("vgg6_w8", ()),
                                           pytest.param("resnet20", ("pre1", "block3.conv2"),
                                                        marks=pytest.mark.slow)])
def test_nir_equations_reproduce_the_network(arch, leak_one):
    """The graph run by NIR's equations (Euler, step dt) gives diet-np's logits and
    every layer's spikes at every step, LIF and IF layers alike."""
    net, params = snn(arch, leak_one=leak_one)
    graph = to_nir(net, params, arch=arch, T=T)
    kinds = {type(graph.nodes[n]).__name__ for n, kind, _ in plan(net)[0] if kind == "neuron"}
    assert kinds == ({"LIF", "IF"} if leak_one else {"LIF"})
    x = np.random.default_rng(1).normal(size=(2, 3, 32, 32))
    p64 = {k: v.astype(np.float64) for k, v in params.items()}
    ours, spikes = per_step_spikes(net, p64, x)
    theirs, their_spikes = euler_run(graph, x, T)
    np.testing.assert_allclose(theirs, ours, rtol=1e-9, atol=1e-9)
    assert all(s.sum() > 0 for s in spikes.values())
    for name, s in spikes.items():
        np.testing.assert_array_equal(their_spikes[name.replace(".", "_") + "_lif"], s,
                                      err_msg=name)


def test_nir_nodes_and_parameters_as_nir_expects():
    arch = "vgg5"
    net, params = snn(arch, leak_one=("conv2",))
    g = to_nir(net, params, arch=arch, T=T, dt=1e-3)
    lam, v = float(params["conv1.leak"]), float(params["conv1.threshold"])
    lif = g.nodes["conv1_lif"]
    assert isinstance(lif, nir.LIF) and lif.tau.shape == (32, 32, 32)
    np.testing.assert_allclose(lif.tau, 1e-3 / (1 - lam))
    np.testing.assert_allclose(lif.r, 1 / (1 - lam))
    assert np.all(lif.v_leak == 0) and np.all(lif.v_threshold == np.float32(v))
    assert lif.metadata["reset"] == "subtract" and lif.metadata["leak"] == lam
    assert isinstance(g.nodes["conv2_lif"], nir.IF)
    np.testing.assert_allclose(g.nodes["conv2_lif"].r, 1 / 1e-3)
    conv = g.nodes["conv1"]
    assert conv.weight.shape == (32, 3, 3, 3) and np.all(conv.bias == 0)
    assert list(conv.input_shape) == [32, 32] and list(conv.padding) == [1, 1]
    assert isinstance(g.nodes["out"], nir.Linear) and isinstance(g.nodes["out_sum"], nir.I)
    assert g.nodes["flatten"].start_dim == 0 and list(g.nodes["flatten"].output_type["output"]) \
        == [128 * 4 * 4]
    assert g.metadata["reset"] == "subtract" and g.metadata["dt"] == 1e-3
    assert ("fc1_lif", "out") in g.edges and ("out", "out_sum") in g.edges


# -- the command line ---------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["vgg16_w8", pytest.param("resnet20", marks=pytest.mark.slow)])
def test_nir_round_trip_reproduces_logits_and_spikes(arch, tmp_path, capsys):
    """diet-np -> export --format nir -> import --format nir -> the same parameters,
    bit for bit, so the same logits and every layer's spikes at T = 5 (the other
    VGGs' round trips: tests/test_interop_matrix.py)."""
    net, params = snn(arch, leak_one=[next(iter(net_neurons(arch)))])
    ckpt, out, back = checkpoint(tmp_path, arch, params), tmp_path / "g.nir", tmp_path / "b.npz"
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(out), "--format", "nir"]) == 0
    assert main(["import", "--from", str(out), "--format", "nir", "--out", str(back)]
                + FLAGS) == 0          # --arch and T from the graph's metadata
    assert f"SNN {arch} at T = {T} written" in capsys.readouterr().out
    _, got, model = load_model(back, np, expect_kind=("snn",))
    assert model.T == T and model.origin["import_format"] == "nir"
    for k in params:
        np.testing.assert_array_equal(got[k], params[k], err_msg=k)
    x = np.random.default_rng(2).normal(size=(2, 3, 32, 32)).astype(np.float32)
    ours, spikes = per_step_spikes(net, params, x)
    again, spikes_again = per_step_spikes(net, got, x)
    np.testing.assert_array_equal(again, ours)
    for name in spikes:
        np.testing.assert_array_equal(spikes_again[name], spikes[name], err_msg=name)


def net_neurons(arch):
    return build_network(arch, 10).neurons


def test_nir_import_refuses_what_it_cannot_represent(tmp_path):
    arch = "vgg5"
    net, params = snn(arch)

    def refused(change, pattern, arch_asked=arch, write=True):
        g = to_nir(net, params, arch=arch, T=T)
        change(g)
        path = tmp_path / "bad.nir"
        if write:
            nir.write(path, g)
            g = read_nir(path)[0]
        with pytest.raises(DietError, match=pattern):
            from_nir(g, arch_asked, 10, str(path))

    def hard_reset(g):
        g.nodes["conv1_lif"].metadata = {}
    refused(hard_reset, "metadata reset None; diet-np's neurons reset by subtraction")

    def uneven(g):
        g.nodes["conv2_lif"].v_threshold[0, 0, 0] += 1
    refused(uneven, "'conv2_lif' has different v_threshold per neuron")

    def bias(g):
        g.nodes["conv3"].bias[0] = 0.5
    refused(bias, "'conv3' has a non-zero bias")

    def r_off(g):
        g.nodes["fc1_lif"].r = g.nodes["fc1_lif"].r * 2
    refused(r_off, "one step adds the input only when r = tau/dt")

    def nan(g):
        g.nodes["fc1"].weight[0, 0] = np.nan
    refused(nan, "'fc1' has float32 weights with NaN")

    def rewired(g):
        g.edges = [e for e in g.edges if e != ("pool1", "conv2")] + [("conv1_lif", "conv2")]
    refused(rewired, "its edges are not those of vgg5", write=False)   # nir.read refuses it
    refused(lambda g: None, "exported from a vgg5 network, not vgg9", arch_asked="vgg9")

    def bad_dt(g):
        g.metadata["dt"] = "soon"
    refused(bad_dt, "metadata dt = 'soon' is not a positive number")


def test_nir_cli_refusals_write_nothing(tmp_path, capsys, monkeypatch):
    net, params = snn("vgg5")
    ann = checkpoint(tmp_path, "vgg5", params, kind="ann")
    out = tmp_path / "g.nir"
    assert main(["export", "--checkpoint", str(ann), "--out", str(out), "--format", "nir"]) == 2
    assert "export --format nir takes an SNN checkpoint" in capsys.readouterr().err
    assert main(["export", "--checkpoint", str(ann), "--out", str(tmp_path / "g.h5"),
                 "--format", "nir"]) == 2
    assert "--format nir writes a .nir file" in capsys.readouterr().err
    (tmp_path / "junk.nir").write_bytes(b"not hdf5")
    assert main(["import", "--from", str(tmp_path / "junk.nir"), "--format", "nir", "--arch",
                 "vgg5", "--out", str(tmp_path / "x.npz")] + FLAGS) == 2
    assert "junk.nir: not a readable NIR file" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "nir", None)              # the optional extra missing
    snn_ckpt = checkpoint(tmp_path, "vgg5", params)
    assert main(["export", "--checkpoint", str(snn_ckpt), "--out", str(out),
                 "--format", "nir"]) == 2
    assert "--format nir needs the nir package: pip install nir" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "x.npz").exists()
