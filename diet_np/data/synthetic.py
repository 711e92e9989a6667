"""The embedded default data set: ten classes of coloured shapes and textures.

:func:`make_shapes` draws 32x32 RGB images deterministically from a seed, with no
download: a foreground object (a shape or a striped/checked patch) of random
position, size, rotation and colour on a background with a colour gradient,
distracting line segments and pixel noise.  Contrast is sometimes low and objects
may be cut by the border, so a small CNN does well but not perfectly, and a
poorly calibrated spiking conversion loses accuracy at few timesteps.

Generation is vectorised over images (one Python loop over the ten classes).
"""
from __future__ import annotations

import numpy as np

from .cifar import DataError, Dataset

SHAPE_CLASSES = ("disc", "ring", "square", "triangle", "cross", "horizontal stripes",
                 "vertical stripes", "diagonal stripes", "checkerboard", "blobs")
SIZE = 32
_N_LINES = 2   # distracting line segments per image
_N_BLOBS = 5   # small discs making up a "blobs" object


def make_shapes(n_train: int = 5000, n_test: int = 1000, seed: int = 0) -> Dataset:
    """The "shapes" data set: ``n_train``/``n_test`` images, classes balanced to within one.

    The same seed gives identical arrays; the test set does not depend on ``n_train``.
    """
    for label, n in (("n_train", n_train), ("n_test", n_test)):
        if not isinstance(n, (int, np.integer)) or n < len(SHAPE_CLASSES):
            raise DataError(f"{label} must be an integer >= {len(SHAPE_CLASSES)} "
                             f"(one image per class), got {n!r}")
    train_seq, test_seq = np.random.SeedSequence(seed).spawn(2)
    x_train, y_train = _generate(int(n_train), np.random.default_rng(train_seq))
    x_test, y_test = _generate(int(n_test), np.random.default_rng(test_seq))
    note = (f"shapes: synthetic, seed {seed}, {n_train} training and {n_test} test images "
            f"of {len(SHAPE_CLASSES)} classes")
    return Dataset.from_arrays("shapes", x_train, y_train, x_test, y_test, SHAPE_CLASSES,
                               note=note, seed=int(seed))


def _generate(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images (uint8 NCHW) and labels, shuffled."""
    k = len(SHAPE_CLASSES)
    counts = [n // k + (c < n % k) for c in range(k)]
    images = [_render(c, m, rng) for c, m in enumerate(counts)]
    x = np.concatenate(images)
    y = np.repeat(np.arange(k, dtype=np.int64), counts)
    order = rng.permutation(n)
    x = np.rint(np.clip(x[order], 0.0, 1.0) * 255.0).astype(np.uint8)
    return x, y[order]


def _u(rng, lo, hi, n):
    """Uniform draws shaped (n, 1, 1) to broadcast against (H, W) grids."""
    return rng.uniform(lo, hi, size=(n, 1, 1)).astype(np.float32)


def _coverage(sdf):
    """Anti-aliased coverage in [0, 1] from a signed distance in pixels (negative inside)."""
    return np.clip(0.5 - sdf, 0.0, 1.0)


def _render(cls: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` float32 images (n, 3, H, W) in [0, 1] of class ``cls``."""
    if n == 0:
        return np.zeros((0, 3, SIZE, SIZE), np.float32)
    g = np.arange(SIZE, dtype=np.float32) + 0.5
    yy, xx = g[None, :, None], g[None, None, :]
    background = _background(n, rng, xx, yy)
    alpha = _object_alpha(cls, n, rng, xx, yy)
    fg = _foreground_colour(n, rng, background.mean(axis=(2, 3)))
    img = background * (1.0 - alpha[:, None]) + fg[:, :, None, None] * alpha[:, None]
    noise = _u(rng, 0.01, 0.06, n)[:, None] * rng.standard_normal(img.shape, dtype=np.float32)
    return img + noise


def _background(n, rng, xx, yy):
    """Base colour + linear gradient + a few line segments of random colour and opacity."""
    base = rng.uniform(0.1, 0.9, size=(n, 3, 1, 1)).astype(np.float32)
    angle = _u(rng, 0, 2 * np.pi, n)
    ramp = (np.cos(angle) * (xx - SIZE / 2) + np.sin(angle) * (yy - SIZE / 2)) / SIZE
    tint = rng.uniform(-0.35, 0.35, size=(n, 3, 1, 1)).astype(np.float32)
    img = base + tint * ramp[:, None]
    for _ in range(_N_LINES):
        p0 = rng.uniform(0, SIZE, size=(2, n, 1, 1)).astype(np.float32)
        p1 = rng.uniform(0, SIZE, size=(2, n, 1, 1)).astype(np.float32)
        width = _u(rng, 0.3, 0.9, n)
        cover = _coverage(_segment_distance(xx, yy, p0, p1) - width)
        opacity = _u(rng, 0.0, 0.5, n)
        colour = rng.uniform(0, 1, size=(n, 3, 1, 1)).astype(np.float32)
        a = (cover * opacity)[:, None]
        img = img * (1 - a) + colour * a
    return img


def _segment_distance(xx, yy, p0, p1):
    """Distance from each pixel to the segment p0-p1 (per image)."""
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    t = ((xx - p0[0]) * dx + (yy - p0[1]) * dy) / np.maximum(dx * dx + dy * dy, 1e-6)
    t = np.clip(t, 0.0, 1.0)
    return np.hypot(xx - p0[0] - t * dx, yy - p0[1] - t * dy)


def _foreground_colour(n, rng, bg_mean):
    """A colour at a random distance (0.3 .. 0.7) from the mean background colour."""
    direction = rng.standard_normal((n, 3)).astype(np.float32)
    direction /= np.linalg.norm(direction, axis=1, keepdims=True) + 1e-6
    contrast = rng.uniform(0.3, 0.7, size=(n, 1)).astype(np.float32)
    up, down = bg_mean + direction * contrast, bg_mean - direction * contrast
    out_of_range = (up < 0) | (up > 1)
    return np.clip(np.where(out_of_range, down, up), 0.0, 1.0)


def _object_alpha(cls, n, rng, xx, yy):
    """Coverage (n, H, W) of the class's object."""
    cx, cy = _u(rng, 9, 23, n), _u(rng, 9, 23, n)
    r = _u(rng, 6.0, 11.0, n)
    dx, dy = xx - cx, yy - cy
    name = SHAPE_CLASSES[cls]
    if name in ("horizontal stripes", "vertical stripes", "diagonal stripes", "checkerboard"):
        return _texture_patch(name, n, rng, dx, dy, r)
    if name == "blobs":
        return _blobs(n, rng, dx, dy, r)
    theta = _u(rng, 0, 2 * np.pi, n)
    u = np.cos(theta) * dx + np.sin(theta) * dy
    v = -np.sin(theta) * dx + np.cos(theta) * dy
    if name == "disc":
        sdf = np.hypot(u, v) - r
    elif name == "ring":
        sdf = np.abs(np.hypot(u, v) - r) - r * _u(rng, 0.16, 0.3, n)
    elif name == "square":
        sdf = np.maximum(np.abs(u), np.abs(v)) - 0.85 * r
    elif name == "triangle":
        edges = [np.cos(a) * u + np.sin(a) * v for a in np.pi / 2 + 2 * np.pi * np.arange(3) / 3]
        sdf = np.maximum(np.maximum(edges[0], edges[1]), edges[2]) - 0.55 * r
    elif name == "cross":
        w = r * _u(rng, 0.2, 0.32, n)
        au, av = np.abs(u), np.abs(v)
        sdf = np.minimum(np.maximum(au - r, av - w), np.maximum(au - w, av - r))
    else:  # pragma: no cover - SHAPE_CLASSES and this function are edited together
        raise AssertionError(name)
    return _coverage(sdf)


def _texture_patch(name, n, rng, dx, dy, r):
    """Stripes or a checkerboard (period 3.5..6 px) inside a disc or square patch."""
    jitter = _u(rng, -0.2, 0.2, n)  # about +-11 degrees
    if name == "horizontal stripes":
        angle = jitter
    elif name == "vertical stripes":
        angle = jitter + np.pi / 2
    elif name == "diagonal stripes":
        angle = jitter + np.where(rng.random((n, 1, 1)) < 0.5, np.pi / 4, -np.pi / 4)
    else:
        angle = jitter
    u = np.cos(angle) * dx + np.sin(angle) * dy
    v = -np.sin(angle) * dx + np.cos(angle) * dy
    freq = 2 * np.pi / _u(rng, 3.5, 6.0, n)
    phase = _u(rng, 0, 2 * np.pi, n)
    if name == "checkerboard":
        wave = np.cos(freq * u + phase) * np.cos(freq * v + phase)
    else:
        wave = np.cos(freq * v + phase)
    pattern = np.clip(wave * 2.5, -1.0, 1.0) * 0.5 + 0.5
    size = 1.15 * r
    round_patch = rng.random((n, 1, 1)) < 0.5
    sdf = np.where(round_patch, np.hypot(dx, dy) - size, np.maximum(np.abs(dx), np.abs(dy)) - size)
    return _coverage(sdf) * pattern


def _blobs(n, rng, dx, dy, r):
    """Several small discs scattered around the centre."""
    alpha = np.zeros(np.broadcast_shapes(dx.shape, dy.shape, (n, 1, 1)), np.float32)
    for _ in range(_N_BLOBS):
        ang = _u(rng, 0, 2 * np.pi, n)
        dist = r * _u(rng, 0.0, 1.0, n)
        radius = _u(rng, 1.3, 3.0, n)
        sdf = np.hypot(dx - dist * np.cos(ang), dy - dist * np.sin(ang)) - radius
        alpha = np.maximum(alpha, _coverage(sdf))
    return alpha
