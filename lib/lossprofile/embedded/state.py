"""Resumable training: atomic checkpoints and the random generator of each step.

The tiny model's stages (`codec_training`, `lm_training`, `tiny_model`) checkpoint through
these, so an interrupted run continues where it stopped and gives the same weights as an uninterrupted one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..io import atomic_path


def save_state(path: Path, state: dict) -> None:
    """Write ``state`` atomically (an interrupted save never leaves a broken checkpoint)."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_state(path: Path) -> dict | None:
    return torch.load(path, map_location="cpu", weights_only=False) if path.exists() else None


def step_rng(seed: int, stage: int, step: int) -> np.random.Generator:
    """The generator of one training step: resuming at ``step`` draws exactly what an unbroken run draws."""
    return np.random.default_rng([seed, stage, step])
