"""The README's map is true: every function its equation table names exists, and its
docstring cites that row's equations."""
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CITATION = re.compile(r"Eq\. (\d+(?:\s*[-–]\s*\d+)?(?:\s*(?:,|and)\s*\d+(?:\s*[-–]\s*\d+)?)*)")


def equations(text: str) -> set:
    """{2, 3, 4, 5} from "2–5", {10, 11, 13, 14} from "10, 11, 13, 14"."""
    numbers = set()
    for part in re.split(r"\s*(?:,|and)\s*", text.strip()):
        bounds = re.split(r"\s*[-–]\s*", part)             # "2-5" or "7"
        numbers.update(range(int(bounds[0]), int(bounds[-1]) + 1))
    return numbers


def cited(doc: str) -> set:
    """Every equation a docstring cites ("Eq. 2-5", "Eq. 10, 11, 13, 14", "Eq. 12")."""
    return {n for match in CITATION.finditer(doc or "") for n in equations(match.group(1))}


def table_rows():
    """(equations, [(module path, name), ...]) for each row of the equation table."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Where each equation lives", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not re.fullmatch(r"\d[\d,–\- ]*", cells[0]):
            continue
        names, module = [], None
        for token in re.findall(r"`([^`]+)`", cells[2]):
            if token.endswith(".py"):
                module = token
                assert (ROOT / token).is_file(), f"the README names {token}, which is missing"
            else:
                names.append((module, token))
        rows.append((equations(cells[0]), names))
    return rows


ROWS = table_rows()


def test_the_table_covers_every_equation():
    assert set().union(*(eqs for eqs, _ in ROWS)) == set(range(1, 16))
    assert sum(len(names) for _, names in ROWS) >= 15


@pytest.mark.parametrize("eqs,names", ROWS, ids=[",".join(map(str, sorted(e))) for e, _ in ROWS])
def test_each_named_function_exists_and_cites_its_equations(eqs, names):
    for path, name in names:
        module = importlib.import_module(path[:-len(".py")].replace("/", "."))
        obj = module
        for part in name.split("."):
            assert hasattr(obj, part), f"{path} has no {name}"
            obj = getattr(obj, part)
        missing = eqs - cited(obj.__doc__)
        assert not missing, f"{path}: {name}'s docstring does not cite Eq. {sorted(missing)}"


def test_the_citation_parser():
    assert cited("One step of Eq. 2-5.  Eq. 12: dI") == {2, 3, 4, 5, 12}
    assert cited("BPTT (Eq. 10, 11, 13, 14)") == {10, 11, 13, 14}
    assert cited("Eq. 7 and Eq. 9") == {7, 9}
    assert equations("2–5") == {2, 3, 4, 5}
