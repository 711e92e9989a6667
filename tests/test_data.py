"""Tests for diet_np.data: CIFAR download/verify/extract/parse on tiny archives built
here, the embedded shapes set, transforms (NumPy vs strict device) and batches."""
from __future__ import annotations

import errno
import hashlib
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from diet_np.backend import default_rng, get_xp, to_host
from diet_np.data import (DATASETS, DataError, apply_crop_flip, check_labeled_images,
                          crop_flip_params, data_dir, iterate_batches, load_cifar, load_dataset,
                          make_shapes, normalize, num_batches, random_crop_flip)
from diet_np.data import cifar

SX = get_xp("strict")
CIFAR10_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog",
                 b"horse", b"ship", b"truck"]


# ---------------------------------------------------------------------------
# Tiny archives in the official layout
# ---------------------------------------------------------------------------
def _dump(path: Path, obj) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)  # the official files are protocol-2 pickles


def _batch(rng, n, label_key=b"labels", classes=10, tag=b"batch"):
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, classes, size=n)]
    return {b"batch_label": tag, label_key: labels, b"data": data,
            b"filenames": [b"img_%d.png" % i for i in range(n)]}


def make_cifar10_folder(parent: Path, batches=(1, 2, 3, 4, 5), n=4, test=True, meta=True, seed=0):
    """Write cifar-10-batches-py/ under ``parent``; return {file: dict} of what was written."""
    rng = np.random.default_rng(seed)
    folder = parent / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    written = {}
    for i in batches:
        written[f"data_batch_{i}"] = _batch(rng, n, tag=b"training batch %d of 5" % i)
    if test:
        written["test_batch"] = _batch(rng, n + 1, tag=b"testing batch 1 of 1")
    if meta:
        written["batches.meta"] = {b"num_cases_per_batch": n, b"label_names": CIFAR10_NAMES,
                                   b"num_vis": 3072}
    for name, obj in written.items():
        _dump(folder / name, obj)
    return written


def make_tar_gz(src_parent: Path, folder: str, out: Path) -> str:
    """Pack ``src_parent/folder`` into ``out`` (.tar.gz); return its MD5."""
    with tarfile.open(out, "w:gz") as tar:
        tar.add(src_parent / folder, arcname=folder)
    return hashlib.md5(out.read_bytes()).hexdigest()


@pytest.fixture
def archive10(tmp_path):
    """A complete tiny CIFAR-10 archive: (path, md5, {file: dict})."""
    src = tmp_path / "src"
    written = make_cifar10_folder(src)
    out = tmp_path / "served" / "cifar-10-python.tar.gz"
    out.parent.mkdir()
    return out, make_tar_gz(src, "cifar-10-batches-py", out), written


def serve(monkeypatch, name, path: Path, md5: str) -> None:
    """Point ARCHIVES[name] at a local file by file:// URL."""
    entry = dict(cifar.ARCHIVES[name], url=path.resolve().as_uri(), md5=md5)
    monkeypatch.setitem(cifar.ARCHIVES, name, entry)


def _expected_images(written, files):
    return np.concatenate([written[f][b"data"] for f in files]).reshape(-1, 3, 32, 32)


def _leftovers(root: Path):
    """Hidden temporary files/folders (downloads, staging) left in root."""
    return sorted(p.name for p in root.iterdir() if p.name.startswith("."))


# ---------------------------------------------------------------------------
# Download -> verify -> extract -> parse
# ---------------------------------------------------------------------------
def test_download_verify_extract_parse(tmp_path, monkeypatch, archive10):
    path, md5, written = archive10
    serve(monkeypatch, "cifar10", path, md5)
    root = tmp_path / "root"
    ds = load_cifar("cifar10", root=root)
    train_files = [f"data_batch_{i}" for i in range(1, 6)]
    assert ds.name == "cifar10" and ds.num_classes == 10
    assert ds.x_train.dtype == np.uint8 and ds.x_train.shape == (20, 3, 32, 32)
    assert ds.y_train.dtype == np.int64 and ds.y_test.dtype == np.int64
    np.testing.assert_array_equal(ds.x_train, _expected_images(written, train_files))
    labels = np.concatenate([written[f][b"labels"] for f in train_files])
    np.testing.assert_array_equal(ds.y_train, labels)
    np.testing.assert_array_equal(ds.x_test, _expected_images(written, ["test_batch"]))
    assert ds.class_names[0] == "airplane" and ds.class_names[-1] == "truck"
    assert "20 training images" in ds.note and "missing" not in ds.note
    # R, G, B planes: channel 0 of image 0 is the first 1024 bytes of its row.
    first_row = written["data_batch_1"][b"data"][0]
    np.testing.assert_array_equal(ds.x_train[0, 0].ravel(), first_row[:1024])
    # mean/std are per channel in [0, 1] units, from the training images.
    f = ds.x_train.astype(np.float64) / 255
    np.testing.assert_allclose(ds.mean, f.mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(ds.std, f.std(axis=(0, 2, 3)), rtol=1e-5)
    assert ds.mean.dtype == np.float32 and ds.std.dtype == np.float32
    assert (root / "cifar-10-batches-py").is_dir() and (root / "cifar-10-python.tar.gz").is_file()
    assert _leftovers(root) == []
    # A second call reads the folder and never touches the network.
    serve(monkeypatch, "cifar10", tmp_path / "gone.tar.gz", md5)
    np.testing.assert_array_equal(load_cifar("cifar10", root=root).y_test, ds.y_test)


def test_checksum_mismatch_leaves_nothing_trusted(tmp_path, monkeypatch, archive10):
    path, md5, _ = archive10
    serve(monkeypatch, "cifar10", path, "0" * 32)
    root = tmp_path / "root"
    with pytest.raises(DataError, match="checksum mismatch") as info:
        load_cifar("cifar10", root=root)
    message = str(info.value)
    assert "0" * 32 in message and md5 in message and path.as_uri() in message
    assert sorted(p.name for p in root.iterdir()) == []
    serve(monkeypatch, "cifar10", path, md5)
    assert load_cifar("cifar10", root=root).x_train.shape[0] == 20


def test_mismatched_archive_in_place_is_reported_and_kept(tmp_path, monkeypatch, archive10):
    path, md5, _ = archive10
    serve(monkeypatch, "cifar10", path, md5)
    root = tmp_path / "root"
    root.mkdir()
    placed = root / "cifar-10-python.tar.gz"
    placed.write_bytes(b"not the archive")
    actual = hashlib.md5(b"not the archive").hexdigest()
    for download in (True, False):
        with pytest.raises(DataError, match="checksum mismatch") as info:
            load_cifar("cifar10", root=root, download=download)
        message = str(info.value)
        assert str(placed) in message and md5 in message and actual in message
        assert path.as_uri() in message and "delete it" in message
        assert placed.read_bytes() == b"not the archive"  # a file we did not write is kept
        assert sorted(p.name for p in root.iterdir()) == [placed.name]
    placed.unlink()  # the user follows the advice
    assert load_cifar("cifar10", root=root).x_train.shape[0] == 20


def test_no_download_extracts_an_archive_in_place(tmp_path, monkeypatch, archive10):
    path, md5, _ = archive10
    serve(monkeypatch, "cifar10", tmp_path / "nowhere.tar.gz", md5)
    root = tmp_path / "root"
    with pytest.raises(DataError, match="not found") as info:
        load_cifar("cifar10", root=root, download=False)
    assert str(root / "cifar-10-batches-py") in str(info.value) and not root.exists()
    root.mkdir()
    (root / "cifar-10-python.tar.gz").write_bytes(path.read_bytes())
    ds = load_cifar("cifar10", root=root, download=False)  # verified and extracted, no network
    assert ds.x_train.shape[0] == 20 and (root / "cifar-10-batches-py").is_dir()
    assert (root / "cifar-10-python.tar.gz").read_bytes() == path.read_bytes()


def test_unusable_archive_in_place_is_kept(tmp_path, monkeypatch, archive10):
    """An archive with the expected MD5 that cannot be extracted stays where the user put it."""
    path, _, _ = archive10
    root = tmp_path / "root"
    root.mkdir()
    placed = root / "cifar-10-python.tar.gz"
    placed.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    serve(monkeypatch, "cifar10", tmp_path / "nowhere.tar.gz",
          hashlib.md5(placed.read_bytes()).hexdigest())
    with pytest.raises(DataError, match="truncated or corrupt.*left in place"):
        load_cifar("cifar10", root=root)
    assert placed.stat().st_size == path.stat().st_size // 2
    assert sorted(p.name for p in root.iterdir()) == [placed.name]


def test_disk_full_during_extraction_keeps_the_download(tmp_path, monkeypatch, archive10):
    """A write error is not a corrupt archive: the verified download stays for the next try."""
    path, md5, _ = archive10
    serve(monkeypatch, "cifar10", path, md5)
    root = tmp_path / "root"

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tarfile.TarFile, "extractall", full)
    with pytest.raises(DataError, match="No space left on device.*was kept") as info:
        load_cifar("cifar10", root=root)
    assert "corrupt" not in str(info.value)
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-python.tar.gz"]
    monkeypatch.undo()
    serve(monkeypatch, "cifar10", tmp_path / "nowhere.tar.gz", md5)  # no second download
    assert load_cifar("cifar10", root=root).x_train.shape[0] == 20


def test_download_progress_on_stderr(tmp_path, monkeypatch, capsys, archive10):
    path, md5, _ = archive10
    serve(monkeypatch, "cifar10", path, md5)
    load_cifar("cifar10", root=tmp_path / "quiet", show_progress=False)
    assert capsys.readouterr().err == ""
    load_cifar("cifar10", root=tmp_path / "shown")
    lines = capsys.readouterr().err.splitlines()
    # not a terminal: one final line, no carriage returns
    assert len(lines) == 1 and "\r" not in lines[0]
    assert lines[0].startswith("downloading cifar-10-python.tar.gz: 100%") and "MiB/s" in lines[0]


def test_truncated_archive(tmp_path, monkeypatch, archive10):
    path, md5, _ = archive10
    cut = tmp_path / "served" / "cut.tar.gz"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    root = tmp_path / "root"
    # With the real checksum, the cut download is caught by the MD5 check ...
    serve(monkeypatch, "cifar10", cut, md5)
    with pytest.raises(DataError, match="checksum mismatch"):
        load_cifar("cifar10", root=root)
    # ... and even if the checksum matched, extraction reports it and removes its own download.
    serve(monkeypatch, "cifar10", cut, hashlib.md5(cut.read_bytes()).hexdigest())
    with pytest.raises(DataError, match="corrupt.*downloaded by this call was removed"):
        load_cifar("cifar10", root=root)
    assert sorted(p.name for p in root.iterdir()) == []


def test_archive_missing_files(tmp_path, monkeypatch):
    src = tmp_path / "src"
    make_cifar10_folder(src, test=False)
    out = tmp_path / "a.tar.gz"
    serve(monkeypatch, "cifar10", out, make_tar_gz(src, "cifar-10-batches-py", out))
    root = tmp_path / "root"
    with pytest.raises(DataError, match="test_batch"):
        load_cifar("cifar10", root=root)
    assert not (root / "cifar-10-batches-py").exists() and _leftovers(root) == []


def test_unsafe_archive_member_refused(tmp_path, monkeypatch):
    out = tmp_path / "evil.tar.gz"
    with tarfile.open(out, "w:gz") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    serve(monkeypatch, "cifar10", out, hashlib.md5(out.read_bytes()).hexdigest())
    root = tmp_path / "root"
    with pytest.raises(DataError, match="unsafe"):
        load_cifar("cifar10", root=root)
    assert not (tmp_path / "escape.txt").exists()


def test_no_network_says_where_to_put_files(tmp_path, monkeypatch):
    serve(monkeypatch, "cifar10", tmp_path / "nowhere" / "cifar-10-python.tar.gz", "0" * 32)
    root = tmp_path / "root"
    with pytest.raises(DataError, match="could not download") as info:
        load_cifar("cifar10", root=root)
    assert str(root / "cifar-10-python.tar.gz") in str(info.value)
    assert _leftovers(root) == []
    with pytest.raises(DataError, match="download=False"):
        load_cifar("cifar10", root=root, download=False)


def test_archive_placed_by_hand_is_used(tmp_path, monkeypatch, archive10):
    path, md5, _ = archive10
    serve(monkeypatch, "cifar10", tmp_path / "nowhere.tar.gz", md5)
    root = tmp_path / "root"
    root.mkdir()
    (root / "cifar-10-python.tar.gz").write_bytes(path.read_bytes())
    assert load_cifar("cifar10", root=root).x_test.shape == (5, 3, 32, 32)


# ---------------------------------------------------------------------------
# Reading extracted folders
# ---------------------------------------------------------------------------
def test_partial_folder_like_the_shared_copy(tmp_path):
    written = make_cifar10_folder(tmp_path, batches=(1, 2), n=3)
    ds = load_cifar("cifar10", root=tmp_path, download=False)
    expected = _expected_images(written, ["data_batch_1", "data_batch_2"])
    np.testing.assert_array_equal(ds.x_train, expected)
    assert "6 training images" in ds.note and "2 of 5" in ds.note and "data_batch_3" in ds.note


@pytest.mark.parametrize("kw, missing", [
    ({"test": False}, "test_batch"),
    ({"meta": False}, "batches.meta"),
    ({"batches": ()}, "no training file"),
])
def test_missing_files_in_folder(tmp_path, kw, missing):
    make_cifar10_folder(tmp_path, **kw)
    with pytest.raises(DataError, match=missing) as info:
        load_cifar("cifar10", root=tmp_path, download=False)
    assert str(tmp_path / "cifar-10-batches-py") in str(info.value)


def test_corrupt_and_malformed_batches(tmp_path):
    make_cifar10_folder(tmp_path, batches=(1,))
    bad = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    bad.write_bytes(b"\x80\x02garbage")
    with pytest.raises(DataError, match="data_batch_1"):
        load_cifar("cifar10", root=tmp_path, download=False)
    rng = np.random.default_rng(0)
    _dump(bad, {**_batch(rng, 2), b"data": np.zeros((2, 3000), np.uint8)})
    with pytest.raises(DataError, match=r"uint8 \(N, 3072\)"):
        load_cifar("cifar10", root=tmp_path, download=False)
    _dump(bad, {**_batch(rng, 2), b"labels": [3, 10]})
    with pytest.raises(DataError, match=r"\[0, 10\)"):
        load_cifar("cifar10", root=tmp_path, download=False)
    _dump(bad, {**_batch(rng, 2), b"labels": [3]})
    with pytest.raises(DataError, match="2 images"):
        load_cifar("cifar10", root=tmp_path, download=False)
    _dump(bad, {b"data": os.getcwd})  # a pickle naming a non-NumPy global is refused
    with pytest.raises(DataError, match="not allowed"):
        load_cifar("cifar10", root=tmp_path, download=False)


def test_cifar100_archive(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    folder = tmp_path / "src" / "cifar-100-python"
    folder.mkdir(parents=True)
    train = _batch(rng, 6, label_key=b"fine_labels", classes=100)
    test = _batch(rng, 2, label_key=b"fine_labels", classes=100)
    _dump(folder / "train", train)
    _dump(folder / "test", test)
    _dump(folder / "meta", {b"fine_label_names": [b"c%d" % i for i in range(100)],
                            b"coarse_label_names": [b"k%d" % i for i in range(20)]})
    out = tmp_path / "c100.tar.gz"
    serve(monkeypatch, "cifar100", out, make_tar_gz(tmp_path / "src", "cifar-100-python", out))
    ds = load_dataset("cifar100", root=tmp_path / "root")
    assert ds.num_classes == 100 and len(ds.class_names) == 100 and ds.class_names[7] == "c7"
    np.testing.assert_array_equal(ds.y_train, train[b"fine_labels"])
    np.testing.assert_array_equal(ds.x_test, test[b"data"].reshape(-1, 3, 32, 32))


@pytest.mark.parametrize("change, match", [
    (dict(x=np.zeros((0, 3, 32, 32), np.uint8), y=np.zeros(0, np.int64)), "non-empty"),
    (dict(x=np.zeros((4, 3, 32, 32), np.float32)), "uint8"),
    (dict(x=[[0]]), "list"),
    (dict(image_shape=(3, 8, 8)), r"\(N, 3, 8, 8\)"),
    (dict(y=np.zeros(3, np.int64)), r"4 images but labels of shape \(3,\)"),
    (dict(y=[0, 1, 2, 3]), "host array"),
    (dict(y=np.zeros(4, np.float32)), "dtype float32"),
    (dict(y=np.array([0, 1, 3, 2])), r"\[0, 3\), got range \[0, 3\]"),
    (dict(y=np.array([0, -1, 2, 2])), r"range \[-1, 2\]"),
])
def test_check_labeled_images(change, match):
    args = dict(x=np.zeros((4, 3, 32, 32), np.uint8), y=np.array([0, 1, 2, 2]), num_classes=3,
                what="my set", image_shape=None)
    check_labeled_images(**args)
    args.update(change)
    with pytest.raises(ValueError, match=match) as info:
        check_labeled_images(**args)
    assert "my set" in str(info.value)


# ---------------------------------------------------------------------------
# Data directory and registry
# ---------------------------------------------------------------------------
def test_data_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("DIET_NP_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_dir() == tmp_path / "xdg" / "diet_np"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_dir() == tmp_path / "home" / ".cache" / "diet_np"
    monkeypatch.setenv("DIET_NP_DATA", str(tmp_path / "env"))
    assert data_dir() == tmp_path / "env"
    assert data_dir(tmp_path / "arg") == tmp_path / "arg"


def test_diet_np_data_is_honoured(tmp_path, monkeypatch):
    make_cifar10_folder(tmp_path / "env", batches=(1,), n=2)
    monkeypatch.setenv("DIET_NP_DATA", str(tmp_path / "env"))
    ds = load_dataset("cifar10", download=False)
    assert ds.x_train.shape == (2, 3, 32, 32) and str(tmp_path / "env") in ds.note


def test_registry_names():
    assert DATASETS == ("shapes", "cifar10", "cifar100", "imagenet")
    with pytest.raises(DataError, match="shapes, cifar10, cifar100, imagenet"):
        load_dataset("mnist")
    ds = load_dataset("shapes", n_train=20, n_test=10, seed=3)
    assert ds.name == "shapes" and ds.x_train.shape == (20, 3, 32, 32)


# ---------------------------------------------------------------------------
# Embedded shapes data set
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shapes():
    return make_shapes()


def test_shapes_default_set(shapes):
    assert shapes.x_train.shape == (5000, 3, 32, 32) and shapes.x_test.shape == (1000, 3, 32, 32)
    assert shapes.x_train.dtype == np.uint8 and shapes.y_train.dtype == np.int64
    assert shapes.num_classes == 10 and len(shapes.class_names) == 10
    assert np.bincount(shapes.y_train).tolist() == [500] * 10
    assert np.bincount(shapes.y_test).tolist() == [100] * 10
    assert shapes.mean.shape == (3,) and np.all((shapes.std > 0.1) & (shapes.std < 0.5))
    assert not np.array_equal(shapes.y_train[:50], np.sort(shapes.y_train[:50]))  # shuffled


def test_shapes_deterministic_and_balanced():
    a, b = make_shapes(53, 21, seed=7), make_shapes(53, 21, seed=7)
    for field in ("x_train", "y_train", "x_test", "y_test", "mean", "std"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.x_train, make_shapes(53, 21, seed=8).x_train)
    counts = np.bincount(a.y_train, minlength=10)
    assert counts.sum() == 53 and counts.max() - counts.min() <= 1
    np.testing.assert_array_equal(make_shapes(80, 21, seed=7).x_test, a.x_test)
    with pytest.raises(ValueError, match="n_train"):
        make_shapes(n_train=5)


def test_shapes_classes_are_distinguishable(shapes):
    """Class means of simple image statistics differ: the labels carry signal."""
    x = shapes.x_train.astype(np.float32).mean(axis=1)
    feats = np.stack([np.abs(np.diff(x, axis=1)).mean((1, 2)),
                      np.abs(np.diff(x, axis=2)).mean((1, 2))], 1)
    per_class = np.stack([feats[shapes.y_train == c].mean(0) for c in range(10)])
    # horizontal stripes vary along rows, vertical stripes along columns
    assert per_class[5, 0] > per_class[5, 1] and per_class[6, 1] > per_class[6, 0]


# ---------------------------------------------------------------------------
# Transforms
# ---------------------------------------------------------------------------
def _naive_crop_flip(x, dy, dx, flip, pad):
    """Per-image reference: pad, slice, mirror."""
    n, c, h, w = x.shape
    padded = np.zeros((n, c, h + 2 * pad, w + 2 * pad), x.dtype)
    padded[:, :, pad:pad + h, pad:pad + w] = x
    out = np.empty_like(x)
    for i in range(n):
        crop = padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
        out[i] = crop[:, :, ::-1] if flip[i] else crop
    return out


@pytest.mark.parametrize("pad", [0, 1, 4])
def test_crop_flip_numpy_strict_and_reference_agree(pad):
    rng = np.random.default_rng(pad)
    x = rng.integers(0, 256, size=(9, 3, 8, 10), dtype=np.uint8)
    dy, dx, flip = crop_flip_params(9, np.random.default_rng(5), pad)
    ref = _naive_crop_flip(x, dy, dx, flip, pad)
    out_np = apply_crop_flip(x, dy, dx, flip, pad)
    out_strict = apply_crop_flip(SX.asarray(x), dy, dx, flip, pad)
    assert type(out_strict).__name__ == "StrictArray"
    np.testing.assert_array_equal(out_np, ref)
    np.testing.assert_array_equal(to_host(out_strict), ref)


def test_crop_flip_identity_and_errors():
    x = np.random.default_rng(0).integers(0, 256, size=(4, 3, 6, 6), dtype=np.uint8)
    keep = np.full(4, 2)
    np.testing.assert_array_equal(apply_crop_flip(x, keep, keep, np.zeros(4, bool), pad=2), x)
    mirrored = apply_crop_flip(x, keep, keep, np.ones(4, bool), pad=2)
    np.testing.assert_array_equal(mirrored, x[..., ::-1])
    with pytest.raises(ValueError, match="offsets"):
        apply_crop_flip(x, np.full(4, 5), keep, np.zeros(4, bool), pad=2)
    with pytest.raises(ValueError, match="pad"):
        apply_crop_flip(x, keep, keep, np.zeros(4, bool), pad=-1)


def test_random_crop_flip_with_device_rng():
    x = np.random.default_rng(0).integers(0, 256, size=(16, 3, 32, 32), dtype=np.uint8)
    a = random_crop_flip(SX.asarray(x), default_rng(SX, 3))
    b = random_crop_flip(x, default_rng(np, 3))
    np.testing.assert_array_equal(to_host(a), b)  # the strict device draws like NumPy
    assert a.shape == x.shape and not np.array_equal(b, x)


def test_normalize():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(5, 3, 4, 4), dtype=np.uint8)
    mean, std = np.array([0.4, 0.5, 0.6], np.float32), np.array([0.2, 0.25, 0.3], np.float32)
    m64, s64 = mean.astype(np.float64)[:, None, None], std.astype(np.float64)[:, None, None]
    ref = (x / 255.0 - m64) / s64
    out = normalize(x, mean, std)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    strict = normalize(SX.asarray(x), mean, std)
    np.testing.assert_array_equal(to_host(strict), out)
    with pytest.raises(TypeError, match="uint8"):
        normalize(x.astype(np.float32), mean, std)
    with pytest.raises(ValueError, match="channels"):
        normalize(x, mean[:2], std[:2])


# ---------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------
def _indexed_images(n):
    """Images whose every pixel is the image's index (n <= 256), so batches can be traced."""
    return np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, 3, 4, 4)).copy()


def test_batches_cover_every_example_once():
    n = 23
    x, y = _indexed_images(n), np.arange(n)
    seen = []
    unit = dict(mean=[0, 0, 0], std=[1, 1, 1])
    for xb, yb in iterate_batches(x, y, 5, np, rng=np.random.default_rng(0), **unit):
        assert xb.dtype == np.float32 and yb.dtype == np.int64
        np.testing.assert_array_equal(np.rint(xb[:, 0, 0, 0] * 255).astype(np.int64), yb)
        seen.append(yb)
    assert [len(s) for s in seen] == [5, 5, 5, 5, 3] and num_batches(n, 5) == 5
    order = np.concatenate(seen)
    assert sorted(order.tolist()) == list(range(n)) and order.tolist() != list(range(n))
    kept = list(iterate_batches(x, y, 5, np, rng=np.random.default_rng(0), drop_last=True, **unit))
    assert len(kept) == num_batches(n, 5, drop_last=True) == 4
    plain = np.concatenate([yb for _, yb in iterate_batches(x, y, 7, np, shuffle=False, **unit)])
    assert plain.tolist() == list(range(n))


def test_batches_identical_on_numpy_and_strict_and_resumable():
    d = make_shapes(30, 10, seed=1)
    kw = dict(augment=True, mean=d.mean, std=d.std)
    rng = np.random.default_rng(4)
    first = list(iterate_batches(d.x_train, d.y_train, 8, np, rng=rng, **kw))
    state = rng.bit_generator.state
    second = list(iterate_batches(d.x_train, d.y_train, 8, np, rng=rng, **kw))
    rng_s = np.random.default_rng(4)
    strict = list(iterate_batches(d.x_train, d.y_train, 8, SX, rng=rng_s, **kw))
    for (a, ya), (b, yb) in zip(first, strict):
        assert type(b).__name__ == "StrictArray"
        np.testing.assert_array_equal(a, to_host(b))
        np.testing.assert_array_equal(ya, to_host(yb))
    resumed = np.random.default_rng(99)
    resumed.bit_generator.state = state
    again = list(iterate_batches(d.x_train, d.y_train, 8, np, rng=resumed, **kw))
    for (a, _), (b, _) in zip(second, again):
        np.testing.assert_array_equal(a, b)
    # device-resident inputs are indexed on the device
    on_dev = list(iterate_batches(SX.asarray(d.x_train), SX.asarray(d.y_train), 8, SX,
                                  rng=np.random.default_rng(4), **kw))
    np.testing.assert_array_equal(to_host(on_dev[0][0]), first[0][0])


def test_batches_errors():
    x, y = _indexed_images(4), np.arange(4)
    kw = dict(mean=[0] * 3, std=[1] * 3)
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="batch_size"):
            next(iterate_batches(x, y, bad, np, rng=np.random.default_rng(0), **kw))
    with pytest.raises(ValueError, match="rng"):
        next(iterate_batches(x, y, 2, np, **kw))
    with pytest.raises(ValueError, match="mean"):
        next(iterate_batches(x, y, 2, np, rng=np.random.default_rng(0)))
    with pytest.raises(ValueError, match="labels"):
        next(iterate_batches(x, y[:3], 2, np, rng=np.random.default_rng(0), **kw))
    with pytest.raises(TypeError, match="host numpy"):
        next(iterate_batches(x, y, 2, np, rng=default_rng(SX, 0), **kw))


# ---------------------------------------------------------------------------
# Real CIFAR-10 (opt-in: DIET_NP_DATA must hold cifar-10-batches-py/)
# ---------------------------------------------------------------------------
@pytest.mark.cifar
def test_real_cifar10_from_diet_np_data():
    root = os.environ.get("DIET_NP_DATA")
    if not root or not (Path(root) / "cifar-10-batches-py").is_dir():
        pytest.skip("real CIFAR-10 not found: set DIET_NP_DATA to a folder holding "
                    "cifar-10-batches-py/")
    ds = load_cifar("cifar10", download=False)
    n = ds.x_train.shape[0]
    assert n % 10000 == 0 and 10000 <= n <= 50000 and ds.x_test.shape == (10000, 3, 32, 32)
    assert ds.class_names[0] == "airplane" and ds.num_classes == 10
    assert f"{n} training images" in ds.note
    np.testing.assert_allclose(ds.mean, [0.491, 0.482, 0.447], atol=0.01)
    assert np.bincount(ds.y_test).tolist() == [1000] * 10
