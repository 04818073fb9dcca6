"""The embedded symbolic model: a small GPT-2 over REMI tokens of the corpus's arrangements (``make tiny-symbolic``).

    lossprofile tiny-symbolic [--steps N] [--device cpu]

1. **Token corpus** (`lossprofile.embedded.training_corpus.token_corpus`, ``build/tiny-symbolic/tokens``):
   every score of the corpus's ``train`` split, arranged
   exactly as for the audio model (`lossprofile.data.corpus.arrange` with the piece's own random
   draws: instruments, tempo, dynamics, drums, repeats), cut at the same length, tokenised. The held-out
   split and ASAP stay out. Nothing the experiments inject (random notes, shuffles) is added.
2. **Language model**: GPT-2 (`lossprofile.embedded.recipe.SYMBOLIC_ARCH`) on random crops of
   ``[BOS] + tokens``, AdamW with warm-up and cosine decay, seeded; a checkpoint every
   ``checkpoint_every`` steps, so an interrupted run resumes where it stopped.
3. The weights (transformers' format), the tokenizer (miditok's ``tokenizer.json``) and the training log go
   to ``lib/lossprofile/checkpoints/tiny-symbolic``; ``load_model("tiny-symbolic")`` loads them.

Every number that decides the weights is in `lossprofile.embedded.recipe.SymbolicRecipe`; the model's
card is measured by `lossprofile.embedded.symbolic_card`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..io import atomic_path, write_text_atomic
from ..models.symbolic.model import TINY_SYMBOLIC_DIR
from .recipe import SymbolicRecipe
from .training_corpus import SYMBOLIC_BUILD_DIR, make_tokenizer, token_corpus


def build_model(recipe: SymbolicRecipe, vocab_size: int, bos_id: int, pad_id: int):
    import transformers

    torch.manual_seed(recipe.seed)
    config = transformers.GPT2Config(vocab_size=vocab_size, bos_token_id=bos_id, eos_token_id=bos_id,
                                     pad_token_id=pad_id, **recipe.arch)
    return transformers.GPT2LMHeadModel(config)


def bar_loop(piece: np.ndarray, bar_id: int, recipe: SymbolicRecipe, rng: np.random.Generator) -> np.ndarray | None:
    """Whole bars of ``piece`` (from a bar token to the next ones, ``loop_tokens`` long at most) repeated to fill a
    crop; None where no such bars exist."""
    lo, hi = recipe.loop_tokens
    bars = np.flatnonzero(piece == bar_id)
    spans = [(a, b) for a, b in zip(bars, np.append(bars[1:], len(piece))) if lo <= b - a <= hi]
    if not spans:
        return None
    a, b = spans[int(rng.integers(len(spans)))]
    # extend with the following bars while the loop stays short enough
    for c in bars[bars > b]:
        if c - a > hi:
            break
        if rng.random() < 0.5:
            b = c
    loop = piece[a:b]
    return np.tile(loop, -(-recipe.crop_tokens // len(loop)))[: recipe.crop_tokens - 1]


def crops(pieces: list[np.ndarray], recipe: SymbolicRecipe, bos_id: int, pad_id: int, rng: np.random.Generator,
          loop_share: float = 0.0, bar_id: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of ``[BOS] + piece`` crops ``[B, crop_tokens]`` and labels (-100 on padding), pieces by length;
    a share ``loop_share`` of them ``[BOS] +`` a `bar_loop` of the piece."""
    lengths = np.array([len(p) + 1 for p in pieces], dtype=np.float64)
    chosen = rng.choice(len(pieces), size=recipe.batch, p=lengths / lengths.sum())
    ids = np.full((recipe.batch, recipe.crop_tokens), pad_id, dtype=np.int64)
    for row, i in enumerate(chosen):
        loop = bar_loop(pieces[i], bar_id, recipe, rng) if loop_share and rng.random() < loop_share else None
        if loop is not None:
            part = np.concatenate([[bos_id], loop])
        else:
            seq = np.concatenate([[bos_id], pieces[i]])
            start = int(rng.integers(0, max(1, len(seq) - recipe.crop_tokens + 1)))
            part = seq[start : start + recipe.crop_tokens]
        ids[row, : len(part)] = part
    ids = torch.from_numpy(ids)
    labels = ids.clone()
    labels[labels == pad_id] = -100
    return ids, labels


FINISH_FIELDS = ("finish_steps", "finish_lr", "finish_loop_crops", "loop_tokens")


def same_so_far(saved: dict, current: dict, step: int) -> bool:
    """Whether a checkpoint at ``step`` is a state of the run ``current`` describes: the same recipe, or one that
    differs only in the finishing stage while the checkpoint has not reached it (those fields decided nothing yet)."""
    if saved == current:
        return True
    base = lambda r: {k: v for k, v in r.items() if k not in FINISH_FIELDS}  # noqa: E731
    return step <= current["steps"] and base(saved) == base(current)


def train(recipe: SymbolicRecipe, device: str = "cpu", build_dir: Path = SYMBOLIC_BUILD_DIR, out_dir: Path = TINY_SYMBOLIC_DIR,
          workers: int = 2, limit: int | None = None, checkpoint: Path | None = None) -> Path:
    """Tokenise the corpus (cached), train (resuming from ``checkpoint``, default ``build_dir/checkpoint.pt``) and
    save the model. ``limit``: only the first pieces of the training split (for tests). Another recipe (a shorter
    one, for a weaker model) needs its own ``checkpoint``: a checkpoint of another recipe is started over."""
    tokenizer = make_tokenizer(recipe)
    bos_id, pad_id = int(tokenizer["BOS_None"]), int(tokenizer.pad_token_id)
    pieces = token_corpus("train", recipe, build_dir, workers, limit=limit)
    names = sorted(pieces)
    data = [pieces[n] for n in names]
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = build_model(recipe, len(tokenizer), bos_id, pad_id).to(device)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": recipe.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=recipe.lr, betas=(0.9, 0.95))
    ckpt = Path(checkpoint) if checkpoint else build_dir / "checkpoint.pt"
    step, log = 0, []
    rng = np.random.default_rng(recipe.seed)
    total = recipe.steps + recipe.finish_steps
    if ckpt.exists():
        state = torch.load(ckpt, map_location=device, weights_only=False)
        if same_so_far(state["recipe"], dataclasses.asdict(recipe), state["step"]):
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["opt"])
            step, log = state["step"], state["log"]
            rng.bit_generator.state = state["rng"]
            torch.set_rng_state(state["torch_rng"])
        else:
            print(f"{ckpt} was trained with another recipe: starting over")
    model.train()
    bar = tqdm(total=total, initial=step, desc="tiny-symbolic", unit="step")
    started = time.time()
    bar_id = int(tokenizer["Bar_None"])
    while step < total:
        finishing = step >= recipe.steps
        if finishing:  # the finishing stage: its own cosine from finish_lr
            done = (step - recipe.steps) / max(1, recipe.finish_steps)
            lr = recipe.finish_lr * 0.5 * (1 + math.cos(math.pi * done))
        else:
            lr = recipe.lr * min(1.0, (step + 1) / recipe.warmup_steps) * \
                0.5 * (1 + math.cos(math.pi * min(1.0, step / recipe.steps)))
        for group in opt.param_groups:
            group["lr"] = lr
        ids, labels = crops(data, recipe, bos_id, pad_id, rng,
                            loop_share=recipe.finish_loop_crops if finishing else 0.0, bar_id=bar_id)
        loss = model(input_ids=ids.to(device), labels=labels.to(device)).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        log.append(dict(step=step, loss=loss.item(), lr=lr))
        bar.update()
        bar.set_postfix(loss=f"{log[-1]['loss']:.3f}")
        if step % recipe.checkpoint_every == 0 or step in (recipe.steps, total):
            with atomic_path(ckpt, suffix=".tmp.pt") as tmp:
                torch.save(dict(recipe=dataclasses.asdict(recipe), model=model.state_dict(), opt=opt.state_dict(),
                                step=step, log=log, rng=rng.bit_generator.state, torch_rng=torch.get_rng_state()),
                           tmp)
    bar.close()
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save(out_dir)
    recipe_json = dataclasses.asdict(recipe)
    recipe_json["tokenizer"]["beat_res"] = {f"{a}-{b}": v for (a, b), v in recipe.tokenizer["beat_res"].items()}
    write_text_atomic(json.dumps(dict(recipe=recipe_json, train_pieces=len(data),
                                      train_tokens=int(sum(len(p) for p in data)),
                                      seconds_this_run=round(time.time() - started, 1),
                                      loss_last_100=float(np.mean([r["loss"] for r in log[-100:]]))),
                                 indent=1, default=str) + "\n", out_dir / "training_log.json")
    return out_dir
