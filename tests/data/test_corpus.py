"""The corpus: partial builds (its texture clouds, a training-only addition: tests/embedded/test_training_corpus.py)."""

from __future__ import annotations

import json

from lossprofile.data import corpus


def test_a_partial_build_renders_the_first_pieces_in_name_order_and_a_later_call_goes_on(tmp_path):

    heldout = sorted(j.piece for j in corpus.jobs() if j.split == "heldout")
    table = corpus.build(tmp_path, splits=("heldout",), first=2, workers=1, progress=False)
    tried = sorted(p.stem for p in tmp_path.glob("*.json"))
    assert tried == heldout[: len(tried)]  # a prefix in name order: what the full build's first rows are
    assert len(table) == 2 and list(table["piece"]) == [n for n in tried if "error" not in
                                                         json.loads((tmp_path / f"{n}.json").read_text())]
    more = corpus.build(tmp_path, splits=("heldout",), first=3, workers=1, progress=False)
    assert list(more["piece"][:2]) == list(table["piece"]) and len(more) == 3  # the first two kept, one more
