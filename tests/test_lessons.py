"""The lessons are run as tests, in quick mode, and what they claim is checked.

Each lesson runs with ``runpy.run_path`` (as ``__main__``) with ``DIET_NP_QUICK=1`` and
its figures written to a temporary folder. The lessons assert their own claims; the
tests below check the key variables they leave behind, so that a lesson whose
assertions were weakened or removed still fails here.
"""
import math

import numpy as np
import pytest
from conftest import LESSONS, check_percent_notebook, lesson_runner

LESSON_FILES = {
    1: "01_lif_neuron.py",
    2: "02_surrogate_gradients.py",
    3: "03_bptt_by_hand.py",
    4: "04_learning_leak_threshold.py",
    5: "05_spiking_layer_and_readout.py",
    6: "06_conv_pooling_from_scratch.py",
}
FIGURES = {
    1: ["01_discretisation", "01_membrane_trace", "01_leak", "01_soft_vs_zero_reset",
        "01_rate_curves"],
    2: ["02_staircase", "02_surrogates", "02_dead_neuron"],
    3: ["03_unrolled_graph", "03_reset_term"],
    4: ["04_leak_threshold_only", "04_joint_training"],
    5: ["05_training", "05_spike_raster"],
    6: ["06_what_conv_computes", "06_im2col_picture", "06_conv_timing"],
}


@pytest.fixture
def run_lesson(monkeypatch, tmp_path):
    """Run a lesson in quick mode; return its globals. Figures go to tmp_path."""
    yield from lesson_runner(monkeypatch, tmp_path, LESSON_FILES, FIGURES)


def test_lesson_01_lif_neuron(run_lesson):
    g = run_lesson(1)
    assert g["err_exact"] < 1e-12 < 1e-3 < g["err_euler"]           # exp(-dt/tau) is exact
    assert g["err_ivp"] < 1e-8                                      # ... also vs solve_ivp
    assert g["edge_spikes"].tolist() == [False, True]                      # strictly greater fires
    assert g["edge_u"][1] - g["edge_u"][0] == pytest.approx(1e-9, rel=1e-6)  # the gap it prints
    assert g["exercise_onset"] == {0.099: False, 0.1: False, 0.102: True}  # exercise 1: I > v(1 - lambda)
    assert g["n_trace_spikes"] > 3
    counts = g["counts_leak"]
    assert counts[0] > counts[1] > counts[2] == 0                    # the leak silences
    assert g["soft_error"] <= 1.0 + 1e-9                             # |count - T I / v| <= 1
    assert g["gap"].max() > 0.2 and np.all(g["gap"] >= 0)            # reset to zero loses spikes
    assert g["form_difference"] > 0.01                               # paper form vs Eq. 2+5


def test_lesson_02_surrogates(run_lesson):
    g = run_lesson(2)
    assert g["zero_fraction"] > 0.95                                 # spikes stop gradients
    assert max(g["surrogate_errors"].values()) < 1e-6                # grad = d primitive / dz
    assert set(g["surrogate_errors"]) == {"triangle (Eq. 8)", "fast sigmoid", "atan"}
    assert max(g["chain_errors"]) < 1e-6                             # do/du, do/dv below Eq. 8
    assert g["gamma"] == 0.3
    tri, atan = g["triangle_hist"], g["atan_hist"]
    assert np.all(tri[:, 2] == 0.0) and np.all(tri[:, 1] == 0)       # dead neuron stays dead
    assert atan[-1, 1] == g["target_count"]                          # a heavy tail revives it
    np.testing.assert_allclose(g["exercise_gamma_ratio"], 3.0, rtol=1e-12)   # exercise 1


def test_lesson_03_bptt_by_hand(run_lesson):
    g = run_lesson(3)
    assert g["step_match"] < 1e-12                                   # hand steps == lif_step(_backward)
    assert max(g["library_match"].values()) < 1e-12                  # hand loops == library
    assert max(g["fast_match"].values()) < 1e-12                     # ... and the fast engine
    assert g["kink_margin"] > 1e-3
    assert max(g["smooth_errors"].values()) < 1e-6                   # finite differences agree
    assert g["error_without_reset"] > 1e-2                           # ... not without Eq. 14's reset term
    assert abs(g["dv_reset_total"]) > 0.01
    assert np.all(g["numeric_spk"] == 0.0)                           # spiking mode: no true gradient
    assert min(g["attached_change"].values()) > 1e-2                 # attaching the reset changes them
    assert min(g["attached_errors"].values()) > 1e-2                 # ... and fails the smooth check
    assert g["exercise_no_leak_error"] > 1e-2                        # exercise 1's answer


def test_lesson_04_leak_and_threshold(run_lesson):
    g = run_lesson(4)
    assert abs(g["final_leak"] - 0.75) < 0.02                        # recovers the teacher
    assert abs(g["final_threshold"] - 0.5) < 0.02
    assert g["final_loss_a"] < 0.01 * g["hist_a"]["loss"][0]
    assert g["final_loss_b"] < 0.05 * g["hist_b"]["loss"][0]         # counts approach targets
    assert np.mean(np.abs(g["counts_joint"] - g["target"]) <= 1) > 0.95
    assert g["hist_b"]["leak"].max() <= 1.0 < g["hist_free"]["leak"].max()   # Eq. 15 clamp
    assert g["exercise_leak_only_loss"] > 10 * g["final_loss_a"]     # exercise 1: the leak alone fails
    assert g["exercise_leak_only_leak"] == 1.0                       # ... held at 1 by the clamp


def test_lesson_05_spiking_classifier(run_lesson):
    g = run_lesson(5)
    assert g["T"] == 5 and g["epochs"] >= 1
    assert max(g["network_errors"].values()) < 1e-6                  # network BPTT is exact (smooth)
    assert set(g["network_errors"]) == {"fc1 + out", "fc1 + fc2 + out"}   # one and two LIF layers
    assert max(g["hand_vs_library"].values()) < 1e-12                # by hand == Network.backward
    assert g["attached_error"] > 1e-2                                # attached reset: not the gradient
    assert g["reset_gradient_change"]["out.weight"] == 0.0           # the readout does not see it
    assert min(v for k, v in g["reset_gradient_change"].items() if k != "out.weight") > 1e-3
    assert set(g["histories"]) == {"SNN (Network.backward)", "ANN (ReLU, one pass)",
                                   "SNN, hand-written, reset detached",
                                   "SNN, hand-written, reset attached"}
    assert g["ann_accuracy"] > 0.15                                  # the ANN baseline learned
    assert g["exercise_last_step_error"] > 1e-2 and g["exercise_repeat_gap"] < 1e-12
    assert abs(g["initial_loss"] - math.log(10)) < 0.3
    assert g["last_loss"] < g["first_loss"] - 0.2                    # the loss falls
    assert g["final_accuracy"] > 0.15                                # chance is 0.10
    np.testing.assert_allclose(g["U"], g["logits_multistep"], rtol=1e-5, atol=1e-6)  # Eq. 6


def test_lesson_06_conv_and_pooling(run_lesson):
    g = run_lesson(6)
    assert max(g["conv_grad_errors"]) < 1e-8
    assert max(g["pool_errors"].values()) < 1e-8
    assert max(g["adjoint_gaps"]) < 1e-12
    assert g["speedups"].min() > 5                                   # im2col beats the loops
    assert max(g["winograd_gaps"]) < 1e-12                           # same conv, fewer products
    assert g["out_stride"].shape == (1, 3, 4, 3) and g["exercise_stride_gap"] < 1e-12   # exercise 1


@pytest.mark.parametrize("number", sorted(LESSON_FILES))
def test_lesson_is_a_percent_notebook_citing_equations(number):
    check_percent_notebook(LESSONS / LESSON_FILES[number])


def test_readme_lists_ten_lessons():
    readme = (LESSONS / "README.md").read_text()
    for name in list(LESSON_FILES.values()) + ["07_conversion.py", "08_diet_finetuning.py",
                                                "09_gpu.py", "10_vgg16_cifar.py"]:
        assert name in readme
