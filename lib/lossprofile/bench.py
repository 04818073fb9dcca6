"""Benchmark: the published per-file scoring against the batched engine, in one process.

    lossprofile bench [--model tiny | --arch small|medium] [--device cuda] [--pieces 20]

(a) published: one file at a time, fp32, batch 1, every perturbed waveform written to disk
    and read back, the clean excerpt re-scored for every perturbation;
(b) engine: [`scoring.score_variants`][lossprofile.scoring.score_variants] piece by piece (in memory, batched, shared
    prefix, bf16 matmuls on GPU);
(c) pipeline: [`scoring.score_many`][lossprofile.scoring.score_many], the decoder batched across ``--pieces-per-batch``
    pieces, each keeping its own shared prefix.
All score the same pieces × noise lengths with the exact likelihood ((a) only the first
``--published-pieces``: its rate is what is compared). Prints frames per second for each, the largest
per-frame difference between them, the decoder's share of the bf16 peak on a GPU, and last
``speed-up: N.N×`` of the pipeline over the published path.
"""

from __future__ import annotations

import math
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from . import audio
from .models import TokenLM
from .perturb import noise_sweep
from .runner import prepare_workers
from .scoring import GROUP_COST_STEPS, encode_many, frame_mean, score_codes, score_many

BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense, SXM


def bf16_peak(device_name: str) -> float | None:
    """Dense bf16 peak TFLOP/s of a GPU named ``device_name`` (``torch.cuda.get_device_name()``), None if unknown."""
    return next((v for k, v in BF16_PEAK_TFLOPS.items() if k in device_name), None)


def synthetic_pieces(n: int, seconds: float, sample_rate: int, seed: int = 0) -> list[np.ndarray]:
    """Harmonic tone sequences with a little noise: stand-ins when no rendered data is wanted."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    out = []
    for _ in range(n):
        notes = 220 * 2 ** (rng.integers(0, 12, int(seconds * 4) + 1) / 12)
        f = notes[(t * 4).astype(int)]
        wav = 0.2 * np.sin(2 * np.pi * np.cumsum(f) / sample_rate) + 0.01 * rng.standard_normal(t.size)
        out.append(wav.astype(np.float32))
    return out


def pcm16_round_trip(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """``wav`` as it reads back from a 16-bit file, without touching the disk (libsndfile's own scaling)."""
    import io

    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, np.clip(wav, -1, 1), sample_rate, subtype="PCM_16", format="WAV")
    buffer.seek(0)
    return sf.read(buffer, dtype="float32")[0]


def sync(lm: TokenLM) -> None:
    if lm.device.type == "cuda":
        torch.cuda.synchronize()


def published(lm: TokenLM, pieces, perturbations, workdir: Path) -> tuple[float, list[np.ndarray], list[torch.Tensor]]:
    """The published per-file loop; returns seconds, per-frame delta curves and each variant's codes."""
    sync(lm)
    start = time.perf_counter()
    curves, codes_out = [], []
    for i, clean in enumerate(pieces):
        for j, p in enumerate(perturbations):
            path = workdir / f"piece{i}_pert{j}.wav"
            audio.save_audio(path, p.apply(clean, lm.sample_rate, lm.frame_rate), lm.sample_rate)
            audio.save_audio(workdir / f"piece{i}_clean.wav", clean, lm.sample_rate)
            nll = []
            for f in (workdir / f"piece{i}_clean.wav", path):
                wav = audio.load_audio(f, lm.sample_rate)
                codes = lm.encode(torch.from_numpy(wav)[None, None])
                nll.append(frame_mean(lm.token_nll(codes))[0].numpy())
            curves.append(nll[1] - nll[0])
            codes_out.append(codes[0].cpu())
    sync(lm)
    return time.perf_counter() - start, curves, codes_out


def prepared(lm: TokenLM, clean: np.ndarray, perturbations) -> tuple[np.ndarray, list[np.ndarray]]:
    """A piece and its variants as (a)'s files read back: 16-bit, but in memory."""
    return (pcm16_round_trip(clean, lm.sample_rate),
            [pcm16_round_trip(p.apply(clean, lm.sample_rate, lm.frame_rate), lm.sample_rate) for p in perturbations])


def engine(lm: TokenLM, pieces, perturbations, precision: str, pieces_per_batch: int = 1
           ) -> tuple[float, list[np.ndarray], list[torch.Tensor], list[int], int]:
    """The engine, ``pieces_per_batch`` pieces per decoder batch (1: [`score_variants`][lossprofile.scoring.score_variants] per piece, everything
    on one thread); returns seconds, per-frame delta curves, each variant's codes, each piece's prefix groups
    (rows, shared decoder steps) and how many variants have exactly their clean piece's codes (a variant the codec
    does not see costs the decoder nothing: a benchmark where most are so measures little). Several pieces per
    batch is the runner's pipeline: CPU threads prepare the next batch meanwhile."""
    sync(lm)
    start = time.perf_counter()
    curves, codes, shared, unchanged = [], [], [], 0
    starts = range(0, len(pieces), pieces_per_batch)
    workers = 1 if pieces_per_batch == 1 else prepare_workers(pieces_per_batch)
    with ThreadPoolExecutor(workers) as pool:
        def submit(lo: int) -> list:
            return [pool.submit(prepared, lm, clean, perturbations) for clean in pieces[lo : lo + pieces_per_batch]]

        overlap = pieces_per_batch > 1
        ahead = submit(starts[0])
        for k in range(len(starts)):
            batch = [f.result() for f in ahead]
            following = starts[k + 1] if k + 1 < len(starts) else None
            if overlap and following is not None:
                ahead = submit(following)
            for s in score_many(lm, batch, precision=precision):
                curves += list((frame_mean(s.nll_variants) - frame_mean(s.nll_clean)).numpy())
                codes += list(s.codes_variants)
                shared.append(s.prefix_groups)
                unchanged += sum(bool(torch.equal(v, s.codes_clean)) for v in s.codes_variants)
            if not overlap and following is not None:
                ahead = submit(following)
    sync(lm)
    return time.perf_counter() - start, curves, codes, shared, unchanged


def stage_seconds(lm: TokenLM, n_pieces: int, seconds: float, precision: str, pieces_per_batch: int) -> dict:
    """Where (c)'s time goes: seconds to prepare the waveforms on the CPU (perturb, 16-bit round trip), to
    encode them (codec, [`encode_many`][lossprofile.scoring.encode_many] as [`score_many`][lossprofile.scoring.score_many] does) and to decode them (decoder, statistics
    and copies back, [`score_codes`][lossprofile.scoring.score_codes] on those codes), per batch of pieces; and the decode stage's rate in
    TFLOP/s (the decoder's forward FLOPs of the row-steps it ran), with its share of the bf16 peak on a known GPU:
    the decoder's own efficiency, which the pipeline's rate hides while the codec or the CPU limits it."""
    pieces = synthetic_pieces(n_pieces, seconds, lm.sample_rate)
    perts = noise_sweep()
    engine(lm, pieces[:2], perts[:2], precision, 2)  # warm-up
    out = dict(model=lm.name, pieces=n_pieces, pieces_per_batch=pieces_per_batch, prepare=0.0, encode=0.0, decode=0.0)
    steps = int(seconds * lm.frame_rate) + lm.num_codebooks - 1
    row_steps = 0
    for lo in range(0, n_pieces, pieces_per_batch):
        start = time.perf_counter()
        batch = [prepared(lm, clean, perts) for clean in pieces[lo : lo + pieces_per_batch]]
        out["prepare"] += time.perf_counter() - start
        sync(lm)
        start = time.perf_counter()
        codes = encode_many(lm, batch)
        sync(lm)
        out["encode"] += time.perf_counter() - start
        start = time.perf_counter()
        scores = score_codes(lm, codes, precision=precision)
        sync(lm)
        out["decode"] += time.perf_counter() - start
        row_steps += sum(decoder_row_steps(s.prefix_groups, steps) for s in scores)
    out.update(score=out["encode"] + out["decode"], decoder_row_steps=row_steps)
    if lm.forward_flops_per_step(1) is not None:
        out["decode_tflops"] = lm.forward_flops_per_step(steps) * row_steps / out["decode"] / 1e12
        peak = bf16_peak(torch.cuda.get_device_name()) if lm.device.type == "cuda" else None
        if peak:
            out["decode_peak_share"] = out["decode_tflops"] / peak
    return out


def compile_check(lm: TokenLM, n_pieces: int, seconds: float, precision: str, pieces_per_batch: int,
                  modes: Sequence[str] = ("default", "reduce-overhead"), start_by: float | None = None) -> dict:
    """The decode stage ([`score_codes`][lossprofile.scoring.score_codes] on the same encoded codes, ``pieces_per_batch`` pieces per call)
    eager and with the decoder compiled in each of ``modes`` (``torch.compile``'s: ``reduce-overhead`` adds CUDA
    graphs; [`models.musicgen.MusicLM.compiled_decoder`][lossprofile.models.musicgen.model.MusicLM.compiled_decoder]): seconds of the first pass
    (compilation included) and of a second, the speed-up over eager, the decoder's TFLOP/s and the largest
    per-code NLL difference from eager. A mode that fails is reported with its error, and the check goes on; one
    that would start after ``start_by`` (``time.time()``; compiling a large model takes minutes) is reported as
    not run."""
    import torch._dynamo

    pieces, perts = synthetic_pieces(n_pieces, seconds, lm.sample_rate), noise_sweep()
    codes = []
    for lo in range(0, n_pieces, pieces_per_batch):
        codes += encode_many(lm, [prepared(lm, clean, perts) for clean in pieces[lo : lo + pieces_per_batch]])

    def decode() -> tuple[float, list]:
        sync(lm)
        start, scores = time.perf_counter(), []
        for lo in range(0, len(codes), pieces_per_batch):
            scores += score_codes(lm, codes[lo : lo + pieces_per_batch], precision=precision)
        sync(lm)
        return time.perf_counter() - start, scores

    decode()  # warm-up
    eager_seconds, eager = decode()
    steps = int(seconds * lm.frame_rate) + lm.num_codebooks - 1
    row_steps = sum(decoder_row_steps(s.prefix_groups, steps) for s in eager)
    flops = (lm.forward_flops_per_step(steps) or math.nan) * row_steps
    peak = (bf16_peak(torch.cuda.get_device_name()) if lm.device.type == "cuda" else None) or math.nan
    out = dict(model=lm.name, pieces=n_pieces, pieces_per_batch=pieces_per_batch, decoder_row_steps=row_steps,
               eager_seconds=eager_seconds, eager_tflops=flops / eager_seconds / 1e12,
               eager_peak_share=flops / eager_seconds / 1e12 / peak, modes=[])
    for mode in modes:
        if start_by is not None and time.time() > start_by:
            out["modes"].append(dict(mode=mode, error="not run: out of the time budget"))
            continue
        torch._dynamo.reset()  # each mode compiles from scratch
        try:
            with lm.compiled_decoder(mode):
                first, _ = decode()
                second, scores = decode()
        except Exception as err:  # e.g. CUDA graphs and the KV cache: reported, the check goes on
            out["modes"].append(dict(mode=mode, error=f"{type(err).__name__}: {err}"[:400]))
            continue
        diff = max(float((a - b).abs().max()) for s, e in zip(scores, eager)
                   for a, b in ((s.nll_clean, e.nll_clean), (s.nll_variants, e.nll_variants)))
        out["modes"].append(dict(mode=mode, first_seconds=first, seconds=second, speed_up=eager_seconds / second,
                                 tflops=flops / second / 1e12, peak_share=flops / second / 1e12 / peak,
                                 max_nll_difference=diff))
    torch._dynamo.reset()
    return out


def sweep_rate(lm: TokenLM, perturbations, n_pieces: int, seconds: float, precision: str, pieces_per_batch: int
               ) -> dict:
    """(c) on ``n_pieces`` synthetic pieces × a sweep's ``perturbations`` (e.g. the paper sweep's 81 for one data
    kind): seconds per piece, from which a whole sweep's time is projected (`lossprofile.gpucheck.project`)."""
    pieces = synthetic_pieces(n_pieces, seconds, lm.sample_rate, seed=3)
    engine(lm, pieces[:2], perturbations[:4], precision, 2)  # warm-up
    elapsed, curves, _, _, _ = engine(lm, pieces, perturbations, precision, pieces_per_batch)
    frames = sum(len(c) for c in curves)
    return dict(model=lm.name, pieces=n_pieces, variants=len(perturbations), seconds=elapsed,
                seconds_per_piece=elapsed / n_pieces, fps=frames / elapsed)


def prefix_groups_gain(lm: TokenLM, perturbations, n_pieces: int, seconds: float, precision: str) -> dict:
    """The decoder stage alone (codes encoded beforehand) on ``perturbations`` that change at several frames (the
    paper sweep's 81: frame 0 to 700), one prefix per piece (``group_cost_steps=inf``)
    against prefix groups ([`scoring.prefix_groups`][lossprofile.scoring.prefix_groups], the default): seconds, decoder row-steps,
    and the largest difference between the two's per-code NLL."""
    pieces = synthetic_pieces(n_pieces, seconds, lm.sample_rate, seed=4)
    codes = encode_many(lm, [prepared(lm, clean, perturbations) for clean in pieces])
    steps = int(seconds * lm.frame_rate) + lm.num_codebooks - 1
    out, nll = {}, {}
    score_codes(lm, codes[:1], precision=precision)  # warm-up
    for label, cost in (("one_prefix", math.inf), ("groups", GROUP_COST_STEPS)):
        sync(lm)
        start = time.perf_counter()
        scores = score_codes(lm, codes, precision=precision, group_cost_steps=cost)
        sync(lm)
        out[f"{label}_seconds"] = time.perf_counter() - start
        out[f"{label}_row_steps"] = sum(decoder_row_steps(s.prefix_groups, steps) for s in scores)
        nll[label] = torch.cat([torch.cat([s.nll_clean[None], s.nll_variants]) for s in scores])
    return dict(pieces=n_pieces, variants=len(perturbations), **out,
                max_nll_difference=float((nll["one_prefix"] - nll["groups"]).abs().max()))


def decoder_row_steps(prefix_groups, steps: int) -> int:
    """Decoder steps × rows a piece's scoring executed (`lossprofile.scoring.Scores.prefix_groups`): each
    group's shared prefix once, the rest of its ``steps`` per row."""
    return sum(shared + rows * (steps - shared) for rows, shared in prefix_groups)


def agreement(curves_a, codes_a, curves_b, codes_b) -> tuple[int, float]:
    """(variants whose codes differ, largest per-frame delta difference among those whose codes agree).

    Codes can differ at VQ near-ties (the codec's float rounding; see lossprofile.models.musicgen.codec), and a
    different code is a different sequence to score, so the NLL is compared where codes agree.
    """
    same = [bool(torch.equal(a, b)) for a, b in zip(codes_a, codes_b)]
    diffs = [float(np.abs(a - b).max()) for a, b, ok in zip(curves_a, curves_b, same) if ok]
    return same.count(False), max(diffs, default=float("nan"))


def measure(lm: TokenLM, n_pieces: int, seconds: float, precision: str, pieces_per_batch: int,
            published_pieces: int) -> dict:
    """(a), (b) and (c) on ``n_pieces`` synthetic pieces × the paper's noise lengths → a dict of numbers."""
    pieces = synthetic_pieces(n_pieces, seconds, lm.sample_rate)
    perts = noise_sweep()
    per_piece = len(perts) * int(seconds * lm.frame_rate)
    frames, n_pub = n_pieces * per_piece, min(n_pieces, published_pieces)
    engine(lm, pieces[:2], perts[:2], precision, 2)  # warm-up (allocations, kernels)
    with tempfile.TemporaryDirectory() as tmp:
        t_pub, c_pub, codes_pub = published(lm, pieces[:n_pub], perts, Path(tmp))
    t_eng, c_eng, codes_eng, shared, unchanged = engine(lm, pieces, perts, precision)
    t_pipe, c_pipe, codes_pipe, _, _ = engine(lm, pieces, perts, precision, pieces_per_batch)
    n_differ, diff = agreement(c_pub, codes_pub, c_eng[: len(c_pub)], codes_eng[: len(c_pub)])
    n_differ_bc, diff_bc = agreement(c_eng, codes_eng, c_pipe, codes_pipe)
    r = dict(model=lm.name, pieces=n_pieces, noise_lengths=len(perts), frames=frames, published_pieces=n_pub,
             pieces_per_batch=pieces_per_batch, published_seconds=t_pub, published_fps=n_pub * per_piece / t_pub,
             engine_seconds=t_eng, engine_fps=frames / t_eng, pipeline_seconds=t_pipe, pipeline_fps=frames / t_pipe,
             codes_differ_ab=n_differ, published_variants=len(codes_pub), max_diff_ab=diff,
             codes_differ_bc=n_differ_bc, variants=len(codes_eng), max_diff_bc=diff_bc,
             variants_unchanged=unchanged,
             decoder_row_steps=sum(decoder_row_steps(groups, int(seconds * lm.frame_rate) + lm.num_codebooks - 1)
                                   for groups in shared))
    if lm.device.type == "cuda" and lm.forward_flops_per_step(1) is not None:
        steps = int(seconds * lm.frame_rate) + lm.num_codebooks - 1
        flops = lm.forward_flops_per_step(steps) * sum(decoder_row_steps(groups, steps) for groups in shared)
        r.update(engine_tflops=flops / t_eng / 1e12, pipeline_tflops=flops / t_pipe / 1e12,
                 gpu=torch.cuda.get_device_name())
        peak = bf16_peak(r["gpu"])
        if peak:
            r.update(engine_peak_share=r["engine_tflops"] / peak, pipeline_peak_share=r["pipeline_tflops"] / peak)
    return r


def random_musicgen(arch: str, device: str) -> TokenLM:
    """A random-weight MusicGen of a real size (``small``, ``medium``, ``large``): speed only. Its codec is
    calibrated on 12 synthetic pieces of 15 s, not the benchmark's (about 4 frames per code:
    `lossprofile.models.musicgen.architecture.calibrate_codec`), so that codes follow the input."""
    from .models.musicgen import MusicLM  # random weights of a real size: MusicGen only
    from .models.musicgen.architecture import build_model, calibrate_codec, real_architecture

    cfg = real_architecture(arch, codec_filters=64, codec_hidden=128)
    model = build_model(cfg).to(device)
    calibration = np.stack(synthetic_pieces(12, 15.0, cfg.audio_encoder.sampling_rate, seed=99))[:, None]
    return MusicLM(calibrate_codec(model, torch.from_numpy(calibration)), name=f"random musicgen-{arch}",
                   device=torch.device(device))
