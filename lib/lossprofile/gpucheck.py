"""One GPU check in a few minutes: ``make gpu-check`` (``lossprofile gpu-check``).

GPU time comes in minutes, so one run measures everything the GPU pipeline promises and writes it to
one table:

1. the benchmark (`lossprofile.bench.measure`) for random-weight MusicGen small, medium and large:
   frames per second of the published per-file path (a), the engine piece by piece (b) and the pipeline
   across pieces (c), the decoder's TFLOP/s and share of the dense bf16 peak, (c)'s speed-up over (a),
   and how far (c)'s per-frame deltas are from (b)'s;
2. the smoke sweep's perturbations through the runner with the embedded model, on synthetic pieces
   (no rendered data needed), piece by piece and as the pipeline, with the largest difference between
   the two tables;
3. the profile score's cost per piece, piece by piece and across pieces;
4. the paper's sweep (``sweeps/paper.yaml``) projected per model from the runner's seconds per piece on that
   sweep's ASAP pieces × its own perturbations (81 per data kind), MusicGen-melody from medium's rate; beside it
   the decoder's work in that sweep from the architectures' shapes (`decoder_floor`), the floor under it;
5. last, where the time budget leaves room for it: the decode stage with the decoder under ``torch.compile``
   and with CUDA graphs (``reduce-overhead``) against eager, for ``--compile-archs`` (medium: the size of the
   peak-share goal), compilation time included (`lossprofile.bench.compile_check`).

Each step's time is printed as it ends; the table goes to ``--out`` (markdown) beside a JSON of every
number.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from . import bench
from .analysis.profile import profile_scores
from .audio import save_audio
from .data.datasets import list_pieces
from .models import load_model
from .perturb import Perturbation
from .runner import ScoringOptions, run_experiment, score_pieces

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


SIZES = ("small", "medium", "large")


def paper_sweep(path: str | Path = "sweeps/paper.yaml"):
    """The paper's sweep file as [`sweep.load_sweep`][lossprofile.sweep.load_sweep] reads it (every entry checked)."""
    from .sweep import load_sweep

    return load_sweep(path)


def size_of(model: str) -> str | None:
    """The MusicGen size whose decoder a hub model has (melody: medium's, 1.5 B parameters)."""
    name = model.lower()
    return next((size for size in SIZES if size in name), "medium" if "melody" in name else None)


def project(rates: dict[str, dict], sweep) -> list[dict]:
    """Minutes of ``sweep`` per model on one device, from ``rates`` (size → `lossprofile.bench.sweep_rate`'s
    dict, measured on some of the sweep's perturbations): its pieces × data kinds × seconds per piece, scaled to
    the sweep's number of perturbations per piece."""
    rows = []
    for model in sweep.models:
        size = size_of(model)
        r = rates.get(size)
        variants = sum(len(sweep.perturbations_for(kind)) for kind in sweep.datasets) / len(sweep.datasets)
        minutes = (float("nan") if r is None else
                   sweep.n_pieces * len(sweep.datasets) * r["seconds_per_piece"] * variants / r["variants"] / 60)
        rows.append(dict(model=model, measured_as=size if r is not None else None, minutes=minutes,
                         pieces=sweep.n_pieces, data_kinds=len(sweep.datasets), variants_per_piece=variants))
    return rows


def decoder_floor(sweep, peak_tflops: float = bench.BF16_PEAK_TFLOPS["H100"], shares=(1.0, 0.35)) -> list[dict]:
    """The decoder's work in ``sweep`` per model, from its shapes alone: each piece's decoder row-steps (a variant
    shares the clean piece's steps up to its onset frame; [`scoring.group_rows`][lossprofile.scoring.group_rows], and one prefix
    for all) × FLOPs per step, over every piece and data kind; and the minutes that work
    takes at ``shares`` of the dense bf16 peak. A floor under any measured projection: the codec, preparation
    and the statistics come on top."""
    from .models.musicgen.architecture import decoder_flops_per_step, real_architecture
    from .scoring import group_rows

    frames = int(float(sweep.scoring.excerpt_seconds) * 50)
    rows = []
    for model in sweep.models:
        size = size_of(model)
        if size is None:
            continue
        decoder = real_architecture(size).decoder
        steps = frames + decoder.num_codebooks - 1
        work = {"groups": 0, "one prefix": 0}
        for kind in sweep.datasets:
            own = [min(max(0, p.onset_frame), steps) for p in sweep.perturbations_for(kind)]
            own = [max(own), *own]  # the clean row
            work["groups"] += sweep.n_pieces * bench.decoder_row_steps(
                [(len(r), m) for r, m in group_rows(own)], steps)
            work["one prefix"] += sweep.n_pieces * bench.decoder_row_steps([(len(own), min(own))], steps)
        flops = decoder_flops_per_step(decoder, steps)
        row = dict(model=model, size=size, row_steps=work["groups"], row_steps_one_prefix=work["one prefix"],
                   pflop=work["groups"] * flops / 1e15, pflop_one_prefix=work["one prefix"] * flops / 1e15)
        row.update({f"minutes_at_{share:.0%}": row["pflop"] * 1e3 / (peak_tflops * share) / 60 for share in shares})
        rows.append(row)
    return rows


def projection_check(lm, args, sweep) -> dict:
    """The runner's pipeline ([`runner.score_pieces`][lossprofile.runner.score_pieces]: render, excerpt, perturb on CPU threads,
    score, write parts) on the sweep's out-of-distribution pieces (ASAP MIDI, shipped) × its perturbations for
    that data kind; synthetic pieces where the folder is not there."""
    perturbations = sweep.perturbations_for("ood")
    if args.projection_variants:
        perturbations = perturbations[: args.projection_variants]
    n_pieces = args.projection_pieces or args.pieces_per_batch
    folder = sweep.datasets.get("ood")
    if not folder or not Path(folder).is_dir():
        return {**bench.sweep_rate(lm, perturbations, n_pieces, float(sweep.scoring.excerpt_seconds), "auto",
                                   args.pieces_per_batch), "source": "synthetic"}
    pieces = list_pieces(folder, "ood")[:n_pieces]
    options = ScoringOptions(excerpt_seconds=float(sweep.scoring.excerpt_seconds), seed=sweep.scoring.seed,
                             pieces_per_batch=args.pieces_per_batch)
    with tempfile.TemporaryDirectory() as tmp:
        score_pieces(lm, pieces[:1], perturbations[:4], options, Path(tmp) / "warm")  # warm-up
        bench.sync(lm)
        start = time.perf_counter()
        results = score_pieces(lm, pieces, perturbations, options, Path(tmp) / "run")
        bench.sync(lm)
        elapsed = time.perf_counter() - start
    scored = sum(path is not None for path, _ in results)
    frames = scored * len(perturbations) * int(options.excerpt_seconds * lm.frame_rate)
    return dict(model=lm.name, pieces=scored, variants=len(perturbations), seconds=elapsed,
                seconds_per_piece=elapsed / max(1, scored), fps=frames / elapsed, source=str(folder))


def report(results: dict) -> str:
    env = results["environment"]
    lines = [f"# GPU check ({env['date']}, {env['gpu']}, torch {env['torch']}, transformers {env['transformers']})",
             "", "Command: `make gpu-check` (`lossprofile gpu-check`). Random weights of the real architectures "
             "(codebooks seeded from the codec's own latents of other pieces, so codes follow the input); "
             "synthetic 15 s pieces x the paper's six noise lengths."]
    if results.get("bench"):
        lines += ["", "| model | (a) published, frames/s | (b) engine per piece | (c) pipeline | (c) vs (a) | "
                  "decoder TFLOP/s (b) / (c) | share of bf16 peak (c) | variants with the clean piece's codes | "
                  "codes differing (b) vs (c) | max per-frame difference (b) vs (c), nats |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results.get("bench", []):
        lines.append(f"| {r['model']} | {r['published_fps']:,.0f} | {r['engine_fps']:,.0f} | {r['pipeline_fps']:,.0f} "
                     f"| {r['pipeline_fps'] / r['published_fps']:.1f}× | {r.get('engine_tflops', float('nan')):.1f} / "
                     f"{r.get('pipeline_tflops', float('nan')):.1f} | {r.get('pipeline_peak_share', float('nan')):.1%} "
                     f"| {r['variants_unchanged']} of {r['variants']} | {r['codes_differ_bc']} of {r['variants']} | "
                     f"{r['max_diff_bc']:.1e} |")
    if results.get("stages"):
        lines += ["", "Where the pipeline's time goes (seconds for all pieces; encode and decode on the GPU, "
                  "prepare = perturb + 16-bit round trip on the CPU):", "",
                  "| model | pieces | prepare | encode (codec) | decode (decoder + statistics) | decoder row-steps | "
                  "decode TFLOP/s | decode share of bf16 peak |", "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['model']} | {r['pieces']} | {r['prepare']:.2f} | {r['encode']:.2f} | {r['decode']:.2f} | "
                  f"{r.get('decoder_row_steps', 0):,} | {r.get('decode_tflops', float('nan')):.3g} | "
                  f"{r.get('decode_peak_share', float('nan')):.1%} |" for r in results["stages"]]
    if "sweep" in results and "profile" in results:
        lines += _sweep_lines(results["sweep"], results["profile"])
    if results.get("projection"):
        lines += _projection_lines(results["projection"], results.get("projected", []))
    if results.get("floor"):
        lines += _floor_lines(results["floor"], results.get("peak_tflops"))
    if results.get("projection_error"):
        lines += ["", f"Paper-sweep projection not run: {results['projection_error']}"]
    if results.get("compile"):
        lines += _compile_lines(results["compile"])
    if results.get("compile_skipped"):
        lines += ["", f"Decoder under torch.compile not measured: {results['compile_skipped']}"]
    return "\n".join(lines) + "\n"


def _projection_lines(rates: list[dict], projected: list[dict]) -> list[str]:
    lines = ["", "The runner's pipeline on the paper sweep's out-of-distribution pieces and its perturbations for "
             "them (render, excerpt, perturb, score, write parts; 15 s excerpts; frames/s counts the variants' frames):",
             "", "| model | pieces | from | variants per piece | seconds per piece | frames/s |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['pieces']} | {r.get('source', 'synthetic')} | {r['variants']} | "
              f"{r['seconds_per_piece']:.2f} | {r['fps']:,.0f} |" for r in rates]
    if projected:
        first = projected[0]
        lines += ["", f"The paper sweep (`sweeps/paper.yaml`: {first['pieces']} pieces × {first['data_kinds']} data "
                  f"kinds × {first['variants_per_piece']:.0f} variants per model), projected on one device:", "",
                  "| model | measured as | projected minutes |", "|---|---|---|"]
        lines += [f"| {p['model']} | {p['measured_as'] or 'not measured'} | {p['minutes']:.1f} |".replace("nan", "–")
                  for p in projected]
        total = sum(p["minutes"] for p in projected)
        lines += ["", f"All {len(projected)} models: {total:.1f} minutes." if np.isfinite(total)
                  else f"All {len(projected)} models: not every size was measured."]
    return lines


def _floor_lines(floor: list[dict], peak: float | None) -> list[str]:
    lines = ["", f"The decoder's work in the paper sweep from its shapes alone (each variant shares the clean piece's "
             f"decoder steps up to its onset; FLOPs of the forward pass; minutes at a share of {peak or 989:.0f} "
             "TFLOP/s dense bf16): the floor under the projection above, codec and preparation excluded.", "",
             "| model | row-steps (prefix groups) | one prefix per piece | PFLOP | minutes at 100% | at 35% |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['row_steps'] / 1e6:.1f} M | {r['row_steps_one_prefix'] / 1e6:.1f} M | "
              f"{r['pflop']:.0f} | {r['minutes_at_100%']:.1f} | {r['minutes_at_35%']:.1f} |" for r in floor]
    lines += ["", f"All {len(floor)} models: {sum(r['minutes_at_100%'] for r in floor):.1f} minutes at the full peak, "
              f"{sum(r['minutes_at_35%'] for r in floor):.1f} at 35% of it."]
    return lines


def _compile_lines(checks: list[dict]) -> list[str]:
    lines = ["", "The decode stage (`score_codes` on the same codes) eager and with each decoder layer under "
             "`torch.compile` (dynamic shapes; `reduce-overhead` adds CUDA graphs); seconds for all pieces, the first "
             "pass compiles:", "",
             "| model | decoder row-steps | mode | first pass | second pass | speed-up over eager | decoder TFLOP/s | "
             "share of bf16 peak | max NLL difference from eager, nats |", "|---|---|---|---|---|---|---|---|---|"]
    for c in checks:
        lines.append(f"| {c['model']} | {c['decoder_row_steps']:,} | eager | – | {c['eager_seconds']:.2f} | 1.0× | "
                     f"{c['eager_tflops']:.3g} | {c['eager_peak_share']:.1%} | 0 |")
        for m in c["modes"]:
            lines.append(f"| {c['model']} | | {m['mode']} | failed: {m['error'].replace('|', '/').replace(chr(10), ' ')} | | | | | |" if "error" in m else
                         f"| {c['model']} | | {m['mode']} | {m['first_seconds']:.1f} | {m['seconds']:.2f} | "
                         f"{m['speed_up']:.2f}× | {m['tflops']:.3g} | {m['peak_share']:.1%} | "
                         f"{m['max_nll_difference']:.1e} |")
    return lines


def _sweep_lines(s: dict, p: dict) -> list[str]:
    return ["", f"Smoke-sweep perturbations, embedded model, {s['pieces']} pieces ({s['rows']:,} rows): "
              f"{s['per_piece_seconds']:.1f} s piece by piece, {s['pipeline_seconds']:.1f} s as the pipeline; "
              f"largest difference between the two tables {s['max_table_difference']:.1e} "
              f"(other columns identical: {s['same_non_float_columns']}).",
              f"Profile score, embedded model, {p['pieces']} pieces: {p['per_piece_seconds_per_piece']:.3f} s per piece "
              f"alone, {p['pipeline_seconds_per_piece']:.3f} s across pieces; largest profile_score difference "
              f"{p['max_score_difference']:.1e}."]
