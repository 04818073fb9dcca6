"""The toy DAC family (tests/models/toy_family.py: another codec, 86.13 frames/s, 3 codebooks, no delay pattern, a
decoder over flattened codes) scored through the runner, the profile score and the validation's version builder,
with nothing outside the tests knowing it: the protocol is all the engine needs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lossprofile import profile_scores, run_experiment
from lossprofile.analysis import evaluate
from lossprofile.perturb.probes import ProbeDesign
from lossprofile.audio import normalize_rms, save_audio
from lossprofile.data import list_pieces
from lossprofile.data.datasets import load_excerpt
from lossprofile.perturb import noise_sweep
from tests.models import toy_family

SECONDS = 1.5  # 129 whole frames of 512 samples at 44.1 kHz (129.2 frames)
# probes that fit 129 frames (each probe costs an encoding, the toy's dearest step): a 3-frame burst and a 12-frame
# window after 30 frames of context
DESIGN = ProbeDesign(n_bursts=1, burst_frames=3, long_frames=12, recovery_frames=8, first_onset=30, persist_frames=2)


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    folder = toy_family.save_random_checkpoint(tmp_path_factory.mktemp("toy_dac_scoring"), seed=1)
    return toy_family.load(str(folder), name="toy-dac", device="cpu", dtype=torch.float32)


@pytest.fixture(scope="module")
def music_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy_dac_music")
    for i in range(2):
        save_audio(folder / f"piece{i}.wav", toy_family.music(2.0, seed=i), 44100)
    return folder


def clean_nll(lm, wav: np.ndarray) -> np.ndarray:
    """The toy factorization's per-code NLL ``[K, T]`` of one waveform, straight from the model."""
    return lm.token_statistics(lm.encode(torch.from_numpy(wav)[None, None])).nll[0].numpy()


@pytest.mark.slow
def test_the_toy_family_is_scored_through_the_runner(lm, music_folder, tmp_path):
    pieces = list_pieces(music_folder, "ood")
    perts = noise_sweep([10, 30], onset_frame=80)  # frame 80 is 0.93 s: onsets are frames of the model's grid
    table = run_experiment(lm, pieces, perts, tmp_path / "run", excerpt_seconds=SECONDS, progress=False)
    T = int(SECONDS * lm.frame_rate)  # whole frames at a fractional frame rate
    assert T == 129 and len(table) == 2 * 2 * T and table["piece"].nunique() == 2
    for (_, length), curve in table.groupby(["piece", "length_frames"]):
        delta = curve.sort_values("frame")["delta"].to_numpy()
        # no look-ahead in the decoder: only codes the codec changed (its receptive field reaches a few frames
        # before the window, never 20) and what follows them can differ
        assert np.all(delta[:60] == 0.0)
        assert np.abs(delta[80 : 80 + length]).max() > 1e-3
    # the runner's clean curve is the model's own NLL of the excerpt, mean over the 3 codebooks
    expected = clean_nll(lm, load_excerpt(pieces[0], lm.sample_rate, SECONDS)).mean(0)
    got = table[(table["piece"] == pieces[0].name) & (table["length_frames"] == 10)].sort_values("frame")
    np.testing.assert_allclose(got["nll_clean"].to_numpy(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_the_toy_family_gets_a_profile_score(lm):
    wavs = [toy_family.music(2.0, seed=0), toy_family.music(1.3, seed=1)]
    table = profile_scores(lm, wavs, lm.sample_rate, excerpt_seconds=SECONDS, design=DESIGN, names=["a", "b"],
                           weights={}, min_seconds=1.0, context_window_seconds=0.4)
    assert list(table["piece"]) == ["a", "b"] and not table.attrs["errors"]
    # the short clip is scored over its whole frames: 1.3 s holds 111 frames of 512 samples
    assert table["seconds_scored"].tolist() == pytest.approx([SECONDS, 111 * 512 / 44100])
    features = ["peak", "assimilation", "recovery_excess", "mean_nll", "mean_entropy", "context_gain"]
    assert np.isfinite(table[features]).all().all(), table[features]
    # mean_nll is the model's NLL of the loudness-normalised excerpt
    excerpt = normalize_rms(toy_family.music(2.0, seed=0)[: int(SECONDS * lm.sample_rate)])
    assert table.loc[0, "mean_nll"] == pytest.approx(float(clean_nll(lm, excerpt).mean()), abs=1e-4)


@pytest.mark.slow
def test_the_validations_versions_of_a_piece_are_built_and_scored_on_the_toy_grid(lm, music_folder, tmp_path):
    piece = list_pieces(music_folder, "ood")[0]
    families = {"noise_segments": (0.4,), "shuffle": (0.5,)}
    versions = evaluate.piece_versions(piece, lm, SECONDS, {"audio": families}, seed=0)
    clean = versions[0][1]
    assert [v.family for v, _ in versions] == ["clean", "noise_segments", "shuffle"]
    # every degradation starts after START_FRAME whole frames of 512 samples and changes the excerpt after it
    start = evaluate.START_FRAME * lm.hop_length
    for _, wav in versions[1:]:
        assert wav.shape == clean.shape and np.array_equal(wav[:start], clean[:start])
        assert np.abs(wav[start:] - clean[start:]).max() > 1e-3
    table = evaluate.profile_versions(lm, [piece], tmp_path / "validation", excerpt_seconds=SECONDS,
                                  audio_families=families, symbolic_families={}, design=DESIGN, progress=False)
    assert len(table) == 3 and list(table["family"]) == ["clean", "noise_segments", "shuffle"]
    assert np.isfinite(table[["peak", "mean_nll", "mean_entropy"]]).all().all()
    # damage moves the score: every degraded version's mean NLL differs from the clean one's
    assert (np.abs(table["mean_nll"].iloc[1:] - table["mean_nll"].iloc[0]) > 1e-4).all()
