"""Where one pipeline batch spends its time, op by op: torch.profiler over ``score_many`` on a random-weight
MusicGen (``--arch``), 16 pieces x the paper's six noise lengths. Prints the top ops by self CUDA time and by
self CPU time. Run on the GPU machine: ``PYTHONPATH=lib python3 tools/gpu_profile.py --arch small``.
"""

from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from lossprofile import bench
from lossprofile.perturb import noise_sweep
from lossprofile.scoring import score_many


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="small")
    p.add_argument("--pieces", type=int, default=16)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--rows", type=int, default=20)
    args = p.parse_args()
    lm = bench.random_musicgen(args.arch, args.device)
    perts = noise_sweep()
    batch = [(clean, [q.apply(clean, lm.sample_rate, lm.frame_rate) for q in perts])
             for clean in bench.synthetic_pieces(args.pieces, 15.0, lm.sample_rate)]
    score_many(lm, batch[:2])  # warm-up
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device == "cuda" else [])
    with profile(activities=activities) as prof:
        score_many(lm, batch)
        bench.sync(lm)
    table = prof.key_averages()
    if args.device == "cuda":
        print(table.table(sort_by="self_cuda_time_total", row_limit=args.rows, max_name_column_width=60))
    print(table.table(sort_by="self_cpu_time_total", row_limit=args.rows, max_name_column_width=60))


if __name__ == "__main__":
    main()
