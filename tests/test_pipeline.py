"""Pipeline: conversion, training with checkpoints and resume, metrics, CLI errors."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from diet_np.architectures import build_network, vgg
from diet_np.checkpoint import load_checkpoint, save_checkpoint
from diet_np.errors import RunError
from diet_np.model_file import data_record, write_model
from diet_np.cli import main
from diet_np.conversion import ConversionError, convert, find_thresholds, percentile_k
from diet_np.data import make_shapes
from diet_np.ops import conv2d_forward
from diet_np.metrics import energy_table, energy_totals, network_spike_rate, spike_rates
from diet_np.training import ann_config, diet_config, evaluate, fit

from conftest import kill_and_resume

TINY = {"features": [8, "A", 8, "A"], "classifier": [32], "name": "tiny"}


@pytest.fixture(scope="module")
def shapes():
    return make_shapes(n_train=96, n_test=64, seed=1)


def test_percentile_is_authors_kth_smallest():
    values = np.random.default_rng(0).permutation(2000).astype(np.float32)
    k = 1 + round(0.997 * 1999)                      # 1-based, no interpolation
    assert float(percentile_k(values)) == k - 1
    assert float(percentile_k(np.arange(10.0), 0.5)) == 4.0   # k = 1 + round(4.5) = 5th smallest

def test_thresholds_layer_by_layer_with_earlier_thresholds_in_place():
    net = vgg([4, "A"], [6], num_classes=3, input_shape=(3, 8, 8))
    params = net.init_params(0, dtype=np.float64)
    x = np.random.default_rng(0).normal(size=(16, 3, 8, 8))
    snn, found = convert(net, params, x, T_find=6, scale=0.5, show_progress=False)
    # layer 1: percentile of W x (the same current at every step)
    i1, _ = conv2d_forward(x, params["conv1.weight"], 1, 1)
    assert found["conv1"] == pytest.approx(float(percentile_k(i1)))
    # layer 2: simulate with conv1's unscaled threshold; max over steps of the percentile
    check = {k: v.copy() for k, v in snn.items()}
    check["conv1.threshold"][...] = found["conv1"]
    steps = []
    net.forward_stepwise(check, x, T=6, observe=lambda n, t, c: steps.append(float(percentile_k(c)))
                         if n == "fc1" else None)
    assert found["fc1"] == pytest.approx(max(steps))
    assert all(float(snn[f"{k}.threshold"]) == pytest.approx(0.5 * v) for k, v in found.items())
    assert all(float(snn[f"{k}.leak"]) == 1.0 for k in found)
    assert params["conv1.threshold"] == 1.0          # the ANN's parameters are untouched


def test_silent_layer_is_a_clear_error():
    net = vgg([4, "A"], [6], num_classes=3, input_shape=(3, 8, 8))
    params = net.init_params(0, dtype=np.float64)
    params["fc1.weight"][...] = -abs(params["fc1.weight"])     # fc1 never gets positive current
    x = np.abs(np.random.default_rng(0).normal(size=(8, 3, 8, 8)))
    params["conv1.weight"][...] = abs(params["conv1.weight"])
    with pytest.raises(ConversionError, match="layer fc1 stayed silent"):
        find_thresholds(net, params, x, T_find=4, show_progress=False)


def test_vgg16_flops_and_energy_model():
    net = build_network("vgg16")
    rows = energy_table(net, {n: 0.5 for n in net.neurons})
    assert sum(r.flops for r in rows) == 338_403_328
    first = rows[0]
    assert first.source_rate is None and first.snn_pj == pytest.approx(4.6 * first.flops)
    assert rows[1].snn_pj == pytest.approx(0.9 * rows[1].flops * 0.5)
    totals = energy_totals(rows)
    expected = 4.6 * 338_403_328 / (4.6 * rows[0].flops + 0.9 * 0.5 * (338_403_328 - rows[0].flops))
    assert totals["ratio"] == pytest.approx(expected)


def test_spike_rates_and_network_average():
    net = vgg([4, "A"], [6], num_classes=3, input_shape=(3, 8, 8))
    rates = spike_rates(net, {"conv1": 2 * 256 * 3.0, "fc1": 2 * 6 * 1.0}, images=2)
    assert rates == {"conv1": 3.0, "fc1": 1.0}
    weighted, mean = network_spike_rate(net, rates)
    assert weighted == pytest.approx((256 * 3 + 6) / 262) and mean == 2.0


def _fit(shapes, out, **kw):
    net = build_network(TINY, shapes.num_classes)
    params = net.init_params(0)
    cfg = ann_config(epochs=3, batch_size=32, lr=0.05, dropout={"conv": 0.2, "fc": 0.5})
    fit(net, params, shapes, cfg, out, arch=TINY, xp=np, show_progress=False, **kw)
    return params


def test_resume_is_bit_identical(shapes, tmp_path):
    straight = _fit(shapes, tmp_path / "a")
    _fit(shapes, tmp_path / "b", stop_after_epochs=1)
    assert load_checkpoint(tmp_path / "b" / "checkpoint.npz").meta["epoch"] == 1
    resumed = _fit(shapes, tmp_path / "b", resume=True)
    for k in straight:
        np.testing.assert_array_equal(straight[k], resumed[k], err_msg=k)
    lines = (tmp_path / "b" / "log.jsonl").read_text().splitlines()
    assert [json.loads(l)["epoch"] for l in lines] == [1, 2, 3]
    assert (tmp_path / "b" / "curves.png").stat().st_size > 0


def test_resume_refuses_changed_settings_and_names_them(shapes, tmp_path):
    _fit(shapes, tmp_path, stop_after_epochs=1)
    net = build_network(TINY, shapes.num_classes)
    cfg = ann_config(epochs=3, batch_size=32, lr=0.01, dropout={"conv": 0.2, "fc": 0.5})
    with pytest.raises(RunError, match=r"lr 0\.05 -> 0\.01"):
        fit(net, net.init_params(0), shapes, cfg, tmp_path, arch=TINY, xp=np,
            show_progress=False, resume=True)


def test_diet_finetuning_trains_leak_and_threshold(shapes, tmp_path):
    net = build_network(TINY, shapes.num_classes)
    params = net.init_params(0)
    from diet_np.pipeline import conversion_batch
    snn, _ = convert(net, params, conversion_batch(shapes, 32, np), T_find=4, show_progress=False)
    before = {k: float(v) for k, v in snn.items() if not k.endswith(".weight")}
    records = fit(net, snn, shapes, diet_config(epochs=1, batch_size=32, lr=1e-2, T=3), tmp_path,
                  arch=TINY, xp=np, show_progress=False)
    after = {k: float(snn[k]) for k in before}
    assert any(after[k] != before[k] for k in before if k.endswith(".threshold"))
    assert any(after[k] != before[k] for k in before if k.endswith(".leak"))
    assert all(0.0 <= after[k] <= 1.0 for k in after if k.endswith(".leak"))
    assert set(records[0]["leaks"]) == set(net.neurons)
    ev = evaluate(net, snn, shapes.x_test, shapes.y_test, shapes, T=3, mode="snn", xp=np,
                  show_progress=False)
    assert set(ev.spike_rates) == set(net.neurons) and 0 <= ev.accuracy <= 1


def _cli(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out + err


@pytest.mark.parametrize("args,message", [
    (["train-ann", "--arch", "vgg7", "--out", "x"], "invalid choice: 'vgg7'"),
    (["train-ann", "--lr", "-1", "--out", "x"], "must be a finite number > 0"),
    (["convert", "--checkpoint", "c.npz", "--out", "o.npz", "--scale", "inf"],
     "must be a finite number > 0"),
    (["train-ann", "--seed", "-1", "--out", "x"], "argument --seed: must be an integer >= 0"),
    (["train-ann", "--batch-size", "0", "--out", "x"], "must be an integer >= 1"),
    (["evaluate", "--checkpoint", "c.npz", "--timesteps", "0"], "must be an integer >= 1"),
    (["train-ann", "--dataset", "mnist", "--out", "x"], "invalid choice: 'mnist'"),
])
def test_cli_rejects_bad_arguments(args, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_corrupt_and_mismatched_checkpoints(shapes, tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    code, text = _cli(["evaluate", "--checkpoint", str(bad)], capsys)
    assert code == 2 and "bad.npz" in text and "pickle" not in text
    net = build_network("vgg5", 5)
    data = dict(data_record(shapes), num_classes=5)
    write_model(tmp_path / "five.npz", net.init_params(0), arch="vgg5", kind="ann", T=1,
                data=data)
    code, text = _cli(["convert", "--checkpoint", str(tmp_path / "five.npz"), "--out",
                       str(tmp_path / "o.npz")], capsys)
    assert code == 2 and "num_classes 5" in text and "has 10" in text
    params = net.init_params(0)
    params["out.weight"] = np.zeros((5, 99), np.float32)
    write_model(tmp_path / "other.npz", params, arch="vgg5", kind="ann", T=1, data=data)
    code, text = _cli(["energy", "--checkpoint", str(tmp_path / "other.npz")], capsys)
    assert code == 2 and "SNN" in text


def test_cli_gpu_without_gpu_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DIET_NP_NO_GPU", "1")
    import diet_np.backend as backend
    monkeypatch.setattr(backend, "_gpu_probe", None)
    code, text = _cli(["train-ann", "--device", "gpu", "--out", str(tmp_path), "--n-train", "20",
                       "--n-test", "20"], capsys)
    assert code == 2 and "device 'gpu' was asked for but is not usable" in text


def test_killed_run_resumes_to_the_same_parameters(tmp_path):
    """Kill a CLI training run mid-way (SIGKILL), resume it, compare with a run never killed."""
    base = [sys.executable, "-m", "diet_np", "train-ann", "--arch", "vgg5", "--epochs", "3",
            "--n-train", "192", "--n-test", "32", "--batch-size", "32", "--quiet"]
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    subprocess.run(base + ["--out", str(tmp_path / "straight")], check=True, env=env,
                   capture_output=True)
    done, delay = kill_and_resume(base, tmp_path / "killed")
    assert 1 <= done < 3
    a = load_checkpoint(tmp_path / "straight" / "checkpoint.npz")
    b = load_checkpoint(tmp_path / "killed" / "checkpoint.npz")
    assert b.meta["epoch"] == 3
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k],
                                      err_msg=f"{k} (killed {delay:.2f} s after epoch 1)")
