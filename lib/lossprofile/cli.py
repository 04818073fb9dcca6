"""Command line: build the data, regenerate every figure, or score any folder of audio.

    python -m lossprofile.cli build-data [--model tiny]
    python -m lossprofile.cli figures [--model facebook/musicgen-small --device cuda]
    python -m lossprofile.cli score --data path/to/folder --out results/mine [--lengths 5 10 50]
    python -m lossprofile.cli profile --data path/to/folder --out results/scores   (profile score per piece)
    python -m lossprofile.cli sweep sweeps/smoke.yaml [--ray-address local|auto|ray://host:port]
    python -m lossprofile.cli store-outputs   (refresh the outputs nbval checks, after changing a notebook)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .datasets import REPO_ROOT
from .presets import describe as describe_presets

NOTEBOOKS = ("01_noise_injection", "02_token_dynamics", "03_regions", "04_robustness", "05_explorer",
             "06_symbolic", "07_profile_evaluation")
# What `make figures` passes to every notebook (beyond model/device/dtype): the default
# replication size, chosen to finish in under 20 minutes on 2 CPU cores with the tiny model.
# Results and figures go to `results/` and `figures/` under the working directory (the
# notebooks themselves run in notebooks/, so the CLI hands them absolute paths).
FIGURE_PARAMETERS = dict(n_pieces=20, results_dir="results", figures_dir="figures")
# Per-notebook changes to that: the profile evaluation scores every piece in ~30 versions, each
# with its probes, so it takes fewer pieces and the library's full degradation grid.
NOTEBOOK_PARAMETERS = {"06_symbolic": dict(n_pieces=8),
                       "07_profile_evaluation": dict(n_pieces=8, audio_families=None, symbolic_families=None)}


def build_data(model: str = "tiny", device: str | None = None) -> None:
    """Render the training and OOD sets and sample the generated set (skips what is current)."""
    from . import experiments, load_model

    lm = load_model(model, device=device)
    for kind in experiments.KINDS:
        experiments.pieces(kind, 1, lm)


# The explorer's cells finish in seconds, but once in a while papermill's client missed the
# kernel's last message after its widgets drew, and waited forever (seen in `make figures`,
# and again with its full parameters, where the retry then ran in seconds): a cell timeout turns that into an error, and the notebook runs once more.
CELL_TIMEOUT_SECONDS = {"05_explorer": 120}


def execute(source: str, target: str, name: str, **kwargs) -> None:
    """papermill.execute_notebook with the notebook's cell timeout; a timed-out run is retried once."""
    import papermill

    for attempt in (1, 2):
        try:
            papermill.execute_notebook(source, target, kernel_name="python3", progress_bar=False,
                                       execution_timeout=CELL_TIMEOUT_SECONDS.get(name), **kwargs)
            return
        except Exception as err:  # nbclient's CellTimeoutError, possibly wrapped by papermill
            if attempt == 2 or "timeout" not in f"{type(err).__name__} {err}".lower():
                raise
            print(f"[notebooks] {name}: a cell timed out ({err}); running it again", flush=True)


def run_notebooks(model: str, device: str, dtype: str, names=NOTEBOOKS, extra: dict | None = None) -> None:
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
    import nbformat

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
        return "image/png" in output.data or set(output.data) == {"text/plain"}
    return output.output_type == "error"


def score(args: argparse.Namespace) -> None:
    from . import datasets, load_model
    from .perturb import noise_sweep
    from .runner import run_experiment

    from .presets import preset

    lm = load_model(args.model, device=args.device, dtype=None if args.dtype == "auto" else args.dtype)
    pieces = datasets.list_pieces(args.data, dataset=args.data_kind)[: args.limit]
    perturbations = (preset(args.preset, args.data_kind) if args.preset else
                     noise_sweep(args.lengths, args.onset, args.color, args.offset_db))
    table = run_experiment(lm, pieces, perturbations, args.out, method=args.method, excerpt_seconds=args.seconds,
                           seed=args.seed, precision=args.precision)
    print(f"{len(table)} rows written to {Path(args.out) / 'results.parquet'}")


def profile(args: argparse.Namespace) -> None:
    """Profile features and profile_score for every piece of a folder → ``OUT/profile_scores.parquet`` and ``.csv``."""
    import warnings

    import pandas as pd

    from . import datasets, load_model
    from .profile import profile_scores
    from .runner import load_excerpt, write_parquet_atomic

    lm = load_model(args.model, device=args.device, dtype=None if args.dtype == "auto" else args.dtype)
    rows, errors = [], []
    for piece in datasets.list_pieces(args.data)[: args.limit]:
        try:
            wav = load_excerpt(piece, lm.sample_rate, args.seconds)
            rows.append(profile_scores(lm, [wav], lm.sample_rate, args.seconds, seed=args.seed, names=[piece.name],
                                       precision=args.precision))
        except ValueError as err:  # AudioError is a ValueError: name the file, go on with the rest
            warnings.warn(f"skipped {piece.path}: {err}")
            errors.append(dict(piece=piece.name, path=str(piece.path), error=str(err)))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(errors, columns=["piece", "path", "error"]).to_csv(out / "errors.csv", index=False)
    if rows:
        table = pd.concat(rows, ignore_index=True).assign(model=lm.name, seed=args.seed, excerpt_seconds=args.seconds)
        write_parquet_atomic(table, out / "profile_scores.parquet")
        table.to_csv(out / "profile_scores.csv", index=False)
        print(f"{len(table)} pieces scored ({len(errors)} skipped) -> {out / 'profile_scores.parquet'}")
        if args.ratings:
            from .evaluate import ratings_correlation, read_ratings
            from .profile import FEATURES

            columns = [c for c in ("profile_score", *FEATURES) if table[c].notna().any()]
            corr = ratings_correlation(table, read_ratings(args.ratings), columns)
            corr.to_csv(out / "ratings_correlation.csv", index=False)
            print(corr.round(3).to_string(index=False))
    else:
        print(f"no piece could be scored; see {out / 'errors.csv'}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="lossprofile", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sweep", help="run a sweep file in-process or on a Ray cluster",
                       formatter_class=argparse.RawTextHelpFormatter)
    s.add_argument("config", help="a sweep YAML file (see sweeps/smoke.yaml)")
    s.add_argument("--out", default=None, help="output folder (default: the file's 'out'); a re-run resumes")
    s.add_argument("--ray-address", default=None,
                   help="none: in this process; 'local': start a local Ray instance;\n'auto': join this node's "
                        "cluster; 'ray://host:port': a remote cluster")
    s.add_argument("--device", default=None, help="in-process only: cpu or cuda (actors take the file's ray.device)")
    helps = {"build-data": "render the datasets the notebooks use", "figures": "run every notebook, write figures/",
             "score": "noise-injection sweep over a folder of audio/MIDI", "store-outputs":
             "re-execute the notebooks in place (after editing one)", "profile": "profile score of every piece of a folder"}
    for name, text in helps.items():
        s = sub.add_parser(name, help=text, formatter_class=argparse.RawTextHelpFormatter)
        s.add_argument("--model", default="tiny", help="'tiny', a hub id such as facebook/musicgen-small, or a folder")
        s.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
        s.add_argument("--dtype", default="auto", help="weights' dtype: auto (fp32), bf16, fp16, fp32")
    s = sub.choices["profile"]
    s.add_argument("--data", required=True, help="folder of wav/flac/mp3/mid files (or a built dataset)")
    s.add_argument("--out", required=True, help="output folder for profile_scores.parquet/.csv and errors.csv")
    s.add_argument("--seconds", type=float, default=15.0, help="excerpt length (from the first sound)")
    s.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    s.add_argument("--seed", type=int, default=0, help="seeds probe onsets and noise")
    s.add_argument("--limit", type=int, default=None, help="score only the first N pieces")
    s.add_argument("--ratings", default=None, help="a ratings CSV (MusicEval layout: clip id, system, MOS); "
                   "writes the Spearman of every score with the ratings, per clip and per system")
    s = sub.choices["score"]
    s.add_argument("--data", required=True, help="folder of wav/flac/mp3/mid files (or a built dataset)")
    s.add_argument("--out", required=True, help="output folder (results.parquet, parts/, errors.csv); resumable")
    s.add_argument("--preset", default=None, help="a named perturbation set instead of the noise sweep below:\n"
                   + describe_presets().replace("%", "%%"))
    s.add_argument("--data-kind", default=None, choices=["training", "ood", "generated"],
                   help="what the folder holds (the 'dataset' column; authors-noise sets its level by it)")
    s.add_argument("--lengths", type=int, nargs="+", default=[5, 10, 50, 100, 150, 200],
                   help="noise lengths in frames (20 ms each)")
    s.add_argument("--onset", type=int, default=250, help="noise onset frame")
    s.add_argument("--color", default="white", help="noise colour: white, pink, brown, blue")
    s.add_argument("--offset-db", type=float, default=0.0, help="noise level relative to the excerpt's RMS")
    s.add_argument("--seconds", type=float, default=15.0, help="excerpt length (from the first sound)")
    s.add_argument("--method", default="exact", choices=["exact", "as_published"],
                   help="exact: MusicGen's own factorization; as_published: the paper's script")
    s.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="matmul precision (auto: bf16 on CUDA, fp32 on CPU)")
    s.add_argument("--seed", type=int, default=0, help="seeds the noise (each piece derives its own)")
    s.add_argument("--limit", type=int, default=None, help="score only the first N pieces")
    args = p.parse_args(argv)
    if args.command == "sweep":
        from .sweep import run_sweep

        table = run_sweep(args.config, args.out, args.ray_address, args.device)
        print(f"{len(table)} rows, {table['piece'].nunique() if len(table) else 0} pieces")
        return
    device = args.device or ("cuda" if _cuda() else "cpu")
    if args.command == "build-data":
        build_data(args.model, device)
    elif args.command == "store-outputs":
        store_outputs()
    elif args.command == "figures":
        run_notebooks(args.model, device, args.dtype)
        from .summary import write_summary

        print(f"[figures] summary: {write_summary(FIGURE_PARAMETERS['results_dir'])}")
    elif args.command == "profile":
        args.device = device
        profile(args)
    else:
        args.device = device
        score(args)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    sys.exit(main())
