"""The registry of curve statistics: every number the profile reads off a model's clean pass over a clip.

One function and one row each (`statistic`), like `lossprofile.perturb.waveform.KIND_TABLE`: its
name, unit, meaning, the group it belongs to (for ablations), the modalities it applies to, and whether the
shipped typicality score may use it. `curve_statistics` computes every registered one from a
`Curves` (what one clean pass gives); `STATISTICS` feeds the data dictionary
([`lossprofile.columns`][]) and the typicality scores (`lossprofile.analysis.typicality`).

Statistics computed elsewhere (the probe and token features of [`lossprofile.analysis.profile`][]) are
registered here too, with ``compute=None``, so that the registry lists every column a profile row has.

The mean hides what these show: windowed NLL and entropy at 0.5 / 2 / 8 s (the highest, the lowest and the
spread of a window's mean: a stretch of noise is low, a glitch is high, a shuffle is uneven), the calibration gap
(NLL − entropy: how much more surprised the model is than it expected to be), each codebook's own mean, and a
complexity reference that owes nothing to the model (a generic compressor's code length of the codes), so that
"simple" and "typical" can be told apart.

Two kinds more. The codec's own **quantisation residual** per RVQ level (``quant_residual_k*``, group ``codec``,
audio only; VQScore's idea for speech, Fu et al. 2024): how much of what each level was given its chosen codeword
leaves unexplained. It reads the codec's encoder and quantizer only, no LM pass (`Curves.residual`, from
[`models.TokenLM.quantization_residual`][lossprofile.models.base.TokenLM.quantization_residual]; NaN for a family without one). And **band shares**
(``*_outside``, group ``band``): the share of a clip's windows whose mean lies outside the clean reference's 5–95%
band of window means. They depend on a reference, so the clean pass computes none of them: it records each
clip's window-mean quantiles (`WINDOW_QUANTILES`, columns ``<curve>_w<seconds>s_q<percent>``, no registry
rows), a reference's band is the 5% and 95% quantiles of its clips' pooled window means (`reference_bands`,
shipped in the reference's provenance as ``window_bands``), and `with_band_statistics` computes the shares
wherever a reference is at hand (the typicality scores, the validation's tables); elsewhere they are absent.

Units: audio curves are per code (the mean over a frame's codebooks); a model over MIDI tokens has per-frame
*sums* over the tokens whose event falls in the 20 ms frame, so its windowed statistics are rates (nats per
second).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .. import columns

WINDOW_SECONDS = (0.5, 2.0, 8.0)
MAX_CODEBOOKS = 4  # per-codebook statistics k0..k3 (NaN where a model has fewer)


@dataclass(frozen=True)
class Curves:
    """What one clean pass over a clip gives.

    ``nll``, ``entropy``: ``[K, T]`` per code (per token for a model over MIDI, K = 1); ``codes``: ``[K, T]``
    integer token ids; ``frame_nll``, ``frame_entropy``: ``[F]`` on the 20 ms frame grid (audio: means over the
    codebooks, F = T; MIDI: sums over each frame's tokens); ``frame_rate``: frames per second of that grid;
    ``cardinality``: codes per codebook; ``modality``: ``"audio"`` or ``"midi"``; ``residual``: L2 norms ``[K + 1,
    T]`` of the residual entering each RVQ level of the codec and of the one left after the last
    ([`models.TokenLM.quantization_residual`][lossprofile.models.base.TokenLM.quantization_residual]), None for a family without one.
    """

    nll: np.ndarray
    entropy: np.ndarray
    codes: np.ndarray
    frame_nll: np.ndarray
    frame_entropy: np.ndarray
    frame_rate: float
    cardinality: int
    modality: str = "audio"
    residual: np.ndarray | None = None  # [K + 1, T] the codec's VQ leftovers (None: no codec residual)


@dataclass(frozen=True)
class Statistic:
    name: str
    unit: str
    meaning: str
    group: str  # for ablations: windowed_nll, windowed_entropy, calibration, codebook, complexity, codec, band,
    # probe, token, pass
    modalities: tuple[str, ...] = ("audio", "midi")
    shipped: bool = True  # the shipped typicality score may use it
    compute: Callable[[Curves], float] | None = None  # None: a column computed by lossprofile.analysis.profile
    band: str | None = None  # a band share's window curve (e.g. "nll_w2s"): computed against a reference's band


STATISTICS: dict[str, Statistic] = {}


def statistic(name: str, unit: str, meaning: str, group: str, *, modalities: tuple[str, ...] = ("audio", "midi"),
              shipped: bool = True, compute: Callable[[Curves], float] | None = None,
              band: str | None = None) -> Statistic:
    """Register one statistic (a new one is this call and its function) → the row."""
    if name in STATISTICS:
        raise ValueError(f"statistic {name!r} is registered twice")
    STATISTICS[name] = row = Statistic(name, unit, meaning, group, modalities, shipped, compute, band)
    columns.register(name, unit, meaning)
    return row


def rolling_means(values: np.ndarray, width: int) -> np.ndarray:
    """Means of every run of ``width`` consecutive values ``[T]`` → ``[T - width + 1]`` (empty if T < width)."""
    values = np.asarray(values, np.float64)
    if width < 1 or values.size < width:
        return np.empty(0)
    total = np.concatenate([[0.0], np.cumsum(values)])
    return (total[width:] - total[:-width]) / width


def windowed(curves: Curves, which: str, seconds: float, how: str) -> float:
    """``max``, ``min``, ``spread`` (standard deviation), ``high`` (max − median) or ``low`` (median − min) of the
    window means of a frame curve (``nll``, ``entropy`` or ``gap``), over windows of ``seconds`` at every frame; NaN
    where the clip is shorter."""
    means = window_means(curves, which, seconds)
    if means.size == 0:
        return float("nan")
    if how in ("high", "low"):  # against the clip's own typical window: the piece's level cancels out
        middle = float(np.median(means))
        return float(means.max() - middle if how == "high" else middle - means.min())
    return float({"max": means.max, "min": means.min, "spread": means.std}[how]())


def code_length_nats(codes: np.ndarray, cardinality: int) -> float:
    """A generic compressor's code length of the codes, nats per code: zlib (level 9) over each codebook's
    stream, in the narrowest integer type that holds them. It knows nothing of music: a repetitive or constant
    clip compresses well, a busy one does not."""
    codes = np.asarray(codes)
    dtype = np.uint8 if cardinality <= 256 else np.uint16 if cardinality <= 65536 else np.uint32
    streams = np.ascontiguousarray(codes.astype(dtype))
    nbytes = sum(len(zlib.compress(row.tobytes(), 9)) for row in streams)
    return float(nbytes * 8 * np.log(2) / max(codes.size, 1))


def window_means(curves: Curves, which: str, seconds: float) -> np.ndarray:
    """The means of a frame curve (``nll``, ``entropy`` or ``gap``) over windows of ``seconds``, one at every
    frame."""
    curve = {"nll": curves.frame_nll, "entropy": curves.frame_entropy,
             "gap": curves.frame_nll - curves.frame_entropy}[which]
    return rolling_means(curve, max(1, int(round(seconds * curves.frame_rate))))


def quant_residual(curves: Curves, level: int | None) -> float:
    """The codec's relative quantisation residual at RVQ ``level`` (None: after every level): the mean over frames
    of the distance from the level's input to its chosen codeword over the mean norm of that input (0 = the
    codeword matches exactly; 1 = it explains nothing); after every level, the mean norm left over the latent's.
    NaN without a codec residual or where the codec has fewer levels."""
    r = curves.residual
    if r is None or (level is not None and level + 1 >= len(r)):
        return float("nan")
    r = np.asarray(r, np.float64)
    lo, hi = (0, len(r) - 1) if level is None else (level, level + 1)
    below = r[lo].mean()
    return float(r[hi].mean() / below) if below > 0 else float("nan")


# ---- band shares: against a clean reference's band of window means ------------------------------------------
BAND_WINDOWS = tuple((which, seconds) for seconds in WINDOW_SECONDS for which in ("nll", "entropy"))
WINDOW_QUANTILES = np.linspace(0.0, 1.0, 21)  # each clip's window means, summarised at every 5%
BAND = (0.05, 0.95)  # the reference's band: these quantiles of its clips' pooled window means


def band_key(which: str, seconds: float) -> str:
    return f"{which}_w{seconds:g}s"


def quantile_columns(key: str) -> list[str]:
    """The columns of one window curve's quantiles (``nll_w2s`` → ``nll_w2s_q00`` … ``nll_w2s_q100``)."""
    return [f"{key}_q{round(100 * q):02d}" for q in WINDOW_QUANTILES]


def window_quantiles(curves: Curves) -> dict[str, float]:
    """Each band curve's window means summarised by `WINDOW_QUANTILES` (NaN where the clip is shorter than
    a window): what the band shares are computed from once a reference is at hand."""
    out = {}
    for which, seconds in BAND_WINDOWS:
        means = window_means(curves, which, seconds)
        values = np.quantile(means, WINDOW_QUANTILES) if means.size else np.full(len(WINDOW_QUANTILES), np.nan)
        out.update(zip(quantile_columns(band_key(which, seconds)), map(float, values)))
    return out


def _cdf(quantiles: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Each row's share of window means at most ``x`` (broadcast against the rows), read off its quantiles
    ``[N, Q]`` (linear between them; 0 below the lowest, 1 from the highest on)."""
    quantiles = np.asarray(quantiles, np.float64)
    x = np.broadcast_to(np.asarray(x, np.float64), quantiles.shape[:1])
    above = (quantiles <= x[:, None]).sum(1)  # knots at most x
    inner = np.clip(above, 1, quantiles.shape[1] - 1)
    q0 = np.take_along_axis(quantiles, (inner - 1)[:, None], 1)[:, 0]
    q1 = np.take_along_axis(quantiles, inner[:, None], 1)[:, 0]
    l0, l1 = WINDOW_QUANTILES[inner - 1], WINDOW_QUANTILES[inner]
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(q1 > q0, (x - q0) / (q1 - q0), 1.0)
    out = np.clip(l0 + np.clip(t, 0, 1) * (l1 - l0), 0, 1)
    return np.where(above == 0, 0.0, np.where(above == quantiles.shape[1], 1.0, out))


def reference_bands(reference) -> dict[str, list[float]]:
    """A clean reference's band per window curve: the `BAND` quantiles of its clips' pooled window means
    (each clip weighed alike; read off the clips' quantile columns) → {``nll_w2s``: [low, high], ...}; curves
    whose quantile columns the reference lacks (or has non-finite) are left out."""
    out = {}
    for which, seconds in BAND_WINDOWS:
        key = band_key(which, seconds)
        cols = quantile_columns(key)
        if not all(c in reference for c in cols):
            continue
        q = reference[cols].to_numpy(np.float64)
        if not len(q) or not np.isfinite(q).all():
            continue
        knots = np.unique(q)
        # the pooled CDF at every knot: the mean over clips of each clip's own
        pooled = np.mean([_cdf(np.broadcast_to(row, (len(knots), len(row))), knots) for row in q], axis=0)
        out[key] = [float(np.interp(p, pooled, knots)) for p in BAND]
    return out


def band_share(quantiles: np.ndarray, band: Sequence[float]) -> np.ndarray:
    """Each row's share of window means below ``band[0]`` or above ``band[1]``, from its quantiles ``[N, Q]``."""
    quantiles = np.asarray(quantiles, np.float64)
    n = len(quantiles)
    share = _cdf(quantiles, np.full(n, band[0])) + 1.0 - _cdf(quantiles, np.full(n, band[1]))
    return np.where(np.isfinite(quantiles).all(1), share, np.nan)


def with_band_statistics(table, bands: dict[str, Sequence[float]] | None):
    """``table`` with every band share (`STATISTICS` rows with ``band``) computed against ``bands``
    (`reference_bands`) where the table has that curve's quantile columns; a share already there stays where
    they are missing (a shipped reference keeps its shares, not its quantiles)."""
    if not bands:
        return table
    new = {}
    for s in STATISTICS.values():
        cols = quantile_columns(s.band) if s.band else None
        if s.band in bands and all(c in table for c in cols):
            new[s.name] = band_share(table[cols].to_numpy(np.float64), bands[s.band])
    return table.assign(**new) if new else table


_WINDOW_UNIT = "nats per code (audio) / nats per second (MIDI)"
for _w in WINDOW_SECONDS:
    for _which, _group in (("nll", "windowed_nll"), ("entropy", "windowed_entropy")):
        for _how, _text in (("max", "highest"), ("min", "lowest"), ("spread", "standard deviation of the")):
            statistic(f"{_which}_w{_w:g}s_{_how}", _WINDOW_UNIT,
                      f"{_text} mean {_which.upper() if _which == 'nll' else _which} over windows of {_w:g} s "
                      f"(one at every frame) of the clean curve", _group,
                      compute=lambda c, _which=_which, _w=_w, _how=_how: windowed(c, _which, _w, _how))
for _w in (0.5, 2.0):  # contrasts within the clip: a stretch unlike the rest of it, whatever the piece's level
    for _which, _group in (("nll", "windowed_nll"), ("entropy", "windowed_entropy")):
        for _how, _text in (("high", "highest window mean minus the median window's"),
                            ("low", "median window mean minus the lowest")):
            statistic(f"{_which}_w{_w:g}s_{_how}", _WINDOW_UNIT, f"{_text} ({_which}, windows of {_w:g} s): how far "
                      f"one stretch of the clip stands out from the rest of it", _group,
                      compute=lambda c, _which=_which, _w=_w, _how=_how: windowed(c, _which, _w, _how))
statistic("gap_mean", "nats per code (per token for MIDI)", "mean of NLL − entropy over the codes: how much more "
          "surprised the model was than it expected to be (0 = calibrated)", "calibration",
          compute=lambda c: float(np.mean(c.nll - c.entropy)))
for _how in ("max", "min"):
    statistic(f"gap_w2s_{_how}", _WINDOW_UNIT, f"{'highest' if _how == 'max' else 'lowest'} mean NLL − entropy "
              "over 2 s windows", "calibration", compute=lambda c, _how=_how: windowed(c, "gap", 2.0, _how))
for _k in range(MAX_CODEBOOKS):
    statistic(f"nll_k{_k}", "nats per code", f"mean NLL of codebook {_k} (0 = coarsest)", "codebook",
              modalities=("audio",), compute=lambda c, _k=_k: float(c.nll[_k].mean()) if _k < len(c.nll) else np.nan)
    statistic(f"entropy_k{_k}", "nats per code", f"mean entropy of codebook {_k}'s predictions", "codebook",
              modalities=("audio",),
              compute=lambda c, _k=_k: float(c.entropy[_k].mean()) if _k < len(c.entropy) else np.nan)
statistic("compression_nats", "nats per code", "a generic compressor's (zlib) code length of the codes: how "
          "simple the clip is, without the model", "complexity",
          compute=lambda c: code_length_nats(c.codes, c.cardinality))
statistic("nll_minus_compression", "nats per code", "mean NLL minus the compressor's code length: below 0, the "
          "model predicts the codes better than a generic compressor", "complexity",
          compute=lambda c: float(c.nll.mean()) - code_length_nats(c.codes, c.cardinality))
# The codec and band groups are measured (audibility, ablation) but not shipped: added to the typicality
# detectors they lowered the audio validation's mean LOFO AUROC (Mahalanobis 0.60 -> 0.57; docs/profile-score.md).
for _k in range(MAX_CODEBOOKS):
    statistic(f"quant_residual_k{_k}", "ratio", f"the codec's quantisation residual at RVQ level {_k}: mean distance "
              f"from the level's input to its chosen codeword over the input's mean norm (0 = exact, 1 = the level "
              f"explains nothing; no LM pass)", "codec", modalities=("audio",), shipped=False,
              compute=lambda c, _k=_k: quant_residual(c, _k))
statistic("quant_residual_total", "ratio", "the codec's quantisation residual after every RVQ level: mean norm left "
          "over the latent's mean norm", "codec", modalities=("audio",), shipped=False,
          compute=lambda c: quant_residual(c, None))
for _which, _seconds in BAND_WINDOWS:
    statistic(f"{band_key(_which, _seconds)}_outside", "share (0-1)", f"share of the {_seconds:g} s windows whose mean "
              f"{_which.upper() if _which == 'nll' else _which} lies outside the clean reference's 5-95% band of "
              f"window means (about 0.1 for clean music); computed against a reference "
              "(lossprofile.analysis.statistics.with_band_statistics), absent without one", "band",
              shipped=False, band=band_key(_which, _seconds))
columns.register(r"(nll|entropy)_w[\d.]+s_q\d+", "nats per code (audio) / nats per second (MIDI)",
                 "a quantile (q05 = 5%) of the clip's window means of the clean curve: what band shares are computed "
                 "from against a reference")

# Computed by lossprofile.analysis.profile (registered so that the registry lists every column of a profile row);
# their unit and meaning are the data dictionary's.
_PROFILE_COLUMNS = {"peak": "probe", "assimilation": "probe", "recovery_excess": "probe", "recovery_var": "probe",
                    "recovery_time": "probe", "mean_nll": "token", "mean_entropy": "token", "mean_log_rank": "token",
                    "normalized_surprisal": "token", "nll_std": "token", "context_gain": "pass"}
for _name, _group in _PROFILE_COLUMNS.items():
    statistic(_name, *columns.describe(_name), _group)
for _name in ("peak_coarse", "peak_fine", "assimilation_coarse", "assimilation_fine"):  # one codebook's probe curves
    statistic(_name, *columns.describe(_name), "probe", modalities=("audio",))


def curve_statistics(curves: Curves) -> dict[str, float]:
    """Every registered statistic with a function that applies to the curves' modality, and the window-mean
    quantiles band shares are computed from (`window_quantiles`) → {name: value}."""
    return {**{s.name: s.compute(curves) for s in STATISTICS.values()
               if s.compute is not None and curves.modality in s.modalities}, **window_quantiles(curves)}


def pass_columns() -> list[str]:
    """Every column `curve_statistics` gives (registry statistics computed from curves, band shares' quantile
    columns): part of a cached profile's key, so a part scored before a statistic existed is scored again."""
    return [s.name for s in STATISTICS.values() if s.compute is not None] + [
        c for which, seconds in BAND_WINDOWS for c in quantile_columns(band_key(which, seconds))]


def names(modality: str = "audio", shipped_only: bool = True, groups: tuple[str, ...] | None = None) -> list[str]:
    """The registered statistics of a modality (and groups), in registry order."""
    return [s.name for s in STATISTICS.values() if modality in s.modalities and (s.shipped or not shipped_only)
            and (groups is None or s.group in groups)]
