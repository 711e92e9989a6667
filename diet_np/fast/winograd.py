"""3x3 convolutions (stride 1, padding 1) by Winograd's minimal filtering F(m x m, 3x3).

Reference: :func:`diet_np.ops.conv.conv2d_forward` / ``conv2d_backward`` (im2col),
equal to rounding (float64: about 1e-15 for F(2x2, 3x3), 1e-14 for F(4x4, 3x3);
``tests/test_ops.py``).  Measured on 2 CPU cores (benchmarks/README.md): the small
VGG's conv3 (64 -> 128 channels, 8x8) runs at 113-116% of the sgemm ceiling in
effective FLOP/s (commit 586d9e1), the small VGG's convolutions at 86% of it
against 55% through im2col alone; F(4x4, 3x3) took 3% off a VGG16 step.

VGG's convolutions are all of this kind.  Winograd's algorithm (Lavin & Gray,
"Fast Algorithms for Convolutional Neural Networks", 2016) computes each m x m tile
of the output from the (m+2) x (m+2) tile of input around it as

    Y = A^T [ (G g G^T) . (B^T d B) ] A           (. = element-wise)

with constant matrices A, B, G for each m.  Summed over input channels, the
element-wise product becomes one (C_out x C) @ (C x tiles) matrix product for
each of the (m+2)^2 positions of the transformed tile.  Two tile sizes are here:

* F(2x2, 3x3): 16 products per 2x2 outputs, 4 multiply-adds per output pixel and
  input channel instead of im2col's 9 (2.25x fewer); transforms of 0/+1/-1
  coefficients, exact in floating point;
* F(4x4, 3x3): 36 products per 4x4 outputs, 2.25 multiply-adds (4x fewer), with
  transforms of more terms and coefficients up to 8, which lose about a decimal
  digit of float32 precision (relative error ~1e-5 against ~5e-7).  Worth it when
  the products dominate: layers with at least :data:`WIDE_CHANNELS` input channels
  and output maps divisible by 4, at least :data:`WIDE_MAP` wide (:func:`tile_size`).

The transforms are sums of strided slices (no fancy indexing), so the same code
runs on NumPy and CuPy.

Backward, for the same tiles (the algebra is exact, so gradients are those of
the convolution itself):

* dM = A dY A^T, the output transform's adjoint, for every output tile;
* dw: the product is linear in U = G g G^T, so dU = dM^T V summed over tiles and
  dw = G^T dU G;
* dx: dV = dM U, and the input transform's adjoint B dV B^T, added where the
  input tiles overlap (two samples each way), with the padding dropped.

Both gradients share dM, and no product is larger than the forward's.

The transforms cost memory traffic that im2col also has (each input pixel is
read into 4 tiles (2.25 for m = 4) here, 9 columns there), while the products
shrink; the gain is largest for layers with many channels.  The transforms run
channels-last ((H, W, n, C)), so that each of their passes is one long contiguous
vector operation; the tile layout of V, (tile row, tile column, image), makes the
products (tiles x C) @ (C x K) with no further copy.  Output maps must have
height and width divisible by m (CIFAR's 32, 16, 8, 4, 2 all are by 2).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

from ..backend import array_module
from .parallel import map_chunks, slices

WIDE_CHANNELS = 128
"""Layers with at least this many input channels and maps of at least
:data:`WIDE_MAP` use F(4x4, 3x3).  Measured on 2 CPU cores, forward + backward of
VGG16's layers at batch 16, T=5, time against F(2x2, 3x3): 0.75-0.94 from 128
channels on 16x16 and 8x8 maps (0.78-0.83 with AVX2 kernels), 0.93-1.36 below
128 channels, and 1.14 on 4x4 maps (a single tile per image leaves the products
too narrow)."""

WIDE_MAP = 8
"""Smallest output height and width for F(4x4, 3x3)."""

STAGED_MAP = 256
"""Float maps with at least this many pixels go channels-last through a staging copy."""


def applies(x_shape, w_shape, stride: int, pad: int) -> bool:
    """True for a 3x3, stride-1, pad-1 convolution with even output height and width."""
    h, w = x_shape[2], x_shape[3]
    return (tuple(w_shape[2:]) == (3, 3) and stride == 1 and pad == 1
            and h % 2 == 0 and w % 2 == 0)


def tile_size(x_shape, wide: bool | None = None) -> int:
    """m of F(m x m, 3x3) for an input (n, C, H, W) that :func:`applies`: 4 for a
    wide layer (by default: at least :data:`WIDE_CHANNELS` channels on maps at
    least :data:`WIDE_MAP` wide) with H and W divisible by 4, else 2."""
    c, h, w = x_shape[1:]
    if wide is None:
        wide = c >= WIDE_CHANNELS and min(h, w) >= WIDE_MAP
    return 4 if wide and h % 4 == 0 and w % 4 == 0 else 2


def _channels_last(x, out):
    """out (H, W, n, C) = x (n, C, H, W), cast to out's dtype.

    A plain transposing copy is slow here: it reads x with a stride of H*W
    elements, a power of two, so the rows it reads at once fall on the same
    cache sets.  Narrow x (spikes: bool) is transposed in its own dtype first
    and widened after; large float maps are first copied into rows with one
    spare element, whose stride breaks the power of two."""
    xp = array_module(x)
    n, c, h, w = x.shape
    if x.dtype.itemsize < out.dtype.itemsize:
        out[...] = xp.ascontiguousarray(x.transpose(2, 3, 0, 1))
    elif h * w >= STAGED_MAP:
        staged = xp.empty((n, c, h * w + 1), dtype=x.dtype)[..., :h * w]
        staged[...] = x.reshape(n, c, h * w)
        out[...] = staged.reshape(n, c, h, w).transpose(2, 3, 0, 1)
    else:
        out[...] = x.transpose(2, 3, 0, 1)


def _spare_last(xp, shape, dtype):
    """An empty array of ``shape`` whose rows (last axis) have one spare element,
    so that copying it back to (n, C, H, W) does not walk a power-of-two stride."""
    return xp.empty(shape[:-1] + (shape[-1] + 1,), dtype=dtype)[..., :shape[-1]]


def _along(a, axis, index):
    """a[..., index, ...] with ``index`` on ``axis``."""
    full = [slice(None)] * a.ndim
    full[axis] = index
    return a[tuple(full)]


def _tiles(a, axis, m):
    """The m + 2 samples of each input tile along ``axis`` (tiles start every m):
    a list of strided views, sample k of every tile in the k-th."""
    n = (a.shape[axis] - 2) // m
    return [_along(a, axis, slice(k, k + m * n, m)) for k in range(m + 2)]


# ---------------------------------------------------------------- F(2x2, 3x3)
def _input_pass_2(xp, d, out):
    """B^T: out = d0 - d2, d1 + d2, d2 - d1, d1 - d3."""
    xp.subtract(d[0], d[2], out=out[0])
    xp.add(d[1], d[2], out=out[1])
    xp.subtract(d[2], d[1], out=out[2])
    xp.subtract(d[1], d[3], out=out[3])


def _output_pass_2(xp, m, out):
    """A^T: out = m0 + m1 + m2, m1 - m2 - m3."""
    xp.add(m[0], m[1], out=out[0])
    out[0] += m[2]
    xp.subtract(m[1], m[2], out=out[1])
    out[1] -= m[3]


def _output_adjoint_2(xp, y, out):
    """A, the adjoint of :func:`_output_pass_2`: out = y0, y0 + y1, y0 - y1, -y1."""
    out[0][...] = y[0]
    xp.add(y[0], y[1], out=out[1])
    xp.subtract(y[0], y[1], out=out[2])
    xp.negative(y[1], out=out[3])


def _input_adjoint_2(xp, g, axis, out):
    """B, the adjoint of :func:`_input_pass_2`, with overlapping tiles added and the
    padding dropped.  Each tile's samples are d0 = g0, d1 = g1 - g2 + g3,
    d2 = g1 + g2 - g0, d3 = -g3; unpadded sample 2j is d1 of tile j plus d3 of
    tile j-1, sample 2j+1 is d2 of tile j plus d0 of tile j+1."""
    xp.subtract(g[1], g[2], out=out[0])
    out[0] += g[3]
    _along(out[0], axis, slice(1, None))[...] -= _along(g[3], axis, slice(None, -1))
    xp.add(g[1], g[2], out=out[1])
    out[1] -= g[0]
    _along(out[1], axis, slice(None, -1))[...] += _along(g[0], axis, slice(1, None))


# ---------------------------------------------------------------- F(4x4, 3x3)
def _input_pass_4(xp, d, out):
    """B^T for interpolation points 0, 1, -1, 2, -2 and infinity:
    out0 = 4 d0 - 5 d2 + d4,   out1,2 = (d4 - 4 d2) +- (d3 - 4 d1),
    out3,4 = (d4 - d2) +- 2 (d3 - d1),   out5 = 4 d1 - 5 d3 + d5."""
    tmp = xp.empty_like(out[0])
    for o, (a, b, c) in ((out[0], (0, 2, 4)), (out[5], (1, 3, 5))):
        xp.multiply(d[a], 4.0, out=o)
        xp.multiply(d[b], 5.0, out=tmp)
        o -= tmp
        o += d[c]
    xp.multiply(d[2], -4.0, out=tmp)
    tmp += d[4]
    xp.multiply(d[1], -4.0, out=out[2])
    out[2] += d[3]
    xp.add(tmp, out[2], out=out[1])
    xp.subtract(tmp, out[2], out=out[2])
    xp.subtract(d[4], d[2], out=tmp)
    xp.subtract(d[3], d[1], out=out[4])
    out[4] *= 2.0
    xp.add(tmp, out[4], out=out[3])
    xp.subtract(tmp, out[4], out=out[4])


def _output_pass_4(xp, m, out):
    """A^T: out0 = m0 + (m1 + m2) + (m3 + m4), out1 = (m1 - m2) + 2 (m3 - m4),
    out2 = (m1 + m2) + 4 (m3 + m4), out3 = (m1 - m2) + 8 (m3 - m4) + m5."""
    s12, d12, s34, d34 = (xp.empty_like(out[0]) for _ in range(4))
    xp.add(m[1], m[2], out=s12)
    xp.subtract(m[1], m[2], out=d12)
    xp.add(m[3], m[4], out=s34)
    xp.subtract(m[3], m[4], out=d34)
    xp.add(m[0], s12, out=out[0])
    out[0] += s34
    for o, scale, base, odd in ((out[1], 2.0, d12, d34), (out[2], 4.0, s12, s34),
                                (out[3], 8.0, d12, d34)):
        xp.multiply(odd, scale, out=o)
        o += base
    out[3] += m[5]


def _output_adjoint_4(xp, y, out):
    """A, the adjoint of :func:`_output_pass_4`: out0 = y0, out5 = y3,
    out1,2 = (y0 + y2) +- (y1 + y3), out3,4 = (y0 + 4 y2) +- (2 y1 + 8 y3)."""
    out[0][...] = y[0]
    out[5][...] = y[3]
    even, odd = out[3], out[4]                 # scratch for out1 and out2 first
    xp.add(y[0], y[2], out=even)
    xp.add(y[1], y[3], out=odd)
    xp.add(even, odd, out=out[1])
    xp.subtract(even, odd, out=out[2])
    xp.multiply(y[3], 4.0, out=odd)
    odd += y[1]
    odd *= 2.0
    xp.multiply(y[2], 4.0, out=even)
    even += y[0]
    even += odd                                # out3 = even + odd
    odd *= -2.0
    odd += even                                # out4 = (even + odd) - 2 odd


def _input_adjoint_4(xp, g, axis, out):
    """B, the adjoint of :func:`_input_pass_4`, with overlapping tiles added and the
    padding dropped.  Each tile's six samples are d0 = 4 g0,
    d1 = 4 g5 - 4 (g1 - g2) - 2 (g3 - g4), d2 = -5 g0 - 4 (g1 + g2) - (g3 + g4),
    d3 = (g1 - g2) + 2 (g3 - g4) - 5 g5, d4 = g0 + (g1 + g2) + (g3 + g4), d5 = g5;
    unpadded samples 4j..4j+3 are d1..d4 of tile j, sample 4j+3 also gets d0 of
    tile j+1 and sample 4j d5 of tile j-1."""
    diff12, diff34, sum12, sum34 = (xp.empty_like(out[0]) for _ in range(4))
    xp.subtract(g[1], g[2], out=diff12)
    xp.subtract(g[3], g[4], out=diff34)
    diff34 *= 2.0
    xp.add(g[1], g[2], out=sum12)
    xp.add(g[3], g[4], out=sum34)
    xp.multiply(g[5], -5.0, out=out[2])                      # d3
    out[2] += diff12
    out[2] += diff34
    diff12 *= 4.0
    xp.multiply(g[5], 4.0, out=out[0])                       # d1
    out[0] -= diff12
    out[0] -= diff34
    xp.add(g[0], sum12, out=out[3])                          # d4
    out[3] += sum34
    sum12 *= 4.0
    xp.multiply(g[0], -5.0, out=out[1])                      # d2
    out[1] -= sum12
    out[1] -= sum34
    _along(out[3], axis, slice(None, -1))[...] += 4.0 * _along(g[0], axis, slice(1, None))
    _along(out[0], axis, slice(1, None))[...] += _along(g[5], axis, slice(None, -1))


class _Scheme(NamedTuple):
    """One F(m x m, 3x3): the kernel transform G and the four 1-D passes."""
    g: tuple
    input_pass: Callable
    output_pass: Callable
    output_adjoint: Callable
    input_adjoint: Callable


SCHEMES = {
    2: _Scheme(((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0)),
               _input_pass_2, _output_pass_2, _output_adjoint_2, _input_adjoint_2),
    4: _Scheme(((1 / 4, 0.0, 0.0), (-1 / 6, -1 / 6, -1 / 6), (-1 / 6, 1 / 6, -1 / 6),
                (1 / 24, 1 / 12, 1 / 6), (1 / 24, -1 / 12, 1 / 6), (0.0, 0.0, 1.0)),
               _input_pass_4, _output_pass_4, _output_adjoint_4, _input_adjoint_4),
}
"""m -> its scheme; G maps a 3-tap kernel g to the m + 2 values G g."""


def _tile_of(positions: int) -> int:
    """m from the (m + 2)^2 positions of a transformed tile (16 or 36)."""
    return round(positions ** 0.5) - 2


# ---------------------------------------------------------------- transforms
def transform_input(x, dtype, m: int = 2):
    """B^T d B for every (m+2) x (m+2) input tile: x (n, C, H, W) -> V ((m+2)^2, P, C),
    with the P = (H/m)(W/m)n tiles ordered (tile row, tile column, image).

    The transforms work channels-last, on a zero-padded (H+2, W+2, n, C) copy,
    so that every pass is a long contiguous vector operation: the row pass
    writes (m+2, H/m, W+2, n, C), the column pass all tile positions."""
    xp = array_module(x)
    n, c, h, w = x.shape
    th, tw, a = h // m, w // m, m + 2
    xpad = xp.empty((h + 2, w + 2, n, c), dtype=dtype)
    for border in (xpad[0], xpad[-1], xpad[1:-1, 0], xpad[1:-1, -1]):
        border[...] = 0
    _channels_last(x, xpad[1:h + 1, 1:w + 1])
    rows = xp.empty((a, th, w + 2, n, c), dtype=dtype)
    scheme = SCHEMES[m]
    scheme.input_pass(xp, _tiles(xpad, 0, m), rows)
    v = xp.empty((a, a, th, tw, n, c), dtype=dtype)
    scheme.input_pass(xp, _tiles(rows, 2, m), v.transpose(1, 0, 2, 3, 4, 5))
    return v.reshape(a * a, th * tw * n, c)


def _kernel_matrix(xp, dtype, m):
    """G (x) G, ((m+2)^2, 9): U[a, b] = sum_ij G[a, i] G[b, j] g[i, j] with (a, b)
    and (i, j) flattened row-major."""
    g = xp.asarray(SCHEMES[m].g, dtype=dtype)
    return (g[:, None, :, None] * g[None, :, None, :]).reshape((m + 2) ** 2, 9)


def transform_weight(w, m: int = 2):
    """U = G g G^T for every (output, input) channel pair: w (K, C, 3, 3) ->
    ((m+2)^2, K, C), as the product (G (x) G) @ w^T, its columns split over the
    CPU pool."""
    xp = array_module(w)
    k, c = w.shape[:2]
    kernel, w2d = _kernel_matrix(xp, w.dtype, m), w.reshape(k * c, 9)
    u = xp.empty((kernel.shape[0], k * c), dtype=w.dtype)
    map_chunks(lambda pairs: xp.matmul(kernel, w2d[pairs].T, out=u[:, pairs]),
               slices(k * c, xp), xp)
    return u.reshape(-1, k, c)


def weight_gradient(du):
    """Adjoint of :func:`transform_weight`: dU ((m+2)^2, K, C) -> dw = G^T dU G (K, C, 3, 3)."""
    xp = array_module(du)
    positions, k, c = du.shape
    kernel, du2d = _kernel_matrix(xp, du.dtype, _tile_of(positions)), du.reshape(positions, k * c)
    dw = xp.empty((k * c, 9), dtype=du.dtype)
    map_chunks(lambda pairs: xp.matmul(du2d[:, pairs].T, kernel, out=dw[pairs]),
               slices(k * c, xp), xp)
    return dw.reshape(k, c, 3, 3)


def transform_output(mt, out):
    """A^T M A: M ((m+2)^2, P, K) -> out (n, K, H, W), written in place.

    The passes run channels-last into an (H/m, m, W/m, m, n, K) buffer, copied
    once into ``out``."""
    xp = array_module(mt)
    n, k, h, w = out.shape
    m = _tile_of(mt.shape[0])
    th, tw, a = h // m, w // m, m + 2
    mt = mt.reshape(a, a, th, tw, n, k)
    rows = xp.empty((m, a, th, tw, n, k), dtype=mt.dtype)
    scheme = SCHEMES[m]
    scheme.output_pass(xp, mt, rows)
    y = _spare_last(xp, (th, m, tw, m, n, k), mt.dtype)
    scheme.output_pass(xp, rows.transpose(1, 0, 2, 3, 4, 5),
                       [y[:, :, :, j].transpose(1, 0, 2, 3, 4) for j in range(m)])
    out[...] = y.reshape(h, w, n, k).transpose(2, 3, 0, 1)


def transform_output_grad(dy, m: int = 2):
    """A dY A^T, the adjoint of :func:`transform_output`:
    dy (n, K, H, W) -> dM ((m+2)^2, P, K), tiles ordered as in :func:`transform_input`."""
    xp = array_module(dy)
    n, k, h, w = dy.shape
    th, tw, a = h // m, w // m, m + 2
    d = xp.empty((h, w, n, k), dtype=dy.dtype)
    _channels_last(dy, d)
    d = d.reshape(th, m, tw, m, n, k)
    rows = xp.empty((a, th, tw, m, n, k), dtype=dy.dtype)
    scheme = SCHEMES[m]
    scheme.output_adjoint(xp, [d[:, i] for i in range(m)], rows)
    dm = xp.empty((a, a, th, tw, n, k), dtype=dy.dtype)
    scheme.output_adjoint(xp, [rows[:, :, :, j] for j in range(m)],
                          dm.transpose(1, 0, 2, 3, 4, 5))
    return dm.reshape(a * a, th * tw * n, k)


def input_gradient(dv, out):
    """Adjoint of :func:`transform_input`: B dV B^T for every tile, added where
    tiles overlap: dV ((m+2)^2, P, C) -> out (n, C, H, W), written in place."""
    xp = array_module(dv)
    n, c, h, w = out.shape
    m = _tile_of(dv.shape[0])
    th, tw, a = h // m, w // m, m + 2
    dv = dv.reshape(a, a, th, tw, n, c)
    scheme = SCHEMES[m]
    cols = xp.empty((a, th, w, n, c), dtype=dv.dtype)
    scheme.input_adjoint(xp, dv.transpose(1, 0, 2, 3, 4, 5), 2,
                         [_along(cols, 2, slice(q, None, m)) for q in range(m)])
    dx = _spare_last(xp, (h, w, n, c), dv.dtype)
    scheme.input_adjoint(xp, cols, 0, [dx[q::m] for q in range(m)])
    out[...] = dx.transpose(2, 3, 0, 1)


def conv_chunk(x, u, out):
    """One chunk of images: out (n, K, H, W) = A^T [U V] A with V from x (n, C, H, W)
    and U ((m+2)^2, K, C) = :func:`transform_weight` of the kernel."""
    xp = array_module(x, u)
    v = transform_input(x, u.dtype, _tile_of(u.shape[0]))
    transform_output(xp.matmul(v, u.transpose(0, 2, 1)), out)


def backward_chunk(x, dy, u, dx):
    """One chunk's backward, through the transposed algorithm: dM = A dY A^T,
    dU = dM^T V (returned, this chunk's term; :func:`weight_gradient` of the sum
    is dw) and, unless ``dx`` is None, dx = B (dM U) B^T added over tiles."""
    xp = array_module(x, dy, u)
    m = _tile_of(u.shape[0])
    dm = transform_output_grad(dy.astype(u.dtype, copy=False), m)
    if dx is not None:
        input_gradient(xp.matmul(dm, u), dx)
    return xp.matmul(dm.transpose(0, 2, 1), transform_input(x, u.dtype, m))
