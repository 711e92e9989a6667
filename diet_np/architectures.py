"""VGG and ResNet20 as the paper's spec defines them, for 32x32 inputs, and the
paper's ImageNet VGG16 for 224x224 inputs (:data:`INPUT_SHAPES`).

A VGG is a list of feature tokens plus classifier widths:

* an int (or a string of digits, or ``"C<n>"``): 3x3 conv, stride 1, pad 1, no
  bias, with ``n`` output channels, followed by a neuron;
* ``"A"``: 2x2 average pooling; ``"M"``: 2x2 max pooling;
* classifier: widths of the hidden linear layers (each followed by a neuron);
  the output layer (Eq. 6) is added for ``num_classes``.

Dropout follows the authors' placement: after every conv neuron except one
right before a pool (rate ``"conv"``), after every hidden linear neuron (rate
``"fc"``).  Layer names: ``conv1..``, ``fc1..``, ``out``.
"""
from __future__ import annotations

from .layers import (AvgPool, Conv, Dropout, Flatten, Linear, MaxPool, Neuron, Readout,
                     ResidualBlock)
from .network import Network

_VGG16_FEATURES = [64, 64, "A", 128, 128, "A", 256, 256, 256, "A", 512, 512, 512, "A",
                   512, 512, 512]
VGG_CONFIGS = {
    # Small nets for CPU work, same building blocks.
    "vgg5": ([32, "A", 64, "A", 128, "A"], [256]),
    "vgg9": ([64, 64, "A", 128, 128, "A", 256, 256, "A"], [1024, 1024]),
    "vgg11": ([64, "A", 128, "A", 256, 256, "A", 512, 512, "A", 512, 512], [4096, 4096]),
    # The authors' "VGG5" (six weight layers) and VGG16 for CIFAR.
    "vgg6": ([64, "A", 128, 128, "A"], [4096, 4096]),
    "vgg16": (_VGG16_FEATURES, [4096, 4096]),
    # The authors' ImageNet VGG16: a fifth pool after the last conv, so the
    # classifier sees 512 * 7 * 7 = 25,088 values at 224x224.
    "vgg16_imagenet": (_VGG16_FEATURES + ["A"], [4096, 4096]),
}
INPUT_SHAPES = {"vgg16_imagenet": (3, 224, 224)}
"""Input shapes of the architectures not made for 32x32 CIFAR images (their
narrowed variants share them)."""
IMAGENET_CLASSES = 1000
WIDTH_DIVISORS = (2, 4, 8)
"""Reduced widths offered by name: ``vgg16_w4`` is VGG16 with every conv and hidden
linear layer 4x narrower (same depth: all 15 spiking layers kept); ``resnet20_w4``
is ResNet20 with every conv 4x narrower (same pre-process convs, blocks and
shortcuts)."""
NARROWABLE = (*VGG_CONFIGS, "resnet20")
"""The architectures that come in the ``_w<k>`` widths."""
ARCHITECTURES = (tuple(VGG_CONFIGS) + ("resnet20",)
                 + tuple(f"{a}_w{k}" for a in NARROWABLE for k in WIDTH_DIVISORS))
DEFAULT_DROPOUT = {"conv": 0.2, "fc": 0.5}


def _conv_channels(token, where):
    channels = None
    if isinstance(token, int) and not isinstance(token, bool):
        channels = token
    elif isinstance(token, str):
        digits = token[1:] if token[:1] in ("C", "c") else token
        channels = int(digits) if digits.isdigit() else None
    if channels is None or channels < 1:
        raise ValueError(f"unknown layer token {token!r} at {where}; expected a positive "
                         "channel count (64 or 'C64'), 'A' (average pool) or 'M' (max pool)")
    return channels


def vgg(features, classifier, num_classes=10, input_shape=(3, 32, 32), name="vgg",
        dropout=None):
    """Build a VGG-style :class:`Network` from feature tokens and classifier widths."""
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2; got {num_classes!r}")
    layers, n_conv = [], 0
    for i, token in enumerate(features):
        if token in ("A", "M"):
            if layers and isinstance(layers[-1], Dropout):
                layers.pop()
            layers.append(AvgPool(2) if token == "A" else MaxPool(2))
            continue
        channels = _conv_channels(token, f"position {i} of the features")
        n_conv += 1
        layers += [Conv(f"conv{n_conv}", channels, first=n_conv == 1),
                   Neuron(f"conv{n_conv}"), Dropout("conv")]
    layers.append(Flatten())
    for j, width in enumerate(classifier, start=1):
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"unknown classifier width {width!r} at position {j - 1}; "
                             "expected a positive integer")
        layers += [Linear(f"fc{j}", width, first=not layers[:-1]),
                   Neuron(f"fc{j}"), Dropout("fc")]
    layers.append(Readout("out", num_classes))
    return Network(layers, input_shape, num_classes, name,
                   dict(DEFAULT_DROPOUT if dropout is None else dropout))


def resnet20(num_classes=10, input_shape=(3, 32, 32), dropout=None, divisor=1,
             name="resnet20"):
    """The authors' ResNet20 (not He et al.'s thin one), about 11.3M weights.

    Three 3x3 convs (3->64, 64->64, 64->64) with an average pool, then four stages
    of 64, 128, 256, 512 channels with two basic blocks each (the first block of
    stages 2-4 has stride 2 and a 1x1 conv shortcut), then flatten 512*2*2 and
    the output layer.  ``divisor`` k divides every channel count by k
    (``resnet20_w4``: 16 to 128 channels, about 0.7M weights), the structure kept.
    """
    pre = max(1, 64 // divisor)
    layers = [Conv("pre1", pre, first=True), Neuron("pre1"), Dropout("conv"),
              Conv("pre2", pre), Neuron("pre2"), Dropout("conv"),
              Conv("pre3", pre), Neuron("pre3"), AvgPool(2)]
    block = 0
    for stage, channels in enumerate(max(1, c // divisor) for c in (64, 128, 256, 512)):
        for i in range(2):
            block += 1
            layers.append(ResidualBlock(f"block{block}", channels,
                                        stride=2 if stage > 0 and i == 0 else 1))
    layers += [Flatten(), Readout("out", num_classes)]
    return Network(layers, input_shape, num_classes, name,
                   dict(DEFAULT_DROPOUT if dropout is None else dropout))


def arch_name(arch) -> str:
    """A printable name: the name itself, or a custom architecture dict's ``name``."""
    return arch if isinstance(arch, str) else arch.get("name", "custom")


def narrowed(features, classifier, divisor):
    """Feature tokens and classifier widths with every width divided by ``divisor``
    (rounded down, at least 1); pooling tokens are kept."""
    if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor < 1:
        raise ValueError(f"width divisor must be a positive integer; got {divisor!r}")
    feats = [t if t in ("A", "M") else max(1, _conv_channels(t, f"position {i} of the features")
                                            // divisor)
             for i, t in enumerate(features)]
    return feats, [max(1, w // divisor) for w in classifier]


def split_width(key):
    """``"vgg16_w4"`` -> ``("vgg16", 4)``; a plain name -> ``(name, 1)``."""
    base, sep, tail = key.rpartition("_w")
    if sep and tail.isdigit() and base in NARROWABLE and int(tail) >= 1:
        return base, int(tail)
    return key, 1


def native_input_shape(arch) -> tuple:
    """The image shape ``arch`` is built for: (3, 224, 224) for ``vgg16_imagenet``
    (and its narrowed variants), else (3, 32, 32)."""
    if isinstance(arch, dict):
        return (3, 32, 32)
    return INPUT_SHAPES.get(split_width(str(arch).lower())[0], (3, 32, 32))


def default_classes(arch) -> int:
    """The class count an architecture is priced at without a data set: 1000 for
    the ImageNet VGG16, else 10."""
    return IMAGENET_CLASSES if native_input_shape(arch) == INPUT_SHAPES["vgg16_imagenet"] else 10


def build_network(arch, num_classes=10, input_shape=None, dropout=None) -> Network:
    """A network by name (``vgg5``, ``vgg6``, ``vgg9``, ``vgg11``, ``vgg16``,
    ``vgg16_imagenet``, ``resnet20``; a name with ``_w<k>`` is that network k
    times narrower, e.g. ``vgg16_w4``, ``resnet20_w4``) or from a ``{"features": [...],
    "classifier": [...]}`` dict.  ``input_shape``: (C, H, W), by default the
    architecture's own (:func:`native_input_shape`)."""
    if input_shape is None:
        input_shape = native_input_shape(arch)
    if isinstance(arch, dict):
        unknown = set(arch) - {"features", "classifier", "name"}
        if unknown or "features" not in arch:
            raise ValueError("a custom architecture is a dict with 'features' (and optional "
                             f"'classifier', 'name'); got keys {sorted(arch)}")
        return vgg(arch["features"], arch.get("classifier", []), num_classes, input_shape,
                   arch.get("name", "custom"), dropout)
    key = str(arch).lower()
    base, divisor = split_width(key)
    if base == "resnet20":
        return resnet20(num_classes, input_shape, dropout, divisor, key)
    if base not in VGG_CONFIGS:
        raise ValueError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHITECTURES)}"
                         " (or a VGG name with a width divisor, such as vgg16_w16)")
    features, classifier = narrowed(*VGG_CONFIGS[base], divisor)
    return vgg(features, classifier, num_classes, input_shape, key, dropout)
