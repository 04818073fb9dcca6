"""Command line: build the data, regenerate every figure, or score any folder of audio.

    lossprofile build-data [--model tiny]
    lossprofile figures [--model facebook/musicgen-small --device cuda]
    lossprofile score --data path/to/folder --out results/mine [--lengths 5 10 50]
    lossprofile profile --data path/to/folder --out results/scores   (profile score per piece)
    lossprofile report results/mine   (rewrite report.html of a finished run)
    lossprofile sweep sweeps/smoke.yaml [--ray-address local|auto|ray://host:port]
    lossprofile store-outputs   (refresh the outputs nbval checks, after changing a notebook)
    lossprofile bench [--arch small --device cuda]      (published per-file path against the engine)
    lossprofile tiny-model | model-card | study [...]   (the embedded model's factory; ``--help`` each)

(``lossprofile`` is ``.venv/bin/lossprofile``, or ``python -m lossprofile.cli``.)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from . import audio, load_model
from .analysis.profile import (EXTRA_FEATURES, FEATURES, MIDI_WEIGHTS_FILE, WEIGHTS_FILE, load_weights, options_key,
                               profile_scores)
from .columns import write_dictionary
from .report import paths_of, write_report, write_run_info
from .data import datasets
from .data.datasets import KINDS, Piece
from .io import file_digest, write_csv_atomic, write_parquet_atomic
from .perturb import PAPER_LENGTHS, noise_sweep, preset
from .perturb import describe as describe_presets
from .runner import for_each_piece, keyed_part, piece_summary, run_experiment
from .threads import set_threads

def build_data(model: str = "tiny", device: str | None = None) -> None:
    """Render the training and OOD sets and sample the generated set (skips what is current)."""
    lm = load_model(model, device=device)
    for kind in KINDS:
        datasets.pieces(kind, 1, lm)


def score(args: argparse.Namespace) -> None:
    lm = load_model(args.model, device=args.device, dtype=None if args.dtype == "auto" else args.dtype)
    pieces = datasets.list_pieces(args.data, dataset=args.data_kind)[: args.limit]
    perturbations = (preset(args.preset, args.data_kind) if args.preset else
                     noise_sweep(args.lengths, args.onset, args.color, args.offset_db))
    out = Path(args.out)
    write_run_info(out, command="score", model=lm.name, data=str(Path(args.data).resolve()), method=args.method,
                   precision=args.precision, excerpt_seconds=args.seconds, seed=args.seed, sample_rate=lm.sample_rate,
                   frame_rate=lm.frame_rate, perturbations=[p.as_row() for p in perturbations], paths=paths_of(pieces))
    table = run_experiment(lm, pieces, perturbations, args.out, method=args.method, excerpt_seconds=args.seconds,
                           seed=args.seed, precision=args.precision)
    errors = pd.read_csv(out / "errors.csv")
    if not table.empty:  # one row per piece and perturbation, beside the per-frame table
        summary = piece_summary(table)
        write_csv_atomic(summary.round(4), out / "summary.csv")
        write_dictionary(list(dict.fromkeys([*table.columns, *summary.columns])), out / "columns.csv")
    print(f"{table['piece'].nunique() if not table.empty else 0} of {len(pieces)} pieces scored, "
          f"{len(table):,} rows (one per piece, perturbation and 20 ms frame; losses in nats per code) -> "
          f"{out / 'results.parquet'}" + (f"; per-piece means -> {out / 'summary.csv'}; units and meaning of "
                                          f"every column -> {out / 'columns.csv'}" if not table.empty else "")
          + f"; report -> {write_report(out)}"
          + (f"; {len(errors)} skipped, reasons in {out / 'errors.csv'}" if len(errors) else ""))


def profile(args: argparse.Namespace) -> None:
    """Profile features and profile_score for every piece of a folder → ``OUT/profile_scores.parquet`` and ``.csv``."""
    lm = load_model(args.model, device=args.device, dtype=None if args.dtype == "auto" else args.dtype)
    reads_midi = getattr(lm, "reads", "audio") == "midi"
    weights = load_weights(MIDI_WEIGHTS_FILE if reads_midi else WEIGHTS_FILE)
    reference = load_model(args.reference, device=args.device) if args.reference else None
    params = dict(command="profile", model=lm.name, weights=lm.fingerprint, seconds=args.seconds, seed=args.seed,
                  precision=args.precision, profile_weights=json.dumps(weights, sort_keys=True),
                  **options_key(args.prompt, reference))
    out = Path(args.out)
    pieces = datasets.list_pieces(args.data)[: args.limit]
    write_run_info(out, command="profile", model=lm.name, data=str(Path(args.data).resolve()), excerpt_seconds=args.seconds,
                   seed=args.seed, precision=args.precision, sample_rate=lm.sample_rate, frame_rate=lm.frame_rate,
                   profile_score=(weights or {}).get("provenance", {}).get("chosen", "profile_score"),
                   prompt=args.prompt, reference=args.reference, paths=paths_of(pieces))

    def score(piece: Piece) -> pd.DataFrame:
        # profile_scores cuts the excerpt (or takes a short clip); a model over MIDI tokens reads the file itself
        clip = piece.path if reads_midi else audio.load_audio(piece.path, lm.sample_rate)
        table = profile_scores(lm, [clip], lm.sample_rate, args.seconds, seed=args.seed, names=[piece.name],
                               precision=args.precision, weights=weights, report=False, prompt=args.prompt,
                               reference=reference)
        if table.attrs["errors"]:
            raise audio.AudioError(f"{piece.path}: {table.attrs['errors'][0]['error'].removeprefix(piece.name + ': ')}")
        return table

    def path_of(piece: Piece) -> Path:
        return keyed_part(out, piece, {**params, "audio": file_digest(piece.path)})

    parts, errors = for_each_piece(pieces, path_of, score, f"{lm.name} profile")
    write_csv_atomic(pd.DataFrame(errors, columns=["dataset", "piece", "path", "error"]), out / "errors.csv")
    if parts:
        files = {str(path_of(piece)): str(piece.path) for piece in pieces}
        table = pd.concat([pd.read_parquet(p).assign(path=files[str(p)]) for p in parts], ignore_index=True).assign(
            model=lm.name, seed=args.seed, excerpt_seconds=args.seconds)
        table = table[["piece", "path", *[c for c in table.columns if c not in ("piece", "path")]]]
        write_parquet_atomic(table, out / "profile_scores.parquet")
        write_csv_atomic(table.round(4), out / "profile_scores.csv")
        write_dictionary(table.columns, out / "columns.csv")
        print(f"{len(table)} pieces scored -> {out / 'profile_scores.parquet'} (and .csv; units and meaning of "
              f"every column in columns.csv); report -> {write_report(out)}"
              + (f"; {len(errors)} skipped, reasons in {out / 'errors.csv'}" if errors else ""))
        if args.ratings:
            from .analysis.ratings import ratings_correlation, read_ratings

            columns = [c for c in ("profile_score", *FEATURES, *EXTRA_FEATURES) if c in table and table[c].notna().any()]
            ratings = read_ratings(args.ratings, args.ratings_layout, **({} if args.ratings_layout != "csv" else dict(
                clip=args.clip_column, system=args.system_column or None, ratings=args.rating_columns)))
            corr = ratings_correlation(table, ratings, columns)
            write_csv_atomic(corr, out / "ratings_correlation.csv")
            print(corr.round(3).to_string(index=False))
    else:
        print(f"no piece could be scored; see {out / 'errors.csv'}")


class HelpFormatter(argparse.RawTextHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Line breaks kept, and every option's default shown in ``--help``."""


# Commands that hand the rest of the command line to a module's own parser (``lossprofile bench --help``).
FORWARDED = {"bench": ("lossprofile.bench", "published per-file scoring against the engine, in one process"),
             "tiny-model": ("lossprofile.embedded.training", "train (or resume) the embedded model"),
             "tiny-symbolic": ("lossprofile.embedded.symbolic", "train (or resume) the embedded symbolic model"),
             "model-card": ("lossprofile.embedded.card", "measure the embedded model and write its card"),
             "study": ("lossprofile.embedded.study", "run (or resume) the embedded model's ablation study"),
             "validate": ("lossprofile.analysis.validation", "leave-one-family-out, properties and ladder of the "
                          "profile score (make validation)"),
             "gpu-check": ("lossprofile.gpucheck", "measure the GPU pipeline in minutes (make gpu-check)")}
OWN_THREADS = ("tiny-model", "study")  # forwarded commands whose own parser has --threads


THREADS_HELP = ("CPU threads torch uses (default: the cores this process may use, from its CPU affinity and "
                "cgroup quota; LOSSPROFILE_THREADS or OMP_NUM_THREADS override it)")


def pop_threads(argv: list[str]) -> tuple[int | None, list[str]]:
    """``--threads N`` (or ``--threads=N``) taken out of a forwarded command's arguments → (N or None, the rest)."""
    rest, threads, i = [], None, 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--threads" and i + 1 < len(argv):
            threads, i = int(argv[i + 1]), i + 2
            continue
        if arg.startswith("--threads="):
            threads = int(arg.split("=", 1)[1])
        else:
            rest.append(arg)
        i += 1
    return threads, rest


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in FORWARDED:
        import importlib

        module = importlib.import_module(FORWARDED[argv[0]][0])
        rest = argv[1:]
        if argv[0] not in OWN_THREADS:  # every command takes --threads; these two parse their own
            threads, rest = pop_threads(rest)
            set_threads(threads)
        module.main(rest)  # what it returns is no exit status
        return None
    p = argparse.ArgumentParser(prog="lossprofile", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    for name, (_, text) in FORWARDED.items():
        sub.add_parser(name, help=text + f" (lossprofile {name} --help)", add_help=False)
    s = sub.add_parser("sweep", help="run a sweep file in-process or on a Ray cluster",
                       formatter_class=argparse.RawTextHelpFormatter)
    s.add_argument("config", help="a sweep YAML file (see sweeps/smoke.yaml)")
    s.add_argument("--out", default=None, help="output folder (default: the file's 'out'); a re-run resumes")
    s.add_argument("--ray-address", default=None,
                   help="none: in this process; 'local': start a local Ray instance;\n'auto': join this node's "
                        "cluster; 'ray://host:port': a remote cluster")
    s.add_argument("--device", default=None, help="in-process only: cpu or cuda (actors take the file's ray.device)")
    s.add_argument("--threads", type=int, default=None, help="in-process only: " + THREADS_HELP + " (Ray actors "
                   "use the file's ray.cpus_per_actor)")
    s = sub.add_parser("report", help="(re)write report.html for a finished score or profile run",
                       formatter_class=HelpFormatter)
    s.add_argument("out", help="the run's output folder")
    s.add_argument("--max-pieces", type=int, default=12, help="pieces shown with curves and players")
    s.add_argument("--threads", type=int, default=None, help=THREADS_HELP)
    helps = {"build-data": "render the datasets the notebooks use", "figures": "run every notebook, write figures/",
             "score": "noise-injection sweep over a folder of audio/MIDI", "store-outputs":
             "re-execute the notebooks in place (after editing one)", "profile": "profile score of every piece of a folder"}
    for name, text in helps.items():
        s = sub.add_parser(name, help=text, formatter_class=HelpFormatter)
        s.add_argument("--model", default="tiny", help="'tiny', a hub id such as facebook/musicgen-small, or a folder")
        s.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
        s.add_argument("--dtype", default="auto", help="weights' dtype: auto (fp32), bf16, fp16, fp32")
        s.add_argument("--threads", type=int, default=None, help=THREADS_HELP)
    s = sub.choices["profile"]
    s.add_argument("--data", required=True, help="folder of wav/flac/mp3/mid files (or a built dataset)")
    s.add_argument("--out", required=True, help="output folder for profile_scores.parquet/.csv and errors.csv")
    s.add_argument("--seconds", type=float, default=15.0, help="excerpt length (from the first sound)")
    s.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    s.add_argument("--seed", type=int, default=0, help="seeds probe onsets and noise")
    s.add_argument("--limit", type=int, default=None, help="score only the first N pieces")
    s.add_argument("--prompt", default=None, help="a text-conditioned model's description of the clips: adds "
                   "text_alignment (NLL under the null condition minus under the prompt)")
    s.add_argument("--reference", default=None, help="a second model reading the same codes (e.g. "
                   "facebook/musicgen-small beside --model facebook/musicgen-medium, or tiny-symbolic-base beside "
                   "tiny-symbolic): adds the cross-model score binoculars")
    s.add_argument("--ratings", default=None, help="human ratings of the clips (see --ratings-layout); writes the "
                   "Spearman of every score with every rating, per clip and per system (ratings_correlation.csv)")
    s.add_argument("--ratings-layout", default="musiceval", choices=["musiceval", "songeval", "csv"],
                   help="musiceval: CSV of clip id, system, MOS; songeval: its metadata.jsonl (five aesthetic "
                   "dimensions and their mean); csv: any CSV, columns named below")
    s.add_argument("--clip-column", default="clip", help="csv layout: the column of clip ids (file names)")
    s.add_argument("--system-column", default="system", help="csv layout: the column of systems ('' for none)")
    s.add_argument("--rating-columns", nargs="+", default=["rating"], help="csv layout: the rating columns")
    s = sub.choices["score"]
    s.add_argument("--data", required=True, help="folder of wav/flac/mp3/mid files (or a built dataset)")
    s.add_argument("--out", required=True, help="output folder (results.parquet, parts/, errors.csv); resumable")
    s.add_argument("--preset", default=None, help="a named perturbation set instead of the noise sweep below:\n"
                   + describe_presets().replace("%", "%%"))
    s.add_argument("--data-kind", default=None, choices=list(KINDS),
                   help="what the folder holds (the 'dataset' column; authors-noise sets its level by it)")
    s.add_argument("--lengths", type=int, nargs="+", default=list(PAPER_LENGTHS),
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
    if args.command != "sweep":
        set_threads(args.threads)
    if args.command == "sweep":
        from .sweep import run_sweep  # Ray and YAML only when a sweep runs

        table = run_sweep(args.config, args.out, args.ray_address, args.device, args.threads)
        print(f"{len(table)} rows, {table['piece'].nunique() if len(table) else 0} pieces")
        return
    if args.command == "report":
        print(f"report -> {write_report(args.out, args.max_pieces)}")
        return
    device = args.device or ("cuda" if _cuda() else "cpu")
    if args.command == "build-data":
        build_data(args.model, device)
    elif args.command in ("store-outputs", "figures"):
        import importlib

        notebooks = importlib.import_module("lossprofile.paper.notebooks")  # the replication: by name, only here
        notebooks.store_outputs() if args.command == "store-outputs" else notebooks.figures(args.model, device,
                                                                                           args.dtype)
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
