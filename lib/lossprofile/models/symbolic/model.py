"""Causal language models over MIDI tokens: a transformers ``AutoModelForCausalLM`` with a miditok tokenizer.

A checkpoint is a folder with the model in transformers' format (``config.json`` + weights; GPT-2,
Llama and the other causal LMs ``AutoModelForCausalLM`` knows) and the ``tokenizer.json`` miditok saved.
Codes are ``[B, K=1, T]`` token ids. The factorization is the model's own: the sequence is read after a
BOS token, so every token of the piece, the first included, is predicted from what precedes it,
``-log p(x_t | BOS, x_<t)`` (equal to transformers' causal-LM loss on ``[BOS] + ids``; tested).

Long pieces: a model reads at most ``context_tokens`` positions (``window``, at most that). A sequence
``[BOS] + ids`` longer than the window is scored with a strided window: window ``k`` covers positions
``[e_k - window, e_k)`` with ``e_k = min(window + k * stride, T + 1)`` and scores the tokens that no earlier
window scored, so every token after the first window sees between ``window - stride`` and ``window - 1``
tokens of context; the first window starts with BOS, later ones are plain slices of the piece. Where the
whole sequence fits, this is the plain pass.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..base import (CERTAIN, NO_CLAIM, ModelLoadError, TokenLM, TokenStats, files_fingerprint, frame_statistics,
                    sample_top_k)
from ..hf import from_pretrained, quiet_transformers
from .tokens import TOKENIZER_FILE, is_miditok_file, load_tokenizer, tokenize

TINY_SYMBOLIC_DIR = Path(__file__).resolve().parents[2] / "checkpoints" / "tiny-symbolic"
# the same recipe stopped after 300 steps: the weaker rung of the validation's ladder and the reference model of the
# cross-model score (lossprofile.analysis.profile.binoculars); `make tiny-symbolic-base` rebuilds it
TINY_SYMBOLIC_BASE_DIR = TINY_SYMBOLIC_DIR.parent / "tiny-symbolic-base"
EMBEDDED = {"tiny-symbolic": TINY_SYMBOLIC_DIR, "tiny-symbolic-base": TINY_SYMBOLIC_BASE_DIR}
HUB_MODELS: dict[str, str] = {}
FORMATS = f"a folder with a causal LM in transformers' format (config.json and its weights) and a miditok {TOKENIZER_FILE}"
RENDER_SAMPLE_RATE = 32000  # the rate the package renders MIDI at, so symbolic and audio curves share a clock


def claims_folder(path: str | os.PathLike) -> bool:
    """A transformers folder (config.json) with a miditok ``tokenizer.json`` beside it."""
    return (Path(path) / "config.json").exists() and is_miditok_file(Path(path) / TOKENIZER_FILE)


def claim(name: str | os.PathLike) -> int:
    """Certain of a folder in its format (`FORMATS`) or a hub id it knows (none yet); no claim otherwise."""
    if Path(name).is_dir():
        return CERTAIN if claims_folder(name) else NO_CLAIM
    return CERTAIN if str(name) in HUB_MODELS else NO_CLAIM


def load(path: str, name: str, device: str | torch.device | None, dtype: torch.dtype,
         backend: str = "transformers") -> "SymbolicLM":
    if backend != "transformers":
        raise ValueError(f"unknown backend {backend!r} for a symbolic model; expected 'transformers'")
    import transformers

    if not claims_folder(path):
        raise ModelLoadError(f"{path}: not a symbolic checkpoint (needs config.json and a miditok {TOKENIZER_FILE})")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    try:
        tokenizer = load_tokenizer(path)
    except Exception as err:  # miditok raises several kinds on a bad file
        raise ModelLoadError(f"{path}/{TOKENIZER_FILE}: not a tokenizer miditok can load ({err})") from err
    with quiet_transformers():
        model = from_pretrained(transformers.AutoModelForCausalLM, path, dtype=dtype)
    if model.config.vocab_size < len(tokenizer):
        raise ModelLoadError(f"{path}: the model's vocabulary ({model.config.vocab_size}) is smaller than the "
                             f"tokenizer's ({len(tokenizer)})")
    return SymbolicLM(model=model.to(device).eval(), tokenizer=tokenizer, name=name, device=device,
                      fingerprint=files_fingerprint(sorted(Path(path).glob("*.safetensors"))
                                                    + [Path(path) / "config.json", Path(path) / TOKENIZER_FILE]))


@dataclass
class SymbolicLM(TokenLM):
    """A causal LM over MIDI tokens, as the engine sees it: one code stream, one token per event."""

    family = "symbolic"
    reads = "midi"

    model: Any
    tokenizer: Any
    name: str = "symbolic"
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    fingerprint: str = ""
    window: int | None = None  # positions per forward pass (default: the model's context)
    stride: int | None = None  # new tokens per window on long pieces (default: half the window)

    # ---- the token grid: events, not frames ----------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return RENDER_SAMPLE_RATE

    @property
    def frame_rate(self) -> int:
        """The time grid (50 per second, the audio models' 20 ms frame) that per-frame views bin tokens onto."""
        return 50

    @property
    def num_codebooks(self) -> int:
        return 1

    @property
    def cardinality(self) -> int:
        return int(self.model.config.vocab_size)

    @property
    def token_unit(self) -> str:
        return f"MIDI event token ({type(self.tokenizer).__name__})"

    @property
    def loss_unit(self) -> str:
        return "nats per token"

    @property
    def frame_loss_unit(self) -> str:
        # a 20 ms frame holds 0..n event tokens; the runner sums them so that the clean and perturbed curves line
        # up in time although their token counts differ (lossprofile.modality: the MIDI modality's frames)
        return "nats per frame (sum over its tokens)"

    @property
    def context_tokens(self) -> int:
        cfg = self.model.config
        return int(getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings"))

    @property
    def bos_id(self) -> int:
        return int(self.tokenizer["BOS_None"])

    # ---- tokenizer ---------------------------------------------------------------------------
    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        raise TypeError(f"{self.name} is a symbolic model: it reads MIDI (encode_midi), not waveforms")

    def encode_midi(self, midi: Any) -> tuple[torch.Tensor, np.ndarray]:
        """(codes ``[1, 1, T]``, seconds of each token's event ``[T]``) of a MIDI file, bytes, PrettyMIDI or Score."""
        ids, seconds = tokenize(self.tokenizer, midi)
        return torch.from_numpy(ids)[None, None], seconds

    # ---- likelihood --------------------------------------------------------------------------
    def _logits(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=ids.to(self.device)).logits

    @torch.no_grad()
    def token_statistics(self, codes: torch.Tensor, prompt: str | Sequence[str] | None = None,
                         method: str = "exact") -> TokenStats:
        """[`TokenStats`][lossprofile.models.base.TokenStats] ``[B, 1, T]`` (CPU, fp32) of every token after BOS; a strided window past the context."""
        if method != "exact":
            raise ValueError(f"symbolic models have only the exact method, not {method!r}")
        parts = [frame_statistics(logits, targets) for logits, targets in self._strided_logits(codes, prompt)]
        return TokenStats(*(torch.cat(xs, dim=1)[:, None].float().cpu() for xs in zip(*parts)))

    @torch.no_grad()
    def token_log_probs(self, codes: torch.Tensor, prompt: str | Sequence[str] | None = None) -> torch.Tensor:
        """Log-probabilities ``[B, 1, T, V]`` (CPU, fp32) of every token's prediction, windowed as
        [`token_statistics`][lossprofile.models.symbolic.model.SymbolicLM.token_statistics] is."""
        parts = [torch.log_softmax(logits.float(), -1) for logits, _ in self._strided_logits(codes, prompt)]
        return torch.cat(parts, dim=1)[:, None].cpu()

    def _strided_logits(self, codes: torch.Tensor, prompt):
        """(logits ``[B, n, V]``, targets ``[B, n]``) of consecutive runs of tokens, each predicted once: the plain
        pass after BOS where ``[BOS] + ids`` fits the window, else the strided windows of the module docstring."""
        if prompt:
            raise ValueError("symbolic models take no text prompt")
        codes = self.check_codes(codes)
        B, _, T = codes.shape
        ids = torch.cat([torch.full((B, 1), self.bos_id, device=self.device), codes[:, 0]], dim=1)  # [B, 1 + T]
        window = min(self.window or self.context_tokens, self.context_tokens)
        stride = self.stride or window // 2
        if not 0 < stride <= window - 1:
            raise ValueError(f"stride must lie in [1, {window - 1}], got {stride}")
        # window [start, end) of ids predicts ids[start + 1 : end]; keep the predictions of targets not yet scored
        scored, end = 0, min(window, T + 1)  # targets 0..scored-1 done; target j is ids[j + 1]
        start = 0
        while True:
            logits = self._logits(ids[:, start:end])[:, :-1]  # predicts ids[start+1 : end]
            keep = (end - 1) - scored  # the targets scored -> end-2 are new
            yield logits[:, -keep:], ids[:, end - keep : end]
            scored = end - 1
            if scored >= T:
                break
            end = min(end + stride, T + 1)
            start = end - window

    # ---- sampling ------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, num_samples: int, length: int, top_k: int = 250, temperature: float = 1.0,
                 seed: int = 0, prompt: str | Sequence[str] | None = None) -> torch.Tensor:
        """Sample token ids ``[num_samples, 1, length]`` after BOS (special tokens are never drawn).

        Past the window the context slides as the scorer's strided window does: the model restarts from the
        last half window (positions from 0 again) and continues with its key/value cache.
        """
        if prompt:
            raise ValueError("symbolic models take no text prompt")
        gen = torch.Generator(device="cpu").manual_seed(seed)
        banned = torch.tensor([self.tokenizer[t] for t in self.tokenizer.special_tokens])
        window = min(self.window or self.context_tokens, self.context_tokens)
        ids = torch.full((num_samples, 1), self.bos_id, device=self.device)
        past, start = None, 0
        for _ in range(length):
            step = ids[:, start:] if past is None else ids[:, -1:]
            out = self.model(input_ids=step, past_key_values=past, use_cache=True)
            past = out.past_key_values
            logits = out.logits[:, -1].float().cpu() / temperature  # [B, V]
            logits[:, banned] = float("-inf")
            sampled = sample_top_k(logits, top_k, gen)[:, None]  # [B, 1]
            ids = torch.cat([ids, sampled.to(self.device)], dim=1)
            if ids.shape[1] - start >= window:  # the next step would not fit: slide
                start, past = ids.shape[1] - window // 2, None
        return ids[:, None, 1:].cpu()

    def decode(self, codes: torch.Tensor) -> list[bytes]:
        """The protocol's decoding to this family's input form: [`decode_midi`][lossprofile.models.symbolic.model.SymbolicLM.decode_midi]."""
        return self.decode_midi(codes)

    def decode_midi(self, codes: torch.Tensor) -> list[bytes]:
        """Token ids ``[B, 1, T]`` → one standard MIDI file (bytes) per row, as the tokenizer decodes them.

        Events are sorted by time first: a sampled sequence may move its position back without a new bar, and
        miditok then leaves tempo changes out of order, which a MIDI file cannot hold (negative delta times)."""
        codes = self.check_codes(codes)
        out = []
        for row in codes[:, 0].cpu():
            score = self.tokenizer.decode(row.tolist())
            out.append((score.sort() or score).dumps_midi())
        return out

    def shared_steps(self, codes: torch.Tensor) -> int:
        return 0  # variants differ in length and place; rows are scored in full

    def batch_size(self, num_frames: int, default: int = 8) -> int:
        return default
