"""The embedded symbolic model: a small GPT-2 over REMI tokens of the corpus's arrangements (``make tiny-symbolic``).

    lossprofile tiny-symbolic [--steps N] [--device cpu]

1. **Token corpus** (``build/tiny-symbolic/tokens``): every score of the corpus's ``train`` split, arranged
   exactly as for the audio model (:func:`lossprofile.data.corpus.arrange` with the piece's own random
   draws: instruments, tempo, dynamics, drums, repeats), cut at the same length, tokenised. The held-out
   split and ASAP stay out. Nothing the experiments inject (random notes, shuffles) is added.
2. **Language model**: GPT-2 (:data:`~lossprofile.embedded.recipe.SYMBOLIC_ARCH`) on random crops of
   ``[BOS] + tokens``, AdamW with warm-up and cosine decay, seeded; a checkpoint every
   ``checkpoint_every`` steps, so an interrupted run resumes where it stopped.
3. The weights (transformers' format), the tokenizer (miditok's ``tokenizer.json``) and the training log go
   to ``lib/lossprofile/checkpoints/tiny-symbolic``; ``load_model("tiny-symbolic")`` loads them.

Every number that decides the weights is in :class:`~lossprofile.embedded.recipe.SymbolicRecipe`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import paths
from ..data import corpus
from ..io import atomic_path, write_text_atomic
from ..models.symbolic.model import TINY_SYMBOLIC_DIR
from ..models.symbolic.tokens import tokenize
from .recipe import SymbolicRecipe

BUILD_DIR = paths.BUILD_DIR / "tiny-symbolic"  # was relative to the working directory; the same from the checkout


def make_tokenizer(recipe: SymbolicRecipe):
    from miditok import REMI, TokenizerConfig

    return REMI(TokenizerConfig(**recipe.tokenizer))


def arranged_midi(job: corpus.Job, cache_dir: Path, recipe: SymbolicRecipe, seed: int = 0):
    """The job's arrangement as the audio model heard it (same draws as ``corpus.render_job``)."""
    return corpus.arranged_midi(job, cache_dir, recipe.max_seconds, seed)


def _tokenize_job(args) -> tuple[str, np.ndarray | None, str]:
    job, cache_dir, recipe = args
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            midi = arranged_midi(job, cache_dir, recipe)
            ids, seconds = tokenize(make_tokenizer(recipe), midi)
        keep = seconds < recipe.max_seconds  # the audio pieces are cut there too
        return job.piece, ids[keep], ""
    except Exception as err:  # music21 and MIDI parsing raise many kinds on odd scores
        return job.piece, None, f"{type(err).__name__}: {err}"


def token_corpus(split: str, recipe: SymbolicRecipe, build_dir: Path = BUILD_DIR, workers: int = 2,
                 limit: int | None = None) -> dict[str, np.ndarray]:
    """piece → token ids of every score of ``split`` (cached per piece in ``build_dir/tokens``; resumable)."""
    from multiprocessing import get_context

    out = build_dir / "tokens" / split
    out.mkdir(parents=True, exist_ok=True)
    cache_dir = build_dir / "midi"
    cache_dir.mkdir(parents=True, exist_ok=True)
    todo = [j for j in corpus.jobs(texture_pieces=0) if j.split == split][:limit]
    missing = [(j, cache_dir, recipe) for j in todo
               if not (out / f"{j.piece}.npy").exists() and not (out / f"{j.piece}.error").exists()]
    bar = tqdm(total=len(missing), desc=f"tokens ({split})", unit="piece")
    results = (get_context("spawn").Pool(workers).imap_unordered(_tokenize_job, missing, chunksize=4)
               if workers > 1 and len(missing) > 1 else map(_tokenize_job, missing))
    for piece, ids, error in results:
        if ids is None or len(ids) < 16:
            write_text_atomic(error or "fewer than 16 tokens", out / f"{piece}.error")
        else:
            with atomic_path(out / f"{piece}.npy", suffix=".tmp.npy") as tmp:
                np.save(tmp, ids.astype(np.int16))
        bar.update()
    bar.close()
    return {j.piece: np.load(out / f"{j.piece}.npy").astype(np.int64) for j in todo
            if (out / f"{j.piece}.npy").exists()}


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
    a share ``loop_share`` of them ``[BOS] +`` a :func:`bar_loop` of the piece."""
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


def train(recipe: SymbolicRecipe, device: str = "cpu", build_dir: Path = BUILD_DIR, out_dir: Path = TINY_SYMBOLIC_DIR,
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


# ---- the card: the audio card's measures, on the same held-out pieces ------------------------------
def eval_scores(n_eval: int = 12, seconds: float = 15.0, recipe: SymbolicRecipe | None = None) -> dict[str, list]:
    """15 s score excerpts (from the first note) of the pieces the audio card measures: the first ``n_eval``
    held-out TrainingSet pieces (their arrangements) and ASAP performances (their MIDI)."""
    from .. import audio
    from ..data import datasets

    recipe = recipe or SymbolicRecipe()
    jobs = {j.piece: j for j in corpus.jobs(texture_pieces=0)}
    out: dict[str, list] = {"training_heldout": [], "ood": []}
    for piece in datasets.pieces("training", n_eval):
        if piece.name in jobs:  # texture pieces have no score
            midi = arranged_midi(jobs[piece.name], BUILD_DIR / "midi", recipe)
            out["training_heldout"].append((piece.name, audio.midi_excerpt(midi, audio.midi_first_onset(midi), seconds)))
    manifest = datasets.DATA_DIR / "rendered" / "ood" / "manifest.csv"
    import pandas as pd

    for _, row in pd.read_csv(manifest).head(n_eval).iterrows():
        midi = audio.read_midi(datasets.ASAP_DIR / row["source"].removeprefix("ASAP: "))
        out["ood"].append((row["piece"], audio.midi_excerpt(midi, audio.midi_first_onset(midi), seconds)))
    return out


def measure(model: str = "tiny-symbolic", n_eval: int = 12, seed: int = 0) -> dict:
    """Every number of the symbolic card (CPU; a few minutes)."""
    from .. import audio, stats
    from ..analysis import musicality as hearing
    from ..data import datasets
    from ..models import load_model

    lm = load_model(model, device="cpu")
    recipe = SymbolicRecipe()
    started = time.time()
    train_tokens = token_corpus("train", recipe)
    counts = np.ones(lm.cardinality)
    for ids in train_tokens.values():
        counts += np.bincount(ids, minlength=lm.cardinality)[: lm.cardinality]
    unigram = np.log(counts / counts.sum())
    card: dict = dict(model=model, fingerprint=lm.fingerprint, cardinality=lm.cardinality,
                      context_tokens=lm.context_tokens)
    scores = eval_scores(n_eval, recipe=recipe)
    for name, items in scores.items():
        nll, base, tokens_per_second = [], [], []
        for _, midi in items:
            ids, seconds, piece_nll = hearing.token_nll(lm, midi)
            nll.append(piece_nll)
            base.append(-unigram[ids])
            tokens_per_second.append(len(ids) / 15.0)
        card[f"{name}_pieces"] = len(items)
        card[f"{name}_lm_nll"] = float(np.concatenate(nll).mean())
        card[f"{name}_unigram_nll"] = float(np.concatenate(base).mean())
        card[f"{name}_tokens_per_second"] = float(np.mean(tokens_per_second))
    # every held-out arrangement (whole pieces, strided past the context)
    heldout = token_corpus("heldout", recipe)
    nll = [lm.token_nll(torch.from_numpy(ids)[None, None])[0, 0].numpy() for ids in heldout.values()]
    card["all_heldout_pieces"] = len(nll)
    card["all_heldout_lm_nll"] = float(np.concatenate(nll).mean())
    card["all_heldout_unigram_nll"] = float(np.concatenate([-unigram[ids] for ids in heldout.values()]).mean())
    eval_midis = [m for items in scores.values() for _, m in items]
    repeat = hearing.repeat_test(lm, eval_midis)
    card.update({f"repeat_{k}": float(v) for k, v in repeat.mean().items()})
    card["repeat_pieces"] = len(repeat)
    # every ASAP performance at hand: the 40 committed ones, and all 157 where the shared copy exists
    shared = paths.SHARED_ASAP_DIR
    folder = shared if shared.exists() else datasets.ASAP_DIR
    asap = [audio.read_midi(p) for p in sorted(folder.rglob("*.mid"))]  # the test reads 15 s from the first note
    card["wrong_note_source"] = f"{len(asap)} ASAP performances in {'../shared/data/asap' if shared.exists() else 'data/asap'}"
    wrong = hearing.wrong_note_test(lm, asap, seed=seed)
    card.update({f"wrong_note_{k}": v for k, v in stats.paired_auroc(wrong["nll_wrong"], wrong["nll_clean"],
                                                                      seed=seed).items()})
    card["wrong_note_nll_clean"], card["wrong_note_nll_wrong"] = (float(wrong["nll_clean"].mean()),
                                                                  float(wrong["nll_wrong"].mean()))
    noise = hearing.token_noise_response(lm, eval_midis, seed=seed)
    card["noise"] = noise.groupby(["kind", "length_seconds"])[
        ["window_tokens", "window_nll", "clean_window_nll", "window_unigram_nats", "after_nll", "clean_after_nll",
         "mean_delta"]].mean().reset_index().to_dict("records")
    card["noise_trend"] = {kind: stats.correlations(g["length_seconds"], g["mean_delta"])
                           for kind, g in noise.groupby("kind")}
    card["measure_seconds"] = round(time.time() - started, 1)
    return card


def render_card(card: dict, recipe: SymbolicRecipe) -> str:
    """The card's markdown, formatted from the measurements and the recipe (no number typed in)."""
    a = recipe.arch
    log = json.loads((TINY_SYMBOLIC_DIR / "training_log.json").read_text())
    lines = [
        "# tiny-symbolic: the embedded symbolic music model", "",
        f"A GPT-2 ({a['n_layer']} layers x {a['n_embd']}, {a['n_head']} heads, {a['n_positions']} positions; "
        f"transformers' format) over miditok REMI tokens ({card['cardinality']} ids: programs, pitches, velocities, "
        f"durations, positions, bars, tempos) of the corpus's arrangements: the scores the audio model heard, "
        f"arranged with the same draws (instruments, tempo, dynamics, drums, repeats). "
        f"{log['train_pieces']} training pieces, {log['train_tokens']:,} tokens; {recipe.steps} steps of "
        f"{recipe.batch} crops of {recipe.crop_tokens} tokens, AdamW lr {recipe.lr:g}, then a finishing stage of "
        f"{recipe.finish_steps} steps at lr {recipe.finish_lr:g} where {recipe.finish_loop_crops:.0%} of the crops "
        f"are loops of whole bars of a piece ({recipe.loop_tokens[0]}-{recipe.loop_tokens[1]} tokens, the music "
        f"itself repeated), seed {recipe.seed} (`make tiny-symbolic`; recipe: "
        "`lossprofile.embedded.recipe.SymbolicRecipe`). The held-out split and ASAP are not in its training data; "
        "nothing the experiments inject (random notes, shuffles) is either.", "",
        "Measured by `lossprofile tiny-symbolic --card` (CPU), on the pieces the audio model's card uses: 15 s "
        "excerpts from the first note.", "",
        "| | held-out TrainingSet | OOD (ASAP piano) |", "|---|---|---|",
        f"| pieces | {card['training_heldout_pieces']} | {card['ood_pieces']} |",
        f"| tokens per second | {card['training_heldout_tokens_per_second']:.1f} | "
        f"{card['ood_tokens_per_second']:.1f} |",
        f"| LM cross-entropy, nats per token | {card['training_heldout_lm_nll']:.3f} | {card['ood_lm_nll']:.3f} |",
        f"| unigram baseline (training counts) | {card['training_heldout_unigram_nll']:.3f} | "
        f"{card['ood_unigram_nll']:.3f} |", "",
        f"On all {card['all_heldout_pieces']} held-out arrangements, whole (strided past {card['context_tokens']} "
        f"tokens): {card['all_heldout_lm_nll']:.3f} nats per token against {card['all_heldout_unigram_nll']:.3f} "
        "for the unigram baseline.", "",
        "## Does it hear music?", "",
        f"- **Uses its context**: a 5 s passage played three times ({card['repeat_pieces']} pieces): "
        f"{card['repeat_pass_1']:.2f} / {card['repeat_pass_2']:.2f} / {card['repeat_pass_3']:.2f} nats per token, "
        f"pass 3 / pass 1 = {card['repeat_ratio_last_first']:.2f}.",
        f"- **Hears wrong notes**: half the notes moved 1-5 semitones, {card['wrong_note_n']} ASAP performances "
        "(all the project holds) "
        f"(15 s): AUROC of the mean NLL {card['wrong_note_auroc']:.2f} [{card['wrong_note_ci_low']:.2f}, "
        f"{card['wrong_note_ci_high']:.2f}] (clean {card['wrong_note_nll_clean']:.2f}, wrong "
        f"{card['wrong_note_nll_wrong']:.2f} nats per token).", "",
        "## Noise in token space (onset 5 s; the paper's lengths in seconds)", "",
        "Mean over pieces. `window`: NLL per token inside the replaced window; `clean window`: the clean excerpt's "
        "tokens in the same seconds; `counting learner`: what a learner that only counts the window's own tokens "
        "pays (in-context unigram); `mean delta`: the paper's measure (whole-excerpt mean per token, perturbed "
        "minus clean).", "",
        "| kind | length s | tokens | window | clean window | counting learner | after (2 s) | clean after | "
        "mean delta |", "|---|---|---|---|---|---|---|---|---|"]
    for r in card["noise"]:
        lines.append(f"| {r['kind']} | {r['length_seconds']:g} | {r['window_tokens']:.0f} | {r['window_nll']:.2f} | "
                     f"{r['clean_window_nll']:.2f} | {r['window_unigram_nats']:.2f} | {r['after_nll']:.2f} | "
                     f"{r['clean_after_nll']:.2f} | {r['mean_delta']:+.3f} |")
    lines += ["", "Longer windows against the mean delta (Spearman over pieces x lengths): " + "; ".join(
        f"{kind} rho = {t['spearman_rho']:.2f} (p = {t['spearman_p']:.1e})" for kind, t in card["noise_trend"].items())
        + ".", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="lossprofile tiny-symbolic",
        description=__doc__.split("\n\n")[0] + ". TRAINS (or resumes) the model, rewriting its folder (default: the "
                    f"shipped one, {TINY_SYMBOLIC_DIR}); caches go to {BUILD_DIR}. --measure-card RE-MEASURES its card "
                    "instead (tokenises and scores the held-out set: many minutes). To read the card: "
                    "lossprofile card tiny-symbolic (or --show-card).")
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the recipe's)")
    p.add_argument("--finish-steps", type=int, default=None, help="finishing-stage steps (default: the recipe's)")
    p.add_argument("--out", default=None, help="where the model goes (default: the embedded model's folder)")
    p.add_argument("--checkpoint", default=None, help="the resume checkpoint (default: build/tiny-symbolic/"
                   "checkpoint.pt; give another one for another recipe, e.g. a weaker model with fewer --steps)")
    p.add_argument("--workers", type=int, default=2, help="processes tokenising the corpus")
    p.add_argument("--measure-card", "--card", dest="card", action="store_true",
                   help=f"re-measure the trained model (no training) and print its card, written to {BUILD_DIR}/card "
                        "(--card is the old name)")
    p.add_argument("--write-card", action="store_true", help=f"with --measure-card: write card.json and MODEL_CARD.md "
                   f"into {TINY_SYMBOLIC_DIR} (tracked files) instead")
    p.add_argument("--show-card", action="store_true", help="print the shipped MODEL_CARD.md and stop (measures nothing)")
    args = p.parse_args(argv)
    if args.show_card:
        print((TINY_SYMBOLIC_DIR / "MODEL_CARD.md").read_text())
        return
    changes = {k: v for k, v in (("steps", args.steps), ("finish_steps", args.finish_steps)) if v is not None}
    recipe = SymbolicRecipe(**changes)
    if not args.card:
        out = Path(args.out) if args.out else TINY_SYMBOLIC_DIR
        print(f"wrote {train(recipe, args.device, out_dir=out, workers=args.workers, checkpoint=args.checkpoint)}")
        return
    out = TINY_SYMBOLIC_DIR if args.write_card else BUILD_DIR / "card"
    out.mkdir(parents=True, exist_ok=True)
    card = measure()
    write_text_atomic(json.dumps(card, indent=1, default=float) + "\n", out / "card.json")
    write_text_atomic(render_card(card, recipe), out / "MODEL_CARD.md")
    print(render_card(card, recipe))
    print(f"wrote {out / 'MODEL_CARD.md'}")


if __name__ == "__main__":
    main()
