"""Train the embedded tiny MusicGen: corpus, codec, codes, language model, export. Resumable.

Run ``lossprofile tiny-model`` (``make tiny-model``). Each stage keeps its state in
``--work`` (default ``build/tiny-model``) and checkpoints often, so an interrupted run
continues where it stopped and gives the same weights as an uninterrupted one: every
random draw of a step comes from a generator seeded by ``(seed, stage, step)``
(`lossprofile.embedded.state`).

1. corpus: `lossprofile.data.corpus` renders the training corpus (music21 scores, arranged);
   `lossprofile.embedded.training_corpus.load_corpus` loads its ``train`` split.
2. codec (`lossprofile.embedded.codec_training`): EnCodec's SEANet encoder/decoder with
   residual VQ, trained with a waveform L1, multi-resolution log-STFT and a pitch-sensitive
   spectral term (high-resolution magnitudes from 50 Hz to 4 kHz, where harmonics decide the
   pitch), EMA codebooks initialised by k-means. No adversarial loss: cheaper, and the LM needs
   codes that keep pitch and loudness, not a perfect waveform.
3. codes: the codec encodes every training piece once.
4. lm (`lossprofile.embedded.lm_training`): MusicGen's decoder on the codes with the delay
   pattern, teacher-forced with transformers' own MusicGen loss, conditioned on the pieces' text
   descriptions through a one-layer T5 with condition dropout, so the null condition
   (unconditional scoring) is learned too.
5. export: an ordinary ``MusicgenForConditionalGeneration`` checkpoint (config.json +
   model.safetensors in fp16 + tokenizer), the *base* model, in ``build/tiny-model/base``.
6. finish: the base model's LM trained on for 600 steps (`lossprofile.embedded.recipe.FINISH`, on the CPU about 20
   minutes) on a pool of 300 training pieces, half of the crops from 120 texture clouds
   (`lossprofile.embedded.training_corpus.texture_cloud`: dense SoundFont effects and noisy
   hits that never repeat), exported to ``lib/lossprofile/checkpoints/tiny`` and loaded by
   ``load_model("tiny")`` through the same ``from_pretrained`` call as the hub models.

Deterministic under ``--seed`` on a given machine and torch build.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import transformers

from ..models import ModelLoadError
from ..models.hf import quiet_transformers
from ..models.loading import resolve
from ..models.musicgen.architecture import build_model, musicgen_config
from ..paths import BUILD_DIR
from . import training_corpus
from .codec_training import encode_cached, train_codec
from .lm_training import build_tokenizer, init_decoder, resolve_precision, train_lm
from .recipe import FINISH, FINISH_POOL, TINY_ARCH, Recipe  # noqa: F401  (re-exported)
from .state import load_state

WORK_DIR = BUILD_DIR / "tiny-model"
BASE_DIR = WORK_DIR / "base"  # the model of stages 1-5, which the finishing stage (and the study's continued variants) start from


class LazyList(Sequence):
    """``make(i)`` for ``i < length``, computed when asked for: the clouds render only if their codes are not cached."""

    def __init__(self, make, length: int):
        self.make, self.length = make, length

    def __getitem__(self, i):
        return self.make(i)

    def __len__(self) -> int:
        return self.length


def codes_ready(work: Path, codec_steps: int, codec_checkpoint: Path | None = None, codes_cache: Path | None = None):
    """The training table saved in ``work`` if the codec finished its ``codec_steps`` and every piece's codes are cached, else None.

    Then the language model trains without the rendered corpus: copy the work folder (codec.pt,
    codes.pt, pieces.json: about 50 MB) to a GPU machine and run the same command there.
    """
    pieces, codec, codes = work / "pieces.json", load_state(codec_checkpoint or work / "codec.pt"), codes_cache or work / "codes.pt"
    if not pieces.exists() or codec is None or not codes.exists():
        return None
    table = pd.DataFrame(json.loads(pieces.read_text()))
    cached = load_state(codes)["codes"]
    if codec["step"] < codec_steps or not set(table["piece"]) <= set(cached):
        return None
    return table


def finish_recipe(base: Recipe) -> Recipe:
    """The finishing stage's recipe: continue ``base``'s model (saved in BASE_DIR) with FINISH."""
    from dataclasses import replace

    return replace(base, lm_start="base", **FINISH)


def pool_mask(n_pieces: int, pool: int) -> np.ndarray:
    """``pool`` of ``n_pieces`` rows spread evenly over the (name-sorted) training table."""
    keep = np.zeros(n_pieces, bool)
    keep[np.linspace(0, n_pieces - 1, min(pool, n_pieces)).astype(int)] = True
    return keep


def start_model(recipe: Recipe, base_dir: Path = BASE_DIR):
    """The model a continued recipe starts from (``recipe.lm_start``: ``"base"``, in ``base_dir``, or a model name) in fp32, and its tokenizer."""
    if recipe.lm_start == "base":
        if not (base_dir / "config.json").exists():
            raise ModelLoadError(f"{base_dir}: the base model is missing; `make tiny-model` trains it first")
        path = str(base_dir)
    else:
        path = resolve(recipe.lm_start)[1]
    with quiet_transformers():
        model = transformers.MusicgenForConditionalGeneration.from_pretrained(path, dtype=torch.float32)
        tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    if {k: getattr(model.config.decoder, k) for k in ("num_hidden_layers", "hidden_size")} != {
            "num_hidden_layers": recipe.arch["num_hidden_layers"], "hidden_size": recipe.arch["hidden_size"]}:
        raise ValueError(f"{path}: its decoder is not the recipe's arch {recipe.arch}")
    return model, tokenizer


def piece_weights(codes: list[torch.Tensor], is_cloud: np.ndarray, recipe: Recipe) -> np.ndarray | None:
    """Sampling weights of the LM's pieces: by length (None), or with ``recipe.cloud_share`` of them on the clouds."""
    if recipe.cloud_share is None or not is_cloud.any():
        return None
    lengths = np.array([max(1, c.shape[-1] - recipe.lm_crop_frames + 1) for c in codes], dtype=float)
    return np.where(is_cloud, recipe.cloud_share * lengths / lengths[is_cloud].sum(),
                    (1 - recipe.cloud_share) * lengths / lengths[~is_cloud].sum())


def train_model(recipe: Recipe, work: Path, out: Path | None, table=None, wavs=None, progress: bool = True,
                codec_checkpoint: Path | None = None, codes_cache: Path | None = None, device: str = "cpu",
                base_dir: Path = BASE_DIR):
    """Run (or resume) every stage of ``recipe`` in ``work``; export to ``out`` if given. Returns (model, log).

    ``codec_checkpoint`` and ``codes_cache`` (default: in ``work``) let several recipes share one
    trained codec and its codes. ``device`` is where the language model trains (the codec
    always trains on the CPU here). A recipe with ``lm_start="base"`` continues the model saved
    in ``base_dir`` instead of training a new one.
    """
    work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(recipe.seed)
    started = time.time()
    if table is None:
        table = codes_ready(work, recipe.codec_ae_steps + recipe.codec_vq_steps, codec_checkpoint, codes_cache)
        wavs = None
    if table is None:
        table, wavs = training_corpus.load_corpus("train")
        (work / "pieces.json").write_text(json.dumps(table[["piece", "description", "tags"]].to_dict("list")))
    descriptions = list(table["description"])
    cloud_names, cloud_midis, cloud_descriptions, cloud_levels = training_corpus.cloud_pieces(
        recipe.cloud_pieces, recipe.seed)
    if recipe.lm_start:  # its codec, tokenizer and weights; only the language model trains on
        model, tokenizer = start_model(recipe, base_dir)
        codec_log = []
    else:
        config = musicgen_config(**recipe.arch)
        model = build_model(config, seed=recipe.seed)
        if recipe.lm_init == "pytorch":
            init_decoder(model, recipe.seed)
        tokenizer = build_tokenizer(descriptions + cloud_descriptions + ["classical piano", "generated"])
        if len(tokenizer) > config.text_encoder.vocab_size:
            raise ValueError(f"{len(tokenizer)} words do not fit the text encoder's {config.text_encoder.vocab_size}")
        codec_log = train_codec(model.audio_encoder, wavs, recipe.codec_ae_steps, recipe.codec_vq_steps,
                                recipe.codec_batch, recipe.codec_seconds, recipe.codec_lr, recipe.seed,
                                checkpoint=codec_checkpoint or work / "codec.pt",
                                checkpoint_every=recipe.checkpoint_every, progress=progress,
                                betas=recipe.codec_betas, loss=recipe.codec_loss)
    codes = encode_cached(model.audio_encoder, list(table["piece"]), wavs, codes_cache or work / "codes.pt")
    is_cloud = np.zeros(len(codes), bool)
    if recipe.cloud_pieces:  # their own cache in this work folder: a shared corpus cache stays the corpus's
        rendered = LazyList(lambda i: training_corpus.render_cloud(cloud_midis[i], cloud_levels[i]),
                            len(cloud_names))
        codes = codes + encode_cached(model.audio_encoder, cloud_names, rendered, work / "clouds.pt")
        descriptions = descriptions + cloud_descriptions
        is_cloud = np.r_[is_cloud, np.ones(len(cloud_names), bool)]
    lm_log = train_lm(model, tokenizer, codes, descriptions, recipe.lm_steps,
                      recipe.lm_batch, recipe.lm_crop_frames, recipe.lm_lr, recipe.cond_dropout, recipe.seed,
                      checkpoint=work / "lm.pt", checkpoint_every=recipe.checkpoint_every, progress=progress,
                      precision=resolve_precision(recipe.lm_precision, device), loop_crops=recipe.loop_crops,
                      device=device, piece_weights=piece_weights(codes, is_cloud, recipe),
                      loopable=~is_cloud)  # a looped cloud would be a repeating texture, which clouds are not
    stage_seconds = {stage: round(max([row.get("seconds", 0.0) for row in rows], default=0.0))
                     for stage, rows in (("codec", codec_log), ("lm", lm_log))}
    hours = sum(c.shape[-1] for c in codes) / model.config.audio_encoder.frame_rate / 3600
    summary = dict(recipe=asdict(recipe), lm_precision=resolve_precision(recipe.lm_precision, device),
                   train_pieces=len(table) + recipe.cloud_pieces,
                   train_hours=round(hours, 2), lm_device=lm_log[-1].get("device", "cpu") if lm_log else None,
                   stage_seconds=stage_seconds,
                   wall_seconds=sum(stage_seconds.values()), this_run_seconds=round(time.time() - started),
                   threads=torch.get_num_threads(), torch=torch.__version__, log=codec_log + lm_log)
    if out is not None:
        export(model, tokenizer, out, summary)
    return model, summary


def export(model, tokenizer, out: Path, summary: dict) -> None:
    """Save in MusicGen's hub format, weights in fp16 (they load as fp32), with the training log."""
    out.mkdir(parents=True, exist_ok=True)
    model.half().save_pretrained(out)
    model.float()
    tokenizer.save_pretrained(out)
    export_log(out, summary)


def finish_model(recipe: Recipe, work: Path, out: Path | None, device: str = "cpu", progress: bool = True):
    """Stage 6: continue the base model with `FINISH` on the pool and the clouds (resumable in ``work/finish``)."""
    finish = finish_recipe(recipe)
    table = pd.DataFrame(json.loads((work / "pieces.json").read_text()))
    keep = pool_mask(len(table), FINISH_POOL)
    cache = work / "finish" / "codes.pt"
    cached = load_state(cache)
    wavs = None
    if cached is None or not set(table["piece"][keep]) <= set(cached["codes"]):
        table, all_wavs = training_corpus.load_corpus("train")  # the pool's codes through the base model's (fp16) codec
        keep = pool_mask(len(table), FINISH_POOL)
        wavs = [w for w, k in zip(all_wavs, keep) if k]
    return train_model(finish, work / "finish", out, table=table[keep].reset_index(drop=True), wavs=wavs,
                       progress=progress, codes_cache=cache, device=device, base_dir=work / "base")


def export_log(out: Path, summary: dict) -> None:
    (out / "training_log.json").write_text(json.dumps(summary, indent=1))
