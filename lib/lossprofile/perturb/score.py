"""Perturbations of the score before rendering: wrong notes, deleted notes, velocities, tempo.

Each function takes a ``pretty_midi.PrettyMIDI`` and returns a new one (the input is never
modified), is deterministic under ``seed``, and can be restricted to a time window
``window_seconds=(start, stop)``: only notes starting inside it are touched (for the tempo
warp: only time inside it is stretched), so a perturbation can be placed like the noise
window at frame 250. Render the result with [`audio.render_midi`][lossprofile.audio.render_midi].

The authors' rules (YoEv/noiseloss ``processors/perturb``) are the defaults: pitch shifts
stay in the key of the first key signature (C major if none), up to 100 tries per note.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from ..errors import UsageError

MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
SHIFTABLE_PITCHES = (24, 103)  # the authors move only notes in this range (inclusive)


def _event_copy(event):
    if not hasattr(event, "__dict__"):  # a tuple of numbers (pretty_midi's tick scales): immutable
        return event
    new = object.__new__(type(event))
    new.__dict__.update(event.__dict__)
    return new


def copy_midi(midi):
    """A copy of a ``pretty_midi.PrettyMIDI`` that shares nothing mutable with it: every instrument, every list of
    events, every event object (note, pedal, bend, key, meter, lyric) and every array is new; only numbers,
    strings and tuples are shared. What ``copy.deepcopy`` gives (the two pickle to the same bytes), in a fraction
    of its time (a score perturbation copies the whole piece once per variant; docs/performance.md)."""
    def events(items: list) -> list:
        return [_event_copy(x) for x in items]

    out = _event_copy(midi)
    for name, value in vars(midi).items():
        if isinstance(value, list):
            setattr(out, name, events(value))
        elif isinstance(value, np.ndarray):
            setattr(out, name, value.copy())
    out.instruments = []
    for inst in midi.instruments:
        new = _event_copy(inst)
        for name, value in vars(inst).items():
            if isinstance(value, list):
                setattr(new, name, events(value))
        out.instruments.append(new)
    return out


def _notes_in_window(midi, window_seconds: tuple[float, float] | None, drums: bool = False):
    """(instrument index, note index) of every note whose start lies in the window, in a fixed order."""
    lo, hi = window_seconds if window_seconds is not None else (-np.inf, np.inf)
    return [(i, j) for i, inst in enumerate(midi.instruments) if drums or not inst.is_drum
            for j, note in enumerate(inst.notes) if lo <= note.start < hi]


def _pick(count: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must lie in [0, 1], got {fraction}")
    return np.sort(rng.choice(count, size=int(round(fraction * count)), replace=False)) if count else np.array([], int)


def key_pitch_classes(midi) -> frozenset[int]:
    """Pitch classes of the first key signature's major scale (or its relative major); C major if none."""
    if not midi.key_signature_changes:
        return frozenset(MAJOR_SCALE)
    number = midi.key_signature_changes[0].key_number  # 0-11 major, 12-23 minor (pretty_midi)
    tonic = number % 12 if number < 12 else (number % 12 + 3) % 12  # a minor key uses its relative major's notes
    return frozenset((tonic + step) % 12 for step in MAJOR_SCALE)


def shift_pitches(midi, fraction: float, semitones: int | Sequence[int], *, seed: int = 0, in_key: bool = True,
                  window_seconds: tuple[float, float] | None = None, max_tries: int = 100):
    """Move ``fraction`` of the notes (pitch 24–103, drums excluded) up or down by ``semitones``.

    ``semitones``: one interval, or several to draw from for each note; the sign is random.
    With ``in_key`` (the authors' rule) a move is kept only if the new pitch lies in the key
    of the first key signature, drawing again up to ``max_tries`` times; a note with no
    valid move stays. ``in_key=False`` allows any pitch (wrong notes).
    """
    rng = np.random.default_rng(seed)
    out = copy_midi(midi)
    choices = np.atleast_1d(np.asarray(semitones, dtype=int))
    if (choices <= 0).any():
        raise ValueError(f"semitones must be positive (the sign is drawn), got {semitones}")
    signs = np.array((-1, 1))
    key = key_pitch_classes(midi)
    candidates = [(i, j) for i, j in _notes_in_window(out, window_seconds)
                  if SHIFTABLE_PITCHES[0] <= out.instruments[i].notes[j].pitch <= SHIFTABLE_PITCHES[1]]
    for index in _pick(len(candidates), fraction, rng):
        i, j = candidates[index]
        note = out.instruments[i].notes[j]
        for _ in range(max_tries if in_key else 1):
            # rng.choice(a) draws rng.integers(len(a)) and indexes a: the same draws, without rng.choice's overhead
            pitch = note.pitch + int(choices[rng.integers(len(choices))]) * int(signs[rng.integers(2)])
            if 0 <= pitch <= 127 and (not in_key or pitch % 12 in key):
                note.pitch = pitch
                break
    return out


def delete_notes(midi, fraction: float, *, seed: int = 0, window_seconds: tuple[float, float] | None = None):
    """Delete ``fraction`` of the (non-drum) notes, chosen at random."""
    rng = np.random.default_rng(seed)
    out = copy_midi(midi)
    candidates = _notes_in_window(out, window_seconds)
    doomed = {candidates[k] for k in _pick(len(candidates), fraction, rng)}
    for i, inst in enumerate(out.instruments):
        inst.notes = [n for j, n in enumerate(inst.notes) if (i, j) not in doomed]
    return out


def randomize_velocities(midi, fraction: float, *, seed: int = 0, low: int = 30, high: int = 120,
                         window_seconds: tuple[float, float] | None = None):
    """Give ``fraction`` of the notes a velocity drawn uniformly from ``[low, high]``."""
    if not 1 <= low <= high <= 127:
        raise ValueError(f"need 1 <= low <= high <= 127, got {low}, {high}")
    rng = np.random.default_rng(seed)
    out = copy_midi(midi)
    candidates = _notes_in_window(out, window_seconds, drums=True)
    for k in _pick(len(candidates), fraction, rng):
        i, j = candidates[k]
        out.instruments[i].notes[j].velocity = int(rng.integers(low, high + 1))
    return out


def warp_tempo(midi, fraction: float, *, seed: int = 0, segment_fraction: tuple[float, float] = (0.02, 0.04),
               factor_range: tuple[float, float] = (0.1, 8.0), window_seconds: tuple[float, float] | None = None):
    """Play segments covering ``fraction`` of the piece at random tempo factors; later events shift consistently.

    Segments are 2–4% of the piece (or window) long and do not overlap; each plays at a tempo
    factor drawn from U(0.1, 8.0) (factor 2 = twice as fast, half as long). Every event time
    goes through the same piecewise-linear map, so order and overlaps are kept.
    Returns the new MIDI (``adjust_times`` also moves tempo and control events).
    """
    rng = np.random.default_rng(seed)
    out = copy_midi(midi)
    end = out.get_end_time()
    lo, hi = window_seconds if window_seconds is not None else (0.0, end)
    lo, hi = max(0.0, lo), min(end, hi)
    span = hi - lo
    if span <= 0 or fraction <= 0:
        return out
    # cut the span into short segments and pick enough of them to cover the fraction
    bounds = [lo]
    while bounds[-1] < hi:
        bounds.append(min(hi, bounds[-1] + span * float(rng.uniform(*segment_fraction))))
    segments = list(zip(bounds[:-1], bounds[1:]))
    order = rng.permutation(len(segments))
    chosen, covered = [], 0.0
    for k in order:
        if covered >= fraction * span - 1e-9:
            break
        chosen.append(segments[k])
        covered += segments[k][1] - segments[k][0]
    factors = {seg: float(rng.uniform(*factor_range)) for seg in chosen}
    original, warped, shift = [0.0], [0.0], 0.0
    for a, b in segments:
        stretch = 1.0 / factors[(a, b)] if (a, b) in factors else 1.0
        original += [a, b]
        warped += [a + shift, a + shift + (b - a) * stretch]
        shift += (b - a) * (stretch - 1.0)
    original.append(end + 1.0)
    warped.append(end + 1.0 + shift)
    keep = np.concatenate([[True], np.diff(original) > 0])
    out.adjust_times(np.array(original)[keep], np.array(warped)[keep])
    return out


# ---- "noise" in token space: a window of the score replaced, as the audio noise replaces a window of sound --------
PIANO_RANGE = (21, 108)


def _cleared(midi, window_seconds: tuple[float, float]):
    """A copy of ``midi`` with every note (drums too) that starts in the window removed and every note that sounds
    into it cut at the window's start: the window is empty, as a waveform window is before noise replaces it."""
    lo, hi = window_seconds
    if not hi > lo:
        raise ValueError(f"the window must have a positive length, got {window_seconds}")
    out = copy_midi(midi)
    for inst in out.instruments:
        kept = []
        for note in inst.notes:
            if lo <= note.start < hi:
                continue
            if note.start < lo < note.end:
                note.end = lo
            kept.append(note)
        inst.notes = kept
    return out


def _melodic_instrument(midi):
    import pretty_midi

    for inst in midi.instruments:
        if not inst.is_drum:
            return inst
    inst = pretty_midi.Instrument(program=0)
    midi.instruments.append(inst)
    return inst


def random_notes(midi, window_seconds: tuple[float, float], *, seed: int = 0, notes: int | None = None,
                 duration_range: tuple[float, float] = (0.05, 1.0)):
    """Replace the window with random notes: uniform pitches in the piano range (21–108), velocities (1–127),
    durations (``duration_range`` s, cut at the window's end) and onsets, as many as the window held before
    (``notes``: another count), in the first melodic instrument. The symbolic analogue of white noise."""
    import pretty_midi

    rng = np.random.default_rng(seed)
    lo, hi = window_seconds
    count = len(_notes_in_window(midi, window_seconds, drums=True)) if notes is None else notes
    out = _cleared(midi, window_seconds)
    inst = _melodic_instrument(out)
    onsets = np.sort(rng.uniform(lo, hi, count))
    for onset in onsets:
        end = min(hi, onset + float(rng.uniform(*duration_range)))
        inst.notes.append(pretty_midi.Note(velocity=int(rng.integers(1, 128)), pitch=int(rng.integers(PIANO_RANGE[0],
                          PIANO_RANGE[1] + 1)), start=float(onset), end=float(end)))
    inst.notes.sort(key=lambda n: (n.start, n.pitch))
    return out


CONSTANT_MODES = ("note", "chord", "silence")


def constant_window(midi, window_seconds: tuple[float, float], *, mode: str = "note", pitch: int = 60,
                    period_seconds: float = 0.25, velocity: int = 80):
    """Replace the window with something perfectly predictable: one note (``mode="note"``) or a major triad on
    ``pitch`` (``"chord"``) repeated every ``period_seconds``, or nothing (``"silence"``). What the codec makes
    of white noise is closer to this than to random notes: codes a frequency-counting learner predicts."""
    import pretty_midi

    if mode not in CONSTANT_MODES:
        raise ValueError(f"unknown constant mode {mode!r}; expected one of {CONSTANT_MODES}")
    out = _cleared(midi, window_seconds)
    if mode == "silence":
        return out
    inst = _melodic_instrument(out)
    lo, hi = window_seconds
    pitches = [pitch] if mode == "note" else [pitch, pitch + 4, pitch + 7]
    for k in range(int(np.ceil((hi - lo) / period_seconds - 1e-9))):  # not np.arange: no sliver of a note at hi
        onset = lo + k * period_seconds
        end = min(hi, onset + 0.9 * period_seconds)
        inst.notes += [pretty_midi.Note(velocity=velocity, pitch=p, start=float(onset), end=float(end)) for p in pitches]
    inst.notes.sort(key=lambda n: (n.start, n.pitch))
    return out


def shuffle_notes(midi, window_seconds: tuple[float, float], segment_seconds: float, *, seed: int = 0):
    """Cut the window into whole segments of ``segment_seconds`` (a note belongs to the segment its onset lies in,
    so the cuts fall between events; a last partial segment stays in place) and play the segments in a random order; each note keeps its offset in its
    segment, its duration, pitch and velocity. Notes outside the window are untouched. The paper's shuffle,
    placed like the audio one."""
    rng = np.random.default_rng(seed)
    lo, hi = window_seconds
    if segment_seconds <= 0:
        raise ValueError(f"segment_seconds must be positive, got {segment_seconds}")
    count = int((hi - lo) / segment_seconds + 1e-9)  # whole segments only: a moved note never leaves the window
    order = rng.permutation(max(count, 1))  # segment order[k] is played at slot k
    slot_of = np.empty(len(order), dtype=int)
    slot_of[order] = np.arange(len(order))
    out = copy_midi(midi)
    end = lo + count * segment_seconds
    for inst in out.instruments:
        for note in inst.notes:
            if lo <= note.start < end:
                segment = min(count - 1, int((note.start - lo) // segment_seconds))
                # a note at its segment's very start may round to just before the window when moved to slot 0
                start = max(lo, note.start + (slot_of[segment] - segment) * segment_seconds)
                note.start, note.end = start, note.end + (start - note.start)
        inst.notes.sort(key=lambda n: (n.start, n.pitch))
    return out


# the waveform kinds a model over MIDI tokens takes, and what each becomes in the score
IN_SCORE = {"noise": "random notes at the window's own density", "silence": "the window emptied",
            "shuffle": "the window's segments reordered"}


def apply_in_score(p, midi, frame_rate: int):
    """A perturbation applied to a score excerpt ``midi`` (starting at 0 s), placed on the frame grid like the
    audio one: a [`ScorePerturbation`][lossprofile.perturb.score.ScorePerturbation] as itself, and the waveform kinds of `IN_SCORE` as their token-space
    analogues (``noise`` → [`random_notes`][lossprofile.perturb.score.random_notes], ``silence`` → [`constant_window`][lossprofile.perturb.score.constant_window] silence, ``shuffle`` →
    [`shuffle_notes`][lossprofile.perturb.score.shuffle_notes] of ``segment_frames``). Other waveform kinds have no analogue:
    `lossprofile.errors.UsageError` (a choice of perturbations, not a bad file: no piece is skipped for it)."""
    if isinstance(p, ScorePerturbation):
        return p.apply_midi(midi, 0.0, frame_rate)
    window = (p.onset_frame / frame_rate, (p.onset_frame + p.span_frames) / frame_rate)
    if p.kind == "noise":
        return random_notes(midi, window, seed=p.seed)
    if p.kind == "silence":
        return constant_window(midi, window, mode="silence")
    if p.kind == "shuffle":
        return shuffle_notes(midi, window, p.segment_frames / frame_rate, seed=p.seed)
    raise UsageError(f"{p.kind!r} has no analogue in a score; a model over MIDI tokens takes "
                     f"{', '.join(IN_SCORE)} and the score perturbations")


SCORE_KINDS = ("shift_pitches", "delete_notes", "randomize_velocities", "warp_tempo")


@dataclass(frozen=True)
class ScorePerturbation:
    """A score perturbation placed on the excerpt's frame grid, for the runner (MIDI pieces only).

    ``onset_frame``/``length_frames`` give the window, in frames from the excerpt's start
    (``length_frames=None``: to the end of the piece). ``semitones`` and ``in_key`` apply to
    ``shift_pitches`` (the authors' rule by default; ``in_key=False`` gives wrong notes).
    Hashable and tabular like [`perturb.waveform.Perturbation`][lossprofile.perturb.waveform.Perturbation].
    """

    kind: str = "shift_pitches"
    fraction: float = 0.3
    semitones: tuple[int, ...] = (1,)
    in_key: bool = True
    onset_frame: int = 0
    length_frames: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in SCORE_KINDS:
            raise ValueError(f"unknown score perturbation {self.kind!r}; expected one of {SCORE_KINDS}")

    def apply_midi(self, midi, excerpt_start_seconds: float, frame_rate: int):
        """The perturbed copy of ``midi``; the window is shifted by where the excerpt starts in the piece."""
        start = excerpt_start_seconds + self.onset_frame / frame_rate
        stop = np.inf if self.length_frames is None else start + self.length_frames / frame_rate
        window = (start, stop)
        if self.kind == "shift_pitches":
            return shift_pitches(midi, self.fraction, self.semitones, seed=self.seed, in_key=self.in_key,
                                 window_seconds=window)
        if self.kind == "delete_notes":
            return delete_notes(midi, self.fraction, seed=self.seed, window_seconds=window)
        if self.kind == "randomize_velocities":
            return randomize_velocities(midi, self.fraction, seed=self.seed, window_seconds=window)
        return warp_tempo(midi, self.fraction, seed=self.seed, window_seconds=None if self.length_frames is None and
                          self.onset_frame == 0 else window)

    def as_row(self) -> dict:
        row = {k: v for k, v in asdict(self).items()}
        row["perturbation"] = row.pop("kind")
        pitched = self.kind == "shift_pitches"  # the interval and the key rule mean nothing for the others
        row["semitones"] = ",".join(map(str, self.semitones)) if pitched else None
        row["in_key"] = self.in_key if pitched else None
        return row

    @property
    def key(self) -> str:
        return ",".join(f"{k}={v}" for k, v in asdict(self).items())
