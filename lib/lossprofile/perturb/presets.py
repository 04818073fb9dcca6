"""Named perturbation sets: our defaults beside the paper authors' exact settings.

The authors' settings are read from their public code (YoEv/noiseloss: ``processors/perturb``,
``configs/*_actions.yaml``) and the paper's demo page. Select one by name:

    from lossprofile.perturb import preset
    perturbations = preset("authors-noise", data_kind="ood")

or ``lossprofile score --preset authors-noise ...``. Each name maps to a list of
[`Perturbation`][lossprofile.perturb.waveform.Perturbation] (audio) or [`ScorePerturbation`][lossprofile.perturb.score.ScorePerturbation]
(score, MIDI pieces only).
"""

from __future__ import annotations

from ..errors import UsageError
from .score import ScorePerturbation
from .waveform import PAPER_LENGTHS, PAPER_SEGMENTS, Perturbation, noise_sweep
# The authors' absolute noise levels per data kind: unit-variance noise x 10 ** (dB / 20).
AUTHORS_NOISE_DBFS = {"ood": -30.0, "generated": -20.0, "training": -12.0}
AUTHORS_FRACTIONS = (0.1, 0.3, 0.5, 0.8)


def _authors_noise(data_kind: str | None) -> list[Perturbation]:
    if data_kind not in AUTHORS_NOISE_DBFS:
        raise UsageError(f"preset 'authors-noise' sets its level by data kind: give --data-kind (data_kind) as one "
                         f"of {', '.join(sorted(AUTHORS_NOISE_DBFS))}, got {data_kind!r}")
    return [Perturbation("noise", 250, n, level_dbfs=AUTHORS_NOISE_DBFS[data_kind], match_offset_db=None)
            for n in PAPER_LENGTHS]


def _authors_shuffle() -> list[Perturbation]:
    # Fig. 5: for 2–70-frame segments, pairs swapped until 20% of the audio moved, within 0–14 s;
    # for 100–200 frames, one block moved within 0–14 s.
    return [Perturbation("swap_pairs", 0, 700, segment_frames=n, fraction=0.2) if n <= 70 else
            Perturbation("block_move", 0, 700, segment_frames=n) for n in PAPER_SEGMENTS if n >= 2]


PRESETS = {
    "paper-noise": ("loudness-matched white noise at frame 250 for 5–200 frames (ours; the paper's main text)",
                    lambda kind: noise_sweep(PAPER_LENGTHS)),
    "authors-noise": ("white noise at the authors' absolute level per data kind (-30 dBFS OOD, -20 Generated, "
                      "-12 TrainingSet), frame 250, 5–200 frames", _authors_noise),
    "paper-colors": ("white, pink, brown, blue noise (PSD slopes 0, -1, -2, +1) at frame 250 for 10 and 100 frames",
                     lambda kind: [p for c in ("white", "pink", "brown", "blue") for p in noise_sweep((10, 100), color=c)]),
    "authors-colors": ("the authors' Butterworth colours: pink butter(1, 0.2, low), brown butter(2, 0.1, low), "
                       "blue butter(1, 0.5, high), loudness-matched, frame 250, 5–200 frames",
                       lambda kind: [p for c in ("pink_butter", "brown_butter", "blue_butter")
                                     for p in noise_sweep(PAPER_LENGTHS, color=c)]),
    "paper-shuffle": ("segments of 1–200 frames shuffled inside a 400-frame window from frame 250 (ours)",
                      lambda kind: [Perturbation("shuffle", 250, 400, segment_frames=n) for n in PAPER_SEGMENTS]),
    "authors-shuffle": ("the authors' Fig. 5: pairs of 2–70-frame segments swapped (20% of the audio, 0–14 s); "
                        "one 100–200-frame block moved", lambda kind: _authors_shuffle()),
    "onset-sweep": ("white noise at onsets 1–14 s for 5, 10 and 20 frames (the authors' onset sweep)",
                    lambda kind: [Perturbation("noise", 50 * s, n) for s in range(1, 15) for n in (5, 10, 20)
                                  if 50 * s + n <= 750]),
    "authors-band": ("FFT band zeroed in 10–50 ms segments covering 5–80% of the excerpt: 2–20 kHz and 20–1000 Hz; "
                     "random bands (40, 1000), (600, 1500), (2000, 6000) Hz in 1–5 s segments",
                     lambda kind: [Perturbation("band_delete", 0, 750, fraction=f, band_low_hz=lo, band_high_hz=hi)
                                   for lo, hi in ((2000, 20000), (20, 1000)) for f in (0.05, 0.2, 0.5, 0.8)]
                     + [Perturbation("band_delete", 0, 750, fraction=f, band_low_hz=lo, band_high_hz=hi,
                                     segment_min_s=1.0, segment_max_s=5.0)
                        for lo, hi in ((40, 1000), (600, 1500), (2000, 6000)) for f in (0.1, 0.5)]),
    "authors-volume": ("segments of 0.01–5 s covering 5–80% at gain 0.05 (quieter) or 4 (louder, clipped)",
                       lambda kind: [Perturbation("volume", 0, 750, fraction=f, gain=g)
                                     for g in (0.05, 4.0) for f in (0.05, 0.2, 0.5, 0.8)]),
    "authors-noise-segments": ("white noise replacing 1–5 s segments covering 10–80% of the excerpt",
                               lambda kind: [Perturbation("noise_segments", 0, 750, fraction=f)
                                             for f in AUTHORS_FRACTIONS]),
    "authors-fade": ("white noise fading in over the last 2, 5 and 10 s",
                     lambda kind: [Perturbation("noise_fade", 750 - 50 * s, 50 * s) for s in (2, 5, 10)]),
    "authors-pitch": ("score: 10/30/50/80% of notes (pitch 24–103) moved ±1, ±2 or ±12 semitones, kept in key",
                      lambda kind: [ScorePerturbation("shift_pitches", f, (n,)) for n in (1, 2, 12)
                                    for f in AUTHORS_FRACTIONS]),
    "authors-rhythm": ("score: 10/20/30/40% of notes deleted",
                       lambda kind: [ScorePerturbation("delete_notes", f) for f in (0.1, 0.2, 0.3, 0.4)]),
    "authors-velocity": ("score: 10/30/50/80% of notes at a velocity from U(30, 120)",
                         lambda kind: [ScorePerturbation("randomize_velocities", f) for f in AUTHORS_FRACTIONS]),
    "authors-tempo": ("score: 2–4% segments covering 10/30/50/80% of the piece at a tempo factor from U(0.1, 8)",
                      lambda kind: [ScorePerturbation("warp_tempo", f) for f in AUTHORS_FRACTIONS]),
}


def preset(name: str, data_kind: str | None = None) -> list:
    """The perturbations of a named preset (see `PRESETS`); ``data_kind`` where the preset needs it."""
    if name not in PRESETS:
        import difflib

        close = difflib.get_close_matches(name, PRESETS, n=1)
        raise UsageError(f"unknown preset {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                         + f"; the presets are {', '.join(PRESETS)}")
    return PRESETS[name][1](data_kind)


def presets_text() -> str:
    """Every preset's name and what it holds, one per line (the CLI's ``--preset`` help)."""
    return "\n".join(f"{name}: {text}" for name, (text, _) in PRESETS.items())


