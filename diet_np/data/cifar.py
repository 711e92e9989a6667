"""CIFAR-10 / CIFAR-100 from the official "python version" archives.

:func:`load_cifar` reads ``<root>/cifar-10-batches-py/`` (or ``cifar-100-python/``)
when it exists; otherwise it takes the archive named in :data:`ARCHIVES` from the
root (or downloads it), checks its MD5 and extracts it.  Downloads go to a
temporary file and the folder is extracted into a temporary directory that is
moved into place (``os.replace``) only when complete, so a failed or corrupt
download never leaves a folder that a later call would trust.  The library
removes only files it wrote itself: an archive found in place with the wrong MD5
is reported (expected and actual MD5) and left where it is.

The root is :func:`data_dir`: an explicit argument, else the environment variable
``DIET_NP_DATA``, else a per-user cache folder.  All data stays on the host as
NumPy arrays in a :class:`Dataset`.
"""
from __future__ import annotations

import codecs
import hashlib
import http.client
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DietError
from ..progress import progress

ENV_VAR = "DIET_NP_DATA"
IMAGE_SHAPE = (3, 32, 32)
DOWNLOAD_TIMEOUT_S = 60.0
_MIB = 1 << 20

#: Where each archive comes from and what it contains.  Module-level so tests can
#: point ``url``/``md5`` at a small archive of their own (``file://`` URLs work).
ARCHIVES = {
    "cifar10": {
        "url": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "md5": "c58f30108f718f92721af3b95e74349a",
        "filename": "cifar-10-python.tar.gz",
        "folder": "cifar-10-batches-py",
    },
    "cifar100": {
        "url": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "md5": "eb9058c3a382ffc7106e4002c42a8d85",
        "filename": "cifar-100-python.tar.gz",
        "folder": "cifar-100-python",
    },
}

# Files inside each folder.
_CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_LAYOUT = {
    "cifar10": {"train": _CIFAR10_TRAIN, "test": "test_batch", "meta": "batches.meta",
                "label_key": b"labels", "names_key": b"label_names", "classes": 10},
    "cifar100": {"train": ("train",), "test": "test", "meta": "meta",
                 "label_key": b"fine_labels", "names_key": b"fine_label_names", "classes": 100},
}


class DataError(DietError, ValueError):
    """Missing, incomplete, corrupt or undownloadable data (the message names the file or URL)."""


class _CannotWrite(DataError):
    """Extraction failed while writing (disk full, permissions): the archive itself is fine."""


# ----------------------------------------------------------------------------
# Data directory and the Dataset record
# ----------------------------------------------------------------------------
def data_dir(override=None) -> Path:
    """The data root: ``override``, else ``$DIET_NP_DATA``, else ``$XDG_CACHE_HOME/diet_np``
    or ``~/.cache/diet_np``."""
    if override is not None and str(override) != "":
        return Path(override).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME")
    base = Path(cache).expanduser() if cache else Path.home() / ".cache"
    return base / "diet_np"


def channel_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and (population) std of uint8 NCHW images, in [0, 1] units, float32.

    Computed exactly from a 256-bin histogram per channel, so no float copy of the
    whole array is made.
    """
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[0] == 0:
        raise DataError(f"channel_stats needs non-empty uint8 images (N, C, H, W); "
                        f"got dtype {x.dtype} shape {x.shape}")
    levels = np.arange(256, dtype=np.float64) / 255.0
    mean, std = [], []
    for c in range(x.shape[1]):
        counts = np.bincount(x[:, c].ravel(), minlength=256).astype(np.float64)
        total = counts.sum()
        m = (counts * levels).sum() / total
        var = (counts * (levels - m) ** 2).sum() / total
        mean.append(m)
        std.append(np.sqrt(var))
    return np.asarray(mean, np.float32), np.asarray(std, np.float32)


@dataclass(repr=False, eq=False)
class Dataset:
    """An image classification data set held on the host.

    ``x_train``/``x_test``: uint8 (N, 3, 32, 32); ``y_train``/``y_test``: int64 (N,);
    ``mean``/``std``: per-channel float32 in [0, 1] units from the training images;
    ``note``: where the data came from and anything partial about it;
    ``seed``: the generator seed of a synthetic set (None for CIFAR);
    ``test_of``: when ``x_test`` is the first images of a larger test set (the CLI's
    ``--test-images``), that set's size, which a model records as its test set.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple
    num_classes: int
    mean: np.ndarray
    std: np.ndarray
    note: str = ""
    seed: int | None = None
    test_of: int | None = None

    @classmethod
    def from_arrays(cls, name, x_train, y_train, x_test, y_test, class_names, note="",
                    seed=None):
        """Validate the arrays and compute ``mean``/``std`` from ``x_train``."""
        class_names = tuple(class_names)
        k = len(class_names)
        y_train, y_test = np.asarray(y_train), np.asarray(y_test)
        check_labeled_images(x_train, y_train, k, f"{name} train", IMAGE_SHAPE)
        check_labeled_images(x_test, y_test, k, f"{name} test", IMAGE_SHAPE)
        mean, std = channel_stats(x_train)
        return cls(name=name, x_train=x_train, y_train=np.asarray(y_train, np.int64),
                   x_test=x_test, y_test=np.asarray(y_test, np.int64), class_names=class_names,
                   num_classes=k, mean=mean, std=std, note=note, seed=seed)

    def __repr__(self):
        return (f"Dataset({self.name!r}, train={self.x_train.shape[0]}, "
                f"test={self.x_test.shape[0]}, classes={self.num_classes}, note={self.note!r})")


def check_labeled_images(x, y, num_classes: int, what: str, image_shape=None) -> None:
    """Raise :class:`DataError` (a ``ValueError``) unless ``x``/``y`` are a usable labelled set.

    ``x``: a non-empty host uint8 array (N, C, H, W), of shape (N, *image_shape) when
    ``image_shape`` is given; ``y``: a host integer array (N,) with every label in
    [0, num_classes).  ``what`` names the set in the message (e.g. "cifar10 test").
    """
    from .imagenet import FolderImages        # images read from a folder when batched
    if not isinstance(x, (np.ndarray, FolderImages)) or x.dtype != np.uint8 or x.ndim != 4 \
            or x.shape[0] == 0 or (image_shape is not None and x.shape[1:] != tuple(image_shape)):
        shape = "C, H, W" if image_shape is None else ", ".join(map(str, image_shape))
        desc = (f"{type(x).__name__} dtype {getattr(x, 'dtype', '?')} "
                f"shape {getattr(x, 'shape', '?')}")
        raise DataError(f"{what} images: expected a non-empty host uint8 array (N, {shape}), "
                        f"got {desc}")
    if not isinstance(y, np.ndarray) or y.shape != (x.shape[0],):
        raise DataError(f"{what}: {x.shape[0]} images but labels of shape "
                        f"{getattr(y, 'shape', '?')} ({type(y).__name__}); expected a host "
                        f"array of shape ({x.shape[0]},)")
    _check_labels(f"{what} labels", y, num_classes)


def _check_labels(what: str, y: np.ndarray, num_classes: int) -> None:
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{what}: expected integers in [0, {num_classes}), got dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise DataError(f"{what}: expected integers in [0, {num_classes}), got range "
                        f"[{y.min()}, {y.max()}]")


# ----------------------------------------------------------------------------
# Reading an extracted folder
# ----------------------------------------------------------------------------
def _safe_globals() -> dict:
    """The only globals a CIFAR pickle needs (NumPy array reconstruction)."""
    reconstruct = np.array(0).__reduce__()[0]
    scalar = np.float64(0).__reduce__()[0]
    frombuffer = np.zeros(1).__reduce_ex__(5)[0]
    table = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
             ("_codecs", "encode"): codecs.encode}
    for core in ("numpy.core", "numpy._core"):
        table[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        table[(f"{core}.multiarray", "scalar")] = scalar
        table[(f"{core}.numeric", "_frombuffer")] = frombuffer
    return table


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global except NumPy's array reconstruction."""

    _allowed = _safe_globals()

    def find_class(self, module, name):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"global {module}.{name} is not allowed in a CIFAR file") from None


def read_pickle(path) -> dict:
    """Load one CIFAR pickle (``encoding="bytes"``); a corrupt file raises :class:`DataError`."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            obj = _CifarUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise DataError(f"missing CIFAR file {path}") from None
    except Exception as exc:  # pickle, EOF, zlib, numpy reconstruction errors, ...
        raise DataError(f"cannot read CIFAR file {path}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(obj, dict):
        raise DataError(f"CIFAR file {path} holds a {type(obj).__name__}, expected a dict")
    return obj


def parse_batch(path, label_key: bytes, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> (uint8 images (N, 3, 32, 32), int64 labels (N,))."""
    d = read_pickle(path)
    data, labels = d.get(b"data"), d.get(label_key)
    if data is None or labels is None:
        raise DataError(f"CIFAR file {path} lacks key {b'data' if data is None else label_key!r}; "
                        f"keys are {sorted(d)}")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3072:
        raise DataError(f"CIFAR file {path}: b'data' should be uint8 (N, 3072), got "
                        f"{type(data).__name__} {getattr(data, 'dtype', '')} "
                        f"{getattr(data, 'shape', '')}")
    try:
        y = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"CIFAR file {path}: labels {label_key!r} are not integers "
                        f"({exc})") from None
    if y.shape != (data.shape[0],):
        raise DataError(f"CIFAR file {path}: {data.shape[0]} images but {y.shape} labels")
    _check_labels(f"CIFAR file {path}", y, num_classes)
    return data.reshape(-1, *IMAGE_SHAPE), y


def read_meta(path, names_key: bytes, num_classes: int) -> tuple[str, ...]:
    """Class names from ``batches.meta`` / ``meta``."""
    d = read_pickle(path)
    names = d.get(names_key)
    if not isinstance(names, (list, tuple)) or len(names) != num_classes:
        raise DataError(f"CIFAR meta file {path}: {names_key!r} should list {num_classes} class "
                        f"names, got {type(names).__name__} of length "
                        f"{len(names) if hasattr(names, '__len__') else '?'}")
    return tuple(n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names)


def read_cifar_folder(name: str, folder) -> Dataset:
    """Read an extracted CIFAR folder; CIFAR-10 accepts any non-empty subset of data_batch_1..5."""
    layout = _layout(name)
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"CIFAR folder {folder} does not exist")
    k = layout["classes"]
    meta = folder / layout["meta"]
    test = folder / layout["test"]
    for required in (meta, test):
        if not required.is_file():
            raise DataError(f"{name}: required file {required} is missing")
    present = [f for f in layout["train"] if (folder / f).is_file()]
    if not present:
        raise DataError(f"{name}: no training file in {folder} (expected "
                        f"{', '.join(layout['train'])})")
    class_names = read_meta(meta, layout["names_key"], k)
    parts = [parse_batch(folder / f, layout["label_key"], k) for f in present]
    x_train = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
    y_train = np.concatenate([p[1] for p in parts])
    x_test, y_test = parse_batch(test, layout["label_key"], k)
    missing = [f for f in layout["train"] if f not in present]
    note = f"{name} from {folder}: {len(y_train)} training images from {', '.join(present)}"
    if missing:
        note += f" ({len(present)} of {len(layout['train'])} batches; missing {', '.join(missing)})"
    note += f"; {len(y_test)} test images"
    return Dataset.from_arrays(name, np.ascontiguousarray(x_train), y_train,
                               np.ascontiguousarray(x_test), y_test, class_names, note=note)


def _layout(name: str) -> dict:
    if name not in _LAYOUT:
        raise DataError(f"unknown CIFAR variant {name!r}; expected one of {', '.join(_LAYOUT)}")
    return _LAYOUT[name]


# ----------------------------------------------------------------------------
# Download, verify, extract
# ----------------------------------------------------------------------------
def md5_of(path, chunk: int = 1 << 20) -> str:
    """Hex MD5 of a file."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _manual_hint(name: str, root: Path) -> str:
    spec = ARCHIVES[name]
    return (f"download {spec['url']} by hand and put it at {root / spec['filename']} (or extract "
            f"it so that {root / spec['folder']} exists), or point {ENV_VAR} at a folder that "
            f"holds {spec['folder']}/")


def _mib(n_bytes: int) -> int:
    """Whole MiB, rounded up (the download bar's unit)."""
    return -(-n_bytes // _MIB)


def _download(url: str, dest: Path, timeout: float, show_progress: bool) -> str:
    """Stream ``url`` to ``dest`` with a progress bar on stderr; return the MD5 of what was
    written."""
    h = hashlib.md5()
    written = 0
    with urllib.request.urlopen(url, timeout=timeout) as resp, open(dest, "wb") as out:
        expected = resp.headers.get("Content-Length")
        size = int(expected) if expected is not None and expected.isdigit() else None
        bar = progress(total=None if size is None else _mib(size), unit="MiB",
                       desc=f"downloading {url.rsplit('/', 1)[-1]}", enabled=show_progress)
        with bar:
            while block := resp.read(_MIB):
                out.write(block)
                h.update(block)
                written += len(block)
                bar.update(_mib(written) - bar.n)
    if size is not None and size != written:
        raise DataError(f"download of {url} was cut short: got {written} of {size} bytes")
    return h.hexdigest()


def _verify_in_place(name: str, archive: Path) -> None:
    """Check the MD5 of an archive the library found (and so never removes)."""
    spec = ARCHIVES[name]
    actual = md5_of(archive)
    if actual != spec["md5"]:
        raise DataError(f"checksum mismatch for {archive}: expected MD5 {spec['md5']}, got "
                        f"{actual}; the file was left in place: download {spec['url']} again "
                        f"and replace it, or delete it to let diet-np download it")


def fetch_archive(name: str, root=None, timeout: float = DOWNLOAD_TIMEOUT_S, download=True,
                  show_progress=True) -> Path:
    """Return ``root/<archive>`` with its MD5 checked, downloading it if it is absent.

    An archive already in place is only read: a wrong MD5 raises :class:`DataError`
    and the file stays where it is.  A download goes to a hidden ``.part`` file that
    becomes the archive only once its MD5 matches.  ``download=False`` raises
    "not found" instead of downloading.
    """
    spec = ARCHIVES[name]
    root = data_dir(root)
    archive = root / spec["filename"]
    if archive.is_file():
        _verify_in_place(name, archive)
        return archive
    if archive.exists():
        raise DataError(f"{archive} exists but is not a file; move it away, or extract the "
                        f"archive so that {root / spec['folder']} exists")
    if not download:
        raise DataError(f"{name} not found: neither {root / spec['folder']} nor {archive} exists "
                        f"and downloading is off (download=False, --no-download); "
                        f"{_manual_hint(name, root)}")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create data folder {root}: {exc}") from None
    fd, tmp_name = tempfile.mkstemp(dir=root, prefix=f".{spec['filename']}.", suffix=".part")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            actual = _download(spec["url"], tmp, timeout, show_progress)
        except DataError:
            raise
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            raise DataError(f"could not download {spec['url']} ({type(exc).__name__}: {exc}); "
                            f"without network access, {_manual_hint(name, root)}") from exc
        if actual != spec["md5"]:
            raise DataError(f"checksum mismatch for the download of {spec['url']}: expected MD5 "
                            f"{spec['md5']}, got {actual}; the download was discarded (nothing "
                            f"was written to {archive}); try again later, or "
                            f"{_manual_hint(name, root)}")
        os.replace(tmp, archive)
    finally:
        tmp.unlink(missing_ok=True)  # only our own .part file
    return archive


def _check_members(tar: tarfile.TarFile, archive: Path) -> None:
    """Refuse links, devices, absolute paths and '..' in an archive."""
    for m in tar.getmembers():
        parts = Path(m.name).parts
        if m.name.startswith(("/", "\\")) or ".." in parts or not (m.isfile() or m.isdir()):
            raise DataError(f"archive {archive} holds an unsafe entry {m.name!r}")


def extract_archive(name: str, archive, root=None) -> Path:
    """Extract ``archive`` into ``root/<folder>`` atomically; return the folder."""
    spec, layout = ARCHIVES[name], _layout(name)
    root = data_dir(root)
    archive = Path(archive)
    target = root / spec["folder"]
    try:
        staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{spec['folder']}.extract-"))
    except OSError as exc:
        raise _CannotWrite(f"cannot extract {archive}: cannot write in {root} "
                           f"({exc.strerror})") from exc
    try:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                _check_members(tar, archive)
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(staging, filter="data")
                else:  # pragma: no cover - Python without extraction filters
                    tar.extractall(staging)
        except DataError:
            raise
        except OSError as exc:
            if exc.errno is not None:  # writing failed (disk full, permissions), not reading
                raise _CannotWrite(f"cannot extract {archive} into {root} ({exc.strerror}); "
                                   "free some space or fix the permissions and try again") from exc
            raise DataError(f"archive {archive} is truncated or corrupt "
                            f"({type(exc).__name__}: {exc})") from exc
        except (tarfile.TarError, EOFError, ValueError, zlib.error) as exc:
            raise DataError(f"archive {archive} is truncated or corrupt "
                            f"({type(exc).__name__}: {exc})") from exc
        extracted = staging / spec["folder"]
        expected = (*layout["train"], layout["test"], layout["meta"])
        missing = [f for f in expected if not (extracted / f).is_file()]
        if missing:
            raise DataError(f"archive {archive} lacks {spec['folder']}/"
                            f"{', '.join(missing)}")
        try:
            os.replace(extracted, target)
        except OSError as exc:
            if not target.is_dir():  # a concurrent extraction may have won the race
                raise _CannotWrite(f"cannot move the extracted folder to {target} "
                                   f"({exc.strerror})") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def load_cifar(name: str = "cifar10", root=None, download: bool = True,
               show_progress: bool = True) -> Dataset:
    """Load CIFAR-10 or CIFAR-100 from ``data_dir(root)``, downloading it if allowed.

    An existing ``cifar-10-batches-py/`` folder is read as it is (it may hold only
    some of ``data_batch_1..5``; :attr:`Dataset.note` says how many images were found).
    Otherwise the archive is verified and extracted: one already in place (even with
    ``download=False``), else one downloaded now (progress on stderr unless
    ``show_progress=False``).  Only an archive downloaded by this call is removed when
    it cannot be extracted.
    """
    if name not in ARCHIVES:
        raise DataError(f"unknown CIFAR variant {name!r}; expected one of {', '.join(ARCHIVES)}")
    root = data_dir(root)
    folder = root / ARCHIVES[name]["folder"]
    if not folder.is_dir():
        found = (root / ARCHIVES[name]["filename"]).is_file()
        archive = fetch_archive(name, root, download=download, show_progress=show_progress)
        try:
            extract_archive(name, archive, root)
        except _CannotWrite as exc:
            raise DataError(f"{exc}; {archive} was kept") from exc
        except DataError as exc:
            if found:
                raise DataError(f"{exc}; {archive} was left in place") from exc
            archive.unlink(missing_ok=True)  # our own download, verified but unusable
            raise DataError(f"{exc}; the archive downloaded by this call was removed") from exc
    return read_cifar_folder(name, folder)
