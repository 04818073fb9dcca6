"""Human-ratings readers (MusicEval, SongEval, any CSV) and their rank correlations, on generated fixtures."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lossprofile.analysis import ratings

DIMENSIONS = ["Overall Coherence", "Memorability", "Naturalness of Vocal Breathing and Phrasing",
              "Clarity of Song Structure", "Overall Musicality"]


def songeval_fixture(folder, n: int = 12, seed: int = 0) -> pd.DataFrame:
    """A SongEval-like metadata.jsonl: per song its mp3 and five dimensions, some as lists of raters' scores."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    truth = []
    with open(folder / "metadata.jsonl", "w") as f:
        for i in range(n):
            quality = rng.uniform(1, 5)
            scores = {d: float(np.clip(quality + rng.normal(0, 0.3), 1, 5)) for d in DIMENSIONS}
            raters = [float(np.clip(quality + rng.normal(0, 0.5), 1, 5)) for _ in range(3)]
            scores["Overall Musicality"] = raters  # several raters: the reader averages them
            f.write(json.dumps({"file_name": f"mp3/{i}.mp3", "gender": "female" if i % 2 else "male",
                                "system": f"sys{i % 3}", "aesthetic_scores": scores}) + "\n")
            truth.append(dict(clip=str(i), system=f"sys{i % 3}", musicality=float(np.mean(raters)),
                              mean=float(np.mean([np.mean(v) if isinstance(v, list) else v for v in scores.values()]))))
    return pd.DataFrame(truth)


def test_songeval_reader_gives_the_five_dimensions_in_snake_case_their_mean_and_the_raters_mean(tmp_path):
    truth = songeval_fixture(tmp_path / "SongEval")
    table = ratings.read_ratings(tmp_path / "SongEval", "songeval")  # the folder or its metadata.jsonl
    assert table.attrs["ratings"] == ["mean_aesthetic", "overall_coherence", "memorability",
                                      "naturalness_of_vocal_breathing_and_phrasing", "clarity_of_song_structure",
                                      "overall_musicality"]
    assert list(table["clip"]) == list(truth["clip"]) and list(table["system"]) == list(truth["system"])
    np.testing.assert_allclose(table["overall_musicality"], truth["musicality"])
    np.testing.assert_allclose(table["mean_aesthetic"], truth["mean"])
    # a score that follows the mean aesthetic rating exactly correlates perfectly with it, clip and system level
    scores = pd.DataFrame({"piece": truth["clip"], "profile_score": truth["mean"], "mean_nll": -truth["mean"]})
    corr = ratings.ratings_correlation(scores, table, ["profile_score", "mean_nll"])
    assert set(corr["rating"]) == set(table.attrs["ratings"]) and len(corr) == 12
    top = corr[corr["rating"] == "mean_aesthetic"].set_index("score")
    assert top["clip_spearman"].tolist() == pytest.approx([1.0, 1.0])  # mean_nll: lower loss = better
    assert (top["systems"] == 3).all() and top["system_spearman"].tolist() == pytest.approx([1.0, 1.0])


def test_songeval_reader_names_the_line_and_the_problem(tmp_path):
    path = tmp_path / "metadata.jsonl"
    path.write_text('{"file_name": "mp3/0.mp3", "aesthetic_scores": {"Memorability": 3}}\nnot json\n')
    with pytest.raises(ValueError, match=r"metadata.jsonl, line 2: not JSON"):
        ratings.read_songeval(path)
    path.write_text('{"file_name": "mp3/0.mp3", "gender": "male"}\n')
    with pytest.raises(ValueError, match=r"line 1: needs the audio file .* 'aesthetic_scores'"):
        ratings.read_songeval(path)
    path.write_text('{"file_name": "mp3/0.mp3", "aesthetic_scores": {"Memorability": "high"}}\n')
    with pytest.raises(ValueError, match=r"line 1: score 'Memorability' of clip '0' is not a number"):
        ratings.read_songeval(path)
    path.write_text('{"file_name": "a.mp3", "aesthetic_scores": {"Memorability": 3, "Musicality": 4}}\n'
                    '{"file_name": "b.mp3", "aesthetic_scores": {"Memorability": 3}}\n')
    with pytest.raises(ValueError, match=r"clip 'b' lacks some of the dimensions"):
        ratings.read_songeval(path)


def test_plain_csv_reader_takes_the_columns_it_is_told_and_works_without_systems(tmp_path):
    csv = tmp_path / "my_ratings.csv"
    pd.DataFrame({"path": ["clips/a.wav", "clips/b.wav", "clips/c.wav", "clips/d.wav"],
                  "quality": [1, 2, 3, 4], "fun": [4, 3, 2, 1]}).to_csv(csv, index=False)
    table = ratings.read_ratings(csv, "csv", clip="path", system=None, ratings=["quality", "fun"])
    assert list(table["clip"]) == ["a", "b", "c", "d"] and table.attrs["ratings"] == ["quality", "fun"]
    scores = pd.DataFrame({"piece": list("abcd"), "peak": [0.1, 0.2, 0.3, 0.4]})
    corr = ratings.ratings_correlation(scores, table, ["peak"]).set_index("rating")
    assert corr.loc["quality", "clip_spearman"] == pytest.approx(1.0)
    assert corr.loc["fun", "clip_spearman"] == pytest.approx(-1.0)
    assert (corr["systems"] == 0).all() and corr["system_spearman"].isna().all()  # no systems, no system level
    with pytest.raises(ValueError, match=r"my_ratings.csv: no column 'rating' .*--rating-columns"):
        ratings.read_ratings(csv, "csv", clip="path", system=None)
    pd.DataFrame({"clip": ["a", "a"], "rating": [1, 2]}).to_csv(csv, index=False)
    with pytest.raises(ValueError, match=r"clip 'a' is rated more than once"):
        ratings.read_ratings(csv, "csv", system=None)
    with pytest.raises(ValueError, match="unknown ratings layout 'mos'"):
        ratings.read_ratings(csv, "mos")
