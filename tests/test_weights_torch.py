"""Import of state dicts written by PyTorch: the authors' VGG6, VGG16 and ResNet20
ANNs built in torch here (layer lists as in their ``self_models``), saved, imported,
and run by diet-np in ANN mode: the logits must equal torch's.  Skipped without torch.

The ``.npz`` is written from the torch tensors; the ``.safetensors`` by the
``safetensors`` package's torch writer (skipped where that is not installed).
The VGGs (40-50 M weights each) run with ``-m slow``.
"""
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import lively_params
from diet_np.architectures import VGG_CONFIGS, build_network, narrowed, split_width
from diet_np.authors_format import neuron_names
from diet_np.cli import main
from diet_np.model_file import data_record
from diet_np.pipeline import load_data, load_model, save_model
from diet_np.weights import import_params, read_tensors

torch = pytest.importorskip("torch")
nn = torch.nn
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from torch_reference import lif_step  # noqa: E402


class AuthorsVGG(nn.Module):
    """``features``: Conv2d (no bias), ReLU, Dropout per conv, the Dropout before a
    pool replaced by AvgPool2d(2); ``classifier``: Linear-ReLU-Dropout per hidden
    width, then the output Linear."""

    def __init__(self, cfg, hidden=(4096, 4096), labels=10):
        super().__init__()
        layers, channels, side = [], 3, 32
        for token in cfg:
            if token == "A":
                layers[-1] = nn.AvgPool2d(kernel_size=2, stride=2)
                side //= 2
            else:
                layers += [nn.Conv2d(channels, token, 3, padding=1, bias=False), nn.ReLU(),
                           nn.Dropout(0.2)]
                channels = token
        self.features = nn.Sequential(*layers)
        layers, width = [], channels * side * side
        for h in hidden:
            layers += [nn.Linear(width, h, bias=False), nn.ReLU(), nn.Dropout(0.5)]
            width = h
        self.classifier = nn.Sequential(*layers, nn.Linear(width, labels, bias=False))

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
MODELS = {"vgg6": lambda: AuthorsVGG([64, "A", 128, 128, "A"]),
          "vgg16": lambda: AuthorsVGG(VGG16),
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


# -- the authors' spiking models: their module tree, the spec's neuron ---------------
class SpikingTwin:
    """The module tree of the authors' ``VGG_SNN_STDB`` / ``RESNET_SNN_STDB``: the ANN
    twin's modules plus ``threshold`` and ``leak`` ParameterDicts keyed ``t{i}`` /
    ``l{i}``, i the neuron's index by their rule (its Conv2d's index in ``features``
    or ``pre_process``, ``len(features)`` + its Linear's index in ``classifier``,
    9 + 2 (block - 1) and one more for a residual block's two neurons).

    ``snn(x, T)`` runs the spec's neuron over that tree, time outer: Eq. 2-5 (soft
    reset, the spike passed on in the same step; benchmarks/torch_reference.py's
    ``lif_step``, whose backward is Eq. 8), Eq. 6's accumulated readout; dropout
    off.  Every leak and threshold is looked up by its index i, so a key map that
    put a value at the wrong i would change the logits."""

    def _neurons(self, indices):
        self.threshold = nn.ParameterDict({f"t{i}": nn.Parameter(torch.tensor(1.0))
                                           for i in indices})
        self.leak = nn.ParameterDict({f"l{i}": nn.Parameter(torch.tensor(1.0))
                                      for i in indices})

    def _lif(self, i, current):
        o, self.mem[i] = lif_step(current, self.mem.get(i, torch.zeros_like(current)),
                                  self.leak[f"l{i}"], self.threshold[f"t{i}"], 0.3)
        self.spikes[i] = self.spikes.get(i, 0.0) + float(o.detach().sum())
        return o

    def snn(self, x, T):
        self.mem, self.spikes, logits = {}, {}, 0.0
        for _ in range(T):
            logits = logits + self._step(x)                               # Eq. 6
        return logits


class AuthorsVGGSNN(SpikingTwin, AuthorsVGG):
    def __init__(self, cfg, hidden, labels=10):
        super().__init__(cfg, hidden, labels)
        n = len(self.features)
        self._neurons([i for i, m in enumerate(self.features) if isinstance(m, nn.Conv2d)]
                      + [n + i for i, m in enumerate(self.classifier[:-1])
                         if isinstance(m, nn.Linear)])

    def _step(self, x):
        h = x
        for i, m in enumerate(self.features):
            h = self._lif(i, m(h)) if isinstance(m, nn.Conv2d) else \
                m(h) if isinstance(m, nn.AvgPool2d) else h
        h, n = h.flatten(1), len(self.features)
        for i, m in enumerate(self.classifier[:-1]):
            h = self._lif(n + i, m(h)) if isinstance(m, nn.Linear) else h
        return self.classifier[-1](h)


class AuthorsResNet20SNN(SpikingTwin, AuthorsResNet20):
    def __init__(self, labels=10):
        super().__init__(labels)
        self._neurons([0, 3, 6] + list(range(9, 25)))

    def _step(self, x):
        h = self.pre_process[8](self._lif(6, self.pre_process[6](self._lif(
            3, self.pre_process[3](self._lif(0, self.pre_process[0](x)))))))
        i = 9
        for stage in (1, 2, 3, 4):
            for block in getattr(self, f"layer{stage}"):
                o = self._lif(i, block.residual[0](h))
                h = self._lif(i + 1, block.residual[3](o) + block.identity(h))
                i += 2
        return self.classifier(h.flatten(1))


def spiking_twin(arch):
    """The authors' spiking model of a diet-np architecture (narrowed VGGs included)."""
    if arch == "resnet20":
        return AuthorsResNet20SNN()
    base, k = split_width(arch)
    features, hidden = narrowed(*VGG_CONFIGS[base], k)
    return AuthorsVGGSNN(features, hidden)


def twin_logits(model, x, T=5):
    model.double().eval()
    with torch.no_grad():
        return model.snn(torch.from_numpy(x), T).numpy()


SNN_ARCHS = ["vgg5", "vgg6_w8", "vgg9_w8", "vgg11_w8", "vgg16_w8"]


@pytest.mark.parametrize("arch,suffix", [(a, "pth") for a in SNN_ARCHS] + [
    ("vgg5", "safetensors"), pytest.param("resnet20", "pth", marks=pytest.mark.slow),
    pytest.param("resnet20", "safetensors", marks=pytest.mark.slow)])
def test_authors_snn_export_loads_strictly_with_equal_logits(arch, suffix, tmp_path):
    """diet-np SNN -> export --format authors -> their module tree, load_state_dict
    (strict) -> the same logits and per-layer spike counts at T = 5."""
    data = load_data("shapes", n_train=10, n_test=10, seed=0)
    net = build_network(arch, 10)
    params = {k: v.astype(np.float32) for k, v in lively_params(net, 0).items()}
    ckpt, out = tmp_path / "snn.npz", tmp_path / f"authors.{suffix}"
    save_model(ckpt, params, arch=arch, kind="snn", T=5, data=data_record(data))
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(out),
                 "--format", "authors"]) == 0
    twin = spiking_twin(arch)
    if suffix == "pth":
        saved = torch.load(out, weights_only=True)
        assert saved["timesteps"] == 5
        nn.DataParallel(twin).load_state_dict(saved["state_dict"], strict=True)
        by_index = sorted(twin.threshold.items(), key=lambda kv: int(kv[0][1:]))
        assert saved["thresholds"] == [float(v.detach()) for _, v in by_index]
    else:
        tensors, _ = read_tensors(out)
        twin.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()}, strict=True)
    x = np.random.default_rng(1).normal(size=(2, 3, 32, 32))
    ours, trace = net.forward({k: v.astype(np.float64) for k, v in params.items()}, x,
                              train=False, T=5)
    theirs = twin_logits(twin, x)
    assert all(float(trace.spike_counts[n]) > 0 for n in net.neurons)   # every layer spikes
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-9)
    names = neuron_names(arch, net)
    for n in net.neurons:
        assert float(trace.spike_counts[n]) == twin.spikes[int(names[f"{n}.leak"][6:])], n


@pytest.mark.parametrize("arch", ["vgg6_w8", pytest.param("resnet20", marks=pytest.mark.slow)])
def test_authors_snn_pth_as_snn_py_saves_it_imports(arch, tmp_path, capsys):
    """A file as their snn.py saves it (nn.DataParallel keys, thresholds, leak,
    timesteps, an Adam state) -> diet-np import -> the twin's logits at its T."""
    torch.manual_seed(0)
    twin = spiking_twin(arch)
    init_lively(twin)
    for i, key in enumerate(sorted(twin.threshold, key=lambda k: int(k[1:]))):
        twin.threshold[key].data.fill_(0.3 + 0.01 * i)
        twin.leak["l" + key[1:]].data.fill_(0.95 - 0.01 * i)
    model = nn.DataParallel(twin)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, amsgrad=True)
    order = lambda d: [float(v.detach()) for _, v in sorted(d.items(),
                                                             key=lambda kv: int(kv[0][1:]))]
    path = tmp_path / "snn_vgg_cifar10.pth"
    torch.save({"accuracy": 0.5, "epoch": 3, "state_dict": model.state_dict(),
                "optimizer": opt.state_dict(), "thresholds": order(twin.threshold),
                "timesteps": 4, "leak": order(twin.leak), "activation": "Linear"}, path)
    out = tmp_path / "imported.npz"
    assert main(["import", "--from", str(path), "--arch", arch, "--format", "authors",
                 "--dataset", "shapes", "--n-train", "10", "--n-test", "10",
                 "--out", str(out)]) == 0
    assert f"SNN {arch} at T = 4 written" in capsys.readouterr().out
    net, params, record = load_model(out, np, expect_kind=("snn",))
    assert record.T == 4
    x = np.random.default_rng(2).normal(size=(2, 3, 32, 32))
    ours, _ = net.forward({k: v.astype(np.float64) for k, v in params.items()}, x,
                          train=False, T=4)
    np.testing.assert_allclose(ours, twin_logits(twin, x, T=4), rtol=1e-9, atol=1e-9)
