"""The fused LIF kernels (diet_np/fast/kernels.py) against the reference LIF (diet_np/lif.py).

* On a GPU (``gpu`` mark): the CuPy kernels equal the array-module reference:
  u, spikes and dI exactly (the kernels are compiled without FMA contraction),
  the leak and threshold gradients to rounding; and a whole training step
  gives the same gradients with the engine's ``fused_lif`` on and off.
* Without a GPU: the same CUDA source, compiled by g++ with CUDA's thread
  indices and ``__syncthreads`` emulated by one std::thread per CUDA thread and
  a barrier per block, equals the NumPy reference; and importing diet_np never
  imports CuPy.
"""
import ctypes
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from conftest import with_thresholds

from diet_np import fast
from diet_np.engine import Engine, get_engine
from diet_np.fast import kernels
from diet_np.lif import lif_backward, lif_forward

CASES = [  # (neuron shape, T, constant current)
    ((3, 5), 4, False), ((2, 7, 9, 11), 5, False), ((700,), 3, True), ((2, 6, 8, 8), 5, True),
    ((1,), 1, False),
]


def draw(xp, dtype, shape, T, constant, seed):
    rng = np.random.default_rng(seed)
    current = rng.normal(0.4, 0.6, size=((1 if constant else T),) + shape).astype(dtype)
    leak = np.array(rng.uniform(0.6, 1.0), dtype)
    threshold = np.array(rng.uniform(0.3, 0.9), dtype)
    dout = rng.normal(size=(T,) + shape).astype(dtype)
    return [xp.asarray(a) for a in (current, leak, threshold, dout)]


def tolerance(dtype):
    """For the leak and threshold gradients, sums whose order differs."""
    return 1e-4 if dtype == np.float32 else 1e-12


# --------------------------------------------------------------------------- GPU
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,T,constant", CASES)
def test_fused_kernels_equal_reference_on_gpu(dtype, shape, T, constant):
    import cupy

    current, leak, threshold, dout = draw(cupy, dtype, shape, T, constant, 1)
    out_ref, cache = lif_forward(current, leak, threshold, T)
    grads_ref = lif_backward(dout, cache)

    out, u, spikes = kernels.lif_forward(current, leak, threshold, T)
    assert cupy.array_equal(u, cache.u) and cupy.array_equal(spikes, cache.spikes)
    assert cupy.array_equal(out, out_ref)
    dcurrent, dleak, dthreshold = kernels.lif_backward(dout, u, spikes, leak, threshold,
                                                       0.3, constant)
    assert cupy.array_equal(dcurrent, grads_ref[0])
    np.testing.assert_allclose([float(dleak), float(dthreshold)],
                               [float(grads_ref[1]), float(grads_ref[2])],
                               rtol=tolerance(dtype))


@pytest.mark.gpu
def test_fast_lif_runs_the_fused_kernels_unless_switched_off(monkeypatch):
    import cupy

    current, leak, threshold, dout = draw(cupy, np.float32, (4, 6), 3, False, 2)
    assert kernels.applies(cupy, current)
    launched = []
    monkeypatch.setattr(kernels, "lif_backward",
                        lambda *a, _f=kernels.lif_backward: launched.append(1) or _f(*a))
    fused = fast.lif_backward(dout, fast.lif_forward(current, leak, threshold, 3)[1])
    assert launched
    _, cache = fast.lif_forward(current, leak, threshold, 3, fused=False)
    blocked = fast.lif_backward(dout, cache, fused=False)
    assert len(launched) == 1
    reference = lif_backward(dout, lif_forward(current, leak, threshold, 3)[1])
    for a, b, c in zip(fused, blocked, reference):
        np.testing.assert_allclose(cupy.asnumpy(a), cupy.asnumpy(c), rtol=tolerance(np.float32))
        np.testing.assert_allclose(cupy.asnumpy(b), cupy.asnumpy(c), rtol=tolerance(np.float32))
    for a, b in zip(fused, reference):
        np.testing.assert_allclose(cupy.asnumpy(a), cupy.asnumpy(b), rtol=tolerance(np.float32))


@pytest.mark.gpu
def test_training_step_gradients_equal_with_fused_kernels():
    import cupy

    from diet_np.architectures import vgg
    from diet_np.backend import default_rng, to_device, to_host
    from diet_np.ops import softmax_cross_entropy

    net = vgg([8, "A", 8, "A"], [16], num_classes=4, input_shape=(3, 16, 16),
              dropout={"conv": 0.2, "fc": 0.2})
    params = to_device(net.init_params(0, dtype=np.float64), cupy)
    with_thresholds(params, 0.1)
    x = cupy.asarray(np.random.default_rng(0).normal(size=(5, 3, 16, 16)))
    y = cupy.asarray(np.array([0, 1, 2, 3, 0]))
    grads = {}
    for fused in (False, True):
        logits, trace = net.forward(params, x, train=True, T=4, rng=default_rng(cupy, 3),
                                    check=False, engine=Engine("fast", fused_lif=fused))
        grads[fused] = to_host(net.backward(params, softmax_cross_entropy(logits, y)[1], trace))
    for k in params:
        np.testing.assert_allclose(grads[True][k], grads[False][k], rtol=1e-10, atol=1e-13,
                                   err_msg=k)


# --------------------------------------------------------------------------- CPU
def test_importing_diet_np_does_not_import_cupy():
    code = ("import sys, diet_np.lif, diet_np.fast.kernels, diet_np.network; "
            "sys.exit('cupy' in sys.modules)")
    root = Path(__file__).resolve().parents[1]
    assert subprocess.run([sys.executable, "-c", code], cwd=root).returncode == 0


def test_fused_kernels_are_off_for_numpy():
    assert not kernels.applies(np, np.zeros(3, np.float32))


def test_fused_kernels_are_the_default_on_cupy(monkeypatch):
    """Decided without a GPU: only the module's name and the dtypes matter; the
    engine's fused_lif is on unless DIET_NP_FUSED_LIF=0 (or it says otherwise)."""
    cupy_like = types.SimpleNamespace(__name__="cupy")
    assert kernels.applies(cupy_like, np.zeros(3, np.float32), np.zeros(2, np.float64))
    assert not kernels.applies(cupy_like, np.zeros(3, np.float16))
    monkeypatch.delenv("DIET_NP_FUSED_LIF", raising=False)
    assert get_engine().fused_lif and not get_engine(Engine(fused_lif=False)).fused_lif
    monkeypatch.setenv("DIET_NP_FUSED_LIF", "0")
    assert not get_engine().fused_lif


_EMULATION = r"""
#include <barrier>
#include <thread>
#include <vector>
struct dim3_t { long long x = 0; };
thread_local dim3_t threadIdx, blockIdx;
dim3_t blockDim;
std::barrier<>* block_barrier = nullptr;
#define __global__
#define __device__
#define __shared__ static
inline void __syncthreads() { block_barrier->arrive_and_wait(); }
%(source)s
template<typename F> void launch(long long n, F kernel) {
    const int threads = %(threads)d;
    blockDim.x = threads;
    for (long long b = 0; b < (n + threads - 1) / threads; ++b) {
        std::barrier<> barrier(threads);
        block_barrier = &barrier;
        std::vector<std::thread> pool;
        for (int t = 0; t < threads; ++t)
            pool.emplace_back([=] { blockIdx.x = b; threadIdx.x = t; kernel(); });
        for (auto& thread : pool) thread.join();
    }
}
#define ENTRY(T, NAME)                                                                    \
extern "C" void forward_##NAME(const T* c, const T* l, const T* v, T* u, bool* s, T* o,   \
                               int steps, long long n, int k) {                           \
    launch(n, [=] { lif_forward<T>(c, l, v, u, s, o, steps, n, k); });                    \
}                                                                                         \
extern "C" void backward_##NAME(const T* d, const T* u, const bool* s, const T* l,        \
                                const T* v, T g, T* dc, T* dl, T* dv,                     \
                                int steps, long long n, int k) {                          \
    launch(n, [=] { lif_backward<T>(d, u, s, l, v, g, dc, dl, dv, steps, n, k); });       \
}
ENTRY(float, f32)
ENTRY(double, f64)
"""


@pytest.fixture(scope="module")
def emulated(tmp_path_factory):
    """The kernels' CUDA source built for the CPU (needs g++ with C++20)."""
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed")
    folder = tmp_path_factory.mktemp("kernels")
    source = folder / "emulated.cpp"
    source.write_text(_EMULATION % {"source": kernels._SOURCE, "threads": kernels.THREADS})
    library = folder / "emulated.so"
    build = subprocess.run(["g++", "-std=c++20", "-O1", "-ffp-contract=off", "-fPIC",
                            "-shared", "-pthread", str(source), "-o", str(library)],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    return ctypes.CDLL(str(library))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,T,constant", CASES)
def test_kernel_source_emulated_on_cpu_equals_reference(emulated, dtype, shape, T, constant):
    current, leak, threshold, dout = draw(np, dtype, shape, T, constant, 1)
    out_ref, cache = lif_forward(current, leak, threshold, T)
    dcurrent_ref, dleak_ref, dthreshold_ref = lif_backward(dout, cache)

    ptr = lambda a: a.ctypes.data_as(ctypes.c_void_p)
    name = "f32" if dtype == np.float32 else "f64"
    scalar = ctypes.c_float if dtype == np.float32 else ctypes.c_double
    n = int(np.prod(shape))
    blocks = (n + kernels.THREADS - 1) // kernels.THREADS
    u, out = np.empty((2, T) + shape, dtype)
    spikes = np.empty((T,) + shape, bool)
    getattr(emulated, f"forward_{name}")(
        ptr(current), ptr(leak), ptr(threshold), ptr(u), ptr(spikes), ptr(out),
        ctypes.c_int(T), ctypes.c_longlong(n), ctypes.c_int(constant))
    np.testing.assert_array_equal(u, cache.u)
    np.testing.assert_array_equal(spikes, cache.spikes)
    np.testing.assert_array_equal(out, out_ref)
    assert 0 < spikes.mean() < 1 or n == 1

    dcurrent = np.empty(dcurrent_ref.shape, dtype)
    dleak, dthreshold = np.zeros((2, blocks), dtype)
    getattr(emulated, f"backward_{name}")(
        ptr(dout), ptr(u), ptr(spikes), ptr(leak), ptr(threshold), scalar(0.3),
        ptr(dcurrent), ptr(dleak), ptr(dthreshold),
        ctypes.c_int(T), ctypes.c_longlong(n), ctypes.c_int(constant))
    np.testing.assert_array_equal(dcurrent, dcurrent_ref)
    np.testing.assert_allclose([dleak.sum(), dthreshold.sum()], [dleak_ref, dthreshold_ref],
                               rtol=tolerance(dtype))
