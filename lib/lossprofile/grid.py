"""The time grid shared by codecs and perturbations: samples per frame, exact for a fractional frame rate.

A codec's frame rate need not be a whole number (DAC at 44.1 kHz with a hop of 512 samples runs at
44100 / 512 = 86.1328125 frames/s), but its hop is always a whole number of samples. Everything that turns
frames into samples goes through `samples_per_frame`, so a window of frames is the same samples in the
perturbation and in the codec. No torch here: the perturbations import it.
"""

from __future__ import annotations

import math


def samples_per_frame(sample_rate: float, frame_rate: float) -> int:
    """Waveform samples per frame, exact: ``sample_rate / frame_rate`` where that is a whole number (to 1e-6 of a
    sample, float rounding of a rate such as 44100 / 512); a grid without a whole number of samples per frame
    is refused."""
    hop = sample_rate / frame_rate
    if hop < 1 or not math.isclose(hop, round(hop), rel_tol=0, abs_tol=1e-6):
        raise ValueError(f"sample_rate {sample_rate} is not a whole number of samples per frame at {frame_rate} Hz")
    return int(round(hop))
