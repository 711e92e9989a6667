"""The LIF neuron: Eq. 2-5 forward, Eq. 10-14 backward, single-step vs multi-step."""
import numpy as np
import pytest
from conftest import with_thresholds

from diet_np.architectures import vgg
from diet_np.gradcheck import DEFAULT_TOL, numerical_gradient, relative_error
from diet_np.lif import lif_backward, lif_forward, lif_step
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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_u_greater_than_v_is_eq3_4_exactly(dtype):
    """lif_forward fires on u > v; Eq. 3-4 say u / v - 1 > 0.  For v > 0 the two
    agree bit for bit, also for potentials one rounding step from the threshold."""
    rng = np.random.default_rng(0)
    thresholds = np.concatenate([rng.uniform(1e-3, 10, 300), 2.0 ** np.arange(-10, 5),
                                 [0.1, 0.3, 1 / 3, 0.7]]).astype(dtype)
    for v in thresholds:
        up, down = np.nextafter(v, dtype(np.inf)), np.nextafter(v, dtype(-np.inf))
        u = np.concatenate([v * np.array([0.5, 1.0, 1.5, 2.0, 3.0], dtype),
                            [up, down, np.nextafter(up, dtype(np.inf))],
                            v * rng.uniform(0.9, 1.1, 50).astype(dtype)]).astype(dtype)
        _, cache = lif_forward(u[None], dtype(1.0), v, 1)        # m^0 = 0, so u^1 = I
        np.testing.assert_array_equal(cache.u[0], u)
        np.testing.assert_array_equal(cache.spikes[0], (u / v - dtype(1.0)) > 0)


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


def test_compact_output_is_the_cached_boolean_spikes():
    """compact=True hands on the cache's boolean spikes (no float copy), equal to the
    default float output; smooth mode still sends the float primitive forward."""
    rng = np.random.default_rng(6)
    current = rng.normal(0.6, 0.5, size=(4, 3, 5)).astype(np.float32)
    lam, v = np.array(0.9, np.float32), np.array(0.7, np.float32)
    floats, _ = lif_forward(current, lam, v, T=4)
    spikes, cache = lif_forward(current, lam, v, T=4, compact=True)
    assert spikes is cache.spikes and spikes.dtype == bool and floats.dtype == np.float32
    np.testing.assert_array_equal(spikes, floats)
    smooth, _ = lif_forward(current, lam, v, T=4, smooth=True, compact=True)
    assert smooth.dtype == np.float32 and not np.isin(smooth, (0.0, 1.0)).all()


@pytest.mark.parametrize("constant", [False, True])
def test_overwrite_reuses_the_callers_arrays_with_the_same_results(constant):
    """overwrite=True: u^t takes the current's memory and dI^t dout's (a constant
    current and a broadcast dout are left alone); every result is unchanged."""
    rng = np.random.default_rng(8)
    T = 4
    current = rng.normal(0.6, 0.5, size=(1 if constant else T, 3, 5))
    lam, v = np.array(0.9), np.array(0.7)
    out, cache = lif_forward(current.copy(), lam, v, T)
    given = current.copy()
    out_in_place, cache_in_place = lif_forward(given, lam, v, T, overwrite=True)
    np.testing.assert_array_equal(out_in_place, out)
    np.testing.assert_array_equal(cache_in_place.u, cache.u)
    assert (cache_in_place.u is given) != constant
    dout = rng.normal(size=out.shape)
    expected = lif_backward(dout.copy(), cache)
    given = dout.copy()
    result = lif_backward(given, cache_in_place, overwrite=True)
    for a, b in zip(result, expected):
        np.testing.assert_array_equal(a, b)
    assert (result[0] is given) != constant
    shared = np.broadcast_to(dout[:1], dout.shape)          # read-only: never written
    assert lif_backward(shared, cache, overwrite=True)[0] is not shared
