"""``load_model``: one entry point for every family, dispatching on what a name or folder is.

Families register here by module path and are imported only when asked, so the engine never pulls
in a family it does not use. A family module provides:

- ``EMBEDDED``: names of the models shipped in the package (``"tiny"``), mapped to their folders;
- ``claim(name_or_path) -> int``: how sure it is that a hub id or a local folder is one of its checkpoints
  (`lossprofile.models.base.CERTAIN`, `lossprofile.models.base.FALLBACK` or
  `lossprofile.models.base.NO_CLAIM`);
- ``FORMATS``: its checkpoint formats in words (the unknown-folder error names every family's);
- ``HUB_MODELS``: hub ids it knows by name (for error messages);
- ``load(path, name, device, dtype, backend) -> TokenLM``.

([`models.base.FamilyModule`][lossprofile.models.base.FamilyModule] declares them.) Dispatch does not depend on the order of
`FAMILIES`: the highest claim wins, and two families claiming at the same level is an error.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType

import torch

from ..threads import ensure_threads
from .base import NO_CLAIM, ModelLoadError, TokenLM

# Every family load_model considers (name → module path); the order is only the order of listings.
FAMILIES: dict[str, str] = {"symbolic": "lossprofile.models.symbolic", "musicgen": "lossprofile.models.musicgen"}
DTYPES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
          "fp16": torch.float16, "float16": torch.float16}


def register_family(name: str, module: str) -> None:
    """Make ``load_model`` consider the family implemented in ``module`` (an importable path)."""
    FAMILIES[name] = module


def family_module(name: str) -> ModuleType:
    return importlib.import_module(FAMILIES[name])


def embedded_models() -> dict[str, Path]:
    """Every shipped model name → its folder, over all families."""
    return {n: p for family in FAMILIES for n, p in family_module(family).EMBEDDED.items()}


def resolve(name_or_path: str | os.PathLike) -> tuple[str, str]:
    """(family, path for that family's loader) of a user-facing model name, folder or hub id."""
    name = str(name_or_path)
    for family in FAMILIES:
        module = family_module(family)
        if name in module.EMBEDDED:
            folder = module.EMBEDDED[name]
            if not (folder / "config.json").exists():
                raise ModelLoadError(f"the embedded model is missing: {folder}/config.json not found. "
                                     f"Rebuild it with `make {name if name != 'tiny' else 'tiny-model'}`.")
            return family, str(folder)
    is_dir = Path(name).is_dir()
    looks_local = name.startswith(("/", "./", "../", "~")) or name.endswith(("/", os.sep)) or name.count("/") > 1
    if looks_local and not Path(name).expanduser().exists():  # a hub id is "org/name": this path is not there
        raise ModelLoadError(f"{name}: model folder or checkpoint file not found")
    if not is_dir and "/" not in name:
        import difflib

        hub = [h for family in FAMILIES for h in family_module(family).HUB_MODELS]
        # a hub id without its organisation ('musicgen-small') is the common slip: name the full id
        close = [h for h in hub if h.split("/")[-1] == name] or difflib.get_close_matches(
            name, [*embedded_models(), *hub, *(h.split("/")[-1] for h in hub)], n=1)
        close = [next((h for h in hub if h.split("/")[-1] == c), c) for c in close]
        raise ModelLoadError(f"unknown model name {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                             + f": expected one of {', '.join(embedded_models())}, one of {', '.join(hub)}, "
                             "another hub id 'org/name', or a local checkpoint directory")
    claims = {family: int(family_module(family).claim(name)) for family in FAMILIES}
    best = max(claims.values(), default=NO_CLAIM)
    winners = sorted(f for f, c in claims.items() if c == best)
    if best > NO_CLAIM and len(winners) == 1:
        return winners[0], name
    if best > NO_CLAIM:
        raise ModelLoadError(f"{name}: claimed equally ({best}) by the families {', '.join(winners)}; "
                             "load it with that family's own loader (lossprofile.models.<family>.load)")
    what = "directory" if is_dir else "hub id"
    raise ModelLoadError(f"{name}: no model family recognises this {what}. Formats: " +
                         "; ".join(f"{f}: {family_module(f).FORMATS}" for f in FAMILIES))


def load_model(name_or_path: str | os.PathLike = "tiny", device: str | torch.device | None = None, *,
               dtype: torch.dtype | str | None = None, backend: str = "transformers",
               threads: int | None = None) -> TokenLM:
    """Load a model for scoring: an embedded name (``"tiny"``), a hub id or a local checkpoint folder.

    ``dtype`` sets the weights' precision (``torch.bfloat16`` on GPU halves memory); log-probabilities
    are always computed in fp32. ``backend`` selects another implementation of the same family where
    one exists (MusicGen: ``"audiocraft"``, audiocraft's own likelihood, for cross-checks).
    ``threads``: CPU threads torch uses in this process (`lossprofile.threads.ensure_threads`: by default
    the cores this process may use, or what was chosen earlier in it; ``LOSSPROFILE_THREADS`` overrides).
    """
    ensure_threads(threads)
    if device is not None and torch.device(device).type == "cuda" and not torch.cuda.is_available():
        # torch's own error is an assertion deep in the first .to(); say what to change instead
        raise ModelLoadError(f"device {str(device)!r}: torch here has no CUDA GPU (a CPU-only build, or no GPU "
                             "visible); use --device cpu (device='cpu')")
    family, path = resolve(name_or_path)
    if isinstance(dtype, str):
        dtype = DTYPES[dtype]
    return family_module(family).load(path, name=str(name_or_path), device=device, dtype=dtype or torch.float32,
                                      backend=backend)
