"""Does reading the loss curve's shape beat mean loss? Quality gradients with a known order.

Every real piece is scored clean and degraded at several strengths, each version with the
probe protocol of [`lossprofile.analysis.profile`][]:

- audio degradations (any piece): noise segments, shuffled 10-frame segments, a deleted
  frequency band (2–20 kHz in 10–50 ms segments), volume drops (segments at gain 0.05);
- score degradations (pieces with MIDI, rendered with piano): wrong notes (moved 1–5
  semitones), deleted notes, random velocities, tempo warps ([`lossprofile.perturb.score`][]);
- real vs generated (the model's own samples) and generated at several top-k values.

For every score and degradation family: the paired AUROC (share of pieces whose clean version
scores better than its degraded version, ties one half) with a bootstrap 95% CI over pieces,
and the Spearman correlation of the score with the strength. ``profile_score``'s weights and
every feature's direction are fitted on one half of the pieces and on the ``noise_segments``
and ``shuffle`` families only; every number reported comes from the other half of the pieces
(all families; the fit families are marked).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .. import audio
from ..data.datasets import Piece
from ..io import derived_seed, write_csv_atomic
from ..modality import DAMAGE_KINDS, modality_of
from ..perturb import score as symbolic
from ..perturb.probes import ProbeDesign
from ..perturb.waveform import Perturbation
from ..stats import auroc_ci, paired_auroc
from ..runner import for_each_piece, keyed_part
from .profile import FEATURES, LOUDNESS_DBFS, combine, options_key, profile_scores

FIT_FAMILIES = ("noise_segments", "shuffle")
# for a model over MIDI tokens: the token-space analogues of noise segments and shuffles
TOKEN_FIT_FAMILIES = ("random_notes", "shuffle_notes")
LOWER_IS_BETTER = ("mean_nll",)  # fixed in advance: the paper's measure, lower loss = better music
TYPICALITY_PREFIX = "typicality"  # typicality scores (lossprofile.analysis.typicality): higher = better, by design
AUDIO_FAMILIES = {  # family -> strengths (fraction of the excerpt after its first second)
    "noise_segments": (0.05, 0.1, 0.2, 0.4),
    "shuffle": (0.1, 0.25, 0.5, 0.9),
    "band_delete": (0.2, 0.5, 0.8),
    "volume": (0.1, 0.3, 0.6),
}
SYMBOLIC_FAMILIES = {
    "wrong_notes": (0.1, 0.3, 0.5),
    "deleted_notes": (0.1, 0.2, 0.4),
    "velocities": (0.3, 0.5, 0.8),
    "tempo_warp": (0.1, 0.3, 0.5),
}
# The validation's grid (lossprofile.analysis.validation): every audio family the project has, three strengths
# each; "colored_noise" is noise_segments with pink noise, "fade_in" white noise fading in over the window.
VALIDATION_AUDIO_FAMILIES = {
    "noise_segments": (0.1, 0.2, 0.4),
    "colored_noise": (0.1, 0.2, 0.4),
    "fade_in": (0.2, 0.5, 0.9),
    "shuffle": (0.25, 0.5, 0.9),
    "band_delete": (0.2, 0.5, 0.8),
    "volume": (0.1, 0.3, 0.6),
}
# For a model that reads MIDI, the token-space analogues of noise segments and shuffling (the audio families
# need a waveform): random-note windows of 0.2-1 s covering the fraction, and 10-frame (0.2 s) segments reordered.
TOKEN_FAMILIES = {"random_notes": (0.1, 0.2, 0.4), "shuffle_notes": (0.25, 0.5, 0.9)}
START_FRAME = 50  # degradations start after the first second, so every version begins alike


@dataclass(frozen=True)
class Version:
    family: str  # "clean" for the original
    strength: float


def split_of(piece: str) -> str:
    """``fit`` or ``report``, fixed by a hash of the piece's name (half each)."""
    return "fit" if int(hashlib.sha256(piece.encode()).hexdigest()[:8], 16) % 2 == 0 else "report"


def degrade_audio(wav: np.ndarray, sample_rate: int, frame_rate: int, family: str, strength: float,
                  seed: int) -> np.ndarray:
    """One audio degradation of an excerpt ``[S]`` at ``strength`` (see `AUDIO_FAMILIES`)."""
    frames = int(wav.size * frame_rate // sample_rate)  # whole frames, also at a fractional frame rate
    span = frames - START_FRAME
    if family == "noise_segments":
        p = Perturbation("noise_segments", START_FRAME, span, fraction=strength, segment_min_s=0.2,
                         segment_max_s=1.0, seed=seed)
    elif family == "colored_noise":
        p = Perturbation("noise_segments", START_FRAME, span, fraction=strength, segment_min_s=0.2,
                         segment_max_s=1.0, color="pink", seed=seed)
    elif family == "fade_in":
        p = Perturbation("noise_fade", START_FRAME, max(1, int(strength * span)), seed=seed)
    elif family == "shuffle":
        length = max(20, int(strength * span) // 10 * 10)
        p = Perturbation("shuffle", START_FRAME, length, segment_frames=10, seed=seed)
    elif family == "band_delete":
        p = Perturbation("band_delete", START_FRAME, span, fraction=strength, band_low_hz=2000.0,
                         band_high_hz=20000.0, seed=seed)
    elif family == "volume":
        p = Perturbation("volume", START_FRAME, span, fraction=strength, gain=0.05, segment_min_s=0.1,
                         segment_max_s=1.0, seed=seed)
    else:
        raise ValueError(f"unknown audio degradation {family!r}; expected one of {list(VALIDATION_AUDIO_FAMILIES)}")
    return p.apply(wav, sample_rate, frame_rate)


def degrade_midi(midi, family: str, strength: float, seed: int):
    """One score degradation (see `SYMBOLIC_FAMILIES`) of a ``PrettyMIDI``; the input is untouched."""
    if family == "wrong_notes":
        return symbolic.shift_pitches(midi, strength, (1, 2, 3, 4, 5), seed=seed, in_key=False)
    if family == "deleted_notes":
        return symbolic.delete_notes(midi, strength, seed=seed)
    if family == "velocities":
        return symbolic.randomize_velocities(midi, strength, seed=seed)
    if family == "tempo_warp":
        return symbolic.warp_tempo(midi, strength, seed=seed)
    raise ValueError(f"unknown score degradation {family!r}; expected one of {list(SYMBOLIC_FAMILIES)}")


def degrade_excerpt(clip, frame_rate: int, excerpt_seconds: float, family: str, strength: float, seed: int):
    """One token-space degradation (`TOKEN_FAMILIES`) of a score excerpt ``clip`` (PrettyMIDI from 0 s)."""
    from ..perturb.waveform import covering_segments

    frames = int(round(excerpt_seconds * frame_rate))
    if family == "random_notes":
        out = clip
        for i, seg in enumerate(covering_segments(slice(START_FRAME, frames), strength, (10, 50), seed)):
            out = symbolic.random_notes(out, (seg.start / frame_rate, seg.stop / frame_rate), seed=seed + 1 + i)
        return out
    if family == "shuffle_notes":
        length = max(20, int(strength * (frames - START_FRAME)) // 10 * 10)
        return symbolic.shuffle_notes(clip, (START_FRAME / frame_rate, (START_FRAME + length) / frame_rate),
                                      10 / frame_rate, seed=seed)
    raise ValueError(f"unknown token-space degradation {family!r}; expected one of {list(TOKEN_FAMILIES)}")


def piece_versions(piece: Piece, lm, excerpt_seconds: float, families: dict[str, dict], seed: int
                   ) -> list[tuple[Version, object]]:
    """The clean excerpt of one piece and every degraded version, in the form ``lm`` reads (its modality's
    [`versions_of`][lossprofile.modality.Modality.versions_of]).

    ``families``: each kind of damage (`lossprofile.modality.DAMAGE_KINDS`) → its families and strengths:
    ``audio`` (`AUDIO_FAMILIES`) degrades the clean waveform; ``symbolic`` (`SYMBOLIC_FAMILIES`) the
    whole score, then cut (and rendered, for an audio model) like the clean excerpt, where the piece has a score;
    ``token`` (`TOKEN_FAMILIES`) the clean score excerpt. Kinds the modality does not take are left out (an
    audio model's versions take no token-space damage, a score none of the waveform's)."""
    modality = modality_of(lm)
    clean, score, place = modality.versions_of(piece, lm.sample_rate, excerpt_seconds)
    degrade = {"audio": lambda family, s, own: degrade_audio(clean, lm.sample_rate, lm.frame_rate, family, s, own),
               "symbolic": lambda family, s, own: place(degrade_midi(score, family, s, own)),
               "token": lambda family, s, own: degrade_excerpt(clean, lm.frame_rate, excerpt_seconds, family, s, own)}
    out = [(Version("clean", 0.0), clean)]
    for kind in DAMAGE_KINDS:
        if kind not in modality.damage_kinds or (kind == "symbolic" and score is None):
            continue
        for family, strengths in families.get(kind, {}).items():
            for s in strengths:
                out.append((Version(family, s), degrade[kind](family, s, derived_seed(seed, piece.name, family, s))))
    return out


def profile_versions(lm, pieces: Sequence[Piece], out_dir: str | os.PathLike, excerpt_seconds: float = 15.0,
                 audio_families: dict = AUDIO_FAMILIES, symbolic_families: dict = SYMBOLIC_FAMILIES,
                 design: ProbeDesign | None = None, seed: int = 0, loudness_dbfs: float | None = LOUDNESS_DBFS,
                 token_families: dict = TOKEN_FAMILIES, progress: bool = True, prompt: str | None = None,
                 reference=None) -> pd.DataFrame:
    """Profile features of every version of every piece: one row per (piece, version). Resumable per piece.

    For a model that reads MIDI the versions are score excerpts: ``symbolic_families`` and ``token_families``
    (``audio_families`` need a waveform and are not used). Bad pieces are listed in ``out_dir/errors.csv`` and
    skipped; the rest completes. ``prompt`` and ``reference``: as [`analysis.profile.profile_scores`][lossprofile.analysis.profile.profile_scores]
    takes them (the text alignment's prompt, the cross-model score's reference model).
    """
    modality = modality_of(lm)
    design = design or modality.probe_design
    offered = {"audio": audio_families, "symbolic": symbolic_families, "token": token_families}
    families = {kind: offered[kind] for kind in modality.damage_kinds}
    params = dict(model=lm.name, weights=lm.fingerprint, excerpt_seconds=excerpt_seconds, design=repr(design),
                  **{"audio": None, **families}, seed=seed, loudness_dbfs=modality.loudness(loudness_dbfs))
    params.update(options_key(prompt, reference))  # a part scored before a column existed, or otherwise, is redone

    def versions_table(piece: Piece) -> pd.DataFrame:
        versions = piece_versions(piece, lm, excerpt_seconds, families, seed)
        names = [f"{piece.name}|{v.family}|{v.strength}" for v, _ in versions]
        table = profile_scores(lm, [w for _, w in versions], lm.sample_rate, excerpt_seconds=excerpt_seconds,
                               design=design, seed=seed, weights={}, names=names, loudness_dbfs=loudness_dbfs, report=False, prompt=prompt,
                               reference=reference)
        if table.attrs["errors"]:  # a piece is compared with its own versions only when every one is usable
            raise audio.AudioError(table.attrs["errors"][0]["error"])
        table = table.drop(columns=["piece", "profile_score", "seconds_scored"])
        table.insert(0, "strength", [v.strength for v, _ in versions])
        table.insert(0, "family", [v.family for v, _ in versions])
        table.insert(0, "split", split_of(piece.name))
        table.insert(0, "piece", piece.name)
        table.insert(0, "dataset", piece.dataset)
        table.insert(0, "model", lm.name)
        return table

    parts, errors = for_each_piece(pieces, lambda piece: keyed_part(out_dir, piece, {**params, "path": str(piece.path)}),
                                   versions_table, "quality gradients", progress)
    write_csv_atomic(pd.DataFrame(errors, columns=["dataset", "piece", "path", "error"]), Path(out_dir) / "errors.csv")
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True) if parts else pd.DataFrame()


# ---- fitting on one split, reporting on the other -------------------------------------------
def pairs(table: pd.DataFrame, families: Sequence[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(clean rows, degraded rows) aligned pair by pair: each degraded version with its piece's clean one."""
    clean = table[table["family"] == "clean"].set_index(["dataset", "piece"])
    degraded = table[table["family"] != "clean"]
    if families is not None:
        degraded = degraded[degraded["family"].isin(families)]
    degraded = degraded[degraded.set_index(["dataset", "piece"]).index.isin(clean.index)]
    matched = clean.loc[list(zip(degraded["dataset"], degraded["piece"]))].reset_index()
    return matched, degraded.reset_index(drop=True)


def fit_families_of(table: pd.DataFrame) -> tuple[str, ...]:
    """The families notebook 07 fits on: `FIT_FAMILIES`, or for a table of a model over MIDI tokens (which has
    none of them) their token-space analogues `TOKEN_FIT_FAMILIES`."""
    return FIT_FAMILIES if set(FIT_FAMILIES) & set(table["family"]) else TOKEN_FIT_FAMILIES


def fit_weights(table: pd.DataFrame, features: Sequence[str] = FEATURES, families: Sequence[str] | None = None,
                l2: float = 1.0) -> dict:
    """Weights of ``profile_score`` from the ``fit`` split: a pairwise logistic model (clean ranked above degraded).

    Features are standardised on the fit rows; the model sees differences clean − degraded of
    the same piece, so a weight says how much a feature's difference predicts which version is
    the clean one. L2-regularised, no intercept (a ranking has none).
    """
    from scipy.optimize import minimize

    families = families or fit_families_of(table)
    fit = table[table["split"] == "fit"]
    clean, degraded = pairs(fit, families)
    if len(clean) < 4:
        raise ValueError(f"only {len(clean)} clean/degraded pairs in the fit split; score more pieces")
    mean = {f: float(fit[f].mean()) for f in features}
    std = {f: float(fit[f].std()) or 1.0 for f in features}
    diff = np.stack([(clean[f].to_numpy() - degraded[f].to_numpy()) / std[f] for f in features], axis=1)

    def loss(w):  # and its gradient (L-BFGS would otherwise difference it numerically, 10× the calls)
        margin = diff @ w
        value = np.logaddexp(0.0, -margin).mean() + 0.5 * l2 * (w @ w) / len(diff)
        grad = -(diff.T @ (1.0 / (1.0 + np.exp(margin)))) / len(diff) + l2 * w / len(diff)
        return value, grad

    w = minimize(loss, np.zeros(len(features)), jac=True, method="L-BFGS-B").x
    return dict(features=list(features), mean=mean, std=std, weights=dict(zip(features, map(float, w))),
                fitted_on=dict(split="fit", families=list(families), pairs=int(len(diff)), l2=l2))


def feature_directions(table: pd.DataFrame, features: Sequence[str] = FEATURES,
                       families: Sequence[str] | None = None) -> dict[str, int]:
    """+1 if clean versions score higher than degraded ones in the fit split, else −1 (fixed for mean_nll)."""
    clean, degraded = pairs(table[table["split"] == "fit"], families or fit_families_of(table))
    out = {}
    for f in features:
        if f in LOWER_IS_BETTER or f.startswith(TYPICALITY_PREFIX):  # fixed in advance, never fitted
            out[f] = -1 if f in LOWER_IS_BETTER else 1
        else:
            out[f] = int(np.sign((clean[f] - degraded[f]).mean()) or 1)
    return out


def auroc_table(table: pd.DataFrame, scores: Sequence[str], directions: dict[str, int], split: str = "report",
                n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Paired AUROC (clean better than degraded) with 95% CI, per family and score, on one split."""
    from scipy.stats import spearmanr

    part = table[table["split"] == split]
    fitted_on = fit_families_of(table)
    rows = []
    for family in sorted(set(part["family"]) - {"clean"}):
        clean, degraded = pairs(part, [family])
        if len(clean) == 0:
            continue
        both = pd.concat([part[part["family"] == "clean"], part[part["family"] == family]])
        for score in scores:
            d = directions.get(score, 1)
            result = paired_auroc(d * clean[score].to_numpy(), d * degraded[score].to_numpy(), n_boot=n_boot, seed=seed)
            rho = spearmanr(both["strength"], d * both[score]).statistic if both["strength"].nunique() > 1 else np.nan
            rows.append(dict(family=family, score=score, pairs=len(clean), pieces=clean["piece"].nunique(),
                             fit_family=family in fitted_on, direction=d, auroc=result["auroc"],
                             ci_low=result["ci_low"], ci_high=result["ci_high"], spearman_strength=-rho))
    return pd.DataFrame(rows)


def generated_table(table: pd.DataFrame, scores: Sequence[str], directions: dict[str, int], split: str = "report",
                    n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Real (clean) vs the model's own samples: unpaired AUROC of real scoring better, and the top-k trend.

    ``topk_spearman``: Spearman of the score (signed so that higher = better) with top-k among
    the samples; no direction is assumed right (too few codes and too many both sound worse).
    """
    from scipy.stats import spearmanr

    part = table[table["split"] == split]
    real = part[(part["family"] == "clean") & (part["dataset"] != "generated")]
    generated = part[part["dataset"] == "generated"]
    if real.empty or generated.empty:
        return pd.DataFrame()
    rows = []
    for score in scores:
        d = directions.get(score, 1)
        result = auroc_ci(d * real[score].to_numpy(), d * generated[score].to_numpy(), n_boot=n_boot, seed=seed)
        rho = (spearmanr(generated["top_k"], d * generated[score]).statistic
               if "top_k" in generated and generated["top_k"].nunique() > 1 else np.nan)
        rows.append(dict(family="real vs generated", score=score, real=len(real), generated=len(generated),
                         auroc=result["auroc"], ci_low=result["ci_low"], ci_high=result["ci_high"],
                         topk_spearman=rho))
    return pd.DataFrame(rows)


def auroc_difference(table: pd.DataFrame, a: str, b: str, directions: dict[str, int], family: str,
                     split: str = "report", n_boot: int = 2000, seed: int = 0) -> dict:
    """Paired AUROC of score ``a`` minus that of ``b`` on one family, with a bootstrap 95% CI (pairs resampled jointly)."""
    clean, degraded = pairs(table[table["split"] == split], [family])
    wins = {}
    for score in (a, b):
        d = directions.get(score, 1)
        diff = d * (clean[score].to_numpy() - degraded[score].to_numpy())
        wins[score] = (diff > 0) + 0.5 * (diff == 0)
    delta = wins[a] - wins[b]
    rng = np.random.default_rng(seed)
    boots = delta[rng.integers(0, len(delta), size=(n_boot, len(delta)))].mean(axis=1) if len(delta) else np.array([np.nan])
    return dict(family=family, difference=float(delta.mean()) if len(delta) else np.nan,
                ci_low=float(np.quantile(boots, 0.025)), ci_high=float(np.quantile(boots, 0.975)), pairs=len(delta))


def evaluate_scores(table: pd.DataFrame, features: Sequence[str] = FEATURES, seed: int = 0
                    ) -> tuple[pd.DataFrame, dict]:
    """Fit on the fit split, add ``profile_score``, report every score's AUROC on the report split.

    Returns (AUROC table, fitted weights). ``spearman_strength`` > 0 means the score falls as
    the degradation grows (the right way).
    """
    weights = fit_weights(table, features)
    table = table.assign(profile_score=combine(table, weights))
    directions = {**feature_directions(table, features), "profile_score": 1}
    scores = ["profile_score", *features]
    result = pd.concat([auroc_table(table, scores, directions, seed=seed),
                        generated_table(table, scores, directions, seed=seed)], ignore_index=True)
    return result, dict(weights, directions=directions)


def profile_vs_mean_loss(table: pd.DataFrame, weights: dict, seed: int = 0) -> pd.DataFrame:
    """Per degradation family: paired AUROC of ``profile_score`` minus that of ``mean_nll`` on the report split."""
    table = table.assign(profile_score=combine(table, weights))
    families = sorted(set(table["family"]) - {"clean"})
    return pd.DataFrame([auroc_difference(table, "profile_score", "mean_nll", weights["directions"], f, seed=seed)
                         for f in families])


# ---- the pieces an evaluation runs on -------------------------------------------------------------
def top_k_of(piece: Piece) -> float:
    """The top-k a generated piece was sampled with (from its description), NaN for real music."""
    match = re.search(r"top_k=(\d+)", piece.description or "")
    return float(match.group(1)) if match else np.nan


def run_evaluation(lm, sources: dict[str, list[Piece]], out_dir: str | os.PathLike, seed: int = 0,
                   audio_families: dict = AUDIO_FAMILIES, symbolic_families: dict = SYMBOLIC_FAMILIES,
                   excerpt_seconds: float = 15.0, progress: bool = True) -> pd.DataFrame:
    """Score every source's pieces (generated ones clean only) → one tidy table with a ``top_k`` column."""
    tables = []
    for name, pieces in sources.items():
        is_generated = name == "generated"
        table = profile_versions(lm, pieces, Path(out_dir) / name, excerpt_seconds,
                             {} if is_generated else audio_families, {} if is_generated else symbolic_families,
                             seed=seed, progress=progress)
        if not table.empty:
            top_k = {p.name: top_k_of(p) for p in pieces}
            table["top_k"] = table["piece"].map(top_k)
            tables.append(table)
    return pd.concat(tables, ignore_index=True)
