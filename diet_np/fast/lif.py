"""The fast engine's LIF layer: Eq. 2-5 and 10-14 in cache-sized neuron blocks.

Reference: :func:`diet_np.lif.lif_forward` and :func:`diet_np.lif.lif_backward`,
the plain loops over :func:`~diet_np.lif.lif_step` and
:func:`~diet_np.lif.lif_step_backward` (potentials, spikes and dI^t bit for bit,
the leak and threshold gradients to rounding: their sums run in another order;
``tests/test_fast.py``).  Measured (issue #14, 2 cores, against the blocked
loops of commits e11f89d, 1606b93 and ad8dc5e): the plain loops make the LIF
layers 2.0-2.4x slower and a vgg5 training step about 1.4x slower (a VGG16 step
no slower: its convolutions dominate).

What makes it fast, none of which changes a value:

* the neurons are cut into slices, one per worker of :mod:`diet_np.fast.parallel`,
  and each worker walks its slice in blocks of :data:`NEURON_BLOCK` neurons
  through all T steps, so a dozen passes over a block hit the CPU's cache;
* every operation writes into its output (``out=``), no temporaries;
* the forward compares u with v directly (for v > 0, u / v - 1 > 0 exactly
  when u > v, also in floating point) and can hand its boolean spike cache on
  as the layer's output (``compact``) and store u^t in the memory of a current
  nobody reads again (``overwrite``);
* the backward takes the surrogate factor of Eq. 10 and Eq. 14's first term
  for all steps at once, and the sums of Eq. 13-14 as dot products;
* on CuPy (``fused=True``) the whole time loop is one CUDA kernel per pass
  (:mod:`diet_np.fast.kernels`).
"""
from __future__ import annotations

from ..backend import array_module
from ..lif import DEFAULT_SURROGATE, LIFCache
from ..surrogates import Triangle
from . import kernels
from .parallel import blocks, map_chunks, slices

NEURON_BLOCK = 1 << 16
"""CPU: neurons per block of the multi-step loops (rows of 256 KiB per step)."""


def lif_forward(current, leak, threshold, T: int, smooth: bool = False,
                surrogate=DEFAULT_SURROGATE, compact: bool = False, overwrite: bool = False,
                fused: bool = True):
    """Eq. 2-5 for T steps, as :func:`diet_np.lif.lif_forward` (same arguments,
    same ``(out, cache)``).

    With ``compact=True`` (outside smooth mode) out is the cache's boolean spike
    array itself, a quarter of float32's memory and no copy, for layers that
    declare they take spikes in that form (``Layer.takes_spikes``).
    ``overwrite=True`` lets the potentials u^t take the place of a (T, B, ...)
    current that the caller will not read again (on the CPU: one layer-sized
    array fewer, written while it is in cache).  ``fused``: the CUDA kernels
    where they apply.
    """
    xp = array_module(current, leak, threshold)
    if current.shape[0] not in (1, T):
        raise ValueError(f"LIF current has {current.shape[0]} steps; expected 1 or T={T}")
    constant = current.shape[0] == 1
    if fused and not smooth and kernels.applies(xp, current):
        out, u, spikes = kernels.lif_forward(current, leak, threshold, T)
        return (spikes if compact else out), LIFCache(u, spikes, leak, threshold, constant,
                                                      surrogate)
    shape = (T,) + current.shape[1:]
    u = current if overwrite and _in_place(current, shape, current.dtype) else \
        xp.empty(shape, dtype=current.dtype)
    spikes = xp.empty(shape, dtype=bool)
    compact = compact and not smooth
    out = spikes if compact else xp.empty(shape, dtype=current.dtype)
    current_, u_, spikes_, out_ = (_by_step(a) for a in (current, u, spikes, out))

    neurons = u_.shape[1]

    def steps(part):              # lif_step for a worker's neurons, block by block,
        for n in blocks(part, neurons, NEURON_BLOCK, xp):       # into the cache
            m = xp.zeros(u_[0, n].shape, dtype=current.dtype)
            for t in range(T):
                m *= leak                                             # Eq. 2: u = lambda m + I
                xp.add(current_[0 if constant else t, n], m, out=u_[t, n])
                xp.greater(u_[t, n], threshold, out=spikes_[t, n])    # Eq. 3-4: o = H(u/v - 1)
                if smooth:
                    out_[t, n] = surrogate.primitive(u_[t, n] / threshold - 1.0)
                elif not compact:
                    out_[t, n] = spikes_[t, n]
                xp.multiply(spikes_[t, n], threshold, out=m)          # Eq. 5: m = u - v o
                xp.subtract(u_[t, n], m, out=m)

    map_chunks(steps, slices(neurons, xp), xp)
    return out, LIFCache(u, spikes, leak, threshold, constant, surrogate)


def _totals(sums):
    """Totals of a list of equal-length tuples of 0-d arrays, added in place into
    the first tuple in list order (so a run repeats its sums exactly, whatever
    thread computed each term)."""
    first = sums[0]
    for later in sums[1:]:
        for total, term in zip(first, later):
            total += term
    return first


def _in_place(a, shape, dtype) -> bool:
    """Whether ``a`` can take a result of ``shape`` and ``dtype`` in its own memory
    (not a broadcast or strided view, not read-only)."""
    return (tuple(a.shape) == tuple(shape) and a.dtype == dtype and a.flags.c_contiguous
            and getattr(a.flags, "writeable", True))


def _by_step(a):
    """(T, B, ...) -> a (T, neurons) view (None stays None)."""
    return None if a is None else a.reshape(a.shape[0], -1)


def lif_backward(dout, cache, overwrite: bool = False, fused: bool = True):
    """BPTT through a LIF layer, t = T..1 (Eq. 10-14), as
    :func:`diet_np.lif.lif_backward` (same arguments, same results to rounding).
    ``overwrite=True`` lets dI^t take the place of a dout that the caller will
    not read again (the CPU path; a broadcast dout is never written).
    ``fused``: the CUDA kernel for the triangle surrogate on CuPy.

    Step t, from t = T down to 1, with dm^T = 0 and m^0 = 0:

        Eq. 10:  du^t = dm^t + do^t sigma'(z^t) / v
        Eq. 11:  dm^{t-1} = lambda du^t
        Eq. 12:  dI^t = du^t
        Eq. 13:  dlambda += sum[ du^t m^{t-1} ],  m^{t-1} = u^{t-1} - v o^{t-1}
        Eq. 14:  dv += sum[ do^t sigma'(z^t) (-u^t / v^2) ] - sum[ dm^t o^t ]

    The last term of Eq. 14 is the reset path m = u - v o (o detached).  The
    surrogate factor of Eq. 10 does not depend on the recursion, so it is
    computed for all steps at once; the loop then adds only the membrane path
    and the sums of Eq. 13-14, as dot products.
    """
    u, spikes, leak, threshold, constant, surrogate = cache
    xp = array_module(dout, u)
    if fused and isinstance(surrogate, Triangle) and kernels.applies(xp, u):
        return kernels.lif_backward(dout, u, spikes, leak, threshold, surrogate.gamma, constant)
    T = u.shape[0]
    if constant:    # Eq. 12 sums du over the steps: each block's du^t lives in a scratch
        dcurrent = xp.zeros((1,) + u.shape[1:], dtype=u.dtype)
    elif overwrite and _in_place(dout, u.shape, u.dtype):
        dcurrent = dout                                  # Eq. 12: dI^t = du^t, over do^t
    else:
        dcurrent = xp.empty(u.shape, dtype=u.dtype)
    u_, spikes_, dout_, dcurrent_ = (_by_step(a) for a in (u, spikes, dout, dcurrent))
    neurons = u_.shape[1]

    def block(n, scratch):
        """BPTT for neurons n; returns their sums (Eq. 13, Eq. 14's two terms)."""
        z = scratch[0][:, :n.stop - n.start]
        g = scratch[1][:, :n.stop - n.start] if constant else dcurrent_[:, n]
        xp.divide(u_[:, n], threshold, out=z)
        z -= 1.0                                         # z^t, Eq. 3, all steps
        xp.multiply(surrogate.grad(z), dout_[:, n], out=g)   # Eq. 8: do^t sigma'(z^t)
        dleak, surrogate_term, reset = (xp.zeros((), dtype=u.dtype) for _ in range(3))
        for t in range(T):                               # row by row: contiguous, no copies
            surrogate_term += xp.vdot(g[t], u_[t, n])    # Eq. 14: sum do sigma' u
        g /= threshold                                   # Eq. 10 without dm^t
        dm, v_spike, m_prev = (xp.empty(g.shape[1:], dtype=u.dtype) for _ in range(3))
        for t in range(T - 1, -1, -1):                   # row t holds step t + 1
            if t < T - 1:                                # dm^T = 0 at the last row
                xp.multiply(g[t + 1], leak, out=dm)      # Eq. 11: dm^t = lambda du^{t+1}
                g[t] += dm                               # Eq. 10: du^t = dm^t + ...
                reset += xp.vdot(dm, v_spike)            # Eq. 14 reset term, times v
            if constant:                                 # Eq. 12: dI = sum_t du^t
                dcurrent_[0, n] += g[t]
            if t > 0:                                    # Eq. 13 (m^0 = 0 at row 0)
                xp.multiply(spikes_[t - 1, n], threshold, out=v_spike)
                xp.subtract(u_[t - 1, n], v_spike, out=m_prev)   # m^{t-1} = u - v o
                dleak += xp.vdot(g[t], m_prev)
        return dleak, surrogate_term, reset

    def steps(part):              # a worker's neurons, block by block
        parts = blocks(part, neurons, NEURON_BLOCK, xp)
        scratch = [xp.empty((T, parts[0].stop - parts[0].start), dtype=u.dtype)
                   for _ in range(2 if constant else 1)]       # z^t (and du^t if constant)
        return _totals([block(n, scratch) for n in parts])

    dleak, surrogate_term, reset = _totals(map_chunks(steps, slices(neurons, xp), xp))
    dthreshold = -surrogate_term / threshold ** 2 - reset / threshold
    return dcurrent, dleak, xp.asarray(dthreshold, dtype=u.dtype)
