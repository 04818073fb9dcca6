"""Statistics against closed forms and textbook values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lossprofile import stats


def test_pearson_and_regression_match_closed_forms():
    rng = np.random.default_rng(0)
    x = np.array([5, 10, 50, 100, 150, 200] * 5, dtype=float)
    y = -0.004 * x + rng.normal(0, 0.1, x.size)
    c = stats.correlations(x, y)
    assert c["pearson_r"] == pytest.approx(np.corrcoef(x, y)[0, 1])
    ranks = lambda v: pd.Series(v).rank().to_numpy()  # noqa: E731
    assert c["spearman_rho"] == pytest.approx(np.corrcoef(ranks(x), ranks(y))[0, 1])
    assert c["pearson_ci_low"] < c["pearson_r"] < c["pearson_ci_high"]
    r = stats.regression(x, y)
    slope, intercept = np.polyfit(x, y, 1)
    assert r["slope"] == pytest.approx(slope) and r["intercept"] == pytest.approx(intercept)
    assert r["slope_ci_low"] < -0.004 < r["slope_ci_high"] and r["slope_p"] < 1e-6


def test_p_value_of_a_perfect_three_point_fit_and_a_null_case():
    # n=4, r=0.8: two-sided p from t = r*sqrt(n-2)/sqrt(1-r^2) = 1.8856 with 2 dof -> p = 0.2
    x = np.array([1.0, 2.0, 3.0, 4.0])
    y = np.array([1.0, 3.0, 2.0, 4.0])
    c = stats.correlations(x, y)
    assert c["pearson_r"] == pytest.approx(0.8)
    assert c["pearson_p"] == pytest.approx(0.2, abs=1e-6)


def test_too_few_points_and_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="at least 3"):
        stats.correlations([1, 2], [3, 4])
    with pytest.raises(ValueError, match="equal length"):
        stats.regression([1, 2, 3], [1, 2])


def test_length_trend_per_group():
    table = pd.DataFrame({"length_frames": [5, 50, 200] * 2, "mean_delta": [0, -1, -2, 0, -0.5, -1.0],
                          "dataset": ["a"] * 3 + ["b"] * 3})
    out = stats.length_trend(table, by=["dataset"])
    assert list(out["dataset"]) == ["a", "b"] and (out["slope"] < 0).all()


def test_auroc_and_paired_auroc_on_scores_with_known_answers():
    assert stats.auroc([2, 3, 4], [0, 1]) == 1.0
    assert stats.auroc([1], [1]) == 0.5
    rng = np.random.default_rng(0)
    # two normals one standard deviation apart: AUROC = Phi(1 / sqrt(2)) = 0.760
    pos, neg = rng.normal(1, 1, 4000), rng.normal(0, 1, 4000)
    assert stats.auroc(pos, neg) == pytest.approx(0.760, abs=0.01)
    better = rng.normal(0, 1, 2000)
    result = stats.paired_auroc(better + 0.5 + rng.normal(0, 0.5, 2000), better)
    # P(0.5 + N(0, 0.5) > 0) = Phi(1) = 0.841; its standard error over 2000 pairs is 0.008
    assert result["auroc"] == pytest.approx(0.841, abs=0.03)
    assert result["ci_low"] < result["auroc"] < result["ci_high"] and 0.02 < result["ci_high"] - result["ci_low"] < 0.05
    assert stats.paired_auroc([1.0, 2.0], [1.0, 2.0])["auroc"] == 0.5
    unpaired = stats.auroc_ci(rng.normal(1, 1, 300), rng.normal(0, 1, 300), n_boot=300)
    assert unpaired["auroc"] == pytest.approx(0.760, abs=0.06) and unpaired["ci_low"] < unpaired["auroc"] < unpaired["ci_high"]
