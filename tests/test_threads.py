"""Thread counts that fit the cores a process may use, chosen once and overridable everywhere."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from lossprofile import threads


def test_cgroup_quota_is_read_in_cpus_from_v2_and_v1_files(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert threads.cgroup_cpus(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert threads.cgroup_cpus(tmp_path) is None
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("300000")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert threads.cgroup_cpus(tmp_path) == 3.0
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1")
    assert threads.cgroup_cpus(tmp_path) is None


def test_usable_cpus_follow_the_affinity_and_the_quota(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7})
    monkeypatch.setattr(threads, "cgroup_cpus", lambda: None)
    assert threads.usable_cpus() == 8
    monkeypatch.setattr(threads, "cgroup_cpus", lambda: 2.5)
    assert threads.usable_cpus() == 2
    monkeypatch.setattr(threads, "cgroup_cpus", lambda: 0.5)  # half a core still runs one thread
    assert threads.usable_cpus() == 1


def test_the_default_takes_the_variables_first_and_refuses_nonsense(monkeypatch):
    monkeypatch.setattr(threads, "usable_cpus", lambda: 6)
    monkeypatch.delenv("LOSSPROFILE_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert threads.default_threads() == 6
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.default_threads() == 3
    monkeypatch.setenv("LOSSPROFILE_THREADS", "2")
    assert threads.default_threads() == 2
    monkeypatch.setenv("LOSSPROFILE_THREADS", "many")
    with pytest.raises(ValueError, match="LOSSPROFILE_THREADS='many'"):
        threads.default_threads()
    with pytest.raises(ValueError, match="at least 1"):
        threads.set_threads(0)


def test_a_choice_made_once_is_kept_by_load_model_and_an_explicit_one_wins(monkeypatch):
    import lossprofile as lp

    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(threads, "_chosen", None)
        monkeypatch.setattr(threads, "default_threads", lambda: 1)
        lp.load_model("tiny")  # nothing chosen yet: the default
        assert torch.get_num_threads() == 1
        threads.set_threads(2)  # e.g. a Ray actor's CPUs
        lp.load_model("tiny")
        assert torch.get_num_threads() == 2
        lp.load_model("tiny", threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_every_command_takes_threads_and_idle_openmp_threads_sleep(tmp_path):
    script = ("import os, sys, torch\n"
              "from lossprofile import cli\n"
              "print(os.environ['OMP_WAIT_POLICY'])\n"
              "try:\n"
              "    cli.main(sys.argv[1:])\n"
              "except BaseException:  # what the command then says is not this test's concern\n"
              "    pass\n"
              "print(torch.get_num_threads())\n")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS",
                                                            "LOSSPROFILE_THREADS")}
    for argv in (["report", str(tmp_path), "--threads", "1"],  # a built-in command
                 ["bench", "--threads", "1", "--help"]):  # a forwarded one, whose own parser has no --threads
        out = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, env=env)
        lines = out.stdout.split()
        assert lines[0] == "PASSIVE" and lines[-1] == "1", (argv, out.stdout, out.stderr)
    env["OMP_WAIT_POLICY"] = "ACTIVE"  # a user's own setting wins
    out = subprocess.run([sys.executable, "-c", "import lossprofile, os; print(os.environ['OMP_WAIT_POLICY'])"],
                         capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "ACTIVE"
