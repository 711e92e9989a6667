"""Data: CIFAR-10/100 (download, verify, parse), the embedded "shapes" set, ImageNet-shaped
image folders (decoded from disk batch by batch), transforms, batches.

``load_dataset(name)`` is the one entry point the rest of diet_np uses; data sets
are :class:`Dataset` records of host NumPy arrays, moved to a device batch by batch
by :func:`iterate_batches`.
"""
from __future__ import annotations

from .batches import iterate_batches, num_batches
from .cifar import (ARCHIVES, ENV_VAR, DataError, Dataset, channel_stats, check_labeled_images,
                    data_dir, extract_archive, fetch_archive, load_cifar, read_cifar_folder)
from .imagenet import FolderImages, load_image_folder
from .synthetic import SHAPE_CLASSES, make_shapes
from .transforms import apply_crop_flip, crop_flip_params, normalize, random_crop_flip

#: Names accepted by :func:`load_dataset`.
DATASETS = ("shapes", "cifar10", "cifar100", "imagenet")


def load_dataset(name: str, root=None, download: bool = True, show_progress: bool = True,
                 **kw) -> Dataset:
    """Load a data set by name: ``"shapes"`` (embedded, ``**kw`` go to :func:`make_shapes`),
    ``"cifar10"`` or ``"cifar100"`` (from ``data_dir(root)``, downloaded if allowed, with a
    progress bar on stderr unless ``show_progress=False``), or ``"imagenet"`` (the image
    folder ``root``: ``train/<class>/`` and ``val/<class>/``, ``**kw`` go to
    :func:`load_image_folder`)."""
    if name == "shapes":
        return make_shapes(**kw)
    if name in ("cifar10", "cifar100"):
        if kw:
            raise TypeError(f"load_dataset({name!r}) takes no extra options, got {sorted(kw)}")
        return load_cifar(name, root=root, download=download, show_progress=show_progress)
    if name == "imagenet":
        return load_image_folder(root, **kw)
    raise DataError(f"unknown data set {name!r}; valid names are {', '.join(DATASETS)}")


__all__ = [
    "ARCHIVES", "DATASETS", "ENV_VAR", "SHAPE_CLASSES", "DataError", "Dataset",
    "apply_crop_flip", "channel_stats", "check_labeled_images", "crop_flip_params", "data_dir",
    "FolderImages", "extract_archive", "fetch_archive", "iterate_batches", "load_cifar",
    "load_dataset", "load_image_folder",
    "make_shapes", "normalize", "num_batches", "random_crop_flip", "read_cifar_folder",
]
