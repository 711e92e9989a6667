"""The authors' SNN files without PyTorch: their leak/threshold keys, the restricted
``.pth`` reader (happy path, malicious and damaged pickles), import and export.

The ``.pth`` files here are written by :func:`pth_bytes`, a few pickle opcodes in
the layout ``torch.save`` uses (tests/test_weights_torch.py reads and writes real
ones where PyTorch is installed).
"""
import io
import os
import pickle
import struct
import zipfile

import numpy as np
import pytest

from diet_np.architectures import build_network
from diet_np.authors_format import neuron_names
from diet_np.cli import main
from diet_np.errors import DietError
from diet_np.model_file import data_record
from diet_np.pipeline import load_data, load_model, save_model
from diet_np.pth_reader import read_pth
from diet_np.weights import authors_names, import_params, write_tensors

STORAGES = {np.dtype("<f4"): "FloatStorage", np.dtype("<f8"): "DoubleStorage",
            np.dtype("<i8"): "LongStorage"}


def _text(s):
    raw = s.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw                  # BINUNICODE


def _int(n):
    return b"J" + struct.pack("<i", n)                                # BININT


def _tuple(items):
    return b"(" + b"".join(items) + b"t"                              # MARK ... TUPLE


def _pickle(obj, storages):
    """Protocol-2 opcodes of dicts, lists, str, int, float and arrays (as torch
    tensors: _rebuild_tensor_v2 over a persistent storage)."""
    if isinstance(obj, dict):
        return b"}(" + b"".join(_pickle(k, storages) + _pickle(v, storages)
                                for k, v in obj.items()) + b"u"
    if isinstance(obj, list):
        return b"](" + b"".join(_pickle(v, storages) for v in obj) + b"e"
    if isinstance(obj, str):
        return _text(obj)
    if isinstance(obj, bool):
        return b"\x88" if obj else b"\x89"
    if isinstance(obj, int):
        return _int(obj)
    if isinstance(obj, float):
        return b"G" + struct.pack(">d", obj)
    a = np.array(obj, order="C")
    key = str(len(storages))
    storages[key] = a.tobytes()
    pid = _tuple([_text("storage"), f"ctorch\n{STORAGES[a.dtype]}\n".encode(), _text(key),
                  _text("cpu"), _int(a.size)]) + b"Q"                 # BINPERSID
    stride = [int(np.prod(a.shape[i + 1:])) for i in range(a.ndim)]
    hooks = b"ccollections\nOrderedDict\n)R"
    return (b"ctorch._utils\n_rebuild_tensor_v2\n"
            + _tuple([pid, _int(0), _tuple([_int(n) for n in a.shape]),
                      _tuple([_int(s) for s in stride]), b"\x89", hooks]) + b"R")


def pth_bytes(obj, pickled=None, storages=None):
    """The bytes of a zip-format ``.pth`` holding ``obj`` (or the raw ``pickled`` body)."""
    storages = {} if storages is None else storages
    body = b"\x80\x02" + _pickle(obj, storages) + b"." if pickled is None else pickled
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("archive/data.pkl", body)
        z.writestr("archive/byteorder", "little")
        for key, raw in storages.items():
            z.writestr(f"archive/data/{key}", raw)
    return buffer.getvalue()


def lively(arch, seed=0):
    net = build_network(arch, 10)
    rng = np.random.default_rng(seed)
    params = net.init_params(seed)
    for name in net.neurons:
        params[f"{name}.leak"] = np.array(rng.uniform(0.6, 1.0), np.float32)
        params[f"{name}.threshold"] = np.array(rng.uniform(0.2, 2.0), np.float32)
    return net, params


def authors_snn_state(arch, params, net, prefix="module."):
    names = {**authors_names(arch, net), **neuron_names(arch, net)}
    return {prefix + names[k]: np.asarray(v, np.float32) for k, v in params.items()}


# -- the key map ------------------------------------------------------------------------
def test_neuron_keys_follow_their_module_indices():
    vgg16 = neuron_names("vgg16", build_network("vgg16_w8"))
    assert vgg16["conv1.threshold"] == "threshold.t0" and vgg16["conv1.leak"] == "leak.l0"
    assert vgg16["conv3.threshold"] == "threshold.t6"      # 64, 64, A: the pool takes index 5
    assert vgg16["conv13.threshold"] == "threshold.t36"
    assert vgg16["fc1.leak"] == "leak.l39" and vgg16["fc2.leak"] == "leak.l42"  # 39 + 0, + 3
    vgg6 = neuron_names("vgg6", build_network("vgg6_w8"))
    assert vgg6["fc1.threshold"] == "threshold.t9" and vgg6["fc2.threshold"] == "threshold.t12"
    resnet = neuron_names("resnet20", build_network("resnet20"))
    assert [resnet[f"pre{j}.leak"] for j in (1, 2, 3)] == ["leak.l0", "leak.l3", "leak.l6"]
    assert resnet["block1.conv1.threshold"] == "threshold.t9"
    assert resnet["block1.conv2.threshold"] == "threshold.t10"
    assert resnet["block8.conv2.threshold"] == "threshold.t24"
    assert len(resnet) == 2 * 19


# -- the restricted reader -----------------------------------------------------------------
def test_pth_reader_reads_tensors_and_containers(tmp_path):
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    obj = {"state_dict": {"w": a, "n": np.array(7, np.int64)}, "thresholds": [0.5, 1.25],
           "timesteps": 5, "flag": True}
    path = tmp_path / "f.pth"
    path.write_bytes(pth_bytes(obj))
    got = read_pth(path)
    np.testing.assert_array_equal(got["state_dict"]["w"], a)
    assert got["state_dict"]["n"].dtype == np.int64 and int(got["state_dict"]["n"]) == 7
    assert got["thresholds"] == [0.5, 1.25] and got["timesteps"] == 5 and got["flag"] is True


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_pth_reader_refuses_a_pickle_that_runs_code(tmp_path):
    marker = tmp_path / "ran"
    evil = pickle.dumps(Evil(marker), protocol=2)
    assert pickle.loads(evil) == 0 and marker.exists()      # the payload does run when loaded
    marker.unlink()
    inside = b"\x80\x02" + _pickle({"w": np.zeros(2, np.float32)}, {})[:-1] + \
        _text("x") + evil[2:-1] + b"u."                       # a state dict with a payload
    for name, body in (("bare", evil), ("inside", inside)):
        path = tmp_path / f"{name}.pth"
        path.write_bytes(pth_bytes(None, pickled=body, storages={"0": b"\0" * 8}))
        with pytest.raises(DietError, match=r"refused to load global (posix|nt)\.system"):
            read_pth(path)
        assert not marker.exists()
    plain = tmp_path / "plain.pth"                              # a pickle, not a zip
    plain.write_bytes(evil)
    with pytest.raises(DietError, match="not a zip-format torch file"):
        read_pth(plain)
    assert not marker.exists()
    builtin = pickle.dumps({"x": eval}, protocol=2)          # any other global is refused
    (tmp_path / "b.pth").write_bytes(pth_bytes(None, pickled=builtin))
    with pytest.raises(DietError, match=r"refused to load global (__builtin__|builtins)\.eval"):
        read_pth(tmp_path / "b.pth")


def test_pth_reader_refuses_damaged_files(tmp_path):
    good = pth_bytes({"w": np.ones((2, 3), np.float32)})

    def refused(data, pattern, name="bad.pth"):
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(DietError, match=pattern):
            read_pth(path)

    refused(good[: len(good) // 2], "not a zip-format torch file")
    short = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good)) as src, zipfile.ZipFile(short, "w") as z:
        for n in src.namelist():
            z.writestr(n, src.read(n)[:-4] if n.endswith("/0") else src.read(n))
    refused(short.getvalue(), r"storage 0 \(FloatStorage, 6 elements\) has 20 bytes, not 24")
    storages = {}
    body = (b"\x80\x02" + _pickle({"w": np.ones((2, 3), np.float32)}, storages) + b".").replace(
        _tuple([_int(3), _int(1)]), _tuple([_int(30), _int(1)]))      # stride 30 > storage
    refused(pth_bytes(None, body, storages), "reaches beyond its storage of 6 elements")
    storages = {}
    body = (b"\x80\x02" + _pickle({"w": np.ones((2, 3), np.float32)}, storages) + b".").replace(
        _tuple([_int(2), _int(3)]) + _tuple([_int(3), _int(1)]),
        _tuple([_int(10 ** 6), _int(10 ** 6)]) + _tuple([_int(0), _int(0)]))  # 10^12 views
    refused(pth_bytes(None, body, storages), "reaches beyond its storage of 6 elements, or has")
    deflated = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good)) as src, \
            zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as z:
        for n in src.namelist():
            z.writestr(n, src.read(n))
    refused(deflated.getvalue(), "storage 0 is compressed")
    refused(pth_bytes(None, pickled=b"\x80\x02}q\x00."[:4]), "not a readable torch file")
    refused(pth_bytes(None, pickled=b"\x80\x02" + _tuple([_text("a")]) + b"Q."),
            "unknown persistent id")
    refused(b"", "not a zip-format torch file")


# -- import ---------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["vgg5", "vgg16_w8", "resnet20"])
def test_import_authors_snn_state_dict(arch, tmp_path):
    net, params = lively(arch)
    write_tensors(tmp_path / "s.npz", authors_snn_state(arch, params, net))
    _, got, kind = import_params(tmp_path / "s.npz", arch, 10, fmt="authors")
    assert kind == "snn"
    for k in params:
        np.testing.assert_array_equal(got[k], params[k])


def test_import_authors_pth_with_saved_lists(tmp_path, capsys):
    """snn.py's dict whose model did not register leaks and thresholds: they come
    from the ``thresholds`` and ``leak`` lists; T from ``timesteps``."""
    arch = "vgg6_w8"
    net, params = lively(arch)
    names = neuron_names(arch, net)
    weights = {k: v for k, v in authors_snn_state(arch, params, net).items()
               if "threshold" not in k and "leak" not in k}
    lists = {"thresholds": [float(params[k]) for k in names if k.endswith("threshold")],
             "leak": [float(params[k]) for k in names if k.endswith("leak")]}
    path = tmp_path / "snn.pth"
    path.write_bytes(pth_bytes({"state_dict": weights, **lists, "timesteps": 25,
                                "accuracy": 0.9}))
    out = tmp_path / "imported.npz"
    flags = ["--dataset", "shapes", "--n-train", "10", "--n-test", "10"]
    assert main(["import", "--from", str(path), "--arch", arch, "--out", str(out)] + flags) == 0
    assert "SNN vgg6_w8 at T = 25 written" in capsys.readouterr().out
    _, got, model = load_model(out, np, expect_kind=("snn",))
    assert model.T == 25
    for k in params:
        np.testing.assert_array_equal(got[k], params[k])
    # lists beside a state dict that holds the values: they must agree
    full = authors_snn_state(arch, params, net)
    bad = dict(lists, thresholds=[v + 1 for v in lists["thresholds"]])
    path.write_bytes(pth_bytes({"state_dict": full, **bad, "timesteps": 5}))
    assert main(["import", "--from", str(path), "--arch", arch, "--out",
                 str(tmp_path / "x.npz")] + flags) == 2
    assert "'threshold.t0' = " in capsys.readouterr().err
    path.write_bytes(pth_bytes({"state_dict": weights, "thresholds": lists["thresholds"][:2],
                                "leak": 1.0, "timesteps": 5}))
    assert main(["import", "--from", str(path), "--arch", arch, "--out",
                 str(tmp_path / "x.npz")] + flags) == 2
    assert "its 'thresholds' entry" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()


def test_import_authors_refuses_some_neurons_or_a_non_state_dict(tmp_path):
    arch = "vgg5"
    net, params = lively(arch)
    state = authors_snn_state(arch, params, net)
    del state["module.leak.l3"]
    write_tensors(tmp_path / "some.npz", state)
    with pytest.raises(DietError, match=r"holds 7 of the 8 leaks and thresholds of vgg5; "
                                         r"'leak.l3' \(diet-np's conv2.leak\) is missing"):
        import_params(tmp_path / "some.npz", arch, 10)
    (tmp_path / "list.pth").write_bytes(pth_bytes([np.zeros(2, np.float32)]))
    with pytest.raises(DietError, match="holds list, not a state dict"):
        import_params(tmp_path / "list.pth", arch, 10)
    (tmp_path / "odd.pth").write_bytes(pth_bytes({"state_dict": {"w": [1, 2]}}))
    with pytest.raises(DietError, match="entry 'w' is list, not a named tensor"):
        import_params(tmp_path / "odd.pth", arch, 10)


# -- export ---------------------------------------------------------------------------------
def test_export_authors_writes_their_keys(tmp_path, capsys, monkeypatch):
    data = load_data("shapes", n_train=10, n_test=10, seed=0)
    arch = "vgg5"
    net, params = lively(arch)
    ckpt = tmp_path / "snn.npz"
    save_model(ckpt, params, arch=arch, kind="snn", T=6, data=data_record(data))
    out = tmp_path / "authors.npz"
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(out),
                 "--format", "authors"]) == 0
    with np.load(out) as f:
        keys = set(f.files)
    assert keys == set(authors_snn_state(arch, params, net, prefix="")) | {"__metadata__"}
    monkeypatch.setitem(__import__("sys").modules, "torch", None)     # PyTorch not installed
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "a.pth"),
                 "--format", "authors"]) == 2
    assert "writing a .pth file needs PyTorch" in capsys.readouterr().err
    assert not (tmp_path / "a.pth").exists()
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "a.h5"),
                 "--format", "authors"]) == 2
    assert "--format authors writes a .safetensors or .npz or .pth file" in \
        capsys.readouterr().err


def test_pth_reader_on_mutated_files_reads_or_refuses_in_one_line(tmp_path):
    """300 random byte changes and truncations of a valid file: each is read or
    refused with a DietError, never another exception."""
    good = pth_bytes({"state_dict": {"w": np.arange(6, dtype=np.float32).reshape(2, 3),
                                     "t": np.array(0.5, np.float32)},
                      "thresholds": [0.5], "timesteps": 5})
    rng = np.random.default_rng(0)
    path, refused = tmp_path / "m.pth", 0
    for _ in range(300):
        data = bytearray(good)
        for j in rng.integers(len(data), size=rng.integers(1, 4)):
            data[j] = rng.integers(256)
        path.write_bytes(bytes(data[:rng.integers(len(data))] if rng.random() < 0.2 else data))
        try:
            read_pth(path)
        except DietError as exc:
            assert "\n" not in str(exc)
            refused += 1
    assert refused > 30
