"""The notebooks' parameter cells, as papermill reads them: what `papermill --help-notebook` lists and what
`-p name value` may override is every assignment in the cell, and the block the notebooks share says the same
thing in each (it is copied, because papermill needs a literal cell per notebook)."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import nbformat
import papermill
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("0*.ipynb"))


def parameters_cell(path: Path) -> str:
    cells = [c for c in nbformat.read(path, 4).cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{path.name}: {len(cells)} cells tagged parameters"
    return cells[0].source


def assigned(source: str) -> dict[str, str]:
    """{name: its line} for every top-level assignment of the cell."""
    lines = source.splitlines()
    return {node.targets[0].id: lines[node.lineno - 1] for node in ast.parse(source).body
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_papermill_reads_every_parameter(path, caplog):
    with caplog.at_level(logging.WARNING, logger="papermill"):
        inspected = papermill.inspect_notebook(str(path))
    assert not [r.getMessage() for r in caplog.records if "Unable to parse" in r.getMessage()]
    assert sorted(inspected) == sorted(assigned(parameters_cell(path)))


def test_the_shared_parameters_read_the_same_in_every_notebook():
    cells = {p.stem: assigned(parameters_cell(p)) for p in NOTEBOOKS}
    shared = set.intersection(*(set(c) for c in cells.values()))
    assert {"model", "device", "dtype", "precision", "seed", "results_dir", "figures_dir"} <= shared
    for name in ("device", "dtype", "precision", "seed"):  # same default, same words
        assert len({c[name] for c in cells.values()}) == 1, {stem: c[name] for stem, c in cells.items()}
