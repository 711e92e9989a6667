"""2-D convolution (no bias) by im2col/col2im and one matrix product: the reference.

im2col builds ``col[c, i, j, n, oh, ow] = xpad[c, n, oh*s + i, ow*s + j]`` with a
short loop over the kernel window (9 strided-slice copies for a 3x3 kernel);
col2im adds the window slices back, each cropped to the unpadded input.  There
is no fancy indexing and no scatter-add, so the same code runs on NumPy and CuPy.

The whole (folded) batch goes through one product, so its columns take 9x the
memory of the input; :mod:`diet_np.fast.conv` walks the batch in chunks
instead, on several cores, and runs 3x3 layers through Winograd's algorithm.
"""
from __future__ import annotations

from ..backend import array_module


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


def check_shapes(x, w):
    """Raise a clear error unless x is (N, C, H, W) and w (C_out, C, kh, kw)."""
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"conv2d expects x (N, C, H, W) and w (C_out, C, kh, kw); "
                         f"got x {tuple(x.shape)} and w {tuple(w.shape)}")
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"conv2d: input has {x.shape[1]} channels but the weight "
                         f"{tuple(w.shape)} expects {w.shape[1]}")


def conv2d_forward(x, w, stride: int = 1, pad: int = 0):
    """Convolution without bias (the paper's I = W * o, Eq. 2's input current).

    x: (N, C, H, W); w: (C_out, C, kh, kw) -> out: (N, C_out, Ho, Wo) with
    Ho = (H + 2*pad - kh)//stride + 1: out = W (C_out, C*kh*kw) @ im2col(x).
    The cache is ``(x, w, stride, pad)``.
    """
    check_shapes(x, w)
    c_out, _, kh, kw = w.shape
    ho = conv_output_size(x.shape[2], kh, stride, pad)
    wo = conv_output_size(x.shape[3], kw, stride, pad)
    col = im2col(x.astype(w.dtype, copy=False), kh, kw, stride, pad)
    out = w.reshape(c_out, -1) @ col                      # (C_out, N*Ho*Wo)
    return out.reshape(c_out, x.shape[0], ho, wo).transpose(1, 0, 2, 3), (x, w, stride, pad)


def conv2d_backward(dout, cache, need_dx: bool = True):
    """Gradients of :func:`conv2d_forward`: returns ``(dx, dw)``.

    dw = dout (C_out, N*Ho*Wo) @ im2col(x)^T (the weight part of Eq. 12: dW =
    sum_t dI^t (x) g(o^t), time being folded into N) and dx = col2im(W^T dout).
    With ``need_dx=False`` (the first layer, fed by the image) dx is ``None``.
    """
    x, w, stride, pad = cache
    c_out, _, kh, kw = w.shape
    dout2d = dout.transpose(1, 0, 2, 3).reshape(c_out, -1)
    col = im2col(x.astype(w.dtype, copy=False), kh, kw, stride, pad)
    dw = (dout2d @ col.T).reshape(w.shape)
    dx = col2im(w.reshape(c_out, -1).T @ dout2d, x.shape, kh, kw, stride, pad) if need_dx else None
    return dx, dw
