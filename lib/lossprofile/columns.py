"""What every column of the tables this package writes means, with its unit: the data dictionary.

``lossprofile score`` and ``lossprofile profile`` write ``columns.csv`` beside their tables (only the
columns present). Losses are natural-log nats; a frame is one step of the model's token grid (20 ms at
MusicGen's 50 Hz); "per code" = averaged over the frame's codebooks (K codes per frame). For a model over
MIDI tokens (one token stream, K = 1) "per code" reads "per token", and a frame's NLL (and with it delta and
the probe features) is the *sum* over the tokens whose event falls in the 20 ms frame.
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
    "precision": ("", "matmul precision the model ran in (fp32, bf16, fp16)"),
    "prompt": ("", "text prompt the model was conditioned on ('' = unconditional)"),
    "dataset": ("", "data kind or folder label of the piece"),
    "piece": ("", "piece name: the file's path relative to the data folder, without its extension unless two files "
                  "share that stem (built datasets: the manifest's name)"),
    "path": ("", "the piece's file"),
    "excerpt_seconds": ("s", "length of the scored excerpt, from the first sound (audio) or first note (MIDI)"),
    "run_seed": ("", "seed of the run; each piece and perturbation derives its own from it"),
    "seed": ("", "seed of the perturbation or the probes"),
    # per-frame results (lossprofile score)
    "frame": ("frame (20 ms)", "index of the frame in the excerpt"),
    "nll_clean": ("nats per code", "negative log-likelihood of the clean excerpt's codes at this frame"),
    "nll_perturbed": ("nats per code", "the same for the perturbed excerpt"),
    "delta": ("nats per code", "nll_perturbed - nll_clean (the paper's d_t); > 0 = the perturbation costs the model"),
    r"delta_k\d+": ("nats", "delta of one codebook (k0 = the coarsest)"),
    "entropy_clean": ("nats per code", "entropy of the model's prediction at this frame, clean excerpt"),
    "entropy_perturbed": ("nats per code", "the same, perturbed excerpt"),
    "log_rank_clean": ("log rank", "log of the true code's rank among all codes (0 = top choice), clean"),
    "log_rank_perturbed": ("log rank", "the same, perturbed"),
    "tokens_clean": ("tokens", "symbolic models: tokens whose event falls in this frame, clean score"),
    "tokens_perturbed": ("tokens", "the same, perturbed score"),
    # the perturbation's parameters
    "perturbation": ("", "kind of perturbation (noise, shuffle, band_delete, shift_pitches, ...)"),
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
    "mean_nll_clean": ("nats per code", "mean over the excerpt's frames of nll_clean"),
    "mean_nll_perturbed": ("nats per code", "mean over the frames of nll_perturbed"),
    "mean_delta": ("nats per code", "mean over the frames of delta; < 0 = the perturbed excerpt is cheaper (the paper's finding)"),
    "peak_delta": ("nats per code", "mean delta over the Peak region the detector finds (lossprofile.analysis.regions): "
                   "the jump when the perturbation starts"),
    "assimilation_delta": ("nats per code", "mean delta over the Assimilation region (< 0: the perturbation has become "
                           "cheaper than the music, Context Amnesia)"),
    "recovery_delta": ("nats per code", "mean delta over the Recovery region, after the perturbation"),
    # profile scores (lossprofile profile)
    "peak": ("nats per code", "probe features (lossprofile.analysis.profile): mean delta over a noise burst; "
             "higher = the model had confident expectations of this music"),
    "assimilation": ("nats per code", "mean delta while a 1 s probe lasts, after its first 0.1 s; < 0 = the model "
                     "finds the noise cheaper than the music (Context Amnesia)"),
    "recovery_excess": ("nats per code", "mean delta over the 0.5 s after each burst (the music is back)"),
    "recovery_var": ("nats² per code", "variance of delta over the same frames"),
    "recovery_time": ("frames (20 ms)", "frames after a burst until the smoothed |delta| stays below 0.25 nats "
                      "(25 = never within the 0.5 s window)"),
    "mean_nll": ("nats per code", "mean NLL of the clean excerpt (lower = the model finds it likelier; the "
                 "measure the paper criticises)"),
    "mean_entropy": ("nats per code", "mean entropy of the model's predictions over the clean excerpt"),
    "mean_log_rank": ("log rank", "mean log rank of the true codes (lower = they rank higher)"),
    "normalized_surprisal": ("standard deviations", "sum(nll - entropy) / sqrt(sum of surprisal variances) "
                             "(Fast-DetectGPT); 0 = as surprising as the model expects, > 0 = more"),
    "nll_std": ("nats per code", "standard deviation of the clean curve across frames"),
    "peak_(coarse|fine)": ("nats per code", "peak from one codebook's curves alone: the first (coarsest) or the "
                            "last (finest); NaN for a model with one code stream"),
    "assimilation_(coarse|fine)": ("nats per code", "assimilation from the coarsest or the finest codebook alone"),
    "mean_nll_(coarse|fine)": ("nats per code", "mean NLL of the clean excerpt's coarsest or finest codebook"),
    "context_gain": ("nats per code", "windowed normalised likelihood: mean over every 3 s window after the first "
                     "of (NLL of the window scored alone - NLL in context); higher = the piece's own past makes it "
                     "more predictable (nats per token for a model over MIDI)"),
    "text_alignment": ("nats per code", "mean of log p(code | prompt) - log p(code | null condition); higher = "
                       "the music fits the text; NaN without a prompt or text conditioning"),
    "binoculars": ("ratio", "mean NLL over the mean cross-entropy between a reference model's predictions and the "
                   "model's (Binoculars); below 1 = more predictable than the reference expects; NaN without one"),
    "profile_score": ("see meaning", "the recommended score, higher = better: the validation's winner for the "
                      "model's family, with its provenance in lossprofile/analysis/profile_weights[_midi].json. "
                      "Shipped: the embedded audio model's is peak (nats per code), the symbolic model's -mean_nll "
                      "(nats per token); a fitted combination is in standard deviations, the weight-free one in "
                      "percentile units (-0.5..0.5)"),
    "seconds_scored": ("s", "how much of the clip was scored (less than excerpt_seconds for a short clip)"),
}


def describe(name: str) -> tuple[str, str]:
    """(unit, meaning) of a column; ("", "") for one the dictionary does not know."""
    if name in COLUMNS:
        return COLUMNS[name]
    for pattern, entry in COLUMNS.items():
        if re.fullmatch(pattern, name):
            return entry
    return "", ""


def dictionary(columns) -> pd.DataFrame:
    """The data dictionary of these columns, in their order: column, unit, meaning."""
    return pd.DataFrame([(c, *describe(c)) for c in columns], columns=["column", "unit", "meaning"])


def write_dictionary(columns, path: str | os.PathLike) -> None:
    write_csv_atomic(dictionary(columns), path)


def register(name: str, unit: str, meaning: str) -> None:
    """Add a column to the dictionary (the statistics registry, :mod:`lossprofile.analysis.statistics`, registers
    each of its statistics here); an entry the dictionary already has is kept."""
    COLUMNS.setdefault(name, (unit, meaning))
