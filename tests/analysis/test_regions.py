"""Region detection on synthetic curves whose boundaries are known by construction."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lossprofile.analysis.regions import detect_regions, detect_regions_authors, moving_average, region_stats


def paper_curve(T=750, onset=250, length=100, peak_frames=5, peak=0.8, assim=-1.5, wobble=0.0, seed=0):
    """Zero before the onset, a peak, a low plateau to the window end, small wiggles after."""
    rng = np.random.default_rng(seed)
    d = np.zeros(T)
    d[onset : onset + peak_frames] = peak
    d[onset + peak_frames : onset + length] = assim
    d[onset + length :] = 0.3 + wobble * rng.standard_normal(T - onset - length)
    return d


@settings(max_examples=30, deadline=None)
@given(st.integers(60, 400), st.integers(20, 200), st.integers(5, 12), st.floats(0.5, 3), st.floats(-3, -0.5))
def test_boundaries_are_found_within_the_smoothing_width(onset, length, peak_frames, peak, assim):
    T = onset + length + 150
    d = paper_curve(T, onset, length, peak_frames, peak, assim)
    r = detect_regions(d, onset, length, smooth_frames=5, persist_frames=5)
    assert abs(r.peak[0] - onset) <= 2
    assert abs(r.assimilation[0] - (onset + peak_frames)) <= 2
    assert abs(r.recovery[0] - (onset + length)) <= 2
    assert r.recovery[1] == T and r.baseline == 0.0


def test_baseline_comes_from_pre_onset_frames_not_hard_coded_positions():
    d = paper_curve() + 0.2  # everything shifted: baseline must follow
    r = detect_regions(d, 250, 100)
    assert r.baseline == pytest.approx(0.2)
    assert abs(r.assimilation[0] - 255) <= 2
    r2 = detect_regions(d, 250, 100, baseline_frames=(0, 50))
    assert r2.baseline == pytest.approx(0.2)


def test_curve_without_a_peak_starts_assimilation_at_the_onset():
    d = paper_curve(peak=-1.5)
    r = detect_regions(d, 250, 100)
    assert r.peak[1] - r.peak[0] <= 5
    assert abs(r.assimilation[0] - 250) <= 5


def test_region_statistics_use_the_raw_curve():
    d = paper_curve(peak_frames=10, peak=1.0, assim=-2.0)
    r = detect_regions(d, 250, 100, smooth_frames=1, persist_frames=3)
    rows = {row["region"]: row for row in region_stats(d, r)}
    assert rows["peak"]["mean"] == pytest.approx(1.0)
    assert rows["assimilation"]["mean"] == pytest.approx(-2.0)
    assert rows["recovery"]["mean"] == pytest.approx(0.3)
    assert rows["peak"]["length_frames"] == 10


def test_moving_average_preserves_constants_and_length():
    x = np.full(37, 2.5)
    assert np.allclose(moving_average(x, 5), 2.5) and len(moving_average(x, 5)) == 37
    y = np.arange(20.0)
    assert moving_average(y, 3)[5] == pytest.approx(5.0)


def test_bad_windows_and_nan_are_refused():
    d = paper_curve()
    with pytest.raises(ValueError, match="does not fit"):
        detect_regions(d, 700, 100)
    d[300] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        detect_regions(d, 250, 100)


def test_a_model_that_never_assimilates_keeps_recovery_after_the_window():
    # Loss stays above baseline for the whole window (the tiny model's behaviour): the rest of
    # the window after the 5-frame peak is assimilation with a positive mean, not recovery.
    d = np.zeros(750)
    d[250:350] = 1.0
    d[350:] = 0.2
    r = detect_regions(d, 250, 100)
    assert abs(r.peak[0] - 250) <= 2 and r.peak[1] - r.peak[0] == 5
    assert r.assimilation[1] == 350 and r.recovery == (350, 750)
    rows = {row["region"]: row for row in region_stats(d, r)}
    assert rows["assimilation"]["mean"] == pytest.approx(1.0) and rows["recovery"]["mean"] == pytest.approx(0.2)


def test_assimilation_lingering_past_the_window_ends_at_the_lasting_rise():
    d = np.zeros(750)
    d[250:255] = 2.0
    d[255:380] = -1.0  # still below baseline 30 frames after the window ends
    d[380:] = 0.5
    r = detect_regions(d, 250, 100, smooth_frames=1)
    assert r.assimilation == (255, 380) and r.recovery == (380, 750)


def test_the_authors_rule_uses_their_fixed_offsets():
    delta = np.zeros(750)
    delta[:200] = 0.1  # their baseline: frames 0-200
    delta[245:262] = 2.0  # a peak from their frame 245
    delta[262:349] = -1.0
    found = detect_regions_authors(delta, 250, 100)
    assert found.baseline == pytest.approx(0.1)
    assert found.peak == (245, 262)
    assert found.assimilation == (262, 353)  # ends at 249 + L + 4
    assert found.recovery == (353, 749)  # their Recovery leaves out the last frame


def their_detect_regions_ma(ori_loss, mix_loss, noise_length):
    """A transcription of ``detect_regions_ma`` and the averages of ``analyze_single_file`` in YoEv/noiseloss
    (experiments/phase5/phase5_region_analysis_boxplot_3areas.py), with their constants (onset 250)."""
    diff = mix_loss - ori_loss
    baseline = np.mean(diff[:200])
    compromised_end = 249 + noise_length + 4
    bumped_start = 245
    bumped_end = None
    for i in range(bumped_start + 5, len(diff)):
        if all(diff[j] <= baseline for j in range(i - 5, i)):
            bumped_end = i - 5
            break
    if bumped_end is None:
        bumped_end = bumped_start + 50
    compromised_start = bumped_end
    compromised_end = min(compromised_end, len(diff) - 1)
    regression_start, regression_end = compromised_end, len(diff) - 1

    def avg(a, b):
        return np.mean(diff[a:b]) if b > a else 0

    return ((bumped_start, bumped_end), (compromised_start, compromised_end), (regression_start, regression_end),
            [avg(bumped_start, bumped_end), avg(compromised_start, compromised_end),
             avg(regression_start, regression_end)])


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([5, 10, 50, 100, 150, 200]), st.floats(0.0, 3.0),
       st.floats(-3.0, 1.0), st.integers(600, 760))
def test_the_authors_rule_is_their_code(seed, length, peak_height, assimilation_depth, num_frames):
    rng = np.random.default_rng(seed)
    clean = rng.normal(4.0, 0.5, num_frames)
    delta = rng.normal(0.0, 0.3, num_frames)
    delta[245:250 + min(5, length)] += peak_height
    delta[255 : 250 + length] += assimilation_depth
    mix = clean + delta
    peak, assim, recovery, means = their_detect_regions_ma(clean, mix, length)
    found = detect_regions_authors(mix - clean, 250, length)
    assert (found.peak, found.assimilation, found.recovery) == (peak, assim, recovery)
    ours = [row["mean"] for row in region_stats(mix - clean, found, empty=0.0)]
    np.testing.assert_allclose(ours, means, rtol=1e-12, atol=1e-12)
