"""Should a researcher trust the profile score? Leave-one-family-out, metric properties and a system ladder.

[`lossprofile.analysis.evaluate`][] fits ``profile_score`` on two degradation families and reports on
the others. This module asks the harder questions, on music the project never tuned anything on
(ASAP performances outside ``data/asap``; [`validation_pieces`][lossprofile.analysis.validation.validation_pieces]):

- **Leave-one-family-out** ([`lofo_table`][lossprofile.analysis.validation.lofo_table]): for each degradation family F, every score that needs
  fitting (``profile_score``'s weights, each feature's direction) is fitted on the *other* families and
  on the other half of the pieces, and reported on F's pairs of this half; the two halves swap (2-fold
  cross-fitting), so every piece is reported once and no reported pair was seen in any fit. Beside the
  fitted score: ``rank_average``, a weight-free score (each feature's percentile among the fit rows,
  signed by its direction on the fit families, averaged), mean NLL (direction fixed in advance) and
  every single feature. The AUROC is paired (clean vs its own degraded version) with a 95% bootstrap
  CI over pieces; its difference from mean NLL's has a paired bootstrap CI (pieces resampled jointly).
- **Properties** ([`property_versions`][lossprofile.analysis.validation.property_versions], [`properties_table`][lossprofile.analysis.validation.properties_table]): test–retest (a second passage of
  the same piece), loudness (−6/−12 dB, with and without the loudness normalisation of
  [`analysis.profile.profile_scores`][lossprofile.analysis.profile.profile_scores]), excerpt length (10/30 s against 15 s), file format
  (a 44.1 kHz stereo WAV against the 32 kHz mono render) and the probes' seed (with the default 4 bursts
  and with 8): the Spearman correlation
  across pieces with the reference version, and the mean absolute change in units of the reference's
  between-piece standard deviation (0 = the property holds exactly).
- **System ladder** ([`ladder_table`][lossprofile.analysis.validation.ladder_table]): each family's strengths are "systems" whose quality order is
  known without labels (clean > mild > … > strong); the Spearman correlation between the order and each
  score, over clips and over system means, with bootstrap CIs over pieces. Its model rungs
  ([`score_samples`][lossprofile.analysis.validation.score_samples], [`samples_ladder_table`][lossprofile.analysis.validation.samples_ladder_table]): the held-out real music, then the model's own
  unconditional samples at rising temperature (`SAMPLE_TEMPERATURES`; above 1 the sampling distribution
  flattens toward uniform, so each step is worse by construction).

Both instruments go through it, each in its modality ([`lossprofile.modality`][]): for a model that reads MIDI
the versions are score excerpts (score families and the token-space ones of
`lossprofile.analysis.evaluate.TOKEN_FAMILIES`) and the properties those that exist in a score
([`conditions_of`][lossprofile.analysis.validation.conditions_of]: no loudness, no file format).

``lossprofile validate --model M`` (``make validation`` runs both embedded models) writes the small tables
that ``make figures`` reads (``results/validation/<instrument>/``, committed; the scored pieces are cached in
``results/validation/cache``, not committed, so an interrupted run resumes).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .. import audio
from ..data.datasets import ASAP_DIR, Piece
from ..io import write_csv_atomic, write_parquet_atomic
from ..modality import modality_of, of_instrument
from ..paths import SHARED_ASAP_DIR, VALIDATION_DIR
from ..perturb.probes import ProbeDesign
from ..runner import for_each_piece, keyed_part
from ..stats import centred_ranks, rowwise_spearman
from . import evaluate, musicality, statistics, typicality
from .profile import EXTRA_FEATURES, FEATURES, LOUDNESS_DBFS, combine, options_key, profile_scores

FITTED, WEIGHT_FREE, BASELINE = "profile_score", "rank_average", "mean_nll"
TABLES = ("lofo", "clip_level", "ablation", "audibility", "ladder", "properties", "hearing")  # what tables_from writes, as CSV
SCORES = (FITTED, WEIGHT_FREE, *FEATURES)


# ---- the pieces -----------------------------------------------------------------------------------------
def validation_pieces(n: int | None = 48, folder: str | os.PathLike | None = None,
                      exclude: str | os.PathLike | None = ASAP_DIR) -> list[Piece]:
    """``n`` MIDI performances of ``folder`` (default ``../shared/data/asap``) that are not in ``exclude``
    (same relative path; default ``data/asap``, which the project's notebooks and recipes have seen), in a
    fixed pseudo-random order (a hash of the path), so composers are mixed and a larger ``n`` extends a
    smaller one."""
    folder = Path(folder or SHARED_ASAP_DIR)
    files = [p for p in folder.rglob("*") if p.suffix.lower() in audio.MIDI_SUFFIXES]
    if not files:
        raise FileNotFoundError(f"{folder}: no MIDI files found (the validation needs held-out performances)")
    seen = set()
    if exclude is not None and Path(exclude).exists():
        seen = {p.relative_to(exclude) for p in Path(exclude).rglob("*") if p.suffix.lower() in audio.MIDI_SUFFIXES}
    rel = sorted((p.relative_to(folder) for p in files if p.relative_to(folder) not in seen),
                 key=lambda r: hashlib.sha256(str(r).encode()).hexdigest())
    return [Piece("asap_heldout", str(r.with_suffix("")).replace(os.sep, "-"), folder / r) for r in rel[:n]]


def score_versions(lm, pieces: Sequence[Piece], out_dir: str | os.PathLike, seed: int = 0,
                   audio_families: dict = evaluate.VALIDATION_AUDIO_FAMILIES,
                   symbolic_families: dict = evaluate.SYMBOLIC_FAMILIES, progress: bool = True,
                   prompt: str | None = None, reference=None) -> pd.DataFrame:
    """Every piece clean and in every family and strength ([`analysis.evaluate.profile_versions`][lossprofile.analysis.evaluate.profile_versions])."""
    return evaluate.profile_versions(lm, pieces, out_dir, audio_families=audio_families,
                                 symbolic_families=symbolic_families, seed=seed, progress=progress, prompt=prompt,
                                 reference=reference)


# ---- leave-one-family-out -------------------------------------------------------------------------------
def percentile_reference(rows: pd.DataFrame, features: Sequence[str], directions: dict[str, int],
                         quantiles: int = 101) -> dict:
    """The weight-free score's parameters: each feature's quantiles among ``rows`` and its direction.
    In the same dict layout as fitted weights, so [`analysis.profile.combine`][lossprofile.analysis.profile.combine] reads both."""
    levels = np.linspace(0, 1, quantiles)
    return dict(kind="rank_average", features=list(features),
                quantiles={f: np.quantile(rows[f].to_numpy(), levels).tolist() for f in features},
                directions={f: int(directions[f]) for f in features})


def _ci(boots: np.ndarray) -> tuple[float, float]:
    """The 2.5% and 97.5% quantiles of bootstrap values, NaN (quietly) where every draw was undefined."""
    boots = np.asarray(boots, float)
    boots = boots[np.isfinite(boots)]
    return (float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))) if boots.size else (np.nan, np.nan)


def _signed(table: pd.DataFrame, score: str, directions: dict[str, int]) -> np.ndarray:
    return directions.get(score, 1) * table[score].to_numpy(dtype=float)


def add_typicality(table: pd.DataFrame, reference: pd.DataFrame, instrument: str = "audio", seed: int = 0,
                   detectors: Sequence[str] = typicality.DETECTORS) -> tuple[pd.DataFrame, list[str]]:
    """``table`` with a ``typicality_<detector>`` column per detector, each fitted on ``reference`` (clean clips
    only, no piece of ``table``) over every shipped statistic of the instrument → (table, the new columns)."""
    stats = [s for s in statistics.names(of_instrument(instrument).name) if s in table]
    out, columns = table.copy(), []
    for detector in detectors:
        column = f"{evaluate.TYPICALITY_PREFIX}_{detector}"
        out[column] = typicality.fit(reference, stats, detector, seed).score(out)
        columns.append(column)
    return out, columns


def clip_level_table(table: pd.DataFrame, scores: Sequence[str], features: Sequence[str] = FEATURES,
                     instrument: str = "audio", n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Unpaired AUROC per held-out family: every clean clip against every damaged clip of the family (what a user
    judging one clip faces: no clean twin to compare with), each score signed and fitted as in [`lofo_table`][lossprofile.analysis.validation.lofo_table]
    (out of fold), with a 95% CI from resampling pieces. ``all``: the mean over families (a fitted score's
    direction is fitted per held-out family, so clips of different families are not pooled into one AUROC), its
    CI from the same draws of pieces for every family."""
    rows, boots = [], {}
    names = np.unique(table["piece"].to_numpy())
    extra = [s for s in scores if s not in (FITTED, WEIGHT_FREE, *features)]
    for family in sorted(set(table["family"]) - {"clean"}):
        oof = out_of_fold(table, family, features, extra)
        if oof.empty:
            continue
        clean = oof.drop_duplicates("piece")
        for score in scores:
            result, draws = _clip_auroc(names, clean["piece"].to_numpy(), clean[f"{score}_clean"].to_numpy(),
                                        oof["piece"].to_numpy(), oof[f"{score}_degraded"].to_numpy(), n_boot, seed)
            boots.setdefault(score, []).append(draws)
            rows.append(dict(instrument=instrument, held_out_family=family, score=score, **result))
    table_rows = pd.DataFrame(rows)
    for score, draws in boots.items():
        mine = table_rows[table_rows["score"] == score]
        low, high = _ci(np.nanmean(np.stack(draws), axis=0))
        rows.append(dict(instrument=instrument, held_out_family="all", score=score,
                         clean_clips=int(mine["clean_clips"].max()), damaged_clips=int(mine["damaged_clips"].sum()),
                         auroc=float(mine["auroc"].mean()), ci_low=low, ci_high=high))
    return pd.DataFrame(rows)


def mean_paired_auroc(table: pd.DataFrame, score: np.ndarray) -> dict[str, float]:
    """Paired AUROC of a direction-free score (higher = better, nothing fitted on damage) per damage family, on
    every piece, and their mean ("mean over families")."""
    scored = table.assign(_score=score)
    out = {}
    for family in sorted(set(table["family"]) - {"clean"}):
        clean, degraded = evaluate.pairs(scored, [family])
        diff = clean["_score"].to_numpy() - degraded["_score"].to_numpy()
        out[family] = float(((diff > 0) + 0.5 * (diff == 0)).mean())
    out["mean over families"] = float(np.mean(list(out.values())))
    return out


def ablation_table(table: pd.DataFrame, reference: pd.DataFrame, instrument: str = "audio", seed: int = 0,
                   detector: str = "mahalanobis", sizes: Sequence[int] = (25, 50, 100), draws: int = 5
                   ) -> pd.DataFrame:
    """What carries a typicality score: its paired AUROC per family with every statistic, with each group of
    statistics alone and with each group left out; and with references of ``sizes`` clips (whole pieces drawn,
    ``draws`` times, mean and range) against all of them."""
    every = [s for s in statistics.names(of_instrument(instrument).name) if s in table]
    groups = sorted({statistics.STATISTICS[s].group for s in every})
    variants = [("all statistics", every, reference)]
    for group in groups:
        alone = [s for s in every if statistics.STATISTICS[s].group == group]
        variants += [(f"only {group}", alone, reference), (f"without {group}", [s for s in every if s not in alone],
                                                                   reference)]
    rows = []
    for name, stats, ref in variants:
        if not typicality.usable_statistics(ref, stats):
            continue
        result = mean_paired_auroc(table, typicality.fit(ref, stats, detector, seed).score(table))
        rows.append(dict(instrument=instrument, detector=detector, variant=name, statistics=len(stats),
                         reference_clips=len(ref), draws=1, **result))
    rng = np.random.default_rng(seed)
    pieces = reference["piece"].unique()
    for size in sizes:
        if size >= len(reference):
            continue
        results = []
        for _ in range(draws):  # whole pieces, in a random order, until `size` clips
            order = rng.permutation(pieces)
            counts = reference.groupby("piece").size()[order].cumsum()
            chosen = set(order[: int(np.searchsorted(counts.to_numpy(), size) + 1)])
            ref = reference[reference["piece"].isin(chosen)]
            results.append(mean_paired_auroc(table, typicality.fit(ref, every, detector, seed).score(table)))
        mean = pd.DataFrame(results).mean()
        rows.append(dict(instrument=instrument, detector=detector, variant=f"reference of {size} clips",
                         statistics=len(every), reference_clips=size, draws=draws, **mean.to_dict(),
                         mean_low=float(pd.DataFrame(results)["mean over families"].min()),
                         mean_high=float(pd.DataFrame(results)["mean over families"].max())))
    return pd.DataFrame(rows)


def audibility_table(table: pd.DataFrame, instrument: str = "audio") -> pd.DataFrame:
    """Can the model hear a family at all? Per damage family, every statistic's paired AUROC taken two-sided
    (max(a, 1 − a): 0.5 = clean and damaged versions overlap, 1 = they always differ, in either direction): the best
    statistic and its value (chosen on these pairs, so optimistic), the median over statistics, and how many
    statistics differ in at least 75% of pairs. A family near 0.5 on every statistic is one the model's curves do
    not register, whatever score reads them."""
    stats = [s for s in statistics.names(of_instrument(instrument).name, shipped_only=False)
             if s in table and table[s].notna().all()]
    rows = []
    for family in sorted(set(table["family"]) - {"clean"}):
        clean, degraded = evaluate.pairs(table, [family])
        sided = {}
        for s in stats:
            diff = clean[s].to_numpy() - degraded[s].to_numpy()
            a = float(((diff > 0) + 0.5 * (diff == 0)).mean())
            sided[s] = max(a, 1 - a)
        best = max(sided, key=sided.get)
        rows.append(dict(instrument=instrument, family=family, pairs=len(clean), statistics=len(stats),
                         best_statistic=best, best_two_sided_auroc=sided[best],
                         median_two_sided_auroc=float(np.median(list(sided.values()))),
                         statistics_at_0_75=int(sum(v >= 0.75 for v in sided.values()))))
    return pd.DataFrame(rows)


def _clip_auroc(names: np.ndarray, x_pieces: np.ndarray, x: np.ndarray, y_pieces: np.ndarray, y: np.ndarray,
                n_boot: int, seed: int) -> tuple[dict, np.ndarray]:
    """Unpaired AUROC of clean ``x`` above damaged ``y`` and its CI by resampling ``names`` (a piece's clips
    together; the same draws for every call with the same names and seed) → (row, the bootstrap values).

    A draw weights each piece by how often it was drawn, so with ``M[a, b]`` the wins of piece a's clean clips over
    piece b's damaged ones and ``c`` the draw's counts, its AUROC is c·M·c / ((c·n_x)(c·n_y)): every draw at once."""
    from ..stats import auroc

    index = {n: k for k, n in enumerate(names)}
    a, b = np.array([index[n] for n in x_pieces]), np.array([index[n] for n in y_pieces])
    wins = (x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :])
    M = np.zeros((len(names), len(names)))
    np.add.at(M, (a[:, None], b[None, :]), wins)
    n_x, n_y = np.bincount(a, minlength=len(names)), np.bincount(b, minlength=len(names))
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(names), size=(n_boot, len(names)))
    counts = np.stack([np.bincount(d, minlength=len(names)) for d in draws]).astype(float)
    pairs = (counts @ n_x) * (counts @ n_y)
    boots = np.where(pairs > 0, np.einsum("bp,pq,bq->b", counts, M, counts) / np.where(pairs > 0, pairs, 1), np.nan)
    low, high = _ci(boots)
    return dict(clean_clips=len(x), damaged_clips=len(y), auroc=float(auroc(x, y)), ci_low=low, ci_high=high), boots


def extra_scores(table: pd.DataFrame) -> list[str]:
    """The `lossprofile.analysis.profile.EXTRA_FEATURES` (per-codebook and extra-pass scores) a table has for
    every row: reported beside the others (alone, their direction fitted like any feature's), neither combined
    into the fitted or weight-free score nor candidates for the recommended one (they came after the
    recommendation was made)."""
    return [c for c in EXTRA_FEATURES if c in table and table[c].notna().all()]


def alone_in(table: pd.DataFrame) -> list[str]:
    """The scores reported alone that ``table`` has on every row: [`extra_scores`][lossprofile.analysis.validation.extra_scores] and its typicality columns."""
    return extra_scores(table) + [c for c in table.columns if c.startswith(evaluate.TYPICALITY_PREFIX + "_")
                                  and c != "typicality_percentile" and table[c].notna().all()]


def out_of_fold(table: pd.DataFrame, family: str, features: Sequence[str] = FEATURES,
                extra: Sequence[str] = ()) -> pd.DataFrame:
    """Clean/degraded pairs of ``family``, every score signed so that higher = better, each half of the pieces
    scored by what was fitted on the other half and the other families. Columns: piece, strength, fold, and
    ``<score>_clean``, ``<score>_degraded`` for the fitted and the weight-free score, every feature and every
    ``extra`` one (scored alone)."""
    others = [f for f in table["family"].unique() if f not in ("clean", family)]
    out = []
    for fold in ("fit", "report"):
        train = table[table["split"] == fold].assign(split="fit")
        test = table[table["split"] != fold]
        clean, degraded = evaluate.pairs(test, [family])
        if clean.empty:
            continue
        weights = evaluate.fit_weights(train, features, families=others)
        directions = {**evaluate.feature_directions(train, [*features, *extra], families=others), FITTED: 1,
                      WEIGHT_FREE: 1}
        reference = percentile_reference(train, features, directions)
        part = pd.DataFrame({"piece": degraded["piece"].to_numpy(), "strength": degraded["strength"].to_numpy(),
                             "fold": fold})
        for name, rows in (("clean", clean), ("degraded", degraded)):
            rows = rows.assign(**{FITTED: combine(rows, weights), WEIGHT_FREE: combine(rows, reference)})
            for score in (FITTED, WEIGHT_FREE, *features, *extra):
                part[f"{score}_{name}"] = _signed(rows, score, directions)
        out.append(part)
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def piece_bootstrap(values: np.ndarray, pieces: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% CI of the mean of ``values`` when whole pieces (all their pairs together) are resampled."""
    codes, index = np.unique(pieces, return_inverse=True)
    sums = np.bincount(index, weights=values, minlength=len(codes))
    counts = np.bincount(index, minlength=len(codes))
    rng = np.random.default_rng(seed)
    draw = rng.integers(0, len(codes), size=(n_boot, len(codes)))
    boots = sums[draw].sum(1) / counts[draw].sum(1)
    return float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))


def _wins(part: pd.DataFrame, score: str) -> np.ndarray:
    diff = part[f"{score}_clean"].to_numpy() - part[f"{score}_degraded"].to_numpy()
    return (diff > 0) + 0.5 * (diff == 0)


def lofo_table(table: pd.DataFrame, features: Sequence[str] = FEATURES, instrument: str = "audio",
               n_boot: int = 2000, seed: int = 0, extra: Sequence[str] | None = None) -> pd.DataFrame:
    """Per held-out family, per strength and pooled ("all"): every score's paired AUROC (share of pieces whose clean
    version scores better) with a 95% CI over pieces, and its difference from mean NLL's with a paired CI.
    ``extra``: scores reported alone (default [`extra_scores`][lossprofile.analysis.validation.extra_scores])."""
    extra = extra_scores(table) if extra is None else list(extra)
    rows = []
    for family in sorted(set(table["family"]) - {"clean"}):
        oof = out_of_fold(table, family, features, extra)
        if oof.empty:
            continue
        groups = [("all", oof)] + [(f"{s:g}", g) for s, g in oof.groupby("strength")]
        for strength, part in groups:
            pieces = part["piece"].to_numpy()
            base = _wins(part, BASELINE)
            for score in (FITTED, WEIGHT_FREE, *features, *extra):
                wins = _wins(part, score)
                low, high = piece_bootstrap(wins, pieces, n_boot, seed)
                d_low, d_high = piece_bootstrap(wins - base, pieces, n_boot, seed)
                rows.append(dict(instrument=instrument, held_out_family=family, strength=strength, score=score,
                                 pairs=len(part), pieces=len(set(pieces)), auroc=float(wins.mean()), ci_low=low,
                                 ci_high=high, minus_mean_nll=float((wins - base).mean()), diff_ci_low=d_low,
                                 diff_ci_high=d_high))
    return pd.DataFrame(rows)


def lofo_summary(lofo: pd.DataFrame) -> pd.DataFrame:
    """Pooled AUROC per score (rows) and held-out family (columns), with each score's mean over families."""
    pooled = lofo[lofo["strength"] == "all"]
    wide = pooled.pivot_table(index="score", columns="held_out_family", values="auroc")
    wide["mean over families"] = wide.mean(axis=1)
    return wide.sort_values("mean over families", ascending=False)


def fit_recommended(table: pd.DataFrame, lofo: pd.DataFrame, features: Sequence[str] = FEATURES, seed: int = 0,
                    typical: Sequence[str] = (), instrument: str = "audio") -> dict:
    """The score with the highest mean leave-one-family-out AUROC: the fitted combination, the weight-free one, a
    single feature (mean NLL included) or a typicality score (``typical``: its columns, fitted on the instrument's
    shipped clean reference), refitted on every piece and family of ``table`` where it is fitted on damage, with
    where it came from (the JSON ``profile_score`` ships). The choice is made on the same table it is reported on,
    so the winner's own mean is optimistic by the selection among these candidates."""
    means = lofo_summary(lofo)["mean over families"]
    candidates = [c for c in (FITTED, WEIGHT_FREE, *features, *typical) if c in means.index]
    choice = max(candidates, key=lambda c: means[c])
    every = table.assign(split="fit")
    families = sorted(set(table["family"]) - {"clean"})
    directions = evaluate.feature_directions(every, features, families=families)
    if choice in typical:  # nothing fitted on damage: the shipped reference and this detector
        detector = choice.removeprefix(evaluate.TYPICALITY_PREFIX + "_")
        weights = dict(kind="typicality", detector=detector, instrument=instrument,
                       features=[s for s in statistics.names(of_instrument(instrument).name) if s in table])
    elif choice == FITTED:
        weights = evaluate.fit_weights(every, features, families=families)
    elif choice == WEIGHT_FREE:
        weights = percentile_reference(every, features, directions)
    else:  # one feature, signed by its direction over every family
        weights = dict(features=[choice], mean={choice: 0.0}, std={choice: 1.0},
                       weights={choice: float(directions[choice])})
    provenance = dict(chosen=choice, lofo_mean_auroc={k: round(float(means[k]), 4) for k in candidates},
                      families=families, pieces=sorted(table["piece"].unique()), model=str(table["model"].iloc[0]),
                      seed=seed, loudness_dbfs=LOUDNESS_DBFS)
    return dict(weights, directions={**directions, "profile_score": 1}, provenance=provenance)


# ---- metric properties ------------------------------------------------------------------------------------
PROPERTY_CONDITIONS = ("reference", "retest", "quieter_6db", "quieter_12db", "raw_reference", "raw_quieter_6db",
                       "raw_quieter_12db", "seconds_10", "seconds_30", "wav_44k_stereo", "probe_seed_1", "bursts_8",
                       "bursts_8_seed_1")
# condition -> the condition it is compared with
PROPERTY_PAIRS = {"retest": "reference", "quieter_6db": "reference", "quieter_12db": "reference",
                  "raw_quieter_6db": "raw_reference", "raw_quieter_12db": "raw_reference", "seconds_10": "reference",
                  "seconds_30": "reference", "wav_44k_stereo": "reference", "probe_seed_1": "reference",
                  "bursts_8_seed_1": "bursts_8"}
RETEST_OFFSET_SECONDS = 20.0
# The conditions of sound alone: a score has no level and no file format
SOUND_CONDITIONS = ("quieter_6db", "quieter_12db", "raw_reference", "raw_quieter_6db", "raw_quieter_12db",
                    "wav_44k_stereo")


def conditions_of(modality) -> tuple[str, ...]:
    """The property conditions of a modality ([`lossprofile.modality`][]): every one for sound, those that exist in
    a score for MIDI (no `SOUND_CONDITIONS`)."""
    return tuple(c for c in PROPERTY_CONDITIONS if modality.has_level or c not in SOUND_CONDITIONS)


def property_versions(lm, piece: Piece, tmp_dir: str | os.PathLike, excerpt_seconds: float = 15.0,
                      seed: int = 0, prompt: str | None = None, reference=None) -> pd.DataFrame:
    """One piece scored under every condition of its modality ([`conditions_of`][lossprofile.analysis.validation.conditions_of]) → one row per condition.

    The condition ``"reference"`` is the piece's first ``excerpt_seconds`` after its first sound (rendered with piano,
    as the validation's versions are) or from its first note (a model that reads MIDI); ``retest`` the passage
    ``RETEST_OFFSET_SECONDS`` later, ``seconds_10``/``seconds_30`` other lengths (each refused where it does not hold
    music for its length: [`modality.Modality.passages`][lossprofile.modality.Modality.passages]); ``probe_seed_1`` and ``bursts_8*`` probe
    the reference with another seed and with 8 bursts of the modality's probe design. Of sound alone
    ([`sound_conditions`][lossprofile.analysis.validation.sound_conditions]): the reference quieter, scored without loudness normalisation, and read from another
    file format. A condition the profile cannot score (a passage with too little music for it) is left out.
    ``prompt`` and ``reference`` (a model) as [`analysis.profile.profile_scores`][lossprofile.analysis.profile.profile_scores] takes them.
    """
    modality = modality_of(lm)
    at = modality.passages(piece, lm.sample_rate, RETEST_OFFSET_SECONDS + 2 * excerpt_seconds + 5)
    clean = at(0.0, excerpt_seconds)
    design = modality.probe_design
    more = dataclasses.replace(design, n_bursts=8)  # does averaging over more probes make the features seed-stable?
    jobs = {  # condition -> (clip, seconds, normalise, probe seed, probe design)
        "reference": (clean, excerpt_seconds, True, seed, design),
        "retest": (at(RETEST_OFFSET_SECONDS, excerpt_seconds), excerpt_seconds, True, seed, design),
        "seconds_10": (at(0.0, 10.0), 10.0, True, seed, design),
        "seconds_30": (at(0.0, 30.0), 30.0, True, seed, design),
        "probe_seed_1": (clean, excerpt_seconds, True, seed + 1, design),
        "bursts_8": (clean, excerpt_seconds, True, seed, more),
        "bursts_8_seed_1": (clean, excerpt_seconds, True, seed + 1, more),
    }
    if modality.has_level:
        jobs.update(sound_conditions(piece, clean, lm.sample_rate, excerpt_seconds, tmp_dir, seed, design))
    rows = []
    for condition in conditions_of(modality):
        clip, seconds, normalise, probe_seed, probes = jobs[condition]
        table = profile_scores(lm, [clip], lm.sample_rate, excerpt_seconds=seconds, design=probes, seed=probe_seed, weights={},
                               names=[piece.name], loudness_dbfs=LOUDNESS_DBFS if normalise else None, report=False,
                               prompt=prompt, reference=reference)
        rows.append(table.drop(columns=["profile_score"]).assign(condition=condition))  # no row where refused
    out = pd.concat(rows, ignore_index=True)
    out.insert(0, "dataset", piece.dataset)
    return out


def sound_conditions(piece: Piece, clean: np.ndarray, sample_rate: int, excerpt_seconds: float,
                     tmp_dir: str | os.PathLike, seed: int, design: ProbeDesign) -> dict[str, tuple]:
    """[`property_versions`][lossprofile.analysis.validation.property_versions]' jobs of `SOUND_CONDITIONS`: ``quieter_6db``/``quieter_12db`` the reference
    excerpt ``clean`` 6 or 12 dB quieter; ``raw_*`` the reference brought to the usual level and those quieter
    versions, scored without loudness normalisation; ``wav_44k_stereo`` the piece rendered at 44.1 kHz, written as a
    stereo WAV (right channel 3 dB quieter) and read back through [`audio.load_audio`][lossprofile.audio.load_audio]."""
    hi = audio.render_midi(audio.read_midi(piece.path), 44100, program=0, max_seconds=excerpt_seconds + 10)
    hi = hi[audio.first_sound_sample(hi, 44100):][: int(excerpt_seconds * 44100) + 4410]
    wav_path = Path(tmp_dir) / f"{hashlib.sha256(piece.name.encode()).hexdigest()[:12]}.wav"
    wav_path.parent.mkdir(parents=True, exist_ok=True)
    audio.save_audio(wav_path, np.stack([hi, hi * np.float32(10 ** (-3 / 20))], axis=1), 44100)
    from_file = audio.load_audio(wav_path, sample_rate)
    wav_path.unlink()
    gain = lambda db: np.float32(10 ** (db / 20))
    raw = audio.normalize_rms(clean)
    jobs = {  # condition -> (waveform, normalise)
        "quieter_6db": (clean * gain(-6), True), "quieter_12db": (clean * gain(-12), True),
        "raw_reference": (raw, False), "raw_quieter_6db": (raw * gain(-6), False),
        "raw_quieter_12db": (raw * gain(-12), False), "wav_44k_stereo": (from_file, True),
    }
    return {c: (wav, excerpt_seconds, normalise, seed, design) for c, (wav, normalise) in jobs.items()}


def score_properties(lm, pieces: Sequence[Piece], out_dir: str | os.PathLike, excerpt_seconds: float = 15.0,
                     seed: int = 0, progress: bool = True, prompt: str | None = None, reference=None) -> pd.DataFrame:
    """[`property_versions`][lossprofile.analysis.validation.property_versions] of every piece, resumable per piece; bad pieces in ``out_dir/errors.csv``."""
    modality = modality_of(lm)
    params = dict(model=lm.name, weights=lm.fingerprint, excerpt_seconds=excerpt_seconds, seed=seed,
                  design=repr(modality.probe_design), loudness_dbfs=modality.loudness(LOUDNESS_DBFS),
                  conditions=conditions_of(modality),
                  **options_key(prompt, reference))  # parts scored before a column existed are redone
    parts, errors = for_each_piece(
        pieces, lambda piece: keyed_part(out_dir, piece, {**params, "path": str(piece.path)}),
        lambda piece: property_versions(lm, piece, Path(out_dir) / "tmp", excerpt_seconds, seed, prompt, reference),
        "properties", progress)
    write_csv_atomic(pd.DataFrame(errors, columns=["dataset", "piece", "path", "error"]), Path(out_dir) / "errors.csv")
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True) if parts else pd.DataFrame()


def properties_table(props: pd.DataFrame, weights: dict, scores: Sequence[str] = (FITTED, *FEATURES),
                     n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per condition and score: Spearman across pieces with the condition it is compared with (95% CI over
    pieces), and the mean |change| in units of that reference's between-piece standard deviation."""
    from scipy.stats import spearmanr

    props = props.assign(**{FITTED: combine(props, weights)})
    wide = {c: g.set_index("piece") for c, g in props.groupby("condition")}
    rng = np.random.default_rng(seed)
    rows = []
    for condition, reference in PROPERTY_PAIRS.items():
        if condition not in wide or reference not in wide:
            continue
        common = wide[condition].index.intersection(wide[reference].index)
        # the same resampled pieces for every score: their CIs are comparable, and adding a score changes no other's
        draws = rng.integers(0, len(common), size=(n_boot, len(common)))
        for score in scores:
            a, b = wide[reference].loc[common, score].to_numpy(), wide[condition].loc[common, score].to_numpy()
            rho = spearmanr(a, b).statistic
            boots = rowwise_spearman(a[draws], b[draws])
            spread = a.std(ddof=1)
            rows.append(dict(condition=condition, compared_with=reference, score=score, pieces=len(common),
                             spearman=float(rho), ci_low=_ci(boots)[0], ci_high=_ci(boots)[1],
                             shift_sd=float(np.abs(b - a).mean() / spread) if spread > 0 else np.nan))
    return pd.DataFrame(rows)


# ---- the system ladder ---------------------------------------------------------------------------------------
def order_rows(part: pd.DataFrame, level: np.ndarray, draws: np.ndarray, scores: Sequence[str],
               directions: dict[str, int], family: str, pieces: int) -> list[dict]:
    """Per score: Spearman of the signed score with ``level`` ``[rows]`` (higher = better system) over the rows
    (clips) and over the system means, each with a 95% CI from ``draws`` ``[B, rows]`` (resampled row indices)."""
    systems = np.unique(level)
    onehot = level[:, None] == systems[None, :]  # [rows, systems]
    every_row = np.arange(len(part))[None]
    system_ranks = centred_ranks(systems[None])
    # the levels' ranks are the same for every score: ranked once (ranking is most of the bootstrap's cost)
    level_ranks = centred_ranks(level[every_row]), centred_ranks(level[draws])

    def stats(index, ranks, value):  # index [B, rows] -> (clip rho [B], system rho [B])
        v, hot = value[index], onehot[index].astype(float)
        means = (v[:, :, None] * hot).sum(1) / hot.sum(1)
        return (rowwise_spearman(level[index], v, ranks),
                rowwise_spearman(np.broadcast_to(systems, means.shape), means,
                                 np.broadcast_to(system_ranks, means.shape)))

    rows = []
    for score in scores:
        value = _signed(part, score, directions)
        clip, system = (float(x[0]) for x in stats(every_row, level_ranks[0], value))
        boot_clip, boot_system = stats(draws, level_ranks[1], value)
        rows.append(dict(family=family, score=score, systems=len(systems), pieces=pieces, clip_spearman=clip,
                         clip_ci_low=_ci(boot_clip)[0], clip_ci_high=_ci(boot_clip)[1], system_spearman=system,
                         system_ci_low=_ci(boot_system)[0], system_ci_high=_ci(boot_system)[1]))
    return rows


def ladder_table(table: pd.DataFrame, weights: dict, scores: Sequence[str] = (FITTED, *FEATURES),
                 n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per family: the clean version and each strength are systems with a known order (level 0 = clean,
    1 = mildest, ...). Spearman of each score (signed, higher = better) with −level, over clips and over
    system means, with 95% CIs over pieces. The score's weights and directions are ``weights`` (fitted on
    every family: this table says whether a score *orders* systems, the leave-one-family-out table whether
    it generalises)."""
    directions = weights.get("directions", {})
    table = table.assign(**{FITTED: combine(table, weights)})
    clean = table[table["family"] == "clean"]
    rng = np.random.default_rng(seed)
    rows = []
    for family in sorted(set(table["family"]) - {"clean"}):
        part = pd.concat([clean, table[table["family"] == family]], ignore_index=True)
        strengths = sorted(part["strength"].unique())
        level = -part["strength"].map({s: i for i, s in enumerate(strengths)}).to_numpy(dtype=float)
        pieces = part["piece"].unique()
        rows_of = [np.flatnonzero(part["piece"].to_numpy() == p) for p in pieces]
        if len({len(r) for r in rows_of}) != 1:
            raise ValueError(f"{family}: pieces have different numbers of versions; cannot resample whole pieces")
        picks = rng.integers(0, len(pieces), size=(n_boot, len(pieces)))
        draws = np.stack(rows_of)[picks].reshape(n_boot, -1)  # [B, rows]: whole pieces resampled
        rows += order_rows(part, level, draws, scores, directions, family=family, pieces=len(pieces))
    return pd.DataFrame(rows)


# ---- the ladder's model rungs: the model's own samples at rising temperature -----------------------------------
SAMPLE_TEMPERATURES = (1.0, 1.3, 1.6, 2.0)
SAMPLES_FAMILY = "model samples (real > T=1.0 > 1.3 > 1.6 > 2.0)"
# a weaker model of the same family (fewer training steps): its samples at T=1.0 below the finished model's
WEAKER_FAMILY = "weaker model (real > finished > weaker, T=1.0)"


def sample_clips(lm, count: int, temperature: float, seconds: float = 15.0, seed: int = 0) -> list:
    """``count`` unconditional samples of ``lm`` (full distribution, no top-k) at ``temperature``: waveforms
    ``[S]`` for an audio model (a second longer than ``seconds``, for the excerpt's search for the first sound),
    ``PrettyMIDI`` scores for a model over MIDI tokens."""
    modality = modality_of(lm)
    codes = lm.generate(count, int((seconds + 1) * modality.tokens_per_second(lm)), top_k=0, temperature=temperature,
                        seed=seed)
    return modality.decode(lm, codes)


def score_samples(lm, out_dir: str | os.PathLike, temperatures: Sequence[float] = SAMPLE_TEMPERATURES,
                  per_rung: int = 24, seconds: float = 15.0, seed: int = 0, batch_size: int = 8,
                  progress: bool = True, generator=None, prompt: str | None = None, reference=None) -> pd.DataFrame:
    """Profile features (under ``lm``) of ``per_rung`` samples of ``generator`` (default ``lm`` itself) at each
    temperature; one row per sample (``temperature``), the samples a clip cannot be scored from listed in
    ``attrs["errors"]``. Cached per generator's weights, temperature and scoring options in ``out_dir``."""
    from tqdm.auto import tqdm

    out = Path(out_dir)
    generator = generator or lm
    options = hashlib.sha256(json.dumps(options_key(prompt, reference)).encode()).hexdigest()[:8]
    tables, errors = [], []
    for temperature in tqdm(temperatures, desc=f"{generator.name} samples", unit="temperature", disable=not progress):
        path = out / (f"samples_{generator.fingerprint[:12]}_t{temperature:.2f}_n{per_rung}_s{seed}_o{options}"
                      ".parquet")
        if not path.exists():
            parts = []
            for lo in range(0, per_rung, batch_size):
                count = min(batch_size, per_rung - lo)
                clips = sample_clips(generator, count, temperature, seconds,
                                     seed=int(hashlib.sha256(f"{seed}|{temperature}|{lo}".encode()).hexdigest()[:8], 16))
                names = [f"T{temperature:.2f}-{lo + i:03d}" for i in range(count)]
                part = profile_scores(lm, clips, lm.sample_rate, excerpt_seconds=seconds, seed=seed, weights={}, names=names,
                                      report=False, prompt=prompt, reference=reference)
                errors += part.attrs["errors"]
                parts.append(part.drop(columns=["profile_score"]).assign(temperature=temperature))
            write_parquet_atomic(pd.concat(parts, ignore_index=True), path)
        tables.append(pd.read_parquet(path))
    table = pd.concat(tables, ignore_index=True)
    table.attrs["errors"] = errors
    return table


def samples_ladder_table(versions: pd.DataFrame, rungs: Sequence[pd.DataFrame], weights: dict,
                         family: str = SAMPLES_FAMILY, scores: Sequence[str] = (FITTED, *FEATURES),
                         n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Model rungs of the ladder: the real pieces' clean versions (level 0), then each table of ``rungs`` (scored
    samples, best first: levels 1, 2, …). Spearman of each score (signed, higher = better) with −level over clips
    and over system means, 95% CIs resampling clips within each system (real pieces and samples are not paired).
    Same columns as [`ladder_table`][lossprofile.analysis.validation.ladder_table] (``pieces``: the real pieces)."""
    directions = weights.get("directions", {})
    real = versions[versions["family"] == "clean"]
    part = pd.concat([real, *rungs], ignore_index=True)
    part = part.assign(**{FITTED: combine(part, weights)})
    level = -np.repeat(np.arange(len(rungs) + 1, dtype=float), [len(real), *map(len, rungs)])
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(level == v) for v in np.unique(level)]
    draws = np.concatenate([m[rng.integers(0, len(m), size=(n_boot, len(m)))] for m in members], axis=1)  # [B, rows]
    return pd.DataFrame(order_rows(part, level, draws, scores, directions, family=family, pieces=len(real)))


def by_temperature(samples: pd.DataFrame) -> list[pd.DataFrame]:
    """The samples of each temperature, lowest (best) first: the rungs of `SAMPLES_FAMILY`."""
    return [part for _, part in samples.groupby("temperature", sort=True)]


# ---- the card's hearing measure on every ASAP performance -----------------------------------------------------
def all_asap_midis(folders: Sequence[str | os.PathLike] = (ASAP_DIR, SHARED_ASAP_DIR)) -> pd.DataFrame:
    """Every ASAP performance the project holds, once (by its path inside the dataset), with ``tuned`` = it is in
    ``data/asap``, the 40 the embedded models' recipes and cards were measured on while they were tuned."""
    found: dict[Path, Path] = {}
    for folder in folders:
        folder = Path(folder)
        if folder.exists():
            for p in sorted(folder.rglob("*")):
                if p.suffix.lower() in audio.MIDI_SUFFIXES:
                    found.setdefault(p.relative_to(folder), p)
    tuned = {p.relative_to(ASAP_DIR) for p in Path(ASAP_DIR).rglob("*") if p.suffix.lower() in audio.MIDI_SUFFIXES}
    return pd.DataFrame([dict(piece=str(rel.with_suffix("")).replace(os.sep, "-"), path=str(path), tuned=rel in tuned)
                         for rel, path in sorted(found.items())])


def wrong_note_hearing(lm, cache: str | os.PathLike, seed: int = 0) -> pd.DataFrame:
    """The card's "hears wrong notes" measure (half the notes moved 1–5 semitones; mean NLL of clean vs wrong) on
    every ASAP performance ([`all_asap_midis`][lossprofile.analysis.validation.all_asap_midis]), cached per model weights in ``cache``: one row per piece."""
    cache = Path(cache)
    if cache.exists():
        table = pd.read_parquet(cache)
        if len(table) and table["weights"].iloc[0] == lm.fingerprint:
            return table
    pieces = all_asap_midis()
    # 15 s from the first sound or the first note, as the cards measure
    rows = musicality.wrong_note_test(lm, list(pieces["path"]), seed=seed)
    table = pieces.iloc[rows["piece"].to_numpy()].reset_index(drop=True).assign(
        nll_clean=rows["nll_clean"].to_numpy(), nll_wrong=rows["nll_wrong"].to_numpy(), weights=lm.fingerprint,
        model=lm.name)
    write_parquet_atomic(table, cache)
    return table


def hearing_table(hearing: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Paired AUROC (mean NLL ranks the clean version better) [95% CI] on all performances, the 40 the recipes were
    tuned on and the others."""
    from ..stats import paired_auroc

    rows = []
    for subset, part in (("all", hearing), ("tuned on (data/asap)", hearing[hearing["tuned"]]),
                         ("never seen", hearing[~hearing["tuned"]])):
        if len(part):
            rows.append(dict(subset=subset, pieces=len(part), **paired_auroc(part["nll_wrong"], part["nll_clean"],
                                                                             seed=seed)))
    return pd.DataFrame(rows)


# ---- the command ---------------------------------------------------------------------------------------------
def validate(lm, pieces: Sequence[Piece], out_dir: str | os.PathLike = VALIDATION_DIR, properties_pieces: int = 40,
             seed: int = 0, progress: bool = True, weaker=None, prompt: str | None = None,
             reference=None) -> dict[str, pd.DataFrame]:
    """Score (or reuse, from ``out_dir/cache``) every version and property condition, the model's own samples and
    (given ``weaker``, a weaker model of the same family) that model's samples, then write the small tables
    ``make figures`` reads to ``out_dir/<instrument>/`` ([`tables_from`][lossprofile.analysis.validation.tables_from]). ``prompt`` (the text alignment's)
    and ``reference`` (the cross-model score's model) as [`analysis.profile.profile_scores`][lossprofile.analysis.profile.profile_scores] takes
    them; their scores are NaN, and left out of the tables, without."""
    out = Path(out_dir)
    slug = lm.name.replace("/", "--")
    options = dict(prompt=prompt, reference=reference)
    folder = out / modality_of(lm).instrument
    # the clean reference of the typicality scores: held-out performances that are not validation pieces
    clean = typicality.score_reference(lm, typicality.reference_pieces(len(pieces)), out / "cache" / slug / "reference",
                                       seed=seed, progress=progress)
    write_parquet_atomic(clean, folder / "reference_scored.parquet")
    versions = score_versions(lm, pieces, out / "cache" / slug / "versions", seed=seed, progress=progress, **options)
    props = score_properties(lm, pieces[:properties_pieces], out / "cache" / slug / "properties", seed=seed,
                             progress=progress, **options)
    hearing = wrong_note_hearing(lm, out / "cache" / slug / "hearing.parquet", seed=seed)
    samples = score_samples(lm, out / "cache" / slug / "samples", seed=seed, progress=progress, **options)
    write_parquet_atomic(hearing.drop(columns=["path"]), folder / "hearing_scored.parquet")
    write_parquet_atomic(samples, folder / "samples_scored.parquet")
    if weaker is not None:
        weaker_samples = score_samples(lm, out / "cache" / slug / "samples", temperatures=(1.0,), seed=seed,
                                       progress=progress, generator=weaker, **options)
        write_parquet_atomic(weaker_samples.assign(generator=weaker.name, generator_weights=weaker.fingerprint),
                             folder / "weaker_scored.parquet")
    write_parquet_atomic(versions, folder / "versions.parquet")
    write_parquet_atomic(props, folder / "properties_scored.parquet")
    (folder / "run.json").write_text(json.dumps(dict(
        model=lm.name, weights=lm.fingerprint, pieces=len(pieces), properties_pieces=min(properties_pieces, len(pieces)),
        scored=int(versions["piece"].nunique()), seed=seed, command=f"lossprofile validate --model {lm.name} "
        f"--pieces {len(pieces)} --properties-pieces {properties_pieces} --seed {seed}"
        + (f" --weaker {weaker.name}" if weaker is not None else "")
        + (f" --prompt {prompt!r}" if prompt is not None else "")
        + (f" --reference {reference.name}" if reference is not None else ""),
        weaker=None if weaker is None else dict(model=weaker.name, weights=weaker.fingerprint), prompt=prompt,
        reference=None if reference is None else dict(model=reference.name, weights=reference.fingerprint)), indent=1))
    return tables_from(folder, seed)


def tables_of(versions: pd.DataFrame, props: pd.DataFrame | None = None, instrument: str = "audio",
              seed: int = 0, samples: pd.DataFrame | None = None, weaker: pd.DataFrame | None = None,
              reference: pd.DataFrame | None = None) -> dict:
    """The leave-one-family-out table, the recommended weights ([`fit_recommended`][lossprofile.analysis.validation.fit_recommended]), the ladder (with its model
    rungs, given ``samples`` and a ``weaker`` model's samples) and (given property scores) the properties table of
    one instrument; every table carries an ``instrument`` column."""
    if reference is None:
        found = typicality.load_reference(instrument)
        reference = found[0] if found is not None else None
    typical = []
    if reference is not None:  # direction-free scores, fitted on the clean reference alone
        # band shares against the reference's band of window means (its own clips' in-sample), for every table
        bands = statistics.reference_bands(reference)
        reference, versions, props, samples, weaker = (
            statistics.with_band_statistics(t, bands) if t is not None else t
            for t in (reference, versions, props, samples, weaker))
        versions, typical = add_typicality(versions, reference, instrument, seed)
        needed = typicality.usable_statistics(reference, statistics.names(of_instrument(instrument).name))
        props, samples, weaker = (add_typicality(t, reference, instrument, seed)[0]
                                  if t is not None and len(t) and all(s in t for s in needed) else t
                                  for t in (props, samples, weaker))
    extra = extra_scores(versions) + typical
    lofo = lofo_table(versions, instrument=instrument, seed=seed, extra=extra)
    weights = fit_recommended(versions, lofo, seed=seed, typical=typical, instrument=instrument)
    if weights.get("kind") == "typicality":  # the ladder and properties score it with this reference
        with typicality.reference_in_use(instrument, reference, weights["detector"], weights["features"], seed):
            return _tables_after_fit(versions, props, instrument, seed, samples, weaker, reference, extra, lofo,
                                     weights)
    return _tables_after_fit(versions, props, instrument, seed, samples, weaker, reference, extra, lofo, weights)


def _tables_after_fit(versions, props, instrument, seed, samples, weaker, reference, extra, lofo, weights) -> dict:
    if extra:  # their directions over every family, for the properties and the ladder (the score uses none)
        every = versions.assign(split="fit")
        weights["directions"] = {**weights["directions"], **evaluate.feature_directions(
            every, extra, families=sorted(set(versions["family"]) - {"clean"}))}
    ladder = [ladder_table(versions, weights, scores=(FITTED, *FEATURES, *extra), seed=seed)]
    if samples is not None and len(samples):
        sampled = [c for c in extra if c in alone_in(samples)]
        ladder.append(samples_ladder_table(versions, by_temperature(samples), weights,
                                           scores=(FITTED, *FEATURES, *sampled), seed=seed))
        if weaker is not None and len(weaker):
            ladder.append(samples_ladder_table(versions, [samples[samples["temperature"] == 1.0], weaker], weights,
                                               family=WEAKER_FAMILY, seed=seed,
                                               scores=(FITTED, *FEATURES, *(c for c in sampled if c in weaker))))
    ladder = pd.concat(ladder, ignore_index=True)
    tables = dict(lofo=lofo, ladder=ladder,
                  clip_level=clip_level_table(versions, (FITTED, WEIGHT_FREE, *FEATURES, *extra), instrument=instrument,
                                              seed=seed))
    if reference is not None:
        tables["ablation"] = ablation_table(versions, reference, instrument, seed)
    tables["audibility"] = audibility_table(versions, instrument)
    if props is not None and len(props):
        tables["properties"] = properties_table(props, weights, scores=(FITTED, *FEATURES, *alone_in(props)),
                                                seed=seed)
    for name in ("ladder", "properties"):
        if name in tables:
            tables[name].insert(0, "instrument", instrument)
    return dict(tables, weights=weights)


def _scored(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    props = folder / "properties_scored.parquet"
    return pd.read_parquet(folder / "versions.parquet"), pd.read_parquet(props) if props.exists() else None


def _samples(folder: Path) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """(the model's own samples, a weaker model's samples) scored in ``folder``, each None where absent."""
    return tuple(pd.read_parquet(folder / f) if (folder / f).exists() else None
                 for f in ("samples_scored.parquet", "weaker_scored.parquet"))


def _reference(folder: Path) -> pd.DataFrame | None:
    """The clean reference scored beside the versions (``reference_scored.parquet``), or None."""
    path = folder / "reference_scored.parquet"
    return pd.read_parquet(path) if path.exists() else None


def tables_from(folder: str | os.PathLike, seed: int = 0) -> dict:
    """[`tables_of`][lossprofile.analysis.validation.tables_of] one instrument's committed scores (``folder/versions.parquet``,
    ``properties_scored.parquet`` and ``reference_scored.parquet``; no model runs), written beside them:
    ``lofo.csv``, ``clip_level.csv``, ``ablation.csv``, ``ladder.csv``, ``properties.csv`` and
    ``recommended_weights.json``."""
    folder = Path(folder)
    tables = tables_of(*_scored(folder), folder.name, seed, *_samples(folder), reference=_reference(folder))
    if (folder / "hearing_scored.parquet").exists():
        tables["hearing"] = hearing_table(pd.read_parquet(folder / "hearing_scored.parquet"), seed).assign(
            instrument=folder.name)
    for name in TABLES:
        if name in tables:
            write_csv_atomic(tables[name].round(4), folder / f"{name}.csv")
    (folder / "recommended_weights.json").write_text(json.dumps(tables["weights"], indent=1))
    return tables


def collect_tables(out_dir: str | os.PathLike = VALIDATION_DIR, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Every instrument's tables under ``out_dir``, recomputed from its committed scores (nothing is written),
    concatenated."""
    found = []
    for folder in sorted(Path(out_dir).iterdir()):
        if (folder / "versions.parquet").exists():
            found.append(tables_of(*_scored(folder), folder.name, seed, *_samples(folder),
                                   reference=_reference(folder)))
            if (folder / "hearing_scored.parquet").exists():
                found[-1]["hearing"] = hearing_table(pd.read_parquet(folder / "hearing_scored.parquet"), seed).assign(
                    instrument=folder.name)
    if not found:
        raise FileNotFoundError(f"{out_dir}: no validation scores (run `make validation`)")
    return {name: pd.concat([t[name] for t in found if name in t], ignore_index=True)
            for name in TABLES if any(name in t for t in found)}


def ship_reference(folder: Path, weights: dict, lm=None) -> Path | None:
    """Ship the instrument's clean reference (``folder/reference_scored.parquet``) beside the package
    (`lossprofile.analysis.typicality.save_reference`) with its provenance: the pieces and excerpts, the
    model's fingerprint, the seed, the statistics, the detector the validation chose (the default detector where
    the recommended score is not a typicality one) and the command that made it."""
    reference = _reference(folder)
    if reference is None:
        return None
    instrument = folder.name
    bands = statistics.reference_bands(reference)  # shipped: the shares of new clips are computed against them
    reference = statistics.with_band_statistics(reference, bands)
    chosen = weights.get("detector", "mahalanobis") if weights.get("kind") == "typicality" else "mahalanobis"
    provenance = dict(instrument=instrument, detector=chosen, recommended=weights.get("provenance", {}).get("chosen"),
                      statistics=typicality.usable_statistics(reference,
                                                              statistics.names(of_instrument(instrument).name)),
                      clips=len(reference), pieces=sorted(reference["piece"].unique()),
                      offsets_seconds=list(typicality.REFERENCE_OFFSETS_SECONDS),
                      model=None if lm is None else lm.name, weights=None if lm is None else lm.fingerprint,
                      seed=weights.get("provenance", {}).get("seed", 0), window_bands=bands,
                      made_by="lossprofile validate --ship (make validation)")
    keep = ["piece", "offset_seconds", *provenance["statistics"]]  # no paths: they name this machine's folders
    return typicality.save_reference(reference[[c for c in keep if c in reference]], instrument, provenance)
