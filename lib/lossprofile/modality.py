"""Audio or MIDI: what differs between a model that hears sound and one that reads scores.

A model says what its tokenizer reads (``lm.reads``: ``"audio"`` or ``"midi"``); [`modality_of`][lossprofile.modality.modality_of] is the one
place that looks, and gives `AUDIO` or `MIDI`. The rest of the package takes one path for both and
asks the modality for what differs:

| | ``AUDIO``: waveforms, codec codes | ``MIDI``: scores, event tokens |
|---|---|---|
| files | audio, and MIDI rendered with piano | MIDI only |
| the data kinds | the rendered sets | the scores they were rendered from |
| a piece's excerpt | its first seconds of sound (samples) | its first seconds from the first note |
| perturbations | on the waveform; score ones change the notes, then render | each in the score (``IN_SCORE``) |
| scoring | clean and variants in one batched pass | each version tokenised and scored alone |
| frames | a frame is its K codes (mean over them) | 20 ms bins of the tokens' event times |
| default probes | noise bursts (``ProbeDesign``) | random-note windows (``MIDI_DESIGN``) |
| level | brought to a loudness before profiling | none |
| the model's samples | waveforms (FLAC) | MIDI files, ``MIDI_TOKENS_PER_SECOND`` |

A clip is what a model takes: a waveform ``[S]`` (float32, at the model's sample rate) or a ``PrettyMIDI`` score.
[`Scored`][lossprofile.modality.Scored] is a clip and its variants as the model scored them, whatever it reads.
"""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from . import audio
from .data import datasets
from .data.datasets import Piece
from .errors import UsageError
from .io import atomic_path, derived_seed
from .models.base import TokenLM, TokenStats
from .perturb.probes import MIDI_DESIGN, ProbeDesign
from .perturb.score import IN_SCORE, ScorePerturbation, apply_in_score, copy_midi
from .perturb.waveform import Perturbation, window_samples
from .scoring import resolve_precision, score_many, stats_batched

# A model over MIDI tokens samples this many tokens per second of music asked for (the embedded one's arrangements
# hold ~35 per second; 60 leaves room for denser samples)
MIDI_TOKENS_PER_SECOND = 60
# Waveform parameters with no meaning in a score: a model over MIDI tokens gets random notes for noise, an emptied
# window for silence (perturb.score.IN_SCORE), so those rows leave them empty instead of claiming white noise.
AUDIO_ONLY_PARAMETERS = ("color", "level_dbfs", "match_offset_db", "band_low_hz", "band_high_hz", "gain",
                         "segment_min_s", "segment_max_s")
# The kinds of damage the profile score's evaluation knows (lossprofile.analysis.evaluate): of the waveform, of
# the whole score (then rendered or cut like the clean excerpt) and of a score excerpt's tokens' time span.
DAMAGE_KINDS = ("audio", "symbolic", "token")


@dataclass(frozen=True)
class Scored:
    """A clip and its variants as a model scored them ([`Modality.score`][lossprofile.modality.Modality.score]).

    ``codes`` and ``stats``: each version's tokens ``[K, T]`` and their statistics (each field ``[K, T]``), the
    clean version first (a score's versions each have their own tokens, K = 1); ``times``: each version's
    tokens' times in seconds where tokens are not frames (None: token t is frame t). ``frames``: the length of the
    frame grid (``frame_rate`` per second) the curves are read on, ``seconds`` the time it covers; ``method``,
    ``precision``, ``prompt``: how the scoring ran."""

    codes: list
    stats: list
    times: list | None
    frames: int
    frame_rate: float
    seconds: float
    method: str
    precision: str
    prompt: str


def frames_of(values: np.ndarray, seconds: np.ndarray, frame_rate: float, num_frames: int, how: str) -> np.ndarray:
    """Token values ``[T]`` on the frame grid ``[num_frames]``: ``sum`` (0 where a frame holds no token) or ``mean``
    (NaN there); tokens past the last frame count in it."""
    frame = np.minimum((np.asarray(seconds) * frame_rate).astype(int), num_frames - 1)
    total = np.bincount(frame, weights=values, minlength=num_frames)
    if how == "sum":
        return total
    count = np.bincount(frame, minlength=num_frames)
    return np.divide(total, count, out=np.full(num_frames, np.nan), where=count > 0)


@dataclass(frozen=True)
class Modality(abc.ABC):
    """What a kind of model reads, and everything that differs with it (see the module docstring).

    ``name``: what ``lm.reads`` says (also the statistics registry's modality,
    `lossprofile.analysis.statistics`); ``results_name``: the name its results go by (``audio``, ``symbolic``): the
    validation's folder and ``modality`` column, the shipped clean reference's files and the shipped weights' key
    (`lossprofile.analysis.profile.WEIGHTS_FILES`); ``frame_unit``: one frame's loss in words; ``probe_design``: the profile's default
    probes; ``sample_suffix``: the model's samples' files. ``reads_audio_files``: audio files are pieces for it;
    ``has_level``: its clips have a loudness (and a file format) to normalise; ``batched``: several pieces'
    variants share the decoder's batches (a score's tokens differ in number, so each is scored alone);
    ``codebooks``: its tokens are frames of K codebooks, read one at a time by the profile's per-codebook
    features; ``damage_kinds``: the kinds of damage (`DAMAGE_KINDS`) its versions of a piece take."""

    name: str
    results_name: str
    frame_unit: str
    probe_design: ProbeDesign
    sample_suffix: str
    reads_audio_files: bool
    has_level: bool
    batched: bool
    codebooks: bool
    damage_kinds: tuple[str, ...]

    def loudness(self, dbfs: float | None) -> float | None:
        """The level (dBFS) its clips are brought to: ``dbfs``, or None where a clip has no level (a score)."""
        return dbfs if self.has_level else None

    # ---- pieces --------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def pieces(self, kind: str, n: int | None, split: str = "heldout") -> list[Piece]:
        """The first ``n`` pieces of the ``training`` or ``ood`` kind in this modality's form."""

    @abc.abstractmethod
    def read(self, path: str | Path, sample_rate: int):
        """A file as a clip of this modality (MIDI rendered with piano for audio); `AudioError` names it."""

    @abc.abstractmethod
    def tokens_per_second(self, lm: TokenLM) -> float:
        """Tokens the model samples per second of music asked for."""

    @abc.abstractmethod
    def decode(self, lm: TokenLM, codes: torch.Tensor) -> list:
        """Sampled codes ``[B, K, T]`` → ``B`` clips."""

    @abc.abstractmethod
    def write_samples(self, lm: TokenLM, codes: torch.Tensor, paths: Sequence[Path]) -> None:
        """Sampled codes ``[B, K, T]`` decoded into ``B`` files (each ending in `sample_suffix`)."""

    # ---- excerpts ------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def excerpt(self, piece: Piece, sample_rate: int, seconds: float):
        """The piece's clean excerpt: its first ``seconds`` of sound, or from its first note."""

    @abc.abstractmethod
    def variants(self, piece: Piece, perturbations: Sequence, sample_rate: int, frame_rate: float,
                 excerpt_seconds: float, seed: int, *, loudness_dbfs: float | None = None, shorter: bool = False
                 ) -> tuple[object, list]:
        """The clean excerpt of a piece and one perturbed clip per perturbation (the runner's; every
        perturbation's seed derived from ``seed`` and the piece, so each piece gets its own noise)."""

    def check_perturbations(self, perturbations: Sequence) -> None:
        """A `UsageError` before any work for perturbations this modality has no form of."""

    @abc.abstractmethod
    def versions_of(self, piece: Piece, sample_rate: int, excerpt_seconds: float
                    ) -> tuple[object, object, Callable | None]:
        """(the clean excerpt, the whole score or None where the piece has none, ``place``): ``place(score)`` is
        a damaged whole score cut (and rendered) like the clean excerpt (the evaluation's versions)."""

    @abc.abstractmethod
    def passages(self, piece: Piece, sample_rate: int, max_seconds: float) -> Callable[[float, float], object]:
        """``at(offset, seconds)``: the excerpt of ``seconds`` that starts ``offset`` seconds after the piece's
        first sound (rendered with piano, up to ``max_seconds``) or first note; refused when it does not hold
        music for its length (the validation's properties)."""

    @abc.abstractmethod
    def reference_excerpts(self, piece: Piece, sample_rate: int, seconds: float, offsets: Sequence[float]
                           ) -> list[tuple[float, object]]:
        """(offset, excerpt) for every offset after the piece's first sound or note that still leaves ``seconds``
        of music (the typicality's clean reference); `AudioError` where none does."""

    @abc.abstractmethod
    def changed_pair(self, score, change: Callable, sample_rate: int, seconds: float, program: int | None = 0
                     ) -> tuple | None:
        """(clean clip, changed clip) of a score and ``change(score)`` cut alike to ``seconds``: rendered (with
        ``program``) and cut at the clean render's first sound, each at −20 dBFS; or ``seconds`` from the first note
        (the change made to that excerpt). None where the score holds less music than that."""

    def at_rate(self, clip, sample_rate: int, model_sample_rate: int, source: str = "<array>"):
        """A clip given at ``sample_rate`` as the model reads it at ``model_sample_rate``: a score as it is."""
        return clip

    @abc.abstractmethod
    def profile_excerpt(self, clip, sample_rate: int, excerpt_seconds: float, min_seconds: float, hop_length: int,
                        loudness_dbfs: float | None, source: str):
        """What the profile scores of a clip: its first ``excerpt_seconds`` (or what it has, down to
        ``min_seconds``); `BadInputError` where it cannot be used."""

    @abc.abstractmethod
    def probe_frames(self, clip, hop_length: int, frame_rate: float, excerpt_seconds: float) -> int:
        """The frames of a profiled excerpt, that the probes are placed on."""

    @abc.abstractmethod
    def perturb(self, perturbation, clip, sample_rate: int, frame_rate: float):
        """One perturbation (a probe) applied to an excerpt."""

    @abc.abstractmethod
    def duration(self, clip, sample_rate: int, excerpt_seconds: float) -> float:
        """Seconds of a profiled excerpt."""

    # ---- scoring and frames --------------------------------------------------------------------------------
    @abc.abstractmethod
    def score(self, lm: TokenLM, items: Sequence[tuple[object, Sequence]], *, excerpt_seconds: float,
              method: str = "exact", prompt: str | None = None, batch_size: int | None = None,
              prefix_reuse: bool = True, precision: str = "auto") -> list[Scored]:
        """Each (clean clip, its variants) of ``items`` scored → one [`Scored`][lossprofile.modality.Scored] per item."""

    @abc.abstractmethod
    def mean_nll(self, lm: TokenLM, clips: Sequence) -> list[float]:
        """Each clip's mean NLL (nats per code or token), exact."""

    @abc.abstractmethod
    def pass_nll(self, lm: TokenLM, clip, seconds: float, passes: int, source: str = "") -> list[float]:
        """Mean NLL of each pass of a clip's first ``seconds`` played ``passes`` times in a row (scored exactly)."""

    @abc.abstractmethod
    def curve(self, scored: Scored, version: int, what: str, how: str = "mean") -> np.ndarray:
        """One version's ``nll``, ``entropy`` or ``log_rank`` on the frame grid ``[F]``: a frame's ``how`` (``sum``
        or ``mean``) over its tokens."""

    @abc.abstractmethod
    def codebook_curves(self, scored: Scored, version: int) -> np.ndarray:
        """One version's NLL per codebook on the frame grid ``[K, F]``."""

    def token_counts(self, scored: Scored, version: int) -> np.ndarray | None:
        """Tokens in each frame ``[F]`` where frames hold a varying number of them, else None."""
        return None

    @abc.abstractmethod
    def alone(self, lm: TokenLM, scored: Scored, window_seconds: float, precision: str = "auto",
              batch_size: int | None = None) -> np.ndarray:
        """The clean version's NLL with every window of ``window_seconds`` after the first scored alone, as if the
        piece began there (NaN where not scored: the first window, a tail); the profile's ``context_gain``."""

    def parameters(self, perturbation) -> dict:
        """A perturbation's parameters as a table row states them."""
        return perturbation.as_row()

    def check_prompt(self, lm: TokenLM, prompt: str | None) -> None:
        """A `ValueError` for a text prompt this modality's models take none of."""

    def vocabulary(self, lm: TokenLM):
        """What the model's token ids stand for beyond its family, codebooks and cardinality (None: nothing)."""
        return None


# ---- audio ------------------------------------------------------------------------------------------------
def frames_needed(perturbations: Sequence) -> int:
    """Frames an excerpt must hold for every perturbation's window (score perturbations without a window need 1)."""
    return max([1] + [p.onset_frame + p.span_frames for p in perturbations if isinstance(p, Perturbation)]
               + [p.onset_frame + (p.length_frames or 1) for p in perturbations if isinstance(p, ScorePerturbation)])


def load_clip(piece: Piece, sample_rate: int, frame_rate: float, excerpt_seconds: float, *,
              loudness_dbfs: float | None = None, min_frames: int | None = None) -> np.ndarray:
    """The clean excerpt ``[S]`` of an audio piece: its first ``excerpt_seconds`` of sound.

    ``loudness_dbfs``: the whole clip is brought to this RMS level first (so where its first sound is found does
    not depend on its level), then the excerpt (as the profile score does). ``min_frames``: a clip with less sound
    than ``excerpt_seconds`` but at least this many whole frames is taken whole (whole frames) instead of refused.
    """
    if loudness_dbfs is None and min_frames is None:
        return datasets.load_excerpt(piece, sample_rate, excerpt_seconds)  # the replication's path, unchanged
    wav = audio.load_audio(piece.path, sample_rate)
    if loudness_dbfs is not None:
        wav = audio.normalize_rms(wav, loudness_dbfs)
    start = audio.first_sound_sample(wav, sample_rate)
    hop, length = sample_rate // frame_rate, int(round(excerpt_seconds * sample_rate))
    if wav.size - start < length and min_frames is not None:
        have = (wav.size - start) // hop
        if have < min_frames:
            raise audio.AudioError(f"{piece.path}: too short: {(wav.size - start) / sample_rate:.2f} s of sound"
                                   + (" after leading silence" if start else "") + f"; the perturbations need "
                                   f"{min_frames / frame_rate:g} s (their windows end at frame {min_frames})")
        length = have * hop
    clip = audio.excerpt(wav, sample_rate, length / sample_rate, source=str(piece.path))
    return clip if loudness_dbfs is None else audio.normalize_rms(clip, loudness_dbfs)


def usable_excerpt(wav: np.ndarray, sample_rate: int, seconds: float, min_seconds: float, hop_length: int,
                   source: str) -> np.ndarray:
    """The first ``seconds`` of sound, or all of it (whole frames) when there is less but at least ``min_seconds``."""
    wav = audio.check_waveform(np.asarray(wav, np.float32), source)
    start = audio.first_sound_sample(wav, sample_rate)
    available = (wav.size - start) // hop_length * hop_length / sample_rate
    sound = (wav.size - start) / sample_rate
    if 0 < sound < min(seconds, min_seconds):  # what a profile needs, not what a full excerpt would
        raise audio.AudioError(f"{source}: too short for a profile: {sound:.2f} s of sound (it needs at least "
                               f"{min(seconds, min_seconds):g} s)")
    if available >= seconds or available < min_seconds:
        return audio.excerpt(wav, sample_rate, seconds, source=source)  # the full excerpt, or its error (silence)
    return audio.excerpt(wav, sample_rate, available, source=source)


def windows_alone(lm: TokenLM, codes: torch.Tensor, window_frames: int, precision: str = "auto",
                  batch_size: int | None = None, lookahead_frames: int | None = None) -> np.ndarray:
    """NLL ``[K, T]`` of codes ``[K, T]`` with every window of ``window_frames`` frames scored alone (as if the piece
    began there); NaN over the first window (it has no earlier music to lose) and the tail after the last whole
    window.

    Each window is scored with the ``lookahead_frames`` frames after it (default: the family's own,
    ``lm.lookahead_frames``; MusicGen's delay pattern: K - 1): the window alone must see exactly what the full pass
    sees, less the music before it. So a window ends at most ``T - lookahead_frames``."""
    K, T = codes.shape
    ahead = lm.lookahead_frames if lookahead_frames is None else lookahead_frames
    n = (T - ahead) // window_frames
    out = np.full((K, T), np.nan)
    if n < 2:
        return out
    windows = torch.stack([codes[:, w * window_frames : (w + 1) * window_frames + ahead] for w in range(1, n)])
    nll = stats_batched(lm, windows, batch_size=batch_size, precision=precision).nll[..., :window_frames]
    out[:, window_frames : n * window_frames] = nll.permute(1, 0, 2).reshape(K, -1).numpy()  # [n - 1, K, W] -> [K, .]
    return out


@dataclass(frozen=True)
class Audio(Modality):
    """A model that hears waveforms through a codec (see the module docstring)."""

    def pieces(self, kind: str, n: int | None, split: str = "heldout") -> list[Piece]:
        return datasets.rendered_pieces(kind, n, split)

    def read(self, path: str | Path, sample_rate: int) -> np.ndarray:
        return audio.load_audio(path, sample_rate)

    def tokens_per_second(self, lm: TokenLM) -> float:
        return lm.frame_rate

    def decode(self, lm: TokenLM, codes: torch.Tensor) -> list[np.ndarray]:
        return list(lm.decode(codes)[:, 0].numpy())

    def write_samples(self, lm: TokenLM, codes: torch.Tensor, paths: Sequence[Path]) -> None:
        for path, wav in zip(paths, lm.decode(codes)[:, 0].numpy()):
            audio.save_audio(path, wav, lm.sample_rate)

    def excerpt(self, piece: Piece, sample_rate: int, seconds: float) -> np.ndarray:
        return datasets.load_excerpt(piece, sample_rate, seconds)

    def variants(self, piece: Piece, perturbations: Sequence, sample_rate: int, frame_rate: float,
                 excerpt_seconds: float, seed: int, *, loudness_dbfs: float | None = None, shorter: bool = False
                 ) -> tuple[np.ndarray, list[np.ndarray]]:
        """The clean excerpt ``[S]`` of a piece and one waveform per perturbation.

        Audio perturbations ([`Perturbation`][lossprofile.perturb.waveform.Perturbation]) act on the excerpt; score
        perturbations ([`ScorePerturbation`][lossprofile.perturb.score.ScorePerturbation], MIDI pieces only) act on the
        notes, and the perturbed piece is rendered and cut at the same samples as the clean one.
        ``loudness_dbfs`` and ``shorter`` (a clip with less sound than ``excerpt_seconds`` is scored over what it has
        when that holds every perturbation's window): see [`load_clip`][lossprofile.modality.load_clip].
        """
        score_perts = [p for p in perturbations if isinstance(p, ScorePerturbation)]
        is_midi = piece.path.suffix.lower() in audio.MIDI_SUFFIXES
        if score_perts and not is_midi:
            raise audio.AudioError(f"{piece.path}: score perturbations ({score_perts[0].kind}) need a MIDI file")
        if score_perts:
            midi = audio.read_midi(piece.path)
            # Rendering is causal, so stopping after the excerpt gives the same samples as load_audio's
            # render of the whole file, at a fraction of the cost for long performances.
            onsets = midi.get_onsets()
            horizon = (float(onsets[0]) if len(onsets) else 0.0) + excerpt_seconds + 2.0
            full = audio.render_midi(midi, sample_rate, max_seconds=horizon)
            start = audio.first_sound_sample(full, sample_rate)
            clean = audio.excerpt(full[start:], sample_rate, excerpt_seconds, skip_leading_silence=False,
                                  source=str(piece.path))
            # the same gain for the clean render and every perturbed one: only the clean excerpt's level is set
            gain = 1.0 if loudness_dbfs is None else float(10 ** ((loudness_dbfs - audio.rms_dbfs(clean)) / 20))
            clean = (clean * gain).astype(np.float32)
        else:
            clean = load_clip(piece, sample_rate, frame_rate, excerpt_seconds, loudness_dbfs=loudness_dbfs,
                              min_frames=frames_needed(perturbations) if shorter else None)
        variants = []
        for p in perturbations:
            p = dataclasses.replace(p, seed=derived_seed(seed, piece.dataset, piece.name, p.seed))
            if isinstance(p, ScorePerturbation):
                wav = audio.render_midi(p.apply_midi(midi, start / sample_rate, frame_rate), sample_rate,
                                        max_seconds=horizon)
                wav = wav[start : start + clean.size] * gain
                variants.append(np.pad(wav, (0, clean.size - wav.size)).astype(np.float32))
                continue
            window_samples(clean.size, p.onset_frame, p.span_frames, sample_rate, frame_rate, source=str(piece.path))
            variants.append(p.apply(clean, sample_rate, frame_rate))
        return clean, variants

    def versions_of(self, piece: Piece, sample_rate: int, excerpt_seconds: float
                    ) -> tuple[np.ndarray, object, Callable | None]:
        """A MIDI piece is rendered once with piano, every version cut at the clean render's first sound and set to
        the clean one's gain (−20 dBFS); an audio file is its first ``excerpt_seconds`` of sound, without a score."""
        if piece.path.suffix.lower() not in audio.MIDI_SUFFIXES:
            return datasets.load_excerpt(piece, sample_rate, excerpt_seconds), None, None
        midi = audio.read_midi(piece.path)
        length = int(excerpt_seconds * sample_rate)
        clean_full = audio.render_midi(midi, sample_rate, program=0, max_seconds=excerpt_seconds + 30)
        start = audio.first_sound_sample(clean_full, sample_rate)
        clean = audio.excerpt(clean_full[start:], sample_rate, excerpt_seconds, skip_leading_silence=False,
                              source=str(piece.path))
        gain = float(10 ** ((-20.0 - audio.rms_dbfs(clean)) / 20))  # every version at the clean one's gain

        def place(score) -> np.ndarray:
            wav = audio.render_midi(score, sample_rate, program=0, max_seconds=excerpt_seconds + 30)
            wav = np.pad(wav[start : start + length], (0, max(0, length - wav[start:].size)))
            return (wav * np.float32(gain)).astype(np.float32)

        return clean * np.float32(gain), midi, place

    def passages(self, piece: Piece, sample_rate: int, max_seconds: float) -> Callable[[float, float], np.ndarray]:
        full = audio.render_midi(audio.read_midi(piece.path), sample_rate, program=0, max_seconds=max_seconds)
        full = full[audio.first_sound_sample(full, sample_rate):]
        return lambda at, seconds: audio.excerpt(full[int(at * sample_rate):], sample_rate, seconds,
                                                 skip_leading_silence=False, source=str(piece.path))

    def reference_excerpts(self, piece: Piece, sample_rate: int, seconds: float, offsets: Sequence[float]
                           ) -> list[tuple[float, np.ndarray]]:
        """Rendered with piano, each excerpt at −20 dBFS (as the validation renders its pieces)."""
        need = max(offsets) + seconds + 1.0
        wav = audio.render_midi(piece.path, sample_rate, program=0, max_seconds=need + 10.0)
        start = audio.first_sound_sample(wav, sample_rate)
        out = []
        for offset in offsets:
            lo = start + int(offset * sample_rate)
            clip = wav[lo : lo + int(seconds * sample_rate)]
            if clip.size == int(seconds * sample_rate) and audio.rms_dbfs(clip) > -60:
                out.append((offset, audio.normalize_rms(clip, -20.0)))
        if not out:
            raise audio.AudioError(f"{piece.path}: no {seconds:g} s excerpt with sound at offsets {list(offsets)}")
        return out

    def changed_pair(self, score, change: Callable, sample_rate: int, seconds: float, program: int | None = 0
                     ) -> tuple[np.ndarray, np.ndarray] | None:
        renders = [audio.render_midi(s, sample_rate, program=program, max_seconds=seconds + 30)
                   for s in (score, change(score))]
        start = audio.first_sound_sample(renders[0], sample_rate)
        length = int(seconds * sample_rate)
        pair = [w[start : start + length] for w in renders]
        if min(p.size for p in pair) < length:
            return None
        return tuple(audio.normalize_rms(p) for p in pair)

    def at_rate(self, clip, sample_rate: int, model_sample_rate: int, source: str = "<array>") -> np.ndarray:
        """A waveform ``[S]`` at ``sample_rate`` resampled to the model's rate (read as it is, it would be played
        faster or slower: every pitch and tempo moved)."""
        if not (isinstance(sample_rate, (int, float, np.number)) and sample_rate > 0
                and float(sample_rate).is_integer()):
            raise UsageError(f"{source}: sample_rate must be a positive whole number of Hz, got {sample_rate!r}")
        if sample_rate == model_sample_rate:
            return clip
        wav = audio.check_waveform(np.asarray(clip, dtype=np.float32), source)
        return audio.resample(wav, int(sample_rate), model_sample_rate)

    def profile_excerpt(self, clip, sample_rate: int, excerpt_seconds: float, min_seconds: float, hop_length: int,
                        loudness_dbfs: float | None, source: str) -> np.ndarray:
        """The whole clip is brought to ``loudness_dbfs`` first (so where its first sound is found does not depend on
        its level), then its excerpt ([`usable_excerpt`][lossprofile.modality.usable_excerpt]), then the excerpt again."""
        if loudness_dbfs is not None:
            clip = audio.normalize_rms(audio.check_waveform(np.asarray(clip, np.float32), source), loudness_dbfs)
        clean = usable_excerpt(clip, sample_rate, excerpt_seconds, min_seconds, hop_length, source=source)
        return clean if loudness_dbfs is None else audio.normalize_rms(clean, loudness_dbfs)

    def probe_frames(self, clip, hop_length: int, frame_rate: float, excerpt_seconds: float) -> int:
        return clip.size // hop_length

    def perturb(self, perturbation, clip, sample_rate: int, frame_rate: float) -> np.ndarray:
        return perturbation.apply(clip, sample_rate, frame_rate)

    def duration(self, clip, sample_rate: int, excerpt_seconds: float) -> float:
        return clip.size / sample_rate

    def score(self, lm: TokenLM, items: Sequence[tuple[object, Sequence]], *, excerpt_seconds: float,
              method: str = "exact", prompt: str | None = None, batch_size: int | None = None,
              prefix_reuse: bool = True, precision: str = "auto") -> list[Scored]:
        """Every item's clean excerpt and variants through the codec, the decoder batched across items
        ([`scoring.score_many`][lossprofile.scoring.score_many]: one item is exactly [`score_variants`][lossprofile.scoring.score_variants])."""
        out = []
        for s in score_many(lm, list(items), method=method, prompt=prompt, batch_size=batch_size,
                            prefix_reuse=prefix_reuse, precision=precision):
            stats = [TokenStats(s.nll_clean, s.entropy_clean, s.rank_clean, s.surprisal_var_clean),
                     *(TokenStats(*x) for x in zip(s.nll_variants, s.entropy_variants, s.rank_variants,
                                                   s.surprisal_var_variants))]
            frames = s.nll_clean.shape[-1]
            out.append(Scored(codes=[s.codes_clean, *s.codes_variants], stats=stats, times=None, frames=frames,
                              frame_rate=lm.frame_rate, seconds=frames / lm.frame_rate, method=method,
                              precision=resolve_precision(precision, lm.device), prompt=prompt or ""))
        return out

    def mean_nll(self, lm: TokenLM, clips: Sequence[np.ndarray]) -> list[float]:
        """The clips encoded and scored in one batch (equally long)."""
        codes = torch.cat([lm.encode(torch.from_numpy(c)[None, None]) for c in clips])
        return [float(x) for x in lm.token_nll(codes).mean(dim=(1, 2)).numpy()]

    def pass_nll(self, lm: TokenLM, clip, seconds: float, passes: int, source: str = "") -> list[float]:
        """The first ``seconds`` of sound in whole frames (so every pass is encoded alike), tiled; each pass is
        its frames."""
        frames = int(round(seconds * lm.frame_rate))
        length = frames * lm.hop_length
        clip = audio.excerpt(np.asarray(clip, np.float32), lm.sample_rate, length / lm.sample_rate, source=source)
        codes = lm.encode(torch.from_numpy(np.tile(clip, passes))[None, None])
        nll = lm.token_nll(codes)[0].mean(0).numpy()  # [T]
        return [float(nll[p * frames : (p + 1) * frames].mean()) for p in range(passes)]

    def curve(self, scored: Scored, version: int, what: str, how: str = "mean") -> np.ndarray:
        """The mean over the frame's K codes, whatever ``how``."""
        stats = scored.stats[version]
        values = stats.rank.log() if what == "log_rank" else getattr(stats, what)
        return values.mean(0).numpy()

    def codebook_curves(self, scored: Scored, version: int) -> np.ndarray:
        return scored.stats[version].nll.numpy()

    def alone(self, lm: TokenLM, scored: Scored, window_seconds: float, precision: str = "auto",
              batch_size: int | None = None) -> np.ndarray:
        """``[K, T]``: [`windows_alone`][lossprofile.modality.windows_alone] over windows of whole frames."""
        return windows_alone(lm, scored.codes[0], int(round(window_seconds * lm.frame_rate)), precision, batch_size)


# ---- MIDI -------------------------------------------------------------------------------------------------
def token_windows_alone(lm: TokenLM, codes: torch.Tensor, seconds: np.ndarray, window_seconds: float) -> np.ndarray:
    """[`windows_alone`][lossprofile.modality.windows_alone] for a model over MIDI tokens: codes ``[1, 1, T]``, each token's event time ``seconds``;
    the tokens whose event falls in each window of ``window_seconds`` after the first are scored alone (after BOS).
    Returns ``[T]``."""
    window = (np.asarray(seconds) // window_seconds).astype(int)
    out = np.full(codes.shape[-1], np.nan)
    for w in np.unique(window[window > 0]):
        idx = np.flatnonzero(window == w)
        lo, hi = idx[0], idx[-1] + 1  # tokens are in time order, so a window is one run
        out[lo:hi] = lm.token_statistics(codes[..., lo:hi]).nll[0, 0].numpy()
    return out


def repeated(midi, seconds: float, passes: int):
    """A score excerpt of ``seconds`` (from 0 s) played ``passes`` times in a row."""
    out = copy_midi(midi)
    for inst, source in zip(out.instruments, midi.instruments):
        for p in range(1, passes):
            inst.notes += [type(n)(velocity=n.velocity, pitch=n.pitch, start=n.start + p * seconds,
                                   end=n.end + p * seconds) for n in source.notes]
    return out


def notes_span(midi) -> float:
    """When a score's last note ends (0 without notes)."""
    return max((n.end for inst in midi.instruments for n in inst.notes), default=0.0)


@dataclass(frozen=True)
class Midi(Modality):
    """A model that reads scores as event tokens (see the module docstring)."""

    def pieces(self, kind: str, n: int | None, split: str = "heldout") -> list[Piece]:
        return datasets.arranged_training_midis(n, split) if kind == "training" else datasets.ood_midis(n)

    def read(self, path: str | Path, sample_rate: int):
        return audio.read_midi(path)

    def tokens_per_second(self, lm: TokenLM) -> float:
        return MIDI_TOKENS_PER_SECOND

    def decode(self, lm: TokenLM, codes: torch.Tensor) -> list:
        import io

        import pretty_midi

        return [pretty_midi.PrettyMIDI(io.BytesIO(data)) for data in lm.decode(codes)]

    def write_samples(self, lm: TokenLM, codes: torch.Tensor, paths: Sequence[Path]) -> None:
        for path, data in zip(paths, lm.decode(codes)):
            with atomic_path(path) as tmp:
                Path(tmp).write_bytes(data)

    def excerpt(self, piece: Piece, sample_rate: int, seconds: float):
        midi = audio.read_midi(piece.path)
        return audio.midi_excerpt(midi, audio.midi_first_onset(midi), seconds)

    def variants(self, piece: Piece, perturbations: Sequence, sample_rate: int, frame_rate: float,
                 excerpt_seconds: float, seed: int, *, loudness_dbfs: float | None = None, shorter: bool = False
                 ) -> tuple[object, list]:
        """The piece's score excerpt (``excerpt_seconds`` from its first note) and one perturbed score per
        perturbation ([`apply_in_score`][lossprofile.perturb.score.apply_in_score]); a score has no level and no short clips:
        ``sample_rate``, ``loudness_dbfs`` and ``shorter`` do not apply."""
        if piece.path.suffix.lower() not in audio.MIDI_SUFFIXES:
            raise audio.AudioError(f"{piece.path}: a model over MIDI tokens reads MIDI files, not audio")
        midi = audio.read_midi(piece.path)
        clean = audio.midi_excerpt(midi, audio.midi_first_onset(midi), excerpt_seconds)
        if not clean.instruments:
            raise audio.AudioError(f"{piece.path}: MIDI file has no notes")
        variants = []
        for p in perturbations:
            p = dataclasses.replace(p, seed=derived_seed(seed, piece.dataset, piece.name, p.seed))
            frames = int(round(excerpt_seconds * frame_rate))
            if not isinstance(p, ScorePerturbation) and p.onset_frame + p.span_frames > frames:
                raise audio.AudioError(f"{piece.path}: too short for the window: frames {p.onset_frame}.."
                                       f"{p.onset_frame + p.span_frames}, the excerpt has {frames} "
                                       f"({excerpt_seconds:g} s)")
            variants.append(apply_in_score(p, clean, frame_rate))
        return clean, variants

    def check_perturbations(self, perturbations: Sequence) -> None:
        unusable = sorted({p.kind for p in perturbations if not isinstance(p, ScorePerturbation)
                           and p.kind not in IN_SCORE})
        if unusable:
            raise UsageError(f"{', '.join(map(repr, unusable))} has no analogue in a score; a model over MIDI "
                             f"tokens takes {', '.join(IN_SCORE)} and the score perturbations")

    def versions_of(self, piece: Piece, sample_rate: int, excerpt_seconds: float) -> tuple[object, object, Callable]:
        """The score excerpt from the first note; a damaged whole score is cut at the same start."""
        midi = audio.read_midi(piece.path)
        start = audio.midi_first_onset(midi)
        return (audio.midi_excerpt(midi, start, excerpt_seconds), midi,
                lambda score: audio.midi_excerpt(score, start, excerpt_seconds))

    def passages(self, piece: Piece, sample_rate: int, max_seconds: float) -> Callable[[float, float], object]:
        """Refused where its notes end before 90% of its length."""
        midi = audio.read_midi(piece.path)
        start = audio.midi_first_onset(midi)

        def at(offset: float, seconds: float):
            clip = audio.midi_excerpt(midi, start + offset, seconds)
            if notes_span(clip) < 0.9 * seconds:
                raise audio.AudioError(f"{piece.path}: only {notes_span(clip):.1f} s of notes for a {seconds:g} s "
                                       f"excerpt {offset:g} s after the first note")
            return clip

        return at

    def reference_excerpts(self, piece: Piece, sample_rate: int, seconds: float, offsets: Sequence[float]
                           ) -> list[tuple[float, object]]:
        midi = audio.read_midi(piece.path)
        first = audio.midi_first_onset(midi)
        end = midi.get_end_time()
        out = [(o, audio.midi_excerpt(midi, first + o, seconds)) for o in offsets if first + o + seconds <= end]
        if not out:
            raise audio.AudioError(f"{piece.path}: no {seconds:g} s of notes at offsets {list(offsets)}")
        return out

    def changed_pair(self, score, change: Callable, sample_rate: int, seconds: float, program: int | None = 0
                     ) -> tuple:
        clip = audio.midi_excerpt(score, audio.midi_first_onset(score), seconds)
        return clip, change(clip)

    def profile_excerpt(self, clip, sample_rate: int, excerpt_seconds: float, min_seconds: float, hop_length: int,
                        loudness_dbfs: float | None, source: str):
        """A score (or its file) from its first note; refused with less than ``min_seconds`` of notes."""
        midi = audio.read_midi(clip) if isinstance(clip, (str, Path)) else clip
        out = audio.midi_excerpt(midi, audio.midi_first_onset(midi), excerpt_seconds)
        span = notes_span(out)
        if span < min_seconds:
            raise audio.AudioError(f"{source}: too short for a profile: {span:.2f} s of notes "
                                   f"(minimum {min_seconds:g} s)")
        return out

    def probe_frames(self, clip, hop_length: int, frame_rate: float, excerpt_seconds: float) -> int:
        return int(round(excerpt_seconds * frame_rate))

    def perturb(self, perturbation, clip, sample_rate: int, frame_rate: float):
        return apply_in_score(perturbation, clip, frame_rate)

    def duration(self, clip, sample_rate: int, excerpt_seconds: float) -> float:
        return excerpt_seconds

    def score(self, lm: TokenLM, items: Sequence[tuple[object, Sequence]], *, excerpt_seconds: float,
              method: str = "exact", prompt: str | None = None, batch_size: int | None = None,
              prefix_reuse: bool = True, precision: str = "auto") -> list[Scored]:
        """Each version tokenised and scored alone, exactly (fp32, no prompt: the other options do not apply); the
        frame grid spans ``excerpt_seconds``."""
        out = []
        for clean, variants in items:
            codes, stats, times = [], [], []
            for midi in [clean, *variants]:
                ids, seconds = lm.encode_midi(midi)
                codes.append(ids[0])
                stats.append(TokenStats(*(x[0] for x in lm.token_statistics(ids))))
                times.append(seconds)
            out.append(Scored(codes=codes, stats=stats, times=times, frames=int(round(excerpt_seconds * lm.frame_rate)),
                              frame_rate=lm.frame_rate, seconds=excerpt_seconds, method="exact", precision="fp32",
                              prompt=""))
        return out

    def mean_nll(self, lm: TokenLM, clips: Sequence) -> list[float]:
        """Each score tokenised and scored alone."""
        return [float(lm.token_nll(lm.encode_midi(c)[0])[0, 0].numpy().mean()) for c in clips]

    def pass_nll(self, lm: TokenLM, clip, seconds: float, passes: int, source: str = "") -> list[float]:
        """The first ``seconds`` from the first note, repeated ([`repeated`][lossprofile.modality.repeated]); each pass is the tokens whose
        events fall in its time span."""
        clip = audio.midi_excerpt(clip, audio.midi_first_onset(clip), seconds)
        codes, times = lm.encode_midi(repeated(clip, seconds, passes))
        nll = lm.token_nll(codes)[0, 0].numpy()
        return [float(nll[(times >= p * seconds) & (times < (p + 1) * seconds)].mean()) for p in range(passes)]

    def curve(self, scored: Scored, version: int, what: str, how: str = "mean") -> np.ndarray:
        stats = scored.stats[version]
        values = (stats.rank if what == "log_rank" else getattr(stats, what))[0].numpy().astype(np.float64)
        return frames_of(np.log(values) if what == "log_rank" else values, scored.times[version], scored.frame_rate,
                         scored.frames, how)

    def codebook_curves(self, scored: Scored, version: int) -> np.ndarray:
        return self.curve(scored, version, "nll", "sum")[None]

    def token_counts(self, scored: Scored, version: int) -> np.ndarray:
        times = scored.times[version]
        return frames_of(np.ones(len(times)), times, scored.frame_rate, scored.frames, "sum").astype(int)

    def alone(self, lm: TokenLM, scored: Scored, window_seconds: float, precision: str = "auto",
              batch_size: int | None = None) -> np.ndarray:
        """``[T]``: [`token_windows_alone`][lossprofile.modality.token_windows_alone]."""
        return token_windows_alone(lm, scored.codes[0][None], scored.times[0], window_seconds)

    def check_prompt(self, lm: TokenLM, prompt: str | None) -> None:
        if prompt is not None:
            raise ValueError(f"{lm.name} reads MIDI and takes no text prompt")

    def vocabulary(self, lm: TokenLM):
        """The score tokenizer's vocabulary."""
        return getattr(getattr(lm, "tokenizer", None), "vocab", None)

    def parameters(self, perturbation) -> dict:
        """Waveform parameters (`AUDIO_ONLY_PARAMETERS`) of a perturbation applied in the score are empty."""
        return {name: None if name in AUDIO_ONLY_PARAMETERS and not isinstance(perturbation, ScorePerturbation)
                else value for name, value in perturbation.as_row().items()}


AUDIO = Audio(name="audio", results_name="audio", frame_unit="nats per code", probe_design=ProbeDesign(),
              sample_suffix=".flac", reads_audio_files=True, has_level=True, batched=True, codebooks=True,
              damage_kinds=("audio", "symbolic"))
MIDI = Midi(name="midi", results_name="symbolic", frame_unit="nats per frame (sum over its tokens)",
            probe_design=MIDI_DESIGN, sample_suffix=".mid", reads_audio_files=False, has_level=False, batched=False,
            codebooks=False, damage_kinds=("symbolic", "token"))
MODALITIES = (AUDIO, MIDI)


def modality_of(lm) -> Modality:
    """The modality of a model (`lossprofile.models.base.TokenLM.reads`; None or a model that does not say:
    audio). The one place in the package that reads it."""
    return MIDI if getattr(lm, "reads", "audio") == MIDI.name else AUDIO


def of_results_name(modality: str) -> Modality:
    """The modality whose results go by ``modality`` (its `Modality.results_name`: ``audio``, ``symbolic``)."""
    return next(m for m in MODALITIES if m.results_name == modality)
