"""The system ladder: systems whose quality order is known without labels, and how well each score orders them.

[`ladder_table`][lossprofile.analysis.validation.ladder.ladder_table]: each family's strengths (clean > mild > … >
strong). Its model rungs ([`score_samples`][lossprofile.analysis.validation.ladder.score_samples],
[`samples_ladder_table`][lossprofile.analysis.validation.ladder.samples_ladder_table]): the held-out real music, then
the model's own unconditional samples at rising temperature (`SAMPLE_TEMPERATURES`; above 1 the sampling
distribution flattens toward uniform, so each step is worse by construction), and a weaker model's samples below the
finished model's (`WEAKER_FAMILY`). Each: the Spearman correlation between the order and each score, over clips and
over system means ([`order_rows`][lossprofile.analysis.validation.ladder.order_rows]), with bootstrap CIs."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ...io import write_parquet_atomic
from ...modality import modality_of
from ...stats import centred_ranks, rowwise_spearman
from ..profile import FEATURES, combine, options_key, profile_scores
from .lofo import FITTED, _ci, _signed


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
    Same columns as [`ladder_table`][lossprofile.analysis.validation.ladder.ladder_table] (``pieces``: the real pieces)."""
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
