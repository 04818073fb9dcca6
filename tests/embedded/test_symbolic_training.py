"""make tiny-symbolic: seeded, and an interrupted run resumes to the same weights."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from lossprofile.embedded import symbolic as training
from lossprofile.embedded.recipe import SymbolicRecipe

TINY = SymbolicRecipe(arch=dict(n_layer=1, n_embd=16, n_head=2, n_positions=32), crop_tokens=32, batch=2, steps=4,
                      warmup_steps=2, checkpoint_every=2)


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
