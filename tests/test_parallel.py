"""The fast engine's CPU pool (diet_np/fast/parallel.py): same results on one worker
or several, reproducible run to run, OpenBLAS's thread count restored."""
import types

import numpy as np
import pytest
from conftest import with_thresholds

from diet_np import settings
from diet_np.architectures import vgg
from diet_np.backend import default_rng
from diet_np.engine import Engine
from diet_np.fast import parallel
from diet_np.ops import softmax_cross_entropy


def _gradients(workers):
    net = vgg([8, "A", 16, "A"], [32], num_classes=4, input_shape=(3, 32, 32),
              dropout={"conv": 0.1, "fc": 0.2})
    params = net.init_params(0)
    with_thresholds(params, 0.2)
    x = np.random.default_rng(1).normal(size=(12, 3, 32, 32)).astype(np.float32)
    y = np.arange(12) % 4
    logits, trace = net.forward(params, x, train=True, T=4, rng=default_rng(np, 2),
                                engine=Engine("fast", threads=workers))
    assert trace.engine.threads == workers
    assert all(float(c) > 0 for c in trace.spike_counts.values())
    return net.backward(params, softmax_cross_entropy(logits, y)[1], trace)


def test_several_workers_agree_with_one_and_with_themselves():
    one = _gradients(1)
    three = _gradients(3)
    again = _gradients(3)
    for k in one:
        np.testing.assert_array_equal(three[k], again[k], err_msg=k)     # reproducible
        np.testing.assert_allclose(three[k], one[k], rtol=1e-4, atol=1e-6, err_msg=k)


@pytest.mark.parametrize("workers", [1, 2, 3, 8])
def test_slices_cover_the_range_once(workers):
    with parallel.pool_scope(np, workers):
        for n in (1, 2, 7, 100):
            covered = [i for s in parallel.slices(n) for i in range(n)[s]]
            assert covered == list(range(n))
            assert len(parallel.slices(n)) == min(workers, n)
        assert len(parallel.slices(100, xp=None)) == 1          # not NumPy: no pool


def test_workers_default_to_the_environment_outside_a_scope(monkeypatch):
    monkeypatch.setenv(settings.THREADS, "5")
    assert parallel.num_workers() == 5
    with parallel.pool_scope(np, 2):
        assert parallel.num_workers() == 2
    assert parallel.num_workers() == 5
    monkeypatch.setenv(settings.THREADS, "two")
    with pytest.raises(ValueError, match="DIET_NP_THREADS must be a whole number >= 1; got 'two'"):
        parallel.num_workers()


@pytest.mark.parametrize("workers", [1, 2])
def test_blas_threads_restored_after_a_pass(workers):
    """One BLAS thread inside a pass whatever the pool's size (with one worker, BLAS
    threads spun on a busy machine and slowed a step four times)."""
    lib = parallel.openblas()
    if lib is None:
        pytest.skip("NumPy is not linked to OpenBLAS here")
    before = lib.threads
    lib.set_threads(2)
    try:
        with parallel.pool_scope(np, workers):
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


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_sum_in_order_is_the_same_on_any_pool(workers):
    rng = np.random.default_rng(5)
    terms = [rng.normal(size=(7, 3, 2)).astype(np.float32) * 10.0 ** k for k in range(4)]
    expected = ((terms[0] + terms[1]) + terms[2]) + terms[3]
    with parallel.pool_scope(np, workers):
        total = parallel.sum_in_order([t.copy() for t in terms])
    np.testing.assert_array_equal(total, expected)
