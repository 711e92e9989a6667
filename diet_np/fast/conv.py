"""The fast engine's 2-D convolution: chunked im2col, or Winograd, on the CPU pool.

Reference: :func:`diet_np.ops.conv.conv2d_forward` and
:func:`~diet_np.ops.conv.conv2d_backward`, one im2col product over the whole
batch (equal to rounding: the chunks' weight gradients are added in chunk order,
and Winograd's float32 results differ by about 5e-7 of the largest value for
F(2x2, 3x3) and 5e-6 for F(4x4, 3x3), in float64 by about 1e-15 and 1e-14;
``tests/test_ops.py``, ``tests/test_fast.py``).
Measured (benchmarks/README.md, 2 cores): the small VGG's convolutions run at
86% of the sgemm ceiling by default against 55% with ``im2col`` only (commit
586d9e1); layer 1 in 2 chunks instead of 16 takes 1.45 instead of 2.6 ms
(commit 6cd070d); F(4x4, 3x3) took 3% off a VGG16 step (commit 586d9e1).

Memory and speed: the column matrix of a whole folded batch (T*B images) is 9x
the size of the input, so both directions walk the batch in chunks of whole
images, and the backward recomputes each chunk's columns from the cached input
instead of keeping them.  On the CPU a chunk has about :data:`CHUNK_COLUMNS`
output positions (more when its columns are short), so that its columns stay
in cache between im2col and the matrix product, which is still wide enough to
run at full speed; the chunks run on the CPU pool of :mod:`diet_np.fast.parallel`,
one per core.  On a GPU every chunk costs a dozen kernel launches and a narrow
product leaves most of its cores idle, so a chunk is as wide as
:data:`GPU_CHUNK_BYTES` of columns allows.

3x3 stride-1 pad-1 convolutions (all of VGG's but layer 1) run by default on
the CPU through Winograd's F(2x2, 3x3), or F(4x4, 3x3) for wide layers
(:mod:`diet_np.fast.winograd`, 2.25x or 4x fewer multiplications, the same
chunks).  The engine's ``conv`` setting picks the algorithm (:func:`algorithm`),
and the forward records the one it ran in its :class:`ConvCache`, which the
backward follows.
"""
from __future__ import annotations

from typing import NamedTuple

from ..backend import array_module
from ..ops.conv import check_shapes, col2im, conv_output_size, im2col
from . import winograd
from .parallel import map_chunks, sum_in_order, workers

WINOGRAD_MIN_CHANNELS = 32
"""``auto``: with fewer input channels Winograd's transforms cost more than the
products they save (measured on 2 CPU cores, forward + backward: 3x slower for
VGG's layer 1 with 3 channels, 1.25x slower at 16, 1.15x faster for 32 -> 64,
1.3-1.7x faster from 64 channels up)."""

CHUNK_COLUMNS = 2048
"""CPU: output positions (columns of im2col) per chunk; at least one whole image."""

CHUNK_BYTES = 1 << 21
"""CPU: a chunk takes more than :data:`CHUNK_COLUMNS` columns while they fit in this
many bytes (short columns: few input channels, as in layer 1, where 16 chunks of
2 images cost twice the time of 2 chunks of 16)."""

GPU_CHUNK_BYTES = 1 << 28
"""CuPy: bytes of im2col columns per chunk (256 MiB); at least one whole image."""


class ConvCache(NamedTuple):
    """What the backward needs: the input (not its columns or tiles), the
    weight, and how the forward ran: ``tile`` is m of F(m x m, 3x3), or 0 for im2col."""
    x: object
    w: object
    stride: int
    pad: int
    tile: int


def _chunks(x, kh, kw, stride, pad, dtype):
    """Slices of the batch, whole images, with at most about :data:`CHUNK_COLUMNS`
    output positions each on the CPU (more while their columns fit in
    :data:`CHUNK_BYTES`), as many for each worker of the CPU pool, and
    :data:`GPU_CHUNK_BYTES` of ``dtype`` columns each on CuPy."""
    n, c, h, w = x.shape
    per_image = conv_output_size(h, kh, stride, pad) * conv_output_size(w, kw, stride, pad)
    xp = array_module(x)
    column_bytes = c * kh * kw * dtype.itemsize
    if xp.__name__ == "cupy":
        columns = GPU_CHUNK_BYTES // column_bytes
    else:
        columns = max(CHUNK_COLUMNS, CHUNK_BYTES // column_bytes)
    pool = min(workers(xp), n)
    count = -(-n // max(1, columns // per_image))            # chunks of at most `columns`
    count = -(-count // pool) * pool                         # the same number for each worker
    step = -(-n // count)
    return [slice(lo, min(lo + step, n)) for lo in range(0, n, step)]


def algorithm(x_shape, w_shape, stride: int, pad: int, xp, choice: str = "auto") -> int:
    """How :func:`conv2d_forward` computes this convolution: m of Winograd's
    F(m x m, 3x3), or 0 for im2col.

    ``choice``: ``im2col``; ``winograd`` where it applies (F(4x4, 3x3) for wide
    layers, :func:`winograd.tile_size`); ``winograd-4x4``, F(4x4, 3x3) wherever
    the output maps divide by 4 (for tests); ``auto``, Winograd on NumPy for
    layers with at least :data:`WINOGRAD_MIN_CHANNELS` input channels, im2col
    otherwise and on CuPy (whose measured GPU figures are im2col's)."""
    if choice not in ("auto", "im2col", "winograd", "winograd-4x4"):
        raise ValueError(f"unknown convolution algorithm {choice!r}")
    if choice == "im2col" or not winograd.applies(x_shape, w_shape, stride, pad):
        return 0
    if choice == "winograd-4x4":
        return winograd.tile_size(x_shape, wide=True)
    if choice == "winograd" or (xp.__name__ != "cupy" and w_shape[1] >= WINOGRAD_MIN_CHANNELS):
        return winograd.tile_size(x_shape)
    return 0


def _conv_chunk(x, w2d, kh, kw, stride, pad):
    """W (C_out, C*kh*kw) @ im2col(x) for one chunk, viewed as (n, C_out, Ho, Wo)."""
    ho = conv_output_size(x.shape[2], kh, stride, pad)
    wo = conv_output_size(x.shape[3], kw, stride, pad)
    out = w2d @ im2col(x.astype(w2d.dtype, copy=False), kh, kw, stride, pad)
    return out.reshape(w2d.shape[0], -1, ho, wo).transpose(1, 0, 2, 3)


def conv2d_forward(x, w, stride: int = 1, pad: int = 0, choice: str = "auto"):
    """:func:`diet_np.ops.conv.conv2d_forward` (I = W * o, Eq. 2's input current).

    x: (N, C, H, W); w: (C_out, C, kh, kw) -> out: (N, C_out, Ho, Wo).
    Per chunk of images: out = W (C_out, C*kh*kw) @ im2col(x), or Winograd's
    tiles (``choice``, see :func:`algorithm`), written straight into
    the (N, C_out, Ho, Wo) result.  Returns ``(out, ConvCache)``.
    """
    check_shapes(x, w)
    xp = array_module(x, w)
    c_out, _, kh, kw = w.shape
    ho = conv_output_size(x.shape[2], kh, stride, pad)
    wo = conv_output_size(x.shape[3], kw, stride, pad)
    out = xp.empty((x.shape[0], c_out, ho, wo), dtype=w.dtype)
    tile = algorithm(x.shape, w.shape, stride, pad, xp, choice)
    if tile:
        u = winograd.transform_weight(w, tile)

        def chunk(part):
            winograd.conv_chunk(x[part], u, out[part])
    else:
        w2d = w.reshape(c_out, -1)

        def chunk(part):
            out[part] = _conv_chunk(x[part], w2d, kh, kw, stride, pad)

    map_chunks(chunk, _chunks(x, kh, kw, stride, pad, w.dtype), xp)
    return out, ConvCache(x, w, stride, pad, tile)


def conv2d_backward(dout, cache, need_dx: bool = True):
    """Gradients of :func:`conv2d_forward`: returns ``(dx, dw)``.

    dw = sum over chunks of dout (x) im2col(x) (the weight part of Eq. 12),
    accumulated as its transpose im2col(x) dout^T (the faster product when C_out
    is small).  dx = col2im(W^T dout); for a stride-1 convolution with a square
    kernel, pad < k and no more output than input channels, dx is computed as
    the adjoint convolution instead, dout convolved with the kernel rotated by
    180 degrees and its channel axes swapped, padded by k - 1 - pad: im2col's
    copies replace col2im's slower strided additions.  A convolution that ran
    through Winograd's tiles (``cache.tile``) takes their transposed algorithm
    (:func:`winograd.backward_chunk`).  With ``need_dx=False`` (the first layer,
    fed by the image) dx is ``None``.
    """
    x, w, stride, pad, tile = cache
    xp = array_module(dout, w)
    c_out, c_in, kh, kw = w.shape
    dx = xp.empty(x.shape, dtype=w.dtype) if need_dx else None
    if tile:
        return dx, _winograd_backward(dout, x, w, dx, tile)
    w2d = w.reshape(c_out, -1)
    adjoint = need_dx and stride == 1 and c_out <= c_in and kh == kw and pad < kh
    if adjoint:
        w_adjoint = w.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1].reshape(c_in, -1)

    def chunk(part):
        """Writes this chunk's dx; returns its term of dw^T."""
        dout2d = dout[part].transpose(1, 0, 2, 3).reshape(c_out, -1)
        col = im2col(x[part].astype(w.dtype, copy=False), kh, kw, stride, pad)
        if adjoint:
            dx[part] = _conv_chunk(dout[part], w_adjoint, kh, kw, 1, kh - 1 - pad)
        elif need_dx:
            col2im(w2d.T @ dout2d, dx[part].shape, kh, kw, stride, pad, out=dx[part])
        return col @ dout2d.T

    dw_t = sum_in_order(map_chunks(chunk, _chunks(x, kh, kw, stride, pad, w.dtype), xp), xp)
    return dx, dw_t.T.reshape(w.shape)


def _winograd_backward(dout, x, w, dx, tile):
    """Writes dx (unless None) and returns dw for a convolution that ran through
    :mod:`winograd`'s F(tile x tile, 3x3) (see :func:`winograd.backward_chunk`)."""
    xp = array_module(dout, w)
    u = winograd.transform_weight(w, tile)
    du = sum_in_order(map_chunks(lambda part: winograd.backward_chunk(
        x[part], dout[part], u, None if dx is None else dx[part]),
        _chunks(x, 3, 3, 1, 1, w.dtype), xp), xp)
    return winograd.weight_gradient(du)
