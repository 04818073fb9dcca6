"""Signal-processing invariants of the perturbations, checked with hypothesis."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lossprofile.perturb import waveform as perturb
from lossprofile.audio import AudioError, rms_dbfs

SR, FR = 32000, 50
HOP = SR // FR


def signal(num_frames: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(num_frames * HOP) / SR
    return (0.3 * np.sin(2 * np.pi * 330 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


windows = st.integers(20, 120).flatmap(
    lambda total: st.tuples(st.just(total), st.integers(0, total - 2)).flatmap(
        lambda tw: st.tuples(st.just(tw[0]), st.just(tw[1]), st.integers(1, tw[0] - tw[1]))))


@settings(max_examples=40, deadline=None)
@given(windows, st.sampled_from(["noise", "add_noise", "silence"]), st.sampled_from(list(perturb.NOISE_EXPONENTS)),
       st.integers(0, 2**31 - 1))
def test_only_the_window_changes_and_it_is_exact_to_the_sample(win, kind, color, seed):
    total, onset, length = win
    wav = signal(total, seed % 1000)
    out = perturb.Perturbation(kind, onset, length, color=color, seed=seed).apply(wav, SR, FR)
    lo, hi = onset * HOP, (onset + length) * HOP
    assert out.shape == wav.shape and out.dtype == np.float32
    assert np.array_equal(out[:lo], wav[:lo]) and np.array_equal(out[hi:], wav[hi:])
    changed = np.flatnonzero(out != wav)
    assert changed.min() >= lo and changed.max() < hi
    # the first and last sample of the window are perturbed (noise is never exactly the signal)
    if kind != "silence":
        assert out[lo] != wav[lo] and out[hi - 1] != wav[hi - 1]


@settings(max_examples=40, deadline=None)
@given(windows, st.sampled_from(list(perturb.NOISE_EXPONENTS)), st.floats(-40, -3),
       st.one_of(st.none(), st.floats(-30, 6)), st.integers(0, 2**31 - 1))
def test_requested_noise_level_is_met_within_half_a_db(win, color, level, offset, seed):
    total, onset, length = win
    wav = signal(total, 3)
    if offset is None:
        out = perturb.replace_with_noise(wav, SR, FR, onset, length, color=color, level_dbfs=level,
                                         match_offset_db=None, seed=seed)
        target = level
    else:
        out = perturb.replace_with_noise(wav, SR, FR, onset, length, color=color, match_offset_db=offset, seed=seed)
        target = rms_dbfs(wav) + offset
    noise = out[onset * HOP : (onset + length) * HOP]
    assert abs(rms_dbfs(noise) - target) < 0.5


@pytest.mark.parametrize("color", list(perturb.NOISE_EXPONENTS))
@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_noise_colors_have_their_spectral_slope(color, seed):
    """Fit log-power against log-frequency: white 0, pink -1, brown -2, blue +1 (within 0.15)."""
    n = 2**16
    noise = perturb.colored_noise(n, color, seed)
    power = np.abs(np.fft.rfft(noise)) ** 2
    freqs = np.fft.rfftfreq(n)
    edges = np.logspace(np.log10(10 / n), np.log10(0.5), 40)
    centers, levels = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        band = (freqs >= lo) & (freqs < hi)
        if band.sum() >= 4:
            centers.append(np.sqrt(lo * hi))
            levels.append(power[band].mean())
    slope = np.polyfit(np.log10(centers), np.log10(levels), 1)[0]
    assert abs(slope - perturb.NOISE_EXPONENTS[color]) < 0.15
    assert abs(math.sqrt(np.mean(noise.astype(np.float64) ** 2)) - 1) < 1e-4


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 20), st.integers(2, 8), st.integers(0, 30), st.integers(0, 2**31 - 1))
def test_shuffle_is_a_permutation_of_segments_inside_the_window(segment, count, extra, seed):
    onset = 3
    length = segment * count + (extra % segment)
    wav = signal(onset + length + 4, seed % 997)
    out = perturb.shuffle_segments(wav, SR, FR, onset, length, segment_frames=segment, seed=seed)
    lo, hi = onset * HOP, (onset + length) * HOP
    assert np.array_equal(out[:lo], wav[:lo]) and np.array_equal(out[hi:], wav[hi:])
    assert np.array_equal(np.sort(out), np.sort(wav))  # same multiset of samples
    seg = segment * HOP
    blocks_in = wav[lo : lo + count * seg].reshape(count, seg)
    blocks_out = out[lo : lo + count * seg].reshape(count, seg)
    matches = [[np.array_equal(a, b) for b in blocks_in] for a in blocks_out]
    assert all(any(row) for row in matches)  # every output block is an input block
    assert not np.array_equal(blocks_in, blocks_out)  # and the order really changed


def test_block_swap_swaps_two_adjacent_blocks():
    wav = signal(40, 0)
    out = perturb.block_swap(wav, SR, FR, 10, 5)
    a, b, c = 10 * HOP, 15 * HOP, 20 * HOP
    assert np.array_equal(out[a:b], wav[b:c]) and np.array_equal(out[b:c], wav[a:b])
    assert np.array_equal(out[:a], wav[:a]) and np.array_equal(out[c:], wav[c:])


def test_same_seed_same_noise_other_seed_other_noise():
    wav = signal(30, 0)
    a = perturb.replace_with_noise(wav, SR, FR, 5, 10, seed=1)
    assert np.array_equal(a, perturb.replace_with_noise(wav, SR, FR, 5, 10, seed=1))
    assert not np.array_equal(a, perturb.replace_with_noise(wav, SR, FR, 5, 10, seed=2))


def test_windows_that_do_not_fit_raise_errors_naming_the_problem():
    wav = signal(30, 0)
    with pytest.raises(AudioError, match="too short for the window"):
        perturb.replace_with_noise(wav, SR, FR, 25, 10)
    with pytest.raises(AudioError, match="onset_frame >= 0"):
        perturb.replace_with_noise(wav, SR, FR, -1, 10)
    with pytest.raises(AudioError, match="fewer than two"):
        perturb.shuffle_segments(wav, SR, FR, 0, 10, segment_frames=6)
    with pytest.raises(ValueError, match="unknown noise color"):
        perturb.colored_noise(100, "purple")
    with pytest.raises(ValueError, match="unknown perturbation kind"):
        perturb.Perturbation("reverse")
    with pytest.raises(AudioError, match="silent"):
        perturb.replace_with_noise(np.zeros(30 * HOP, np.float32), SR, FR, 5, 5)


segment_kinds = st.sampled_from([
    dict(kind="band_delete", fraction=0.3, band_low_hz=2000.0, band_high_hz=20000.0),
    dict(kind="band_delete", fraction=0.8, band_low_hz=20.0, band_high_hz=1000.0, segment_min_s=0.2, segment_max_s=0.5),
    dict(kind="volume", fraction=0.5, gain=0.05),
    dict(kind="volume", fraction=0.1, gain=4.0, segment_min_s=0.01, segment_max_s=0.2),
    dict(kind="noise_segments", fraction=0.4, segment_min_s=0.05, segment_max_s=0.3),
    dict(kind="noise_fade"),
])


@settings(max_examples=40, deadline=None)
@given(windows, segment_kinds, st.integers(0, 2**31 - 1))
def test_segment_perturbations_change_only_the_window_and_are_seeded(win, params, seed):
    total, onset, length = win
    wav = signal(total, seed % 1000)
    pert = perturb.Perturbation(onset_frame=onset, length_frames=length, seed=seed, **params)
    out = pert.apply(wav, SR, FR)
    lo, hi = onset * HOP, (onset + length) * HOP
    assert out.shape == wav.shape and out.dtype == np.float32 and np.isfinite(out).all()
    assert np.array_equal(out[:lo], wav[:lo]) and np.array_equal(out[hi:], wav[hi:])
    assert np.array_equal(out, pert.apply(wav, SR, FR))
    if params["kind"] == "volume":
        assert np.abs(out).max() <= 1.0


@settings(max_examples=40, deadline=None)
@given(st.integers(100, 5000), st.floats(0.05, 1.0), st.integers(1, 50), st.integers(50, 400), st.integers(0, 10**6))
def test_covering_segments_cover_the_fraction_without_overlap(span, fraction, lo, extra, seed):
    segs = perturb.covering_segments(slice(10, 10 + span), fraction, (lo, lo + extra), seed)
    assert sum(s.stop - s.start for s in segs) == round(fraction * span)
    assert all(10 <= s.start < s.stop <= 10 + span for s in segs)
    assert all(a.stop <= b.start for a, b in zip(segs, segs[1:]))


def test_band_deletion_removes_the_band_and_keeps_the_rest():
    t = np.arange(SR) / SR
    wav = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.3 * np.sin(2 * np.pi * 5000 * t)).astype(np.float32)
    out = perturb.delete_band(wav, SR, FR, 0, 50, fraction=1.0, band_hz=(2000, 20000), segment_seconds=(1.0, 1.0))
    spectrum = np.abs(np.fft.rfft(out))
    freqs = np.fft.rfftfreq(out.size, 1 / SR)
    assert spectrum[np.argmin(abs(freqs - 5000))] < 1e-3 * spectrum[np.argmin(abs(freqs - 440))]


def test_volume_segments_are_scaled_by_the_gain():
    wav = signal(50, 0)
    out = perturb.change_volume(wav, SR, FR, 0, 50, fraction=0.5, gain=0.1, segment_seconds=(0.1, 0.2), seed=3)
    changed = out != wav
    assert 0.45 < changed.mean() < 0.55
    assert np.allclose(out[changed], 0.1 * wav[changed], atol=1e-6)


def test_segment_kinds_name_their_missing_parameters():
    with pytest.raises(ValueError, match="needs fraction, gain"):
        perturb.Perturbation("volume")
    with pytest.raises(ValueError, match="fraction must lie"):
        perturb.Perturbation("volume", fraction=1.5, gain=2.0).apply(signal(400, 0), SR, FR)


def test_authors_butterworth_colours_have_their_filter_shape():
    from scipy.signal import welch

    for color, (low_heavy) in (("pink_butter", True), ("brown_butter", True), ("blue_butter", False)):
        noise = perturb.colored_noise(SR * 4, color, seed=0)
        assert abs(math.sqrt(float(np.mean(noise.astype(np.float64) ** 2))) - 1) < 1e-3
        freqs, psd = welch(noise, SR, nperseg=4096)
        low, high = psd[(freqs > 200) & (freqs < 1000)].mean(), psd[(freqs > 10000) & (freqs < 15000)].mean()
        assert (low > 10 * high) if low_heavy else (high > 3 * low)


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 20), st.integers(6, 40), st.integers(0, 10**6))
def test_swap_pairs_and_block_move_permute_the_window(segment, count, seed):
    wav = signal(count * segment + 10, seed % 100)
    onset, length = 5, count * segment
    out = perturb.Perturbation("swap_pairs", onset, length, segment_frames=segment, fraction=0.4, seed=seed).apply(wav, SR, FR)
    lo, hi = onset * HOP, (onset + length) * HOP
    assert np.array_equal(out[:lo], wav[:lo]) and np.array_equal(out[hi:], wav[hi:])
    seg = segment * HOP
    blocks_in = {wav[lo + i * seg : lo + (i + 1) * seg].tobytes() for i in range(count)}
    blocks_out = [out[lo + i * seg : lo + (i + 1) * seg].tobytes() for i in range(count)]
    assert set(blocks_out) <= blocks_in
    moved = sum(a != wav[lo + i * seg : lo + (i + 1) * seg].tobytes() for i, a in enumerate(blocks_out))
    assert 0 < moved <= 2 * max(1, round(0.4 * count / 2))
    moved_block = perturb.Perturbation("block_move", onset, length, segment_frames=segment, seed=seed).apply(wav, SR, FR)
    assert np.array_equal(np.sort(moved_block[lo:hi]), np.sort(wav[lo:hi]))
    assert not np.array_equal(moved_block, wav) and np.array_equal(moved_block[hi:], wav[hi:])


def test_presets_hold_the_authors_settings():
    from lossprofile.perturb import presets

    noise = presets.preset("authors-noise", "ood")
    assert [p.length_frames for p in noise] == [5, 10, 50, 100, 150, 200]
    assert {p.level_dbfs for p in noise} == {-30.0} and {p.match_offset_db for p in noise} == {None}
    assert {p.level_dbfs for p in presets.preset("authors-noise", "training")} == {-12.0}
    with pytest.raises(ValueError, match=r"give --data-kind \(data_kind\)"):
        presets.preset("authors-noise")
    shuffle = presets.preset("authors-shuffle")
    assert [(p.kind, p.segment_frames) for p in shuffle][:2] == [("swap_pairs", 2), ("swap_pairs", 5)]
    assert [p.kind for p in shuffle if p.segment_frames >= 100] == ["block_move"] * 3
    pitch = presets.preset("authors-pitch")
    assert sorted({p.semitones for p in pitch}) == [(1,), (2,), (12,)] and all(p.in_key for p in pitch)
    assert {p.fraction for p in presets.preset("authors-rhythm")} == {0.1, 0.2, 0.3, 0.4}
    assert all(p.onset_frame + p.length_frames <= 750 for p in presets.preset("onset-sweep"))
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        presets.preset("nope")
    for name in presets.PRESETS:  # every preset builds (with a data kind where it needs one)
        assert presets.preset(name, "ood")
