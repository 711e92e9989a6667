"""2-D convolution (no bias) by im2col/col2im and one matrix product.

im2col builds ``col[c, i, j, n, oh, ow] = xpad[c, n, oh*s + i, ow*s + j]`` with a
short loop over the kernel window (9 strided-slice copies for a 3x3 kernel);
col2im adds the window slices back.  There is no fancy indexing and no
scatter-add, so the same code runs on NumPy and CuPy.  The backward recomputes
``col`` from the cached input instead of keeping it, which keeps memory low when
time is folded into the batch.
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


def col2im(col, x_shape, kh: int, kw: int, stride: int = 1, pad: int = 0):
    """Adjoint of :func:`im2col`: fold columns (C*kh*kw, N*Ho*Wo) back to (N, C, H, W),
    adding the contributions of overlapping windows."""
    xp = array_module(col)
    n, c, h, w = x_shape
    ho, wo = conv_output_size(h, kh, stride, pad), conv_output_size(w, kw, stride, pad)
    col = col.reshape(c, kh, kw, n, ho, wo)
    dxpad = xp.zeros((c, n, h + 2 * pad, w + 2 * pad), dtype=col.dtype)
    for i in range(kh):
        for j in range(kw):
            dxpad[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride] += col[:, i, j]
    return xp.ascontiguousarray(dxpad[:, :, pad:pad + h, pad:pad + w].transpose(1, 0, 2, 3))


def conv2d_forward(x, w, stride: int = 1, pad: int = 0):
    """Convolution without bias (the paper's I = W * o, Eq. 2's input current).

    x: (N, C, H, W); w: (C_out, C, kh, kw) -> out: (N, C_out, Ho, Wo).
    Returns ``(out, cache)``; the cache holds the input, not the im2col buffer.
    """
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"conv2d expects x (N, C, H, W) and w (C_out, C, kh, kw); "
                         f"got x {tuple(x.shape)} and w {tuple(w.shape)}")
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"conv2d: input has {x.shape[1]} channels but the weight "
                         f"{tuple(w.shape)} expects {w.shape[1]}")
    xp = array_module(x, w)
    n = x.shape[0]
    c_out, _, kh, kw = w.shape
    ho = conv_output_size(x.shape[2], kh, stride, pad)
    wo = conv_output_size(x.shape[3], kw, stride, pad)
    col = im2col(x.astype(w.dtype, copy=False), kh, kw, stride, pad)
    out = (w.reshape(c_out, -1) @ col).reshape(c_out, n, ho, wo)
    return xp.ascontiguousarray(out.transpose(1, 0, 2, 3)), (x, w, stride, pad)


def conv2d_backward(dout, cache, need_dx: bool = True):
    """Gradients of :func:`conv2d_forward`: returns ``(dx, dw)``.

    dw = dout (x) im2col(x) (the weight part of Eq. 12); dx = col2im(W^T dout).
    With ``need_dx=False`` (the first layer, fed by the image) dx is ``None``.
    """
    x, w, stride, pad = cache
    c_out, _, kh, kw = w.shape
    dout2d = dout.transpose(1, 0, 2, 3).reshape(c_out, -1)
    col = im2col(x.astype(w.dtype, copy=False), kh, kw, stride, pad)
    dw = (dout2d @ col.T).reshape(w.shape)
    del col
    if not need_dx:
        return None, dw
    dcol = w.reshape(c_out, -1).T @ dout2d
    return col2im(dcol, x.shape, kh, kw, stride, pad), dw
