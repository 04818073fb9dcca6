"""``figures/summary.md``: our numbers beside the paper's, from the saved statistics tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..analysis.profile import EXTRA_FEATURES, PASS_FEATURES
from ..data.datasets import KIND_LABELS

PAPER = ('Li, Liu, Wang, "When Noise Lowers the Loss: Rethinking Likelihood-Based Evaluation in Music Large '
         'Language Models", ICASSP 2026, arXiv:2602.02738')
# MusicGen-Small numbers from the paper: Fig. 2 (clean loss per data kind, mean ± std across pieces),
# Fig. 4 (mean delta per region) and the statistics of its Section 3 (length vs mean delta).
PAPER_CLEAN_LOSS = {"ood": (4.19, 1.01), "training": (5.41, 0.83), "generated": (5.59, 1.18)}
PAPER_REGIONS = {"peak": (0.79, 0.70), "assimilation": (-1.50, 0.95), "recovery": (0.04, 0.07)}
PAPER_CORRELATION = {"all points": "r < -0.85, p < 0.001", "per-length means": "r < -0.91, p < 0.05"}


def _read(stats_dir: Path, name: str) -> pd.DataFrame | None:
    path = stats_dir / f"{name}.parquet"
    return pd.read_parquet(path) if path.exists() else None


def _fmt(x: float, digits: int = 2) -> str:
    return "n/a" if pd.isna(x) else f"{x:.{digits}f}"


def _p(x: float) -> str:
    return "n/a" if pd.isna(x) else (f"{x:.1e}" if x < 1e-3 else f"{x:.3f}")


def markdown_table(table: pd.DataFrame) -> str:
    """A GitHub markdown table; floats with 3 decimals (p-values in scientific notation)."""
    def cell(col: str, v) -> str:
        if isinstance(v, float):
            return _p(v) if col.endswith("_p") else _fmt(v, 3)
        return str(v)

    rows = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    rows += ["| " + " | ".join(cell(c, v) for c, v in zip(table.columns, r)) + " |" for r in table.itertuples(index=False)]
    return "\n".join(rows)


def reading(trend: pd.DataFrame | None, by_condition: pd.DataFrame | None, regions: pd.DataFrame | None) -> list[str]:
    """Plain sentences on where our numbers agree with the paper's and where they do not."""
    lines = []
    if trend is not None and (trend["scope"] == "all points").any():
        r = trend.loc[trend["scope"] == "all points"].iloc[0]
        direction = "lowers" if r.pearson_r < 0 else "raises"
        agree = "as in the paper" if r.pearson_r < 0 else "the opposite of the paper's direction (r < -0.85)"
        lines.append(f"- Longer noise **{direction}** the mean loss here (Pearson r = {r.pearson_r:.2f}, "
                     f"p = {_p(r.pearson_p)}, slope {r.slope:+.2e} nats per frame): {agree}.")
    if trend is not None and (trend["scope"] == "per data kind").any():
        kinds = trend.loc[trend["scope"] == "per data kind"]
        overall_lowers = (trend["scope"] == "all points").any() and \
            trend.loc[trend["scope"] == "all points"].iloc[0].pearson_r < 0
        same = kinds[(kinds["spearman_rho"] < 0) & (kinds["spearman_p"] < 0.05)]
        for r in same.itertuples():
            lines.append(f"- For {KIND_LABELS.get(r.dataset, r.dataset)}{', too,' if overall_lowers else ', though,'} longer "
                         f"noise lowers the mean loss (Spearman rho = {r.spearman_rho:.2f}, p = {_p(r.spearman_p)}, "
                         f"{r.n} points): the paper's direction.")
    if by_condition is not None:
        easier_kinds = by_condition[by_condition["pure_noise"] < by_condition["clean"]]
        for r in easier_kinds.itertuples():
            lines.append(f"- On {KIND_LABELS.get(r.dataset, r.dataset)} music, pure noise ({r.pure_noise:.2f} nats per code) costs less than the "
                         f"clean music ({r.clean:.2f}).")
        clean, noise = by_condition["clean"].mean(), by_condition["pure_noise"].mean()
        easier = noise < clean
        lines.append(f"- Pure white noise costs {noise:.2f} nats per code against {clean:.2f} for clean music, so this "
                     f"model finds noise {'easier' if easier else 'harder'} to predict than music. The paper's "
                     "Assimilation region (noise lowering the loss once it is the context) needs it easier"
                     + ("." if easier else "; here it is not, which is why the mean delta grows with the noise length."))
    if regions is not None and (regions["region"] == "peak").any():
        peak = regions.loc[regions["region"] == "peak"].iloc[0]
        lines.append(f"- The onset Peak is {'positive' if peak['mean'] > 0 else 'not positive'} "
                     f"({peak['mean']:.2f} ± {peak['std']:.2f} nats; paper {PAPER_REGIONS['peak'][0]} ± "
                     f"{PAPER_REGIONS['peak'][1]}): the model notices the onset"
                     + (", as all four MusicGen sizes do in the paper." if peak["mean"] > 0
                        else "? No: investigate before reading the other numbers."))
    if regions is not None and (regions["region"] == "assimilation").any():
        assim = regions.loc[regions["region"] == "assimilation"].iloc[0]
        lines.append(f"- Assimilation: {assim['mean']:+.2f} ± {assim['std']:.2f} nats (paper "
                     f"{PAPER_REGIONS['assimilation'][0]} ± {PAPER_REGIONS['assimilation'][1]}): "
                     + ("the loss settles below the clean loss while the noise lasts, as in the paper."
                        if assim["mean"] < 0 else
                        "the loss stays above the clean loss for the whole noise window; this model does not "
                        "assimilate the noise."))
    return lines


def write_summary(results_dir="results", out_path="figures/summary.md") -> Path:
    """Assemble the summary from ``results_dir/stats``; returns the file written."""
    stats_dir = Path(results_dir) / "stats"
    lines = ["# Summary: our numbers beside the paper's", "",
             "Generated by `make figures` (`lossprofile.paper.summary.write_summary`) from the tables in "
             f"`{Path(results_dir).as_posix()}/stats/`.", "",
             f"Paper: {PAPER}. The paper's numbers quoted in the tables below are MusicGen-Small's: "
             "mean clean loss per data kind (its Fig. 2), mean delta per region (its Fig. 4), and its correlation "
             "of noise length with the mean loss difference (Pearson r < -0.85, p < 0.001 over all "
             "(model, data kind, length) points; r < -0.91, p < 0.05 over the six per-length means).", ""]
    info = _read(stats_dir, "run_info")
    if info is not None:
        lines += ["## What produced these numbers", ""]
        for row in info.itertuples():
            lines.append(f"- `{row.notebook}`: " + ", ".join(f"{k}={v}" for k, v in json.loads(row.parameters).items()))
        lines.append("")
    trend, regions = _read(stats_dir, "length_stats"), _read(stats_dir, "region_summary")
    by_condition = _read(stats_dir, "loss_by_condition")
    notes = reading(trend, by_condition, regions)
    if notes:
        lines += ["## Reading these numbers", ""] + notes + [
            "", "The embedded tiny model is a small MusicGen trained by this project (its MODEL_CARD.md says how and what it hears); "
            "the paper's numbers are MusicGen-Small's. `make figures MODEL=facebook/musicgen-small DEVICE=cuda` "
            "regenerates this page for the real model.", ""]
    clean = _read(stats_dir, "clean_loss_by_kind")
    if clean is not None:
        lines += ["## Mean clean loss per data kind (nats per code, mean ± std across pieces)", "",
                  "| data kind | ours | pieces | paper (MusicGen-Small) |", "|---|---|---|---|"]
        for row in clean.itertuples():
            paper = PAPER_CLEAN_LOSS.get(row.dataset)
            lines.append(f"| {KIND_LABELS.get(row.dataset, row.dataset)} | {_fmt(row.mean)} ± {_fmt(row.std)} | "
                         f"{row.count} | {f'{paper[0]} ± {paper[1]}' if paper else ''} |")
        lines.append("")
    if trend is not None:
        lines += ["## Injection length vs mean delta (RQ1)", "",
                  "| scope | group | n | Pearson r (p) | Spearman rho (p) | slope per frame [95% CI] (p) | paper |",
                  "|---|---|---|---|---|---|---|"]
        for row in trend.itertuples():
            group = getattr(row, "dataset", "")
            group = KIND_LABELS.get(group, group) if isinstance(group, str) else ""
            lines.append(
                f"| {row.scope} | {group} | {row.n} | {_fmt(row.pearson_r)} ({_p(row.pearson_p)}) | "
                f"{_fmt(row.spearman_rho)} ({_p(row.spearman_p)}) | {row.slope:.2e} [{row.slope_ci_low:.2e}, "
                f"{row.slope_ci_high:.2e}] ({_p(row.slope_p)}) | {PAPER_CORRELATION.get(row.scope, '')} |")
        lines.append("")
    if by_condition is not None:
        lines += ["## Loss of clean music, music + noise and pure noise (RQ2, nats per code)", "",
                  markdown_table(by_condition), ""]
    if regions is not None:
        lines += ["## Mean delta per region (RQ3, mean ± std across curves)", "",
                  "| region | ours | curves | paper (MusicGen-Small) |", "|---|---|---|---|"]
        for row in regions.itertuples():
            paper = PAPER_REGIONS[row.region]
            lines.append(f"| {row.region.capitalize()} | {_fmt(row.mean)} ± {_fmt(row.std)} | {row.count} | "
                         f"{paper[0]} ± {paper[1]} |")
        lines.append("")
    for name, title in (("shuffle_stats", "Order shuffling (Fig. 5)"), ("color_stats", "Noise colours (supplement)"),
                        ("method_comparison", "Exact vs as-published likelihood"),
                        ("prompt_comparison", "Text prompt vs unconditional"),
                        ("region_rules", "Region means: our detector beside the authors' rule (same curves)"),
                        ("symbolic_summary", "Score perturbations (notebook 06; demo page's MusicGen numbers beside)")):
        table = _read(stats_dir, name)
        if table is not None:
            lines += [f"## {title}", "", markdown_table(table), ""]
    lines += modalities_section(stats_dir)
    lines += validation_section(stats_dir)
    lines += profile_section(stats_dir)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    return out


def profile_section(stats_dir: Path) -> list[str]:
    """The profile-score evaluation (notebook 07): AUROC of every score per degradation family, and a reading."""
    aurocs, diffs = _read(stats_dir, "profile_auroc"), _read(stats_dir, "profile_vs_mean_nll")
    if aurocs is None:
        return []
    paired = aurocs[aurocs["family"] != "real vs generated"]
    lines = ["## Profile score against mean loss (notebook 07)", "",
             "Paired AUROC on the report split (share of pieces whose clean version scores better than its degraded "
             "version; 0.5 = chance), with bootstrap 95% CIs. `profile_score`'s weights and every feature's direction "
             "were fitted on the other half of the pieces and on the families marked *fit* only.", ""]
    families = list(dict.fromkeys(paired["family"]))
    scores = list(dict.fromkeys(paired["score"]))
    header = "| score | " + " | ".join(f + (" *fit*" if paired.loc[paired["family"] == f, "fit_family"].any() else "")
                                      for f in families) + " |"
    lines += [header, "|" + "---|" * (len(families) + 1)]
    for score in scores:
        cells = []
        for f in families:
            row = paired[(paired["family"] == f) & (paired["score"] == score)]
            cells.append("" if row.empty else f"{row['auroc'].iloc[0]:.2f} [{row['ci_low'].iloc[0]:.2f}, "
                                               f"{row['ci_high'].iloc[0]:.2f}]")
        lines.append(f"| {score} | " + " | ".join(cells) + " |")
    pairs = paired.groupby("family")["pairs"].first()
    lines += ["", "Pairs per family (report split): " + ", ".join(f"{f} {int(n)}" for f, n in pairs.items()) + ".", ""]
    generated = aurocs[aurocs["family"] == "real vs generated"]
    if not generated.empty:
        lines += ["Real (clean) against the model's own samples, unpaired AUROC of real scoring better [95% CI], "
                  "and Spearman of each score with top-k among the samples:", "",
                  "| score | AUROC real > generated | Spearman with top-k |", "|---|---|---|"]
        lines += [f"| {r.score} | {r.auroc:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}] | {_fmt(r.topk_spearman)} |"
                  for r in generated.itertuples()]
        lines.append("")
    if diffs is not None and len(diffs):
        lines += ["**Reading.**"] + [f"- {sentence}" for sentence in profile_reading(diffs)] + [""]
    return lines


def profile_reading(diffs: pd.DataFrame) -> list[str]:
    """One sentence per family: does profile_score beat mean loss there (CI of the AUROC difference)?"""
    out = []
    for r in diffs.itertuples():
        if not np.isfinite(r.difference):
            continue
        if r.pairs < 5:
            out.append(f"{r.family}: too few pairs ({r.pairs}) to tell.")
            continue
        if r.ci_low > 0:
            verdict = "beats mean loss"
        elif r.ci_high < 0:
            verdict = "does worse than mean loss"
        else:
            verdict = "is not distinguishable from mean loss"
        out.append(f"{r.family}: profile_score {verdict} (AUROC difference {r.difference:+.2f}, 95% CI "
                   f"[{r.ci_low:+.2f}, {r.ci_high:+.2f}], {r.pairs} pairs).")
    return out



def _ci_cell(value: float, low: float, high: float, signed: bool = False) -> str:
    f = "{:+.2f}" if signed else "{:.2f}"
    return f"{f.format(value)} [{f.format(low)}, {f.format(high)}]" if np.isfinite(value) else ""


def validation_section(stats_dir: Path) -> list[str]:
    """The profile score's validation (``lossprofile validate``, shown by notebook 07): leave-one-family-out per
    modality, the metric properties and the system ladder, with sentences generated from the numbers."""
    lofo = _read(stats_dir, "validation_lofo")
    if lofo is None:
        return []
    lofo = lofo.assign(strength=lofo["strength"].astype(str))
    lines = ["## Should you trust the profile score? Leave-one-family-out, properties, ladder", "",
             "Held-out ASAP performances (not in `data/asap`), rendered with piano for the audio model and read as "
             "MIDI by the symbolic one, each clean and degraded in every family at three strengths. For each held-out "
             "family, `profile_score`'s weights and every feature's direction were fitted on the *other* families and "
             "the other half of the pieces (2-fold cross-fitting: every piece reported once). In these tables "
             "`profile_score` is that fitted combination of all ten features; `rank_average` is the "
             "weight-free score (signed percentiles, averaged). The score `profile_scores` ships is the candidate with "
             "the highest mean (named in each reading), refitted on every family. Cells: paired AUROC (clean ranked better; 0.5 = "
             "chance) [95% CI over pieces], pooled over strengths.", ""]
    for modality, part in lofo.groupby("modality", sort=False):
        pooled = part[part["strength"] == "all"]
        families = list(dict.fromkeys(pooled["held_out_family"]))
        means = pooled.groupby("score")["auroc"].mean().sort_values(ascending=False)
        lines += [f"### {modality}: {int(pooled['pieces'].max())} pieces, {int(part[part['strength'] != 'all']['pairs'].min())}"
                  "+ pairs per family and strength", "",
                  "| score | " + " | ".join(families) + " | mean |", "|" + "---|" * (len(families) + 2)]
        for score in means.index:
            rows = pooled[pooled["score"] == score].set_index("held_out_family")
            lines.append(f"| {score} | " + " | ".join(_ci_cell(*rows.loc[f, ["auroc", "ci_low", "ci_high"]]) for f in families)
                         + f" | {means[score]:.2f} |")
        lines += ["", "Difference from mean NLL's AUROC [paired 95% CI]:", "",
                  "| score | " + " | ".join(families) + " |", "|" + "---|" * (len(families) + 1)]
        for score in ("profile_score", "rank_average"):
            rows = pooled[pooled["score"] == score].set_index("held_out_family")
            lines.append(f"| {score} | " + " | ".join(
                _ci_cell(*rows.loc[f, ["minus_mean_nll", "diff_ci_low", "diff_ci_high"]], signed=True) for f in families) + " |")
        lines += ["", "**Reading.**"] + [f"- {s}" for s in lofo_reading(pooled)] + [""]
    lines += typicality_section(stats_dir)
    props = _read(stats_dir, "validation_properties")
    if props is not None:
        lines += ["### Metric properties", "",
                  "Spearman across pieces between each condition and the one it is compared with [95% CI], and the mean "
                  "absolute change in units of the between-piece standard deviation (0 = unchanged). `raw_*`: scored "
                  "without the loudness normalisation `profile_scores` now applies.", ""]
        for modality, part in props.groupby("modality", sort=False):
            lines += [f"{modality}:", "", "| condition | vs | pieces | profile_score rho | shift (SD) | mean_nll rho | shift (SD) |",
                      "|---|---|---|---|---|---|---|"]
            for condition, rows in part.groupby("condition", sort=False):
                rows = rows.set_index("score")
                cells = []
                for score in ("profile_score", "mean_nll"):
                    r = rows.loc[score]
                    cells += [_ci_cell(r["spearman"], r["ci_low"], r["ci_high"]), _fmt(r["shift_sd"])]
                lines.append(f"| {condition} | {rows['compared_with'].iloc[0]} | {int(rows['pieces'].iloc[0])} | "
                             + " | ".join(cells) + " |")
            lines.append("")
        typical = sorted(c for c in props["score"].unique() if c.startswith("typicality_"))
        extra = props[props["score"].isin([*EXTRA_FEATURES, *typical])]
        if len(extra):
            shown = props[props["score"].isin(["peak", "assimilation", "mean_nll", *EXTRA_FEATURES, *typical])]
            wide = shown.pivot_table(index=["modality", "condition"], columns="score", values="spearman",
                                     sort=False).reset_index()
            wide.columns = [str(c) for c in wide.columns]
            wide = wide[[c for c in wide.columns if c in ("modality", "condition", "peak", "assimilation", "mean_nll")]
                        + [c for c in [*EXTRA_FEATURES, *typical] if c in wide.columns]]
            lines += ["Scores reported alone (per-codebook features, context gain, text alignment, the cross-model score, "
                      "the typicality detectors) beside the whole-model ones (Spearman with the compared condition; n/a where an "
                      "modality has no such score):", "", markdown_table(wide), ""]
    hearing = _read(stats_dir, "validation_hearing")
    if hearing is not None:
        lines += ["### The cards' wrong-note measure on every ASAP performance", "",
                  "Half the notes moved 1–5 semitones; share of performances where mean NLL ranks the clean version "
                  "better [95% CI]. *Tuned on*: the 40 in `data/asap`, which the embedded recipes were measured on while "
                  "they were tuned; *never seen*: the other performances in `../shared/data/asap`.", "",
                  "| modality | performances | n | AUROC [95% CI] |", "|---|---|---|---|"]
        lines += [f"| {r.modality} | {r.subset} | {r.pieces} | {_ci_cell(r.auroc, r.ci_low, r.ci_high)} |"
                  for r in hearing.itertuples()]
        lines.append("")
    ladder = _read(stats_dir, "validation_ladder")
    if ladder is not None:
        lines += ["### System ladder", "",
                  "Each family's clean version and strengths as systems of known order; Spearman of the score (higher = "
                  "better) with that order over system means and over clips [95% CI over pieces]; weights fitted on "
                  "every family (this asks whether a score *orders* systems; generalisation is the table above). The model "
                  "columns' systems are the real pieces' clean excerpts, then the model's own unconditional samples at "
                  "rising temperature (24 per temperature) or, for the weaker model, the finished model's samples and "
                  "those of the same recipe stopped early (both at T = 1.0); their CIs resample clips within each "
                  "system.", ""]
        for modality, part in ladder.groupby("modality", sort=False):
            families = list(dict.fromkeys(part["family"]))
            lines += [f"{modality}:", "", "| score | " + " | ".join(families) + " |", "|" + "---|" * (len(families) + 1)]
            present = set(part["score"])
            typical = sorted(c for c in present if c.startswith("typicality_"))
            for score in ("profile_score", "mean_nll", *(c for c in PASS_FEATURES if c in present), *typical):
                rows = part[part["score"] == score].set_index("family")
                lines.append(f"| {score} (systems / clips) | " + " | ".join(
                    f"{rows.loc[f, 'system_spearman']:+.2f} / {_ci_cell(*rows.loc[f, ['clip_spearman', 'clip_ci_low', 'clip_ci_high']], signed=True)}"
                    if f in rows.index else "—" for f in families) + " |")
            lines.append("")
    return lines


def typicality_section(stats_dir: Path) -> list[str]:
    """The clip-level (unpaired) AUROC of every score and the typicality scores' ablation, per modality."""
    lines = []
    clip = _read(stats_dir, "validation_clip_level")
    if clip is not None:
        lines += ["### One clip at a time: clip-level AUROC", "",
                  "Every clean clip against every damaged clip of a family (unpaired: no clean twin to compare with, "
                  "what a user judging one clip faces); fitted scores out of fold as above; `all`: the mean over families. "
                  "The `typicality_*` scores are fitted on clean reference clips only (no validation piece, no "
                  "damage). Cells: AUROC [95% CI over pieces].", ""]
        for modality, part in clip.groupby("modality", sort=False):
            families = list(dict.fromkeys(part["held_out_family"]))
            families = [f for f in families if f != "all"] + ["all"]
            order = part[part["held_out_family"] == "all"].sort_values("auroc", ascending=False)["score"]
            lines += [f"{modality}:", "", "| score | " + " | ".join(families) + " |",
                      "|" + "---|" * (len(families) + 1)]
            for score in order:
                rows = part[part["score"] == score].set_index("held_out_family")
                lines.append(f"| {score} | " + " | ".join(
                    f"{rows.loc[f, 'auroc']:.2f}" if f != "all" else _ci_cell(*rows.loc[f, ["auroc", "ci_low", "ci_high"]])
                    for f in families) + " |")
            lines.append("")
    ablation = _read(stats_dir, "validation_ablation")
    if ablation is not None:
        lines += ["### What carries the typicality score", "",
                  "Mean paired AUROC over families of the Mahalanobis typicality score with every statistic, with each "
                  "group of statistics alone or left out, and with smaller references (whole pieces drawn five times; "
                  "mean [lowest, highest]).", "", "| modality | variant | statistics | reference clips | mean AUROC |",
                  "|---|---|---|---|---|"]
        for _, r in ablation.iterrows():
            spread = (f" [{r['mean_low']:.2f}, {r['mean_high']:.2f}]" if "mean_low" in r and np.isfinite(r["mean_low"])
                      else "")
            lines.append(f"| {r['modality']} | {r['variant']} | {r['statistics']} | {r['reference_clips']} | "
                         f"{r['mean over families']:.2f}{spread} |")
        lines.append("")
    audible = _read(stats_dir, "validation_audibility")
    if audible is not None:
        lines += ["### Can the model hear each family at all?", "",
                  "Per family, every curve statistic's paired AUROC taken two-sided (max(a, 1 − a): 0.5 = clean and "
                  "damaged versions overlap, 1 = they always differ, either way): the best statistic (chosen on these "
                  "pairs, so optimistic), the median over statistics, and how many reach 0.75.", "",
                  "| modality | family | best statistic | best | median | statistics ≥ 0.75 |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r.modality} | {r.family} | {r.best_statistic} | {r.best_two_sided_auroc:.2f} | "
                  f"{r.median_two_sided_auroc:.2f} | {r.statistics_at_0_75} of {r.statistics} |"
                  for r in audible.itertuples()]
        lines.append("")
    return lines


def lofo_reading(pooled: pd.DataFrame) -> list[str]:
    """Sentences from one modality's pooled leave-one-family-out rows: where each score beats mean NLL."""
    out = []
    for score in ("profile_score", "rank_average"):
        rows = pooled[pooled["score"] == score]
        better = sorted(rows.loc[rows["diff_ci_low"] > 0, "held_out_family"])
        worse = sorted(rows.loc[rows["diff_ci_high"] < 0, "held_out_family"])
        same = sorted(set(rows["held_out_family"]) - set(better) - set(worse))
        parts = [f"beats mean NLL on {', '.join(better)}" if better else "beats mean NLL on no family",
                 f"does worse on {', '.join(worse)}" if worse else "",
                 f"is not distinguishable from it on {', '.join(same)}" if same else ""]
        out.append(f"`{score}` " + "; ".join(p for p in parts if p) + " (95% CIs of the paired AUROC difference).")
    means = pooled.groupby("score")["auroc"].mean()
    candidates = means.drop([s for s in EXTRA_FEATURES if s in means.index])  # reported alone, never shipped
    best = candidates.idxmax()
    others = ", ".join(f"`{k}` {means.get(k, np.nan):.2f}" for k in ("profile_score", "rank_average", "mean_nll")
                       if k != best)
    out.append(f"Highest mean AUROC over held-out families: `{best}` ({means[best]:.2f}; it ships as this "
               f"modality's profile_score); {others}.")
    alone = means.drop(candidates.index).sort_values(ascending=False)
    if len(alone):
        out.append("Reported alone (never combined nor shipped), mean AUROC: "
                   + ", ".join(f"`{k}` {v:.2f}" for k, v in alone.items()) + ".")
    return out


def modalities_section(stats_dir: Path) -> list[str]:
    """Audio vs symbolic (notebooks 01-04 and 06 with several models): does Context Amnesia appear without a codec?"""
    trend = _read(stats_dir, "length_stats_by_model")
    if trend is None or trend["model"].nunique() < 2:
        return []
    costs, regions = _read(stats_dir, "noise_window_costs"), _read(stats_dir, "region_summary_by_model")
    conditions, shuffles = _read(stats_dir, "loss_by_condition_by_model"), _read(stats_dir, "shuffle_stats_by_model")
    score = _read(stats_dir, "symbolic_summary_by_model")
    profile = _read(stats_dir, "profile_auroc_by_model")
    lines = ["## Audio vs symbolic: does Context Amnesia appear without a codec?", "",
             "Notebooks 01-04 and 06 run every model side by side (`models`; by default the audio model and the embedded "
             "symbolic one, `tiny-symbolic`: a GPT-2 over REMI tokens of the same arrangements). The symbolic model reads "
             "the MIDI the audio pieces are rendered from (TrainingSet: the held-out arrangements; OOD: the ASAP files; "
             "Generated: its own samples) and every perturbation is made in the score: the noise window becomes random "
             "notes at the excerpt's own density, shuffles reorder notes, at the same seconds. Both are put on the same "
             "20 ms frames; a symbolic frame's loss is the *sum* of its tokens' NLL, so levels are compared within a "
             "model, and directions, signs and ratios across models.", ""]
    lines += modalities_reading(trend, costs, regions)
    lines += ["", "### Injection length vs mean delta, per model (RQ1)", "",
              "| model | data kind | n | Pearson r (p) | Spearman rho (p) | slope per frame [95% CI] |", "|---|---|---|---|---|---|"]
    for row in trend.itertuples():
        lines.append(f"| {row.model} | {KIND_LABELS.get(row.dataset, row.dataset)} | {row.n} | {_fmt(row.pearson_r)} "
                     f"({_p(row.pearson_p)}) | {_fmt(row.spearman_rho)} ({_p(row.spearman_p)}) | {row.slope:.2e} "
                     f"[{row.slope_ci_low:.2e}, {row.slope_ci_high:.2e}] |")
    lines.append("")
    if costs is not None:
        lines += ["### Inside the noise window: the model against a counting learner", "",
                  "Mean over pieces of what each model pays per code or token inside a window after 5 s "
                  "(`window_nll`; the audio model's after its 5-frame onset Peak), what the clean excerpt costs there, "
                  "and what a learner that only counts the window's own codes or tokens pays (`counting_nll`, "
                  "in-context unigram).", "", markdown_table(costs), ""]
    if conditions is not None:
        lines += ["### Clean music, music + noise, pure noise, per model (mean loss per frame)", "",
                  markdown_table(conditions), ""]
    if regions is not None:
        lines += ["### Peak, Assimilation, Recovery, per model (mean ± std across curves)", "",
                  "| model | region | mean ± std | curves |", "|---|---|---|---|"]
        for row in regions.itertuples():
            lines.append(f"| {row.model} | {row.region.capitalize()} | {_fmt(row.mean)} ± {_fmt(row.std)} | {row.count} |")
        lines.append("")
    if shuffles is not None:
        wide = shuffles.pivot_table(index="segment_frames", columns="model", values="mean").reset_index()
        wide.columns = [str(c) for c in wide.columns]
        lines += ["### Order shuffling, per model (mean delta per frame by segment length)", "", markdown_table(wide), ""]
    if score is not None:
        strongest = score[score["fraction"] == score.groupby("perturbation")["fraction"].transform("max")]
        wide = strongest.pivot_table(index=["perturbation", "dataset"], columns="model", values="mean_delta").reset_index()
        wide.columns = [str(c) for c in wide.columns]
        lines += ["### Score perturbations at their strongest setting, per model (mean delta per frame)", "",
                  "The same MIDI files, heard rendered by the audio model and read as tokens by the symbolic one "
                  "(pitch shifts: mean over the semitone settings). Deleting notes removes tokens, so a symbolic frame's "
                  "summed loss falls with them.", "", markdown_table(wide), ""]
    if profile is not None and profile["model"].nunique() > 1:
        paired = profile[(profile["family"] != "real vs generated") & profile["score"].isin(["profile_score", "mean_nll"])]
        wide = paired.pivot_table(index=["model", "family"], columns="score", values="auroc").reset_index()
        wide.columns = [str(c) for c in wide.columns]
        lines += ["### The profile score per modality (notebook 07's report split: few pairs, see the validation)", "",
                  "Paired AUROC (clean above degraded); each model fitted on its own noise-like families (audio: noise "
                  "segments and shuffles; symbolic: random-note windows and note shuffles).", "", markdown_table(wide), ""]
    return lines


def modalities_reading(trend: pd.DataFrame, costs: pd.DataFrame | None, regions: pd.DataFrame | None) -> list[str]:
    """Per model: the direction of RQ1, the sign of Assimilation, and the noise window against the counting learner;
    then whether Context Amnesia (longer noise lowering the loss, the loss settling below the clean one) appears."""
    lines, amnesia = [], {}
    overall = trend[trend["dataset"] == "all"].set_index("model")
    for model, row in overall.iterrows():
        lowers = row.pearson_r < 0 and row.pearson_p < 0.05
        assimilation = None
        if regions is not None and ((regions["model"] == model) & (regions["region"] == "assimilation")).any():
            assimilation = float(regions.loc[(regions["model"] == model) & (regions["region"] == "assimilation"), "mean"].iloc[0])
        amnesia[model] = lowers and assimilation is not None and assimilation < 0
        text = (f"- **{model}**: longer noise {'lowers' if row.pearson_r < 0 else 'raises'} the mean loss "
                f"(Pearson r = {row.pearson_r:+.2f}, p = {_p(row.pearson_p)}, {row.n} points)")
        if assimilation is not None:
            text += f"; Assimilation {assimilation:+.2f} ({'below' if assimilation < 0 else 'above'} the clean loss)"
        lines.append(text + ".")
        if costs is not None:
            for c in costs[costs["model"] == model].groupby("window", sort=False).tail(1).itertuples():
                lines.append(f"  - {c.window} ({c.length_seconds:g} s): the model pays {c.window_nll:.2f} {c.unit} inside "
                             f"the window against {c.clean_window_nll:.2f} for the clean music there and "
                             f"{c.counting_nll:.2f} for a counting learner.")
    with_effect = [m for m, yes in amnesia.items() if yes]
    without = [m for m, yes in amnesia.items() if not yes]
    if with_effect and without:
        lines.append(f"- Context Amnesia (longer noise lowering the mean loss, the loss settling below the clean one) "
                     f"appears for {', '.join(with_effect)} and not for {', '.join(without)}. Of the models here only the "
                     "audio ones read through a codec; one pair of models cannot separate the codec from everything "
                     "else that differs between them (representation, size, training data), so this says the effect is "
                     "not a property of every music LM, not that the codec alone makes it.")
    elif with_effect:
        lines.append(f"- Context Amnesia appears for every model here ({', '.join(with_effect)}).")
    else:
        lines.append(f"- Context Amnesia appears for none of the models here ({', '.join(without)}).")
    return lines
