"""Mini-batches for training and evaluation.

All randomness (the epoch's shuffle and the augmentation draws) comes from one host
``numpy.random.Generator``, so ``rng.bit_generator.state`` checkpoints it and a
resumed run sees the same batches on every backend.  Each batch is copied to the
device explicitly (as uint8, the smallest form), then augmented and normalised there.
"""
from __future__ import annotations

import numpy as np

from ..backend import array_module, to_device
from .imagenet import FolderImages, stream_batches
from .transforms import apply_crop_flip, crop_flip_params, normalize


def num_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    """How many batches :func:`iterate_batches` yields for ``n`` examples."""
    _check_batch_size(batch_size)
    return n // batch_size if drop_last else -(-n // batch_size)


def iterate_batches(x, y, batch_size, xp, shuffle=True, rng=None, augment=False,
                    mean=None, std=None, drop_last=False, pad=4):
    """Yield one epoch of ``(x_batch, y_batch)``: normalised float32 images, int64 labels (on xp).

    Arguments, in order: ``x`` uint8 images (N, C, H, W) and ``y`` labels (N,) (host
    NumPy, or already on some device); ``batch_size`` >= 1; ``xp`` the target array
    module (``diet_np.backend.get_xp(device)``); ``shuffle``; ``rng`` a host
    ``numpy.random.Generator``, required when shuffling or augmenting (an int seed
    makes a fresh one, hence the same order on every call); ``augment`` random crop
    (zero padding ``pad``) + horizontal flip (for an image folder,
    :class:`~diet_np.data.imagenet.FolderImages`: the random resized crop + flip,
    decoded a few batches ahead by :func:`~diet_np.data.imagenet.stream_batches`);
    ``mean``/``std`` per-channel statistics in [0, 1] units (e.g. ``Dataset.mean``),
    required; ``drop_last`` skips a final short batch.
    """
    _check_batch_size(batch_size)
    if mean is None or std is None:
        raise ValueError("iterate_batches needs mean= and std= (per-channel, in [0, 1] units, "
                         "e.g. dataset.mean and dataset.std)")
    if len(x) != len(y):
        raise ValueError(f"iterate_batches: {len(x)} images but {len(y)} labels")
    if (shuffle or augment) and rng is None:
        raise ValueError("iterate_batches: shuffle/augment need rng=numpy.random.default_rng(seed) "
                         "(a host generator, so its state can be checkpointed)")
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        rng = np.random.default_rng(rng)
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise TypeError(f"iterate_batches: rng must be a host numpy.random.Generator, got "
                        f"{type(rng).__name__}")
    n = len(x)
    order = rng.permutation(n) if shuffle else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    if isinstance(x, FolderImages):
        yield from stream_batches(x, y, order[:stop], batch_size, xp, rng if augment else None,
                                  mean, std)
        return
    src_xp = array_module(x, y)
    for start in range(0, stop, batch_size):
        idx = order[start:start + batch_size]
        if src_xp is not np:
            idx = to_device(idx, src_xp)
        xb = to_device(x[idx], xp)
        yb = to_device(y[idx], xp).astype(np.int64, copy=False)
        if augment:
            dy, dx, flip = crop_flip_params(len(idx), rng, pad)   # drawn on the host
            xb = apply_crop_flip(xb, dy, dx, flip, pad)            # applied on the device
        yield normalize(xb, mean, std), yb


def _check_batch_size(batch_size) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
