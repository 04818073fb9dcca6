"""How much slower is a command when other CPU-bound processes share the machine? (a benchmark, not a test)

Runs the same command on an idle machine and beside ``--neighbours`` busy loops (plain CPU-bound processes,
as on a shared server or a cluster node), each ``--repeats`` times, and prints the times and their ratio side by
side, once per thread setting (``--threads``: ``default`` is the library's own choice,
:func:`lossprofile.threads.default_threads`; a number is passed as ``--threads N``).

    .venv/bin/python tools/busy_neighbour.py --data data/rendered/ood --limit 4
    .venv/bin/python tools/busy_neighbour.py --command score --threads default 1 2

The command is ``lossprofile <command> --model tiny --device cpu --data DATA --limit N --out TMP`` with a fresh
output folder each run (nothing reused). The goal (issue #35): busy / idle under 2x with the default.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def spin(stop) -> None:
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def timed(argv: list[str], env: dict) -> float:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run([*argv, "--out", out], check=True, env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--command", default="profile", choices=["profile", "score"])
    p.add_argument("--data", default=str(ROOT / "data" / "rendered" / "ood"))
    p.add_argument("--limit", type=int, default=4)
    p.add_argument("--neighbours", type=int, default=2)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--threads", nargs="+", default=["default"], help="'default' or a number, each measured")
    args = p.parse_args(argv)
    exe = str(ROOT / ".venv" / "bin" / "lossprofile")
    base = [exe, args.command, "--model", "tiny", "--device", "cpu", "--data", args.data, "--limit", str(args.limit)]
    if args.command == "score":
        base += ["--lengths", "50", "150"]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    print(f"{' '.join(base[1:])}; {os.cpu_count()} CPUs, {args.neighbours} busy neighbours, best of {args.repeats}")
    print(f"{'threads':>8} {'idle s':>8} {'busy s':>8} {'busy/idle':>9}")
    for threads in args.threads:
        argv_t = base + ([] if threads == "default" else ["--threads", threads])
        idle = min(timed(argv_t, env) for _ in range(args.repeats))
        stop = multiprocessing.Event()
        workers = [multiprocessing.Process(target=spin, args=(stop,)) for _ in range(args.neighbours)]
        for w in workers:
            w.start()
        try:
            time.sleep(1.0)
            busy = min(timed(argv_t, env) for _ in range(args.repeats))
        finally:
            stop.set()
            for w in workers:
                w.join()
        print(f"{threads:>8} {idle:8.1f} {busy:8.1f} {busy / idle:8.2f}x", flush=True)


if __name__ == "__main__":
    sys.exit(main())
