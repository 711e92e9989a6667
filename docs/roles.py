"""A griffe extension for the API pages: the docstrings' reStructuredText as Markdown.

The docstrings are written for reading in a terminal: they cite other objects with
Sphinx roles (``:func:`lif_step```, ``:mod:`diet_np.fast```) and lay out a table or two
as reStructuredText's simple tables (columns under ``====  ====`` rules); Markdown would
print both literally.  Loaded by mkdocstrings (``extensions`` in mkdocs.yml), this
rewrites each role to the code span it stands for and each two-column simple table to a
Markdown table before the docstring is rendered; the docstrings themselves stay as they
are.
"""
from __future__ import annotations

import re

import griffe

ROLE = re.compile(r":(?:py:)?(?:func|mod|class|meth|attr|data|obj|exc|const):`~?([^`]+)`")
RULE = re.compile(r"^=+ +=+$")
ROW = re.compile(r"^(``[^`]+``|\S+)\s+(.*)$")


def tables(text: str) -> str:
    """Two-column simple tables (a rule, rows, a rule) as Markdown tables; a row's
    continuation lines (first column blank) join its second column."""
    lines, out, rows = text.split("\n"), [], None
    for line in lines:
        if RULE.match(line.strip()):
            if rows is None:
                rows = []
                continue
            out += ["| | |", "| --- | --- |"] + [f"| {a} | {' '.join(b)} |" for a, b in rows]
            rows = None
        elif rows is None:
            out.append(line)
        elif line[:1].isspace() and rows:
            rows[-1][1].append(line.strip())
        elif ROW.match(line):
            first, rest = ROW.match(line).groups()
            rows.append((first, [rest]))
    return "\n".join(out if rows is None else lines)


def plain(text: str) -> str:
    """A docstring as Markdown: ``:func:`x``` -> ``x`` (a Sphinx role as a code span),
    simple tables as Markdown tables."""
    return tables(ROLE.sub(r"`\1`", text))


class SphinxRoles(griffe.Extension):
    """Rewrite the roles of every docstring once the object tree is built."""

    def on_object(self, *, obj, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = plain(obj.docstring.value)
