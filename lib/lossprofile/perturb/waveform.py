"""Controlled perturbations of a waveform, placed in frames of the model's token grid.

All functions take mono float ``wav [S]``, ``sample_rate`` and ``frame_rate`` explicitly,
a window given as ``onset_frame`` and ``length_frames``, and return a new array; samples
outside the window are never touched. Randomness comes from an explicit ``seed``.

The paper's operation is [`replace_with_noise`][lossprofile.perturb.waveform.replace_with_noise] (x'_i = e_i inside the window).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from ..audio import AudioError, rms_dbfs
from ..errors import UsageError
from ..grid import samples_per_frame

# The paper's noise lengths (frames at 50 Hz: 0.1–4 s) and Fig. 5's shuffle segment lengths.
PAPER_LENGTHS = (5, 10, 50, 100, 150, 200)
PAPER_SEGMENTS = (1, 2, 5, 10, 35, 50, 70, 100, 150, 200)
# Power spectral density exponent: PSD ∝ f ** exponent.
NOISE_EXPONENTS = {"white": 0.0, "pink": -1.0, "brown": -2.0, "blue": 1.0}
# The authors' colours (YoEv/noiseloss): white noise through a Butterworth filter
# (order, cut-off as a fraction of Nyquist, type).
BUTTERWORTH_COLORS = {"pink_butter": (1, 0.2, "low"), "brown_butter": (2, 0.1, "low"), "blue_butter": (1, 0.5, "high")}
def window_samples(num_samples: int, onset_frame: int, length_frames: int, sample_rate: int,
                   frame_rate: float, *, source: str = "<array>") -> slice:
    """The sample slice of frames ``[onset_frame, onset_frame + length_frames)``; checks bounds."""
    hop = samples_per_frame(sample_rate, frame_rate)  # exact for a fractional frame rate (DAC: 86.13 frames/s)
    if onset_frame < 0 or length_frames < 1:
        raise AudioError(f"{source}: need onset_frame >= 0 and length_frames >= 1, got {onset_frame}, {length_frames}")
    start, stop = onset_frame * hop, (onset_frame + length_frames) * hop
    if stop > num_samples:
        raise AudioError(
            f"{source}: too short for the window: frames {onset_frame}..{onset_frame + length_frames} need "
            f"{stop} samples, audio has {num_samples} ({num_samples / sample_rate:.2f} s)"
        )
    return slice(start, stop)


def colored_noise(num_samples: int, color: str = "white", seed: int = 0) -> np.ndarray:
    """Gaussian noise ``[num_samples]``, unit RMS: PSD ∝ f**exponent for ``white``/``pink``/``brown``/``blue``,
    or white noise through the authors' Butterworth filter for ``pink_butter``/``brown_butter``/``blue_butter``."""
    if color not in NOISE_EXPONENTS and color not in BUTTERWORTH_COLORS:
        raise ValueError(f"unknown noise color {color!r}; expected one of "
                         f"{sorted(NOISE_EXPONENTS) + sorted(BUTTERWORTH_COLORS)}")
    rng = np.random.default_rng(seed)
    white = rng.standard_normal(num_samples)
    if color in BUTTERWORTH_COLORS:
        from scipy.signal import butter, lfilter

        order, cutoff, kind = BUTTERWORTH_COLORS[color]
        b, a = butter(order, cutoff, btype=kind)
        noise = lfilter(b, a, white)
        rms = math.sqrt(float(np.mean(noise**2)))
        return (noise / rms).astype(np.float32) if rms > 0 else noise.astype(np.float32)
    exponent = NOISE_EXPONENTS[color]
    if exponent == 0.0 or num_samples < 4:
        noise = white
    else:
        spectrum = np.fft.rfft(white)
        freqs = np.fft.rfftfreq(num_samples)
        gain = np.zeros_like(freqs)
        gain[1:] = freqs[1:] ** (exponent / 2)  # amplitude ∝ sqrt(PSD); DC removed
        noise = np.fft.irfft(spectrum * gain, n=num_samples)
    rms = math.sqrt(float(np.mean(noise**2)))
    return (noise / rms).astype(np.float32) if rms > 0 else noise.astype(np.float32)


def target_level_dbfs(wav: np.ndarray, level_dbfs: float | None, match_offset_db: float | None) -> float:
    """Absolute level, or the excerpt's own RMS level plus an offset (the paper's 'loudness matched')."""
    if (level_dbfs is None) == (match_offset_db is None):
        raise ValueError("give exactly one of level_dbfs (absolute) or match_offset_db (relative to the excerpt)")
    if level_dbfs is not None:
        return float(level_dbfs)
    level = rms_dbfs(wav)
    if not math.isfinite(level):
        raise AudioError("cannot match the level of silent audio")
    return level + float(match_offset_db)


def noise_at(num_samples: int, color: str, level_dbfs: float, seed: int) -> np.ndarray:
    """``num_samples`` of [`colored_noise`][lossprofile.perturb.waveform.colored_noise] at RMS level ``level_dbfs``."""
    return colored_noise(num_samples, color, seed) * np.float32(10 ** (level_dbfs / 20))


def replace_with_noise(wav: np.ndarray, sample_rate: int, frame_rate: int, onset_frame: int,
                       length_frames: int, *, color: str = "white", level_dbfs: float | None = None,
                       match_offset_db: float | None = 0.0, seed: int = 0) -> np.ndarray:
    """x'_i = e_i inside the window: the paper's noise injection.

    With ``match_offset_db`` (default 0) the noise RMS equals the whole excerpt's RMS
    plus the offset; with ``level_dbfs`` it is absolute. Pass ``match_offset_db=None``
    when giving ``level_dbfs``.
    """
    win = window_samples(wav.size, onset_frame, length_frames, sample_rate, frame_rate)
    level = target_level_dbfs(wav, level_dbfs, match_offset_db)
    out = np.array(wav, dtype=np.float32, copy=True)
    out[win] = noise_at(win.stop - win.start, color, level, seed)
    return out


def add_noise(wav: np.ndarray, sample_rate: int, frame_rate: int, onset_frame: int, length_frames: int,
              *, color: str = "white", level_dbfs: float | None = None, match_offset_db: float | None = 0.0,
              seed: int = 0) -> np.ndarray:
    """x'_i = x_i + e_i inside the window (noise level as in [`replace_with_noise`][lossprofile.perturb.waveform.replace_with_noise])."""
    win = window_samples(wav.size, onset_frame, length_frames, sample_rate, frame_rate)
    level = target_level_dbfs(wav, level_dbfs, match_offset_db)
    out = np.array(wav, dtype=np.float32, copy=True)
    out[win] += noise_at(win.stop - win.start, color, level, seed)
    return out


def silence(wav: np.ndarray, sample_rate: int, frame_rate: int, onset_frame: int, length_frames: int) -> np.ndarray:
    """Zero the window."""
    win = window_samples(wav.size, onset_frame, length_frames, sample_rate, frame_rate)
    out = np.array(wav, dtype=np.float32, copy=True)
    out[win] = 0.0
    return out


def segment_permutation(num_segments: int, seed: int) -> np.ndarray:
    """A random order of ``num_segments`` that moves at least one segment when that is possible."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(num_segments)
    if num_segments > 1 and np.array_equal(order, np.arange(num_segments)):
        order = np.roll(order, 1)
    return order


def shuffle_segments(wav: np.ndarray, sample_rate: int, frame_rate: int, onset_frame: int,
                     length_frames: int, *, segment_frames: int, seed: int = 0) -> np.ndarray:
    """Cut the window into ``segment_frames``-long segments and put them in random order.

    A trailing remainder shorter than one segment stays in place. The result is a
    permutation of the original samples.
    """
    if segment_frames < 1:
        raise ValueError(f"segment_frames must be >= 1, got {segment_frames}")
    win = window_samples(wav.size, onset_frame, length_frames, sample_rate, frame_rate)
    seg = segment_frames * samples_per_frame(sample_rate, frame_rate)
    count = (win.stop - win.start) // seg
    if count < 2:
        raise AudioError(f"a window of {length_frames} frames holds fewer than two {segment_frames}-frame segments")
    out = np.array(wav, dtype=np.float32, copy=True)
    blocks = wav[win.start : win.start + count * seg].reshape(count, seg)
    out[win.start : win.start + count * seg] = blocks[segment_permutation(count, seed)].reshape(-1)
    return out


def block_swap(wav: np.ndarray, sample_rate: int, frame_rate: int, onset_frame: int,
               length_frames: int) -> np.ndarray:
    """Swap the window with the equally long block right after it (the published swap variant)."""
    win = window_samples(wav.size, onset_frame, 2 * length_frames, sample_rate, frame_rate)
    half = (win.stop - win.start) // 2
    out = np.array(wav, dtype=np.float32, copy=True)
    out[win.start : win.start + half] = wav[win.start + half : win.stop]
    out[win.start + half : win.stop] = wav[win.start : win.start + half]
    return out


def covering_segments(window: slice, fraction: float, segment_samples: tuple[int, int], seed: int) -> list[slice]:
    """Non-overlapping random segments inside ``window`` whose lengths add up to ``fraction`` of it.

    Segment lengths are drawn uniformly from ``segment_samples`` (min, max), the last one cut to
    meet the fraction; gaps between segments are random. Used by the authors' segment-wise
    perturbations (band deletion, volume changes, noise segments).
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    lo, hi = segment_samples
    if not 1 <= lo <= hi:
        raise ValueError(f"segment lengths must satisfy 1 <= min <= max, got {segment_samples}")
    rng = np.random.default_rng(seed)
    span = window.stop - window.start
    target = int(round(fraction * span))
    lengths = []
    while sum(lengths) < target:
        lengths.append(min(int(rng.integers(lo, hi + 1)), target - sum(lengths)))
    free = span - sum(lengths)  # shared out as gaps before, between and after the segments
    cuts = np.sort(rng.integers(0, free + 1, size=len(lengths)))  # gap total before each segment
    starts = [window.start + int(c) + sum(lengths[:i]) for i, c in enumerate(cuts)]
    return [slice(a, a + n) for a, n in zip(starts, lengths)]




def _samples(seconds: tuple[float, float], sample_rate: int) -> tuple[int, int]:
    return tuple(max(1, int(round(x * sample_rate))) for x in seconds)


def delete_band(wav: np.ndarray, sample_rate: int, frame_rate: int, onset_frame: int, length_frames: int,
                *, fraction: float, band_hz: tuple[float, float], segment_seconds: tuple[float, float] = (0.01, 0.05),
                seed: int = 0) -> np.ndarray:
    """Zero the FFT bins of ``band_hz`` in random segments covering ``fraction`` of the window (the authors' band deletion)."""
    win = window_samples(wav.size, onset_frame, length_frames, sample_rate, frame_rate)
    low, high = band_hz
    if not 0 <= low < high:
        raise ValueError(f"band must satisfy 0 <= low < high, got {band_hz}")
    out = np.array(wav, dtype=np.float32, copy=True)
    lengths = _samples(segment_seconds, sample_rate)
    for seg in covering_segments(win, fraction, lengths, seed):
        spectrum = np.fft.rfft(out[seg].astype(np.float64))
        freqs = np.fft.rfftfreq(seg.stop - seg.start, 1.0 / sample_rate)
        spectrum[(freqs >= low) & (freqs <= high)] = 0.0
        out[seg] = np.fft.irfft(spectrum, n=seg.stop - seg.start).astype(np.float32)
    return out


def change_volume(wav: np.ndarray, sample_rate: int, frame_rate: int, onset_frame: int, length_frames: int,
                  *, fraction: float, gain: float, segment_seconds: tuple[float, float] = (0.01, 5.0),
                  seed: int = 0) -> np.ndarray:
    """Multiply random segments covering ``fraction`` of the window by ``gain`` (then clip to [-1, 1], as a recording would)."""
    win = window_samples(wav.size, onset_frame, length_frames, sample_rate, frame_rate)
    if gain < 0:
        raise ValueError(f"gain must be >= 0, got {gain}")
    out = np.array(wav, dtype=np.float32, copy=True)
    lengths = _samples(segment_seconds, sample_rate)
    for seg in covering_segments(win, fraction, lengths, seed):
        out[seg] = np.clip(out[seg] * np.float32(gain), -1.0, 1.0)
    return out


def noise_segments(wav: np.ndarray, sample_rate: int, frame_rate: int, onset_frame: int, length_frames: int,
                   *, fraction: float, segment_seconds: tuple[float, float] = (1.0, 5.0), color: str = "white",
                   level_dbfs: float | None = None, match_offset_db: float | None = 0.0, seed: int = 0) -> np.ndarray:
    """Replace random segments covering ``fraction`` of the window with noise (the authors' random-segment noise)."""
    win = window_samples(wav.size, onset_frame, length_frames, sample_rate, frame_rate)
    level = target_level_dbfs(wav, level_dbfs, match_offset_db)
    out = np.array(wav, dtype=np.float32, copy=True)
    lengths = _samples(segment_seconds, sample_rate)
    for i, seg in enumerate(covering_segments(win, fraction, lengths, seed)):
        out[seg] = noise_at(seg.stop - seg.start, color, level, seed + 1 + i)
    return out


def noise_fade_in(wav: np.ndarray, sample_rate: int, frame_rate: int, onset_frame: int, length_frames: int,
                  *, color: str = "white", level_dbfs: float | None = None, match_offset_db: float | None = 0.0,
                  seed: int = 0) -> np.ndarray:
    """Add noise whose amplitude rises linearly from 0 to the target level over the window (the authors' fade-in)."""
    win = window_samples(wav.size, onset_frame, length_frames, sample_rate, frame_rate)
    level = target_level_dbfs(wav, level_dbfs, match_offset_db)
    out = np.array(wav, dtype=np.float32, copy=True)
    n = win.stop - win.start
    out[win] += noise_at(n, color, level, seed) * np.linspace(0.0, 1.0, n, dtype=np.float32)
    return out


def swap_pairs(wav: np.ndarray, sample_rate: int, frame_rate: int, onset_frame: int, length_frames: int,
               *, segment_frames: int, fraction: float = 0.2, seed: int = 0) -> np.ndarray:
    """Swap random pairs of ``segment_frames``-long segments inside the window until the swapped
    segments total ``fraction`` of the window (the authors' Fig. 5 shuffle for short segments).

    Segments sit on the window's segment grid and are never reused, so the result is a
    permutation of the window's segments.
    """
    win = window_samples(wav.size, onset_frame, length_frames, sample_rate, frame_rate)
    seg = segment_frames * samples_per_frame(sample_rate, frame_rate)
    count = (win.stop - win.start) // seg
    pairs = max(1, int(round(fraction * count / 2)))
    if count < 2 * pairs:
        raise AudioError(f"a window of {length_frames} frames holds fewer than {2 * pairs} {segment_frames}-frame "
                         "segments")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(count, size=2 * pairs, replace=False)
    out = np.array(wav, dtype=np.float32, copy=True)
    for a, b in chosen.reshape(-1, 2):
        sa, sb = win.start + a * seg, win.start + b * seg
        out[sa : sa + seg], out[sb : sb + seg] = wav[sb : sb + seg], wav[sa : sa + seg]
    return out


def block_move(wav: np.ndarray, sample_rate: int, frame_rate: int, onset_frame: int, length_frames: int,
               *, segment_frames: int, seed: int = 0) -> np.ndarray:
    """Move one ``segment_frames``-long block to another place inside the window; what lies between
    shifts over (the authors' Fig. 5 shuffle for long segments)."""
    win = window_samples(wav.size, onset_frame, length_frames, sample_rate, frame_rate)
    hop = samples_per_frame(sample_rate, frame_rate)
    block = segment_frames * hop
    room = (win.stop - win.start) // hop - segment_frames
    if room < 1:
        raise AudioError(f"a window of {length_frames} frames leaves no room to move a {segment_frames}-frame block")
    rng = np.random.default_rng(seed)
    source = int(rng.integers(0, room + 1))
    target = int(rng.integers(0, room))
    target += target >= source  # a different place
    region = wav[win.start : win.stop]
    start = source * hop
    rest = np.concatenate([region[:start], region[start + block :]])
    moved = np.concatenate([rest[: target * hop], region[start : start + block], rest[target * hop :]])
    out = np.array(wav, dtype=np.float32, copy=True)
    out[win.start : win.stop] = moved
    return out


@dataclass(frozen=True)
class Kind:
    """One row of `KIND_TABLE`: how a kind runs and what it needs.

    ``run(p, wav, sample_rate, frame_rate, onset_frame, length_frames)`` applies the perturbation ``p``;
    ``needs``: fields that must be set; ``span``: how many window lengths of audio it touches from the
    onset (``block_swap`` swaps the window with the block after it); ``min_segments``: segments of
    ``segment_frames`` the window must hold.
    """

    run: Callable[..., np.ndarray]
    needs: tuple[str, ...] = ()
    span: int = 1
    min_segments: int = 0


def _level(p: "Perturbation") -> dict:
    return dict(level_dbfs=p.level_dbfs, match_offset_db=p.match_offset_db)


def _segments(p: "Perturbation", default: tuple[float, float]) -> tuple[float, float]:
    return (p.segment_min_s if p.segment_min_s is not None else default[0],
            p.segment_max_s if p.segment_max_s is not None else default[1])


# A new kind is one function above and one row here.
KIND_TABLE: dict[str, Kind] = {
    "noise": Kind(lambda p, *w: replace_with_noise(*w, color=p.color, seed=p.seed, **_level(p))),
    "add_noise": Kind(lambda p, *w: add_noise(*w, color=p.color, seed=p.seed, **_level(p))),
    "shuffle": Kind(lambda p, *w: shuffle_segments(*w, segment_frames=p.segment_frames, seed=p.seed),
                    needs=("segment_frames",), min_segments=2),
    "block_swap": Kind(lambda p, *w: block_swap(*w), span=2),
    "silence": Kind(lambda p, *w: silence(*w)),
    "band_delete": Kind(lambda p, *w: delete_band(*w, fraction=p.fraction, band_hz=(p.band_low_hz, p.band_high_hz),
                                                  segment_seconds=_segments(p, (0.01, 0.05)), seed=p.seed),
                        needs=("fraction", "band_low_hz", "band_high_hz")),
    "volume": Kind(lambda p, *w: change_volume(*w, fraction=p.fraction, gain=p.gain,
                                               segment_seconds=_segments(p, (0.01, 5.0)), seed=p.seed),
                   needs=("fraction", "gain")),
    "noise_segments": Kind(lambda p, *w: noise_segments(*w, fraction=p.fraction, segment_seconds=_segments(p, (1.0, 5.0)),
                                                        color=p.color, seed=p.seed, **_level(p)),
                           needs=("fraction",)),
    "noise_fade": Kind(lambda p, *w: noise_fade_in(*w, color=p.color, seed=p.seed, **_level(p))),
    "swap_pairs": Kind(lambda p, *w: swap_pairs(*w, segment_frames=p.segment_frames,
                                                fraction=p.fraction if p.fraction is not None else 0.2, seed=p.seed),
                       needs=("segment_frames",)),
    "block_move": Kind(lambda p, *w: block_move(*w, segment_frames=p.segment_frames, seed=p.seed),
                       needs=("segment_frames",)),
}
KINDS = tuple(KIND_TABLE)


def max_length_frames(kind: str, onset_frame: int, num_frames: int, *, segment_frames: int | None = None) -> int:
    """The longest window of ``kind`` that fits an excerpt of ``num_frames`` frames from ``onset_frame`` (0 if none).

    A kind that touches ``span`` window lengths (``block_swap``: 2) gets ``1/span`` of the room; a kind
    that needs ``min_segments`` segments (``shuffle``: 2) gets nothing when fewer fit.
    """
    room = max(0, num_frames - onset_frame)
    row = KIND_TABLE[kind]
    if row.min_segments and segment_frames and room < row.min_segments * segment_frames:
        return 0
    return room // row.span


@dataclass(frozen=True)
class Perturbation:
    """One perturbation with all its parameters; ``apply`` runs it. Hashable and tabular.

    kind: ``noise`` (replacement, the paper's), ``add_noise``, ``shuffle``, ``block_swap``,
    ``silence``, and the authors' segment-wise ones inside the window: ``band_delete``
    (``fraction``, ``band_low_hz``/``band_high_hz``), ``volume`` (``fraction``, ``gain``),
    ``noise_segments`` (``fraction``), ``noise_fade`` (noise fading in over the window), and the
    authors' Fig. 5 shuffles ``swap_pairs`` (``segment_frames``, ``fraction`` of the window
    swapped, default 0.2) and ``block_move`` (one ``segment_frames`` block moved).
    Segment-wise kinds draw segment lengths from ``segment_min_s``..``segment_max_s``.
    Noise level: ``match_offset_db`` relative to the excerpt (default 0 dB) or absolute ``level_dbfs``.
    """

    kind: str = "noise"
    onset_frame: int = 250
    length_frames: int = 100
    color: str = "white"
    level_dbfs: float | None = None
    match_offset_db: float | None = 0.0
    segment_frames: int | None = None
    seed: int = 0
    fraction: float | None = None
    band_low_hz: float | None = None
    band_high_hz: float | None = None
    gain: float | None = None
    segment_min_s: float | None = None
    segment_max_s: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown perturbation kind {self.kind!r}; expected one of {KINDS}")
        needs = KIND_TABLE[self.kind].needs
        missing = [name for name in needs if getattr(self, name) is None]
        if missing:
            raise ValueError(f"kind={self.kind!r} needs {', '.join(missing)}")
        if self.onset_frame < 0 or self.length_frames < 1:  # refused here, before any file, not file by file
            raise UsageError(f"a perturbation needs onset_frame >= 0 and length_frames >= 1, got {self.onset_frame} "
                             f"and {self.length_frames}")

    @property
    def span_frames(self) -> int:
        """Frames from the onset that this perturbation changes (the window, twice it for ``block_swap``)."""
        return self.length_frames * KIND_TABLE[self.kind].span

    def apply(self, wav: np.ndarray, sample_rate: int, frame_rate: int) -> np.ndarray:
        return KIND_TABLE[self.kind].run(self, wav, sample_rate, frame_rate, self.onset_frame, self.length_frames)

    def as_row(self) -> dict:
        """Parameters as table columns (``perturbation`` = kind)."""
        row = asdict(self)
        row["perturbation"] = row.pop("kind")
        return row

    @property
    def key(self) -> str:
        return ",".join(f"{k}={v}" for k, v in asdict(self).items())


def noise_sweep(lengths_frames=PAPER_LENGTHS, onset_frame: int = 250, *, color: str = "white",
                match_offset_db: float = 0.0, seed: int = 0) -> list[Perturbation]:
    """The paper's RQ1 design: loudness-matched noise at ``onset_frame`` for each length."""
    return [Perturbation("noise", onset_frame, n, color=color, match_offset_db=match_offset_db, seed=seed)
            for n in lengths_frames]
