"""Encoding variants by re-running the codec only around each change gives the codes of a whole encode
wherever float rounding cannot decide a code (i.e. away from VQ near-ties)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings, strategies as st

from lossprofile import load_model
from lossprofile.models.musicgen import codec
from lossprofile.perturb import Perturbation

SR, FR = 32000, 50


@pytest.fixture(scope="module")
def tiny_lm():
    # a trained codec: its VQ decisions have real margins (random codebooks tie everywhere)
    return load_model("tiny", device="cpu")


def test_receptive_radius_covers_every_convolution(small_lm):
    local, rest = codec.split_encoder(small_lm.model.audio_encoder)
    assert any(isinstance(m, torch.nn.LSTM) for layer in rest for m in layer.modules())
    radius = codec.receptive_radius_samples(local)
    # an impulse moves the conv-stack output only within the radius
    x = torch.zeros(1, 1, 64 * small_lm.hop_length)
    y = x.clone()
    y[..., 32 * small_lm.hop_length] = 1.0
    with torch.no_grad():
        changed = (codec._run(local, y) - codec._run(local, x)).abs().amax(dim=1)[0] > 0
    frames = torch.nonzero(changed).flatten()
    assert frames.numel() > 0
    assert (frames.max() - frames.min() + 1) * small_lm.hop_length <= 2 * radius + 2 * small_lm.hop_length


def test_quantizer_diagnostic_gives_transformers_own_codes(small_lm, music_wav):
    x = torch.from_numpy(music_wav)[None, None]
    with torch.no_grad():
        embeddings = small_lm.model.audio_encoder.encoder(x)
    codes, margins = codec.quantize_with_margins(small_lm.model.audio_encoder.quantizer, embeddings, 4)
    assert torch.equal(codes, small_lm.encode(x)) and (margins >= 0).all()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["noise", "add_noise", "silence", "shuffle", "block_swap"]),
       onset=st.integers(0, 140), length=st.integers(1, 60), seed=st.integers(0, 3), batch_segments=st.booleans())
def test_variant_codes_equal_encoding_each_waveform_alone_away_from_near_ties(tiny_lm, music_wav, kind, onset,
                                                                            length, seed, batch_segments):
    lm = tiny_lm
    length = max(2, min(length, (200 - onset) // 2))  # block_swap needs two windows, shuffle two segments
    segment = max(1, min(5, length // 2)) if kind == "shuffle" else None
    variant = Perturbation(kind, onset, length, segment_frames=segment, seed=seed).apply(music_wav, SR, FR)
    # a second, shorter change at the start, so batched segments are widened to the longest one
    short = Perturbation("noise", 0, 2, seed=seed).apply(music_wav, SR, FR)
    spliced = codec.encode_variants(lm, music_wav, [variant, music_wav.copy(), short], batch_segments)
    whole = torch.cat([lm.encode(torch.from_numpy(w)[None, None]) for w in (music_wav, variant, music_wav, short)])
    assert torch.equal(spliced[0], whole[0]) and torch.equal(spliced[2], whole[0])  # unchanged audio: bit-exact
    with torch.no_grad():
        embeddings = lm.model.audio_encoder.encoder(torch.from_numpy(variant)[None, None])
    _, margins = codec.quantize_with_margins(lm.model.audio_encoder.quantizer, embeddings, 4)
    decided = (margins > 1e-4).all(dim=1)[0]  # frames where no code is within rounding of a tie
    assert decided.float().mean() > 0.9
    assert torch.equal(spliced[1][:, decided], whole[1][:, decided])
    assert (spliced[1] != whole[1]).any(dim=0).float().mean() <= 0.02
    assert (spliced[3] != whole[3]).any(dim=0).float().mean() <= 0.02


def test_splicing_refuses_variants_of_another_length_or_with_nan(small_lm, music_wav):
    with pytest.raises(ValueError, match="finite waveforms"):
        codec.encode_variants(small_lm, music_wav, [music_wav[:-10]])
    bad = music_wav.copy()
    bad[5] = np.nan
    with pytest.raises(ValueError, match="finite waveforms"):
        codec.encode_variants(small_lm, music_wav, [bad])
