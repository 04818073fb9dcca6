"""One GPU check in a few minutes: ``make gpu-check`` (``lossprofile gpu-check``).

GPU time comes in minutes, so one run measures everything the GPU pipeline promises and writes it to
one table:

1. the benchmark (:func:`lossprofile.bench.measure`) for random-weight MusicGen small, medium and large:
   frames per second of the published per-file path (a), the engine piece by piece (b) and the pipeline
   across pieces (c), the decoder's TFLOP/s and share of the dense bf16 peak, (c)'s speed-up over (a),
   and how far (c)'s per-frame deltas are from (b)'s;
2. the smoke sweep's perturbations through the runner with the embedded model, on synthetic pieces
   (no rendered data needed), piece by piece and as the pipeline, with the largest difference between
   the two tables;
3. the profile score's cost per piece, piece by piece and across pieces.

Each step's time is printed as it ends; the table goes to ``--out`` (markdown) beside a JSON of every
number.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import transformers

from . import bench
from .analysis.profile import profile_scores
from .audio import save_audio
from .data.datasets import list_pieces
from .models import load_model
from .perturb import Perturbation
from .runner import run_experiment

SMOKE = [Perturbation("noise", 250, 10), Perturbation("noise", 250, 100),
         Perturbation("shuffle", 250, 400, segment_frames=10)]


def sweep_check(device: str, n_pieces: int, pieces_per_batch: int) -> dict:
    """The smoke sweep's perturbations over ``n_pieces`` synthetic pieces: per piece against the pipeline."""
    lm = load_model("tiny", device=device)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "pieces"
        for i, wav in enumerate(bench.synthetic_pieces(n_pieces, 16.0, lm.sample_rate, seed=1)):
            save_audio(folder / f"piece{i:03d}.wav", wav, lm.sample_rate)
        pieces = list_pieces(folder, "ood")
        run_experiment(lm, pieces[:2], SMOKE, Path(tmp) / "warm", progress=False, pieces_per_batch=2)
        timings, tables = {}, {}
        for label, batch in (("per piece", 1), ("pipeline", pieces_per_batch)):
            start = time.perf_counter()
            tables[label] = run_experiment(lm, pieces, SMOKE, Path(tmp) / label.replace(" ", "_"), progress=False,
                                           pieces_per_batch=batch)
            timings[label] = time.perf_counter() - start
    a, b = tables["per piece"], tables["pipeline"]
    numbers = [c for c in a.columns if a[c].dtype.kind == "f"]
    diff = np.nanmax(np.abs(a[numbers].to_numpy() - b[numbers].to_numpy()))
    return dict(pieces=n_pieces, rows=len(a), per_piece_seconds=timings["per piece"],
                pipeline_seconds=timings["pipeline"], max_table_difference=float(diff),
                same_non_float_columns=bool(a.drop(columns=numbers).equals(b.drop(columns=numbers))))


def profile_check(device: str, n_pieces: int, pieces_per_batch: int) -> dict:
    """Seconds per 15 s piece of ``profile_scores`` (its probes included), per piece and across pieces."""
    lm = load_model("tiny", device=device)
    wavs = bench.synthetic_pieces(n_pieces, 16.0, lm.sample_rate, seed=2)
    profile_scores(lm, wavs[:2], lm.sample_rate, pieces_per_batch=2)  # warm-up
    out = {}
    for label, batch in (("per_piece", 1), ("pipeline", pieces_per_batch)):
        start = time.perf_counter()
        table = profile_scores(lm, wavs, lm.sample_rate, pieces_per_batch=batch)
        out[f"{label}_seconds_per_piece"] = (time.perf_counter() - start) / n_pieces
        out[f"{label}_scores"] = table["profile_score"].to_numpy()
    diff = float(np.nanmax(np.abs(out.pop("per_piece_scores") - out.pop("pipeline_scores"))))
    return dict(pieces=n_pieces, **out, max_score_difference=diff)


def report(results: dict) -> str:
    env = results["environment"]
    lines = [f"# GPU check ({env['date']}, {env['gpu']}, torch {env['torch']}, transformers {env['transformers']})",
             "", "Command: `make gpu-check` (`lossprofile gpu-check`). Random weights of the real architectures; "
             "synthetic 15 s pieces x the paper's six noise lengths.", "",
             "| model | (a) published, frames/s | (b) engine per piece | (c) pipeline | (c) vs (a) | "
             "decoder TFLOP/s (b) / (c) | share of bf16 peak (c) | codes differing (b) vs (c) | "
             "max per-frame difference (b) vs (c), nats |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results.get("bench", []):
        lines.append(f"| {r['model']} | {r['published_fps']:,.0f} | {r['engine_fps']:,.0f} | {r['pipeline_fps']:,.0f} "
                     f"| {r['pipeline_fps'] / r['published_fps']:.1f}× | {r.get('engine_tflops', float('nan')):.1f} / "
                     f"{r.get('pipeline_tflops', float('nan')):.1f} | {r.get('pipeline_peak_share', float('nan')):.1%} "
                     f"| {r['codes_differ_bc']} of {r['variants']} | {r['max_diff_bc']:.1e} |")
    if results.get("stages"):
        lines += ["", "Where the pipeline's time goes (seconds for all pieces; encode and decode on the GPU, "
                  "prepare = perturb + 16-bit round trip on the CPU):", "",
                  "| model | pieces | prepare | encode (codec) | decode (decoder + statistics) |", "|---|---|---|---|---|"]
        lines += [f"| {r['model']} | {r['pieces']} | {r['prepare']:.2f} | {r['encode']:.2f} | {r['decode']:.2f} |"
                  for r in results["stages"]]
    if "sweep" in results and "profile" in results:
        lines += _sweep_lines(results["sweep"], results["profile"])
    return "\n".join(lines) + "\n"


def _sweep_lines(s: dict, p: dict) -> list[str]:
    return ["", f"Smoke-sweep perturbations, embedded model, {s['pieces']} pieces ({s['rows']:,} rows): "
              f"{s['per_piece_seconds']:.1f} s piece by piece, {s['pipeline_seconds']:.1f} s as the pipeline; "
              f"largest difference between the two tables {s['max_table_difference']:.1e} "
              f"(other columns identical: {s['same_non_float_columns']}).",
              f"Profile score, embedded model, {p['pieces']} pieces: {p['per_piece_seconds_per_piece']:.3f} s per piece "
              f"alone, {p['pipeline_seconds_per_piece']:.3f} s across pieces; largest profile_score difference "
              f"{p['max_score_difference']:.1e}."]


def _save_partial(out: Path, results: dict) -> None:
    # A run cut short by its time limit still leaves every finished step's numbers.
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".partial.json").write_text(json.dumps(results, indent=1, default=float))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="lossprofile gpu-check", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("results/gpu-check.md"))
    p.add_argument("--archs", nargs="+", default=["small", "medium", "large"],
                   help="MusicGen sizes with random weights, or 'tiny' (the embedded model; a quick check on CPU)")
    p.add_argument("--pieces", type=int, default=32, help="pieces per benchmark")
    p.add_argument("--pieces-per-batch", type=int, default=16)
    p.add_argument("--device", default="cuda")
    p.add_argument("--steps", nargs="+", default=["bench", "stages", "sweep", "profile"],
                   choices=["bench", "stages", "sweep", "profile"])
    args = p.parse_args(argv)
    gpu = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "cpu"
    results = dict(environment=dict(date=time.strftime("%Y-%m-%d"), gpu=gpu, torch=torch.__version__,
                                    transformers=transformers.__version__), bench=[], stages=[])
    for arch in args.archs:
        lm = load_model("tiny", device=args.device) if arch == "tiny" else bench.random_musicgen(arch, args.device)
        for step in ("bench", "stages"):
            if step not in args.steps:
                continue
            started = time.time()
            results[step].append(bench.measure(lm, args.pieces, 15.0, "auto", args.pieces_per_batch, 2)
                                 if step == "bench" else
                                 bench.stage_seconds(lm, args.pieces, 15.0, "auto", args.pieces_per_batch))
            print(f"[gpu-check] {step} {arch}: {time.time() - started:.0f} s", flush=True)
            _save_partial(args.out, results)
        del lm
        torch.cuda.empty_cache() if args.device == "cuda" else None
    for name, check in (("sweep", sweep_check), ("profile", profile_check)):
        if name not in args.steps:
            continue
        started = time.time()
        results[name] = check(args.device, args.pieces, args.pieces_per_batch)
        print(f"[gpu-check] {name}: {time.time() - started:.0f} s", flush=True)
        _save_partial(args.out, results)
    text = report(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1, default=float))
    print(text)


if __name__ == "__main__":
    main()
