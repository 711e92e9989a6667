"""Build the lesson site: every lesson executed into a page, plus the API reference.

    pip install -e '.[docs]' && python docs/build_site.py        # -> site/index.html

1. Each lesson (``lessons/NN_*.py``, jupytext percent format) becomes a notebook and is
   executed in a Jupyter kernel, in full mode where that takes seconds and in quick mode
   (``DIET_NP_QUICK=1``) where it takes minutes (``QUICK`` below); a cell at the top of
   the page says which. Executed notebooks are cached under ``build/lesson-cache/``,
   keyed by the lesson's text, the library's source and the mode, so a rebuild executes
   only what changed.
2. The notebooks, the pages of ``docs/`` and a local copy of MathJax (from the
   ``jupyter-server-mathjax`` package, so equations typeset without a network) are
   staged in a temporary folder, and ``mkdocs build`` turns them into ``site/``:
   mkdocs-jupyter renders the notebooks (with a download button for each executed
   ``.ipynb``), mkdocstrings the API reference from the docstrings.

``--lessons 01 05`` builds with those lessons only (the test does this); ``--out DIR``
writes the site elsewhere. The site works from disk; its search needs it served
(``python -m http.server -d site``).
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
LESSONS = ROOT / "lessons"
CACHE = ROOT / "build" / "lesson-cache"

QUICK = {"05", "07", "08", "09", "10"}
"""Lessons executed in quick mode: their full runs take from tens of seconds to minutes
(lessons/README.md lists the times); the others run in full."""

MATHJAX_FONTS = """\
MathJax.Hub.Config({"HTML-CSS": {availableFonts: ["STIX-Web"], preferredFont: "STIX-Web",
                                 webFont: "STIX-Web", imageFont: null}});
MathJax.Ajax.loadComplete("[MathJax]/config/local/stix-web.js");
"""
"""jupyter-server-mathjax ships MathJax 2 with the STIX-Web fonts only; MathJax's default,
the TeX fonts, would fail on some symbols (a prime, for one) with "Math Processing Error".
mkdocs.yml names this file in the MathJax URL (``config=...,local/stix-web``)."""

MODE_NOTE = {
    True: ("**This page was executed in quick mode** (`DIET_NP_QUICK=1`): smaller data, "
           "fewer epochs and timesteps than the full lesson, so its numbers and figures are "
           "those of the short run. `python {name}` runs the full lesson."),
    False: "This page was executed in full mode, exactly as `python {name}` runs it.",
}


def library_digest() -> str:
    """A hash of the library's source: a change there can change any lesson's output."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "diet_np").rglob("*.py")):
        digest.update(path.relative_to(ROOT).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


def execute_lesson(path: Path, quick: bool, library: str):
    """The lesson as an executed notebook, from the cache when its inputs are unchanged."""
    import jupytext
    import nbformat
    from nbclient import NotebookClient

    key = hashlib.sha256(path.read_bytes() + library.encode() + bytes([quick])).hexdigest()
    cached = CACHE / f"{path.stem}-{key[:16]}.ipynb"
    if cached.is_file():
        print(f"  {path.name}: cached")
        return nbformat.read(cached, as_version=4)
    notebook = jupytext.read(path)
    notebook.cells.insert(1, nbformat.v4.new_markdown_cell(MODE_NOTE[quick].format(name=path.name)))
    workdir = CACHE / "run"
    workdir.mkdir(parents=True, exist_ok=True)
    env = {"DIET_NP_QUICK": "1" if quick else "0", "DIET_NP_LESSON_OUT": "figures",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    saved = {k: os.environ.get(k) for k in [*env, "MPLBACKEND"]}
    os.environ.update(env)
    os.environ.pop("MPLBACKEND", None)            # let the kernel draw inline
    start = time.perf_counter()
    try:
        NotebookClient(notebook, timeout=1800, kernel_name="python3",
                       resources={"metadata": {"path": str(workdir)}}).execute()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    print(f"  {path.name}: executed in {'quick' if quick else 'full'} mode, "
          f"{time.perf_counter() - start:.0f} s")
    for stale in CACHE.glob(f"{path.stem}-*.ipynb"):
        stale.unlink()
    nbformat.write(notebook, cached)
    return notebook


def stage(lessons: list[Path], folder: Path) -> list[dict]:
    """Fill ``folder`` with the pages, the executed notebooks and MathJax; return the nav."""
    import jupyter_server_mathjax
    import nbformat

    from diet_np.lessons import lesson_title

    shutil.copytree(DOCS, folder, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.py", "*.yml", "overrides", "__pycache__"))
    shutil.copytree(Path(jupyter_server_mathjax.__file__).parent / "static",
                    folder / "assets" / "mathjax")
    fonts = folder / "assets" / "mathjax" / "config" / "local" / "stix-web.js"
    fonts.parent.mkdir()
    fonts.write_text(MATHJAX_FONTS)
    (folder / "lessons").mkdir()
    library = library_digest()
    nav, rows = [], ["| # | lesson | executed in |", "| --- | --- | --- |"]
    for path in lessons:
        number = path.name[:2]
        notebook = execute_lesson(path, number in QUICK, library)
        nbformat.write(notebook, folder / "lessons" / f"{path.stem}.ipynb")
        title = lesson_title(path)
        nav.append({title: f"lessons/{path.stem}.ipynb"})
        rows.append(f"| {int(number)} | [{title}](lessons/{path.stem}.ipynb) | "
                    f"{'quick mode' if number in QUICK else 'full mode'} |")
    index = folder / "index.md"
    index.write_text(index.read_text().replace("LESSON_TABLE", "\n".join(rows)))
    api = [{p.read_text().splitlines()[0].lstrip("# "): f"api/{p.name}"}
           for p in sorted((DOCS / "api").glob("*.md"))]
    return [{"Home": "index.md"}, {"Lessons": nav}, {"Results on a CPU": "recipe.md"},
            {"API reference": api}]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lessons", nargs="+", metavar="NN",
                        help="build with these lessons only (default: all ten)")
    parser.add_argument("--out", default=str(ROOT / "site"), help="where the site goes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.path.insert(0, str(ROOT))
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    from diet_np.lessons import lesson_files

    lessons = lesson_files(LESSONS)
    if args.lessons:
        unknown = set(args.lessons) - {p.name[:2] for p in lessons}
        if unknown:
            parser.error(f"no such lesson(s): {', '.join(sorted(unknown))}")
        lessons = [p for p in lessons if p.name[:2] in args.lessons]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="diet-np-site-") as folder:
        nav = stage(lessons, Path(folder))
        config = load_config(str(DOCS / "mkdocs.yml"), docs_dir=folder,
                             site_dir=str(Path(args.out).resolve()), nav=nav)
        # mkdocs-jupyter caches its conversions in the working directory by default
        config.plugins["mkdocs-jupyter"].config["cache_dir"] = str(CACHE / "mkdocs-jupyter")
        config.plugins.on_startup(command="build", dirty=False)
        try:
            build(config)
        finally:
            config.plugins.on_shutdown()
    print(f"site written to {args.out}/index.html in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
