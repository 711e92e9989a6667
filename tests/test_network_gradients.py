"""Whole networks: BPTT against finite differences (smooth mode) and against an
independent reference implementation of the spec (true spiking mode)."""
import numpy as np
import pytest

from conftest import ENGINE_CHOICES, engine_named, lively_params
from diet_np.architectures import build_network, vgg
from diet_np.gradcheck import (DEFAULT_TOL, check_network_gradients, network_kink_margin,
                               network_loss_fn)
from diet_np.layers import AvgPool, Conv, Flatten, Layer, Neuron, Readout, ResidualBlock
from diet_np.network import Network
from diet_np.ops import softmax_cross_entropy
from reference_snn import reference_grads

MARGIN = 1e-3   # no neuron closer than this to a kink (z = 0, +-1) at the base point


def small_vgg(pool="A"):
    """conv - pool - conv - pool - linear - output."""
    return vgg([4, pool, 5, pool], [6], num_classes=3, input_shape=(3, 8, 8),
               dropout={"conv": 0.25, "fc": 0.25})


def draw_case(net, seed, T, surrogate="triangle", dropout_seed=3):
    """Parameters and inputs whose neurons are all away from kinks (nudged by
    redrawing the input), with every layer spiking."""
    params = lively_params(net, seed)
    rng = np.random.default_rng(seed)
    for _ in range(200):
        x = rng.normal(size=(3,) + net.input_shape)
        margin = network_kink_margin(net, params, x, T=T, surrogate=surrogate,
                                     dropout_seed=dropout_seed)
        if margin > MARGIN:
            break
    else:
        pytest.fail("could not draw an input away from the kinks")
    return params, x, np.arange(3) % net.num_classes


SMOOTH_CASES = [(seed, choice) for choice in ENGINE_CHOICES
                for seed in ((0,) if choice == "reference" else (0, 1))]
"""The fast paths on two seeds, the reference (the cheaper one) on one."""


@pytest.mark.parametrize("surrogate", ["triangle", "fast_sigmoid", "atan"])
@pytest.mark.parametrize("seed,choice", SMOOTH_CASES)
def test_small_snn_smooth_mode_every_parameter(surrogate, seed, choice):
    net = small_vgg()
    net.engine = engine_named(choice)             # each engine and convolution path
    params, x, y = draw_case(net, seed, T=4, surrogate=surrogate)
    _, trace = network_loss_fn(net, params, x, y, T=4, dropout_seed=3, smooth=True).run()
    assert all(float(c) > 0 for c in trace.spike_counts.values()), "every layer must spike"
    errors = check_network_gradients(net, params, x, y, T=4, surrogate=surrogate, dropout_seed=3)
    assert set(errors) == set(params)
    bad = {k: e for k, e in errors.items() if not e < DEFAULT_TOL}
    assert not bad, bad


@pytest.mark.parametrize("engine", ["reference", "fast"])
def test_maxpool_snn_smooth_mode(engine):
    """Max pooling needs a surrogate whose primitive never saturates: the triangle's
    primitive is flat outside [-1, 1], which would make ties (kinks) in the pool."""
    net = small_vgg("M")
    net.engine = engine
    params, x, y = draw_case(net, 2, T=5, surrogate="atan")
    errors = check_network_gradients(net, params, x, y, T=5, surrogate="atan", dropout_seed=3)
    assert max(errors.values()) < DEFAULT_TOL, errors


def tiny_resnet():
    layers = [Conv("pre1", 4, first=True), Neuron("pre1"), AvgPool(2),
              ResidualBlock("block1", 4), ResidualBlock("block2", 6, stride=2),
              Flatten(), Readout("out", 3)]
    return Network(layers, (3, 8, 8), 3, "tiny-resnet", {"conv": 0.2, "fc": 0.0})


@pytest.mark.parametrize("engine", [pytest.param("reference", marks=pytest.mark.slow), "fast"])
def test_residual_blocks_smooth_mode(engine):
    net = tiny_resnet()
    net.engine = engine
    assert "block2.shortcut.weight" in net.specs and "block1.shortcut.weight" not in net.specs
    params, x, y = draw_case(net, 4, T=4)
    errors = check_network_gradients(net, params, x, y, T=4, dropout_seed=3)
    assert max(errors.values()) < DEFAULT_TOL, errors


@pytest.mark.parametrize("engine", ["reference", "fast"])
def test_ann_mode_gradients(engine):
    net = small_vgg()
    net.engine = engine
    params, x, y = lively_params(net, 5), np.random.default_rng(5).normal(size=(3, 3, 8, 8)), np.arange(3)
    errors = check_network_gradients(net, params, x, y, T=1, mode="ann", dropout_seed=3)
    assert max(v for k, v in errors.items() if k.endswith(".weight")) < DEFAULT_TOL, errors
    assert all(errors[k] == 0.0 for k in errors if not k.endswith(".weight"))


@pytest.mark.parametrize("choice", ENGINE_CHOICES)
@pytest.mark.parametrize("seed", range(2))
def test_true_spiking_mode_matches_independent_reference(seed, choice):
    net = vgg([4, "A", 5, "A"], [6], num_classes=3, input_shape=(3, 8, 8))
    net.engine = engine_named(choice)
    layers = [("conv", "conv1", 1, 1), ("avgpool",), ("conv", "conv2", 1, 1), ("avgpool",),
              ("flatten",), ("fc", "fc1"), ("out", "out")]
    params = lively_params(net, seed)
    rng = np.random.default_rng(100 + seed)
    x, y, T = rng.normal(size=(4, 3, 8, 8)), np.array([0, 1, 2, 1]), 5
    logits, trace = net.forward(params, x, train=False, T=T)
    loss, dlogits = softmax_cross_entropy(logits, y)
    grads = net.backward(params, dlogits, trace)
    ref_loss, ref_grads = reference_grads(layers, params, x, y, T)
    assert np.isclose(float(loss), ref_loss, rtol=1e-12)
    assert all(float(c) > 0 for c in trace.spike_counts.values())
    for key in params:
        np.testing.assert_allclose(grads[key], ref_grads[key], rtol=1e-9, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("engine", ["reference", "fast"])
def test_grads_keyed_like_params_for_every_architecture(engine):
    for arch in ("vgg5", "resnet20"):
        net = build_network(arch)
        net.engine = engine
        params = net.init_params(0)
        x = np.random.default_rng(0).normal(size=(2, 3, 32, 32)).astype(np.float32)
        logits, trace = net.forward(params, x, train=True, T=2, rng=np.random.default_rng(0))
        grads = net.backward(params, softmax_cross_entropy(logits, np.array([1, 2]))[1], trace)
        assert list(grads) == list(params)
        assert all(grads[k].shape == params[k].shape and grads[k].dtype == np.float32 for k in params)


@pytest.mark.parametrize("engine", ["reference", "fast"])
def test_network_without_convolutions(engine):
    """A fully connected SNN: the first layer is linear, so nothing below it needs a gradient."""
    net = vgg([], [7], num_classes=3, input_shape=(2, 4, 4))
    net.engine = engine
    params, x, y = draw_case(net, 6, T=4, surrogate="atan", dropout_seed=None)
    errors = check_network_gradients(net, params, x, y, T=4, surrogate="atan")
    assert max(errors.values()) < DEFAULT_TOL, errors


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_boolean_spikes_change_nothing(dtype, monkeypatch):
    """Under the fast engine spikes travel between layers as booleans (through
    dropout, pooling, conv and dense layers, in training mode): logits and
    gradients are bit for bit those of spikes sent on as floats, and everything
    stays in the pass's dtype."""
    from diet_np import fast
    from diet_np.backend import default_rng

    net = vgg([8, 8, "A", 8, "M"], [12], num_classes=4, input_shape=(3, 8, 8),
              dropout={"conv": 0.3, "fc": 0.3})
    params = {k: v.astype(dtype) for k, v in lively_params(net, 4).items()}
    x = np.random.default_rng(4).normal(size=(5, 3, 8, 8)).astype(dtype)
    y = np.arange(5) % 4
    runs, lif_forward = [], fast.lif_forward
    for compact in (True, False):
        monkeypatch.setattr(fast, "lif_forward",
                            lambda *a, compact_=compact, **k: lif_forward(*a, **{**k, "compact": compact_}))
        logits, trace = net.forward(params, x, train=True, T=3, rng=default_rng(np, 7))
        cached = [a for a in _arrays(trace.caches) if a.dtype.kind == "f"]
        assert cached and all(a.dtype == dtype for a in cached)   # masks, pooled spikes, u
        loss, dlogits = softmax_cross_entropy(logits, y)
        runs.append((logits, net.backward(params, dlogits, trace)))
    (logits_b, grads_b), (logits_f, grads_f) = runs
    assert logits_b.dtype == dtype
    np.testing.assert_array_equal(logits_b, logits_f)
    for k in grads_f:
        assert grads_b[k].dtype == dtype, k
        np.testing.assert_array_equal(grads_b[k], grads_f[k], err_msg=k)


def _arrays(tree):
    """Every ndarray in nested tuples and lists (a trace's caches)."""
    if isinstance(tree, np.ndarray):
        return [tree]
    if isinstance(tree, (tuple, list)):
        return [a for item in tree for a in _arrays(item)]
    return []


class Tanh(Layer):
    """A layer written without the fast engine in mind: it expects floats, keeps
    its output in its cache and reads it back in the backward."""

    def forward(self, params, x, ctx):
        assert x.dtype.kind == "f", "boolean spikes reached a layer that does not take them"
        y = np.tanh(x)
        return y, y

    def backward(self, params, dy, y, grads):
        return dy * (1.0 - y * y)


def test_a_layer_that_declares_nothing_is_safe_under_the_fast_engine():
    """Next to a Neuron, a new layer gets float spikes and keeps its arrays: the
    fast engine's gradients equal the reference's (were the neuron to write its
    potentials over Tanh's output, Tanh's backward would read them instead)."""
    net = Network([Conv("c1", 4, first=True), Tanh(), Neuron("c1"), Tanh(), Conv("c2", 5),
                   Neuron("c2"), AvgPool(2), Flatten(), Readout("out", 3)], (3, 8, 8), 3)
    assert not net.body.layers[2].overwrites_current and net.body.layers[5].overwrites_current
    params = lively_params(net, 7)
    x = np.random.default_rng(7).normal(size=(3, 3, 8, 8))
    grads = {}
    for engine in ("reference", "fast"):
        logits, trace = net.forward(params, x, train=False, T=4, engine=engine)
        assert all(float(c) > 0 for c in trace.spike_counts.values())
        grads[engine] = net.backward(params, softmax_cross_entropy(logits, np.arange(3))[1], trace)
    for k in params:
        np.testing.assert_allclose(grads["fast"][k], grads["reference"][k], rtol=1e-9,
                                   atol=1e-12, err_msg=k)
