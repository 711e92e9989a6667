"""The non-spiking output layer (Eq. 6) and its gradient (Eq. 9).

The last layer has no leak, no threshold and no spikes: it accumulates

    U^t = U^{t-1} + W_L g(o_{L-1}^t),   U^0 = 0            (Eq. 6)

and the logits are U^T, the sum over steps (not divided by T).  Since every step
adds W_L times its input, U^T = W_L sum_t g(o^t): the multi-step forward sums the
inputs first and does one matrix product.
"""
from __future__ import annotations

from .backend import array_module


def readout_step(potential, inputs, w):
    """One step of Eq. 6: U^t = U^{t-1} + g(o^t) W^T.  inputs (B, F), w (classes, F)."""
    return potential + inputs.astype(w.dtype, copy=False) @ w.T


def readout_forward(inputs, w):
    """Eq. 6 over all steps: inputs (T, B, F) -> logits U^T (B, classes)."""
    if inputs.ndim != 3 or inputs.shape[2] != w.shape[1]:
        raise ValueError(f"readout expects inputs (T, B, {w.shape[1]}); got {tuple(inputs.shape)}")
    total = inputs.sum(axis=0).astype(w.dtype, copy=False)
    return total @ w.T, (total, w, inputs.shape[0])


def readout_backward(dlogits, cache):
    """Eq. 9: dW_L = sum_t dU^T g(o^t)^T and d g(o^t) = W_L^T dU^T at every step t.

    Returns ``(dinputs, dw)``; dinputs (T, B, F) is the same array for every t
    (a broadcast view, not T copies).
    """
    total, w, T = cache
    xp = array_module(dlogits, w)
    dw = dlogits.T @ total
    dstep = dlogits @ w
    return xp.broadcast_to(dstep, (T,) + dstep.shape), dw
