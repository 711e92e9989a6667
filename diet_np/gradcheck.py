"""Central finite differences, to check hand-written gradients.

Step and tolerance (float64):

* ``DEFAULT_STEP = 1e-5``: the central difference (f(x+h) - f(x-h)) / 2h has a
  truncation error O(h^2) (about 1e-10 here) and a rounding error about
  1e-16 |f| / h (about 1e-11); both are far below the tolerance.
* ``DEFAULT_TOL = 1e-6``: the largest accepted :func:`relative_error` for a
  smooth function.  Kinks (ReLU, max-pool ties, the triangle surrogate's
  corners, and in the network the reset's step H) must stay farther than the
  step from the point of evaluation: :func:`network_kink_margin` measures how
  far every neuron of a network is from them.

A whole network is only differentiable in *smooth mode* (the forward spike
replaced by the surrogate's primitive, the reset still using H): there the
hand-written BPTT is the exact gradient and must agree with finite differences.
"""
from __future__ import annotations

import numpy as np

from .backend import array_module, default_rng, to_host
from .lif import LIFCache
from .ops import softmax_cross_entropy

DEFAULT_STEP = 1e-5
DEFAULT_TOL = 1e-6


def relative_error(analytic, numeric) -> float:
    """max |a - n| / max(max |a|, max |n|, 1e-12), over a whole tensor.

    Normalising by the tensor's largest entry (rather than entry by entry) keeps
    entries whose true gradient is exactly zero from turning rounding noise into
    a large ratio.  For a scalar it is the usual relative error.
    """
    a = np.asarray(to_host(analytic), dtype=np.float64)
    n = np.asarray(to_host(numeric), dtype=np.float64)
    if a.shape != n.shape:
        raise ValueError(f"gradient shapes differ: {a.shape} vs {n.shape}")
    scale = max(np.abs(a).max(initial=0.0), np.abs(n).max(initial=0.0), 1e-12)
    return float(np.abs(a - n).max(initial=0.0) / scale)


def numerical_gradient(f, x, h: float = DEFAULT_STEP):
    """d f / d x by central differences, one element at a time.

    ``f()`` returns a scalar and reads ``x``, which is perturbed in place and
    restored.  Returns an array like ``x`` on the same device.
    """
    if x.dtype != np.float64:
        raise TypeError(f"finite differences need float64 arrays; got {x.dtype}")
    xp = array_module(x)
    grad = np.zeros(x.shape)
    flat = x.reshape(-1)
    for i in range(flat.size):
        old = float(flat[i])
        flat[i] = old + h
        plus = float(f())
        flat[i] = old - h
        minus = float(f())
        flat[i] = old
        grad.reshape(-1)[i] = (plus - minus) / (2 * h)
    return xp.asarray(grad)


def directional_derivative(f, x, direction, h: float = DEFAULT_STEP) -> float:
    """(f(x + h d) - f(x - h d)) / 2h for a whole tensor at once (two evaluations):
    compare it with sum(grad * d) where element-wise checks would be too slow."""
    old = x.copy()
    x[...] = old + h * direction
    plus = float(f())
    x[...] = old - h * direction
    minus = float(f())
    x[...] = old
    return (plus - minus) / (2 * h)


def network_loss_fn(net, params, x, labels, *, T, mode="snn", smooth=True,
                    surrogate="triangle", dropout_seed=None, dropout=None):
    """A closure ``f() -> loss`` of the network at the current ``params``.

    With ``dropout_seed`` the network runs in training mode and every call draws
    the same dropout masks (a fresh generator with that seed), so the loss is a
    fixed function of the parameters.
    """
    xp = array_module(x)

    def run():
        rng = None if dropout_seed is None else default_rng(xp, dropout_seed)
        logits, trace = net.forward(params, x, train=dropout_seed is not None, T=T,
                                    mode=mode, rng=rng, surrogate=surrogate, smooth=smooth,
                                    dropout=dropout, check=False)
        return logits, trace

    def loss():
        logits, _ = run()
        return softmax_cross_entropy(logits, labels)[0]

    loss.run = run
    return loss


def check_network_gradients(net, params, x, labels, *, T, mode="snn", smooth=True,
                            surrogate="triangle", dropout_seed=None, dropout=None,
                            h: float = DEFAULT_STEP, keys=None) -> dict:
    """Compare :meth:`Network.backward` with finite differences, every element of
    every parameter (or of ``keys``).  Returns ``{key: relative_error}``.

    Use float64 parameters and inputs and a small network.  In true spiking mode
    (``smooth=False``) the loss is piecewise constant in most directions, so
    there the comparison is meaningless; use smooth mode.
    """
    net.validate(params, x, T, mode)
    loss = network_loss_fn(net, params, x, labels, T=T, mode=mode, smooth=smooth,
                           surrogate=surrogate, dropout_seed=dropout_seed, dropout=dropout)
    logits, trace = loss.run()
    _, dlogits = softmax_cross_entropy(logits, labels)
    grads = net.backward(params, dlogits, trace)
    return {key: relative_error(grads[key], numerical_gradient(loss, params[key], h))
            for key in (keys or params)}


def network_kink_margin(net, params, x, *, T, surrogate="triangle", dropout_seed=None,
                        dropout=None) -> float:
    """Smallest distance of any neuron's normalised potential z (Eq. 3), at any
    step, from a point where the smooth-mode network is not smooth: z = 0 (the
    reset's step) and, for the triangle surrogate, z = +-1 (its corners)."""
    xp = array_module(x)
    corners = (0.0, -1.0, 1.0) if surrogate == "triangle" else (0.0,)
    rng = None if dropout_seed is None else default_rng(xp, dropout_seed)
    _, trace = net.forward(params, x, train=dropout_seed is not None, T=T, rng=rng,
                           surrogate=surrogate, smooth=True, dropout=dropout, check=False)
    best = np.inf
    for u, threshold in _lif_potentials(trace.caches):
        z = to_host(u / threshold - 1.0)
        for c in corners:
            best = min(best, float(np.abs(z - c).min()))
    return best


def _lif_potentials(caches):
    """Yield (u, threshold) of every LIF cache found in a nested cache structure."""
    if isinstance(caches, LIFCache):
        yield caches.u, caches.threshold
        return
    if isinstance(caches, (list, tuple)):
        for c in caches:
            yield from _lif_potentials(c)
