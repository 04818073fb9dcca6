"""Perturbations that replace or reorder a window of the score (the symbolic family's "noise" and shuffles)."""

from __future__ import annotations

import copy

import numpy as np
import pretty_midi
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lossprofile.perturb import score


@st.composite
def midis(draw):
    midi = pretty_midi.PrettyMIDI()
    for drum in (False, True)[: draw(st.integers(1, 2))]:
        inst = pretty_midi.Instrument(program=0, is_drum=drum)
        for _ in range(draw(st.integers(0, 40))):
            start = draw(st.floats(0, 20, allow_nan=False))
            inst.notes.append(pretty_midi.Note(velocity=draw(st.integers(1, 127)), pitch=draw(st.integers(21, 108)),
                                               start=start, end=start + draw(st.floats(0.01, 3))))
        inst.notes.sort(key=lambda n: (n.start, n.pitch))
        midi.instruments.append(inst)
    return midi


def notes(midi, lo=-np.inf, hi=np.inf, inside=True):
    """(instrument, start, end, pitch, velocity) of notes starting inside [lo, hi) (or outside it)."""
    return sorted((i, round(n.start, 9), round(n.end, 9), n.pitch, n.velocity) for i, inst in enumerate(midi.instruments)
                  for n in inst.notes if (lo <= n.start < hi) == inside)


windows = st.tuples(st.floats(0, 15), st.floats(0.1, 6)).map(lambda t: (t[0], t[0] + t[1]))


@settings(max_examples=60, deadline=None)
@given(midi=midis(), window=windows, seed=st.integers(0, 5))
def test_random_notes_replace_the_window_at_its_own_density_and_nothing_else(midi, window, seed):
    before = copy.deepcopy(midi)
    out = score.random_notes(midi, window, seed=seed)
    lo, hi = window
    assert notes(midi) == notes(before)  # input untouched
    inside = notes(out, lo, hi)
    assert len(inside) == len(notes(before, lo, hi))  # as many notes as the window held (drums counted)
    assert all(end <= hi + 1e-9 and 21 <= pitch <= 108 for _, _, end, pitch, _ in inside)
    # outside the window: the same notes, those sounding into it cut at its start
    expected = [(i, s, round(min(e, lo), 9) if s < lo < e else e, p, v) for i, s, e, p, v in notes(before, lo, hi, inside=False)]
    assert notes(out, lo, hi, inside=False) == sorted(expected)
    assert notes(score.random_notes(midi, window, seed=seed)) == notes(out)  # seeded


@settings(max_examples=40, deadline=None)
@given(midi=midis(), window=windows, mode=st.sampled_from(score.CONSTANT_MODES))
def test_constant_windows_hold_one_repeated_event_or_nothing(midi, window, mode):
    lo, hi = window
    out = score.constant_window(midi, window, mode=mode, period_seconds=0.25)
    inside = notes(out, lo, hi)
    if mode == "silence":
        assert inside == []
    else:
        per_onset = 1 if mode == "note" else 3
        assert len(inside) == per_onset * int(np.ceil((hi - lo) / 0.25 - 1e-9))
        assert {p for _, _, _, p, _ in inside} == ({60} if mode == "note" else {60, 64, 67})
    assert all(e <= lo + 1e-9 for _, s, e, _, _ in notes(out, lo, hi, inside=False) if s < lo)


@settings(max_examples=60, deadline=None)
@given(midi=midis(), window=windows, segment=st.floats(0.1, 3), seed=st.integers(0, 5))
def test_shuffled_segments_keep_every_note_and_stay_in_the_window(midi, window, segment, seed):
    before = copy.deepcopy(midi)
    lo, hi = window
    out = score.shuffle_notes(midi, window, segment, seed=seed)
    assert notes(midi) == notes(before)
    # every note kept with its duration, pitch and velocity; notes outside the window untouched
    shape = lambda ns: sorted((i, p, v, float(e - s)) for i, s, e, p, v in ns)  # noqa: E731
    moved, kept = shape(notes(out)), shape(notes(before))
    assert [x[:3] for x in moved] == [x[:3] for x in kept]  # a moved note's duration is kept up to float rounding
    np.testing.assert_allclose([x[3] for x in moved], [x[3] for x in kept], atol=1e-9)
    assert notes(out, lo, hi, inside=False) == notes(before, lo, hi, inside=False)
    assert len(notes(out, lo, hi)) == len(notes(before, lo, hi))
    # within a segment, notes keep their offsets from one another
    assert notes(score.shuffle_notes(midi, window, segment, seed=seed)) == notes(out)


def test_a_window_without_length_is_refused():
    with pytest.raises(ValueError, match="positive length"):
        score.random_notes(pretty_midi.PrettyMIDI(), (2.0, 2.0))
