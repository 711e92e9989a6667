"""Output paths: checked before any long work starts, never written over unasked.

Every file-system failure while writing becomes a :class:`~diet_np.errors.RunError`
that names the path (disk full, permission denied, a file where a folder should be).
"""
from __future__ import annotations

import contextlib
import glob
import os

from .errors import RunError

#: The files a training run writes into its folder.
RUN_FILES = ("checkpoint.npz", "log.jsonl", "curves.png")


def _why(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


@contextlib.contextmanager
def writing(path):
    """Turn an ``OSError`` raised while writing ``path`` into a one-line RunError."""
    try:
        yield
    except OSError as exc:
        raise RunError(f"cannot write {path}: {_why(exc)}") from exc


def _check_writable(path: str, what: str, folder: bool) -> None:
    """Check the folder that writing ``path`` writes into: ``path`` itself when it is
    a folder already there (``folder``: ``path`` names a folder), else the nearest
    folder above it that exists, where the missing ones will be made.  It must be a
    folder the process may write in (:func:`os.access`, which also sees a read-only
    file system); a writable run folder under a read-only parent passes."""
    existing = os.path.abspath(path)
    if not (folder and os.path.isdir(existing)):
        existing = os.path.dirname(existing)
        while not os.path.exists(existing):
            existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise RunError(f"{what} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RunError(f"{what} {path}: folder {existing} is not writable")


def check_output_folder(path, what="--out") -> str:
    """Check, changing nothing, that files can be written into the folder ``path``
    (there already, or to be made): not a file, and writable."""
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise RunError(f"{what} {path} is a file, not a folder")
    _check_writable(path, what, folder=True)
    return path


def check_run_dir(path, *, resume: bool, overwrite: bool, what="run folder") -> list[str]:
    """Check, changing nothing, that ``path`` can hold a training run: a folder
    (or a path where one can be made) that is writable, and whose earlier run,
    if any, is to be continued (``resume``) or replaced (``overwrite``).
    Returns the run files found there."""
    path = check_output_folder(path, what)
    found = [f for f in RUN_FILES if os.path.exists(os.path.join(path, f))]
    if found and not (resume or overwrite):
        raise RunError(f"{what} {path} already holds a run ({', '.join(found)}); pass "
                       "--resume to continue it, --overwrite to start it again, or choose "
                       "another --out")
    return found


def prepare_run_dir(path, *, resume: bool, overwrite: bool, what="run folder") -> str:
    """Create the run folder ``path`` (or accept an existing one) for a training run.

    :func:`check_run_dir` first; an earlier run there is then kept for
    ``resume`` or, with ``overwrite``, its run files are removed.  Stale
    temporary files of an interrupted checkpoint or log write
    (``.checkpoint.npz.*.tmp``, written by diet_np) are removed.
    """
    path = os.fspath(path)
    found = check_run_dir(path, resume=resume, overwrite=overwrite, what=what)
    with writing(path):
        os.makedirs(path, exist_ok=True)
        if not resume:
            for f in found:
                os.remove(os.path.join(path, f))
    for f in RUN_FILES:
        for tmp in glob.glob(os.path.join(glob.escape(path), f".{f}.*.tmp")):
            with contextlib.suppress(OSError):
                os.remove(tmp)
    return path


def check_output_file(path, *, overwrite: bool, inputs=(), what="--out") -> str:
    """Check that a single output file can be written at ``path``: not a folder,
    not one of the command's ``inputs``, not an existing file unless
    ``overwrite``, under a writable folder.  Changes nothing: the missing parent
    folders are made when the file is written (:func:`diet_np.checkpoint.atomic_write`)."""
    path = os.fspath(path)
    for src in inputs:
        if os.path.exists(src) and os.path.exists(path) and os.path.samefile(src, path) \
                or os.path.abspath(src) == os.path.abspath(path):
            raise RunError(f"{what} {path} is the command's input {src}: choose another path")
    if os.path.isdir(path):
        raise RunError(f"{what} {path} is a folder; give a file name such as "
                       f"{os.path.join(path, 'converted.npz')}")
    if os.path.exists(path) and not overwrite:
        raise RunError(f"{what} {path} already exists; pass --overwrite to replace it or "
                       "choose another path")
    _check_writable(path, what, folder=False)
    return path
