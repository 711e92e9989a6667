"""ANN recipes per architecture (diet_np.recipes) and the check that one starts."""
import math

import numpy as np
import pytest

from diet_np.architectures import ARCHITECTURES, build_network
from diet_np.data import data_dir, load_dataset
from diet_np.recipes import RECIPES, ann_init, ann_recipe, loss_curve
from diet_np.training import TrainConfig, ann_config, evaluate

CHANCE = math.log(10)


@pytest.mark.parametrize("recipe", RECIPES)
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_architecture_has_a_valid_recipe(arch, recipe):
    cfg = ann_config(**ann_recipe(arch, recipe))
    cfg.validate()
    assert cfg.mode == "ann" and cfg.T == 1


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_the_default_is_the_short_recipe(arch):
    r = ann_recipe(arch)
    assert r == ann_recipe(arch, "short")
    assert (r["optimizer"], r["nesterov"], r["momentum"], r["lr"]) == ("sgd", True, 0.9, 0.05)
    assert (r["schedule"], r["warmup_epochs"], r["weight_decay"]) == ("cosine", 2, 5e-4)
    assert (r["clip_norm"], r["lsuv_images"]) == (2.0, 256)
    assert ann_init(arch) == "kaiming-in"


@pytest.mark.parametrize("arch", ["vgg11", "vgg16", "vgg16_w4", "resnet20"])
def test_the_authors_adam_recipe_stays_selectable(arch):
    r = ann_recipe(arch, "authors")
    assert (r["optimizer"], r["amsgrad"], r["lr"], r["weight_decay"]) == ("adam", True, 1e-4, 5e-4)
    assert r["schedule"] == "step" and tuple(r["milestones"]) == (0.45, 0.7, 0.9)
    with pytest.raises(ValueError, match="unknown ANN recipe"):
        ann_recipe(arch, "adamw")


def test_vgg5_has_no_dropout_after_a_conv_so_no_recipe_claims_one():
    layers = [type(layer).__name__ for layer in build_network("vgg5").body.layers]
    convs = [i for i, name in enumerate(layers) if name == "Conv"]
    assert all(layers[i + 2] == "AvgPool" for i in convs), layers
    assert all(ann_recipe("vgg5", name)["dropout"]["conv"] == 0.0 for name in RECIPES)


def test_a_narrowed_vgg_trains_with_its_full_width_recipe():
    assert ann_recipe("vgg16_w8") == ann_recipe("vgg16")
    assert ann_recipe("vgg5_w2", "authors") == ann_recipe("vgg5", "authors")


def test_deep_nets_start_from_kaiming_init_and_vgg5_from_the_spec():
    assert ann_init("vgg16", "authors") == ann_init("resnet20", "authors") == "kaiming-in"
    assert ann_init("vgg5", "authors") == ann_init("vgg5", "adam-cosine") == "spec"


def test_kaiming_init_scales_by_fan_in_and_the_default_is_the_spec():
    net = build_network("vgg16_w4")
    spec, kaiming = net.init_params(seed=1), net.init_params(seed=1, init="kaiming-in")
    for key, value in kaiming.items():
        if net.specs[key].kind == "weight":
            fan_in = np.prod(value.shape[1:])
            gain = 1.0 if key == "out.weight" else 2.0
            assert abs(value.std() / np.sqrt(gain / fan_in) - 1) < 0.1, key
            assert abs(spec[key].std() / net.specs[key].init_std - 1) < 0.1, key
    with pytest.raises(ValueError, match="init must be one of"):
        net.init_params(init="xavier")


def test_recipes_are_fresh_copies():
    r = ann_recipe("vgg16")
    r["dropout"]["conv"] = 0.9
    r["lr"] = 1.0
    assert ann_recipe("vgg16")["dropout"]["conv"] == 0.0 and ann_recipe("vgg16")["lr"] == 0.05


def test_recipe_keys_are_train_config_fields():
    fields = set(TrainConfig.__dataclass_fields__)
    for arch in ARCHITECTURES:
        for name in RECIPES:
            assert set(ann_recipe(arch, name)) <= fields, (arch, name)


@pytest.mark.parametrize("name", ["vgg17", "resnet18", "vgg16_wide"])
def test_unknown_architecture_has_no_recipe(name):
    with pytest.raises(ValueError, match="no ANN recipe"):
        ann_recipe(name)


def _cifar10():
    if not (data_dir() / "cifar-10-batches-py").is_dir():
        pytest.skip("needs real CIFAR-10 under DIET_NP_DATA")
    return load_dataset("cifar10", download=False)


@pytest.mark.slow
@pytest.mark.cifar
def test_vgg16_leaves_chance_with_its_recipe_on_cifar10():
    """VGG16 at 1/4 width (all 15 spiking layers, no batch norm) with the authors' recipe, 300
    steps of batch 64: the training loss falls clearly below ln 10 and the test
    accuracy leaves 10%.  Measured (issue 13 report): loss of steps 271-300 1.890,
    accuracy 0.353 on the first 1,000 test images; with the authors' dropout and
    init instead the net still gave every test image one class after 939 steps."""
    dataset = _cifar10()
    net = build_network("vgg16_w4", dataset.num_classes)
    params = net.init_params(seed=0, init=ann_init("vgg16_w4", "authors"))
    cfg = ann_config(**ann_recipe("vgg16_w4", "authors"))
    curve, _ = loss_curve("vgg16_w4", dataset, cfg, steps=300, every=30, params=params)
    assert abs(curve[0][1] - CHANCE) < 0.02          # starts at chance (sanity of the probe)
    assert curve[-1][1] < CHANCE - 0.25, curve
    ev = evaluate(net, params, dataset.x_test[:1000], dataset.y_test[:1000], dataset, T=1,
                  mode="ann", xp=np, show_progress=False)
    assert ev.accuracy > 0.2, ev.accuracy
