"""Small MusicGen checkpoints built in the tests, saved and loaded like hub checkpoints."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
# torch.compile's C++ kernels are cached on disk without the CPU capability in their key: kernels written under
# AVX512 then fail to build under ATEN_CPU_CAPABILITY=default (torch 2.13). One cache per capability.
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", os.path.join(
    tempfile.gettempdir(), f"torchinductor_lossprofile_{torch.backends.cpu.get_cpu_capability().lower()}"))

from lossprofile import load_model  # noqa: E402
from lossprofile.models.musicgen.architecture import build_model, kmeans_codebooks, musicgen_config  # noqa: E402
from lossprofile.embedded.lm_training import build_tokenizer  # noqa: E402

SMALL = dict(num_hidden_layers=2, hidden_size=32, num_attention_heads=4, ffn_dim=64, cardinality=64,
             codec_filters=4, codec_hidden=16, codec_lstm_layers=1, text_vocab=32, text_dim=16,
             text_layers=1, text_heads=2, text_ff=32, max_position_embeddings=512)


def save_random_checkpoint(path, seed: int = 0, **arch) -> str:
    """A random-weight MusicGen whose codebooks are k-means of real latents (so codes vary)."""
    model = build_model(musicgen_config(**{**SMALL, **arch}), seed=seed)
    with torch.no_grad():
        g = torch.Generator().manual_seed(seed)
        t = torch.arange(32000 * 2) / 32000
        wav = (0.3 * torch.sin(2 * torch.pi * 220 * t * (1 + t)) + 0.05 * torch.randn(len(t), generator=g))
        z = model.audio_encoder.encoder(wav[None, None])
        kmeans_codebooks(model.audio_encoder.quantizer, z.permute(0, 2, 1).reshape(-1, z.shape[1]), iters=5)
    model.save_pretrained(path)
    build_tokenizer(["organ chorale", "piano", "strings with drums"]).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory) -> str:
    return save_random_checkpoint(tmp_path_factory.mktemp("small_musicgen"))


@pytest.fixture(scope="session")
def small_lm(small_checkpoint):
    return load_model(small_checkpoint, device="cpu")


# The embedded models, loaded once per session and shared: loading one costs about a second (tiny: 22 MB of weights),
# and about a dozen tests read them. Tests must not change them (monkeypatch a class, not these objects); a test
# of loading itself calls load_model.
@pytest.fixture(scope="session")
def tiny_lm():
    return load_model("tiny", device="cpu")


@pytest.fixture(scope="session")
def tiny_symbolic_lm():
    return load_model("tiny-symbolic", device="cpu")


@pytest.fixture
def music_wav() -> np.ndarray:
    """4 s of a harmonic tone sequence plus a little noise at 32 kHz (a stand-in for music)."""
    rng = np.random.default_rng(1)
    sr = 32000
    t = np.arange(4 * sr) / sr
    pitch = 220 * 2 ** (np.floor(t * 4) % 5 / 12)
    wav = 0.2 * np.sin(2 * np.pi * np.cumsum(pitch) / sr) + 0.01 * rng.standard_normal(t.size)
    return wav.astype(np.float32)
