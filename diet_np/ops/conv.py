"""2-D convolution (no bias) by im2col/col2im and one matrix product per chunk.

im2col builds ``col[c, i, j, n, oh, ow] = xpad[c, n, oh*s + i, ow*s + j]`` with a
short loop over the kernel window (9 strided-slice copies for a 3x3 kernel);
col2im adds the window slices back, each cropped to the unpadded input.  There
is no fancy indexing and no scatter-add, so the same code runs on NumPy and CuPy.

Memory and speed: the column matrix of a whole folded batch (T*B images) is 9x
the size of the input, so both directions walk the batch in chunks of whole
images, and the backward recomputes each chunk's columns from the cached input
instead of keeping them.  On the CPU a chunk has about :data:`CHUNK_COLUMNS`
output positions (more when its columns are short), so that its columns stay
in cache between im2col and the matrix product, which is still wide enough to
run at full speed; the chunks run on the CPU pool of :mod:`diet_np.parallel`,
one per core.  On a GPU
every chunk costs a dozen kernel launches and a narrow product leaves most of
its cores idle, so a chunk is as wide as :data:`GPU_CHUNK_BYTES` of columns
allows.

3x3 stride-1 pad-1 convolutions (all of VGG's but layer 1) run by default on
the CPU through Winograd's F(2x2, 3x3), or F(4x4, 3x3) for wide layers
(:mod:`diet_np.ops.winograd`, 2.25x or 4x fewer multiplications, the same
chunks); the environment variable ``DIET_NP_CONV``
picks the algorithm: ``im2col``, ``winograd`` (where it applies) or ``auto``
(the default: Winograd on NumPy for layers with at least :data:`WINOGRAD_MIN_CHANNELS`
input channels, im2col otherwise and on CuPy, whose measured GPU figures are
im2col's).  The two algorithms' float32 results differ by rounding (about 5e-7
of the largest value for F(2x2, 3x3), 5e-6 for F(4x4, 3x3)); their float64
results and gradients agree to about 1e-15 (1e-14 for F(4x4, 3x3)).
"""
from __future__ import annotations

import os

from ..backend import array_module
from ..parallel import map_chunks, sum_in_order, workers
from . import winograd

ENV_ALGORITHM = "DIET_NP_CONV"
ALGORITHMS = ("auto", "im2col", "winograd")

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


def conv_output_size(size: int, kernel: int, stride: int, pad: int) -> int:
    """Output length along one axis: ``(size + 2*pad - kernel) // stride + 1``."""
    out = (size + 2 * pad - kernel) // stride + 1
    if out < 1:
        raise ValueError(f"convolution with kernel {kernel}, stride {stride}, pad {pad} "
                         f"does not fit an input of size {size}")
    return out


def _padded_cnhw(x, pad):
    """x (N, C, H, W) -> zero-padded copy laid out (C, N, H + 2*pad, W + 2*pad)."""
    xp = array_module(x)
    n, c, h, w = x.shape
    xpad = xp.zeros((c, n, h + 2 * pad, w + 2 * pad), dtype=x.dtype)
    xpad[:, :, pad:pad + h, pad:pad + w] = x.transpose(1, 0, 2, 3)
    return xpad


def im2col(x, kh: int, kw: int, stride: int = 1, pad: int = 0):
    """Unfold image patches into columns.

    x: (N, C, H, W) -> col: (C*kh*kw, N*Ho*Wo), rows ordered (c, i, j) to match a
    weight reshaped to (C_out, C*kh*kw); Ho = (H + 2*pad - kh)//stride + 1.
    """
    xp = array_module(x)
    n, c, h, w = x.shape
    ho, wo = conv_output_size(h, kh, stride, pad), conv_output_size(w, kw, stride, pad)
    xpad = _padded_cnhw(x, pad)
    col = xp.empty((c, kh, kw, n, ho, wo), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            col[:, i, j] = xpad[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride]
    return col.reshape(c * kh * kw, n * ho * wo)


def col2im(col, x_shape, kh: int, kw: int, stride: int = 1, pad: int = 0, out=None):
    """Adjoint of :func:`im2col`: fold columns (C*kh*kw, N*Ho*Wo) back to (N, C, H, W),
    adding the contributions of overlapping windows.

    Each kernel tap (i, j) adds its columns to the inputs it read; contributions
    that fell on the zero padding are dropped rather than added to a padded
    buffer.  Writes into ``out`` (N, C, H, W) when given; returns the result."""
    xp = array_module(col)
    n, c, h, w = x_shape
    ho, wo = conv_output_size(h, kh, stride, pad), conv_output_size(w, kw, stride, pad)
    col = col.reshape(c, kh, kw, n, ho, wo)
    if out is None:
        out = xp.empty(x_shape, dtype=col.dtype)
    dx = out.transpose(1, 0, 2, 3)                       # (C, N, H, W) view
    dx[...] = 0
    for i in range(kh):
        rows = _inside(i, h, ho, stride, pad)
        for j in range(kw):
            cols = _inside(j, w, wo, stride, pad)
            if rows and cols:
                (y0, y1, r0), (x0, x1, c0) = rows, cols
                dx[:, :, r0:r0 + stride * (y1 - y0):stride, c0:c0 + stride * (x1 - x0):stride] \
                    += col[:, i, j, :, y0:y1, x0:x1]
    return out


def _inside(tap: int, size: int, out_size: int, stride: int, pad: int):
    """Output positions o whose input o*stride + tap - pad lies inside [0, size):
    ``(first, stop, first input)``, or None when there are none."""
    first = max(0, -(-(pad - tap) // stride))
    stop = min(out_size, (size - 1 + pad - tap) // stride + 1)
    return (first, stop, first * stride + tap - pad) if stop > first else None


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


def _check(x, w):
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"conv2d expects x (N, C, H, W) and w (C_out, C, kh, kw); "
                         f"got x {tuple(x.shape)} and w {tuple(w.shape)}")
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"conv2d: input has {x.shape[1]} channels but the weight "
                         f"{tuple(w.shape)} expects {w.shape[1]}")


def algorithm(x_shape, w_shape, stride: int, pad: int, xp) -> str:
    """``"winograd"`` or ``"im2col"``: how :func:`conv2d_forward` computes this
    convolution on arrays of ``xp`` (see ``DIET_NP_CONV``)."""
    choice = os.environ.get(ENV_ALGORITHM, "auto")
    if choice not in ALGORITHMS:
        raise ValueError(f"{ENV_ALGORITHM} must be one of {', '.join(ALGORITHMS)}; got {choice!r}")
    if choice == "im2col" or not winograd.applies(x_shape, w_shape, stride, pad):
        return "im2col"
    if choice == "winograd" or (xp.__name__ != "cupy" and w_shape[1] >= WINOGRAD_MIN_CHANNELS):
        return "winograd"
    return "im2col"


def _conv_chunk(x, w2d, kh, kw, stride, pad):
    """W (C_out, C*kh*kw) @ im2col(x) for one chunk, viewed as (n, C_out, Ho, Wo)."""
    ho = conv_output_size(x.shape[2], kh, stride, pad)
    wo = conv_output_size(x.shape[3], kw, stride, pad)
    out = w2d @ im2col(x.astype(w2d.dtype, copy=False), kh, kw, stride, pad)
    return out.reshape(w2d.shape[0], -1, ho, wo).transpose(1, 0, 2, 3)


def conv2d_forward(x, w, stride: int = 1, pad: int = 0):
    """Convolution without bias (the paper's I = W * o, Eq. 2's input current).

    x: (N, C, H, W); w: (C_out, C, kh, kw) -> out: (N, C_out, Ho, Wo).
    Per chunk of images: out = W (C_out, C*kh*kw) @ im2col(x), or Winograd's
    tiles (see :func:`algorithm`), written straight into the (N, C_out, Ho, Wo)
    result.  The cache holds the input, not the columns or tiles.
    """
    _check(x, w)
    xp = array_module(x, w)
    c_out, _, kh, kw = w.shape
    ho = conv_output_size(x.shape[2], kh, stride, pad)
    wo = conv_output_size(x.shape[3], kw, stride, pad)
    out = xp.empty((x.shape[0], c_out, ho, wo), dtype=w.dtype)
    if algorithm(x.shape, w.shape, stride, pad, xp) == "winograd":
        u = winograd.transform_weight(w, winograd.tile_size(x.shape))

        def chunk(part):
            winograd.conv_chunk(x[part], u, out[part])
    else:
        w2d = w.reshape(c_out, -1)

        def chunk(part):
            out[part] = _conv_chunk(x[part], w2d, kh, kw, stride, pad)

    map_chunks(chunk, _chunks(x, kh, kw, stride, pad, w.dtype), xp)
    return out, (x, w, stride, pad)


def conv2d_backward(dout, cache, need_dx: bool = True):
    """Gradients of :func:`conv2d_forward`: returns ``(dx, dw)``.

    dw = sum over chunks of dout (x) im2col(x) (the weight part of Eq. 12),
    accumulated as its transpose im2col(x) dout^T (the faster product when C_out
    is small).  dx = col2im(W^T dout); for a stride-1 convolution with a square
    kernel, pad < k and no more output than input channels, dx is computed as
    the adjoint convolution instead, dout convolved with the kernel rotated by
    180 degrees and its channel axes swapped, padded by k - 1 - pad: im2col's
    copies replace col2im's slower strided additions.  A convolution that ran
    through Winograd's tiles takes their transposed algorithm
    (:func:`winograd.backward_chunk`).  With ``need_dx=False`` (the first layer,
    fed by the image) dx is ``None``.
    """
    x, w, stride, pad = cache
    xp = array_module(dout, w)
    c_out, c_in, kh, kw = w.shape
    dx = xp.empty(x.shape, dtype=w.dtype) if need_dx else None
    if algorithm(x.shape, w.shape, stride, pad, xp) == "winograd":
        return dx, _winograd_backward(dout, x, w, dx)
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


def _winograd_backward(dout, x, w, dx):
    """Writes dx (unless None) and returns dw for a convolution that ran through
    :mod:`winograd` (see :func:`winograd.backward_chunk`)."""
    xp = array_module(dout, w)
    u = winograd.transform_weight(w, winograd.tile_size(x.shape))
    du = sum_in_order(map_chunks(lambda part: winograd.backward_chunk(
        x[part], dout[part], u, None if dx is None else dx[part]),
        _chunks(x, 3, 3, 1, 1, w.dtype), xp), xp)
    return winograd.weight_gradient(du)
