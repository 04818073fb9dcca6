"""The experiment runner: tidy output, engine exactness, resumability, and bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from html.parser import HTMLParser
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lossprofile import audio, scoring
from lossprofile.data import datasets
from lossprofile.data.datasets import Piece
from lossprofile.perturb import Perturbation, noise_sweep
from lossprofile.data import load_excerpt
from lossprofile.runner import run_experiment

SR = 32000


def write_piece(folder: Path, name: str, wav: np.ndarray, sr: int = SR) -> Piece:
    path = folder / f"{name}.wav"
    audio.save_audio(path, wav, sr)
    return Piece("test", name, path)


def tone(seconds: float, seed: int, sr: int = SR) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f = 200 + 100 * seed
    return (0.3 * np.sin(2 * np.pi * f * t * (1 + 0.1 * t)) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


PERTS = noise_sweep((5, 20), onset_frame=60) + [Perturbation("shuffle", 60, 60, segment_frames=10)]


@pytest.mark.slow
def test_tidy_table_has_every_parameter_and_exact_deltas(small_lm, tmp_path):
    pieces = [write_piece(tmp_path, f"p{i}", tone(3.0, i)) for i in range(2)]
    table = run_experiment(small_lm, pieces, PERTS, tmp_path / "out", excerpt_seconds=2.5, progress=False)
    T = int(2.5 * small_lm.frame_rate)
    assert len(table) == 2 * len(PERTS) * T
    for col in ("model", "method", "dataset", "piece", "perturbation", "onset_frame", "length_frames", "color",
                "match_offset_db", "segment_frames", "seed", "run_seed", "frame", "nll_clean", "nll_perturbed",
                "delta", "delta_k0", "delta_k3", "excerpt_seconds", "precision"):
        assert col in table, col
    assert np.allclose(table["delta"], table["nll_perturbed"] - table["nll_clean"], atol=1e-6)
    assert np.allclose(table[[f"delta_k{k}" for k in range(4)]].mean(axis=1), table["delta"], atol=1e-5)
    # frames well before the onset are untouched by the perturbation
    early = table[table["frame"] < 50]
    assert (early["delta"].abs() < 1e-6).all()
    # and the table equals scoring each perturbed waveform alone with token_nll
    piece = pieces[0]
    clean = audio.excerpt(audio.load_audio(piece.path, SR), SR, 2.5)
    row = table[(table["piece"] == "p0") & (table["length_frames"] == 20) & (table["perturbation"] == "noise")]
    from lossprofile.io import derived_seed

    noisy = Perturbation("noise", 60, 20, seed=derived_seed(0, "test", "p0", 0)).apply(clean, SR, 50)
    ref = small_lm.token_nll(small_lm.encode(torch.from_numpy(noisy)[None, None])).mean(1)[0].numpy()
    assert np.allclose(row.sort_values("frame")["nll_perturbed"].to_numpy(), ref, atol=1e-4)
    assert (tmp_path / "out" / "results.parquet").exists()


@pytest.mark.slow
def test_engine_with_prefix_reuse_equals_plain_scoring(small_lm, music_wav):
    variants = [p.apply(music_wav, SR, 50) for p in noise_sweep((3, 10, 40), onset_frame=120)]
    fast = scoring.score_variants(small_lm, music_wav, variants, batch_size=2, prefix_reuse=True)
    slow = scoring.score_variants(small_lm, music_wav, variants, batch_size=1, prefix_reuse=False)
    assert fast.shared_steps > 100  # the prefix really was shared
    assert torch.allclose(fast.nll_variants, slow.nll_variants, atol=1e-4) and torch.allclose(fast.nll_clean, slow.nll_clean, atol=1e-4)
    codes = torch.cat([fast.codes_clean[None], fast.codes_variants])
    assert torch.allclose(fast.nll_variants, small_lm.token_nll(codes)[1:], atol=1e-4)


@pytest.mark.slow
def test_score_many_encoding_across_pieces_scores_the_same_codes_as_piece_by_piece(music_wav, monkeypatch, tiny_lm):
    # the GPU default (the codec batched across pieces), run on CPU: a trained codec, so VQ decisions have margins
    lm = tiny_lm
    calls = []
    real = type(lm).encode_pieces
    monkeypatch.setattr(type(lm), "encode_pieces", lambda self, pieces: calls.append(len(pieces)) or real(self, pieces))
    perts = noise_sweep((5, 30), onset_frame=60) + [Perturbation("shuffle", 100, 50, segment_frames=5)]
    pieces = [(wav, [p.apply(wav, SR, 50) for p in perts]) for wav in (music_wav, tone(4.0, 1), tone(4.0, 2))]
    alone = scoring.score_many(lm, pieces, encode_across_pieces=False)
    assert calls == []
    together = scoring.score_many(lm, pieces, encode_across_pieces=True)
    assert calls == [3]
    same_rows = 0
    for a, b in zip(alone, together):
        codes_a = torch.cat([a.codes_clean[None], a.codes_variants])
        codes_b = torch.cat([b.codes_clean[None], b.codes_variants])
        nll_a, nll_b = torch.cat([a.nll_clean[None], a.nll_variants]), torch.cat([b.nll_clean[None], b.nll_variants])
        for row in range(len(codes_a)):
            if torch.equal(codes_a[row], codes_b[row]):  # codes can differ only at a VQ near-tie
                same_rows += 1
                assert torch.allclose(nll_a[row], nll_b[row], atol=1e-4)
            else:
                assert (codes_a[row] != codes_b[row]).any(0).float().mean() <= 0.02
    assert same_rows >= 10  # of 12


@pytest.mark.slow
def test_mixed_precision_per_frame_nll_stays_within_0_02_nats_of_fp32_on_a_random_model(small_lm, music_wav):
    variants = [p.apply(music_wav, SR, 50) for p in noise_sweep((10, 100), onset_frame=100)]
    fp32 = scoring.score_variants(small_lm, music_wav, variants, precision="fp32")
    bf16 = scoring.score_variants(small_lm, music_wav, variants, precision="bf16")
    assert torch.isfinite(bf16.nll_variants).all() and torch.isfinite(bf16.nll_clean).all()
    assert (scoring.frame_mean(fp32.nll_variants) - scoring.frame_mean(bf16.nll_variants)).abs().max() < 0.02
    assert (scoring.frame_mean(fp32.nll_clean) - scoring.frame_mean(bf16.nll_clean)).abs().max() < 0.02


@pytest.mark.slow
def test_mixed_precision_keeps_the_trained_models_sequence_means(music_wav, tiny_lm):
    # A trained model's logits are large and peaked, so bf16 rounding moves single frames far more
    # than on random weights (measured on the embedded model: 0.03 nats per frame on average, up to
    # 0.54 at one frame), while the sequence-mean deltas the experiments report move by under 0.02.
    lm = tiny_lm
    variants = [p.apply(music_wav, SR, 50) for p in noise_sweep((10, 100), onset_frame=100)]
    fp32 = scoring.score_variants(lm, music_wav, variants, precision="fp32")
    bf16 = scoring.score_variants(lm, music_wav, variants, precision="bf16")
    assert torch.isfinite(bf16.nll_variants).all() and torch.equal(fp32.codes_variants, bf16.codes_variants)
    per_frame = (scoring.frame_mean(fp32.nll_variants) - scoring.frame_mean(bf16.nll_variants)).abs()
    assert per_frame.mean() < 0.05
    delta = lambda s: (scoring.frame_mean(s.nll_variants) - scoring.frame_mean(s.nll_clean)).mean(-1)  # noqa: E731
    assert (delta(fp32) - delta(bf16)).abs().max() < 0.05


@pytest.mark.slow
def test_bad_pieces_are_reported_and_skipped_while_the_rest_completes(small_lm, tmp_path, capsys):
    good = write_piece(tmp_path, "good", tone(3.0, 1))
    short = write_piece(tmp_path, "short", tone(1.0, 2))
    silent = write_piece(tmp_path, "silent", np.zeros(3 * SR, np.float32))
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"this is not audio")
    empty = tmp_path / "empty.flac"
    empty.write_bytes(b"")
    missing = tmp_path / "missing.wav"
    pieces = [good, short, silent, Piece("test", "garbage", garbage), Piece("test", "empty", empty),
              Piece("test", "missing", missing)]
    table = run_experiment(small_lm, pieces, PERTS[:1], tmp_path / "out", excerpt_seconds=2.5, progress=False)
    # one line per skipped file, naming it once
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("skipped ")]
    assert len(lines) == 5 and all(line.count(str(tmp_path)) == 1 for line in lines), lines
    assert set(table["piece"]) == {"good"}
    errors = pd.read_csv(tmp_path / "out" / "errors.csv").set_index("piece")
    assert "too short" in errors.loc["short", "error"] and "short.wav" in errors.loc["short", "error"]
    assert "silent" in errors.loc["silent", "error"]
    assert "unreadable" in errors.loc["garbage", "error"] and "garbage.wav" in errors.loc["garbage", "error"]
    assert "empty file (0 bytes)" in errors.loc["empty", "error"]
    assert "not found" in errors.loc["missing", "error"]


@pytest.mark.slow
def test_the_pipeline_across_pieces_gives_the_per_piece_table_and_isolates_bad_pieces(small_lm, tmp_path,
                                                                                      monkeypatch, capsys):
    groups, real = [], type(small_lm).shared_prefix_statistics

    def spy(lm, codes, steps, prompt=None, group_sizes=None):
        groups.append(group_sizes)
        return real(lm, codes, steps, prompt, group_sizes)

    monkeypatch.setattr(type(small_lm), "shared_prefix_statistics", spy)
    pieces = [write_piece(tmp_path, f"p{i}", tone(3.0, i)) for i in range(5)]
    short = write_piece(tmp_path, "short", tone(1.0, 9))
    pieces.insert(2, short)
    perts = noise_sweep((5, 20, 40), onset_frame=60)
    alone = run_experiment(small_lm, pieces, perts, tmp_path / "alone", excerpt_seconds=2.5, progress=False)
    batched = run_experiment(small_lm, pieces, perts, tmp_path / "batched", excerpt_seconds=2.5, progress=False,
                             pieces_per_batch=4, batch_size=64)
    assert capsys.readouterr().err.count("skipped " + str(short.path)) == 2  # once per run
    assert list(batched["piece"].unique()) == ["p0", "p1", "p2", "p3", "p4"] == list(alone["piece"].unique())
    numbers = [c for c in alone.columns if alone[c].dtype.kind == "f"]
    pd.testing.assert_frame_equal(alone.drop(columns=numbers), batched.drop(columns=numbers))
    # the same codes, scored in batches of another shape: equal up to float rounding
    assert np.abs(alone[numbers].to_numpy() - batched[numbers].to_numpy())[np.isfinite(alone[numbers])].max() < 1e-4
    assert any(g is not None and len(g) > 1 for g in groups)  # several pieces did share a decoder batch
    errors = pd.read_csv(tmp_path / "batched" / "errors.csv")
    assert list(errors["piece"]) == ["short"] and "too short" in errors["error"][0]
    # a re-run reuses every part
    again = run_experiment(small_lm, pieces, perts, tmp_path / "batched", excerpt_seconds=2.5, progress=False,
                           pieces_per_batch=4)
    pd.testing.assert_frame_equal(again, batched)


def test_window_beyond_the_excerpt_names_the_file(small_lm, tmp_path, capsys):
    piece = write_piece(tmp_path, "p", tone(3.0, 1))
    table = run_experiment(small_lm, [piece], [Perturbation("noise", 100, 50)], tmp_path / "o",
                           excerpt_seconds=2.5, progress=False)
    assert "skipped " + str(piece.path) in capsys.readouterr().err
    assert table.empty
    assert "too short for the window" in pd.read_csv(tmp_path / "o" / "errors.csv")["error"][0]


def test_nan_audio_and_wrong_shapes_are_refused_with_the_source_named():
    with pytest.raises(audio.AudioError, match="clip.wav: audio contains 1 NaN"):
        audio.check_waveform(np.array([0.1, np.nan, 0.2], np.float32), "clip.wav")
    with pytest.raises(audio.AudioError, match=r"mono audio \[S\]"):
        audio.check_waveform(np.zeros((2, 100), np.float32), "st.wav")
    with pytest.raises(audio.AudioError, match="empty"):
        audio.check_waveform(np.zeros(0, np.float32), "e.wav")


def test_stereo_and_other_sample_rates_are_mixed_down_and_resampled(tmp_path):
    import soundfile as sf

    t = np.arange(44100) / 44100
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t)], axis=1) * 0.5
    sf.write(tmp_path / "s.wav", stereo, 44100)
    wav = audio.load_audio(tmp_path / "s.wav", SR)
    assert wav.shape == (SR,) and abs(audio.rms_dbfs(wav) - audio.rms_dbfs(stereo[:, 0])) < 0.2


RUN_SCRIPT = textwrap.dedent("""
    import sys, time, torch
    torch.set_num_threads(1)
    from lossprofile import load_model
    from lossprofile.data.datasets import list_pieces
    from lossprofile.perturb import noise_sweep
    from lossprofile.runner import run_experiment
    lm = load_model(sys.argv[1], device="cpu")
    pieces = list_pieces(sys.argv[2], dataset="test")
    run_experiment(lm, pieces, noise_sweep((5, 20), onset_frame=60), sys.argv[3], excerpt_seconds=2.5,
                   progress=False)
""")


@pytest.mark.slow
def test_interrupted_run_resumes_without_recomputing_and_matches_an_uninterrupted_run(small_checkpoint, tmp_path):
    data = tmp_path / "data"
    for i in range(6):
        write_piece(data, f"p{i}", tone(3.0, i))
    script = tmp_path / "run.py"
    script.write_text(RUN_SCRIPT)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "interrupted"
    proc = subprocess.Popen([sys.executable, str(script), small_checkpoint, str(data), str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = out / "parts"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(parts.glob("*.parquet")) if parts.exists() else []) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = {p.name: p.stat().st_mtime_ns for p in parts.glob("*.parquet")}
    assert 2 <= len(done_before) < 6, "the run should have been killed part-way"
    subprocess.run([sys.executable, str(script), small_checkpoint, str(data), str(out)], env=env, check=True,
                   capture_output=True)
    after = {p.name: p.stat().st_mtime_ns for p in parts.glob("*.parquet")}
    assert len(after) == 6
    assert all(after[name] == mtime for name, mtime in done_before.items())  # finished work not recomputed
    fresh = tmp_path / "fresh"
    subprocess.run([sys.executable, str(script), small_checkpoint, str(data), str(fresh)], env=env, check=True,
                   capture_output=True)
    a = pd.read_parquet(out / "results.parquet").sort_values(["piece", "length_frames", "frame"])
    b = pd.read_parquet(fresh / "results.parquet").sort_values(["piece", "length_frames", "frame"])
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


@pytest.mark.slow
def test_a_piece_whose_audio_changed_is_scored_again_and_the_others_are_reused(small_lm, tmp_path):
    pieces = [write_piece(tmp_path, f"p{i}", tone(3.0, i)) for i in range(2)]
    first = run_experiment(small_lm, pieces, PERTS[:1], tmp_path / "out", excerpt_seconds=2.5, progress=False)
    parts = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out" / "parts").iterdir()}
    write_piece(tmp_path, "p1", tone(3.0, 7))  # p1 re-rendered with other content, same name
    second = run_experiment(small_lm, pieces, PERTS[:1], tmp_path / "out", excerpt_seconds=2.5, progress=False)
    now = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out" / "parts").iterdir()}
    p0 = [n for n in parts if n.startswith("test-p0")]
    assert len(p0) == 1 and now[p0[0]] == parts[p0[0]]
    assert len([n for n in now if n.startswith("test-p1")]) == 2
    old, new = (t[t["piece"] == "p1"]["nll_clean"].to_numpy() for t in (first, second))
    assert np.abs(old - new).max() > 1e-3


@pytest.mark.slow
def test_out_of_memory_halves_the_batch_and_loses_nothing(small_lm, music_wav, monkeypatch):
    variants = [p.apply(music_wav, SR, 50) for p in noise_sweep((3, 10, 40, 60), onset_frame=120)]
    reference = scoring.score_variants(small_lm, music_wav, variants, batch_size=1)
    real, sizes = type(small_lm).shared_prefix_statistics, []

    def tight_memory(lm, codes, shared_steps, prompt, group_sizes=None):
        sizes.append(len(codes))
        if len(codes) > 2:  # pretend a batch of more than 2 does not fit
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(lm, codes, shared_steps, prompt, group_sizes)

    monkeypatch.setattr(type(small_lm), "shared_prefix_statistics", tight_memory)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    scores = scoring.score_variants(small_lm, music_wav, variants, batch_size=8)
    # all 5 sequences tried at batch 8; halved into 2 + 3, the 3 cut to the lowered limit 2 before trying; none dropped
    assert sizes == [5, 2, 2, 1]
    assert torch.allclose(scores.nll_variants, reference.nll_variants, atol=1e-4)
    assert torch.allclose(scores.nll_clean, reference.nll_clean, atol=1e-4)


@pytest.mark.slow
def test_any_folder_of_audio_can_stand_in_for_a_data_kind(small_lm, tmp_path):
    from lossprofile.paper import experiments as ex

    folder = tmp_path / "my_piano"
    for i in range(2):
        write_piece(folder, f"take{i}", tone(3.0, i))
    table = ex.run(small_lm, "noise_injection", {"ood": folder}, 5, PERTS[:1], tmp_path / "res",
                   excerpt_seconds=2.5, progress=False)
    assert set(table["dataset"]) == {"ood"} and set(table["piece"]) == {"take0", "take1"}


@pytest.mark.slow
def test_relative_folders_and_outputs_are_taken_from_the_working_directory(small_lm, tmp_path, monkeypatch):
    # a notebook copied elsewhere (or a non-editable install) writes next to where it runs, not into the package
    from lossprofile.paper import experiments as ex
    from lossprofile.paper import plots

    write_piece(tmp_path / "mine", "take0", tone(3.0, 0))
    monkeypatch.chdir(tmp_path)
    table = ex.run(small_lm, "noise_injection", {"ood": "mine"}, 1, PERTS[:1], "out", excerpt_seconds=2.5,
                   progress=False)
    assert set(table["piece"]) == {"take0"}
    assert list((tmp_path / "out" / "noise_injection").rglob("results.parquet"))
    ex.save_table(table.head(), "t", "out")
    assert (tmp_path / "out" / "stats" / "t.parquet").exists()
    import matplotlib.pyplot as plt

    paths = plots.save_figure(plt.figure(), "f", "figs")
    assert all(p.exists() and p.parent == tmp_path / "figs" for p in (tmp_path / q for q in paths))


@pytest.mark.slow
def test_score_perturbations_of_midi_pieces_are_rendered_and_scored_against_the_clean_render(small_lm, tmp_path):
    import pretty_midi

    from lossprofile.perturb.score import ScorePerturbation

    midi = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=0)
    piano.notes = [pretty_midi.Note(90, 60 + (i * 5) % 12, 0.5 + 0.25 * i, 0.75 + 0.25 * i) for i in range(40)]
    midi.instruments.append(piano)
    folder = tmp_path / "midi"
    folder.mkdir()
    midi.write(str(folder / "etude.mid"))
    write_piece(tmp_path / "audio", "take0", tone(6.0, 0))
    perts = [ScorePerturbation("shift_pitches", 0.5, (1, 2, 3), in_key=False, onset_frame=100),
             ScorePerturbation("delete_notes", 0.3, onset_frame=100), Perturbation("noise", 100, 20)]
    pieces = datasets.list_pieces(folder, "ood") + datasets.list_pieces(tmp_path / "audio", "training")
    table = run_experiment(small_lm, pieces, perts, tmp_path / "res", excerpt_seconds=4.0, progress=False)
    rows = table[table["piece"] == "etude"]
    assert set(rows["perturbation"]) == {"shift_pitches", "delete_notes", "noise"}
    shifted = rows[rows["perturbation"] == "shift_pitches"]
    assert set(shifted["fraction"]) == {0.5} and set(shifted["semitones"]) == {"1,2,3"} and not shifted["in_key"].any()
    # nothing changes before the window: the same notes render the same samples, hence the same codes
    early = rows[(rows["frame"] < 80) & (rows["perturbation"] != "noise")]
    assert early["delta"].abs().max() < 1e-4
    assert rows.loc[rows["frame"] >= 100, "delta"].abs().max() > 0.01
    clean_alone = small_lm.token_nll(small_lm.encode(torch.from_numpy(
        load_excerpt(pieces[0], 32000, 4.0))[None, None]))[0].mean(0).numpy()
    assert np.allclose(shifted.sort_values("frame")["nll_clean"].to_numpy(), clean_alone, atol=1e-4)
    errors = pd.read_csv(tmp_path / "res" / "errors.csv")
    assert list(errors["piece"]) == ["take0"] and "need a MIDI file" in errors["error"][0]


@pytest.mark.slow
def test_several_models_share_one_table_and_the_figures_get_a_panel_each(small_checkpoint, tmp_path):
    import matplotlib.pyplot as plt

    from lossprofile.paper import experiments as ex
    from lossprofile import load_model
    from lossprofile.paper import plots

    from .conftest import save_random_checkpoint

    other = save_random_checkpoint(tmp_path / "other", seed=1)
    folder = tmp_path / "mine"
    for i in range(2):
        write_piece(folder, f"take{i}", tone(3.0, i))
    first = load_model(small_checkpoint, device="cpu")
    table = ex.each_model([small_checkpoint, other], lambda lm: ex.run(
        lm, "noise_injection", {"ood": folder}, 2, PERTS[:2], tmp_path / "res", excerpt_seconds=2.5, progress=False),
        device="cpu", loaded=first)
    assert list(dict.fromkeys(table["model"])) == [small_checkpoint, other]
    summary = ex.summarize(table)
    clean = ex.clean_loss_by_kind(summary)
    assert list(clean.columns[:2]) == ["model", "dataset"] and len(clean) == 2
    assert "per model" in set(ex.length_statistics(summary)["scope"])
    fig = plots.fig2_length_trend(summary, clean)
    assert len(fig.axes) == 2
    plt.close("all")


@pytest.mark.slow
def test_cli_score_names_each_skipped_file_once_and_ends_with_a_summary(small_checkpoint, tmp_path, capsys):
    from lossprofile import cli

    folder = tmp_path / "music"
    folder.mkdir()
    write_piece(folder, "good", tone(3.0, 1))
    write_piece(folder, "short", tone(1.0, 2))
    (folder / "broken.wav").write_bytes(b"RIFF not really")
    cli.main(["score", "--model", small_checkpoint, "--device", "cpu", "--data", str(folder), "--out",
              str(tmp_path / "out"), "--lengths", "5", "20", "--onset", "60", "--seconds", "2.5"])
    out, err = capsys.readouterr()
    skipped = [line for line in err.splitlines() if line.startswith("skipped ")]
    assert sorted(Path(line.split(": ")[0].removeprefix("skipped ")).name for line in skipped) == ["broken.wav",
                                                                                                   "short.wav"]
    assert all(line.count(str(folder)) == 1 for line in skipped)
    last = out.strip().splitlines()[-1]
    assert last.startswith("1 of 3 pieces scored") and "2 skipped" in last and "errors.csv" in last
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert list(summary["length_frames"]) == [5, 20] and (summary["piece"] == "good").all()
    assert {"mean_nll_clean", "mean_nll_perturbed", "mean_delta"} <= set(summary.columns)
    # every column of both tables has its unit and meaning in columns.csv
    columns = pd.read_csv(tmp_path / "out" / "columns.csv").set_index("column")
    results = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert set(results.columns) | set(summary.columns) == set(columns.index)
    assert columns["meaning"].notna().all()
    assert columns.loc["delta", "unit"] == "nats per code" and columns.loc["onset_frame", "unit"] == "frame (20 ms)"
    assert "columns.csv" in last
    # the report: a sortable table of the scored piece, its curves inline, both excerpts playable from disk, the skips
    page = ReportParts()
    page.feed((tmp_path / "out" / "report.html").read_text())
    assert "report.html" in last
    assert page.tables["pieces"] == 2 and page.tables["errors"] == 2  # good × 2 lengths; broken and short
    assert len(page.images) == 1 and page.images[0].startswith("data:image/png;base64,")
    assert len(page.audio) == 2 and all((tmp_path / "out" / src).stat().st_size > 10_000 for src in page.audio)
    assert not page.external, page.external  # nothing fetched from a network
    import soundfile as sf

    clean, perturbed = (sf.read(tmp_path / "out" / src)[0] for src in page.audio)
    assert clean.shape == perturbed.shape == (int(2.5 * 32000),) and not np.allclose(clean, perturbed)


class ReportParts(HTMLParser):
    """What a report page holds: rows per table id, image and audio sources, anything loaded from elsewhere."""

    def __init__(self):
        super().__init__()
        self.tables, self.images, self.audio, self.external, self._table, self._body = {}, [], [], [], None, False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._table = attrs.get("id")
            self.tables[self._table] = 0
        elif tag == "tbody":
            self._body = True
        elif tag == "tr" and self._body:
            self.tables[self._table] += 1
        elif tag == "img":
            self.images.append(attrs["src"])
        elif tag == "audio":
            self.audio.append(attrs["src"])
        for key in ("src", "href"):
            if str(attrs.get(key, "")).startswith(("http:", "https:", "//")):
                self.external.append(attrs[key])

    def handle_endtag(self, tag):
        if tag == "tbody":
            self._body = False


@pytest.mark.slow
def test_files_that_share_a_stem_stay_two_pieces_with_their_own_rows_and_paths(small_checkpoint, tmp_path, capsys):
    from lossprofile import cli

    folder = tmp_path / "music"
    (folder / "sub").mkdir(parents=True)
    audio.save_audio(folder / "dup.wav", tone(3.0, 1), SR)
    audio.save_audio(folder / "dup.flac", tone(3.0, 2), SR)  # another recording under the same stem
    audio.save_audio(folder / "sub" / "dup.wav", tone(3.0, 3), SR)
    out = tmp_path / "out"
    cli.main(["score", "--model", small_checkpoint, "--device", "cpu", "--data", str(folder), "--out", str(out),
              "--lengths", "5", "--onset", "60", "--seconds", "2.5"])
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("3 of 3 pieces scored")
    results = pd.read_parquet(out / "results.parquet")
    T = int(2.5 * 50)
    per_piece = results.groupby("piece").agg(rows=("frame", "size"), path=("path", "unique"))
    assert list(per_piece.index) == ["dup.flac", "dup.wav", "sub/dup"]
    assert (per_piece["rows"] == T).all()  # frames 0..T-1 once each, never two recordings' frames under one name
    assert [list(p) for p in per_piece["path"]] == [[str(folder / "dup.flac")], [str(folder / "dup.wav")],
                                                      [str(folder / "sub" / "dup.wav")]]
    summary = pd.read_csv(out / "summary.csv").set_index("piece")
    for name, group in results.groupby("piece"):  # each summary row is its own file's mean, not an average of two
        assert summary.loc[name, "mean_nll_clean"] == pytest.approx(group["nll_clean"].mean(), abs=1e-4)
        assert summary.loc[name, "path"] == group["path"].iloc[0]
    assert summary.loc["dup.wav", "mean_nll_clean"] != pytest.approx(summary.loc["dup.flac", "mean_nll_clean"])
    # a moved data folder: the parts are reused, the path column follows the files
    moved = tmp_path / "moved"
    folder.rename(moved)
    cli.main(["score", "--model", small_checkpoint, "--device", "cpu", "--data", str(moved), "--out", str(out),
              "--lengths", "5", "--onset", "60", "--seconds", "2.5"])
    again = pd.read_parquet(out / "results.parquet")
    assert set(again["path"]) == {str(moved / "dup.flac"), str(moved / "dup.wav"), str(moved / "sub" / "dup.wav")}
    assert np.array_equal(again["nll_clean"].to_numpy(), results["nll_clean"].to_numpy())


def test_options_that_cannot_work_are_refused_before_any_piece_is_read(small_lm, tmp_path):
    from lossprofile.errors import UsageError

    piece = Piece("ood", "missing", tmp_path / "missing.wav")  # never read: the options fail first
    for options, message in ((dict(excerpt_seconds=-3), "excerpt_seconds must be a positive number of seconds"),
                             (dict(method="exackt"), "unknown method 'exackt'; expected one of exact, as_published"),
                             (dict(precision="fp8"), "unknown precision 'fp8'"),
                             (dict(batch_size=0), "batch_size must be a whole number >= 1")):
        with pytest.raises(UsageError, match=message):
            run_experiment(small_lm, [piece], [Perturbation(onset_frame=60, length_frames=5)], tmp_path / "o",
                           progress=False, **options)
    assert not (tmp_path / "o").exists()
