"""Pieces × perturbations × model → one tidy table, resumable and safe to interrupt.

Each finished piece is written as its own parquet part (atomically: temporary file, then
rename) under ``out_dir/parts``, keyed by a hash of every parameter that produced it.
A re-run with the same parameters reads finished parts instead of recomputing them; an
interrupted run (Ctrl-C, kill) loses at most the piece in progress. A piece that cannot
be used (unreadable, silent, too short, NaN...) is reported in ``out_dir/errors.csv``
with its file and the reason, and the rest of the run completes.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .data.datasets import Piece
from .errors import BadInputError, UsageError
from .io import exists, file_digest, join, slug, write_csv_atomic, write_parquet_atomic
from .models.base import METHODS, TokenLM
from .modality import AUDIO_ONLY_PARAMETERS, Scored, modality_of
from .perturb.score import SCORE_KINDS, ScorePerturbation
from .perturb.waveform import Perturbation
from .scoring import PRECISIONS

RESULTS_FILE = "results.parquet"
TABLE_VERSION = 3  # part of every cache key: parts written with other columns are recomputed, not mixed in
# The columns that say which perturbation made a row (every parameter but the seed), in table order.
PERTURBATION_COLUMNS = ["perturbation"] + [c for c in Perturbation().as_row() if c not in ("perturbation", "seed")] + \
    [c for c in ScorePerturbation().as_row() if c not in Perturbation().as_row()]


def piece_table(lm: TokenLM, piece: Piece, perturbations: Sequence[Perturbation | ScorePerturbation], *, method: str,
                excerpt_seconds: float, seed: int, prompt: str | None, batch_size: int | None,
                prefix_reuse: bool, precision: str, loudness_dbfs: float | None = None,
                shorter: bool = False) -> pd.DataFrame:
    """Score one piece under every perturbation → tidy rows (one per perturbation and frame).

    Per frame: NLL of the clean and the perturbed excerpt and their difference (also per codebook), the entropy
    of the model's predictions and the log-rank of the true tokens, all from the same scoring
    ([`frames_table`][lossprofile.runner.frames_table]). The excerpt, its variants and the frames are the model's modality's
    ([`lossprofile.modality`][]).
    """
    modality = modality_of(lm)
    item = modality.variants(piece, perturbations, lm.sample_rate, lm.frame_rate, excerpt_seconds, seed,
                             loudness_dbfs=loudness_dbfs, shorter=shorter)
    (scored,) = modality.score(lm, [item], excerpt_seconds=excerpt_seconds, method=method, prompt=prompt,
                               batch_size=batch_size, prefix_reuse=prefix_reuse, precision=precision)
    return frames_table(lm, piece, perturbations, scored, excerpt_seconds=excerpt_seconds, seed=seed,
                        loudness_dbfs=loudness_dbfs)


def frames_table(lm: TokenLM, piece: Piece, perturbations: Sequence[Perturbation | ScorePerturbation],
                 scored: Scored, *, excerpt_seconds: float, seed: int,
                 loudness_dbfs: float | None = None) -> pd.DataFrame:
    """The tidy rows of one scored piece (see [`piece_table`][lossprofile.runner.piece_table]), on the frame grid of the model's modality.

    For an audio model a frame is its K codes: ``nll_*``, entropy and log-rank are means over the codebooks
    (nats per code), ``delta_k*`` each codebook's. For a model over MIDI tokens a frame is 20 ms: its ``nll_*`` is
    the *sum* of the NLL of the tokens whose event falls in it (nats per frame, 0 without tokens), so the clean and
    the perturbed curve line up in time although their token counts differ; entropy and log-rank are means (NaN
    without tokens), ``tokens_clean``/``tokens_perturbed`` count them. ``changed``: whether the perturbation
    changed any token (a codec can quantise a perturbed window back to the clean codes, a random-note window draw
    the very notes it replaces: then delta is 0 by construction)."""
    modality = modality_of(lm)
    base = [modality.curve(scored, 0, what, how) for what, how in (("nll", "sum"), ("entropy", "mean"),
                                                                  ("log_rank", "mean"))]
    base_books, base_tokens = modality.codebook_curves(scored, 0), modality.token_counts(scored, 0)
    parts = []
    for i, p in enumerate(perturbations, start=1):
        nll, entropy, log_rank = (modality.curve(scored, i, what, how) for what, how in (
            ("nll", "sum"), ("entropy", "mean"), ("log_rank", "mean")))
        part = pd.DataFrame({"frame": np.arange(scored.frames), "nll_clean": base[0], "nll_perturbed": nll,
                             "delta": nll - base[0], "entropy_clean": base[1], "log_rank_clean": base[2],
                             "entropy_perturbed": entropy, "log_rank_perturbed": log_rank})
        for k, (books, clean_books) in enumerate(zip(modality.codebook_curves(scored, i), base_books)):
            part[f"delta_k{k}"] = books - clean_books
        if base_tokens is not None:
            part["tokens_clean"], part["tokens_perturbed"] = base_tokens, modality.token_counts(scored, i)
        part["changed"] = not torch.equal(scored.codes[i].cpu(), scored.codes[0].cpu())
        for name, value in modality.parameters(p).items():
            part[name] = value
        parts.append(part)
    table = pd.concat(parts, ignore_index=True)
    meta = dict(model=lm.name, method=scored.method, precision=scored.precision, prompt=scored.prompt,
                dataset=piece.dataset, piece=piece.name, path=str(piece.path), excerpt_seconds=excerpt_seconds,
                seconds_scored=scored.seconds, run_seed=seed,
                loudness_dbfs=np.nan if modality.loudness(loudness_dbfs) is None else float(loudness_dbfs))
    for name, value in meta.items():
        table[name] = value
    front = list(meta) + [c for c in Perturbation().as_row() if c in table]
    return tidy_parameters(table[front + [c for c in table.columns if c not in front]])


# Numeric perturbation parameters: a column of them that is empty in every row is float (NaN), not object (None)
NUMERIC_PARAMETERS = ("level_dbfs", "match_offset_db", "segment_frames", "fraction", "band_low_hz", "band_high_hz",
                      "gain", "segment_min_s", "segment_max_s")


def tidy_parameters(table: pd.DataFrame) -> pd.DataFrame:
    """Parameter columns with proper dtypes: numeric ones that hold numbers or nothing become numeric (float where a
    value is missing), so an unused parameter is NaN rather than an object column of None. Rows of a model over
    MIDI tokens (``tokens_clean``) written before that model left audio-only parameters empty get them emptied."""
    table = table.copy()
    if "tokens_clean" in table:
        midi_rows = table["tokens_clean"].notna() & ~table["perturbation"].isin(SCORE_KINDS)
        for name in AUDIO_ONLY_PARAMETERS:
            if name in table and midi_rows.any():
                table[name] = table[name].astype(object).where(~midi_rows, None)
    for name in NUMERIC_PARAMETERS:
        if name in table and table[name].dtype == object:
            table[name] = pd.to_numeric(table[name])
    return table


def check_excerpt_seconds(excerpt_seconds: float) -> None:
    """`UsageError` unless ``excerpt_seconds`` is a positive number (a negative one would score the whole file)."""
    if not (isinstance(excerpt_seconds, (int, float)) and excerpt_seconds > 0):
        raise UsageError(f"excerpt_seconds must be a positive number of seconds, got {excerpt_seconds!r}")


@dataclass(frozen=True)
class ScoringOptions:
    """How pieces are scored; every field is part of each finished part's cache key (but ``batch_size``)."""

    method: str = "exact"
    excerpt_seconds: float = 15.0
    seed: int = 0
    prompt: str | None = None
    prompt_from_description: bool = False
    batch_size: int | None = None
    prefix_reuse: bool = True
    precision: str = "auto"
    pieces_per_batch: int | None = None  # not in the key either: None = 1 on CPU, 16 on a GPU (see run_experiment)
    loudness_dbfs: float | None = None  # None: the level each file has (the replication's)
    shorter: bool = False  # a clip shorter than the excerpt is scored over what it has, if it holds the windows

    def __post_init__(self) -> None:  # refused here, before a model loads or a file is read
        if self.method not in METHODS:
            raise UsageError(f"unknown method {self.method!r}; expected one of {', '.join(METHODS)}")
        if self.precision not in PRECISIONS:
            raise UsageError(f"unknown precision {self.precision!r}; expected one of {', '.join(PRECISIONS)}")
        check_excerpt_seconds(self.excerpt_seconds)
        for name in ("batch_size", "pieces_per_batch"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int) and value >= 1):
                raise UsageError(f"{name} must be a whole number >= 1 (or left out), got {value!r}")


def keyed_part(out_dir: str | os.PathLike, piece: Piece, params: dict) -> str | Path:
    """``out_dir/parts/<dataset>-<piece>-<key>.parquet``, the key a hash of ``params`` and the piece's name."""
    key = hashlib.sha256(json.dumps({**params, "dataset": piece.dataset, "piece": piece.name}, sort_keys=True,
                                    default=str).encode()).hexdigest()[:12]
    return join(out_dir, "parts", f"{slug(f'{piece.dataset}-{piece.name}')[:80]}-{key}.parquet")


def part_path(lm: TokenLM, piece: Piece, perturbations: Sequence, options: ScoringOptions,
              out_dir: str | os.PathLike) -> str | Path:
    """Where a piece's finished part lives: keyed by the weights, every parameter and the audio file's content."""
    params = dict(table_version=TABLE_VERSION, model=lm.name, weights=lm.fingerprint, method=options.method,
                  excerpt_seconds=options.excerpt_seconds, seed=options.seed, precision=options.precision,
                  perturbations=[p.key for p in perturbations])
    # in the key only when set, so that parts written before these options existed stay valid
    params.update({k: v for k, v in (("loudness_dbfs", options.loudness_dbfs), ("shorter", options.shorter)) if v})
    prompt = piece.description if options.prompt_from_description else options.prompt
    # the file's content is part of the key: a re-rendered or re-sampled piece is scored again
    return keyed_part(out_dir, piece, {**params, "prompt": prompt, "audio": file_digest(piece.path)})


def report_skip(piece: Piece, err: Exception) -> dict:
    """One line on stderr, ``skipped FILE: reason`` (above any progress bar), and the error row for errors.csv."""
    reason, path = str(err), str(piece.path)
    reason = reason[len(path) + 2 :] if reason.startswith(path + ": ") else reason  # the file is named once
    tqdm.write(f"skipped {path}: {reason}", file=sys.stderr)
    return dict(dataset=piece.dataset, piece=piece.name, path=path, error=str(err))


def piece_part(piece: Piece, path: str | Path, compute: Callable[[Piece], pd.DataFrame]
               ) -> tuple[str | Path | None, dict | None]:
    """The piece's finished part at ``path`` (reused if there), or ``compute(piece)`` written there atomically
    → (path, None); a piece that cannot be used → (None, error row naming its file and the reason)."""
    if exists(path):
        return path, None
    try:
        table = compute(piece)
    except BadInputError as err:  # a file that cannot be used (AudioError is one); anything else is a bug: raise
        return None, report_skip(piece, err)
    write_parquet_atomic(table, path)
    return path, None


def prepare_workers(pieces_per_batch: int) -> int:
    """Threads that prepare pieces ahead of the device: one per piece of a batch, up to the CPU threads torch may
    use here (a Ray actor's ``cpus_per_actor``), at least 2. Rendering and perturbing run partly outside the GIL
    (measured: docs/performance.md)."""
    return max(2, min(pieces_per_batch, torch.get_num_threads()))


def for_each_piece(pieces: Sequence[Piece], path_of: Callable[[Piece], str | Path],
                   compute: Callable[[Piece], pd.DataFrame], desc: str, progress: bool = True, *,
                   prepare: Callable[[Piece], object] | None = None,
                   compute_many: Callable[[list[tuple[Piece, object]]], list[pd.DataFrame]] | None = None,
                   pieces_per_batch: int = 1, workers: int | None = None) -> tuple[list[str | Path], list[dict]]:
    """The package's one per-piece resumable loop ([`run_experiment`][lossprofile.runner.run_experiment], the profile score's validation,
    ``lossprofile profile``): finished parts are reused, each new one is written atomically (an interrupted run
    loses at most the pieces in progress), bad pieces are reported and the rest goes on → (parts, error rows).

    With ``prepare`` and ``compute_many`` and ``pieces_per_batch > 1`` it is a pipeline: ``workers`` threads
    (default [`prepare_workers`][lossprofile.runner.prepare_workers]) prepare the next pieces (load, render, perturb) while ``compute_many``
    scores a batch of prepared ones together; a batch that fails is scored again piece by piece, so a bad piece
    is named and the rest kept.
    """
    paths = [path_of(piece) for piece in pieces]  # once each: a part's path hashes its file's content
    pending = [i for i, path in enumerate(paths) if not exists(path)]
    if progress and len(pending) < len(pieces):  # a resumption says so: its bar starts at the finished pieces
        tqdm.write(f"{desc}: {len(pieces) - len(pending)} of {len(pieces)} pieces finished before, reused",
                   file=sys.stderr)
    if prepare is None or compute_many is None or pieces_per_batch <= 1:
        parts, errors = [], []
        bar = tqdm(pieces, desc=desc, unit="file", disable=not progress)  # files: a skipped one counts too
        for piece, path in zip(bar, paths):
            path, error = piece_part(piece, path, compute)
            parts += [path] if path else []
            errors += [error] if error else []
            if error:
                bar.set_postfix(skipped=len(errors))  # the bar says how many of the files it counted were skipped
        return parts, errors
    failed: dict[int, dict] = {}
    bar = tqdm(total=len(pieces), initial=len(pieces) - len(pending), desc=desc, unit="file", disable=not progress)

    error_row = report_skip

    with ThreadPoolExecutor(max(1, workers or prepare_workers(pieces_per_batch))) as pool:
        chunks = [pending[lo : lo + pieces_per_batch] for lo in range(0, len(pending), pieces_per_batch)]
        ahead = [[pool.submit(prepare, pieces[i]) for i in chunk] for chunk in chunks[:2]]  # this batch and the next
        for n, chunk in enumerate(chunks):
            futures = ahead.pop(0)
            if n + 2 < len(chunks):
                ahead.append([pool.submit(prepare, pieces[i]) for i in chunks[n + 2]])
            ready = []
            for i, future in zip(chunk, futures):
                try:
                    ready.append((i, future.result()))
                except BadInputError as err:
                    failed[i] = error_row(pieces[i], err)
            try:
                tables = compute_many([(pieces[i], prepared) for i, prepared in ready]) if ready else []
                done = list(zip([i for i, _ in ready], tables))
            except BadInputError:  # find the piece that failed: score them one at a time
                done = []
                for i, prepared in ready:
                    try:
                        done.append((i, compute_many([(pieces[i], prepared)])[0]))
                    except BadInputError as err:
                        failed[i] = error_row(pieces[i], err)
            for i, table in done:
                write_parquet_atomic(table, paths[i])
            bar.update(len(chunk))
            if failed:
                bar.set_postfix(skipped=len(failed))
    bar.close()
    parts = [path for i, path in enumerate(paths) if i not in failed]
    return parts, [failed[i] for i in sorted(failed)]


def scorer(lm: TokenLM, perturbations: Sequence, options: ScoringOptions) -> Callable[[Piece], pd.DataFrame]:
    """``piece → piece_table(...)`` with these options: what a part of [`run_experiment`][lossprofile.runner.run_experiment] holds."""
    def score(piece: Piece) -> pd.DataFrame:
        prompt = piece.description if options.prompt_from_description else options.prompt
        return piece_table(lm, piece, perturbations, method=options.method, excerpt_seconds=options.excerpt_seconds,
                           seed=options.seed, prompt=prompt, batch_size=options.batch_size,
                           prefix_reuse=options.prefix_reuse, precision=options.precision,
                           loudness_dbfs=options.loudness_dbfs, shorter=options.shorter)
    return score


def batch_scorer(lm: TokenLM, perturbations: Sequence, options: ScoringOptions
                 ) -> tuple[Callable[[Piece], object], Callable[[list[tuple[Piece, object]]], list[pd.DataFrame]]]:
    """(prepare, compute_many) for [`for_each_piece`][lossprofile.runner.for_each_piece]'s pipeline: the same tables as [`scorer`][lossprofile.runner.scorer],
    the decoder batched across pieces ([`modality.Modality.score`][lossprofile.modality.Modality.score])."""
    modality = modality_of(lm)

    def prepare(piece: Piece):
        return modality.variants(piece, perturbations, lm.sample_rate, lm.frame_rate, options.excerpt_seconds,
                                 options.seed, loudness_dbfs=options.loudness_dbfs, shorter=options.shorter)

    def compute_many(items: list[tuple[Piece, object]]) -> list[pd.DataFrame]:
        tables: dict[int, pd.DataFrame] = {}
        prompts = [p.description if options.prompt_from_description else options.prompt for p, _ in items]
        for prompt in dict.fromkeys(prompts):  # pieces with one prompt share a batch
            chosen = [n for n, q in enumerate(prompts) if q == prompt]
            scored = modality.score(lm, [items[n][1] for n in chosen], excerpt_seconds=options.excerpt_seconds,
                                    method=options.method, prompt=prompt, batch_size=options.batch_size,
                                    prefix_reuse=options.prefix_reuse, precision=options.precision)
            for n, s in zip(chosen, scored):
                tables[n] = frames_table(lm, items[n][0], perturbations, s, excerpt_seconds=options.excerpt_seconds,
                                         seed=options.seed, loudness_dbfs=options.loudness_dbfs)
        return [tables[n] for n in range(len(items))]
    return prepare, compute_many


def pieces_per_batch_for(lm: TokenLM, requested: int | None) -> int:
    """``requested``, or by default 16 pieces per decoder batch on a GPU and 1 (the plain loop) on CPU; always 1
    where the modality scores each piece alone (a model over MIDI tokens: its sequences differ in length)."""
    if not modality_of(lm).batched:
        return 1
    return requested if requested else (16 if lm.device.type == "cuda" else 1)


def score_pieces(lm: TokenLM, pieces: Sequence[Piece], perturbations: Sequence, options: ScoringOptions,
                 out_dir: str | os.PathLike, desc: str = "", progress: bool = False
                 ) -> list[tuple[str | Path | None, dict | None]]:
    """Score pieces (of one data kind: one perturbation list) into their parts (finished ones reused) → per piece
    (part path, None), or (None, error row) for a bad piece; the runner's pipeline across pieces where
    ``options.pieces_per_batch`` (default: the device, [`pieces_per_batch_for`][lossprofile.runner.pieces_per_batch_for]) says so.

    The unit of work of sweeps, in-process and on Ray actors: each part is written atomically, so a killed
    worker loses at most the pieces it was scoring.
    """
    prepare, compute_many = batch_scorer(lm, perturbations, options)

    def path_of(piece: Piece) -> str | Path:
        return part_path(lm, piece, perturbations, options, out_dir)

    parts, errors = for_each_piece(pieces, path_of, scorer(lm, perturbations, options), desc, progress,
                                   prepare=prepare, compute_many=compute_many,
                                   pieces_per_batch=pieces_per_batch_for(lm, options.pieces_per_batch))
    failed = {(e["dataset"], e["piece"]): e for e in errors}
    finished = iter(parts)  # the parts of the pieces that did not fail, in the pieces' order
    return [(None, failed[p.dataset, p.name]) if (p.dataset, p.name) in failed else (next(finished), None)
            for p in pieces]


def collect(parts: Sequence[Path], errors: Sequence[dict], out_dir: str | os.PathLike,
            files: dict | None = None) -> pd.DataFrame:
    """Write ``errors.csv`` and ``results.parquet`` (the parts in the order given) → the results table.
    ``files``: each part's audio file as it is now (its ``path`` column; a part reused after the data folder moved
    was written with the old one)."""
    error_table = pd.DataFrame(list(errors), columns=["dataset", "piece", "path", "error"])
    write_csv_atomic(error_table, join(out_dir, "errors.csv"))
    files = files or {}
    tables = [pd.read_parquet(p).assign(**({"path": files[str(p)]} if str(p) in files else {})) for p in parts]
    result = tidy_parameters(pd.concat(tables, ignore_index=True)) if tables else pd.DataFrame()
    if tables:
        write_parquet_atomic(result, join(out_dir, RESULTS_FILE))
    return result


def run_experiment(lm: TokenLM, pieces: Sequence[Piece], perturbations: Sequence[Perturbation | ScorePerturbation],
                   out_dir: str | os.PathLike, *, method: str = "exact", excerpt_seconds: float = 15.0,
                   seed: int = 0, prompt: str | None = None, prompt_from_description: bool = False,
                   batch_size: int | None = None, prefix_reuse: bool = True, precision: str = "auto",
                   pieces_per_batch: int | None = None, progress: bool = True, loudness_dbfs: float | None = None,
                   shorter: bool = False) -> pd.DataFrame:
    """Run (or resume) an experiment; returns the tidy table of every finished piece.

    ``pieces_per_batch`` > 1 runs the pipeline: CPU threads prepare the next pieces while the decoder
    scores the variants of several pieces per batch (default: 16 on a GPU, 1 on CPU — there batching
    across pieces gains nothing and the plain loop's numbers are the reference).

    ``loudness_dbfs``: bring each clip to this RMS level first (default: keep the level each file has, as the
    replication needs); ``shorter``: score a clip with less sound than ``excerpt_seconds`` over what it has when
    that holds every perturbation's window (``seconds_scored`` says how much) instead of skipping it.

    Writes ``out_dir/parts/*.parquet`` (one per piece), ``out_dir/results.parquet``
    (all of them) and ``out_dir/errors.csv`` (pieces that failed, with the reason).
    """
    perturbations = list(perturbations)
    if not perturbations:
        raise ValueError("no perturbations given")
    modality_of(lm).check_perturbations(perturbations)  # refused before any work, not piece by piece
    options = ScoringOptions(method, excerpt_seconds, seed, prompt, prompt_from_description, batch_size,
                             prefix_reuse, precision, pieces_per_batch, loudness_dbfs, shorter)
    done = score_pieces(lm, pieces, perturbations, options, out_dir, f"{lm.name} {method}", progress)
    return collect([part for part, _ in done if part is not None], [error for _, error in done if error is not None],
                   out_dir, files={str(part): str(p.path) for p, (part, _) in zip(pieces, done) if part is not None})


def piece_summary(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, method, dataset, piece and its file, perturbation): mean clean and perturbed loss, mean
    delta."""
    keys = [c for c in ["model", "method", "precision", "prompt", "dataset", "piece", "path", *PERTURBATION_COLUMNS]
            if c in results]
    grouped = results.groupby(keys, dropna=False)
    extra = {"changed": ("changed", "any")} if "changed" in results else {}
    return grouped.agg(mean_nll_clean=("nll_clean", "mean"), mean_nll_perturbed=("nll_perturbed", "mean"),
                       mean_delta=("delta", "mean"), **extra).reset_index()
