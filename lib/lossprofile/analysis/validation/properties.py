"""Metric properties: one piece scored under conditions that should not change a good score
([`property_versions`][lossprofile.analysis.validation.properties.property_versions], every piece:
[`score_properties`][lossprofile.analysis.validation.properties.score_properties]): test–retest (a second passage of
the same piece), loudness (−6/−12 dB, with and without the loudness normalisation of
[`analysis.profile.profile_scores`][lossprofile.analysis.profile.profile_scores]), excerpt length (10/30 s against
15 s), file format (a 44.1 kHz stereo WAV against the 32 kHz mono render) and the probes' seed (with the default 4
bursts and with 8); a modality has those that exist in it
([`conditions_of`][lossprofile.analysis.validation.properties.conditions_of]: no loudness, no file format in a score).
[`properties_table`][lossprofile.analysis.validation.properties.properties_table]: the Spearman correlation across
pieces with the version it is compared with, and the mean absolute change in units of that version's between-piece
standard deviation (0 = the property holds exactly)."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ... import audio
from ...data.datasets import Piece
from ...io import write_csv_atomic
from ...modality import modality_of
from ...perturb.probes import ProbeDesign
from ...runner import for_each_piece, keyed_part
from ...stats import rowwise_spearman
from ..profile import FEATURES, LOUDNESS_DBFS, combine, options_key, profile_scores
from .lofo import FITTED, _ci

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
    """One piece scored under every condition of its modality ([`conditions_of`][lossprofile.analysis.validation.properties.conditions_of]) → one row per condition.

    The condition ``"reference"`` is the piece's first ``excerpt_seconds`` after its first sound (rendered with piano,
    as the validation's versions are) or from its first note (a model that reads MIDI); ``retest`` the passage
    ``RETEST_OFFSET_SECONDS`` later, ``seconds_10``/``seconds_30`` other lengths (each refused where it does not hold
    music for its length: [`modality.Modality.passages`][lossprofile.modality.Modality.passages]); ``probe_seed_1`` and ``bursts_8*`` probe
    the reference with another seed and with 8 bursts of the modality's probe design. Of sound alone
    ([`sound_conditions`][lossprofile.analysis.validation.properties.sound_conditions]): the reference quieter, scored without loudness normalisation, and read from another
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
    """[`property_versions`][lossprofile.analysis.validation.properties.property_versions]' jobs of `SOUND_CONDITIONS`: ``quieter_6db``/``quieter_12db`` the reference
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
    """[`property_versions`][lossprofile.analysis.validation.properties.property_versions] of every piece, resumable per piece; bad pieces in ``out_dir/errors.csv``."""
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
