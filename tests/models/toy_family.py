"""A third model family, defined only in the tests: DAC codes under a small causal decoder over flattened codes.

Its shape differs from MusicGen's on every axis the protocol names: a codec from transformers other than
EnCodec (``transformers.DacModel``, random weights) at 44.1 kHz with a hop of 512 samples, so a fractional
frame rate (44100 / 512 = 86.1328125 frames/s); K = 3 codebooks of 64 codes and no delay pattern; and a
GPT-2 (random weights) that reads the codes flattened frame by frame, ``[BOS, c(0, 0), c(1, 0), c(2, 0),
c(0, 1), ...]``, with token id ``k * V + code``. The code of codebook k at frame t is predicted from every
code before it in that order: all of earlier frames and the lower codebooks of frame t, so nothing after
frame t (``lookahead_frames`` = 0). Its distribution is the decoder's logits restricted to codebook k's V
ids (a proper distribution over ``[0, V)``).

This module is a family module as :func:`lossprofile.models.loading.load_model` expects one
(:class:`lossprofile.models.base.FamilyModule`): ``EMBEDDED``, ``HUB_MODELS``, ``FORMATS``, ``claim``, ``load``;
``register_family(FAMILY, __name__)`` makes ``load_model`` consider it. Nothing outside this file knows it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import transformers

from lossprofile.models.base import CERTAIN, NO_CLAIM, ModelLoadError, TokenLM, TokenStats, frame_statistics

FAMILY = "toy-dac"
MARKER = "toy_dac.json"  # the folder format: this file, the codec in codec/ and the decoder in lm/
EMBEDDED: dict[str, Path] = {}
HUB_MODELS: tuple[str, ...] = ()
FORMATS = f"a folder with {MARKER}, a transformers DacModel in codec/ and a causal LM over flattened codes in lm/"

# Small: the codec's first layers run at 44.1 kHz, and encoding is most of the toy's cost (about 0.5 s per
# second of audio on 2 busy CPU cores).
CODEC = dict(sampling_rate=44100, downsampling_ratios=[2, 4, 8, 8], encoder_hidden_size=4, decoder_hidden_size=16,
             hidden_size=32, n_codebooks=3, codebook_size=64, codebook_dim=4)
DECODER = dict(n_layer=2, n_embd=32, n_head=2, n_positions=1536)


def claim(name: str | os.PathLike) -> int:
    """Certain of a folder with :data:`MARKER`; no claim on anything else (it has no hub ids)."""
    return CERTAIN if (Path(name) / MARKER).is_file() else NO_CLAIM


def save_random_checkpoint(path: str | os.PathLike, seed: int = 0) -> Path:
    """A toy checkpoint with random weights (seeded), in :data:`FORMATS`."""
    path = Path(path)
    torch.manual_seed(seed)
    codec = transformers.DacModel(transformers.DacConfig(**CODEC)).eval()
    K, V = CODEC["n_codebooks"], CODEC["codebook_size"]
    config = transformers.GPT2Config(vocab_size=K * V + 1, bos_token_id=K * V, eos_token_id=K * V, **DECODER)
    decoder = transformers.GPT2LMHeadModel(config).eval()
    codec.save_pretrained(path / "codec")
    decoder.save_pretrained(path / "lm")
    (path / MARKER).write_text(json.dumps({"family": FAMILY, "seed": seed}) + "\n")
    return path


def load(path: str, name: str, device: str | torch.device | None, dtype: torch.dtype,
         backend: str = "transformers") -> "DacGPT":
    if backend != "transformers" or claim(path) != CERTAIN:
        raise ModelLoadError(f"{path}: not a {FAMILY} checkpoint ({FORMATS})")
    device = torch.device(device or "cpu")
    codec = transformers.DacModel.from_pretrained(Path(path) / "codec").to(device).eval()
    decoder = transformers.GPT2LMHeadModel.from_pretrained(Path(path) / "lm", dtype=dtype).to(device).eval()
    digest = hashlib.sha256()
    for file in sorted(Path(path).rglob("*")):
        if file.is_file():
            digest.update(file.read_bytes())
    return DacGPT(codec, decoder, name=name, fingerprint=digest.hexdigest()[:16], device=device)


class DacGPT(TokenLM):
    """DAC codes ``[B, K, T]`` scored by a causal decoder over the flattened codes (module docstring)."""

    family = FAMILY

    def __init__(self, codec, decoder, name: str, fingerprint: str, device: torch.device):
        self.codec, self.decoder = codec, decoder
        self.name, self.fingerprint, self.device = name, fingerprint, device

    @property
    def sample_rate(self) -> int:
        return int(self.codec.config.sampling_rate)

    @property
    def frame_rate(self) -> float:
        # the codec's own hop, not DacConfig.frame_rate (transformers rounds that up to 87)
        return self.sample_rate / self.codec.config.hop_length

    @property
    def num_codebooks(self) -> int:
        return int(self.codec.config.n_codebooks)

    @property
    def cardinality(self) -> int:
        return int(self.codec.config.codebook_size)

    @property
    def bos_id(self) -> int:
        return self.num_codebooks * self.cardinality

    @torch.no_grad()
    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        wav = torch.as_tensor(wav)
        if wav.ndim != 3 or wav.shape[1] != 1:
            raise ValueError(f"encode expects mono audio [B, 1, S], got shape {tuple(wav.shape)}")
        return self.codec.encode(wav.to(self.device)).audio_codes.long()

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        codes = self.check_codes(codes)
        return self.codec.decode(audio_codes=codes).audio_values[:, None].float().cpu()

    def flatten(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, K, T]`` → decoder ids ``[B, 1 + K T]``: BOS, then frame by frame, codebook k as ``k V + code``."""
        B, K, T = codes.shape
        offsets = torch.arange(K, device=codes.device)[None, :, None] * self.cardinality
        ids = (codes + offsets).permute(0, 2, 1).reshape(B, K * T)
        return torch.cat([torch.full((B, 1), self.bos_id, device=codes.device), ids], dim=1)

    def code_logits(self, codes: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, K, T, V]`` of every code's prediction, restricted to its codebook's V ids."""
        codes = self.check_codes(codes)
        B, K, T = codes.shape
        V = self.cardinality
        logits = self.decoder(input_ids=self.flatten(codes)[:, :-1]).logits  # position i predicts id i + 1
        logits = logits.reshape(B, T, K, -1)
        return torch.stack([logits[:, :, k, k * V : (k + 1) * V] for k in range(K)], dim=1).float()

    @torch.no_grad()
    def token_statistics(self, codes: torch.Tensor, prompt: str | Sequence[str] | None = None,
                         method: str = "exact") -> TokenStats:
        if prompt or method != "exact":
            raise ValueError(f"{FAMILY} takes no prompt and has only the exact method")
        logits = self.code_logits(codes)
        B, K, T, V = logits.shape
        stats = frame_statistics(logits.reshape(B * K, T, V), self.check_codes(codes).reshape(B * K, T))
        return TokenStats(*(x.reshape(B, K, T).float().cpu() for x in stats))

    @torch.no_grad()
    def token_log_probs(self, codes: torch.Tensor, prompt: str | Sequence[str] | None = None) -> torch.Tensor:
        return torch.log_softmax(self.code_logits(codes), -1).cpu()

    @torch.no_grad()
    def generate(self, num_samples: int, length: int, top_k: int = 250, temperature: float = 1.0, seed: int = 0,
                 prompt: str | Sequence[str] | None = None) -> torch.Tensor:
        if prompt:
            raise ValueError(f"{FAMILY} takes no prompt")
        gen = torch.Generator().manual_seed(seed)
        K, V = self.num_codebooks, self.cardinality
        step = torch.full((num_samples, 1), self.bos_id, device=self.device)
        past, drawn = None, []
        for i in range(K * length):
            out = self.decoder(input_ids=step, past_key_values=past, use_cache=True)
            past = out.past_key_values
            k = i % K
            logits = out.logits[:, -1, k * V : (k + 1) * V].float().cpu() / temperature
            if top_k and top_k < V:
                kth = logits.topk(top_k, dim=-1).values[:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            code = torch.multinomial(logits.softmax(-1), 1, generator=gen)  # [N, 1]
            drawn.append(code[:, 0])
            step = (code + k * V).to(self.device)
        return torch.stack(drawn, 1).reshape(num_samples, length, K).permute(0, 2, 1).contiguous()


def music(seconds: float, sample_rate: int = 44100, seed: int = 0) -> np.ndarray:
    """A stand-in for music: a seeded sequence of sine notes, four per second, with a slow swell."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    notes = 220 * 2 ** (rng.integers(0, 12, int(seconds * 4) + 1) / 12)
    phase = 2 * np.pi * np.cumsum(notes[(t * 4).astype(int)]) / sample_rate
    return ((0.2 + 0.15 * np.sin(2 * np.pi * 0.5 * t)) * np.sin(phase)).astype(np.float32)
