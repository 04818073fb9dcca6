"""Rendering, excerpts and dataset folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pretty_midi
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lossprofile import audio
from lossprofile.data import datasets
from lossprofile.errors import BadInputError

ROOT = Path(__file__).resolve().parents[1]
ASAP_MIDI = sorted((ROOT / "data" / "asap").rglob("*.mid"))


def write_midi(path: Path, notes: list[tuple[int, float, float]], program: int = 0, pedal=None) -> Path:
    midi = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(program=program)
    inst.notes = [pretty_midi.Note(100, pitch, start, end) for pitch, start, end in notes]
    for time, value in pedal or []:
        inst.control_changes.append(pretty_midi.ControlChange(64, value, time))
    midi.instruments.append(inst)
    midi.write(str(path))
    return path


def test_render_midi_is_deterministic_mono_float32_and_starts_with_the_first_note(tmp_path):
    path = write_midi(tmp_path / "a.mid", [(60, 1.0, 1.5), (64, 1.5, 2.0), (67, 2.0, 3.0)])
    a = audio.render_midi(path, 32000)
    b = audio.render_midi(path, 32000)
    assert a.dtype == np.float32 and a.ndim == 1 and np.array_equal(a, b)
    onset = audio.first_sound_sample(a, 32000) / 32000
    assert 0.98 <= onset <= 1.02
    assert audio.rms_dbfs(a[: int(0.9 * 32000)]) == -np.inf or audio.rms_dbfs(a[: int(0.9 * 32000)]) < -80


def test_render_pitch_matches_the_note(tmp_path):
    path = write_midi(tmp_path / "a4.mid", [(69, 0.0, 2.0)], program=73)  # flute A4 = 440 Hz
    wav = audio.render_midi(path, 32000)[8000:40000]
    spectrum = np.abs(np.fft.rfft(wav * np.hanning(wav.size)))
    peak_hz = np.fft.rfftfreq(wav.size, 1 / 32000)[spectrum.argmax()]
    assert abs(peak_hz - 440) < 5


def test_sustain_pedal_extends_notes(tmp_path):
    dry = audio.render_midi(write_midi(tmp_path / "dry.mid", [(60, 0.0, 0.3)]), 32000, max_seconds=2.0)
    wet = audio.render_midi(write_midi(tmp_path / "wet.mid", [(60, 0.0, 0.3)], pedal=[(0.0, 127), (1.5, 0)]),
                            32000, max_seconds=2.0)
    window = slice(int(1.0 * 32000), int(1.4 * 32000))
    assert audio.rms_dbfs(wet[window]) > audio.rms_dbfs(dry[window]) + 10


def test_asap_subset_renders(tmp_path):
    assert len(ASAP_MIDI) == 40
    wav = audio.render_midi(ASAP_MIDI[0], 32000, program=0, max_seconds=5)
    assert wav.size == 5 * 32000 and audio.rms_dbfs(wav) > -50


def test_unreadable_and_empty_midi_are_named(tmp_path):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"MThd garbage")
    with pytest.raises(audio.AudioError, match="bad.mid: unreadable MIDI"):
        audio.render_midi(bad)
    empty = tmp_path / "empty.mid"
    pretty_midi.PrettyMIDI().write(str(empty))
    with pytest.raises(audio.AudioError, match="empty.mid: MIDI file has no notes"):
        audio.render_midi(empty)


@settings(max_examples=25, deadline=None)
@given(st.floats(0, 3), st.floats(0.5, 4), st.floats(0.1, 2))
def test_excerpt_skips_leading_silence_and_has_the_exact_length(lead_s, seconds, extra_s):
    sr = 8000
    lead, body = int(lead_s * sr), int((seconds + extra_s) * sr)
    wav = np.concatenate([np.zeros(lead), 0.3 * np.sin(np.arange(body) * 0.05)]).astype(np.float32)
    ex = audio.excerpt(wav, sr, seconds)
    assert ex.size == int(round(seconds * sr))
    start = audio.first_sound_sample(wav, sr)
    assert abs(start - lead) <= sr // 100  # within one 10 ms block
    with pytest.raises(audio.AudioError, match="too short"):
        audio.excerpt(wav, sr, seconds + extra_s + 1.0, source="x.wav")


def test_resample_preserves_a_sine(tmp_path):
    t = np.arange(44100) / 44100
    out = audio.resample(np.sin(2 * np.pi * 1000 * t).astype(np.float32), 44100, 32000)
    assert out.size == 32000
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(np.fft.rfftfreq(out.size, 1 / 32000)[spectrum.argmax()] - 1000) < 2


def test_any_folder_of_audio_is_a_dataset(tmp_path):
    for name in ("b.wav", "a.flac", "sub/c.wav"):
        audio.save_audio(tmp_path / name, np.full(3200, 0.1, np.float32), 32000)
    (tmp_path / "notes.txt").write_text("not audio")
    pieces = datasets.list_pieces(tmp_path, dataset="mine")
    assert [p.name for p in pieces] == ["a", "b", "sub/c"] and all(p.dataset == "mine" for p in pieces)
    # a dataset's own manifest (ASAP ships one: composer, title, path) is not ours: the files are listed
    (tmp_path / "manifest.csv").write_text("composer,title,midi_performance\nBach,Fugue,sub/c.wav\n")
    assert [p.name for p in datasets.list_pieces(tmp_path)] == ["a", "b", "sub/c"]
    # a user's folder: the path is to check; `make data` builds only the package's own datasets
    with pytest.raises(FileNotFoundError, match=r"nope: folder not found \(give --data an existing folder"):
        datasets.list_pieces(tmp_path / "nope")
    with pytest.raises(BadInputError, match=r"rendered/nope: folder not found \(build the datasets with `make data`\)"):
        datasets.list_pieces(datasets.DATA_DIR / "rendered" / "nope")


def test_ood_build_renders_a_manifest_with_sources(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    write_midi(src / "p1.mid", [(60 + i % 12, 0.5 + 0.25 * i, 0.75 + 0.25 * i) for i in range(30)])
    table = datasets.build_ood_set(src, tmp_path / "out", max_seconds=4)
    assert list(table["piece"]) == ["p1"] and (tmp_path / "out" / "p1.flac").exists()
    wav = audio.load_audio(tmp_path / "out" / "p1.flac", 32000)
    assert abs(audio.rms_dbfs(wav) + 20) < 1.5  # loudness-normalised to -20 dBFS
    assert pd.read_csv(tmp_path / "out" / "manifest.csv")["source"][0] == "ASAP: p1.mid"


def test_held_out_split_is_stable_and_about_the_requested_fraction():
    from lossprofile.data import corpus

    names = [f"piece{i}" for i in range(2000)]
    held = [corpus.Job(n, "texture", "ambience").split == "heldout" for n in names]
    assert abs(np.mean(held) - corpus.HELD_OUT_FRACTION) < 0.03
    assert held == [corpus.stable_fraction(n + "split") < corpus.HELD_OUT_FRACTION for n in names]


def test_corrupt_midi_and_truncated_wav_are_reported_with_a_reason(tmp_path):
    import soundfile as sf

    corrupt = tmp_path / "corrupt.mid"
    corrupt.write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\x00\x00\x10\x00\x00\x90")
    with pytest.raises(audio.AudioError, match=r"corrupt.mid: unreadable MIDI \(\w+: .+\)"):
        audio.render_midi(corrupt)
    full = tmp_path / "full.wav"
    sf.write(full, (0.3 * np.sin(np.arange(32000 * 20) * 0.05)).astype(np.float32), 32000, subtype="PCM_16")
    data = full.read_bytes()
    for name, cut in (("header_only.wav", 44), ("cut.wav", 44 + 64000)):
        (tmp_path / name).write_bytes(data[:cut])
        with pytest.raises(audio.AudioError, match=rf"{name}: damaged WAV file: its header declares 1280000 bytes "
                                                   rf"of audio, the file holds {cut - 44} \(truncated\?\)"):
            audio.load_audio(tmp_path / name, 32000)
    assert audio.load_audio(full, 32000).size == 32000 * 20


def reference_excerpt(path: Path, seconds: float) -> np.ndarray:
    return audio.excerpt(audio.load_audio(path, 32000), 32000, seconds, source=str(path))


def test_a_midi_excerpt_rendered_only_as_far_as_it_needs_equals_the_full_render_cut(tmp_path):
    for path in ASAP_MIDI[:2]:  # real performances, minutes long: a 15 s excerpt from a partial render
        assert np.array_equal(audio.load_excerpt_audio(path, 32000, 15.0), reference_excerpt(path, 15.0))
    # the first onset is too soft to count as sound and the loud notes start 4 s later: beyond the partial
    # render (first onset + 3 s + 2 s), so the whole file is rendered and cut as before
    midi = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(program=0)
    inst.notes = [pretty_midi.Note(1, 60, 0.0, 0.1)] + [pretty_midi.Note(100, 60 + i, 6.0 + i, 6.9 + i) for i in range(6)]
    midi.instruments.append(inst)
    midi.write(str(tmp_path / "late.mid"))
    late = audio.load_excerpt_audio(tmp_path / "late.mid", 32000, 3.0)
    assert np.array_equal(late, reference_excerpt(tmp_path / "late.mid", 3.0))
    assert audio.first_loud_block(audio.render_midi(midi, 32000, max_seconds=5.0), 32000) is None
    # errors are those of the full path, naming the file
    short = write_midi(tmp_path / "short.mid", [(60, 0.5, 1.5)])
    with pytest.raises(audio.AudioError, match=r"short.mid: too short for a 3 s excerpt"):
        audio.load_excerpt_audio(short, 32000, 3.0)
    empty = tmp_path / "empty.mid"
    pretty_midi.PrettyMIDI().write(str(empty))
    with pytest.raises(audio.AudioError, match="empty.mid: MIDI file has no notes"):
        audio.load_excerpt_audio(empty, 32000, 3.0)
