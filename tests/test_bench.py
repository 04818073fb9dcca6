"""The benchmark's two paths score the same thing (its speed is measured by `make bench`, not here)."""

from __future__ import annotations

import re

from lossprofile import bench


def test_published_and_engine_paths_agree_and_the_report_ends_with_the_speed_up(capsys):
    bench.main(["--model", "tiny", "--device", "cpu", "--pieces", "2", "--seconds", "10"])
    out = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"speed-up: \d+\.\d×", out[-1])
    text = "\n".join(out)
    n_differ, n_total = map(int, re.search(r"near-tie: (\d+) of (\d+)", text).groups())
    assert n_total == 12 and n_differ <= 1
    diff = float(re.search(r"where codes agree: ([0-9.e+-]+) nats", text).group(1))
    assert diff < 1e-4
    assert any(line.startswith("(a) published per-file") for line in out)
