"""Judge music by the shape of a music LM's loss curve: probe features and a label-free score.

The paper proposes reading the per-token loss curve (above all the onset Peak) instead of its
mean. For a piece with no known perturbation we *probe* it: short loudness-matched white-noise
bursts replace the audio at seeded onsets spread over the excerpt, and we measure how the
model reacts, against the clean curve of the same piece. One clean scoring pass and the
batched probe variants share the codec and the decoder's KV cache ([`score_variants`][lossprofile.scoring.score_variants]).

Probe features (nats per code, means over probes; delta = probed NLL - clean NLL per frame):

- ``peak``: mean delta over a burst's ``burst_frames`` frames. How strongly the model's
  expectation was broken. Higher: the model had confident expectations of this music.
- ``assimilation``: mean delta over frames ``burst_frames..long_frames`` of one longer probe
  (``long_frames``, placed at the middle onset). Below 0: once noise is the context, the model
  finds it cheaper than the music (the paper's Context Amnesia).
- ``recovery_excess``: mean delta over the ``recovery_frames`` frames after each burst (the
  music has returned): how much the interruption still costs.
- ``recovery_var``: variance of delta over the same frames (the paper's "oscillates around
  the baseline with higher variance").
- ``recovery_time``: frames after a burst until the smoothed |delta| stays below
  ``settle_nats`` for ``persist_frames`` frames (``recovery_frames`` if it never does).

Token-level baselines of the clean pass (same logits; each a mean over codes):
``mean_nll`` (lower = better: the measure the paper criticises), ``mean_entropy`` (how
uncertain the model is), ``mean_log_rank`` (lower = the true codes rank higher),
``normalized_surprisal`` (Fast-DetectGPT's analytic criterion: sum(nll - entropy) /
sqrt(sum of surprisal variances); near 0 = as surprising as the model itself expects, positive
= more surprising), ``nll_std`` (frame-to-frame variability of the clean curve).

Per-codebook features (models with several codebooks; the paper reads coarse codebooks as semantics and fine ones
as texture): ``peak``, ``assimilation`` and ``mean_nll`` from the first (coarsest) codebook's curves alone
(``*_coarse``) and from the last (finest) one's (``*_fine``), same probes, same pass; NaN for a model with one
code stream.

Scores from passes beyond the probes (`PASS_FEATURES`; each one clean pass more, no probes):

- ``context_gain`` (the windowed normalised likelihood): the excerpt is cut into windows of
  ``context_window_seconds`` (`CONTEXT_WINDOW_SECONDS`) and each window is scored again *alone*, with no
  music before it ([`modality.Modality.alone`][lossprofile.modality.Modality.alone]); ``context_gain`` is the mean over the codes of
  every window after the first of (NLL alone − NLL in context), nats per code (per token for a model over MIDI).
  Higher: the piece's own past makes it more predictable (it has structure the model can use); 0: the model gains
  nothing from the earlier music.
- ``text_alignment`` (text-conditioned models, given ``prompt``): mean over codes of NLL(null condition) −
  NLL(prompt) ([`text_alignment_curve`][lossprofile.analysis.profile.text_alignment_curve] is its per-code curve). Higher: the music fits the text; NaN
  without a prompt or for a model without text conditioning.
- ``binoculars`` (given a ``reference`` model over the same codes): the model's mean NLL over the mean
  cross-entropy between the reference's predictions and the model's ([`binoculars`][lossprofile.analysis.profile.binoculars]; Hans et al. 2024's
  Binoculars score, here the finished model as observer and an earlier checkpoint as the reference). Near 1:
  the piece is as surprising as the reference's own expectations are to the model; below 1: more predictable
  than that (what a model's own samples tend to be); NaN without a reference.

They, like the per-codebook features, are columns of [`profile_scores`][lossprofile.analysis.profile.profile_scores] but not `FEATURES`: the
validation reports each alone ([`analysis.validation.lofo.extra_scores`][lossprofile.analysis.validation.lofo.extra_scores]).

``profile_score`` (higher = better) is the combination of these features that won the validation of
[`lossprofile.analysis.validation`][] (leave-one-family-out on held-out music, metric properties): either a
linear combination of standardised features (fitted weights) or the weight-free average of signed
percentiles; `WEIGHTS_FILE` and `MIDI_WEIGHTS_FILE` ship the recommended one for each embedded
model, with the pieces, families and seed it came from (``provenance``). Every excerpt is brought to
`LOUDNESS_DBFS` first, so a recording's level does not enter the score.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..errors import BadInputError, UsageError
from ..io import derived_seed
from ..modality import AUDIO, MIDI, Scored, modality_of
from ..perturb.probes import ProbeDesign
from ..perturb.waveform import Perturbation
from ..runner import check_excerpt_seconds, pieces_per_batch_for
from ..scoring import stats_batched
from .regions import moving_average, window_assimilation, window_peak
from .statistics import STATISTICS, Curves, curve_statistics, pass_columns

# The recommended score's weights for each modality, written by `lossprofile validate --ship` (make validation)
# from the embedded models; they say which score won, on which pieces and families they were fitted.
WEIGHTS_FILE = Path(__file__).parent / "profile_weights.json"
MIDI_WEIGHTS_FILE = Path(__file__).parent / "profile_weights_midi.json"
WEIGHTS_FILES = {AUDIO.results_name: WEIGHTS_FILE, MIDI.results_name: MIDI_WEIGHTS_FILE}  # modality -> its file
PROBE_FEATURES = ("peak", "assimilation", "recovery_excess", "recovery_var", "recovery_time")
TOKEN_FEATURES = ("mean_nll", "mean_entropy", "mean_log_rank", "normalized_surprisal", "nll_std")
FEATURES = PROBE_FEATURES + TOKEN_FEATURES
CODEBOOK_FEATURES = ("peak_coarse", "peak_fine", "assimilation_coarse", "assimilation_fine", "mean_nll_coarse",
                     "mean_nll_fine")
PASS_FEATURES = ("context_gain", "text_alignment", "binoculars")
CONTEXT_WINDOW_SECONDS = 3.0
EXTRA_FEATURES = CODEBOOK_FEATURES + PASS_FEATURES  # columns beside FEATURES, reported alone by the validation


def options_key(prompt: str | None = None, reference=None) -> dict:
    """What a cached table of [`profile_scores`][lossprofile.analysis.profile.profile_scores] rows depends on beyond the model and the probes: its columns,
    how probes are seeded, the text prompt and the reference model's weights (a part cached under another key is
    scored again)."""
    columns = list(FEATURES + EXTRA_FEATURES) + list(STATISTICS)
    return dict(columns=columns + [c for c in pass_columns() if c not in columns], probes=PROBE_SEEDING, prompt=prompt,
                reference=None if reference is None else reference.fingerprint)


# Probes are one fixed design per seed: the same onsets and the same noise draws for every clip, whatever its name,
# so a clip's profile is a function of its content (and the seed) alone, and a clip and its damaged versions are
# probed alike (common random numbers in every paired comparison).
PROBE_SEEDING = "fixed design per seed"


def probe_seed(seed: int) -> int:
    """The probes' seed for a run seed: the same for every clip (see `PROBE_SEEDING`)."""
    return derived_seed(seed, "probes")


def settle_time(delta: np.ndarray, tolerance: float, persist: int, smooth: int) -> int:
    """Frames until the smoothed ``|delta|`` stays below ``tolerance`` for ``persist`` frames (``len(delta)`` if never)."""
    calm = np.abs(moving_average(delta, smooth)) < tolerance
    run = 0
    for t, ok in enumerate(calm):
        run = run + 1 if ok else 0
        if run == persist:
            return t - persist + 1
    return len(delta)


def probe_features(clean_frames: np.ndarray, probed_frames: np.ndarray, perts: Sequence[Perturbation],
                   design: ProbeDesign) -> dict[str, float]:
    """The probe features from the clean curve ``[T]`` and each probe's curve ``[P, T]`` (frame means)."""
    bursts, long = perts[:-1], perts[-1]
    peaks, excess, var, times = [], [], [], []
    for p, curve in zip(bursts, probed_frames[:-1]):
        delta = curve - clean_frames
        o, end = p.onset_frame, p.onset_frame + p.length_frames
        after = delta[end : end + design.recovery_frames]
        peaks.append(window_peak(delta, o, p.length_frames))
        excess.append(after.mean())
        var.append(after.var())
        times.append(settle_time(after, design.settle_nats, design.persist_frames, design.smooth_frames))
    long_delta = probed_frames[-1] - clean_frames
    assimilation = window_assimilation(long_delta, long.onset_frame, long.length_frames,
                                       peak_frames=design.burst_frames)
    return dict(peak=float(np.mean(peaks)), assimilation=float(assimilation), recovery_excess=float(np.mean(excess)),
                recovery_var=float(np.mean(var)), recovery_time=float(np.mean(times)))


def codebook_features(clean: np.ndarray, probed: np.ndarray, perts: Sequence[Perturbation],
                      design: ProbeDesign) -> dict[str, float]:
    """`CODEBOOK_FEATURES` from the clean NLL ``[K, T]`` and each probe's ``[P, K, T]``: peak, assimilation and
    mean NLL of the coarsest codebook (k = 0) and of the finest (k = K - 1); NaN when K = 1."""
    if clean.shape[0] < 2:
        return dict.fromkeys(CODEBOOK_FEATURES, float("nan"))
    out = {}
    for label, k in (("coarse", 0), ("fine", clean.shape[0] - 1)):
        probe = probe_features(clean[k], probed[:, k], perts, design)
        out.update({f"peak_{label}": probe["peak"], f"assimilation_{label}": probe["assimilation"],
                    f"mean_nll_{label}": float(clean[k].mean())})
    return {name: out[name] for name in CODEBOOK_FEATURES}


def probe_curve(clean_frames: np.ndarray, entropy_frames: np.ndarray, probed_frames: np.ndarray,
                perts: Sequence[Perturbation]) -> pd.DataFrame:
    """What a report draws of one clip: per frame the clean NLL and entropy ``[T]``, ``probe`` (the index of the
    burst whose window holds the frame, −1 outside), ``long_probe`` (the frame lies in the long probe's window) and
    ``nll_probed``: the curve of the last burst that began at or before the frame (its onset, its window and the
    recovery after it), from the probes' curves ``[P, T]`` (bursts, then the long probe, as
    [`perturbations`][lossprofile.perturb.probes.ProbeDesign.perturbations] orders them)."""
    T = len(clean_frames)
    frame = np.arange(T)
    probe, latest = np.full(T, -1), np.full(T, -1)
    for i, p in sorted(enumerate(perts[:-1]), key=lambda ip: ip[1].onset_frame):
        probe[p.onset_frame : p.onset_frame + p.length_frames] = i
        latest[p.onset_frame :] = i
    long = np.zeros(T, bool)
    long[perts[-1].onset_frame : perts[-1].onset_frame + perts[-1].length_frames] = True
    nll_probed = np.where(latest >= 0, probed_frames[np.maximum(latest, 0), frame], np.nan)
    return pd.DataFrame(dict(frame=frame, nll_clean=clean_frames, entropy_clean=entropy_frames, probe=probe,
                             long_probe=long, nll_probed=nll_probed))


def context_gain(nll_in_context: np.ndarray, nll_alone: np.ndarray) -> float:
    """Mean of (NLL scored alone − NLL in context) over the codes of every window after the first; both ``[K, T]``
    (or ``[T]``), NaN where a window's codes are excluded (the first window, a partial tail)."""
    gain = np.asarray(nll_alone, np.float64) - np.asarray(nll_in_context, np.float64)
    return float(np.nanmean(gain)) if np.isfinite(gain).any() else float("nan")


def text_alignment_curve(lm, codes: torch.Tensor, prompt: str, precision: str = "auto") -> np.ndarray:
    """log p(code | prompt) − log p(code | null condition) of codes ``[K, T]``: ``[K, T]`` nats, one pass each way."""
    null = stats_batched(lm, codes[None], precision=precision).nll[0]
    text = stats_batched(lm, codes[None], prompt=prompt, precision=precision).nll[0]
    return (null - text).numpy()


def check_same_codes(lm, reference) -> None:
    """A clear error unless ``reference`` reads the same token ids as ``lm`` (same family, codebooks, vocabulary and
    time grid; for models over MIDI, the same tokenizer vocabulary)."""
    mine = (lm.family, lm.num_codebooks, lm.cardinality, lm.frame_rate)
    theirs = (reference.family, reference.num_codebooks, reference.cardinality, reference.frame_rate)
    vocab = lambda m: modality_of(m).vocabulary(m)
    if mine != theirs or vocab(lm) != vocab(reference):
        raise ValueError(f"reference model {reference.name!r} does not read the codes of {lm.name!r} "
                         f"((family, codebooks, vocabulary, frame rate) {theirs} against {mine}, or another tokenizer)")


def binoculars(lm, reference, codes: torch.Tensor, prompt: str | None = None) -> float:
    """Hans et al.'s Binoculars score of codes ``[1, K, T]``: mean NLL under ``lm`` over the mean cross-entropy
    −Σ_v p_reference(v) log p_lm(v) (each code's prediction; both models' own factorization). Two full passes."""
    logp = lm.token_log_probs(codes, prompt)  # [1, K, T, V]
    ref = reference.token_log_probs(codes, prompt)
    nll = -logp.gather(-1, codes.cpu().long()[..., None])[..., 0]
    cross = -(ref.exp() * logp).sum(-1)
    return float(nll.mean() / cross.mean())


def token_features(nll, entropy, rank, surprisal_var) -> dict[str, float]:
    """Token-level baselines from one forward pass over the clean codes (tensors ``[K, T]``)."""
    total_var = float(surprisal_var.sum())
    return dict(mean_nll=float(nll.mean()), mean_entropy=float(entropy.mean()),
                mean_log_rank=float(torch.log(rank).mean()),
                normalized_surprisal=float((nll - entropy).sum()) / max(total_var, 1e-12) ** 0.5,
                nll_std=float(nll.mean(0).std()))


def load_weights(path: str | Path = WEIGHTS_FILE) -> dict | None:
    """Feature means, standard deviations and weights of ``profile_score`` (None if none are shipped)."""
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else None


def combine(table: pd.DataFrame, weights: dict) -> np.ndarray:
    """``profile_score`` of each row (higher = better): sum of weight × (feature − mean) / std, or, for weights of
    ``kind`` ``rank_average`` (weight-free), the mean over features of direction × (the feature's percentile
    among the reference rows' ``quantiles`` − 0.5)."""
    if weights.get("kind") == "typicality":  # direction-free: the shipped clean reference and its detector
        from .typicality import shipped

        typ = shipped(weights["modality"])
        if typ is None:
            raise FileNotFoundError(f"no clean reference shipped for {weights['modality']!r} (make validation)")
        return typ.score(table)
    if weights.get("kind") == "rank_average":
        parts = []
        for name in weights["features"]:
            q = np.asarray(weights["quantiles"][name])
            parts.append(weights["directions"][name] * (np.interp(table[name].to_numpy(float), q,
                                                                  np.linspace(0, 1, len(q))) - 0.5))
        return np.mean(parts, axis=0)
    score = np.full(len(table), float(weights.get("intercept", 0.0)))
    for name, w in weights["weights"].items():
        score = score + w * (table[name].to_numpy() - weights["mean"][name]) / weights["std"][name]
    return score


def with_score(table: pd.DataFrame, weights: dict | None, modality: str) -> pd.DataFrame:
    """``table`` with ``profile_score`` (NaN without weights) and, where weights are given and the package ships a
    clean reference for ``modality`` (``audio``, ``symbolic``), how typical each clip is of clean music whatever
    ``profile_score`` is: ``typicality`` (the reference's detector), ``typicality_percentile`` among the reference's
    clean clips and ``atypical_1..3``, the statistics furthest from clean music with the reference's range
    (`lossprofile.analysis.typicality.explain`). Empty weights (``{}``: features only, as the validation
    scores) add neither."""
    attrs = dict(table.attrs)
    table = table.assign(profile_score=combine(table, weights) if weights else np.nan)
    if weights:
        from .typicality import explain, shipped

        typ = shipped(modality)
        table = typ.with_bands(table) if typ is not None else table  # band shares against the reference's band
        if typ is not None and all(s in table for s in typ.statistics):
            table = table.join(explain(typ, table))
    table.attrs.update(attrs)
    return table


MIN_SECONDS = 10.0  # a clip shorter than the excerpt is scored over what it has, down to this much sound
# Every excerpt is brought to this RMS level (dBFS) before it is probed: the codec's codes, and with them every
# feature, depend on the input's level, and a quieter recording of the same music should score the same
# (the properties table of lossprofile.analysis.validation measures both settings). None scores the audio as it is.
LOUDNESS_DBFS = -20.0


def check_clips(clips: Sequence, names: Sequence[str] | None, excerpt_seconds: float) -> None:
    """`UsageError` for a call that cannot mean what it says: one waveform given where a list of clips is expected,
    a name per clip missing or repeated (each row and curve is known by its name), an excerpt of no length."""
    if isinstance(clips, (np.ndarray, torch.Tensor)) and clips.ndim == 1:
        raise UsageError("clips is one waveform [S]: give a list of clips, e.g. [wav]")
    if names is not None:
        if len(names) != len(clips):
            raise UsageError(f"names has {len(names)} entries for {len(clips)} clips: give one name per clip")
        repeated = sorted(str(name) for name, n in Counter(names).items() if n > 1)
        if repeated:
            raise UsageError(f"names must be unique (each row and curve is known by its name): "
                             f"{', '.join(map(repr, repeated[:5]))} repeated")
    check_excerpt_seconds(excerpt_seconds)


def profile_scores(lm, clips: Sequence, sample_rate: int, *, excerpt_seconds: float = 15.0,
                   design: ProbeDesign | None = None, seed: int = 0, weights: dict | None = None,
                   names: Sequence[str] | None = None, method: str = "exact", precision: str = "auto",
                   batch_size: int | None = None, pieces_per_batch: int | None = None,
                   min_seconds: float = MIN_SECONDS, loudness_dbfs: float | None = LOUDNESS_DBFS,
                   report: bool = True, prompt: str | None = None, reference=None,
                   context_window_seconds: float = CONTEXT_WINDOW_SECONDS,
                   curves_out: dict | None = None) -> pd.DataFrame:
    """One row per usable clip: every probe and token feature, and ``profile_score`` (higher = better).

    ``clips`` are what the model reads ([`lossprofile.modality`][]): waveforms at ``sample_rate`` (resampled to
    the model's ``lm.sample_rate`` where it differs), or for a model that reads MIDI, MIDI files or ``PrettyMIDI`` scores (``sample_rate`` unused). Each clip is cut to its first
    ``excerpt_seconds`` of sound, or from its first note (as the experiments do), and scored once clean and once
    per probe ([`profile_row`][lossprofile.analysis.profile.profile_row]); an audio model's ``pieces_per_batch`` clips share the decoder's batches
    (default: 16 on a GPU, 1 on CPU; see [`runner.run_experiment`][lossprofile.runner.run_experiment]). Probe onsets and noise are one
    fixed design per ``seed`` (`PROBE_SEEDING`): a clip's row depends on its content, never on its name or
    position. Every registered curve statistic (`lossprofile.analysis.statistics`) is a column too. ``weights``:
    as [`load_weights`][lossprofile.analysis.profile.load_weights] returns (default: the shipped ones of the model's modality; without any,
    ``profile_score`` is NaN and the features are still returned). ``design``: default the modality's
    ([`ProbeDesign`][lossprofile.perturb.probes.ProbeDesign] for audio: noise bursts; `lossprofile.perturb.probes.MIDI_DESIGN` for a model that
    reads MIDI: random-note windows).

    A clip with less sound than ``excerpt_seconds`` but at least ``min_seconds`` is scored over what it has
    (whole frames; ``seconds_scored`` says how much). A clip that cannot be used (shorter still, silent, NaN)
    is named on stderr with its reason (``report``) and left out; ``table.attrs["errors"]`` lists them (piece,
    error).

    Each excerpt is scaled to ``loudness_dbfs`` RMS ([`audio.normalize_rms`][lossprofile.audio.normalize_rms], which also keeps
    peaks below full scale) before probing, so the level of a recording does not enter the score; None keeps
    the audio's own level (a score has none).

    `PASS_FEATURES` (see the module docstring) cost one clean pass each: ``context_gain`` always (windows of
    ``context_window_seconds``), ``text_alignment`` given ``prompt`` (a text-conditioned audio model; the probes and
    every other feature still use the null condition), ``binoculars`` given ``reference`` (a model reading the
    same codes, e.g. ``load_model("tiny-symbolic-base")`` beside ``tiny-symbolic``, or MusicGen small beside
    medium); NaN where they do not apply.

    ``weights={}`` returns the features alone: no ``profile_score`` and no typicality reading (what the validation
    scores with).

    ``curves_out``: a dict that receives each scored clip's [`probe_curve`][lossprofile.analysis.profile.probe_curve] under its name (what a report draws).
    """
    modality = modality_of(lm)
    check_clips(clips, names, excerpt_seconds)
    weights = weights if weights is not None else load_weights(WEIGHTS_FILES[modality.results_name])
    if reference is not None:
        check_same_codes(lm, reference)
    modality.check_prompt(lm, prompt)
    design = design or modality.probe_design
    prepared, errors = [], []
    for i, clip in enumerate(clips):
        name = names[i] if names is not None else str(i)
        try:
            clip = modality.at_rate(clip, sample_rate, lm.sample_rate, source=name)
            clean = modality.profile_excerpt(clip, lm.sample_rate, excerpt_seconds, min_seconds, lm.hop_length,
                                             loudness_dbfs, source=name)
            perts = design.perturbations(modality.probe_frames(clean, lm.hop_length, lm.frame_rate, excerpt_seconds),
                                         probe_seed(seed))
        except BadInputError as err:
            if report:
                tqdm.write(f"skipped {err}", file=sys.stderr)
            errors.append(dict(piece=name, error=str(err)))
            continue
        prepared.append((name, perts, clean, [modality.perturb(p, clean, lm.sample_rate, lm.frame_rate)
                                              for p in perts]))
    rows, curves = [], {}
    step = pieces_per_batch_for(lm, pieces_per_batch)
    chunks: list[list] = []
    for item in prepared:  # pieces share a decoder batch only when they are equally long
        if chunks and len(chunks[-1]) < step and chunks[-1][0][2].size == item[2].size:
            chunks[-1].append(item)
        else:
            chunks.append([item])
    for chunk in chunks:
        scored = modality.score(lm, [(clean, variants) for _, _, clean, variants in chunk],
                                excerpt_seconds=excerpt_seconds, method=method, precision=precision,
                                batch_size=batch_size)
        for (name, perts, clean, _), one in zip(chunk, scored):
            row, curves[name] = profile_row(lm, one, perts, design, prompt, reference, precision, batch_size,
                                            context_window_seconds, residual=lm.quantization_residual(clean))
            rows.append(dict(piece=name, **row, seconds_scored=modality.duration(clean, lm.sample_rate, excerpt_seconds)))
    table = pd.DataFrame(rows, columns=None if rows else ["piece", "seconds_scored"])
    table.attrs["errors"] = errors
    if curves_out is not None:
        curves_out.update(curves)
    if table.empty:
        table["profile_score"] = np.nan
        return table
    table = with_score(table, weights, modality.results_name)
    table.attrs["probe_design"] = dataclasses.asdict(design)
    table.attrs["loudness_dbfs"] = modality.loudness(loudness_dbfs)
    table.attrs.update(prompt=prompt, reference=None if reference is None else reference.name,
                       context_window_seconds=context_window_seconds)
    return table


def profile_row(lm, scored: Scored, perts: Sequence, design: ProbeDesign, prompt: str | None = None, reference=None,
                precision: str = "auto", batch_size: int | None = None,
                context_window_seconds: float = CONTEXT_WINDOW_SECONDS, *, residual: np.ndarray | None = None
                ) -> tuple[dict, pd.DataFrame]:
    """One scored clip's features ([`profile_scores`][lossprofile.analysis.profile.profile_scores]' columns but its name and ``seconds_scored``) and its
    [`probe_curve`][lossprofile.analysis.profile.probe_curve], from the clean version and its probes (``perts``) as the model scored them. The curves
    are on the modality's frame grid ([`modality.Modality.curve`][lossprofile.modality.Modality.curve]): a frame's NLL is the mean over
    an audio model's codebooks, the sum over a score's tokens. ``residual``: the codec's quantisation residual norms ``[K + 1, T]`` of the clean
    input (``TokenLM.quantization_residual``), None where the family has none (its codec statistics are NaN)."""
    modality = modality_of(lm)
    clean = scored.stats[0]
    frame_nll = modality.curve(scored, 0, "nll", "sum")
    frame_entropy = modality.curve(scored, 0, "entropy", "sum")  # a score's frame: its tokens' sum, as its NLL
    probes = range(1, len(scored.stats))
    probed = np.stack([modality.curve(scored, i, "nll", "sum") for i in probes])
    codebooks = (codebook_features(modality.codebook_curves(scored, 0),
                                   np.stack([modality.codebook_curves(scored, i) for i in probes]), perts, design)
                 if modality.codebooks else {})  # a score's one token stream has no codebooks to tell apart
    codes = scored.codes[0]
    passes = dict(
        context_gain=context_gain(clean.nll.numpy(), modality.alone(lm, scored, context_window_seconds, precision,
                                                                    batch_size)),
        text_alignment=float(text_alignment_curve(lm, codes, prompt, precision).mean()) if prompt else np.nan,
        binoculars=binoculars(lm, reference, codes[None]) if reference is not None else np.nan)
    statistics = curve_statistics(Curves(
        nll=clean.nll.numpy().astype(np.float64), entropy=clean.entropy.numpy().astype(np.float64),
        codes=codes.numpy(), frame_nll=frame_nll.astype(np.float64), frame_entropy=frame_entropy.astype(np.float64),
        frame_rate=lm.frame_rate, cardinality=lm.cardinality, modality=modality.name, residual=residual))
    row = dict(**probe_features(frame_nll, probed, perts, design),
               **token_features(clean.nll, clean.entropy, clean.rank, clean.surprisal_var),
               **codebooks, **passes, **statistics)
    return row, probe_curve(frame_nll, frame_entropy, probed, perts)
