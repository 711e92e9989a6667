"""Fused CUDA kernels for the LIF layer on CuPy: the whole time loop in one launch.

Reference: :func:`diet_np.lif.lif_forward` and :func:`diet_np.lif.lif_backward`
(u^t, spikes and dI^t bit for bit, the leak and threshold gradients to
rounding; ``tests/test_fused.py``).  Measured on an H100 (benchmarks/README.md,
commit d091597): a VGG16 training step (batch 64, T = 5) 74-80 -> 41-45 ms.

The array-module LIF runs one array operation per equation and step, about
ten kernel launches and as many passes over memory per step.  Here one CUDA thread owns one neuron and
walks the T steps itself, keeping m^t (forward) and dm^t (backward) in a
register:

* forward, t = 1..T: Eq. 2-5, writing u^t and o^t (the cache) and the spikes
  sent on as floats;
* backward, t = T..1: Eq. 10-14 with the triangle surrogate of Eq. 8, writing
  dI^t (summed over t for a constant current) and this thread's terms of
  d lambda (Eq. 13) and d v (Eq. 14), which each block adds up in shared memory;
  the per-block sums are then added on the device.  Leak and threshold are read
  from device memory, so nothing waits for the host.

:mod:`diet_np.fast.lif` uses them for CuPy arrays in float32 or float64, with
the triangle surrogate, outside smooth mode, unless the engine's ``fused_lif``
is off (``DIET_NP_FUSED_LIF=0`` by default, :mod:`diet_np.settings`).  The
kernels are compiled with ``--fmad=false`` so that u^t, z^t and o^t round
exactly as the reference's separate operations do.

Importing this module does not import CuPy.
"""
from __future__ import annotations

import functools

import numpy as np

THREADS = 256          # threads per block; a power of two for the block reduction

_SOURCE = r"""
template<typename T>
__global__ void lif_forward(const T* current, const T* leak_p, const T* threshold_p,
                            T* u, bool* spikes, T* out,
                            const int steps, const long long n, const int constant)
{
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const T leak = *leak_p, v = *threshold_p;
    T m = 0;                                             // m^0 = 0
    for (int t = 0; t < steps; ++t) {
        const long long k = t * n + i;
        const T u_t = leak * m + current[constant ? i : k];   // Eq. 2
        const T z = u_t / v - (T)1;                          // Eq. 3
        const bool o = z > (T)0;                             // Eq. 4
        m = u_t - v * (T)o;                                  // Eq. 5
        u[k] = u_t;
        spikes[k] = o;
        out[k] = (T)o;
    }
}

template<typename T>
__device__ void block_sum(T value, T* buffer, T* block_out)
{
    buffer[threadIdx.x] = value;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) buffer[threadIdx.x] += buffer[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) block_out[blockIdx.x] = buffer[0];
    __syncthreads();
}

template<typename T>
__global__ void lif_backward(const T* dout, const T* u, const bool* spikes,
                             const T* leak_p, const T* threshold_p, const T gamma,
                             T* dcurrent, T* dleak_blocks, T* dthreshold_blocks,
                             const int steps, const long long n, const int constant)
{
    __shared__ T buffer[%(threads)d];
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    T dleak = 0, dthreshold = 0;
    if (i < n) {
        const T leak = *leak_p, v = *threshold_p;
        T dm = 0, dcurrent_sum = 0;                          // dm^T = 0
        for (int t = steps - 1; t >= 0; --t) {
            const long long k = t * n + i;
            const T u_t = u[k];
            const T z = u_t / v - (T)1;
            const T a = (T)1 - (z < (T)0 ? -z : z);
            const T dspike_sg = dout[k] * (gamma * (a > (T)0 ? a : (T)0));   // Eq. 8
            const T du = dm + dspike_sg / v;                               // Eq. 10
            dthreshold += -(dspike_sg * u_t) / (v * v) - dm * (T)spikes[k];  // Eq. 14
            if (t > 0) {                                                   // Eq. 13
                const T m_prev = u[k - n] - v * (T)spikes[k - n];
                dleak += du * m_prev;
            }
            dm = leak * du;                                                // Eq. 11
            if (constant) dcurrent_sum += du; else dcurrent[k] = du;       // Eq. 12
        }
        if (constant) dcurrent[i] = dcurrent_sum;
    }
    block_sum(dleak, buffer, dleak_blocks);
    block_sum(dthreshold, buffer, dthreshold_blocks);
}
""" % {"threads": THREADS}

_NAMES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}


def applies(xp, *arrays) -> bool:
    """True when the fused kernels can run: CuPy arrays in float32/float64."""
    return (getattr(xp, "__name__", "") == "cupy"
            and all(np.dtype(a.dtype) in _NAMES for a in arrays))


@functools.lru_cache(maxsize=None)
def _kernel(name: str, dtype: np.dtype):
    import cupy

    expressions = tuple(f"{k}<{t}>" for k in ("lif_forward", "lif_backward")
                        for t in _NAMES.values())
    module = _module(cupy, expressions)
    return module.get_function(f"{name}<{_NAMES[dtype]}>")


@functools.lru_cache(maxsize=None)
def _module(cupy, expressions):
    return cupy.RawModule(code=_SOURCE, options=("--fmad=false",),
                          name_expressions=expressions)


def _blocks(n: int) -> int:
    return (n + THREADS - 1) // THREADS


def _scalar(xp, value, dtype):
    """A 0-d device array (no copy when it already is one of ``dtype``)."""
    return xp.asarray(value, dtype=dtype)


def lif_forward(current, leak, threshold, T: int):
    """Eq. 2-5 over T steps in one launch.  current: (T, B, ...) or (1, B, ...).
    Returns ``(out, u, spikes)`` shaped (T, B, ...), as the reference computes them."""
    import cupy as xp

    dtype = np.dtype(current.dtype)
    current = xp.ascontiguousarray(current)
    shape = (T,) + current.shape[1:]
    n = int(np.prod(current.shape[1:], dtype=np.int64))
    u = xp.empty(shape, dtype=dtype)
    spikes = xp.empty(shape, dtype=bool)
    out = xp.empty(shape, dtype=dtype)
    if n:
        _kernel("lif_forward", dtype)(
            (_blocks(n),), (THREADS,),
            (current, _scalar(xp, leak, dtype), _scalar(xp, threshold, dtype), u, spikes, out,
             np.int32(T), np.int64(n), np.int32(current.shape[0] == 1)))
    return out, u, spikes


def lif_backward(dout, u, spikes, leak, threshold, gamma: float, constant: bool):
    """Eq. 10-14 (triangle surrogate, Eq. 8) over T steps in one launch.
    Returns ``(dcurrent, dleak, dthreshold)`` like :func:`diet_np.lif.lif_backward`."""
    import cupy as xp

    dtype = np.dtype(u.dtype)
    dout = xp.ascontiguousarray(dout, dtype=dtype)     # a broadcast view is copied here
    T = u.shape[0]
    n = int(np.prod(u.shape[1:], dtype=np.int64))
    dcurrent = xp.empty(((1,) if constant else (T,)) + u.shape[1:], dtype=dtype)
    blocks = _blocks(n)
    dleak_blocks = xp.zeros(max(blocks, 1), dtype=dtype)
    dthreshold_blocks = xp.zeros(max(blocks, 1), dtype=dtype)
    if n:
        _kernel("lif_backward", dtype)(
            (blocks,), (THREADS,),
            (dout, u, spikes, _scalar(xp, leak, dtype), _scalar(xp, threshold, dtype),
             dtype.type(gamma), dcurrent, dleak_blocks, dthreshold_blocks,
             np.int32(T), np.int64(n), np.int32(constant)))
    return dcurrent, dleak_blocks.sum(), dthreshold_blocks.sum()
