"""The reference LIF neuron (diet_np/lif.py): Eq. 2-5 forward, Eq. 10-14 backward,
single-step vs multi-step (tests/test_fast.py holds diet_np/fast/lif.py to it)."""
import numpy as np
import pytest
from conftest import with_thresholds

from diet_np.architectures import vgg
from diet_np.gradcheck import DEFAULT_TOL, numerical_gradient, relative_error
from diet_np.lif import lif_backward, lif_forward, lif_step, lif_step_backward
from diet_np.surrogates import Triangle


def test_lif_step_trajectory_eq2_to_5():
    """Hand-computed membrane trace: leak 0.9, threshold 1, constant current 0.7."""
    m, spikes, us = np.zeros(1), [], []
    for _ in range(3):
        spike, m, u = lif_step(np.array([0.7]), m, 0.9, 1.0)
        spikes.append(bool(spike[0]))
        us.append(float(u[0]))
    assert spikes == [False, True, False]
    np.testing.assert_allclose(us, [0.7, 1.33, 0.997])         # u3 = 0.9 * (1.33 - 1) + 0.7
    np.testing.assert_allclose(m, [0.997])


def test_spike_needs_z_strictly_positive():
    spike, m, _ = lif_step(np.array([1.0, 1.0 + 1e-9]), np.zeros(2), 1.0, 1.0)
    assert spike.tolist() == [False, True]


def test_worked_example_one_neuron_three_steps_true_spiking():
    """Gradients of one neuron over T = 3 steps, derived by hand from Eq. 10-14.

    I = w x (direct encoding, same every step), leak lam, threshold v = 0.8 (not 1,
    so that a missing 1/v would show).  The loss reaches the spikes as do^t = c_t.
    sg(z) = 0.3 max(0, 1 - |z|).
    """
    w, x, lam, v, c = 0.7, 1.0, 0.9, 0.8, [1.0, -2.0, 0.5]
    sg = lambda z: 0.3 * max(0.0, 1.0 - abs(z))
    # forward, Eq. 2-5
    u1 = w * x               # 0.7    z1 = -0.125   o1 = 0   m1 = 0.7
    o1, m1 = 0.0, u1
    u2 = lam * m1 + w * x    # 1.33   z2 = 0.6625   o2 = 1   m2 = 0.53
    o2, m2 = 1.0, u2 - v
    u3 = lam * m2 + w * x    # 1.177  z3 = 0.47125  o3 = 1
    o3 = 1.0
    z1, z2, z3 = u1 / v - 1, u2 / v - 1, u3 / v - 1
    # backward, t = 3, 2, 1
    du3 = 0.0 + c[2] * sg(z3) / v                                   # Eq. 10, dm^3 = 0
    dv = -c[2] * sg(z3) * u3 / v**2 - 0.0 * o3                       # Eq. 14
    dlam = du3 * m2                                                  # Eq. 13
    dm2 = lam * du3                                                  # Eq. 11
    du2 = dm2 + c[1] * sg(z2) / v
    dv += -c[1] * sg(z2) * u2 / v**2 - dm2 * o2                      # reset path: o2 = 1
    dlam += du2 * m1
    dm1 = lam * du2
    du1 = dm1 + c[0] * sg(z1) / v
    dv += -c[0] * sg(z1) * u1 / v**2 - dm1 * o1
    dw = (du1 + du2 + du3) * x                                       # Eq. 12, layer 1
    # the same numbers written out: sg(z3) = 0.3 * 0.52875 = 0.158625, du3 = 0.5 * 0.158625 / 0.8
    assert np.isclose(du3, 0.099140625)
    assert np.isclose(du2, 0.9 * 0.099140625 - 2.0 * 0.3 * 0.3375 / 0.8)

    out, cache = lif_forward(np.array([[w * x]]), np.array(lam), np.array(v), T=3)
    assert out[:, 0].tolist() == [o1, o2, o3]
    np.testing.assert_allclose(cache.u[:, 0], [u1, u2, u3])
    dcurrent, dleak, dthreshold = lif_backward(np.array(c)[:, None], cache)
    assert dcurrent.shape == (1, 1)                                  # constant current: summed
    np.testing.assert_allclose([float(dcurrent[0, 0]) * x, float(dleak), float(dthreshold)],
                               [dw, dlam, dv], rtol=1e-12)


def test_constant_current_equals_repeated_current():
    rng = np.random.default_rng(0)
    current = rng.normal(0.5, 0.5, size=(1, 3, 4))
    lam, v = np.array(0.8), np.array(0.7)
    a, ca = lif_forward(current, lam, v, T=5)
    b, cb = lif_forward(np.repeat(current, 5, axis=0), lam, v, T=5)
    np.testing.assert_array_equal(a, b)
    dout = rng.normal(size=a.shape)
    ga, gb = lif_backward(dout, ca), lif_backward(dout, cb)
    np.testing.assert_allclose(ga[0], gb[0].sum(0, keepdims=True))
    np.testing.assert_allclose(ga[1:], gb[1:])


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_lif_layer_smooth_mode_matches_finite_differences(seed):
    rng = np.random.default_rng(seed)
    current = rng.normal(0.6, 0.6, size=(6, 3, 5))
    lam, v = np.array(rng.uniform(0.5, 0.95)), np.array(rng.uniform(0.4, 0.9))
    out, cache = lif_forward(current, lam, v, T=6, smooth=True)
    z = cache.u / v - 1
    assert np.abs(z).min() > 1e-4 and np.abs(np.abs(z) - 1).min() > 1e-4   # away from kinks
    assert cache.spikes.any()                                             # resets happen
    dout = rng.normal(size=out.shape)
    f = lambda: np.sum(lif_forward(current, lam, v, T=6, smooth=True)[0] * dout)
    dcurrent, dleak, dthreshold = lif_backward(dout, cache)
    assert relative_error(dcurrent, numerical_gradient(f, current)) < DEFAULT_TOL
    assert relative_error(dleak, numerical_gradient(f, lam)) < DEFAULT_TOL
    assert relative_error(dthreshold, numerical_gradient(f, v)) < DEFAULT_TOL


def test_smooth_mode_sends_the_primitive_forward():
    current = np.full((1, 1, 1), 0.7)
    out, cache = lif_forward(current, np.array(1.0), np.array(1.0), T=2, smooth=True)
    np.testing.assert_allclose(out[:, 0, 0], Triangle().primitive(cache.u[:, 0, 0] - 1.0))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_multi_step_equals_single_step_api(dtype):
    net = vgg([6, "A", 8, "M"], [12], num_classes=4, input_shape=(3, 8, 8),
              dropout={"conv": 0.2, "fc": 0.3})
    params = net.init_params(0, dtype=dtype)
    with_thresholds(params, 0.05)
    x = np.random.default_rng(1).normal(size=(5, 3, 8, 8)).astype(dtype)
    for train in (False, True):
        a, trace = net.forward(params, x, train=train, T=6, rng=np.random.default_rng(7))
        b, counts = net.forward_stepwise(params, x, train=train, T=6, rng=np.random.default_rng(7))
        np.testing.assert_allclose(a, b, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-7)
        assert {k: float(v) for k, v in counts.items()} == \
               {k: float(v) for k, v in trace.spike_counts.items()}
        assert all(float(v) > 0 for v in counts.values())


def test_one_step_backward_is_eq10_11_13_14():
    """lif_step_backward on numbers worked by hand: do = 2, dm^t = 0.5, u = 0.9,
    v = 0.6 (z = 0.5, sigma' = 0.3 * 0.5 = 0.15), o = 1, m^{t-1} = 0.4, leak 0.8."""
    du, dm_prev, dleak, dthreshold = lif_step_backward(
        np.array([2.0]), np.array([0.5]), np.array([0.9]), np.array([True]), np.array([0.4]),
        0.8, 0.6, Triangle())
    du_expected = 0.5 + 2.0 * 0.15 / 0.6                                  # Eq. 10: 1.0
    np.testing.assert_allclose(du, [du_expected])
    np.testing.assert_allclose(dm_prev, [0.8 * du_expected])              # Eq. 11
    np.testing.assert_allclose(dleak, du_expected * 0.4)                  # Eq. 13
    np.testing.assert_allclose(dthreshold, -2.0 * 0.15 * 0.9 / 0.36 - 0.5 * 1.0)   # Eq. 14


@pytest.mark.parametrize("engine", ["reference", "fast"])
def test_network_forward_runs_the_engine_it_is_given(engine, monkeypatch):
    """The trace records the engine; the backward runs it, whatever the network's
    default says by then."""
    from diet_np import fast, lif
    from diet_np.ops import softmax_cross_entropy

    calls = []
    for module in (fast, lif):
        for name in ("lif_forward", "lif_backward"):
            original = getattr(module, name)
            monkeypatch.setattr(module, name, lambda *a, _f=original, _n=(module.__name__, name),
                                **k: calls.append(_n) or _f(*a, **k))
    import diet_np.layers
    monkeypatch.setattr(diet_np.layers, "lif_forward", lif.lif_forward)
    monkeypatch.setattr(diet_np.layers, "lif_backward", lif.lif_backward)
    net = vgg([4, "A"], [], num_classes=3, input_shape=(3, 4, 4))
    params = with_thresholds(net.init_params(0, dtype=np.float64), 0.1)
    x = np.random.default_rng(0).normal(size=(2, 3, 4, 4))
    logits, trace = net.forward(params, x, train=False, T=3, engine=engine)
    assert trace.engine.name == engine
    net.engine = "reference" if engine == "fast" else "fast"
    net.backward(params, softmax_cross_entropy(logits, np.array([0, 1]))[1], trace)
    module = "diet_np.fast" if engine == "fast" else "diet_np.lif"
    assert calls == [(module, "lif_forward"), (module, "lif_backward")]
