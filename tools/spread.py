"""How much do the notebooks' numbers move across CPU kernels and thread counts?

    python tools/spread.py [--notebooks 01_noise_injection 03_regions] [--out results/spread]

Runs the notebooks headlessly (their own small defaults) once per setting, each in its own
process and results folder: torch's portable kernels (``ATEN_CPU_CAPABILITY=default``), AVX2
and the machine's native kernels, each with 1 and 2 threads. Then it reads the statistics
tables every run saved and prints, per table and column, the largest difference between any
two settings. This is what the notebook checks' tolerances (and the README's numbers) come from.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

SETTINGS = [(cap, threads) for cap in ("default", "avx2", "native") for threads in (1, 2)]
NOTEBOOKS = ("01_noise_injection", "02_token_dynamics", "03_regions", "04_robustness", "06_symbolic",
             "07_profile_evaluation")


def run_setting(capability: str, threads: int, notebooks, out: Path, repo: Path) -> Path:
    folder = (out / f"{capability}-{threads}").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
    if capability != "native":
        env["ATEN_CPU_CAPABILITY"] = capability
    else:
        env.pop("ATEN_CPU_CAPABILITY", None)
    for name in notebooks:
        code = ("import papermill, sys; papermill.execute_notebook(sys.argv[1], sys.argv[2], cwd=sys.argv[3], "
                "parameters=dict(results_dir=sys.argv[4], figures_dir=sys.argv[4] + '/figures'), "
                "kernel_name='python3', progress_bar=False)")
        subprocess.run([sys.executable, "-c", code, str(repo / "notebooks" / f"{name}.ipynb"),
                        str(folder / f"{name}.ipynb"), str(repo / "notebooks"), str(folder)], env=env, check=True)
    return folder


def compare(folders: list[Path]) -> pd.DataFrame:
    """Largest absolute difference of every numeric column of every stats table across the runs."""
    rows = []
    tables = sorted({p.name for f in folders for p in (f / "stats").glob("*.parquet")} - {"run_info.parquet"})
    for name in tables:
        frames = [pd.read_parquet(f / "stats" / name) for f in folders if (f / "stats" / name).exists()]
        if len(frames) < 2 or any(len(t) != len(frames[0]) for t in frames):
            continue
        for col in frames[0].columns:
            if not all(pd.api.types.is_numeric_dtype(t[col]) and not pd.api.types.is_bool_dtype(t[col])
                       for t in frames):
                continue
            values = np.stack([t[col].to_numpy(dtype=float) for t in frames])
            spread = np.nanmax(values, axis=0) - np.nanmin(values, axis=0)
            rows.append(dict(table=name.removesuffix(".parquet"), column=col, max_spread=float(np.nanmax(spread)),
                             typical_value=float(np.nanmedian(np.abs(values)))))
    return pd.DataFrame(rows).sort_values(["table", "column"]).reset_index(drop=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--notebooks", nargs="+", default=list(NOTEBOOKS))
    p.add_argument("--out", type=Path, default=Path("results/spread"))
    args = p.parse_args(argv)
    repo = Path(__file__).resolve().parents[1]
    folders = [run_setting(cap, threads, args.notebooks, args.out, repo) for cap, threads in SETTINGS]
    table = compare(folders)
    table.to_csv(args.out / "spread.csv", index=False)
    with pd.option_context("display.max_rows", 500, "display.width", 160):
        print(table.to_string(index=False))


if __name__ == "__main__":
    main()
