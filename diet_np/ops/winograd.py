"""3x3 convolutions (stride 1, padding 1) by Winograd's minimal filtering F(2x2, 3x3).

VGG's convolutions are all of this kind.  Winograd's algorithm (Lavin & Gray,
"Fast Algorithms for Convolutional Neural Networks", 2016) computes each 2x2 tile
of the output from the 4x4 tile of input around it as

    Y = A^T [ (G g G^T) . (B^T d B) ] A           (. = element-wise)

with the constant matrices below.  Summed over input channels, the element-wise
product becomes one (C_out x C) @ (C x tiles) matrix product for each of the 16
positions of the 4x4 transformed tile: 16 products of 4 multiply-adds per output
pixel and input channel instead of im2col's 9, so 2.25x fewer flops.  The
transforms are additions and subtractions of strided slices (no fancy indexing),
so the same code runs on NumPy and CuPy.

Backward, for the same tiles (the algebra is exact, so gradients are those of
the convolution itself):

* dM = A dY A^T, the output transform's adjoint, for every output tile;
* dw: the product is linear in U = G g G^T, so dU = dM^T V summed over tiles and
  dw = G^T dU G;
* dx: dV = dM U, and the input transform's adjoint B dV B^T, added where the 4x4
  tiles overlap (two samples each way), with the padding dropped.

Both gradients share dM, and no product is larger than the forward's.

The transforms cost memory traffic that im2col also has (each input pixel is
read into 4 tiles here, 9 columns there), while the products shrink; the gain is
largest for layers with many channels.  The transforms run channels-last
((H, W, n, C)), so that each of their passes is one long contiguous vector
operation; the tile layout of V, (tile row, tile column, image), makes the
products (tiles x C) @ (C x K) with no further copy.  Output maps must have even
height and width (CIFAR's 32, 16, 8, 4, 2 all are).
"""
from __future__ import annotations

from ..backend import array_module
from ..parallel import map_chunks, slices

TILE = 2
"""Output tile side (m in F(m x m, 3 x 3)); the input tile is m + 2 = 4."""

STAGED_MAP = 256
"""Float maps with at least this many pixels go channels-last through a staging copy."""


def applies(x_shape, w_shape, stride: int, pad: int) -> bool:
    """True for a 3x3, stride-1, pad-1 convolution with even output height and width."""
    h, w = x_shape[2], x_shape[3]
    return (tuple(w_shape[2:]) == (3, 3) and stride == 1 and pad == 1
            and h % TILE == 0 and w % TILE == 0)


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


def _input_pass(a, axis, out):
    """B^T along ``axis`` of ``a``, for tiles that start every 2 samples: with
    d_k the samples k = 0..3 of each tile, out[0..3] = d0 - d2, d1 + d2,
    d2 - d1, d1 - d3."""
    xp = array_module(a)
    n = (a.shape[axis] - 2) // TILE
    d = [_along(a, axis, slice(k, k + TILE * n, TILE)) for k in range(4)]
    xp.subtract(d[0], d[2], out=out[0])
    xp.add(d[1], d[2], out=out[1])
    xp.subtract(d[2], d[1], out=out[2])
    xp.subtract(d[1], d[3], out=out[3])


def transform_input(x, dtype):
    """B^T d B for every 4x4 input tile: x (n, C, H, W) -> V (16, P, C), with the
    P = (H/2)(W/2)n tiles ordered (tile row, tile column, image).

    The transforms work channels-last, on a zero-padded (H+2, W+2, n, C) copy,
    so that every pass is a long contiguous vector operation: the row pass
    writes (4, H/2, W+2, n, C), the column pass the 16 tile positions."""
    xp = array_module(x)
    n, c, h, w = x.shape
    th, tw = h // TILE, w // TILE
    xpad = xp.empty((h + 2, w + 2, n, c), dtype=dtype)
    for border in (xpad[0], xpad[-1], xpad[1:-1, 0], xpad[1:-1, -1]):
        border[...] = 0
    _channels_last(x, xpad[1:h + 1, 1:w + 1])
    rows = xp.empty((4, th, w + 2, n, c), dtype=dtype)
    _input_pass(xpad, 0, rows)
    v = xp.empty((4, 4, th, tw, n, c), dtype=dtype)
    _input_pass(rows, 2, v.transpose(1, 0, 2, 3, 4, 5))
    return v.reshape(16, th * tw * n, c)


G = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))
"""The kernel transform: U = G g G^T turns a 3x3 kernel g into a 4x4 tile."""


def _kernel_matrix(xp, dtype):
    """G (x) G, (16, 9): U[a, b] = sum_ij G[a, i] G[b, j] g[i, j] with (a, b) and
    (i, j) flattened row-major."""
    g = xp.asarray(G, dtype=dtype)
    return (g[:, None, :, None] * g[None, :, None, :]).reshape(16, 9)


def transform_weight(w):
    """U = G g G^T for every (output, input) channel pair: w (K, C, 3, 3) -> (16, K, C),
    as the product (G (x) G) @ w^T, its columns split over the CPU pool."""
    xp = array_module(w)
    k, c = w.shape[:2]
    kernel, w2d = _kernel_matrix(xp, w.dtype), w.reshape(k * c, 9)
    u = xp.empty((16, k * c), dtype=w.dtype)
    map_chunks(lambda pairs: xp.matmul(kernel, w2d[pairs].T, out=u[:, pairs]),
               slices(k * c, xp), xp)
    return u.reshape(16, k, c)


def weight_gradient(du):
    """Adjoint of :func:`transform_weight`: dU (16, K, C) -> dw = G^T dU G (K, C, 3, 3)."""
    xp = array_module(du)
    k, c = du.shape[1:]
    kernel, du2d = _kernel_matrix(xp, du.dtype), du.reshape(16, k * c)
    dw = xp.empty((k * c, 9), dtype=du.dtype)
    map_chunks(lambda pairs: xp.matmul(du2d[:, pairs].T, kernel, out=dw[pairs]),
               slices(k * c, xp), xp)
    return dw.reshape(k, c, 3, 3)


def transform_output(m, out):
    """A^T M A: M (16, P, K) -> out (n, K, H, W), written in place.

    A^T's rows are (1, 1, 1, 0) and (0, 1, -1, -1).  The passes run channels-last
    into an (H/2, 2, W/2, 2, n, K) buffer, copied once into ``out``."""
    xp = array_module(m)
    n, k, h, w = out.shape
    th, tw = h // TILE, w // TILE
    m = m.reshape(4, 4, th, tw, n, k)
    rows = xp.empty((TILE, 4, th, tw, n, k), dtype=m.dtype)
    _output_pass(xp, m, rows)
    y = _spare_last(xp, (th, TILE, tw, TILE, n, k), m.dtype)
    _output_pass(xp, rows.transpose(1, 0, 2, 3, 4, 5),
                 [y[:, :, :, j].transpose(1, 0, 2, 3, 4) for j in range(TILE)])
    out[...] = y.reshape(h, w, n, k).transpose(2, 3, 0, 1)


def _output_pass(xp, m, out):
    """out[0] = m0 + m1 + m2, out[1] = m1 - m2 - m3 (A^T along axis 0 of m)."""
    xp.add(m[0], m[1], out=out[0])
    out[0] += m[2]
    xp.subtract(m[1], m[2], out=out[1])
    out[1] -= m[3]


def transform_output_grad(dy):
    """A dY A^T, the adjoint of :func:`transform_output`:
    dy (n, K, H, W) -> dM (16, P, K), tiles ordered as in :func:`transform_input`."""
    xp = array_module(dy)
    n, k, h, w = dy.shape
    th, tw = h // TILE, w // TILE
    d = xp.empty((h, w, n, k), dtype=dy.dtype)
    _channels_last(dy, d)
    d = d.reshape(th, TILE, tw, TILE, n, k)
    rows = xp.empty((4, th, tw, TILE, n, k), dtype=dy.dtype)
    _output_adjoint(xp, d[:, 0], d[:, 1], rows)
    dm = xp.empty((4, 4, th, tw, n, k), dtype=dy.dtype)
    _output_adjoint(xp, rows[:, :, :, 0], rows[:, :, :, 1], dm.transpose(1, 0, 2, 3, 4, 5))
    return dm.reshape(16, th * tw * n, k)


def _output_adjoint(xp, y0, y1, out):
    """A applied to the pair (y0, y1): y0, y0 + y1, y0 - y1, -y1."""
    out[0] = y0
    xp.add(y0, y1, out=out[1])
    xp.subtract(y0, y1, out=out[2])
    xp.negative(y1, out=out[3])


def _along(a, axis, index):
    """a[..., index, ...] with ``index`` on ``axis``."""
    full = [slice(None)] * a.ndim
    full[axis] = index
    return a[tuple(full)]


def _input_adjoint(xp, g, axis, out):
    """Adjoint of :func:`_input_pass` with the padding dropped: g[0..3] (one entry
    per tile along ``axis``) -> out (2 samples per tile along ``axis``).

    B^T's adjoint gives each tile's samples d0 = g0, d1 = g1 - g2 + g3,
    d2 = g1 + g2 - g0, d3 = -g3; tiles overlap by two samples, so unpadded
    sample 2j is d1 of tile j plus d3 of tile j-1, and sample 2j+1 is d2 of
    tile j plus d0 of tile j+1 (the samples of the zero padding are dropped)."""
    even = _along(out, axis, slice(0, None, TILE))
    odd = _along(out, axis, slice(1, None, TILE))
    xp.subtract(g[1], g[2], out=even)
    even += g[3]
    shifted = _along(even, axis, slice(1, None))
    shifted -= _along(g[3], axis, slice(None, -1))
    xp.add(g[1], g[2], out=odd)
    odd -= g[0]
    shifted = _along(odd, axis, slice(None, -1))
    shifted += _along(g[0], axis, slice(1, None))


def input_gradient(dv, out):
    """Adjoint of :func:`transform_input`: B dV B^T for every tile, added where
    tiles overlap: dV (16, P, C) -> out (n, C, H, W), written in place."""
    xp = array_module(dv)
    n, c, h, w = out.shape
    th, tw = h // TILE, w // TILE
    dv = dv.reshape(4, 4, th, tw, n, c)
    cols = xp.empty((4, th, w, n, c), dtype=dv.dtype)
    _input_adjoint(xp, dv.transpose(1, 0, 2, 3, 4, 5), 2, cols)
    dx = _spare_last(xp, (h, w, n, c), dv.dtype)
    _input_adjoint(xp, cols, 0, dx)
    out[...] = dx.transpose(2, 3, 0, 1)


def conv_chunk(x, u, out):
    """One chunk of images: out (n, K, H, W) = A^T [U V] A with V from x (n, C, H, W)
    and U (16, K, C) = :func:`transform_weight` of the kernel."""
    xp = array_module(x, u)
    v = transform_input(x, u.dtype)
    transform_output(xp.matmul(v, u.transpose(0, 2, 1)), out)


def backward_chunk(x, dy, u, dx):
    """One chunk's backward, through the transposed algorithm: dM = A dY A^T,
    dU = dM^T V (returned, this chunk's term; :func:`weight_gradient` of the sum
    is dw) and, unless ``dx`` is None, dx = B (dM U) B^T added over tiles."""
    xp = array_module(x, dy, u)
    dm = transform_output_grad(dy.astype(u.dtype, copy=False))
    if dx is not None:
        input_gradient(xp.matmul(dm, u), dx)
    return xp.matmul(dm.transpose(0, 2, 1), transform_input(x, u.dtype))
