"""The Generated dataset: samples of the model itself, tied to its weights."""

from __future__ import annotations

import pandas as pd
import pytest
import soundfile as sf

from lossprofile.data.datasets import build_generated_set, generated_is_current


@pytest.mark.slow
def test_generated_set_holds_distinct_samples_of_these_weights_and_drops_stale_ones(small_lm, tmp_path):
    stale = tmp_path / "topk0010-00.flac"
    sf.write(stale, [0.0] * 32000, 32000)  # left by an unknown model, no marker
    manifest = build_generated_set(small_lm, tmp_path, top_ks=(10, 500), per_top_k=2, seconds=1.0)
    assert list(manifest["top_k"].astype(int)) == [10, 10, 500, 500]
    assert generated_is_current(small_lm, tmp_path)
    wavs = [sf.read(tmp_path / f)[0] for f in manifest["file"]]
    assert all(w.size == 32000 for w in wavs)
    assert wavs[0].std() > 0  # the stale silent file was replaced
    assert len({w.tobytes() for w in wavs}) == 4
    mtimes = {f: (tmp_path / f).stat().st_mtime_ns for f in manifest["file"]}
    build_generated_set(small_lm, tmp_path, top_ks=(10, 500), per_top_k=2, seconds=1.0)
    assert mtimes == {f: (tmp_path / f).stat().st_mtime_ns for f in manifest["file"]}  # reused, not resampled
    assert set(pd.read_csv(tmp_path / "manifest.csv", dtype=str)["weights"]) == {small_lm.fingerprint}


@pytest.mark.slow
def test_a_symbolic_models_generated_set_is_midi_files_of_its_own_samples(tmp_path):
    import pretty_midi

    from tests.models.test_symbolic import random_lm
    from lossprofile.embedded import training_corpus
    from lossprofile.embedded.recipe import SymbolicRecipe

    lm = random_lm(training_corpus.make_tokenizer(SymbolicRecipe()), positions=32)
    lm.fingerprint = "random-symbolic"
    manifest = build_generated_set(lm, tmp_path, top_ks=(5, 50), per_top_k=2, seconds=0.5)
    assert list(manifest["file"]) == ["topk0005-00.mid", "topk0005-01.mid", "topk0050-00.mid", "topk0050-01.mid"]
    assert generated_is_current(lm, tmp_path)
    files = [(tmp_path / f).read_bytes() for f in manifest["file"]]
    assert len(set(files)) == 4
    for data in files:  # standard MIDI files pretty_midi reads
        pretty_midi.PrettyMIDI(__import__("io").BytesIO(data))
    mtimes = {f: (tmp_path / f).stat().st_mtime_ns for f in manifest["file"]}
    build_generated_set(lm, tmp_path, top_ks=(5, 50), per_top_k=2, seconds=0.5)
    assert mtimes == {f: (tmp_path / f).stat().st_mtime_ns for f in manifest["file"]}


def test_a_model_that_reads_midi_gets_the_same_pieces_as_midi():
    from types import SimpleNamespace

    import pretty_midi

    from lossprofile.data import datasets

    reader = SimpleNamespace(reads="midi")
    audio_ood = datasets.pieces("ood", 3)
    midi_ood = datasets.pieces("ood", 3, reader)
    assert [p.name for p in midi_ood] == [p.name for p in audio_ood]
    assert all(p.path.suffix == ".mid" and p.path.is_relative_to(datasets.ASAP_DIR) for p in midi_ood)
    audio_training = {p.name: p for p in datasets.pieces("training", 10)}
    midi_training = datasets.pieces("training", 3, reader)
    assert len(midi_training) == 3
    names = list(audio_training)
    positions = [names.index(p.name) for p in midi_training]  # the audio set's pieces, in its order
    assert positions == sorted(positions)
    tags = pd.read_csv(datasets.DATA_DIR / "rendered" / "training" / "manifest.csv").set_index("piece")["tags"]
    for piece in midi_training:
        midi = pretty_midi.PrettyMIDI(str(piece.path))
        played = midi.get_end_time() - min(n.start for inst in midi.instruments for n in inst.notes)
        assert played > 15.0  # a whole excerpt
        # the arrangement the audio plays, not the bare score: drums exactly where the render has them
        assert any(inst.is_drum for inst in midi.instruments) == ("drums" in __import__("json").loads(tags[piece.name]))


def test_pieces_are_named_by_their_path_in_the_folder_with_the_extension_only_where_stems_collide(tmp_path):
    from lossprofile.data.datasets import list_pieces

    for rel in ("dup.wav", "dup.flac", "solo.mp3", "a/dup.wav", "a/b/tune.mid", "notes.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    pieces = list_pieces(tmp_path, dataset="mine")
    assert [p.name for p in pieces] == ["a/b/tune", "a/dup", "dup.flac", "dup.wav", "solo"]
    assert [p.path for p in pieces] == [tmp_path / r for r in ("a/b/tune.mid", "a/dup.wav", "dup.flac", "dup.wav",
                                                                "solo.mp3")]
    assert len({p.name for p in pieces}) == len(pieces) and {p.dataset for p in pieces} == {"mine"}
