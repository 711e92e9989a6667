"""The lesson site, built and looked at in a browser.

A quick build (lessons 1 and 2 only, executed once and then cached under
build/lesson-cache/, plus the API reference) is served on the loopback interface and opened in headless
Chromium. From the page as the browser rendered it (the DOM after MathJax ran) the test
checks that the lesson shows its figures as PNG images and its equations typeset, and
that the executed notebook is offered for download. A screenshot is written beside the
site (look at it: ``pytest -m slow tests/test_site.py --basetemp /tmp/site-test``).

Slow (a minute on a busy machine); skipped without the ``[docs]`` extra or without a
Chromium (Debian: ``apt-get install chromium``).
"""
import base64
import functools
import http.server
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS_MODULES = ("mkdocs", "material", "mkdocs_jupyter", "mkdocstrings_handlers.python",
                "jupytext", "nbclient", "ipykernel", "jupyter_server_mathjax")
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser",
                                                 "google-chrome"))), None)


def _missing_docs_module():
    for name in DOCS_MODULES:
        try:
            if importlib.util.find_spec(name) is None:
                return name
        except ModuleNotFoundError:
            return name
    return None


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(_missing_docs_module() is not None,
                       reason=f"needs the [docs] extra ({_missing_docs_module()} missing)"),
    pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The quick build, served on 127.0.0.1; yields (base URL, site folder)."""
    out = tmp_path_factory.mktemp("site") / "site"
    subprocess.run([sys.executable, str(ROOT / "docs" / "build_site.py"), "--lessons", "01", "02",
                    "--out", str(out)], cwd=ROOT, check=True, timeout=1200)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(out))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", out
    server.shutdown()


def chromium(*args):
    """Run headless Chromium; its stdout. The virtual time budget lets MathJax finish."""
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                           "--hide-scrollbars", "--virtual-time-budget=20000", *args],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def typeset(dom):
    """The number of equations MathJax typeset; fails on any it could not."""
    assert "Math Processing Error" not in dom and 'class="merror"' not in dom
    outside_scripts = re.sub(r"<script.*?</script>", "", dom, flags=re.S)
    assert "$$" not in outside_scripts, "an equation was left as TeX source"
    return len(re.findall(r'class="MathJax_Display"', dom))


@pytest.mark.parametrize("name, figures, equations", [("01_lif_neuron", 5, 5),
                                                      ("02_surrogate_gradients", 3, 2)])
def test_a_lesson_page_shows_figures_and_typeset_equations(site, name, figures, equations):
    url, out = site
    page = f"{url}/lessons/{name}.html"
    dom = chromium("--dump-dom", page)

    pngs = re.findall(r'<img[^>]*src="data:image/png;base64,([^"]+)"', dom)
    assert len(pngs) >= figures
    for data in pngs:
        png = base64.b64decode(data)
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000

    # MathJax 2 replaces each $$...$$ by a rendered MathJax_Display and keeps the TeX
    # source in a script element beside it
    assert typeset(dom) >= equations
    assert "executed in full mode" in dom
    first = {"01_lif_neuron": r"\\tau_m \\frac\{du\}\{dt\}",      # Eq. 1
             "02_surrogate_gradients": r"\\frac\{\\partial o\}\{\\partial z\}"}[name]  # Eq. 8
    assert re.search(r'<script type="math/tex; mode=display"[^>]*>\s*' + first, dom)

    shot = out.parent / f"{name}.png"
    chromium("--window-size=1200,2600", f"--screenshot={shot}", page)
    assert shot.stat().st_size > 50_000


def test_the_executed_notebook_is_offered_for_download(site):
    url, out = site
    dom = chromium("--dump-dom", f"{url}/lessons/01_lif_neuron.html")
    assert re.search(r'<a[^>]*href="01_lif_neuron.ipynb"[^>]*download', dom)
    notebook = json.loads((out / "lessons" / "01_lif_neuron.ipynb").read_text())
    outputs = [o for cell in notebook["cells"] if cell["cell_type"] == "code"
               for o in cell["outputs"]]
    assert any("image/png" in o.get("data", {}) for o in outputs)


def test_the_api_reference_is_generated_from_the_docstrings(site):
    url, out = site
    dom = chromium("--dump-dom", f"{url}/api/neurons.html")
    assert "lif_forward" in dom and "Eq. 2" in dom and "DEFAULT_SURROGATE" in dom
