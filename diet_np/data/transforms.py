"""Image transforms on any backend (NumPy, CuPy, strict), vectorised over the batch.

Augmentation is split in two so a training run can draw its randomness on the host
(checkpointable, bit-identical on resume) and apply it on the device:
:func:`crop_flip_params` draws offsets and flips from any Generator, and
:func:`apply_crop_flip` applies them to images on whatever device they live.
:func:`random_crop_flip` does both.  The order follows the usual CIFAR recipe:
zero-pad the uint8 image, crop, flip, then :func:`normalize`.
"""
from __future__ import annotations

import numpy as np

from ..backend import TRAIN_DTYPE, array_module, to_device, to_host


def normalize(x, mean, std):
    """uint8 images (N, C, H, W) -> float32 ``(x / 255 - mean) / std`` per channel (on x's device).

    ``mean``/``std``: C values in [0, 1] units (host or device; moved explicitly).
    """
    xp = array_module(x)
    if np.dtype(x.dtype) != np.uint8 or x.ndim != 4:
        raise TypeError(f"normalize expects uint8 images (N, C, H, W); got dtype "
                        f"{np.dtype(x.dtype).name} with shape {tuple(x.shape)}")
    c = x.shape[1]
    stats = []
    for label, v in (("mean", mean), ("std", std)):
        host = np.asarray(to_host(v), dtype=np.float64).reshape(-1)
        if host.shape != (c,):
            raise ValueError(f"normalize: {label} has {host.size} values but the images have "
                             f"{c} channels")
        stats.append(host)
    m, s = stats
    if np.any(s <= 0) or not np.all(np.isfinite(s)):
        raise ValueError(f"normalize: std must be positive and finite, got {s.tolist()}")
    scale = (1.0 / (255.0 * s)).astype(TRAIN_DTYPE).reshape(1, c, 1, 1)
    shift = (m / s).astype(TRAIN_DTYPE).reshape(1, c, 1, 1)
    out = x.astype(TRAIN_DTYPE) * to_device(scale, xp)
    out -= to_device(shift, xp)
    return out


def crop_flip_params(n: int, rng, pad: int = 4):
    """Draw ``(dy, dx, flip)`` for ``n`` images: offsets in [0, 2*pad], flip with probability 1/2.

    ``rng`` is any Generator (host NumPy or a device one); results live where it makes arrays.
    """
    pad = _check_pad(pad)
    dy = rng.integers(0, 2 * pad + 1, size=n)
    dx = rng.integers(0, 2 * pad + 1, size=n)
    flip = rng.random(n) < 0.5
    return dy, dx, flip


def apply_crop_flip(x, dy, dx, flip, pad: int = 4):
    """Zero-pad ``x`` (N, C, H, W) by ``pad``, crop H x W at (dy, dx) per image, mirror if ``flip``.

    Offsets/flips may be host arrays; they are moved explicitly to ``x``'s device.
    One gather with broadcast indices; no loop over images.
    """
    pad = _check_pad(pad)
    xp = array_module(x)
    if x.ndim != 4:
        raise ValueError(f"apply_crop_flip expects images (N, C, H, W), got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    dy, dx, flip = (to_device(a, xp) for a in (dy, dx, flip))
    for label, a in (("dy", dy), ("dx", dx), ("flip", flip)):
        if tuple(a.shape) != (n,):
            raise ValueError(f"apply_crop_flip: {label} has shape {tuple(a.shape)}, "
                             f"expected ({n},)")
    if n == 0:
        return x.copy()
    if int(dy.min()) < 0 or int(dx.min()) < 0 or int(dy.max()) > 2 * pad or int(dx.max()) > 2 * pad:
        raise ValueError(f"apply_crop_flip: offsets must lie in [0, {2 * pad}] for pad={pad}")
    padded = xp.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=x.dtype)
    padded[:, :, pad:pad + h, pad:pad + w] = x
    # (N, H) source rows and (N, W) source columns (mirrored for flipped images) in `padded`.
    rows = dy.astype(np.int64)[:, None] + xp.arange(h)[None, :]
    cols_fwd = xp.arange(w)[None, :]
    cols = dx.astype(np.int64)[:, None] + xp.where(flip[:, None], w - 1 - cols_fwd, cols_fwd)
    img = xp.arange(n)[:, None, None, None]
    chan = xp.arange(c)[None, :, None, None]
    return padded[img, chan, rows[:, None, :, None], cols[:, None, None, :]]


def random_crop_flip(x, rng, pad: int = 4):
    """Random crop (zero padding ``pad``) and horizontal flip of every image in ``x``.

    ``rng``: a Generator from :func:`diet_np.backend.default_rng` (or a host NumPy one).
    """
    dy, dx, flip = crop_flip_params(x.shape[0], rng, pad)
    return apply_crop_flip(x, dy, dx, flip, pad)


def _check_pad(pad) -> int:
    if isinstance(pad, bool) or not isinstance(pad, (int, np.integer)) or pad < 0:
        raise ValueError(f"pad must be a non-negative integer, got {pad!r}")
    return int(pad)
