"""What every column of the tables this package writes means, with its unit: the data dictionary.

``lossprofile score`` and ``lossprofile profile`` write ``columns.csv`` beside their tables (only the
columns present). Losses are natural-log nats; a frame is one step of the model's token grid (20 ms at
MusicGen's 50 Hz). The units of losses come from the model that made the table ([`units_of`][lossprofile.columns.units_of]): for a codec
model "nats per code" (a frame's loss is the mean over its K codes); for a model over MIDI tokens a frame's
NLL (and with it delta and the probe features) is the *sum* over the tokens whose event falls in the 20 ms
frame ("nats per frame (sum over its tokens)") and means over tokens are "nats per token".
"""

from __future__ import annotations

import os
import re

import pandas as pd

from .io import write_csv_atomic

# column (or regular expression) -> (unit, meaning)
COLUMNS: dict[str, tuple[str, str]] = {
    # what produced a row
    "model": ("", "model name (hub id, folder, or 'tiny' / 'tiny-symbolic')"),
    "method": ("", "likelihood: 'exact' (the model's own factorization) or 'as_published' (the paper's script)"),
    "precision": ("", "matmul precision the model ran in (fp32, bf16, fp16; 'auto' resolved for the device)"),
    "prompt": ("", "text prompt the model was conditioned on ('' = unconditional)"),
    "dataset": ("", "data kind or folder label of the piece"),
    "piece": ("", "piece name: the file's path relative to the data folder, without its extension unless two files "
                  "share that stem (built datasets: the manifest's name)"),
    "path": ("", "the piece's file"),
    "excerpt_seconds": ("s", "length of the scored excerpt, from the first sound (audio) or first note (MIDI)"),
    "run_seed": ("", "seed of the run; each piece and perturbation derives its own from it"),
    "loudness_dbfs": ("dBFS", "RMS level each excerpt was brought to before scoring (empty: the level the file has, "
                              "as the replication scores; a score has none)"),
    "seed": ("", "seed of the perturbation or the probes"),
    # per-frame results (lossprofile score)
    "frame": ("frame (20 ms)", "index of the frame in the excerpt"),
    "nll_clean": ("{frame}", "negative log-likelihood of the clean excerpt's codes at this frame"),
    "nll_perturbed": ("{frame}", "the same for the perturbed excerpt"),
    "delta": ("{frame}", "nll_perturbed - nll_clean (the paper's d_t); > 0 = the perturbation costs the model"),
    r"delta_k\d+": ("{frame}", "delta of one codebook alone"),  # each named in dictionary(): k0 coarsest, last finest
    "entropy_clean": ("{token}", "entropy of the model's prediction at this frame, clean excerpt"),
    "entropy_perturbed": ("{token}", "the same, perturbed excerpt"),
    "log_rank_clean": ("log rank", "log of the true code's rank among all codes (0 = top choice), clean"),
    "log_rank_perturbed": ("log rank", "the same, perturbed"),
    "tokens_clean": ("tokens", "symbolic models: tokens whose event falls in this frame, clean score"),
    "tokens_perturbed": ("tokens", "the same, perturbed score"),
    # the perturbation's parameters
    "perturbation": ("", "kind of perturbation (noise, shuffle, band_delete, shift_pitches, ...); for a model over "
                         "MIDI tokens noise = random notes at the window's density, silence = the window emptied, "
                         "shuffle = the window's notes reordered"),
    "changed": ("", "whether the perturbation changed any token; False = the perturbed tokens are the clean ones "
                    "(a codec quantising the window back, random notes drawing the same notes): delta is 0 by "
                    "construction"),
    "onset_frame": ("frame (20 ms)", "first frame of the perturbed window"),
    "length_frames": ("frames (20 ms)", "length of the perturbed window"),
    "color": ("", "noise colour (white, pink, brown, blue, or the authors' Butterworth ones)"),
    "level_dbfs": ("dBFS", "absolute noise level (empty: matched to the excerpt, see match_offset_db)"),
    "match_offset_db": ("dB", "noise level relative to the excerpt's RMS"),
    "segment_frames": ("frames (20 ms)", "segment length of shuffles and block moves"),
    "fraction": ("0-1", "share of the window (or of the notes) the perturbation changes"),
    "band_low_hz": ("Hz", "lower edge of a deleted frequency band"),
    "band_high_hz": ("Hz", "upper edge of a deleted frequency band"),
    "gain": ("linear", "gain of the segments a volume change scales"),
    "segment_min_s": ("s", "shortest segment of a segment-wise perturbation"),
    "segment_max_s": ("s", "longest segment of a segment-wise perturbation"),
    "semitones": ("semitones", "pitch shifts drawn from (score perturbations)"),
    "in_key": ("", "pitch shifts stay in the piece's key (False = wrong notes)"),
    # per-piece summary (summary.csv)
    "mean_nll_clean": ("{frame}", "mean over the excerpt's frames of nll_clean"),
    "mean_nll_perturbed": ("{frame}", "mean over the frames of nll_perturbed"),
    "mean_delta": ("{frame}", "mean over the frames of delta; < 0 = the perturbed excerpt is cheaper (the paper's finding)"),
    "peak_delta": ("{frame}", "mean delta over the Peak region the detector finds (lossprofile.analysis.regions): "
                   "the jump when the perturbation starts"),
    "assimilation_delta": ("{frame}", "mean delta over the Assimilation region (< 0: the perturbation has become "
                           "cheaper than the music, Context Amnesia)"),
    "recovery_delta": ("{frame}", "mean delta over the Recovery region, after the perturbation"),
    # profile scores (lossprofile profile)
    "peak": ("{frame}", "probe features (lossprofile.analysis.profile): mean delta over a noise burst; "
             "higher = the model had confident expectations of this music"),
    "assimilation": ("{frame}", "mean delta while a 1 s probe lasts, after its first 0.1 s; < 0 = the model "
                     "finds the noise cheaper than the music (Context Amnesia)"),
    "recovery_excess": ("{frame}", "mean delta over the 0.5 s after each burst (the music is back)"),
    "recovery_var": ("{frame_squared}", "variance of delta over the same frames"),
    "recovery_time": ("frames (20 ms)", "frames after a burst until the smoothed |delta| stays below 0.25 nats "
                      "(25 = never within the 0.5 s window)"),
    "mean_nll": ("{token}", "mean NLL of the clean excerpt (lower = the model finds it likelier; the "
                 "measure the paper criticises)"),
    "mean_entropy": ("{token}", "mean entropy of the model's predictions over the clean excerpt"),
    "mean_log_rank": ("log rank", "mean log rank of the true codes (lower = they rank higher)"),
    "normalized_surprisal": ("standard deviations", "sum(nll - entropy) / sqrt(sum of surprisal variances) "
                             "(Fast-DetectGPT); 0 = as surprising as the model expects, > 0 = more"),
    "nll_std": ("{token}", "standard deviation of the clean curve across frames"),
    "peak_(coarse|fine)": ("{frame}", "peak from one codebook's curves alone: the first (coarsest) or the "
                            "last (finest); NaN for a model with one code stream"),
    "assimilation_(coarse|fine)": ("{frame}", "assimilation from the coarsest or the finest codebook alone"),
    "mean_nll_(coarse|fine)": ("{token}", "mean NLL of the clean excerpt's coarsest or finest codebook"),
    "context_gain": ("{token}", "windowed normalised likelihood: mean over every 3 s window after the first "
                     "of (NLL of the window scored alone - NLL in context); higher = the piece's own past makes it "
                     "more predictable (nats per token for a model over MIDI)"),
    "text_alignment": ("{token}", "mean of log p(code | prompt) - log p(code | null condition); higher = "
                       "the music fits the text; NaN without a prompt or text conditioning"),
    "binoculars": ("ratio", "mean NLL over the mean cross-entropy between a reference model's predictions and the "
                   "model's (Binoculars); below 1 = more predictable than the reference expects; NaN without one"),
    "profile_score": ("see meaning", "the recommended score, higher = better: the validation's winner for the "
                      "model's family, with its provenance in lossprofile/analysis/profile_weights[_midi].json. "
                      "Shipped: the embedded audio model's is peak (nats per code), the symbolic model's -mean_nll "
                      "(nats per token); a fitted combination is in standard deviations, the weight-free one in "
                      "percentile units (-0.5..0.5)"),
    "seconds_scored": ("s", "how much of the clip was scored (less than excerpt_seconds for a short clip that still "
                            "holds every perturbation's window, or the profile's minimum)"),
}


# The units of runs whose run.json predates the model's own (``TokenLM.loss_unit``/``frame_loss_unit``): every such
# run was of a codec model, where a frame's loss is the mean over its codes.
CODEC_UNITS = {"frame": "nats per code", "token": "nats per code"}


def units_of(lm) -> dict[str, str]:
    """The units a model's losses come in: ``frame`` (one frame of a per-frame table) and ``token`` (a mean over
    tokens), from the model itself ([`models.base.TokenLM.frame_loss_unit`][lossprofile.models.base.TokenLM.frame_loss_unit], ``loss_unit``)."""
    return {"frame": lm.frame_loss_unit, "token": lm.loss_unit}


def describe(name: str, units: dict[str, str] | None = None) -> tuple[str, str]:
    """(unit, meaning) of a column; ("", "") for one the dictionary does not know. ``units``: [`units_of`][lossprofile.columns.units_of] the
    model that made the table (default: a codec model's)."""
    units = units or CODEC_UNITS
    entry = COLUMNS.get(name)
    if entry is None:
        entry = next((e for pattern, e in COLUMNS.items() if re.fullmatch(pattern, name)), ("", ""))
    unit, meaning = entry
    squared = units["frame"].replace("nats", "nats²", 1)
    return unit.format(frame=units["frame"], token=units["token"], frame_squared=squared), meaning


def dictionary(columns, units: dict[str, str] | None = None) -> pd.DataFrame:
    """The data dictionary of these columns, in their order: column, unit, meaning (``units``: see [`describe`][lossprofile.columns.describe]).
    Each codebook's ``delta_k`` column is named for its place: k0 the coarsest, the last the finest."""
    columns = list(columns)
    books = sorted(int(c[7:]) for c in columns if re.fullmatch(r"delta_k\d+", c))
    rows = []
    for c in columns:
        unit, meaning = describe(c, units)
        if c in (f"delta_k{k}" for k in books):
            k = int(c[7:])
            place = ("the model's only code stream: equals delta" if len(books) == 1 else
                     "the coarsest" if k == books[0] else "the finest" if k == books[-1] else
                     f"between the coarsest, k{books[0]}, and the finest, k{books[-1]}")
            meaning = f"delta of codebook {k} alone ({place})"
        rows.append((c, unit, meaning))
    return pd.DataFrame(rows, columns=["column", "unit", "meaning"])


def write_dictionary(columns, path: str | os.PathLike, units: dict[str, str] | None = None) -> None:
    write_csv_atomic(dictionary(columns, units), path)


def register(name: str, unit: str, meaning: str) -> None:
    """Add a column to the dictionary (the statistics registry, `lossprofile.analysis.statistics`, registers
    each of its statistics here); an entry the dictionary already has is kept."""
    COLUMNS.setdefault(name, (unit, meaning))
