"""Cutting work into batches: one rule for every caller (the codec's convolutions and quantizer, the decoder's
rows), and one rule for retrying a batch that did not fit in GPU memory.

The lowest layer: it imports nothing of the package, nor torch.
"""

from __future__ import annotations

from typing import Callable, Sequence, TypeVar

T = TypeVar("T")


def pack(sizes: Sequence[int], limit: int) -> list[list[int]]:
    """Consecutive runs of item indices whose sizes add up to at most ``limit`` (a larger item runs alone)."""
    packs, current, total = [], [], 0
    for i, size in enumerate(sizes):
        if current and total + size > limit:
            packs.append(current)
            current, total = [], 0
        current.append(i)
        total += size
    return packs + ([current] if current else [])


def pack_items(items: Sequence[T], size_of: Callable[[T], int], limit: int) -> list[list[T]]:
    """`pack` over the items themselves: consecutive runs whose sizes add up to at most ``limit``."""
    return [[items[i] for i in chosen] for chosen in pack([size_of(item) for item in items], limit)]


def halved_after_oom(rows: int, error: BaseException) -> int:
    """The batch size to retry with after ``error`` (an out-of-memory) at ``rows`` rows: half, at least 1; a
    single row that does not fit re-raises ``error``, since no smaller batch exists."""
    if rows <= 1:
        raise error
    return max(1, rows // 2)
