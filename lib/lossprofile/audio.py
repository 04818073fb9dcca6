"""Audio in and out: reading files, down-mix, resampling, excerpts, MIDI rendering.

Waveforms here are 1-D float32 numpy arrays ``[S]`` at an explicit ``sample_rate``
unless a name says otherwise. Every check raises [`AudioError`][lossprofile.audio.AudioError] naming the source.
"""

from __future__ import annotations

import math
import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from .errors import BadInputError
from .io import atomic_path

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg")
MIDI_SUFFIXES = (".mid", ".midi")
SILENCE_DBFS = -60.0  # quieter than this (RMS) counts as silence


class AudioError(BadInputError):
    """Audio (or MIDI) that cannot be used, with the file (or source) and the reason in the message; a
    `lossprofile.errors.BadInputError`, so the per-piece loops skip the piece."""


def soundfont_path() -> Path:
    """The General MIDI SoundFont shipped inside ``pretty_midi`` (TimGM6mb)."""
    import pretty_midi

    return Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"


def rms_dbfs(x: np.ndarray) -> float:
    """Root-mean-square level in dB relative to full scale (a full-scale sine is -3 dBFS)."""
    x = np.asarray(x, dtype=np.float64)
    rms = math.sqrt(float(np.mean(x**2))) if x.size else 0.0
    return 20.0 * math.log10(rms) if rms > 0 else -math.inf


def to_mono(wav: np.ndarray) -> np.ndarray:
    """``[S]`` or ``[C, S]`` → ``[S]`` by averaging channels."""
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim == 1:
        return wav
    if wav.ndim == 2:
        return wav.mean(axis=0).astype(np.float32)
    raise AudioError(f"expected a waveform [S] or [C, S], got shape {wav.shape}")


def resample(wav: np.ndarray, orig_sample_rate: int, target_sample_rate: int) -> np.ndarray:
    """Band-limited polyphase resampling of ``[S]`` (or ``[C, S]``) along the last axis."""
    if orig_sample_rate == target_sample_rate:
        return np.asarray(wav, dtype=np.float32)
    from scipy.signal import resample_poly

    ratio = Fraction(target_sample_rate, orig_sample_rate)
    return resample_poly(wav, ratio.numerator, ratio.denominator, axis=-1).astype(np.float32)


def check_waveform(wav: np.ndarray, source: str = "<array>", min_samples: int = 1) -> np.ndarray:
    """Return ``wav`` as float32 ``[S]`` or raise [`AudioError`][lossprofile.audio.AudioError] saying what is wrong with ``source``."""
    wav = np.asarray(wav)
    if wav.ndim != 1:
        raise AudioError(f"{source}: expected mono audio [S], got shape {wav.shape}; use to_mono first")
    if not np.issubdtype(wav.dtype, np.floating):
        raise AudioError(f"{source}: expected float samples, got {wav.dtype}")
    if wav.size == 0:
        raise AudioError(f"{source}: audio is empty")
    if not np.isfinite(wav).all():
        bad = int((~np.isfinite(wav)).sum())
        raise AudioError(f"{source}: audio contains {bad} NaN or inf samples")
    if wav.size < min_samples:
        raise AudioError(f"{source}: audio has {wav.size} samples, fewer than the {min_samples} required")
    if rms_dbfs(wav) < SILENCE_DBFS:
        raise AudioError(f"{source}: audio is silent (RMS {rms_dbfs(wav):.1f} dBFS < {SILENCE_DBFS} dBFS)")
    return wav.astype(np.float32, copy=False)


def check_wav_container(path: str | os.PathLike) -> None:
    """Raise [`AudioError`][lossprofile.audio.AudioError] when a RIFF/WAVE file's header promises more audio than the file holds.

    libsndfile silently reads what is there, so a download cut off after the header would
    otherwise look like a short (or empty) recording. Other formats are left to libsndfile.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return
        offset = 12
        while offset + 8 <= size:
            f.seek(offset)
            chunk, length = f.read(4), int.from_bytes(f.read(4), "little")
            if chunk == b"data":
                available = size - offset - 8
                if length > available and length != 0xFFFFFFFF:  # 0xFFFFFFFF: streamed, size unknown
                    raise AudioError(f"{path}: damaged WAV file: its header declares {length} bytes of audio, "
                                     f"the file holds {available} (truncated?)")
                return
            offset += 8 + length + (length & 1)
    raise AudioError(f"{path}: damaged WAV file: no audio data chunk")


def load_audio(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
    """Read an audio or MIDI file as mono float32 ``[S]`` at ``sample_rate``.

    MIDI files are rendered with [`render_midi`][lossprofile.audio.render_midi]; audio files are down-mixed and
    resampled. Unreadable, empty, silent or non-finite audio raises [`AudioError`][lossprofile.audio.AudioError].
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: file not found")
    if path.suffix.lower() in MIDI_SUFFIXES:
        wav = render_midi(path, sample_rate=sample_rate)
    else:
        import soundfile as sf

        if path.stat().st_size == 0:
            raise AudioError(f"{path}: empty file (0 bytes)")
        check_wav_container(path)
        try:
            data, sr = sf.read(str(path), dtype="float32", always_2d=True)  # [S, C]
        except Exception as err:  # soundfile raises several types for bad files
            reason = str(err).replace(f"Error opening {str(path)!r}: ", "")  # libsndfile names the file again
            if "does not exist or is not a regular file" in reason:  # libsndfile's words for a format it cannot read
                reason = f"not an audio file libsndfile can decode ({path.suffix or 'no extension'})"
            raise AudioError(f"{path}: unreadable audio ({reason})") from err
        if data.shape[0] == 0:
            raise AudioError(f"{path}: the file holds no audio frames (damaged, or only a header)")
        wav = resample(to_mono(data.T), sr, sample_rate)
    return check_waveform(wav, source=str(path))


def save_audio(path: str | os.PathLike, wav: np.ndarray, sample_rate: int) -> None:
    """Write mono float ``[S]`` as 16-bit PCM (wav/flac by suffix), atomically."""
    import soundfile as sf

    path = Path(path)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), np.clip(wav, -1, 1), sample_rate, subtype="PCM_16", format=path.suffix[1:].upper())


def first_sound_sample(wav: np.ndarray, sample_rate: int, threshold_dbfs: float = -50.0) -> int:
    """Index of the first 10 ms block louder than ``threshold_dbfs`` (0 if none)."""
    start = first_loud_block(wav, sample_rate, threshold_dbfs)
    return 0 if start is None else start


def first_loud_block(wav: np.ndarray, sample_rate: int, threshold_dbfs: float = -50.0) -> int | None:
    """Index of the first 10 ms block louder than ``threshold_dbfs``, or None."""
    block = max(1, sample_rate // 100)
    n = wav.size // block
    if n == 0:
        return None
    energy = (wav[: n * block].astype(np.float64).reshape(n, block) ** 2).mean(axis=1)
    loud = np.flatnonzero(energy > 10 ** (threshold_dbfs / 10))
    return int(loud[0] * block) if loud.size else None


def excerpt(
    wav: np.ndarray,
    sample_rate: int,
    seconds: float = 15.0,
    *, skip_leading_silence: bool = True,
    source: str = "<array>",
) -> np.ndarray:
    """A fixed-length excerpt ``[round(seconds * sample_rate)]`` starting at the first sound."""
    wav = check_waveform(wav, source)
    length = int(round(seconds * sample_rate))
    start = first_sound_sample(wav, sample_rate) if skip_leading_silence else 0
    if wav.size - start < length:
        raise AudioError(
            f"{source}: too short for a {seconds:g} s excerpt: {(wav.size - start) / sample_rate:.2f} s of sound"
            + (" after leading silence" if start else "")
        )
    return check_waveform(wav[start : start + length], source)


def load_excerpt_audio(path: str | os.PathLike, sample_rate: int, seconds: float = 15.0) -> np.ndarray:
    """``excerpt(load_audio(path, sample_rate), sample_rate, seconds)``, the same samples; a MIDI file is rendered only
    as far as its excerpt needs.

    Rendering is causal (no normalisation over the file), so a render stopped at the first onset + ``seconds``
    + 2 s holds the full render's first samples. Where the first sound lies beyond that, or anything is wrong
    with the file, the whole file is rendered and its errors raised, as by `load_audio`.
    """
    path = Path(path)
    if path.suffix.lower() in MIDI_SUFFIXES and path.exists():
        try:
            midi = read_midi(path)
            partial = render_midi(midi, sample_rate, max_seconds=midi_first_onset(midi) + seconds + 2.0)
        except AudioError:
            partial = None  # the full path below raises it, naming the file
        start = first_loud_block(partial, sample_rate) if partial is not None else None
        length = int(round(seconds * sample_rate))
        if start is not None and start + length <= partial.size:
            return check_waveform(partial[start : start + length], str(path))
    return excerpt(load_audio(path, sample_rate), sample_rate, seconds, source=str(path))


def normalize_rms(wav: np.ndarray, target_dbfs: float = -20.0, peak: float = 0.99) -> np.ndarray:
    """Scale to ``target_dbfs`` RMS, then down (never up) so that no sample exceeds ``peak``."""
    level = rms_dbfs(wav)
    if not math.isfinite(level):
        return wav.astype(np.float32)
    out = wav * 10 ** ((target_dbfs - level) / 20)
    top = float(np.abs(out).max())
    if top > peak:
        out = out * (peak / top)
    return out.astype(np.float32)


def _midi_events(midi, program: int | None) -> list[tuple[float, int, int, int, int, int]]:
    """Sorted (time_s, order, channel, kind, key, velocity) with sustain-pedal note extension."""
    events = []
    melodic = [ch for ch in range(16) if ch != 9]
    for index, inst in enumerate(midi.instruments):
        channel = 9 if inst.is_drum else melodic[index % len(melodic)]
        pedal = sorted((cc.time, cc.value >= 64) for cc in inst.control_changes if cc.number == 64)
        intervals, down_at = [], None
        for time, down in pedal:
            if down and down_at is None:
                down_at = time
            elif not down and down_at is not None:
                intervals.append((down_at, time))
                down_at = None
        for note in inst.notes:
            end = note.end
            for lo, hi in intervals:
                if lo <= end < hi:
                    end = hi
                    break
            events.append((note.start, 1, channel, 1, note.pitch, note.velocity))
            events.append((end, 0, channel, 0, note.pitch, 0))
        prog = inst.program if program is None else program
        events.append((-1.0, -1, channel, 2, prog, int(inst.is_drum)))
    events.sort()
    return events


def read_midi(midi_path: str | os.PathLike):
    """A MIDI file as ``pretty_midi.PrettyMIDI``; [`AudioError`][lossprofile.audio.AudioError] names the file and what is wrong."""
    import pretty_midi

    path = Path(midi_path)
    if not path.exists():
        raise AudioError(f"{path}: file not found")
    try:
        return pretty_midi.PrettyMIDI(str(path))
    except Exception as err:  # mido/pretty_midi raise many types on corrupt files, some without a message
        reason = str(err).strip() or "the file ends early or is not a Standard MIDI File"
        raise AudioError(f"{path}: unreadable MIDI ({type(err).__name__}: {reason})") from err


def midi_excerpt(midi: "pretty_midi.PrettyMIDI", start_seconds: float, seconds: float) -> "pretty_midi.PrettyMIDI":
    """The notes of ``midi`` that start in ``[start_seconds, start_seconds + seconds)``, moved to start at 0 and cut
    at ``seconds``; instruments (program, drums) and the tempo at ``start_seconds`` kept. A new object."""
    import pretty_midi

    times, tempi = midi.get_tempo_changes()
    tempo = float(tempi[np.searchsorted(times, start_seconds, side="right") - 1]) if len(tempi) else 120.0
    out = pretty_midi.PrettyMIDI(resolution=midi.resolution, initial_tempo=tempo)
    stop = start_seconds + seconds
    for inst in midi.instruments:
        part = pretty_midi.Instrument(program=inst.program, is_drum=inst.is_drum, name=inst.name)
        part.notes = [pretty_midi.Note(velocity=n.velocity, pitch=n.pitch, start=n.start - start_seconds,
                                       end=min(n.end, stop) - start_seconds)
                      for n in inst.notes if start_seconds <= n.start < stop]
        if part.notes:
            out.instruments.append(part)
    return out


def midi_first_onset(midi: "pretty_midi.PrettyMIDI") -> float:
    onsets = midi.get_onsets()
    return float(onsets[0]) if len(onsets) else 0.0


def render_midi(
    midi: "str | os.PathLike | pretty_midi.PrettyMIDI",
    sample_rate: int = 32000,
    *, program: int | None = None,
    max_seconds: float | None = None,
) -> np.ndarray:
    """Synthesize MIDI (a file or a ``pretty_midi.PrettyMIDI``) to mono float32 ``[S]``.

    Uses the General MIDI SoundFont; each instrument plays its own program unless ``program``
    forces one on every non-drum track (0 = piano). Deterministic: the same notes give the
    same samples. Rendering stops after ``max_seconds`` if given (plus a short release tail
    otherwise).
    """
    import tinysoundfont

    if isinstance(midi, (str, os.PathLike)):
        source, midi = str(midi), read_midi(midi)
    else:
        source = "<PrettyMIDI>"
    events = _midi_events(midi, program)
    if not any(e[3] == 1 for e in events):
        raise AudioError(f"{source}: MIDI file has no notes")
    end_time = max(e[0] for e in events) + 1.0
    if max_seconds is not None:
        end_time = min(end_time, max_seconds)
    synth = tinysoundfont.Synth(samplerate=sample_rate)
    sfid = synth.sfload(str(soundfont_path()))
    total = int(round(end_time * sample_rate))
    out = np.zeros((total, 2), dtype=np.float32)
    cursor = 0
    for time, _, channel, kind, key, value in events:
        if kind == 2:
            synth.program_select(channel, sfid, 128 if value else 0, key if not value else 0, is_drums=bool(value))
            continue
        at = min(total, int(round(time * sample_rate)))
        if at > cursor:
            out[cursor:at] = np.frombuffer(synth.generate(at - cursor), dtype=np.float32).reshape(-1, 2)
            cursor = at
        if cursor >= total:
            break
        if kind == 1:
            synth.noteon(channel, key, value)
        else:
            synth.noteoff(channel, key)
    if cursor < total:
        out[cursor:] = np.frombuffer(synth.generate(total - cursor), dtype=np.float32).reshape(-1, 2)
    return out.mean(axis=1).astype(np.float32)
