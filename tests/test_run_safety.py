"""No silent wrong results: divergence, schedules, checkpoints that know their data,
resume checks, overwritten work, logs that agree with checkpoints, one-line errors."""
import errno
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from diet_np import checkpoint as checkpoint_module
from diet_np import cli, training
from diet_np.architectures import build_network
from diet_np.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from diet_np.data import make_shapes
from diet_np.errors import ChanceLevelError, DivergenceError, RunError
from diet_np.model_file import data_record, read_model, write_model
from diet_np.records import RunLog
from diet_np.schedules import StepSchedule
from diet_np.pipeline import convert_model, load_data, save_model
from diet_np.training import ann_config, diet_config, fit

from conftest import kill_and_resume

TINY = {"features": [8, "A", 8, "A"], "classifier": [32], "name": "tiny"}
# vgg5's earlier default recipe (Adam 1e-3, cosine per epoch, spec init): a 2-epoch run
# stays at chance, and an extended run's rates are those of the run trained at once
SMALL = ["--n-train", "40", "--n-test", "20", "--batch-size", "20", "--quiet",
         "--recipe", "adam-cosine"]


@pytest.fixture(scope="module")
def shapes():
    return make_shapes(n_train=64, n_test=32, seed=1)


def _fit(data, out, cfg=None, **kw):
    net = build_network(TINY, data.num_classes)
    params = net.init_params(0)
    cfg = cfg or ann_config(epochs=3, batch_size=32, lr=0.05, chance_epochs=0)
    records = fit(net, params, data, cfg, out, arch=TINY, xp=np, show_progress=False, **kw)
    return params, records


def _cli(args, capsys):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out + err


@pytest.fixture(scope="module")
def ann_run(tmp_path_factory):
    """A two-epoch vgg5 ANN trained by the CLI on 40 shapes images."""
    out = tmp_path_factory.mktemp("ann") / "run"
    assert cli.main(["train-ann", "--epochs", "2", "--lr", "1e-3", "--optimizer", "adam",
                     "--out", str(out), *SMALL]) == 0
    return out


# -- 1. divergence ------------------------------------------------------------
def test_a_nan_loss_stops_training_naming_epoch_and_step(shapes, tmp_path):
    good, _ = _fit(shapes, tmp_path, ann_config(epochs=1, batch_size=32, lr=0.05))
    before = (tmp_path / "checkpoint.npz").read_bytes()
    calls = []
    step = training.train_step

    def poisoned(net, params, *a, **k):
        calls.append(1)
        if len(calls) == 2:                       # epoch 2, step 2: blow up
            params["conv1.weight"][...] = np.nan
        return step(net, params, *a, **k)

    net = build_network(TINY, shapes.num_classes)
    params = net.init_params(0)
    cfg = ann_config(epochs=2, batch_size=32, lr=0.05)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(training, "train_step", poisoned)
        with pytest.raises(DivergenceError, match=r"epoch 2, step 2 of 2.*after epoch 1, is left"):
            fit(net, params, shapes, cfg, tmp_path, arch=TINY, xp=np, show_progress=False,
                resume=True)
    assert (tmp_path / "checkpoint.npz").read_bytes() == before
    assert len(RunLog(tmp_path / "log.jsonl").read()) == 1


def test_huge_sgd_rate_diverges_with_exit_status_2(tmp_path, capsys):
    code, text = _cli(["train-ann", "--lr", "1e6", "--epochs", "1", "--out", tmp_path / "r",
                       *SMALL, "--batch-size", "4"], capsys)
    assert code == 2 and "training diverged" in text and "learning rate 1e+06" in text
    assert "epoch 1, step" in text and "No checkpoint had been written yet" in text
    assert not (tmp_path / "r" / "checkpoint.npz").exists()


def test_non_finite_optimiser_state_stops_before_the_checkpoint(shapes, tmp_path):
    net = build_network(TINY, shapes.num_classes)
    params = net.init_params(0)
    run = training.start_run(net, params, shapes, ann_config(epochs=1, batch_size=32,
                                                              optimizer="adam", lr=1e-3),
                             tmp_path, arch=TINY, xp=np)
    record = training.train_epoch(net, params, run, shapes, 0, np, show_progress=False)
    slot = next(iter(run.opt.state.values()))
    next(iter(slot.values()))[...] = np.inf
    with pytest.raises(DivergenceError, match="optimiser state/state/conv1.weight"):
        training.end_epoch(net, params, run, shapes, record, np, show_progress=False)
    assert not (tmp_path / "checkpoint.npz").exists()


def test_converting_an_ann_at_chance_is_refused(ann_run, tmp_path, capsys):
    code, text = _cli(["convert", "--checkpoint", ann_run / "checkpoint.npz", "--out",
                       tmp_path / "c.npz"], capsys)
    assert code == 2 and "at chance level; train it further" in text
    assert not (tmp_path / "c.npz").exists()


def test_commands_refuse_non_finite_parameters_and_name_them(ann_run, tmp_path, capsys):
    model = read_model(ann_run / "checkpoint.npz")
    model.params["fc1.weight"][0, 0] = np.inf
    bad = tmp_path / "bad.npz"
    write_model(bad, model.params, arch=model.arch, kind="ann", T=1, data=model.data)
    for command in (["evaluate", "--checkpoint", bad],
                    ["convert", "--checkpoint", bad, "--out", tmp_path / "c.npz"]):
        code, text = _cli(command, capsys)
        assert code == 2 and "'fc1.weight' holds non-finite values" in text
    snn = {k: v for k, v in model.params.items()}
    write_model(tmp_path / "snn.npz", snn, arch=model.arch, kind="snn", T=5, data=model.data)
    code, text = _cli(["finetune", "--checkpoint", tmp_path / "snn.npz", "--out",
                       tmp_path / "ft"], capsys)
    assert code == 2 and "'fc1.weight' holds non-finite values" in text


def test_a_network_at_chance_stops_the_run(tmp_path):
    data = make_shapes(n_train=64, n_test=300, seed=1)
    net = build_network(TINY, data.num_classes)
    params = net.init_params(0)
    params["out.weight"][...] = 0.0                 # equal logits: always class 0, ~10%
    cfg = ann_config(epochs=3, batch_size=32, lr=1e-12, chance_epochs=2)
    with pytest.raises(ChanceLevelError, match="after 2 epochs is at chance level"):
        fit(net, params, data, cfg, tmp_path, arch=TINY, xp=np, show_progress=False)
    assert read_model(tmp_path / "checkpoint.npz").epoch == 2


# -- 2. step schedules ------------------------------------------------------------
@pytest.mark.parametrize("epochs", range(1, 13))
@pytest.mark.parametrize("milestones", [(0.45, 0.7, 0.9), (0.6, 0.8, 0.9)])
def test_step_schedule_divides_at_most_once_per_boundary(epochs, milestones):
    s = StepSchedule(1e-3, epochs, milestones)
    rates = [s.lr_at(e) for e in range(epochs)]
    assert rates[0] == 1e-3                                   # never during the first epoch
    for a, b in zip(rates, rates[1:]):
        assert b == a or b == pytest.approx(a / 10)
    assert len(s.milestone_epochs) == len(set(s.milestone_epochs))
    if epochs >= 5:
        assert len(s.milestone_epochs) == 3 or epochs < 10    # long runs keep all three


def test_short_diet_schedules_as_documented():
    assert [StepSchedule(1e-3, 2, (0.6, 0.8, 0.9)).lr_at(e) for e in range(2)] == [1e-3, 1e-4]
    assert StepSchedule(1e-3, 1, (0.6, 0.8, 0.9)).lr_at(0) == 1e-3
    five = [StepSchedule(1e-3, 5, (0.6, 0.8, 0.9)).lr_at(e) for e in range(5)]
    assert five == pytest.approx([1e-3, 1e-3, 1e-3, 1e-4, 1e-5])


def test_the_log_records_the_rate_each_epoch_used(shapes, tmp_path):
    cfg = diet_config(epochs=2, batch_size=32, lr=1e-3, T=2, chance_epochs=0)
    net = build_network(TINY, shapes.num_classes)
    params = net.init_params(0)
    records = fit(net, params, shapes, cfg, tmp_path, arch=TINY, xp=np, show_progress=False)
    assert [r["lr"] for r in records] == pytest.approx([1e-3, 1e-4])


def test_a_constant_schedule_extended_by_resume_goes_on_at_its_rate(tmp_path):
    data = make_shapes(n_train=40, n_test=20, seed=0)
    net = build_network("vgg5_w8", 10)                # untrained: the schedule is the point
    (tmp_path / "ann").mkdir()
    write_model(tmp_path / "ann/checkpoint.npz", net.init_params(0, init="kaiming-in"),
                arch="vgg5_w8", kind="ann", T=1, data=data_record(data))
    snn, run = str(tmp_path / "snn.npz"), tmp_path / "diet"
    assert cli.main(["convert", "--quiet", "--checkpoint", str(tmp_path / "ann/checkpoint.npz"),
                     "--find-steps", "2", "--images", "8", "--out", snn]) == 0
    finetune = ["finetune", "--quiet", "--checkpoint", snn, "--timesteps", "2", "--lr", "1e-3",
                "--batch-size", "20", "--schedule", "constant", "--out", str(run)]
    assert cli.main([*finetune, "--epochs", "2"]) == 0
    assert cli.main([*finetune, "--epochs", "4", "--resume"]) == 0
    assert [r["lr"] for r in RunLog(run / "log.jsonl").read()] == [1e-3] * 4


# -- 3. checkpoints know their data ------------------------------------------------
def test_the_checkpoint_records_data_subset_and_normalisation(ann_run):
    model = read_model(ann_run / "checkpoint.npz")
    d = model.data
    assert (d["name"], d["n_train"], d["n_test"], d["seed"]) == ("shapes", 40, 20, 0)
    assert d["num_classes"] == 10 and d["input_shape"] == [3, 32, 32]
    assert len(d["mean"]) == 3 and len(d["std"]) == 3 and len(d["fingerprint"]) == 16
    assert model.arch == "vgg5" and model.kind == "ann" and model.epoch == 2


def test_evaluate_uses_the_checkpoints_data_and_refuses_other_flags(ann_run, capsys):
    code, text = _cli(["evaluate", "--checkpoint", ann_run / "checkpoint.npz", "--quiet"], capsys)
    assert code == 0 and "shapes, 40 train / 20 test images" in text
    code, text = _cli(["evaluate", "--checkpoint", ann_run / "checkpoint.npz",
                       "--dataset", "cifar10"], capsys)
    assert code == 2 and "'shapes' in the checkpoint, 'cifar10' asked for" in text
    code, text = _cli(["evaluate", "--checkpoint", ann_run / "checkpoint.npz",
                       "--n-train", "64"], capsys)
    assert code == 2 and "n_train 40 in the checkpoint, 64 asked for" in text


def test_the_checkpoint_is_read_before_any_data(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DIET_NP_DATA", str(tmp_path / "empty"))
    code, text = _cli(["evaluate", "--checkpoint", tmp_path / "nope.npz", "--dataset",
                       "cifar10"], capsys)
    assert code == 2 and "does not exist" in text and "download" not in text


def test_a_checkpoint_with_damaged_meta_is_named(ann_run, tmp_path, capsys):
    ckpt = load_checkpoint(ann_run / "checkpoint.npz")
    for name, change in (("noepoch", lambda m: m.pop("epoch")),
                         ("epoch99", lambda m: m.update(epoch=99)),
                         ("badcfg", lambda m: m["config"].update(colour="red"))):
        meta = json.loads(json.dumps(ckpt.meta))
        change(meta)
        save_checkpoint(tmp_path / f"{name}.npz", ckpt.params, meta, ckpt.optimizer_state)
    code, text = _cli(["evaluate", "--checkpoint", tmp_path / "noepoch.npz"], capsys)
    assert code == 2 and "has no 'epoch'" in text
    code, text = _cli(["evaluate", "--checkpoint", tmp_path / "epoch99.npz"], capsys)
    assert code == 2 and "99 epochs were trained but records 2" in text
    os.makedirs(tmp_path / "resume")
    os.replace(tmp_path / "badcfg.npz", tmp_path / "resume" / "checkpoint.npz")
    code, text = _cli(["train-ann", "--resume", "--epochs", "3", "--out", tmp_path / "resume"],
                      capsys)
    assert code == 2 and "unknown ['colour']" in text


# -- 4. resume checks -------------------------------------------------------------
def test_resume_refuses_other_data_architecture_or_kind(ann_run, tmp_path, capsys):
    code, text = _cli(["train-ann", "--resume", "--epochs", "3", "--n-train", "60",
                       "--out", ann_run], capsys)
    assert code == 2 and "n_train 40 in the checkpoint, 60 asked for" in text
    code, text = _cli(["train-ann", "--resume", "--epochs", "3", "--arch", "vgg9",
                       "--out", ann_run], capsys)
    assert code == 2 and "architecture 'vgg5' in the checkpoint, 'vgg9' here" in text
    snn = tmp_path / "snn.npz"
    model = read_model(ann_run / "checkpoint.npz")
    write_model(snn, model.params, arch="vgg5", kind="snn", T=5, data=model.data)
    code, text = _cli(["finetune", "--checkpoint", snn, "--resume", "--out", ann_run], capsys)
    assert code == 2 and "holds an ANN model; this step needs SNN" in text


def test_resume_refuses_changed_settings_and_extends_with_more_epochs(ann_run, tmp_path,
                                                                      capsys):
    run = tmp_path / "run"
    assert cli.main(["train-ann", "--epochs", "1", "--lr", "1e-3", "--optimizer", "adam",
                     "--out", str(run), *SMALL]) == 0
    code, text = _cli(["train-ann", "--resume", "--lr", "0.5", "--epochs", "2", "--out", run],
                      capsys)
    assert code == 2 and "lr 0.001 -> 0.5" in text
    code, text = _cli(["train-ann", "--resume", "--out", run], capsys)
    assert code == 2 and "has finished its 1 epochs; pass a larger --epochs" in text
    code, text = _cli(["train-ann", "--resume", "--epochs", "2", "--out", run, "--quiet"], capsys)
    assert code == 0 and "epochs 1 -> 2 (extends the run" in text
    a, b = read_model(ann_run / "checkpoint.npz"), read_model(run / "checkpoint.npz")
    for k in a.params:                                  # = the run trained for 2 epochs at once
        np.testing.assert_array_equal(a.params[k], b.params[k], err_msg=k)


# -- 5. work is never overwritten ------------------------------------------------
def test_convert_refuses_its_input_a_folder_or_an_existing_file(ann_run, tmp_path, capsys,
                                                                monkeypatch):
    model = read_model(ann_run / "checkpoint.npz")     # as imported: no history to judge
    ckpt = tmp_path / "ann.npz"
    write_model(ckpt, model.params, arch=model.arch, kind="ann", T=1, data=model.data)
    before = ckpt.read_bytes()
    monkeypatch.setattr(cli, "convert_model", lambda *a, **k: pytest.fail("converted"))
    for out, message in ((ckpt, "is the command's input"), (ann_run, "is a folder"),
                         (ann_run / "log.jsonl", "already exists; pass --overwrite")):
        code, text = _cli(["convert", "--checkpoint", ckpt, "--out", out], capsys)
        assert code == 2 and message in text
    assert ckpt.read_bytes() == before


def test_training_into_an_existing_run_needs_resume_or_overwrite(ann_run, capsys):
    log = (ann_run / "log.jsonl").read_bytes()
    code, text = _cli(["train-ann", "--epochs", "1", "--out", ann_run, *SMALL], capsys)
    assert code == 2 and "already holds a run" in text and "--resume" in text
    assert (ann_run / "log.jsonl").read_bytes() == log


# -- 7. the log agrees with the checkpoint after any interruption ----------------------
def test_a_kill_between_checkpoint_and_log_is_repaired_on_resume(shapes, tmp_path):
    straight, _ = _fit(shapes, tmp_path / "a")
    append = RunLog.append
    with pytest.MonkeyPatch.context() as mp:
        def killed(self, record):
            if record["epoch"] == 2:
                raise KeyboardInterrupt
            append(self, record)
        mp.setattr(RunLog, "append", killed)
        with pytest.raises(KeyboardInterrupt):
            _fit(shapes, tmp_path / "b")
    assert read_model(tmp_path / "b" / "checkpoint.npz").epoch == 2
    assert len(RunLog(tmp_path / "b" / "log.jsonl").read()) == 1       # one record short
    resumed, records = _fit(shapes, tmp_path / "b", resume=True)
    assert [r["epoch"] for r in RunLog(tmp_path / "b" / "log.jsonl").read()] == [1, 2, 3]
    assert records == RunLog(tmp_path / "b" / "log.jsonl").read()
    for k in straight:
        np.testing.assert_array_equal(straight[k], resumed[k], err_msg=k)


# -- 8. file-system errors are one line naming the path -------------------------------
def test_out_under_a_file_or_naming_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("mine")
    for out in (tmp_path / "f", tmp_path / "f" / "run"):
        code, text = _cli(["train-ann", "--out", out, *SMALL], capsys)
        assert code == 2 and "is a file" in text and "Traceback" not in text
    assert (tmp_path / "f").read_text() == "mine"


def test_a_full_disk_is_one_line_and_keeps_the_last_checkpoint(shapes, tmp_path, monkeypatch):
    _fit(shapes, tmp_path, ann_config(epochs=1, batch_size=32, lr=0.05, chance_epochs=0))
    before = (tmp_path / "checkpoint.npz").read_bytes()

    def full(fileobj, arrays):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(checkpoint_module, "_write_arrays", full)
    with pytest.raises(RunError, match="cannot write .*checkpoint.npz: No space left on device"):
        _fit(shapes, tmp_path, ann_config(epochs=2, batch_size=32, lr=0.05, chance_epochs=0),
             resume=True)
    assert (tmp_path / "checkpoint.npz").read_bytes() == before
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


# -- 10. smaller ones -------------------------------------------------------------------
def test_stale_temporary_files_of_a_killed_write_are_removed(shapes, tmp_path):
    _fit(shapes, tmp_path, ann_config(epochs=1, batch_size=32, lr=0.05, chance_epochs=0))
    stale = tmp_path / ".checkpoint.npz.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    mine = tmp_path / "notes.tmp"
    mine.write_text("the user's")
    _fit(shapes, tmp_path, ann_config(epochs=2, batch_size=32, lr=0.05, chance_epochs=0),
         resume=True)
    assert not stale.exists() and mine.read_text() == "the user's"


def test_interrupting_evaluate_does_not_suggest_resume(ann_run, capsys, monkeypatch):
    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "evaluate", interrupted)
    code, text = _cli(["evaluate", "--checkpoint", ann_run / "checkpoint.npz"], capsys)
    assert code == 130 and "interrupted" in text and "--resume" not in text


def test_a_random_file_is_not_a_checkpoint_and_no_pickle_advice(tmp_path):
    path = tmp_path / "random.npz"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert "random.npz" in str(info.value) and "pickle" not in str(info.value)


def test_a_library_bug_keeps_its_traceback(ann_run, monkeypatch):
    def bug(*a, **k):
        raise ValueError("a bug inside diet_np")
    monkeypatch.setattr(cli, "evaluate", bug)
    with pytest.raises(ValueError, match="a bug inside"):
        cli.main(["evaluate", "--checkpoint", str(ann_run / "checkpoint.npz")])


def test_energy_refuses_flags_it_would_ignore(capsys):
    code, text = _cli(["energy", "--arch", "vgg5", "--dataset", "cifar10"], capsys)
    assert code == 2 and "takes no --dataset" in text


# -- 9. the evaluation boundary -------------------------------------------------------
def test_evaluate_refuses_empty_sets_and_labels_out_of_range(shapes):
    from diet_np.data import DataError
    net = build_network(TINY, shapes.num_classes)
    params = net.init_params(0)
    kw = dict(T=1, mode="ann", xp=np, show_progress=False)
    with pytest.raises(DataError, match="non-empty"):
        training.evaluate(net, params, shapes.x_test[:0], shapes.y_test[:0], shapes, **kw)
    with pytest.raises(DataError, match=r"\[0, 10\)"):
        training.evaluate(net, params, shapes.x_test, shapes.y_test + 5, shapes, **kw)


def test_the_engine_flag_picks_the_path_and_both_train_alike(tmp_path):
    runs = {}
    for engine in ("reference", "fast"):
        assert cli.main(["train-ann", "--epochs", "1", "--engine", engine,
                         "--out", str(tmp_path / engine), *SMALL]) == 0
        runs[engine] = read_model(tmp_path / engine / "checkpoint.npz").params
    for k, v in runs["fast"].items():      # two Adam steps of at most lr = 1e-3 each: the
        np.testing.assert_allclose(runs["reference"][k], v, atol=2e-5, err_msg=k)  # rounding


# -- 11. a VGG16-depth run killed at a random point resumes bit-identically ----------
VGG16_RUN = ["--n-train", "256", "--n-test", "32", "--batch-size", "32", "--epochs", "4",
             "--quiet"]


def _converted_vgg16_w8(path):
    """An SNN checkpoint of vgg16_w8 converted from its untrained (Kaiming) ANN on the
    shapes subset of VGG16_RUN: every one of its 15 spiking layers fires."""
    data = load_data("shapes", n_train=256, n_test=32)
    net = build_network("vgg16_w8", data.num_classes)
    assert len(net.neurons) == 15
    params = net.init_params(0, init="kaiming-in")
    snn, found = convert_model(net, params, data, np, T_find=20, scale=0.7, images=32,
                               show_progress=False)
    save_model(path, snn, arch="vgg16_w8", kind="snn", T=5, data=data_record(data),
               origin={"T_find": 20, "unscaled_thresholds": found})
    return path


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["train-ann", "finetune"])
def test_a_vgg16_depth_run_killed_at_random_resumes_bit_identically(stage, tmp_path):
    command = [sys.executable, "-m", "diet_np", stage, *VGG16_RUN]
    command += (["--arch", "vgg16_w8"] if stage == "train-ann" else
                ["--checkpoint", str(_converted_vgg16_w8(tmp_path / "converted.npz"))])
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    subprocess.run([*command, "--out", str(tmp_path / "straight")], check=True, env=env,
                   capture_output=True)
    done, delay = kill_and_resume(command, tmp_path / "killed")
    assert 1 <= done < 4
    with np.load(tmp_path / "straight" / "checkpoint.npz") as a, \
            np.load(tmp_path / "killed" / "checkpoint.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        where = f"(killed {delay:.2f} s after epoch 1, with {done} epochs checkpointed)"
        for k in a.files:                       # parameters and optimiser state, bit for bit
            if k != "__meta__":
                np.testing.assert_array_equal(a[k], b[k], err_msg=f"{k} {where}")
    straight = read_model(tmp_path / "straight" / "checkpoint.npz")
    resumed = read_model(tmp_path / "killed" / "checkpoint.npz")
    untimed = [[{k: v for k, v in r.items() if k != "train_seconds"} for r in m.history]
               for m in (straight, resumed)]
    assert resumed.epoch == 4 and untimed[0] == untimed[1]
    log = RunLog(tmp_path / "killed" / "log.jsonl").read()
    assert [r["epoch"] for r in log] == [1, 2, 3, 4]


def test_test_images_evaluates_a_subset_but_the_model_records_the_whole_test_set(tmp_path):
    """--test-images shortens each epoch's test; later commands still default to every
    test image the data set has."""
    out = tmp_path / "ann"
    assert cli.main(["train-ann", "--n-train", "40", "--n-test", "30", "--test-images", "10",
                     "--batch-size", "20", "--epochs", "1", "--quiet", "--out", str(out)]) == 0
    model = read_model(str(out / "checkpoint.npz"))
    acc = model.history[0]["test_acc"]                 # measured on 10 images
    assert model.data["n_test"] == 30 and abs(acc * 10 - round(acc * 10)) < 1e-9
