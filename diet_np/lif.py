"""The DIET leaky integrate-and-fire neuron: forward (Eq. 2-5) and BPTT (Eq. 10-14).

Each spiking layer l has one learnable leak ``lambda_l`` and one learnable
threshold ``v_l`` (0-d arrays).  Per step t = 1..T (m^0 = 0):

    u^t = lambda * m^{t-1} + I^t          Eq. 2 (integrate)
    z^t = u^t / v - 1                     Eq. 3 (normalised potential)
    o^t = H(z^t)   (1 if z > 0)           Eq. 4 (fire)
    m^t = u^t - v * o^t                   Eq. 5 (soft reset by subtraction)

The spike o^t goes on to the next layer in the same step t.  Eq. 2 + 5 follow the
authors' released code, in which the subtracted threshold is leaked with the rest
of the potential (u^t = lambda u^{t-1} - lambda v o^{t-1} + I^t); the paper's
single-line form subtracts v o^{t-1} unleaked.  With lambda = 1 they agree.

This is the reference: :func:`lif_step` and :func:`lif_step_backward` are one
step each way, :func:`lif_forward` and :func:`lif_backward` plain loops over
them for a layer's (T, B, ...) sequence.  Python's index t - 1 holds step t.
:mod:`diet_np.fast.lif` computes the same in blocks, threads and CUDA kernels.

*Smooth mode* (for gradient checks) sends ``surrogate.primitive(z)`` to the next
layer instead of H(z); the reset still uses H(z).  The BPTT below is then the
exact gradient of the forward, which finite differences can confirm.
"""
from __future__ import annotations

from typing import NamedTuple

from .backend import array_module
from .surrogates import Triangle

DEFAULT_SURROGATE = Triangle()


class LIFCache(NamedTuple):
    """What the BPTT of a LIF layer needs: potentials u^t and spikes o^t (bool),
    shaped (T, B, ...); ``constant`` when the forward's current had one step."""
    u: object
    spikes: object
    leak: object
    threshold: object
    constant: bool
    surrogate: object


def lif_step(current, m_prev, leak, threshold):
    """One step t of Eq. 2-5.  Returns ``(spike, m, u)``; ``spike`` is boolean.

    current I^t, m_prev m^{t-1}: (B, ...) arrays; leak, threshold: scalars or 0-d arrays.
    """
    u = leak * m_prev + current            # Eq. 2
    spike = (u / threshold - 1.0) > 0      # Eq. 3 and Eq. 4
    m = u - threshold * spike              # Eq. 5
    return spike, m, u


def lif_step_backward(dspike, dm, u, spike, m_prev, leak, threshold, surrogate):
    """One step t of BPTT (Eq. 10, 11, 13, 14).

    dspike = do^t (from layer l+1 at step t), dm = dm^t (from step t+1; 0 at
    t = T), u = u^t, spike = o^t, m_prev = m^{t-1} (0 at t = 1).  Returns
    ``(du, dm_prev, dleak, dthreshold)``: du^t (which is dI^t, Eq. 12), dm^{t-1},
    and this step's terms of d lambda and d v.

        Eq. 10:  du^t = dm^t + do^t sigma'(z^t) / v
        Eq. 11:  dm^{t-1} = lambda du^t
        Eq. 13:  d lambda += sum[ du^t m^{t-1} ]
        Eq. 14:  d v += sum[ do^t sigma'(z^t) (-u^t / v^2) ] - sum[ dm^t o^t ]

    The last term of Eq. 14 is the reset path m^t = u^t - v o^t (o detached).
    """
    xp = array_module(dspike, u)
    dspike_sg = dspike * surrogate.grad(u / threshold - 1.0)       # Eq. 8 at z^t (Eq. 3)
    du = dm + dspike_sg / threshold                                # Eq. 10
    dleak = xp.sum(du * m_prev)                                    # Eq. 13
    dthreshold = xp.sum(dspike_sg * (-u / threshold ** 2)) - xp.sum(dm * spike)   # Eq. 14
    dm_prev = leak * du                                            # Eq. 11
    return du, dm_prev, dleak, dthreshold


def lif_forward(current, leak, threshold, T: int, smooth: bool = False,
                surrogate=DEFAULT_SURROGATE):
    """A LIF layer for t = 1..T: :func:`lif_step` in a loop (Eq. 2-5).

    current: (T, B, ...) input currents I^t, or (1, B, ...) for a current that is
    the same at every step (direct input encoding: layer 1's I = W x is computed
    once).  Returns ``(out, cache)``: out (T, B, ...) in ``current``'s dtype,
    spikes in {0, 1} (``surrogate.primitive(z^t)`` in smooth mode), and the
    :class:`LIFCache` of the potentials and spikes.
    """
    xp = array_module(current, leak, threshold)
    if current.shape[0] not in (1, T):
        raise ValueError(f"LIF current has {current.shape[0]} steps; expected 1 or T={T}")
    constant = current.shape[0] == 1
    m = xp.zeros(current.shape[1:], dtype=current.dtype)          # m^0 = 0
    us, spikes, outs = [], [], []
    for t in range(1, T + 1):
        spike, m, u = lif_step(current[0 if constant else t - 1], m, leak, threshold)
        us.append(u)
        spikes.append(spike)
        outs.append(surrogate.primitive(u / threshold - 1.0) if smooth else spike)
    out = xp.stack(outs).astype(current.dtype)
    return out, LIFCache(xp.stack(us), xp.stack(spikes), leak, threshold, constant, surrogate)


def lif_backward(dout, cache):
    """BPTT through a LIF layer (Eq. 10-14): :func:`lif_step_backward` for t = T..1.

    dout: (T, B, ...) gradient of the loss w.r.t. the layer's spikes, arriving
    from layer l+1 at the same step.  Returns ``(dcurrent, dleak, dthreshold)``;
    dcurrent has the shape of the forward's current: (1, B, ...) for a constant
    current, whose steps' gradients add up (Eq. 12: dW_1 = sum_t dI_1^t x).
    """
    u, spikes, leak, threshold, constant, surrogate = cache
    xp = array_module(dout, u)
    T = u.shape[0]
    dcurrent = xp.zeros(((1,) if constant else (T,)) + u.shape[1:], dtype=u.dtype)
    dm = xp.zeros(u.shape[1:], dtype=u.dtype)                     # dm^T = 0
    dleak = xp.zeros((), dtype=u.dtype)
    dthreshold = xp.zeros((), dtype=u.dtype)
    for t in range(T, 0, -1):
        m_prev = (u[t - 2] - threshold * spikes[t - 2] if t > 1         # Eq. 5 at t - 1
                  else xp.zeros(u.shape[1:], dtype=u.dtype))          # m^0 = 0
        du, dm, dleak_t, dthreshold_t = lif_step_backward(
            dout[t - 1], dm, u[t - 1], spikes[t - 1], m_prev, leak, threshold, surrogate)
        if constant:
            dcurrent[0] += du                                      # Eq. 12: dI = sum_t du^t
        else:
            dcurrent[t - 1] = du                                   # Eq. 12: dI^t = du^t
        dleak += dleak_t
        dthreshold += dthreshold_t
    return dcurrent, dleak, dthreshold
