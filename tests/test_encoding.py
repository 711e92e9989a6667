"""Rate-coded input (diet_np.encoding), its BPTT and energy, and the training options
the DIET ablations use: which parameter kinds learn, and the neurons' learning rate."""
import numpy as np
import pytest

from conftest import lively_params
from diet_np import cli
from diet_np.architectures import build_network, vgg
from diet_np.conversion import find_thresholds
from diet_np.data import make_shapes
from diet_np.encoding import INPUT, encode, rate_spikes
from diet_np.errors import ConfigError
from diet_np.gradcheck import DEFAULT_TOL, check_network_gradients, network_kink_margin
from diet_np.metrics import E_AC_PJ, energy_table, spike_rates
from diet_np.model_file import data_record, read_model, write_model
from diet_np.optim import SGD, Adam
from diet_np.training import TrainConfig, diet_config, evaluate, fit, trained_keys


def small_vgg():
    return vgg([4, "A", 5, "A"], [6], num_classes=3, input_shape=(3, 8, 8),
               dropout={"conv": 0.25, "fc": 0.25})


def test_direct_encoding_is_the_image_once():
    x = np.ones((2, 3, 4, 4))
    assert encode(x, 5, "direct", None).shape == (1, 2, 3, 4, 4)


def test_rate_spikes_are_signed_and_fire_with_probability_min_abs_x_1():
    x = np.array([0.0, 0.25, -0.5, 0.9, -2.0, 3.0])
    s = encode(np.broadcast_to(x, (4000, 6)).copy(), 5, "rate", np.random.default_rng(0))
    assert s.shape == (5, 4000, 6) and set(np.unique(s)) <= {-1.0, 0.0, 1.0}
    assert np.all(s * np.sign(x) >= 0)                       # a spike keeps the pixel's sign
    np.testing.assert_allclose(np.abs(s).mean(axis=(0, 1)), np.minimum(np.abs(x), 1), atol=0.02)
    assert not np.array_equal(s[0], s[1])                    # a new draw every step


def test_rate_encoding_needs_a_generator():
    net = small_vgg()
    params = net.init_params(0)
    x = np.zeros((1, 3, 8, 8), np.float32)
    with pytest.raises(ValueError, match="generator"):
        net.forward(params, x, train=False, T=2, encoding="rate")
    with pytest.raises(ValueError, match="encoding must be one of"):
        net.forward(params, x, train=False, T=2, encoding="poisson")


def test_stepwise_and_whole_pass_draw_the_same_input_spikes():
    net = small_vgg()
    params = lively_params(net, 0)
    x = np.random.default_rng(1).normal(size=(3, 3, 8, 8))
    logits, trace = net.forward(params, x, train=False, T=4, encoding="rate",
                                rng=np.random.default_rng(7))
    stepwise, counts = net.forward_stepwise(params, x, T=4, encoding="rate",
                                            rng=np.random.default_rng(7))
    np.testing.assert_allclose(stepwise, logits, rtol=1e-12, atol=1e-12)
    assert float(counts[INPUT]) == float(trace.spike_counts[INPUT]) > 0


def test_layer_1_current_changes_every_step_under_rate_coding_only():
    net = small_vgg()
    params = lively_params(net, 0)
    x = np.random.default_rng(1).normal(size=(2, 3, 8, 8))
    for encoding, differ in (("direct", False), ("rate", True)):
        currents = []

        def observe(name, t, current):
            if name == "conv1":
                currents.append(current.copy())
        net.forward_stepwise(params, x, T=3, encoding=encoding, observe=observe,
                             rng=np.random.default_rng(0))
        assert (not np.array_equal(currents[0], currents[1])) == differ, encoding


@pytest.mark.parametrize("seed", [0, 1])
def test_rate_coded_network_gradients_every_parameter(seed):
    """BPTT with rate-coded input against central differences: weights, leaks and
    thresholds (the spikes are drawn from a fixed seed, so the loss is a function
    of the parameters alone)."""
    net = small_vgg()
    net.encoding = "rate"
    params = lively_params(net, seed)
    rng = np.random.default_rng(seed)
    for _ in range(200):
        x = rng.normal(size=(3,) + net.input_shape)
        if network_kink_margin(net, params, x, T=4, dropout_seed=3) > 1e-3:
            break
    else:
        pytest.fail("could not draw an input away from the kinks")
    y = np.arange(3) % 3
    errors = check_network_gradients(net, params, x, y, T=4, dropout_seed=3)
    assert set(errors) == set(params)
    bad = {k: e for k, e in errors.items() if not e < DEFAULT_TOL}
    assert not bad, bad


def test_energy_prices_rate_coded_input_as_accumulates():
    net = small_vgg()
    params = lively_params(net, 0)
    x = np.random.default_rng(1).normal(size=(4, 3, 8, 8))
    _, trace = net.forward(params, x, train=False, T=3, encoding="rate",
                           rng=np.random.default_rng(0))
    rates = spike_rates(net, {k: float(v) for k, v in trace.spike_counts.items()}, 4)
    expected = float(np.abs(encode(x, 3, "rate", np.random.default_rng(0))).sum()) / (4 * 192)
    assert rates[INPUT] == pytest.approx(expected)
    first = energy_table(net, rates)[0]
    assert first.source_rate == rates[INPUT]
    assert first.snn_pj == pytest.approx(E_AC_PJ * first.flops * rates[INPUT])
    direct = energy_table(net, {k: v for k, v in rates.items() if k != INPUT})[0]
    assert direct.source_rate is None and direct.snn_pj == direct.ann_pj


def test_threshold_search_walks_all_steps_for_rate_coded_layer_1():
    net = small_vgg()
    params = lively_params(net, 0)
    x = np.random.default_rng(1).normal(size=(16, 3, 8, 8))
    direct = find_thresholds(net, dict(params), x, T_find=8, show_progress=False)
    rate = find_thresholds(net, {k: v.copy() for k, v in params.items()}, x, T_find=8,
                           show_progress=False, encoding="rate")
    assert rate["conv1"] < direct["conv1"]      # spikes in {-1, 0, 1}: smaller currents
    assert all(v > 0 for v in rate.values())


# -- which parameters learn, and at what rate -------------------------------

@pytest.mark.parametrize("learn", [("weight",), ("weight", "threshold"), ("weight", "leak"),
                                   ("weight", "leak", "threshold")])
def test_frozen_neuron_parameters_stay_exactly_where_they_were(learn, tmp_path):
    data = make_shapes(n_train=32, n_test=16, seed=2)
    net = build_network({"features": [8, "A"], "classifier": [], "name": "t"}, 10)
    params = lively_params(net, 0)
    params = {k: v.astype(np.float32) for k, v in params.items()}
    before = {k: v.copy() for k, v in params.items()}
    cfg = diet_config(epochs=1, batch_size=16, T=3, lr=1e-2, learn=learn, chance_epochs=0)
    fit(net, params, data, cfg, str(tmp_path), arch="t", xp=np, show_progress=False)
    for key, spec in net.specs.items():
        moved = not np.array_equal(params[key], before[key])
        assert moved == (spec.kind in learn), key
    assert trained_keys(net, cfg) == [k for k, s in net.specs.items() if s.kind in learn]


def test_learn_must_include_weights_and_name_known_kinds():
    for learn in [("leak",), ("weight", "bias"), ("weight", "weight")]:
        with pytest.raises(ConfigError, match="learn"):
            diet_config(learn=learn).validate()
    with pytest.raises(ConfigError, match="direct"):
        TrainConfig(mode="ann", encoding="rate").validate()


@pytest.mark.parametrize("make", [lambda f: SGD(0.1, momentum=0.0, neuron_lr_factor=f),
                                  lambda f: Adam(0.1, neuron_lr_factor=f, engine="reference")])
def test_neuron_lr_factor_scales_only_leak_and_threshold_steps(make):
    grads = {"a.weight": np.full(3, 0.5), "a.leak": np.array(0.5), "a.threshold": np.array(-0.5)}
    steps = {}
    for factor in (1.0, 10.0):
        params = {"a.weight": np.ones(3), "a.leak": np.array(0.5), "a.threshold": np.array(1.0)}
        make(factor).step(params, grads)
        steps[factor] = {k: params[k] - (1.0 if k != "a.leak" else 0.5) for k in params}
    np.testing.assert_allclose(steps[10.0]["a.weight"], steps[1.0]["a.weight"])
    for key in ("a.leak", "a.threshold"):
        np.testing.assert_allclose(steps[10.0][key], 10 * steps[1.0][key])


def test_a_stored_config_from_before_these_options_loads_with_the_paper_settings():
    stored = diet_config().to_dict()
    for key in ("encoding", "learn", "neuron_lr_factor"):
        del stored[key]
    cfg = TrainConfig.from_dict(stored)
    assert (cfg.encoding, cfg.learn, cfg.neuron_lr_factor) == (
        "direct", ("weight", "leak", "threshold"), 1.0)


def test_cli_records_the_encoding_and_later_commands_take_it(tmp_path, capsys):
    data = make_shapes(n_train=48, n_test=24, seed=0)
    net = build_network("vgg5_w8", 10)                # an ANN, untrained: the plumbing only
    (tmp_path / "ann").mkdir()
    write_model(tmp_path / "ann/checkpoint.npz", net.init_params(0, init="kaiming-in"),
                arch="vgg5_w8", kind="ann", T=1, data=data_record(data))
    converted = str(tmp_path / "rate.npz")
    assert cli.main(["convert", "--quiet", "--checkpoint", str(tmp_path / "ann/checkpoint.npz"),
                     "--find-steps", "4", "--images", "16", "--encoding", "rate",
                     "--out", converted]) == 0
    assert read_model(converted).encoding == "rate"
    assert cli.main(["finetune", "--quiet", "--checkpoint", converted, "--epochs", "1",
                     "--batch-size", "24", "--learn", "weight", "threshold",
                     "--out", str(tmp_path / "diet")]) == 0
    out = capsys.readouterr().out
    assert "rate input, leak frozen" in out
    model = read_model(str(tmp_path / "diet/checkpoint.npz"))
    assert model.encoding == "rate" and model.config["learn"] == ["weight", "threshold"]
    assert cli.main(["evaluate", "--quiet", "--checkpoint", str(tmp_path / "ann/checkpoint.npz"),
                     "--encoding", "rate"]) == 2
    assert "--encoding applies to an SNN" in capsys.readouterr().err


def test_evaluation_of_rate_coded_input_is_repeatable():
    data = make_shapes(n_train=16, n_test=16, seed=3)
    net = build_network({"features": [8, "A"], "classifier": [], "name": "t"}, 10)
    params = {k: v.astype(np.float32) for k, v in lively_params(net, 0).items()}
    runs = [evaluate(net, params, data.x_test, data.y_test, data, T=3, mode="snn", xp=np,
                     show_progress=False, encoding="rate") for _ in range(2)]
    assert runs[0] == runs[1] and INPUT in runs[0].spike_rates
    assert rate_spikes(np.zeros(3), np.random.default_rng(0)).sum() == 0
