"""Running the numbered notebooks headlessly (papermill): every figure, or the outputs nbval checks.

``lossprofile figures`` and ``lossprofile store-outputs`` call `figures` and `store_outputs`.
"""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import papermill

from ..data.datasets import REPO_ROOT
from .summary import write_summary

NOTEBOOKS = ("01_noise_injection", "02_token_dynamics", "03_regions", "04_robustness", "05_explorer",
             "06_symbolic", "07_profile_evaluation")
# What `make figures` passes to every notebook (beyond model/device/dtype): the default
# replication size, with the tiny model on 2 CPU cores (how long it takes: docs/performance.md).
# Results and figures go to `results/` and `figures/` under the working directory (the
# notebooks themselves run in notebooks/, so the CLI hands them absolute paths).
FIGURE_PARAMETERS = dict(n_pieces=20, results_dir="results", figures_dir="figures")
# Per-notebook changes to that: the profile evaluation scores every piece in ~30 versions, each
# with its probes, so it takes fewer pieces and the library's full degradation grid.
# 02's noise window against a counting learner re-scores each piece with its own reference noise (one more
# pass per piece): 8 pieces per data kind.
NOTEBOOK_PARAMETERS = {"02_token_dynamics": dict(counting_pieces=8), "06_symbolic": dict(n_pieces=8),
                       "07_profile_evaluation": dict(n_pieces=8, audio_families=None, symbolic_families=None)}


# The explorer's cells finish in seconds, but once in a while papermill's client missed the
# kernel's last message after its widgets drew, and waited forever (seen in `make figures`,
# and again with its full parameters, where the retry then ran in seconds): a cell timeout turns that into an error, and the notebook runs once more.
CELL_TIMEOUT_SECONDS = {"05_explorer": 120}


def execute(source: str, target: str, name: str, **kwargs) -> None:
    """papermill.execute_notebook with the notebook's cell timeout; a timed-out run is retried once."""
    for attempt in (1, 2):
        try:
            papermill.execute_notebook(source, target, kernel_name="python3", progress_bar=False,
                                       execution_timeout=CELL_TIMEOUT_SECONDS.get(name), **kwargs)
            return
        except Exception as err:  # nbclient's CellTimeoutError, possibly wrapped by papermill
            if attempt == 2 or "timeout" not in f"{type(err).__name__} {err}".lower():
                raise
            print(f"[notebooks] {name}: a cell timed out ({err}); running it again", flush=True)


def run_notebooks(model: str, device: str, dtype: str, *, names=NOTEBOOKS, extra: dict | None = None) -> None:
    """Execute the notebooks with papermill; executed copies go to ``notebooks/executed``."""
    executed = REPO_ROOT / "notebooks" / "executed"
    executed.mkdir(parents=True, exist_ok=True)
    params = dict(model=model, device=device, dtype=dtype, **FIGURE_PARAMETERS, **(extra or {}))
    for key in ("results_dir", "figures_dir"):
        params[key] = str(Path(params[key]).resolve())
    for name in names:
        started = time.time()
        print(f"[figures] {name} ...", flush=True)
        execute(str(REPO_ROOT / "notebooks" / f"{name}.ipynb"), str(executed / f"{name}.ipynb"), name,
                parameters={**params, **NOTEBOOK_PARAMETERS.get(name, {})}, cwd=str(REPO_ROOT / "notebooks"))
        print(f"[figures] {name} done in {time.time() - started:.0f} s", flush=True)


def store_outputs(names=NOTEBOOKS) -> None:
    """Re-execute the notebooks in place with their own (small) defaults: the outputs nbval checks.

    Kept: printed text and figures. Dropped: stderr, progress widgets and audio players
    (machine-specific or megabytes of base64 that would bloat the repository).
    """
    for name in names:
        path = REPO_ROOT / "notebooks" / f"{name}.ipynb"
        print(f"[store-outputs] {name} ...", flush=True)
        execute(str(path), str(path), name, cwd=str(path.parent))
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            cell.metadata.pop("papermill", None)
            cell.metadata.pop("execution", None)
            if cell.cell_type == "code":
                cell.outputs = [o for o in cell.outputs if keep_output(o)]
        nb.metadata.pop("papermill", None)
        nb.metadata.pop("widgets", None)
        nbformat.write(nb, path)


def keep_output(output) -> bool:
    if output.output_type == "stream":
        return output.name == "stdout"
    if output.output_type in ("display_data", "execute_result"):
        return "image/png" in output.data or set(output.data) <= {"text/plain", "text/markdown"}
    return output.output_type == "error"




def figures(model: str, device: str, dtype: str) -> None:
    """Every notebook at the replication's size, then ``figures/summary.md`` beside the paper's numbers."""
    run_notebooks(model, device, dtype)
    print(f"[figures] summary: {write_summary(FIGURE_PARAMETERS['results_dir'])}")
