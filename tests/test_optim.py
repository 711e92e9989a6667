"""Optimisers (PyTorch's formulas, checked by hand), Eq. 15's clamp and LR schedules."""
import math

import numpy as np
import pytest

from diet_np.backend import BackendError, get_xp, to_device, to_host
from diet_np.optim import SGD, Adam, clamp_neuron_params, make_optimizer
from diet_np.schedules import CosineSchedule, StepSchedule, make_schedule


def scalar_params(value=1.0, dtype=np.float64):
    return {"fc.weight": np.array([[value]], dtype=dtype)}


def grads_of(g, dtype=np.float64):
    return {"fc.weight": np.array([[g]], dtype=dtype)}


# --------------------------------------------------------------------------
# SGD: numbers worked out by hand
# --------------------------------------------------------------------------
def test_sgd_momentum_and_weight_decay_by_hand():
    # p=1, g=0.5, lr=0.1, momentum=0.9, wd=0.1
    # step 1: g' = 0.5 + 0.1*1 = 0.6; buf = 0.6; p = 1 - 0.06 = 0.94
    # step 2: g' = 0.5 + 0.094 = 0.594; buf = 0.54 + 0.594 = 1.134; p = 0.94 - 0.1134 = 0.8266
    params = scalar_params()
    opt = SGD(0.1, momentum=0.9, weight_decay=0.1)
    opt.step(params, grads_of(0.5))
    assert params["fc.weight"][0, 0] == pytest.approx(0.94, abs=1e-15)
    opt.step(params, grads_of(0.5))
    assert params["fc.weight"][0, 0] == pytest.approx(0.8266, abs=1e-15)
    assert opt.state["fc.weight"]["momentum_buffer"][0, 0] == pytest.approx(1.134, abs=1e-15)


def test_sgd_nesterov_and_plain_by_hand():
    # Nesterov, step 1: buf = 0.6; g = 0.6 + 0.9*0.6 = 1.14; p = 1 - 0.114 = 0.886
    # step 2: g' = 0.5 + 0.0886 = 0.5886; buf = 0.54 + 0.5886 = 1.1286;
    #         g = 0.5886 + 0.9*1.1286 = 1.60434; p = 0.886 - 0.160434 = 0.725566
    params = scalar_params()
    opt = SGD(0.1, momentum=0.9, weight_decay=0.1, nesterov=True)
    opt.step(params, grads_of(0.5))
    assert params["fc.weight"][0, 0] == pytest.approx(0.886, abs=1e-15)
    opt.step(params, grads_of(0.5))
    assert params["fc.weight"][0, 0] == pytest.approx(0.725566, abs=1e-14)
    # momentum 0: p -= lr * g, no state
    params = scalar_params()
    opt = SGD(0.5, momentum=0.0)
    opt.step(params, grads_of(0.25))
    assert params["fc.weight"][0, 0] == 0.875
    assert opt.state == {}


# --------------------------------------------------------------------------
# Adam: a float64 reference written with plain Python floats
# --------------------------------------------------------------------------
def adam_reference(p, grads, lr, b1, b2, eps, wd, amsgrad):
    m = s = s_max = 0.0
    for t, g in enumerate(grads, start=1):
        g = g + wd * p
        m = b1 * m + (1 - b1) * g
        s = b2 * s + (1 - b2) * g * g
        s_max = max(s_max, s)
        denom = math.sqrt(s_max if amsgrad else s) / math.sqrt(1 - b2 ** t) + eps
        p = p - (lr / (1 - b1 ** t)) * m / denom
    return p


def test_adam_first_step_by_hand():
    # m = 0.05, s = 0.00025; m_hat = 0.5, s_hat = 0.25 -> p = 1 - 0.1 * 0.5 / (0.5 + 1e-8)
    params = scalar_params()
    Adam(0.1).step(params, grads_of(0.5))
    assert params["fc.weight"][0, 0] == pytest.approx(1 - 0.1 * 0.5 / (0.5 + 1e-8), abs=1e-15)


@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("wd", [0.0, 0.05])
@pytest.mark.parametrize("engine", ["reference", "fast"])
def test_adam_matches_reference_elementwise(amsgrad, wd, engine):
    rng = np.random.default_rng(0)
    p0 = rng.normal(size=(7, 4))
    gs = [rng.normal(size=(7, 4)) * scale for scale in (3.0, 0.1, 0.1, 2.0, 0.01)]
    params = {"conv.weight": p0.copy()}
    opt = Adam(0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=wd, amsgrad=amsgrad,
               engine=engine)
    for g in gs:
        opt.step(params, {"conv.weight": g})
    expected = np.array([[adam_reference(p0[i, j], [g[i, j] for g in gs], 0.01, 0.8, 0.95,
                                         1e-6, wd, amsgrad) for j in range(4)] for i in range(7)])
    np.testing.assert_allclose(params["conv.weight"], expected, rtol=1e-13, atol=1e-15)
    assert opt.step_count == 5


def test_amsgrad_keeps_running_max_of_second_moment():
    params, opt = scalar_params(), Adam(0.01, amsgrad=True)
    plain_params, plain = scalar_params(), Adam(0.01)
    history = []
    for g in (10.0, 0.0, 0.0, 0.0):
        opt.step(params, grads_of(g))
        plain.step(plain_params, grads_of(g))
        history.append(opt.state["fc.weight"]["exp_avg_sq"][0, 0])
    st = opt.state["fc.weight"]
    assert st["max_exp_avg_sq"][0, 0] == max(history) == history[0]
    assert st["exp_avg_sq"][0, 0] < st["max_exp_avg_sq"][0, 0]
    assert "max_exp_avg_sq" not in plain.state["fc.weight"]
    # AMSGrad's larger denominator gives smaller steps once the gradient fades.
    assert params["fc.weight"][0, 0] > plain_params["fc.weight"][0, 0]


# --------------------------------------------------------------------------
# weight decay and Eq. 15's clamp
# --------------------------------------------------------------------------
def neuron_params(xp=np, dtype=np.float32):
    host = {"conv1.weight": np.full((2, 1, 3, 3), 0.5, dtype=dtype),
            "conv1.leak": np.array(1.0, dtype=dtype),
            "conv1.threshold": np.array(2.0, dtype=dtype),
            "fc.weight": np.full((3, 4), -0.25, dtype=dtype)}
    return {k: to_device(v, xp) for k, v in host.items()}


@pytest.mark.parametrize("opt", [SGD(0.1, weight_decay=0.5), Adam(0.1, weight_decay=0.5),
                                 make_optimizer("amsgrad", 0.1, weight_decay=0.5)])
def test_weight_decay_never_touches_leak_or_threshold(opt):
    params = neuron_params()
    zero = {k: np.zeros_like(v) for k, v in params.items()}
    opt.step(params, zero)
    assert params["conv1.leak"] == 1.0 and params["conv1.threshold"] == 2.0
    assert np.all(params["conv1.weight"] < 0.5) and np.all(params["fc.weight"] > -0.25)


def test_clamp_neuron_params_in_place():
    params = {"a.leak": np.array(1.3, np.float32), "b.leak": np.array(-0.2, np.float32),
              "c.leak": np.array(0.7, np.float32), "a.threshold": np.array(-1.0, np.float32),
              "b.threshold": np.array(0.5, np.float32), "w.weight": np.array([-5.0, 5.0], np.float32)}
    held = dict(params)
    clamp_neuron_params(params)
    assert held["a.leak"] == 1.0 and held["b.leak"] == 0.0 and held["c.leak"] == np.float32(0.7)
    assert held["a.threshold"] == np.float32(1e-3) and held["b.threshold"] == 0.5
    assert list(held["w.weight"]) == [-5.0, 5.0]
    assert all(params[k] is held[k] for k in params)
    assert params["a.leak"].dtype == np.float32 and params["a.leak"].shape == ()
    clamp_neuron_params(params, min_threshold=0.6)
    assert held["b.threshold"] == np.float32(0.6)
    with pytest.raises(ValueError, match="min_threshold"):
        clamp_neuron_params(params, min_threshold=0.0)


# --------------------------------------------------------------------------
# strict device, float32, in place
# --------------------------------------------------------------------------
@pytest.mark.parametrize("name,kw", [("sgd", {"weight_decay": 1e-2, "nesterov": True}),
                                     ("adam", {}), ("amsgrad", {"weight_decay": 1e-3})])
def test_runs_in_place_on_strict_device_like_numpy(name, kw):
    xp = get_xp("strict")
    rng = np.random.default_rng(1)
    host_grads = [{k: rng.normal(size=v.shape).astype(np.float32)
                   for k, v in neuron_params().items()} for _ in range(3)]
    results = {}
    for dev in (np, xp):
        params = neuron_params(dev)
        held = dict(params)
        opt = make_optimizer(name, 0.05, **kw)
        for g in host_grads:
            opt.step(params, to_device(g, dev))
            clamp_neuron_params(params)
        assert all(params[k] is held[k] for k in params), "updates must be in place"
        assert all(params[k].dtype == np.float32 for k in params)
        results[dev] = to_host(params)
    for k in results[np]:
        np.testing.assert_array_equal(results[np][k], results[xp][k])
    assert results[np]["conv1.leak"] <= 1.0


def test_mixing_host_grads_with_device_params_is_refused():
    xp = get_xp("strict")
    params = neuron_params(xp)
    host = {k: np.zeros(v.shape, np.float32) for k, v in params.items()}
    with pytest.raises(BackendError):
        SGD(0.1).step(params, host)


# --------------------------------------------------------------------------
# state_dict round trip
# --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["sgd", "adam", "amsgrad"])
def test_state_dict_resume_gives_identical_trajectory(name):
    rng = np.random.default_rng(2)
    grads = [{k: rng.normal(size=v.shape).astype(np.float32) for k, v in neuron_params().items()}
             for _ in range(6)]
    params, opt = neuron_params(), make_optimizer(name, 0.01)
    for g in grads[:3]:
        opt.step(params, g)
    saved_params = {k: v.copy() for k, v in params.items()}
    saved_state = opt.state_dict()
    for g in grads[3:]:
        opt.step(params, g, lr=0.002)
    # the saved state is a copy: stepping on did not change it
    resumed_params, resumed = {k: v.copy() for k, v in saved_params.items()}, make_optimizer(name, 0.01)
    resumed.load_state_dict(saved_state)
    assert resumed.step_count == 3
    for g in grads[3:]:
        resumed.step(resumed_params, g, lr=0.002)
    for k in params:
        np.testing.assert_array_equal(params[k], resumed_params[k])


def test_load_state_dict_refuses_mismatches():
    params, opt = neuron_params(), Adam(0.01, amsgrad=True)
    opt.step(params, {k: np.ones_like(v) for k, v in params.items()})
    with pytest.raises(ValueError, match="'adam' optimiser state into 'sgd'"):
        SGD(0.1).load_state_dict(opt.state_dict())
    with pytest.raises(ValueError, match="amsgrad=True"):
        Adam(0.01).load_state_dict(opt.state_dict())
    # state of another model: a clear error at the next step, naming the key
    other = Adam(0.01, amsgrad=True)
    state = opt.state_dict()
    state["state"]["fc.weight"] = {n: np.zeros((5, 4), np.float32) for n in state["state"]["fc.weight"]}
    other.load_state_dict(state)
    with pytest.raises(ValueError, match="'fc.weight'.*\\(5, 4\\)"):
        other.step(params, {k: np.ones_like(v) for k, v in params.items()})


# --------------------------------------------------------------------------
# bad arguments
# --------------------------------------------------------------------------
@pytest.mark.parametrize("name,lr,kw,match", [
    ("rmsprop", 0.1, {}, "unknown optimiser 'rmsprop'"),
    ("sgd", -0.1, {}, "learning rate"),
    ("sgd", float("nan"), {}, "finite"),
    ("sgd", 0.1, {"momentum": 1.0}, "momentum"),
    ("sgd", 0.1, {"momentum": -0.1}, "momentum"),
    ("sgd", 0.1, {"momentum": 0.0, "nesterov": True}, "Nesterov"),
    ("sgd", 0.1, {"weight_decay": -1e-4}, "weight_decay"),
    ("sgd", 0.1, {"betas": (0.9, 0.99)}, "unknown argument.*betas"),
    ("adam", 0.1, {"betas": (1.0, 0.999)}, "betas\\[0\\]"),
    ("adam", 0.1, {"betas": (0.9, -0.1)}, "betas\\[1\\]"),
    ("adam", 0.1, {"betas": 0.9}, "pair"),
    ("adam", 0.1, {"eps": 0.0}, "eps"),
    ("adam", 0.1, {"momentum": 0.9}, "unknown argument.*momentum"),
    ("amsgrad", 0.1, {"amsgrad": False}, "amsgrad"),
    ("adam", "0.1", {}, "real number"),
])
def test_bad_optimiser_arguments(name, lr, kw, match):
    with pytest.raises(ValueError, match=match):
        make_optimizer(name, lr, **kw)


def test_grads_must_match_params():
    params = neuron_params()
    opt = SGD(0.1)
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    with pytest.raises(ValueError, match="no gradient for parameter 'conv1.threshold'"):
        opt.step(params, {k: v for k, v in grads.items() if k != "conv1.threshold"})
    with pytest.raises(ValueError, match="gradient 'fc2.weight' has no matching parameter"):
        opt.step(params, {**grads, "fc2.weight": np.zeros(3)})
    with pytest.raises(ValueError, match="'fc.weight' has shape \\(4, 3\\).*\\(3, 4\\)"):
        opt.step(params, {**grads, "fc.weight": np.zeros((4, 3), np.float32)})
    with pytest.raises(ValueError, match="learning rate"):
        opt.step(params, grads, lr=-1.0)
    assert opt.step_count == 0 and np.all(params["fc.weight"] == -0.25)


# --------------------------------------------------------------------------
# schedules
# --------------------------------------------------------------------------
def test_step_schedule_divides_at_fractions():
    s = StepSchedule(1e-2, 100)  # the authors' ANN schedule: /10 at 45%, 70%, 90%
    assert s.milestone_epochs == (45, 70, 90)
    assert [s.lr_at(e) for e in (0, 44)] == [1e-2, 1e-2]
    assert s.lr_at(45) == pytest.approx(1e-3) and s.lr_at(69) == pytest.approx(1e-3)
    assert s.lr_at(70) == pytest.approx(1e-4) and s.lr_at(99) == pytest.approx(1e-5)
    fine = make_schedule("step", 1e-4, 10, milestones=(0.6, 0.8, 0.9))  # DIET fine-tuning
    assert [round(fine.lr_at(e) / 1e-4, 6) for e in range(10)] == [1] * 6 + [0.1] * 2 + [0.01, 0.001]


def test_cosine_schedule():
    s = CosineSchedule(0.1, 10, min_lr=0.02)
    assert s.lr_at(0) == pytest.approx(0.1)
    assert s.lr_at(5) == pytest.approx(0.06)
    assert s.lr_at(10) == pytest.approx(0.02)
    assert s.lr_at(2.5) > s.lr_at(3)
    assert make_schedule("constant", 0.3, 4).lr_at(3) == 0.3


@pytest.mark.parametrize("name,args,kw,match", [
    ("linear", (0.1, 10), {}, "unknown schedule"),
    ("step", (-0.1, 10), {}, "base_lr"),
    ("step", (0.1, 0), {}, "total_epochs"),
    ("step", (0.1, 2.5), {}, "total_epochs"),
    ("step", (0.1, 10), {"milestones": (0.7, 0.45)}, "increasing"),
    ("step", (0.1, 10), {"milestones": (0.5, 1.5)}, "milestones\\[1\\]"),
    ("step", (0.1, 10), {"gamma": 0.0}, "gamma"),
    ("step", (0.1, 10), {"min_lr": 0.0}, "unknown argument"),
    ("cosine", (0.1, 10), {"min_lr": 0.2}, "min_lr"),
])
def test_bad_schedule_arguments(name, args, kw, match):
    with pytest.raises(ValueError, match=match):
        make_schedule(name, *args, **kw)


def test_schedule_epoch_out_of_range():
    s = StepSchedule(0.1, 10)
    for bad in (-1, 11, float("nan")):
        with pytest.raises(ValueError, match="epoch"):
            s.lr_at(bad)
