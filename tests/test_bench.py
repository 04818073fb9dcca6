"""The benchmark's two paths score the same thing (its speed is measured by `make bench`, not here)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from lossprofile import bench
from lossprofile.commands import bench as bench_command


@pytest.mark.slow
def test_published_and_engine_paths_agree_and_the_report_ends_with_the_speed_up(capsys):
    r = bench_command.main(["--model", "tiny", "--device", "cpu", "--pieces", "2", "--seconds", "10", "--pieces-per-batch", "2",
                "--paper-pieces", "0"])  # (its prefix-groups line: tests/test_scoring.py)
    out = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"speed-up: \d+\.\d×", out[-1])
    text = "\n".join(out)
    n_differ, n_total = map(int, re.search(r"near-tie: (\d+) of (\d+)", text).groups())
    assert n_total == 12 and n_differ <= 1
    diff = float(re.search(r"where codes agree: ([0-9.e+-]+) nats", text).group(1))
    assert diff < 1e-4
    assert any(line.startswith("(a) published per-file") for line in out)
    # the pipeline (2 pieces per decoder batch) scores the same codes as the engine piece by piece
    n_differ, n_total, diff = re.search(r"\(b\) vs \(c\): (\d+) of (\d+); largest per-frame delta difference: "
                                        r"([0-9.e+-]+) nats", text).groups()
    assert (int(n_differ), int(n_total)) == (0, 12) and float(diff) < 1e-4
    assert any(line.startswith("(c) pipeline") for line in out)
    # every noise length changes the trained codec's codes: the decoder has each variant to score
    assert re.search(r"clean piece's \(nothing for the decoder to score\): 0 of 12", text)
    # the GPU check's table row from the same numbers
    from lossprofile import gpucheck

    table = gpucheck.report(dict(environment=dict(date="-", gpu="cpu", torch="-", transformers="-"), bench=[r]))
    row = r"\| tiny \| [\d,]+ \| [\d,]+ \| [\d,]+ \| \d+\.\d× \| nan / nan \| nan% \| 0 of 12 \| 0 of 12 \|"
    assert re.search(row, table)  # no FLOPs on CPU; no variant with its clean codes, none differing (b) vs (c)


@pytest.mark.slow
def test_a_random_codec_of_the_real_size_gets_codes_that_follow_its_input():
    # transformers builds EnCodec with all-zero codebooks: every frame of every waveform gets code 0, so a
    # benchmark on random weights would see no variant differ from its clean piece (the GPU checks of 2026-11-25
    # and 2026-11-29 did). calibrate_codec standardises the latents and starts the codebooks from k-means of
    # them. The real codec's size (its convolutions are most of this test's time: short audio), with 64 codes
    # per codebook so that 8 s of calibration give k-means several frames per code.
    from lossprofile.models.musicgen.architecture import build_model, calibrate_codec, musicgen_config
    from lossprofile.models.musicgen.codec import quantize_with_margins
    from lossprofile.perturb import Perturbation

    model = build_model(musicgen_config(text_layers=1, text_dim=64, text_heads=2, text_ff=64, text_vocab=100,
                                        cardinality=64))
    sr, codec = model.config.audio_encoder.sampling_rate, model.audio_encoder
    clean = bench.synthetic_pieces(1, 4.0, sr, seed=0)[0]
    noisy = Perturbation("noise", 100, 30).apply(clean, sr, 50)

    def encode(wav):  # → (codes [K, T], relative VQ decision margins [K, T]) of the codec's own arithmetic
        with torch.no_grad():
            latents = codec.encoder(torch.from_numpy(wav)[None, None])
            codes, margins = quantize_with_margins(codec.quantizer, latents, 4)
        return codes[0], margins[0], latents[0]

    assert encode(clean)[0].unique().numel() == 1  # the premise: uncalibrated, one code for everything
    calibrate_codec(model, torch.from_numpy(bench.synthetic_pieces(1, 8.0, sr, seed=99)[0])[None, None])
    (codes, margins, latents), codes_noisy = encode(clean), encode(noisy)[0]
    assert codes.shape == (4, 200) and all(codes[k].unique().numel() > 20 for k in range(4))
    changed = (codes != codes_noisy).any(0).nonzero().flatten()
    # the noise's 30 frames change codes; nothing changes before the convolutions' reach (a few frames)
    assert changed.min() >= 100 - 8 and ((changed >= 100) & (changed < 130)).sum() >= 25
    # latents of another piece: standardised per channel, and VQ decisions with margins as a trained codec's
    # (uncalibrated codebooks filled from the raw latents: median relative margin 3e-7, every code a near-tie)
    assert latents.mean(1).abs().median() < 0.5 and 0.5 < latents.std(1).median() < 2
    assert margins.median() > 1e-2 and (margins < 1e-5).float().mean() < 0.01


@pytest.mark.slow
def test_the_gpu_check_runs_end_to_end_and_writes_its_table(tmp_path, tiny_lm):
    # on the CPU with the embedded model: the same code path `make gpu-check` takes on a GPU
    from lossprofile.commands import gpu_check

    # Its "bench" step is bench.measure, which the test above runs through `lossprofile bench` (the same
    # function, the same pieces): left out here to keep `make test` inside its 15 minutes.
    out = tmp_path / "gpu-check.md"
    gpu_check.main(["--device", "cpu", "--archs", "tiny", "--pieces", "2", "--pieces-per-batch", "2", "--out", str(out),
                   "--steps", "stages", "projection", "sweep", "profile", "compile", "--projection-pieces", "1",
                   "--projection-variants", "3", "--compile-archs", "tiny", "--budget-minutes", "0"])
    text = out.read_text()
    assert text.startswith("# GPU check") and "| tiny |" in text
    numbers = json.loads(out.with_suffix(".json").read_text())
    assert numbers["bench"] == []
    assert numbers["sweep"]["same_non_float_columns"] and numbers["sweep"]["max_table_difference"] < 1e-4
    assert numbers["profile"]["max_score_difference"] < 1e-3
    (stages,) = numbers["stages"]  # where the pipeline's time goes: every stage took time
    assert min(stages["prepare"], stages["encode"], stages["decode"]) > 0 and "| prepare | encode" in text
    # the decode stage's rate from the row-steps it ran: 2 pieces x (a prefix, then 7 rows from about frame 246)
    assert 2 * 753 * 4 < stages["decoder_row_steps"] < 2 * 753 * 7
    assert stages["decode_tflops"] == pytest.approx(
        tiny_lm.forward_flops_per_step(753) * stages["decoder_row_steps"] / stages["decode"] / 1e12)
    (rate,) = numbers["projection"]  # the paper sweep's first 3 perturbations on one ASAP piece, through the runner
    assert rate["variants"] == 3 and rate["pieces"] == 1 and rate["fps"] * rate["seconds"] == pytest.approx(3 * 750)
    assert rate["source"].endswith("asap") and "asap | 3 |" in text
    # the tiny model is no hub size: each of the four models is listed, none projected from it
    assert [p["measured_as"] for p in numbers["projected"]] == [None] * 4 and "not every size was measured" in text
    # the compile step runs last and only within the time budget (0 minutes here): named, not silently missing
    assert "compile" not in numbers and "Decoder under torch.compile not measured: tiny and later sizes" in text


def test_the_sweep_projection_scales_seconds_per_piece_to_the_whole_sweep():
    from lossprofile import gpucheck

    sweep = gpucheck.paper_sweep("sweeps/paper.yaml")
    assert [gpucheck.size_of(m) for m in sweep.models] == ["small", "medium", "large", "medium"]  # melody: medium
    variants = len(sweep.perturbations_for("ood"))
    rates = {"small": dict(seconds_per_piece=2.0, variants=variants), "medium": dict(seconds_per_piece=1.0, variants=3)}
    rows = {r["model"]: r for r in gpucheck.project(rates, sweep)}
    # 240 pieces × 3 data kinds at 2 s per piece = 24 minutes; medium measured on 3 variants, scaled to all
    assert rows["facebook/musicgen-small"]["minutes"] == pytest.approx(240 * 3 * 2.0 / 60)
    assert rows["facebook/musicgen-medium"]["minutes"] == pytest.approx(240 * 3 * variants / 3 / 60)
    assert rows["facebook/musicgen-melody"]["minutes"] == rows["facebook/musicgen-medium"]["minutes"]
    assert np.isnan(rows["facebook/musicgen-large"]["minutes"]) and rows["facebook/musicgen-large"]["measured_as"] is None


def test_the_decoder_floor_counts_each_variants_steps_from_its_onset_and_the_flops_of_its_shapes():
    from lossprofile import gpucheck
    from lossprofile.models.musicgen.architecture import decoder_flops_per_step, real_architecture

    sweep = gpucheck.paper_sweep("sweeps/paper.yaml")
    floor = {r["model"]: r for r in gpucheck.decoder_floor(sweep, peak_tflops=1000.0)}
    medium = floor["facebook/musicgen-medium"]
    steps = 750 + 4 - 1  # 15 s at 50 frames/s, 4 codebooks' delay
    # one prefix per piece: the shuffles change frame 0, so each of 82 rows runs every step, 240 pieces x 3 kinds
    assert medium["row_steps_one_prefix"] == 240 * 3 * 82 * steps
    # by hand, each onset its own group: 9 rows from frame 0; 33 noise variants at 250; 3 at each of 50..700 but
    # 250 (the clean row joins 700's): a group of g rows with prefix m costs m + g (steps - m)
    onsets = [m for m in range(50, 701, 50) if m != 250]
    by_onset = 9 * steps + (250 + 33 * (steps - 250)) + sum(m + (3 + (m == 700)) * (steps - m) for m in onsets)
    assert medium["row_steps"] <= 240 * 3 * by_onset < 0.75 * medium["row_steps_one_prefix"]
    per_step = decoder_flops_per_step(real_architecture("medium").decoder, steps)
    assert medium["pflop"] == pytest.approx(medium["row_steps"] * per_step / 1e15)
    assert medium["minutes_at_100%"] == pytest.approx(medium["pflop"] * 1e15 / 1000e12 / 60)
    assert medium["minutes_at_35%"] == pytest.approx(medium["minutes_at_100%"] / 0.35)
    assert floor["facebook/musicgen-melody"]["pflop"] == medium["pflop"] < floor["facebook/musicgen-large"]["pflop"]


@pytest.mark.slow
def test_decoder_flops_per_step_match_torchs_flop_counter():
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    from lossprofile.models.musicgen.architecture import build_model, decoder_flops_per_step, musicgen_config

    cfg = musicgen_config(num_hidden_layers=3, hidden_size=64, num_attention_heads=4, ffn_dim=256, cardinality=128,
                          text_layers=1, text_dim=32, text_heads=2, text_ff=32)
    model, steps, d, layers = build_model(cfg), 40, 64, 3
    inputs = torch.zeros(4, steps, dtype=torch.long)  # [K, S]: one sequence of 4 codebooks
    text = torch.zeros(1, 1, d)  # one text token, projected to the decoder's width (what the null condition gives)
    # the plain attention kernel: its matmuls are what the counter sees (the fused CPU kernel it does not count)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model.decoder(input_ids=inputs, encoder_hidden_states=text)
    counted = counter.get_total_flops()
    # the plain kernel computes attention over all steps; the formula counts the causal half that is ever used,
    # and not the text's keys and values (one token: 2 x 2 x d x d per layer, once per sequence) nor attention
    # over them (2 x 2 x d per step and layer)
    full_attention = layers * 2 * 2 * d * steps * steps
    text = layers * 2 * 2 * d * d + layers * 2 * 2 * d * steps
    assert counted == pytest.approx(steps * decoder_flops_per_step(cfg.decoder, steps) + full_attention / 2 + text,
                                    rel=1e-9)


@pytest.mark.slow
def test_the_compile_check_times_each_mode_against_eager_and_reports_a_mode_that_fails(small_lm):
    import torch._dynamo

    codes = torch.randint(0, small_lm.cardinality, (3, small_lm.num_codebooks, 40),
                          generator=torch.Generator().manual_seed(0))
    eager = small_lm.token_statistics(codes)
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    r = bench.compile_check(small_lm, 2, 15.0, "auto", 2, modes=("no-such-mode", "default"))
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > graphs  # the layers ran as compiled graphs
    failed, compiled = r["modes"]
    assert failed["mode"] == "no-such-mode" and "no-such-mode" in failed["error"]
    assert compiled["mode"] == "default" and "error" not in compiled
    # the first pass compiles (seconds), the second runs what it compiled (milliseconds for this model)
    assert compiled["first_seconds"] > 5 * compiled["seconds"] > 0
    assert compiled["speed_up"] == pytest.approx(r["eager_seconds"] / compiled["seconds"])
    assert 0 <= compiled["max_nll_difference"] < 1e-3
    # 2 pieces x (the clean row and 6 noise variants): each row runs at least the steps after its prefix
    steps = 15 * small_lm.frame_rate + small_lm.num_codebooks - 1
    assert 2 * steps < r["decoder_row_steps"] <= 2 * 7 * steps
    assert all("forward" not in vars(layer) for layer in small_lm.model.decoder.model.decoder.layers)
    assert torch.equal(small_lm.token_statistics(codes).nll, eager.nll)  # eager again: the same kernels
    # a mode that would start after the time budget is named, not run
    late = bench.compile_check(small_lm, 2, 15.0, "auto", 2, modes=("default",), start_by=0.0)
    assert late["modes"] == [dict(mode="default", error="not run: out of the time budget")]
    from lossprofile import gpucheck

    table = gpucheck.report(dict(environment=dict(date="-", gpu="cpu", torch="-", transformers="-"), compile=[r]))
    assert "| eager | – |" in table and "| no-such-mode | failed: RuntimeError: Unrecognized mode" in table
    assert f"| default | {compiled['first_seconds']:.1f} | {compiled['seconds']:.2f} |" in table
