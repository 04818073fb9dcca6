"""report.py: the page beside a finished run, for every preset and every piece name."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lossprofile import cli
from lossprofile.report import media_name, region_means

ASAP = Path(__file__).resolve().parents[1] / "data" / "asap"


def curve(length_frames, onset_frame=50, frames=300) -> pd.DataFrame:
    delta = np.zeros(frames)
    if length_frames is not None:
        delta[onset_frame : onset_frame + 5] = 2.0  # a peak, then the window settles
    return pd.DataFrame({"frame": np.arange(frames), "delta": delta, "piece": "p",
                         "onset_frame": onset_frame if length_frames is not None else None,
                         "length_frames": length_frames})


def test_region_means_leave_a_curve_without_a_window_empty_instead_of_failing():
    # a score preset's whole-piece kinds (pitch, rhythm, velocity, tempo) have no onset and no length
    table = region_means(pd.concat([curve(100).assign(piece="windowed"), curve(None).assign(piece="whole")]),
                         ["piece"])
    rows = table.set_index("piece")
    assert set(rows.index) == {"windowed", "whole"}
    assert rows.loc["windowed"].filter(like="_delta").notna().any()
    assert rows.loc["whole"].filter(like="_delta").isna().all()


@pytest.mark.parametrize("names", [("sub/x", "sub_x"), ("é", "è"), ("a b", "a_b")])
def test_two_pieces_whose_names_are_made_safe_alike_get_two_players(names):
    first, second = (media_name(n) for n in names)
    assert first != second
    assert all(name.endswith(".flac") and "/" not in name for name in (first, second))
    assert media_name(names[0]) == first  # the same piece keeps its file across reports


@pytest.mark.slow
def test_a_score_preset_run_writes_its_report(tmp_path, capsys):
    folder = tmp_path / "midi"
    folder.mkdir()
    shutil.copy(sorted(ASAP.rglob("*.mid"))[0], folder / "piece.mid")
    out = tmp_path / "pitch"
    rc = cli.main(["score", "--model", "tiny-symbolic", "--device", "cpu", "--threads", "1", "--data", str(folder),
                   "--preset", "authors-pitch", "--out", str(out)])
    capsys.readouterr()
    assert rc == 0
    assert (out / "report.html").is_file() and len(pd.read_parquet(out / "results.parquet"))


def test_a_figure_titled_in_a_script_the_fonts_lack_is_drawn_without_a_warning_per_glyph():
    import warnings

    from lossprofile.report import png_data_uri, probe_figure

    frames = np.arange(200)
    curve = pd.DataFrame(dict(frame=frames, nll_clean=np.sin(frames / 9.0) + 3, nll_probed=np.cos(frames / 7.0) + 3,
                              probe=np.where((frames % 50) < 5, frames // 50, -1), long_probe=frames > 150))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        uri = png_data_uri(probe_figure(curve, "曲 ピアノ 音楽"))  # its layout and its save both draw the title
    assert uri.startswith("data:image/png;base64,") and len(uri) > 1000
    assert not [w for w in caught if "Glyph" in str(w.message)]
