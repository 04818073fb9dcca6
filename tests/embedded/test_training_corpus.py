"""The embedded models' training corpus: texture clouds (seeded, SoundFont sounds only, never repeating, trained on
only when a recipe asks), and the study's variants that add them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import signal

from lossprofile import audio
from lossprofile.data import corpus
from lossprofile.embedded import training_corpus
from lossprofile.embedded.tiny_model import Recipe, train_model

from ..conftest import SMALL

SR = corpus.SAMPLE_RATE


def largest_repeat_correlation(wav: np.ndarray, min_lag_s: float = 0.25) -> float:
    """Largest normalised autocorrelation of the envelope-free signal at lags of ``min_lag_s`` or more."""
    x = wav - wav.mean()
    ac = signal.fftconvolve(x, x[::-1], mode="full")[x.size - 1 :]
    ac /= ac[0]
    return float(np.abs(ac[int(min_lag_s * SR) : x.size // 2]).max())


def test_clouds_are_seeded_soundfont_sounds_that_never_repeat():
    names, midis, descriptions, levels = training_corpus.cloud_pieces(3, seed=0, seconds=6.0)
    again = training_corpus.cloud_pieces(3, seed=0, seconds=6.0)
    other = training_corpus.cloud_pieces(3, seed=1, seconds=6.0)
    assert names == again[0] == ["cloud-000", "cloud-001", "cloud-002"] and descriptions == again[2]
    assert levels == again[3] and levels != other[3]
    for midi in midis:  # effects of GM 119-127 and noisy percussion, nothing else
        for inst in midi.instruments:
            if inst.is_drum:
                assert {n.pitch for n in inst.notes} <= set(training_corpus.CLOUD_DRUMS)
            else:
                assert inst.program in corpus.TEXTURES
        assert sum(len(i.notes) for i in midi.instruments) >= 8 * 6  # dense: at least 8 events a second
    wav = training_corpus.render_cloud(midis[0], levels[0], seconds=6.0)
    assert wav.size == 6 * SR and abs(audio.rms_dbfs(wav) - levels[0]) < 0.5
    assert np.array_equal(wav, training_corpus.render_cloud(again[1][0], again[3][0], seconds=6.0))
    # a texture sample played again and again repeats itself; a cloud does not
    for midi, level in zip(midis, levels):
        assert largest_repeat_correlation(training_corpus.render_cloud(midi, level, seconds=6.0)) < 0.5
    looped = np.tile(wav[: SR], 6)
    assert largest_repeat_correlation(looped) > 0.8  # 5 of its 6 seconds recur at a lag of 1 s


@pytest.mark.slow
def test_a_recipe_trains_on_clouds_only_when_it_asks_and_renders_them_once(tmp_path, monkeypatch):
    t = np.arange(3 * SR) / SR
    wavs = [(0.1 * np.sin(2 * np.pi * f * t)).astype(np.float32) for f in (220.0, 330.0)]
    table = pd.DataFrame(dict(piece=["a", "b"], description=["organ", "piano"], tags=["{}", "{}"]))
    recipe = Recipe(arch={**SMALL, "text_vocab": 64}, codec_ae_steps=1, codec_vq_steps=1, codec_batch=2, lm_steps=2,
                    lm_batch=2, lm_crop_frames=40, checkpoint_every=1, lm_precision="fp32", cloud_pieces=2)
    _, summary = train_model(recipe, tmp_path / "clouds", None, table=table, wavs=wavs, progress=False)
    assert summary["train_pieces"] == 4
    cached = torch.load(tmp_path / "clouds" / "clouds.pt", weights_only=False)["codes"]
    assert sorted(cached) == ["cloud-000", "cloud-001"] and min(c.shape[-1] for c in cached.values()) == 30 * 50
    assert "cloud-000" not in torch.load(tmp_path / "clouds" / "codes.pt", weights_only=False)["codes"]

    def no_rendering(*args, **kwargs):
        raise AssertionError("a cached cloud was rendered again")

    monkeypatch.setattr(training_corpus, "render_cloud", no_rendering)  # resuming needs the cache, not the SoundFont
    train_model(recipe, tmp_path / "clouds", None, table=table, wavs=wavs, progress=False)
    _, plain = train_model(Recipe(**{**recipe.__dict__, "cloud_pieces": 0}), tmp_path / "plain", None, table=table,
                           wavs=wavs, progress=False)
    assert plain["train_pieces"] == 2 and not (tmp_path / "plain" / "clouds.pt").exists()


def test_study_checkpoints_saved_before_clouds_existed_still_count_as_trained(tmp_path):
    from dataclasses import asdict

    from lossprofile.embedded import study

    reference = study.study_recipe(study.VARIANTS[0], Recipe())
    saved = {k: v for k, v in json.loads(json.dumps(asdict(reference))).items() if k != "cloud_pieces"}
    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "checkpoint" / "training_log.json").write_text(json.dumps(dict(recipe=saved)))
    assert study.trained(tmp_path, reference)
    clouds = next(v for v in study.MORE_VARIANTS if v.clouds)
    recipe = study.study_recipe(clouds, Recipe())
    # the embedded model's recipe with the clouds as its one change
    assert recipe.cloud_pieces == 120 and recipe == Recipe(cloud_pieces=120, checkpoint_every=500)
    assert not study.trained(tmp_path, recipe)


def test_the_study_clouds_variant_is_the_embedded_models_finishing_stage():
    from lossprofile.embedded import study
    from lossprofile.embedded.tiny_model import Recipe, finish_recipe

    clouds = next(v for v in study.VARIANTS if v.name == "continued: + texture clouds")
    control = next(v for v in study.VARIANTS if v.name == "continued: control")
    assert study.study_recipe(clouds, Recipe()) == finish_recipe(Recipe())
    differs = {k for k, v in vars(study.study_recipe(control, Recipe())).items() if v != vars(finish_recipe(Recipe()))[k]}
    assert differs == {"cloud_pieces", "cloud_share"}  # the control changes only the clouds
