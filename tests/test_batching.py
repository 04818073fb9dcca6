from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lossprofile.batching import halved_after_oom, pack, pack_items


@given(st.lists(st.integers(0, 50), max_size=40), st.integers(1, 80))
def test_pack_keeps_order_stays_within_the_limit_and_closes_a_pack_only_when_full(sizes, limit):
    packs = pack(sizes, limit)
    assert [i for p in packs for i in p] == list(range(len(sizes)))  # every item once, in order
    for p in packs:
        assert p and (len(p) == 1 or sum(sizes[i] for i in p) <= limit)
    for p, after in zip(packs, packs[1:]):  # the next item did not fit
        assert sum(sizes[i] for i in p) + sizes[after[0]] > limit


def test_pack_items_returns_the_items():
    assert pack_items(["a", "bb", "ccc", "d"], len, 3) == [["a", "bb"], ["ccc"], ["d"]]
    assert pack_items(["toolong"], len, 3) == [["toolong"]]


def test_halving_after_out_of_memory_reaches_one_row_and_then_gives_up():
    err = MemoryError("out of memory")
    sizes, rows = [], 13
    while True:
        try:
            rows = halved_after_oom(rows, err)
        except MemoryError as raised:
            assert raised is err
            break
        sizes.append(rows)
    assert sizes == [6, 3, 1]

