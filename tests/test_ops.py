"""Every op against a slow, obviously-correct loop version and against finite differences
(the reference ops, and the fast convolution paths; tests/test_fast.py holds the other
fast ops to the reference)."""
import types

import numpy as np
import pytest

from conftest import CONV_CHOICES
from reference_snn import conv_loops

from diet_np import fast, ops
from diet_np.backend import get_xp, to_host
from diet_np.engine import Engine, get_engine
from diet_np.fast import conv, parallel, winograd
from diet_np.gradcheck import numerical_gradient, relative_error
from diet_np.readout import readout_backward, readout_forward
from diet_np.surrogates import SURROGATES

TOL = 1e-7


def naive_pool(x, k, reduce):
    n, c, h, w = x.shape
    out = np.zeros((n, c, h // k, w // k))
    for i in range(h // k):
        for j in range(w // k):
            out[:, :, i, j] = reduce(x[:, :, i * k:(i + 1) * k, j * k:(j + 1) * k], axis=(2, 3))
    return out


def loss_of(out_fn, dout):
    """Scalar <out_fn(), dout>, whose gradient w.r.t. the inputs is the op's backward of dout."""
    return lambda: float(np.sum(out_fn() * dout))


@pytest.mark.parametrize("stride,pad,k", [(1, 1, 3), (2, 1, 3), (1, 0, 3), (2, 0, 1), (1, 2, 5)])
def test_conv_matches_naive_loops(stride, pad, k):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 7, 6))
    w = rng.normal(size=(4, 3, k, k))
    out, _ = ops.conv2d_forward(x, w, stride, pad)
    np.testing.assert_allclose(out, conv_loops(x, w, stride, pad), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("stride,pad", [(1, 1), (2, 1), (2, 0)])
def test_conv_gradients(stride, pad):
    rng = np.random.default_rng(1)
    x, w = rng.normal(size=(2, 3, 5, 5)), rng.normal(size=(4, 3, 3, 3))
    out, cache = ops.conv2d_forward(x, w, stride, pad)
    dout = rng.normal(size=out.shape)
    dx, dw = ops.conv2d_backward(dout, cache)
    f = loss_of(lambda: ops.conv2d_forward(x, w, stride, pad)[0], dout)
    assert relative_error(dx, numerical_gradient(f, x)) < TOL
    assert relative_error(dw, numerical_gradient(f, w)) < TOL
    assert ops.conv2d_backward(dout, cache, need_dx=False)[0] is None


@pytest.mark.parametrize("algorithm", CONV_CHOICES)
def test_3x3_conv_by_each_algorithm(algorithm, monkeypatch):
    """Each fast algorithm of a 3x3 stride-1 pad-1 convolution against the loops and
    finite differences; Winograd's path, with the tile size asked for, is the one
    that ran when it is chosen, and its cache says so."""
    positions = []
    monkeypatch.setattr(winograd, "conv_chunk",
                        lambda x, u, out, _f=winograd.conv_chunk:
                        positions.append(u.shape[0]) or _f(x, u, out))
    rng = np.random.default_rng(3)
    x, w = rng.normal(size=(3, 2, 8, 4)), rng.normal(size=(5, 2, 3, 3))
    out, cache = fast.conv2d_forward(x, w, 1, 1, algorithm)
    np.testing.assert_allclose(out, conv_loops(x, w, 1, 1), rtol=1e-12, atol=1e-12)
    dout = rng.normal(size=out.shape)
    dx, dw = fast.conv2d_backward(dout, cache)
    f = loss_of(lambda: fast.conv2d_forward(x, w, 1, 1, algorithm)[0], dout)
    assert relative_error(dx, numerical_gradient(f, x)) < TOL
    assert relative_error(dw, numerical_gradient(f, w)) < TOL
    expected = {"im2col": set(), "winograd": {16}, "winograd-4x4": {36}}[algorithm]
    assert set(positions) == expected
    assert cache.tile == {"im2col": 0, "winograd": 2, "winograd-4x4": 4}[algorithm]


def test_conv_backward_follows_the_algorithm_its_forward_ran(monkeypatch):
    """The backward reads the forward's choice from the cache: a different
    environment at backward time changes nothing."""
    rng = np.random.default_rng(11)
    x, w = rng.normal(size=(2, 32, 8, 8)), rng.normal(size=(4, 32, 3, 3))
    out, cache = fast.conv2d_forward(x, w, 1, 1, "winograd")
    dout = rng.normal(size=out.shape)
    expected = fast.conv2d_backward(dout, cache)
    monkeypatch.setenv("DIET_NP_CONV", "im2col")
    monkeypatch.setattr(winograd, "WIDE_CHANNELS", 1)
    for a, b in zip(fast.conv2d_backward(dout, cache), expected):
        np.testing.assert_array_equal(a, b)
    assert cache.tile == 2


def test_tile_size_by_channels_and_map():
    """F(4x4, 3x3) for wide layers whose maps divide by 4, F(2x2, 3x3) otherwise."""
    wide = winograd.WIDE_CHANNELS
    assert winograd.tile_size((8, wide, 8, 8)) == winograd.tile_size((8, wide, 32, 16)) == 4
    assert winograd.tile_size((8, wide, 4, 4)) == 2                # one tile per image
    assert winograd.tile_size((8, wide, 2, 2)) == 2
    assert winograd.tile_size((8, wide, 8, 6)) == 2
    assert winograd.tile_size((8, wide - 1, 8, 8)) == 2


def test_winograd_on_spikes_in_float32_matches_im2col(monkeypatch):
    """A VGG-sized layer fed with spikes, in several chunks: Winograd agrees with
    im2col to float32 rounding (F(2x2, 3x3): 5 digits of the largest value;
    F(4x4, 3x3), with its larger coefficients: 4); odd map sizes fall back to im2col."""
    rng = np.random.default_rng(4)
    x = rng.random((6, 32, 8, 8)) < 0.2
    w = (rng.normal(size=(48, 32, 3, 3)) * 0.1).astype(np.float32)
    dout = rng.normal(size=(6, 48, 8, 8)).astype(np.float32)
    monkeypatch.setattr(conv, "CHUNK_COLUMNS", 64)                 # one image a chunk
    monkeypatch.setattr(conv, "CHUNK_BYTES", 0)
    assert len(conv._chunks(x, 3, 3, 1, 1, w.dtype)) == 6
    results = {}
    for algorithm in CONV_CHOICES:
        out, cache = fast.conv2d_forward(x, w, 1, 1, algorithm)
        results[algorithm] = (out,) + fast.conv2d_backward(dout, cache)
    for key, digits in (("winograd", 5), ("winograd-4x4", 4)):
        for a, b in zip(results["im2col"], results[key]):
            assert a.dtype == b.dtype == np.float32
            scale = float(np.abs(a).max())
            np.testing.assert_allclose(b, a, rtol=10.0 ** -(digits - 1),
                                       atol=10.0 ** -digits * scale, err_msg=str(key))
    monkeypatch.undo()                                      # auto: by input channels and device
    assert not winograd.applies((6, 32, 7, 8), w.shape, 1, 1)
    assert not winograd.applies(x.shape, w.shape, 2, 1)
    assert conv.algorithm(x.shape, w.shape, 1, 1, np) == 2
    assert conv.algorithm((6, 3, 8, 8), (48, 3, 3, 3), 1, 1, np) == 0     # layer 1: im2col
    assert conv.algorithm(x.shape, w.shape, 1, 1, types.SimpleNamespace(__name__="cupy")) == 0


def test_cpu_chunks_widen_for_short_columns():
    """Chunks of whole images with CHUNK_COLUMNS output positions, or as many as fit
    in CHUNK_BYTES when the columns are short (layer 1), a multiple of the workers
    in number where the batch allows."""
    with parallel.pool_scope(np, 2):
        _check_chunks()


def _check_chunks():
    f32 = np.dtype(np.float32)
    first = np.empty((32, 3, 32, 32), np.float32)                  # 27 rows: 2 MiB / 108 B
    assert conv._chunks(first, 3, 3, 1, 1, f32) == [slice(0, 16), slice(16, 32)]
    wide = np.empty((32, 64, 32, 32), np.float32)                  # 576 rows: 2048 columns
    assert conv._chunks(wide, 3, 3, 1, 1, f32) == [slice(2 * i, 2 * i + 2) for i in range(16)]
    odd = np.empty((5, 64, 32, 32), np.float32)
    assert conv._chunks(odd, 3, 3, 1, 1, f32) == [slice(0, 2), slice(2, 4), slice(4, 5)]


@pytest.mark.parametrize("m", [2, 4])
def test_winograd_transforms_and_their_adjoints(m):
    """Each backward transform is the adjoint of its forward one: <T a, b> = <a, T' b>."""
    rng = np.random.default_rng(5)
    x, w = rng.normal(size=(2, 3, 8, 4)), rng.normal(size=(5, 3, 3, 3))
    v = winograd.transform_input(x, np.float64, m)
    assert v.shape == ((m + 2) ** 2, 2 * 8 * 4 // m ** 2, 3)
    dv = rng.normal(size=v.shape)
    dx = np.empty_like(x)
    winograd.input_gradient(dv, dx)
    assert np.isclose(np.vdot(v, dv), np.vdot(x, dx), rtol=1e-12)
    u = winograd.transform_weight(w, m)
    du = rng.normal(size=u.shape)
    assert np.isclose(np.vdot(u, du), np.vdot(w, winograd.weight_gradient(du)), rtol=1e-12)
    mt = rng.normal(size=((m + 2) ** 2, v.shape[1], 5))
    y = np.empty((2, 5, 8, 4))
    winograd.transform_output(mt, y)
    dy = rng.normal(size=y.shape)
    assert np.isclose(np.vdot(y, dy), np.vdot(mt, winograd.transform_output_grad(dy, m)),
                      rtol=1e-12)


def test_unknown_conv_algorithm_is_named(monkeypatch):
    with pytest.raises(ValueError, match="conv must be one of auto, im2col, winograd, "
                                         "winograd-4x4; got 'fft'"):
        Engine("fast", conv="fft")
    monkeypatch.setenv("DIET_NP_CONV", "fft")
    with pytest.raises(ValueError, match="DIET_NP_CONV must be one of auto, im2col, winograd, "
                                         "winograd-4x4; got 'fft'"):
        get_engine("fast")
    assert get_engine(Engine("fast", conv="im2col")).conv == "im2col"   # an explicit choice wins


def test_im2col_col2im_are_adjoint():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 3, 6, 5))
    col = ops.im2col(x, 3, 3, 2, 1)
    c = rng.normal(size=col.shape)
    assert np.isclose(np.sum(col * c), np.sum(x * ops.col2im(c, x.shape, 3, 3, 2, 1)))


def test_linear_gradients():
    rng = np.random.default_rng(3)
    x, w = rng.normal(size=(5, 7)), rng.normal(size=(4, 7))
    out, cache = ops.linear_forward(x, w)
    np.testing.assert_allclose(out, x @ w.T)
    dout = rng.normal(size=out.shape)
    dx, dw = ops.linear_backward(dout, cache)
    f = loss_of(lambda: ops.linear_forward(x, w)[0], dout)
    assert relative_error(dx, numerical_gradient(f, x)) < TOL
    assert relative_error(dw, numerical_gradient(f, w)) < TOL


@pytest.mark.parametrize("k", [2, 4])
def test_avgpool_matches_naive_and_gradient(k):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 3, 8, 8))
    out, cache = ops.avgpool_forward(x, k)
    np.testing.assert_allclose(out, naive_pool(x, k, np.mean))
    dout = rng.normal(size=out.shape)
    f = loss_of(lambda: ops.avgpool_forward(x, k)[0], dout)
    assert relative_error(ops.avgpool_backward(dout, cache), numerical_gradient(f, x)) < TOL


@pytest.mark.parametrize("k", [2, 3])
def test_avgpool_of_boolean_spikes_counts_exactly(k):
    """Spikes arrive as booleans: counted in bytes, the means are float32 and equal
    to pooling the same spikes as floats."""
    spikes = np.random.default_rng(5).random((3, 4, 6 * k, 6 * k)) < 0.4
    out, cache = fast.avgpool_forward(spikes, k)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, naive_pool(spikes.astype(np.float32), k, np.mean))
    assert cache == (spikes.shape, k)


def test_maxpool_matches_naive_and_gradient():
    rng = np.random.default_rng(5)
    x = rng.permutation(2 * 3 * 8 * 8).reshape(2, 3, 8, 8) * 0.01  # distinct: no ties, no kinks
    out, cache = ops.maxpool_forward(x, 2)
    np.testing.assert_allclose(out, naive_pool(x, 2, np.max))
    dout = rng.normal(size=out.shape)
    f = loss_of(lambda: ops.maxpool_forward(x, 2)[0], dout)
    assert relative_error(ops.maxpool_backward(dout, cache), numerical_gradient(f, x)) < TOL


def test_maxpool_tie_goes_to_first_element():
    x = np.ones((1, 1, 2, 2))
    out, cache = ops.maxpool_forward(x, 2)
    dx = ops.maxpool_backward(np.ones((1, 1, 1, 1)), cache)
    assert dx.tolist() == [[[[1.0, 0.0], [0.0, 0.0]]]]


def test_dropout_mask_held_over_time_and_gradient():
    rng = np.random.default_rng(6)
    mask = ops.dropout_mask((4, 5), 0.5, np.random.default_rng(0), np.float64)
    assert set(np.unique(mask)) <= {0.0, 2.0}
    x = rng.normal(size=(3, 4, 5))                       # (T, B, F)
    out, cache = ops.dropout_forward(x, mask)
    for t in range(3):
        np.testing.assert_array_equal(out[t] == 0, np.broadcast_to(mask == 0, (4, 5)) | (x[t] == 0))
    dout = rng.normal(size=x.shape)
    f = loss_of(lambda: ops.dropout_forward(x, mask)[0], dout)
    assert relative_error(ops.dropout_backward(dout, cache), numerical_gradient(f, x)) < TOL
    with pytest.raises(ValueError, match="dropout probability"):
        ops.dropout_mask((2,), 1.0, np.random.default_rng(0), np.float64)


def test_relu_gradient():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(4, 6))
    x[np.abs(x) < 0.05] = 0.5                           # keep away from the kink
    out, cache = ops.relu_forward(x)
    dout = rng.normal(size=x.shape)
    f = loss_of(lambda: ops.relu_forward(x)[0], dout)
    assert relative_error(ops.relu_backward(dout, cache), numerical_gradient(f, x)) < TOL


def test_softmax_cross_entropy_value_and_gradient():
    rng = np.random.default_rng(8)
    logits, labels = rng.normal(size=(5, 4)), np.array([0, 3, 1, 1, 2])
    loss, dlogits = ops.softmax_cross_entropy(logits, labels)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert np.isclose(float(loss), -np.mean(np.log(p[np.arange(5), labels])))
    f = lambda: ops.softmax_cross_entropy(logits, labels)[0]
    assert relative_error(dlogits, numerical_gradient(f, logits)) < TOL
    assert np.isclose(float(ops.softmax_cross_entropy(np.zeros((3, 10)), np.zeros(3, int))[0]),
                      np.log(10))


def test_readout_accumulates_and_gradient():
    rng = np.random.default_rng(9)
    x, w = rng.normal(size=(4, 3, 6)), rng.normal(size=(5, 6))   # (T, B, F)
    logits, cache = readout_forward(x, w)
    np.testing.assert_allclose(logits, sum(x[t] @ w.T for t in range(4)))   # Eq. 6
    dlogits = rng.normal(size=logits.shape)
    dx, dw = readout_backward(dlogits, cache)
    f = loss_of(lambda: readout_forward(x, w)[0], dlogits)
    assert relative_error(dx, numerical_gradient(f, x)) < TOL
    assert relative_error(dw, numerical_gradient(f, w)) < TOL


@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_surrogate_is_derivative_of_its_primitive(name):
    sur = SURROGATES[name]()
    z = np.linspace(-2.5, 2.5, 101) + 0.0123             # avoid the corners at -1, 0, 1
    h = 1e-6
    numeric = (sur.primitive(z + h) - sur.primitive(z - h)) / (2 * h)
    assert relative_error(sur.grad(z), numeric) < 1e-8


def test_triangle_is_eq8():
    sur = SURROGATES["triangle"]()
    z = np.array([-1.5, -1.0, -0.5, 0.0, 0.25, 1.0, 2.0])
    np.testing.assert_allclose(sur.grad(z), 0.3 * np.maximum(0, 1 - np.abs(z)))


@pytest.mark.parametrize("module", [ops, fast])
def test_ops_identical_on_strict_device(module):
    xs = get_xp("strict")
    rng = np.random.default_rng(10)
    x, w = rng.normal(size=(2, 3, 8, 8)).astype(np.float32), rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    with parallel.pool_scope(np, 1):               # the same chunks as on the strict device
        out, cache = module.conv2d_forward(x, w, 1, 1)
        dout = rng.normal(size=out.shape).astype(np.float32)
        expected = module.conv2d_backward(dout, cache)
    sout, scache = module.conv2d_forward(xs.asarray(x), xs.asarray(w), 1, 1)
    np.testing.assert_array_equal(to_host(sout), out)
    for a, b in zip(module.conv2d_backward(xs.asarray(dout), scache), expected):
        np.testing.assert_array_equal(to_host(a), b)
    for fwd, bwd in [(module.avgpool_forward, module.avgpool_backward),
                     (ops.maxpool_forward, ops.maxpool_backward)]:
        o, c = fwd(x)
        so, sc = fwd(xs.asarray(x))
        np.testing.assert_array_equal(to_host(so), o)
        np.testing.assert_array_equal(to_host(bwd(xs.asarray(o), sc)), bwd(o, c))


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match="channels"):
        ops.conv2d_forward(np.zeros((1, 2, 4, 4)), np.zeros((3, 3, 3, 3)))
    with pytest.raises(ValueError, match="divisible"):
        ops.avgpool_forward(np.zeros((1, 1, 5, 4)))
    with pytest.raises(ValueError, match="linear"):
        ops.linear_forward(np.zeros((2, 3)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="labels"):
        ops.softmax_cross_entropy(np.zeros((2, 3)), np.zeros(3, int))
