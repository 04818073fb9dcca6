"""Sweeps that outgrow one machine: one YAML file, run in-process or on a Ray cluster, same table.

    lossprofile sweep sweeps/smoke.yaml                         # in this process
    lossprofile sweep sweeps/smoke.yaml --ray-address local     # a local Ray instance
    lossprofile sweep sweeps/paper.yaml --ray-address auto      # join a running cluster (Slurm, KubeRay)

A sweep file names models, datasets, perturbations (presets or single ones) and scoring
options; every key is checked before any work starts (an unknown key, preset or missing
folder is reported with the file's name). Each piece is scored into its own part by
[`runner.score_pieces`][lossprofile.runner.score_pieces] (atomic write, keyed by every parameter and the audio's
content), so a killed worker loses at most the pieces in flight and a re-run resumes. A Ray
actor's unit of work is a few pieces of one model and data kind (``scoring.pieces_per_batch``:
16 on a GPU, the runner's pipeline across pieces; 1 on CPU). On Ray, one actor per GPU (or per ``cpus_per_actor`` CPUs)
keeps its models loaded; units are sorted by model so an actor rarely switches. The final
table is assembled from the parts in a fixed order (model, then piece), so it is the same
whatever the number of actors and the order work finishes in.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from .data import datasets as ds
from .data.datasets import KINDS as DATA_KINDS
from .data.datasets import Piece
from .errors import BadInputError
from .io import is_url, join, slug, write_parquet_atomic
from .models import load_model
from .perturb import KINDS, PRESETS, SCORE_KINDS, Perturbation, ScorePerturbation, preset
from .runner import ScoringOptions, collect, score_pieces
from .threads import set_threads

TOP_KEYS = {"name", "models", "datasets", "n_pieces", "perturbations", "scoring", "out", "ray"}
SCORING_KEYS = {f.name for f in dataclasses.fields(ScoringOptions)}
RAY_KEYS = {"cpus_per_actor", "gpus_per_actor", "actors", "device"}


class SweepConfigError(BadInputError):
    """A sweep file that cannot run, with the file and the key named (a ValueError)."""


@dataclass
class Sweep:
    name: str
    models: list[str]
    datasets: dict[str, str | None]
    n_pieces: int
    scoring: ScoringOptions
    out: str
    ray: dict = field(default_factory=dict)
    source: str = "<dict>"
    entries: list = field(default_factory=list)  # presets and single perturbations, as written in the file

    def perturbations_for(self, kind: str) -> list:
        """The sweep's perturbations for one data kind (a preset such as authors-noise depends on it)."""
        out = []
        for entry in self.entries:
            out += preset(entry["preset"], kind) if "preset" in entry else [_single(entry, self.source)]
        return out


def _single(entry: dict, source: str):
    kind = entry.get("kind")
    cls = ScorePerturbation if kind in SCORE_KINDS else Perturbation
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = set(entry) - fields
    if unknown:
        raise SweepConfigError(f"{source}: perturbation {entry} has unknown key(s) {sorted(unknown)}; "
                               f"{kind!r} takes {sorted(fields)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in entry.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        raise SweepConfigError(f"{source}: perturbation {entry}: {err}") from err


def load_sweep(path_or_dict: str | os.PathLike | dict, base: str | os.PathLike | None = None) -> Sweep:
    """Read and check a sweep file (or dict); relative folders are taken from ``base`` (default: the working directory)."""
    import yaml

    if isinstance(path_or_dict, dict):
        config, source = path_or_dict, "<dict>"
    else:
        source = str(path_or_dict)
        try:
            config = yaml.safe_load(Path(path_or_dict).read_text())
        except FileNotFoundError as err:
            raise SweepConfigError(f"{source}: sweep file not found") from err
        except yaml.YAMLError as err:
            raise SweepConfigError(f"{source}: not valid YAML ({err})") from err
    if not isinstance(config, dict):
        raise SweepConfigError(f"{source}: a sweep file is a mapping of {sorted(TOP_KEYS)}")
    unknown = set(config) - TOP_KEYS
    if unknown:
        raise SweepConfigError(f"{source}: unknown key(s) {sorted(unknown)}; expected some of {sorted(TOP_KEYS)}")
    for key in ("models", "datasets", "perturbations"):
        if not config.get(key):
            raise SweepConfigError(f"{source}: '{key}' is missing or empty")
    base = Path(base) if base is not None else Path.cwd()
    datasets = {}
    for kind, folder in dict(config["datasets"]).items():
        if folder is None and kind not in DATA_KINDS:
            raise SweepConfigError(f"{source}: datasets.{kind}: no default data for {kind!r}; give a folder "
                                   f"(defaults exist for {', '.join(DATA_KINDS)})")
        if folder is not None:
            resolved = base / folder if not Path(folder).is_absolute() else Path(folder)
            if not resolved.is_dir():
                raise SweepConfigError(f"{source}: datasets.{kind}: folder {folder} not found")
            folder = str(resolved)
        datasets[kind] = folder
    scoring = dict(config.get("scoring") or {})
    unknown = set(scoring) - SCORING_KEYS
    if unknown:
        raise SweepConfigError(f"{source}: scoring has unknown key(s) {sorted(unknown)}; expected some of "
                               f"{sorted(SCORING_KEYS)}")
    ray_options = dict(config.get("ray") or {})
    unknown = set(ray_options) - RAY_KEYS
    if unknown:
        raise SweepConfigError(f"{source}: ray has unknown key(s) {sorted(unknown)}; expected some of {sorted(RAY_KEYS)}")
    try:
        scoring_options = ScoringOptions(**scoring)
    except ValueError as err:
        raise SweepConfigError(f"{source}: scoring: {err}") from err
    n_pieces = config.get("n_pieces", 3)
    if isinstance(n_pieces, bool) or not isinstance(n_pieces, int) or n_pieces < 1:
        raise SweepConfigError(f"{source}: n_pieces must be a whole number >= 1, got {n_pieces!r}")
    entries = []
    for entry in config["perturbations"]:
        entry = {"preset": entry} if isinstance(entry, str) else dict(entry)
        if "preset" in entry:
            if set(entry) != {"preset"}:
                raise SweepConfigError(f"{source}: a preset entry takes only 'preset', got {sorted(entry)}")
            if entry["preset"] not in PRESETS:
                raise SweepConfigError(f"{source}: unknown preset {entry['preset']!r}; expected one of "
                                       f"{', '.join(PRESETS)}")
        elif entry.get("kind") not in KINDS + SCORE_KINDS:
            raise SweepConfigError(f"{source}: unknown perturbation kind {entry.get('kind')!r}; expected a preset or "
                                   f"one of {', '.join(KINDS + SCORE_KINDS)}")
        entries.append(entry)
    sweep = Sweep(name=str(config.get("name", Path(source).stem)), models=list(config["models"]), datasets=datasets,
                  n_pieces=n_pieces, scoring=scoring_options,
                  out=str(config.get("out", f"results/sweeps/{Path(source).stem}")), ray=ray_options,
                  source=source, entries=entries)
    for kind in datasets:  # build every perturbation now: a bad entry fails before any work
        try:
            sweep.perturbations_for(kind)
        except SweepConfigError:
            raise  # it names the file and the entry already
        except ValueError as err:
            raise SweepConfigError(f"{source}: {err}") from err
    return sweep


def units(sweep: Sweep, load_model_for_generated=None) -> list[tuple[str, Piece]]:
    """The work units (model, piece), sorted by model then piece."""
    out = []
    for model in sweep.models:
        lm = load_model_for_generated(model) if "generated" in sweep.datasets and load_model_for_generated else None
        for kind, folder in sweep.datasets.items():
            pieces = (ds.list_pieces(folder, dataset=kind)[: sweep.n_pieces] if folder is not None
                      else ds.pieces(kind, sweep.n_pieces, lm))
            out += [(model, piece) for piece in pieces]
    return out


def model_out(sweep: Sweep, out: str | os.PathLike, model: str) -> str | Path:
    return join(out, slug(model))


def assemble(sweep: Sweep, work: list[tuple[str, Piece]], done: dict, out: str | os.PathLike) -> pd.DataFrame:
    """Write each model's ``results.parquet``/``errors.csv`` and the sweep's table, parts in unit order."""
    tables = []
    for model in sweep.models:
        keys = {(m, p.dataset, p.name): p for m, p in work if m == model}
        parts = [done[k][0] for k in keys if done[k][0] is not None]
        errors = [done[k][1] for k in keys if done[k][1] is not None]
        files = {str(done[k][0]): str(piece.path) for k, piece in keys.items() if done[k][0] is not None}
        tables.append(collect(parts, errors, model_out(sweep, out, model), files))
    table = pd.concat([t for t in tables if len(t)], ignore_index=True) if any(len(t) for t in tables) else pd.DataFrame()
    if len(table):
        write_parquet_atomic(table.assign(sweep=sweep.name), join(out, "sweep.parquet"))
    return table


def run_in_process(sweep: Sweep, out: str | os.PathLike, device: str | None = None,
                   threads: int | None = None) -> pd.DataFrame:
    """Every unit in this process, with ``threads`` torch threads (default: as many as a Ray actor gets, the file's
    ``ray.cpus_per_actor``, so the numbers match; else `lossprofile.threads.default_threads`)."""
    import torch

    before = torch.get_num_threads()
    cpus = sweep.ray.get("cpus_per_actor")
    set_threads(threads if threads is not None else (max(1, int(cpus)) if cpus else None))
    try:
        return _run_units_here(sweep, out, device, load_model)
    finally:
        set_threads(before)


def _run_units_here(sweep: Sweep, out, device, load_model) -> pd.DataFrame:
    models: dict[str, Any] = {}

    def get(model):
        if model not in models:
            models.clear()  # one model in memory at a time
            models[model] = load_model(model, device=device)
        return models[model]

    work = units(sweep, get)
    done = {}
    for model in sweep.models:
        lm = get(model)
        for kind in sweep.datasets:  # one perturbation list per data kind: the runner's loop (a pipeline on a GPU)
            pieces = [p for m, p in work if m == model and p.dataset == kind]
            results = score_pieces(lm, pieces, sweep.perturbations_for(kind), sweep.scoring,
                                   model_out(sweep, out, model), f"sweep {sweep.name}: {model}, {kind}", progress=True)
            done.update({(model, p.dataset, p.name): r for p, r in zip(pieces, results)})
    return assemble(sweep, work, done, out)


def chunks_of(work: list[tuple[str, Piece]], pieces_per_unit: int) -> list[tuple[str, list[Piece]]]:
    """Consecutive units of one model and one data kind, up to ``pieces_per_unit`` pieces each: what a Ray actor
    scores in one call (with several, the runner's pipeline across pieces)."""
    out: list[tuple[str, list[Piece]]] = []
    for model, piece in work:
        if out and out[-1][0] == model and out[-1][1][0].dataset == piece.dataset and len(out[-1][1]) < pieces_per_unit:
            out[-1][1].append(piece)
        else:
            out.append((model, [piece]))
    return out


def run_on_ray(sweep: Sweep, out: str | os.PathLike, address: str = "local", num_cpus: int | None = None,
               kill_after: int | None = None) -> pd.DataFrame:
    """Run the sweep's units on Ray actors; an actor that dies is replaced and its unit given to another.

    ``address``: ``local`` starts a local instance (``num_cpus`` CPUs), ``auto`` joins the cluster
    this node belongs to, ``ray://host:port`` a remote one. ``kill_after`` (tests) kills one actor
    with ``ray.kill`` after that many units have finished.
    """
    import ray

    if not ray.is_initialized():
        if address == "local":
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    out = out if is_url(out) else Path(out).resolve()  # workers may run elsewhere: no relative paths
    cpus = float(sweep.ray.get("cpus_per_actor", 1))
    gpus = float(sweep.ray.get("gpus_per_actor", 0))
    device = sweep.ray.get("device", "cuda" if gpus else "cpu")
    resources = ray.cluster_resources()
    n_actors = int(sweep.ray.get("actors") or max(1, int(resources.get("GPU", 0) // gpus) if gpus
                                                 else int(resources.get("CPU", 1) // cpus)))

    @ray.remote(num_cpus=cpus, num_gpus=gpus, max_restarts=0)
    class Scorer:
        def __init__(self):
            from lossprofile.threads import set_threads as use  # absolute: shipped to the workers by value

            use(max(1, int(cpus)))  # the actor's CPUs, not the node's: actors share its cores
            self.models = {}

        def score(self, model, pieces, perturbations, options, out_dir):
            from lossprofile import load_model  # absolute: this class is shipped to the workers by value
            from lossprofile.runner import score_pieces as score_these

            if model not in self.models:
                self.models = {model: load_model(model, device=device)}  # one model in memory at a time
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return score_these(self.models[model], pieces, perturbations, options, out_dir)

    work = units(sweep, lambda m: load_model(m, device="cpu"))
    # an actor's call scores a batch of pieces (the pipeline on a GPU: 16 by default), one piece on CPU
    pending = chunks_of(work, max(1, sweep.scoring.pieces_per_batch or (16 if device == "cuda" else 1)))
    actors = [Scorer.remote() for _ in range(n_actors)]
    running: dict = {}
    done: dict = {}
    bars = {None: tqdm(total=len(work), desc=f"sweep {sweep.name} ({n_actors} actors)", unit="piece")}
    for model in sweep.models:
        bars[model] = tqdm(total=sum(m == model for m, _ in work), desc=f"  {model}", unit="piece", leave=False)

    def submit(actor):
        model, pieces = pending.pop(0)
        ref = actor.score.remote(model, pieces, sweep.perturbations_for(pieces[0].dataset), sweep.scoring,
                                 str(model_out(sweep, out, model)))
        running[ref] = (actor, model, pieces)

    for actor in actors:
        if pending:
            submit(actor)
    finished = 0
    while running:
        ready, _ = ray.wait(list(running), num_returns=1)
        ref = ready[0]
        actor, model, pieces = running.pop(ref)
        try:
            done.update({(model, p.dataset, p.name): r for p, r in zip(pieces, ray.get(ref))})
        except ray.exceptions.RayActorError:  # the actor died: a new one takes over, the unit goes back
            pending.insert(0, (model, pieces))  # (its finished parts are reused)
            actors.remove(actor)
            actor = Scorer.remote()
            actors.append(actor)
        else:
            finished += 1
            bars[None].update(len(pieces))
            bars[model].update(len(pieces))
            if kill_after is not None and finished == kill_after:
                victim = next((a for a, *_ in running.values()), None)
                if victim is not None:
                    ray.kill(victim)
        if pending:
            submit(actor)
    for bar in bars.values():
        bar.close()
    return assemble(sweep, work, done, out)


def run_sweep(config: str | os.PathLike | Sweep, out: str | os.PathLike | None = None, ray_address: str | None = None,
              device: str | None = None, threads: int | None = None) -> pd.DataFrame:
    """Run (or resume) a sweep in-process (``ray_address=None``, ``threads`` as [`run_in_process`][lossprofile.sweep.run_in_process] takes them)
    or on Ray (each actor uses its ``ray.cpus_per_actor`` CPUs); returns its table."""
    sweep = config if isinstance(config, Sweep) else load_sweep(config)
    out = out or sweep.out
    if ray_address is None:
        return run_in_process(sweep, out, device, threads)
    return run_on_ray(sweep, out, ray_address)
