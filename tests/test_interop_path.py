"""docs/interop.md's path past one machine, at the scale of a CPU test: a diet-np SNN
goes out, takes one training step in other code, and comes back.

* the authors' code: ``export --format authors`` to a ``.pth``, loaded into their
  module tree (tests/test_weights_torch.py's twin) with ``load_state_dict(strict=True)``
  on ``nn.DataParallel`` as their ``snn.py`` does, one Adam (AMSGrad) step with their
  leak clamp, saved as ``snn.py`` saves it, ``import --format authors``, ``evaluate``;
* a PyTorch SNN framework: ``export --format nir``, snnTorch's ``import_from_nir``, one
  Adam step on an image, the trained weights, leaks and thresholds written under
  diet-np's keys, ``import --format diet-np``, ``evaluate``.

Skipped without torch (and, for the second, snntorch and nirtorch).
"""
import numpy as np
import pytest

from diet_np.cli import main
from diet_np.data.transforms import normalize
from diet_np.model_file import data_record
from diet_np.pipeline import load_data, load_model, save_model
from diet_np.weights import write_tensors

torch = pytest.importorskip("torch")
from test_weights_torch import lively_params, spiking_twin  # noqa: E402

F = torch.nn.functional
ARCH, T = "vgg6_w8", 4
FLAGS = ["--dataset", "shapes", "--n-train", "16", "--n-test", "16"]


def diet_np_snn(tmp_path):
    data = load_data("shapes", n_train=16, n_test=16, seed=0)
    from diet_np.architectures import build_network
    net = build_network(ARCH, data.num_classes)
    params = {k: v.astype(np.float32) for k, v in lively_params(net, 0).items()}
    path = tmp_path / "finetuned.npz"
    save_model(path, params, arch=ARCH, kind="snn", T=T, data=data_record(data))
    return data, params, path


def changed(before, after):
    return [k for k in before if not np.array_equal(before[k], after[k])]


def test_out_to_the_authors_code_one_step_and_back(tmp_path, capsys):
    data, params, ckpt = diet_np_snn(tmp_path)
    out = tmp_path / "snn_vgg_shapes.pth"
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(out),
                 "--format", "authors"]) == 0
    state = torch.load(out, weights_only=True)                  # as their snn.py loads it
    twin = spiking_twin(ARCH)
    model = torch.nn.DataParallel(twin)
    model.load_state_dict(state["state_dict"], strict=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, amsgrad=True)
    x = torch.from_numpy(normalize(data.x_train[:4], data.mean, data.std))
    y = torch.from_numpy(data.y_train[:4]).long()
    loss = F.cross_entropy(twin.snn(x, state["timesteps"]), y)  # Eq. 7, BPTT by autograd
    loss.backward()
    opt.step()
    for leak in twin.leak.values():                              # their clamp: leak <= 1
        leak.data.clamp_(max=1.0)
    by_index = lambda d: [float(v.detach()) for _, v in sorted(d.items(),
                                                               key=lambda kv: int(kv[0][1:]))]
    back = tmp_path / "trained.pth"
    torch.save({"accuracy": 0.0, "epoch": 1, "state_dict": model.state_dict(),
                "optimizer": opt.state_dict(), "thresholds": by_index(twin.threshold),
                "timesteps": state["timesteps"], "leak": by_index(twin.leak),
                "activation": "Linear"}, back)
    mine = tmp_path / "back.npz"
    assert main(["import", "--from", str(back), "--arch", ARCH, "--out", str(mine)]
                + FLAGS) == 0
    _, got, record = load_model(mine, np, expect_kind=("snn",))
    assert record.T == T
    moved = changed(params, got)
    assert any(k.endswith(".weight") for k in moved) and any(k.endswith(".threshold")
                                                             for k in moved)
    np.testing.assert_array_equal(got["conv1.weight"],
                                  twin.features[0].weight.detach().numpy())
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(mine), "--quiet"] + FLAGS) == 0
    assert "network_spike_rate" in capsys.readouterr().out


def test_out_through_nir_to_snntorch_one_step_and_back(tmp_path, capsys):
    pytest.importorskip("nirtorch")
    snn = pytest.importorskip("snntorch")
    from snntorch.import_nir import import_from_nir
    import nir

    data, params, ckpt = diet_np_snn(tmp_path)
    graph_file = tmp_path / "finetuned.nir"
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(graph_file),
                 "--format", "nir"]) == 0
    graph = nir.read(graph_file)
    graph.nodes.pop("out_sum")                  # snnTorch has no integrator: sum by hand
    graph.edges = [e for e in graph.edges if "out_sum" not in e] + [("out", "output")]
    model = import_from_nir(graph)
    leaky = {n: m for n, m in model.named_modules() if isinstance(m, snn.Leaky)}
    for m in leaky.values():
        m.reset_mechanism = "subtract"          # as the graph's metadata asks
        m.mem = torch.zeros(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    image = torch.from_numpy(normalize(data.x_train[:1], data.mean, data.std)[0])
    logits = sum(model(image)[0] for _ in range(T))
    F.cross_entropy(logits[None], torch.tensor([int(data.y_train[0])])).backward()
    opt.step()
    modules = dict(model.named_modules())
    trained = {}
    for key in params:                          # back under diet-np's keys
        layer, what = key.rsplit(".", 1)
        node = layer.replace(".", "_")
        if what == "weight":
            trained[key] = modules[node].weight.detach().numpy()
        elif what == "leak":
            trained[key] = np.array(float(modules[node + "_lif"].beta.flatten()[0]), np.float32)
        else:
            trained[key] = np.array(float(modules[node + "_lif"].threshold), np.float32)
    weights = tmp_path / "trained.safetensors"
    write_tensors(weights, trained)
    mine = tmp_path / "back.npz"
    assert main(["import", "--from", str(weights), "--arch", ARCH, "--format", "diet-np",
                 "--timesteps", str(T), "--out", str(mine)] + FLAGS) == 0
    _, got, _ = load_model(mine, np, expect_kind=("snn",))
    assert any(k.endswith(".weight") for k in changed(params, got))
    for k in params:
        np.testing.assert_array_equal(got[k], trained[k])
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(mine), "--quiet"] + FLAGS) == 0
    assert "network_spike_rate" in capsys.readouterr().out
