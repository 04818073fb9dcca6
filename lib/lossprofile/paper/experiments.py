"""The paper's experiments as library calls, so notebooks only plot and narrate.

Every function returns tidy tables and caches through [`runner.run_experiment`][lossprofile.runner.run_experiment]
under ``results_dir/<experiment>/<model>``, so the notebooks share finished work.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .. import stats
from ..analysis import regions
from ..data import datasets
from ..data.datasets import KIND_LABELS, KINDS, Piece, load_excerpt, pieces  # noqa: F401  (the notebooks' names)
from ..io import slug as model_slug
from ..io import write_parquet_atomic
from ..modality import AUDIO, MIDI, modality_of
from ..models import TokenLM, load_model
from ..perturb import PAPER_LENGTHS, PAPER_SEGMENTS, Perturbation, noise_sweep, preset
from ..runner import piece_summary, run_experiment
from ..scoring import frame_mean, score_variants



def run(lm: TokenLM, experiment: str, kinds: Iterable[str] | Mapping[str, str | Path | None], n_pieces: int,
        perturbations: Sequence[Perturbation], results_dir: str | Path, **kwargs) -> pd.DataFrame:
    """Run one named experiment over the first ``n_pieces`` of each data kind.

    ``kinds``: names (the datasets ``make data`` builds) or a mapping kind → folder, where a
    folder of MIDI or audio files replaces that kind's default (None keeps it).
    """
    out = Path(results_dir) / experiment / model_slug(lm.name)
    sources = kinds.items() if isinstance(kinds, Mapping) else ((kind, None) for kind in kinds)
    chosen = [p for kind, folder in sources for p in pieces(kind, n_pieces, lm, folder=folder)]
    return run_experiment(lm, chosen, perturbations, out, **kwargs)


def each_model(names: Sequence[str], run, device: str | None = None, dtype=None, loaded: TokenLM | None = None
               ) -> pd.DataFrame:
    """``run(lm)`` for every model name, one model in memory at a time → the tables concatenated.

    Results for several models live in one table (its ``model`` column); ``loaded`` is reused
    for its own name instead of being loaded again.
    """
    tables = []
    for name in dict.fromkeys(names):
        lm = loaded if loaded is not None and loaded.name == name else load_model(name, device=device, dtype=dtype)
        tables.append(run(lm))
        del lm
    return pd.concat(tables, ignore_index=True)


def noise_injection(lm: TokenLM, kinds=KINDS, n_pieces: int = 3, lengths=PAPER_LENGTHS, onset_frame: int = 250,
                    results_dir="results", color: str = "white", match_offset_db: float = 0.0, seed: int = 0,
                    method: str = "exact", **kwargs) -> pd.DataFrame:
    """RQ1: loudness-matched noise at ``onset_frame`` for each length, per frame (tidy)."""
    perts = noise_sweep(lengths, onset_frame, color=color, match_offset_db=match_offset_db)
    return run(lm, "noise_injection", kinds, n_pieces, perts, results_dir, seed=seed, method=method, **kwargs)


def length_statistics(summary: pd.DataFrame) -> pd.DataFrame:
    """The paper's tests: over all (model, kind, piece, length) points, over per-length means, per kind
    (and per model when there are several)."""
    rows = []
    everything = stats.length_trend(summary)
    everything.insert(0, "scope", "all points")
    everything.insert(1, "dataset", "all")
    rows.append(everything)
    per_length = summary.groupby("length_frames", as_index=False)["mean_delta"].mean()
    agg = stats.length_trend(per_length)
    agg.insert(0, "scope", "per-length means")
    agg.insert(1, "dataset", "all")
    rows.append(agg)
    per_kind = stats.length_trend(summary, by=["dataset"])
    per_kind.insert(0, "scope", "per data kind")
    rows.append(per_kind)
    if "model" in summary and summary["model"].nunique() > 1:
        per_model = stats.length_trend(summary, by=["model"])
        per_model.insert(0, "scope", "per model")
        per_model.insert(1, "dataset", "all")
        rows.append(per_model)
    return pd.concat(rows, ignore_index=True)


def clean_loss_by_kind(summary: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std across pieces of each piece's mean clean loss, per data kind (and model, when there are several)."""
    keys = (["model"] if "model" in summary and summary["model"].nunique() > 1 else []) + ["dataset"]
    per_piece = summary.groupby(keys + ["piece"])["mean_nll_clean"].first().reset_index()
    return per_piece.groupby(keys)["mean_nll_clean"].agg(["mean", "std", "count"]).reset_index()


def loss_by_condition(noisy: pd.DataFrame, pure: pd.DataFrame, length_frames: int) -> pd.DataFrame:
    """Mean per-frame loss per data kind of clean music, music with a ``length_frames`` noise window,
    and pure noise (Fig. 3's three curves, averaged over frames and pieces)."""
    window = noisy[noisy["length_frames"] == length_frames]
    table = pd.DataFrame({
        "clean": window.groupby("dataset")["nll_clean"].mean(),
        "music_plus_noise": window.groupby("dataset")["nll_perturbed"].mean(),
        "pure_noise": pure.groupby("dataset")["nll_perturbed"].mean(),
    })
    table.insert(0, "noise_length_frames", length_frames)
    return table.reset_index()


def region_table(results: pd.DataFrame, smooth_frames: int = 5, persist_frames: int = 5,
                 rule: str = "ours") -> pd.DataFrame:
    """Detected regions and their delta statistics for every (piece, perturbation) curve.

    ``rule="ours"``: [`regions.detect_regions`][lossprofile.analysis.regions.detect_regions] (boundaries where the smoothed curve crosses
    the baseline); ``rule="authors"``: [`regions.detect_regions_authors`][lossprofile.analysis.regions.detect_regions_authors] (their fixed offsets).
    """
    if rule not in ("ours", "authors"):
        raise ValueError(f"unknown region rule {rule!r}; expected 'ours' or 'authors'")
    keys = ["model", "method", "dataset", "piece", "perturbation", "onset_frame", "length_frames", "color",
            "segment_frames"]
    keys = [k for k in keys if k in results]
    rows = []
    for key, curve in results.groupby(keys, dropna=False):
        curve = curve.sort_values("frame")
        delta, onset, length = (curve["delta"].to_numpy(), int(curve["onset_frame"].iloc[0]),
                                int(curve["length_frames"].iloc[0]))
        found = (regions.detect_regions(delta, onset, length, smooth_frames=smooth_frames, persist_frames=persist_frames) if rule == "ours"
                 else regions.detect_regions_authors(delta, onset, length, persist_frames=persist_frames))
        for row in regions.region_stats(delta, found, empty=np.nan if rule == "ours" else 0.0):
            rows.append({**dict(zip(keys, key)), **row, "rule": rule})
    return pd.DataFrame(rows)


def region_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std across curves of each region's mean delta (the paper's Fig. 4 numbers)."""
    out = table.groupby("region")["mean"].agg(["mean", "std", "count"]).reindex(list(regions.REGIONS))
    return out.reset_index()


def shuffle_sweep(lm: TokenLM, kinds=KINDS, n_pieces: int = 3, segments=PAPER_SEGMENTS, onset_frame: int = 250,
                  window_frames: int = 400, results_dir="results", seed: int = 0, **kwargs) -> pd.DataFrame:
    """Fig. 5: shuffle ``segment_frames``-long segments inside a ``window_frames`` window."""
    perts = [Perturbation("shuffle", onset_frame, window_frames, segment_frames=s, seed=seed) for s in segments]
    return run(lm, "shuffle", kinds, n_pieces, perts, results_dir, seed=seed, **kwargs)


def color_sweep(lm: TokenLM, kinds=KINDS, n_pieces: int = 3, colors=("white", "pink", "brown", "blue"),
                lengths=(10, 100), onset_frame: int = 250, results_dir="results", seed: int = 0,
                **kwargs) -> pd.DataFrame:
    """Supplement: the noise sweep with coloured noise."""
    perts = [p for c in colors for p in noise_sweep(lengths, onset_frame, color=c)]
    return run(lm, "colors", kinds, n_pieces, perts, results_dir, seed=seed, **kwargs)


def pure_noise(lm: TokenLM, kinds=KINDS, n_pieces: int = 3, excerpt_seconds: float = 15.0, results_dir="results",
               seed: int = 0, **kwargs) -> pd.DataFrame:
    """Fig. 3's 'pure noise' curve: the whole excerpt replaced by loudness-matched white noise."""
    frames = int(excerpt_seconds * lm.frame_rate)
    perts = [Perturbation("noise", 0, frames)]
    return run(lm, "pure_noise", kinds, n_pieces, perts, results_dir, seed=seed,
               excerpt_seconds=excerpt_seconds, **kwargs)


SYMBOLIC_PRESETS = ("authors-pitch", "authors-rhythm", "authors-velocity", "authors-tempo")
# The paper's demo page, MusicGen: mean loss of a piece clean -> perturbed (nats per code).
DEMO_PAGE_SYMBOLIC = {("delete_notes", 0.4): (6.46, 6.05), ("randomize_velocities", 0.5): (6.46, 6.01),
                      ("warp_tempo", 0.8): (6.46, 6.09)}


def symbolic_sweep(lm: TokenLM, kinds: Mapping[str, str | Path | None] | None = None, n_pieces: int = 3,
                   presets: Sequence[str] = SYMBOLIC_PRESETS, results_dir="results", seed: int = 0,
                   **kwargs) -> pd.DataFrame:
    """The authors' score perturbations (pitch, rhythm, velocity, tempo grids) on MIDI pieces.

    ``kinds`` maps a data kind to a folder of MIDI files, or None for the default: the held-out
    TrainingSet's scores and the ASAP performances in ``data/asap``.
    """
    kinds = kinds or {"training": None, "ood": None}
    chosen = []
    for kind, folder in kinds.items():
        if folder is not None:
            chosen += datasets.midi_pieces(folder, n_pieces, dataset=kind)
        elif kind == "training":
            chosen += datasets.heldout_score_midis(n_pieces)
        elif kind == "ood":
            chosen += datasets.midi_pieces(datasets.ASAP_DIR, n_pieces, dataset="ood")
        else:
            raise ValueError(f"no MIDI for data kind {kind!r}: give a folder of MIDI files")
    perts = [p for name in presets for p in preset(name)]
    out = Path(results_dir) / "symbolic" / model_slug(lm.name)
    return run_experiment(lm, chosen, perts, out, seed=seed, **kwargs)


def symbolic_summary(results: pd.DataFrame) -> pd.DataFrame:
    """Mean clean and perturbed loss per (perturbation, semitones, fraction) over pieces, with the demo page's numbers."""
    per_piece = piece_summary(results)
    keys = [c for c in ("dataset", "perturbation", "semitones", "fraction") if c in per_piece]
    table = per_piece.groupby(keys, dropna=False).agg(
        mean_nll_clean=("mean_nll_clean", "mean"), mean_nll_perturbed=("mean_nll_perturbed", "mean"),
        mean_delta=("mean_delta", "mean"), delta_std=("mean_delta", "std"), pieces=("piece", "nunique")).reset_index()
    demo = table.apply(lambda r: DEMO_PAGE_SYMBOLIC.get((r["perturbation"], round(r["fraction"], 2))), axis=1)
    table["demo_page_musicgen"] = demo.map(lambda d: f"{d[0]} -> {d[1]}" if d else "")
    return table


def onset_peak(results: pd.DataFrame, frames: int = 5) -> pd.DataFrame:
    """Per curve: the fixed-window Peak (`lossprofile.analysis.regions.window_peak`) of every curve of a table."""
    window = results[(results["frame"] >= results["onset_frame"]) &
                     (results["frame"] < results["onset_frame"] + frames)]
    keys = [k for k in ("dataset", "piece", "perturbation", "length_frames", "color", "segment_frames")
            if k in window]
    return window.groupby(keys, dropna=False)["delta"].mean().rename("onset_delta").reset_index()


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Per-piece means (see [`runner.piece_summary`][lossprofile.runner.piece_summary])."""
    return piece_summary(results)


def save_table(table: pd.DataFrame, name: str, results_dir="results") -> Path:
    """Save a statistics table as ``results_dir/stats/<name>.parquet`` (read by the summary)."""
    path = Path(results_dir) / "stats" / f"{name}.parquet"
    write_parquet_atomic(table, path)
    return path


def record_run(notebook: str, parameters: dict, results_dir="results") -> None:
    """Remember which parameters produced a notebook's statistics (read by the summary)."""
    path = Path(results_dir) / "stats" / "run_info.parquet"
    row = pd.DataFrame([dict(notebook=notebook, parameters=json.dumps(parameters, sort_keys=True, default=str))])
    if path.exists():
        old = pd.read_parquet(path)
        row = pd.concat([old[old["notebook"] != notebook], row], ignore_index=True).sort_values("notebook")
    save_table(row, "run_info", results_dir)


def explore(lm: TokenLM, piece: Piece, perturbation: Perturbation, excerpt_seconds: float = 15.0,
            method: str = "exact") -> dict:
    """One piece under one perturbation: waveforms and per-frame NLL curves (for the explorer)."""
    clean = load_excerpt(piece, lm.sample_rate, excerpt_seconds)
    perturbed = perturbation.apply(clean, lm.sample_rate, lm.frame_rate)
    scores = score_variants(lm, clean, [perturbed], method=method)
    nll_clean = frame_mean(scores.nll_clean).numpy()
    nll_perturbed = frame_mean(scores.nll_variants[0]).numpy()
    return dict(clean_wav=clean, perturbed_wav=perturbed, nll_clean=nll_clean, nll_perturbed=nll_perturbed,
                delta=nll_perturbed - nll_clean, sample_rate=lm.sample_rate)


# ---- modalities side by side: an audio model and a model over MIDI tokens ---------------------------
# The runner puts both on the same 20 ms frames; a frame's loss is a mean over codebooks for an audio model and
# a sum over the frame's tokens for a symbolic one (see runner.frames_table), so levels are compared
# within a model and signs, trends and ratios across models.
SYMBOLIC_MODEL = "tiny-symbolic"


def model_names(model: str, models: Sequence[str] | None = None) -> list[str]:
    """The models a notebook runs side by side: ``models``, or by default ``model`` and the embedded symbolic model."""
    return list(dict.fromkeys(models or [model, SYMBOLIC_MODEL]))


def unit_of(model: str) -> str:
    """What one frame's loss is, in words (`lossprofile.modality.Modality.frame_unit`), for a model name, folder
    or hub id: the symbolic family reads MIDI, the others audio (nothing is loaded)."""
    from ..models.loading import resolve

    return (MIDI if resolve(model)[0] == "symbolic" else AUDIO).frame_unit


def trend_by_model(summary: pd.DataFrame) -> pd.DataFrame:
    """RQ1 per model: noise length against the mean delta over all of a model's points and per data kind."""
    everything = stats.length_trend(summary, by=["model"])
    everything.insert(1, "dataset", "all")
    per_kind = stats.length_trend(summary, by=["model", "dataset"])
    out = pd.concat([everything, per_kind], ignore_index=True)
    out.insert(2, "unit", out["model"].map(unit_of))
    return out


def per_model(table: pd.DataFrame, fn, *args, **kwargs) -> pd.DataFrame:
    """``fn(part, *args, **kwargs)`` for each model's rows of ``table`` → one table with a ``model`` column first."""
    parts = [fn(part, *args, **kwargs).assign(model=model) for model, part in table.groupby("model", sort=False)]
    out = pd.concat(parts, ignore_index=True)
    return out[["model"] + [c for c in out.columns if c != "model"]]


def loss_by_condition_by_model(noisy: pd.DataFrame, pure: pd.DataFrame, length_frames: int) -> pd.DataFrame:
    """`loss_by_condition` for every model of ``noisy`` (and its own rows of ``pure``), with its unit."""
    parts = [loss_by_condition(part, pure[pure["model"] == model], length_frames).assign(model=model,
                                                                                         unit=unit_of(model))
             for model, part in noisy.groupby("model", sort=False)]
    out = pd.concat(parts, ignore_index=True)
    return out[["model"] + [c for c in out.columns if c != "model"]]


def noise_window_costs(lm: TokenLM, kinds=KINDS, n_pieces: int = 3, lengths_frames: Sequence[int] = (100, 200),
                       onset_frame: int = 250, excerpt_seconds: float = 15.0, seed: int = 0) -> pd.DataFrame:
    """What the model pays inside a noise window against a counting learner (RQ2's premise, per modality).

    One row per (piece, window, length): ``window_nll`` (the model, per code or token inside the window),
    ``clean_window_nll`` (the clean excerpt there) and ``counting_nll`` (a learner that only counts the window's own
    codes or tokens: `lossprofile.analysis.musicality.in_context_unigram_nats`). The windows are the
    modality's (`WINDOW_COSTS`): audio, loudness-matched white noise through the codec (after the onset Peak);
    symbolic, random notes at the excerpt's density and one repeated note, in the score.
    """
    modality = modality_of(lm)
    rows = []
    sources = kinds.items() if isinstance(kinds, Mapping) else ((kind, None) for kind in kinds)
    for kind, folder in sources:
        chosen = pieces(kind, n_pieces, lm, folder=folder)
        clips = [modality.excerpt(p, lm.sample_rate, excerpt_seconds) for p in chosen]
        table = WINDOW_COSTS[modality.name](lm, clips, lengths_frames, onset_frame, excerpt_seconds, seed)
        table["piece"] = [chosen[i].name for i in table["piece"]]
        rows.append(table.assign(model=lm.name, dataset=kind, unit=lm.loss_unit)[
            ["model", "dataset", "piece", "window", "length_seconds", "window_nll", "clean_window_nll",
             "counting_nll", "unit"]])
    return pd.concat(rows, ignore_index=True)


def codec_window_costs(lm: TokenLM, wavs: Sequence[np.ndarray], lengths_frames: Sequence[int], onset_frame: int,
                       excerpt_seconds: float, seed: int) -> pd.DataFrame:
    """`noise_window_costs`' rows of an audio model: white noise through the codec
    (`lossprofile.analysis.musicality.noise_response`), the window after the onset Peak."""
    from ..analysis import musicality

    table = musicality.noise_response(lm, wavs, lm.sample_rate, lengths=lengths_frames, onset_frame=onset_frame,
                                      excerpt_seconds=excerpt_seconds, seed=seed)
    return table.assign(window="white noise", length_seconds=table["length_frames"] / lm.frame_rate,
                        window_nll=table["assimilation_delta"] + table["clean_window_nll"],
                        counting_nll=table["noise_unigram_nll"])


def token_window_costs(lm: TokenLM, midis: Sequence, lengths_frames: Sequence[int], onset_frame: int,
                       excerpt_seconds: float, seed: int) -> pd.DataFrame:
    """`noise_window_costs`' rows of a model over MIDI tokens: random notes and one repeated note in the score
    (`lossprofile.analysis.musicality.token_noise_response`), the same windows in seconds."""
    from ..analysis import musicality

    table = musicality.token_noise_response(lm, midis, [n / lm.frame_rate for n in lengths_frames],
                                            onset_seconds=onset_frame / lm.frame_rate,
                                            kinds=("random_notes", "constant_note"), seed=seed)
    table = table.rename(columns={"kind": "window", "window_unigram_nats": "counting_nll"})
    table["window"] = table["window"].str.replace("_", " ")
    return table


# each modality's noise windows (lossprofile.modality.Modality.name -> its rows of noise_window_costs)
WINDOW_COSTS = {AUDIO.name: codec_window_costs, MIDI.name: token_window_costs}


def window_cost_summary(costs: pd.DataFrame) -> pd.DataFrame:
    """Mean over pieces and data kinds of `noise_window_costs`, per model, window and length."""
    keys = ["model", "window", "length_seconds", "unit"]
    out = costs.groupby(keys, sort=False).agg(window_nll=("window_nll", "mean"),
                                              clean_window_nll=("clean_window_nll", "mean"),
                                              counting_nll=("counting_nll", "mean"), pieces=("piece", "count"))
    out["window_below_clean"] = out["window_nll"] < out["clean_window_nll"]
    return out.reset_index()


def profile_evaluation(lm: TokenLM, kinds: Mapping[str, str | Path | None], n_pieces: int, results_dir="results",
                       seed: int = 0, audio_families: dict | None = None, symbolic_families: dict | None = None
                       ) -> tuple[pd.DataFrame, pd.DataFrame, dict, pd.DataFrame]:
    """Notebook 07's evaluation of one model: (scored versions, AUROC table, fitted weights, profile − mean NLL).

    Sources: the TrainingSet's held-out pieces, ASAP performances as MIDI (the score families need MIDI; an audio
    model hears them rendered) and the model's own samples (clean only), ``n_pieces`` each; ``kinds`` may point
    ``training``/``ood``/``generated`` at other folders. Weights are fitted on the fit split of
    [`analysis.evaluate.fit_families_of`][lossprofile.analysis.evaluate.fit_families_of] (noise segments and shuffles, or their token-space
    analogues for a model over MIDI tokens) and reported on the report split.
    """
    from ..analysis import evaluate

    sources = {"training": pieces("training", n_pieces, lm, folder=kinds.get("training")),
               "ood": datasets.midi_pieces(kinds.get("ood") or datasets.ASAP_DIR, n_pieces),
               "generated": pieces("generated", n_pieces, lm, folder=kinds.get("generated"))}
    table = evaluate.run_evaluation(lm, sources, Path(results_dir) / "profile" / model_slug(lm.name), seed=seed,
                                    audio_families=audio_families or evaluate.AUDIO_FAMILIES,
                                    symbolic_families=symbolic_families or evaluate.SYMBOLIC_FAMILIES)
    aurocs, weights = evaluate.evaluate_scores(table, seed=seed)
    diffs = evaluate.profile_vs_mean_loss(table, weights, seed=seed)
    return table, aurocs, weights, diffs
