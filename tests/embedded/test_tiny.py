"""The embedded tiny model: offline, same code path as the hub checkpoints, card reproducible."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import transformers

from lossprofile.paper import experiments as ex
from lossprofile import load_model
from lossprofile.models.musicgen import TINY_DIR
from lossprofile.data import load_excerpt


@pytest.mark.slow
def test_tiny_loads_offline_through_from_pretrained_as_a_musicgen():
    code = ("import lossprofile, transformers; lm = lossprofile.load_model('tiny', device='cpu'); "
            "assert type(lm.model) is transformers.MusicgenForConditionalGeneration; "
            "print(lm.sample_rate, lm.frame_rate, lm.num_codebooks, lm.cardinality)")
    out = subprocess.run([sys.executable, "-c", code], env={"HF_HUB_OFFLINE": "1", "HOME": os.environ.get("HOME", "/tmp")},
                         capture_output=True, text=True, check=True)
    sr, fr, k, card = map(int, out.stdout.split())
    assert (sr, fr, k) == (32000, 50, 4) and card >= 64


def test_tiny_is_saved_in_the_hub_format():
    files = {p.name for p in TINY_DIR.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"} <= files
    config = json.loads((TINY_DIR / "config.json").read_text())
    assert config["model_type"] == "musicgen" and config["architectures"] == ["MusicgenForConditionalGeneration"]
    assert sum(p.stat().st_size for p in TINY_DIR.iterdir()) < 30 * 2**20


@pytest.mark.slow
def test_tiny_predicts_music_better_than_chance_and_the_card_number_is_reproduced(tiny_lm):
    lm = tiny_lm
    card = json.loads((TINY_DIR / "card.json").read_text())
    piece = ex.pieces("ood", 1)[0]
    codes = lm.encode(torch.from_numpy(load_excerpt(piece, lm.sample_rate, 15.0))[None, None])
    nll = lm.token_nll(codes).mean().item()
    assert nll < math.log(lm.cardinality) - 0.5
    assert abs(nll - card["ood_lm_nll_per_piece"][piece.name]) < 1e-3
    assert card["training_heldout_lm_nll"] < card["training_heldout_unigram_nll"]
    assert card["ood_lm_nll"] < card["ood_unigram_nll"]


def test_tiny_uses_the_same_loader_as_hub_names(monkeypatch):
    calls = []
    original = transformers.MusicgenForConditionalGeneration.from_pretrained

    def spy(path, *args, **kwargs):
        calls.append(path)
        return original(path, *args, **kwargs)

    monkeypatch.setattr(transformers.MusicgenForConditionalGeneration, "from_pretrained", spy)
    load_model("tiny", device="cpu")
    assert calls == [str(TINY_DIR)]


@pytest.mark.slow
def test_tiny_loss_jumps_when_white_noise_replaces_the_music(tiny_lm):
    # The response every experiment relies on: a loudness-matched white-noise onset at frame 250
    # is surprising, so the next 5 frames cost more than the same frames of the clean piece.
    from lossprofile.perturb.waveform import replace_with_noise

    lm = tiny_lm
    wav = load_excerpt(ex.pieces("training", 1)[0], lm.sample_rate, 15.0)
    noisy = replace_with_noise(wav, lm.sample_rate, lm.frame_rate, onset_frame=250, length_frames=50, seed=0)
    nll = lm.token_nll(lm.encode(torch.from_numpy(np.stack([wav, noisy]))[:, None])).mean(dim=1)
    delta = nll[1] - nll[0]
    assert delta[250:255].mean().item() > 0.3
    assert delta[:245].abs().max().item() < 1e-4  # the codec's receptive field leaves earlier frames untouched


@pytest.mark.slow
def test_tiny_uses_its_context_a_repeated_excerpt_costs_far_less(tiny_lm):
    # The ability the paper's Assimilation needs: music heard a moment ago is predicted from the
    # context. A 5 s excerpt played three times: the third pass costs under half the first
    # (the card measures 0.06 over 24 pieces; a model without context use gives about 1.0).
    from lossprofile.analysis import musicality

    lm = tiny_lm
    wav = load_excerpt(ex.pieces("ood", 1)[0], lm.sample_rate, 15.0)
    rep = musicality.repeat_test(lm, [wav], excerpt_seconds=5.0, passes=3)
    assert rep["ratio_last_first"].iloc[0] < 0.5
    assert rep["pass_2"].iloc[0] < rep["pass_1"].iloc[0] - 1.0


@pytest.mark.slow
def test_tiny_assimilates_long_white_noise_the_papers_effect(tiny_lm):
    # The paper's Assimilation, which the finishing stage's texture clouds gave the embedded model:
    # once 200 frames of loudness-matched white noise are the context, they cost less than the
    # music they replace. Measured on these 6 held-out and OOD pieces: -0.88 nats per code on
    # average (-0.16 to -1.25 per piece); the base model before the finishing stage paid +0.44 more
    # than the music on the study's excerpts (the card's study table).
    from lossprofile.perturb.waveform import replace_with_noise

    lm = tiny_lm
    deltas = []
    for piece in ex.pieces("training", 3) + ex.pieces("ood", 3):
        wav = load_excerpt(piece, lm.sample_rate, 15.0)
        noisy = replace_with_noise(wav, lm.sample_rate, lm.frame_rate, onset_frame=250, length_frames=200, seed=0)
        nll = lm.token_nll(lm.encode(torch.from_numpy(np.stack([wav, noisy]))[:, None])).mean(dim=1)
        deltas.append((nll[1] - nll[0])[255:450].mean().item())
    assert np.mean(deltas) < -0.3 and sum(d < 0 for d in deltas) >= 5
