"""The package ships whole: its sdist installs into a fresh environment outside the
repository, its tests run from the unpacked sdist against the installed package, and a
lesson copied out by ``diet-np lessons --copy`` runs there.

Slow (two isolated builds, about a minute): ``python -m pytest -m slow tests/test_packaging.py``.
The venv reuses this interpreter's packages (``--system-site-packages``), so numpy and
scipy are not downloaded again; diet-np itself is installed into the venv, which comes
first on its path.
"""
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(cmd, cwd, **env):
    """Run ``cmd`` in ``cwd`` (no PYTHONPATH: nothing may come from the checkout)."""
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True,
                          env={**clean, **env}, timeout=900)
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.mark.slow
def test_sdist_installs_and_its_tests_and_lessons_run(tmp_path):
    pytest.importorskip("build", reason="needs the 'build' package (pip install -e '.[test]')")
    assert not tmp_path.resolve().is_relative_to(ROOT)
    _run([sys.executable, "-m", "build", "--sdist", "--outdir", tmp_path / "dist", ROOT], ROOT)
    (sdist,) = (tmp_path / "dist").glob("diet_np-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = set(tar.getnames())
        tar.extractall(tmp_path / "unpacked")
    top = sdist.name[:-len(".tar.gz")]
    for needed in ("LICENSE", "tests/conftest.py", "tests/reference_snn.py",
                   "lessons/01_lif_neuron.py", "lessons/README.md", "diet_np/lessons/common.py"):
        assert f"{top}/{needed}" in names, f"the sdist lacks {needed}"
    source = tmp_path / "unpacked" / top

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", venv], tmp_path)
    python, cli = venv / "bin" / "python", venv / "bin" / "diet-np"
    _run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--ignore-installed", sdist],
         tmp_path)
    where = _run([python, "-c", "import diet_np.lessons as m; print(m.__file__, m.lesson_dir())"],
                 tmp_path).split()
    assert all(Path(p).is_relative_to(venv) for p in where), where     # the installed copy

    # the sdist's own tests, run from outside its folder so that they import the installed
    # package, not the sdist's source
    out = _run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", source,
                "-c", source / "setup.cfg", source / "tests" / "test_lif.py",
                source / "tests" / "test_lesson_cells.py",
                source / "tests" / "test_lessons.py::test_lesson_01_lif_neuron"], tmp_path)
    assert " passed" in out and "failed" not in out and "error" not in out

    # a lesson handed out by the installed command, run where it was copied
    mine = tmp_path / "my_lessons"
    _run([cli, "lessons", "--copy", mine], tmp_path)
    _run([python, "01_lif_neuron.py"], mine, DIET_NP_QUICK="1", DIET_NP_LESSON_OUT="")
    assert (mine / "figures" / "01_rate_curves.png").stat().st_size > 5000
    again = subprocess.run([cli, "lessons", "--copy", mine], capture_output=True, text=True,
                           cwd=tmp_path)
    assert again.returncode == 2 and "refusing to overwrite" in again.stderr
