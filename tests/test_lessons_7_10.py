"""Lessons 7-10 run as tests, in quick mode, and what they claim is checked.

Each lesson runs with ``runpy.run_path`` (as ``__main__``) with ``DIET_NP_QUICK=1`` and
``DIET_NP_LESSON_OUT`` pointing at a temporary folder. Lessons 7 and 8 share one folder
(module-scoped), so lesson 8 reuses the ANN that lesson 7 trained instead of training it
again; run alone, lesson 8 runs lesson 7 itself. The lessons assert their own claims;
the checks below repeat the key ones on the variables the lessons leave behind, so that
a lesson whose assertions were weakened still fails here.
"""

import numpy as np
import pytest
from conftest import LESSONS, check_percent_notebook, lesson_runner

from diet_np.backend import gpu_available
from diet_np.data import data_dir
from diet_np.training import PARAM_KINDS

FILES = {7: "07_conversion.py", 8: "08_diet_finetuning.py", 9: "09_gpu.py",
         10: "10_vgg16_cifar.py"}
FIGURES = {7: ["07_threshold_search", "07_accuracy_vs_T", "07_scale"],
           8: ["08_training", "08_spikes_energy", "08_from_scratch"],
           9: ["09_timings"],
           10: ["10_vgg16", "10_measured_runs"]}
_results = {}          # lesson number -> globals, for checks across lessons


@pytest.fixture(scope="module")
def shared_out(tmp_path_factory):
    return tmp_path_factory.mktemp("lessons_7_10")


@pytest.fixture
def run_lesson(monkeypatch, shared_out):
    """Run a lesson in quick mode and return its globals; figures go to ``shared_out``."""
    runner = lesson_runner(monkeypatch, shared_out, FILES, FIGURES)
    run = next(runner)

    def run_and_keep(number):
        _results[number] = run(number)
        return _results[number]

    yield run_and_keep
    next(runner, None)


def test_lesson_07_conversion(run_lesson):
    g = run_lesson(7)
    acc, ann = g["acc_vs_T"], g["ann_accuracy"]
    assert ann > 0.4                                              # the ANN learned (chance 0.10)
    # the threshold search: leak 1, thresholds = max over steps of the per-step percentile
    assert all(float(g["snn_params"][f"{n}.leak"]) == 1.0 for n in g["thresholds"])
    for name, v in g["thresholds"].items():
        assert v > 0 and max(g["per_step"][name]) == v
    assert len(set(g["per_step"]["conv1"])) == 1                  # direct encoding: constant
    # the latency problem: accuracy climbs with T, from chance to the ANN's
    assert acc[0] < 0.2 and acc[-1] >= ann - 0.05
    assert acc[-1] > acc[3] + 0.2
    assert np.mean(acc[-8:]) > np.mean(acc[4:8]) + 0.15
    assert g["T_close"] >= 8
    assert abs(g["check5"] - acc[4]) <= 1.0 / len(g["y_test"]) + 1e-12   # shortcut == evaluate
    # the scaling factor: lower is better at few steps, worse at many; more spikes
    by_scale = g["acc_by_scale"]
    assert by_scale[0.5][3] > by_scale[1.0][3] + 0.1
    assert by_scale[0.3][-1] < by_scale[1.0][-1] - 0.1
    rates = [g["network_rate"][s] for s in (1.0, 0.7, 0.5, 0.3)]
    assert rates == sorted(rates)
    assert g["exercise_first_threshold_rise"] >= 1.0                 # exercise 1: q = 1 (maximum)
    assert g["max_thresholds"][g["first"]] >= g["thresholds"][g["first"]]


def test_lesson_08_diet_finetuning(run_lesson):
    g = run_lesson(8)
    net, before, after, runs, start = g["net"], g["before"], g["after"], g["runs"], g["start"]
    neuron_keys = [k for k in start if k.endswith((".leak", ".threshold"))]
    # the claim: DIET at T=5 beats the best converted SNN at T=5
    assert g["T"] == 5 and g["diet_cfg"].T == 5
    assert g["scale"] == max(g["pick_accuracy"], key=g["pick_accuracy"].get)   # on training images
    assert before is g["converted"][g["scale"]][1]
    assert after.accuracy > before.accuracy
    cfg = g["diet_cfg"]
    assert cfg.optimizer == "adam" and cfg.amsgrad and cfg.weight_decay == 0.0
    # one normalisation throughout: the full training set's, which the ANN was trained with
    assert len(g["diet_data"].x_train) == g["diet_images"] < len(g["data"].x_train)
    assert np.array_equal(g["diet_data"].mean, g["data"].mean)
    assert np.array_equal(g["diet_data"].std, g["data"].std)
    # three runs from the same start, same seed, epochs and rate; only learn/factor differ
    assert list(runs) == ["weights only", "DIET", "DIET, neuron lr x10"]
    cfgs = {name: run["cfg"] for name, run in runs.items()}
    assert cfgs["weights only"].learn == ("weight",)
    assert cfgs["DIET"].learn == cfgs["DIET, neuron lr x10"].learn == PARAM_KINDS
    assert [c.neuron_lr_factor for c in cfgs.values()] == [1.0, 1.0, 10.0]
    assert len({(c.seed, c.epochs, c.lr, c.batch_size) for c in cfgs.values()}) == 1
    assert runs["DIET"]["eval"] is after
    assert all(0.0 <= float(start[k]) <= 1.0 for k in start if k.endswith(".leak"))
    for run in runs.values():
        log = run["log"]
        assert [r["epoch"] for r in log] == list(range(1, g["diet_epochs"] + 1))
        assert all(set(r["leaks"]) == set(r["thresholds"]) == set(net.neurons) for r in log)
        assert all(0.0 <= leak <= 1.0 for r in log for leak in r["leaks"].values())
        # the last logged epoch is the final evaluation: same images, same normalisation
        assert log[-1]["test_acc"] == run["eval"].accuracy
        assert all(0 < r <= 5 for r in run["eval"].spike_rates.values())
    # the control: weights only leaves every leak and threshold exactly as converted
    assert all(np.array_equal(runs["weights only"]["params"][k], start[k]) for k in neuron_keys)
    assert any(not np.array_equal(runs["weights only"]["params"][k], start[k])
               for k in start if k.endswith(".weight"))
    # DIET moves the thresholds; the larger neuron rate moves the leak at least as far
    assert any(not np.array_equal(runs["DIET"]["params"][k], start[k])
               for k in neuron_keys if k.endswith(".threshold"))
    assert runs["DIET"]["threshold_change"] > 0
    assert runs["DIET, neuron lr x10"]["leak_change"] >= runs["DIET"]["leak_change"]
    # the mechanism: converted leaks start at exactly 1, and no leak moves more than N * lr
    assert all(float(start[k]) == 1.0 for k in neuron_keys if k.endswith(".leak"))
    steps = g["steps_per_epoch"] * g["diet_epochs"]
    for name in ("DIET", "DIET, neuron lr x10"):
        run = runs[name]
        assert run["bound"] <= steps * g["lr"] * run["cfg"].neuron_lr_factor + 1e-12
        assert run["leak_change"] <= run["bound"]
        assert 0.0 <= run["at_one"] <= 1.0
    # spike rates and energy are measured and consistent with the tables
    assert set(after.spike_rates) == set(net.neurons)
    assert g["energy_ratio"] > 1.0
    assert g["energy_ratio"] == pytest.approx(g["totals"]["DIET, T = 5"]["ratio"])
    assert g["energy_ratio"] < g["ceiling"]
    assert g["totals"][g["long_key"]]["snn_joules"] > g["totals"]["DIET, T = 5"]["snn_joules"]
    # a convolutional SNN trained from scratch for the same epochs at T = 5 ends below DIET
    assert g["scratch_cfg"].T == 5 and g["scratch_cfg"].epochs == g["diet_cfg"].epochs
    assert g["scratch_cfg"].lr == g["diet_cfg"].lr and g["scratch_cfg"].chance_epochs == 0
    assert g["scratch_log"][-1]["test_acc"] == g["scratch"].accuracy < after.accuracy
    assert len(g["scratch_curve"]) == len(g["diet_curve"]) == g["diet_epochs"] + 1
    assert g["exercise_leak_bound"] == pytest.approx(100 * runs["DIET"]["bound"])
    if 7 in _results:                                     # lesson 8 reused lesson 7's ANN
        assert g["RECIPE"] == _results[7]["RECIPE"]
        assert g["ann_accuracy"] == _results[7]["ann_accuracy"]


def test_lesson_09_gpu(run_lesson):
    g = run_lesson(9)
    assert g["HAS_GPU"] == gpu_available()
    assert all(g["refused"].values())                             # the strict device refuses
    strict = g["parity"]["strict"]
    assert strict["loss"] == 0 and strict["grads"] == 0 and strict["spikes equal"]
    if g["HAS_GPU"]:
        assert g["parity"]["gpu"]["spikes equal"] and g["parity"]["gpu"]["grads"] < 1e-8
    else:
        assert "gpu" not in g["timings"]                          # no GPU numbers without a GPU
    assert set(g["timings"]) >= {"cpu", "strict"}
    assert all(t > 0 for times in g["timings"].values() for t in times)
    assert g["strict_log"][0]["epoch"] == 1                       # a whole fit on the strict device


def _has_cifar():
    return (data_dir() / "cifar-10-batches-py").is_dir()


def _check_lesson_10(g):
    assert g["vgg16_flops"] == 338_403_328 and len(g["vgg16"].neurons) == 15
    assert "338,403,328" in g["cli_text"]
    # the recipe box: the short-budget ANN recipe, the factor picked on training images,
    # DIET at a constant 1e-4; the lesson's own run uses exactly these settings
    recipe = g["ANN_RECIPE"]
    assert (recipe["optimizer"], recipe["nesterov"], recipe["schedule"]) == ("sgd", True, "cosine")
    assert recipe["lsuv_images"] > 0 and recipe["warmup_epochs"] > 0
    assert g["ann_cfg"].lsuv_images == recipe["lsuv_images"] and g["ann_cfg"].lr == recipe["lr"]
    assert (g["diet_cfg"].lr, g["diet_cfg"].schedule, g["diet_cfg"].T) == (1e-4, "constant", 5)
    assert g["scale"] in g["SCALES"]
    assert g["by_scale"][g["scale"]][1] == max(acc for _, acc in g["by_scale"].values())
    # a real result, never a refusal: every stage learned and is reported
    assert "refusal" not in g and "summary" not in g
    assert g["ann_eval"].accuracy > 0.2
    assert g["converted"].accuracy > 0.15 and g["diet"].accuracy > 0.15
    assert g["diet_log"][-1]["test_acc"] == g["diet"].accuracy and g["energy"]["ratio"] > 0
    assert set(g["diet"].spike_rates) == set(g["small_net"].neurons)
    assert set(g["step_seconds"]) == {"ann", "snn"} and min(g["step_seconds"].values()) > 0
    # the printed GPU commands say what the box says
    commands = g["commands"]
    assert [c[1] for c in commands] == ["train-ann", "convert", "benchmarks/pick_scale.py",
                                        "finetune", "evaluate", "energy"]
    assert all("--device" in c and "gpu" in c for c in commands)
    convert = commands[1]
    assert convert[convert.index("--scale") + 1] == "1.0"          # never x0.7 at T = 5
    finetune = commands[3]
    assert finetune[finetune.index("--lr") + 1] == "1e-4"
    assert finetune[finetune.index("--schedule") + 1] == "constant"
    assert "--recipe" not in commands[0]                           # the default: the short recipe
    assert commands[0][commands[0].index("--epochs") + 1] == "40"  # as the box says
    assert g["first_share"][g["small_arch"]["name"]] > g["first_share"]["vgg16"]   # exercise 3
    # the measured CPU runs' committed logs, read and drawn
    ann_log = g["measured"]["vgg16_w4"]["ANN"]
    assert len(ann_log) == 30 and ann_log[-1]["test_acc"] > 0.7
    assert abs(g["gaps"]["vgg5", "DIET"]) < 0.02                   # vgg5: DIET within 2 points
    assert {("resnet20_w4", "DIET"), ("vgg16_w4", "DIET at 3e-4")} <= set(g["gaps"])
    short, authors = g["compared"]["short"], g["compared"]["authors"]
    assert len(short) == len(authors) == 10 and short[-1]["test_acc"] > authors[-1]["test_acc"]


def test_lesson_10_vgg16_cifar(run_lesson):
    g = run_lesson(10)
    _check_lesson_10(g)
    assert g["data_name"] == ("cifar10" if _has_cifar() else "shapes")


@pytest.mark.slow                 # the whole lesson a second time (minutes)
@pytest.mark.skipif(not _has_cifar(), reason="the test above already ran the fallback")
def test_lesson_10_falls_back_to_shapes_without_cifar(run_lesson, monkeypatch, tmp_path):
    monkeypatch.setenv("DIET_NP_DATA", str(tmp_path / "empty"))
    g = run_lesson(10)
    _check_lesson_10(g)
    assert g["data_name"] == "shapes"


@pytest.mark.parametrize("number", sorted(FILES))
def test_lesson_is_a_percent_notebook_citing_equations(number):
    text = check_percent_notebook(LESSONS / FILES[number])
    assert "**Assumes:**" in text and "**Runs in:**" in text
