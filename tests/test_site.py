"""The site: its pages, their navigation, its build, and the pages as a browser shows them.

Default suite (fast; the build test needs the ``[docs]`` extra and skips without it):

* every ``::: module`` of the API pages imports, and every module of the package is on
  one of them, so a module that moves or appears cannot leave the reference stale;
* every page of ``docs/`` is in the navigation of ``docs/mkdocs.yml``;
* the tidying of executed lessons (``[figure]`` lines to alt text, printed tables to
  tables) and the rewriting of repository links, on small inputs;
* a quick build, ``docs/build_site.py --lessons 01`` (lesson 1 executed, cached under
  ``build/lesson-cache/`` afterwards, the other lessons as stand-in pages), which runs
  ``mkdocs build --strict``: a module that does not import, a broken link or anchor, a
  page left out of the navigation fails it.

Slow, opt in (``python -m pytest -m slow tests/test_site.py --basetemp /tmp/site-test``):
the full build (every lesson executed; minutes the first time, then from the cache)
served on the loopback interface and opened in headless Chromium at 1280 px. From the
page as the browser rendered it: typeset equations on every lesson page and on the
equations page, every figure loaded and described, no raw ``:func:``-style roles, no
code block wider than its box. A screenshot of every page is written beside the site
(look at them). Skipped without the ``[docs]`` extra or a Chromium
(Debian: ``apt-get install chromium``).
"""
import functools
import http.server
import importlib
import importlib.util
import json
import pkgutil
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import diet_np

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS))
DOCS_MODULES = ("mkdocs", "material", "mkdocs_jupyter", "mkdocstrings_handlers.python",
                "jupytext", "nbclient", "ipykernel", "jupyter_server_mathjax", "nbformat")
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser",
                                                 "google-chrome"))), None)
#: Modules with nothing for the reference: the command line's argument parsing.
NOT_IN_REFERENCE = {"diet_np", "diet_np.__main__", "diet_np.cli"}
ROLE = re.compile(r":(?:func|mod|class|meth|attr|data|obj|exc):`")


def _missing_docs_module():
    for name in DOCS_MODULES:
        try:
            if importlib.util.find_spec(name) is None:
                return name
        except ModuleNotFoundError:
            return name
    return None


needs_docs = pytest.mark.skipif(_missing_docs_module() is not None,
                                reason=f"needs the [docs] extra ({_missing_docs_module()} missing)")


def build(out, *lessons):
    """Run docs/build_site.py (with these lessons only, if any) into ``out``."""
    argv = [sys.executable, str(DOCS / "build_site.py"), "--out", str(out)]
    done = subprocess.run(argv + (["--lessons", *lessons] if lessons else []), cwd=ROOT,
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return out


# -- the pages and their navigation -------------------------------------------------

def api_targets():
    return {module: page.name for page in (DOCS / "api").glob("*.md")
            for module in re.findall(r"^::: *(\S+)", page.read_text(), re.M)}


def test_every_api_target_imports_and_every_module_is_documented():
    targets = api_targets()
    for module in targets:
        importlib.import_module(module)          # a stale name fails here, naming it
    package = {m.name for m in pkgutil.walk_packages(diet_np.__path__, "diet_np.")}
    missing = package - set(targets) - NOT_IN_REFERENCE
    assert not missing, ("modules on no API page (add a '::: module' line to a page of "
                         f"docs/api/): {sorted(missing)}")


def nav_pages(nav):
    for entry in nav:
        for value in entry.values():
            if isinstance(value, list):
                yield from nav_pages(value)
            else:
                yield value


def test_every_docs_page_is_in_the_navigation():
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((DOCS / "mkdocs.yml").read_text())
    listed = set(nav_pages(config["nav"]))
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert pages - listed == set(), "add these pages to the nav of docs/mkdocs.yml"
    assert listed - pages == {"lessons"}, "the nav names pages that do not exist"


def test_the_sdist_carries_the_site_sources():
    """MANIFEST.in selects every file of docs/ (the equations page, the picture, the
    stylesheet...), so an unpacked sdist builds the same site."""
    from setuptools.command.egg_info import FileList

    selected = FileList()
    for line in (ROOT / "MANIFEST.in").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            selected.process_template_line(line)
    files = {p.relative_to(ROOT).as_posix() for p in DOCS.rglob("*")
             if p.is_file() and "__pycache__" not in p.parts}
    assert files - set(selected.files) == set()


# -- what build_site.py does to a lesson and to a page -------------------------------

@needs_docs
def test_figure_lines_become_alt_text_and_printed_tables_become_tables():
    import nbformat

    from build_site import tidy

    png = {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"}
    cell = nbformat.v4.new_code_cell("save(fig, 'x')")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text=(
            "before\n[figure] figures/03_unrolled_graph.png\n"
            "| run | acc |\n| --- | ---: |\n| DIET | 0.81 |\nafter\n")),
        nbformat.v4.new_output("display_data", data=png)]
    prose = nbformat.v4.new_markdown_cell("as [the equations page](../docs/equations.md#notation) "
                                          "numbers them")
    tidy(nbformat.v4.new_notebook(cells=[prose, cell]))
    assert prose.source == "as [the equations page](../equations.html#notation) numbers them"
    kinds = [(o.output_type, o.get("text", "").strip() or sorted(o.get("data", {})))
             for o in cell.outputs]
    assert kinds == [("stream", "before"),
                     ("display_data", ["text/markdown", "text/plain"]),
                     ("stream", "after"),
                     ("display_data", ["image/png", "text/html", "text/plain"])]
    assert cell.outputs[1].data["text/markdown"].startswith("| run | acc |")
    alt = 'alt="unrolled graph (figure 03_unrolled_graph.png)"'
    assert alt in cell.outputs[3].data["text/html"]
    assert "[figure]" not in json.dumps(cell.outputs)


@needs_docs
def test_docstrings_become_markdown():
    from roles import plain

    doc = ("See :func:`lif_step` and :mod:`diet_np.fast`.\n\n"
           "=====  ====\n``A``    first\n       more\n``B``    second\n=====  ====\n")
    assert plain(doc) == ("See `lif_step` and `diet_np.fast`.\n\n"
                          "| | |\n| --- | --- |\n| ``A`` | first more |\n| ``B`` | second |\n")


def test_repository_links_become_site_links():
    from build_site import site_links

    modules = {"diet_np.lif": "api/neurons.md", "diet_np.ops.conv": "api/ops.md"}
    page = ("[`lif_step`](../diet_np/lif.py), [`conv2d_backward`](../diet_np/ops/conv.py), "
            "[lesson 1](../lessons/01_lif_neuron.py), [the README](../README.md), "
            "[`benchmarks/README.md`](../benchmarks/README.md), [Results](results.md)")
    assert site_links(page, modules) == (
        "[`lif_step`](api/neurons.md#diet_np.lif.lif_step), "
        "[`conv2d_backward`](api/ops.md#diet_np.ops.conv.conv2d_backward), "
        "[lesson 1](lessons/01_lif_neuron.ipynb), [the README](index.md), "
        "`benchmarks/README.md`, [Results](results.md)")


def test_code_lines_fit_the_page():
    """Code blocks of the pages hold lines of at most 100 characters: at 1280 px they show
    whole, without sideways scrolling (the browser test measures it)."""
    for page in [*DOCS.rglob("*.md")]:
        for block in re.findall(r"^```\w*\n(.*?)^```", page.read_text(), re.S | re.M):
            long = [line for line in block.splitlines() if len(line) > 100]
            assert not long, f"{page.name}: {long[0][:60]}..."


# -- the quick build (default suite) --------------------------------------------------

@needs_docs
def test_the_quick_build_is_strict_and_complete(tmp_path):
    site = build(tmp_path / "site", "01")
    lessons = sorted(p.stem for p in (ROOT / "lessons").glob("[0-9][0-9]_*.py"))
    for name in ["index", "equations", "results", "performance", "architecture",
                 "checkpoints", "api/fast", *(f"lessons/{n}" for n in lessons)]:
        assert (site / f"{name}.html").is_file(), name
    index = (site / "index.html").read_text()
    assert all(f'href="lessons/{n}.html"' in index for n in lessons)     # the course map
    lesson = (site / "lessons" / "01_lif_neuron.html").read_text()
    assert "[figure]" not in lesson and lesson.count('alt="') >= 5
    assert 'class="md-footer__link md-footer__link--next"' in lesson    # previous / next
    for page in (site / "api").glob("*.html"):                          # roles rendered
        shown = re.sub(r'<details class="mkdocstrings-source">.*?</details>', "",
                       page.read_text(), flags=re.S)
        assert not ROLE.search(shown), page.name
    for page in set(site.rglob("*.html")) - {site / "404.html"}:         # no dead link
        for href in re.findall(r'<a [^>]*href="([^"#?]+)[^"]*"', page.read_text()):
            if not re.match(r"[a-z]+:", href):
                assert (page.parent / href).exists(), f"{page.relative_to(site)}: {href}"
    equations = (site / "equations.html").read_text()
    assert equations.count('class="arithmatex"') > 40
    assert 'href="api/neurons.html#diet_np.lif.lif_step"' in equations


# -- in a browser (slow) --------------------------------------------------------------

PROBE = """<!doctype html><meta charset="utf-8"><pre id="out">pending</pre>
<iframe id="page" style="width:1280px;height:900px;border:0"></iframe>
<script>
const frame = document.getElementById("page");
frame.src = decodeURIComponent(location.search.slice(1));
frame.onload = () => setTimeout(() => {
  const d = frame.contentDocument, w = frame.contentWindow;
  const text = d.querySelector(".md-content").cloneNode(true);
  text.querySelectorAll("details, script").forEach(e => e.remove());
  const codes = [...d.querySelectorAll(".highlight-ipynb pre, .md-typeset pre > code")];
  document.getElementById("out").textContent = JSON.stringify({
    typeset: d.querySelectorAll(".MathJax_Display, .MathJax").length,
    math_errors: d.querySelectorAll(".MathJax_Error, .merror").length,
    images: d.images.length,
    not_loaded: [...d.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt),
    no_alt: [...d.images].filter(i => !i.alt || i.alt.startsWith("No description")).length,
    overflowing: codes.filter(c => c.scrollWidth > c.clientWidth + 1)
                      .map(c => c.textContent.split("\\n").sort((a, b) => b.length - a.length)[0]),
    breaks_words: [...d.querySelectorAll(".jp-OutputArea-output pre")]
                      .filter(p => getComputedStyle(p).wordBreak === "break-all").length,
    text: text.textContent,
    page_width: d.documentElement.scrollWidth,
  });
}, 8000);
</script>"""


def chromium(*args):
    """Run headless Chromium; its stdout. The virtual time budget lets MathJax finish."""
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                           "--hide-scrollbars", "--virtual-time-budget=30000", *args],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The full build with the probe page, served on 127.0.0.1; yields (URL, site folder)."""
    site = build(tmp_path_factory.mktemp("site") / "site")
    (site / "probe.html").write_text(PROBE)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", site
    server.shutdown()


def probe(url, page):
    dom = chromium("--window-size=1300,1000", "--dump-dom", f"{url}/probe.html?{page}")
    found = re.search(r'<pre id="out">(.*?)</pre>', dom, re.S).group(1)
    assert found != "pending", f"{page} did not finish loading"
    import html
    return json.loads(html.unescape(found))


def maths(page):
    """How many equations (``$...$``, ``$$...$$``) the page's source holds, outside code."""
    source = (ROOT / f"{page}.py" if page.startswith("lessons/") else DOCS / f"{page}.md")
    if not source.is_file():
        return 0
    lines = source.read_text().splitlines()
    if source.suffix == ".py":                          # the prose of a percent notebook
        lines = [line[2:] for line in lines if line.startswith("# ")]
    prose = re.sub(r"```.*?```|`[^`\n]*`", "", "\n".join(lines), flags=re.S)
    return len(re.findall(r"\$\$.+?\$\$|\$[^$\s][^$\n]*?\$", prose, re.S))


PAGES = ["index", "equations", "architecture", "pipeline", "checkpoints", "results",
         "performance"] + [f"api/{p.stem}" for p in sorted((DOCS / "api").glob("*.md"))]
LESSONS = [f"lessons/{p.stem}" for p in sorted((ROOT / "lessons").glob("[0-9][0-9]_*.py"))]


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium)")
@needs_docs
@pytest.mark.parametrize("page", LESSONS + PAGES)
def test_each_page_in_a_browser_at_1280_px(served, page):
    url, site = served
    shot = site.parent / "screenshots" / f"{page.replace('/', '_')}.png"   # to look at
    shot.parent.mkdir(exist_ok=True)
    chromium("--window-size=1280,4000", f"--screenshot={shot}", f"{url}/{page}.html")
    assert shot.stat().st_size > 20_000
    seen = probe(url, f"{page}.html")
    assert seen["math_errors"] == 0
    assert seen["typeset"] >= maths(page), "equations left as TeX source"
    assert "$$" not in seen["text"], "an equation was left as TeX source"
    assert seen["not_loaded"] == [] and seen["no_alt"] == 0
    if page.startswith("lessons/"):
        assert seen["images"] >= 1
    assert seen["overflowing"] == [], "code lines wider than their box at 1280 px"
    assert seen["breaks_words"] == 0, "printed output would wrap inside words"
    assert seen["page_width"] <= 1280
    assert not ROLE.search(seen["text"]), "a raw Sphinx role"
    assert "[figure]" not in seen["text"] and "=====" not in seen["text"]
    assert not re.search(r"^\s*\|[^\n]*\|\s*$\n^\s*\|\s*-{3}", seen["text"], re.M), \
        "a Markdown table printed as text"


@pytest.mark.slow
@needs_docs
def test_the_executed_notebook_is_offered_for_download(served):
    url, site = served
    page = (site / "lessons" / "01_lif_neuron.html").read_text()
    assert re.search(r'<a[^>]*href="01_lif_neuron.ipynb"[^>]*download', page)
    notebook = json.loads((site / "lessons" / "01_lif_neuron.ipynb").read_text())
    outputs = [o for cell in notebook["cells"] if cell["cell_type"] == "code"
               for o in cell["outputs"]]
    assert any("image/png" in o.get("data", {}) for o in outputs)
