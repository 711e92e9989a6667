"""Probes (u, m, spikes, current per step), the figures of diet_np.viz, ``diet-np inspect``."""
import json

import numpy as np
import pytest
from matplotlib.figure import Figure

from conftest import lively_params
from diet_np import viz
from diet_np.architectures import build_network
from diet_np.backend import array_module, get_xp, to_device
from diet_np.cli import main
from diet_np.layers import Conv, Flatten, Neuron, Readout, ResidualBlock
from diet_np.lif import lif_forward
from diet_np.network import Network, StopStep
from diet_np.model_file import data_record
from diet_np.pipeline import load_data, save_model
from diet_np.probe import Probe, probe_network

SMALL = {"features": [4, "A", 6, "A"], "classifier": [12], "name": "small"}


def small_net():
    return build_network(SMALL, num_classes=3, input_shape=(3, 8, 8))


def residual_net():
    layers = [Conv("pre", 4, first=True), Neuron("pre"), ResidualBlock("block1", 6, stride=2),
              Flatten(), Readout("out", 3)]
    return Network(layers, (3, 8, 8), 3, "res")


@pytest.mark.parametrize("make", [small_net, residual_net])
def test_probe_records_eq_2_to_5_for_every_layer(make):
    net = make()
    params = lively_params(net, seed=1)
    x = np.random.default_rng(2).normal(size=(3, 3, 8, 8))
    T = 6
    logits, records = probe_network(net, params, x, T)
    expected, trace = net.forward(params, x, train=False, T=T)
    np.testing.assert_allclose(logits, expected, rtol=1e-10, atol=1e-12)
    assert list(records) == net.spiking_layers()
    for name, r in records.items():
        assert r.name == name and r.T == T and r.u.shape == (T, 3) + r.u.shape[2:]
        # the recorded currents run through the multi-step LIF give the recorded u and spikes
        _, cache = lif_forward(r.current, params[f"{name}.leak"], params[f"{name}.threshold"], T)
        np.testing.assert_allclose(r.u, cache.u, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(r.spikes, cache.spikes)
        np.testing.assert_allclose(r.m, r.u - r.threshold * r.spikes, atol=1e-12)   # Eq. 5
        assert r.spikes.dtype == bool and int(r.spikes.sum()) == int(trace.spike_counts[name])
        assert 0 < r.spikes.mean() < 1, f"{name} should fire sometimes for this test to mean much"


def test_probe_selects_layers_and_quantities_and_keeps_observe_working():
    net = small_net()
    params = lively_params(net, seed=1)
    x = np.random.default_rng(2).normal(size=(2, 3, 8, 8))
    seen = []
    probe = Probe(["conv2"], quantities=("spikes",))
    net.forward_stepwise(params, x, T=3, observe=lambda n, t, c: seen.append((n, t)),
                         record=probe)
    records = probe.records(net, params)
    assert list(records) == ["conv2"] and records["conv2"].u is None
    assert records["conv2"].spikes.shape == (3, 2, 6, 4, 4)
    assert seen == [(n, t) for t in range(3) for n in net.spiking_layers()]
    with pytest.raises(KeyError, match="no spiking layer 'conv9'.*conv1, conv2, fc1"):
        probe_network(net, params, x, 2, layers=["conv9"])
    with pytest.raises(ValueError, match="unknown probe quantities \\['v'\\]"):
        Probe(quantities=("u", "v"))
    with pytest.raises(RuntimeError, match="fresh Probe"):
        net.forward_stepwise(params, x, T=1, record=probe)     # a used probe is not reused

    def stop(name, t, step):
        raise StopStep
    logits, _ = net.forward_stepwise(params, x, T=2, record=stop)
    assert logits is None


def test_probe_returns_host_or_device_arrays_as_asked():
    xp = get_xp("strict")                 # a CPU array type that refuses implicit host copies
    net = small_net()
    params = to_device({k: v.astype(np.float32) for k, v in lively_params(net, 1).items()}, xp)
    x = to_device(np.random.default_rng(2).normal(size=(2, 3, 8, 8)).astype(np.float32), xp)
    _, on_device = probe_network(net, params, x, 2, host=False)
    _, on_host = probe_network(net, params, x, 2)
    assert array_module(on_device["fc1"].u) is xp and isinstance(on_host["fc1"].u, np.ndarray)
    np.testing.assert_array_equal(on_host["fc1"].spikes, on_device["fc1"].spikes.to_numpy())


@pytest.fixture(scope="module")
def records():
    net = small_net()
    params = lively_params(net, seed=1)
    x = np.random.default_rng(2).normal(size=(2, 3, 8, 8))
    return net, probe_network(net, params, x, 7)[1]


def test_raster_shows_the_selected_neurons_spikes(records, tmp_path):
    _, rec = records
    r = rec["conv2"]
    fig = viz.raster(r, image=1, neurons=8, channels=4, path=tmp_path / "r.png")
    assert isinstance(fig, Figure) and (tmp_path / "r.png").stat().st_size > 1000
    rows, labels = viz.select_neurons(r.spikes[:, 1].sum(axis=0), 8, 4)
    assert len(rows) == 8 and len(set(labels)) == 4 and len(set(rows)) == 8
    shown = fig.axes[0].images[0].get_array()
    np.testing.assert_array_equal(shown, r.spikes[:, 1].reshape(7, -1)[:, rows].T)
    flat_rows, flat_labels = viz.select_neurons(rec["fc1"].spikes[:, 0].sum(axis=0), 5)
    assert len(flat_rows) == 5 and flat_labels == [None] * 5
    with pytest.raises(FileExistsError, match="r.png exists"):
        viz.save_figure(viz.new_figure(1, 1), tmp_path / "r.png")
    viz.save_figure(viz.new_figure(1, 1), tmp_path / "r.png", overwrite=True)
    assert (tmp_path / "r.png").stat().st_size < 1000


def test_membrane_trace_is_u_then_m_per_step(records):
    _, rec = records
    r = rec["conv1"]
    j = 5
    fig = viz.membrane_traces(r, image=0, neurons=[j])
    x, y = fig.axes[0].lines[0].get_data()
    u, m = r.u[:, 0].reshape(7, -1)[:, j], r.m[:, 0].reshape(7, -1)[:, j]
    np.testing.assert_array_equal(x, [0] + [t for t in range(1, 8) for _ in (0, 1)])
    np.testing.assert_allclose(y, np.concatenate([[0], np.stack([u, m], 1).ravel()]))
    assert len(viz.membrane_traces(r, neurons=3).axes) == 3


def test_rate_figures_trajectories_and_surrogates(records):
    net, rec = records
    rates = {n: float(r.spike_counts().mean()) for n, r in rec.items()}
    fig = viz.spike_rate_bars(rates, net.neurons, T=7)
    heights = [b.get_height() for b in fig.axes[0].patches]
    np.testing.assert_allclose(heights, list(rates.values()))
    fig = viz.rate_histogram({n: r.spike_counts() for n, r in rec.items()}, 7)
    assert sum(ax.get_visible() for ax in fig.axes) == 3
    log = [{"epoch": e, "leaks": {"conv1": 1 - 0.1 * e}, "thresholds": {"conv1": 0.5 + e}}
           for e in (1, 2, 3)]
    fig = viz.leak_threshold_trajectories(log)
    np.testing.assert_allclose(fig.axes[1].lines[0].get_ydata(), [1.5, 2.5, 3.5])
    with pytest.raises(ValueError, match="no 'leaks' or 'thresholds'"):
        viz.leak_threshold_trajectories([{"epoch": 1, "train_loss": 2.0}])
    fig = viz.surrogate_shapes(["triangle"])
    z, g = fig.axes[0].lines[0].get_data()
    np.testing.assert_allclose(g, 0.3 * np.maximum(0, 1 - np.abs(z)))            # Eq. 8


def test_cli_inspect_writes_figures_and_refuses_to_overwrite(tmp_path, capsys):
    data = load_data("shapes", n_train=40, n_test=20, seed=0)
    net = build_network("vgg5", data.num_classes)
    params = net.init_params(0)
    for key in params:
        if key.endswith(".threshold"):
            params[key][...] = 0.05
    run = tmp_path / "diet"
    ckpt = run / "checkpoint.npz"
    save_model(ckpt, params, arch="vgg5", kind="snn", T=4, data=data_record(data))
    with open(run / "log.jsonl", "w") as f:
        for e in (1, 2):
            f.write(json.dumps({"epoch": e, "leaks": {n: 1.0 for n in net.neurons},
                                "thresholds": {n: 0.05 * e for n in net.neurons}}) + "\n")
    out = tmp_path / "figs"
    args = ["inspect", "--checkpoint", str(ckpt), "--out", str(out), "--n-train", "40",
            "--n-test", "20", "--images", "3"]
    assert main(args) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["leak_threshold.png", "rate_histogram.png", "spike_rates.png",
                            "surrogates.png"] + [f"{k}_{n}.png" for k in ("raster", "traces")
                                                 for n in ("conv1", "conv3", "fc1")])
    assert "of 3 probed test images" in capsys.readouterr().out
    before = (out / "spike_rates.png").stat().st_mtime_ns
    assert main(args) == 2
    assert "raster_conv1.png exists; pass --overwrite" in capsys.readouterr().err
    assert (out / "spike_rates.png").stat().st_mtime_ns == before
    ann = tmp_path / "ann.npz"
    save_model(ann, params, arch="vgg5", kind="ann", T=1, data=data_record(data))
    assert main(["inspect", "--checkpoint", str(ann), "--out", str(out), "--n-test", "20"]) == 2
    assert "ANN model; this step needs SNN" in capsys.readouterr().err
