"""Everything is declared in setup.cfg; this file only adds the lessons to the wheel.

The lessons live in the repository's ``lessons/`` folder (where a reader of the
checkout finds them). Building the package copies them into
``diet_np/lessons/files/``, so that an installed ``diet-np lessons --copy DIR``
has them to hand out (see ``diet_np/lessons/__init__.py``).
"""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

LESSONS = Path(__file__).resolve().parent / "lessons"


class BuildWithLessons(build_py):
    def run(self):
        super().run()
        target = Path(self.build_lib, "diet_np", "lessons", "files")
        target.mkdir(parents=True, exist_ok=True)
        for src in sorted(LESSONS.glob("[0-9][0-9]_*.py")) + [LESSONS / "README.md"]:
            shutil.copy2(src, target / src.name)


setup(cmdclass={"build_py": BuildWithLessons})
