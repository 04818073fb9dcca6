"""The tiny model's language model: MusicGen's decoder trained on the codec's codes.

Stage 4 of ``make tiny-model`` (`lossprofile.embedded.tiny_model`): the delay pattern, teacher-forced with
transformers' own MusicGen loss, conditioned on the pieces' text descriptions through a one-layer T5 with
condition dropout, so the null condition (unconditional scoring) is learned too; loops of a piece's own codes
on a share of the crops.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..models.musicgen import delay
from .codec_training import codec_fingerprint
from .state import load_state, save_state, step_rng


# ---- text conditioning vocabulary ---------------------------------------------------------
def build_tokenizer(descriptions: list[str]):
    """A word-level tokenizer over the training descriptions, saved like T5's (pad=0, eos=1)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = sorted({w for d in descriptions for w in d.lower().split()})
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


# ---- language model ----------------------------------------------------------------------
def lm_parameters(model) -> list[torch.nn.Parameter]:
    return [p for n, p in model.named_parameters() if not n.startswith("audio_encoder.")]


def resolve_precision(precision: str, device: str = "cpu") -> str:
    """``auto`` → ``bf16`` on a GPU or where oneDNN has bf16 kernels for this CPU (AVX-512 BF16 or AMX), else ``fp32``."""
    if precision != "auto":
        return precision
    if device != "cpu":
        return "bf16"
    return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"


def loop_crop(codes: torch.Tensor, crop_frames: int, rng: np.random.Generator, min_frames: int = 50,
              max_frames: int = 400) -> torch.Tensor:
    """A crop of looped music: a 1–8 s stretch of a piece's codes ``[K, T]`` played again and again → ``[K, crop_frames]``.

    The same as encoding a loop cut on the frame grid, without the codec's tiny differences at the
    seams: in rendered repeats (ostinati, verses) the codes rarely repeat exactly (3% of frames
    had an exact earlier match, measured), so a small LM gets little signal that copying what it
    heard pays; looped music gives it that signal.
    """
    length = int(rng.integers(min_frames, min(max_frames, codes.shape[-1]) + 1))
    start = int(rng.integers(0, codes.shape[-1] - length + 1))
    loop = codes[:, start : start + length]
    return loop.repeat(1, -(-crop_frames // length))[:, :crop_frames]


def init_decoder(model, seed: int) -> None:
    """Re-initialise MusicGen's decoder as PyTorch does by default: embeddings N(0, 1), linear weights N(0, 1/fan_in).

    transformers initialises every weight with N(0, 0.02), made for wide text models. In a small
    MusicGen that leaves the code embeddings 40x smaller than the sinusoidal positions and the
    attention logits near zero, and the model never forms the attention that copies what it
    heard: on a synthetic copy task (random codes looped every 10–40 frames, 2 layers x 128) the
    loss stayed at log(64) for 600 steps, and fell from 4.2 to 1.8 nats with this initialisation.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.decoder.modules():
            if isinstance(module, torch.nn.Embedding):
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator))
            elif isinstance(module, torch.nn.Linear):
                fan_in = module.weight.shape[1]
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * fan_in ** -0.5)
                if module.bias is not None:
                    module.bias.zero_()


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type


def train_lm(model, tokenizer, codes: list[torch.Tensor], descriptions: list[str], steps: int,
             batch: int = 8, crop_frames: int = 760, lr: float = 2e-3, cond_dropout: float = 0.5,
             seed: int = 0, checkpoint: Path | None = None, checkpoint_every: int = 100,
             progress: bool = True, precision: str = "fp32", loop_crops: float = 0.0,
             device: str = "cpu", piece_weights: np.ndarray | None = None,
             loopable: np.ndarray | None = None) -> list[dict]:
    """Teacher-forced training on delayed codes with transformers' own MusicGen loss.

    Crops start anywhere in a piece (pieces drawn in proportion to their length, or to
    ``piece_weights``); a share ``loop_crops`` of them are loops (`loop_crop`) of the
    pieces marked ``loopable`` (default: all). A dropped condition is MusicGen's
    null condition (the text fully masked). ``precision="bf16"`` runs the forward pass under
    autocast (weights, optimiser and loss stay fp32). Resumable from ``checkpoint``, also on
    another device (``device="cuda"`` trains on a GPU; the checkpoint is saved for any device).
    """
    device = torch.device(device)
    model.to(device)
    params = lm_parameters(model)
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), weight_decay=0.01)
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))
    special = model.config.decoder.pad_token_id
    lengths = np.array([max(1, c.shape[-1] - crop_frames + 1) for c in codes], dtype=float)
    weights = lengths if piece_weights is None else np.asarray(piece_weights, dtype=float)
    weights = weights / weights.sum()
    loopable = np.ones(len(codes), bool) if loopable is None else np.asarray(loopable, bool)
    state = load_state(checkpoint) if checkpoint else None
    start, log, spent = 0, [], 0.0
    codec_id = codec_fingerprint(model.audio_encoder)
    if state is not None and state.get("codec") != codec_id:
        raise RuntimeError(f"{checkpoint}: this language-model checkpoint was trained on another codec's codes; "
                           "delete it (and the codes cache) to train the language model again")
    schedule = dict(steps=steps, batch=batch, crop_frames=crop_frames, lr=lr, cond_dropout=cond_dropout, seed=seed,
                    loop_crops=loop_crops)
    if state is not None and state.get("schedule", schedule) != schedule:
        raise RuntimeError(f"{checkpoint}: this checkpoint was trained with {state['schedule']}, not {schedule}; "
                           "delete it to train the language model with the new settings")
    if state is not None:
        model.load_state_dict(state["model"])
        if "opt" in state:  # a finished model may be kept without its optimiser
            opt.load_state_dict(state["opt"])  # moves the moments to the parameters' device
            sched.load_state_dict(state["sched"])
        start, log, spent = state["step"], state["log"], state.get("seconds", 0.0)
    resumed_at = time.time()
    model.train()
    model.audio_encoder.eval()
    for step in tqdm(range(start, steps), desc="language model", unit="step", initial=start, total=steps,
                     disable=not progress):
        rng = step_rng(seed, 4, step)
        torch.manual_seed(int(rng.integers(2**62)))  # dropout (in T5) draws the same after a resume
        picks = rng.choice(len(codes), size=batch, p=weights)
        crops = []
        for i in picks:
            c = codes[i].long()
            if rng.random() < loop_crops and loopable[i]:
                crops.append(loop_crop(c, crop_frames, rng))
                continue
            s = int(rng.integers(0, max(1, c.shape[-1] - crop_frames + 1)))
            crop = c[:, s : s + crop_frames]
            if crop.shape[-1] < crop_frames:  # a short piece: pad with the special token, which the loss ignores
                crop = F.pad(crop, (0, crop_frames - crop.shape[-1]), value=special)
            crops.append(crop)
        x = torch.stack(crops).to(device)  # [B, K, T]
        texts = [descriptions[i] for i in picks]
        tok = tokenizer(texts, return_tensors="pt", padding=True).to(device)
        keep = torch.from_numpy(rng.random(batch) >= cond_dropout).long()[:, None].to(device)
        mask = tok["attention_mask"] * keep  # dropped condition == MusicGen's null condition
        enc = model.text_encoder(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"])
        labels = delay.delay(x, special).transpose(1, 2)  # [B, S, K]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = model(encoder_outputs=(enc.last_hidden_state,), attention_mask=mask, labels=labels)
        opt.zero_grad()
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        seconds = spent + time.time() - resumed_at
        if step % 25 == 0 or step == steps - 1:
            log.append(dict(stage="lm", step=step, loss=out.loss.item(), lr=sched.get_last_lr()[0],
                            seconds=round(seconds, 1), device=device_name(device)))
        if checkpoint and ((step + 1) % checkpoint_every == 0 or step == steps - 1):
            save_state(checkpoint, dict(step=step + 1, model=model.state_dict(), opt=opt.state_dict(),
                                        sched=sched.state_dict(), log=log, seconds=seconds,
                                        codec=codec_id, schedule=schedule))
    model.eval()
    model.to("cpu")
    return log
