"""The CPU pool (diet_np/parallel.py): same results on one worker or several,
reproducible run to run, OpenBLAS's thread count restored."""
import types

import numpy as np
import pytest
from conftest import with_thresholds

from diet_np import parallel
from diet_np.architectures import vgg
from diet_np.backend import default_rng
from diet_np.ops import softmax_cross_entropy


def _gradients(workers, monkeypatch):
    monkeypatch.setenv(parallel.ENV_THREADS, str(workers))
    net = vgg([8, "A", 16, "A"], [32], num_classes=4, input_shape=(3, 32, 32),
              dropout={"conv": 0.1, "fc": 0.2})
    params = net.init_params(0)
    with_thresholds(params, 0.2)
    x = np.random.default_rng(1).normal(size=(12, 3, 32, 32)).astype(np.float32)
    y = np.arange(12) % 4
    logits, trace = net.forward(params, x, train=True, T=4, rng=default_rng(np, 2))
    assert all(float(c) > 0 for c in trace.spike_counts.values())
    return net.backward(params, softmax_cross_entropy(logits, y)[1], trace)


def test_several_workers_agree_with_one_and_with_themselves(monkeypatch):
    one = _gradients(1, monkeypatch)
    three = _gradients(3, monkeypatch)
    again = _gradients(3, monkeypatch)
    for k in one:
        np.testing.assert_array_equal(three[k], again[k], err_msg=k)     # reproducible
        np.testing.assert_allclose(three[k], one[k], rtol=1e-4, atol=1e-6, err_msg=k)


@pytest.mark.parametrize("workers", [1, 2, 3, 8])
def test_slices_cover_the_range_once(workers, monkeypatch):
    monkeypatch.setenv(parallel.ENV_THREADS, str(workers))
    for n in (1, 2, 7, 100):
        covered = [i for s in parallel.slices(n) for i in range(n)[s]]
        assert covered == list(range(n))
        assert len(parallel.slices(n)) == min(workers, n)
    assert len(parallel.slices(100, xp=None)) == 1          # not NumPy: no pool


def test_bad_thread_count_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(parallel.ENV_THREADS, "two")
    with pytest.raises(ValueError, match="DIET_NP_THREADS must be a whole number >= 1; got 'two'"):
        parallel.num_workers()


def test_blas_threads_restored_after_a_pass(monkeypatch):
    lib = parallel.openblas()
    if lib is None:
        pytest.skip("NumPy is not linked to OpenBLAS here")
    before = lib.threads
    lib.set_threads(2)
    try:
        monkeypatch.setenv(parallel.ENV_THREADS, "2")
        with parallel.pool_scope(np):
            assert lib.threads == 1
            with parallel.single_threaded_blas():
                assert lib.threads == 1
            assert lib.threads == 1
        assert lib.threads == 2
    finally:
        lib.set_threads(before)


def test_blocks_cut_a_workers_share():
    assert parallel.blocks(slice(3, 10), 20, 3) == [slice(3, 6), slice(6, 9), slice(9, 10)]
    assert parallel.blocks(slice(0, 0), 0, 3) == []
    cupy_like = types.SimpleNamespace(__name__="cupy")
    assert parallel.blocks(slice(3, 10), 20, 3, cupy_like) == [slice(3, 10)]


@pytest.mark.parametrize("constant", [False, True])
def test_lif_in_small_blocks_equals_one_block(constant, monkeypatch):
    """The CPU walks a LIF layer's neurons in blocks: the same potentials, spikes and
    current gradients, and the same leak/threshold sums up to rounding."""
    from diet_np import lif
    rng = np.random.default_rng(3)
    T = 4
    current = rng.normal(0.6, 0.5, size=(1 if constant else T, 3, 50))
    dout = rng.normal(size=(T, 3, 50))
    results = []
    for block in (1 << 20, 7):
        monkeypatch.setattr(lif, "NEURON_BLOCK", block)
        out, cache = lif.lif_forward(current, np.array(0.9), np.array(0.7), T)
        results.append((out, cache.u, cache.spikes) + lif.lif_backward(dout, cache))
    whole, blocked = results
    for a, b in zip(whole[:4], blocked[:4]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(whole[4:], blocked[4:], rtol=1e-12)


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_sum_in_order_is_the_same_on_any_pool(workers, monkeypatch):
    monkeypatch.setenv(parallel.ENV_THREADS, str(workers))
    rng = np.random.default_rng(5)
    terms = [rng.normal(size=(7, 3, 2)).astype(np.float32) * 10.0 ** k for k in range(4)]
    expected = ((terms[0] + terms[1]) + terms[2]) + terms[3]
    total = parallel.sum_in_order([t.copy() for t in terms])
    np.testing.assert_array_equal(total, expected)


def test_dropout_on_the_pool_is_the_plain_product(monkeypatch):
    from diet_np import ops
    monkeypatch.setenv(parallel.ENV_THREADS, "2")
    rng = np.random.default_rng(6)
    x = rng.normal(size=(3, 5, 4)).astype(np.float32)
    mask = ops.dropout_mask((5, 4), 0.3, rng, np.float32)
    np.testing.assert_array_equal(ops.dropout_forward(x, mask)[0], x * mask)
    np.testing.assert_array_equal(ops.dropout_backward(x[0], mask), x[0] * mask)
