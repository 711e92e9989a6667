"""Small helpers shared by the lessons: quick mode, where figures go, how they are shown.

* ``QUICK`` is true when the environment variable ``DIET_NP_QUICK`` is set to
  anything but ``""`` or ``"0"``; lessons then use smaller sizes (the test suite
  and the lesson site run them this way).
* Figures are saved as PNG to ``$DIET_NP_LESSON_OUT`` or, by default, to a
  ``figures/`` folder beside the lesson being run (``lessons/figures/`` in a
  checkout, git-ignored; in a notebook, beside the notebook), and shown as well
  when the lesson runs interactively (inside Jupyter/IPython, or with
  ``DIET_NP_SHOW=1``).
* ``HERE`` is the folder holding the lesson files (see :func:`diet_np.lessons.lesson_dir`),
  so that one lesson can run another.
* In quick mode NumPy's BLAS is limited to one thread (when it is OpenBLAS and the
  platform lets us find it): on a busy machine, BLAS worker threads that compete with
  other processes can make the small matrix products of the lessons ten times slower.
"""
from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from . import lesson_dir

HERE = lesson_dir()


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


QUICK = _flag("DIET_NP_QUICK")


def blas_threads(n=None):
    """The number of OpenBLAS threads NumPy uses, after setting it to ``n`` if given.

    Returns None where it cannot be found (not Linux, or not OpenBLAS).
    """
    from diet_np.fast.parallel import openblas

    lib = openblas()
    if lib is None:
        return None
    if n is not None:
        lib.set_threads(n)
    return lib.threads


if QUICK:
    blas_threads(1)


def interactive() -> bool:
    """True inside a Jupyter/IPython kernel or when DIET_NP_SHOW=1."""
    return _flag("DIET_NP_SHOW") or "ipykernel" in sys.modules


import matplotlib  # noqa: E402  (the backend must be chosen before pyplot is used)

if not interactive():
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

plt.rcParams.update({"figure.dpi": 100, "figure.constrained_layout.use": True,
                     "axes.grid": True, "grid.alpha": 0.3,
                     "font.size": 10, "axes.titlesize": 11})


def pick(quick, full):
    """``quick`` in quick mode, else ``full``."""
    return quick if QUICK else full


def _running_lesson_folder() -> Path:
    """The folder of the script being run (``python 01_lif_neuron.py``, or ``runpy``);
    in a notebook, the working directory (a kernel starts in the notebook's folder)."""
    in_kernel = "ipykernel" in sys.modules        # whose __main__ is the kernel's launcher
    script = None if in_kernel else getattr(sys.modules.get("__main__"), "__file__", None)
    return Path(script).resolve().parent if script else Path.cwd()


def figure_dir() -> Path:
    """The folder figures are written to (created if needed)."""
    out = Path(os.environ.get("DIET_NP_LESSON_OUT") or _running_lesson_folder() / "figures")
    out.mkdir(parents=True, exist_ok=True)
    return out


def save(fig, name: str) -> None:
    """Save ``fig`` as ``<figure_dir>/<name>.png``; show it when interactive, else close it.

    Returns nothing, so that a notebook cell ending in ``save(...)`` shows only the figure.
    """
    path = figure_dir() / f"{name}.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    print(f"[figure] {path}")
    if interactive():
        plt.show()
    else:
        plt.close(fig)


@contextmanager
def timer(label: str):
    """Print how long the block took."""
    start = time.perf_counter()
    yield
    print(f"[time] {label}: {time.perf_counter() - start:.1f} s")
