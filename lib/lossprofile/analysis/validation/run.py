"""The validation from end to end: [`validate`][lossprofile.analysis.validation.run.validate] scores (or reuses) every
version, property condition and sample of one model and writes its scores under ``out_dir/<modality>/``;
[`tables_of`][lossprofile.analysis.validation.run.tables_of] turns scores into the tables (`TABLES`) and the
recommended weights; [`tables_from`][lossprofile.analysis.validation.run.tables_from] writes them beside committed
scores, [`collect_tables`][lossprofile.analysis.validation.run.collect_tables] recomputes every modality's without
writing, and [`ship_reference`][lossprofile.analysis.validation.run.ship_reference] ships the clean reference of the
typicality scores with the package."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import pandas as pd

from ...data.datasets import Piece
from ...io import write_csv_atomic, write_parquet_atomic
from ...modality import modality_of, of_results_name
from ...paths import VALIDATION_DIR
from .. import evaluate, statistics, typicality
from ..profile import FEATURES
from .hearing import hearing_table, wrong_note_hearing
from .ladder import WEAKER_FAMILY, by_temperature, ladder_table, samples_ladder_table, score_samples
from .lofo import (FITTED, WEIGHT_FREE, ablation_table, add_typicality, alone_in, audibility_table, clip_level_table,
                   extra_scores, fit_recommended, lofo_table)
from .pieces import score_versions
from .properties import properties_table, score_properties

TABLES = ("lofo", "clip_level", "ablation", "audibility", "ladder", "properties", "hearing")  # what tables_from writes, as CSV


def validate(lm, pieces: Sequence[Piece], out_dir: str | os.PathLike = VALIDATION_DIR, properties_pieces: int = 40,
             seed: int = 0, progress: bool = True, weaker=None, prompt: str | None = None,
             reference=None) -> dict[str, pd.DataFrame]:
    """Score (or reuse, from ``out_dir/cache``) every version and property condition, the model's own samples and
    (given ``weaker``, a weaker model of the same family) that model's samples, then write the small tables
    ``make figures`` reads to ``out_dir/<modality>/`` ([`tables_from`][lossprofile.analysis.validation.run.tables_from]). ``prompt`` (the text alignment's)
    and ``reference`` (the cross-model score's model) as [`analysis.profile.profile_scores`][lossprofile.analysis.profile.profile_scores] takes
    them; their scores are NaN, and left out of the tables, without."""
    out = Path(out_dir)
    slug = lm.name.replace("/", "--")
    options = dict(prompt=prompt, reference=reference)
    folder = out / modality_of(lm).results_name
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


def tables_of(versions: pd.DataFrame, props: pd.DataFrame | None = None, modality: str = "audio",
              seed: int = 0, samples: pd.DataFrame | None = None, weaker: pd.DataFrame | None = None,
              reference: pd.DataFrame | None = None) -> dict:
    """The leave-one-family-out table, the recommended weights ([`fit_recommended`][lossprofile.analysis.validation.lofo.fit_recommended]), the ladder (with its model
    rungs, given ``samples`` and a ``weaker`` model's samples) and (given property scores) the properties table of
    one modality; every table carries a ``modality`` column."""
    if reference is None:
        found = typicality.load_reference(modality)
        reference = found[0] if found is not None else None
    typical = []
    if reference is not None:  # direction-free scores, fitted on the clean reference alone
        # band shares against the reference's band of window means (its own clips' in-sample), for every table
        bands = statistics.reference_bands(reference)
        reference, versions, props, samples, weaker = (
            statistics.with_band_statistics(t, bands) if t is not None else t
            for t in (reference, versions, props, samples, weaker))
        versions, typical = add_typicality(versions, reference, modality, seed)
        needed = typicality.usable_statistics(reference, statistics.names(of_results_name(modality).name))
        props, samples, weaker = (add_typicality(t, reference, modality, seed)[0]
                                  if t is not None and len(t) and all(s in t for s in needed) else t
                                  for t in (props, samples, weaker))
    extra = extra_scores(versions) + typical
    lofo = lofo_table(versions, modality=modality, seed=seed, extra=extra)
    weights = fit_recommended(versions, lofo, seed=seed, typical=typical, modality=modality)
    if weights.get("kind") == "typicality":  # the ladder and properties score it with this reference
        with typicality.reference_in_use(modality, reference, weights["detector"], weights["features"], seed):
            return _tables_after_fit(versions, props, modality, seed, samples, weaker, reference, extra, lofo,
                                     weights)
    return _tables_after_fit(versions, props, modality, seed, samples, weaker, reference, extra, lofo, weights)


def _tables_after_fit(versions, props, modality, seed, samples, weaker, reference, extra, lofo, weights) -> dict:
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
                  clip_level=clip_level_table(versions, (FITTED, WEIGHT_FREE, *FEATURES, *extra), modality=modality,
                                              seed=seed))
    if reference is not None:
        tables["ablation"] = ablation_table(versions, reference, modality, seed)
    tables["audibility"] = audibility_table(versions, modality)
    if props is not None and len(props):
        tables["properties"] = properties_table(props, weights, scores=(FITTED, *FEATURES, *alone_in(props)),
                                                seed=seed)
    for name in ("ladder", "properties"):
        if name in tables:
            tables[name].insert(0, "modality", modality)
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
    """[`tables_of`][lossprofile.analysis.validation.run.tables_of] one modality's committed scores (``folder/versions.parquet``,
    ``properties_scored.parquet`` and ``reference_scored.parquet``; no model runs), written beside them:
    ``lofo.csv``, ``clip_level.csv``, ``ablation.csv``, ``ladder.csv``, ``properties.csv`` and
    ``recommended_weights.json``."""
    folder = Path(folder)
    tables = tables_of(*_scored(folder), folder.name, seed, *_samples(folder), reference=_reference(folder))
    if (folder / "hearing_scored.parquet").exists():
        tables["hearing"] = hearing_table(pd.read_parquet(folder / "hearing_scored.parquet"), seed).assign(
            modality=folder.name)
    for name in TABLES:
        if name in tables:
            write_csv_atomic(tables[name].round(4), folder / f"{name}.csv")
    (folder / "recommended_weights.json").write_text(json.dumps(tables["weights"], indent=1))
    return tables


def collect_tables(out_dir: str | os.PathLike = VALIDATION_DIR, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Every modality's tables under ``out_dir``, recomputed from its committed scores (nothing is written),
    concatenated."""
    found = []
    for folder in sorted(Path(out_dir).iterdir()):
        if (folder / "versions.parquet").exists():
            found.append(tables_of(*_scored(folder), folder.name, seed, *_samples(folder),
                                   reference=_reference(folder)))
            if (folder / "hearing_scored.parquet").exists():
                found[-1]["hearing"] = hearing_table(pd.read_parquet(folder / "hearing_scored.parquet"), seed).assign(
                    modality=folder.name)
    if not found:
        raise FileNotFoundError(f"{out_dir}: no validation scores (run `make validation`)")
    return {name: pd.concat([t[name] for t in found if name in t], ignore_index=True)
            for name in TABLES if any(name in t for t in found)}


def ship_reference(folder: Path, weights: dict, lm=None) -> Path | None:
    """Ship the modality's clean reference (``folder/reference_scored.parquet``) beside the package
    (`lossprofile.analysis.typicality.save_reference`) with its provenance: the pieces and excerpts, the
    model's fingerprint, the seed, the statistics, the detector the validation chose (the default detector where
    the recommended score is not a typicality one) and the command that made it."""
    reference = _reference(folder)
    if reference is None:
        return None
    modality = folder.name
    bands = statistics.reference_bands(reference)  # shipped: the shares of new clips are computed against them
    reference = statistics.with_band_statistics(reference, bands)
    chosen = weights.get("detector", "mahalanobis") if weights.get("kind") == "typicality" else "mahalanobis"
    provenance = dict(modality=modality, detector=chosen, recommended=weights.get("provenance", {}).get("chosen"),
                      statistics=typicality.usable_statistics(reference,
                                                              statistics.names(of_results_name(modality).name)),
                      clips=len(reference), pieces=sorted(reference["piece"].unique()),
                      offsets_seconds=list(typicality.REFERENCE_OFFSETS_SECONDS),
                      model=None if lm is None else lm.name, weights=None if lm is None else lm.fingerprint,
                      seed=weights.get("provenance", {}).get("seed", 0), window_bands=bands,
                      made_by="lossprofile validate --ship (make validation)")
    keep = ["piece", "offset_seconds", *provenance["statistics"]]  # no paths: they name this machine's folders
    return typicality.save_reference(reference[[c for c in keep if c in reference]], modality, provenance)
