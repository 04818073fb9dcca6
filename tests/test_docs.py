"""What the README, the documentation pages, the notebooks and the package's docstrings name exists, and the
README's numbers are current.

Fast and offline: it reads the text of README.md, docs/*.md, the notebooks' markdown and code cells and the
docstrings and comments of every module under lib/, imports every ``lossprofile.…`` dotted name it finds (the
longest importable module, then attributes), and checks every repository path (``lib/…``, ``tests/…``,
``notebooks/…``, ``tools/…``, ``results/…``, ``figures/…``, …) exists. The site
itself is built strictly by ``make docs``, which CI runs after ``make test`` (a broken link, a missing page or
an unresolved API reference fails there).
"""

from __future__ import annotations

import ast
import importlib
import io
import re
import tokenize
from pathlib import Path

import nbformat
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
MODULES = sorted((ROOT / "lib" / "lossprofile").rglob("*.py"))

NAME = re.compile(r"(?<![\w./-])lossprofile(?:\.[A-Za-z_]\w*)+")
TOP = "lib|tests|notebooks|results|figures|tools|sweeps|data|docs|\\.ci"
PATH = re.compile(rf"(?<![\w./-])(?:\.\./)*((?:{TOP})/[\w.*<>/…-]*[\w*>/…])")
PACKAGE_PATH = re.compile(r"(?<![\w./-])(lossprofile/[\w./-]*\.(?:py|json|md))")
# a file named from inside the package (``analysis/profile.py``, ``checkpoints/tiny/study.json``; ``data/`` is the
# repository's folder, so lossprofile/data/ is named from the package down)
INNER_PATH = re.compile(r"(?<![\w./-])((?:analysis|models|perturb|embedded|paper|checkpoints)/[\w./-]*\.(?:py|json|md|parquet))")

# Paths a run writes, or that exist only on a machine that ran something: named in the text, never committed.
WRITTEN_BY_RUNS = {
    "results/mine": "the quickstart's output folder",
    "results/ft": "the quickstart's output folder",
    "results/pitch": "the quickstart's output folder",
    "results/scores": "an example output folder",
    "results/sym": "an example output folder",
    "results/bino": "an example output folder",
    "results/aligned": "an example output folder",
    "results/musiceval": "an example output folder",
    "results/songeval": "an example output folder",
    "results/finetune": "an example output folder",
    "results/x": "the package docstring's example output folder",
    "results/nbval": "nbval's scratch folder (make test)",
    "results/nbval/figures": "nbval's scratch folder (make test)",
    "results/stats": "written by make figures (the notebooks' statistics tables)",
    "results/gpu-check.md": "written by make gpu-check on a GPU machine",
    "results/gpu-check-compile.md": "written by make gpu-check's compile step",
    "results/validation/cache": "make validation's resumable cache (ignored)",
    "notebooks/executed": "written by make figures (ignored)",
    "data/rendered": "written by make data (ignored)",
    "data/generated": "written by make data (ignored)",
}


def prose_of(source: str) -> str:
    """A module's docstrings (its own, its classes' and functions') and comments: what it says, not what it runs."""
    tree = ast.parse(source)
    nodes = [tree, *(n for n in ast.walk(tree) if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)))]
    parts = [doc for n in nodes if (doc := ast.get_docstring(n, clean=False))]
    parts += [t.string for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type == tokenize.COMMENT]
    return "\n".join(parts)


def sources() -> dict[str, str]:
    """Every text the test reads: README, docs pages, each notebook's markdown and code cells, and the docstrings
    and comments of the package's modules."""
    texts = {"README.md": (ROOT / "README.md").read_text()}
    texts.update({f"docs/{p.name}": p.read_text() for p in DOCS})
    for nb_path in NOTEBOOKS:
        nb = nbformat.read(nb_path, as_version=4)
        texts[f"notebooks/{nb_path.name}"] = "\n".join(c.source for c in nb.cells if c.cell_type in ("markdown", "code"))
    texts.update({p.relative_to(ROOT).as_posix(): prose_of(p.read_text()) for p in MODULES})
    return texts


TEXTS = sources()


def mentions(pattern: re.Pattern) -> list[tuple[str, str]]:
    found = {(m.group(1) if pattern.groups else m.group(0), where)
             for where, text in TEXTS.items() for m in pattern.finditer(text)}
    return sorted(found)


def resolve(dotted: str):
    parts = dotted.rstrip(".").split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError as err:
            if err.name and not ".".join(parts[:i]).startswith(err.name):
                raise  # the module exists but one of its own imports is missing: a real failure
            continue
        for attr in parts[i:]:
            fields = getattr(obj, "__dataclass_fields__", {})
            obj = fields[attr] if attr in fields and not hasattr(obj, attr) else getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


def test_sources_are_read():
    assert len(DOCS) >= 10 and len(NOTEBOOKS) == 7 and len(MODULES) >= 50
    assert mentions(NAME) and mentions(PATH)
    assert any(where.startswith("lib/") for _, where in mentions(NAME))
    assert any(where.startswith("lib/") for _, where in mentions(PATH))


def test_module_prose_is_docstrings_and_comments():
    text = prose_of('''"""Module: lossprofile.audio."""
import lossprofile.runner  # see lossprofile.stats
x = "lossprofile.not_named"


def f():
    """f: tests/test_docs.py"""
''')
    assert "lossprofile.audio" in text and "lossprofile.stats" in text and "tests/test_docs.py" in text
    assert "not_named" not in text and "import" not in text


@pytest.mark.parametrize("dotted, where", mentions(NAME))
def test_named_object_exists(dotted, where):
    try:
        resolve(dotted)
    except (ImportError, AttributeError) as err:
        pytest.fail(f"{where} names {dotted}, which does not exist: {err}")


def _exists(path: str) -> bool:
    path = path.rstrip("/")
    if any(path == written or path.startswith(written + "/") for written in WRITTEN_BY_RUNS):
        return True  # a folder a run writes, or a path inside one
    # results/validation/<modality>/ and figures/fig1_… name several files: globs
    pattern = re.sub(r"<[^>]*>", "*", path).replace("…", "*")
    if any(c in pattern for c in "*?["):
        return any(ROOT.glob(pattern))
    return (ROOT / path).exists()


@pytest.mark.parametrize("path, where", mentions(PATH))
def test_named_path_exists(path, where):
    assert _exists(path), f"{where} names {path}, which is not in the repository (nor allow-listed as written by a run)"


def test_named_package_files_exist():
    """A path written from the package down (``lossprofile/analysis/profile_weights.json``) is under lib/."""
    missing = [(where, path) for path, where in mentions(PACKAGE_PATH) if not (ROOT / "lib" / path).exists()]
    assert not missing, f"named but not under lib/: {missing}"


def test_named_inner_files_exist():
    """A path written from inside the package (``analysis/profile.py``) is under lib/lossprofile/."""
    missing = [(where, path) for path, where in mentions(INNER_PATH)
               if not (ROOT / "lib" / "lossprofile" / path).exists()]
    assert mentions(INNER_PATH) and not missing, f"named but not under lib/lossprofile/: {missing}"


def test_allow_list_names_only_uncommitted_paths():
    committed = [p for p in WRITTEN_BY_RUNS if p.startswith(("figures/", "lib/", "tests/"))]
    assert not committed


def _section(text: str, heading: str) -> str:
    start = text.index(f"## {heading}")
    end = text.find("\n## ", start + 1)
    return text[start: end if end > 0 else None]


DECIMAL = re.compile(r"(?<![\w.])[-+]?\d+\.\d+(?:e[-+]?\d+)?")


def test_readme_headline_numbers_come_from_the_summary():
    """Every decimal in the README's opening (before the first section) appears in figures/summary.md."""
    readme = (ROOT / "README.md").read_text()
    opening = readme[: readme.index("\n## ")]
    summary = (ROOT / "figures" / "summary.md").read_text()
    numbers = DECIMAL.findall(opening)
    assert numbers, "the README's opening quotes no number"
    missing = [n for n in numbers if n not in summary and n.lstrip("+") not in summary]
    assert not missing, f"README numbers not in figures/summary.md (stale?): {missing}"


def lofo_values() -> set[str]:
    """Every AUROC the validation's leave-one-family-out tables give (per family, and the mean over families)."""
    values = set()
    for path in (ROOT / "results" / "validation").glob("*/lofo.csv"):
        table = pd.read_csv(path)
        table = table[table["strength"].astype(str) == "all"]
        values.update(f"{v:.2f}" for v in table["auroc"])
        values.update(f"{v:.2f}" for v in table.groupby("score")["auroc"].mean())
    return values


def test_readme_trust_numbers_come_from_the_validation():
    """Every decimal in the README's "When to trust the profile score" is an AUROC of results/validation/*/lofo.csv."""
    section = _section((ROOT / "README.md").read_text(), "When to trust the profile score")
    numbers = [n for n in DECIMAL.findall(section) if n != "0.5"]  # 0.5: chance, a definition
    assert numbers
    values = lofo_values()
    missing = [n for n in numbers if n not in values]
    assert not missing, f"README numbers not in results/validation/*/lofo.csv (stale?): {missing}"


def test_readme_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200


def test_citation_matches_the_package_and_names_the_paper_authors():
    import tomllib

    import yaml

    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert cff["cff-version"] == "1.2.0"
    assert cff["version"] == project["version"], "CITATION.cff's version drifted from pyproject.toml's"
    paper = next(r for r in cff["references"] if "2602.02738" in str(r.get("identifiers")))
    assert [(a["given-names"], a["family-names"]) for a in paper["authors"]] == [
        ("Xiaosha", "Li"), ("Chun", "Liu"), ("Ziyu", "Wang")]
    readme = (ROOT / "README.md").read_text()
    assert paper["title"] in readme, "the README's BibTeX and CITATION.cff name different titles"
    assert "Li, Xiaosha and Liu, Chun and Wang, Ziyu" in readme
