"""Surrogate gradients for the spike non-linearity (Eq. 8).

The spike o = H(z) (Eq. 4) has zero derivative almost everywhere.  BPTT replaces
dH/dz by a surrogate ``grad(z)``.  Each surrogate also provides its
``primitive(z)``, a smooth function whose derivative is exactly ``grad(z)``: in the
network's *smooth mode* the forward spike is replaced by this primitive, which
makes the whole network differentiable so finite differences can check BPTT.

z is the normalised potential of Eq. 3, z = u / v - 1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .backend import array_module


@dataclass(frozen=True)
class Triangle:
    """Eq. 8 (the paper's default): grad(z) = gamma * max(0, 1 - |z|), gamma = 0.3.

    primitive(z) = gamma * P(z) with P = 0 for z <= -1, (1 + z)^2 / 2 on (-1, 0],
    1 - (1 - z)^2 / 2 on (0, 1), and 1 for z >= 1.
    """
    gamma: float = 0.3
    name: str = "triangle"

    def grad(self, z):
        xp = array_module(z)
        g = xp.asarray(xp.abs(z))                # an array also for 0-d z
        xp.subtract(1.0, g, out=g)
        xp.maximum(g, 0.0, out=g)
        g *= self.gamma
        return g

    def primitive(self, z):
        xp = array_module(z)
        below = 0.5 * xp.clip(1.0 + z, 0.0, 1.0) ** 2
        above = 1.0 - 0.5 * xp.clip(1.0 - z, 0.0, 1.0) ** 2
        return self.gamma * xp.where(z <= 0, below, above)


@dataclass(frozen=True)
class FastSigmoid:
    """SuperSpike's surrogate (Zenke & Ganguli 2018): grad(z) = gamma / (1 + k|z|)^2.

    primitive(z) = gamma * z / (1 + k|z|).
    """
    gamma: float = 0.3
    slope: float = 5.0
    name: str = "fast_sigmoid"

    def grad(self, z):
        xp = array_module(z)
        return self.gamma / (1.0 + self.slope * xp.abs(z)) ** 2

    def primitive(self, z):
        xp = array_module(z)
        return self.gamma * z / (1.0 + self.slope * xp.abs(z))


@dataclass(frozen=True)
class ArcTan:
    """Arc-tangent surrogate (Fang et al. 2021): grad(z) = gamma / (1 + (alpha z)^2).

    primitive(z) = (gamma / alpha) * arctan(alpha z).
    """
    gamma: float = 0.3
    alpha: float = math.pi
    name: str = "atan"

    def grad(self, z):
        return self.gamma / (1.0 + (self.alpha * z) ** 2)

    def primitive(self, z):
        xp = array_module(z)
        return (self.gamma / self.alpha) * xp.arctan(self.alpha * z)


SURROGATES = {"triangle": Triangle, "fast_sigmoid": FastSigmoid, "atan": ArcTan}


def get_surrogate(name="triangle", **params):
    """A surrogate by name (``triangle`` is Eq. 8); an instance is passed through."""
    if not isinstance(name, str):
        return name
    if name not in SURROGATES:
        raise ValueError(f"unknown surrogate {name!r}; choose from {', '.join(SURROGATES)}")
    return SURROGATES[name](**params)
