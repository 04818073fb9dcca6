"""The measures of whether a model hears music, on signals and scores with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lossprofile.analysis import musicality

SR = 32000


def chord_sequence(seconds: float, seed: int, semitone_shift: float = 0.0) -> np.ndarray:
    """Harmonic tones: a new random triad every 0.5 s (A4 = 440 Hz), a few partials each."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    out = np.zeros_like(t)
    for start in np.arange(0, seconds, 0.5):
        root = int(rng.integers(48, 72))
        span = (t >= start) & (t < start + 0.5)
        for pitch in (root, root + 4, root + 7):
            f0 = 440.0 * 2 ** ((pitch + semitone_shift - 69) / 12)
            for h in (1, 2, 3):
                out[span] += np.sin(2 * np.pi * f0 * h * t[span]) / h
    return (0.1 * out).astype(np.float32)


def test_chroma_correlation_separates_same_pitch_from_other_pitch_and_noise():
    ref = chord_sequence(6.0, seed=0)
    rng = np.random.default_rng(0)
    assert musicality.chroma_correlation(ref, ref, SR) == pytest.approx(1.0)
    quiet_noise = ref + 10 ** (-40 / 20) * ref.std() * rng.standard_normal(ref.size).astype(np.float32)
    assert musicality.chroma_correlation(quiet_noise, ref, SR) > 0.95
    shifted = chord_sequence(6.0, seed=0, semitone_shift=1.0)
    assert musicality.chroma_correlation(shifted, ref, SR) < 0.4
    white = rng.standard_normal(ref.size).astype(np.float32)
    assert abs(musicality.chroma_correlation(white, ref, SR)) < 0.15


@settings(max_examples=10, deadline=None)
@given(st.floats(0.05, 20.0))
def test_chroma_correlation_ignores_loudness(gain):
    ref = chord_sequence(3.0, seed=1)
    assert musicality.chroma_correlation(gain * ref, ref, SR) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.slow
def test_repeat_and_noise_measures_run_on_a_model(small_lm, music_wav):
    wav = np.tile(music_wav, 4)  # 16 s
    rep = musicality.repeat_test(small_lm, [wav], excerpt_seconds=2.0, passes=3)
    assert list(rep.columns) == ["pass_1", "pass_2", "pass_3", "ratio_last_first"]
    assert np.isfinite(rep.to_numpy()).all() and (rep[["pass_1", "pass_2", "pass_3"]] > 0).all().all()
    table = musicality.noise_response(small_lm, [wav], SR, lengths=(5, 50), onset_frame=100, excerpt_seconds=5.0)
    assert set(table["length_frames"]) == {5, 50}
    assert np.isnan(table.loc[table["length_frames"] == 5, "assimilation_delta"]).all()
    summary = musicality.noise_summary(table)
    assert summary["pieces"] == 1 and np.isfinite(summary["onset_peak"])
    long = table[table["length_frames"] == 50].iloc[0]
    # the window's mean loss is clean + assimilation delta; the counting learner pays less than log(V)
    assert summary["noise_window_nll"] == pytest.approx(long["clean_window_nll"] + long["assimilation_delta"])
    assert 0 < summary["noise_unigram_nll"] < np.log(small_lm.cardinality)
    assert summary["unigram_assimilation"] == pytest.approx(long["noise_unigram_nll"] - long["clean_window_nll"])
    assert 0 < summary["noise_known_nll"] < np.log(small_lm.cardinality)
    assert summary["known_assimilation"] == pytest.approx(long["noise_known_nll"] - long["clean_window_nll"])


def sequential_add_alpha_nats(row: np.ndarray, cardinality: int, alpha: float) -> float:
    """The predictor itself: each code predicted from the counts of the codes before it."""
    counts, total = np.zeros(cardinality), 0.0
    for i, code in enumerate(row):
        total -= np.log((counts[code] + alpha) / (i + alpha * cardinality))
        counts[code] += 1
    return total / len(row)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 11), min_size=1, max_size=60), st.sampled_from([0.01, 0.1, 1.0]))
def test_in_context_unigram_equals_the_sequential_predictor(row, alpha):
    row = np.array(row)
    closed = musicality.in_context_unigram_nats(row[None], 12, alphas=(alpha,))[0]
    assert closed == pytest.approx(sequential_add_alpha_nats(row, 12, alpha), rel=1e-9)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 63), min_size=2, max_size=80), st.randoms(use_true_random=False))
def test_in_context_unigram_ignores_order_and_takes_the_best_prior(row, rnd):
    row = np.array(row)
    shuffled = row.copy()
    rnd.shuffle(shuffled)
    both = musicality.in_context_unigram_nats(np.stack([row, shuffled]), 64)
    assert both[0] == pytest.approx(both[1], rel=1e-9)
    single = [musicality.in_context_unigram_nats(row[None], 64, alphas=(a,))[0] for a in (0.01, 1.0)]
    assert musicality.in_context_unigram_nats(row[None], 64, alphas=(0.01, 1.0))[0] == pytest.approx(min(single))


def test_in_context_unigram_is_cheap_on_a_constant_and_log_v_on_uniform_codes():
    rng = np.random.default_rng(0)
    constant = np.full((1, 500), 7)
    uniform = rng.integers(0, 16, size=(1, 20000))
    assert musicality.in_context_unigram_nats(constant, 1024)[0] < 0.05
    assert musicality.in_context_unigram_nats(uniform, 16)[0] == pytest.approx(np.log(16), abs=0.01)
    with pytest.raises(ValueError, match=r"\[0, 16\)"):
        musicality.in_context_unigram_nats(np.array([[3, 16]]), 16)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 11), min_size=1, max_size=40), st.lists(st.integers(0, 11), min_size=1, max_size=80),
       st.sampled_from([0.01, 0.1, 1.0]))
def test_known_source_is_the_cross_entropy_under_the_smoothed_reference_counts(row, ref, alpha):
    row, ref = np.array(row), np.array(ref)
    probability = [(np.sum(ref == c) + alpha) / (len(ref) + 12 * alpha) for c in range(12)]
    expected = -np.mean([np.log(probability[c]) for c in row])
    assert musicality.known_source_nats(row[None], ref[None], 12, alphas=(alpha,))[0] == pytest.approx(expected)


def test_knowing_the_source_reaches_its_entropy_where_counting_in_context_cannot():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.full(256, 0.3))  # a skewed source over 256 of 1024 codes
    entropy = -(p * np.log(p)).sum()
    source = lambda n: rng.choice(256, size=(2, n), p=p)  # noqa: E731
    window, reference = source(150), source(20000)
    known = musicality.known_source_nats(window, reference, 1024)
    assert known == pytest.approx([entropy, entropy], abs=0.35)
    # 150 codes are too few to learn 256 frequencies in context
    assert (musicality.in_context_unigram_nats(window, 1024) > known + 0.5).all()
    unrelated = rng.integers(512, 1024, size=(2, 20000))  # a reference from another source
    assert (musicality.known_source_nats(window, unrelated, 1024) > np.log(1024)).all()
    with pytest.raises(ValueError, match="codebooks"):
        musicality.known_source_nats(window, reference[:1], 1024)
    with pytest.raises(ValueError, match=r"reference_codes must lie in \[0, 1024\)"):
        musicality.known_source_nats(window, reference + 1000, 1024)
