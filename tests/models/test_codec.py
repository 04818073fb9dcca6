"""Encoding variants by re-running the codec only around each change gives the codes of a whole encode
wherever float rounding cannot decide a code (i.e. away from VQ near-ties)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings, strategies as st

from lossprofile.models.musicgen import codec
from lossprofile.perturb import Perturbation

SR, FR = 32000, 50


# tiny_lm (tests/conftest.py): a trained codec, so its VQ decisions have real margins (random codebooks tie everywhere)


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


@pytest.mark.slow
def test_quantizer_diagnostic_gives_transformers_own_codes(small_lm, music_wav):
    x = torch.from_numpy(music_wav)[None, None]
    with torch.no_grad():
        embeddings = small_lm.model.audio_encoder.encoder(x)
    codes, margins = codec.quantize_with_margins(small_lm.model.audio_encoder.quantizer, embeddings, 4)
    assert torch.equal(codes, small_lm.encode(x)) and (margins >= 0).all()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["noise", "add_noise", "silence", "shuffle", "block_swap"]),
       onset=st.integers(0, 140), length=st.integers(1, 60), seed=st.integers(0, 3), batch_segments=st.booleans())
# silence from frame 0: its large latent lies near two codewords, a tie that a margin relative to the distance
# itself (before 2026-11-30) called decided, and the codes flipped under ATEN_CPU_CAPABILITY=default
@pytest.mark.slow
@example(kind="silence", onset=0, length=21, seed=0, batch_segments=False)
def test_variant_codes_equal_encoding_each_waveform_alone_away_from_near_ties(tiny_lm, music_wav, kind, onset,
                                                                            length, seed, batch_segments):
    lm = tiny_lm
    length = max(2, min(length, (200 - onset) // 2))  # block_swap needs two windows, shuffle two segments
    segment = max(1, min(5, length // 2)) if kind == "shuffle" else None
    variant = Perturbation(kind, onset, length, segment_frames=segment, seed=seed).apply(music_wav, SR, FR)
    # a second, shorter change at the start, so batched segments are widened to the longest one
    short = Perturbation("noise", 0, 2, seed=seed).apply(music_wav, SR, FR)
    spliced = codec.encode_variants(lm, music_wav, [variant, music_wav.copy(), short], batch_segments=batch_segments)
    whole = torch.cat([lm.encode(torch.from_numpy(w)[None, None]) for w in (music_wav, variant, music_wav, short)])
    assert torch.equal(spliced[0], whole[0]) and torch.equal(spliced[2], whole[0])  # unchanged audio: bit-exact
    with torch.no_grad():
        embeddings = lm.model.audio_encoder.encoder(torch.from_numpy(variant)[None, None])
    _, margins = codec.quantize_with_margins(lm.model.audio_encoder.quantizer, embeddings, 4)
    decided = (margins > 1e-4).all(dim=1)[0]  # frames where no code is within rounding of a tie
    # silence is a tie (its frames alternate between two codewords); windows are at most 60 of the 200 frames
    assert decided.float().mean() > 0.5
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


@pytest.mark.slow
@pytest.mark.parametrize("batch_segments", [False, True])
def test_encoding_across_pieces_gives_each_pieces_own_codes_away_from_near_ties(tiny_lm, music_wav, batch_segments):
    lm = tiny_lm
    rng = np.random.default_rng(0)
    other = (music_wav[::-1] + 0.01 * rng.standard_normal(music_wav.size)).astype(np.float32)
    shorter = music_wav[: 3 * SR]  # another length: its own batches
    pieces = []
    for k, clean in enumerate((music_wav, other, shorter)):
        variants = [Perturbation("noise", 20 + 10 * k, 15, seed=k).apply(clean, SR, FR),
                    clean.copy(),  # unchanged: the clean row's codes
                    Perturbation("shuffle", 60, 40, segment_frames=5, seed=k).apply(clean, SR, FR)]
        pieces.append((clean, variants))
    alone = [codec.encode_variants(lm, clean, variants, batch_segments=batch_segments) for clean, variants in pieces]
    # small budgets split the convolutions, the LSTM and the quantizer into several batches: only rounding may change
    for samples, frames in ((codec.MAX_BATCH_SAMPLES, codec.MAX_BATCH_FRAMES), (5 * SR, 500)):
        together = codec.encode_pieces(lm, pieces, batch_segments, max_batch_samples=samples, max_batch_frames=frames)
        assert [c.shape for c in together] == [c.shape for c in alone] == [(4, 4, 200), (4, 4, 200), (4, 4, 150)]
        for (clean, variants), a, b in zip(pieces, alone, together):
            assert torch.equal(b[2], b[0])  # the unchanged variant is the clean row
            for wav, row_a, row_b in zip((clean, *variants), a, b):
                with torch.no_grad():
                    embeddings = lm.model.audio_encoder.encoder(torch.from_numpy(wav)[None, None])
                _, margins = codec.quantize_with_margins(lm.model.audio_encoder.quantizer, embeddings, 4)
                decided = (margins > 1e-4).all(dim=1)[0]
                assert decided.float().mean() > 0.9
                assert torch.equal(row_a[:, decided], row_b[:, decided])
                assert (row_a != row_b).any(dim=0).float().mean() <= 0.02
    # one piece: exactly encode_variants (its clean row alone, as lm.encode)
    assert torch.equal(codec.encode_pieces(lm, pieces[:1], batch_segments)[0], alone[0])
    assert torch.equal(alone[0][0], lm.encode(torch.from_numpy(music_wav)[None, None])[0])


@given(widths=st.lists(st.integers(1, 10_000), max_size=40), ratio=st.floats(1.0, 4.0))
def test_width_groups_keep_each_segment_once_and_widen_by_at_most_the_ratio(widths, ratio):
    groups = codec.width_groups(list(range(len(widths))), lambda k: widths[k], ratio)
    assert sorted(k for g in groups for k in g) == list(range(len(widths)))
    for g in groups:
        assert max(widths[k] for k in g) <= ratio * min(widths[k] for k in g)
    # greedy from the narrowest: the next group's narrowest would not have fitted the previous group
    for before, after in zip(groups, groups[1:]):
        assert min(widths[k] for k in after) > ratio * min(widths[k] for k in before)
