"""Benchmark: the published per-file scoring against the batched engine, in one process.

    lossprofile bench [--model tiny | --arch small|medium] [--device cuda] [--pieces 20]

(a) published: one file at a time, fp32, batch 1, every perturbed waveform written to disk
    and read back, the clean excerpt re-scored for every perturbation;
(b) engine: :func:`lossprofile.scoring.score_variants` (in memory, batched, shared prefix,
    bf16 matmuls on GPU).
Both score the same pieces × noise lengths with the exact likelihood. Prints frames per
second for each, the largest per-frame difference between them, and last ``speed-up: N.N×``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from . import audio
from .models import TokenLM, load_model
from .perturb import noise_sweep
from .scoring import frame_mean, score_variants

BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense, SXM


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


def engine(lm: TokenLM, pieces, perturbations, precision: str
           ) -> tuple[float, list[np.ndarray], list[torch.Tensor], list[int]]:
    """The batched engine; returns seconds, per-frame delta curves, each variant's codes and each
    piece's shared decoder steps."""
    sync(lm)
    start = time.perf_counter()
    curves, codes, shared = [], [], []
    for clean in pieces:
        # the published path's files quantize to 16 bits; do the same in memory so both score the same audio
        variants = [pcm16_round_trip(p.apply(clean, lm.sample_rate, lm.frame_rate), lm.sample_rate)
                    for p in perturbations]
        s = score_variants(lm, pcm16_round_trip(clean, lm.sample_rate), variants, precision=precision)
        curves += list((frame_mean(s.variants) - frame_mean(s.clean)).numpy())
        codes += list(s.codes_variants)
        shared.append(s.shared_steps)
    sync(lm)
    return time.perf_counter() - start, curves, codes, shared


def agreement(curves_a, codes_a, curves_b, codes_b) -> tuple[int, float]:
    """(variants whose codes differ, largest per-frame delta difference among those whose codes agree).

    Codes can differ at VQ near-ties (the codec's float rounding; see lossprofile.models.musicgen.codec), and a
    different code is a different sequence to score, so the NLL is compared where codes agree.
    """
    same = [bool(torch.equal(a, b)) for a, b in zip(codes_a, codes_b)]
    diffs = [float(np.abs(a - b).max()) for a, b, ok in zip(curves_a, curves_b, same) if ok]
    return same.count(False), max(diffs, default=float("nan"))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="tiny")
    p.add_argument("--arch", choices=["small", "medium", "large"], default=None,
                   help="random-weight model of a real MusicGen size (speed only)")
    p.add_argument("--device", default=None)
    p.add_argument("--pieces", type=int, default=20)
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--precision", default="auto")
    args = p.parse_args(argv)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.arch:
        from .models.musicgen import MusicLM  # random weights of a real size: MusicGen only
        from .models.musicgen.architecture import build_model, real_architecture

        cfg = real_architecture(args.arch, codec_filters=64, codec_hidden=128)
        lm = MusicLM(build_model(cfg).to(device), name=f"random musicgen-{args.arch}", device=torch.device(device))
    else:
        lm = load_model(args.model, device=device)
    pieces = synthetic_pieces(args.pieces, args.seconds, lm.sample_rate)
    perts = noise_sweep()
    frames = args.pieces * len(perts) * int(args.seconds * lm.frame_rate)
    print(f"model {lm.name} on {device}"
          + (f" ({torch.cuda.get_device_name()})" if device == "cuda" else f" ({torch.get_num_threads()} threads)"))
    print(f"workload: {args.pieces} pieces x {len(perts)} noise lengths x {args.seconds:g} s = {frames} frames")
    engine(lm, pieces[:1], perts[:2], args.precision)  # warm-up (allocations, kernels)
    with tempfile.TemporaryDirectory() as tmp:
        t_pub, c_pub, codes_pub = published(lm, pieces, perts, Path(tmp))
    t_eng, c_eng, codes_eng, shared = engine(lm, pieces, perts, args.precision)
    n_differ, diff = agreement(c_pub, codes_pub, c_eng, codes_eng)
    print(f"{'':22s}{'seconds':>10s}{'frames/s':>12s}")
    print(f"{'(a) published per-file':22s}{t_pub:10.2f}{frames / t_pub:12.1f}")
    print(f"{'(b) engine':22s}{t_eng:10.2f}{frames / t_eng:12.1f}")
    print(f"variants whose codes differ (a) vs (b) at a VQ near-tie: {n_differ} of {len(codes_pub)}")
    print(f"largest per-frame delta difference (a) vs (b) where codes agree: {diff:.2e} nats")
    if device == "cuda" and lm.forward_flops_per_step(1) is not None:
        steps = int(args.seconds * lm.frame_rate) + lm.num_codebooks - 1
        # only the decoder steps actually executed: the shared prefix once, the rest per sequence
        executed = sum(sh + (steps - sh) * (len(perts) + 1) for sh in shared)
        flops = lm.forward_flops_per_step(steps) * executed
        name = torch.cuda.get_device_name()
        peak = next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)
        achieved = flops / t_eng / 1e12
        print(f"engine decoder throughput: {achieved:.1f} TFLOP/s"
              + (f" = {100 * achieved / peak:.1f}% of {name}'s bf16 peak ({peak:.0f})" if peak else ""))
    print(f"speed-up: {t_pub / t_eng:.1f}×")


if __name__ == "__main__":
    main()
