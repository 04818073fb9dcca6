"""The embedded model's training corpus: scores from ``music21`` arranged and rendered like real music.

A plain render of scores is too uniform to teach a language model what a real corpus
teaches MusicGen. Each piece here is a score from the corpus inside ``music21`` (chorales,
motets, madrigals, quartets, fiddle tunes, folk songs, ...) given, by a random draw
fixed by its name:

- several instruments (one General MIDI program per part; piano among the choices),
  a tempo and a loudness of its own, and phrase-level dynamics;
- drums in one of several styles on about a third of the pieces;
- textures and effects of the SoundFont (GM programs 119–127: reverse cymbal, fret noise,
  breath, seashore, birds, telephone, helicopter, applause, gunshot), pads and drones;
- rests between sections;
- repetition as real pieces have it: the score's own repeats, repeated sections (ostinati),
  strophic verses, and audio loops (a bar or two played again verbatim).

A few pieces are textures alone (sea, birds, applause, a pad drone). Every sound comes
from the SoundFont: no synthetic noise (nothing from `lossprofile.perturb`, no Gaussian
or coloured noise) is ever added, so the noise the experiments inject stays unseen.
ASAP is not used here, so the OOD set stays out of distribution.

Pieces are split into ``train`` and ``heldout`` by a hash of their name. The held-out split is the
TrainingSet kind the experiments evaluate ([`lossprofile.data.datasets`][]), which is why the corpus
lives here in the core; what only training uses (the splits as each model reads them, texture
clouds a recipe may add) is in `lossprofile.embedded.training_corpus`.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import audio
from ..io import atomic_path, write_text_atomic

SAMPLE_RATE = 32000
FRAME_SECONDS = 0.02  # the codec's frame (640 samples at 32 kHz)
HELD_OUT_FRACTION = 0.15

# (music21 corpus folder, file suffix, files to take, tunes per file (abc collections), genre word)
SOURCES = (
    ("bach", ".mxl", 300, 1, "chorale"),
    ("palestrina", ".krn", 140, 1, "motet"),
    ("monteverdi", ".mxl", 40, 1, "madrigal"),
    ("trecento", ".xml", 50, 1, "ballata"),
    ("haydn", ".mxl", 9, 1, "quartet"),
    ("mozart", ".mxl", 16, 1, "quartet"),
    ("beethoven", ".mxl", 10, 1, "quartet"),
    ("schumann_robert", ".mxl", 6, 1, "song"),
    ("schumann_clara", ".mxl", 4, 1, "song"),
    ("ryansMammoth", ".abc", 220, 1, "fiddle tune"),
    ("oneills1850", ".abc", 39, 3, "fiddle tune"),
    ("essenFolksong", ".abc", 31, 5, "folk song"),
    ("airdsAirs", ".abc", 6, 4, "air"),
    ("josquin", ".abc", 8, 1, "motet"),
    ("joplin", ".mxl", 1, 1, "rag"),
    ("corelli", ".xml", 1, 1, "sonata"),
)

# Instrument palettes (General MIDI programs, 0-based) and the word a description uses.
PALETTES = {
    "piano": (0, 1, 2),
    "harpsichord": (6,),
    "organ": (19, 16, 20),
    "strings": (48, 49, 40, 41, 42),
    "choir": (52, 53, 54),
    "winds": (73, 71, 68, 70, 74),
    "brass": (56, 57, 60, 61),
    "guitar": (24, 25, 26, 27),
    "mallets": (12, 11, 8, 13),
    "synth": (80, 81, 62, 63),
}
PALETTE_WEIGHTS = {"piano": 0.26, "harpsichord": 0.05, "organ": 0.08, "strings": 0.14, "choir": 0.06,
                   "winds": 0.11, "brass": 0.07, "guitar": 0.1, "mallets": 0.06, "synth": 0.07}
BASS_PROGRAMS = (32, 33, 34, 43)
PAD_PROGRAMS = (88, 89, 90, 91, 92, 94, 95)
TEXTURES = {  # GM program: (name, how it is played)
    119: ("reverse cymbal", "swell"),
    120: ("fret noise", "sparse"),
    121: ("breath", "sparse"),
    122: ("seashore", "sustain"),
    123: ("birds", "sparse"),
    124: ("telephone", "sparse"),
    125: ("helicopter", "sustain"),
    126: ("applause", "sustain"),
    127: ("gunshot", "sparse"),
}


@dataclass(frozen=True)
class Job:
    """One piece to build: a score (or a tune in an abc collection) or a texture piece."""

    piece: str
    source: str  # path of the score in the music21 corpus, or "texture"
    genre: str
    tune: int | None = None

    @property
    def split(self) -> str:
        return "heldout" if stable_fraction(self.piece + "split") < HELD_OUT_FRACTION else "train"


def stable_fraction(key: str) -> float:
    """A number in [0, 1) fixed by ``key`` (reproducible without a seed)."""
    import hashlib

    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 2**32


def piece_rng(piece: str, seed: int = 0) -> np.random.Generator:
    return np.random.default_rng([int(stable_fraction(piece) * 2**32), seed])


def abc_tune_numbers(path: str | os.PathLike) -> list[int]:
    """The ``X:`` reference numbers of the tunes in an abc file."""
    text = Path(path).read_text(encoding="latin-1")
    return [int(x) for x in re.findall(r"^X:\s*(\d+)", text, flags=re.M)]


def jobs(texture_pieces: int = 40) -> list[Job]:
    """Every piece of the corpus, in a fixed order (scores spread over each folder)."""
    import music21

    out = []
    paths = [str(p) for p in music21.corpus.getCorePaths()]
    for folder, suffix, count, tunes, genre in SOURCES:
        files = sorted(p for p in paths if f"/corpus/{folder}/" in p and p.endswith(suffix))
        step = max(1, len(files) // count) if count else 1
        for path in files[::step][:count]:
            stem = re.sub(r"[^A-Za-z0-9]+", "_", Path(path).stem)
            if tunes > 1:
                numbers = abc_tune_numbers(path)
                for x in numbers[:: max(1, len(numbers) // tunes)][:tunes]:
                    out.append(Job(f"{folder}-{stem}-x{x}", path, genre, x))
            else:
                out.append(Job(f"{folder}-{stem}", path, genre))
    out += [Job(f"texture-{i:03d}", "texture", "ambience") for i in range(texture_pieces)]
    return out


# ---- scores to MIDI -------------------------------------------------------------------------
def score_midi(job: Job, cache_dir: Path):
    """The job's score as ``pretty_midi.PrettyMIDI`` (repeats expanded where music21 can), cached."""
    import music21
    import pretty_midi

    path = cache_dir / f"{job.piece}.mid"
    if not path.exists():
        score = music21.corpus.parse(job.source, number=job.tune) if job.tune else music21.corpus.parse(job.source)
        if isinstance(score, music21.stream.Opus):
            score = score.scores[0]
        try:
            score = score.expandRepeats()
        except Exception:  # music21 refuses some repeat structures; the plain score is still music
            pass
        with atomic_path(path, suffix=".tmp.mid") as tmp:
            score.write("midi", fp=str(tmp))
    return pretty_midi.PrettyMIDI(str(path))


# ---- arrangement ----------------------------------------------------------------------------
def _choice(rng: np.random.Generator, options: Sequence):
    return options[int(rng.integers(len(options)))]


def _timeline(midi, segments: list[tuple[float, float]], gap_after: dict[int, float]):
    """A new MIDI that plays ``segments`` (start, end) of ``midi`` in order, with rests in between.

    Notes are cut at segment ends; controls (pedal) are copied with their segment.
    Returns the new MIDI and, for mapping beats, the list of (source start, target start, length).
    """
    import pretty_midi

    out = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    placed, cursor = [], 0.0
    for i, (lo, hi) in enumerate(segments):
        placed.append((lo, cursor, hi - lo))
        cursor += hi - lo + gap_after.get(i, 0.0)
    for inst in midi.instruments:
        new = pretty_midi.Instrument(inst.program, inst.is_drum, inst.name)
        for lo, at, length in placed:
            shift = at - lo
            for n in inst.notes:
                if lo <= n.start < lo + length:
                    new.notes.append(pretty_midi.Note(n.velocity, n.pitch, n.start + shift,
                                                      min(n.end, lo + length) + shift))
            for cc in inst.control_changes:
                if lo <= cc.time < lo + length:
                    new.control_changes.append(pretty_midi.ControlChange(cc.number, cc.value, cc.time + shift))
            new.control_changes.append(pretty_midi.ControlChange(64, 0, at + length))  # no pedal across a cut
        out.instruments.append(new)
    return out, placed


def _map_times(times: np.ndarray, placed) -> np.ndarray:
    out = [t + at - lo for lo, at, length in placed for t in times if lo <= t < lo + length]
    return np.array(sorted(out))


def _assign_programs(midi, rng: np.random.Generator) -> str:
    """One palette for the piece, one program per part; the lowest part may get a bass. Returns the palette."""
    names = list(PALETTE_WEIGHTS)
    palette = names[int(rng.choice(len(names), p=np.array(list(PALETTE_WEIGHTS.values())) / sum(PALETTE_WEIGHTS.values())))]
    melodic = [inst for inst in midi.instruments if not inst.is_drum and inst.notes]
    for i, inst in enumerate(melodic):
        inst.program = PALETTES[palette][(i + int(rng.integers(3))) % len(PALETTES[palette])]
    if len(melodic) >= 3 and rng.random() < 0.3:
        lowest = min(melodic, key=lambda inst: np.mean([n.pitch for n in inst.notes]))
        lowest.program = _choice(rng, BASS_PROGRAMS)
    return palette


def _dynamics(midi, rng: np.random.Generator, duration: float) -> None:
    """Phrase-level dynamics: a smooth random velocity scale over 3–8 s phrases, plus per-part balance."""
    knots_t = np.concatenate([[0.0], np.cumsum(rng.uniform(3, 8, size=int(duration / 3) + 2))])
    knots_v = rng.uniform(0.45, 1.15, size=knots_t.size)
    for inst in midi.instruments:
        balance = rng.uniform(0.75, 1.1)
        for n in inst.notes:
            scale = np.interp(n.start, knots_t, knots_v) * balance
            n.velocity = int(np.clip(round(n.velocity * scale * rng.uniform(0.92, 1.08)), 8, 127))


def _drums(beats: np.ndarray, downbeats: np.ndarray, rng: np.random.Generator):
    """A drum part in one of several styles on the piece's beats, with fills and crashes."""
    import pretty_midi

    style = _choice(rng, ("rock", "waltz", "shuffle", "latin", "ride", "march"))
    drums = pretty_midi.Instrument(program=0, is_drum=True, name="drums")
    down = set(np.round(downbeats, 3))
    bar = 0
    fill_every = int(_choice(rng, (4, 8)))

    def hit(key, t, vel):  # no per-hit randomness: a repeated bar sounds the same
        drums.notes.append(pretty_midi.Note(int(np.clip(vel, 20, 127)), key, t, t + 0.08))

    for i, beat in enumerate(beats[:-1]):
        step = beats[i + 1] - beat
        if round(beat, 3) in down:
            bar += 1
            if bar % fill_every == 1:
                hit(49, beat, 100)
        position = i % (3 if style == "waltz" else 4)
        if bar % fill_every == 0:  # a fill on the last bar of each phrase
            for j, key in enumerate((50, 48, 47, 45)):
                hit(key, beat + j * step / 4, 90)
            continue
        if style == "rock":
            hit(36 if position in (0, 2) else 38, beat, 100)
            for half in (0.0, 0.5):
                hit(42, beat + half * step, 65)
        elif style == "waltz":
            hit(36 if position == 0 else 42, beat, 95 if position == 0 else 60)
        elif style == "shuffle":
            hit(36 if position in (0, 2) else 38, beat, 95)
            hit(42, beat, 60)
            hit(42, beat + 2 / 3 * step, 50)
        elif style == "latin":
            if position in (0, 3):
                hit(75, beat, 80)
            hit(63 if position % 2 else 64, beat + 0.5 * step, 70)
            if position == 0:
                hit(36, beat, 90)
        elif style == "ride":
            hit(51, beat, 70)
            hit(51, beat + 0.5 * step, 55)
            if position == 0:
                hit(36, beat, 85)
            if position == 2:
                hit(38, beat, 75)
        else:  # march
            hit(38, beat, 90 if position == 0 else 70)
            hit(38, beat + 0.5 * step, 55)
            if position in (0, 2):
                hit(36, beat, 90)
    return drums, style


def _texture_part(program: int, duration: float, rng: np.random.Generator, start: float = 0.0,
                  velocity: tuple[int, int] = (40, 90)):
    """The SoundFont's effect ``program`` played as it sounds in a mix: sustained, swelling or now and then."""
    import pretty_midi

    inst = pretty_midi.Instrument(program=program, name=TEXTURES.get(program, ("pad",))[0])
    how = TEXTURES.get(program, ("pad", "sustain"))[1]
    t, end = start, start + duration
    while t < end:
        pitch = int(rng.integers(48, 72))
        vel = int(rng.integers(*velocity))
        if how == "sustain":
            length = float(rng.uniform(3, 8))
            inst.notes.append(pretty_midi.Note(vel, pitch, t, min(end, t + length + 1.0)))
            t += length
        elif how == "swell":
            inst.notes.append(pretty_midi.Note(vel, pitch, t, min(end, t + 2.5)))
            t += float(rng.uniform(3, 9))
        else:
            inst.notes.append(pretty_midi.Note(vel, pitch, t, min(end, t + float(rng.uniform(0.2, 1.2)))))
            t += float(rng.exponential(1.5)) + 0.1
    return inst


def _drone(midi, rng: np.random.Generator, duration: float):
    """A pad or organ drone on the piece's most frequent pitch class (tonic and fifth), re-struck every few seconds."""
    import pretty_midi

    pitches = [n.pitch for inst in midi.instruments if not inst.is_drum for n in inst.notes]
    tonic = int(np.bincount(np.array(pitches) % 12, minlength=12).argmax()) if pitches else 0
    inst = pretty_midi.Instrument(program=_choice(rng, PAD_PROGRAMS + (19, 48)), name="drone")
    t, vel = 0.0, int(rng.integers(35, 70))
    while t < duration:
        length = float(rng.uniform(4, 10))
        for p in (36 + tonic, 43 + tonic):
            inst.notes.append(pretty_midi.Note(vel, p, t, min(duration, t + length)))
        t += length
    return inst


def arrange(midi, job: Job, rng: np.random.Generator, max_seconds: float = 40.0):
    """Turn a score's MIDI into a piece of music as it might be recorded. Returns (midi, description, tags)."""
    import pretty_midi

    tags: dict[str, object] = {}
    midi.adjust_times([0, midi.get_end_time()], [0, midi.get_end_time() * float(rng.uniform(0.75, 1.35))])
    palette = _assign_programs(midi, rng)
    tags["palette"] = palette
    end = midi.get_end_time()
    # Dynamics go on the score before sections are repeated, so a repeated section is played
    # exactly as before (same notes, same velocities, same place on the frame grid): it encodes
    # to (nearly) the same codes, the exact repetition a model needs to learn to copy.
    _dynamics(midi, rng, end)
    beats = midi.get_beats()
    downbeats = midi.get_downbeats()
    bars = downbeats if len(downbeats) >= 4 else beats[::4]
    # Sections (a few bars each), then a play order: repeated sections, strophic verses, rests.
    # Cuts and rests fall on the codec's 20 ms frame grid, so a repeated section starts at the same
    # phase of the frame grid every time: loops encode to (nearly) the same codes, as they would in
    # music made on a grid. Musical repeats in the scores themselves keep their own timing.
    grid = FRAME_SECONDS
    cuts = [0.0] + [float(b) for b in bars[1:] if 0 < b < end][:: max(1, int(rng.integers(2, 5)))] + [end]
    cuts = sorted({round(c / grid) * grid for c in cuts})
    sections = [(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b - a > 0.5]
    order = list(range(len(sections)))
    if sections and rng.random() < 0.5:  # an ostinato: one section played 2–4 times in a row
        i = int(rng.integers(len(sections)))
        order = order[: i + 1] + [i] * int(rng.integers(1, 4)) + order[i + 1 :]
        tags["ostinato"] = True
    total = sum(sections[i][1] - sections[i][0] for i in order)
    verses = 1
    while total * verses < 24.0 and verses < 6:  # short songs come back as verses
        verses += 1
    order = order * verses
    tags["verses"] = verses
    gaps = {i: round(float(rng.uniform(0.4, 2.5)) / grid) * grid for i in range(len(order) - 1) if rng.random() < 0.06}
    tags["rests"] = len(gaps)
    segments = [sections[i] for i in order]
    midi, placed = _timeline(midi, segments, gaps)
    beats, downbeats = _map_times(beats, placed), _map_times(downbeats, placed)
    duration = min(max_seconds, midi.get_end_time())
    words = [job.genre, palette]
    if len(beats) > 8 and rng.random() < 0.33:
        drums, style = _drums(beats[beats < duration], downbeats, rng)
        midi.instruments.append(drums)
        words.append("with drums")
        tags["drums"] = style
    roll = rng.random()
    if roll < 0.3:  # a texture or effect in the mix
        program = _choice(rng, list(TEXTURES))
        start = float(rng.uniform(0, duration / 2))
        midi.instruments.append(_texture_part(program, float(rng.uniform(4, duration - start + 1)), rng, start,
                                              velocity=(30, 80)))
        words.append(f"and {TEXTURES[program][0]}")
        tags["texture"] = TEXTURES[program][0]
    elif roll < 0.45:
        midi.instruments.append(_drone(midi, rng, duration))
        words.append("over a drone")
        tags["drone"] = True
    return midi, " ".join(words), tags


def texture_piece(job: Job, rng: np.random.Generator, seconds: float = 30.0):
    """A piece of textures alone: one to three effects or pads layered (sea and birds, applause, a drone)."""
    import pretty_midi

    midi = pretty_midi.PrettyMIDI()
    programs = list(rng.choice(list(TEXTURES) + list(PAD_PROGRAMS), size=int(rng.integers(1, 4)), replace=False))
    names = []
    for program in programs:
        program = int(program)
        midi.instruments.append(_texture_part(program, seconds, rng, velocity=(35, 100)))
        names.append(TEXTURES[program][0] if program in TEXTURES else "pad")
    return midi, "ambience " + " and ".join(names), {"texture": "+".join(names)}


def audio_loop(wav: np.ndarray, rng: np.random.Generator, sample_rate: int, hop: int = 640) -> tuple[np.ndarray, dict]:
    """Loop-based music: a 1–4 s stretch played 2–4 times verbatim (3 times in 4 a whole number of frames long)."""
    seconds = float(rng.uniform(1.0, 4.0))
    length = int(seconds * sample_rate)
    if rng.random() < 0.75:  # most loops are cut on the frame grid (music made on a grid), some are not
        length = length // hop * hop
    start = int(rng.integers(0, max(1, wav.size // 2)))
    loop = wav[start : start + length]
    times = int(rng.integers(2, 5))
    out = np.concatenate([wav[:start]] + [loop] * times + [wav[start + length :]])
    return out, {"loop_seconds": round(length / sample_rate, 3), "loop_times": times}


def arranged_midi(job: Job, cache_dir: Path, max_seconds: float = 40.0, seed: int = 0):
    """The job's arrangement as ``pretty_midi.PrettyMIDI``, with the draws `render_job` makes: the score its
    audio plays (before the audio-only loop some renders get). Texture jobs have no score: ValueError."""
    if job.source == "texture":
        raise ValueError(f"{job.piece}: a texture piece has no score")
    return arrange(score_midi(job, cache_dir), job, piece_rng(job.piece, seed), max_seconds)[0]


def render_job(job: Job, cache_dir: Path, max_seconds: float = 40.0, seed: int = 0) -> tuple[np.ndarray, str, dict]:
    """The job's audio ``[S]`` at 32 kHz, its text description and what was done to it."""
    rng = piece_rng(job.piece, seed)
    if job.source == "texture":
        midi, description, tags = texture_piece(job, rng, seconds=float(rng.uniform(20, max_seconds)))
    else:
        midi, description, tags = arrange(score_midi(job, cache_dir), job, rng, max_seconds)
    wav = audio.render_midi(midi, SAMPLE_RATE, max_seconds=max_seconds + 2)
    wav = wav[audio.first_sound_sample(wav, SAMPLE_RATE) :]
    if job.source != "texture" and rng.random() < 0.2:
        wav, loop_tags = audio_loop(wav, rng, SAMPLE_RATE)
        tags.update(loop_tags)
    wav = wav[: int(max_seconds * SAMPLE_RATE)]
    level = float(rng.uniform(-26.0, -16.0))  # recordings come at many levels
    return audio.normalize_rms(wav, target_dbfs=level), description, {**tags, "level_dbfs": round(level, 1)}


def _is_built(job: Job, out: Path) -> bool:
    """Rendered, or known to fail (a score music21 cannot read is not parsed again on every call)."""
    meta = out / f"{job.piece}.json"
    return meta.exists() and ("error" in json.loads(meta.read_text()) or (out / f"{job.piece}.flac").exists())


def _build_one(args) -> dict:
    job, out, cache_dir, max_seconds, seed = args
    flac = out / f"{job.piece}.flac"
    row: dict = dict(piece=job.piece, split=job.split)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wav, description, tags = render_job(job, cache_dir, max_seconds, seed)
        if wav.size < 16 * SAMPLE_RATE:  # too short for a 15 s excerpt
            raise ValueError(f"too short ({wav.size / SAMPLE_RATE:.1f} s)")
    except Exception as err:  # music21 and MIDI parsing raise many kinds on odd scores
        row["error"] = f"{type(err).__name__}: {err}"
    else:
        audio.save_audio(flac, wav, SAMPLE_RATE)
        source = "SoundFont textures" if job.source == "texture" else f"music21 corpus: {Path(job.source).name}"
        row.update(file=flac.name, description=description, source=source, tune=job.tune,
                   seconds=round(wav.size / SAMPLE_RATE, 2), tags=json.dumps(tags, sort_keys=True))
    meta = flac.with_suffix(".json")
    write_text_atomic(json.dumps(row), meta)
    return row


def _render(args: list, workers: int, bar) -> list[dict]:
    """`_build_one` of each job's arguments, in ``workers`` processes where there are several."""
    from multiprocessing import get_context

    rows = []
    if workers > 1 and len(args) > 1:
        with get_context("spawn").Pool(min(workers, len(args))) as pool:
            for row in pool.imap(_build_one, args, chunksize=4):
                rows.append(row)
                bar.update() if bar is not None else None
    else:
        for a in args:
            rows.append(_build_one(a))
            bar.update() if bar is not None else None
    return rows


def build(out_dir: str | os.PathLike, splits: Sequence[str] = ("train", "heldout"), limit: int | None = None,
          max_seconds: float = 40.0, seed: int = 0, workers: int = 2, progress: bool = True,
          first: int | None = None):
    """Render the corpus's pieces of ``splits`` into ``out_dir`` (FLAC + ``manifest.csv``); resumable.

    The manifest lists every piece rendered so far in ``out_dir``, whichever call rendered it,
    so building the held-out split first and the training split later gives one manifest.
    ``first``: render only as far as the first ``first`` pieces in name order (the manifest's order, which
    [`data.datasets.pieces`][lossprofile.data.datasets.pieces] takes its first ``n`` from) are rendered, going on past scores that
    fail; the rest is rendered by a later call that asks for more. Returns the manifest as a DataFrame.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    out = Path(out_dir)
    cache_dir = out / "midi"
    cache_dir.mkdir(parents=True, exist_ok=True)
    todo = [j for j in jobs() if j.split in splits][:limit]
    rows = []
    if first is None:
        args = [(j, out, cache_dir, max_seconds, seed) for j in todo if not _is_built(j, out)]
        # no bar when everything is built (a notebook would show an empty "0/0" bar above its output)
        bar = tqdm(total=len(args), desc=f"corpus ({'+'.join(splits)})", unit="piece",
                   disable=not progress or not args)
        rows += _render(args, workers, bar)
        bar.close()
    else:
        ordered, rendered, k, bar = sorted(todo, key=lambda j: j.piece), 0, 0, None
        while rendered < first and k < len(ordered):
            chunk, k = ordered[k : k + first - rendered], k + first - rendered
            args = [(j, out, cache_dir, max_seconds, seed) for j in chunk if not _is_built(j, out)]
            if args and bar is None:
                bar = tqdm(desc=f"corpus ({'+'.join(splits)}, first {first})", unit="piece", disable=not progress)
            rows += _render(args, workers, bar)
            rendered += sum("error" not in json.loads((out / f"{j.piece}.json").read_text()) for j in chunk)
        if bar is not None:
            bar.close()
    failed = [r for r in rows if "error" in r]
    if failed:
        warnings.warn(f"{len(failed)} of {len(rows)} scores skipped, e.g. {failed[0]['piece']}: {failed[0]['error']}")
    built = [row for m in sorted(out.glob("*.json")) if "error" not in (row := json.loads(m.read_text()))]
    table = pd.DataFrame(built).sort_values("piece").reset_index(drop=True)
    with atomic_path(out / "manifest.csv") as tmp:
        table.to_csv(tmp, index=False)
    return table

