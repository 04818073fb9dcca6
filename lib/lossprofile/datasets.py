"""The paper's three kinds of data, built from music that ships with the project.

- ``training``: scores from the corpus inside ``music21`` rendered with a few General
  MIDI instruments (and drums on some) — the tiny model's training data, with a
  held-out split for evaluation.
- ``ood``: expressive piano performances (ASAP, ``data/asap``) rendered with piano.
- ``generated``: samples of a model at several top-k values, decoded to audio.

Each built dataset is a folder of FLAC files plus ``manifest.csv``; any folder of
wav/flac/mp3/mid files is a dataset too (:func:`list_pieces`).
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import audio

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = Path(os.environ.get("LOSSPROFILE_DATA", REPO_ROOT / "data"))
ASAP_DIR = DATA_DIR / "asap"
SAMPLE_RATE = 32000

# (music21 composer/collection, file suffix, how many, description word)
TRAINING_SOURCES = (
    ("bach", ".mxl", 60, "chorale"),
    ("palestrina", ".krn", 20, "motet"),
    ("monteverdi", ".mxl", 15, "madrigal"),
    ("haydn", ".mxl", 8, "quartet"),
    ("mozart", ".mxl", 6, "quartet"),
    ("ryansMammoth", ".abc", 20, "fiddle tune"),
    ("trecento", ".xml", 10, "ballata"),
)
# General MIDI programs (0-based) and their names in text descriptions.
INSTRUMENTS = ((0, "piano"), (19, "organ"), (48, "strings"), (52, "choir"), (73, "flute"),
               (6, "harpsichord"), (24, "guitar"), (12, "marimba"))
HELD_OUT_FRACTION = 0.15


@dataclass(frozen=True)
class Piece:
    """One piece of a dataset: where its audio is and what it is called."""

    dataset: str
    name: str
    path: Path
    description: str | None = None


def stable_fraction(key: str) -> float:
    """A number in [0, 1) fixed by ``key`` (for seed-free, reproducible splits)."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 2**32


def list_pieces(folder: str | os.PathLike, dataset: str | None = None, split: str | None = None) -> list[Piece]:
    """The pieces of a dataset folder: its ``manifest.csv`` if present, else every audio/MIDI file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: dataset folder not found (build it with `make data`)")
    dataset = dataset or folder.name
    manifest = folder / "manifest.csv"
    if manifest.exists():
        table = pd.read_csv(manifest)
        if split is not None and "split" in table:
            table = table[table["split"] == split]
        return [Piece(dataset, row["piece"], folder / row["file"], row.get("description"))
                for _, row in table.iterrows()]
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in audio.AUDIO_SUFFIXES + audio.MIDI_SUFFIXES)
    return [Piece(dataset, str(p.relative_to(folder).with_suffix("")), p) for p in files]


def _write_manifest(folder: Path, rows: list[dict]) -> pd.DataFrame:
    table = pd.DataFrame(rows).sort_values("piece").reset_index(drop=True)
    tmp = folder / "manifest.csv.tmp"
    table.to_csv(tmp, index=False)
    os.replace(tmp, folder / "manifest.csv")
    return table


def _add_drums(midi, seed: int) -> None:
    """A plain kick/snare/hi-hat pattern on the score's beats (General MIDI drum keys)."""
    import pretty_midi

    rng = np.random.default_rng(seed)
    drums = pretty_midi.Instrument(program=0, is_drum=True, name="drums")
    beats = midi.get_beats()
    for i, beat in enumerate(beats[:-1]):
        step = beats[i + 1] - beat
        key = 36 if i % 2 == 0 else 38
        drums.notes.append(pretty_midi.Note(int(rng.integers(80, 110)), key, beat, beat + 0.1))
        for half in (0.0, 0.5):
            t = beat + half * step
            drums.notes.append(pretty_midi.Note(int(rng.integers(50, 80)), 42, t, t + 0.05))
    midi.instruments.append(drums)


def _render_score(score_path: str, midi_path: Path, program: int, drums: bool, max_seconds: float,
                  seed: int) -> np.ndarray:
    import music21
    import pretty_midi

    if not midi_path.exists():
        score = music21.corpus.parse(score_path)
        if isinstance(score, music21.stream.Opus):
            score = score.scores[0]
        score.write("midi", fp=str(midi_path))
    if drums:
        midi = pretty_midi.PrettyMIDI(str(midi_path))
        _add_drums(midi, seed)
        midi_path = midi_path.with_name(midi_path.stem + "-drums.mid")
        midi.write(str(midi_path))
    wav = audio.render_midi(midi_path, SAMPLE_RATE, program=program, max_seconds=max_seconds + 5)
    start = audio.first_sound_sample(wav, SAMPLE_RATE)
    return wav[start : start + int(max_seconds * SAMPLE_RATE)]


def build_training_set(out_dir: str | os.PathLike | None = None, max_seconds: float = 45.0,
                       scale: float = 1.0, seed: int = 0) -> pd.DataFrame:
    """Render music21 corpus scores to ``out_dir`` (default ``data/rendered/training``).

    ``scale`` multiplies how many pieces each source contributes (small for tests).
    Rebuilding skips pieces whose audio already exists.
    """
    import music21

    out = Path(out_dir or DATA_DIR / "rendered" / "training")
    (out / "midi").mkdir(parents=True, exist_ok=True)
    rows = []
    jobs = []
    for composer, suffix, count, word in TRAINING_SOURCES:
        paths = sorted(str(p) for p in music21.corpus.getComposer(composer) if str(p).endswith(suffix))
        jobs += [(composer, word, p) for p in paths[: max(1, int(round(count * scale)))]]
    for composer, word, score_path in tqdm(jobs, desc="training set", unit="piece"):
        piece = f"{composer}-{Path(score_path).stem}".replace(" ", "_")
        program, instrument = INSTRUMENTS[int(stable_fraction(piece + "inst") * len(INSTRUMENTS))]
        drums = stable_fraction(piece + "drums") < 0.3
        flac = out / f"{piece}.flac"
        if not flac.exists():
            try:
                wav = _render_score(score_path, out / "midi" / f"{piece}.mid", program, drums, max_seconds,
                                    seed + int(stable_fraction(piece) * 1e6))
            except Exception as err:  # music21 and MIDI parsing raise many kinds on odd scores
                warnings.warn(f"{score_path}: skipped ({type(err).__name__}: {err})")
                continue
            if wav.size < 16 * SAMPLE_RATE:  # too short for a 15 s excerpt
                continue
            audio.save_audio(flac, audio.normalize_rms(wav), SAMPLE_RATE)
        description = f"{word} {instrument}" + (" with drums" if drums else "")
        split = "heldout" if stable_fraction(piece + "split") < HELD_OUT_FRACTION else "train"
        rows.append(dict(piece=piece, file=flac.name, description=description, split=split,
                         source=f"music21 corpus: {Path(score_path).name}", program=program, drums=drums))
    return _write_manifest(out, rows)


def asap_subset(manifest_csv: str | os.PathLike, every: int = 4) -> pd.DataFrame:
    """A fixed, composer-spread subset of the ASAP manifest: every ``every``-th row in path order."""
    table = pd.read_csv(manifest_csv).sort_values("midi_performance").reset_index(drop=True)
    return table.iloc[::every].reset_index(drop=True)


def build_ood_set(src_dir: str | os.PathLike | None = None, out_dir: str | os.PathLike | None = None,
                  max_seconds: float = 30.0, limit: int | None = None) -> pd.DataFrame:
    """Render ASAP piano performances (any folder of MIDI files) with piano to ``out_dir``."""
    src = Path(src_dir or ASAP_DIR)
    out = Path(out_dir or DATA_DIR / "rendered" / "ood")
    out.mkdir(parents=True, exist_ok=True)
    midis = sorted(p for p in src.rglob("*") if p.suffix.lower() in audio.MIDI_SUFFIXES)[:limit]
    if not midis:
        raise FileNotFoundError(f"{src}: no MIDI files found")
    rows = []
    for midi_path in tqdm(midis, desc="OOD set", unit="piece"):
        piece = str(midi_path.relative_to(src).with_suffix("")).replace(os.sep, "-")
        flac = out / f"{piece}.flac"
        if not flac.exists():
            wav = audio.render_midi(midi_path, SAMPLE_RATE, program=0, max_seconds=max_seconds + 10)
            start = audio.first_sound_sample(wav, SAMPLE_RATE)
            audio.save_audio(flac, audio.normalize_rms(wav[start : start + int(max_seconds * SAMPLE_RATE)]),
                             SAMPLE_RATE)
        rows.append(dict(piece=piece, file=flac.name, description="classical piano", split="eval",
                         source=f"ASAP: {midi_path.relative_to(src)}"))
    return _write_manifest(out, rows)


def generated_dir(model_name: str) -> Path:
    """Where a model's generated set lives: ``data/generated/<model name, slashes as _>``."""
    return DATA_DIR / "generated" / re.sub(r"[^A-Za-z0-9._-]+", "_", model_name)


def generated_is_current(model, folder: Path) -> bool:
    """True when ``folder`` holds a complete generated set of exactly these weights."""
    manifest, marker = folder / "manifest.csv", folder / "weights.txt"
    if not (manifest.exists() and marker.exists() and marker.read_text().strip() == model.fingerprint):
        return False
    table = pd.read_csv(manifest, dtype=str)
    return set(table.get("weights", [None])) == {model.fingerprint} and all((folder / f).exists() for f in table["file"])


def build_generated_set(model, out_dir: str | os.PathLike | None = None, top_ks=(10, 50, 250, 500),
                        per_top_k: int = 5, seconds: float = 15.0, seed: int = 0,
                        batch_size: int = 8) -> pd.DataFrame:
    """Sample ``per_top_k`` pieces from ``model`` at each top-k and decode them to audio."""
    out = Path(out_dir or generated_dir(model.name))
    out.mkdir(parents=True, exist_ok=True)
    # Samples already here are kept (an interrupted build resumes) only if the marker says they
    # come from these very weights; otherwise the model was retrained or their origin is unknown.
    marker = out / "weights.txt"
    if not marker.exists() or marker.read_text().strip() != model.fingerprint:
        for old in out.glob("*.flac"):
            old.unlink()
        marker.write_text(model.fingerprint + "\n")
    length = int(round(seconds * model.frame_rate))
    rows = []
    for top_k in tqdm(top_ks, desc="generated set", unit="top-k"):
        names = [f"topk{top_k:04d}-{i:02d}" for i in range(per_top_k)]
        missing = [i for i, n in enumerate(names) if not (out / f"{n}.flac").exists()]
        for lo in range(0, len(missing), batch_size):
            chunk = missing[lo : lo + batch_size]
            # one seed per (top_k, chunk start) so re-runs and partial builds agree
            codes = model.generate(len(chunk), length, top_k=top_k, seed=seed * 100003 + top_k * 1009 + chunk[0])
            wavs = model.decode(codes)[:, 0].numpy()
            for i, wav in zip(chunk, wavs):
                audio.save_audio(out / f"{names[i]}.flac", wav, model.sample_rate)
        rows += [dict(piece=n, file=f"{n}.flac", description=f"generated top_k={top_k}", split="eval",
                      top_k=top_k, source=f"{model.name} samples", weights=model.fingerprint) for n in names]
    return _write_manifest(out, rows)
