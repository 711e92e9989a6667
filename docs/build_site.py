"""Build the site: the lessons executed into pages, the project's pages, the API reference.

    pip install -e '.[docs]' && python docs/build_site.py        # -> site/index.html

1. Each lesson (``lessons/NN_*.py``, jupytext percent format) becomes a notebook and is
   executed in a Jupyter kernel, in full mode where that takes seconds and in quick mode
   (``DIET_NP_QUICK=1``) where it takes minutes (``QUICK`` below); a cell at the top of
   the page says which. The kernel runs with one BLAS thread (``BLAS_ENV``), as the
   lessons recommend for their timings. Executed notebooks are cached under
   ``build/lesson-cache/``, keyed by the lesson's text, the library's source and the
   mode, so a rebuild executes only what changed.
2. Each executed notebook is tidied for reading (``tidy``): the ``[figure] path`` lines
   a lesson prints become the alt text of the figure they announce, and Markdown tables
   a lesson prints become rendered tables.
3. The notebooks, the pages of ``docs/`` (links into the repository turned into links
   within the site, ``site_links``), the course map of ``lessons/README.md`` on the home
   page (at its ``<!-- COURSE_MAP -->`` comment) and a local copy of MathJax (from the
   ``jupyter-server-mathjax`` package, so equations typeset without a network) are
   staged in a temporary folder, and
   ``mkdocs build --strict`` turns them into ``site/``: any warning (a module of the API
   pages that does not import, a broken link, a page left out of the navigation) fails
   the build.

``--lessons 01 05`` executes those lessons only and puts a short stand-in page in place
of each other lesson (the test suite builds this way); ``--out DIR`` writes the site
elsewhere. The site works from disk; its search needs it served
(``python -m http.server -d site``).
"""
from __future__ import annotations

import argparse
import hashlib
import html
import logging
import os
import re
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

BLAS_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
"""One BLAS thread in the kernel: lessons 5 and 6 explain that BLAS worker threads
competing for the cores make their small products and their timings erratic."""

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
STAND_IN = ("*This lesson was not executed in this build of the site* (`build_site.py "
            "--lessons ...`); the full build executes it. Read it as a script: "
            "`lessons/{name}`.")

FIGURE_LINE = re.compile(r"^\[figure\] (.+)\n?", re.M)
TABLE = re.compile(r"(?:^\|.*\|[ \t]*\n)(?:^\|[ :|-]+\|[ \t]*\n)(?:^\|.*\|[ \t]*(?:\n|$))*", re.M)
DOCS_LINK = re.compile(r"\]\(\.\./docs/([\w/]+)\.md(#[^)\s]*)?\)")
REPO_LINK = re.compile(r"\[([^\]]+)\]\(\.\./([^)#\s]+)(#[^)\s]*)?\)")


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

    key = hashlib.sha256(path.read_bytes() + library.encode() + bytes([quick])
                         + repr(sorted(BLAS_ENV.items())).encode()).hexdigest()
    cached = CACHE / f"{path.stem}-{key[:16]}.ipynb"
    if cached.is_file():
        print(f"  {path.name}: cached")
        return nbformat.read(cached, as_version=4)
    notebook = jupytext.read(path)
    notebook.cells.insert(1, nbformat.v4.new_markdown_cell(MODE_NOTE[quick].format(name=path.name)))
    workdir = CACHE / "run"
    workdir.mkdir(parents=True, exist_ok=True)
    env = {"DIET_NP_QUICK": "1" if quick else "0", "DIET_NP_LESSON_OUT": "figures", **BLAS_ENV,
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


def stand_in(path: Path):
    """A page in place of a lesson this build does not execute: its title and a note."""
    import nbformat

    from diet_np.lessons import lesson_title

    return nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell(f"# {lesson_title(path)}"),
        nbformat.v4.new_markdown_cell(STAND_IN.format(name=path.name))])


def figure_alt(path: str) -> str:
    """``figures/03_unrolled_graph.png`` -> ``unrolled graph (figure 03_unrolled_graph.png)``."""
    name = Path(path.strip()).name
    words = re.sub(r"^\d+_", "", Path(name).stem).replace("_", " ")
    return f"{words} (figure {name})"


def split_tables(text: str) -> list[tuple[str, str]]:
    """Printed text cut into ``("text", ...)`` and ``("table", ...)`` pieces, in order:
    a table is a header row, a ``|---|`` row and the rows after it."""
    pieces, at = [], 0
    for match in TABLE.finditer(text):
        pieces += [("text", text[at:match.start()]), ("table", match.group(0))]
        at = match.end()
    pieces.append(("text", text[at:]))
    return [(kind, piece) for kind, piece in pieces if piece.strip()]


def tidy(notebook):
    """The notebook as it should read on the site (changed in place, and returned): each
    ``[figure] path`` line a lesson prints is removed and becomes the alt text of the next
    image of its cell (an HTML ``<img>`` beside the PNG: nbconvert writes no alt text);
    Markdown tables printed by a lesson become rendered tables; a link of the prose to a
    page of ``docs/`` (``../docs/equations.md``) becomes a link to that page of the site."""
    import nbformat

    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            cell.source = DOCS_LINK.sub(lambda m: f"](../{m.group(1)}.html{m.group(2) or ''})",
                                        cell.source)
        if cell.cell_type != "code":
            continue
        outputs, alts = [], []
        for out in cell.outputs:
            if out.output_type == "stream":
                alts += [figure_alt(p) for p in FIGURE_LINE.findall(out.text)]
                for kind, piece in split_tables(FIGURE_LINE.sub("", out.text)):
                    if kind == "text":
                        outputs.append(nbformat.v4.new_output("stream", name=out.name, text=piece))
                    else:
                        outputs.append(nbformat.v4.new_output(
                            "display_data", data={"text/markdown": piece, "text/plain": piece}))
                continue
            if "image/png" in out.get("data", {}):          # the site shows the HTML
                alt = html.escape(alts.pop(0) if alts else "a figure of the lesson")
                out.data["text/html"] = (f'<img alt="{alt}" '
                                         f'src="data:image/png;base64,{out.data["image/png"]}">')
            outputs.append(out)
        cell.outputs = outputs
    return notebook


def api_pages() -> dict[str, str]:
    """``{module: "api/page.md"}`` for every module an API page documents (``::: module``)."""
    modules = {}
    for page in sorted((DOCS / "api").glob("*.md")):
        for module in re.findall(r"^::: *(\S+)", page.read_text(), re.M):
            modules[module] = f"api/{page.name}"
    return modules


def site_links(text: str, modules: dict[str, str]) -> str:
    """The links of a page of ``docs/`` that leave the folder (``../diet_np/lif.py``, which
    a reader of the repository follows) as links within the site: a module of the package
    to its API page (to the function when the link text is one: ``[`lif_step`](...)``),
    a lesson to its page, the READMEs to the home page; any other file as plain text."""
    def link(match):
        text, target = match.group(1), match.group(2)
        if target.startswith("diet_np/") and target.endswith(".py"):
            module = target[:-3].replace("/", ".").removesuffix(".__init__")
            name = text.strip("`").split("(")[0] if text.startswith("`") else ""
            anchor = f"{module}.{name}" if name and not name.endswith(".py") else module
            return f"[{text}]({modules[module]}#{anchor})"
        if re.fullmatch(r"lessons/\d\d_\w+\.py", target):
            return f"[{text}]({target[:-3]}.ipynb)"
        if target in ("README.md", "lessons/README.md"):
            return f"[{text}](index.md)"
        return text
    return REPO_LINK.sub(link, text)


def course_map(lessons_readme: str, executed: dict[str, str]) -> str:
    """The table of ``lessons/README.md`` for the home page: each lesson linked to its page,
    what it teaches, what it assumes, its equations, and how this site executed it."""
    rows = ["| # | lesson | what it teaches | assumes | equations | on this site |",
            "| --- | --- | --- | --- | --- | --- |"]
    for line in lessons_readme.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 5 or not cells[0].isdigit():
            continue
        number, file = cells[0].zfill(2), re.search(r"`(\d\d_\w+)\.py`", cells[1]).group(1)
        rows.append(f"| {int(number)} | [{file}](lessons/{file}.ipynb) | {cells[2]} | "
                    f"{cells[3]} | [{cells[4]}](equations.md) | {executed[number]} |")
    return "\n".join(rows)


def stage(lessons: list[Path], run: set[str], folder: Path) -> list:
    """Fill ``folder`` with the pages, the notebooks and MathJax; return the lessons' nav."""
    import importlib.util

    import nbformat

    from diet_np.lessons import lesson_title

    shutil.copytree(DOCS, folder, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("*.py", "*.yml", "overrides", "__pycache__"))
    # the package's folder, found without importing it (that would import a Jupyter server)
    mathjax = importlib.util.find_spec("jupyter_server_mathjax").submodule_search_locations[0]
    shutil.copytree(Path(mathjax) / "static", folder / "assets" / "mathjax")
    fonts = folder / "assets" / "mathjax" / "config" / "local" / "stix-web.js"
    fonts.parent.mkdir()
    fonts.write_text(MATHJAX_FONTS)
    (folder / "lessons").mkdir()
    library = library_digest()
    nav, executed = [], {}
    for path in lessons:
        number = path.name[:2]
        if number in run:
            notebook = tidy(execute_lesson(path, number in QUICK, library))
            executed[number] = "quick mode" if number in QUICK else "full mode"
        else:
            notebook, executed[number] = stand_in(path), "not in this build"
        nbformat.write(notebook, folder / "lessons" / f"{path.stem}.ipynb")
        nav.append({lesson_title(path): f"lessons/{path.stem}.ipynb"})
    modules = api_pages()
    for page in folder.glob("*.md"):
        page.write_text(site_links(page.read_text(), modules))
    index = folder / "index.md"
    index.write_text(re.sub(r"<!-- COURSE_MAP.*?-->", lambda _: course_map(
        (LESSONS / "README.md").read_text(), executed), index.read_text()))
    return nav


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lessons", nargs="+", metavar="NN",
                        help="execute these lessons only; the others get a stand-in page")
    parser.add_argument("--out", default=str(ROOT / "site"), help="where the site goes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.path.insert(0, str(ROOT))
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    from diet_np.lessons import lesson_files

    lessons = lesson_files(LESSONS)
    numbers = {p.name[:2] for p in lessons}
    unknown = set(args.lessons or ()) - numbers
    if unknown:
        parser.error(f"no such lesson(s): {', '.join(sorted(unknown))}")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="diet-np-site-") as folder:
        lesson_nav = stage(lessons, set(args.lessons or numbers), Path(folder))
        config = load_config(str(DOCS / "mkdocs.yml"), docs_dir=folder,
                             site_dir=str(Path(args.out).resolve()))
        config.nav = [{"Lessons": lesson_nav} if entry == {"Lessons": "lessons"} else entry
                      for entry in config.nav]
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
