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


# -- the README as a landing page, and the links of every page a reader meets ---------

README = ROOT / "README.md"
PAGES = [README, ROOT / "lessons" / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"(?<!\!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
#: Words that belong to the way the project is developed, not to what it is.
#: (Written as character classes so that this file does not itself hold the words.)
TOOLING = re.compile(r"\.\./shar[e]d|/wor[k]/|\bwork[p]lace\b|\bsess[i]ons?\b|`ru[n]` tool"
                     r"|\bthe lea[d]\b|\bdevic[e] tool\b", re.I)


def slug(heading: str) -> str:
    """A heading's anchor as GitHub and mkdocs both write it (for the headings used here)."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).strip().replace(" ", "-")


def anchors(page: Path) -> set:
    return {slug(h) for h in re.findall(r"^#+ (.+)$", page.read_text(), re.M)}


def test_the_readme_is_a_landing_page():
    text = README.read_text()
    assert len(text.splitlines()) < 150
    first = re.search(r"```bash\n(.*?)```", text, re.S).group(1).splitlines()
    assert first[0].startswith("pip install -e . && diet-np demo")
    test_command = first[1].split("#")[0].strip()
    assert test_command == "pip install -e '.[test]' && python -m pytest -q"
    assert test_command in (ROOT / ".ci" / "run").read_text()      # CI runs the README's
    picture = re.search(r"!\[[^\]]{20,}\]\((docs/[\w.]+\.png)\)", text).group(1)
    assert (ROOT / picture).stat().st_size < 200_000
    assert "docs/equations.md" in text and "lessons/README.md" in text


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_links_stay_in_the_repository_and_land(page):
    for match in LINK.finditer(page.read_text()):
        target = match.group(1) or match.group(2)
        if target.startswith(("https://", "http://")):
            continue
        path, _, anchor = target.partition("#")
        where = (page.parent / path).resolve() if path else page
        assert where.is_relative_to(ROOT), f"{page.name}: {target} leaves the repository"
        assert where.exists(), f"{page.name}: {target} does not exist"
        if anchor and where.suffix == ".md":
            assert anchor in anchors(where), f"{page.name}: no heading for #{anchor} in {path}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_page_mentions_how_the_project_is_developed(page):
    found = TOOLING.search(page.read_text())
    assert not found, f"{page.name}: {found.group(0)!r}"
