"""What a symbolic model hears, and the paper's noise injection in token space.

The measures the audio card reports (:mod:`lossprofile.analysis.musicality`), for a model over MIDI tokens
(:class:`lossprofile.models.symbolic.SymbolicLM`), on score excerpts (``pretty_midi``, cut with
:func:`lossprofile.audio.midi_excerpt`):

- :func:`repeat_test`: a passage played three times in a row; NLL per token of each pass;
- :func:`wrong_note_test`: clean against half the notes moved 1–5 semitones (any pitch);
- :func:`noise_response`: a window of the excerpt replaced (random notes at the excerpt's own density, one
  repeated note, silence) for the paper's lengths in seconds; the NLL inside the window against the clean
  one and against a counting learner that only knows the window's own token frequencies
  (:func:`~lossprofile.analysis.musicality.in_context_unigram_nats`), and the sequence-mean difference
  (the paper's measure) — whether Context Amnesia appears without a codec.

Tokens are placed in time by the seconds of their events, so windows are in seconds like the audio ones.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from .. import audio
from ..perturb import score as score_perturb
from .musicality import in_context_unigram_nats

# the paper's noise lengths (5-200 frames of 20 ms) in seconds
PAPER_LENGTHS_SECONDS = (0.1, 0.2, 1.0, 2.0, 3.0, 4.0)
NOISE_KINDS = ("random_notes", "constant_note", "silence")


def token_nll(lm, midi) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids ``[T]``, seconds ``[T]``, NLL ``[T]`` in nats) of a score under ``lm``."""
    codes, seconds = lm.encode_midi(midi)
    return codes[0, 0].numpy(), seconds, lm.token_nll(codes)[0, 0].numpy()


def tiled(midi, seconds: float, passes: int):
    """``midi`` (an excerpt of ``seconds``) played ``passes`` times in a row."""
    out = score_perturb.copy_midi(midi)
    for inst, source in zip(out.instruments, midi.instruments):
        for p in range(1, passes):
            inst.notes += [type(n)(velocity=n.velocity, pitch=n.pitch, start=n.start + p * seconds,
                                   end=n.end + p * seconds) for n in source.notes]
    return out


def repeat_test(lm, midis: Sequence, excerpt_seconds: float = 5.0, passes: int = 3) -> pd.DataFrame:
    """NLL per token of each pass of a ``excerpt_seconds`` passage (from each score's first note) played
    ``passes`` times; one row per score: ``pass_1`` ... ``pass_N``, ``ratio_last_first``."""
    rows = []
    for midi in midis:
        clip = audio.midi_excerpt(midi, audio.midi_first_onset(midi), excerpt_seconds)
        _, seconds, nll = token_nll(lm, tiled(clip, excerpt_seconds, passes))
        row = {f"pass_{p + 1}": float(nll[(seconds >= p * excerpt_seconds) & (seconds < (p + 1) * excerpt_seconds)]
                                      .mean()) for p in range(passes)}
        row["ratio_last_first"] = row[f"pass_{passes}"] / row["pass_1"]
        rows.append(row)
    return pd.DataFrame(rows)


def wrong_note_test(lm, midis: Sequence, fraction: float = 0.5, semitones=(1, 2, 3, 4, 5), seed: int = 0
                    ) -> pd.DataFrame:
    """Mean NLL per token of each score and of the same score with ``fraction`` of its notes moved by one of
    ``semitones`` up or down (any pitch: wrong notes). Feed ``nll_wrong``/``nll_clean`` to ``stats.paired_auroc``."""
    rows = []
    for i, midi in enumerate(midis):
        wrong = score_perturb.shift_pitches(midi, fraction, semitones, seed=seed + i, in_key=False)
        rows.append(dict(piece=i, nll_clean=float(token_nll(lm, midi)[2].mean()),
                         nll_wrong=float(token_nll(lm, wrong)[2].mean())))
    return pd.DataFrame(rows)


def perturbed(midi, kind: str, window: tuple[float, float], seed: int):
    if kind == "random_notes":
        return score_perturb.random_notes(midi, window, seed=seed)
    if kind == "constant_note":
        return score_perturb.constant_window(midi, window, mode="note")
    if kind == "silence":
        return score_perturb.constant_window(midi, window, mode="silence")
    raise ValueError(f"unknown noise kind {kind!r}; expected one of {NOISE_KINDS}")


def noise_response(lm, midis: Sequence, lengths_seconds: Sequence[float] = PAPER_LENGTHS_SECONDS,
                   onset_seconds: float = 5.0, kinds: Sequence[str] = NOISE_KINDS, seed: int = 0,
                   after_seconds: float = 2.0) -> pd.DataFrame:
    """One row per (score, kind, length): the window ``[onset, onset + length)`` replaced.

    Columns: ``window_tokens``; ``window_nll`` and ``clean_window_nll`` (mean NLL per token inside the window,
    perturbed and clean: below the clean one is the token-space Assimilation); ``window_unigram_nats`` (what a
    learner that only counts the window's own tokens pays); ``after_nll``/``clean_after_nll`` (the
    ``after_seconds`` after it); ``mean_delta`` (mean NLL per token of the whole perturbed excerpt minus the
    clean one: the paper's measure).
    """
    rows = []
    for i, midi in enumerate(midis):
        _, c_sec, c_nll = token_nll(lm, midi)
        for kind in kinds:
            for length in lengths_seconds:
                window = (onset_seconds, onset_seconds + length)
                ids, sec, nll = token_nll(lm, perturbed(midi, kind, window, seed + i))
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
