"""Memory limits: a pass whose arrays cannot fit is refused before it starts.

The multi-step forward (Eq. 2-6 over T steps) keeps every step of every spiking
layer for BPTT: its input current and output (float32), its potentials u^t
(float32) and its spikes (bool), 13 bytes per neuron, step and image; training
holds about as much again in gradients.  A pass of B images over T steps thus
needs about ``13 * T * B * neurons`` bytes (twice that to train).  That estimate,
not an exact count, is compared with the memory the arrays live in (the host's
RAM, or the GPU's), so that a ``--timesteps`` or batch size far out of reach
fails in one line naming the size instead of inside NumPy or CuPy.
"""
from __future__ import annotations

import os

import numpy as np

from .errors import ResourceError

#: Bytes the forward keeps per neuron, step and image (see the module's docstring).
BYTES_PER_NEURON_STEP = 13


def device_memory(xp) -> int:
    """Bytes of memory the arrays of ``xp`` live in: the GPU's for CuPy, else the
    host's physical RAM."""
    cuda = getattr(xp, "cuda", None)
    if cuda is not None:
        return int(cuda.runtime.memGetInfo()[1])
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def pass_bytes(net, images: int, T: int, training: bool) -> int:
    """Estimated bytes of one pass of ``images`` images over ``T`` steps (Python
    integers: no overflow however large the counts)."""
    neurons = sum(net.neurons.values()) + int(np.prod(net.input_shape))
    return BYTES_PER_NEURON_STEP * int(T) * int(images) * neurons * (2 if training else 1)


def size_text(n: int) -> str:
    """``n`` bytes in binary units (``2.3 GiB``)."""
    if n < 1024:
        return f"{n} B"
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        n /= 1024
        if n < 1024 or unit == "EiB":
            return f"{n:.3g} {unit}" if n < 1000 else f"{n:,.0f} {unit}"
    return ""


def check_bytes(need: int, xp, what: str) -> None:
    """Raise :class:`~diet_np.errors.ResourceError` when ``need`` bytes of arrays cannot
    fit in ``xp``'s memory; ``what`` says what needs them."""
    have = device_memory(xp)
    if need > have:
        where = "GPU" if getattr(xp, "cuda", None) is not None else "memory"
        raise ResourceError(f"{what} needs about {size_text(need)} of arrays; this machine's "
                            f"{where} holds {size_text(have)}")


def check_fits(net, images: int, T: int, xp, *, training: bool, what: str) -> None:
    """Refuse (:func:`check_bytes`) a pass of ``images`` images over ``T`` steps that
    cannot fit; ``what`` names the setting (``--timesteps 1000000``)."""
    check_bytes(pass_bytes(net, images, T, training), xp,
                f"{what}: {'training on' if training else 'a pass of'} {images} images over "
                f"T={T} steps")
