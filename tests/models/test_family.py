"""A second model family needs no edit of the engine: a toy family defined only here, scored through
the runner, the profile score and the benchmark's engine path, through the protocol alone."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from lossprofile import TokenLM, TokenStats, profile_scores, run_experiment
from lossprofile.audio import save_audio
from lossprofile.data import list_pieces
from lossprofile.models.base import frame_statistics
from lossprofile.perturb import noise_sweep


class ToyLM(TokenLM):
    """K = 2 streams of V = 16 codes at 50 tokens/s over 8 kHz audio: a frame's log-RMS level and its
    zero-crossing rate, each binned; each code predicted from the previous code of its own stream
    through a fixed random table (a first-order Markov LM). Frame-local tokens and a one-step
    context make the answer to 'which tokens can a change move' exact."""

    family = "toy"
    V = 16

    def __init__(self, seed: int = 0):
        self.name, self.fingerprint, self.device = "toy", f"toy-{seed}", torch.device("cpu")
        g = torch.Generator().manual_seed(seed)
        self.table = torch.randn(2, self.V + 1, self.V, generator=g) * 2  # [K, previous code or start, V]

    sample_rate = 8000
    frame_rate = 50
    num_codebooks = 2
    cardinality = V

    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        frames = wav[:, 0, : wav.shape[-1] // self.hop_length * self.hop_length].reshape(wav.shape[0], -1,
                                                                                         self.hop_length)
        level = 10 * torch.log10(frames.square().mean(-1) + 1e-10)  # dBFS per frame
        crossings = (torch.diff(torch.sign(frames), dim=-1) != 0).float().mean(-1)
        codes = torch.stack([((level + 80) / 80 * self.V).floor(), (crossings * self.V).floor()], dim=1)
        return codes.clamp(0, self.V - 1).long()

    def token_statistics(self, codes, prompt=None, method="exact") -> TokenStats:
        codes = self.check_codes(codes)
        B, K, T = codes.shape
        previous = torch.cat([torch.full((B, K, 1), self.V), codes[:, :, :-1]], dim=2)  # start row, then codes
        logits = torch.stack([self.table[k][previous[:, k]] for k in range(K)], dim=1)  # [B, K, T, V]
        stats = frame_statistics(logits.reshape(B * K, T, self.V), codes.reshape(B * K, T))
        return TokenStats(*(x.reshape(B, K, T) for x in stats))


def reference_nll(lm: ToyLM, codes: torch.Tensor) -> np.ndarray:
    """The toy factorization token by token, with no tensor tricks: an independent reference."""
    K, T = codes.shape
    out = np.zeros((K, T))
    for k in range(K):
        for t in range(T):
            prev = lm.V if t == 0 else int(codes[k, t - 1])
            logits = lm.table[k, prev].double()
            out[k, t] = float(torch.logsumexp(logits, 0) - logits[int(codes[k, t])])
    return out


def music(seconds: float, sample_rate: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    notes = 220 * 2 ** (rng.integers(0, 12, int(seconds * 4) + 1) / 12)
    wav = (0.2 + 0.15 * np.sin(2 * np.pi * 0.5 * t)) * np.sin(2 * np.pi * np.cumsum(notes[(t * 4).astype(int)])
                                                               / sample_rate)
    return wav.astype(np.float32)


@pytest.fixture(scope="module")
def toy_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy_music")
    for i in range(3):
        save_audio(folder / f"piece{i}.wav", music(6.0, 8000, seed=i), 8000)
    return folder


def test_the_toy_family_is_scored_through_the_runner(toy_folder, tmp_path):
    lm = ToyLM()
    perts = noise_sweep([10, 50], onset_frame=100)
    table = run_experiment(lm, list_pieces(toy_folder, "ood"), perts, tmp_path / "run", excerpt_seconds=5.0,
                           progress=False)
    T = 5 * lm.frame_rate
    assert len(table) == 3 * 2 * T and table["piece"].nunique() == 3
    for (piece, length), curve in table.groupby(["piece", "length_frames"]):
        delta = curve.sort_values("frame")["delta"].to_numpy()
        # frame-local tokens and a one-step context: nothing before the window can change
        assert np.all(delta[:100] == 0.0)
        assert np.abs(delta[100 : 100 + length]).max() > 0.1  # white noise moves both codes
        assert np.all(delta[100 + length + 1 :] == 0.0)  # one step after the window the context is clean again
    # the clean curve is the toy factorization, checked token by token
    from lossprofile.data.datasets import load_excerpt

    piece = list_pieces(toy_folder, "ood")[0]
    codes = lm.encode(torch.from_numpy(load_excerpt(piece, lm.sample_rate, 5.0))[None, None])[0]
    expected = reference_nll(lm, codes).mean(0)
    got = table[(table["piece"] == piece.name) & (table["length_frames"] == 10)].sort_values("frame")["nll_clean"]
    np.testing.assert_allclose(got.to_numpy(), expected, rtol=1e-5, atol=1e-5)
    # a second run reuses every finished part instead of scoring again
    again = run_experiment(lm, list_pieces(toy_folder, "ood"), perts, tmp_path / "run", excerpt_seconds=5.0,
                           progress=False)
    pd.testing.assert_frame_equal(table, again)


def test_the_toy_family_gets_a_profile_score(toy_folder):
    lm = ToyLM()
    wavs = [music(6.0, 8000, seed=i) for i in range(3)]
    table = profile_scores(lm, wavs, lm.sample_rate, excerpt_seconds=5.0, names=["a", "b", "c"], weights={})
    assert list(table["piece"]) == ["a", "b", "c"]
    assert np.isfinite(table[["peak", "assimilation", "recovery_excess", "mean_nll", "mean_entropy"]]).all().all()
    assert (table["peak"] > 0).all()  # white-noise bursts cost a Markov LM of music levels more than the music


def test_the_engine_does_not_import_musicgen():
    code = ("import sys, lossprofile.scoring, lossprofile.runner, lossprofile.analysis.profile, lossprofile.sweep, "
            "lossprofile.bench, lossprofile.cli; print(sorted(m for m in sys.modules if m.startswith('lossprofile.models.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "musicgen" not in out, out
