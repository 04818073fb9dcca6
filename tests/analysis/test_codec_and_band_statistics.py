"""The codec's quantisation residual per RVQ level and the band shares of window means against a clean reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from lossprofile.analysis import profile, statistics, typicality
from lossprofile.modality import AUDIO
from lossprofile.analysis.statistics import Curves
from lossprofile.models.musicgen.codec import residual_norms

DESIGN = profile.ProbeDesign(n_bursts=2, burst_frames=5, long_frames=20, recovery_frames=10, first_onset=40)


def curves(frame_nll: np.ndarray, frame_entropy: np.ndarray | None = None, residual=None) -> Curves:
    frame_entropy = frame_nll * 0.8 if frame_entropy is None else frame_entropy
    return Curves(nll=frame_nll[None], entropy=frame_entropy[None], codes=np.zeros((1, frame_nll.size), int),
                  frame_nll=frame_nll, frame_entropy=frame_entropy, frame_rate=50, cardinality=2048,
                  residual=residual)


# ---- the codec's quantisation residual ------------------------------------------------------------------
def test_the_residual_is_each_levels_distance_to_its_nearest_codeword(small_lm, music_wav):
    codec = small_lm.model.audio_encoder
    with torch.no_grad():
        latents = codec.encoder(torch.from_numpy(music_wav)[None, None])
        codes = codec.quantizer.encode(latents, max(codec.config.target_bandwidths)).transpose(0, 1)
        norms = residual_norms(codec.quantizer, latents, codes[:, : small_lm.num_codebooks])
    K, T = small_lm.num_codebooks, latents.shape[-1]
    assert norms.shape == (1, K + 1, T) and (norms >= 0).all()
    assert torch.allclose(norms[0, 0], latents[0].norm(dim=0))
    residual = latents[0].T
    for k, layer in enumerate(codec.quantizer.layers[:K]):  # greedy RVQ: the nearest codeword at every level
        distances = torch.cdist(residual, layer.codebook.embed)
        assert torch.allclose(norms[0, k + 1], distances.min(1).values, atol=1e-4)
        residual = residual - layer.codebook.embed[distances.argmin(1)]
    # a latent that is a level-0 codeword leaves nothing after level 0
    word = codec.quantizer.layers[0].codebook.embed[3]
    assert residual_norms(codec.quantizer, word[None, :, None], torch.tensor([[[3]]]))[0, 1, 0] < 1e-4 * float(
        word.norm())
    # the leftovers are those of the codes given: another codeword leaves its own distance
    other = codec.quantizer.layers[0].codebook.embed[5]
    assert residual_norms(codec.quantizer, word[None, :, None], torch.tensor([[[5]]]))[0, 1, 0] == pytest.approx(
        float((word - other).norm()), rel=1e-5)


def test_the_codec_statistics_are_ratios_and_nan_without_a_codec_residual():
    r = np.array([[2.0, 2.0], [1.0, 1.0], [0.5, 0.7], [0.5, 0.6], [0.4, 0.5]])  # [K + 1, T]
    values = statistics.curve_statistics(curves(np.ones(100), residual=r))
    assert values["quant_residual_k0"] == pytest.approx(0.5) and values["quant_residual_k1"] == pytest.approx(0.6)
    assert values["quant_residual_total"] == pytest.approx(0.45 / 2.0)
    no_codec = statistics.curve_statistics(curves(np.ones(100)))
    assert all(np.isnan(no_codec[f"quant_residual_k{k}"]) for k in range(4)) and np.isnan(no_codec[
        "quant_residual_total"])
    fewer = statistics.curve_statistics(curves(np.ones(100), residual=r[:3]))  # a codec of 2 levels
    assert np.isfinite(fewer["quant_residual_k1"]) and np.isnan(fewer["quant_residual_k2"])
    assert statistics.STATISTICS["quant_residual_k0"].modalities == ("audio",)


def test_the_profile_reads_the_clean_passs_own_encoding(small_lm, music_wav):
    wav = np.tile(music_wav, 2)
    small_lm._residuals.clear()
    row = profile.profile_scores(small_lm, [wav], 32000, excerpt_seconds=6.0, design=DESIGN, weights={}).iloc[0]
    assert len(small_lm._residuals) == 1  # the clean row's encoding kept its VQ leftovers
    clean = AUDIO.profile_excerpt(wav, 32000, 6.0, profile.MIN_SECONDS, small_lm.hop_length, profile.LOUDNESS_DBFS,
                                  "x")  # the clip exactly as profile_scores prepares it
    small_lm._residuals.clear()
    fresh = small_lm.quantization_residual(clean)  # encoded again, whole
    assert row["quant_residual_k0"] == pytest.approx(fresh[1].mean() / fresh[0].mean(), rel=1e-4)
    assert 0 < row["quant_residual_k0"] and np.isfinite([row[f"quant_residual_k{k}"] for k in range(4)]).all()


def test_the_tiny_codecs_first_level_fits_noise_closer_and_its_second_less_close_than_music(tiny_lm, music_wav):
    # measured on 4 rendered ASAP excerpts against white noise at the same level: level 0 leaves 0.30 of noise's
    # latent against 0.48-0.55 of piano's, level 1 0.81 against 0.73-0.75 (and hard clipping raises level 0's)
    from lossprofile import audio

    noise = audio.normalize_rms(np.random.default_rng(0).standard_normal(music_wav.size).astype(np.float32), -20.0)
    music = audio.normalize_rms(music_wav, -20.0)
    rel = {name: (lambda r: r[1:].mean(1) / r[:-1].mean(1))(tiny_lm.quantization_residual(w))
           for name, w in (("music", music), ("noise", noise))}
    assert rel["noise"][0] < rel["music"][0] and rel["noise"][1] > rel["music"][1]
    assert tiny_lm.quantization_residual(noise).shape == (tiny_lm.num_codebooks + 1, music_wav.size // 640)


def test_a_model_over_midi_has_no_codec_residual(tiny_symbolic_lm):
    assert tiny_symbolic_lm.quantization_residual(np.zeros(32000, np.float32)) is None


# ---- band shares -------------------------------------------------------------------------------------------
def band_table(curve_list) -> pd.DataFrame:
    return pd.DataFrame([{**statistics.curve_statistics(c), "piece": f"p{i}"} for i, c in enumerate(curve_list)])


def reference_curves(n: int = 30, seed: int = 0) -> list[Curves]:
    rng = np.random.default_rng(seed)
    return [curves(rng.normal(3.0 + 0.3 * rng.standard_normal(), 1.0, 750).clip(0),
                   rng.normal(2.5, 0.8, 750).clip(0)) for _ in range(n)]


def test_the_reference_has_a_tenth_of_its_windows_outside_its_own_band():
    reference = band_table(reference_curves())
    bands = statistics.reference_bands(reference)
    assert set(bands) == {statistics.band_key(w, s) for w, s in statistics.BAND_WINDOWS}
    scored = statistics.with_band_statistics(reference, bands)
    for key, (low, high) in bands.items():
        assert low < high
        assert scored[f"{key}_outside"].mean() == pytest.approx(0.10, abs=1e-6)  # the pooled 5-95% band
    # a clip equal to one of the reference's has that clip's share, and clean clips like them about a tenth
    again = statistics.with_band_statistics(band_table(reference_curves()[:1]), bands)
    assert again.loc[0, "nll_w2s_outside"] == pytest.approx(scored.loc[0, "nll_w2s_outside"])
    new = statistics.with_band_statistics(band_table(reference_curves(20, seed=1)), bands)
    assert 0.03 < new["nll_w0.5s_outside"].mean() < 0.25


def test_a_constant_curve_far_from_the_band_is_outside_everywhere_and_one_inside_nowhere():
    reference = band_table(reference_curves())
    bands = statistics.reference_bands(reference)
    low, high = bands["nll_w2s"]
    rows = band_table([curves(np.full(750, high + 5.0)), curves(np.full(750, max(low - 5.0, -1.0))),
                       curves(np.full(750, (low + high) / 2))])
    shares = statistics.with_band_statistics(rows, bands)["nll_w2s_outside"].to_numpy()
    assert shares == pytest.approx([1.0, 1.0, 0.0])


def test_the_share_from_quantiles_is_close_to_the_exact_share_of_windows():
    reference = band_table(reference_curves())
    bands = statistics.reference_bands(reference)
    rng = np.random.default_rng(5)
    for trial in range(10):
        curve = np.concatenate([rng.normal(3.0, 1.0, 500), rng.normal(3.0 + trial * 0.3, 1.0, 250)]).clip(0)
        c = curves(curve)
        got = statistics.with_band_statistics(band_table([c]), bands)
        for which, seconds in statistics.BAND_WINDOWS:
            key = statistics.band_key(which, seconds)
            means = statistics.window_means(c, which, seconds)
            exact = np.mean((means < bands[key][0]) | (means > bands[key][1]))
            assert got.loc[0, f"{key}_outside"] == pytest.approx(exact, abs=0.05)


def test_band_shares_need_a_reference_and_a_shipped_one_carries_its_bands(tmp_path):
    reference = band_table(reference_curves())
    assert not any(s in statistics.STATISTICS and statistics.STATISTICS[s].band for s in reference)  # quantiles only
    assert statistics.with_band_statistics(reference, {}) is reference
    stats = [s for s in statistics.STATISTICS if statistics.STATISTICS[s].group == "band"]
    assert len(stats) == 6
    typ = typicality.fit(reference, stats, "mahalanobis", folds=1)
    assert typ.statistics == stats and set(typ.bands) == {statistics.STATISTICS[s].band for s in stats}
    far = band_table([curves(np.full(750, 20.0))])
    assert typ.score(far)[0] < typ.score(reference).min()  # scored from its quantiles against the bands
    # shipped: the shares and the bands, no quantiles; a new clip is scored against those bands
    kept = statistics.with_band_statistics(reference, typ.bands)[["piece", *stats]]
    typicality.save_reference(kept, "audio", dict(detector="mahalanobis", statistics=stats, seed=0,
                                                  window_bands=typ.bands), tmp_path)
    shipped = typicality.shipped("audio", tmp_path)
    assert shipped.bands == typ.bands
    assert shipped.score(far)[0] == pytest.approx(typ.score(far)[0])
