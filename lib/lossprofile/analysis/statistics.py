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

Units: audio curves are per code (the mean over a frame's codebooks); a model over MIDI tokens has per-frame
*sums* over the tokens whose event falls in the 20 ms frame, so its windowed statistics are rates (nats per
second).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Callable

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
    ``cardinality``: codes per codebook; ``modality``: ``"audio"`` or ``"midi"``.
    """

    nll: np.ndarray
    entropy: np.ndarray
    codes: np.ndarray
    frame_nll: np.ndarray
    frame_entropy: np.ndarray
    frame_rate: float
    cardinality: int
    modality: str = "audio"


@dataclass(frozen=True)
class Statistic:
    name: str
    unit: str
    meaning: str
    group: str  # for ablations: windowed_nll, windowed_entropy, calibration, codebook, complexity, probe, token, pass
    modalities: tuple[str, ...] = ("audio", "midi")
    shipped: bool = True  # the shipped typicality score may use it
    compute: Callable[[Curves], float] | None = None  # None: a column computed by lossprofile.analysis.profile


STATISTICS: dict[str, Statistic] = {}


def statistic(name: str, unit: str, meaning: str, group: str, *, modalities: tuple[str, ...] = ("audio", "midi"),
              shipped: bool = True, compute: Callable[[Curves], float] | None = None) -> Statistic:
    """Register one statistic (a new one is this call and its function) → the row."""
    if name in STATISTICS:
        raise ValueError(f"statistic {name!r} is registered twice")
    STATISTICS[name] = row = Statistic(name, unit, meaning, group, modalities, shipped, compute)
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
    curve = {"nll": curves.frame_nll, "entropy": curves.frame_entropy,
             "gap": curves.frame_nll - curves.frame_entropy}[which]
    means = rolling_means(curve, max(1, int(round(seconds * curves.frame_rate))))
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
    """Every registered statistic with a function that applies to the curves' modality → {name: value}."""
    return {s.name: s.compute(curves) for s in STATISTICS.values()
            if s.compute is not None and curves.modality in s.modalities}


def names(modality: str = "audio", shipped_only: bool = True, groups: tuple[str, ...] | None = None) -> list[str]:
    """The registered statistics of a modality (and groups), in registry order."""
    return [s.name for s in STATISTICS.values() if modality in s.modalities and (s.shipped or not shipped_only)
            and (groups is None or s.group in groups)]
