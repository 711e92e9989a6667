"""The DIET leaky integrate-and-fire neuron: forward (Eq. 2-5) and BPTT (Eq. 10-14).

Each spiking layer l has one learnable leak ``lambda_l`` and one learnable
threshold ``v_l`` (0-d arrays).  Per step t (m^0 = 0):

    u^t = lambda * m^{t-1} + I^t          Eq. 2 (integrate)
    z^t = u^t / v - 1                     Eq. 3 (normalised potential)
    o^t = H(z^t)   (1 if z > 0)           Eq. 4 (fire)
    m^t = u^t - v * o^t                   Eq. 5 (soft reset by subtraction)

The spike o^t goes on to the next layer in the same step t.  Eq. 2 + 5 follow the
authors' released code, in which the subtracted threshold is leaked with the rest
of the potential (u^t = lambda u^{t-1} - lambda v o^{t-1} + I^t); the paper's
single-line form subtracts v o^{t-1} unleaked.  With lambda = 1 they agree.

Two interfaces compute the same thing:

* :func:`lif_step` - one timestep, for teaching and for step-by-step simulation;
* :func:`lif_forward` / :func:`lif_backward` - all T steps of a layer at once on
  arrays shaped (T, B, ...), caching only the potentials u (float) and the
  spikes (bool); m^{t-1} = u^{t-1} - v o^{t-1} is recomputed in the backward.

*Smooth mode* (for gradient checks) sends ``surrogate.primitive(z)`` to the next
layer instead of H(z); the reset still uses H(z).  The BPTT below is then the
exact gradient of the forward, which finite differences can confirm.

On CuPy arrays :func:`lif_forward` and :func:`lif_backward` hand the time
loop to the fused kernels of :mod:`diet_np.kernels` (one thread per neuron;
``DIET_NP_FUSED_LIF=0`` turns them off); the code below is the reference they
are tested against.
"""
from __future__ import annotations

from typing import NamedTuple

from . import kernels
from .backend import array_module
from .surrogates import Triangle

DEFAULT_SURROGATE = Triangle()


class LIFCache(NamedTuple):
    """What the BPTT of a LIF layer needs: potentials u^t and spikes o^t (bool)."""
    u: object
    spikes: object
    leak: object
    threshold: object
    constant: bool
    surrogate: object


def lif_step(current, m_prev, leak, threshold):
    """One step of Eq. 2-5.  Returns ``(spike, m, u)``; ``spike`` is boolean.

    current, m_prev: (B, ...) arrays; leak, threshold: scalars or 0-d arrays.
    """
    u = leak * m_prev + current            # Eq. 2
    spike = (u / threshold - 1.0) > 0      # Eq. 3 and Eq. 4
    m = u - threshold * spike              # Eq. 5
    return spike, m, u


def lif_forward(current, leak, threshold, T: int, smooth: bool = False,
                surrogate=DEFAULT_SURROGATE):
    """Run a LIF layer for T steps (Eq. 2-5).

    current: (T, B, ...) input currents I^t, or (1, B, ...) for a current that is
    the same at every step (direct input encoding: layer 1's I = W x is computed
    once).  Returns ``(out, cache)`` with out (T, B, ...) in ``current``'s dtype:
    spikes in {0, 1}, or ``surrogate.primitive(z)`` in smooth mode.
    """
    xp = array_module(current, leak, threshold)
    if current.shape[0] not in (1, T):
        raise ValueError(f"LIF current has {current.shape[0]} steps; expected 1 or T={T}")
    constant = current.shape[0] == 1
    if not smooth and kernels.enabled(xp, current):
        out, u, spikes = kernels.lif_forward(current, leak, threshold, T)
        return out, LIFCache(u, spikes, leak, threshold, constant, surrogate)
    shape = (T,) + current.shape[1:]
    u = xp.empty(shape, dtype=current.dtype)
    spikes = xp.empty(shape, dtype=bool)
    out = xp.empty(shape, dtype=current.dtype) if smooth else None
    m = xp.zeros(shape[1:], dtype=current.dtype)
    z = xp.empty(shape[1:], dtype=current.dtype)
    for t in range(T):            # lif_step, written in place into the cache
        xp.multiply(m, leak, out=u[t])                   # Eq. 2: u = lambda m + I
        u[t] += current[0 if constant else t]
        xp.divide(u[t], threshold, out=z)                # Eq. 3: z = u / v - 1
        z -= 1.0
        xp.greater(z, 0, out=spikes[t])                  # Eq. 4: o = H(z)
        xp.multiply(spikes[t], threshold, out=m)         # Eq. 5: m = u - v o
        xp.subtract(u[t], m, out=m)
        if smooth:
            out[t] = surrogate.primitive(z)
    if not smooth:
        out = spikes.astype(current.dtype)
    return out, LIFCache(u, spikes, leak, threshold, constant, surrogate)


def lif_backward(dout, cache):
    """BPTT through a LIF layer, t = T..1 (Eq. 10-14).

    dout: (T, B, ...) gradient of the loss w.r.t. the layer's spikes, arriving
    from layer l+1 at the same step.  Returns ``(dcurrent, dleak, dthreshold)``;
    dcurrent has the shape of the forward's current ((1, B, ...) for a constant
    current: the steps' gradients are summed, as in dW_1 = sum_t dI_1^t x).
    """
    u, spikes, leak, threshold, constant, surrogate = cache
    xp = array_module(dout, u)
    if isinstance(surrogate, Triangle) and kernels.enabled(xp, u):
        return kernels.lif_backward(dout, u, spikes, leak, threshold, surrogate.gamma, constant)
    T = u.shape[0]
    dcurrent = xp.zeros((1,) + u.shape[1:], dtype=u.dtype) if constant else \
        xp.empty(u.shape, dtype=u.dtype)
    dm = xp.zeros(u.shape[1:], dtype=u.dtype)            # dm^T = 0
    m_prev = xp.empty(u.shape[1:], dtype=u.dtype)
    dleak = xp.zeros((), dtype=u.dtype)
    dthreshold = xp.zeros((), dtype=u.dtype)
    for t in range(T - 1, -1, -1):
        du, dv_t = _lif_step_backward(dout[t], dm, u[t], spikes[t], threshold, surrogate)
        dthreshold += dv_t
        if t > 0:                                        # Eq. 13 (m^0 = 0)
            xp.multiply(spikes[t - 1], threshold, out=m_prev)
            xp.subtract(u[t - 1], m_prev, out=m_prev)    # m^{t-1} = u^{t-1} - v o^{t-1}
            dleak += (du * m_prev).sum()
        xp.multiply(du, leak, out=dm)                    # Eq. 11
        if constant:                                     # Eq. 12: dI^t = du^t
            dcurrent[0] += du
        else:
            dcurrent[t] = du
    return dcurrent, dleak, dthreshold


def _lif_step_backward(dspike, dm, u, spike, threshold, surrogate):
    """One step of BPTT: Eq. 10 (du) and the step's term of Eq. 14 (dv).

    Eq. 10:  du = dm + do * sigma'(z) / v
    Eq. 14:  dv = sum[ do * sigma'(z) * (-u / v^2) ] - sum[ dm * o ]
    The second term of Eq. 14 is the reset path m = u - v o (o detached).
    """
    dspike_sg = dspike * surrogate.grad(u / threshold - 1.0)
    du = dm + dspike_sg / threshold
    dv = -(dspike_sg * u).sum() / threshold ** 2 - (dm * spike).sum()
    return du, dv
