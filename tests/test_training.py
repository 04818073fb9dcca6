"""The tiny model's training script: deterministic under a seed, and it learns."""

from __future__ import annotations

import numpy as np
import torch

from lossprofile.architecture import build_model, musicgen_config
from lossprofile.training import build_tokenizer, train_codec, train_lm

from .conftest import SMALL


def tones(n: int = 3, seconds: float = 2.0, sr: int = 32000) -> list[np.ndarray]:
    t = np.arange(int(seconds * sr)) / sr
    return [(0.3 * np.sin(2 * np.pi * (220 + 55 * i) * t * (1 + 0.2 * np.floor(t * 4) % 2))).astype(np.float32)
            for i in range(n)]


def train(seed: int, lm_steps: int = 3):
    torch.manual_seed(seed)
    model = build_model(musicgen_config(**SMALL), seed=seed)
    wavs = tones()
    train_codec(model.audio_encoder, wavs, steps_ae=2, steps_vq=2, batch=2, seconds=0.5, seed=seed)
    with torch.no_grad():
        codes = [model.audio_encoder.encode(torch.from_numpy(w)[None, None], bandwidth=max(
            model.config.audio_encoder.target_bandwidths)).audio_codes[0, 0] for w in wavs]
    tokenizer = build_tokenizer(["organ", "piano", "strings"])
    log = train_lm(model, tokenizer, codes, ["organ", "piano", "strings"], lm_steps, batch=2, crop_frames=40,
                   seed=seed)
    return model.state_dict(), log


def test_same_seed_same_weights_other_seed_other_weights():
    a, _ = train(0)
    b, _ = train(0)
    c, _ = train(1)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_language_model_loss_falls_while_training():
    _, log = train(0, lm_steps=200)
    losses = [row["loss"] for row in log if row["stage"] == "lm"]
    assert losses[0] > 4.0 and losses[-1] < losses[0] - 0.3  # from ~log(64) down
