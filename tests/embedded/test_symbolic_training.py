"""make tiny-symbolic: seeded, an interrupted run resumes to the same weights, loops are whole bars."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from lossprofile.embedded import symbolic_training as training
from lossprofile.embedded.recipe import SymbolicRecipe

TINY = SymbolicRecipe(arch=dict(n_layer=1, n_embd=16, n_head=2, n_positions=32), crop_tokens=32, batch=2, steps=2,
                      warmup_steps=2, checkpoint_every=2, finish_steps=2, loop_tokens=(8, 64))


@pytest.mark.slow
def test_an_interrupted_training_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path, monkeypatch):
    straight = training.train(TINY, build_dir=tmp_path / "a", out_dir=tmp_path / "out_a", workers=1, limit=3)
    # the same run, stopped after its step-2 checkpoint (as Ctrl-C would), then started again
    real, calls = training.crops, []

    def stop_at_the_third_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "tokens").symlink_to(tmp_path / "a" / "tokens")  # the tokenised corpus is reused as well
    monkeypatch.setattr(training, "crops", stop_at_the_third_batch)
    with pytest.raises(KeyboardInterrupt):
        training.train(TINY, build_dir=tmp_path / "b", out_dir=tmp_path / "out_b", workers=1, limit=3)
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)["step"] == 2
    monkeypatch.setattr(training, "crops", real)
    resumed = training.train(TINY, build_dir=tmp_path / "b", out_dir=tmp_path / "out_b", workers=1, limit=3)
    a, b = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (resumed / "tokenizer.json").exists() and (resumed / "training_log.json").exists()


def test_loops_are_whole_bars_of_the_piece_repeated():
    import numpy as np

    bar = 7
    piece = np.array([bar, 1, 2, 3, bar, 4, 5, bar, 6, 8, 9, 10, bar, 11])
    recipe = SymbolicRecipe(crop_tokens=40, loop_tokens=(3, 8))
    starts = list(np.flatnonzero(piece == bar))
    ends = starts[1:] + [len(piece)]
    for seed in range(20):
        loop = training.bar_loop(piece, bar, recipe, np.random.default_rng(seed))
        assert len(loop) == 39
        # some run of the piece's whole bars (3 to 8 tokens), repeated exactly
        assert any(np.array_equal(loop, np.tile(piece[a:b], 39)[:39]) for a in starts for b in ends if 3 <= b - a <= 8)
    assert training.bar_loop(np.array([1, 2, 3]), bar, recipe, np.random.default_rng(0)) is None


def test_the_shipped_base_model_is_the_same_recipe_stopped_early_and_reads_the_same_tokens(tiny_symbolic_lm):
    import json

    from lossprofile import load_model
    from lossprofile.models.symbolic.model import TINY_SYMBOLIC_BASE_DIR, TINY_SYMBOLIC_DIR

    base, finished = (json.loads((d / "training_log.json").read_text()) for d in (TINY_SYMBOLIC_BASE_DIR, TINY_SYMBOLIC_DIR))
    assert base["recipe"]["steps"] == 300 and base["recipe"]["finish_steps"] == 0
    same = lambda log: {k: v for k, v in log["recipe"].items() if k not in ("steps", "finish_steps")}
    assert same(base) == same(finished)
    assert base["loss_last_100"] > finished["loss_last_100"] + 0.5  # it is the weaker model
    assert sum(p.stat().st_size for p in TINY_SYMBOLIC_BASE_DIR.iterdir()) < 10 * 2**20
    lm, ref = tiny_symbolic_lm, load_model("tiny-symbolic-base", device="cpu")
    assert lm.tokenizer.vocab == ref.tokenizer.vocab and lm.fingerprint != ref.fingerprint
