"""Where does Context Amnesia come from? An ablation study with cheap variants of the tiny model.

The paper observes that noise lowers a music LM's loss once it is the context (Assimilation)
and that its onset costs a spike (Peak), but never asks what produces them. Each variant
here changes one ingredient of the embedded model's recipe and is trained from scratch for
the same number of steps on the same kind of data, then measured like the model card:

- ``reference``: the recipe at study size (a smaller, shorter-trained LM on the good codec);
- ``clean only``: no SoundFont textures, effects or drones in the training data;
- ``no added repetition``: no ostinati, audio loops, strophic verses or loop crops (the
  scores' own repeats stay, as they are part of the music);
- ``2 layers`` / ``6 layers``: decoder depth;
- ``weak codec``: the LM trained on the codes of a codec that keeps no pitch (the first
  recipe's loss and optimiser: waveform L1 + STFT, Adam at 2e-3 with beta1 = 0.5; 1000 + 500
  steps), everything else equal;
- ``continued: …``: the base model (the embedded model before its finishing stage, saved by
  ``make tiny-model`` in ``build/tiny-model/base``), trained on for a short schedule (600 steps
  of 8 crops at learning rate 1e-3, on the CPU in about 20 minutes) on the study's pool, as a
  control, with 120 texture clouds on half of the crops (which is the finishing stage itself:
  that row is the embedded model), or without textures. Its
  study-size siblings never learnt to copy, which makes them mute on the part of Assimilation
  that copying produces; these start from a model that copies, so one ingredient at a time
  is compared with the control on a model where Assimilation could appear;
- ``full + texture clouds``: the embedded model's own recipe, size, schedule and whole corpus,
  plus 120 dense clouds of SoundFont effects and noisy hits that never repeat
  (``training_corpus.texture_cloud``); compare it with the embedded model's row. The corpus's own
  textures repeat their samples, and a model that only ever heard repeating textures can copy
  them but knows little of the codes that stationary, non-repeating sound produces, which is
  what white noise is. Full size because only a model that copies gets its noise loss down to
  what counting codes in context gives (the study-size variants never learnt to copy).

Measures per variant: held-out NLL, repeat test (pass 3 / pass 1), wrong-note AUROC, onset
peak, assimilation, Spearman(length, mean delta), the perturbed loss early and late in a
long noise window (does it fall as the noise goes on?), and over that window the model's loss
beside what a learner that only counts codes in context pays and what the clean music costs.

The default run is ``VARIANTS`` (reference, clean only, no added repetition, 2 layers, and the
continued control and clouds) plus the embedded model measured the same way; ``continued: clean
only``, ``6 layers``, ``weak codec`` and ``full + texture clouds`` are in ``MORE_VARIANTS``
(``--variants``). Each variant's
weights and measures are cached under ``build/study``, and its measures are kept in
``checkpoints/tiny/study.json`` (``STUDY_RESULTS``, in git), so a re-run only does what is
missing on any machine: delete a variant's entry there (and its ``build/study`` files) to train
and measure it again. Train where it is cheap and measure
anywhere: ``lossprofile study --device cuda --train-only`` on a GPU machine that has
the main model's work folder (codec.pt, codes.pt, pieces.json), copy ``build/study/*/checkpoint``
back, then ``lossprofile study`` (or ``make model-card``) measures them on the CPU.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import stats
from ..analysis import musicality
from ..data import datasets as ex
from ..data.datasets import ASAP_DIR, load_excerpt
from ..io import write_text_atomic
from ..models import load_model
from ..models.musicgen import TINY_DIR
from .recipe import CONTINUED_LM, FINISH, FINISH_POOL, STUDY_ARCH, STUDY_EVAL, STUDY_LM, WEAK_CODEC, Recipe
from .tiny_model import WORK_DIR, codes_ready, pool_mask, train_model
from .training_corpus import load_corpus

STUDY_DIR = WORK_DIR.parent / "study"
STUDY_RESULTS = TINY_DIR / "study.json"
@dataclass(frozen=True)
class Variant:
    name: str
    arch: dict = field(default_factory=dict)
    data: str = "all"  # all, clean, no_repetition
    codec: str = "good"  # good, weak
    clouds: int = 0  # texture clouds added to the data (training_corpus.cloud_pieces)
    full: bool = False  # the embedded model's size, schedule and whole corpus instead of the study's
    start: str = "scratch"  # or "base": continue training the base model (CONTINUED_LM) on the pool
    description: str = ""


VARIANTS = (
    Variant("reference", description="the recipe at study size: 4 layers, all data, good codec"),
    Variant("clean only", data="clean", description="no textures, effects or drones in training"),
    Variant("no added repetition", data="no_repetition",
            description="no ostinati, loops, verses or loop crops in training"),
    Variant("2 layers", arch=dict(num_hidden_layers=2), description="a shallower decoder"),
    Variant("continued: control", start="base",
            description="the base model trained on for 600 steps on the pool: the control of the continued variants"),
    Variant("continued: + texture clouds", start="base", clouds=FINISH["cloud_pieces"],
            description="the same, with half of the crops from 120 texture clouds (dense SoundFont effects and noisy "
                        "hits that never repeat): the embedded model's finishing stage"),
)
# Defined and runnable (``--variants "6 layers"``), not in the default run: their language models
# need a GPU at the study's schedule (about 4 minutes each on an H100; hours on 2 CPU cores), and
# the weak codec also trains its own codec first (about 10 CPU minutes). "full + texture clouds"
# trains the embedded model's schedule (about 6 minutes on an H100, 7 hours on 2 CPU cores); its
# clouds render and encode on the first run (about a minute on the CPU; cached in its clouds.pt).
MORE_VARIANTS = (
    Variant("continued: clean only", start="base", data="clean",
            description="the same as the continued control, without textures, effects or drones"),
    Variant("6 layers", arch=dict(num_hidden_layers=6), description="a deeper decoder"),
    Variant("weak codec", codec="weak", description="codes from a codec that keeps no pitch"),
    Variant("full + texture clouds", clouds=120, full=True,
            description="the embedded model's recipe and corpus plus 120 texture clouds: dense SoundFont effects "
                        "and noisy hits that never repeat"),
)


def select(table: pd.DataFrame, data: str) -> np.ndarray:
    """Row mask of the corpus pieces a variant trains on."""
    tags = table["tags"].map(json.loads)
    if data == "all":
        return np.ones(len(table), bool)
    if data == "clean":
        return ~tags.map(lambda t: "texture" in t or "drone" in t).to_numpy()
    if data == "no_repetition":
        return ~tags.map(lambda t: t.get("ostinato", False) or "loop_times" in t or t.get("verses", 1) > 1).to_numpy()
    raise ValueError(f"unknown data selection {data!r}")


def study_recipe(variant: Variant, base: Recipe) -> Recipe:
    """The variant's recipe: the study's LM size and schedule (or the embedded model's), and the variant's one change."""
    if variant.start == "base":
        recipe = replace(base, lm_start="base", **CONTINUED_LM)
    elif variant.full:
        recipe = replace(base, arch={**base.arch, **variant.arch}, checkpoint_every=500)
    else:
        recipe = replace(base, arch={**base.arch, **STUDY_ARCH, **variant.arch}, checkpoint_every=500, **STUDY_LM)
    if variant.codec == "weak":  # the first recipe's codec loss and optimiser, on a shorter schedule
        recipe = replace(recipe, **WEAK_CODEC)
    if variant.data == "no_repetition":  # nor loops made of a piece's own codes
        recipe = replace(recipe, loop_crops=0.0)
    if variant.clouds:
        recipe = replace(recipe, cloud_pieces=variant.clouds,
                         cloud_share=FINISH["cloud_share"] if variant.start == "base" else None)
    return recipe


def evaluation_set(n_wavs: int = STUDY_EVAL["n_wavs"], n_midis: int = STUDY_EVAL["n_midis"]):
    """Held-out corpus and OOD excerpts, and ASAP MIDI files, shared by every variant."""
    half = n_wavs // 2
    wavs = [load_excerpt(p, 32000, 15.0) for p in ex.pieces("training", half) + ex.pieces("ood", n_wavs - half)]
    midis = sorted(ASAP_DIR.rglob("*.mid"))[::2][:n_midis]
    return wavs, midis


def heldout_nll(lm, wavs) -> float:
    codes = torch.cat([lm.encode(torch.from_numpy(w)[None, None]) for w in wavs])
    return float(lm.token_nll(codes).mean())


def measure_variant(lm, wavs, midis, seed: int = 0) -> dict:
    repeat = musicality.repeat_test(lm, wavs)
    wrong = musicality.wrong_note_test(lm, midis, seed=seed)
    noise = musicality.noise_summary(musicality.noise_response(lm, wavs, lm.sample_rate, seed=seed))
    auroc = stats.paired_auroc(wrong["nll_wrong"], wrong["nll_clean"], seed=seed)
    return dict(heldout_nll=heldout_nll(lm, wavs), repeat_ratio=float(repeat["ratio_last_first"].mean()),
                wrong_note_auroc=auroc["auroc"], wrong_note_ci_low=auroc["ci_low"], wrong_note_ci_high=auroc["ci_high"],
                onset_peak=noise["onset_peak"], assimilation=noise["assimilation"],
                spearman_length_delta=noise["spearman_length_delta"], noise_nll_early=noise["noise_nll_early"],
                noise_nll_late=noise["noise_nll_late"], clean_nll=noise["clean_nll"],
                noise_window_nll=noise["noise_window_nll"], clean_window_nll=noise["clean_window_nll"],
                noise_unigram_nll=noise["noise_unigram_nll"], noise_known_nll=noise["noise_known_nll"])


def trained(work: Path, recipe: Recipe) -> bool:
    """Whether ``work/checkpoint`` holds this recipe's finished export (trained here or copied from a GPU machine)."""
    log = work / "checkpoint" / "training_log.json"
    if not log.exists():
        return False
    want = json.loads(json.dumps(asdict(recipe)))
    saved = json.loads(log.read_text())["recipe"]
    defaults = json.loads(json.dumps(asdict(Recipe())))
    # a field added to Recipe after a checkpoint was saved counts as its default there
    return {**{k: v for k, v in defaults.items() if k not in saved}, **saved} == want


def load_results(path: Path = STUDY_RESULTS) -> dict[str, dict]:
    """The measured rows kept in git, by variant name (the embedded model's under ``embedded model``)."""
    return json.loads(path.read_text()) if path.exists() else {}


def results_table(path: Path = STUDY_RESULTS) -> pd.DataFrame:
    """Every measured row in ``path``, in the order of the variants' definitions, the embedded model last."""
    order = [v.name for v in VARIANTS + MORE_VARIANTS] + ["base model", "embedded model"]
    rows = load_results(path).values()
    return pd.DataFrame(sorted(rows, key=lambda r: order.index(r["variant"]) if r["variant"] in order else len(order)))


def save_result(row: dict, path: Path = STUDY_RESULTS) -> None:
    """Add or replace one variant's row in ``path``, atomically (a finished measurement is never lost)."""
    rows = load_results(path)
    rows[row["variant"]] = row
    write_text_atomic(json.dumps(rows, indent=1, default=float) + "\n", path)


def variant_codes(variant: Variant, out_dir: Path, main_work: Path) -> dict:
    """Where a variant's codec and corpus codes come from (passed to ``train_model``)."""
    if variant.start == "base":  # the base model's codec (stored in fp16) gives its own codes
        return dict(codes_cache=out_dir / "base_codes.pt")
    if variant.codec == "good":  # the main model's codec and codes
        return dict(codec_checkpoint=main_work / "codec.pt", codes_cache=main_work / "codes.pt")
    return {}


def run_study(variants=VARIANTS, pool: int = FINISH_POOL, out_dir: Path = STUDY_DIR, seed: int = 0, device: str = "cpu",
              train_only: bool = False, main_work: Path = WORK_DIR, include_embedded: bool = True,
              results: Path | None = STUDY_RESULTS) -> pd.DataFrame:
    """Train (or resume) and measure every variant; returns one row per variant.

    A variant already measured (in ``out_dir`` or in ``results``) is not trained or measured
    again; each new measurement is added to ``results`` at once. ``train_only`` trains without
    measuring (e.g. on a GPU machine that has the main model's work folder but not the rendered
    corpus); copy ``out_dir/*/checkpoint`` back and run again to measure.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    base = Recipe(seed=seed)
    saved = load_results(results) if results is not None and not train_only else {}
    rows, todo = {}, []
    for variant in variants:
        cached = out_dir / f"{variant.name.replace(' ', '_')}.json"
        if cached.exists() and not train_only:
            rows[variant.name] = json.loads(cached.read_text())
        elif variant.name in saved:
            rows[variant.name] = saved[variant.name]
        else:
            todo.append(variant)
    untrained = [v for v in todo if not trained(out_dir / v.name.replace(" ", "_"), study_recipe(v, base))]
    table = codes_ready(main_work, base.codec_ae_steps + base.codec_vq_steps)
    wavs = None
    if untrained and (table is None or any(v.codec != "good" or v.start == "base" for v in untrained)):
        table, wavs = load_corpus("train")  # only what is left to train needs the rendered corpus
    eval_wavs, midis = evaluation_set() if todo and not train_only else (None, None)
    for variant in todo:
        slug = variant.name.replace(" ", "_")
        recipe = study_recipe(variant, base)
        work = out_dir / slug
        # the same pool of pieces for every study-size variant, spread over the corpus
        if table is not None:
            keep = pool_mask(len(table), pool)
            mask = (True if variant.full else keep) & select(table, variant.data)
            pieces = int(mask.sum()) + recipe.cloud_pieces
        if variant in untrained:
            sub = table[mask].reset_index(drop=True)
            sub_wavs = [w for w, m in zip(wavs, mask) if m] if wavs is not None else None
            train_model(recipe, work, work / "checkpoint", table=sub, wavs=sub_wavs, device=device,
                        progress=not train_only, base_dir=main_work / "base",
                        **variant_codes(variant, out_dir, main_work))
        if train_only:
            continue
        lm = load_model(str(work / "checkpoint"), device="cpu")
        if table is None:
            pieces = json.loads((work / "checkpoint" / "training_log.json").read_text())["train_pieces"]
        row = dict(variant=variant.name, description=variant.description, pieces=pieces,
                   layers=recipe.arch["num_hidden_layers"], lm_steps=recipe.lm_steps,
                   **measure_variant(lm, eval_wavs, midis))
        (out_dir / f"{slug}.json").write_text(json.dumps(row, indent=1))
        if results is not None:
            save_result(row, results)
        rows[variant.name] = row
    out = [rows[v.name] for v in variants if v.name in rows]
    if include_embedded and not train_only:
        out.append(measure_embedded(out_dir, seed, results))
    return pd.DataFrame(out)


def measure_embedded(out_dir: Path, seed: int = 0, results: Path | None = STUDY_RESULTS) -> dict:
    """The embedded model measured like the variants (kept by its fingerprint): the full-size, full-length row."""
    lm = load_model("tiny", device="cpu")
    saved = load_results(results).get("embedded model") if results is not None else None
    if saved is not None and saved.get("fingerprint") == lm.fingerprint:
        return saved
    result = out_dir / f"embedded_{lm.fingerprint}.json"
    if result.exists():
        return json.loads(result.read_text())
    training = json.loads((TINY_DIR / "training_log.json").read_text())
    stages = [training.get("base"), training] if "base" in training else [training]
    recipe = training.get("recipe", {})
    eval_wavs, midis = evaluation_set()
    row = dict(variant="embedded model",
               description="the shipped model: 6 layers x 256, all data, full schedule"
               + (", then the finishing stage (continued with texture clouds)" if len(stages) > 1 else ""),
               pieces=stages[0].get("train_pieces") + recipe.get("cloud_pieces", 0) * (len(stages) > 1),
               layers=recipe.get("arch", {}).get("num_hidden_layers"),
               lm_steps=sum(stage.get("recipe", {}).get("lm_steps", 0) for stage in stages), fingerprint=lm.fingerprint,
               **measure_variant(lm, eval_wavs, midis, seed))
    result.write_text(json.dumps(row, indent=1))
    if results is not None:
        save_result(row, results)
    return row


def study_markdown(study: pd.DataFrame) -> str:
    cols = [("variant", "variant", "{}"), ("pieces", "training pieces", "{}"), ("heldout_nll", "held-out NLL", "{:.2f}"),
            ("repeat_ratio", "repeat pass 3 / pass 1", "{:.2f}"), ("wrong_note_auroc", "wrong-note AUROC", "{:.2f}"),
            ("onset_peak", "onset peak", "{:+.2f}"), ("assimilation", "assimilation", "{:+.2f}"),
            ("spearman_length_delta", "Spearman(length, delta)", "{:+.2f}"),
            ("noise_nll_early", "noise NLL early → late", "{:.2f}"),
            ("noise_window_nll", "noise window: model / counting learner / clean", "{:.2f}"),
            ("noise_known_nll", "noise window: learner that knows noise", "{:.2f}")]
    keys = [c[0] for c in cols]
    head = "| " + " | ".join(c[1] for c in cols) + " |"
    rows = [head, "|" + "---|" * len(cols)]
    for r in study.to_dict("records"):
        cells = [fmt.format(r[key]) if pd.notna(r.get(key)) else "–" for key, _, fmt in cols]
        cells[keys.index("noise_nll_early")] = f"{r['noise_nll_early']:.2f} → {r['noise_nll_late']:.2f}"
        if pd.notna(r.get("noise_unigram_nll")):
            cells[keys.index("noise_window_nll")] = (f"{r['noise_window_nll']:.2f} / {r['noise_unigram_nll']:.2f} / "
                                                     f"{r['clean_window_nll']:.2f}")
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


CONTINUED = tuple(v.name for v in VARIANTS + MORE_VARIANTS if v.start == "base")
CONTINUED_CONTROL = "continued: control"


def continued_conclusion(study: pd.DataFrame) -> str:
    """The continued variants against their control: what one ingredient does to a model that copies."""
    s = study.set_index("variant")
    if CONTINUED_CONTROL not in s.index:
        return ""
    ctl = s.loc[CONTINUED_CONTROL]
    others = [n for n in s.index if n in CONTINUED and n != CONTINUED_CONTROL]
    text = (f"Continued from the base model for {int(ctl['lm_steps'])} steps, the control assimilates with "
            f"{ctl['assimilation']:+.2f} and pays {ctl['noise_window_nll']:.2f} nats per code on the noise window "
            f"(clean music {ctl['clean_window_nll']:.2f}, repeat ratio {ctl['repeat_ratio']:.2f}, held-out NLL "
            f"{ctl['heldout_nll']:.2f}).")
    for name in others:
        row = s.loc[name]
        text += (f" '{name}': assimilation {row['assimilation']:+.2f} ({row['assimilation'] - ctl['assimilation']:+.2f} "
                 f"against the control), noise window {row['noise_window_nll']:.2f} "
                 f"({row['noise_window_nll'] - ctl['noise_window_nll']:+.2f}), onset peak {row['onset_peak']:+.2f} "
                 f"({row['onset_peak'] - ctl['onset_peak']:+.2f}), Spearman(length, delta) "
                 f"{row['spearman_length_delta']:+.2f}, held-out NLL {row['heldout_nll']:.2f} "
                 f"({row['heldout_nll'] - ctl['heldout_nll']:+.2f}), repeat ratio {row['repeat_ratio']:.2f}.")
    below = [n for n in [CONTINUED_CONTROL] + others if s.loc[n, "assimilation"] < 0]
    text += (f" Assimilation < 0: {', '.join(repr(n) for n in below)}." if below
             else " None of them assimilates below zero.")
    return text


def conclusion(study: pd.DataFrame) -> str:
    """Plain sentences read off the table: which ingredient moves assimilation, which the peak."""
    continued = continued_conclusion(study)
    study = study[~study["variant"].isin(CONTINUED)]
    s = study.set_index("variant")
    if "reference" not in s.index:
        return (continued + " " if continued else "") + "The reference variant is missing, so no ingredient can be compared."
    ref = s.loc["reference"]
    parts = []
    for name in s.index.drop("reference"):
        row = s.loc[name]
        d_assim, d_peak = row["assimilation"] - ref["assimilation"], row["onset_peak"] - ref["onset_peak"]
        d_repeat = row["repeat_ratio"] - ref["repeat_ratio"]
        parts.append(f"{name}: assimilation {row['assimilation']:+.2f} ({d_assim:+.2f} against the reference), "
                     f"onset peak {row['onset_peak']:+.2f} ({d_peak:+.2f}), repeat ratio {row['repeat_ratio']:.2f} "
                     f"({d_repeat:+.2f})")
    text = f"The reference assimilates with {ref['assimilation']:+.2f} nats and peaks at {ref['onset_peak']:+.2f}."
    if parts:
        assim_driver = (s["assimilation"] - ref["assimilation"]).drop("reference").abs().idxmax()
        peak_driver = (s["onset_peak"] - ref["onset_peak"]).drop("reference").abs().idxmax()
        text += (" " + "; ".join(parts) + f". The change that moves assimilation most is '{assim_driver}'; the one "
                 f"that moves the onset peak most is '{peak_driver}'.")
    overfit = [n for n in s.index if s.loc[n, "heldout_nll"] > ref["heldout_nll"] + 1.0]
    if overfit:
        text += (" But " + ", ".join(f"'{n}' ({s.loc[n, 'heldout_nll']:.2f} nats held out against the reference's "
                                     f"{ref['heldout_nll']:.2f}, on {int(s.loc[n, 'pieces'])} pieces)" for n in overfit)
                 + " memorised a smaller training set: there the peak and assimilation measure overfitting as much as "
                 "the ingredient.")
    copying = [n for n in s.index if s.loc[n, "repeat_ratio"] <= 0.5]
    if not copying:
        text += " No model here copies what it heard (repeat ratio ≤ 0.5), so none of this is about context use."
    elif "reference" not in copying:
        text += (f" Only {', '.join(repr(n) for n in copying)} copies what it heard (repeat ratio ≤ 0.5); the "
                 "study-size variants never got there in 4000 steps, so their differences say nothing about the "
                 "part of Assimilation that copying produces.")
    if "noise_unigram_nll" in s and s["noise_unigram_nll"].notna().all():
        excess = s["noise_window_nll"] - s["noise_unigram_nll"]
        counting = [n for n in s.index if excess[n] <= 0.05]
        lo, hi = f"{s['noise_unigram_nll'].min():.2f}", f"{s['noise_unigram_nll'].max():.2f}"
        text += (" On the noise window itself, a learner that only counts each codebook's codes as it hears them pays "
                 f"{lo if lo == hi else lo + '–' + hi} nats per code; against it "
                 + ", ".join(f"'{n}' pays {excess[n]:+.2f}" for n in s.index) + ".")
        if counting and set(counting) == set(copying):
            text += (f" The models that count noise codes as well as that learner are the ones that copy "
                     f"({', '.join(repr(n) for n in counting)}): learning in context comes first; only then can prior "
                     "knowledge of the codes noise produces bring the noise below the music.")
        elif not counting:
            text += " No model here counts noise codes as well as that learner."
    text += (f" One training run per variant and {int(ref['pieces'])}-piece pools: read the differences as "
             "directions, not effect sizes.")
    return text + ("\n\n" + continued if continued else "")


def plot_study(study: pd.DataFrame, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(14, 3.2), sharey=True)
    y = np.arange(len(study))
    for ax, (key, title) in zip(axes, [("onset_peak", "onset peak (nats)"), ("assimilation", "assimilation (nats)"),
                                       ("repeat_ratio", "repeat pass 3 / pass 1"),
                                       ("wrong_note_auroc", "wrong-note AUROC")]):
        ax.barh(y, study[key], color="tab:blue")
        ax.axvline(0.5 if key == "wrong_note_auroc" else 0.0, color="k", lw=0.8)
        ax.set_title(title, fontsize=9)
    axes[0].set_yticks(y, study["variant"])
    axes[0].invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
