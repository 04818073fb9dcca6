"""Human ratings beside the scores: readers for MusicEval, SongEval and any CSV, and rank correlations.

Every reader returns one row per clip: ``clip`` (the audio file's stem, matched to a scored piece's name),
``system`` (the model or source that made it; ``""`` where the layout has none, and then only clip-level
correlations exist) and one numeric column per rating dimension, listed in ``table.attrs["ratings"]``.

Layouts:

- ``musiceval``: a CSV with a clip id (``clip_id``/``clip``/``utt_id``/``wav``/``file``), a system
  (``system``/``system_id``/``sys``) and a mean opinion score (``mos``/``score``/``rating``); case-insensitive.
- ``songeval``: the dataset's ``metadata.jsonl`` (or the folder holding it): one JSON object per song with its
  audio file (``file_name``, or ``audio`` as a path or ``{"path": ...}``), optionally a system
  (``system``/``model``/``source``), and ``aesthetic_scores``, a dict of the five dimensions (1-5), each a
  number or a list of raters' numbers (averaged). Columns are the dimensions in snake case plus
  ``mean_aesthetic``, their mean; that is the rating correlated by default.
- ``csv``: any CSV, its columns named by the caller (``clip``, ``system`` or None, ``ratings``).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .evaluate import LOWER_IS_BETTER

LAYOUTS = ("musiceval", "songeval", "csv")


def _stem(x) -> str:
    return Path(str(x)).stem


def _numeric(table: pd.DataFrame, columns: Sequence[str], path) -> pd.DataFrame:
    for col in columns:
        values = pd.to_numeric(table[col], errors="coerce")
        if values.isna().any():
            bad = table.loc[values.isna(), "clip"].iloc[0]
            raise ValueError(f"{path}: rating {col!r} of clip {bad!r} is not a number")
        table[col] = values.astype(float)
    return table


def _finish(table: pd.DataFrame, ratings: list[str], path) -> pd.DataFrame:
    if table.empty:
        raise ValueError(f"{path}: no rated clips")
    duplicated = table["clip"][table["clip"].duplicated()]
    if len(duplicated):
        raise ValueError(f"{path}: clip {duplicated.iloc[0]!r} is rated more than once")
    table = _numeric(table.reset_index(drop=True), ratings, path)
    table.attrs["ratings"] = ratings
    return table


def read_musiceval(path: str | os.PathLike) -> pd.DataFrame:
    """MusicEval's layout: clip id, system and mean opinion score (``mos``) per clip."""
    table = pd.read_csv(path)
    lower = {c.lower(): c for c in table.columns}

    def pick(options, what):
        for o in options:
            if o in lower:
                return lower[o]
        raise ValueError(f"{path}: no {what} column (expected one of {', '.join(options)}); "
                         f"found {', '.join(table.columns)}")

    clip, system, mos = (pick(("clip_id", "clip", "utt_id", "wav", "file"), "clip id"),
                         pick(("system", "system_id", "sys"), "system"), pick(("mos", "score", "rating"), "score"))
    out = pd.DataFrame({"clip": table[clip].map(_stem), "system": table[system].astype(str), "mos": table[mos]})
    return _finish(out, ["mos"], path)


def snake(name: str) -> str:
    """``"Overall Coherence"`` → ``overall_coherence``."""
    return re.sub(r"[^0-9a-z]+", "_", str(name).lower()).strip("_")


def read_songeval(path: str | os.PathLike) -> pd.DataFrame:
    """SongEval's ``metadata.jsonl``: the five aesthetic dimensions per song and their mean (``mean_aesthetic``)."""
    path = Path(path)
    if path.is_dir():
        path = path / "metadata.jsonl"
    rows, dimensions = [], {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as err:
            raise ValueError(f"{path}, line {number}: not JSON ({err})") from None
        audio = record.get("file_name", record.get("audio"))
        audio = audio.get("path") if isinstance(audio, dict) else audio
        scores = record.get("aesthetic_scores")
        if not audio or not isinstance(scores, dict) or not scores:
            raise ValueError(f"{path}, line {number}: needs the audio file ('file_name' or 'audio') and "
                             f"'aesthetic_scores' (a dict of dimensions); found keys {sorted(record)}")
        row = {"clip": _stem(audio),
               "system": str(next((record[k] for k in ("system", "model", "source") if k in record), ""))}
        for name, value in scores.items():
            dimensions.setdefault(snake(name), None)
            try:
                row[snake(name)] = float(np.mean(value)) if isinstance(value, list) else float(value)
            except (TypeError, ValueError):
                raise ValueError(f"{path}, line {number}: score {name!r} of clip {row['clip']!r} is not a number "
                                 f"({value!r})") from None
        rows.append(row)
    table = pd.DataFrame(rows)
    names = list(dimensions)
    missing = table[names].isna().any(axis=1) if rows else pd.Series(dtype=bool)
    if missing.any():
        clip = table.loc[missing, "clip"].iloc[0]
        raise ValueError(f"{path}: clip {clip!r} lacks some of the dimensions {names}")
    if rows:
        table["mean_aesthetic"] = table[names].mean(axis=1)
    return _finish(table, ["mean_aesthetic", *names], path)


def read_csv_ratings(path: str | os.PathLike, *, clip: str = "clip", system: str | None = "system",
                     ratings: Sequence[str] = ("rating",)) -> pd.DataFrame:
    """Any CSV: the clip id column, the system column (None: no system) and the rating columns, by name."""
    table = pd.read_csv(path)
    wanted = [clip, *([system] if system else []), *ratings]
    missing = [c for c in wanted if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: no column {missing[0]!r} (columns: {', '.join(table.columns)}); name them with "
                         "--clip-column, --system-column and --rating-columns")
    out = pd.DataFrame({"clip": table[clip].map(_stem),
                        "system": table[system].astype(str) if system else ""})
    for name in ratings:
        out[name] = table[name]
    return _finish(out, list(ratings), path)


def read_ratings(path: str | os.PathLike, layout: str = "musiceval", **columns) -> pd.DataFrame:
    """The ratings of ``path`` in ``layout`` (`LAYOUTS`); ``columns`` go to [`read_csv_ratings`][lossprofile.analysis.ratings.read_csv_ratings]."""
    if layout == "musiceval":
        return read_musiceval(path)
    if layout == "songeval":
        return read_songeval(path)
    if layout == "csv":
        return read_csv_ratings(path, **columns)
    raise ValueError(f"unknown ratings layout {layout!r}; expected one of {', '.join(LAYOUTS)}")


def _rank_corr(a: pd.Series, b: pd.Series) -> tuple[float, float]:
    """Spearman's rho and p; NaN where fewer than 3 pairs or a side does not vary (undefined there)."""
    from scipy.stats import spearmanr

    if len(a) < 3 or a.nunique() < 2 or b.nunique() < 2:
        return np.nan, np.nan
    result = spearmanr(a, b)
    return float(result.statistic), float(result.pvalue)


def ratings_correlation(scores: pd.DataFrame, ratings: pd.DataFrame, columns: Sequence[str],
                        *, rating_columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Spearman of every score column (oriented so that higher = better) with every rating, per clip and per
    system (system means; NaN without systems). Clips are matched by ``scores["piece"]`` = ``ratings["clip"]``."""
    rating_columns = list(rating_columns or ratings.attrs.get("ratings") or ["mos"])
    merged = ratings.merge(scores, left_on="clip", right_on="piece", how="inner")
    has_systems = merged["system"].astype(str).str.len().gt(0).all()
    per_system = merged.groupby("system")[[*rating_columns, *columns]].mean() if has_systems else None
    rows = []
    for rating in rating_columns:
        for col in columns:
            sign = -1 if col in LOWER_IS_BETTER else 1
            clip_rho, clip_p = _rank_corr(merged[rating], sign * merged[col])
            system_rho, system_p = (_rank_corr(per_system[rating], sign * per_system[col]) if per_system is not None
                                    else (np.nan, np.nan))
            rows.append(dict(rating=rating, score=col, clips=len(merged), clip_spearman=clip_rho, clip_p=clip_p,
                             systems=0 if per_system is None else len(per_system), system_spearman=system_rho,
                             system_p=system_p))
    return pd.DataFrame(rows)
