"""The engine's prefix groups: a piece's variants that change at different frames each reuse the clean piece's
decoder prefix up to their own change, and the scores stay those of scoring every sequence alone."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lossprofile import scoring
from lossprofile import bench
from lossprofile.bench import decoder_row_steps
from lossprofile.perturb import Perturbation, noise_sweep

SR = 32000


def codes_changing_at(onsets: list[int], frames: int = 40, seed: int = 0) -> torch.Tensor:
    """A clean row ``[4, frames]`` and one variant per onset that differs from it from that frame on."""
    g = torch.Generator().manual_seed(seed)
    clean = torch.randint(0, 32, (4, frames), generator=g)
    rows = [clean]
    for onset in onsets:
        row = clean.clone()
        if onset < frames:
            row[:, onset:] = (row[:, onset:] + 1 + torch.randint(0, 30, (4, frames - onset), generator=g)) % 32
        rows.append(row)
    return torch.stack(rows)


def cost(groups, steps: int, group_cost: int) -> int:
    return decoder_row_steps([(len(rows), shared) for rows, shared in groups], steps) + group_cost * (len(groups) - 1)


def set_partitions(items: list[int]):
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for partition in set_partitions(rest):
        yield [[first], *partition]
        for k in range(len(partition)):
            yield [*partition[:k], [first, *partition[k]], *partition[k + 1 :]]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 45), min_size=1, max_size=6), st.sampled_from([0, 8, 64]))
def test_prefix_groups_cover_every_row_once_share_only_what_they_share_and_cost_least(small_lm, onsets, group_cost):
    codes = codes_changing_at(onsets)
    groups = scoring.prefix_groups(small_lm, codes, group_cost)
    assert sorted(r for rows, _ in groups for r in rows) == list(range(len(codes)))
    assert all(rows == sorted(rows) for rows, _ in groups)
    own = [small_lm.shared_steps(codes[[0, i]]) for i in range(1, len(codes))]
    for rows, shared in groups:  # a group shares no step that one of its rows does not share with the clean row
        assert all(shared <= own[r - 1] for r in rows if r > 0)
    steps = codes.shape[-1] + small_lm.num_codebooks - 1
    # the least cost over every partition of the rows into groups (each sharing what all its rows share)
    mine = [max(own), *own]
    least = min(cost([(p, min(mine[r] for r in p)) for p in partition], steps, group_cost)
                for partition in set_partitions(list(range(len(codes)))))
    assert cost(groups, steps, group_cost) == least
    if len(set(own)) == 1:  # every variant changes at one frame: one group, as a single shared prefix runs it
        assert groups == [(list(range(len(codes))), own[0])]


@pytest.mark.slow
def test_variants_changing_at_different_frames_each_reuse_their_own_prefix_and_score_as_alone(small_lm, music_wav):
    # the paper sweep's mix: changes from frame 0 (a shuffle of the whole excerpt) to late noise windows
    perts = ([Perturbation("shuffle", 0, 200, segment_frames=10)] + noise_sweep((5, 20, 40), onset_frame=60)
             + noise_sweep((5, 20, 40), onset_frame=120) + noise_sweep((5, 20), onset_frame=170))
    variants = [p.apply(music_wav, SR, 50) for p in perts]
    scores = scoring.score_variants(small_lm, music_wav, variants, batch_size=4)
    codes = torch.cat([scores.codes_clean[None], scores.codes_variants])
    alone = torch.cat([small_lm.token_nll(codes[i : i + 1]) for i in range(len(codes))])  # each sequence in full
    assert torch.allclose(torch.cat([scores.nll_clean[None], scores.nll_variants]), alone, atol=1e-4)
    assert len(scores.prefix_groups) >= 3 and scores.shared_steps < 60  # the shuffle changes before any noise
    steps = codes.shape[-1] + small_lm.num_codebooks - 1
    one_prefix = decoder_row_steps([(len(codes), scores.shared_steps)], steps)
    assert decoder_row_steps(scores.prefix_groups, steps) < 0.75 * one_prefix
    # across pieces: groups of both share batches, every row runs once, the same numbers
    backwards = music_wav[::-1].copy()
    pieces = [(music_wav, variants), (backwards, [p.apply(backwards, SR, 50) for p in perts])]
    many = scoring.score_many(small_lm, pieces, batch_size=8)
    assert [sum(rows for rows, _ in s.prefix_groups) for s in many] == [len(codes), len(codes)]
    assert torch.allclose(many[0].nll_variants, scores.nll_variants, atol=1e-4)
    backwards_codes = torch.cat([many[1].codes_clean[None], many[1].codes_variants])
    assert torch.allclose(many[1].nll_variants, small_lm.token_nll(backwards_codes)[1:], atol=1e-4)
    # the benchmark's comparison, one prefix per piece against the groups: the same numbers, less work
    gain = bench.prefix_groups_gain(small_lm, perts, 1, 4.0, "auto")
    assert gain["groups_row_steps"] < 0.75 * gain["one_prefix_row_steps"] and gain["max_nll_difference"] < 1e-4


units = st.lists(st.tuples(st.integers(0, 3), st.integers(1, 9), st.integers(0, 300)), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(units, st.integers(1, 20), st.sampled_from([0, 4, 32]))
def test_prefix_batches_hold_every_unit_once_within_the_limit_and_the_slack(drawn, limit, slack):
    groups = [(piece, list(range(rows)), steps) for piece, rows, steps in drawn]
    batches = scoring.prefix_batches(groups, limit, slack)
    assert sorted(u for b in batches for u in b) == sorted(groups)
    for batch in batches:
        assert sum(len(rows) for _, rows, _ in batch) <= limit or len(batch) == 1
        shortest = min(steps for _, _, steps in batch)
        assert all(steps - shortest <= slack for _, _, steps in batch)


def test_groups_of_several_pieces_a_frame_apart_share_one_batch():
    # where a noise window first changes the codes differs by a frame or two between pieces
    groups = [(0, [0, 1, 2], 247), (1, [0, 1, 2], 249), (2, [0, 1, 2], 248), (0, [3, 4], 600), (1, [3], 1)]
    assert scoring.prefix_batches(groups, 16) == [[(1, [3], 1)], [(0, [0, 1, 2], 247), (2, [0, 1, 2], 248),
                                                                   (1, [0, 1, 2], 249)], [(0, [3, 4], 600)]]
    assert len(scoring.prefix_batches(groups, 16, slack_steps=0)) == 5
