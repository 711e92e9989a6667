"""Checkpoints (atomic .npz), run logs, curve plots and the progress bar."""
import io
import os
import zipfile

import numpy as np
import pytest

from diet_np import checkpoint as ckpt_mod
from diet_np.backend import get_xp, to_device, to_host
from diet_np.checkpoint import (CheckpointError, check_compatible, load_checkpoint,
                                param_shapes, save_checkpoint)
from diet_np.optim import Adam, clamp_neuron_params
from diet_np.progress import progress
from diet_np.records import RunLog, plot_curves


def make_params(xp=np, classes=10):
    rng = np.random.default_rng(0)
    host = {"conv1.weight": rng.normal(size=(4, 3, 3, 3)).astype(np.float32),
            "conv1.leak": np.array(0.95, np.float32),
            "conv1.threshold": np.array(1.7, np.float32),
            "fc.weight": rng.normal(size=(classes, 16)).astype(np.float32)}
    return to_device(host, xp)


def trained_adam(params):
    opt = Adam(1e-3, amsgrad=True)
    rng = np.random.default_rng(1)
    xp = get_xp("strict") if type(params["fc.weight"]).__module__ == "diet_np.strict" else np
    for _ in range(2):
        grads = {k: to_device(rng.normal(size=v.shape).astype(np.float32), xp)
                 for k, v in params.items()}
        opt.step(params, grads)
        clamp_neuron_params(params)
    return opt


def test_round_trip_with_rng_and_optimiser_state(tmp_path):
    params = make_params()
    opt = trained_adam(params)
    rng = np.random.default_rng(1234)
    rng.normal(size=7)
    meta = {"config": {"arch": "vgg5", "T": 5, "milestones": [0.6, 0.8]}, "epoch": np.int64(3),
            "rng": rng.bit_generator.state, "metrics": {"test_acc": np.float32(0.5)}}
    path = tmp_path / "run" / "last.npz"
    save_checkpoint(path, params, meta, opt.state_dict())

    with np.load(path, allow_pickle=False) as z:  # plain npz, documented entry names
        assert "param/conv1.weight" in z.files and "optim/state/fc.weight/max_exp_avg_sq" in z.files
    ck = load_checkpoint(path)
    assert list(ck.params) == list(params)
    for k in params:
        assert ck.params[k].dtype == np.float32 and ck.params[k].shape == params[k].shape
        np.testing.assert_array_equal(ck.params[k], params[k])
    assert ck.meta["epoch"] == 3 and ck.meta["config"]["arch"] == "vgg5"
    assert ck.meta["metrics"]["test_acc"] == 0.5
    restored = np.random.default_rng()
    restored.bit_generator.state = ck.meta["rng"]
    np.testing.assert_array_equal(restored.normal(size=5), rng.normal(size=5))

    # the optimiser resumes exactly where it stopped
    resumed = Adam(1e-3, amsgrad=True)
    resumed.load_state_dict(ck.optimizer_state)
    g = {k: np.full(v.shape, 0.1, np.float32) for k, v in params.items()}
    opt.step(params, g)
    resumed.step(ck.params, g)
    for k in params:
        np.testing.assert_array_equal(ck.params[k], params[k])


def test_mt19937_state_with_array_round_trips(tmp_path):
    rng = np.random.Generator(np.random.MT19937(5))
    save_checkpoint(tmp_path / "c.npz", make_params(), {"rng": rng.bit_generator.state})
    restored = np.random.Generator(np.random.MT19937())
    restored.bit_generator.state = load_checkpoint(tmp_path / "c.npz").meta["rng"]
    assert restored.integers(1 << 30) == rng.integers(1 << 30)


def test_strict_device_save_and_load(tmp_path):
    xp = get_xp("strict")
    params = make_params(xp)
    opt = trained_adam(params)
    save_checkpoint(tmp_path / "s.npz", params, {"epoch": 1}, opt.state_dict())
    ck = load_checkpoint(tmp_path / "s.npz", xp=xp)
    assert all(type(v).__module__ == "diet_np.strict" for v in ck.params.values())
    exp_avg = ck.optimizer_state["state"]["conv1.leak"]["exp_avg"]
    assert type(exp_avg).__module__ == "diet_np.strict" and exp_avg.shape == ()
    resumed = Adam(1e-3, amsgrad=True)
    resumed.load_state_dict(ck.optimizer_state)
    zero = {k: xp.zeros(v.shape, dtype=v.dtype) for k, v in ck.params.items()}
    resumed.step(ck.params, zero)
    opt.step(params, zero)
    for k in params:
        np.testing.assert_array_equal(to_host(ck.params[k]), to_host(params[k]))


def test_nested_optimiser_state_with_awkward_keys(tmp_path):
    state = {"kind": "custom", "step": 7, "betas": (0.9, 0.99),
             "state": {"a/b": {"m": np.arange(3.0)}, "a": {"b/m": np.ones(2)}, "50%": [np.zeros(1), 2]}}
    save_checkpoint(tmp_path / "n.npz", make_params(), {}, state)
    got = load_checkpoint(tmp_path / "n.npz").optimizer_state
    assert got["step"] == 7 and got["betas"] == (0.9, 0.99) and got["kind"] == "custom"
    np.testing.assert_array_equal(got["state"]["a/b"]["m"], np.arange(3.0))
    np.testing.assert_array_equal(got["state"]["a"]["b/m"], np.ones(2))
    assert got["state"]["50%"][1] == 2 and got["state"]["50%"][0].shape == (1,)
    assert load_checkpoint(tmp_path / "n.npz").optimizer_state is not None
    save_checkpoint(tmp_path / "m.npz", make_params(), {})
    assert load_checkpoint(tmp_path / "m.npz").optimizer_state is None


def test_failure_mid_write_leaves_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.npz"
    save_checkpoint(path, make_params(), {"epoch": 1})

    def crash(fileobj, arrays):
        fileobj.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_mod, "_write_arrays", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, make_params(classes=100), {"epoch": 2})
    assert os.listdir(tmp_path) == ["last.npz"], "the temporary file must be removed"
    ck = load_checkpoint(path)
    assert ck.meta["epoch"] == 1 and ck.params["fc.weight"].shape == (10, 16)


def test_bad_files_raise_checkpoint_error(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, make_params(), {"epoch": 1})
    data = path.read_bytes()
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.npz")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated.npz.*truncated or corrupt"):
        load_checkpoint(truncated)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="garbage.npz"):
        load_checkpoint(garbage)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, w=np.zeros(3))
    with pytest.raises(CheckpointError, match="not a diet_np checkpoint"):
        load_checkpoint(foreign)
    bad_meta = tmp_path / "bad_meta.npz"
    np.savez(bad_meta, __meta__=np.array("{not json"))
    with pytest.raises(CheckpointError, match="unreadable '__meta__'"):
        load_checkpoint(bad_meta)
    # a checkpoint whose header lists a parameter the archive lacks
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp_path / "short.npz", "w") as dst:
        for item in src.namelist():
            if item != "param/fc.weight.npy":
                dst.writestr(item, src.read(item))
    with pytest.raises(CheckpointError, match="lacks entry 'param/fc.weight'"):
        load_checkpoint(tmp_path / "short.npz")
    assert issubclass(CheckpointError, ValueError)


def test_unserialisable_meta_is_refused_before_writing(tmp_path):
    with pytest.raises(ValueError, match="JSON"):
        save_checkpoint(tmp_path / "c.npz", make_params(), {"fn": print})
    with pytest.raises(ValueError, match="device array"):
        save_checkpoint(tmp_path / "c.npz", make_params(),
                        {"acc": get_xp("strict").asarray(np.array(0.5))})
    assert os.listdir(tmp_path) == []


def test_check_compatible_names_the_first_difference(tmp_path):
    save_checkpoint(tmp_path / "c10.npz", make_params(classes=10), {})
    ck = load_checkpoint(tmp_path / "c10.npz")
    check_compatible(ck.params, param_shapes(make_params(classes=10)))
    with pytest.raises(CheckpointError, match=r"'fc.weight' has shape \(10, 16\) in it but "
                                              r"\(100, 16\) in the model \(a different number of classes"):
        check_compatible(ck.params, param_shapes(make_params(classes=100)), what="c10.npz")
    other = {**param_shapes(ck.params), "conv2.weight": (8, 4, 3, 3)}
    with pytest.raises(CheckpointError, match="no parameter 'conv2.weight'"):
        check_compatible(ck.params, other)
    fewer = {k: v for k, v in param_shapes(ck.params).items() if k != "conv1.leak"}
    with pytest.raises(CheckpointError, match="parameter 'conv1.leak' .*that the model lacks"):
        check_compatible(ck.params, fewer)


# --------------------------------------------------------------------------
# run logs and plots
# --------------------------------------------------------------------------
def test_run_log_append_truncate_and_resume(tmp_path):
    log = RunLog(tmp_path / "deep" / "run" / "log.jsonl")
    for e in range(4):
        log.append({"epoch": e, "train_loss": np.float32(1.0 / (e + 1)), "lr": 1e-3})
    assert [r["epoch"] for r in log.read()] == [0, 1, 2, 3]
    assert log.read()[1]["train_loss"] == pytest.approx(0.5)
    # resume from the checkpoint of epoch 1: later lines go, new ones are appended
    resumed = RunLog(log.path)
    assert resumed.truncate_after(1) == 2
    resumed.append({"epoch": 2, "train_loss": 0.3})
    assert [r["epoch"] for r in RunLog(log.path).read()] == [0, 1, 2]
    # a crash mid-line leaves a partial tail: ignored by read, dropped before the next append
    with open(log.path, "a") as f:
        f.write('{"epoch": 3, "train_lo')
    assert [r["epoch"] for r in log.read()] == [0, 1, 2]
    log.append({"epoch": 3})
    assert [r["epoch"] for r in log.read()] == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="epoch"):
        log.append({"loss": 1.0})
    with pytest.raises(TypeError, match="array"):
        log.append({"epoch": 4, "loss": np.ones(3)})
    assert RunLog(tmp_path / "missing.jsonl").read() == []


def test_plot_curves_writes_a_png(tmp_path):
    records = []
    for e in range(12):
        records.append({
            "epoch": e, "lr": 1e-4 * (0.1 if e >= 8 else 1.0),
            "train_loss": 2.0 / (e + 1), "test_loss": 2.2 / (e + 1) + 0.1,
            "train_acc": 0.5 + 0.04 * e, "test_acc": 0.45 + 0.035 * e,
            "leaks": {f"conv{i}": 1.0 - 0.01 * i * e for i in range(1, 6)},
            "thresholds": {f"conv{i}": 2.0 + 0.05 * i - 0.02 * e for i in range(1, 6)}})
    out = tmp_path / "plots" / "curves.png"
    plot_curves(records, out)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    plot_curves([{"epoch": 0, "train_loss": 1.0}], tmp_path / "tiny.png")  # no acc, no layers
    with pytest.raises(ValueError, match="no records"):
        plot_curves([], tmp_path / "empty.png")


# --------------------------------------------------------------------------
# progress bar
# --------------------------------------------------------------------------
class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


class TTY(io.StringIO):
    def isatty(self):
        return True


def test_progress_on_a_log_prints_occasional_lines():
    stream, clock = io.StringIO(), FakeClock()
    bar = progress(range(100), desc="epoch 1", stream=stream, clock=clock)
    for i in bar:
        clock.t += 0.5  # 50 s in all: a line every 10 s, plus the final one
        bar.set_postfix(loss=1.0 / (i + 1), acc=np.float64(0.25))
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert 4 <= len(lines) <= 6
    final = lines[-1]
    assert final.startswith("epoch 1:") and "100/100" in final and "100%" in final
    assert "2.00 it/s" in final and "00:50<00:00" in final and "loss=0.01" in final and "acc=0.25" in final
    assert "20/100" in lines[0] and "00:10<00:40" in lines[0]


def test_progress_on_a_terminal_redraws_at_most_ten_times_a_second():
    stream, clock = TTY(), FakeClock()
    for _ in progress(range(1000), stream=stream, clock=clock):
        clock.t += 0.001  # 1 s in all
    out = stream.getvalue()
    assert 2 <= out.count("\r") <= 12 and out.endswith("\n") and out.count("\n") == 1
    assert "1000/1000" in out.split("\r")[-1]


def test_progress_unknown_length_disabled_and_break():
    stream, clock = io.StringIO(), FakeClock()

    def gen():
        yield from range(5)

    for _ in progress(gen(), stream=stream, clock=clock):
        clock.t += 0.25
    assert stream.getvalue().splitlines() == ["5 | 00:01, 4.00 it/s"]
    silent = io.StringIO()
    bar = progress(range(3), stream=silent, enabled=False)
    for _ in bar:
        bar.set_postfix(loss=1.0)
    assert silent.getvalue() == ""
    stream = io.StringIO()
    bar = progress(range(10), stream=stream, clock=clock)
    for i in bar:
        if i == 3:
            break
    bar.close()
    assert stream.getvalue().count("\n") == 1 and "3/10" in stream.getvalue()
    with pytest.raises(ValueError, match="total"):
        progress(range(3), total=-1)
    assert len(progress(range(7), enabled=False)) == 7
