"""ImageNet-shaped folders: ``DIR/train/<class>/*`` and ``DIR/val/<class>/*``.

Any folder of that shape is a data set (ImageNet itself, or a subset of a few
classes): the classes are the sorted names of ``train/``'s sub-folders, and
``val/`` must hold the same ones.  Images (``.jpg``, ``.jpeg``, ``.png``, any
case) are decoded by Pillow (an optional dependency: ``pip install
diet-np[imagenet]``), converted to RGB (greyscale, CMYK, palette), and passed
through the authors' transforms (:mod:`diet_np.data.image_transforms`).

Nothing is held in memory but the file list: :class:`FolderImages` stands in for
the uint8 image array of a split (``len``, ``shape``, slicing), and
:func:`stream_batches` decodes an epoch's batches in a background thread, a
bounded number of batches ahead.  The augmentation draws come from the run's
host generator, one seed per image, so an epoch's crops are the same whichever
thread decodes them.  Nothing under the folder is ever written.
"""
from __future__ import annotations

import hashlib
import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..backend import to_device
from .cifar import DataError, Dataset
from .image_transforms import CROP, train_transform, val_transform
from .transforms import normalize

EXTENSIONS = (".jpg", ".jpeg", ".png")
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
PREFETCH = 4
"""Decoded batches held ready ahead of the training step."""
WORKERS = min(8, os.cpu_count() or 1)
"""Threads decoding the images of one batch (Pillow and NumPy release the GIL)."""


def pillow_image():
    """Pillow's ``Image`` module, or a :class:`DataError` saying how to install it."""
    try:
        from PIL import Image
    except ImportError:
        raise DataError("image folders are decoded by Pillow, which is not installed: "
                        "pip install 'diet-np[imagenet]' (or pip install pillow)") from None
    return Image


def read_image(path):
    """The image at ``path`` as (H, W, 3) uint8 RGB; a damaged or truncated file is
    a :class:`DataError` naming it."""
    Image = pillow_image()
    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(f"{path}: not a readable image ({reason})") from None
    return np.asarray(rgb)


class FolderImages:
    """The images of one split of an image folder, decoded when read.

    Looks like the (N, 3, 224, 224) uint8 array it stands for: ``len``, ``shape``,
    ``dtype``, a slice is a smaller :class:`FolderImages`, and an index (or an
    array of them) gives the validation transform of those images (:meth:`image`).
    """
    dtype = np.dtype(np.uint8)
    ndim = 4

    def __init__(self, root, split, paths, fingerprint=""):
        self.root, self.split, self.paths = root, split, list(paths)
        self.fingerprint = fingerprint

    @property
    def shape(self):
        return (len(self.paths), 3, CROP, CROP)

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return FolderImages(self.root, self.split, self.paths[index], self.fingerprint)
        if isinstance(index, (int, np.integer)):
            return self.image(int(index))
        return np.stack([self.image(int(i)) for i in np.asarray(index).reshape(-1)])

    def image(self, i, seed=None):
        """Image ``i`` as (3, 224, 224) uint8: the training transform drawn from
        ``seed``, or (``seed`` None) the validation transform."""
        pixels = read_image(os.path.join(self.root, self.split, self.paths[i]))
        if seed is None:
            return val_transform(pixels)
        return train_transform(pixels, np.random.default_rng(seed))

    def __repr__(self):
        return f"FolderImages({os.path.join(self.root, self.split)!r}, {len(self)} images)"


def _prefetched(produce, depth):
    """Yield the items of generator ``produce()``, run in a thread at most ``depth``
    items ahead; its exceptions are raised here, and closing this generator stops it."""
    ready, stop, done = queue.Queue(depth), threading.Event(), object()

    def put(item):
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def work():
        try:
            for item in produce():
                if not put((item, None)):
                    return
            put((done, None))
        except BaseException as exc:          # handed to the consumer, raised there
            put((None, exc))

    thread = threading.Thread(target=work, name="diet_np-images", daemon=True)
    thread.start()
    try:
        while True:
            item, exc = ready.get()
            if exc is not None:
                raise exc
            if item is done:
                return
            yield item
    finally:
        stop.set()
        thread.join()


def stream_batches(x: FolderImages, y, order, batch_size, xp, rng, mean, std):
    """Batches of ``x`` in ``order`` (host indices), decoded in a background thread
    :data:`PREFETCH` batches ahead: ``(normalised float32 images, int64 labels)`` on
    ``xp``.  ``rng`` (a host Generator) draws one seed per image for the training
    transform; None gives the validation transform."""
    seeds = None if rng is None else rng.integers(0, 2 ** 63, size=len(order))
    starts = range(0, len(order), batch_size)

    def produce():
        with ThreadPoolExecutor(WORKERS, thread_name_prefix="diet_np-decode") as pool:
            for start in starts:
                idx = order[start:start + batch_size]
                picks = [None] * len(idx) if seeds is None else seeds[start:start + len(idx)]
                images = list(pool.map(x.image, idx.tolist(),
                                       [None if s is None else int(s) for s in picks]))
                yield np.stack(images), idx

    for images, idx in _prefetched(produce, PREFETCH):
        yb = to_device(np.asarray(y)[idx], xp).astype(np.int64, copy=False)
        yield normalize(to_device(images, xp), mean, std), yb


def _scan_split(root, split):
    """``(classes, files per class, ignored count)`` of ``root/split``; paths are
    relative to the split folder and sorted."""
    folder = os.path.join(root, split)
    if not os.path.isdir(folder):
        raise DataError(f"{folder}: no such folder (an image folder data set holds "
                        "train/<class>/ and val/<class>/ folders of images)")
    classes = sorted(e.name for e in os.scandir(folder) if e.is_dir() and e.name[0] != ".")
    if not classes:
        raise DataError(f"{folder} holds no class folders (expected {split}/<class>/<images>)")
    files, ignored = [], 0
    for name in classes:
        found = []
        for here, dirs, names in os.walk(os.path.join(folder, name), followlinks=True):
            dirs.sort()
            for n in sorted(names):
                if n.lower().endswith(EXTENSIONS):
                    found.append(os.path.relpath(os.path.join(here, n), folder))
                elif n[0] != ".":
                    ignored += 1
        if not found:
            raise DataError(f"{os.path.join(folder, name)}: empty class folder (no .jpg, .jpeg "
                            "or .png files)")
        files.append(found)
    return classes, files, ignored


def _interleaved(files):
    """``(paths, labels)`` taking each class's first file, then each one's second,
    and so on: the first n are spread over the classes (``--n-train``)."""
    ranked = sorted((rank, label, path) for label, paths in enumerate(files)
                    for rank, path in enumerate(paths))
    return [p for _, _, p in ranked], np.array([label for _, label, _ in ranked], np.int64)


def _fingerprint(classes, paths) -> str:
    """A short SHA-256 of the class names and the training files' paths (not their
    bytes: a damaged file replaced by a good copy is the same data set)."""
    return hashlib.sha256("\n".join([*classes, "", *paths]).encode()).hexdigest()[:16]


def load_image_folder(root, n_train=None, n_test=None) -> Dataset:
    """The image folder ``root`` as a :class:`Dataset` of :class:`FolderImages`
    (its first ``n_train`` / ``n_test`` images, spread over the classes, when
    given), normalised with ImageNet's mean and std."""
    pillow_image()
    if root is None:
        raise DataError("the imagenet data set needs --data-dir DIR, a folder holding "
                        "train/<class>/ and val/<class>/ folders of images")
    root = os.path.abspath(os.fspath(root))
    if not os.path.isdir(root):
        raise DataError(f"{root}: no such folder (expected train/<class>/ and val/<class>/ "
                        "folders of images)")
    classes, train_files, ignored = _scan_split(root, "train")
    val_classes, val_files, ignored_val = _scan_split(root, "val")
    if val_classes != classes:
        only_train = sorted(set(classes) - set(val_classes))
        only_val = sorted(set(val_classes) - set(classes))
        raise DataError(f"{root}: train/ and val/ hold different classes (only in train/: "
                        f"{', '.join(only_train) or 'none'}; only in val/: "
                        f"{', '.join(only_val) or 'none'})")
    if len(classes) < 2:
        raise DataError(f"{root}: one class ({classes[0]}); a classifier needs at least two")
    splits = {}
    for split, files, n in (("train", train_files, n_train), ("val", val_files, n_test)):
        paths, labels = _interleaved(files)
        if n is not None and n > len(paths):
            raise DataError(f"{os.path.join(root, split)} holds {len(paths)} images; {n} "
                            "were asked for")
        splits[split] = paths[:n], labels[:n]
    fingerprint = _fingerprint(classes, splits["train"][0])
    note = f"{root}, {len(classes)} classes"
    if ignored or ignored_val:
        note += f"; {ignored + ignored_val} files that are not .jpg/.jpeg/.png left out"
    return Dataset(name="imagenet",
                   x_train=FolderImages(root, "train", splits["train"][0], fingerprint),
                   y_train=splits["train"][1],
                   x_test=FolderImages(root, "val", splits["val"][0]),
                   y_test=splits["val"][1], class_names=tuple(classes),
                   num_classes=len(classes), mean=np.array(MEAN, np.float32),
                   std=np.array(STD, np.float32), note=note)
