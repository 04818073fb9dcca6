"""Proof that a refactoring changed no number: run every notebook (small defaults) and the smoke sweep
into a fresh folder, then compare every table they wrote with a snapshot taken before the change.

    python tools/same_tables.py run build/tables-before     # before the change
    python tools/same_tables.py run build/tables-after      # after it
    python tools/same_tables.py compare build/tables-before build/tables-after

``compare`` exits 1 and names each table (and column) that differs. Tables are compared exactly
(same columns, same dtypes, same values; NaN equals NaN): the runs are on one machine, so floats must
be bit-identical. Per-piece cache parts (``parts/``) are skipped — their file names carry cache keys;
the ``results.parquet`` they are collected into is compared instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("0*.ipynb"))


def run(out: Path, only: list[str] | None = None) -> None:
    import papermill

    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    for nb in NOTEBOOKS:
        if only and nb.stem not in only:
            continue
        print(f"[tables] {nb.stem}", flush=True)
        for attempt in (1, 2):  # papermill once in a while waits forever after the explorer's widgets draw
            try:
                papermill.execute_notebook(str(nb), str(out / f"{nb.stem}.ipynb"), kernel_name="python3",
                                           progress_bar=False,
                                           execution_timeout=120 if nb.stem == "05_explorer" else None,
                                           parameters=dict(results_dir=str(out / "results"),
                                                           figures_dir=str(out / "figures")),
                                           cwd=str(REPO / "notebooks"))
                break
            except Exception as err:
                if attempt == 2 or "timeout" not in f"{type(err).__name__} {err}".lower():
                    raise
                print(f"[tables] {nb.stem}: a cell timed out; running it again", flush=True)
    if only and "sweep" not in only:
        return
    print("[tables] smoke sweep", flush=True)
    subprocess.run([sys.executable, "-m", "lossprofile.cli", "sweep", str(REPO / "sweeps" / "smoke.yaml"),
                    "--out", str(out / "results" / "sweep-smoke"), "--device", "cpu"], check=True, cwd=REPO,
                   env={**os.environ, "HF_HUB_OFFLINE": "1"})


def tables(root: Path) -> dict[str, Path]:
    found = {}
    for path in sorted((root / "results").rglob("*")):
        if path.suffix in (".parquet", ".csv") and "parts" not in path.relative_to(root).parts:
            found[str(path.relative_to(root))] = path
    return found


def read(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def compare(before: Path, after: Path) -> int:
    old, new = tables(before), tables(after)
    problems = [f"missing after: {name}" for name in old if name not in new]
    problems += [f"new after: {name}" for name in new if name not in old]
    for name in sorted(set(old) & set(new)):
        a, b = read(old[name]), read(new[name])
        try:
            pd.testing.assert_frame_equal(a, b, check_exact=True)
        except AssertionError as err:
            problems.append(f"differs: {name}: {str(err).splitlines()[0:3]}")
    print(f"{len(set(old) & set(new))} tables compared, {len(problems)} problems")
    for line in problems:
        print("  " + line)
    return 1 if problems else 0


if __name__ == "__main__":
    command, *paths = sys.argv[1:]
    if command == "run":  # run OUT [NAME ...]: only these notebooks (and "sweep")
        run(Path(paths[0]), paths[1:] or None)
    elif command == "compare":
        sys.exit(compare(Path(paths[0]), Path(paths[1])))
    else:
        sys.exit(f"unknown command {command!r}; expected run or compare")
