"""The profile score's validation: leave-one-family-out never fits on what it reports, whole pieces are
resampled, the weight-free score, the properties and the ladder on tables with known answers; the symbolic
modality's profile on the embedded model; the committed tables say what the README claims."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lossprofile.analysis import evaluate, profile, validation
from lossprofile.data.datasets import REPO_ROOT
from lossprofile.modality import MIDI

FEATURES = ("f_ab", "f_c", "mean_nll")


def family_table(n_pieces: int = 40, seed: int = 0) -> pd.DataFrame:
    """Families A and B are seen by ``f_ab`` (the clean version higher), family C only by ``f_c`` (the clean
    version *lower*); everything else is noise. A score fitted without C cannot know ``f_c``."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_pieces):
        base = rng.normal(0, 1, 3)
        for family, strengths in (("clean", (0.0,)), ("A", (0.2, 0.5)), ("B", (0.2, 0.5)), ("C", (0.2, 0.5))):
            for s in strengths:
                f_ab, f_c, nll = base + rng.normal(0, 0.2, 3)
                if family in ("A", "B"):
                    f_ab -= 2.0
                if family == "C":
                    f_c += 2.0
                rows.append(dict(dataset="ood", model="m", piece=f"p{i}", split=evaluate.split_of(f"p{i}"),
                                 family=family, strength=s, f_ab=f_ab, f_c=f_c, mean_nll=nll))
    return pd.DataFrame(rows)


def test_leave_one_family_out_never_fits_on_the_family_it_reports():
    table = family_table()
    lofo = validation.lofo_table(table, features=FEATURES, n_boot=200)
    pooled = lofo[lofo["strength"] == "all"].set_index(["held_out_family", "score"])
    # A held out: fitted on B (and C), f_ab's direction carries over
    assert pooled.loc[("A", "profile_score"), "auroc"] > 0.95
    assert pooled.loc[("A", "rank_average"), "auroc"] > 0.8
    # C held out: f_c's direction was never learnt; had C leaked into the fit, this would be near 1
    assert pooled.loc[("C", "profile_score"), "auroc"] < 0.75
    # every piece reported once per strength (2-fold cross-fitting), both halves
    assert pooled.loc[("C", "profile_score"), "pairs"] == 2 * 40 and pooled.loc[("C", "profile_score"), "pieces"] == 40
    per_strength = lofo[(lofo["strength"] == "0.2") & (lofo["score"] == "profile_score")]
    assert (per_strength["pairs"] == 40).all()
    # the difference from mean NLL (noise here: AUROC near 0.5) is the difference of the AUROCs
    row = pooled.loc[("A", "profile_score")]
    assert row["minus_mean_nll"] == pytest.approx(row["auroc"] - pooled.loc[("A", "mean_nll"), "auroc"])
    assert row["diff_ci_low"] <= row["minus_mean_nll"] <= row["diff_ci_high"]


def test_per_codebook_features_are_reported_alone_and_never_recommended():
    table = family_table()
    rng = np.random.default_rng(3)
    # peak_fine sees every family perfectly (clean versions higher): it would win any contest it entered
    table["peak_fine"] = np.where(table["family"] == "clean", 5.0, 0.0) + rng.normal(0, 0.1, len(table))
    assert validation.extra_scores(table) == ["peak_fine"]
    lofo = validation.lofo_table(table, features=FEATURES, n_boot=100)
    pooled = lofo[lofo["strength"] == "all"].set_index(["held_out_family", "score"])["auroc"]
    assert all(pooled[(f, "peak_fine")] == 1.0 for f in ("A", "B", "C"))
    weights = validation.fit_recommended(table, lofo, features=FEATURES)
    assert weights["provenance"]["chosen"] != "peak_fine"
    assert "peak_fine" not in weights["provenance"]["lofo_mean_auroc"]
    assert validation.extra_scores(table.assign(peak_fine=np.nan)) == []  # a column some rows lack is left out


def test_scores_of_extra_passes_are_reported_alone_and_a_cache_knows_what_it_was_scored_with():
    table = family_table()
    rng = np.random.default_rng(4)
    table["context_gain"] = rng.normal(0, 1, len(table))
    table["binoculars"] = np.where(table["family"] == "clean", 1.0, 0.0) + rng.normal(0, 0.1, len(table))
    table["text_alignment"] = np.nan  # no prompt: not a score of this table
    assert validation.extra_scores(table) == ["context_gain", "binoculars"]
    lofo = validation.lofo_table(table, features=FEATURES, n_boot=100)
    pooled = lofo[lofo["strength"] == "all"].set_index(["held_out_family", "score"])["auroc"]
    assert min(pooled[(f, "binoculars")] for f in ("A", "B", "C")) > 0.95
    assert 0.3 < pooled[("A", "context_gain")] < 0.7
    assert validation.fit_recommended(table, lofo, features=FEATURES)["provenance"]["chosen"] != "binoculars"

    class Reference:
        fingerprint = "abc"

    keys = [profile.options_key(), profile.options_key(prompt="piano"), profile.options_key(reference=Reference())]
    assert len({json.dumps(k) for k in keys}) == 3
    assert set(profile.PASS_FEATURES) <= set(keys[0]["columns"])


def test_the_bootstrap_resamples_whole_pieces():
    # two pieces, 100 pairs each, one always right and one always wrong: over pairs the mean looks certain
    # (0.5 ± 0.05), over pieces it is anything from 0 to 1
    values = np.r_[np.ones(100), np.zeros(100)]
    pieces = np.r_[np.zeros(100), np.ones(100)]
    low, high = validation.piece_bootstrap(values, pieces, n_boot=500)
    assert low == 0.0 and high == 1.0


def test_rank_average_is_each_features_signed_percentile():
    rows = pd.DataFrame({"a": np.arange(101.0), "b": np.arange(101.0)})
    ref = validation.percentile_reference(rows, ["a", "b"], {"a": 1, "b": -1})
    probe = pd.DataFrame({"a": [0.0, 50.0, 100.0, 100.0], "b": [0.0, 50.0, 100.0, 0.0]})
    score = profile.combine(probe, ref)
    # a's percentile minus b's, halved: opposite directions cancel; a high and b low is best
    assert score == pytest.approx([0.0, 0.0, 0.0, 0.5])


def test_properties_table_on_conditions_with_known_answers():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, 30)
    rows = []
    for i in range(30):
        for condition, value in (("reference", x[i]), ("quieter_6db", x[i]), ("seconds_10", x[i] + 0.5),
                                 ("retest", rng.normal())):
            rows.append(dict(piece=f"p{i}", condition=condition, **{f: value for f in profile.FEATURES}))
    weights = dict(features=["mean_nll"], mean={"mean_nll": 0.0}, std={"mean_nll": 1.0}, weights={"mean_nll": 1.0})
    table = validation.properties_table(pd.DataFrame(rows), weights, n_boot=200).set_index(["condition", "score"])
    assert table.loc[("quieter_6db", "peak"), "spearman"] == pytest.approx(1.0)
    assert table.loc[("quieter_6db", "peak"), "shift_sd"] == pytest.approx(0.0)
    assert table.loc[("seconds_10", "peak"), "spearman"] == pytest.approx(1.0)  # a constant shift keeps the order
    assert table.loc[("seconds_10", "peak"), "shift_sd"] == pytest.approx(0.5 / x.std(ddof=1))
    assert abs(table.loc[("retest", "profile_score"), "spearman"]) < 0.5  # unrelated passages
    assert set(table.reset_index()["compared_with"]) == {"reference"}


def test_the_ladder_finds_a_score_that_falls_with_strength():
    table = family_table()
    table["mean_nll"] = table["strength"] * 3 + np.random.default_rng(1).normal(0, 0.1, len(table))
    weights = dict(features=["mean_nll"], mean={"mean_nll": 0.0}, std={"mean_nll": 1.0}, weights={"mean_nll": -1.0},
                   directions={"mean_nll": -1, "f_ab": 1, "f_c": 1})
    ladder = validation.ladder_table(table, weights, scores=("profile_score", "mean_nll", "f_c"), n_boot=200)
    ladder = ladder.set_index(["family", "score"])
    assert ladder.loc[("A", "mean_nll"), "system_spearman"] == pytest.approx(1.0)
    assert ladder.loc[("A", "mean_nll"), "clip_spearman"] > 0.9
    assert ladder.loc[("A", "profile_score"), "system_spearman"] == pytest.approx(1.0)
    assert ladder.loc[("C", "f_c"), "system_spearman"] < 0  # f_c rises with C's strength: the wrong way
    assert ladder.loc[("A", "mean_nll"), "systems"] == 3 and ladder.loc[("A", "mean_nll"), "pieces"] == 40


def test_the_model_rungs_order_real_music_and_samples_by_temperature():
    table = family_table()
    rng = np.random.default_rng(2)
    real = table["family"] == "clean"
    table.loc[real, "mean_nll"] = rng.normal(1.0, 0.3, real.sum())
    # samples: mean NLL rises with temperature (worse), f_c is noise; 12 samples per rung
    samples = pd.DataFrame([dict(temperature=t, mean_nll=1.0 + 2 * t + rng.normal(0, 0.3), f_ab=rng.normal(),
                                 f_c=rng.normal()) for t in (1.0, 1.5, 2.0) for _ in range(12)])
    weights = dict(features=["mean_nll"], mean={"mean_nll": 0.0}, std={"mean_nll": 1.0}, weights={"mean_nll": -1.0},
                   directions={"mean_nll": -1, "f_ab": 1, "f_c": 1})
    rungs = validation.samples_ladder_table(table, validation.by_temperature(samples), weights,
                                            scores=("profile_score", "mean_nll", "f_c"),
                                            n_boot=300).set_index("score")
    assert (rungs["systems"] == 4).all() and (rungs["pieces"] == 40).all()
    assert rungs.loc["mean_nll", "system_spearman"] == pytest.approx(1.0)
    assert rungs.loc["mean_nll", "clip_spearman"] > 0.8 and rungs.loc["mean_nll", "clip_ci_low"] > 0.7
    assert rungs.loc["profile_score", "system_spearman"] == pytest.approx(1.0)  # the weights' direction: -mean_nll
    assert rungs.loc["f_c", "clip_ci_low"] < 0 < rungs.loc["f_c", "clip_ci_high"]  # noise: the CI spans 0
    # a weaker model's samples below the finished model's at the same temperature: three systems
    weaker = pd.DataFrame([dict(mean_nll=4.0 + rng.normal(0, 0.3), f_ab=rng.normal(), f_c=rng.normal())
                           for _ in range(12)])
    below = validation.samples_ladder_table(table, [samples[samples["temperature"] == 1.0], weaker], weights,
                                            family=validation.WEAKER_FAMILY, scores=("mean_nll",), n_boot=300)
    assert below.loc[0, "family"] == validation.WEAKER_FAMILY and below.loc[0, "systems"] == 3
    assert below.loc[0, "system_spearman"] == pytest.approx(1.0)


def test_validation_pieces_leave_out_what_the_project_has_seen(tmp_path):
    held, seen = tmp_path / "all", tmp_path / "seen"
    for folder, names in ((held, ("a/x.mid", "a/y.mid", "b/z.mid", "c/w.mid")), (seen, ("a/y.mid",))):
        for name in names:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(b"MThd")
    pieces = validation.validation_pieces(None, held, exclude=seen)
    assert sorted(p.name for p in pieces) == ["a-x", "b-z", "c-w"]
    assert [p.name for p in validation.validation_pieces(2, held, exclude=seen)] == [p.name for p in pieces[:2]]


@pytest.mark.slow
def test_the_symbolic_modality_profiles_scores_and_names_a_short_one(tmp_path, capsys, tiny_symbolic_lm):
    import pretty_midi

    lm = tiny_symbolic_lm
    rng = np.random.default_rng(0)

    def score(seconds):
        midi = pretty_midi.PrettyMIDI()
        piano = pretty_midi.Instrument(program=0)
        for k, t in enumerate(np.arange(0.5, seconds, 0.25)):
            pitch = 60 + [0, 4, 7, 12, 7, 4][k % 6] + 2 * (k // 24 % 3)
            piano.notes.append(pretty_midi.Note(velocity=int(rng.integers(60, 90)), pitch=pitch, start=t, end=t + 0.24))
        midi.instruments.append(piano)
        return midi

    table = profile.profile_scores(lm, [score(15.5), score(6.0)], lm.sample_rate, names=["long", "short"])
    assert list(table["piece"]) == ["long"] and "too short" in table.attrs["errors"][0]["error"]
    assert "skipped short: too short" in capsys.readouterr().err
    assert np.isfinite(table[list(profile.FEATURES)].to_numpy()).all()
    assert table.attrs["probe_design"]["burst_frames"] == MIDI.probe_design.burst_frames
    # random notes in a simple repeating pattern cost more than the pattern: the probes break an expectation
    assert table.loc[0, "peak"] > 0


@pytest.mark.parametrize("modality", ["audio", "symbolic"])
def test_the_committed_validation_has_forty_report_pairs_per_family_and_strength(modality):
    folder = REPO_ROOT / "results" / "validation" / modality
    lofo = pd.read_csv(folder / "lofo.csv", dtype={"strength": str})
    per_strength = lofo[lofo["strength"] != "all"]
    assert per_strength["pairs"].min() >= 40
    families = set(lofo["held_out_family"])
    expected = set(evaluate.SYMBOLIC_FAMILIES) | (set(evaluate.VALIDATION_AUDIO_FAMILIES) if modality == "audio"
                                                  else set(evaluate.TOKEN_FAMILIES))
    assert families == expected
    run = json.loads((folder / "run.json").read_text())
    assert run["scored"] >= 40 and run["command"].startswith("lossprofile validate")
    assert {"retest", "seconds_10", "probe_seed_1"} <= set(pd.read_csv(folder / "properties.csv")["condition"])
    # the ladder's model rungs: the real pieces and the model's samples at every temperature
    samples = pd.read_parquet(folder / "samples_scored.parquet")
    assert sorted(samples["temperature"].unique()) == list(validation.SAMPLE_TEMPERATURES)
    assert samples.groupby("temperature").size().min() >= 20
    rungs = pd.read_csv(folder / "ladder.csv").query("family == @validation.SAMPLES_FAMILY")
    assert (rungs["systems"] == len(validation.SAMPLE_TEMPERATURES) + 1).all() and len(rungs) > 1


@pytest.mark.slow
def test_property_versions_of_one_piece_hold_the_properties_they_are_built_to_have(small_lm):
    """The audio properties on one ASAP performance and a small random model: a quieter copy, once normalised, is
    the same clip; a second probe seed moves the probe features and nothing that does not read the probes."""
    piece = validation.validation_pieces(1, folder=REPO_ROOT / "data" / "asap", exclude=None)[0]
    props = validation.property_versions(small_lm, piece, REPO_ROOT / "build" / "test-tmp", excerpt_seconds=6.0,
                                         prompt="piano", reference=small_lm).set_index("condition")
    assert set(props.index) == set(validation.PROPERTY_CONDITIONS)
    assert props[["peak", "mean_nll", "text_alignment", "binoculars"]].notna().all().all()
    long = props.index.isin(["seconds_10", "seconds_30"])  # 6 s hold one 3 s window and its look-ahead, not two
    assert props.loc[long, "context_gain"].notna().all() and props.loc[~long, "context_gain"].isna().all()
    # (the probes' noise, matched to the clip's level, may flip a code at a near-tie: peak agrees less closely)
    np.testing.assert_allclose(props.loc["quieter_6db", ["mean_nll", "text_alignment", "binoculars"]],
                               props.loc["reference", ["mean_nll", "text_alignment", "binoculars"]], atol=1e-3)
    assert props.loc["quieter_6db", "peak"] == pytest.approx(props.loc["reference", "peak"], abs=0.02)
    np.testing.assert_allclose(props.loc["probe_seed_1", ["mean_nll", "text_alignment", "binoculars"]],
                               props.loc["reference", ["mean_nll", "text_alignment", "binoculars"]], atol=1e-6)
    assert props.loc["probe_seed_1", "peak"] != props.loc["reference", "peak"]
    assert props.loc["raw_quieter_12db", "mean_nll"] != pytest.approx(props.loc["raw_reference", "mean_nll"], abs=1e-3)
