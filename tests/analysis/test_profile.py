"""The profile score: features on curves with known answers, the probe protocol, and its evaluation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from lossprofile import audio, modality
from lossprofile.analysis import evaluate, profile
from lossprofile.analysis import ratings as ratings_module
from lossprofile.errors import UsageError
from lossprofile.perturb import Perturbation

DESIGN = profile.ProbeDesign(n_bursts=2, burst_frames=5, long_frames=40, recovery_frames=20, first_onset=30)


def test_probe_features_on_curves_with_known_answers():
    T = 300
    clean = np.full(T, 3.0)
    perts = [Perturbation("noise", 50, 5), Perturbation("noise", 150, 5), Perturbation("noise", 150, 40)]
    probed = np.tile(clean, (3, 1))
    probed[0, 50:55] += 2.0  # a peak of 2, then back to the clean curve at once
    probed[1, 150:155] += 1.0
    probed[1, 155:165] += 0.5  # lingers for 10 frames at 0.5 (above the 0.25 settle band)
    probed[2, 150:155] += 1.5
    probed[2, 155:190] -= 1.0  # assimilates: cheaper than the music while the noise lasts
    f = profile.probe_features(clean, probed, perts, profile.ProbeDesign(recovery_frames=20, smooth_frames=1))
    assert f["peak"] == pytest.approx(1.5)
    assert f["assimilation"] == pytest.approx(-1.0)
    assert f["recovery_excess"] == pytest.approx((0 + 0.5 * 10 / 20) / 2)
    assert f["recovery_time"] == pytest.approx((0 + 10) / 2)
    assert f["recovery_var"] == pytest.approx((0 + np.var([0.5] * 10 + [0.0] * 10)) / 2)


def test_codebook_features_read_the_coarsest_and_the_finest_codebook_alone():
    K, T = 4, 300
    clean = np.tile(np.array([1.0, 2.0, 3.0, 4.0])[:, None], (1, T))  # [K, T]
    perts = [Perturbation("noise", 50, 5), Perturbation("noise", 150, 5), Perturbation("noise", 150, 40)]
    probed = np.tile(clean, (3, 1, 1))  # [P, K, T]
    for i, p in enumerate(perts[:2]):
        probed[i, 0, p.onset_frame : p.onset_frame + 5] += 2.0  # the bursts move the coarse codebook only
    probed[2, 3, 155:190] -= 1.0  # the long probe: only the fine codebook assimilates
    f = profile.codebook_features(clean, probed, perts, profile.ProbeDesign(recovery_frames=20, smooth_frames=1))
    assert list(f) == list(profile.CODEBOOK_FEATURES)
    assert f["peak_coarse"] == pytest.approx(2.0) and f["peak_fine"] == pytest.approx(0.0)
    assert f["assimilation_coarse"] == pytest.approx(0.0) and f["assimilation_fine"] == pytest.approx(-1.0)
    assert f["mean_nll_coarse"] == pytest.approx(1.0) and f["mean_nll_fine"] == pytest.approx(4.0)
    one = profile.codebook_features(clean[:1], probed[:, :1], perts, profile.ProbeDesign())
    assert all(np.isnan(v) for v in one.values())  # one code stream: no coarse/fine to tell apart


def test_settle_time_and_onsets():
    assert profile.settle_time(np.array([1.0, 1.0, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0]), 0.25, 5, 1) == 2
    assert profile.settle_time(np.ones(10), 0.25, 5, 1) == 10
    onsets = DESIGN.onsets(300, seed=3)
    assert onsets == DESIGN.onsets(300, seed=3) and onsets != DESIGN.onsets(300, seed=4)
    assert all(DESIGN.first_onset <= o and o + DESIGN.long_frames < 300 for o in onsets)
    assert onsets == sorted(onsets)
    with pytest.raises(ValueError, match="too short for probes"):
        DESIGN.onsets(60, seed=0)


def test_token_features_normalised_surprisal_is_zero_when_surprise_equals_expectation():
    nll = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    f = profile.token_features(nll, entropy=nll.clone(), rank=torch.ones(2, 2), surprisal_var=torch.ones(2, 2))
    assert f["normalized_surprisal"] == 0.0 and f["mean_log_rank"] == 0.0 and f["mean_nll"] == 2.5
    f = profile.token_features(nll, entropy=nll - 1.0, rank=torch.full((2, 2), np.e), surprisal_var=torch.ones(2, 2))
    assert f["normalized_surprisal"] == pytest.approx(4 / 2) and f["mean_log_rank"] == pytest.approx(1.0)


@pytest.mark.slow
def test_profile_scores_are_seeded_and_leave_the_clean_curve_untouched(small_lm, music_wav):
    wav = np.tile(music_wav, 2)  # 8 s
    a = profile.profile_scores(small_lm, [wav, wav[::-1].copy()], 32000, excerpt_seconds=6.0, design=DESIGN, seed=1)
    b = profile.profile_scores(small_lm, [wav, wav[::-1].copy()], 32000, excerpt_seconds=6.0, design=DESIGN, seed=1)
    assert list(a.columns[: 1 + len(profile.FEATURES)]) == ["piece", *profile.FEATURES]
    pd.testing.assert_frame_equal(a, b)
    assert a["profile_score"].isna().all() or np.isfinite(a["profile_score"]).all()
    # the clean curve's features equal scoring the clean excerpt alone, without probes
    # profile_scores brings the clip, then its excerpt, to LOUDNESS_DBFS before scoring
    excerpt = audio.normalize_rms(audio.normalize_rms(wav, profile.LOUDNESS_DBFS)[: 6 * 32000], profile.LOUDNESS_DBFS)
    codes = small_lm.encode(torch.from_numpy(excerpt)[None, None])
    alone = small_lm.token_statistics(codes)
    assert a.loc[0, "mean_nll"] == pytest.approx(float(alone.nll.mean()), abs=1e-4)
    assert a.loc[0, "mean_entropy"] == pytest.approx(float(alone.entropy.mean()), abs=1e-4)
    c = profile.profile_scores(small_lm, [wav], 32000, excerpt_seconds=6.0, design=DESIGN, seed=2)
    assert c.loc[0, "mean_nll"] == pytest.approx(a.loc[0, "mean_nll"], abs=1e-6)  # probes move, the clean pass not
    assert c.loc[0, "peak"] != a.loc[0, "peak"]
    # per codebook, from the same pass: the clean pass's own first and last codebooks
    assert a.loc[0, "mean_nll_coarse"] == pytest.approx(float(alone.nll[0, 0].mean()), abs=1e-4)
    assert a.loc[0, "mean_nll_fine"] == pytest.approx(float(alone.nll[0, -1].mean()), abs=1e-4)


@pytest.mark.slow
def test_probes_cost_one_clean_pass_plus_variant_suffixes_each_from_its_own_onset(small_lm, music_wav, monkeypatch):
    calls = []
    real = type(small_lm).shared_prefix_statistics

    def spy(lm, codes, shared_steps, prompt=None, group_sizes=None):
        calls.append((len(codes), shared_steps))
        return real(lm, codes, shared_steps, prompt, group_sizes)

    monkeypatch.setattr(type(small_lm), "shared_prefix_statistics", spy)
    (row,) = profile.profile_scores(small_lm, [np.tile(music_wav, 2)], 32000, excerpt_seconds=6.0,
                                    design=DESIGN).to_dict("records")
    assert sum(rows for rows, _ in calls) == 1 + DESIGN.n_bursts + 1  # clean + bursts + the long probe, once each
    assert min(shared for _, shared in calls) > DESIGN.first_onset  # everything before the first probe runs once
    assert len(calls) <= 1 + DESIGN.n_bursts  # probes that change at one frame share a forward pass
    assert np.isfinite(row["profile_score"])


def synthetic_table(n_pieces: int = 40, seed: int = 0) -> pd.DataFrame:
    """Versions whose 'peak' falls with degradation (a true signal) and whose other features are noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_pieces):
        base = rng.normal(0, 1, len(profile.FEATURES))
        for family in ("clean", "noise_segments", "shuffle", "band_delete"):
            for strength in ((0.0,) if family == "clean" else (0.2, 0.5)):
                values = base + rng.normal(0, 0.3, len(base))
                row = dict(zip(profile.FEATURES, values))
                row["peak"] = base[0] - 2.0 * strength + rng.normal(0, 0.1)
                rows.append(dict(dataset="ood", piece=f"p{i}", split=evaluate.split_of(f"p{i}"), family=family,
                                 strength=strength, **row))
    return pd.DataFrame(rows)


def test_fit_on_one_split_report_on_the_other_finds_the_real_signal():
    table = synthetic_table()
    results, weights = evaluate.evaluate_scores(table)
    assert max(weights["weights"], key=lambda k: abs(weights["weights"][k])) == "peak" and weights["weights"]["peak"] > 0
    assert weights["fitted_on"]["families"] == list(evaluate.FIT_FAMILIES)
    band = results[(results["family"] == "band_delete")].set_index("score")
    assert band.loc["profile_score", "auroc"] > 0.9 and band.loc["peak", "auroc"] > 0.9
    assert band.loc["profile_score", "ci_low"] > 0.8 and band.loc["profile_score", "spearman_strength"] > 0.3
    assert abs(band.loc["mean_entropy", "auroc"] - 0.5) < 0.25  # a feature with no signal stays near chance
    assert not band.loc["peak", "fit_family"]
    # every reported pair comes from the report split
    report_pieces = {p for p in table["piece"] if evaluate.split_of(p) == "report"}
    assert band.loc["peak", "pieces"] == len(report_pieces)


def test_ratings_reader_accepts_musiceval_layout_and_names_bad_files(tmp_path):
    csv = tmp_path / "ratings.csv"
    pd.DataFrame({"utt_id": ["sysA-001.wav", "sysA-002.wav", "sysB-001.wav", "sysC-001.wav"],
                  "system_id": ["A", "A", "B", "C"], "MOS": [4.0, 3.5, 2.0, 1.0]}).to_csv(csv, index=False)
    ratings = ratings_module.read_ratings(csv)
    assert list(ratings["clip"]) == ["sysA-001", "sysA-002", "sysB-001", "sysC-001"]
    scores = pd.DataFrame({"piece": ratings["clip"], "profile_score": [3.0, 2.5, 1.0, 0.0],
                           "mean_nll": [1.0, 2.0, 3.0, 4.0]})
    table = ratings_module.ratings_correlation(scores, ratings, ["profile_score", "mean_nll"]).set_index("score")
    assert table.loc["profile_score", "clip_spearman"] == pytest.approx(1.0)
    assert table.loc["mean_nll", "clip_spearman"] == pytest.approx(1.0)  # lower loss, higher rating
    assert table.loc["profile_score", "systems"] == 3 and table.loc["profile_score", "system_spearman"] == pytest.approx(1.0)
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"clip": ["a"], "score": ["n/a"], "system": ["A"]}).to_csv(bad, index=False)
    with pytest.raises(ValueError, match="bad.csv: rating 'mos' of clip 'a' is not a number"):
        ratings_module.read_ratings(bad)
    with pytest.raises(ValueError, match="no system column"):
        pd.DataFrame({"clip": ["a"], "mos": [1]}).to_csv(bad, index=False)
        ratings_module.read_ratings(bad)


@pytest.mark.slow
def test_cli_profile_scores_a_folder_reports_bad_files_and_correlates_with_ratings(small_checkpoint, tmp_path, capsys):
    import soundfile as sf

    from lossprofile import cli

    folder = tmp_path / "clips"
    folder.mkdir()
    rng = np.random.default_rng(0)
    t = np.arange(7 * 32000) / 32000
    for i in range(4):
        sf.write(folder / f"clip{i}.wav", (0.2 * np.sin(2 * np.pi * (220 + 40 * i) * t)
                                           + 0.01 * rng.standard_normal(t.size)).astype(np.float32), 32000)
    (folder / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    ratings = tmp_path / "mos.csv"
    pd.DataFrame({"clip_id": [f"clip{i}" for i in range(4)], "system": ["a", "a", "b", "c"],
                  "mos": [4.0, 3.0, 2.0, 1.0]}).to_csv(ratings, index=False)
    cli.main(["profile", "--model", small_checkpoint, "--device", "cpu", "--data", str(folder), "--out",
              str(tmp_path / "out"), "--seconds", "6", "--ratings", str(ratings), "--ratings-layout", "csv",
              "--clip-column", "clip_id", "--rating-columns", "mos", "--prompt", "piano", "--reference",
              small_checkpoint])
    table = pd.read_parquet(tmp_path / "out" / "profile_scores.parquet")
    assert sorted(table["piece"]) == [f"clip{i}" for i in range(4)]
    assert {"peak", "assimilation", "mean_nll", "normalized_surprisal", "model", "seed"} <= set(table.columns)
    assert table[["text_alignment", "binoculars"]].notna().all().all()
    assert table["context_gain"].isna().all()  # 6 s hold one 3 s window and its look-ahead, not two
    # the model as its own reference: the cross-entropy is its entropy
    np.testing.assert_allclose(table["binoculars"], table["mean_nll"] / table["mean_entropy"], rtol=1e-4)
    errors = pd.read_csv(tmp_path / "out" / "errors.csv")
    assert list(errors["piece"]) == ["broken"] and "broken.wav" in errors["error"][0]
    columns = pd.read_csv(tmp_path / "out" / "columns.csv").set_index("column")
    assert list(columns.index) == list(table.columns) and columns["meaning"].notna().all()
    assert columns.loc["recovery_time", "unit"] == "frames (20 ms)"
    page = (tmp_path / "out" / "report.html").read_text()
    rows = {name: page.split(f'<table id="{name}"')[1].split("</table>")[0].count("<tr>") - 1  # less the header
            for name in ("pieces", "errors", "columns")}
    assert rows == {"pieces": 4, "errors": 1, "columns": len(columns)}
    assert 'id="pieces"' in page and "broken.wav" in page and "http" not in page
    corr = pd.read_csv(tmp_path / "out" / "ratings_correlation.csv")
    assert set(corr["score"]) >= {"mean_nll", "peak", "text_alignment"} and (corr["clips"] == 4).all()
    assert set(corr["rating"]) == {"mos"} and (corr["systems"] == 3).all()
    varying = table.set_index("piece")[corr["score"]].nunique() > 1
    assert corr.set_index("score").loc[varying[varying].index, "clip_spearman"].between(-1, 1).all()


def test_the_recommended_weights_ship_with_the_package_and_say_where_they_came_from():
    # `lossprofile validate` picks and fits them; profile_scores uses them when given none
    from lossprofile.analysis import statistics, typicality

    weights = profile.load_weights()
    assert weights is not None
    if weights.get("kind") == "typicality":  # the clean reference ships beside it, disjoint from the validation
        reference, provenance = typicality.load_reference(weights["modality"])
        assert provenance["detector"] == weights["detector"] and set(weights["features"]) <= set(statistics.STATISTICS)
        assert len(reference) >= 150 and len(reference) == provenance["clips"]
        assert not set(reference["piece"]) & set(weights["provenance"]["pieces"])
        assert typicality.shipped(weights["modality"]).statistics == provenance["statistics"]
    elif weights.get("kind") == "rank_average":
        assert set(weights["features"]) <= set(profile.FEATURES)
        assert all(np.all(np.diff(weights["quantiles"][f]) >= 0) for f in weights["features"])
    else:
        assert set(weights["features"]) <= set(profile.FEATURES)
        assert all(weights["std"][name] > 0 for name in weights["weights"])
    source = weights["provenance"]
    assert source["chosen"] in ("profile_score", "rank_average", *profile.FEATURES,
                                *(f"typicality_{d}" for d in typicality.DETECTORS)) and len(source["pieces"]) >= 40
    assert len(source["families"]) >= 6 and source["loudness_dbfs"] == profile.LOUDNESS_DBFS
    # the winner is the candidate with the highest mean leave-one-family-out AUROC
    means = source["lofo_mean_auroc"]
    assert means[source["chosen"]] == max(means.values()) and "mean_nll" in means


@pytest.mark.slow
def test_a_quieter_copy_scores_the_same_and_without_normalisation_it_would_not(music_wav, tiny_lm):
    lm = tiny_lm  # the embedded model hears level (a random one barely does)
    wav = np.tile(music_wav, 2)
    quiet = wav * np.float32(10 ** (-24 / 20))
    a = profile.profile_scores(lm, [wav, quiet], 32000, excerpt_seconds=6.0, design=DESIGN, weights={})
    raw = profile.profile_scores(lm, [wav, quiet], 32000, excerpt_seconds=6.0, design=DESIGN, weights={},
                                 loudness_dbfs=None)
    normalised, as_is = (abs(t.loc[1, "mean_nll"] - t.loc[0, "mean_nll"]) for t in (a, raw))
    # the same excerpt after normalisation, up to float rounding (a residual-VQ code may flip at a near-tie)
    assert normalised < 0.005 and as_is > 0.02


@pytest.mark.slow
def test_profile_scores_name_a_clip_they_cannot_use_and_score_a_short_one_over_what_it_has(small_lm, capsys):
    rng = np.random.default_rng(1)

    def clip(seconds):
        t = np.arange(int(seconds * 32000)) / 32000
        return (0.2 * np.sin(2 * np.pi * 330 * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)

    nan = clip(7.0)
    nan[100] = np.nan
    table = profile.profile_scores(small_lm, [clip(7.0), clip(5.2), clip(2.0), nan], 32000, excerpt_seconds=6.0,
                                   names=["full", "short", "tiny", "nan"], min_seconds=4.0, design=DESIGN)
    assert list(table["piece"]) == ["full", "short"]
    # the short clip is scored over its whole frames (5.2 s → 260 frames of 20 ms)
    assert table["seconds_scored"].tolist() == [6.0, 5.2] and np.isfinite(table["mean_nll"]).all()
    assert [e["piece"] for e in table.attrs["errors"]] == ["tiny", "nan"]
    assert "too short" in table.attrs["errors"][0]["error"] and "NaN" in table.attrs["errors"][1]["error"]
    err = capsys.readouterr().err
    assert "skipped tiny: too short" in err and "skipped nan:" in err
    # what a profile needs is said, not what a full excerpt would: 2 s of sound, at least 4 s needed
    assert "tiny: too short for a profile: 2.00 s of sound (it needs at least 4 s)" == table.attrs["errors"][0]["error"]
    # an excerpt too short for the probes is one clip's problem, named and skipped, not the batch's
    few = profile.profile_scores(small_lm, [clip(7.0), clip(7.0)], 32000, excerpt_seconds=6.0, names=["a", "b"],
                                 design=profile.ProbeDesign(first_onset=280), report=False)
    assert few.empty and [e["piece"] for e in few.attrs["errors"]] == ["a", "b"]
    assert "too short for probes" in few.attrs["errors"][0]["error"]


# ---- scores from passes beyond the probes -------------------------------------------------------------------
def test_a_window_scored_alone_differs_from_the_full_pass_only_where_its_lost_context_mattered():
    """A first-order Markov model (tests/models/test_family.ToyLM): alone, a window's first frame is predicted
    from the start row instead of the previous frame's code, and nothing else in the window changes."""
    from tests.models.test_family import ToyLM

    lm = ToyLM()
    g = torch.Generator().manual_seed(0)
    codes = torch.randint(0, lm.V, (2, 103), generator=g)
    full = lm.token_statistics(codes[None]).nll[0].numpy()
    alone = modality.windows_alone(lm, codes, window_frames=20)
    # (T - lookahead) // W = (103 - 0) // 20 = 5 windows (a Markov model reads no later frame); the first and
    # the tail are not scored alone
    assert np.isnan(alone[:, :20]).all() and np.isnan(alone[:, 100:]).all() and np.isfinite(alone[:, 20:100]).all()
    gain = alone[:, 20:100] - full[:, 20:100]
    starts = np.arange(0, 80, 20)
    assert np.abs(np.delete(gain, starts, axis=1)).max() < 1e-5
    for k in range(2):
        for start in starts + 20:
            logp = torch.log_softmax(lm.table[k].double(), -1)
            expected = float(logp[int(codes[k, start - 1]), codes[k, start]] - logp[lm.V, codes[k, start]])
            assert alone[k, start] - full[k, start] == pytest.approx(expected, abs=1e-4)
    assert profile.context_gain(full, alone) == pytest.approx(gain.mean(), abs=1e-9)
    # a model that ignores its context gains nothing from it
    lm.table[:] = lm.table[:, :1]
    full = lm.token_statistics(codes[None]).nll[0].numpy()
    assert profile.context_gain(full, modality.windows_alone(lm, codes, 20)) == pytest.approx(0.0, abs=1e-6)


def test_under_the_delay_pattern_a_window_alone_sees_the_full_passs_lookahead_and_nothing_before(small_lm):
    K, W, T = small_lm.num_codebooks, 16, 80
    g = torch.Generator().manual_seed(1)
    codes = torch.randint(0, small_lm.cardinality, (K, T), generator=g)
    alone = modality.windows_alone(small_lm, codes, W, precision="fp32")
    n = (T - (K - 1)) // W
    # window 1 alone is the piece that starts at its first frame, scored in full (so with every later frame)
    later = small_lm.token_statistics(codes[None, :, W:]).nll[0, :, :W].numpy()
    np.testing.assert_allclose(alone[:, W : 2 * W], later, atol=1e-4)
    assert np.isnan(alone[:, n * W :]).all()
    changed = codes.clone()
    changed[:, : W] = (changed[:, : W] + 1) % small_lm.cardinality  # the music before window 1: not seen alone
    changed[:, 2 * W + K - 1] = (changed[:, 2 * W + K - 1] + 1) % small_lm.cardinality  # past window 1's lookahead
    again = modality.windows_alone(small_lm, changed, W, precision="fp32")
    np.testing.assert_allclose(again[:, W : 2 * W], alone[:, W : 2 * W], atol=1e-5)
    assert np.abs(again[:, 2 * W : 3 * W] - alone[:, 2 * W : 3 * W]).max() > 1e-3  # window 2 holds that frame


@pytest.mark.slow
def test_binoculars_with_the_model_as_its_own_reference_is_mean_nll_over_mean_entropy(small_lm, music_wav):
    table = profile.profile_scores(small_lm, [np.tile(music_wav, 2)], 32000, excerpt_seconds=6.0, design=DESIGN,
                                   reference=small_lm)
    # the cross-entropy of a distribution with itself is its entropy, which token_statistics computes its own way
    assert table.loc[0, "binoculars"] == pytest.approx(table.loc[0, "mean_nll"] / table.loc[0, "mean_entropy"],
                                                      rel=1e-4)
    assert np.isnan(profile.profile_scores(small_lm, [np.tile(music_wav, 2)], 32000, excerpt_seconds=6.0,
                                           design=DESIGN).loc[0, "binoculars"])


@pytest.mark.slow
def test_binoculars_against_another_model_by_hand(small_checkpoint, tmp_path):
    from tests.conftest import save_random_checkpoint

    from lossprofile import load_model

    lm = load_model(small_checkpoint, device="cpu")
    other = load_model(save_random_checkpoint(tmp_path / "other", seed=5), device="cpu")
    codes = torch.randint(0, lm.cardinality, (1, lm.num_codebooks, 40), generator=torch.Generator().manual_seed(2))
    p, q = lm.token_log_probs(codes).double(), other.token_log_probs(codes).double()
    assert p.shape == (1, lm.num_codebooks, 40, lm.cardinality)
    np.testing.assert_allclose(-p.gather(-1, codes[..., None])[..., 0].numpy(),
                               lm.token_statistics(codes).nll.numpy(), atol=1e-4)  # the distributions the NLL reads
    cross = sum(float(-(q[0, k, t].exp() * p[0, k, t]).sum()) for k in range(codes.shape[1]) for t in range(40))
    nll = float(lm.token_statistics(codes).nll.double().sum())
    assert profile.binoculars(lm, other, codes) == pytest.approx(nll / cross, rel=1e-4)


def test_a_reference_that_reads_other_codes_is_refused_by_name(small_lm, music_wav, tiny_symbolic_lm):
    symbolic = tiny_symbolic_lm
    with pytest.raises(ValueError, match="tiny-symbolic.*does not read the codes"):
        profile.profile_scores(small_lm, [music_wav], 32000, excerpt_seconds=3.0, reference=symbolic)
    with pytest.raises(ValueError, match="takes no text prompt"):
        profile.profile_scores(symbolic, [], 0, prompt="piano")


@pytest.mark.slow
def test_text_alignment_is_the_nll_the_prompt_saves(music_wav, tiny_lm):
    lm = tiny_lm  # trained with descriptions, so its text moves its predictions
    wav = np.tile(music_wav, 2)
    table = profile.profile_scores(lm, [wav], 32000, excerpt_seconds=6.0, design=DESIGN, prompt="organ chorale")
    excerpt = audio.normalize_rms(modality.usable_excerpt(audio.normalize_rms(wav), 32000, 6.0, 6.0, lm.hop_length, "x"))
    codes = lm.encode(torch.from_numpy(excerpt)[None, None])
    curve = (lm.token_statistics(codes).nll - lm.token_statistics(codes, prompt="organ chorale").nll)[0]
    np.testing.assert_allclose(profile.text_alignment_curve(lm, codes[0], "organ chorale"), curve.numpy(), atol=1e-4)
    assert table.loc[0, "text_alignment"] == pytest.approx(float(curve.mean()), abs=1e-4)
    assert float(curve.abs().mean()) > 5e-3
    assert table.attrs["prompt"] == "organ chorale"


def test_a_clips_profile_is_a_function_of_its_content_and_a_typicality_score_explains_itself(small_lm, music_wav):
    from lossprofile.analysis import statistics, typicality

    wav = np.tile(music_wav, 2)
    other = np.roll(wav, 12345)
    a = profile.profile_scores(small_lm, [wav, other], 32000, excerpt_seconds=6.0, design=DESIGN, seed=3,
                               names=["song.wav", "other.flac"], weights={})
    b = profile.profile_scores(small_lm, [other, wav], 32000, excerpt_seconds=6.0, design=DESIGN, seed=3,
                               names=["renamed copy", "x"], weights={})
    # the same audio under another name and in another position: the same row, probes and all
    pd.testing.assert_frame_equal(a.drop(columns="piece").iloc[[0]].reset_index(drop=True),
                                  b.drop(columns="piece").iloc[[1]].reset_index(drop=True))
    # every statistic of the pass; band shares need a reference, the pass gives the window quantiles they read
    stats = [s for s in statistics.names("audio") if statistics.STATISTICS[s].band is None]
    assert set(stats) <= set(a.columns) and not set(statistics.names("audio")) - set(stats) & set(a.columns)
    assert set(statistics.pass_columns()) <= set(a.columns)
    # a reference of clean clips: the statistics of jittered copies of these rows
    rng = np.random.default_rng(0)
    base = pd.concat([a] * 20, ignore_index=True)
    reference = base.assign(piece=[f"ref{i}" for i in range(len(base))],
                            **{s: base[s] * (1 + 0.05 * rng.standard_normal(len(base))) for s in stats})
    weights = dict(kind="typicality", modality="audio", detector="mahalanobis", features=stats)
    with typicality.reference_in_use("audio", reference, "mahalanobis", stats):
        scored = profile.profile_scores(small_lm, [wav, np.zeros_like(wav) + 0.01 * rng.standard_normal(wav.size)
                                                   .astype(np.float32)], 32000, excerpt_seconds=6.0, design=DESIGN,
                                        seed=3, weights=weights)
        typ = typicality.shipped("audio")
    assert np.allclose(scored["profile_score"], typ.score(scored))
    assert scored.loc[0, "profile_score"] > scored.loc[1, "profile_score"]  # noise is no clean music
    assert scored.loc[1, "typicality_percentile"] == 0.0 and scored.loc[0, "typicality_percentile"] > 0
    assert all(scored.loc[1, f"atypical_{k}"].split(" = ")[0] in stats for k in (1, 2, 3))


def test_a_clip_at_another_sample_rate_is_resampled_to_the_models_not_read_at_the_wrong_speed(small_lm, music_wav):
    wav = np.tile(music_wav, 2)[: 7 * 32000]  # 32 kHz, the model's rate
    at_44k = audio.resample(wav, 32000, 44100)
    kwargs = dict(excerpt_seconds=6.0, design=DESIGN, weights={}, report=False)
    native = profile.profile_scores(small_lm, [wav], 32000, names=["a"], **kwargs).iloc[0]
    resampled = profile.profile_scores(small_lm, [at_44k], 44100, names=["a"], **kwargs).iloc[0]
    # the same music: the same excerpt length and nearly the same curve (two polyphase resamplings apart)
    assert resampled["seconds_scored"] == native["seconds_scored"] == 6.0
    assert resampled["mean_nll"] == pytest.approx(native["mean_nll"], rel=0.02)
    # read as if it were 32 kHz (what happened before), the same samples are another, slower piece
    slowed = profile.profile_scores(small_lm, [at_44k], 32000, names=["a"], **kwargs).iloc[0]
    assert abs(slowed["mean_nll"] - native["mean_nll"]) > 5 * abs(resampled["mean_nll"] - native["mean_nll"])
    with pytest.raises(UsageError, match="z: sample_rate must be a positive whole number of Hz, got 0"):
        profile.profile_scores(small_lm, [wav], 0, names=["z"], **kwargs)  # the call's mistake, not one clip's


def test_a_call_that_cannot_mean_what_it_says_is_refused_before_any_clip_is_scored(small_lm, music_wav):
    clip = np.tile(music_wav, 2)[: 7 * 32000]
    kwargs = dict(excerpt_seconds=6.0, design=DESIGN, weights={}, report=False)
    cases = {
        "clips is one waveform \\[S\\]: give a list of clips": dict(clips=clip),
        "names has 1 entries for 2 clips": dict(clips=[clip, clip], names=["a"]),
        "names has 3 entries for 2 clips": dict(clips=[clip, clip], names=["a", "b", "c"]),
        "names must be unique .* 'a' repeated": dict(clips=[clip, clip], names=["a", "a"]),
        "excerpt_seconds must be a positive number of seconds, got -5": dict(clips=[clip], excerpt_seconds=-5),
    }
    for message, call in cases.items():
        with pytest.raises(UsageError, match=message):
            profile.profile_scores(small_lm, sample_rate=32000, **{**kwargs, **call})
