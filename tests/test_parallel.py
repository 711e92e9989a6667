"""The CPU pool (diet_np/parallel.py): same results on one worker or several,
reproducible run to run, OpenBLAS's thread count restored."""
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
