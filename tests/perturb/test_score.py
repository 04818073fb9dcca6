"""Invariants of the score perturbations, checked with hypothesis on random MIDI."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lossprofile.perturb import score


def random_midi(seed: int, n_notes: int, key_number: int | None = None, drums: bool = True) -> pretty_midi.PrettyMIDI:
    rng = np.random.default_rng(seed)
    midi = pretty_midi.PrettyMIDI()
    if key_number is not None:
        midi.key_signature_changes.append(pretty_midi.KeySignature(key_number, 0.0))
    for program in (0, 40):
        inst = pretty_midi.Instrument(program=program)
        for _ in range(n_notes):
            start = float(rng.uniform(0, 20))
            inst.notes.append(pretty_midi.Note(int(rng.integers(20, 110)), int(rng.integers(20, 110)), start,
                                               start + float(rng.uniform(0.05, 2))))
        midi.instruments.append(inst)
    if drums:
        kit = pretty_midi.Instrument(program=0, is_drum=True)
        kit.notes = [pretty_midi.Note(90, 36, t, t + 0.1) for t in np.arange(0, 20, 0.5)]
        midi.instruments.append(kit)
    return midi


def notes(midi) -> list[list[tuple]]:
    return [[(n.start, n.end, n.pitch, n.velocity) for n in inst.notes] for inst in midi.instruments]


seeds = st.integers(0, 2**31 - 1)
fractions = st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.8, 1.0])
windows = st.one_of(st.none(), st.tuples(st.floats(0, 10), st.floats(0.5, 10)).map(lambda t: (t[0], t[0] + t[1])))


@settings(max_examples=40, deadline=None)
@given(seeds, st.integers(1, 40), fractions, st.sampled_from([1, 2, 12]), st.integers(0, 23), windows)
def test_shift_pitches_in_key_moves_the_right_notes_by_the_interval_and_nothing_else(seed, n, fraction, semitones,
                                                                                     key, window):
    midi = random_midi(seed, n, key_number=key)
    before = copy.deepcopy(notes(midi))
    out = score.shift_pitches(midi, fraction, semitones, seed=seed, window_seconds=window)
    assert notes(midi) == before  # the input is untouched
    in_key = score.key_pitch_classes(midi)
    lo, hi = window or (-np.inf, np.inf)
    eligible = moved = 0
    for inst_in, inst_out in zip(midi.instruments, out.instruments):
        for a, b in zip(inst_in.notes, inst_out.notes):
            assert (a.start, a.end, a.velocity) == (b.start, b.end, b.velocity)  # timing and dynamics kept
            if a.pitch != b.pitch:
                moved += 1
                assert abs(a.pitch - b.pitch) == semitones and b.pitch % 12 in in_key
                assert not inst_in.is_drum and lo <= a.start < hi and 24 <= a.pitch <= 103
            eligible += (not inst_in.is_drum) and lo <= a.start < hi and 24 <= a.pitch <= 103
    assert moved <= round(fraction * eligible)
    again = score.shift_pitches(midi, fraction, semitones, seed=seed, window_seconds=window)
    assert notes(again) == notes(out)  # same seed, same result


@settings(max_examples=30, deadline=None)
@given(seeds, st.integers(1, 40), fractions)
def test_shift_pitches_out_of_key_moves_exactly_the_fraction(seed, n, fraction):
    midi = random_midi(seed, n, drums=False)
    out = score.shift_pitches(midi, fraction, (1, 2, 3, 4, 5), seed=seed, in_key=False)
    eligible = sum(24 <= note.pitch <= 103 for inst in midi.instruments for note in inst.notes)
    changes = [abs(a.pitch - b.pitch) for i, j in zip(midi.instruments, out.instruments)
               for a, b in zip(i.notes, j.notes) if a.pitch != b.pitch]
    assert len(changes) == round(fraction * eligible)
    assert all(1 <= c <= 5 for c in changes)


@settings(max_examples=40, deadline=None)
@given(seeds, st.integers(1, 40), fractions, windows)
def test_delete_notes_removes_exactly_the_fraction_inside_the_window(seed, n, fraction, window):
    midi = random_midi(seed, n)
    before = copy.deepcopy(notes(midi))
    out = score.delete_notes(midi, fraction, seed=seed, window_seconds=window)
    assert notes(midi) == before
    lo, hi = window or (-np.inf, np.inf)
    eligible = sum(lo <= note.start < hi for inst in midi.instruments if not inst.is_drum for note in inst.notes)
    kept = [set(map(tuple, inst)) for inst in notes(out)]
    removed = sum(len(a) - len(b) for a, b in zip(notes(midi), notes(out)))
    assert removed == round(fraction * eligible)
    for inst, survivors in zip(notes(midi), kept):
        for note in inst:  # everything outside the window (and every drum hit) survives
            if not lo <= note[0] < hi:
                assert note in survivors
    assert notes(out)[-1] == notes(midi)[-1]


@settings(max_examples=40, deadline=None)
@given(seeds, st.integers(1, 40), fractions, windows)
def test_randomize_velocities_changes_only_velocities_within_bounds(seed, n, fraction, window):
    midi = random_midi(seed, n)
    out = score.randomize_velocities(midi, fraction, seed=seed, low=30, high=120, window_seconds=window)
    lo, hi = window or (-np.inf, np.inf)
    for inst_in, inst_out in zip(midi.instruments, out.instruments):
        for a, b in zip(inst_in.notes, inst_out.notes):
            assert (a.start, a.end, a.pitch) == (b.start, b.end, b.pitch)
            if a.velocity != b.velocity:
                assert 30 <= b.velocity <= 120 and lo <= a.start < hi


@settings(max_examples=40, deadline=None)
@given(seeds, st.integers(2, 40), st.sampled_from([0.1, 0.3, 0.5, 0.8]), windows)
def test_warp_tempo_keeps_notes_order_and_leaves_time_before_the_window_alone(seed, n, fraction, window):
    midi = random_midi(seed, n, drums=False)
    before = copy.deepcopy(notes(midi))
    out = score.warp_tempo(midi, fraction, seed=seed, window_seconds=window)
    assert notes(midi) == before
    lo = window[0] if window else 0.0
    for inst_in, inst_out in zip(midi.instruments, out.instruments):
        assert len(inst_in.notes) == len(inst_out.notes)
        for a, b in zip(inst_in.notes, inst_out.notes):
            assert (a.pitch, a.velocity) == (b.pitch, b.velocity)
            assert b.end >= b.start
            if a.end <= lo:
                assert (a.start, a.end) == pytest.approx((b.start, b.end), abs=1e-9)
        starts_in, starts_out = np.array([x.start for x in inst_in.notes]), np.array([x.start for x in inst_out.notes])
        order = np.argsort(starts_in, kind="stable")
        assert np.all(np.diff(starts_out[order]) >= -1e-9)  # a monotone time map keeps the order of events
    if fraction > 0 and not window:
        assert out.get_end_time() != pytest.approx(midi.get_end_time())


def test_fraction_outside_unit_interval_is_refused():
    with pytest.raises(ValueError, match="fraction"):
        score.delete_notes(random_midi(0, 5), 1.5)


def every_midi_object(midi) -> list:
    """The PrettyMIDI, its instruments, its lists and arrays and every event object in them."""
    found = [midi]
    for owner in [midi, *midi.instruments]:
        for value in vars(owner).values():
            if isinstance(value, (list, np.ndarray)):
                found.append(value)
                found += [x for x in value if hasattr(x, "__dict__")] if isinstance(value, list) else []
    return found


def rich_midi(seed: int, n_notes: int) -> pretty_midi.PrettyMIDI:
    """random_midi with every kind of event pretty_midi keeps: pedals, bends, keys, meters, lyrics, text."""
    rng = np.random.default_rng(seed)
    midi = random_midi(seed, n_notes, key_number=int(rng.integers(0, 24)))
    midi.time_signature_changes.append(pretty_midi.TimeSignature(3, 4, float(rng.uniform(0, 5))))
    midi.lyrics.append(pretty_midi.Lyric("la", float(rng.uniform(0, 5))))
    midi.text_events.append(pretty_midi.Text("dolce", float(rng.uniform(0, 5))))
    for t in rng.uniform(0, 20, size=n_notes):
        midi.instruments[0].control_changes.append(pretty_midi.ControlChange(64, int(rng.integers(0, 128)), float(t)))
        midi.instruments[1].pitch_bends.append(pretty_midi.PitchBend(int(rng.integers(-8192, 8192)), float(t)))
    return midi


@settings(max_examples=30, deadline=None)
@given(seeds, st.integers(0, 40))
def test_copy_midi_is_a_deep_copy_that_shares_nothing_mutable(seed, n):
    import pickle

    midi = rich_midi(seed, n)
    out = score.copy_midi(midi)
    assert pickle.dumps(out) == pickle.dumps(copy.deepcopy(midi)) == pickle.dumps(midi)
    assert not {id(x) for x in every_midi_object(out)} & {id(x) for x in every_midi_object(midi)}
    before = pickle.dumps(midi)
    for inst in out.instruments:  # change everything in the copy: the original stays as it was
        for note in inst.notes:
            note.pitch, note.start = note.pitch + 1, note.start + 1.0
        for cc in inst.control_changes:
            cc.value = 0
        inst.pitch_bends.clear()
    out.key_signature_changes[0].key_number = 5
    out.adjust_times(np.array([0.0, 100.0]), np.array([0.0, 50.0]))
    assert pickle.dumps(midi) == before
    assert out.get_end_time() != midi.get_end_time()


def test_copy_midi_of_an_asap_performance_renders_like_the_original():
    from lossprofile import audio

    path = sorted((Path(__file__).parents[2] / "data" / "asap").rglob("*.mid"))[0]
    midi = pretty_midi.PrettyMIDI(str(path))
    out = score.copy_midi(midi)
    assert sum(len(i.control_changes) for i in out.instruments) > 100  # an ASAP performance's pedal events
    np.testing.assert_array_equal(audio.render_midi(audio.midi_excerpt(out, 0.0, 3.0), 16000),
                                  audio.render_midi(audio.midi_excerpt(midi, 0.0, 3.0), 16000))


@settings(max_examples=40, deadline=None)
@given(seeds, st.integers(1, 40), fractions, st.sampled_from([1, 2, 12, (1, 2), (1, 2, 3, 4, 5)]),
       st.integers(0, 23), st.booleans())
def test_shift_pitches_draws_what_the_authors_rule_draws_with_generator_choice(seed, n, fraction, semitones,
                                                                                key, in_key):
    # the rule written as the authors write it (Generator.choice for the interval and the sign, up to 100 tries)
    midi = random_midi(seed, n, key_number=key)
    rng = np.random.default_rng(seed)
    expected = copy.deepcopy(midi)
    scale = score.key_pitch_classes(midi)
    candidates = [(i, j) for i, inst in enumerate(expected.instruments) if not inst.is_drum
                  for j, note in enumerate(inst.notes) if 24 <= note.pitch <= 103]
    picked = np.sort(rng.choice(len(candidates), size=int(round(fraction * len(candidates))), replace=False))
    for index in picked:
        note = expected.instruments[candidates[index][0]].notes[candidates[index][1]]
        for _ in range(100 if in_key else 1):
            pitch = note.pitch + int(rng.choice(np.atleast_1d(semitones))) * int(rng.choice((-1, 1)))
            if 0 <= pitch <= 127 and (not in_key or pitch % 12 in scale):
                note.pitch = pitch
                break
    assert notes(score.shift_pitches(midi, fraction, semitones, seed=seed, in_key=in_key)) == notes(expected)
