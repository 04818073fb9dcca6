"""The package's imports point one way: each layer uses only the layers below it.

Read from the source (every ``import`` statement, relative ones resolved), so a new module that
reaches up — the engine into a model family's internals, the core into the replication or into the
embedded models' factory — fails here, whether or not anything imports it yet.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lib" / "lossprofile"
# lowest first; a module may import its own layer and the ones before it
LAYERS = [
    {"errors", "io", "audio", "stats", "columns", "threads", "grid", "paths"},
    {"models"},
    {"scoring"},  # codes -> statistics through the model protocol alone
    {"perturb", "data", "modality"},  # the modality loads, perturbs and scores pieces; the datasets ask it their form
    {"runner"},
    {"analysis", "sweep", "bench", "report"},
    {"cli", "gpucheck"},
    {"paper", "embedded"},
]


def unit(module: str) -> str:
    """``lossprofile.models.musicgen.codec`` → ``models``: the top-level part a layer is made of."""
    return module.split(".")[1] if module.count(".") else ""


def layer_of(module: str) -> int:
    name = unit(module)
    return next(i for i, layer in enumerate(LAYERS) if name in layer)


def module_name(path: Path) -> str:
    return "lossprofile." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)


def imports_of(path: Path) -> set[str]:
    module = module_name(path)
    package = module.removesuffix(".__init__") if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    return imports_in(path.read_text(), package)


def imports_in(source: str, package: str) -> set[str]:
    """The package's modules that ``source`` (a module of ``package``) imports, relative imports resolved."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("lossprofile")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                # "from . import x": x may be a module of that package
                found |= {f"{target}.{a.name}" if not node.module else target for a in node.names}
            elif node.module and node.module.startswith("lossprofile"):
                found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in found if m.count(".") and unit(m) in set().union(*LAYERS)}


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path):
    module = module_name(path)
    own = layer_of(module)
    upward = sorted(m for m in imports_of(path) if layer_of(m) > own)
    assert not upward, f"{module} (layer {own}) imports {upward} from layers above it"


def test_the_engine_reads_no_family_internals():
    # scoring, runner, the profile score, sweeps and the benchmark's engine path see models only through
    # the protocol (models.base / models.loading); bench may build a random MusicGen of a real size
    for name in ("scoring.py", "runner.py", "sweep.py", "analysis/profile.py", "analysis/evaluate.py"):
        assert not [m for m in imports_of(PACKAGE / name) if m.startswith("lossprofile.models.musicgen")], name


def test_the_check_sees_relative_and_absolute_upward_imports():
    for source in ("from ..paper import experiments\n", "from lossprofile.embedded.training import Recipe\n",
                   "import lossprofile.analysis.profile\n", "def f():\n    from ..runner import run_experiment\n"):
        found = imports_in(source, "lossprofile.models")
        assert any(layer_of(m) > layer_of("lossprofile.models.base") for m in found), source
    assert imports_in("from .base import TokenLM\nimport numpy\n", "lossprofile.models") == {"lossprofile.models.base"}
