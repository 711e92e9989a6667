"""Every reader against damaged files: random bytes, truncations, malformed headers,
wrong dtypes and shapes, non-finite values, metadata of the wrong type.

Each damaged weights file goes through ``diet-np import`` and each damaged
checkpoint through ``export``, ``evaluate`` and ``finetune``: every one must end
in one ``error:`` line with exit status 2 (no traceback) and leave nothing
behind.  The hand-written safetensors parser is also run against the maintained
``safetensors`` package on the same bytes: it may refuse more (dtypes diet-np
does not read), never accept what the package refuses, and reads what both
accept identically.
"""
import json
import zipfile

import numpy as np
import pytest

from conftest import vgg5_files
from diet_np.cli import main
from diet_np.errors import DietError
from diet_np.pipeline import load_model
from diet_np.weights import read_safetensors, write_tensors

DATA = ["--dataset", "shapes", "--n-train", "20", "--n-test", "10", "--quiet"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A vgg5 SNN checkpoint and its export in both formats."""
    folder = tmp_path_factory.mktemp("good")
    params = vgg5_files(folder)
    metadata = {"format": "diet-np", "arch": json.dumps("vgg5"), "kind": "snn", "T": "3",
                "num_classes": "10"}
    for suffix in ("safetensors", "npz"):
        write_tensors(folder / f"w.{suffix}", params, metadata)
    return {"ckpt": folder / "snn.npz", "params": params, "metadata": metadata, "folder": folder}


def one_line_refusal(capsys, argv, out):
    """Run the CLI: exit 2, one ``error:`` line on stderr, ``out`` not written."""
    assert main(argv) == 2, argv
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ": error: " in err[0] and "Traceback" not in err[0], err
    assert not out.exists() and not list(out.parent.glob(f".{out.name}*")), out
    return err[0]


# -- safetensors files -----------------------------------------------------------------
def _split(raw):
    n = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def _join(header, body, text=None):
    text = json.dumps(header).encode() if text is None else text
    return len(text).to_bytes(8, "little") + text + body


def _changed(entry_key, field, value):
    def change(header, body):
        header[entry_key][field] = value
        return _join(header, body)
    return change


def _header(value):
    return lambda header, body: _join(value, body)


def _metadata(value):
    def change(header, body):
        header["__metadata__"] = value
        return _join(header, body)
    return change


def _values(key, value):
    """The file with tensor ``key``'s first value replaced (same dtype, shape and offsets)."""
    def change(header, body):
        begin, end = header[key]["data_offsets"]
        a = np.frombuffer(body[begin:end], "<f4").copy()
        a.flat[0] = value
        return _join(header, body[:begin] + a.tobytes() + body[end:])
    return change


def _retyped(key, dtype):
    """The file with tensor ``key`` stored as ``dtype`` (or flattened, for float32)."""
    def change(header, body):
        tensors = {k: np.frombuffer(body[slice(*v["data_offsets"])], "<f4").reshape(v["shape"])
                   for k, v in header.items() if k != "__metadata__"}
        tensors[key] = tensors[key].astype(dtype).reshape(-1)
        return st_bytes(tensors, header.get("__metadata__"))
    return change


def st_bytes(tensors, metadata=None):
    """A ``.safetensors`` file's bytes, written here (not by diet-np's writer)."""
    names = {"float32": "F32", "float64": "F64", "int32": "I32", "int64": "I64"}
    header, chunks, offset = {}, [], 0
    for name, a in tensors.items():
        raw = np.ascontiguousarray(a).tobytes()
        header[name] = {"dtype": names[a.dtype.name], "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    return _join(header, b"".join(chunks))


def _overlap(header, body):
    first, second = [k for k in header if k != "__metadata__"][:2]
    header[second]["data_offsets"] = list(header[first]["data_offsets"])
    return _join(header, body)


ST_DAMAGE = {
    "shape of strings": _changed("conv1.weight", "shape", ["64", 3, 3, 3]),
    "shape of floats": _changed("conv1.weight", "shape", [64.0, 3, 3, 3]),
    "negative shape": _changed("conv1.weight", "shape", [-64, 3, 3, 3]),
    "shape not a list": _changed("conv1.weight", "shape", "64x3x3x3"),
    "shape of booleans": _changed("conv1.leak", "shape", [True]),
    "nested shape": _changed("conv1.weight", "shape", [[64], 3, 3, 3]),
    "string offsets": _changed("conv1.weight", "data_offsets", ["0", "6912"]),
    "negative offsets": _changed("conv1.weight", "data_offsets", [-4, 6908]),
    "reversed offsets": _changed("conv1.weight", "data_offsets", [6912, 0]),
    "one offset": _changed("conv1.weight", "data_offsets", [0]),
    "huge offset": _changed("conv1.weight", "data_offsets", [0, 10 ** 30]),
    "unknown dtype": _changed("conv1.weight", "dtype", "F99"),
    "dtype a number": _changed("conv1.weight", "dtype", 32),
    "dtype a list": _changed("conv1.weight", "dtype", ["F32"]),
    "entry not a map": lambda h, b: _join({**h, "conv1.weight": [1, 2]}, b),
    "entry without shape": lambda h, b: _join(
        {**h, "conv1.weight": {"dtype": "F32", "data_offsets": [0, 6912]}}, b),
    "overlapping tensors": _overlap,
    "bytes after the tensors": lambda h, b: _join(h, b + b"\0" * 8),
    "header a list": _header([1, 2, 3]),
    "header a string": _header("weights"),
    "header deeply nested": lambda h, b: _join(h, b, b"[" * 100000 + b"]" * 100000),
    "header not UTF-8": lambda h, b: _join(h, b, b"{\"\xff\xfe\": 1}"),
    "header not JSON": lambda h, b: _join(h, b, b"{not json"),
    "header length huge": lambda h, b: (2 ** 63).to_bytes(8, "little") + b"{}",
    "metadata a list": _metadata(["vgg5"]),
    "metadata a string": _metadata("vgg5"),
    "metadata values numbers": _metadata({"T": 3}),
    "metadata kind unknown": _metadata({"kind": "cnn"}),
    "metadata T not a number": _metadata({"T": "three"}),
    "metadata T zero": _metadata({"T": "0"}),
    "metadata arch not JSON": _metadata({"arch": "{vgg5"}),
    "metadata arch a number": _metadata({"arch": "5"}),
    "metadata arch another": _metadata({"arch": json.dumps("vgg9")}),
    "metadata classes negative": _metadata({"num_classes": "-3"}),
    "metadata classes other": _metadata({"num_classes": "100"}),
    "metadata SNN without leaks": lambda h, b: _join(
        {k: v for k, v in h.items() if not k.endswith(".leak")}, b),
    "NaN weight": _values("conv1.weight", np.nan),
    "inf threshold": _values("conv2.threshold", np.inf),
    "leak above 1": _values("conv1.leak", 1.5),
    "threshold negative": _values("fc1.threshold", -1.0),
    "integer weight": _retyped("conv1.weight", np.int32),
    "flat weight": _retyped("conv2.weight", np.float32),
}


TRUNCATIONS = {"truncated to 0": 0, "truncated to 5": 5, "truncated to 8": 8,
               "truncated to 20": 20, "truncated to half": 0.5, "truncated by one": -1}


def _cut(raw, where):
    return raw[:where if isinstance(where, int) and where >= 0 else
               len(raw) - 1 if where == -1 else int(len(raw) * where)]


def _st_variants(raw):
    rng = np.random.default_rng(0)
    out = {name: _cut(raw, where) for name, where in TRUNCATIONS.items()}
    out.update({f"random {n} bytes": rng.bytes(n) for n in (7, 64, 4096)})
    for name, change in ST_DAMAGE.items():
        header, body = _split(raw)
        out[name] = change(header, body)
    return out


@pytest.fixture(scope="module")
def st_variants(files):
    return _st_variants((files["folder"] / "w.safetensors").read_bytes())


@pytest.mark.parametrize("name", list(TRUNCATIONS) + [f"random {n} bytes" for n in (7, 64, 4096)]
                         + list(ST_DAMAGE))
def test_damaged_safetensors_is_refused_by_import(st_variants, tmp_path, capsys, name):
    src = tmp_path / "w.safetensors"
    src.write_bytes(st_variants[name])
    out = tmp_path / "sub" / "imported.npz"
    one_line_refusal(capsys, ["import", "--from", str(src), "--format", "diet-np", "--out",
                              str(out)] + DATA, out)
    assert not out.parent.exists(), "a refused import made the output's folder"


def test_the_parser_accepts_only_what_the_safetensors_package_accepts(st_variants, tmp_path):
    """Every damaged file above, and 300 files with random bytes changed in the header
    of a small valid one."""
    st_numpy = pytest.importorskip("safetensors.numpy")
    rng = np.random.default_rng(1)
    valid = st_bytes({"a": rng.normal(size=(2, 3)).astype(np.float32),
                      "b": np.arange(4, dtype=np.int64), "c": np.array(0.5)})
    n = int.from_bytes(valid[:8], "little")
    cases = dict(st_variants, valid=valid)
    for i in range(300):
        mutated = bytearray(valid)
        for _ in range(rng.integers(1, 4)):
            mutated[rng.integers(8, 8 + n)] = rng.integers(32, 127)
        cases[f"mutation {i}"] = bytes(mutated)
    accepted = 0
    for name, data in cases.items():
        path = tmp_path / "case.safetensors"
        path.write_bytes(data)
        try:
            ours = read_safetensors(path)[0]
        except DietError as exc:
            assert "\n" not in str(exc), name
            ours = None
        try:
            theirs = st_numpy.load(data)
        except Exception:                           # the package's own error types
            theirs = None
        if ours is not None:
            assert theirs is not None, f"{name}: accepted here, refused by safetensors"
            assert sorted(ours) == sorted(theirs), name
            for key in ours:
                np.testing.assert_array_equal(ours[key], theirs[key], err_msg=name)
            accepted += 1
    assert accepted > 10                            # some mutations leave a valid file


# -- .npz weights files ----------------------------------------------------------------
def _npz(params, **changes):
    entries = {**params, **changes}
    return {k: v for k, v in entries.items() if v is not None}


NPZ_DAMAGE = {
    "metadata not JSON": lambda p: _npz(p, __metadata__=np.array("{kind: snn")),
    "metadata a JSON list": lambda p: _npz(p, __metadata__=np.array("[1, 2]")),
    "metadata values numbers": lambda p: _npz(p, __metadata__=np.array('{"T": 3}')),
    "metadata not a string": lambda p: _npz(p, __metadata__=np.arange(3)),
    "metadata kind unknown": lambda p: _npz(p, __metadata__=np.array('{"kind": "x"}')),
    "string tensor": lambda p: _npz(p, **{"conv1.weight": np.array(["a", "b"])}),
    "integer weight": lambda p: _npz(p, **{"conv1.weight": np.zeros((64, 3, 3, 3), np.int64)}),
    "wrong shape": lambda p: _npz(p, **{"conv1.weight": np.zeros((3, 64, 3, 3), np.float32)}),
    "NaN weight": lambda p: _npz(p, **{"fc1.weight": np.full(p["fc1.weight"].shape, np.nan,
                                                             np.float32)}),
    "inf leak": lambda p: _npz(p, **{"conv1.leak": np.array(np.inf, np.float32)}),
    "leak above 1": lambda p: _npz(p, **{"conv2.leak": np.array(1.5, np.float32)}),
    "threshold zero": lambda p: _npz(p, **{"conv2.threshold": np.array(0.0, np.float32)}),
    "one leak missing": lambda p: _npz(p, **{"conv3.leak": None}),
    "extra tensor": lambda p: _npz(p, **{"conv9.weight": np.zeros(3, np.float32)}),
}


@pytest.mark.parametrize("name", list(NPZ_DAMAGE) + ["random bytes", "truncated zip",
                                                      "pickled object array", "a checkpoint"])
def test_damaged_npz_is_refused_by_import(files, tmp_path, capsys, name):
    src = tmp_path / "w.npz"
    good = files["folder"] / "w.npz"
    if name == "random bytes":
        src.write_bytes(np.random.default_rng(3).bytes(2000))
    elif name == "truncated zip":
        src.write_bytes(good.read_bytes()[:len(good.read_bytes()) // 2])
    elif name == "pickled object array":
        np.savez(src, **{"conv1.weight": np.array([{"a": 1}], dtype=object)})
    elif name == "a checkpoint":
        src.write_bytes(files["ckpt"].read_bytes())
    else:
        np.savez(src, **NPZ_DAMAGE[name]({**files["params"], "__metadata__": np.array(
            json.dumps(files["metadata"]))}))
    out = tmp_path / "sub" / "imported.npz"
    one_line_refusal(capsys, ["import", "--from", str(src), "--format", "diet-np", "--out",
                              str(out)] + DATA, out)
    assert not out.parent.exists()


def test_a_missing_weights_file_is_refused_before_the_data_set_loads(tmp_path, capsys,
                                                                     monkeypatch):
    import diet_np.cli as cli

    def no_data(*args, **kwargs):
        raise AssertionError("the data set was loaded before the file was checked")
    monkeypatch.setattr(cli, "load_data", no_data)
    out = tmp_path / "x.npz"
    err = one_line_refusal(capsys, ["import", "--from", str(tmp_path / "none.safetensors"),
                                    "--arch", "vgg5", "--out", str(out)] + DATA, out)
    assert "none.safetensors does not exist" in err


# -- checkpoints ---------------------------------------------------------------------------
def _rewrite(src, dst, meta=None, entries=None):
    """Copy checkpoint ``src`` to ``dst`` with its header changed by ``meta(header)`` and
    its arrays by ``entries(dict)``."""
    with np.load(src, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    header = json.loads(str(arrays["__meta__"][()]))
    if meta:
        meta(header)
    arrays["__meta__"] = np.array(json.dumps(header))
    if entries:
        entries(arrays)
    np.savez(dst, **arrays)


def _set_meta(path, value):
    def change(header):
        node = header["meta"]
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return change


def _set_param(key, value):
    def change(arrays):
        if value is None:
            del arrays[f"param/{key}"]
        else:
            arrays[f"param/{key}"] = value
    return change


CKPT_DAMAGE = {
    "header not JSON": dict(entries=lambda a: a.update(__meta__=np.array("{"))),
    "format another": dict(meta=lambda h: h.update(format="other")),
    "params not a list": dict(meta=lambda h: h.update(params="conv1.weight")),
    "meta a list": dict(meta=lambda h: h.update(meta=[1])),
    "arch a number": dict(meta=_set_meta(["arch"], 5)),
    "arch unknown": dict(meta=_set_meta(["arch"], "vgg99")),
    "arch malformed": dict(meta=_set_meta(["arch"], {"features": "x"})),
    "kind unknown": dict(meta=_set_meta(["kind"], "cnn")),
    "T a string": dict(meta=_set_meta(["T"], "5")),
    "T zero": dict(meta=_set_meta(["T"], 0)),
    "T a float": dict(meta=_set_meta(["T"], 2.5)),
    "epoch negative": dict(meta=_set_meta(["epoch"], -1)),
    "data a list": dict(meta=_set_meta(["data"], [])),
    "input shape short": dict(meta=_set_meta(["data", "input_shape"], [3, 32])),
    "input shape strings": dict(meta=_set_meta(["data", "input_shape"], ["3", 32, 32])),
    "input shape zero": dict(meta=_set_meta(["data", "input_shape"], [0, 32, 32])),
    "classes zero": dict(meta=_set_meta(["data", "num_classes"], 0)),
    "classes a string": dict(meta=_set_meta(["data", "num_classes"], "10")),
    "mean strings": dict(meta=_set_meta(["data", "mean"], ["a", "b", "c"])),
    "std zero": dict(meta=_set_meta(["data", "std"], [0.0, 0.0, 0.0])),
    "std two channels": dict(meta=_set_meta(["data", "std"], [0.2, 0.2])),
    "test images zero": dict(meta=_set_meta(["data", "n_test"], 0)),
    "seed negative": dict(meta=_set_meta(["data", "seed"], -1)),
    "history a string": dict(meta=_set_meta(["history"], "none")),
    "history of numbers": dict(meta=_set_meta(["history"], [1, 2])),
    "config a list": dict(meta=_set_meta(["config"], [1])),
    "origin a list": dict(meta=_set_meta(["origin"], [1])),
    "encoding unknown": dict(meta=_set_meta(["origin"], {"encoding": "morse"})),
    "encoding a list": dict(meta=_set_meta(["origin"], {"encoding": ["rate"]})),
    "integer parameter": dict(entries=_set_param("conv1.weight",
                                                 np.zeros((64, 3, 3, 3), np.int64))),
    "string parameter": dict(entries=_set_param("conv1.leak", np.array("0.9"))),
    "complex parameter": dict(entries=_set_param("conv1.leak", np.array(0.9 + 0j))),
    "NaN parameter": dict(entries=_set_param("fc1.weight", np.full((256, 2048), np.nan,
                                                                   np.float32))),
    "leak above 1": dict(entries=_set_param("conv1.leak", np.array(1.5, np.float32))),
    "leak negative": dict(entries=_set_param("conv1.leak", np.array(-0.1, np.float32))),
    "threshold -1": dict(entries=_set_param("conv2.threshold", np.array(-1.0, np.float32))),
    "threshold zero": dict(entries=_set_param("conv2.threshold", np.array(0.0, np.float32))),
    "wrong shape": dict(entries=_set_param("conv2.weight", np.zeros((3, 3), np.float32))),
    "parameter missing": dict(entries=_set_param("conv2.weight", None)),
}


@pytest.fixture(scope="module")
def damaged_checkpoints(files, tmp_path_factory):
    folder = tmp_path_factory.mktemp("damaged")
    good = files["ckpt"].read_bytes()
    paths = {}
    for name, change in CKPT_DAMAGE.items():
        paths[name] = folder / f"{name.replace(' ', '_')}.npz"
        _rewrite(files["ckpt"], paths[name], **change)
    for name, where in TRUNCATIONS.items():
        paths[name] = folder / f"{name.replace(' ', '_')}.npz"
        paths[name].write_bytes(_cut(good, where))
    paths["random bytes"] = folder / "random.npz"
    paths["random bytes"].write_bytes(np.random.default_rng(4).bytes(3000))
    paths["an empty zip"] = folder / "empty.npz"
    zipfile.ZipFile(paths["an empty zip"], "w").close()
    return paths


@pytest.mark.parametrize("name", list(CKPT_DAMAGE) + list(TRUNCATIONS)
                         + ["random bytes", "an empty zip"])
def test_damaged_checkpoint_is_one_line_for_every_reader(damaged_checkpoints, tmp_path, capsys,
                                                         name):
    path = damaged_checkpoints[name]
    with pytest.raises(DietError) as refused:
        load_model(path, np)
    assert "\n" not in str(refused.value)
    out = tmp_path / "sub" / "w.safetensors"
    one_line_refusal(capsys, ["export", "--checkpoint", str(path), "--out", str(out)], out)
    run = tmp_path / "run"
    one_line_refusal(capsys, ["finetune", "--checkpoint", str(path), "--out", str(run),
                              "--epochs", "1", "--quiet"], run)
    one_line_refusal(capsys, ["evaluate", "--checkpoint", str(path), "--quiet"],
                     tmp_path / "nothing")
    assert not (tmp_path / "sub").exists()


def test_a_float64_checkpoint_is_cast_to_float32(files, tmp_path):
    """float64 parameters (a hand-made file) are read as float32, the training dtype."""
    path = tmp_path / "f64.npz"
    _rewrite(files["ckpt"], path, entries=lambda a: a.update({
        k: v.astype(np.float64) for k, v in a.items() if k.startswith("param/")}))
    _, params, _ = load_model(path, np)
    assert {v.dtype for v in params.values()} == {np.dtype(np.float32)}
    np.testing.assert_array_equal(params["conv1.weight"], files["params"]["conv1.weight"])


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A finished one-epoch train-ann run of vgg5 on 20 shapes images."""
    folder = tmp_path_factory.mktemp("run") / "run"
    assert main(["train-ann", "--epochs", "1", "--n-train", "20", "--batch-size", "10",
                 "--out", str(folder)] + DATA[-3:]) == 0
    return folder


@pytest.mark.parametrize("key, value", [("epochs", None), ("epochs", "3"), ("schedule", "x"),
                                        ("surrogate", 7), ("dropout", []), ("learn", 5),
                                        ("momentum", 2.0), ("lr", "fast"), ("milestones", "x"),
                                        ("weight_decay", None)])
def test_a_damaged_training_config_is_one_line_on_resume(run_folder, tmp_path, capsys, key,
                                                         value):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("log.jsonl", "curves.png"):
        (run / name).write_bytes((run_folder / name).read_bytes())
    _rewrite(run_folder / "checkpoint.npz", run / "checkpoint.npz",
             meta=_set_meta(["config", key], value))
    before = sorted(p.name for p in run.iterdir())
    one_line_refusal(capsys, ["train-ann", "--resume", "--epochs", "2", "--out", str(run)]
                     + DATA[-3:], run / "never")
    assert sorted(p.name for p in run.iterdir()) == before
