"""Bad input gets a clear error at the public boundary, naming what is wrong."""
import numpy as np
import pytest

from diet_np.architectures import build_network, vgg
from diet_np.backend import BackendError, get_xp, to_device


@pytest.fixture
def case():
    net = vgg([4, "A"], [8], num_classes=3, input_shape=(3, 8, 8))
    params = net.init_params(0)
    x = np.zeros((2, 3, 8, 8), np.float32)
    return net, params, x


def test_mismatched_input_shape(case):
    net, params, _ = case
    with pytest.raises(ValueError, match=r"input must have shape \(batch, 3, 8, 8\); got \(2, 3, 9, 8\)"):
        net.forward(params, np.zeros((2, 3, 9, 8), np.float32), train=False, T=2)


def test_wrong_dtype(case):
    net, params, x = case
    with pytest.raises(TypeError, match="uint8"):
        net.forward(params, x.astype(np.uint8), train=False, T=2)
    with pytest.raises(TypeError, match="float64 but parameters are float32"):
        net.forward(params, x.astype(np.float64), train=False, T=2)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input(case, bad):
    net, params, x = case
    x[1, 2, 3, 4] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        net.forward(params, x, train=False, T=2)


@pytest.mark.parametrize("T", [0, -1, 2.5, True])
def test_bad_timesteps(case, T):
    net, params, x = case
    with pytest.raises(ValueError, match="T \\(timesteps\\)"):
        net.forward(params, x, train=False, T=T)


@pytest.mark.parametrize("leak", [-0.1, 1.5])
def test_leak_outside_unit_interval(case, leak):
    net, params, x = case
    params["conv1.leak"][...] = leak
    with pytest.raises(ValueError, match="leak of layer conv1"):
        net.forward(params, x, train=False, T=2)


@pytest.mark.parametrize("threshold", [0.0, -1.0])
def test_threshold_not_positive(case, threshold):
    net, params, x = case
    params["fc1.threshold"][...] = threshold
    with pytest.raises(ValueError, match="threshold of layer fc1"):
        net.forward(params, x, train=False, T=2)


def test_ann_mode_ignores_neuron_parameters(case):
    net, params, x = case
    params["fc1.threshold"][...] = 0.0
    net.forward(params, x, train=False, mode="ann")


@pytest.mark.parametrize("token", ["X", "C-3", 0, 2.5, None, True])
def test_unknown_layer_token(token):
    with pytest.raises(ValueError, match="unknown layer token"):
        vgg([8, token], [4])


def test_unknown_architecture_and_mode(case):
    with pytest.raises(ValueError, match="unknown architecture 'vgg7'"):
        build_network("vgg7")
    net, params, x = case
    with pytest.raises(ValueError, match="mode"):
        net.forward(params, x, train=False, mode="cnn")


def test_missing_or_misshapen_parameters(case):
    net, params, x = case
    with pytest.raises(KeyError, match="missing"):
        net.forward({k: v for k, v in params.items() if k != "out.weight"}, x, train=False)
    params["out.weight"] = np.zeros((4, 8), np.float32)
    with pytest.raises(ValueError, match=r"out.weight has shape \(4, 8\)"):
        net.forward(params, x, train=False)


def test_two_backends_mixed(case):
    net, params, x = case
    strict = get_xp("strict")
    with pytest.raises(BackendError, match="different backends"):
        net.forward(params, to_device(x, strict), train=False, T=2)


def test_training_with_dropout_needs_rng(case):
    net, params, x = case
    net.dropout = {"conv": 0.2, "fc": 0.5}
    with pytest.raises(ValueError, match="random generator"):
        net.forward(params, x, train=True, T=2)


def test_backward_checks_dlogits_shape(case):
    net, params, x = case
    _, trace = net.forward(params, x, train=False, T=2)
    with pytest.raises(ValueError, match="dlogits"):
        net.backward(params, np.zeros((3, 3), np.float32), trace)
