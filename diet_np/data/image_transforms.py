"""The authors' ImageNet transforms for one decoded image, in NumPy.

Training images: a random box of 8% to 100% of the image's area and aspect ratio
3/4 to 4/3 (drawn as torchvision's ``RandomResizedCrop`` draws it: ten tries,
then a centre crop), resized to 224x224, mirrored with probability 1/2.
Validation images: the shorter side resized to 256, then the centre 224x224.

Resizing is bilinear with Pillow's antialiasing: when shrinking by a factor s,
the triangle filter is widened to s input pixels, so every input pixel counts
(torchvision on PIL images resizes this way).  Each output pixel is a weighted
sum over a window of input pixels; the windows and weights of one axis are a
small (out, taps) table, so a pass is one gather and one weighted sum.  The
arithmetic is Pillow's: weights in fixed point with :data:`PRECISION_BITS`
fraction bits, sums rounded half up, the horizontal pass rounded to 8 bits
before the vertical one.  Each pass equals Pillow's exactly, and so does the
whole resize up to Pillow 12; Pillow 13 runs the vertical pass first when the
height shrinks more than the width, which moves some pixels by one level.
Pixels outside the box are never read (crop, then resize, as torchvision does).
"""
from __future__ import annotations

import math

import numpy as np

CROP = 224
RESIZE = 256
SCALE = (0.08, 1.0)
RATIO = (3 / 4, 4 / 3)
ATTEMPTS = 10
PRECISION_BITS = 22        # Pillow's fixed point for 8-bit images: 32 - 8 - 2 bits


def random_box(height: int, width: int, rng, scale=SCALE, ratio=RATIO):
    """``(top, left, h, w)`` of a random box: area ``scale`` of the image's, aspect
    ratio w/h drawn log-uniformly from ``ratio``; after :data:`ATTEMPTS` draws that
    do not fit, the largest centred box whose ratio lies in ``ratio``."""
    area = height * width
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(ATTEMPTS):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    if width / height < ratio[0]:          # too tall: full width
        w, h = width, int(round(width / ratio[0]))
    elif width / height > ratio[1]:        # too wide: full height
        w, h = int(round(height * ratio[1])), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def shorter_side_size(height: int, width: int, size: int = RESIZE):
    """``(new_h, new_w)`` with the shorter side ``size`` and the ratio kept (the
    longer side rounded down, as torchvision's ``Resize(size)``)."""
    if height <= width:
        return size, int(size * width / height)
    return int(size * height / width), size


def centre_box(height: int, width: int, size: int = CROP):
    """``(top, left)`` of the centred ``size`` x ``size`` box (offsets rounded half
    to even, as torchvision's ``CenterCrop``)."""
    return int(round((height - size) / 2.0)), int(round((width - size) / 2.0))


def _taps(n_in: int, n_out: int):
    """``(index, weights)`` of the antialiased bilinear filter along one axis:
    output i is ``sum_k weights[i, k] * input[index[i, k]]`` (weights past the
    image's edge are 0; each row sums to 1, then is put in fixed point)."""
    scale = n_in / n_out
    support = max(scale, 1.0)              # the triangle's half-width, in input pixels
    centre = (np.arange(n_out) + 0.5) * scale
    start = np.maximum((centre - support + 0.5).astype(np.int64), 0)
    stop = np.minimum((centre + support + 0.5).astype(np.int64), n_in)
    taps = int(math.ceil(support)) * 2 + 1
    k = np.arange(taps)
    pos = start[:, None] + k[None, :]
    weights = np.maximum(0.0, 1.0 - np.abs((pos - centre[:, None] + 0.5) / support))
    weights[pos >= stop[:, None]] = 0.0
    weights /= weights.sum(axis=1, keepdims=True)
    # Whole numbers below 2**22, kept as float64: sums of 255 * them are exact.
    return np.minimum(pos, n_in - 1), np.floor(weights * (1 << PRECISION_BITS) + 0.5)


def _to_uint8(sums):
    """Fixed-point sums -> uint8, rounded half up and clipped."""
    whole = sums.astype(np.int64) + (1 << (PRECISION_BITS - 1))
    return np.clip(whole >> PRECISION_BITS, 0, 255).astype(np.uint8)


def _resample_rows(image, n_out: int):
    """``image`` (n_in, ...) uint8 resampled along its first axis to n_out: each output
    row the fixed-point weighted sum of its window of input rows (one batched product)."""
    index, weights = _taps(image.shape[0], n_out)
    windows = image.reshape(image.shape[0], -1)[index].astype(np.float64)  # (out, taps, rest)
    sums = np.matmul(weights[:, None, :], windows)[:, 0, :]
    return _to_uint8(sums).reshape((n_out,) + image.shape[1:])


def resize(image, height: int, width: int):
    """An (H, W, 3) uint8 image resized to (height, width, 3) uint8 by antialiased
    bilinear filtering: the horizontal pass, rounded to 8 bits, then the vertical."""
    if image.shape[1] != width:
        image = _resample_rows(image.transpose(1, 0, 2), width).transpose(1, 0, 2)
    if image.shape[0] != height:
        image = _resample_rows(image, height)
    return image


def train_transform(image, rng):
    """A random box of ``image`` (H, W, 3 uint8) resized to 224x224, mirrored with
    probability 1/2; returns (3, 224, 224) uint8."""
    top, left, h, w = random_box(image.shape[0], image.shape[1], rng)
    out = resize(image[top:top + h, left:left + w], CROP, CROP)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    return np.ascontiguousarray(out.transpose(2, 0, 1))


def val_transform(image):
    """``image`` (H, W, 3 uint8) with its shorter side resized to 256, then the
    centre 224x224; returns (3, 224, 224) uint8."""
    h, w = shorter_side_size(image.shape[0], image.shape[1])
    out = resize(image, h, w)
    top, left = centre_box(h, w)
    return np.ascontiguousarray(out[top:top + CROP, left:left + CROP].transpose(2, 0, 1))
