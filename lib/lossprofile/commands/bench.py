"""``lossprofile bench`` (``make bench``): the published per-file scoring against the batched engine, in one
process (`lossprofile.bench`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..threads import add_threads_option


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark, print its report; returns `lossprofile.bench.measure`'s numbers."""
    import torch

    from .. import bench
    from ..models import load_model

    p = argparse.ArgumentParser(prog="lossprofile bench", description=bench.__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="tiny", help="the model timed: 'tiny', a hub id or a folder")
    p.add_argument("--arch", choices=["small", "medium", "large"], default=None,
                   help="random-weight model of a real MusicGen size (speed only)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda where available)")
    p.add_argument("--pieces", type=int, default=20, help="pieces the fast paths (b, c) score")
    p.add_argument("--seconds", type=float, default=15.0, help="excerpt length per piece")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="matmul precision while scoring (auto: bf16 on CUDA, fp32 on CPU)")
    p.add_argument("--pieces-per-batch", type=int, default=None, help="(c)'s pieces per decoder batch "
                   "(default 16 on a GPU, 4 on CPU)")
    p.add_argument("--published-pieces", type=int, default=4, help="pieces the slow published path (a) scores")
    p.add_argument("--paper-pieces", type=int, default=4, help="pieces for the decoder stage on the paper sweep's "
                   "perturbations, one prefix per piece against prefix groups (0: skip)")
    p.add_argument("--paper-sweep", default="sweeps/paper.yaml", help="the sweep whose perturbations --paper-pieces scores")
    add_threads_option(p)
    args = p.parse_args(argv)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    lm = bench.random_musicgen(args.arch, device) if args.arch else load_model(args.model, device=device)
    batch = args.pieces_per_batch or (16 if device == "cuda" else 4)
    print(f"model {lm.name} on {device}"
          + (f" ({torch.cuda.get_device_name()})" if device == "cuda" else f" ({torch.get_num_threads()} threads)"))
    r = bench.measure(lm, args.pieces, args.seconds, args.precision, batch, args.published_pieces)
    print(f"workload: {args.pieces} pieces x {r['noise_lengths']} noise lengths x {args.seconds:g} s = {r['frames']} "
          f"frames ((a) on the first {r['published_pieces']} pieces; (c) {batch} pieces per decoder batch)")
    print(f"{'':24s}{'seconds':>10s}{'frames/s':>12s}{'vs (a)':>8s}")
    for label, key in (("(a) published per-file", "published"), ("(b) engine, per piece", "engine"),
                       ("(c) pipeline", "pipeline")):
        print(f"{label:24s}{r[key + '_seconds']:10.2f}{r[key + '_fps']:12.1f}{r[key + '_fps'] / r['published_fps']:7.1f}×")
    print(f"variants whose codes differ (a) vs (b) at a VQ near-tie: {r['codes_differ_ab']} of {r['published_variants']}")
    print(f"largest per-frame delta difference (a) vs (b) where codes agree: {r['max_diff_ab']:.2e} nats")
    print(f"variants whose codes equal their clean piece's (nothing for the decoder to score): "
          f"{r['variants_unchanged']} of {r['variants']}; decoder row-steps (b): {r['decoder_row_steps']:,}")
    print(f"variants whose codes differ (b) vs (c): {r['codes_differ_bc']} of {r['variants']}; largest per-frame delta "
          f"difference: {r['max_diff_bc']:.2e} nats")
    if "engine_tflops" in r:
        print(f"decoder throughput: (b) {r['engine_tflops']:.1f} TFLOP/s, (c) {r['pipeline_tflops']:.1f} TFLOP/s"
              + (f" = {r['pipeline_peak_share']:.1%} of {r['gpu']}'s bf16 peak" if "pipeline_peak_share" in r else ""))
    if args.paper_pieces and not Path(args.paper_sweep).is_file():
        print(f"decoder stage on the paper sweep not measured: no sweep file {args.paper_sweep}")
    elif args.paper_pieces:
        from ..sweep import load_sweep

        perts = load_sweep(args.paper_sweep).perturbations_for("ood")
        g = bench.prefix_groups_gain(lm, perts, args.paper_pieces, 15.0, args.precision)
        print(f"decoder stage on the paper sweep's {g['variants']} perturbations (changes at frames 0-700), "
              f"{g['pieces']} pieces x 15 s: one prefix per piece {g['one_prefix_seconds']:.2f} s "
              f"({g['one_prefix_row_steps']:,} row-steps), prefix groups {g['groups_seconds']:.2f} s "
              f"({g['groups_row_steps']:,}): {g['one_prefix_seconds'] / g['groups_seconds']:.2f}× faster; "
              f"largest NLL difference {g['max_nll_difference']:.1e} nats")
    print(f"speed-up: {r['pipeline_fps'] / r['published_fps']:.1f}×")
    return r
