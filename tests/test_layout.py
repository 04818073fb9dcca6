"""The package's imports point one way: each layer uses only the layers below it.

Read from the source (every ``import`` statement, relative ones resolved), so a new module that
reaches up — the engine into a model family's internals, the core into the replication or into the
embedded models' factory — fails here, whether or not anything imports it yet. What a module imported
by its name as a string would hide from this check is refused too: the command line (``cli`` and
``commands``, the top layer) imports every command normally, and only it parses command lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lib" / "lossprofile"
# lowest first; a module may import its own layer and the ones before it
LAYERS = [
    {"errors", "io", "audio", "stats", "columns", "threads", "grid", "paths", "batching"},
    {"models"},
    {"scoring"},  # codes -> statistics through the model protocol alone
    {"perturb", "data", "modality"},  # the modality loads, perturbs and scores pieces; the datasets ask it their form
    {"runner"},
    {"analysis", "sweep", "bench", "report"},
    {"gpucheck"},
    {"paper", "embedded"},
    {"cli", "commands"},  # the command line: parsers and printing, over every library module
]
COMMAND_LINE = len(LAYERS) - 1


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
    for source in ("from ..paper import experiments\n", "from lossprofile.embedded.tiny_model import Recipe\n",
                   "import lossprofile.analysis.profile\n", "def f():\n    from ..runner import run_experiment\n"):
        found = imports_in(source, "lossprofile.models")
        assert any(layer_of(m) > layer_of("lossprofile.models.base") for m in found), source
    assert imports_in("from .base import TokenLM\nimport numpy\n", "lossprofile.models") == {"lossprofile.models.base"}


def imported_by_name(source: str) -> list[str]:
    """The calls in ``source`` that import a module of the package from a string (importlib.import_module,
    __import__): a name of the package, a relative one, or one computed at run time (a library's own
    ``__import__("json")`` is no such import)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            arg = node.args[0] if node.args else None
            literal = arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else None
            if name in ("import_module", "__import__") and (literal is None or literal.startswith(("lossprofile", "."))):
                found.append(ast.unparse(node))
    return found


def test_no_module_imports_one_of_the_package_by_its_name():
    # models.loading keeps the table of model families (each a module of models/, its own layer) by name, so a
    # family can be registered at run time; any other import by name would be one this test cannot see
    families = PACKAGE / "models" / "loading.py"
    found = {str(p.relative_to(PACKAGE)): imported_by_name(p.read_text()) for p in MODULES if p != families}
    assert not {k: v for k, v in found.items() if v}, found
    from lossprofile.models.loading import FAMILIES

    assert {layer_of(m) for m in FAMILIES.values()} == {layer_of("lossprofile.models.loading")}


def parses_command_lines(path: Path) -> bool:
    """Whether a module imports argparse or defines a top-level ``main``."""
    tree = ast.parse(path.read_text())
    uses_argparse = any(isinstance(n, ast.Import) and any(a.name == "argparse" for a in n.names)
                        or isinstance(n, ast.ImportFrom) and n.module == "argparse" for n in ast.walk(tree))
    has_main = any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body)
    return uses_argparse or has_main


def test_only_the_command_line_parses_command_lines():
    outside = [str(p.relative_to(PACKAGE)) for p in MODULES
               if parses_command_lines(p) and layer_of(module_name(p)) != COMMAND_LINE]
    assert not outside, f"argparse or a main outside cli/commands: {outside}"


def test_every_forwarded_command_is_a_main_of_the_commands_package():
    from lossprofile import cli, commands

    assert cli.FORWARDED is commands.FORWARDED
    for name, (main, text) in commands.FORWARDED.items():
        assert main.__name__ == "main" and main.__module__.startswith("lossprofile.commands."), name
        assert text and not text.endswith("."), name
    assert set(commands.OWN_THREADS) <= set(commands.FORWARDED)


def test_the_checks_see_imports_by_name_and_command_lines(tmp_path):
    assert imported_by_name("import importlib\nm = importlib.import_module('lossprofile.bench')\n")
    assert imported_by_name("m = __import__('lossprofile.bench')\n")
    assert not imported_by_name("from lossprofile import bench\n") and not imported_by_name("__import__('json')\n")
    (tmp_path / "a.py").write_text("def main(argv=None):\n    pass\n")
    (tmp_path / "b.py").write_text("def run():\n    import argparse\n")
    (tmp_path / "c.py").write_text("def run():\n    def main():\n        pass\n")
    assert parses_command_lines(tmp_path / "a.py") and parses_command_lines(tmp_path / "b.py")
    assert not parses_command_lines(tmp_path / "c.py")
