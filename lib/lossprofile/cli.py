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
import dataclasses
import json
import sys
from pathlib import Path

import pandas as pd

from . import audio, load_model
from .analysis.profile import (EXTRA_FEATURES, FEATURES, LOUDNESS_DBFS, MIN_SECONDS, WEIGHTS_FILES, load_weights,
                               options_key, profile_scores)
from .columns import units_of, write_dictionary
from .commands import FORWARDED, OWN_THREADS  # the commands that parse their own arguments
from .errors import BadInputError, LossprofileError, MissingInputError, UsageError
from .report import CURVES_FILE, paths_of, write_report, write_run_info
from .data import datasets
from .data.datasets import KINDS, Piece
from .io import file_digest, write_csv_atomic, write_parquet_atomic
from .modality import modality_of
from .perturb import PAPER_LENGTHS, ScorePerturbation, noise_sweep, preset
from .perturb import presets_text
from .runner import RESULTS_FILE, for_each_piece, keyed_part, piece_summary, run_experiment
from .scoring import resolve_precision
from .threads import THREADS_HELP, set_threads

def build_data(model: str = "tiny", device: str | None = None) -> None:
    """Render the training and OOD sets and sample the generated set (skips what is current)."""
    lm = load_model(model, device=device)
    for kind in KINDS:
        datasets.pieces(kind, 1, lm)


def folder_pieces(folder: str, dataset: str | None = None) -> list[Piece]:
    """The pieces of a ``--data`` folder; one line naming the folder when it is missing or holds nothing to score."""
    pieces = datasets.list_pieces(folder, dataset=dataset)
    if not pieces:
        raise BadInputError(f"{folder}: no audio or MIDI files found in it (looked for "
                            f"{', '.join(audio.AUDIO_SUFFIXES + audio.MIDI_SUFFIXES)}, in subfolders too)")
    return pieces


def readable_pieces(lm, pieces: list[Piece], folder: str, perturbations: list = ()) -> list[Piece]:
    """The pieces the model (and the perturbations) can take. A folder with none is refused before any work, in one
    line; audio files beside MIDI ones, for a model or perturbations that need MIDI, are left out with one line
    instead of one skip line per file."""
    midi = [p for p in pieces if p.path.suffix.lower() in audio.MIDI_SUFFIXES]
    others = len(pieces) - len(midi)
    files = f"{others} audio file{'s' if others != 1 else ''}"
    score_kinds = sorted({p.kind for p in perturbations if isinstance(p, ScorePerturbation)})
    needs = (f"{lm.name} reads MIDI files" if not modality_of(lm).reads_audio_files else
             f"the perturbations {', '.join(score_kinds)} change notes and need MIDI files" if score_kinds else None)
    if needs is None or not others:
        return pieces
    if not midi:
        fix = ("score audio with an audio model (--model tiny, or a MusicGen such as facebook/musicgen-small)"
               if not score_kinds else "give a folder of .mid files, or perturb audio (--lengths, or a noise preset)")
        raise UsageError(f"{folder}: {needs} and this folder has none ({files}); {fix}")
    print(f"{folder}: {needs}: its {files} left out, {len(midi)} MIDI file{'s' if len(midi) != 1 else ''} to score",
          file=sys.stderr)
    return midi


def closing_files(*paths: Path) -> list[Path]:
    """Only the files that are there: a closing line never names an output that was not written."""
    return [p for p in paths if p.exists()]


def score(args: argparse.Namespace) -> int:
    pieces = folder_pieces(args.data, args.data_kind)  # a bad folder or preset fails before the model loads
    perturbations = (preset(args.preset, args.data_kind) if args.preset else
                     noise_sweep(args.lengths, args.onset, color=args.color, match_offset_db=args.offset_db))
    lm = load_model(args.model, device=args.device, dtype=None if args.dtype == "auto" else args.dtype)
    has_level = modality_of(lm).has_level
    if args.loudness_dbfs is not None and not has_level:
        raise UsageError(f"--loudness-dbfs: {lm.name} reads MIDI, which has no level to bring anywhere (leave it out)")
    pieces = readable_pieces(lm, pieces, args.data, perturbations)[: args.limit]
    out = Path(args.out)
    units = units_of(lm)
    write_run_info(out, command="score", model=lm.name, data=str(Path(args.data).resolve()), method=args.method,
                   precision=resolve_precision(args.precision, lm.device), excerpt_seconds=args.seconds,
                   seed=args.seed, sample_rate=lm.sample_rate, frame_rate=lm.frame_rate, units=units,
                   loudness_dbfs=args.loudness_dbfs, perturbations=[p.as_row() for p in perturbations],
                   paths=paths_of(pieces), overwrite=args.overwrite)
    # score takes a clip with less sound than --seconds over what it has when that holds every window (as profile
    # takes short clips); seconds_scored says how much
    table = run_experiment(lm, pieces, perturbations, args.out, method=args.method, excerpt_seconds=args.seconds,
                           seed=args.seed, precision=args.precision, loudness_dbfs=args.loudness_dbfs, shorter=True)
    errors = pd.read_csv(out / "errors.csv")
    skipped = f"; {len(errors)} skipped, reasons in {out / 'errors.csv'}" if len(errors) else ""
    if table.empty:
        print(f"no piece could be scored (0 of {len(pieces)}){skipped}", file=sys.stderr)
        return 1
    summary = piece_summary(table)
    # a column empty in every row (a parameter no perturbation of this run has, the prompt of an unconditional run)
    # says nothing: left out (results.parquet keeps every column)
    summary = summary[[c for c in summary.columns if summary[c].astype(object).replace("", None).notna().any()]]
    write_csv_atomic(summary.round(4), out / "summary.csv")
    write_dictionary(list(dict.fromkeys([*table.columns, *summary.columns])), out / "columns.csv", units)
    report = write_report(out)
    same = summary[summary.get("changed", pd.Series(True, index=summary.index)) == False]  # noqa: E712 (NaN: unknown)
    if len(same):
        first = same.iloc[0]
        print(f"warning: {len(same)} of {len(summary)} perturbations changed no token (e.g. {first['piece']}: "
              f"{first['perturbation']}, {int(first['length_frames'])} frames), so their delta is 0 by construction; "
              "column changed = False in summary.csv", file=sys.stderr)
    level = (f", each excerpt brought to {args.loudness_dbfs:g} dBFS RMS" if args.loudness_dbfs is not None else
             ", at each file's own level (--loudness-dbfs to normalise)" if has_level else "")
    files = closing_files(out / RESULTS_FILE, out / "summary.csv", out / "columns.csv", report)
    print(f"{table['piece'].nunique()} of {len(pieces)} pieces scored, {len(table):,} rows (one per piece, "
          f"perturbation and {1000 / lm.frame_rate:g} ms frame; losses in {units['frame']}{level}) -> "
          + ", ".join(str(f) for f in files) + skipped)
    return 0


def profile_table_order(table: pd.DataFrame) -> pd.DataFrame:
    """The piece, its file, then the headline profile_score, then every feature it is read from."""
    front = [c for c in ("piece", "path", "profile_score") if c in table]
    return table[front + [c for c in table.columns if c not in front]]


def profile(args: argparse.Namespace) -> int:
    """Profile features and profile_score for every piece of a folder → ``OUT/profile_scores.parquet`` and ``.csv``."""
    pieces = folder_pieces(args.data)
    if args.seconds < MIN_SECONDS:  # scored (a quick look, the tests), but not what the score was validated on
        print(f"warning: --seconds {args.seconds:g} is below the {MIN_SECONDS:g} s a profile is validated for: the "
              "clean reference its score and percentile are read against holds 15 s excerpts, so a shorter one "
              "reads as atypical for its length", file=sys.stderr)
    lm = load_model(args.model, device=args.device, dtype=None if args.dtype == "auto" else args.dtype)
    pieces = readable_pieces(lm, pieces, args.data)[: args.limit]
    modality = modality_of(lm)
    weights = load_weights(WEIGHTS_FILES[modality.results_name])
    reference = load_model(args.reference, device=args.device) if args.reference else None
    from .analysis.typicality import reference_digest

    params = dict(command="profile", model=lm.name, weights=lm.fingerprint, seconds=args.seconds, seed=args.seed,
                  precision=args.precision, profile_weights=json.dumps(weights, sort_keys=True),
                  clean_reference=reference_digest(modality.results_name),
                  **options_key(args.prompt, reference))
    out = Path(args.out)
    units = units_of(lm)
    write_run_info(out, command="profile", model=lm.name, data=str(Path(args.data).resolve()), excerpt_seconds=args.seconds,
                   seed=args.seed, precision=resolve_precision(args.precision, lm.device), sample_rate=lm.sample_rate,
                   frame_rate=lm.frame_rate, units=units, loudness_dbfs=modality.loudness(LOUDNESS_DBFS),
                   profile_score=(weights or {}).get("provenance", {}).get("chosen", "profile_score"),
                   prompt=args.prompt, reference=args.reference,
                   probe_design=dataclasses.asdict(modality.probe_design), paths=paths_of(pieces),
                   overwrite=args.overwrite)

    def score(piece: Piece) -> pd.DataFrame:
        # profile_scores cuts the excerpt (or takes a short clip)
        clip = modality.read(piece.path, lm.sample_rate)
        curves: dict = {}
        table = profile_scores(lm, [clip], lm.sample_rate, excerpt_seconds=args.seconds, seed=args.seed, names=[piece.name],
                               precision=args.precision, weights=weights, report=False, prompt=args.prompt,
                               reference=reference, curves_out=curves)
        if table.attrs["errors"]:
            reason = table.attrs["errors"][0]["error"]
            for name in (piece.name, str(piece.path)):  # the file is named once, by the skip line
                reason = reason.removeprefix(name + ": ")
            raise audio.AudioError(f"{piece.path}: {reason}")
        # the clip's curve and probes, for the report: beside its part, written first (a part never lacks one)
        write_parquet_atomic(curves[piece.name], curve_path(path_of(piece)))
        return table

    def path_of(piece: Piece) -> Path:
        return keyed_part(out, piece, {**params, "audio": file_digest(piece.path)})

    def curve_path(part: Path) -> Path:
        return part.with_name(part.name.removesuffix(".parquet") + ".curve.parquet")

    parts, errors = for_each_piece(pieces, path_of, score, f"{lm.name} profile")
    write_csv_atomic(pd.DataFrame(errors, columns=["dataset", "piece", "path", "error"]), out / "errors.csv")
    skipped = f"; {len(errors)} skipped, reasons in {out / 'errors.csv'}" if errors else ""
    if not parts:
        print(f"no piece could be scored (0 of {len(pieces)}){skipped}", file=sys.stderr)
        return 1
    skipped_paths = {error["path"] for error in errors}  # parts come in the order of the pieces that were not skipped
    files = dict(zip(map(str, parts), (str(p.path) for p in pieces if str(p.path) not in skipped_paths)))
    table = pd.concat([pd.read_parquet(p).assign(path=files[str(p)]) for p in parts], ignore_index=True).assign(
        model=lm.name, seed=args.seed, excerpt_seconds=args.seconds)
    table = profile_table_order(table)
    write_parquet_atomic(table, out / "profile_scores.parquet")
    write_csv_atomic(table.round(4), out / "profile_scores.csv")
    curves = [pd.read_parquet(curve_path(Path(p))).assign(piece=name) for p, name in zip(parts, table["piece"])
              if curve_path(Path(p)).exists()]
    if curves:  # each clip's clean curve with its probes: what the report draws
        write_parquet_atomic(pd.concat(curves, ignore_index=True), out / CURVES_FILE)
    write_dictionary(table.columns, out / "columns.csv", units)
    report = write_report(out)
    level = ("" if modality.loudness(LOUDNESS_DBFS) is None else f"; each excerpt brought to {LOUDNESS_DBFS:g} dBFS "
             "RMS first, so a recording's level does not enter its profile")
    unit_text = " and ".join(dict.fromkeys((units["token"], units["frame"])))  # a codec model's are one unit
    print(f"{len(table)} of {len(pieces)} pieces scored (profile features in {unit_text}, units of each column in "
          f"columns.csv{level}) -> "
          + ", ".join(str(f) for f in closing_files(out / "profile_scores.parquet", out / "profile_scores.csv",
                                                    out / CURVES_FILE, out / "columns.csv", out / "run.json", report))
          + skipped)
    shorter = table[table["seconds_scored"] < args.seconds - 1e-6] if "seconds_scored" in table else table.iloc[:0]
    if len(shorter):  # scored over what they have: read against the reference's full-length excerpts
        print(f"note: {len(shorter)} of {len(table)} clips had less than {args.seconds:g} s and were scored over what "
              f"they have (e.g. {shorter['piece'].iloc[0]}: {shorter['seconds_scored'].iloc[0]:.1f} s; "
              "seconds_scored in profile_scores.csv); the reference their percentile is read against holds 15 s "
              "excerpts, so compare them with clips of their own length", file=sys.stderr)
    if args.ratings:
        from .analysis.ratings import ratings_correlation, read_ratings

        columns = [c for c in ("profile_score", *FEATURES, *EXTRA_FEATURES) if c in table and table[c].notna().any()]
        ratings = read_ratings(args.ratings, args.ratings_layout, **({} if args.ratings_layout != "csv" else dict(
            clip=args.clip_column, system=args.system_column or None, ratings=args.rating_columns)))
        corr = ratings_correlation(table, ratings, columns)
        write_csv_atomic(corr, out / "ratings_correlation.csv")
        print(corr.round(3).to_string(index=False))
    return 0


class HelpFormatter(argparse.RawTextHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Line breaks kept, and every option's default shown in ``--help``."""




def pop_threads(argv: list[str]) -> tuple[int | None, list[str]]:
    """``--threads N`` (or ``--threads=N``) taken out of a forwarded command's arguments → (N or None, the rest)."""
    def number(text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise UsageError(f"--threads: expected a whole number of CPU threads, got {text!r}") from None

    rest, threads, i = [], None, 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--threads" and i + 1 < len(argv):
            threads, i = number(argv[i + 1]), i + 2
            continue
        if arg.startswith("--threads="):
            threads = number(arg.split("=", 1)[1])
        else:
            rest.append(arg)
        i += 1
    return threads, rest


def one_line(err: BaseException) -> str:
    """An error as the one line a user reads: the message, without a traceback; an OS error names its file."""
    if isinstance(err, OSError) and not isinstance(err, LossprofileError) and err.filename:
        text = f"{err.filename}: {err.strerror or err}"
    else:
        text = str(err) or type(err).__name__
    return " ".join(text.split())  # one line, even where a message was wrapped


def main(argv: list[str] | None = None) -> int:
    """Run a command → its exit status: 0 done; 1 an error the user can fix (one line on stderr, the traceback with
    ``lossprofile --debug ...``) or nothing scored; 2 a command line argparse refused. A bug keeps its traceback."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = False
    while argv and argv[0] == "--debug":
        debug, argv = True, argv[1:]
    try:
        return run_command(argv) or 0
    except (LossprofileError, OSError) as err:
        if debug:
            raise
        print(f"lossprofile: error: {one_line(err)} (lossprofile --debug ... shows the traceback)", file=sys.stderr)
        return 1


def run_command(argv: list[str]) -> int | None:
    if argv and argv[0] in FORWARDED:
        command = FORWARDED[argv[0]][0]
        rest = argv[1:]
        if argv[0] not in OWN_THREADS:  # every command takes --threads; these two parse their own
            threads, rest = pop_threads(rest)
            set_threads(threads)
        command(rest)  # what it returns is no exit status
        return None
    p = argparse.ArgumentParser(prog="lossprofile", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--debug", action="store_true", help="show the traceback of an error (before the command: "
                   "lossprofile --debug score ...)")
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
    s = sub.add_parser("card", help="print the card of an embedded model (measures nothing)",
                       formatter_class=HelpFormatter)
    s.add_argument("name", help="an embedded model: " + ", ".join(sorted(_embedded())))
    s = sub.add_parser("report", help="(re)write report.html for a finished score or profile run",
                       formatter_class=HelpFormatter)
    s.add_argument("out", help="the run's output folder")
    s.add_argument("--max-pieces", type=int, default=12, help="pieces shown with curves and players")
    s.add_argument("--threads", type=int, default=None, help=THREADS_HELP)
    helps = {"build-data": "render the datasets the notebooks use", "figures": "run every notebook, write figures/",
             "score": "noise-injection sweep over a folder of audio/MIDI", "store-outputs":
             "re-execute the notebooks in place (after editing one)", "profile": "profile score of every piece of a folder"}
    descriptions = {
        "score": "Noise-injection sweep over a folder of audio/MIDI. Level: score scores each file at the level it has "
                 "(the replication needs the authors' levels), so a quieter copy scores differently; --loudness-dbfs "
                 "brings every clip to one RMS level first.",
        "profile": f"Profile score of every piece of a folder. Level: profile brings every excerpt to {LOUDNESS_DBFS:g} "
                   "dBFS RMS before probing, so a recording's level does not enter its profile."}
    for name, text in helps.items():
        s = sub.add_parser(name, help=text, formatter_class=HelpFormatter, description=descriptions.get(name))
        s.add_argument("--model", default="tiny", help="'tiny', a hub id such as facebook/musicgen-small, or a folder")
        s.add_argument("--device", default=None, help="cpu or cuda; when not given, cuda where available")
        s.add_argument("--dtype", default="auto", help="weights' dtype: auto (fp32), bf16, fp16, fp32")
        s.add_argument("--threads", type=int, default=None, help=THREADS_HELP)
    for name in ("score", "profile"):
        sub.choices[name].add_argument("--overwrite", action="store_true", help="replace the results of a run "
                                       "with other settings in --out (without it, such a folder is refused; the "
                                       "same settings again resume)")
    s = sub.choices["profile"]
    s.add_argument("--data", required=True, help="folder of wav/flac/mp3/mid files (or a built dataset)")
    s.add_argument("--out", required=True, help="output folder for profile_scores.parquet/.csv and errors.csv")
    s.add_argument("--seconds", type=float, default=15.0, help="excerpt length (from the first sound)")
    s.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="matmul precision while scoring (auto: bf16 on CUDA, fp32 on CPU); --dtype is the weights'")
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
                   + presets_text().replace("%", "%%"))
    s.add_argument("--data-kind", default=None, choices=list(KINDS),
                   help="what the folder holds (the 'dataset' column; authors-noise sets its level by it)")
    s.add_argument("--lengths", type=int, nargs="+", default=list(PAPER_LENGTHS),
                   help="noise lengths in frames (20 ms each)")
    s.add_argument("--onset", type=int, default=250, help="noise onset frame")
    s.add_argument("--color", default="white", help="noise colour: white, pink, brown, blue")
    s.add_argument("--offset-db", type=float, default=0.0, help="noise level relative to the excerpt's RMS")
    s.add_argument("--seconds", type=float, default=15.0, help="excerpt length (from the first sound); a clip with "
                   "less sound is scored over what it has when that holds every perturbation's window")
    s.add_argument("--method", default="exact", choices=["exact", "as_published"],
                   help="exact: MusicGen's own factorization; as_published: the paper's script")
    s.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="matmul precision (auto: bf16 on CUDA, fp32 on CPU)")
    s.add_argument("--loudness-dbfs", type=float, default=None, help="bring each clip to this RMS level (dBFS, e.g. "
                   "-20, as profile does) before perturbing; default: the level each file has (recorded in run.json)")
    s.add_argument("--seed", type=int, default=0, help="seeds the noise (each piece derives its own)")
    s.add_argument("--limit", type=int, default=None, help="score only the first N pieces")
    args = p.parse_args(argv)
    if args.command not in ("sweep", "card"):
        set_threads(args.threads)
    if args.command == "sweep":
        from .sweep import run_sweep  # Ray and YAML only when a sweep runs

        table = run_sweep(args.config, args.out, args.ray_address, args.device, args.threads)
        print(f"{len(table)} rows, {table['piece'].nunique() if len(table) else 0} pieces")
        return
    if args.command == "card":
        return show_card(args.name)
    if args.command == "report":
        print(f"report -> {write_report(args.out, args.max_pieces)}")
        return 0
    device = args.device or ("cuda" if _cuda() else "cpu")
    if args.command == "build-data":
        build_data(args.model, device)
    elif args.command in ("store-outputs", "figures"):
        from .paper import notebooks  # the replication: only here
        notebooks.store_outputs() if args.command == "store-outputs" else notebooks.figures(args.model, device,
                                                                                           args.dtype)
    elif args.command == "profile":
        args.device = device
        return profile(args)
    else:
        args.device = device
        return score(args)
    return 0


def _embedded() -> dict:
    from .models.loading import embedded_models

    return embedded_models()


def show_card(name: str) -> int:
    """Print the shipped MODEL_CARD.md of an embedded model."""
    models = _embedded()
    if name not in models:
        raise UsageError(f"{name!r} is not an embedded model; the embedded models are {', '.join(sorted(models))}")
    card = models[name] / "MODEL_CARD.md"
    if not card.exists():
        raise MissingInputError(f"{card}: {name} ships no card")
    print(card.read_text())
    return 0


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    sys.exit(main())
