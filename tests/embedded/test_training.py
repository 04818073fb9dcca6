"""The tiny model's training (codec, language model, the recipe's stages): deterministic under a seed, resumable,
and it learns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lossprofile import load_model
from lossprofile.models.musicgen.architecture import build_model, musicgen_config
from lossprofile.embedded.codec_training import encode_cached, train_codec
from lossprofile.embedded.lm_training import build_tokenizer, train_lm

from ..conftest import SMALL


def tones(n: int = 3, seconds: float = 2.0, sr: int = 32000) -> list[np.ndarray]:
    t = np.arange(int(seconds * sr)) / sr
    return [(0.3 * np.sin(2 * np.pi * (220 + 55 * i) * t * (1 + 0.2 * np.floor(t * 4) % 2))).astype(np.float32)
            for i in range(n)]


def train(seed: int, lm_steps: int = 3, tmp=None, codec_steps=(2, 2)):
    """Codec then LM on three tones; with ``tmp`` both stages checkpoint there (and resume from it)."""
    torch.manual_seed(seed)
    model = build_model(musicgen_config(**SMALL), seed=seed)
    wavs = tones()
    folder = tmp if tmp is not None else _scratch()
    ckpt = (lambda name: tmp / name) if tmp is not None else (lambda name: None)
    train_codec(model.audio_encoder, wavs, *codec_steps, batch=2, seconds=0.5, seed=seed, checkpoint=ckpt("codec.pt"),
                checkpoint_every=1, progress=False)
    codes = encode_cached(model.audio_encoder, ["a", "b", "c"], wavs, folder / "codes.pt")
    tokenizer = build_tokenizer(["organ", "piano", "strings"])
    log = train_lm(model, tokenizer, codes, ["organ", "piano", "strings"], lm_steps, batch=2, crop_frames=40,
                   seed=seed, checkpoint=ckpt("lm.pt"), checkpoint_every=1, progress=False)
    return model.state_dict(), log


def _scratch():
    import tempfile
    from pathlib import Path

    return Path(tempfile.mkdtemp())


@pytest.mark.slow
def test_same_seed_same_weights_other_seed_other_weights():
    a, _ = train(0)
    b, _ = train(0)
    c, _ = train(1)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


@pytest.mark.slow
def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path, monkeypatch):
    from lossprofile.embedded import codec_training, lm_training
    from lossprofile.embedded.state import load_state

    (tmp_path / "whole").mkdir()
    (tmp_path / "broken").mkdir()
    whole, _ = train(0, lm_steps=6, tmp=tmp_path / "whole", codec_steps=(2, 3))
    real_tqdm = codec_training.tqdm

    def killed_after_three_steps(iterable, **kwargs):  # as if the process died after its third step
        for n, item in enumerate(real_tqdm(iterable, **kwargs)):
            if n == 3:
                raise KeyboardInterrupt
            yield item

    for stage in (codec_training, lm_training):
        monkeypatch.setattr(stage, "tqdm", killed_after_three_steps)
    for stage in ("codec", "lm"):  # killed once in each stage
        with pytest.raises(KeyboardInterrupt):
            train(0, lm_steps=6, tmp=tmp_path / "broken", codec_steps=(2, 3))
        assert load_state(tmp_path / "broken" / f"{stage}.pt")["step"] == 3
    for stage in (codec_training, lm_training):
        monkeypatch.setattr(stage, "tqdm", real_tqdm)
    resumed, log = train(0, lm_steps=6, tmp=tmp_path / "broken", codec_steps=(2, 3))
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    assert [row["step"] for row in log if row["stage"] == "lm"] == [0, 5]
    # a checkpoint of another schedule is refused, naming the file, rather than silently continued
    with pytest.raises(RuntimeError, match=r"lm\.pt: this checkpoint was trained with"):
        train(0, lm_steps=8, tmp=tmp_path / "broken", codec_steps=(2, 3))


@pytest.mark.slow
def test_codes_cache_reencodes_only_new_pieces(tmp_path):
    model = build_model(musicgen_config(**SMALL), seed=0)
    wavs = tones()
    first = encode_cached(model.audio_encoder, ["a", "b"], wavs[:2], tmp_path / "codes.pt")
    wavs[0] = wavs[0] * 0  # a cached piece is not encoded again, so its codes stay the cached ones
    again = encode_cached(model.audio_encoder, ["a", "b", "c"], wavs, tmp_path / "codes.pt")
    assert torch.equal(first[0], again[0]) and len(again) == 3


@pytest.mark.slow
def test_language_model_loss_falls_while_training():
    _, log = train(0, lm_steps=200)
    losses = [row["loss"] for row in log if row["stage"] == "lm"]
    assert losses[0] > 4.0 and losses[-1] < losses[0] - 0.3  # from ~log(64) down


def test_loop_crops_repeat_a_stretch_of_the_piece_exactly():
    from lossprofile.embedded.lm_training import loop_crop

    codes = torch.arange(4 * 900).reshape(4, 900)
    rng = np.random.default_rng(0)
    for _ in range(20):
        crop = loop_crop(codes, 760, rng)
        assert crop.shape == (4, 760)
        first = crop[0]
        period = int((first[1:] < first[:-1]).nonzero()[0]) + 1 if (first[1:] < first[:-1]).any() else 760
        assert 50 <= period <= 400 or period == 760
        assert torch.equal(crop[:, period:], crop[:, : 760 - period])  # every pass is the same codes
        assert torch.equal(crop[:, 1:period] - crop[:, : period - 1], torch.ones(4, period - 1, dtype=crop.dtype))


def test_decoder_initialisation_is_pytorchs_default_and_seeded():
    from lossprofile.embedded.lm_training import init_decoder

    a, b = build_model(musicgen_config(**SMALL), seed=0), build_model(musicgen_config(**SMALL), seed=0)
    codec_before = [p.clone() for p in a.audio_encoder.parameters()]
    text_before = [p.clone() for p in a.text_encoder.parameters()]
    init_decoder(a, seed=3)
    init_decoder(b, seed=3)
    embed = a.decoder.model.decoder.embed_tokens[0].weight
    assert abs(embed.std().item() - 1.0) < 0.05  # transformers' own init gives 0.02
    fc = a.decoder.model.decoder.layers[0].fc1.weight
    assert abs(fc.std().item() * fc.shape[1] ** 0.5 - 1.0) < 0.1
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    # only the decoder is re-initialised: the codec (trained first) and the text encoder are untouched
    assert all(torch.equal(p, q) for p, q in zip(codec_before, a.audio_encoder.parameters()))
    assert all(torch.equal(p, q) for p, q in zip(text_before, a.text_encoder.parameters()))


@pytest.mark.slow
def test_a_work_folder_resumes_the_language_model_without_the_corpus(tmp_path):
    import json

    from lossprofile.embedded.state import save_state
    from lossprofile.embedded.tiny_model import codes_ready

    model = build_model(musicgen_config(**SMALL), seed=0)
    wavs = tones()
    assert codes_ready(tmp_path, codec_steps=4) is None  # nothing there yet
    train_codec(model.audio_encoder, wavs, 2, 2, batch=2, seconds=0.5, checkpoint=tmp_path / "codec.pt",
                checkpoint_every=1, progress=False)
    (tmp_path / "pieces.json").write_text(json.dumps(dict(piece=["a", "b", "c"], description=["x", "y", "z"],
                                                          tags=["{}"] * 3)))
    assert codes_ready(tmp_path, codec_steps=4) is None  # codes not cached yet
    encode_cached(model.audio_encoder, ["a", "b"], wavs[:2], tmp_path / "codes.pt")
    assert codes_ready(tmp_path, codec_steps=4) is None  # piece c missing
    encode_cached(model.audio_encoder, ["a", "b", "c"], wavs, tmp_path / "codes.pt")
    assert codes_ready(tmp_path, codec_steps=5) is None  # the codec has not finished a longer schedule
    table = codes_ready(tmp_path, codec_steps=4)
    assert list(table["piece"]) == ["a", "b", "c"] and list(table["description"]) == ["x", "y", "z"]
    # a finished codec kept without its optimiser still resumes
    state = torch.load(tmp_path / "codec.pt", weights_only=False)
    save_state(tmp_path / "codec.pt", {k: v for k, v in state.items() if k != "opt"})
    fresh = build_model(musicgen_config(**SMALL), seed=1)
    train_codec(fresh.audio_encoder, None, 2, 2, batch=2, seconds=0.5, checkpoint=tmp_path / "codec.pt", progress=False)
    assert all(torch.equal(p, q) for p, q in zip(fresh.audio_encoder.parameters(), model.audio_encoder.parameters()))


@pytest.mark.slow
def test_a_recipe_continues_a_trained_model_on_its_own_codec(tmp_path, small_checkpoint):
    import pandas as pd

    from lossprofile.embedded.tiny_model import Recipe, train_model

    start = load_model(small_checkpoint, device="cpu").model
    table = pd.DataFrame(dict(piece=["a", "b", "c"], description=["organ chorale", "piano", "strings"], tags=["{}"] * 3))
    recipe = Recipe(arch=dict(SMALL), lm_start=small_checkpoint, lm_steps=3, lm_batch=2, lm_crop_frames=40,
                    checkpoint_every=1, lm_precision="fp32")
    runs = [train_model(recipe, tmp_path / f"work{i}", tmp_path / f"out{i}", table=table, wavs=tones(),
                        progress=False)[0] for i in range(2)]
    for name, p in runs[0].named_parameters():
        q = dict(start.named_parameters())[name]
        if name.startswith("audio_encoder."):
            assert torch.equal(p, q.half().float()), name  # the start's codec (exported in fp16), so its codes, stay
    assert any(not torch.equal(p, dict(start.named_parameters())[n])
               for n, p in runs[0].named_parameters() if n.startswith("decoder."))
    diff = [n for (n, p), q in zip(runs[0].named_parameters(), runs[1].parameters()) if not torch.equal(p, q)]
    assert not diff, diff  # seeded
    assert load_model(str(tmp_path / "out0"), device="cpu").cardinality == SMALL["cardinality"]
    with pytest.raises(ValueError, match="not the recipe's arch"):
        train_model(Recipe(arch={**SMALL, "num_hidden_layers": 3}, lm_start=small_checkpoint, lm_steps=1),
                    tmp_path / "other", None, table=table, wavs=tones(), progress=False)


@pytest.mark.slow
def test_cloud_share_sets_the_clouds_share_of_crops_and_clouds_are_never_looped(monkeypatch):
    from lossprofile.embedded import lm_training, tiny_model

    codes = [torch.zeros(4, n, dtype=torch.long) for n in (900, 1900, 800, 800)]
    is_cloud = np.array([False, False, True, True])
    weights = tiny_model.piece_weights(codes, is_cloud, tiny_model.Recipe(cloud_share=0.3, lm_crop_frames=760))
    assert weights[is_cloud].sum() == pytest.approx(0.3) and weights.sum() == pytest.approx(1.0)
    assert weights[1] / weights[0] == pytest.approx((1900 - 759) / (900 - 759))  # by length within each group
    assert tiny_model.piece_weights(codes, is_cloud, tiny_model.Recipe()) is None  # no share: by length, as always
    looped = []
    real = lm_training.loop_crop
    monkeypatch.setattr(lm_training, "loop_crop", lambda c, *a, **k: looped.append(c.shape[-1]) or real(c, *a, **k))
    model = build_model(musicgen_config(**SMALL), seed=0)
    small = [torch.randint(0, 64, (4, n)) for n in (120, 130)]
    train_lm(model, build_tokenizer(["a", "b"]), small, ["a", "b"], 4, batch=4, crop_frames=40, loop_crops=1.0,
             progress=False, loopable=np.array([True, False]))
    assert looped and set(looped) == {120}  # every crop asked for a loop; only the loopable piece gave one


@pytest.mark.slow
def test_the_finishing_stage_continues_the_base_model_on_its_pool_and_clouds(tmp_path, small_checkpoint, monkeypatch):
    import json
    import shutil

    from lossprofile.embedded import tiny_model
    from lossprofile.embedded.state import load_state

    work = tmp_path / "work"
    shutil.copytree(small_checkpoint, work / "base")
    names = ["a", "b", "c", "d"]
    (work / "pieces.json").write_text(json.dumps(dict(piece=names, description=["organ chorale", "piano", "strings",
                                                                                 "piano"], tags=["{}"] * 4)))
    base = load_model(str(work / "base"), device="cpu").model
    wavs = tones(4)
    pool = tiny_model.pool_mask(4, 2)
    assert pool.tolist() == [True, False, False, True]  # spread over the table, first and last
    encode_cached(base.audio_encoder, [n for n, k in zip(names, pool) if k], [w for w, k in zip(wavs, pool) if k],
                  work / "finish" / "codes.pt")  # cached: the stage needs no rendered corpus
    monkeypatch.setattr(tiny_model, "FINISH", dict(tiny_model.FINISH, lm_steps=2, lm_batch=2, cloud_pieces=2))
    monkeypatch.setattr(tiny_model, "FINISH_POOL", 2)
    recipe = tiny_model.Recipe(arch=dict(SMALL), lm_crop_frames=40, lm_precision="fp32")
    model, summary = tiny_model.finish_model(recipe, work, tmp_path / "out", progress=False)
    assert summary["recipe"]["lm_start"] == "base" and summary["recipe"]["cloud_share"] == 0.5
    assert summary["train_pieces"] == 2 + 2  # the pool and the clouds
    assert len(load_state(work / "finish" / "clouds.pt")["codes"]) == 2
    assert load_state(work / "finish" / "lm.pt")["step"] == 2
    assert any(not torch.equal(p, q) for (n, p), q in zip(model.named_parameters(), base.parameters())
               if n.startswith("decoder."))
    shutil.rmtree(work / "base")  # without its start the stage says what is missing
    with pytest.raises(tiny_model.ModelLoadError, match=r"base: the base model is missing; `make tiny-model`"):
        tiny_model.finish_model(recipe, work, None, progress=False)
