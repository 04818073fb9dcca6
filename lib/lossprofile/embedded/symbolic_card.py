"""The symbolic model's card: the audio card's measures, on the same held-out pieces.

``lossprofile tiny-symbolic --measure-card`` measures it (`measure`, CPU, many minutes) and writes
``card.json`` and ``MODEL_CARD.md`` (`render_card`: formatted from the measurements and the recipe).
"""

from __future__ import annotations

import json
import time

import numpy as np
import torch

from .. import paths
from ..data import corpus
from ..models.symbolic.model import TINY_SYMBOLIC_DIR
from .recipe import SymbolicRecipe
from .training_corpus import SYMBOLIC_BUILD_DIR, arranged_midi, token_corpus


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
            midi = arranged_midi(jobs[piece.name], SYMBOLIC_BUILD_DIR / "midi", recipe)
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
