"""Rewrite the Sphinx roles of the package's docstrings and comments into what mkdocstrings renders.

The API reference (``docs/api.md``) is rendered by mkdocstrings-python, which reads a docstring as Markdown: a
Sphinx role (``:func:`x```, ``:class:`x```, ``:mod:`x```, ``:data:`x```, ``:meth:`x```, ``:attr:`x```, also
``:exc:``, ``:obj:``, ``:const:`` and the ``:py:`` forms) shows up literally. This script replaces each one:

- in a string (a docstring), by an autorefs cross-reference ``[`shown`][lossprofile.module.name]`` when the
  target resolves, from the docstring's own scope (its class, its module's names and imports, its package for a
  leading ``.``), to an object that the API reference renders (its module is a ``::: module`` of
  ``docs/api.md``, no part of its path is private, it has a docstring); otherwise by a code span
  ``` `name` ```, which needs no target (a strict ``mkdocs build`` fails on an unresolved cross-reference);
- in a comment, always by a code span (nothing renders comments).

What is shown: a leading ``.`` is dropped; a cross-reference shows ``c`` for ``~a.b.c`` (as Sphinx does) and, to
an object (not a module), drops the leading ``lossprofile.`` (``runner.score_pieces``); a cross-reference whose
text is its target is written ``[`lossprofile.columns`][]``; a code span shows the name as written (``~`` dropped).

Idempotent (the result holds no role, so a second run changes nothing). Needs griffe (installed with
mkdocstrings-python) to resolve names; without it every role becomes a code span.

Usage::

    python tools/docstring_roles.py                  # every lib/lossprofile/**/*.py, rewritten in place
    python tools/docstring_roles.py lib/lossprofile/runner.py lib/lossprofile/cli.py
    python tools/docstring_roles.py --check          # list the roles left; exit 1 if any (writes nothing)
    python tools/docstring_roles.py --dry-run FILES  # print each replacement, write nothing

Then check with a strict build: ``make docs``.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "lib"
PACKAGE = LIB / "lossprofile"
API_PAGE = ROOT / "docs" / "api.md"

ROLES = "func|class|mod|data|meth|attr|exc|obj|const|any"
ROLE = re.compile(rf":(?:py:)?(?P<role>{ROLES}):`(?P<tilde>~?)(?P<target>[^`\s]+)`")


def module_of(path: Path) -> str:
    """``lib/lossprofile/analysis/profile.py`` → ``lossprofile.analysis.profile`` (a package's ``__init__`` →
    the package)."""
    parts = list(path.resolve().relative_to(LIB).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def rendered_modules(page: Path = API_PAGE) -> dict[str, bool]:
    """The modules ``docs/api.md`` renders (``::: module``), each with whether its members are rendered too."""
    modules: dict[str, bool] = {}
    current = None
    for line in page.read_text().splitlines():
        m = re.match(r"^::: ([\w.]+)\s*$", line)
        if m:
            current = m.group(1)
            modules[current] = True
        elif current and re.match(r"^\s+members:\s*(false|\[\s*\])\s*$", line):
            modules[current] = False
        elif line.strip() and not line.startswith((" ", "\t")):
            current = None
    return modules


class Resolver:
    """Names resolved with griffe, as mkdocstrings loads them (``lib`` on the search path)."""

    def __init__(self):
        import griffe

        self.griffe = griffe
        self.package = griffe.load("lossprofile", search_paths=[str(LIB)], docstring_parser="sphinx",
                                   resolve_aliases=False)
        self.rendered: set[str] = set()
        for module, with_members in rendered_modules().items():
            obj = self.get(module)
            if obj is None:
                continue
            self.rendered.add(obj.path)
            if with_members:
                self._add_members(obj)

    def _add_members(self, obj) -> None:
        for name, member in obj.members.items():
            if name.startswith("_") or member.is_alias or member.is_module:
                continue
            if not member.has_docstrings:  # mkdocstrings-python: show_if_no_docstring is false
                continue
            self.rendered.add(member.path)
            if member.is_class:
                self._add_members(member)

    def get(self, path: str):
        """The object at ``path`` (aliases followed), or None."""
        if path != "lossprofile" and not path.startswith("lossprofile."):
            return None
        obj = self.package
        try:
            for part in path.split(".")[1:]:
                obj = obj.members[part]
                if obj.is_alias:
                    obj = obj.final_target
        except (KeyError, self.griffe.AliasResolutionError, self.griffe.CyclicAliasError):
            return None
        except Exception:  # an alias to a package griffe did not load (numpy, torch…)
            return None
        return obj

    def scopes(self, module: str, line: int) -> list:
        """The objects whose source holds ``line``, innermost first, ending with the module."""
        mod = self.get(module)
        if mod is None:
            return []
        chain = [mod]
        while True:
            inner = next((m for m in chain[-1].members.values()
                          if not m.is_alias and (m.is_class or m.is_function) and m.lineno and m.endlineno
                          and m.lineno <= line <= m.endlineno), None)
            if inner is None:
                return chain[::-1]
            chain.append(inner)

    def resolve(self, target: str, module: str, line: int, role: str) -> str | None:
        """The canonical path ``target`` names, read from ``module`` at ``line``; None where unsure."""
        candidates: list[str] = []
        stripped = target.lstrip(".")
        if target.startswith("."):
            mod = self.get(module)
            package = module if (mod is not None and mod.is_package) else module.rpartition(".")[0]
            base = package.split(".")
            ups = len(target) - len(stripped) - 1
            base = base[: len(base) - ups] if ups else base
            candidates = [f"{module}.{stripped}", ".".join(base + [stripped])]
        elif target.startswith("lossprofile.") or target == "lossprofile":
            candidates = [target]
        else:
            first, _, rest = target.partition(".")
            for scope in self.scopes(module, line):
                if first in scope.members:
                    candidates = [f"{scope.path}.{target}"]
                    break
            else:
                package = module.rpartition(".")[0]
                candidates = [f"{package}.{target}", f"lossprofile.{target}"]
        found = {obj.canonical_path for obj in map(self.get, candidates) if obj is not None}
        if len(found) != 1:
            return None
        path = found.pop()
        obj = self.get(path)
        if (role == "mod") != bool(obj is not None and obj.is_module):
            return None
        return path

    def renders(self, path: str) -> bool:
        return path in self.rendered


def shown(target: str, tilde: str, *, reference: bool, module: bool) -> str:
    if tilde and reference:
        return target.rsplit(".", 1)[-1]
    target = target.lstrip(".")
    if reference and not module and target.startswith("lossprofile."):
        return target.removeprefix("lossprofile.")
    return target


def rewrite(text: str, *, module: str, line: int, comment: bool, resolver: Resolver | None,
            log: list[str], where: str) -> str:
    def replace(m: re.Match) -> str:
        role, tilde, target = m.group("role"), m.group("tilde"), m.group("target")
        at = line + text.count("\n", 0, m.start())
        path = None
        if resolver is not None and not comment:
            path = resolver.resolve(target, module, at, role)
            if path is not None and not resolver.renders(path):
                path = None
        if path is None:
            new = f"`{shown(target, tilde, reference=False, module=role == 'mod')}`"
        else:
            label = shown(target, tilde, reference=True, module=role == "mod")
            new = f"[`{path}`][]" if label == path else f"[`{label}`][{path}]"
        log.append(f"{where}:{at}: {m.group(0)} -> {new}")
        return new

    return ROLE.sub(replace, text)


def process(path: Path, resolver: Resolver | None, *, write: bool, log: list[str]) -> bool:
    """Rewrite one file; True if anything changed."""
    source = path.read_text()
    if not ROLE.search(source):
        return False
    module = module_of(path)
    where = path.resolve().relative_to(ROOT).as_posix()
    starts = [0]
    for line in source.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    edits = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in (tokenize.STRING, tokenize.COMMENT) or not ROLE.search(tok.string):
            continue
        new = rewrite(tok.string, module=module, line=tok.start[0], comment=tok.type == tokenize.COMMENT,
                      resolver=resolver, log=log, where=where)
        begin = starts[tok.start[0] - 1] + tok.start[1]
        end = starts[tok.end[0] - 1] + tok.end[1]
        edits.append((begin, end, new))
    out = source
    for begin, end, new in reversed(edits):
        out = out[:begin] + new + out[end:]
    if write and out != source:
        path.write_text(out)
    return out != source


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", type=Path, help="Python files (default: every lib/lossprofile/**/*.py)")
    parser.add_argument("--check", action="store_true", help="list the roles left and exit 1 if any; write nothing")
    parser.add_argument("--dry-run", action="store_true", help="print each replacement; write nothing")
    args = parser.parse_args(argv)
    files = args.files or sorted(PACKAGE.rglob("*.py"))
    if args.check:
        left = [f"{p}:{source.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
                for p in files for source in [p.read_text()] for m in ROLE.finditer(source)]
        print("\n".join(left) or "no Sphinx role left")
        return 1 if left else 0
    try:
        resolver = Resolver()
    except ImportError:
        print("griffe is not installed: every role becomes a code span", file=sys.stderr)
        resolver = None
    log: list[str] = []
    changed = [p for p in files if process(p, resolver, write=not args.dry_run, log=log)]
    print("\n".join(log))
    print(f"{len(log)} roles in {len(changed)} files {'(dry run)' if args.dry_run else 'rewritten'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
