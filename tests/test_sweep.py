"""Sweep files: checked before any work, the same table in-process and on Ray, an actor killed mid-sweep."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from lossprofile import sweep as sw
from lossprofile.data.datasets import Piece

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "sweeps" / "smoke.yaml"


def write(tmp_path, **changes) -> Path:
    config = yaml.safe_load(SMOKE.read_text())
    config.update(changes)
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_every_shipped_sweep_file_is_valid():
    for path in sorted((ROOT / "sweeps").glob("*.yaml")):
        sweep = sw.load_sweep(path, base=ROOT)
        assert sweep.models and all(sweep.perturbations_for(kind) for kind in sweep.datasets)


@pytest.mark.parametrize("changes, message", [
    (dict(modles=["tiny"]), r"sweep.yaml: unknown key\(s\) \['modles'\]"),
    (dict(perturbations=["paper-noize"]), "sweep.yaml: unknown preset 'paper-noize'"),
    (dict(perturbations=[{"kind": "noise", "lenght_frames": 10}]), r"sweep.yaml: perturbation .* unknown key\(s\) \['lenght_frames'\]"),
    (dict(perturbations=[{"kind": "reverse"}]), "sweep.yaml: unknown perturbation kind 'reverse'"),
    (dict(datasets={"ood": "no/such/folder"}), "sweep.yaml: datasets.ood: folder no/such/folder not found"),
    (dict(scoring={"methd": "exact"}), r"sweep.yaml: scoring has unknown key\(s\) \['methd'\]"),
    (dict(perturbations=["authors-noise"], datasets={"mine": "."}), "sweep.yaml: preset 'authors-noise' sets its level"),
    (dict(scoring={"method": "exackt"}), "sweep.yaml: scoring: unknown method 'exackt'; expected one of exact"),
    (dict(scoring={"excerpt_seconds": -15}), "sweep.yaml: scoring: excerpt_seconds must be a positive number"),
    (dict(scoring={"precision": "fp8"}), "sweep.yaml: scoring: unknown precision 'fp8'"),
    (dict(n_pieces="two"), "sweep.yaml: n_pieces must be a whole number >= 1, got 'two'"),
    (dict(n_pieces=0), "sweep.yaml: n_pieces must be a whole number >= 1, got 0"),
    # the file named once, the entry and the field
    (dict(perturbations=[{"kind": "noise", "length_frames": -10}]),
     r"^[^:]*sweep.yaml: perturbation \{'kind': 'noise', 'length_frames': -10\}: a perturbation needs onset_frame >= 0 "
     r"and length_frames >= 1, got 250 and -10$"),
])
def test_a_typo_fails_before_any_work_naming_the_key_and_the_file(tmp_path, changes, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    started = []
    monkeypatch.setattr(sw, "score_pieces", lambda *a, **k: started.append(a))
    with pytest.raises(sw.SweepConfigError, match=message):
        sw.run_sweep(write(tmp_path, **changes))
    assert not started


@pytest.mark.slow
def test_ray_gives_the_in_process_table_even_when_an_actor_is_killed_and_with_several_pieces_per_unit(tmp_path):
    import ray

    config = yaml.safe_load(SMOKE.read_text())
    # three units (one piece of each data kind) on two actors: when the first finishes the third is handed out
    # and the actor killed then still holds the second
    config.update(n_pieces=1, datasets={"training": None, "ood": None, "generated": None})
    sweep = sw.load_sweep(config, base=ROOT)
    here = sw.run_sweep(sweep, tmp_path / "here")
    assert here["piece"].nunique() == 3 and set(here["length_frames"]) == {10, 100, 400}
    # an actor's unit of several pieces (the GPU default, 16): the runner's pipeline across pieces on the actor
    config.update(n_pieces=2, datasets={"ood": None}, scoring={**config.get("scoring", {}), "pieces_per_batch": 2})
    batched = sw.load_sweep(config, base=ROOT)
    assert [len(pieces) for _, pieces in sw.chunks_of(sw.units(batched), 2)] == [2]
    batched_here = sw.run_sweep(batched, tmp_path / "batched_here")
    try:  # (each Ray run starts its actors afresh: two runs keep the test inside make test's budget)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        killed = sw.run_on_ray(sweep, tmp_path / "killed", kill_after=1)
        batched_on_ray = sw.run_on_ray(batched, tmp_path / "batched_ray")
    finally:
        ray.shutdown()
    pd.testing.assert_frame_equal(killed, here)
    pd.testing.assert_frame_equal(batched_on_ray, batched_here)
    assert batched_here["piece"].nunique() == 2
    again = sw.run_sweep(sweep, tmp_path / "here")  # a re-run resumes: every part is reused
    pd.testing.assert_frame_equal(again, here)


def test_a_ray_unit_is_consecutive_pieces_of_one_model_and_data_kind():
    pieces = [Piece(kind, f"{kind}{i}", Path(f"{kind}{i}.wav")) for kind in ("training", "ood") for i in range(3)]
    work = [(model, p) for model in ("a", "b") for p in pieces]
    chunks = sw.chunks_of(work, 2)
    assert [(m, [p.name for p in ps]) for m, ps in chunks] == [
        ("a", ["training0", "training1"]), ("a", ["training2"]), ("a", ["ood0", "ood1"]), ("a", ["ood2"]),
        ("b", ["training0", "training1"]), ("b", ["training2"]), ("b", ["ood0", "ood1"]), ("b", ["ood2"])]
    assert [(m, p) for m, ps in chunks for p in ps] == work  # every unit once, in order
    assert all(len(ps) == 1 for _, ps in sw.chunks_of(work, 1))


def test_results_can_go_to_an_object_store_url_through_fsspec(tmp_path):
    import fsspec

    config = yaml.safe_load(SMOKE.read_text())
    config.update(n_pieces=1, datasets={"ood": None}, perturbations=[{"kind": "noise", "length_frames": 10}])
    sweep = sw.load_sweep(config, base=ROOT)
    local = sw.run_sweep(sweep, tmp_path / "local")
    remote = sw.run_sweep(sweep, "memory://lossprofile-test/run")
    pd.testing.assert_frame_equal(remote, local)
    fs = fsspec.filesystem("memory")
    assert fs.exists("/lossprofile-test/run/sweep.parquet") and fs.glob("/lossprofile-test/run/tiny/parts/*.parquet")
    again = sw.run_sweep(sweep, "memory://lossprofile-test/run")  # resumes from the parts in the store
    pd.testing.assert_frame_equal(again, local)
