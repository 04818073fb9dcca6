"""The command line as a user meets it: one-line errors with the fix and an exit status, units per model family,
the level each command scores at, and what the closing line, summary.csv and the report say."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pretty_midi
import pytest
import soundfile as sf
import torch

from lossprofile import audio, cli, modality, runner
from lossprofile.errors import BadInputError, LossprofileError, ModelLoadError
from lossprofile.models.base import ModelLoadError as BaseModelLoadError
from lossprofile.perturb import Perturbation

SR = 32000


def tone(seconds: float, seed: int, sr: int = SR) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f = 200 + 100 * seed
    return (0.3 * np.sin(2 * np.pi * f * t * (1 + 0.1 * t)) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


def write_midi(path: Path, seconds: float = 12.0, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    midi = pretty_midi.PrettyMIDI(initial_tempo=120)
    piano = pretty_midi.Instrument(program=0)
    t = 0.0
    while t < seconds:
        piano.notes.append(pretty_midi.Note(velocity=80, pitch=int(rng.integers(55, 75)), start=t, end=t + 0.4))
        t += 0.25
    midi.instruments.append(piano)
    midi.write(str(path))
    return path


@pytest.fixture
def audio_folder(tmp_path) -> Path:
    folder = tmp_path / "music"
    folder.mkdir()
    for i in range(2):
        audio.save_audio(folder / f"p{i}.wav", tone(3.0, i), SR)
    return folder


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    rc = cli.main(args)
    out, err = capsys.readouterr()
    return rc, out, err


def error_lines(err: str) -> list[str]:
    """stderr without progress bars: what a user reads."""
    return [line for line in err.splitlines() if line.strip() and "%|" not in line]


# ---- errors (#36 item 4) --------------------------------------------------------------------------------------

def test_error_hierarchy_keeps_the_old_names_and_what_they_catch():
    assert issubclass(audio.AudioError, BadInputError) and issubclass(BadInputError, ValueError)
    assert issubclass(BadInputError, LossprofileError) and issubclass(ModelLoadError, LossprofileError)
    assert BaseModelLoadError is ModelLoadError and issubclass(ModelLoadError, RuntimeError)


def test_a_bug_in_scoring_fails_the_run_instead_of_becoming_skips(small_lm, small_checkpoint, audio_folder, tmp_path,
                                                                   monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise ValueError("shape mismatch")

    pieces = [runner.Piece("t", p.stem, p) for p in sorted(audio_folder.glob("*.wav"))]
    monkeypatch.setattr(modality, "score_many", broken)  # how an audio model's pieces are scored
    perts = [Perturbation("noise", 60, 5)]
    with pytest.raises(ValueError, match="shape mismatch"):
        runner.run_experiment(small_lm, pieces, perts, tmp_path / "a", excerpt_seconds=2.5, progress=False)
    with pytest.raises(ValueError, match="shape mismatch"):  # the pipeline across pieces too
        runner.run_experiment(small_lm, pieces, perts, tmp_path / "b", excerpt_seconds=2.5, progress=False,
                              pieces_per_batch=2)
    # the command line: a bug keeps its traceback (not one line, not N skips)
    with pytest.raises(ValueError, match="shape mismatch"):
        cli.main(["score", "--model", small_checkpoint, "--device", "cpu", "--data", str(audio_folder), "--out",
                  str(tmp_path / "c"), "--lengths", "5", "--onset", "60", "--seconds", "2.5"])
    assert "skipped" not in capsys.readouterr().err
    assert not (tmp_path / "c" / "errors.csv").exists()


# ---- one-line errors and exit codes (#35 items 5, 6) ------------------------------------------------------------

def user_error_cases(folder: Path, tmp: Path, checkpoint: str) -> dict[str, tuple[list[str], str]]:
    score = ["score", "--model", checkpoint, "--device", "cpu", "--data", str(folder), "--out", str(tmp / "o")]
    empty, midi_only = tmp / "empty", tmp / "midi"
    empty.mkdir()
    (tmp / "no_run").mkdir()
    return {
        "missing data folder": (score[:6] + [str(tmp / "nope"), "--out", str(tmp / "o")],
                                r"nope: folder not found \(give --data an existing folder"),
        "preset typo": (score + ["--preset", "paper-noize"],
                        r"unknown preset 'paper-noize' \(did you mean 'paper-noise'\?\); the presets are paper-noise"),
        "hub id without its organisation": (["score", "--model", "musicgen-small", "--data", str(folder), "--out",
                                             str(tmp / "o")], r"did you mean 'facebook/musicgen-small'\?"),
        "cuda on a CPU build": (["score", "--model", checkpoint, "--device", "cuda", "--data", str(folder), "--out",
                                 str(tmp / "o")], r"device 'cuda': torch here has no CUDA GPU .* use --device cpu"),
        "authors-noise without a data kind": (score + ["--preset", "authors-noise"],
                                              r"give --data-kind \(data_kind\) as one of generated, ood, training"),
        "report on a missing folder": (["report", str(tmp / "gone")], r"gone: folder not found \(give the --out"),
        "report on a folder without a run": (["report", str(tmp / "no_run")],
                                             r"no_run: no finished run here .* run `lossprofile score`"),
        "empty data folder": (score[:6] + [str(empty), "--out", str(tmp / "o")],
                              r"empty: no audio or MIDI files found in it"),
        "a MIDI model on audio": (["score", "--model", "tiny-symbolic", "--device", "cpu", "--data", str(folder),
                                   "--out", str(tmp / "o")], r"tiny-symbolic reads MIDI files and this folder has none"),
        "a score preset on audio": (score + ["--preset", "authors-pitch"],
                                    r"the perturbations shift_pitches change notes and need MIDI files"),
        "profile on an empty folder": (["profile", "--model", checkpoint, "--device", "cpu", "--data", str(empty),
                                        "--out", str(tmp / "p")], r"no audio or MIDI files found"),
        "no threads": (score + ["--threads", "0"], r"--threads must be at least 1, got 0"),
        "threads not a number (a forwarded command)": (["bench", "--threads", "x"],
                                                       r"--threads: expected a whole number of CPU threads, got 'x'"),
        "a noise length of 0 frames": (score + ["--lengths", "5", "0"],
                                       r"onset_frame >= 0 and length_frames >= 1, got 250 and 0"),
        "a level for MIDI": (["score", "--model", "tiny-symbolic", "--device", "cpu", "--data", str(folder), "--out",
                              str(tmp / "o"), "--loudness-dbfs", "-20"],
                             r"--loudness-dbfs: tiny-symbolic reads MIDI, which has no level"),
    }


def test_every_error_a_user_can_cause_is_one_line_with_the_fix_and_a_nonzero_exit(small_checkpoint, audio_folder,
                                                                                   tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a CPU build, wherever the test runs
    cases = user_error_cases(audio_folder, tmp_path, small_checkpoint)
    for name, (args, message) in cases.items():
        rc, out, err = run_cli(args, capsys)
        lines = error_lines(err)
        assert rc == 1, (name, rc)
        assert len(lines) == 1 and lines[0].startswith("lossprofile: error: "), (name, err)
        assert re.search(message, lines[0]), (name, lines[0])
        assert "Traceback" not in err and "make data" not in lines[0], name
    assert not (tmp_path / "gone").exists() and not list((tmp_path / "no_run").iterdir())  # no report written
    # --debug shows the traceback instead
    with pytest.raises(BadInputError, match="no audio or MIDI files"):
        cli.main(["--debug", *cases["empty data folder"][0]])


def test_nothing_scored_exits_nonzero_and_names_no_missing_file(small_checkpoint, tmp_path, capsys):
    folder = tmp_path / "short"
    folder.mkdir()
    audio.save_audio(folder / "a.wav", tone(1.0, 1), SR)
    (folder / "b.wav").write_text("not audio")
    out = tmp_path / "o"
    rc, stdout, err = run_cli(["score", "--model", small_checkpoint, "--device", "cpu", "--data", str(folder),
                               "--out", str(out), "--lengths", "50", "--onset", "60", "--seconds", "2.5"], capsys)
    assert rc == 1 and stdout == ""
    last = error_lines(err)[-1]
    assert last.startswith("no piece could be scored (0 of 2); 2 skipped") and "errors.csv" in last
    assert "results.parquet" not in err and not (out / "results.parquet").exists()
    assert not (out / "report.html").exists()


# ---- units per family (#35 item 3) -----------------------------------------------------------------------------

def test_units_come_from_the_model_family(small_lm, tmp_path, capsys):
    from lossprofile import load_model
    from lossprofile.columns import dictionary, units_of

    symbolic = load_model("tiny-symbolic", device="cpu")
    assert units_of(small_lm) == {"frame": "nats per code", "token": "nats per code"}
    assert units_of(symbolic) == {"frame": "nats per frame (sum over its tokens)", "token": "nats per token"}
    table = dictionary(["delta", "mean_nll", "recovery_var"], units_of(symbolic)).set_index("column")["unit"]
    assert list(table) == ["nats per frame (sum over its tokens)", "nats per token", "nats² per frame (sum over its tokens)"]
    # the command line: the MIDI model's columns.csv, closing line, report headers and curve axis say so
    folder = tmp_path / "midi"
    folder.mkdir()
    write_midi(folder / "a.mid", 12.0, 0)
    for i in range(3):  # audio beside the MIDI: left out in one line, not a skip line each
        audio.save_audio(folder / f"b{i}.wav", tone(3.0, i), SR)
    out = tmp_path / "o"
    rc, stdout, err = run_cli(["score", "--model", "tiny-symbolic", "--device", "cpu", "--data", str(folder), "--out",
                               str(out), "--lengths", "50", "--onset", "100", "--seconds", "5"], capsys)
    assert rc == 0 and "losses in nats per frame (sum over its tokens)" in stdout and "nats per code" not in stdout
    assert stdout.startswith("1 of 1 pieces scored")
    assert error_lines(err) == [f"{folder}: tiny-symbolic reads MIDI files: its 3 audio files left out, 1 MIDI file "
                                "to score"]
    columns = pd.read_csv(out / "columns.csv").set_index("column")["unit"]
    assert columns["delta"] == columns["mean_delta"] == "nats per frame (sum over its tokens)"
    assert columns["entropy_clean"] == "nats per token"
    assert json.loads((out / "run.json").read_text())["units"]["frame"] == "nats per frame (sum over its tokens)"
    page = (out / "report.html").read_text()
    assert "nats per code" not in page and "nats per frame (sum over its tokens)" in page
    # random-note windows are not white noise: the audio-only parameters are empty
    summary = pd.read_csv(out / "summary.csv")
    assert "color" not in summary and "match_offset_db" not in summary
    results = pd.read_parquet(out / "results.parquet")
    assert results["color"].isna().all() and results["match_offset_db"].isna().all()


# ---- level (#35 item 4) ----------------------------------------------------------------------------------------

def test_loudness_option_makes_score_level_free_and_is_recorded(small_checkpoint, tmp_path, capsys):
    wav = tone(3.0, 1)
    tables = {}
    for option in ([], ["--loudness-dbfs", "-20"]):
        for name, gain in (("loud", 1.0), ("quiet", 10 ** (-12 / 20))):
            folder = tmp_path / f"{name}{len(option)}" / "music"  # one folder name: the noise is seeded by it
            folder.mkdir(parents=True)
            # 32-bit float files: the quieter copy is the same samples times the gain, no 16-bit rounding
            sf.write(folder / "a.wav", wav * gain, SR, subtype="FLOAT")
            out = tmp_path / f"out-{name}{len(option)}"
            rc, stdout, _ = run_cli(["score", "--model", small_checkpoint, "--device", "cpu", "--data", str(folder),
                                     "--out", str(out), "--lengths", "5", "20", "--onset", "60", "--seconds", "2.5",
                                     *option], capsys)
            assert rc == 0
            tables[name, bool(option)] = pd.read_csv(out / "summary.csv")
            run = json.loads((out / "run.json").read_text())
            assert run["loudness_dbfs"] == (-20.0 if option else None)
            level = pd.read_parquet(out / runner.RESULTS_FILE)["loudness_dbfs"]  # the table says it too
            assert (level == -20.0).all() if option else level.isna().all()
            assert ("brought to -20 dBFS RMS" if option else "at each file's own level") in stdout
    numbers = ["mean_nll_clean", "mean_nll_perturbed", "mean_delta"]
    same = tables["loud", True][numbers].to_numpy() - tables["quiet", True][numbers].to_numpy()
    differ = tables["loud", False][numbers].to_numpy() - tables["quiet", False][numbers].to_numpy()
    assert np.abs(same).max() < 1e-3, same
    # without the option the clean NLL moves with the level (by 0.01 nats on this random model, ten times the
    # rounding of summary.csv; the issue saw 2.54 -> 1.55 on MusicGen)
    assert np.abs(differ[:, 0]).min() > 0.005, differ


def test_the_level_is_said_in_help_and_report(capsys):
    for command, words in (("score", "scores each file at the level it has"), ("profile", "dBFS RMS before probing")):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        assert words in " ".join(capsys.readouterr().out.split())


# ---- smaller items (#35 item 8) --------------------------------------------------------------------------------

def test_score_takes_a_short_clip_that_holds_the_windows_and_says_what_a_shorter_one_lacks(small_checkpoint, tmp_path,
                                                                                          capsys):
    folder = tmp_path / "clips"
    folder.mkdir()
    audio.save_audio(folder / "two.wav", tone(2.0, 1), SR)  # 2 s: holds frames 0..100, the window ends at 60 + 20
    audio.save_audio(folder / "one.wav", tone(1.2, 2), SR)
    out = tmp_path / "o"
    rc, stdout, err = run_cli(["score", "--model", small_checkpoint, "--device", "cpu", "--data", str(folder),
                               "--out", str(out), "--lengths", "20", "--onset", "60", "--seconds", "15"], capsys)
    assert rc == 0 and stdout.startswith("1 of 2 pieces scored")
    results = pd.read_parquet(out / "results.parquet")
    assert set(results["piece"]) == {"two"} and results["frame"].max() == 99
    assert results["seconds_scored"].iloc[0] == pytest.approx(2.0) and results["excerpt_seconds"].iloc[0] == 15
    error = pd.read_csv(out / "errors.csv")["error"][0]
    assert "one.wav: too short: 1.20 s of sound; the perturbations need 1.6 s" in error
    # precision: what ran (fp32 on CPU), never 'auto'
    assert set(results["precision"]) == {"fp32"} and json.loads((out / "run.json").read_text())["precision"] == "fp32"
    # parameters no perturbation uses: numeric, not object columns of None; summary.csv without them
    assert results["level_dbfs"].dtype == np.float64 and results["fraction"].dtype == np.float64
    summary = pd.read_csv(out / "summary.csv")
    assert not [c for c in summary.columns if summary[c].isna().all()], summary.columns
    assert "level_dbfs" not in summary and "color" in summary and "changed" in summary
    # one description per codebook
    columns = pd.read_csv(out / "columns.csv").set_index("column")["meaning"]
    assert "(the coarsest)" in columns["delta_k0"] and "(the finest)" in columns["delta_k3"]
    assert "k0" in columns["delta_k1"] and columns["delta_k1"] != columns["delta_k2"]


def test_a_perturbation_that_changes_no_token_is_reported(small_checkpoint, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "music"
    folder.mkdir()
    audio.save_audio(folder / "a.wav", tone(3.0, 1), SR)
    # noise added 200 dB below the music: the codec quantises the window back to the clean codes
    monkeypatch.setattr(cli, "noise_sweep", lambda *a, **k: [Perturbation("add_noise", 60, 20, match_offset_db=-200.0),
                                                             Perturbation("noise", 60, 20)])
    out = tmp_path / "o"
    rc, _, err = run_cli(["score", "--model", small_checkpoint, "--device", "cpu", "--data", str(folder), "--out",
                          str(out), "--seconds", "2.5"], capsys)
    assert rc == 0
    summary = pd.read_csv(out / "summary.csv").set_index("perturbation")
    assert not summary.loc["add_noise", "changed"] and summary.loc["noise", "changed"]
    assert summary.loc["add_noise", "mean_delta"] == 0.0
    warning = [line for line in error_lines(err) if line.startswith("warning:")]
    assert len(warning) == 1 and "1 of 2 perturbations changed no token" in warning[0]


def test_profile_names_a_bad_midi_file_once(tmp_path, capsys):
    folder = tmp_path / "midi"
    folder.mkdir()
    write_midi(folder / "good.mid", 12.0, 0)
    (folder / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01")
    rc, stdout, err = run_cli(["profile", "--model", "tiny-symbolic", "--device", "cpu", "--data", str(folder),
                               "--out", str(tmp_path / "o"), "--seconds", "10"], capsys)
    skipped = [line for line in error_lines(err) if line.startswith("skipped ")]
    assert rc == 0 and len(skipped) == 1 and skipped[0].count("broken.mid") == 1, skipped
    assert stdout.startswith("1 of 2 pieces scored")
    table = pd.read_csv(tmp_path / "o" / "profile_scores.csv")
    assert list(table.columns[:3]) == ["piece", "path", "profile_score"]
    columns = pd.read_csv(tmp_path / "o" / "columns.csv").set_index("column")["unit"]
    assert columns["mean_nll"] == "nats per token" and columns["peak"] == "nats per frame (sum over its tokens)"


def test_report_aligns_text_left_puts_the_headline_first_says_which_curve_and_drops_old_media(small_checkpoint,
                                                                                               audio_folder, tmp_path,
                                                                                               capsys):
    out = tmp_path / "o"
    rc, _, _ = run_cli(["score", "--model", small_checkpoint, "--device", "cpu", "--data", str(audio_folder), "--out",
                        str(out), "--lengths", "5", "20", "--onset", "60", "--seconds", "2.5"], capsys)
    assert rc == 0 and len(list((out / "report_media").glob("*.flac"))) == 4  # two pieces, clean and perturbed
    page = (out / "report.html").read_text()
    assert '<td class=text data-value="p0">' in page and '<th class=text title=' in page
    assert "curve of its longest perturbation (noise, 20 frames)" in page
    assert "score scores each file at the level it has" in " ".join(page.split())
    rc, stdout, _ = run_cli(["report", str(out), "--max-pieces", "1"], capsys)
    from lossprofile.report import media_name

    assert rc == 0 and sorted(p.name for p in (out / "report_media").glob("*.flac")) == sorted(
        [media_name("p0-clean"), media_name("p0-perturbed")])


# ---- commands that rebuild or re-measure (#35 item 7) ------------------------------------------------------------

def test_measuring_a_card_writes_under_the_projects_build_and_rewrites_the_tracked_card_only_when_asked(
        tmp_path, monkeypatch, capsys):
    from lossprofile.commands import tiny_symbolic
    from lossprofile.data.datasets import REPO_ROOT
    from lossprofile.embedded import symbolic_card, training_corpus
    from lossprofile.models.symbolic import model

    assert training_corpus.SYMBOLIC_BUILD_DIR == REPO_ROOT / "build" / "tiny-symbolic"  # not the working directory
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    (shipped / "MODEL_CARD.md").write_text("# the shipped card\n")
    monkeypatch.setattr(training_corpus, "SYMBOLIC_BUILD_DIR", tmp_path / "build")
    monkeypatch.setattr(model, "TINY_SYMBOLIC_DIR", shipped)
    monkeypatch.setattr(symbolic_card, "measure", lambda: {"nll": 1.5})  # the measuring itself takes many minutes
    monkeypatch.setattr(symbolic_card, "render_card", lambda card, recipe: f"# re-measured: {card['nll']}\n")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    tiny_symbolic.main(["--measure-card"])
    assert (tmp_path / "build" / "card" / "MODEL_CARD.md").read_text() == "# re-measured: 1.5\n"
    assert (shipped / "MODEL_CARD.md").read_text() == "# the shipped card\n" and not list(elsewhere.iterdir())
    tiny_symbolic.main(["--card", "--write-card"])
    assert (shipped / "MODEL_CARD.md").read_text() == "# re-measured: 1.5\n"
    capsys.readouterr()
    # showing a card measures nothing
    monkeypatch.setattr(symbolic_card, "measure", lambda: pytest.fail("--show-card measured"))
    tiny_symbolic.main(["--show-card"])
    assert capsys.readouterr().out.startswith("# re-measured: 1.5")


def test_lossprofile_card_prints_the_shipped_card_and_the_rebuilding_commands_say_so(capsys):
    from lossprofile.models.loading import embedded_models

    assert cli.main(["card", "tiny-symbolic"]) == 0
    assert capsys.readouterr().out == (embedded_models()["tiny-symbolic"] / "MODEL_CARD.md").read_text() + "\n"
    for name in ("tiny-model", "tiny-symbolic", "model-card", "study"):
        assert cli.FORWARDED[name][1].startswith(("REBUILDS", "RE-MEASURES")), name


def test_a_profile_report_explains_each_clip_with_its_probed_curve_and_its_audio(small_checkpoint, tmp_path, capsys):
    from html.parser import HTMLParser

    from lossprofile.analysis import profile

    folder = tmp_path / "clips"
    folder.mkdir()
    for i in range(2):
        audio.save_audio(folder / f"c{i}.wav", tone(7.0, i), SR)
    out = tmp_path / "out"
    rc, _, err = run_cli(["profile", "--model", small_checkpoint, "--device", "cpu", "--data", str(folder), "--out",
                          str(out), "--seconds", "6"], capsys)
    assert rc == 0 and "warning: --seconds 6 is below the 10 s a profile is validated for" in err
    design = json.loads((out / "run.json").read_text())["probe_design"]  # what placed the probes, with the run
    assert design == dataclasses.asdict(profile.ProbeDesign())
    curves = pd.read_parquet(out / "profile_curves.parquet")
    scores = pd.read_parquet(out / "profile_scores.parquet")
    assert sorted(curves["piece"].unique()) == ["c0", "c1"]
    c0 = curves[curves["piece"] == "c0"]
    assert len(c0) == 6 * 50 and list(c0["frame"]) == list(range(300))
    # the bursts and the long probe sit where the design puts them, the same for every clip of this length
    perts = profile.ProbeDesign().perturbations(300, profile.probe_seed(0))
    for i, p in enumerate(perts[:-1]):
        assert (c0.loc[c0["frame"].between(p.onset_frame, p.onset_frame + p.length_frames - 1), "probe"] == i).all()
    assert c0["long_probe"].sum() == perts[-1].length_frames
    assert c0["nll_clean"].mean() == pytest.approx(scores.set_index("piece").loc["c0", "mean_nll"], abs=1e-4)
    assert c0.loc[c0["frame"] < perts[0].onset_frame, "nll_probed"].isna().all()

    class Parts(HTMLParser):
        def __init__(self):
            super().__init__()
            self.sections, self.images, self.audio = 0, 0, []

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            self.sections += tag == "section"
            self.images += tag == "img" and attrs.get("src", "").startswith("data:image/png;base64,")
            if tag == "audio":
                self.audio.append(attrs["src"])

    page = Parts()
    page.feed((out / "report.html").read_text())
    assert page.sections == 2 and page.images == 2 and len(page.audio) == 2
    assert all(sf.info(out / src).duration == pytest.approx(6.0) for src in page.audio)


def test_a_missing_local_model_path_is_named_as_not_found(tmp_path):
    from lossprofile import load_model

    for missing in (f"{tmp_path}/my_finetune/", "./no_such_checkpoint", f"{tmp_path}/a/b/c"):
        with pytest.raises(ModelLoadError, match="not found"):
            load_model(missing)


def test_an_empty_file_and_a_text_file_named_mp3_get_reasons_that_fit(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "notes.mp3").write_text("not audio")
    with pytest.raises(audio.AudioError, match="empty file"):
        audio.load_audio(tmp_path / "empty.wav", 32000)
    with pytest.raises(audio.AudioError, match="not an audio file") as caught:
        audio.load_audio(tmp_path / "notes.mp3", 32000)
    assert "does not exist" not in str(caught.value)


def test_an_out_folder_holding_a_run_with_other_settings_is_refused_and_its_results_kept(small_checkpoint,
                                                                                         audio_folder, tmp_path,
                                                                                         capsys):
    out = tmp_path / "out"
    base = ["score", "--model", small_checkpoint, "--device", "cpu", "--data", str(audio_folder), "--out", str(out),
            "--lengths", "5", "--onset", "60", "--seconds", "2.5"]
    assert run_cli(base, capsys)[0] == 0
    first = (out / runner.RESULTS_FILE).read_bytes()
    # the same settings again: a resumption, nothing scored anew, the same table
    rc, stdout, err = run_cli(base, capsys)
    assert rc == 0 and (out / runner.RESULTS_FILE).read_bytes() == first
    assert "2 of 2 pieces finished before, reused" in err
    # another seed and excerpt into the same folder: refused before anything is written, naming what differs
    rc, _, err = run_cli([*base, "--seed", "1", "--seconds", "2.0"], capsys)
    lines = error_lines(err)
    assert rc == 1 and len(lines) == 1, err
    assert str(out) in lines[0] and "seed 0 -> 1" in lines[0] and "excerpt_seconds 2.5 -> 2.0" in lines[0]
    assert "--overwrite" in lines[0]
    assert (out / runner.RESULTS_FILE).read_bytes() == first
    assert json.loads((out / "run.json").read_text())["seed"] == 0
    # --overwrite replaces the table; the first run's parts stay (they are keyed by their settings)
    parts_before = set((out / "parts").iterdir())
    assert run_cli([*base, "--seed", "1", "--overwrite"], capsys)[0] == 0
    assert json.loads((out / "run.json").read_text())["seed"] == 1
    assert (out / runner.RESULTS_FILE).read_bytes() != first and parts_before < set((out / "parts").iterdir())
    # another noise length: the entry and the field that differ, not two cut-off lists
    rc, _, err = run_cli([*base, "--lengths", "7"], capsys)  # the last --lengths is the one taken
    assert rc == 1 and "perturbations[0] length_frames 5 -> 7" in err, err
    rc, _, err = run_cli([*base, "--lengths", "5", "9"], capsys)
    assert rc == 1 and "perturbations 1 -> 2 entries" in err, err
    # another data folder, the first one still there: refused (a moved one resumes: test_runner)
    other = tmp_path / "other"
    shutil.copytree(audio_folder, other)
    rc, _, err = run_cli([*base[:6], str(other), *base[7:]], capsys)
    assert rc == 1 and "data " in err, err
    # a profile run into a score run's folder is another command
    rc, _, err = run_cli(["profile", "--model", small_checkpoint, "--device", "cpu", "--data", str(audio_folder),
                          "--out", str(out)], capsys)
    assert rc == 1 and "holds a score run" in err and "command score -> profile" in err


def test_profile_says_which_clips_were_scored_over_less_than_the_excerpt(small_checkpoint, tmp_path, capsys):
    folder = tmp_path / "clips"
    folder.mkdir()
    audio.save_audio(folder / "short.wav", tone(10.5, 0), SR)
    audio.save_audio(folder / "long.wav", tone(12.5, 1), SR)
    rc, _, err = run_cli(["profile", "--model", small_checkpoint, "--device", "cpu", "--data", str(folder), "--out",
                          str(tmp_path / "out"), "--seconds", "12"], capsys)
    scores = pd.read_csv(tmp_path / "out" / "profile_scores.csv").set_index("piece")
    assert rc == 0 and scores.loc["short", "seconds_scored"] < 12 <= scores.loc["long", "seconds_scored"]
    notes = [line for line in error_lines(err) if line.startswith("note: ")]
    assert len(notes) == 1 and "1 of 2 clips had less than 12 s" in notes[0] and "short: 10.5 s" in notes[0], err
