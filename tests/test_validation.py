"""Bad input gets a clear error at the public boundary, naming what is wrong."""
import numpy as np
import pytest

from diet_np.architectures import build_network, vgg
from diet_np.backend import BackendError, get_xp, to_device
from diet_np.conversion import ConversionError, convert, scale_thresholds
from diet_np.ops import softmax_cross_entropy


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


@pytest.mark.parametrize("x, name", [([[0.0]], "list"), (0.5, "float")])
def test_input_that_is_not_an_array(case, x, name):
    net, params, _ = case
    with pytest.raises(TypeError, match=rf"x \(the input batch\) must be an array.*got {name}"):
        net.forward(params, x, train=False, T=2)


@pytest.mark.parametrize("key", ["conv1.leak", "fc1.threshold", "out.weight"])
def test_parameter_that_is_not_an_array(case, key):
    net, params, x = case
    params[key] = 0.5 if key != "out.weight" else params[key].tolist()
    with pytest.raises(TypeError, match=rf"parameter {key} must be an array"):
        net.forward(params, x, train=False, T=2)
    with pytest.raises(TypeError, match=rf"parameter {key} must be an array"):
        net.forward_stepwise(params, x, T=2)


def test_numpy_scalar_parameters_are_accepted(case):
    """Arithmetic on a 0-d NumPy array gives a NumPy scalar (pipeline.run_all unscales
    thresholds so): it acts as a 0-d host array."""
    net, params, x = case
    expected, _ = net.forward(params, x, train=False, T=2)
    params = {k: (v * 1.0 if k.endswith(".threshold") else v) for k, v in params.items()}
    assert isinstance(params["fc1.threshold"], np.generic)
    np.testing.assert_array_equal(net.forward(params, x, train=False, T=2)[0], expected)


@pytest.mark.parametrize("dropout, match", [
    ({"conv": 1.5}, r"dropout\['conv'\] is 1.5.*\[0, 1\)"),
    ({"fc": -0.1}, r"dropout\['fc'\] is -0.1"),
    ({"fc": 1.0}, r"dropout\['fc'\] is 1.0"),
    ({"conv": "0.2"}, r"dropout\['conv'\] is '0.2'.*number"),
    ({"conv": True}, r"dropout\['conv'\] is True"),
    ({"conv": float("nan")}, r"dropout\['conv'\] is nan"),
    ({"cnv": 0.5}, r"unknown dropout key 'cnv' \(rate 0.5\)"),
])
def test_bad_dropout_rates(case, dropout, match):
    net, params, x = case
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=match):
        net.forward(params, x, train=True, T=2, rng=rng, dropout=dropout)
    with pytest.raises(ValueError, match=match):   # also without the (syncing) checks
        net.forward(params, x, train=True, T=2, rng=rng, dropout=dropout, check=False)
    net.dropout = dropout                          # the network's own default rates
    with pytest.raises(ValueError, match=match):
        net.forward(params, x, train=True, T=2, rng=rng)


def test_dropout_not_a_dict(case):
    net, params, x = case
    with pytest.raises(TypeError, match="dropout must be a dict"):
        net.forward(params, x, train=True, T=2, rng=np.random.default_rng(0), dropout=0.2)


# ---------------------------------------------------------------------------
# softmax_cross_entropy
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("xp_name", ["cpu", "strict"])
@pytest.mark.parametrize("labels, match", [([0, 3], r"\[0, 3\).*got range \[0, 3\]"),
                                           ([-1, 2], r"got range \[-1, 2\]")])
def test_loss_labels_outside_the_classes(xp_name, labels, match):
    xp = get_xp(xp_name)
    logits = xp.zeros((2, 3), dtype=np.float32)
    y = xp.asarray(np.array(labels))
    with pytest.raises(ValueError, match=match):
        softmax_cross_entropy(logits, y)
    loss, _ = softmax_cross_entropy(logits, y, check=False)  # the loop that checked once
    assert np.isfinite(float(loss))


def test_loss_argument_types_and_shapes():
    logits = np.zeros((2, 3), np.float32)
    with pytest.raises(TypeError, match="labels must be an array.*list"):
        softmax_cross_entropy(logits, [0, 1])
    with pytest.raises(TypeError, match="logits must be an array.*list"):
        softmax_cross_entropy(logits.tolist(), np.array([0, 1]))
    with pytest.raises(ValueError, match=r"labels must have shape \(2,\)"):
        softmax_cross_entropy(logits, np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="integers"):
        softmax_cross_entropy(logits, np.array([0.0, 1.0]))
    loss, _ = softmax_cross_entropy(logits, np.array([0, 2]))
    assert float(loss) == pytest.approx(np.log(3))


# ---------------------------------------------------------------------------
# Conversion: threshold scale and the thresholds it gives
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [float("inf"), float("nan"), 0.0, -0.5])
def test_bad_threshold_scale(case, scale):
    net, params, x = case
    with pytest.raises(ConversionError, match=f"finite number > 0; got {scale}"):
        scale_thresholds(params, scale)
    with pytest.raises(ConversionError, match=f"finite number > 0; got {scale}"):
        convert(net, params, x + 1, T_find=2, scale=scale, show_progress=False)
    with pytest.raises(TypeError, match="number"):
        scale_thresholds(params, "0.7")


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
@pytest.mark.parametrize("scale, threshold, gives", [(1e38, 10.0, "inf"), (1e-40, 1e-10, "0.0")])
def test_scaled_threshold_out_of_range(case, scale, threshold, gives):
    net, params, _ = case
    params["fc1.threshold"][...] = threshold
    before = {k: v.copy() for k, v in params.items()}
    with pytest.raises(ConversionError, match=rf"layer fc1: .* gives {gives} in float32"):
        scale_thresholds(params, scale)
    for k, v in params.items():                    # nothing was changed
        np.testing.assert_array_equal(v, before[k])


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_non_finite_threshold_search(case):
    net, params, x = case
    params["fc1.weight"][0, 0] = np.inf                    # a diverged ANN
    with pytest.raises(ConversionError, match="layer fc1: .*non-finite"):
        convert(net, params, x + 1, T_find=2, show_progress=False)
