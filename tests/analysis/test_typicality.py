"""Curve statistics and direction-free typicality scores fitted on clean music only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lossprofile import columns
from lossprofile.analysis import statistics, typicality, validation
from lossprofile.analysis.statistics import Curves
from lossprofile.analysis.validation import lofo


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-50, 50), min_size=1, max_size=60), st.integers(1, 70))
def test_rolling_means_are_the_mean_of_every_run(values, width):
    got = statistics.rolling_means(np.array(values), width)
    want = [np.mean(values[i : i + width]) for i in range(len(values) - width + 1)]
    assert got.shape == (max(0, len(values) - width + 1),)
    assert np.allclose(got, want, atol=1e-9)


def curves(nll: np.ndarray, entropy: np.ndarray, codes: np.ndarray) -> Curves:
    return Curves(nll=nll, entropy=entropy, codes=codes, frame_nll=nll.mean(0), frame_entropy=entropy.mean(0),
                  frame_rate=50, cardinality=2048)


def test_every_statistic_has_a_unit_a_meaning_a_group_and_a_dictionary_entry():
    assert len(statistics.STATISTICS) >= 40
    for s in statistics.STATISTICS.values():
        assert s.meaning and s.group and set(s.modalities) <= {"audio", "midi"}
        assert columns.describe(s.name) == (s.unit, s.meaning)
    with pytest.raises(ValueError, match="twice"):
        statistics.statistic("gap_mean", "", "again", "calibration")


def test_windowed_statistics_see_a_stretch_the_mean_hides():
    rng = np.random.default_rng(0)
    flat = 3.0 + 0.1 * rng.standard_normal((4, 750))
    dip = flat.copy()
    dip[:, 300:400] -= 2.0  # two seconds of something easy (noise, once it is the context)
    dip[:, 500:600] += 2.0  # and two of something hard: the mean is unchanged
    codes = rng.integers(0, 2048, (4, 750))
    a, b = (statistics.curve_statistics(curves(x, x - 1.0, codes)) for x in (flat, dip))
    assert abs(dip.mean() - flat.mean()) < 1e-9
    assert b["nll_w2s_min"] < a["nll_w2s_min"] - 1.5 and b["nll_w2s_max"] > a["nll_w2s_max"] + 1.5
    assert b["nll_w0.5s_spread"] > 5 * a["nll_w0.5s_spread"]
    assert b["nll_w2s_high"] > 1.5 and b["nll_w2s_low"] > 1.5 and a["nll_w2s_high"] < 0.2  # against its own middle
    shifted = statistics.curve_statistics(curves(dip + 5.0, dip + 4.0, codes))  # a louder piece, the same stretch
    assert shifted["nll_w2s_high"] == pytest.approx(b["nll_w2s_high"]) and shifted["nll_w2s_max"] > b["nll_w2s_max"]
    assert a["gap_mean"] == pytest.approx(1.0) and a["nll_k2"] == pytest.approx(flat[2].mean())
    assert np.isnan(statistics.windowed(curves(flat[:, :100], flat[:, :100], codes[:, :100]), "nll", 8.0, "max"))


def test_the_compressor_tells_simple_codes_from_busy_ones_without_the_model():
    rng = np.random.default_rng(1)
    busy = rng.integers(0, 2048, (4, 750))
    loop = np.tile(busy[:, :25], (1, 30))  # half a second repeated
    constant = np.zeros((4, 750), int)
    lengths = [statistics.code_length_nats(c, 2048) for c in (constant, loop, busy)]
    assert lengths[0] < lengths[1] < lengths[2]
    assert lengths[2] == pytest.approx(np.log(2048), rel=0.25)  # random codes: about log(cardinality) each


def reference_rows(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((n, 3)) @ np.array([[1.0, 0.6, 0.0], [0.0, 0.8, 0.3], [0.0, 0.0, 1.0]])
    return pd.DataFrame(mix * [1.0, 2.0, 0.5] + [3.0, -1.0, 10.0], columns=["a", "b", "c"]).assign(
        piece=[f"p{i // 2}" for i in range(n)])


@pytest.mark.parametrize("detector", typicality.DETECTORS)
def test_each_detector_flags_atypical_clips_in_either_direction(detector):
    ref = reference_rows()
    typ = typicality.fit(ref, ["a", "b", "c", "absent"], detector)
    assert typ.statistics == ["a", "b", "c"]
    center = ref[["a", "b", "c"]].median()
    probes = pd.DataFrame([center, center + [0, 0, 3.0], center - [0, 0, 3.0], center + [5.0, 0, 0],
                           center - [5.0, 0, 0]])
    score = typ.score(probes)
    assert (score[0] > score[1:]).all(), score  # too high and too low are both atypical
    assert typ.percentile(score[:1])[0] > 30 and (typ.percentile(score[1:]) < 5).all()
    assert np.isnan(typ.score(probes.assign(a=[np.nan, 1, 1, 1, 1]))[0])


def test_explain_names_the_statistic_that_moved_with_the_reference_range():
    ref = reference_rows()
    typ = typicality.fit(ref, ["a", "b", "c"], "mahalanobis")
    row = ref[["a", "b", "c"]].median().to_frame().T.assign(c=20.0)
    why = typicality.explain(typ, row)
    assert why["atypical_1"].iloc[0].startswith("c = 20 (clean music: ") and why["atypical_1"].iloc[0].endswith(
        "above)")
    assert why["typicality_percentile"].iloc[0] == 0.0


def test_tail_probabilities_are_two_sided_smoothed_and_keep_falling_past_the_reference():
    ref = (np.arange(99, dtype=float)[:, None] - 49) / 20  # standardised: the median at 0
    z = (np.array([49.0, 9.0, 89.0, 0.0, 98.0, -1.0, 99.0, -40.0, 138.0])[:, None] - 49) / 20
    p = typicality.two_sided_tail(ref, z)[:, 0]
    assert p[0] == pytest.approx(1.0)  # the median: mid-rank 49.5, (49.5 + 0.5) / 100
    assert p[1] == pytest.approx(0.2) and p[2] == pytest.approx(0.2)  # as far below as above, the same tail
    floor = 2 / 100
    assert p[3] == pytest.approx(floor) and p[4] == pytest.approx(floor)  # the first and the last clean clip
    assert p[5] < floor and p[6] < floor  # past the last clean clip the tail goes on falling
    assert p[7] < p[5] and p[8] < p[6] and p[7] == pytest.approx(p[8], rel=1e-6)


def versions_table(seed: int = 0) -> pd.DataFrame:
    """Clean clips drawn like the reference; one damage family lowers statistic a, the other raises it."""
    rng = np.random.default_rng(seed)
    clean = reference_rows(60, seed + 1)[["a", "b", "c"]]
    rows = []
    for i, x in clean.iterrows():
        piece = f"q{i}"
        rows.append(dict(piece=piece, family="clean", strength=0.0, **x))
        for family, shift in (("too_easy", -3.0), ("too_hard", +3.0)):
            rows.append(dict(piece=piece, family=family, strength=0.5, **(x + [shift, 0, 0] +
                                                                         0.1 * rng.standard_normal(3))))
    table = pd.DataFrame(rows).assign(dataset="x", model="m")
    return table.assign(split=[("fit" if int(p[1:]) % 2 else "report") for p in table["piece"]])


def test_a_reference_of_clean_clips_finds_damage_of_both_signs_where_a_signed_score_cannot():
    table = versions_table()
    ref = reference_rows(200, 7)
    scored = table.assign(mahalanobis=typicality.fit(ref, ["a", "b", "c"], "mahalanobis").score(table))
    typical = validation.mean_paired_auroc(scored, scored["mahalanobis"].to_numpy())
    signed = validation.mean_paired_auroc(scored, scored["a"].to_numpy())
    assert typical["too_easy"] > 0.9 and typical["too_hard"] > 0.9
    assert signed["too_easy"] > 0.9 and signed["too_hard"] < 0.1  # right for one damage, wrong for the other
    clip = validation.clip_level_table(scored, ["mahalanobis"], features=("a",), n_boot=200)
    pooled = clip[(clip["held_out_family"] == "all")].iloc[0]
    assert pooled["clean_clips"] == 60 and pooled["damaged_clips"] == 120 and pooled["auroc"] > 0.9
    assert pooled["ci_low"] < pooled["auroc"] < pooled["ci_high"]


def test_audibility_says_which_families_the_curves_register_in_either_direction(monkeypatch):
    table = versions_table()
    quiet = table[table["family"] == "too_easy"].assign(family="inaudible")
    quiet[["a", "b", "c"]] = table[table["family"] == "clean"][["a", "b", "c"]].to_numpy()  # nothing changed
    table = pd.concat([table, quiet], ignore_index=True)
    monkeypatch.setattr(statistics, "names", lambda modality, shipped_only=True: ["a", "b", "c"])
    audible = validation.audibility_table(table).set_index("family")
    assert audible.loc["too_easy", "best_statistic"] == "a" and audible.loc["too_easy", "best_two_sided_auroc"] == 1.0
    assert audible.loc["too_hard", "best_two_sided_auroc"] == 1.0  # the other direction counts the same
    assert audible.loc["inaudible", "best_two_sided_auroc"] == 0.5 and audible.loc["inaudible",
                                                                                   "statistics_at_0_75"] == 0


def test_the_clip_level_bootstrap_weights_each_drawn_piece_like_resampling_its_clips():
    from lossprofile.stats import auroc

    rng = np.random.default_rng(3)
    names = np.array([f"p{i}" for i in range(6)])
    x_pieces, y_pieces = names[rng.integers(0, 6, 9)], names[rng.integers(0, 6, 20)]
    x, y = rng.integers(0, 5, 9).astype(float), rng.integers(0, 5, 20).astype(float)  # ties too
    row, boots = lofo._clip_auroc(names, x_pieces, x, y_pieces, y, n_boot=30, seed=4)
    assert row["auroc"] == pytest.approx(auroc(x, y))
    draws = np.random.default_rng(4).integers(0, 6, size=(30, 6))  # the same draws, resampled clip by clip
    for b, draw in enumerate(draws):
        xs = np.concatenate([x[x_pieces == names[d]] for d in draw])
        ys = np.concatenate([y[y_pieces == names[d]] for d in draw])
        assert boots[b] == pytest.approx(auroc(xs, ys)) if len(xs) and len(ys) else np.isnan(boots[b])
