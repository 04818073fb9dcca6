"""Does a model hear music? Measures on held-out music, for an audio model and for a model over MIDI tokens alike,
and the pitch metric they use.

- `chroma_correlation`: does the codec keep pitch? Pitch-class profiles of the original
  and the encode→decode reconstruction, correlated per 64 ms STFT frame (55–4000 Hz).
- `repeat_test`: does the language model use its context? NLL per code (or token) on each pass of
  an excerpt played several times in a row.
- `wrong_note_test`: does mean NLL hear wrong notes? Share of pieces where the clean
  version gets a lower mean NLL than the same piece with some notes moved by a few semitones.
- `noise_response`: the paper's effect: onset peak, assimilation and the trend of the
  sequence-mean delta with noise length; `token_noise_response` is its analogue in token space (a window
  of the score replaced by random notes, one repeated note or silence).
- `in_context_unigram_nats`: what a learner that only counts codes in context pays per
  code: the reference that says how much a language model knows about noise before it hears it.
- `known_source_nats`: what a learner pays that knows the codes' source in advance (their
  frequencies, counted on other audio of the same kind): on white noise, the floor that prior
  knowledge of noise can reach with this codec.

Where the two modalities differ (excerpting, scoring, passes on frames or in seconds) the measures ask the model's
modality ([`lossprofile.modality`][]). These are the measures of the model cards and of the ablation study
(``lossprofile.embedded.study``).
"""

from __future__ import annotations

from typing import Sequence

import dataclasses

import numpy as np
import pandas as pd
import torch
from scipy import signal

from .. import audio
from ..io import derived_seed
from ..modality import modality_of
from ..perturb import score as symbolic
from ..perturb.waveform import PAPER_LENGTHS, noise_at, noise_sweep, target_level_dbfs
from ..scoring import score_variants
from .regions import window_assimilation, window_peak


CHROMA_FRAME_SECONDS = 0.064
CHROMA_BAND_HZ = (55.0, 4000.0)


def chroma(wav: np.ndarray, sample_rate: int, frame_seconds: float = CHROMA_FRAME_SECONDS,
           band_hz: tuple[float, float] = CHROMA_BAND_HZ) -> tuple[np.ndarray, np.ndarray]:
    """Pitch-class profiles ``[12, F]`` of ``wav [S]`` and each frame's energy ``[F]``.

    Each STFT bin in ``band_hz`` adds its magnitude to the pitch class nearest its centre
    frequency (equal temperament, A4 = 440 Hz). Hann window of ``frame_seconds``, half overlap.
    """
    nperseg = int(round(frame_seconds * sample_rate))
    freqs, _, spec = signal.stft(np.asarray(wav, dtype=np.float64), sample_rate, nperseg=nperseg,
                                 noverlap=nperseg // 2, boundary=None, padded=False)
    band = (freqs >= band_hz[0]) & (freqs <= band_hz[1])
    magnitude = np.abs(spec[band])
    pitch_class = np.round(12 * np.log2(freqs[band] / 440.0)).astype(int) % 12
    profile = np.zeros((12, magnitude.shape[1]))
    np.add.at(profile, pitch_class, magnitude)
    return profile, magnitude.sum(axis=0)


def chroma_correlation(estimate: np.ndarray, reference: np.ndarray, sample_rate: int,
                       min_relative_energy: float = 1e-2) -> float:
    """Mean per-frame Pearson correlation of the pitch-class profiles of ``estimate`` and ``reference``.

    1: the same pitch content frame by frame; about 0: unrelated. Frames where the reference
    is quieter than ``min_relative_energy`` of its loudest frame (rests) are left out.
    """
    n = min(len(estimate), len(reference))
    est, est_energy = chroma(estimate[:n], sample_rate)
    ref, ref_energy = chroma(reference[:n], sample_rate)
    voiced = ref_energy > min_relative_energy * ref_energy.max()
    est, ref = est[:, voiced], ref[:, voiced]
    est = est - est.mean(axis=0)
    ref = ref - ref.mean(axis=0)
    denom = np.sqrt((est**2).sum(axis=0) * (ref**2).sum(axis=0))
    ok = denom > 0
    return float(np.mean((est * ref).sum(axis=0)[ok] / denom[ok])) if ok.any() else float("nan")


def _check_codes(codes, cardinality: int, name: str) -> np.ndarray:
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[1] == 0:
        raise ValueError(f"{name} must be [K, T] with T > 0, got shape {codes.shape}")
    if codes.min() < 0 or codes.max() >= cardinality:
        raise ValueError(f"{name} must lie in [0, {cardinality}), got {codes.min()}..{codes.max()}")
    return codes


def in_context_unigram_nats(codes, cardinality: int,
                            alphas: Sequence[float] = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)) -> np.ndarray:
    """Nats per code that the best in-context unigram predictor pays on ``codes [K, T]``, per codebook ``[K]``.

    The predictor sees the codes of one codebook one by one and predicts the next from the
    counts so far with a symmetric Dirichlet(``alpha``) prior over ``cardinality`` codes
    (add-alpha smoothing). Its total cost is the Dirichlet-multinomial code length,
    ``-[lgamma(V a) - lgamma(T + V a) + sum_c lgamma(n_c + a) - lgamma(a)]``, which does not
    depend on the order of the codes. ``alpha`` is the best of ``alphas`` in hindsight.
    On stationary noise, whose frames are independent, a language model that knows nothing
    about noise beforehand and estimates code frequencies in context pays about this much; it
    pays less only by knowing in advance which codes noise produces (from similar sounds in
    training) or by using the dependence between codebooks.
    """
    from scipy.special import gammaln

    codes = _check_codes(codes, cardinality, "codes")
    length = codes.shape[1]
    out = np.empty(codes.shape[0])
    for k, row in enumerate(codes):
        counts = np.bincount(row, minlength=cardinality)
        counts = counts[counts > 0]
        costs = [-(gammaln(cardinality * a) - gammaln(length + cardinality * a)
                   + (gammaln(counts + a) - gammaln(a)).sum()) for a in alphas]
        out[k] = min(costs) / length
    return out


def known_source_nats(codes, reference_codes, cardinality: int,
                      alphas: Sequence[float] = (0.01, 0.03, 0.1, 0.3, 1.0)) -> np.ndarray:
    """Nats per code, per codebook ``[K]``, that a predictor pays on ``codes [K, T]`` knowing their source in advance.

    The predictor's distribution for codebook k is fixed before it sees ``codes``: the code
    counts of ``reference_codes [K, R]`` (other audio of the same kind through the same codec)
    with add-alpha smoothing, ``alpha`` the best of ``alphas`` in hindsight; it learns nothing
    in context. With ``reference_codes`` from independent white noise at the level the
    experiments inject, this is what a language model that had learnt the codes noise produces
    would pay on a noise window, frame by frame (noise frames are independent): the room the
    codec leaves for Assimilation < 0. It ignores the dependence between codebooks, which only
    lowers the cost further.
    """
    codes = _check_codes(codes, cardinality, "codes")
    reference_codes = _check_codes(reference_codes, cardinality, "reference_codes")
    if reference_codes.shape[0] != codes.shape[0]:
        raise ValueError(f"reference_codes has {reference_codes.shape[0]} codebooks, codes {codes.shape[0]}")
    out = np.empty(codes.shape[0])
    for k, (row, ref) in enumerate(zip(codes, reference_codes)):
        counts = np.bincount(ref, minlength=cardinality).astype(float)
        out[k] = min(-np.log((counts[row] + a) / (counts.sum() + a * cardinality)).mean() for a in alphas)
    return out


# ---- the language model ----------------------------------------------------------------------
def repeat_test(lm, clips: Sequence, excerpt_seconds: float = 5.0, passes: int = 3) -> pd.DataFrame:
    """NLL of each pass of a passage played ``passes`` times in a row.

    Each clip's first ``excerpt_seconds`` (of sound, a whole number of codec frames so that every pass is encoded
    alike; or from a score's first note, each pass its tokens' time span: the modality's
    [`pass_nll`][lossprofile.modality.Modality.pass_nll]) is tiled and scored with the exact likelihood. A model that uses
    its context finds the second and third passes far cheaper than the first. ``clips``: waveforms at the model's
    sample rate, or scores for a model that reads MIDI. Returns one row per clip: ``pass_1`` ... ``pass_N`` (nats
    per code, or per token) and ``ratio_last_first``.
    """
    modality = modality_of(lm)
    rows = []
    for i, clip in enumerate(clips):
        row = {f"pass_{p + 1}": nll for p, nll in enumerate(modality.pass_nll(lm, clip, excerpt_seconds, passes,
                                                                               source=f"waveform {i}"))}
        row["ratio_last_first"] = row[f"pass_{passes}"] / row["pass_1"]
        rows.append(row)
    return pd.DataFrame(rows)


def wrong_note_test(lm, midis: Sequence, fraction: float = 0.5, semitones=(1, 2, 3, 4, 5), seed: int = 0,
                    excerpt_seconds: float = 15.0, program: int | None = 0) -> pd.DataFrame:
    """Mean NLL of each piece's clean version and of the same piece with ``fraction`` of its notes moved.

    Notes move by a random one of ``semitones`` up or down, in key or not (wrong notes). ``midis``: scores or MIDI
    files. An audio model hears both rendered (``program``) and cut at the same samples (the clean render's first
    sound, ``excerpt_seconds``; a piece with less is left out); a model over MIDI tokens reads ``excerpt_seconds``
    from the first note, the notes moved in that excerpt ([`changed_pair`][lossprofile.modality.Modality.changed_pair]).
    Returns one row per piece heard: ``piece`` (its index in ``midis``), ``nll_clean``, ``nll_wrong``. Feed the two
    columns to [`paired_auroc`][lossprofile.stats.paired_auroc] (``x=nll_wrong, y=nll_clean``).
    """
    modality = modality_of(lm)
    rows = []
    for i, midi in enumerate(midis):
        midi = audio.read_midi(midi) if not hasattr(midi, "instruments") else midi
        pair = modality.changed_pair(
            midi, lambda score, i=i: symbolic.shift_pitches(score, fraction, semitones, seed=seed + i, in_key=False),
            lm.sample_rate, excerpt_seconds, program)
        if pair is None:
            continue
        nll_clean, nll_wrong = modality.mean_nll(lm, pair)
        rows.append(dict(piece=i, nll_clean=nll_clean, nll_wrong=nll_wrong))
    return pd.DataFrame(rows)


def noise_response(lm, wavs: Sequence[np.ndarray], sample_rate: int, lengths=PAPER_LENGTHS,
                   onset_frame: int = 250, excerpt_seconds: float = 15.0, peak_frames: int = 5,
                   seed: int = 0, reference_seconds: float = 60.0) -> "pd.DataFrame":
    """The paper's noise injection on each waveform: one row per (piece, noise length).

    Loudness-matched white noise replaces frames ``[onset_frame, onset_frame + length)``.
    Columns: ``mean_delta`` (sequence-mean loss difference, the paper's measure),
    ``onset_delta`` (mean delta over the first ``peak_frames`` of the window: the Peak),
    ``assimilation_delta`` (mean delta over the rest of the window, NaN when the window is
    not longer than ``peak_frames``), ``noise_nll_early`` / ``noise_nll_late`` (the perturbed
    loss over the first and the last quarter of the window after the peak: does the loss
    fall as the noise goes on?), ``clean_nll``, ``clean_window_nll`` (the clean loss over the
    window after the peak) and ``noise_unigram_nll`` (`in_context_unigram_nats` of the
    perturbed codes over that window, mean over codebooks: what a model that only counts codes
    in context would pay there) and ``noise_known_nll`` (`known_source_nats` of the same
    codes against ``reference_seconds`` of other white noise at the same level through the same
    codec: what a model that knew the codes of noise beforehand would pay there).
    """
    rows = []
    for i, wav in enumerate(wavs):
        clean = audio.excerpt(np.asarray(wav, np.float32), sample_rate, excerpt_seconds, source=f"waveform {i}")
        perts = noise_sweep(lengths, onset_frame)
        variants = [dataclasses.replace(p, seed=derived_seed(seed, i, n)).apply(clean, sample_rate, lm.frame_rate)
                    for n, p in enumerate(perts)]
        # other white noise at the injected level (the sweep's noise matches the excerpt's level)
        level = target_level_dbfs(clean, None, perts[0].match_offset_db)
        reference = noise_at(int(reference_seconds * sample_rate), "white", level, derived_seed(seed, i, len(perts)))
        reference_codes = lm.encode(torch.from_numpy(reference)[None, None])[0]
        scores = score_variants(lm, clean, variants)
        clean_frame = scores.nll_clean.mean(0).numpy()
        for p, nll, codes in zip(perts, scores.nll_variants, scores.codes_variants):
            frame = nll.mean(0).numpy()
            delta = frame - clean_frame
            lo, hi = onset_frame, onset_frame + p.length_frames
            rest = delta[lo + peak_frames : hi]
            quarter = max(1, (hi - lo - peak_frames) // 4)
            window = slice(lo + peak_frames, hi)
            rows.append(dict(piece=i, length_frames=p.length_frames, clean_nll=float(clean_frame.mean()),
                             mean_delta=float(delta.mean()), onset_delta=window_peak(delta, lo, peak_frames),
                             assimilation_delta=window_assimilation(delta, lo, p.length_frames, peak_frames=peak_frames),
                             noise_nll_early=float(frame[lo + peak_frames : lo + peak_frames + quarter].mean())
                             if rest.size else float("nan"),
                             noise_nll_late=float(frame[hi - quarter : hi].mean()) if rest.size else float("nan"),
                             clean_window_nll=float(clean_frame[window].mean()) if rest.size else float("nan"),
                             noise_unigram_nll=float(in_context_unigram_nats(codes[:, window].numpy(), lm.cardinality).mean())
                             if rest.size else float("nan"),
                             noise_known_nll=float(known_source_nats(codes[:, window].numpy(), reference_codes.numpy(),
                                                                     lm.cardinality).mean())
                             if rest.size else float("nan")))
    return pd.DataFrame(rows)


def noise_summary(table: "pd.DataFrame", min_assimilation_frames: int = 50) -> dict:
    """The four numbers of the paper's effect from `noise_response` rows."""
    from scipy import stats

    long = table[table["length_frames"] >= min_assimilation_frames]
    rho = stats.spearmanr(table["length_frames"], table["mean_delta"])
    return dict(onset_peak=float(table["onset_delta"].mean()),
                assimilation=float(long["assimilation_delta"].mean()),
                spearman_length_delta=float(rho.statistic), spearman_p=float(rho.pvalue),
                noise_nll_early=float(long["noise_nll_early"].mean()),
                noise_nll_late=float(long["noise_nll_late"].mean()),
                noise_window_nll=float((long["assimilation_delta"] + long["clean_window_nll"]).mean()),
                clean_window_nll=float(long["clean_window_nll"].mean()),
                noise_unigram_nll=float(long["noise_unigram_nll"].mean()),
                unigram_assimilation=float((long["noise_unigram_nll"] - long["clean_window_nll"]).mean()),
                noise_known_nll=float(long["noise_known_nll"].mean()),
                known_assimilation=float((long["noise_known_nll"] - long["clean_window_nll"]).mean()),
                clean_nll=float(table["clean_nll"].mean()), pieces=int(table["piece"].nunique()))


# ---- the paper's noise injection in token space (a model over MIDI tokens) ---------------------------------
# the paper's noise lengths (5-200 frames of 20 ms) in seconds
PAPER_LENGTHS_SECONDS = (0.1, 0.2, 1.0, 2.0, 3.0, 4.0)
TOKEN_NOISE_KINDS = ("random_notes", "constant_note", "silence")


def token_nll(lm, midi) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids ``[T]``, seconds ``[T]``, NLL ``[T]`` in nats) of a score under a model over MIDI tokens."""
    codes, seconds = lm.encode_midi(midi)
    return codes[0, 0].numpy(), seconds, lm.token_nll(codes)[0, 0].numpy()


def token_window(midi, kind: str, window: tuple[float, float], seed: int):
    """A score excerpt with the window ``(start, end)`` seconds replaced: ``random_notes`` (at the excerpt's own
    density), ``constant_note`` (one repeated note) or ``silence``."""
    if kind == "random_notes":
        return symbolic.random_notes(midi, window, seed=seed)
    if kind == "constant_note":
        return symbolic.constant_window(midi, window, mode="note")
    if kind == "silence":
        return symbolic.constant_window(midi, window, mode="silence")
    raise ValueError(f"unknown noise kind {kind!r}; expected one of {TOKEN_NOISE_KINDS}")


def token_noise_response(lm, midis: Sequence, lengths_seconds: Sequence[float] = PAPER_LENGTHS_SECONDS,
                         onset_seconds: float = 5.0, kinds: Sequence[str] = TOKEN_NOISE_KINDS, seed: int = 0,
                         after_seconds: float = 2.0) -> pd.DataFrame:
    """`noise_response` for a model over MIDI tokens: one row per (score excerpt, kind, length), the window
    ``[onset, onset + length)`` seconds replaced in the score (`token_window`). Tokens are placed in time by
    their events' seconds, so windows are in seconds like the audio ones; does Context Amnesia appear without a codec?

    Columns: ``window_tokens``; ``window_nll`` and ``clean_window_nll`` (mean NLL per token inside the window,
    perturbed and clean: below the clean one is the token-space Assimilation); ``window_unigram_nats`` (what a
    learner that only counts the window's own tokens pays, `in_context_unigram_nats`); ``after_nll``/
    ``clean_after_nll`` (the ``after_seconds`` after it); ``mean_delta`` (mean NLL per token of the whole perturbed
    excerpt minus the clean one: the paper's measure).
    """
    rows = []
    for i, midi in enumerate(midis):
        _, c_sec, c_nll = token_nll(lm, midi)
        for kind in kinds:
            for length in lengths_seconds:
                window = (onset_seconds, onset_seconds + length)
                ids, sec, nll = token_nll(lm, token_window(midi, kind, window, seed + i))
                inside = (sec >= window[0]) & (sec < window[1])
                c_inside = (c_sec >= window[0]) & (c_sec < window[1])
                after = (sec >= window[1]) & (sec < window[1] + after_seconds)
                c_after = (c_sec >= window[1]) & (c_sec < window[1] + after_seconds)
                rows.append(dict(
                    piece=i, kind=kind, length_seconds=length, window_tokens=int(inside.sum()),
                    window_nll=float(nll[inside].mean()) if inside.any() else np.nan,
                    clean_window_nll=float(c_nll[c_inside].mean()) if c_inside.any() else np.nan,
                    window_unigram_nats=(float(in_context_unigram_nats(ids[inside][None], lm.cardinality)[0])
                                         if inside.any() else np.nan),
                    after_nll=float(nll[after].mean()) if after.any() else np.nan,
                    clean_after_nll=float(c_nll[c_after].mean()) if c_after.any() else np.nan,
                    mean_delta=float(nll.mean() - c_nll.mean())))
    return pd.DataFrame(rows)
