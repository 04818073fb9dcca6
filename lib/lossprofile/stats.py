"""The paper's statistics (Pearson, Spearman, linear regression with p-values and CIs) and AUROCs with bootstrap CIs."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as st


def _clean(x, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D of equal length, got {x.shape} and {y.shape}")
    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 3:
        raise ValueError(f"need at least 3 finite (x, y) pairs, got {int(keep.sum())}")
    return x[keep], y[keep]


def correlations(x, y, confidence: float = 0.95) -> dict:
    """Pearson r (with Fisher-z CI), Spearman rho, and their two-sided p-values."""
    x, y = _clean(x, y)
    pearson = st.pearsonr(x, y)
    ci = pearson.confidence_interval(confidence)
    spearman = st.spearmanr(x, y)
    return dict(n=len(x), pearson_r=float(pearson.statistic), pearson_p=float(pearson.pvalue),
                pearson_ci_low=float(ci.low), pearson_ci_high=float(ci.high),
                spearman_rho=float(spearman.statistic), spearman_p=float(spearman.pvalue))


def regression(x, y, confidence: float = 0.95) -> dict:
    """Least-squares line y = slope * x + intercept; slope's t-test p-value and CI."""
    x, y = _clean(x, y)
    fit = st.linregress(x, y)
    t = st.t.ppf(0.5 + confidence / 2, len(x) - 2)
    return dict(n=len(x), slope=float(fit.slope), intercept=float(fit.intercept), r=float(fit.rvalue),
                slope_p=float(fit.pvalue), slope_stderr=float(fit.stderr),
                slope_ci_low=float(fit.slope - t * fit.stderr), slope_ci_high=float(fit.slope + t * fit.stderr))


def length_trend(table: pd.DataFrame, x: str = "length_frames", y: str = "mean_delta",
                 *, by: list[str] | None = None) -> pd.DataFrame:
    """Correlation and regression of ``y`` on ``x``, over all rows and per group in ``by``."""
    groups = [((), table)] if not by else list(table.groupby(by))
    rows = []
    for key, part in groups:
        key = key if isinstance(key, tuple) else (key,)
        try:
            row = {**dict(zip(by or [], key)), **correlations(part[x], part[y]), **regression(part[x], part[y])}
        except ValueError:
            continue  # too few points in this group
        rows.append(row)
    return pd.DataFrame(rows)


def auroc(positive, negative) -> float:
    """P(a random ``positive`` score > a random ``negative`` one), ties counting one half."""
    positive, negative = np.asarray(positive, float)[:, None], np.asarray(negative, float)[None, :]
    return float(((positive > negative) + 0.5 * (positive == negative)).mean())


def paired_auroc(x, y, *, n_boot: int = 2000, seed: int = 0) -> dict:
    """Share of pairs with ``x[i] > y[i]`` (ties one half), with a bootstrap 95% CI over pairs.

    For a loss, pass the degraded version's as ``x`` and the clean one's as ``y``: 1 means the
    loss ranks the clean version better in every pair, 0.5 is chance.
    """
    diff = np.asarray(x, float) - np.asarray(y, float)
    wins = (diff > 0) + 0.5 * (diff == 0)
    rng = np.random.default_rng(seed)
    boots = wins[rng.integers(0, len(wins), size=(n_boot, len(wins)))].mean(axis=1)
    return dict(auroc=float(wins.mean()), ci_low=float(np.quantile(boots, 0.025)),
                ci_high=float(np.quantile(boots, 0.975)), n=int(len(wins)))


def auroc_ci(x, y, *, n_boot: int = 2000, seed: int = 0) -> dict:
    """Unpaired [`auroc`][lossprofile.stats.auroc] of ``x`` above ``y`` with a bootstrap 95% CI (both groups resampled)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    rng = np.random.default_rng(seed)
    boots = [auroc(x[rng.integers(0, len(x), len(x))], y[rng.integers(0, len(y), len(y))]) for _ in range(n_boot)]
    return dict(auroc=auroc(x, y), ci_low=float(np.quantile(boots, 0.025)), ci_high=float(np.quantile(boots, 0.975)),
                n=int(min(len(x), len(y))))


def centred_ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share theirs) of each row of ``x`` ``[B, N]``, less the row's mean rank."""
    ranks = st.rankdata(x, axis=1)
    return ranks - ranks.mean(1, keepdims=True)


def rowwise_spearman(x: np.ndarray, y: np.ndarray, x_ranks: np.ndarray | None = None) -> np.ndarray:
    """Spearman's rho of each row pair of ``x`` and ``y`` ``[B, N]`` (average ranks for ties; NaN where a row is
    constant): the bootstrap's many small correlations in one vectorised pass. ``x_ranks``: ``centred_ranks(x)``
    where the caller correlates the same ``x`` with many ``y`` (ranking is most of the cost)."""
    rx = centred_ranks(x) if x_ranks is None else x_ranks
    ry = centred_ranks(y)
    denom = np.sqrt((rx**2).sum(1) * (ry**2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (rx * ry).sum(1) / denom, np.nan)
