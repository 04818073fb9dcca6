"""One modality object: audio or MIDI is asked in one place (lossprofile.modality), and both modalities offer the same
interface, each with the excerpts, perturbations and frames of what it reads."""

from __future__ import annotations

import ast
import dataclasses
import inspect
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import torch

from lossprofile import audio
from lossprofile.data.datasets import Piece
from lossprofile.errors import UsageError
from lossprofile.modality import AUDIO, MIDI, MODALITIES, Modality, Scored, modality_of, of_results_name
from lossprofile.models.base import TokenStats
from lossprofile.perturb import Perturbation, ScorePerturbation

PACKAGE = Path(__file__).resolve().parents[1] / "lib" / "lossprofile"
SR = 32000


def reads_lookups(source: str) -> list[int]:
    """Lines of ``source`` that look at a model's ``reads``: ``x.reads`` or ``getattr(x, "reads", ...)``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr == "reads":
            found.append(node.lineno)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr")
              and len(node.args) > 1 and isinstance(node.args[1], ast.Constant) and node.args[1].value == "reads"):
            found.append(node.lineno)
    return sorted(found)


def test_only_the_modality_looks_at_what_a_model_reads():
    # families declare `reads` (a class attribute); every decision on it goes through modality_of
    offenders = {str(p.relative_to(PACKAGE)): lines for p in sorted(PACKAGE.rglob("*.py"))
                 if p.name != "modality.py" and (lines := reads_lookups(p.read_text()))}
    assert not offenders, f"compare lm.reads through lossprofile.modality.modality_of instead: {offenders}"
    assert reads_lookups("if getattr(lm, 'reads', 'audio') == 'midi': pass\nm = lm.reads\n") == [1, 2]


def test_the_modality_of_a_model_is_what_it_reads():
    class Reads:
        def __init__(self, reads):
            self.reads = reads

    assert modality_of(Reads("midi")) is MIDI and modality_of(Reads("audio")) is AUDIO
    assert modality_of(None) is AUDIO and modality_of(object()) is AUDIO  # a model that does not say hears audio
    assert [of_results_name(m.results_name) for m in MODALITIES] == [AUDIO, MIDI]
    assert (AUDIO.results_name, MIDI.results_name) == ("audio", "symbolic")


@pytest.mark.parametrize("modality", MODALITIES, ids=lambda m: m.name)
def test_both_modalities_offer_the_same_interface(modality):
    def interface(cls) -> dict:  # public method -> its parameters (name, kind, default)
        return {name: [(p.name, p.kind, p.default) for p in inspect.signature(f).parameters.values()]
                for name, f in inspect.getmembers(cls, inspect.isfunction) if not name.startswith("_")}

    assert interface(type(modality)) == interface(Modality)  # the same methods, the same parameters
    assert len(Modality.__abstractmethods__) > 10 and not type(modality).__abstractmethods__  # each implements all
    assert {f.name for f in dataclasses.fields(modality)} == {f.name for f in dataclasses.fields(Modality)}
    assert set(modality.damage_kinds) <= {"audio", "symbolic", "token"}


def chord_midi(path: Path, first: float, seconds: float = 12.0, step: float = 0.5) -> Path:
    midi = pretty_midi.PrettyMIDI(initial_tempo=120)
    piano = pretty_midi.Instrument(program=0)
    for k, t in enumerate(np.arange(first, first + seconds, step)):
        piano.notes.append(pretty_midi.Note(velocity=80, pitch=60 + [0, 4, 7, 12][k % 4], start=t, end=t + step))
    midi.instruments.append(piano)
    midi.write(str(path))
    return path


def test_an_audio_excerpt_is_its_first_seconds_of_sound_in_samples(tmp_path):
    wav = np.concatenate([np.zeros(SR // 2, np.float32),
                          0.3 * np.sin(2 * np.pi * 440 * np.arange(6 * SR) / SR).astype(np.float32)])
    audio.save_audio(tmp_path / "tone.wav", wav, SR)
    piece = Piece("t", "tone", tmp_path / "tone.wav")
    clip = AUDIO.excerpt(piece, SR, 2.5)
    assert clip.shape == (int(2.5 * SR),) and clip.dtype == np.float32
    assert np.abs(clip[: SR // 100]).max() > 0.05  # the leading silence is skipped
    clean, (noisy,) = AUDIO.variants(piece, [Perturbation("noise", 50, 10)], SR, 50, 2.5, seed=0)
    assert np.array_equal(clean, clip) and noisy.shape == clean.shape
    changed = np.flatnonzero(noisy != clean)
    assert changed.min() >= 50 * SR // 50 and changed.max() < 60 * SR // 50  # frames 50..59, 640 samples each
    assert AUDIO.loudness(-20.0) == -20.0 and AUDIO.reads_audio_files


def test_a_midi_excerpt_starts_at_the_first_note_and_perturbations_act_in_the_score(tmp_path):
    piece = Piece("t", "chords", chord_midi(tmp_path / "chords.mid", first=2.3))
    clip = MIDI.excerpt(piece, SR, 5.0)
    starts = sorted(n.start for inst in clip.instruments for n in inst.notes)
    assert starts[0] == pytest.approx(0.0) and max(starts) < 5.0 and len(starts) == 10  # 2.3 s .. 7.3 s, every 0.5 s
    clean, (silenced, wrong) = MIDI.variants(piece, [Perturbation("silence", 50, 50),
                                                     ScorePerturbation("shift_pitches", fraction=1.0)], SR, 50, 5.0, 0)
    assert [n.start for n in clean.instruments[0].notes] == [n.start for n in clip.instruments[0].notes]
    left = [n for inst in silenced.instruments for n in inst.notes]
    assert not any(1.0 <= n.start < 2.0 for n in left) and len(left) < len(starts)  # frames 50..99: 1 s to 2 s
    assert [n.pitch for n in wrong.instruments[0].notes] != [n.pitch for n in clean.instruments[0].notes]
    with pytest.raises(UsageError, match="add_noise"):  # no analogue in a score: refused before any work
        MIDI.check_perturbations([Perturbation("add_noise", 50, 50)])
    AUDIO.check_perturbations([Perturbation("add_noise", 50, 50)])
    with pytest.raises(audio.AudioError, match="reads MIDI files"):
        MIDI.variants(Piece("t", "x", tmp_path / "x.wav"), [], SR, 50, 5.0, 0)
    assert MIDI.loudness(-20.0) is None and not MIDI.reads_audio_files


def scored(times: list | None, nll: list[np.ndarray], frames: int) -> Scored:
    stats = [TokenStats(*(torch.as_tensor(x, dtype=torch.float32) for x in (v, v + 1, v + 2, v))) for v in nll]
    return Scored(codes=[torch.zeros(v.shape, dtype=torch.long) for v in nll], stats=stats, times=times,
                  frames=frames, frame_rate=50, seconds=frames / 50, method="exact", precision="fp32", prompt="")


def test_frames_are_an_audio_models_codebooks_and_a_scores_tokens_in_time():
    codes = scored(None, [np.array([[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]])], frames=3)
    np.testing.assert_allclose(AUDIO.curve(codes, 0, "nll", "sum"), [2.0, 3.0, 4.0])  # a frame: mean over K codes
    np.testing.assert_allclose(AUDIO.curve(codes, 0, "log_rank"), np.log([[3, 4, 5], [5, 6, 7]]).mean(0), rtol=1e-6)
    assert AUDIO.token_counts(codes, 0) is None and AUDIO.codebook_curves(codes, 0).shape == (2, 3)
    # tokens at 0.00, 0.01 (frame 0), 0.05 (frame 2) and 0.2 s (past the grid: the last frame)
    tokens = scored([np.array([0.0, 0.01, 0.05, 0.2])], [np.array([[1.0, 2.0, 4.0, 8.0]])], frames=4)
    np.testing.assert_allclose(MIDI.curve(tokens, 0, "nll", "sum"), [3.0, 0.0, 4.0, 8.0])
    np.testing.assert_allclose(MIDI.curve(tokens, 0, "entropy", "mean"), [2.5, np.nan, 5.0, 9.0])
    np.testing.assert_array_equal(MIDI.token_counts(tokens, 0), [2, 0, 1, 1])
