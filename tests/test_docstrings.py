"""The package's docstrings and comments are written for mkdocstrings (Markdown), not Sphinx.

mkdocstrings renders a Sphinx role (``:func:`x```) literally in the API reference; ``tools/docstring_roles.py``
rewrites each one into an autorefs cross-reference (``[`x`][lossprofile.module.x]``) or a code span. A strict
``make docs`` then checks that every cross-reference resolves.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lib" / "lossprofile"
FILES = sorted(PACKAGE.rglob("*.py"))

_spec = importlib.util.spec_from_file_location("docstring_roles", ROOT / "tools" / "docstring_roles.py")
docstring_roles = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(docstring_roles)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_no_sphinx_role(path):
    source = path.read_text()
    left = [f"line {source.count(chr(10), 0, m.start()) + 1}: {m.group(0)}" for m in docstring_roles.ROLE.finditer(source)]
    assert not left, f"Sphinx roles (run `python tools/docstring_roles.py {path.relative_to(ROOT)}`): {left}"


@pytest.mark.parametrize("text, found", [
    (":func:`x`", [":func:`x`"]), (":py:meth:`~a.B.c`", [":py:meth:`~a.B.c`"]), (":data:`.X`", [":data:`.X`"]),
    (":param x: the `x`", []), (":returns: ``y``", []), ("[`x`][lossprofile.x]", []),
])
def test_role_pattern(text, found):
    assert [m.group(0) for m in docstring_roles.ROLE.finditer(text)] == found


def test_rewrite_falls_back_to_a_code_span_without_resolver():
    out = docstring_roles.rewrite('"""See :func:`~lossprofile.runner.score_pieces` and :mod:`.waveform`."""',
                                  module="lossprofile.perturb", line=1, comment=False, resolver=None, log=[],
                                  where="x")
    assert out == '"""See `lossprofile.runner.score_pieces` and `waveform`."""'
    assert not docstring_roles.ROLE.search(out)
