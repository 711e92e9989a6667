"""A full training step on the strict test device, which refuses NumPy like CuPy does."""
import numpy as np
import pytest
from conftest import ENGINE_CHOICES, engine_named, with_thresholds

from diet_np.architectures import vgg
from diet_np.backend import BackendError, default_rng, get_xp, to_device, to_host
from diet_np.ops import softmax_cross_entropy
from diet_np.optim import Adam, clamp_neuron_params
from diet_np.strict import StrictDeviceError


def training_step(net, params, opt, x, y, rng, T):
    logits, trace = net.forward(params, x, train=True, T=T, rng=rng)
    loss, dlogits = softmax_cross_entropy(logits, y)
    grads = net.backward(params, dlogits, trace)
    opt.step(params, grads)
    clamp_neuron_params(params)
    return loss, trace


@pytest.mark.parametrize("choice", ENGINE_CHOICES)
def test_training_step_on_strict_device_equals_numpy(choice):
    """Bit for bit, in the reference engine and in the fast one under each
    convolution algorithm (Winograd's transforms use no NumPy-only call either,
    so they would run on CuPy too)."""
    engine = engine_named(choice, threads=1)   # the strict device, like CuPy, has no CPU pool
    net = vgg([4, "A", 6, "A"], [16], num_classes=5, input_shape=(3, 8, 8),
              dropout={"conv": 0.2, "fc": 0.5})
    net.engine = engine
    host = net.init_params(0)
    with_thresholds(host, 0.1)
    x = np.random.default_rng(1).normal(size=(4, 3, 8, 8)).astype(np.float32)
    y = np.array([0, 1, 2, 4])
    xs = get_xp("strict")
    strict_params = to_device(host, xs)
    results = {}
    for name, xp, params in [("numpy", np, host), ("strict", xs, strict_params)]:
        opt = Adam(1e-2, amsgrad=True, engine=engine.name)
        rng = default_rng(xp, 0) if xp is np else _strict_rng(xs)
        xx, yy = to_device(x, xp), to_device(y, xp)
        for _ in range(2):
            loss, trace = training_step(net, params, opt, xx, yy, rng, T=3)
        results[name] = (float(loss), to_host(params))
        assert all(float(c) > 0 for c in trace.spike_counts.values())
    assert results["numpy"][0] == results["strict"][0]
    for k in host:
        np.testing.assert_array_equal(results["numpy"][1][k], results["strict"][1][k])


def _strict_rng(xs):
    """The strict device's Generator draws the same numbers as NumPy's with the same seed."""
    return xs.random.default_rng(0)


def test_strict_device_catches_mixing():
    xs = get_xp("strict")
    a = xs.ones((2, 2))
    with pytest.raises(StrictDeviceError):
        np.asarray(a)
    with pytest.raises(StrictDeviceError):
        a + np.ones((2, 2))
    with pytest.raises(StrictDeviceError):
        np.ones((2, 2)) * a
    with pytest.raises(StrictDeviceError):
        a[np.array([0])]
    with pytest.raises(BackendError):
        softmax_cross_entropy(xs.zeros((2, 3)), np.array([0, 1]))
    assert float(a.sum()) == 4.0          # size-1 conversions allowed, as on CuPy
