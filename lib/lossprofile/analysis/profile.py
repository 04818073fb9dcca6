"""Judge music by the shape of a music LM's loss curve: probe features and a label-free score.

The paper proposes reading the per-token loss curve (above all the onset Peak) instead of its
mean. For a piece with no known perturbation we *probe* it: short loudness-matched white-noise
bursts replace the audio at seeded onsets spread over the excerpt, and we measure how the
model reacts, against the clean curve of the same piece. One clean scoring pass and the
batched probe variants share the codec and the decoder's KV cache (:func:`score_variants`).

Probe features (nats per code, means over probes; delta = probed NLL - clean NLL per frame):

- ``peak``: mean delta over a burst's ``burst_frames`` frames. How strongly the model's
  expectation was broken. Higher: the model had confident expectations of this music.
- ``assimilation``: mean delta over frames ``burst_frames..long_frames`` of one longer probe
  (``long_frames``, placed at the middle onset). Below 0: once noise is the context, the model
  finds it cheaper than the music (the paper's Context Amnesia).
- ``recovery_excess``: mean delta over the ``recovery_frames`` frames after each burst (the
  music has returned): how much the interruption still costs.
- ``recovery_var``: variance of delta over the same frames (the paper's "oscillates around
  the baseline with higher variance").
- ``recovery_time``: frames after a burst until the smoothed |delta| stays below
  ``settle_nats`` for ``persist_frames`` frames (``recovery_frames`` if it never does).

Token-level baselines of the clean pass (same logits; each a mean over codes):
``mean_nll`` (lower = better: the measure the paper criticises), ``mean_entropy`` (how
uncertain the model is), ``mean_log_rank`` (lower = the true codes rank higher),
``normalized_surprisal`` (Fast-DetectGPT's analytic criterion: sum(nll - entropy) /
sqrt(sum of surprisal variances); near 0 = as surprising as the model itself expects, positive
= more surprising), ``nll_std`` (frame-to-frame variability of the clean curve).

``profile_score`` (higher = better) is a linear combination of standardised features whose
weights come from :mod:`lossprofile.analysis.evaluate` (fitted on some pieces and perturbation kinds,
reported on others); :data:`DEFAULT_WEIGHTS` ships the weights fitted on the embedded model.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .. import audio
from ..io import derived_seed
from ..perturb.waveform import Perturbation
from ..runner import pieces_per_batch_for
from ..scoring import score_many
from .regions import moving_average, onset_peak, window_assimilation

WEIGHTS_FILE = Path(__file__).parent / "profile_weights.json"
PROBE_FEATURES = ("peak", "assimilation", "recovery_excess", "recovery_var", "recovery_time")
TOKEN_FEATURES = ("mean_nll", "mean_entropy", "mean_log_rank", "normalized_surprisal", "nll_std")
FEATURES = PROBE_FEATURES + TOKEN_FEATURES


@dataclass(frozen=True)
class ProbeDesign:
    """Where and how long the probes are (frames of the model's token grid)."""

    n_bursts: int = 4
    burst_frames: int = 5
    long_frames: int = 50
    recovery_frames: int = 25
    first_onset: int = 100  # context before the first probe
    settle_nats: float = 0.25
    persist_frames: int = 5
    smooth_frames: int = 3

    def onsets(self, num_frames: int, seed: int) -> list[int]:
        """``n_bursts`` onsets spread evenly over the excerpt, each jittered by a seeded draw within its slot."""
        last = num_frames - max(self.burst_frames + self.recovery_frames, self.long_frames) - 1
        if last <= self.first_onset:
            raise ValueError(f"an excerpt of {num_frames} frames is too short for probes from frame "
                             f"{self.first_onset} with {self.long_frames}-frame windows")
        edges = np.linspace(self.first_onset, last, self.n_bursts + 1)
        rng = np.random.default_rng(seed)
        return [int(rng.integers(int(a), max(int(a) + 1, int(b) - self.burst_frames))) for a, b in
                zip(edges[:-1], edges[1:])]

    def perturbations(self, num_frames: int, seed: int) -> list[Perturbation]:
        """The bursts (one per onset), then the long probe at the middle onset."""
        onsets = self.onsets(num_frames, seed)
        bursts = [Perturbation("noise", o, self.burst_frames, seed=derived_seed(seed, "burst", i))
                  for i, o in enumerate(onsets)]
        middle = onsets[len(onsets) // 2]
        return bursts + [Perturbation("noise", middle, self.long_frames, seed=derived_seed(seed, "long"))]


def settle_time(delta: np.ndarray, tolerance: float, persist: int, smooth: int) -> int:
    """Frames until the smoothed ``|delta|`` stays below ``tolerance`` for ``persist`` frames (``len(delta)`` if never)."""
    calm = np.abs(moving_average(delta, smooth)) < tolerance
    run = 0
    for t, ok in enumerate(calm):
        run = run + 1 if ok else 0
        if run == persist:
            return t - persist + 1
    return len(delta)


def probe_features(clean_frames: np.ndarray, probed_frames: np.ndarray, perts: Sequence[Perturbation],
                   design: ProbeDesign) -> dict[str, float]:
    """The probe features from the clean curve ``[T]`` and each probe's curve ``[P, T]`` (frame means)."""
    bursts, long = perts[:-1], perts[-1]
    peaks, excess, var, times = [], [], [], []
    for p, curve in zip(bursts, probed_frames[:-1]):
        delta = curve - clean_frames
        o, end = p.onset_frame, p.onset_frame + p.length_frames
        after = delta[end : end + design.recovery_frames]
        peaks.append(onset_peak(delta, o, p.length_frames))
        excess.append(after.mean())
        var.append(after.var())
        times.append(settle_time(after, design.settle_nats, design.persist_frames, design.smooth_frames))
    long_delta = probed_frames[-1] - clean_frames
    assimilation = window_assimilation(long_delta, long.onset_frame, long.length_frames, design.burst_frames)
    return dict(peak=float(np.mean(peaks)), assimilation=float(assimilation), recovery_excess=float(np.mean(excess)),
                recovery_var=float(np.mean(var)), recovery_time=float(np.mean(times)))


def token_features(nll, entropy, rank, surprisal_var) -> dict[str, float]:
    """Token-level baselines from one forward pass over the clean codes (tensors ``[K, T]``)."""
    import torch

    total_var = float(surprisal_var.sum())
    return dict(mean_nll=float(nll.mean()), mean_entropy=float(entropy.mean()),
                mean_log_rank=float(torch.log(rank).mean()),
                normalized_surprisal=float((nll - entropy).sum()) / max(total_var, 1e-12) ** 0.5,
                nll_std=float(nll.mean(0).std()))


def load_weights(path: str | Path = WEIGHTS_FILE) -> dict | None:
    """Feature means, standard deviations and weights of ``profile_score`` (None if none are shipped)."""
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else None


def combine(table: pd.DataFrame, weights: dict) -> np.ndarray:
    """``profile_score`` of each row: sum of weight × (feature − mean) / std (higher = better)."""
    score = np.full(len(table), float(weights.get("intercept", 0.0)))
    for name, w in weights["weights"].items():
        score = score + w * (table[name].to_numpy() - weights["mean"][name]) / weights["std"][name]
    return score


def usable_excerpt(wav: np.ndarray, sample_rate: int, seconds: float, min_seconds: float, hop_length: int,
                   source: str) -> np.ndarray:
    """The first ``seconds`` of sound, or all of it (whole frames) when there is less but at least ``min_seconds``."""
    wav = audio.check_waveform(np.asarray(wav, np.float32), source)
    start = audio.first_sound_sample(wav, sample_rate)
    available = (wav.size - start) // hop_length * hop_length / sample_rate
    if available >= seconds or available < min_seconds:
        return audio.excerpt(wav, sample_rate, seconds, source=source)  # the full excerpt, or its error
    return audio.excerpt(wav, sample_rate, available, source=source)


MIN_SECONDS = 10.0  # a clip shorter than the excerpt is scored over what it has, down to this much sound


def profile_scores(lm, wavs: Sequence[np.ndarray], sample_rate: int, excerpt_seconds: float = 15.0,
                   design: ProbeDesign = ProbeDesign(), seed: int = 0, weights: dict | None = None,
                   names: Sequence[str] | None = None, method: str = "exact", precision: str = "auto",
                   batch_size: int | None = None, pieces_per_batch: int | None = None,
                   min_seconds: float = MIN_SECONDS, report: bool = True) -> pd.DataFrame:
    """One row per usable waveform: every probe and token feature, and ``profile_score`` (higher = better).

    Each waveform is cut to its first ``excerpt_seconds`` of sound (as the experiments do) and
    scored once clean and once per probe, in one batched call; ``pieces_per_batch`` waveforms share the
    decoder's batches (default: 16 on a GPU, 1 on CPU; see :func:`lossprofile.runner.run_experiment`). Probe onsets and noise are seeded
    by ``seed`` and the waveform's position (or name), so a run is reproducible. ``weights``:
    as :func:`load_weights` returns (default: the shipped ones; without any, ``profile_score``
    is NaN and the features are still returned).

    A clip with less sound than ``excerpt_seconds`` but at least ``min_seconds`` is scored over what it has
    (whole frames; ``seconds_scored`` says how much). A clip that cannot be used (shorter still, silent, NaN)
    is named on stderr with its reason (``report``) and left out; ``table.attrs["errors"]`` lists them (piece,
    error).
    """
    weights = weights if weights is not None else load_weights()
    prepared, errors = [], []
    for i, wav in enumerate(wavs):
        name = names[i] if names is not None else str(i)
        try:
            clean = usable_excerpt(wav, sample_rate, excerpt_seconds, min_seconds, lm.hop_length, source=name)
        except audio.AudioError as err:
            if report:
                tqdm.write(f"skipped {err}", file=sys.stderr)
            errors.append(dict(piece=name, error=str(err)))
            continue
        perts = design.perturbations(clean.size // lm.hop_length, derived_seed(seed, name))
        prepared.append((name, perts, clean, [p.apply(clean, sample_rate, lm.frame_rate) for p in perts]))
    rows = []
    step = pieces_per_batch_for(lm, pieces_per_batch)
    chunks: list[list] = []
    for item in prepared:  # pieces share a decoder batch only when they are equally long
        if chunks and len(chunks[-1]) < step and chunks[-1][0][2].size == item[2].size:
            chunks[-1].append(item)
        else:
            chunks.append([item])
    for chunk in chunks:
        scored = score_many(lm, [(clean, variants) for _, _, clean, variants in chunk], method=method,
                            precision=precision, batch_size=batch_size)
        for (name, perts, clean, _), scores in zip(chunk, scored):
            clean_frames = scores.clean.mean(0).numpy()
            probed = scores.variants.mean(1).numpy()
            rows.append(dict(piece=name, **probe_features(clean_frames, probed, perts, design),
                             **token_features(scores.clean, scores.entropy_clean, scores.rank_clean,
                                              scores.surprisal_var_clean), seconds_scored=clean.size / sample_rate))
    table = pd.DataFrame(rows, columns=None if rows else ["piece", "seconds_scored"])
    table.attrs["errors"] = errors
    if table.empty:
        table["profile_score"] = np.nan
        return table
    table["profile_score"] = combine(table, weights) if weights else np.nan
    table.attrs["probe_design"] = dataclasses.asdict(design)
    return table
