"""The one switch between the reference path and the fast path.

diet_np computes everything twice over, once to be read and once to be fast:

* ``"reference"``: the plain functions of :mod:`diet_np.lif` (Eq. 2-5, 10-14),
  :mod:`diet_np.ops` (im2col convolution, pooling, dropout, linear) and
  :class:`diet_np.optim.Adam`'s plain update, each a few lines citing its
  equations.  This is the code the tests hold everything else to.
* ``"fast"`` (the default): :mod:`diet_np.fast`, the same results (equal to
  rounding; see each module) from threaded CPU blocks, Winograd convolutions,
  fused CUDA kernels, boolean spikes and in-place reuse.

A pass chooses with ``Network.forward(..., engine=...)`` (a name or an
:class:`Engine`); the choice, with its settings filled in, is kept in the
:class:`~diet_np.network.Trace`, and each layer's cache records which ops made
it, so the backward pass runs the same engine and the same convolution
algorithm as its forward.  Settings left ``None`` take their documented
defaults from the environment (:mod:`diet_np.settings`).

Process-wide settings (glibc's malloc) are never changed by a library call;
the command line calls :func:`apply_process_settings` once.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace

from . import settings
from .fast import parallel
from .fast.host_memory import keep_freed_memory

ENGINES = ("reference", "fast")
DEFAULT_ENGINE = "fast"


@dataclass(frozen=True)
class Engine:
    """Which path a pass runs, and the fast path's settings.

    ``conv``: ``auto``, ``im2col``, ``winograd`` or ``winograd-4x4`` (see
    :func:`diet_np.fast.conv.algorithm`); ``threads``: workers of the CPU pool;
    ``fused_lif``: the fused CUDA LIF kernels on CuPy.  ``None`` takes the
    environment's default; the reference engine ignores all three.
    """
    name: str = DEFAULT_ENGINE
    conv: str | None = None
    threads: int | None = None
    fused_lif: bool | None = None

    def __post_init__(self):
        if self.name not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}; got {self.name!r}")
        if self.conv is not None and self.conv not in settings.CONV_ALGORITHMS:
            raise ValueError(f"conv must be one of {', '.join(settings.CONV_ALGORITHMS)}; "
                             f"got {self.conv!r}")
        if self.threads is not None and (isinstance(self.threads, bool) or not
                                         isinstance(self.threads, int) or self.threads < 1):
            raise ValueError(f"threads must be an integer >= 1; got {self.threads!r}")

    @property
    def fast(self) -> bool:
        return self.name == "fast"

    def resolved(self) -> "Engine":
        """This engine with every ``None`` setting replaced by its default (the
        reference engine has none to fill)."""
        if not self.fast:
            return self
        return replace(self,
                       conv=settings.conv_algorithm() if self.conv is None else self.conv,
                       threads=settings.threads() if self.threads is None else self.threads,
                       fused_lif=settings.fused_lif() if self.fused_lif is None
                       else self.fused_lif)

    def scope(self, xp):
        """Context for one forward or backward pass: the fast engine's CPU pool
        with this engine's worker count (OpenBLAS single-threaded meanwhile)."""
        if not self.fast:
            return contextlib.nullcontext()
        return parallel.pool_scope(xp, self.threads)


def get_engine(engine=None) -> Engine:
    """An :class:`Engine` from a name (``"reference"``, ``"fast"``), an
    :class:`Engine`, or ``None`` (the default, ``"fast"``), settings resolved."""
    if engine is None:
        engine = Engine()
    elif isinstance(engine, str):
        engine = Engine(engine)
    elif not isinstance(engine, Engine):
        raise TypeError(f"engine must be 'reference', 'fast' or an Engine; got {engine!r}")
    return engine.resolved()


def apply_process_settings() -> bool:
    """What the command line sets for the whole process before it trains: glibc
    keeps freed memory for the next step (:func:`diet_np.fast.host_memory.keep_freed_memory`)
    unless ``DIET_NP_KEEP_MEMORY=0``.  Returns whether malloc was changed."""
    return keep_freed_memory()
