"""Peak, Assimilation and Recovery regions of a per-frame loss-difference curve.

The paper's rule, with its positions made parameters: smooth ``delta`` with a centred
moving average, take the baseline from frames before the onset, and place each boundary
where the smoothed curve crosses the baseline and stays on the other side for
``persist_frames`` consecutive frames.

- Peak: from the first lasting rise above baseline near the onset to the first lasting
  fall below it.
- Assimilation: from there to the end of the perturbed window, or, when the curve is still
  below baseline at that point, to its first lasting rise back above it. A model that never
  settles below baseline (no lasting fall) gets a 5-frame peak and an assimilation region
  whose mean delta is positive: it did not assimilate, and the statistics say so.
- Recovery: from the end of assimilation to the end of the curve, never inside the window.

Two readings of the same curve live here, under distinct names:

- *detected* regions ([`detect_regions`][lossprofile.analysis.regions.detect_regions], and the authors' rule [`detect_regions_authors`][lossprofile.analysis.regions.detect_regions_authors]):
  ``peak`` / ``assimilation`` / ``recovery`` rows of [`region_stats`][lossprofile.analysis.regions.region_stats] — what the figures and
  ``figures/summary.md`` quote (Fig. 4);
- *fixed-window* statistics ([`window_peak`][lossprofile.analysis.regions.window_peak], [`window_assimilation`][lossprofile.analysis.regions.window_assimilation]): the mean delta over the
  first ``peak_frames`` of the perturbed window, and over the rest of it — what the model card, the
  profile score's probes and `lossprofile.analysis.musicality.noise_response` use, because they
  need no baseline and no detection. They are different statistics and are reported under these names.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

REGIONS = ("peak", "assimilation", "recovery")


@dataclass(frozen=True)
class Regions:
    """Frame spans ``[start, stop)`` of each region and the baseline they were measured against."""

    peak: tuple[int, int]
    assimilation: tuple[int, int]
    recovery: tuple[int, int]
    baseline: float

    def spans(self) -> dict[str, tuple[int, int]]:
        return {"peak": self.peak, "assimilation": self.assimilation, "recovery": self.recovery}


def moving_average(x: np.ndarray, width_frames: int) -> np.ndarray:
    """Centred moving average ``[T]`` → ``[T]``; edges average over the frames that exist."""
    x = np.asarray(x, dtype=np.float64)
    if width_frames <= 1:
        return x.copy()
    kernel = np.ones(width_frames)
    total = np.convolve(x, kernel, mode="same")
    count = np.convolve(np.ones_like(x), kernel, mode="same")
    return total / count


def first_lasting(curve: np.ndarray, start: int, above: bool, baseline: float, persist_frames: int,
                  stop: int | None = None) -> int | None:
    """First frame ``t >= start`` from which ``curve`` stays above (or below) ``baseline`` for ``persist_frames``."""
    side = curve > baseline if above else curve < baseline
    stop = len(curve) if stop is None else min(stop, len(curve))
    run = 0
    for t in range(max(0, start), stop):
        run = run + 1 if side[t] else 0
        if run == persist_frames:
            return t - persist_frames + 1
    return None


def detect_regions(delta: np.ndarray, onset_frame: int, length_frames: int, *, smooth_frames: int = 5,
                   persist_frames: int = 5, baseline_frames: tuple[int, int] | None = None,
                   lookback_frames: int = 5) -> Regions:
    """Detect the three regions in ``delta [T]`` (perturbed minus clean NLL per frame).

    ``baseline_frames``: frames ``[start, stop)`` whose mean is the baseline (default: all
    frames before ``onset_frame - lookback_frames``; 0 if there are none).
    ``lookback_frames``: how far before the onset the peak may start (the codec's
    receptive field lets a change leak into a few earlier frames).
    """
    delta = np.asarray(delta, dtype=np.float64)
    T = len(delta)
    end = onset_frame + length_frames
    if not (0 <= onset_frame < end <= T):
        raise ValueError(f"window {onset_frame}..{end} does not fit a curve of {T} frames")
    if not np.isfinite(delta[max(0, onset_frame - lookback_frames):]).all():
        raise ValueError("delta has NaN or inf after the onset")
    if baseline_frames is None:
        baseline_frames = (0, max(0, onset_frame - lookback_frames))
    lo, hi = baseline_frames
    base_values = delta[lo:hi]
    base_values = base_values[np.isfinite(base_values)]
    baseline = float(base_values.mean()) if base_values.size else 0.0
    smooth = moving_average(np.nan_to_num(delta, nan=baseline), smooth_frames)

    search_from = max(0, onset_frame - lookback_frames)
    peak_start = first_lasting(smooth, search_from, True, baseline, persist_frames, stop=end)
    if peak_start is None:  # no lasting rise: the peak is the onset frame alone
        peak_start = onset_frame
    assim_start = first_lasting(smooth, peak_start, False, baseline, persist_frames, stop=end)
    if assim_start is None:
        assim_start = min(end, peak_start + persist_frames)
    # Recovery is what follows the perturbation: it starts at the window's end, or later if
    # the loss is still below baseline then (assimilation lingering past the window).
    assim_stop = end
    if smooth[min(end, T - 1)] < baseline:
        assim_stop = first_lasting(smooth, end, True, baseline, persist_frames) or end
    return Regions((peak_start, assim_start), (assim_start, assim_stop), (assim_stop, T), baseline)


def detect_regions_authors(delta: np.ndarray, onset_frame: int = 250, length_frames: int = 100,
                           *, baseline_frames: tuple[int, int] = (0, 200), persist_frames: int = 5,
                           fallback_frames: int = 50) -> Regions:
    """The authors' rule: ``detect_regions_ma`` of YoEv/noiseloss (``experiments/phase5/
    phase5_region_analysis_boxplot_3areas.py`` and the box/violin-plot scripts), quirks included, with
    their frame numbers made relative to the onset (theirs: onset 250).

    - Baseline: mean delta over frames 0–200 (raw delta, no smoothing; NaN frames, which only the
      as-published likelihood has at frame 0, are left out).
    - Peak: from ``onset_frame - 5`` (their 245) to the first frame that starts ``persist_frames``
      frames at or below the baseline, searched to the end of the curve (the run must end before the
      curve's last frame, as their loop does); ``fallback_frames`` (50) after the start if none.
    - Assimilation: from the Peak's end to ``onset_frame - 1 + length_frames + 4`` (their 249 + L + 4),
      capped at the last frame. It is empty (start >= stop) when the Peak ran past that point.
    - Recovery: from there to the last frame, which it leaves out (their ``regression_end = len - 1``).

    Their region averages count an empty region as 0: [`region_stats`][lossprofile.analysis.regions.region_stats] with ``empty=0.0`` gives them.
    """
    delta = np.asarray(delta, dtype=np.float64)
    T = len(delta)
    lo, hi = baseline_frames
    baseline = float(np.nanmean(delta[lo:hi]))
    peak_start = onset_frame - 5
    at_or_below = delta <= baseline
    peak_stop = None
    for t in range(peak_start, T - persist_frames):
        if at_or_below[t : t + persist_frames].all():
            peak_stop = t
            break
    if peak_stop is None:
        peak_stop = peak_start + fallback_frames
    assim_stop = min(onset_frame - 1 + length_frames + 4, T - 1)
    return Regions((peak_start, peak_stop), (peak_stop, assim_stop), (assim_stop, T - 1), baseline)


def window_peak(delta: np.ndarray, onset_frame: int, peak_frames: int = 5) -> float:
    """Fixed-window Peak: mean ``delta`` over frames ``[onset_frame, onset_frame + peak_frames)`` (NaN if empty)."""
    values = np.asarray(delta)[onset_frame : onset_frame + peak_frames]
    return float(values.mean()) if values.size else float("nan")




def window_assimilation(delta: np.ndarray, onset_frame: int, length_frames: int, *, peak_frames: int = 5) -> float:
    """Fixed-window Assimilation: mean ``delta`` over the perturbed window after its first ``peak_frames``
    frames, ``[onset_frame + peak_frames, onset_frame + length_frames)`` (NaN when the window is not longer)."""
    values = np.asarray(delta)[onset_frame + peak_frames : onset_frame + length_frames]
    return float(values.mean()) if values.size else float("nan")


def region_stats(delta: np.ndarray, regions: Regions, empty: float = np.nan) -> list[dict]:
    """Per-region rows: span, length, mean, std, min and max of ``delta`` (raw, not smoothed).

    ``empty``: the mean reported for a region with no frames (NaN; the authors' scripts count 0).
    """
    delta = np.asarray(delta, dtype=np.float64)
    rows = []
    for name, (start, stop) in regions.spans().items():
        values = delta[start:stop]
        rows.append(dict(region=name, start_frame=start, stop_frame=stop, length_frames=stop - start,
                         mean=float(values.mean()) if values.size else empty,
                         std=float(values.std()) if values.size else np.nan,
                         min=float(values.min()) if values.size else np.nan,
                         max=float(values.max()) if values.size else np.nan,
                         baseline=regions.baseline))
    return rows
