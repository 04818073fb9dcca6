"""The profile score's probes: where and how long the perturbations are that read a clip's loss curve
([`lossprofile.analysis.profile`][]), one fixed design per seed.

An audio model is probed with loudness-matched white-noise bursts ([`ProbeDesign`][lossprofile.perturb.probes.ProbeDesign]'s defaults); a model over
MIDI tokens with windows of random notes in the score (`MIDI_DESIGN`; each modality names its default,
`lossprofile.modality.Modality.probe_design`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import BadInputError
from ..io import derived_seed
from .waveform import Perturbation


@dataclass(frozen=True)
class ProbeDesign:
    """Where and how long the probes are (frames of the model's token grid)."""

    n_bursts: int = 4
    burst_frames: int = 5
    long_frames: int = 50
    recovery_frames: int = 25
    first_onset: int = 100  # context before the first probe
    settle_nats: float = 0.25
    persist_frames: int = 5
    smooth_frames: int = 3

    def onsets(self, num_frames: int, seed: int) -> list[int]:
        """``n_bursts`` onsets spread evenly over the excerpt, each jittered by a seeded draw within its slot."""
        last = num_frames - max(self.burst_frames + self.recovery_frames, self.long_frames) - 1
        if last <= self.first_onset:
            raise BadInputError(f"an excerpt of {num_frames} frames is too short for probes from frame "
                             f"{self.first_onset} with {self.long_frames}-frame windows")
        edges = np.linspace(self.first_onset, last, self.n_bursts + 1)
        rng = np.random.default_rng(seed)
        return [int(rng.integers(int(a), max(int(a) + 1, int(b) - self.burst_frames))) for a, b in
                zip(edges[:-1], edges[1:])]

    def perturbations(self, num_frames: int, seed: int) -> list[Perturbation]:
        """The bursts (one per onset), then the long probe at the middle onset."""
        onsets = self.onsets(num_frames, seed)
        bursts = [Perturbation("noise", o, self.burst_frames, seed=derived_seed(seed, "burst", i))
                  for i, o in enumerate(onsets)]
        middle = onsets[len(onsets) // 2]
        return bursts + [Perturbation("noise", middle, self.long_frames, seed=derived_seed(seed, "long"))]


# For a model over MIDI tokens the probes are windows of random notes (lossprofile.perturb.score.random_notes, at
# the window's own note density) on the same 20 ms frame grid; a 0.1 s window holds about one note, so the
# bursts are 0.5 s and the long probe 2 s. The curves are per-frame NLL sums (nats per frame).
MIDI_DESIGN = ProbeDesign(n_bursts=4, burst_frames=25, long_frames=100, recovery_frames=50, first_onset=100,
                          settle_nats=0.5, persist_frames=10, smooth_frames=10)

