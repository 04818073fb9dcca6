"""figures/summary.md: our numbers beside the paper's, and sentences that follow the data's sign."""

from __future__ import annotations

import pandas as pd
import pytest

from lossprofile.paper import experiments as ex
from lossprofile.paper.summary import write_summary


def write_stats(results_dir, pearson_r: float, pure_noise: float) -> None:
    ex.save_table(pd.DataFrame([dict(scope="all points", dataset=None, n=36, pearson_r=pearson_r, pearson_p=1e-9,
                                     spearman_rho=pearson_r, spearman_p=1e-9, slope=0.004 * pearson_r,
                                     slope_ci_low=-0.01, slope_ci_high=0.01, slope_p=1e-9),
                                dict(scope="per data kind", dataset="ood", n=18, pearson_r=-0.5, pearson_p=1e-3,
                                     spearman_rho=-0.5, spearman_p=1e-3, slope=-0.002, slope_ci_low=-0.01,
                                     slope_ci_high=0.0, slope_p=1e-3)]),
                  "length_stats", results_dir)
    ex.save_table(pd.DataFrame(dict(dataset=["ood", "training"], mean=[2.9, 3.4], std=[0.2, 0.5], count=[8, 8])),
                  "clean_loss_by_kind", results_dir)
    ex.save_table(pd.DataFrame(dict(noise_length_frames=100, dataset=["ood"], clean=[3.0], music_plus_noise=[3.2],
                                    pure_noise=[pure_noise])), "loss_by_condition", results_dir)
    ex.save_table(pd.DataFrame(dict(region=["peak", "assimilation", "recovery"], mean=[1.5, -0.3, 0.8],
                                    std=[0.8, 0.5, 0.4], count=[96, 36, 96])), "region_summary", results_dir)


@pytest.mark.parametrize("pearson_r, pure_noise, direction, easier", [(0.89, 5.2, "raises", "harder"),
                                                                       (-0.9, 2.1, "lowers", "easier")])
def test_summary_states_what_the_numbers_say_beside_the_paper(tmp_path, pearson_r, pure_noise, direction, easier):
    write_stats(tmp_path / "res", pearson_r, pure_noise)
    text = write_summary(tmp_path / "res", tmp_path / "summary.md").read_text()
    assert f"Longer noise **{direction}** the mean loss here (Pearson r = {pearson_r:.2f}" in text
    assert f"finds noise {easier} to predict than music" in text
    # a data kind that lowers the loss is set against the overall direction only where that differs
    assert ("For OOD, though, longer noise lowers" in text) == (direction == "raises")
    assert "For OOD" in text and "longer noise lowers the mean loss (Spearman rho = -0.50" in text
    assert "| OOD | 2.90 ± 0.20 | 8 | 4.19 ± 1.01 |" in text  # ours beside MusicGen-Small's
    assert "| Assimilation | -0.30 ± 0.50 | 36 | -1.5 ± 0.95 |" in text
    assert "r < -0.85, p < 0.001" in text


def test_spread_reports_the_largest_difference_between_runs(tmp_path):
    from tools.spread import compare

    for i, value in enumerate((1.00, 1.03, 0.98)):
        ex.save_table(pd.DataFrame(dict(dataset=["ood", "training"], mean=[value, 2.0], count=[2, 2])),
                      "clean_loss_by_kind", tmp_path / f"run{i}")
    table = compare([tmp_path / f"run{i}" for i in range(3)]).set_index("column")
    assert table.loc["mean", "max_spread"] == pytest.approx(0.05)
    assert table.loc["count", "max_spread"] == 0


def side_by_side_stats(results_dir, symbolic_r: float, symbolic_assimilation: float) -> None:
    def trend(model, r):
        return dict(model=model, dataset="all", n=36, pearson_r=r, pearson_p=1e-6, spearman_rho=r, spearman_p=1e-6,
                    slope=0.001 * r, slope_ci_low=-1.0, slope_ci_high=1.0)

    ex.save_table(pd.DataFrame([trend("tiny", -0.8), trend("tiny-symbolic", symbolic_r)]), "length_stats_by_model",
                  results_dir)
    ex.save_table(pd.DataFrame(dict(model=["tiny"] * 3 + ["tiny-symbolic"] * 3,
                                    region=["peak", "assimilation", "recovery"] * 2,
                                    mean=[1.0, -0.5, 0.0, 5.0, symbolic_assimilation, 0.1], std=0.5, count=24)),
                  "region_summary_by_model", results_dir)
    ex.save_table(pd.DataFrame(dict(model=["tiny", "tiny-symbolic"], window=["white noise", "random notes"],
                                    length_seconds=4.0, unit=["nats per code", "nats per token"],
                                    window_nll=[3.0, 5.5], clean_window_nll=[3.7, 1.5], counting_nll=[3.8, 5.4],
                                    pieces=6)), "noise_window_costs", results_dir)


@pytest.mark.parametrize("symbolic_r, symbolic_assimilation, verdict", [
    (0.7, 2.0, "appears for tiny and not for tiny-symbolic"),
    (-0.7, -0.4, "appears for every model here"),
    (-0.7, 0.3, "appears for tiny and not for tiny-symbolic")])  # lower mean loss, but never below the clean loss
def test_audio_vs_symbolic_section_says_where_context_amnesia_appears(tmp_path, symbolic_r, symbolic_assimilation,
                                                                     verdict):
    side_by_side_stats(tmp_path / "res", symbolic_r, symbolic_assimilation)
    text = write_summary(tmp_path / "res", tmp_path / "summary.md").read_text()
    assert "## Audio vs symbolic: does Context Amnesia appear without a codec?" in text
    assert verdict in text
    direction = "lowers" if symbolic_r < 0 else "raises"
    assert f"**tiny-symbolic**: longer noise {direction} the mean loss (Pearson r = {symbolic_r:+.2f}" in text
    assert ("random notes (4 s): the model pays 5.50 nats per token inside the window against 1.50 for the clean "
            "music there and 5.40 for a counting learner") in text


def test_no_side_by_side_section_for_one_model(tmp_path):
    side_by_side_stats(tmp_path / "res", 0.7, 2.0)
    one = pd.read_parquet(tmp_path / "res" / "stats" / "length_stats_by_model.parquet").head(1)
    ex.save_table(one, "length_stats_by_model", tmp_path / "res")
    assert "Audio vs symbolic" not in write_summary(tmp_path / "res", tmp_path / "summary.md").read_text()


def test_a_score_reported_alone_is_never_named_as_the_one_that_ships():
    from lossprofile.paper.summary import lofo_reading

    rows = []
    for family in ("A", "B"):
        for score, auroc in (("profile_score", 0.7), ("rank_average", 0.6), ("mean_nll", 0.8), ("binoculars", 0.9),
                             ("context_gain", 0.5)):
            rows.append(dict(held_out_family=family, score=score, auroc=auroc, diff_ci_low=auroc - 0.85,
                             diff_ci_high=auroc - 0.75))
    sentences = lofo_reading(pd.DataFrame(rows))
    best = next(s for s in sentences if s.startswith("Highest"))
    assert best.startswith("Highest mean AUROC over held-out families: `mean_nll` (0.80")
    assert sentences[-1] == "Reported alone (never combined nor shipped), mean AUROC: `binoculars` 0.90, `context_gain` 0.50."
    assert "does worse on A, B" in sentences[0]
