"""Every prose cell of a lesson is a markdown cell.

A lesson is a jupytext percent file: ``# %% [markdown]`` starts a prose cell and a
bare ``# %%`` a code cell. Prose left in a code cell (the ``# %% [markdown]`` marker
forgotten) reads the same in the ``.py`` file but shows as a block of code comments in
the notebook and on the lesson site. This finds such blocks: a code cell made only of
comment lines, a markdown heading in a code cell, or a run of comment lines longer
than a code comment needs.
"""
import re

import pytest
from conftest import LESSONS

LONGEST_CODE_COMMENT = 5          # consecutive comment lines a code cell may hold
CELL_MARKER = re.compile(r"^# %%(.*)$")


def cells(text):
    """``(kind, first_line_number, lines)`` for each cell; kind is "markdown" or "code"."""
    found, kind, start, body = [], None, 0, []
    for number, line in enumerate(text.splitlines(), 1):
        marker = CELL_MARKER.match(line)
        if marker:
            if kind is not None:
                found.append((kind, start, body))
            kind = "markdown" if "[markdown]" in marker.group(1) else "code"
            start, body = number, []
        elif kind is not None:
            body.append(line)
    if kind is not None:
        found.append((kind, start, body))
    return found


def prose_in_code(text):
    """Messages naming each code cell that holds prose, with its line number."""
    problems = []
    for kind, start, body in cells(text):
        if kind != "code":
            continue
        lines = [line.strip() for line in body if line.strip()]
        comments = [line for line in lines if line.startswith("#")]
        if lines and len(comments) == len(lines) and len(lines) > 3:
            problems.append(f"line {start}: a code cell of {len(lines)} comment lines only")
        if any(re.match(r"#\s+#+ ", line) for line in comments):
            problems.append(f"line {start}: a markdown heading inside a code cell")
        run = longest = 0
        for line in body:
            run = run + 1 if line.lstrip().startswith("#") else 0
            longest = max(longest, run)
        if longest > LONGEST_CODE_COMMENT:
            problems.append(f"line {start}: {longest} comment lines in a row in a code cell")
    return problems


@pytest.mark.parametrize("path", sorted(LESSONS.glob("[0-9][0-9]_*.py")), ids=lambda p: p.name)
def test_prose_is_in_markdown_cells(path):
    assert prose_in_code(path.read_text(encoding="utf-8")) == []


def test_the_check_finds_prose_left_in_a_code_cell():
    good = "# %% [markdown]\n# ## 2. A section\n#\n# Prose.\n\n# %%\nx = 1  # a comment\n"
    assert prose_in_code(good) == []
    forgotten_marker = "# %%\nx = 1\n#\n# ## 2. A section\n#\n# Prose, prose.\n# More prose.\n"
    assert len(prose_in_code(forgotten_marker)) == 1      # the heading; the run is 5 lines
    only_comments = "# %%\n# one\n# two\n# three\n# four\n"
    assert prose_in_code(only_comments) == ["line 1: a code cell of 4 comment lines only"]
    long_run = "# %%\n" + "# line\n" * 6 + "x = 1\n"
    assert prose_in_code(long_run) == ["line 1: 6 comment lines in a row in a code cell"]


@pytest.mark.parametrize("path", sorted(LESSONS.glob("[0-9][0-9]_*.py")), ids=lambda p: p.name)
def test_every_lesson_ends_with_a_summary_and_exercises(path):
    """A "## Summary" and then a "## Exercises" heading, each in a markdown cell, with two
    or three numbered exercises, each with a hint or an answer."""
    markdown = [(start, "\n".join(body))
                for kind, start, body in cells(path.read_text(encoding="utf-8"))
                if kind == "markdown"]
    summary = [start for start, text in markdown if "\n# ## Summary" in "\n" + text]
    exercises = [text for start, text in markdown if "\n# ## Exercises" in "\n" + text]
    assert summary and len(exercises) == 1, "no '## Summary' or '## Exercises' markdown heading"
    text = exercises[0].split("# ## Exercises", 1)[1]
    numbered = re.findall(r"^# (\d)\. ", text, flags=re.M)
    assert numbered in (["1", "2"], ["1", "2", "3"]), numbered
    items = re.split(r"^# \d\. ", text, flags=re.M)[1:]
    assert all("*Hint:*" in item or "*Answer:*" in item for item in items)
