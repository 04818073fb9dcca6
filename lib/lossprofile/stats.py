"""The paper's statistics: Pearson, Spearman and linear regression with p-values and CIs."""

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
                 by: list[str] | None = None) -> pd.DataFrame:
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
