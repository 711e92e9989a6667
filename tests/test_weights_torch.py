"""Import of state dicts written by PyTorch: the authors' VGG6, VGG16 and ResNet20
ANNs built in torch here (layer lists as in their ``self_models``), saved, imported,
and run by diet-np in ANN mode: the logits must equal torch's.  Skipped without torch.

The ``.npz`` is written from the torch tensors; the ``.safetensors`` by the
``safetensors`` package's torch writer (skipped where that is not installed).
The VGGs (40-50 M weights each) run with ``-m slow``.
"""
import math

import numpy as np
import pytest

from diet_np.weights import import_params

torch = pytest.importorskip("torch")
nn = torch.nn


class AuthorsVGG(nn.Module):
    """``features``: Conv2d (no bias), ReLU, Dropout per conv, the Dropout before a
    pool replaced by AvgPool2d(2); ``classifier``: two hidden Linear-ReLU-Dropout, out."""

    def __init__(self, cfg, flat, labels=10):
        super().__init__()
        layers, channels = [], 3
        for token in cfg:
            if token == "A":
                layers[-1] = nn.AvgPool2d(kernel_size=2, stride=2)
            else:
                layers += [nn.Conv2d(channels, token, 3, padding=1, bias=False), nn.ReLU(),
                           nn.Dropout(0.2)]
                channels = token
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(flat, 4096, bias=False), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(4096, 4096, bias=False), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(4096, labels, bias=False))

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


class AuthorsBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.residual = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.ReLU(),
            nn.Dropout(0.2), nn.Conv2d(cout, cout, 3, padding=1, bias=False))
        self.identity = nn.Sequential()
        if stride != 1 or cin != cout:
            self.identity = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False))

    def forward(self, x):
        return torch.relu(self.residual(x) + self.identity(x))


class AuthorsResNet20(nn.Module):
    def __init__(self, labels=10):
        super().__init__()
        conv = [nn.Conv2d(3 if i == 0 else 64, 64, 3, padding=1, bias=False) for i in range(3)]
        self.pre_process = nn.Sequential(conv[0], nn.ReLU(), nn.Dropout(0.2), conv[1], nn.ReLU(),
                                         nn.Dropout(0.2), conv[2], nn.ReLU(), nn.AvgPool2d(2))
        cin = 64
        for stage, cout in enumerate((64, 128, 256, 512), start=1):
            stride = 1 if stage == 1 else 2
            setattr(self, f"layer{stage}", nn.Sequential(AuthorsBlock(cin, cout, stride),
                                                         AuthorsBlock(cout, cout, 1)))
            cin = cout
        self.classifier = nn.Sequential(nn.Linear(512 * 2 * 2, labels, bias=False))

    def forward(self, x):
        out = self.pre_process(x)
        for stage in (1, 2, 3, 4):
            out = getattr(self, f"layer{stage}")(out)
        return self.classifier(out.flatten(1))


VGG16 = [64, 64, "A", 128, 128, "A", 256, 256, 256, "A", 512, 512, 512, "A", 512, 512, 512]
MODELS = {"vgg6": lambda: AuthorsVGG([64, "A", 128, 128, "A"], 128 * 8 * 8),
          "vgg16": lambda: AuthorsVGG(VGG16, 512 * 2 * 2),
          "resnet20": AuthorsResNet20}


def init_lively(model):
    """He-normal convs and 1/sqrt(fan_in) linears, so that the logits are O(1)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / (m.weight[0].numel())))
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 1.0 / math.sqrt(m.in_features))


def write(state, path, how):
    if how == "npz":
        np.savez(path, **{k: v.numpy() for k, v in state.items()})
    else:
        safetensors_torch = pytest.importorskip("safetensors.torch")
        safetensors_torch.save_file(state, str(path))


@pytest.mark.parametrize("how", ["npz", "safetensors"])
@pytest.mark.parametrize("arch", [pytest.param("vgg6", marks=pytest.mark.slow),
                                  pytest.param("vgg16", marks=pytest.mark.slow), "resnet20"])
def test_authors_torch_model_imports_with_equal_logits(arch, how, tmp_path):
    torch.manual_seed(0)
    model = MODELS[arch]()
    init_lively(model)
    model.eval()
    path = tmp_path / f"{arch}.{how}"
    write(model.state_dict(), path, how)
    net, params, kind = import_params(path, arch, 10, fmt="authors")
    assert kind == "ann"
    x = np.random.default_rng(1).normal(size=(3, 3, 32, 32)).astype(np.float32)
    ours, _ = net.forward(params, x, train=False, mode="ann")
    with torch.no_grad():
        theirs = model(torch.from_numpy(x)).numpy()
    assert np.abs(theirs).max() > 0.1                       # the comparison means something
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * np.abs(theirs).max())
