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

Per-codebook features (models with several codebooks; the paper reads coarse codebooks as semantics and fine ones
as texture): ``peak``, ``assimilation`` and ``mean_nll`` from the first (coarsest) codebook's curves alone
(``*_coarse``) and from the last (finest) one's (``*_fine``), same probes, same pass; NaN for a model with one
code stream.

Scores from passes beyond the probes (:data:`PASS_FEATURES`; each one clean pass more, no probes):

- ``context_gain`` (the windowed normalised likelihood): the excerpt is cut into windows of
  ``context_window_seconds`` (:data:`CONTEXT_WINDOW_SECONDS`) and each window is scored again *alone*, with no
  music before it (:func:`windows_alone`); ``context_gain`` is the mean over the codes of every window after the
  first of (NLL alone − NLL in context), nats per code (per token for a model over MIDI). Higher: the piece's own past makes it more
  predictable (it has structure the model can use); 0: the model gains nothing from the earlier music.
- ``text_alignment`` (text-conditioned models, given ``prompt``): mean over codes of NLL(null condition) −
  NLL(prompt) (:func:`text_alignment_curve` is its per-code curve). Higher: the music fits the text; NaN
  without a prompt or for a model without text conditioning.
- ``binoculars`` (given a ``reference`` model over the same codes): the model's mean NLL over the mean
  cross-entropy between the reference's predictions and the model's (:func:`binoculars`; Hans et al. 2024's
  Binoculars score, here the finished model as observer and an earlier checkpoint as the reference). Near 1:
  the piece is as surprising as the reference's own expectations are to the model; below 1: more predictable
  than that (what a model's own samples tend to be); NaN without a reference.

They, like the per-codebook features, are columns of :func:`profile_scores` but not :data:`FEATURES`: the
validation reports each alone (:func:`lossprofile.analysis.validation.extra_scores`).

``profile_score`` (higher = better) is the combination of these features that won the validation of
:mod:`lossprofile.analysis.validation` (leave-one-family-out on held-out music, metric properties): either a
linear combination of standardised features (fitted weights) or the weight-free average of signed
percentiles; :data:`WEIGHTS_FILE` and :data:`MIDI_WEIGHTS_FILE` ship the recommended one for each embedded
model, with the pieces, families and seed it came from (``provenance``). Every excerpt is brought to
:data:`LOUDNESS_DBFS` first, so a recording's level does not enter the score.
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
import torch
from tqdm.auto import tqdm

from .. import audio
from ..errors import BadInputError
from ..io import derived_seed
from ..perturb.waveform import Perturbation
from ..runner import pieces_per_batch_for
from ..scoring import score_many, stats_batched
from .regions import moving_average, onset_peak, window_assimilation
from .statistics import STATISTICS, Curves, curve_statistics, pass_columns

# The recommended score's weights for each instrument, written by `lossprofile validate --ship` (make validation)
# from the embedded models; they say which score won, on which pieces and families they were fitted.
WEIGHTS_FILE = Path(__file__).parent / "profile_weights.json"
MIDI_WEIGHTS_FILE = Path(__file__).parent / "profile_weights_midi.json"
PROBE_FEATURES = ("peak", "assimilation", "recovery_excess", "recovery_var", "recovery_time")
TOKEN_FEATURES = ("mean_nll", "mean_entropy", "mean_log_rank", "normalized_surprisal", "nll_std")
FEATURES = PROBE_FEATURES + TOKEN_FEATURES
CODEBOOK_FEATURES = ("peak_coarse", "peak_fine", "assimilation_coarse", "assimilation_fine", "mean_nll_coarse",
                     "mean_nll_fine")
PASS_FEATURES = ("context_gain", "text_alignment", "binoculars")
CONTEXT_WINDOW_SECONDS = 3.0
EXTRA_FEATURES = CODEBOOK_FEATURES + PASS_FEATURES  # columns beside FEATURES, reported alone by the validation


def options_key(prompt: str | None = None, reference=None) -> dict:
    """What a cached table of :func:`profile_scores` rows depends on beyond the model and the probes: its columns,
    how probes are seeded, the text prompt and the reference model's weights (a part cached under another key is
    scored again)."""
    columns = list(FEATURES + EXTRA_FEATURES) + list(STATISTICS)
    return dict(columns=columns + [c for c in pass_columns() if c not in columns], probes=PROBE_SEEDING, prompt=prompt,
                reference=None if reference is None else reference.fingerprint)


# Probes are one fixed design per seed: the same onsets and the same noise draws for every clip, whatever its name,
# so a clip's profile is a function of its content (and the seed) alone, and a clip and its damaged versions are
# probed alike (common random numbers in every paired comparison). Until 2026-12-05 the seed also took the clip's
# name: a renamed copy scored differently.
PROBE_SEEDING = "fixed design per seed"


def probe_seed(seed: int) -> int:
    """The probes' seed for a run seed: the same for every clip (see :data:`PROBE_SEEDING`)."""
    return derived_seed(seed, "probes")


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
            raise BadInputError(f"an excerpt of {num_frames} frames is too short for probes from frame "
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


# For a model over MIDI tokens the probes are windows of random notes (lossprofile.perturb.score.random_notes, at
# the window's own note density) on the same 20 ms frame grid; a 0.1 s window holds about one note, so the
# bursts are 0.5 s and the long probe 2 s. The curves are per-frame NLL sums (nats per frame).
MIDI_DESIGN = ProbeDesign(n_bursts=4, burst_frames=25, long_frames=100, recovery_frames=50, first_onset=100,
                          settle_nats=0.5, persist_frames=10, smooth_frames=10)


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


def codebook_features(clean: np.ndarray, probed: np.ndarray, perts: Sequence[Perturbation],
                      design: ProbeDesign) -> dict[str, float]:
    """:data:`CODEBOOK_FEATURES` from the clean NLL ``[K, T]`` and each probe's ``[P, K, T]``: peak, assimilation and
    mean NLL of the coarsest codebook (k = 0) and of the finest (k = K - 1); NaN when K = 1."""
    if clean.shape[0] < 2:
        return dict.fromkeys(CODEBOOK_FEATURES, float("nan"))
    out = {}
    for label, k in (("coarse", 0), ("fine", clean.shape[0] - 1)):
        probe = probe_features(clean[k], probed[:, k], perts, design)
        out.update({f"peak_{label}": probe["peak"], f"assimilation_{label}": probe["assimilation"],
                    f"mean_nll_{label}": float(clean[k].mean())})
    return {name: out[name] for name in CODEBOOK_FEATURES}


def probe_curve(clean_frames: np.ndarray, entropy_frames: np.ndarray, probed_frames: np.ndarray,
                perts: Sequence[Perturbation]) -> pd.DataFrame:
    """What a report draws of one clip: per frame the clean NLL and entropy ``[T]``, ``probe`` (the index of the
    burst whose window holds the frame, −1 outside), ``long_probe`` (the frame lies in the long probe's window) and
    ``nll_probed``: the curve of the last burst that began at or before the frame (its onset, its window and the
    recovery after it), from the probes' curves ``[P, T]`` (bursts, then the long probe, as
    :meth:`ProbeDesign.perturbations` orders them)."""
    T = len(clean_frames)
    frame = np.arange(T)
    probe, latest = np.full(T, -1), np.full(T, -1)
    for i, p in sorted(enumerate(perts[:-1]), key=lambda ip: ip[1].onset_frame):
        probe[p.onset_frame : p.onset_frame + p.length_frames] = i
        latest[p.onset_frame :] = i
    long = np.zeros(T, bool)
    long[perts[-1].onset_frame : perts[-1].onset_frame + perts[-1].length_frames] = True
    nll_probed = np.where(latest >= 0, probed_frames[np.maximum(latest, 0), frame], np.nan)
    return pd.DataFrame(dict(frame=frame, nll_clean=clean_frames, entropy_clean=entropy_frames, probe=probe,
                             long_probe=long, nll_probed=nll_probed))


def context_gain(nll_in_context: np.ndarray, nll_alone: np.ndarray) -> float:
    """Mean of (NLL scored alone − NLL in context) over the codes of every window after the first; both ``[K, T]``
    (or ``[T]``), NaN where a window's codes are excluded (the first window, a partial tail)."""
    gain = np.asarray(nll_alone, np.float64) - np.asarray(nll_in_context, np.float64)
    return float(np.nanmean(gain)) if np.isfinite(gain).any() else float("nan")


def windows_alone(lm, codes: torch.Tensor, window_frames: int, precision: str = "auto",
                  batch_size: int | None = None, lookahead_frames: int | None = None) -> np.ndarray:
    """NLL ``[K, T]`` of codes ``[K, T]`` with every window of ``window_frames`` frames scored alone (as if the piece
    began there); NaN over the first window (it has no earlier music to lose) and the tail after the last whole
    window.

    Each window is scored with the ``lookahead_frames`` frames after it (default: the family's own,
    ``lm.lookahead_frames``; MusicGen's delay pattern: K - 1): the window alone must see exactly what the full pass
    sees, less the music before it. So a window ends at most ``T - lookahead_frames``."""
    K, T = codes.shape
    ahead = lm.lookahead_frames if lookahead_frames is None else lookahead_frames
    n = (T - ahead) // window_frames
    out = np.full((K, T), np.nan)
    if n < 2:
        return out
    windows = torch.stack([codes[:, w * window_frames : (w + 1) * window_frames + ahead] for w in range(1, n)])
    nll = stats_batched(lm, windows, batch_size=batch_size, precision=precision).nll[..., :window_frames]
    out[:, window_frames : n * window_frames] = nll.permute(1, 0, 2).reshape(K, -1).numpy()  # [n - 1, K, W] -> [K, .]
    return out


def token_windows_alone(lm, codes: torch.Tensor, seconds: np.ndarray, window_seconds: float) -> np.ndarray:
    """:func:`windows_alone` for a model over MIDI tokens: codes ``[1, 1, T]``, each token's event time ``seconds``;
    the tokens whose event falls in each window of ``window_seconds`` after the first are scored alone (after BOS).
    Returns ``[T]``."""
    window = (np.asarray(seconds) // window_seconds).astype(int)
    out = np.full(codes.shape[-1], np.nan)
    for w in np.unique(window[window > 0]):
        idx = np.flatnonzero(window == w)
        lo, hi = idx[0], idx[-1] + 1  # tokens are in time order, so a window is one run
        out[lo:hi] = lm.token_statistics(codes[..., lo:hi]).nll[0, 0].numpy()
    return out


def text_alignment_curve(lm, codes: torch.Tensor, prompt: str, precision: str = "auto") -> np.ndarray:
    """log p(code | prompt) − log p(code | null condition) of codes ``[K, T]``: ``[K, T]`` nats, one pass each way."""
    null = stats_batched(lm, codes[None], precision=precision).nll[0]
    text = stats_batched(lm, codes[None], prompt=prompt, precision=precision).nll[0]
    return (null - text).numpy()


def check_same_codes(lm, reference) -> None:
    """A clear error unless ``reference`` reads the same token ids as ``lm`` (same family, codebooks, vocabulary and
    time grid; for models over MIDI, the same tokenizer vocabulary)."""
    mine = (lm.family, lm.num_codebooks, lm.cardinality, lm.frame_rate)
    theirs = (reference.family, reference.num_codebooks, reference.cardinality, reference.frame_rate)
    vocab = lambda m: getattr(getattr(m, "tokenizer", None), "vocab", None) if m.reads == "midi" else None
    if mine != theirs or vocab(lm) != vocab(reference):
        raise ValueError(f"reference model {reference.name!r} does not read the codes of {lm.name!r} "
                         f"((family, codebooks, vocabulary, frame rate) {theirs} against {mine}, or another tokenizer)")


def binoculars(lm, reference, codes: torch.Tensor, prompt: str | None = None) -> float:
    """Hans et al.'s Binoculars score of codes ``[1, K, T]``: mean NLL under ``lm`` over the mean cross-entropy
    −Σ_v p_reference(v) log p_lm(v) (each code's prediction; both models' own factorization). Two full passes."""
    logp = lm.token_log_probs(codes, prompt)  # [1, K, T, V]
    ref = reference.token_log_probs(codes, prompt)
    nll = -logp.gather(-1, codes.cpu().long()[..., None])[..., 0]
    cross = -(ref.exp() * logp).sum(-1)
    return float(nll.mean() / cross.mean())


def token_features(nll, entropy, rank, surprisal_var) -> dict[str, float]:
    """Token-level baselines from one forward pass over the clean codes (tensors ``[K, T]``)."""
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
    """``profile_score`` of each row (higher = better): sum of weight × (feature − mean) / std, or, for weights of
    ``kind`` ``rank_average`` (weight-free), the mean over features of direction × (the feature's percentile
    among the reference rows' ``quantiles`` − 0.5)."""
    if weights.get("kind") == "typicality":  # direction-free: the shipped clean reference and its detector
        from .typicality import shipped

        typ = shipped(weights["instrument"])
        if typ is None:
            raise FileNotFoundError(f"no clean reference shipped for {weights['instrument']!r} (make validation)")
        return typ.score(table)
    if weights.get("kind") == "rank_average":
        parts = []
        for name in weights["features"]:
            q = np.asarray(weights["quantiles"][name])
            parts.append(weights["directions"][name] * (np.interp(table[name].to_numpy(float), q,
                                                                  np.linspace(0, 1, len(q))) - 0.5))
        return np.mean(parts, axis=0)
    score = np.full(len(table), float(weights.get("intercept", 0.0)))
    for name, w in weights["weights"].items():
        score = score + w * (table[name].to_numpy() - weights["mean"][name]) / weights["std"][name]
    return score


def with_score(table: pd.DataFrame, weights: dict | None, instrument: str) -> pd.DataFrame:
    """``table`` with ``profile_score`` (NaN without weights) and, where weights are given and the package ships a
    clean reference for ``instrument`` (``audio``, ``symbolic``), how typical each clip is of clean music whatever
    ``profile_score`` is: ``typicality`` (the reference's detector), ``typicality_percentile`` among the reference's
    clean clips and ``atypical_1..3``, the statistics furthest from clean music with the reference's range
    (:func:`lossprofile.analysis.typicality.explain`). Empty weights (``{}``: features only, as the validation
    scores) add neither."""
    attrs = dict(table.attrs)
    table = table.assign(profile_score=combine(table, weights) if weights else np.nan)
    if weights:
        from .typicality import explain, shipped

        typ = shipped(instrument)
        table = typ.with_bands(table) if typ is not None else table  # band shares against the reference's band
        if typ is not None and all(s in table for s in typ.statistics):
            table = table.join(explain(typ, table))
    table.attrs.update(attrs)
    return table


def usable_excerpt(wav: np.ndarray, sample_rate: int, seconds: float, min_seconds: float, hop_length: int,
                   source: str) -> np.ndarray:
    """The first ``seconds`` of sound, or all of it (whole frames) when there is less but at least ``min_seconds``."""
    wav = audio.check_waveform(np.asarray(wav, np.float32), source)
    start = audio.first_sound_sample(wav, sample_rate)
    available = (wav.size - start) // hop_length * hop_length / sample_rate
    sound = (wav.size - start) / sample_rate
    if 0 < sound < min(seconds, min_seconds):  # what a profile needs, not what a full excerpt would
        raise audio.AudioError(f"{source}: too short for a profile: {sound:.2f} s of sound (it needs at least "
                               f"{min(seconds, min_seconds):g} s)")
    if available >= seconds or available < min_seconds:
        return audio.excerpt(wav, sample_rate, seconds, source=source)  # the full excerpt, or its error (silence)
    return audio.excerpt(wav, sample_rate, available, source=source)


def midi_profile_rows(lm, midis: Sequence, names: Sequence[str], excerpt_seconds: float, design: ProbeDesign,
                      seed: int, reference=None, context_window_seconds: float = CONTEXT_WINDOW_SECONDS
                      ) -> tuple[list[dict], dict[str, pd.DataFrame]]:
    """Profile features of score excerpts (PrettyMIDI, starting at 0 s) for a model that reads MIDI: the clean
    tokens and each probe's (random notes replacing the window) scored in full; probe features on the per-frame
    NLL sums (:func:`lossprofile.runner.frames_of`), token features and :data:`PASS_FEATURES` over the clean
    tokens (``text_alignment`` is NaN: no text conditioning) → (rows, each excerpt's :func:`probe_curve`)."""
    from ..perturb.score import apply_in_score
    from ..runner import frames_of

    frames = int(round(excerpt_seconds * lm.frame_rate))
    rows, curves_of = [], {}
    for name, midi in zip(names, midis):
        perts = design.perturbations(frames, probe_seed(seed))
        curves, clean = [], None
        for m in [midi, *(apply_in_score(p, midi, lm.frame_rate) for p in perts)]:
            codes, seconds = lm.encode_midi(m)
            stats = lm.token_statistics(codes)
            clean = (codes, seconds, stats) if clean is None else clean
            curves.append(frames_of(stats.nll[0, 0].numpy().astype(np.float64), seconds, lm.frame_rate, frames, "sum"))
        codes, seconds, stats = clean
        alone = token_windows_alone(lm, codes, seconds, context_window_seconds)
        entropy = stats.entropy[0].numpy().astype(np.float64)
        frame_entropy = frames_of(entropy[0], seconds, lm.frame_rate, frames, "sum")
        statistics = curve_statistics(Curves(
            nll=stats.nll[0].numpy().astype(np.float64), entropy=entropy, codes=codes[0].numpy(),
            frame_nll=curves[0], frame_entropy=frame_entropy, frame_rate=lm.frame_rate, cardinality=lm.cardinality,
            modality="midi"))
        curves_of[name] = probe_curve(curves[0], frame_entropy, np.stack(curves[1:]), perts)
        rows.append(dict(piece=name, **probe_features(curves[0], np.stack(curves[1:]), perts, design),
                         **token_features(stats.nll[0], stats.entropy[0], stats.rank[0], stats.surprisal_var[0]),
                         **statistics,
                         context_gain=context_gain(stats.nll[0, 0].numpy(), alone), text_alignment=float("nan"),
                         binoculars=binoculars(lm, reference, codes) if reference is not None else float("nan"),
                         seconds_scored=excerpt_seconds))
    return rows, curves_of


MIN_SECONDS = 10.0  # a clip shorter than the excerpt is scored over what it has, down to this much sound
# Every excerpt is brought to this RMS level (dBFS) before it is probed: the codec's codes, and with them every
# feature, depend on the input's level, and a quieter recording of the same music should score the same
# (the properties table of lossprofile.analysis.validation measures both settings). None scores the audio as it is.
LOUDNESS_DBFS = -20.0


def profile_scores(lm, wavs: Sequence, sample_rate: int, excerpt_seconds: float = 15.0,
                   design: ProbeDesign | None = None, seed: int = 0, weights: dict | None = None,
                   names: Sequence[str] | None = None, method: str = "exact", precision: str = "auto",
                   batch_size: int | None = None, pieces_per_batch: int | None = None,
                   min_seconds: float = MIN_SECONDS, loudness_dbfs: float | None = LOUDNESS_DBFS,
                   report: bool = True, prompt: str | None = None, reference=None,
                   context_window_seconds: float = CONTEXT_WINDOW_SECONDS,
                   curves_out: dict | None = None) -> pd.DataFrame:
    """One row per usable waveform: every probe and token feature, and ``profile_score`` (higher = better).

    Each waveform is cut to its first ``excerpt_seconds`` of sound (as the experiments do) and
    scored once clean and once per probe, in one batched call; ``pieces_per_batch`` waveforms share the
    decoder's batches (default: 16 on a GPU, 1 on CPU; see :func:`lossprofile.runner.run_experiment`). Probe onsets and noise are one
    fixed design per ``seed`` (:data:`PROBE_SEEDING`): a clip's row depends on its content, never on its name or
    position. Every registered curve statistic (:mod:`lossprofile.analysis.statistics`) is a column too. ``weights``:
    as :func:`load_weights` returns (default: the shipped ones; without any, ``profile_score``
    is NaN and the features are still returned). ``design``: default :class:`ProbeDesign` (audio),
    :data:`MIDI_DESIGN` for a model that reads MIDI, which takes MIDI files or ``PrettyMIDI`` objects instead of
    waveforms (``sample_rate`` unused) and probes with random-note windows (:func:`midi_profile_rows`).

    A clip with less sound than ``excerpt_seconds`` but at least ``min_seconds`` is scored over what it has
    (whole frames; ``seconds_scored`` says how much). A clip that cannot be used (shorter still, silent, NaN)
    is named on stderr with its reason (``report``) and left out; ``table.attrs["errors"]`` lists them (piece,
    error).

    Each excerpt is scaled to ``loudness_dbfs`` RMS (:func:`lossprofile.audio.normalize_rms`, which also keeps
    peaks below full scale) before probing, so the level of a recording does not enter the score; None keeps
    the audio's own level.

    :data:`PASS_FEATURES` (see the module docstring) cost one clean pass each: ``context_gain`` always (windows of
    ``context_window_seconds``), ``text_alignment`` given ``prompt`` (a text-conditioned audio model; the probes and
    every other feature still use the null condition), ``binoculars`` given ``reference`` (a model reading the
    same codes, e.g. ``load_model("tiny-symbolic-base")`` beside ``tiny-symbolic``, or MusicGen small beside
    medium); NaN where they do not apply.

    ``weights={}`` returns the features alone: no ``profile_score`` and no typicality reading (what the validation
    scores with).

    ``curves_out``: a dict that receives each scored clip's :func:`probe_curve` under its name (what a report draws).
    """
    reads_midi = getattr(lm, "reads", "audio") == "midi"
    weights = weights if weights is not None else load_weights(MIDI_WEIGHTS_FILE if reads_midi else WEIGHTS_FILE)
    if reference is not None:
        check_same_codes(lm, reference)
    if reads_midi:
        if prompt is not None:
            raise ValueError(f"{lm.name} reads MIDI and takes no text prompt")
        return _midi_profile_scores(lm, wavs, excerpt_seconds, design or MIDI_DESIGN, seed, weights, names,
                                    min_seconds, report, reference, context_window_seconds, curves_out)
    window_frames = int(round(context_window_seconds * lm.frame_rate))
    design = design or ProbeDesign()
    prepared, errors = [], []
    for i, wav in enumerate(wavs):
        name = names[i] if names is not None else str(i)
        try:
            if loudness_dbfs is not None:  # the whole clip first, so where its first sound is found does not depend on its level
                wav = audio.normalize_rms(audio.check_waveform(np.asarray(wav, np.float32), name), loudness_dbfs)
            clean = usable_excerpt(wav, sample_rate, excerpt_seconds, min_seconds, lm.hop_length, source=name)
            perts = design.perturbations(clean.size // lm.hop_length, probe_seed(seed))
        except BadInputError as err:
            if report:
                tqdm.write(f"skipped {err}", file=sys.stderr)
            errors.append(dict(piece=name, error=str(err)))
            continue
        if loudness_dbfs is not None:
            clean = audio.normalize_rms(clean, loudness_dbfs)
        prepared.append((name, perts, clean, [p.apply(clean, sample_rate, lm.frame_rate) for p in perts]))
    rows, curves = [], {}
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
            codes = scores.codes_clean
            alone = windows_alone(lm, codes, window_frames, precision, batch_size)
            passes = dict(
                context_gain=context_gain(scores.clean.numpy(), alone),
                text_alignment=float(text_alignment_curve(lm, codes, prompt, precision).mean()) if prompt else np.nan,
                binoculars=binoculars(lm, reference, codes[None]) if reference is not None else np.nan)
            statistics = curve_statistics(Curves(
                nll=scores.clean.numpy().astype(np.float64), entropy=scores.entropy_clean.numpy().astype(np.float64),
                codes=codes.numpy(), frame_nll=clean_frames.astype(np.float64),
                frame_entropy=scores.entropy_clean.mean(0).numpy().astype(np.float64), frame_rate=lm.frame_rate,
                cardinality=lm.cardinality, modality="audio", residual=lm.quantization_residual(clean)))
            curves[name] = probe_curve(clean_frames, scores.entropy_clean.mean(0).numpy(), probed, perts)
            rows.append(dict(piece=name, **probe_features(clean_frames, probed, perts, design),
                             **token_features(scores.clean, scores.entropy_clean, scores.rank_clean,
                                              scores.surprisal_var_clean),
                             **codebook_features(scores.clean.numpy(), scores.variants.numpy(), perts, design),
                             **passes, **statistics, seconds_scored=clean.size / sample_rate))
    table = pd.DataFrame(rows, columns=None if rows else ["piece", "seconds_scored"])
    table.attrs["errors"] = errors
    if curves_out is not None:
        curves_out.update(curves)
    if table.empty:
        table["profile_score"] = np.nan
        return table
    table = with_score(table, weights, "audio")
    table.attrs["probe_design"] = dataclasses.asdict(design)
    table.attrs["loudness_dbfs"] = loudness_dbfs
    table.attrs.update(prompt=prompt, reference=None if reference is None else reference.name,
                       context_window_seconds=context_window_seconds)
    return table


def _midi_profile_scores(lm, midis: Sequence, excerpt_seconds: float, design: ProbeDesign, seed: int, weights: dict,
                         names: Sequence[str] | None, min_seconds: float, report: bool, reference=None,
                         context_window_seconds: float = CONTEXT_WINDOW_SECONDS,
                         curves_out: dict | None = None) -> pd.DataFrame:
    """:func:`profile_scores` for a model that reads MIDI: each score's first ``excerpt_seconds`` from its first note."""
    excerpts, kept, errors = [], [], []
    for i, midi in enumerate(midis):
        name = names[i] if names is not None else str(i)
        try:
            midi = audio.read_midi(midi) if isinstance(midi, (str, Path)) else midi
            clip = audio.midi_excerpt(midi, audio.midi_first_onset(midi), excerpt_seconds)
            span = max((n.end for inst in clip.instruments for n in inst.notes), default=0.0)
            if span < min_seconds:
                raise audio.AudioError(f"{name}: too short for a profile: {span:.2f} s of notes (minimum {min_seconds:g} s)")
        except BadInputError as err:
            if report:
                tqdm.write(f"skipped {err}", file=sys.stderr)
            errors.append(dict(piece=name, error=str(err)))
            continue
        excerpts.append(clip)
        kept.append(name)
    rows, curves = midi_profile_rows(lm, excerpts, kept, excerpt_seconds, design, seed, reference,
                                     context_window_seconds)
    table = pd.DataFrame(rows, columns=None if rows else ["piece", "seconds_scored"])
    table.attrs["errors"] = errors
    if curves_out is not None:
        curves_out.update(curves)
    table = with_score(table, weights, "symbolic") if len(table) else table.assign(profile_score=np.nan)
    table.attrs["probe_design"] = dataclasses.asdict(design)
    table.attrs.update(reference=None if reference is None else reference.name,
                       context_window_seconds=context_window_seconds)
    return table
