"""A griffe extension for the API pages: the docstrings' Sphinx roles as code spans.

The docstrings are written for reading in a terminal and cite other objects with Sphinx
roles (``:func:`lif_step```, ``:mod:`diet_np.fast```); Markdown would print those
literally.  Loaded by mkdocstrings (``extensions`` in mkdocs.yml), this rewrites each
role to the code span it stands for before the docstring is rendered; the docstrings
themselves are left as they are.
"""
from __future__ import annotations

import re

import griffe

ROLE = re.compile(r":(?:py:)?(?:func|mod|class|meth|attr|data|obj|exc|const):`~?([^`]+)`")


def plain(text: str) -> str:
    """``:func:`x``` -> ``x``: a Sphinx role as a Markdown code span."""
    return ROLE.sub(r"`\1`", text)


class SphinxRoles(griffe.Extension):
    """Rewrite the roles of every docstring once the object tree is built."""

    def on_object(self, *, obj, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = plain(obj.docstring.value)
