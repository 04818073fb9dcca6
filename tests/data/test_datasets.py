"""The Generated dataset: samples of the model itself, tied to its weights."""

from __future__ import annotations

import pandas as pd
import soundfile as sf

from lossprofile.data.datasets import build_generated_set, generated_is_current


def test_generated_set_holds_distinct_samples_of_these_weights_and_drops_stale_ones(small_lm, tmp_path):
    stale = tmp_path / "topk0010-00.flac"
    sf.write(stale, [0.0] * 32000, 32000)  # left by an unknown model, no marker
    manifest = build_generated_set(small_lm, tmp_path, top_ks=(10, 500), per_top_k=2, seconds=1.0)
    assert list(manifest["top_k"].astype(int)) == [10, 10, 500, 500]
    assert generated_is_current(small_lm, tmp_path)
    wavs = [sf.read(tmp_path / f)[0] for f in manifest["file"]]
    assert all(w.size == 32000 for w in wavs)
    assert wavs[0].std() > 0  # the stale silent file was replaced
    assert len({w.tobytes() for w in wavs}) == 4
    mtimes = {f: (tmp_path / f).stat().st_mtime_ns for f in manifest["file"]}
    build_generated_set(small_lm, tmp_path, top_ks=(10, 500), per_top_k=2, seconds=1.0)
    assert mtimes == {f: (tmp_path / f).stat().st_mtime_ns for f in manifest["file"]}  # reused, not resampled
    assert set(pd.read_csv(tmp_path / "manifest.csv", dtype=str)["weights"]) == {small_lm.fingerprint}
