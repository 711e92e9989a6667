"""The paper's ImageNet VGG16: its layers, its FLOPs, its energy table and its key map."""
import pytest

from diet_np.architectures import (ARCHITECTURES, build_network, default_classes,
                                   native_input_shape)
from diet_np.cli import main
from diet_np.layers import AvgPool
from diet_np.metrics import energy_table
from diet_np.weights import authors_names

# The standard VGG16 at 224x224 (multiply-adds per image).
VGG16_IMAGENET_FLOPS = 15_470_264_320
VGG16_IMAGENET_CONV_FLOPS = 15_346_630_656
VGG16_IMAGENET_CLASSIFIER_FLOPS = 123_633_664


def _flops(net):
    return {r.layer: r.flops for r in energy_table(net, {n: 0.0 for n in net.neurons})}


def test_imagenet_vgg16_flops_match_the_standard_count():
    net = build_network("vgg16_imagenet", 1000)
    flops = _flops(net)
    conv = sum(v for k, v in flops.items() if k.startswith("conv"))
    assert len([k for k in flops if k.startswith("conv")]) == 13
    assert conv == VGG16_IMAGENET_CONV_FLOPS
    assert flops["fc1"] + flops["fc2"] + flops["out"] == VGG16_IMAGENET_CLASSIFIER_FLOPS
    assert sum(flops.values()) == VGG16_IMAGENET_FLOPS
    assert flops["conv1"] == 3 * 64 * 9 * 224 * 224


def test_imagenet_vgg16_pools_five_times_into_a_25088_classifier_without_biases():
    net = build_network("vgg16_imagenet", 1000)
    assert net.input_shape == (3, 224, 224) and net.num_classes == 1000
    weights = {k: s.shape for k, s in net.specs.items() if s.kind == "weight"}
    assert weights["fc1.weight"] == (4096, 25088) and weights["fc2.weight"] == (4096, 4096)
    assert weights["out.weight"] == (1000, 4096)
    assert not [k for k, s in net.specs.items() if "bias" in k]
    layers = net.body.layers
    assert sum(isinstance(l, AvgPool) for l in layers) == 5
    # The fifth pool replaces conv13's dropout; dropout follows fc1 and fc2 (before
    # the classifier's next linear layers), none sits between the last pool and fc1.
    kinds = [type(l).__name__ for l in layers]
    tail = kinds[kinds.index("Flatten") - 3:]
    assert tail == ["Conv", "Neuron", "AvgPool", "Flatten", "Linear", "Neuron", "Dropout",
                    "Linear", "Neuron", "Dropout", "Readout"]
    assert len(net.neurons) == 15


def test_reduced_imagenet_vgg16_keeps_depth_input_and_divides_widths():
    assert {"vgg16_imagenet", "vgg16_imagenet_w4", "vgg16_imagenet_w8"} <= set(ARCHITECTURES)
    full, narrow = build_network("vgg16_imagenet", 5), build_network("vgg16_imagenet_w8", 5)
    assert narrow.input_shape == full.input_shape == (3, 224, 224) == \
        native_input_shape("vgg16_imagenet_w8")
    assert narrow.spiking_layers() == full.spiking_layers()
    assert narrow.specs["fc1.weight"].shape == (512, 64 * 7 * 7)
    assert sum(_flops(narrow).values()) < sum(_flops(full).values()) / 60


def test_cifar_architectures_keep_their_32x32_input_and_ten_classes():
    assert native_input_shape("vgg16") == (3, 32, 32) == build_network("vgg16_w4").input_shape
    assert default_classes("vgg16") == 10 and default_classes("vgg16_imagenet_w2") == 1000
    with pytest.raises(ValueError, match="divisible by 2"):
        build_network("vgg16_imagenet", 10, input_shape=(3, 16, 16))


def test_energy_arch_prints_the_imagenet_table(capsys):
    assert main(["energy", "--arch", "vgg16_imagenet"]) == 0
    out = capsys.readouterr().out
    assert "total FLOPs (MACs) per image: 15,470,264,320" in out
    assert "| conv2 | 1,849,688,064 |" in out and "| fc1 | 102,760,448 |" in out
    assert "| out | 4,096,000 |" in out and "1000 classes, 3x224x224 input" in out
    assert main(["energy", "--arch", "vgg16_imagenet", "--num-classes", "10"]) == 0
    assert "| out | 40,960 |" in capsys.readouterr().out


def test_authors_key_map_of_the_imagenet_vgg16():
    net = build_network("vgg16_imagenet", 1000)
    names = authors_names("vgg16_imagenet", net)
    # features: Conv2d, ReLU, Dropout per conv; each pool takes its Dropout's index.
    assert names["conv1.weight"] == "features.0.weight"
    assert names["conv3.weight"] == "features.6.weight"
    assert names["conv13.weight"] == "features.36.weight"
    assert names["fc1.weight"] == "classifier.0.weight"
    assert names["fc2.weight"] == "classifier.3.weight"
    assert names["out.weight"] == "classifier.6.weight"
