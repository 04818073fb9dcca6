"""What every family shares from models.base: top-k sampling."""

from __future__ import annotations


def test_top_k_sampling_draws_only_among_the_k_most_likely_and_never_a_banned_token():
    import torch

    from lossprofile.models.base import sample_top_k

    logits = torch.tensor([[0.0, 5.0, 4.0, -1.0, 3.0], [9.0, 1.0, 2.0, 3.0, float("-inf")]]).repeat(200, 1)
    drawn = sample_top_k(logits, 2, torch.Generator().manual_seed(0))
    assert drawn.shape == (400,)
    assert set(drawn[0::2].tolist()) == {1, 2} and set(drawn[1::2].tolist()) <= {0, 3}
    everything = sample_top_k(logits[1::2], 0, torch.Generator().manual_seed(0))
    assert 4 not in everything.tolist()  # -inf: banned
