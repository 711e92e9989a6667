"""The ten lessons, shipped with the package: where they are, listing them, copying them.

The lessons are Python files in jupytext's percent format (``# %%`` cells). In a
checkout they are the repository's ``lessons/`` folder; a built wheel carries a copy
of that folder as ``diet_np/lessons/files/`` (``setup.py`` puts it there), so that
``diet-np lessons --copy DIR`` gives an installed user files to run and edit. The
helpers the lessons import (quick mode, saving figures) are in
:mod:`diet_np.lessons.common`, and the figures they draw in
:mod:`diet_np.lessons.figures`.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import RunError
from ..outputs import check_output_folder, writing

PACKAGED = Path(__file__).resolve().parent / "files"
CHECKOUT = Path(__file__).resolve().parents[2] / "lessons"


def lesson_dir() -> Path:
    """The folder holding the lesson files: the wheel's copy, else the checkout's."""
    for folder in (PACKAGED, CHECKOUT):
        if folder.is_dir():
            return folder
    raise RunError(f"no lessons found: neither {PACKAGED} nor {CHECKOUT} exists "
                   "(is this a partial install?)")


def lesson_files(folder: Path | None = None) -> list[Path]:
    """The lesson files (``NN_name.py``), in order."""
    return sorted((folder or lesson_dir()).glob("[0-9][0-9]_*.py"))


def lesson_title(path: Path) -> str:
    """The lesson's title: the first markdown heading of its first markdown cell."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# # "):
            return line[4:].strip()
    raise ValueError(f"{path.name}: no '# # Title' line in its first markdown cell")


def copy_lessons(dest) -> list[Path]:
    """Copy the lessons and their README into ``dest`` (created if needed); return the
    written paths. Refuses before writing anything if any target file already exists or
    the folder cannot be written; a copy that fails midway is taken back."""
    dest = Path(check_output_folder(dest, "lessons --copy"))
    sources = lesson_files() + [lesson_dir() / "README.md"]
    clashes = [src.name for src in sources if (dest / src.name).exists()]
    if clashes:
        raise RunError(f"refusing to overwrite {len(clashes)} existing file(s) in {dest} "
                       f"(nothing was copied): {', '.join(clashes)}")
    made, written = not dest.exists(), []
    try:
        with writing(dest):
            dest.mkdir(parents=True, exist_ok=True)
            for src in sources:
                written.append(Path(shutil.copy2(src, dest / src.name)))
    except RunError:                  # a full disk, say: take back what was copied
        for path in written:
            path.unlink(missing_ok=True)
        if made and dest.is_dir() and not any(dest.iterdir()):
            dest.rmdir()
        raise
    return written


def lessons_command(args) -> None:
    """``diet-np lessons``: ``--list`` prints the lessons, ``--copy DIR`` copies them."""
    if args.copy is None:
        print(f"lessons in {lesson_dir()}:")
        for path in lesson_files():
            print(f"  {path.name:<36} {lesson_title(path)}")
        print("copy them to a folder of your own with: diet-np lessons --copy DIR")
        return
    written = copy_lessons(args.copy)
    print(f"copied {len(written)} files to {args.copy}; run one with, for example:")
    print(f"  cd {args.copy} && DIET_NP_QUICK=1 python {written[0].name}")
