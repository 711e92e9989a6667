"""Input encodings: how an image becomes layer 1's input over the T steps.

* ``"direct"`` (the "D" of DIET, the paper's choice): the normalised image x
  itself at every step.  It is returned as a sequence with a leading 1, which
  the layers read as "the same at every step", so layer 1's current
  I_1 = W_1 * x is computed once.
* ``"rate"`` (the rate coding DIET replaces): at every step t an independent
  spike s^t = sign(x) * [r^t < |x|], r^t ~ U(0, 1) per pixel, drawn from the
  pass's generator.  A pixel spikes with probability min(|x|, 1), so
  E[s^t] = sign(x) min(|x|, 1); normalised pixels beyond one standard deviation
  from the mean spike at every step.  This is the Poisson generator of the
  authors' hybrid-SNN code (signed spikes from normalised pixels), our choice
  where the paper names no rate encoder.  Layer 1 then sees a new current
  every step and its synaptic operations are accumulates (priced as such by
  :func:`diet_np.metrics.energy_table`).

The input spikes do not depend on any parameter, so BPTT (Eq. 9-14) is the
same for both encodings once the spikes are drawn.
"""
from __future__ import annotations

from .backend import array_module
from .errors import ParameterError

ENCODINGS = ("direct", "rate")

#: The key under which a rate-coded pass counts its input spikes (``Trace.spike_counts``).
INPUT = "input"


def check_encoding(encoding) -> str:
    if encoding not in ENCODINGS:
        raise ParameterError(f"encoding must be one of {ENCODINGS}; got {encoding!r}")
    return encoding


def rate_spikes(x, rng):
    """One step of rate coding: sign(x) where a uniform draw falls under |x|, else 0."""
    xp = array_module(x)
    fire = rng.random(x.shape) < xp.abs(x)
    return xp.sign(x) * fire


def encode(x, T, encoding, rng):
    """Layer 1's input sequence for T steps: ``x[None]`` (direct) or the stacked
    rate-coded spikes of steps 1..T, shaped (T, B, C, H, W)."""
    if check_encoding(encoding) == "direct":
        return x[None]
    if rng is None:
        raise ValueError("rate encoding draws its input spikes from a generator: pass rng=...")
    xp = array_module(x)
    return xp.stack([rate_spikes(x, rng) for _ in range(T)])
