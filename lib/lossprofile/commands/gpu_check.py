"""``lossprofile gpu-check`` (``make gpu-check``): measure the GPU pipeline in minutes (`lossprofile.gpucheck`)."""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from ..threads import add_threads_option


def _save_partial(out: Path, results: dict) -> None:
    # A run cut short by its time limit still leaves every finished step's numbers.
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".partial.json").write_text(json.dumps(results, indent=1, default=float))


def main(argv: list[str] | None = None) -> None:
    import torch
    import transformers

    from .. import bench, gpucheck
    from ..models import load_model

    p = argparse.ArgumentParser(prog="lossprofile gpu-check", description=gpucheck.__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("results/gpu-check.md"), help="the report (markdown; "
                   "written after each step, so a cut-off run keeps what it measured)")
    p.add_argument("--archs", nargs="+", default=["small", "medium", "large"],
                   help="MusicGen sizes with random weights, or 'tiny' (the embedded model; a quick check on CPU)")
    p.add_argument("--pieces", type=int, default=32, help="pieces per benchmark")
    p.add_argument("--pieces-per-batch", type=int, default=16, help="pieces per decoder batch")
    p.add_argument("--device", default="cuda", help="where it runs (cpu: a quick check of the script)")
    p.add_argument("--steps", nargs="+", default=["bench", "stages", "projection", "sweep", "profile", "compile"],
                   choices=["bench", "stages", "projection", "sweep", "profile", "compile"],
                   help="which measurements to run, in this order")
    p.add_argument("--compile-archs", nargs="+", default=["medium"], help="sizes (or 'tiny') whose decode stage "
                   "the compile step measures")
    p.add_argument("--compile-modes", nargs="+", default=["default", "reduce-overhead"],
                   help="torch.compile modes the compile step tries")
    p.add_argument("--budget-minutes", type=float, default=8.0, help="the compile step runs last, and starts a "
                   "mode only while at least --compile-minutes of this remain")
    p.add_argument("--compile-minutes", type=float, default=2.5, help="minutes one mode of the compile step takes "
                   "(compiling each of medium's 48 layers: seconds each)")
    p.add_argument("--sweep", type=Path, default=Path("sweeps/paper.yaml"), help="the sweep to project")
    p.add_argument("--projection-pieces", type=int, default=0, help="pieces the projection measures "
                   "(default: --pieces-per-batch)")
    p.add_argument("--projection-variants", type=int, default=0, help="measure on the first N of the sweep's "
                   "perturbations only and scale (a quick check; default: all)")
    add_threads_option(p)
    args = p.parse_args(argv)
    run_started = time.time()
    gpu = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "cpu"
    results = dict(environment=dict(date=time.strftime("%Y-%m-%d"), gpu=gpu, torch=torch.__version__,
                                    transformers=transformers.__version__), bench=[], stages=[], projection=[])
    sweep = None
    if "projection" in args.steps:
        try:
            sweep = gpucheck.paper_sweep(args.sweep)
        except Exception as err:  # e.g. no pyyaml on the GPU machine: every other step still runs
            results["projection_error"] = f"{type(err).__name__}: {err}"
            print(f"[gpu-check] projection skipped: {results['projection_error']}", flush=True)
        else:
            peak = bench.bf16_peak(gpu)
            results.update(floor=gpucheck.decoder_floor(sweep, peak or bench.BF16_PEAK_TFLOPS["H100"]),
                           peak_tflops=peak)
    rates = {}
    for arch in args.archs if {"bench", "stages", "projection"} & set(args.steps) else []:
        lm = load_model("tiny", device=args.device) if arch == "tiny" else bench.random_musicgen(arch, args.device)
        for step in ("bench", "stages", "projection"):
            if step not in args.steps or (step == "projection" and sweep is None):
                continue
            started = time.time()
            if step == "bench":
                results[step].append(bench.measure(lm, args.pieces, 15.0, "auto", args.pieces_per_batch, 2))
            elif step == "stages":
                results[step].append(bench.stage_seconds(lm, args.pieces, 15.0, "auto", args.pieces_per_batch))
            else:
                rates[arch] = gpucheck.projection_check(lm, args, sweep)
                results[step].append(rates[arch])
                results["projected"] = gpucheck.project(rates, sweep)
            print(f"[gpu-check] {step} {arch}: {time.time() - started:.0f} s", flush=True)
            _save_partial(args.out, results)
        del lm
        torch.cuda.empty_cache() if args.device == "cuda" else None
    for name, check in (("sweep", gpucheck.sweep_check), ("profile", gpucheck.profile_check)):
        if name not in args.steps:
            continue
        started = time.time()
        results[name] = check(args.device, args.pieces, args.pieces_per_batch)
        print(f"[gpu-check] {name}: {time.time() - started:.0f} s", flush=True)
        _save_partial(args.out, results)
    for arch in args.compile_archs if "compile" in args.steps else []:
        used = (time.time() - run_started) / 60
        if args.budget_minutes - used < args.compile_minutes:
            results["compile_skipped"] = (f"{arch} and later sizes: {used:.1f} of the {args.budget_minutes:g} "
                                          f"minutes used, and one mode needs about {args.compile_minutes:g}")
            break
        started = time.time()
        lm = load_model("tiny", device=args.device) if arch == "tiny" else bench.random_musicgen(arch, args.device)
        start_by = run_started + (args.budget_minutes - args.compile_minutes) * 60
        results.setdefault("compile", []).append(bench.compile_check(
            lm, args.pieces, 15.0, "auto", args.pieces_per_batch, args.compile_modes, start_by))
        print(f"[gpu-check] compile {arch}: {time.time() - started:.0f} s", flush=True)
        _save_partial(args.out, results)
        del lm
        torch.cuda.empty_cache() if args.device == "cuda" else None
    text = gpucheck.report(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1, default=float))
    print(text)
