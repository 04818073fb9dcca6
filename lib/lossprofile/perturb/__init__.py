"""Perturbations: of the waveform ([`waveform`][lossprofile.perturb.waveform], kinds as one table), of the score before rendering
([`score`][lossprofile.perturb.score]), and named sets of both with the paper's and the authors' settings ([`presets`][lossprofile.perturb.presets])."""

from .presets import AUTHORS_NOISE_DBFS, PRESETS, preset, presets_text
from .score import SCORE_KINDS, ScorePerturbation
from .waveform import (KIND_TABLE, KINDS, PAPER_LENGTHS, PAPER_SEGMENTS, Kind, Perturbation, max_length_frames,
                       noise_at, noise_sweep, target_level_dbfs, window_samples)

__all__ = ["AUTHORS_NOISE_DBFS", "KINDS", "KIND_TABLE", "Kind", "PAPER_LENGTHS", "PAPER_SEGMENTS", "PRESETS",
           "SCORE_KINDS", "Perturbation", "ScorePerturbation", "max_length_frames", "noise_at", "noise_sweep", "preset",
           "presets_text", "target_level_dbfs", "window_samples"]
