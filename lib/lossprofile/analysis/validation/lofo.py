"""Leave-one-family-out and the tables that read scored versions per damage family.

[`lofo_table`][lossprofile.analysis.validation.lofo.lofo_table]: for each degradation family F, every score that needs
fitting (``profile_score``'s weights, each feature's direction) is fitted on the *other* families and on the other
half of the pieces, and reported on F's pairs of this half; the two halves swap (2-fold cross-fitting,
[`out_of_fold`][lossprofile.analysis.validation.lofo.out_of_fold]), so every piece is reported once and no reported
pair was seen in any fit. Beside the fitted score (`FITTED`): the weight-free one (`WEIGHT_FREE`,
[`percentile_reference`][lossprofile.analysis.validation.lofo.percentile_reference]), mean NLL (`BASELINE`, direction
fixed in advance), every single feature and the scores reported alone
([`extra_scores`][lossprofile.analysis.validation.lofo.extra_scores], the typicality columns of
[`add_typicality`][lossprofile.analysis.validation.lofo.add_typicality]). The AUROC is paired (clean vs its own
degraded version) with a 95% bootstrap CI over pieces; its difference from mean NLL's has a paired bootstrap CI.
[`fit_recommended`][lossprofile.analysis.validation.lofo.fit_recommended] picks and refits the winner.

The same versions give the unpaired clip-level table
([`clip_level_table`][lossprofile.analysis.validation.lofo.clip_level_table]), the typicality ablation
([`ablation_table`][lossprofile.analysis.validation.lofo.ablation_table]) and whether the model hears a family at all
([`audibility_table`][lossprofile.analysis.validation.lofo.audibility_table]). The score names and the CI and sign
helpers here are shared by the properties and the ladder."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ...modality import of_results_name
from .. import evaluate, statistics, typicality
from ..profile import EXTRA_FEATURES, FEATURES, LOUDNESS_DBFS, combine

FITTED, WEIGHT_FREE, BASELINE = "profile_score", "rank_average", "mean_nll"
SCORES = (FITTED, WEIGHT_FREE, *FEATURES)


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


def add_typicality(table: pd.DataFrame, reference: pd.DataFrame, modality: str = "audio", seed: int = 0,
                   detectors: Sequence[str] = typicality.DETECTORS) -> tuple[pd.DataFrame, list[str]]:
    """``table`` with a ``typicality_<detector>`` column per detector, each fitted on ``reference`` (clean clips
    only, no piece of ``table``) over every shipped statistic of the modality → (table, the new columns)."""
    stats = [s for s in statistics.names(of_results_name(modality).name) if s in table]
    out, columns = table.copy(), []
    for detector in detectors:
        column = f"{evaluate.TYPICALITY_PREFIX}_{detector}"
        out[column] = typicality.fit(reference, stats, detector, seed).score(out)
        columns.append(column)
    return out, columns


def clip_level_table(table: pd.DataFrame, scores: Sequence[str], features: Sequence[str] = FEATURES,
                     modality: str = "audio", n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Unpaired AUROC per held-out family: every clean clip against every damaged clip of the family (what a user
    judging one clip faces: no clean twin to compare with), each score signed and fitted as in [`lofo_table`][lossprofile.analysis.validation.lofo.lofo_table]
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
            rows.append(dict(modality=modality, held_out_family=family, score=score, **result))
    table_rows = pd.DataFrame(rows)
    for score, draws in boots.items():
        mine = table_rows[table_rows["score"] == score]
        low, high = _ci(np.nanmean(np.stack(draws), axis=0))
        rows.append(dict(modality=modality, held_out_family="all", score=score,
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


def ablation_table(table: pd.DataFrame, reference: pd.DataFrame, modality: str = "audio", seed: int = 0,
                   detector: str = "mahalanobis", sizes: Sequence[int] = (25, 50, 100), draws: int = 5
                   ) -> pd.DataFrame:
    """What carries a typicality score: its paired AUROC per family with every shipped statistic, with each group
    of statistics alone and with each shipped group left out (a group measured but not shipped: added); and with
    references of ``sizes`` clips (whole pieces drawn,
    ``draws`` times, mean and range) against all of them."""
    every = [s for s in statistics.names(of_results_name(modality).name) if s in table]  # the shipped ones
    measured = [s for s in statistics.names(of_results_name(modality).name, shipped_only=False) if s in table]
    variants = [("all statistics", every, reference)]
    for group in sorted({statistics.STATISTICS[s].group for s in measured}):
        alone = [s for s in measured if statistics.STATISTICS[s].group == group]
        if set(alone) <= set(every):
            variants += [(f"only {group}", alone, reference),
                         (f"without {group}", [s for s in every if s not in alone], reference)]
        else:  # a group measured but not shipped: what adding it would do
            variants += [(f"only {group}", alone, reference), (f"with {group}", every + alone, reference)]
    rows = []
    for name, stats, ref in variants:
        if not typicality.usable_statistics(ref, stats):
            continue
        result = mean_paired_auroc(table, typicality.fit(ref, stats, detector, seed).score(table))
        rows.append(dict(modality=modality, detector=detector, variant=name, statistics=len(stats),
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
        rows.append(dict(modality=modality, detector=detector, variant=f"reference of {size} clips",
                         statistics=len(every), reference_clips=size, draws=draws, **mean.to_dict(),
                         mean_low=float(pd.DataFrame(results)["mean over families"].min()),
                         mean_high=float(pd.DataFrame(results)["mean over families"].max())))
    return pd.DataFrame(rows)


def audibility_table(table: pd.DataFrame, modality: str = "audio") -> pd.DataFrame:
    """Can the model hear a family at all? Per damage family, every statistic's paired AUROC taken two-sided
    (max(a, 1 − a): 0.5 = clean and damaged versions overlap, 1 = they always differ, in either direction): the best
    statistic and its value (chosen on these pairs, so optimistic), the median over statistics, and how many
    statistics differ in at least 75% of pairs. A family near 0.5 on every statistic is one the model's curves do
    not register, whatever score reads them."""
    stats = [s for s in statistics.names(of_results_name(modality).name, shipped_only=False)
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
        rows.append(dict(modality=modality, family=family, pairs=len(clean), statistics=len(stats),
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
    from ...stats import auroc

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
    """The scores reported alone that ``table`` has on every row: [`extra_scores`][lossprofile.analysis.validation.lofo.extra_scores] and its typicality columns."""
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


def lofo_table(table: pd.DataFrame, features: Sequence[str] = FEATURES, modality: str = "audio",
               n_boot: int = 2000, seed: int = 0, extra: Sequence[str] | None = None) -> pd.DataFrame:
    """Per held-out family, per strength and pooled ("all"): every score's paired AUROC (share of pieces whose clean
    version scores better) with a 95% CI over pieces, and its difference from mean NLL's with a paired CI.
    ``extra``: scores reported alone (default [`extra_scores`][lossprofile.analysis.validation.lofo.extra_scores])."""
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
                rows.append(dict(modality=modality, held_out_family=family, strength=strength, score=score,
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
                    typical: Sequence[str] = (), modality: str = "audio") -> dict:
    """The score with the highest mean leave-one-family-out AUROC: the fitted combination, the weight-free one, a
    single feature (mean NLL included) or a typicality score (``typical``: its columns, fitted on the modality's
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
        weights = dict(kind="typicality", detector=detector, modality=modality,
                       features=[s for s in statistics.names(of_results_name(modality).name) if s in table])
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
