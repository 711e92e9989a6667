"""Every piece of the fast engine (diet_np/fast/) against the reference it replaces:
several blocks, several workers, odd sizes, float32 and float64."""
import numpy as np
import pytest

from diet_np import fast, lif, ops
from diet_np.fast import adam, parallel
from diet_np.fast import lif as fast_lif
from diet_np.optim import Adam
from diet_np.surrogates import ArcTan, Triangle

DTYPES = [np.float32, np.float64]
WORKERS = [1, 3]


def rtol(dtype):
    """For sums whose order differs (the leak and threshold gradients, dW)."""
    return 1e-4 if dtype == np.float32 else 1e-12


def lif_case(dtype, T, constant, neurons=(3, 53), seed=0):
    rng = np.random.default_rng(seed)
    current = rng.normal(0.5, 0.6, size=((1 if constant else T),) + neurons).astype(dtype)
    leak = np.array(rng.uniform(0.6, 1.0), dtype)
    threshold = np.array(rng.uniform(0.3, 0.9), dtype)
    dout = rng.normal(size=(T,) + neurons).astype(dtype)
    return current, leak, threshold, dout


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("workers", WORKERS)
@pytest.mark.parametrize("block", [1 << 16, 7])
@pytest.mark.parametrize("constant", [False, True])
@pytest.mark.parametrize("surrogate", [Triangle(), ArcTan()])
def test_lif_equals_the_reference(dtype, workers, block, constant, surrogate, monkeypatch):
    """Potentials, spikes and dI bit for bit (the same operations per neuron and
    step, dI of a constant current summed from t = T down in both); the leak and
    threshold gradients to rounding."""
    monkeypatch.setattr(fast_lif, "NEURON_BLOCK", block)        # 7: 23 blocks of 159 neurons
    T = 5
    current, leak, threshold, dout = lif_case(dtype, T, constant)
    out, cache = lif.lif_forward(current, leak, threshold, T, surrogate=surrogate)
    dcurrent, dleak, dthreshold = lif.lif_backward(dout, cache)
    assert 0 < cache.spikes.mean() < 1
    with parallel.pool_scope(np, workers):
        fout, fcache = fast.lif_forward(current.copy(), leak, threshold, T, surrogate=surrogate)
        fdcurrent, fdleak, fdthreshold = fast.lif_backward(dout.copy(), fcache)
    for a, b in ((fout, out), (fcache.u, cache.u), (fcache.spikes, cache.spikes),
                 (fdcurrent, dcurrent)):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose([float(fdleak), float(fdthreshold)],
                               [float(dleak), float(dthreshold)], rtol=rtol(dtype))
    assert fdleak.dtype == fdthreshold.dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
def test_lif_smooth_mode_equals_the_reference(dtype):
    T = 4
    current, leak, threshold, dout = lif_case(dtype, T, False, seed=1)
    out, cache = lif.lif_forward(current, leak, threshold, T, smooth=True)
    fout, fcache = fast.lif_forward(current, leak, threshold, T, smooth=True, compact=True)
    np.testing.assert_array_equal(fout, out)                     # smooth: floats, not spikes
    for a, b in zip(fast.lif_backward(dout, fcache)[:1], lif.lif_backward(dout, cache)[:1]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
def test_u_greater_than_v_is_eq3_4_exactly(dtype):
    """The fast forward fires on u > v; Eq. 3-4 (the reference) say u / v - 1 > 0.
    For v > 0 the two agree bit for bit, also one rounding step from the threshold."""
    rng = np.random.default_rng(0)
    thresholds = np.concatenate([rng.uniform(1e-3, 10, 300), 2.0 ** np.arange(-10, 5),
                                 [0.1, 0.3, 1 / 3, 0.7]]).astype(dtype)
    for v in thresholds:
        up, down = np.nextafter(v, dtype(np.inf)), np.nextafter(v, dtype(-np.inf))
        u = np.concatenate([v * np.array([0.5, 1.0, 1.5, 2.0, 3.0], dtype),
                            [up, down, np.nextafter(up, dtype(np.inf))],
                            v * rng.uniform(0.9, 1.1, 50).astype(dtype)]).astype(dtype)
        _, cache = fast.lif_forward(u[None], dtype(1.0), v, 1)   # m^0 = 0, so u^1 = I
        np.testing.assert_array_equal(cache.u[0], u)
        np.testing.assert_array_equal(cache.spikes[0], lif.lif_step(u, 0 * u, 1.0, v)[0])


def test_compact_output_is_the_cached_boolean_spikes():
    """compact=True hands on the cache's boolean spikes (no float copy), equal to the
    reference's float output; smooth mode still sends the float primitive forward."""
    current, leak, threshold, _ = lif_case(np.float32, 4, False, neurons=(3, 5), seed=6)
    floats, _ = lif.lif_forward(current, leak, threshold, T=4)
    spikes, cache = fast.lif_forward(current, leak, threshold, T=4, compact=True)
    assert spikes is cache.spikes and spikes.dtype == bool and floats.dtype == np.float32
    np.testing.assert_array_equal(spikes, floats)
    smooth, _ = fast.lif_forward(current, leak, threshold, T=4, smooth=True, compact=True)
    assert smooth.dtype == np.float32 and not np.isin(smooth, (0.0, 1.0)).all()


@pytest.mark.parametrize("constant", [False, True])
def test_overwrite_reuses_the_callers_arrays_with_the_same_results(constant):
    """overwrite=True: u^t takes the current's memory and dI^t dout's (a constant
    current and a broadcast dout are left alone); every result is unchanged."""
    T = 4
    current, leak, threshold, dout = lif_case(np.float64, T, constant, neurons=(3, 5), seed=8)
    out, cache = fast.lif_forward(current.copy(), leak, threshold, T)
    given = current.copy()
    out_in_place, cache_in_place = fast.lif_forward(given, leak, threshold, T, overwrite=True)
    np.testing.assert_array_equal(out_in_place, out)
    np.testing.assert_array_equal(cache_in_place.u, cache.u)
    assert (cache_in_place.u is given) != constant
    expected = fast.lif_backward(dout.copy(), cache)
    given = dout.copy()
    result = fast.lif_backward(given, cache_in_place, overwrite=True)
    for a, b in zip(result, expected):
        np.testing.assert_array_equal(a, b)
    assert (result[0] is given) != constant
    shared = np.broadcast_to(dout[:1], dout.shape)          # read-only: never written
    assert fast.lif_backward(shared, cache, overwrite=True)[0] is not shared


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("workers", WORKERS)
@pytest.mark.parametrize("algorithm", ["im2col", "winograd", "winograd-4x4"])
@pytest.mark.parametrize("shape,stride,pad", [((5, 32, 8, 12), 1, 1), ((3, 5, 7, 9), 2, 1),
                                              ((4, 6, 9, 9), 1, 0)])
def test_conv_equals_the_reference(dtype, workers, algorithm, shape, stride, pad, monkeypatch):
    """Chunked im2col (the chunks of three images, odd maps, strides) and Winograd
    against the one-product reference: to rounding in float64, to float32's digits
    (F(2x2): 5, F(4x4): 4) in float32.  Boolean spikes give the float results."""
    from diet_np.fast import conv

    monkeypatch.setattr(conv, "CHUNK_BYTES", 0)
    monkeypatch.setattr(conv, "CHUNK_COLUMNS", 1)                 # one image a chunk
    rng = np.random.default_rng(2)
    x = rng.random(shape) < 0.3
    w = (rng.normal(size=(7, shape[1], 3, 3)) * 0.2).astype(dtype)
    out, cache = ops.conv2d_forward(x.astype(dtype), w, stride, pad)
    dout = rng.normal(size=out.shape).astype(dtype)
    expected = (out,) + ops.conv2d_backward(dout, cache)
    with parallel.pool_scope(np, workers):
        fout, fcache = fast.conv2d_forward(x, w, stride, pad, algorithm)
        result = (fout,) + fast.conv2d_backward(dout, fcache)
    winograd = algorithm != "im2col" and stride == 1 and pad == 1
    assert fcache.tile == ({"winograd": 2, "winograd-4x4": 4}[algorithm] if winograd else 0)
    digits = {np.float64: 12, np.float32: {0: 5, 2: 5, 4: 4}[fcache.tile]}[dtype]
    for a, b in zip(result, expected):
        assert a.dtype == b.dtype == dtype
        scale = float(np.abs(b).max())
        np.testing.assert_allclose(a, b, rtol=10.0 ** -(digits - 1), atol=10.0 ** -digits * scale)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("workers", WORKERS)
@pytest.mark.parametrize("spikes", [False, True])
def test_avgpool_equals_the_reference(dtype, workers, spikes):
    """Boolean spikes averaged into the asked dtype, bit for bit for k = 2 (counts
    times 1/4); floats to rounding (the taps are added in another order)."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, 3, 6, 10)).astype(dtype)
    if spikes:
        x = x > 0.3
    out, cache = ops.avgpool_forward(x.astype(dtype), 2)
    dout = rng.normal(size=out.shape).astype(dtype)
    with parallel.pool_scope(np, workers):
        fout, fcache = fast.avgpool_forward(x, 2, dtype)
        fdx = fast.avgpool_backward(dout, fcache)
    assert fout.dtype == dtype
    if spikes:
        np.testing.assert_array_equal(fout, out)
    else:
        np.testing.assert_allclose(fout, out, rtol=rtol(dtype) / 10)
    np.testing.assert_array_equal(fdx, ops.avgpool_backward(dout, cache))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("workers", WORKERS)
def test_dropout_equals_the_reference(dtype, workers):
    rng = np.random.default_rng(6)
    x = rng.random((3, 5, 4)) < 0.5                                # (T, N, F) spikes
    mask = ops.dropout_mask((5, 4), 0.3, rng, dtype)
    dout = rng.normal(size=x.shape).astype(dtype)
    with parallel.pool_scope(np, workers):
        y, _ = fast.dropout_forward(x, mask)
        dx = fast.dropout_backward(dout, mask)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, ops.dropout_forward(x, mask)[0])
    np.testing.assert_array_equal(dx, ops.dropout_backward(dout, mask))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("workers", WORKERS)
def test_linear_equals_the_reference(dtype, workers):
    rng = np.random.default_rng(4)
    x = rng.random((9, 13)) < 0.4
    w = rng.normal(size=(11, 13)).astype(dtype)
    out, cache = ops.linear_forward(x, w)
    dout = rng.normal(size=out.shape).astype(dtype)
    with parallel.pool_scope(np, workers):
        fout, fcache = fast.linear_forward(x, w)
        result = (fout,) + fast.linear_backward(dout, fcache)
    for a, b in zip(result, (out,) + ops.linear_backward(dout, cache)):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=rtol(dtype) / 10)
    assert fast.linear_backward(dout, fcache, need_dx=False)[0] is None


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("workers", WORKERS)
@pytest.mark.parametrize("block", [1 << 16, 5])
@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_equals_the_reference(dtype, workers, block, amsgrad, monkeypatch):
    """Bit for bit: the same passes in the same order (5: one row of a (7, 5)
    weight a block); a 0-d leak goes the same way."""
    monkeypatch.setattr(adam, "UPDATE_BLOCK", block)
    rng = np.random.default_rng(5)
    host = {"conv.weight": rng.normal(size=(7, 5)).astype(dtype),
            "conv.leak": np.array(0.9, dtype)}
    results = {}
    for engine in ("reference", "fast"):
        params = {k: v.copy() for k, v in host.items()}
        opt = Adam(0.01, betas=(0.8, 0.95), weight_decay=0.01, amsgrad=amsgrad, engine=engine)
        grads = np.random.default_rng(6)
        with parallel.pool_scope(np, workers):
            for _ in range(4):
                opt.step(params, {k: grads.normal(size=v.shape).astype(dtype)
                                  for k, v in host.items()})
        results[engine] = params
    for k in host:
        assert results["fast"][k].dtype == dtype
        np.testing.assert_array_equal(results["fast"][k], results["reference"][k], err_msg=k)


def test_unknown_engine_is_named():
    from diet_np.engine import Engine, get_engine

    with pytest.raises(ValueError, match="engine must be one of reference, fast; got 'quick'"):
        get_engine("quick")
    with pytest.raises(ValueError, match="engine must be one of reference, fast; got 'quick'"):
        Adam(0.1, engine="quick")
    with pytest.raises(ValueError, match="threads must be an integer >= 1"):
        Engine("fast", threads=0)
    with pytest.raises(TypeError, match="engine must be"):
        get_engine(3)


def test_make_optimizer_passes_the_engine_to_adam_only():
    from diet_np.optim import make_optimizer

    assert make_optimizer("amsgrad", 0.1, engine="reference").engine == "reference"
    assert make_optimizer("adam", 0.1).engine == "fast"
    make_optimizer("sgd", 0.1, engine="reference")            # one path: nothing to choose
    with pytest.raises(ValueError, match="engine must be one of reference, fast"):
        make_optimizer("sgd", 0.1, engine="slow")
