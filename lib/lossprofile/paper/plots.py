"""Figures, each drawn from a tidy results table and saved as PNG and PDF."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..analysis.regions import REGIONS, detect_regions
from ..data.datasets import KIND_LABELS

REGION_COLORS = {"peak": "tab:red", "assimilation": "tab:blue", "recovery": "tab:green"}
DATASET_COLORS = {"training": "tab:blue", "ood": "tab:orange", "generated": "tab:green"}


def save_figure(fig, name: str, figures_dir="figures") -> list[Path]:
    """Save ``fig`` as ``<figures_dir>/<name>.png`` and ``.pdf``; returns both paths."""
    folder = Path(figures_dir)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.png", folder / f"{name}.pdf"]
    fig.savefig(paths[0], dpi=150, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight", metadata={"CreationDate": None, "ModDate": None})
    return paths


def curve(results: pd.DataFrame, piece: str, **where) -> pd.DataFrame:
    """Rows of one piece and perturbation, sorted by frame."""
    mask = results["piece"] == piece
    for key, value in where.items():
        mask &= results[key] == value
    out = results[mask].sort_values("frame")
    if out.empty:
        raise ValueError(f"no rows for piece {piece!r} with {where}")
    return out


def shade_regions(ax, delta: np.ndarray, onset: int, length: int, alpha: float = 0.15) -> None:
    found = detect_regions(delta, onset, length)
    for name, (start, stop) in found.spans().items():
        ax.axvspan(start, stop, color=REGION_COLORS[name], alpha=alpha, lw=0, label=name.capitalize())


def fig1_piece_curve(results: pd.DataFrame, piece: str, length_frames: int = 100, *, frames=(200, 750)):
    """Fig. 1: one piece's per-frame delta with the noise window and both mean losses."""
    c = curve(results, piece, length_frames=length_frames, perturbation="noise")
    c = c[(c["frame"] >= frames[0]) & (c["frame"] < frames[1])]
    onset = int(c["onset_frame"].iloc[0])
    fig, ax = plt.subplots(figsize=(9, 3.2))
    ax.axvspan(onset, onset + length_frames, color="0.85", label=f"noise ({length_frames} frames)")
    ax.plot(c["frame"], c["delta"], lw=0.9, color="k")
    ax.axhline(0, color="0.4", lw=0.6, ls="--")
    full = curve(results, piece, length_frames=length_frames, perturbation="noise")
    ax.set_title(f"{piece}: mean loss {full['nll_clean'].mean():.2f} (clean) -> "
                 f"{full['nll_perturbed'].mean():.2f} (noise)", fontsize=10)
    ax.set_xlabel("frame (20 ms)")
    ax.set_ylabel("delta NLL (nats)")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def _models(table: pd.DataFrame) -> list:
    return list(dict.fromkeys(table["model"])) if "model" in table else [None]


def fig2_length_trend(summary: pd.DataFrame, clean_by_kind: pd.DataFrame, title: str = ""):
    """Fig. 2: mean delta vs injection length per data kind (± std across pieces), one panel per model,
    each data kind labelled with its mean clean loss."""
    models = _models(summary)
    # models side by side may measure their frames in different units (codes, token sums): own y scales
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4), squeeze=False)
    for ax, model in zip(axes[0], models):
        part_m = summary if model is None else summary[summary["model"] == model]
        clean_m = clean_by_kind if "model" not in clean_by_kind or model is None else \
            clean_by_kind[clean_by_kind["model"] == model]
        for dataset, part in part_m.groupby("dataset"):
            agg = part.groupby("length_frames")["mean_delta"].agg(["mean", "std"]).reset_index()
            clean = clean_m.set_index("dataset").loc[dataset]
            label = f"{KIND_LABELS.get(dataset, dataset)} (clean {clean['mean']:.2f} ± {clean['std']:.2f})"
            ax.errorbar(agg["length_frames"], agg["mean"], yerr=agg["std"], marker="o", capsize=3, label=label,
                        color=DATASET_COLORS.get(dataset))
        ax.axhline(0, color="0.4", lw=0.6, ls="--")
        ax.set_xlabel("noise length (frames)")
        ax.set_title(title if len(models) == 1 else str(model), fontsize=10)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("mean delta NLL per frame (nats)")
    fig.tight_layout()
    return fig


def fig3_token_dynamics(noise_results: pd.DataFrame, pure_results: pd.DataFrame, piece: str,
                        *, length_frames: int = 100):
    """Fig. 3: per-frame loss of clean music, pure noise and music+noise, regions shaded; one row per model
    when the tables hold several (each model's own y scale)."""
    models = _models(noise_results)
    fig, axes = plt.subplots(len(models), 1, figsize=(9, 3.6 * len(models)), squeeze=False)
    for ax, model in zip(axes[:, 0], models):
        where = {} if model is None else {"model": model}
        _token_dynamics(ax, noise_results, pure_results, piece, length_frames, where)
        if len(models) > 1:
            ax.set_title(f"{model}: {piece}", fontsize=10)
    fig.tight_layout()
    return fig


def _token_dynamics(ax, noise_results: pd.DataFrame, pure_results: pd.DataFrame, piece: str, length_frames: int,
                    where: dict) -> None:
    c = curve(noise_results, piece, length_frames=length_frames, perturbation="noise", **where)
    p = curve(pure_results, piece, **where)
    onset = int(c["onset_frame"].iloc[0])
    shade_regions(ax, c["delta"].to_numpy(), onset, length_frames)
    ax.plot(c["frame"], c["nll_clean"], lw=0.8, label="clean music", color="k")
    ax.plot(p["frame"], p["nll_perturbed"], lw=0.8, label="pure noise", color="0.6")
    ax.plot(c["frame"], c["nll_perturbed"], lw=0.8, label="music + noise", color="tab:purple")
    ax.set_xlim(onset - 100, min(c["frame"].max(), onset + length_frames + 200))
    ax.set_xlabel("frame (20 ms)")
    ax.set_ylabel("NLL per frame (nats)")
    ax.set_title(piece, fontsize=10)
    # below the axes: inside, it hid the curves after the noise
    ax.legend(fontsize=8, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)


def fig4_regions(region_table: pd.DataFrame):
    """Fig. 4: each region's mean delta across curves as violins per data kind, one panel per model (mean ± std above)."""
    models = _models(region_table)
    fig, axes = plt.subplots(1, len(models), figsize=(7 * len(models), 4), squeeze=False, sharey=True)
    for ax, model in zip(axes[0], models):
        table = region_table if model is None else region_table[region_table["model"] == model]
        datasets = sorted(table["dataset"].unique()) if "dataset" in table else [None]
        width = 0.8 / len(datasets)
        for r, region in enumerate(REGIONS):
            for j, dataset in enumerate(datasets):
                rows = table[(table["region"] == region) & ((table["dataset"] == dataset) if dataset else True)]
                values = rows["mean"].dropna().to_numpy()
                if len(values) == 0:
                    continue
                x = r + 1 + (j - (len(datasets) - 1) / 2) * width
                if len(values) > 1:
                    parts = ax.violinplot(values, positions=[x], widths=width * 0.9, showmeans=True)
                    color = DATASET_COLORS.get(dataset, REGION_COLORS[region])
                    for body in parts["bodies"]:
                        body.set_facecolor(color)
                        body.set_alpha(0.5)
                    for line in ("cmeans", "cmins", "cmaxes", "cbars"):  # mean and extrema in the dataset's colour
                        parts[line].set_color(color)
                else:
                    ax.scatter([x], values, s=10, color=DATASET_COLORS.get(dataset, REGION_COLORS[region]))
            values = table.loc[table["region"] == region, "mean"].dropna()
            if len(values):
                ax.text(r + 1, 1.02, f"{values.mean():.2f} ± {values.std():.2f}", ha="center", va="bottom",
                        fontsize=8, transform=ax.get_xaxis_transform())
        ax.set_xticks(range(1, len(REGIONS) + 1), [r.capitalize() for r in REGIONS])
        ax.axhline(0, color="0.4", lw=0.6, ls="--")
        ax.set_title(("" if model is None else f"{model}: ") + "mean delta per curve in each region "
                     "(above: mean ± sd over all curves)", fontsize=10, pad=18)
        handles = [plt.Line2D([], [], color=DATASET_COLORS.get(k, "0.5"), lw=6, alpha=0.5) for k in datasets if k]
        if handles:
            ax.legend(handles, [KIND_LABELS.get(k, k) for k in datasets if k], fontsize=8, loc="lower right")
    axes[0][0].set_ylabel("mean delta NLL in region (nats)")
    fig.tight_layout()
    return fig


def fig5_shuffle(summary: pd.DataFrame, onset: pd.DataFrame):
    """Fig. 5: order shuffling: mean delta and onset response vs segment length per data kind, and, as the
    paper draws it, notched boxes of the absolute loss of the shuffled excerpts (pooled over data kinds)."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    for dataset, part in summary.groupby("dataset"):
        agg = part.groupby("segment_frames")["mean_delta"].agg(["mean", "std"]).reset_index()
        axes[0].errorbar(agg["segment_frames"], agg["mean"], yerr=agg["std"], marker="o", capsize=3,
                         label=KIND_LABELS.get(dataset, dataset), color=DATASET_COLORS.get(dataset))
    for dataset, part in onset.groupby("dataset"):
        agg = part.groupby("segment_frames")["onset_delta"].agg(["mean", "std"]).reset_index()
        axes[1].errorbar(agg["segment_frames"], agg["mean"], yerr=agg["std"], marker="o", capsize=3,
                         label=KIND_LABELS.get(dataset, dataset), color=DATASET_COLORS.get(dataset))
    for ax, ylabel in zip(axes[:2], ("mean delta NLL per frame", "delta over the 5 frames after the onset")):
        ax.set_xscale("log")
        ax.axhline(0, color="0.4", lw=0.6, ls="--")
        ax.set_xlabel("segment length (frames)")
        ax.set_ylabel(ylabel + " (nats)")
        ax.legend(fontsize=8)
    segments = sorted(summary["segment_frames"].dropna().unique())
    boxes = [summary.loc[summary["segment_frames"] == s, "mean_nll_perturbed"].to_numpy() for s in segments]
    clean = summary.groupby(["dataset", "piece"])["mean_nll_clean"].first().to_numpy()
    axes[2].boxplot([clean] + boxes, notch=len(clean) > 3, showfliers=False,
                    tick_labels=["clean"] + [str(int(s)) for s in segments])
    axes[2].set_xlabel("segment length (frames)")
    axes[2].set_ylabel("mean loss of the excerpt (nats)")
    axes[2].tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    return fig


def trend_by_model(summary: pd.DataFrame, x: str, xlabel: str, *, log_x: bool = False):
    """Mean delta (± std across pieces) against ``x``, one line per data kind, one panel per model (own y scales)."""
    models = _models(summary)
    fig, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 3.8), squeeze=False)
    for ax, model in zip(axes[0], models):
        part_m = summary if model is None else summary[summary["model"] == model]
        for dataset, part in part_m.groupby("dataset"):
            agg = part.groupby(x)["mean_delta"].agg(["mean", "std"]).reset_index()
            ax.errorbar(agg[x], agg["mean"], yerr=agg["std"], marker="o", capsize=3, label=KIND_LABELS.get(dataset, dataset),
                        color=DATASET_COLORS.get(dataset))
        if log_x:
            ax.set_xscale("log")
        ax.axhline(0, color="0.4", lw=0.6, ls="--")
        ax.set_xlabel(xlabel)
        ax.set_title("" if model is None else str(model), fontsize=10)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("mean delta NLL per frame (nats)")
    fig.tight_layout()
    return fig


def grouped_trend(summary: pd.DataFrame, x: str, group: str, *, xlabel: str, title: str = ""):
    """Mean delta vs ``x``, one line per value of ``group`` (supplementary figures)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for value, part in summary.groupby(group):
        agg = part.groupby(x)["mean_delta"].agg(["mean", "std"]).reset_index()
        ax.errorbar(agg[x], agg["mean"], yerr=agg["std"], marker="o", capsize=3, label=str(value))
    ax.axhline(0, color="0.4", lw=0.6, ls="--")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("mean delta NLL per frame (nats)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return fig


def explorer_curves(result: dict, onset_frame: int, length_frames: int, *, label: str = "perturbed"):
    """Clean and perturbed per-frame NLL (top) and their difference (bottom) from `experiments.explore`;
    the frames the perturbation changed (``length_frames``: its whole span, twice the window for a block swap)
    are shaded."""
    fig, axes = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
    axes[0].plot(result["nll_clean"], lw=0.8, label="clean", color="k")
    axes[0].plot(result["nll_perturbed"], lw=0.8, label=label, color="tab:purple")
    axes[0].set_ylabel("NLL per frame (nats)")
    axes[0].legend(fontsize=8)
    axes[1].plot(result["delta"], lw=0.8, color="tab:red")
    axes[1].axhline(0, color="0.4", lw=0.6, ls="--")
    axes[1].set_ylabel("delta (nats)")
    axes[1].set_xlabel("frame (20 ms)")
    for ax in axes:
        ax.axvspan(onset_frame, onset_frame + length_frames, color="0.9")
    fig.suptitle(f"{label}, frames {onset_frame}-{onset_frame + length_frames} (shaded); mean loss: clean "
                 f"{result['nll_clean'].mean():.3f}, {label} {result['nll_perturbed'].mean():.3f} nats per code",
                 fontsize=9)
    fig.tight_layout()
    return fig


def _grid(n: int, width: float, height: float, ncols: int = 4, **kwargs):
    """``n`` panels in rows of ``ncols`` (one long row is too small to read); unused panels hidden."""
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, **kwargs)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _model_title(table: pd.DataFrame) -> str:
    return ", ".join(map(str, table["model"].unique())) if "model" in table else ""


def roc_curves(table: pd.DataFrame, directions: dict[str, int], families: list[str],
               *, scores=("profile_score", "mean_nll"), split: str = "report"):
    """ROC of clean (positive) against degraded versions (negative) per family, one line per score."""
    part = table[table["split"] == split]
    fig, axes = _grid(len(families), 3.1, 3.2)
    for ax, family in zip(axes, families):
        degraded = part[part["family"] == family]
        clean = part[(part["family"] == "clean") & part["piece"].isin(degraded["piece"])]  # the same pieces
        for score in scores:
            d = directions.get(score, 1)
            values = np.concatenate([d * clean[score].to_numpy(), d * degraded[score].to_numpy()])
            labels = np.concatenate([np.ones(len(clean)), np.zeros(len(degraded))])
            order = np.argsort(-values, kind="stable")
            tpr = np.concatenate([[0], np.cumsum(labels[order]) / max(1, labels.sum())])
            fpr = np.concatenate([[0], np.cumsum(1 - labels[order]) / max(1, (1 - labels).sum())])
            ax.plot(fpr, tpr, lw=1.2, label=score)
        ax.plot([0, 1], [0, 1], color="0.6", lw=0.6, ls="--")
        ax.set_title(f"{family} ({len(clean)} clean, {len(degraded)} degraded)", fontsize=9)
        ax.set_xlabel("false positive rate", fontsize=8)
        ax.set_ylabel("true positive rate (clean)", fontsize=8)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, ncol=len(scores), loc="lower center", frameon=False)  # covers no curve
    fig.suptitle(f"{_model_title(part)}: clean against degraded versions, {split} split", fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def score_vs_strength(table: pd.DataFrame, directions: dict[str, int], families: list[str],
                      *, scores=("profile_score", "mean_nll"), split: str = "report"):
    """Each score (signed so that higher = better, standardised) against degradation strength, per family."""
    part = table[table["split"] == split]
    fig, axes = _grid(len(families), 3.1, 3.0, sharey=True)
    for ax, family in zip(axes, families):
        degraded = part[part["family"] == family]
        rows = pd.concat([part[(part["family"] == "clean") & part["piece"].isin(degraded["piece"])], degraded])
        for score in scores:
            z = directions.get(score, 1) * (rows[score] - part[score].mean()) / (part[score].std() or 1.0)
            agg = z.groupby(rows["strength"]).agg(["mean", "std"]).reset_index()
            ax.errorbar(agg["strength"], agg["mean"], yerr=agg["std"], marker="o", capsize=2, lw=1, label=score)
        ax.set_title(family, fontsize=9)
        ax.set_xlabel("strength (0 = clean)", fontsize=8)
        ax.set_ylabel("score, higher = better (z)", fontsize=8)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, ncol=len(scores), loc="lower center", frameon=False)
    fig.suptitle(f"{_model_title(part)}: scores against degradation strength, {split} split", fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig



def symbolic_trend(table: pd.DataFrame):
    """Mean delta (perturbed − clean loss) against the fraction of notes touched, per score perturbation; one row
    of panels per model when the table holds several."""
    kinds = sorted(table["perturbation"].unique())
    models = _models(table)
    fig, grid = plt.subplots(len(models), len(kinds), figsize=(3.2 * len(kinds), 3.0 * len(models)), squeeze=False,
                             sharey="row")

    def label_of(kind, dataset, semitones) -> str:
        return KIND_LABELS.get(dataset, dataset) + (f", ±{semitones}" if kind == "shift_pitches" else "")

    # one colour per label in every panel (each panel's own colour cycle gave one colour several meanings)
    labels = list(dict.fromkeys(label_of(k, d, s) for k, d, s in
                                table[["perturbation", "dataset", "semitones"]].itertuples(index=False)))
    colors = {label: f"C{i % 10}" for i, label in enumerate(labels)}
    for axes, model in zip(grid, models):
        for ax, kind in zip(axes, kinds):
            rows = table[(table["perturbation"] == kind) & ((table["model"] == model) if model is not None else True)]
            for (dataset, semitones), part in rows.groupby(["dataset", "semitones"], dropna=False):
                label = label_of(kind, dataset, semitones)
                part = part.sort_values("fraction")
                ax.errorbar(part["fraction"], part["mean_delta"], yerr=part["delta_std"], marker="o", capsize=2,
                            lw=1, label=label, color=colors[label])
            ax.axhline(0, color="0.4", lw=0.6, ls="--")
            ax.set_title(kind if model is None or len(models) == 1 else f"{model}: {kind}", fontsize=9)
            ax.set_xlabel("fraction of notes / duration", fontsize=8)
            ax.legend(fontsize=6)
        axes[0].set_ylabel("mean delta NLL (nats)", fontsize=8)
    fig.tight_layout()
    return fig


def region_rules(ours: pd.DataFrame, authors: pd.DataFrame):
    """Supplement: each region's mean delta by our detector and by the authors' fixed-offset rule, same curves."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, (name, table) in zip(axes, (("ours: crossings of the smoothed curve", ours),
                                        ("authors: fixed offsets from the onset", authors))):
        data = [table.loc[table["region"] == r, "mean"].dropna().to_numpy() for r in REGIONS]
        ax.boxplot(data, tick_labels=[r.capitalize() for r in REGIONS], showfliers=False)
        for i, (values, region) in enumerate(zip(data, REGIONS), start=1):
            jitter = np.random.default_rng(i).uniform(-0.15, 0.15, len(values))
            ax.scatter(i + jitter, values, s=6, alpha=0.5, color=REGION_COLORS[region])
            if len(values):
                ax.text(i, 1.01, f"{values.mean():.2f} ± {values.std():.2f}", ha="center", va="bottom", fontsize=8,
                        transform=ax.get_xaxis_transform())
        ax.axhline(0, color="0.4", lw=0.6, ls="--")
        ax.set_title(name, fontsize=9, pad=14)
    axes[0].set_ylabel("mean delta NLL in region (nats)")
    fig.tight_layout()
    return fig


def lofo_auroc(lofo: pd.DataFrame, scores=("profile_score", "rank_average", "mean_nll")):
    """Leave-one-family-out AUROC (pooled over strengths) with 95% CIs: one panel per modality (the table's
    ``modality`` column), one marker per score and held-out degradation family; 0.5 = chance,
    above = the score ranks the clean version better."""
    pooled = lofo[lofo["strength"].astype(str) == "all"]
    modalities = list(dict.fromkeys(pooled["modality"]))
    fig, axes = plt.subplots(1, len(modalities), figsize=(6.2 * len(modalities), 3.8), squeeze=False)
    for ax, modality in zip(axes[0], modalities):
        part = pooled[pooled["modality"] == modality]
        families = list(dict.fromkeys(part["held_out_family"]))
        for k, score in enumerate(scores):
            rows = part[part["score"] == score].set_index("held_out_family").loc[families]
            x = np.arange(len(families)) + (k - (len(scores) - 1) / 2) * 0.22
            ax.errorbar(x, rows["auroc"], yerr=[rows["auroc"] - rows["ci_low"], rows["ci_high"] - rows["auroc"]],
                        fmt="o", ms=4, capsize=2, lw=1, label=score)
        ax.axhline(0.5, color="0.6", lw=0.8, ls="--")
        ax.set_xticks(np.arange(len(families)), families, rotation=30, ha="right", fontsize=8)
        ax.set_ylim(0, 1.02)
        pairs = int(part["pairs"].min())
        ax.set_title(f"{modality} ({part['pieces'].max()} pieces, ≥{pairs} pairs per family)", fontsize=9)
        ax.set_ylabel("AUROC, clean ranked better\n(held-out family)", fontsize=8)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, ncol=len(scores), loc="lower center", frameon=False)
    fig.suptitle("Leave one degradation family out: fitted on the others and on the other half of the pieces",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig
