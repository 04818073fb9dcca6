"""The model card's "hears wrong notes" measure on every ASAP performance the project holds
([`wrong_note_hearing`][lossprofile.analysis.validation.hearing.wrong_note_hearing]), split into the performances the
embedded models were tuned on and the others
([`hearing_table`][lossprofile.analysis.validation.hearing.hearing_table])."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import pandas as pd

from ... import audio
from ...data.datasets import ASAP_DIR
from ...io import write_parquet_atomic
from ...paths import SHARED_ASAP_DIR
from .. import musicality


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
    every ASAP performance ([`all_asap_midis`][lossprofile.analysis.validation.hearing.all_asap_midis]), cached per model weights in ``cache``: one row per piece."""
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
    from ...stats import paired_auroc

    rows = []
    for subset, part in (("all", hearing), ("tuned on (data/asap)", hearing[hearing["tuned"]]),
                         ("never seen", hearing[~hearing["tuned"]])):
        if len(part):
            rows.append(dict(subset=subset, pieces=len(part), **paired_auroc(part["nll_wrong"], part["nll_clean"],
                                                                             seed=seed)))
    return pd.DataFrame(rows)
