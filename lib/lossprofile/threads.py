"""How many CPU threads torch may use: as many as this process may run on, never more.

torch's default is every core of the machine, whatever else runs there. On a shared server, a cluster node
or beside other Ray actors that oversubscribes the cores, and OpenMP's threads then wait for each other at every
parallel region, of which EnCodec's LSTM has thousands per excerpt (measured: docs/performance.md, a shared machine).
So the package counts the cores this process may use (its CPU affinity and its cgroup's CPU quota) and,
unless told otherwise, leaves OpenMP's idle threads sleeping rather than spinning (``OMP_WAIT_POLICY=PASSIVE``,
set in ``lossprofile/__init__`` before torch is imported; an explicit setting wins).

Precedence of the thread count: an explicit ``threads`` argument (``--threads`` on every command), then
``LOSSPROFILE_THREADS``, then ``OMP_NUM_THREADS``, then `usable_cpus`.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import UsageError

THREADS_VARIABLE = "LOSSPROFILE_THREADS"
_chosen: int | None = None  # what set_threads set in this process (None: nothing yet)


def cgroup_cpus(root: str | os.PathLike = "/sys/fs/cgroup") -> float | None:
    """The CPU quota of this process's cgroup in CPUs (``cpu.max``, cgroup v2; ``cfs_quota/period``, v1), or None
    where there is none."""
    root = Path(root)
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def usable_cpus() -> int:
    """The cores this process may run on: its CPU affinity, capped by its cgroup's quota (at least 1)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 1
    quota = cgroup_cpus()
    if quota is not None:
        cpus = min(cpus, int(quota) or 1)
    return max(1, cpus)


def default_threads() -> int:
    """The thread count used when none is asked for: ``LOSSPROFILE_THREADS``, else ``OMP_NUM_THREADS``, else
    `usable_cpus`."""
    for name in (THREADS_VARIABLE, "OMP_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if value:
            try:
                return max(1, int(value.split(",")[0]))
            except ValueError:
                raise ValueError(f"{name}={value!r} is not a number of threads") from None
    return usable_cpus()


def set_threads(threads: int | None = None) -> int:
    """Let torch use ``threads`` CPU threads in this process (None: `default_threads`) → the number set."""
    global _chosen
    import torch

    n = default_threads() if threads is None else int(threads)
    if n < 1:
        raise UsageError(f"--threads must be at least 1, got {threads}")
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    _chosen = n
    return n


def ensure_threads(threads: int | None = None) -> int:
    """``threads`` if given; else keep what `set_threads` chose earlier in this process (a command's
    ``--threads``, a Ray actor's CPUs), or choose `default_threads` the first time → the number in use.
    What [`load_model`][lossprofile.models.loading.load_model] calls, so that every workflow starts with a thread count that fits."""
    if threads is not None or _chosen is None:
        return set_threads(threads)
    return _chosen


THREADS_HELP = ("CPU threads torch uses; when not given, the cores this process may use (its CPU affinity and "
                "cgroup quota), or LOSSPROFILE_THREADS / OMP_NUM_THREADS where set")


def add_threads_option(parser) -> None:
    """``--threads`` in a forwarded command's ``--help``: ``lossprofile`` takes it out of the arguments and sets it
    (`set_threads`) before the command parses the rest, so the command itself never reads it."""
    parser.add_argument("--threads", type=int, default=None, help=THREADS_HELP)
