"""The short-budget ANN recipe's parts: gradient-norm clipping, the warm-up schedule,
LSUV, Nesterov through the config, and the CLI's --recipe and its flags."""
import json
import math

import numpy as np
import pytest

from diet_np import cli, training
from diet_np.architectures import build_network
from diet_np.errors import ConfigError
from diet_np.lsuv import _output_std, lsuv_init
from diet_np.optim import clip_grad_norm
from diet_np.schedules import CosineSchedule, Warmup, make_schedule
from diet_np.training import TrainConfig, ann_config, run_optimizer


# -- clipping -------------------------------------------------------------------
def test_clip_grad_norm_caps_the_global_norm_by_hand():
    grads = {"a.weight": np.array([3.0, 0.0]), "b.weight": np.array([[4.0]])}  # norm 5
    norm = clip_grad_norm(grads, 2.0)
    assert float(norm) == pytest.approx(5.0)
    np.testing.assert_allclose(grads["a.weight"], [1.2, 0.0], rtol=1e-6)   # x 2/5
    np.testing.assert_allclose(grads["b.weight"], [[1.6]], rtol=1e-6)
    small = {"a.weight": np.array([0.3, 0.4])}                             # norm 0.5 < 2
    clip_grad_norm(small, 2.0)
    np.testing.assert_array_equal(small["a.weight"], [0.3, 0.4])
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm(small, 0.0)


# -- warm-up --------------------------------------------------------------------
def test_warmup_rises_linearly_then_runs_the_schedule():
    s = make_schedule("cosine", 0.05, 10, warmup_epochs=2)
    assert isinstance(s, Warmup) and s.per_step and s.total_epochs == 10
    assert s.lr_at(0) == 0.0 and s.lr_at(1) == pytest.approx(0.025)
    assert s.lr_at(2) == pytest.approx(0.05)                  # cosine starts at its base
    assert s.lr_at(6) == pytest.approx(0.025)                 # half way through 8 cosine epochs
    assert s.lr_at(10) == pytest.approx(0.0, abs=1e-12)
    assert not make_schedule("cosine", 0.05, 10).per_step
    with pytest.raises(ValueError, match="leaves none"):
        make_schedule("cosine", 0.05, 2, warmup_epochs=2)
    with pytest.raises(ValueError):
        Warmup(CosineSchedule(0.1, 3), 0)


def test_a_warmup_run_reads_its_rate_at_every_step(tmp_path, monkeypatch):
    rates, step = [], training.train_step

    def spy(*args, lr, **kw):
        rates.append(lr)
        return step(*args, lr=lr, **kw)

    monkeypatch.setattr(training, "train_step", spy)
    code = cli.main(["train-ann", "--quiet", "--arch", "vgg5", "--epochs", "2", "--n-train", "64",
                     "--n-test", "32", "--batch-size", "16", "--lsuv-images", "32",
                     "--warmup-epochs", "1", "--lr", "0.04", "--out", str(tmp_path / "ann")])
    assert code == 0
    log = [json.loads(line) for line in open(tmp_path / "ann" / "log.jsonl")]
    # four steps per epoch: the first step of epoch 1 runs at 0.04 * 0.5 / 4
    assert log[0]["lr"] == pytest.approx(0.005)
    assert log[1]["lr"] == pytest.approx(0.04 * 0.5 * (1 + math.cos(math.pi * 0.125)))
    assert rates == pytest.approx([0.04 * (i + 0.5) / 4 for i in range(4)]
                                  + [0.02 * (1 + math.cos(math.pi * (i + 0.5) / 4))
                                     for i in range(4)])


# -- LSUV -----------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["vgg5", "vgg16_w8"])
def test_lsuv_gives_every_layer_unit_output_variance(arch):
    net = build_network(arch)
    params = net.init_params(seed=0, init="kaiming-in")
    x = np.random.default_rng(1).standard_normal((32, 3, 32, 32)).astype(np.float32)
    before = {n: _output_std(net, params, x, n) for n in net.spiking_layers()}
    factors = lsuv_init(net, params, x)
    assert set(factors) == {f"{n}.weight" for n in net.spiking_layers()} | {"out.weight"}
    for layer in net.spiking_layers():
        assert _output_std(net, params, x, layer) == pytest.approx(1.0, abs=0.02), layer
    assert _output_std(net, params, x, None) == pytest.approx(1.0, abs=0.02)   # the logits
    assert any(abs(s - 1.0) > 0.1 for s in before.values())       # there was work to do
    assert all(p.dtype == np.float32 for p in params.values())


def test_lsuv_refuses_a_dead_layer():
    net = build_network("vgg5")
    params = net.init_params(seed=0)
    params["conv2.weight"][...] = 0.0
    x = np.ones((4, 3, 32, 32), np.float32)
    with pytest.raises(ValueError, match="conv2"):
        lsuv_init(net, params, x)


# -- the config -------------------------------------------------------------------
def test_nesterov_reaches_the_optimiser_and_bad_settings_are_refused():
    assert run_optimizer(ann_config(nesterov=True)).nesterov
    assert not run_optimizer(ann_config()).nesterov
    for bad, match in [({"nesterov": True, "momentum": 0.0}, "Nesterov"),
                       ({"warmup_epochs": -1}, "warmup_epochs"),
                       ({"clip_norm": -1.0}, "clip_norm"),
                       ({"lsuv_images": -1}, "lsuv_images"),
                       ({"mode": "snn", "T": 5, "lsuv_images": 8}, "LSUV")]:
        with pytest.raises(ConfigError, match=match):
            TrainConfig(**bad).validate()


@pytest.mark.parametrize("epochs,warmup", [(1, 0), (2, 1), (3, 1), (4, 2), (40, 2)])
def test_a_short_run_warms_up_for_at_most_half_its_epochs(epochs, warmup):
    s = training._schedule(ann_config(epochs=epochs, warmup_epochs=2, schedule="cosine"))
    assert s.total_epochs == epochs
    assert getattr(s, "warmup_epochs", 0) == warmup


def test_a_config_stored_before_the_recipe_fields_loads_with_them_off():
    d = ann_config().to_dict()
    for k in ("nesterov", "warmup_epochs", "clip_norm", "lsuv_images"):
        d.pop(k)
    cfg = TrainConfig.from_dict(d)
    assert (cfg.nesterov, cfg.warmup_epochs, cfg.clip_norm, cfg.lsuv_images) == (False, 0, 0.0, 0)


def test_cli_recipe_picks_the_authors_and_is_refused_on_resume(tmp_path, capsys):
    out = str(tmp_path / "ann")
    base = ["train-ann", "--quiet", "--arch", "vgg5", "--n-train", "64", "--n-test", "32",
            "--out", out]
    assert cli.main([*base, "--epochs", "1", "--recipe", "authors"]) == 0
    config = json.loads(json.dumps(_stored_config(out)))
    assert (config["optimizer"], config["amsgrad"], config["lr"]) == ("adam", True, 1e-4)
    assert config["lsuv_images"] == 0 and not config["nesterov"]
    assert cli.main([*base, "--epochs", "2", "--recipe", "short", "--resume"]) == 2
    assert "--recipe" in capsys.readouterr().err


def _stored_config(run_dir):
    from diet_np.model_file import read_model
    return read_model(f"{run_dir}/checkpoint.npz", np).config


def test_lsuv_rescales_a_residual_blocks_conv_with_its_shortcut():
    from diet_np.layers import AvgPool, Conv, Flatten, Neuron, Readout, ResidualBlock
    from diet_np.network import Network
    net = Network([Conv("pre1", 8, first=True), Neuron("pre1"), ResidualBlock("block1", 8),
                   ResidualBlock("block2", 16, stride=2), AvgPool(2), Flatten(),
                   Readout("out", 10)], (3, 16, 16), 10)
    params = net.init_params(seed=0, init="kaiming-in")
    params["block2.shortcut.weight"] *= 8.0      # a shortcut far too loud for conv2 alone
    x = np.random.default_rng(2).standard_normal((16, 3, 16, 16)).astype(np.float32)
    factors = lsuv_init(net, params, x)
    assert factors["block2.shortcut.weight"] == factors["block2.conv2.weight"] < 0.5
    for layer in net.spiking_layers():
        assert _output_std(net, params, x, layer) == pytest.approx(1.0, abs=0.02), layer
