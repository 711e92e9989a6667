"""Weights in and out: the safetensors reader/writer, the authors' key maps, import/export."""
import json

import numpy as np
import pytest

from diet_np.architectures import ARCHITECTURES, build_network
from diet_np.authors_format import neuron_names
from diet_np.cli import main
from diet_np.model_file import data_record
from diet_np.pipeline import load_data, load_model, save_model
from diet_np.weights import (WeightsError, authors_names, import_params, read_safetensors,
                             read_tensors, write_safetensors, write_tensors)


def test_safetensors_round_trip_every_dtype_and_metadata(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {"w": rng.normal(size=(3, 2, 3, 3)).astype(np.float32),
               "d": rng.normal(size=(4,)), "h": np.arange(6, dtype=np.float16).reshape(2, 3),
               "i": np.arange(5, dtype=np.int64), "b": np.array([True, False]),
               "scalar": np.array(0.25, dtype=np.float32), "empty": np.zeros((0, 3), np.float32)}
    path = tmp_path / "t.safetensors"
    write_safetensors(path, tensors, {"arch": "vgg5"})
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    assert n % 8 == 0 and header["w"]["dtype"] == "F32" and header["scalar"]["shape"] == []
    assert header["__metadata__"] == {"arch": "vgg5"}
    assert len(data) == 8 + n + sum(a.nbytes for a in tensors.values())
    back, metadata = read_safetensors(path)
    assert metadata == {"arch": "vgg5"} and list(back) == list(tensors)
    for k, a in tensors.items():
        assert back[k].dtype == a.dtype and back[k].shape == a.shape
        np.testing.assert_array_equal(back[k], a)


def test_safetensors_bf16_and_damaged_files(tmp_path):
    values = np.array([1.0, -2.5, 3.140625], dtype=np.float32)   # exact in bfloat16
    raw = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
    header = json.dumps({"x": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 6]}}).encode()
    path = tmp_path / "bf16.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + raw)
    np.testing.assert_array_equal(read_safetensors(path)[0]["x"], values)

    def damaged(name, header, body=b"\0" * 8):
        text = json.dumps(header).encode()
        p = tmp_path / f"{name}.safetensors"
        p.write_bytes(len(text).to_bytes(8, "little") + text + body)
        return p
    with pytest.raises(WeightsError, match="tensors end at data byte 12 but the file holds 8"):
        read_safetensors(damaged("short", {"y": {"dtype": "F32", "shape": [3],
                                                 "data_offsets": [0, 12]}}))
    with pytest.raises(WeightsError, match="tensor 'z' has dtype C64"):
        read_safetensors(damaged("c64", {"z": {"dtype": "C64", "shape": [1],
                                               "data_offsets": [0, 8]}}))
    with pytest.raises(WeightsError, match="tensor 'q' has a malformed"):
        read_safetensors(damaged("bad", {"q": {"dtype": "F32"}}))
    truncated = tmp_path / "trunc.safetensors"
    truncated.write_bytes(path.read_bytes()[:20])
    with pytest.raises(WeightsError, match="header length .* does not fit"):
        read_safetensors(truncated)
    with pytest.raises(WeightsError, match="expected a .safetensors or .npz"):
        read_tensors(tmp_path / "weights.pt")


def test_npz_round_trip_with_metadata(tmp_path):
    tensors = {"conv1.weight": np.ones((2, 3, 3, 3), np.float32), "conv1.leak": np.array(0.9)}
    write_tensors(tmp_path / "p.npz", tensors, {"kind": "snn"})
    back, metadata = read_tensors(tmp_path / "p.npz")
    assert metadata == {"kind": "snn"} and sorted(back) == sorted(tensors)
    np.testing.assert_array_equal(back["conv1.weight"], tensors["conv1.weight"])


def test_authors_key_maps_follow_their_layer_lists():
    vgg16 = authors_names("vgg16", build_network("vgg16"))
    # features: conv, ReLU, Dropout per conv; a pool replaces the dropout before it
    assert [vgg16[f"conv{i}.weight"] for i in range(1, 14)] == \
        [f"features.{i}.weight" for i in (0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 33, 36)]
    assert [vgg16[k] for k in ("fc1.weight", "fc2.weight", "out.weight")] == \
        ["classifier.0.weight", "classifier.3.weight", "classifier.6.weight"]
    vgg6 = authors_names("vgg6", build_network("vgg6"))
    assert [vgg6[f"conv{i}.weight"] for i in (1, 2, 3)] == \
        ["features.0.weight", "features.3.weight", "features.6.weight"]
    resnet = authors_names("resnet20", build_network("resnet20"))
    assert len(resnet) == 3 + 8 * 2 + 3 + 1
    assert resnet["pre3.weight"] == "pre_process.6.weight"
    assert resnet["block1.conv2.weight"] == "layer1.0.residual.3.weight"
    assert resnet["block4.conv1.weight"] == "layer2.1.residual.0.weight"
    assert resnet["block7.shortcut.weight"] == "layer4.0.identity.0.weight"
    assert resnet["out.weight"] == "classifier.0.weight"
    custom = {"features": [8, "A"], "classifier": []}
    with pytest.raises(WeightsError, match="no key map for the authors' 'custom'"):
        authors_names(custom, build_network(custom))


def test_narrowed_resnet20_keeps_the_authors_keys_of_resnet20():
    """Only shapes change with the width: ``resnet20_w4`` exports under ResNet20's keys."""
    full, narrow = build_network("resnet20"), build_network("resnet20_w4")
    assert authors_names("resnet20_w4", narrow) == authors_names("resnet20", full)
    assert neuron_names("resnet20_w4", narrow) == neuron_names("resnet20", full)


def authors_state(arch, dtype=np.float16, prefix=""):
    """The authors' state dict of ``arch`` with random weights (float16: exact in
    float32 and half the bytes)."""
    net = build_network(arch)
    rng = np.random.default_rng(0)
    names = authors_names(arch, net)
    return {prefix + names[k]: rng.normal(size=net.specs[k].shape).astype(dtype) for k in names}


def test_import_authors_resnet20_renames_every_key(tmp_path):
    state = authors_state("resnet20", prefix="module.")       # saved from nn.DataParallel
    path = tmp_path / "resnet20.npz"
    np.savez(path, **state)
    net, params, kind = import_params(path, "resnet20", 10)
    assert kind == "ann" and list(params) == list(net.specs)
    assert params["block5.shortcut.weight"].dtype == np.float32
    np.testing.assert_array_equal(params["block5.shortcut.weight"],
                                  state["module.layer3.0.identity.0.weight"])
    np.testing.assert_array_equal(params["out.weight"], state["module.classifier.0.weight"])
    assert float(params["pre1.leak"]) == 1.0 and float(params["pre1.threshold"]) == 1.0


def test_import_names_the_key_that_does_not_fit(tmp_path):
    net = build_network("vgg6")
    names = authors_names("vgg6", net)
    tiny = {names[k]: np.zeros(1, np.float32) for k in names}     # names checked before shapes

    def failing(changed, pattern):
        np.savez(tmp_path / "bad.npz", **changed)
        with pytest.raises(WeightsError, match=pattern):
            import_params(tmp_path / "bad.npz", "vgg6", 10)
    failing({**tiny, "features.0.bias": np.zeros(64, np.float32)},
            "tensor 'features.0.bias' .* has no place")
    failing({k: v for k, v in tiny.items() if k != "classifier.3.weight"},
            "no tensor 'classifier.3.weight' \\(diet-np's fc2.weight")
    failing(tiny, "'features.0.weight' \\(diet-np's conv1.weight\\) has shape \\(1,\\); "
                  "the network expects \\(64, 3, 3, 3\\)")
    failing({**tiny, "features.0.weight": np.zeros((64, 3, 3, 3), np.int32)},
            "dtype int32; weights must be floating point")
    with pytest.raises(WeightsError, match="tensor 'features.0.weight'.*format diet-np"):
        import_params(tmp_path / "bad.npz", "vgg6", 10, fmt="diet-np")


def test_export_import_round_trip_through_the_cli(tmp_path, capsys):
    data = load_data("shapes", n_train=20, n_test=10, seed=0)
    net = build_network("vgg5", data.num_classes)
    params = net.init_params(3)
    for i, name in enumerate(net.neurons):
        params[f"{name}.leak"][...] = 0.9 - 0.1 * i
        params[f"{name}.threshold"][...] = 0.5 + i
    ckpt = tmp_path / "snn.npz"
    save_model(ckpt, params, arch="vgg5", kind="snn", T=7, data=data_record(data))
    flags = ["--dataset", "shapes", "--n-train", "20", "--n-test", "10"]
    for suffix in ("safetensors", "npz"):
        out = tmp_path / f"w.{suffix}"
        assert main(["export", "--checkpoint", str(ckpt), "--out", str(out)]) == 0
        assert main(["export", "--checkpoint", str(ckpt), "--out", str(out)]) == 2
        assert f"w.{suffix} already exists; pass --overwrite" in capsys.readouterr().err
        back = tmp_path / f"back_{suffix}.npz"
        assert main(["import", "--from", str(out), "--arch", "vgg5", "--format", "diet-np",
                     "--timesteps", "7", "--out", str(back)] + flags) == 0
        _, got, model = load_model(back, np, expect_kind=("snn",))
        assert model.T == 7 and model.origin["import_format"] == "diet-np"
        for k in params:
            np.testing.assert_array_equal(got[k], params[k])
    assert main(["import", "--from", str(out), "--arch", "vgg9", "--format", "diet-np",
                 "--out", str(tmp_path / "x.npz")] + flags) == 2
    assert "exported from a vgg5 network, not vgg9" in capsys.readouterr().err
    assert main(["import", "--from", str(out), "--arch", "vgg5", "--out",
                 str(tmp_path / "y.npz")]) == 2
    assert "import needs --dataset" in capsys.readouterr().err
    assert main(["import", "--from", str(ckpt), "--arch", "vgg5", "--out",
                 str(tmp_path / "z.npz")] + flags) == 2
    assert "snn.npz is a diet-np checkpoint, not a file of named tensors" in capsys.readouterr().err


def test_imported_ann_converts(tmp_path):
    data = load_data("shapes", n_train=40, n_test=10, seed=0)
    net = build_network("vgg5", data.num_classes)
    weights = {k: v for k, v in net.init_params(1).items() if k.endswith(".weight")}
    write_tensors(tmp_path / "ann.safetensors", weights)
    flags = ["--dataset", "shapes", "--n-train", "40", "--n-test", "10", "--quiet"]
    assert main(["import", "--from", str(tmp_path / "ann.safetensors"), "--arch", "vgg5",
                 "--format", "diet-np", "--out", str(tmp_path / "ann.npz")] + flags) == 0
    assert load_model(tmp_path / "ann.npz", np, expect_kind=("ann",))[2].kind == "ann"
    assert main(["convert", "--checkpoint", str(tmp_path / "ann.npz"), "--out",
                 str(tmp_path / "snn.npz"), "--find-steps", "2", "--images", "8",
                 "--timesteps", "2"] + flags) == 0
    assert load_model(tmp_path / "snn.npz", np, expect_kind=("snn",))[2].kind == "snn"


ROUND_TRIP = ["vgg5", "vgg9_w8", "vgg11_w8", "vgg6_w8", "vgg16_w8"]    # the rest: slow


@pytest.mark.parametrize("arch", ROUND_TRIP + [
    pytest.param(a, marks=pytest.mark.slow) for a in ARCHITECTURES if a not in ROUND_TRIP])
def test_export_import_keeps_kind_T_and_every_value(arch, tmp_path, capsys):
    """An exported ANN comes back an ANN (its leaks and thresholds of 1 unused), an SNN an
    SNN at its T, in both formats, with neither --arch nor --timesteps given."""
    data = load_data("shapes", n_train=20, n_test=10, seed=0)
    net = build_network(arch, data.num_classes)
    params = net.init_params(2)
    for i, name in enumerate(net.neurons):
        params[f"{name}.leak"][...], params[f"{name}.threshold"][...] = 0.9 - 0.01 * i, 0.5 + i
    flags = ["--dataset", "shapes", "--n-train", "20", "--n-test", "10", "--quiet"]
    for kind, T in (("ann", 1), ("snn", 7)):
        ckpt = tmp_path / f"{kind}_checkpoint.npz"
        save_model(ckpt, params, arch=arch, kind=kind, T=T, data=data_record(data))
        for suffix in ("safetensors", "npz"):
            out, back = tmp_path / f"{kind}.{suffix}", tmp_path / f"{kind}_{suffix}_back.npz"
            assert main(["export", "--checkpoint", str(ckpt), "--out", str(out)]) == 0
            assert main(["import", "--from", str(out), "--format", "diet-np", "--out", str(back)]
                        + flags) == 0
            _, got, model = load_model(back, np)
            assert (model.kind, model.T, model.arch) == (kind, T, arch)
            for k, v in params.items():
                want = v if kind == "snn" or k.endswith(".weight") else np.ones_like(v)
                np.testing.assert_array_equal(got[k], want, err_msg=f"{arch} {kind} {k}")
    capsys.readouterr()
    assert main(["import", "--from", str(tmp_path / "snn.safetensors"),
                 "--format", "diet-np", "--timesteps", "3", "--out", str(tmp_path / "x.npz")]
                + flags) == 2
    assert "holds an SNN of T=7; --timesteps 3 disagrees" in capsys.readouterr().err
    assert main(["import", "--from", str(tmp_path / "ann.npz"), "--format", "diet-np",
                 "--timesteps", "3", "--out", str(tmp_path / "x.npz")] + flags) == 2
    assert "holds an ANN (one step" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()
