"""The held-out pieces and their versions:
[`validation_pieces`][lossprofile.analysis.validation.pieces.validation_pieces] chooses ASAP performances the project
never tuned anything on, in a fixed order; [`score_versions`][lossprofile.analysis.validation.pieces.score_versions]
scores each clean and in every degradation family and strength."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Sequence

import pandas as pd

from ... import audio
from ...data.datasets import ASAP_DIR, Piece
from ...paths import SHARED_ASAP_DIR
from .. import evaluate


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
