"""Architectures by name, including the reduced-width VGGs (``vgg16_w4``)."""
import pytest

from diet_np.architectures import ARCHITECTURES, VGG_CONFIGS, build_network, narrowed, split_width


def _widths(net):
    return {k: s.shape[0] for k, s in net.specs.items() if s.kind == "weight"}


@pytest.mark.parametrize("divisor", [2, 4, 8])
def test_narrowed_vgg16_keeps_every_layer_and_divides_every_width(divisor):
    full, narrow = build_network("vgg16"), build_network(f"vgg16_w{divisor}")
    assert narrow.spiking_layers() == full.spiking_layers() and len(narrow.neurons) == 15
    for key, width in _widths(full).items():
        expected = width if key == "out.weight" else width // divisor
        assert _widths(narrow)[key] == expected, key
    assert narrow.name == f"vgg16_w{divisor}"


def test_width_names_are_offered_and_parsed():
    assert {"vgg16_w2", "vgg16_w4", "vgg16_w8", "vgg11_w4"} <= set(ARCHITECTURES)
    assert split_width("vgg16_w4") == ("vgg16", 4) and split_width("vgg16") == ("vgg16", 1)
    assert split_width("resnet20_w4") == ("resnet20", 4) and "resnet20_w4" in ARCHITECTURES
    assert len(build_network("vgg16_w16").neurons) == 15         # not listed, still built


@pytest.mark.parametrize("divisor", [2, 4])
def test_narrowed_resnet20_keeps_the_structure_and_divides_every_conv(divisor):
    full, narrow = build_network("resnet20"), build_network(f"resnet20_w{divisor}")
    assert narrow.name == f"resnet20_w{divisor}"
    assert list(narrow.specs) == list(full.specs)           # same layers, shortcuts, neurons
    for key, width in _widths(full).items():
        expected = width if key == "out.weight" else width // divisor
        assert _widths(narrow)[key] == expected, key


def test_narrowed_keeps_pools_and_floors_at_one_channel():
    features, classifier = narrowed(*VGG_CONFIGS["vgg5"], 64)
    assert features == [1, "A", 1, "A", 2, "A"] and classifier == [4]
    with pytest.raises(ValueError, match="width divisor"):
        narrowed(*VGG_CONFIGS["vgg5"], 0)


@pytest.mark.parametrize("name", ["resnet18_w4", "vgg16_w", "vgg17_w2", "vgg16_w0"])
def test_unknown_width_names_are_rejected_by_name(name):
    with pytest.raises(ValueError, match="unknown architecture"):
        build_network(name)
