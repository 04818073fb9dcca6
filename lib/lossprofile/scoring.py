"""Fast, exact scoring of a clean piece and all its perturbed variants together.

:func:`score_variants` encodes every waveform once (in memory, no files; the codec's
convolutions re-run only around each variant's change, see :mod:`lossprofile.codec`), then scores the
codes with MusicGen's exact factorization. Decoder steps whose inputs are identical in
every variant (everything before the first code that differs, found by comparing codes,
so the codec's receptive field and the delay pattern are accounted for exactly) are run
once with the KV cache and shared; only the remaining steps run per variant, batched.
On GPU the matmuls run in bf16 by default while log-softmax stays fp32.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from . import delay
from .codec import encode_variants, split_encoder
from .models import MusicLM

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass
class Scores:
    """Per-code signals of the clean piece ``[K, T]`` and of each variant ``[N, K, T]`` (CPU, fp32).

    ``clean``/``variants``: NLL in nats; ``entropy_*``: entropy of the model's prediction for
    that code; ``rank_*``: rank of the true code (1 = top choice); ``surprisal_var_*``: variance
    of the surprisal under the prediction. All from the same forward pass.
    """

    clean: torch.Tensor
    variants: torch.Tensor
    codes_clean: torch.Tensor
    codes_variants: torch.Tensor
    shared_steps: int  # decoder steps computed once for all variants
    entropy_clean: torch.Tensor
    entropy_variants: torch.Tensor
    rank_clean: torch.Tensor
    rank_variants: torch.Tensor
    surprisal_var_clean: torch.Tensor
    surprisal_var_variants: torch.Tensor


def frame_mean(nll: torch.Tensor) -> torch.Tensor:
    """Mean over codebooks: ``[..., K, T]`` → ``[..., T]`` (the paper's per-token loss)."""
    return nll.mean(dim=-2)


def autocast_context(device: torch.device, precision: str):
    """bf16/fp16 matmuls under autocast; ``auto`` means bf16 on CUDA and fp32 elsewhere."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {PRECISIONS}")
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    if device.type != "cpu":
        return torch.autocast(device_type=device.type, dtype=dtype)
    # torch's fused CPU attention in bf16 packs with AVX-512 instructions and fails ("pack_vnni2 is
    # only supported when avx512 is supported") where only AVX2 kernels run: use the plain one.
    from torch.nn.attention import SDPBackend, sdpa_kernel

    stack = contextlib.ExitStack()
    stack.enter_context(torch.autocast(device_type="cpu", dtype=dtype))
    stack.enter_context(sdpa_kernel(SDPBackend.MATH))
    return stack


def auto_batch_size(lm: MusicLM, num_frames: int, default: int = 8, limit: int = 64) -> int:
    """Variants per decoder batch that fit in half the free GPU memory (``default`` on CPU)."""
    if lm.device.type != "cuda":
        return default
    free, _ = torch.cuda.mem_get_info(lm.device)
    cfg = lm.model.config.decoder
    steps = num_frames + lm.num_codebooks
    logits = steps * lm.num_codebooks * lm.cardinality * (2 + 4 + 4)  # bf16 logits + fp32 log-softmax + grads-free copy
    cache = 2 * cfg.num_hidden_layers * steps * cfg.hidden_size * 2
    activations = steps * (cfg.ffn_dim + 4 * cfg.hidden_size) * 4
    return int(max(1, min(limit, 0.5 * free // (logits + cache + activations))))


def first_difference(codes: torch.Tensor, reference: torch.Tensor) -> int:
    """First frame at which any of ``codes [N, K, T]`` differs from ``reference [K, T]`` (T if none)."""
    differs = (codes != reference[None]).any(dim=0).any(dim=0)  # [T]
    idx = torch.nonzero(differs)
    return int(idx[0]) if len(idx) else codes.shape[-1]


def encode_each(lm: MusicLM, wavs: np.ndarray) -> torch.Tensor:
    """Waveforms ``[N, S]`` → codes ``[N, K, T]``, encoding each waveform on its own.

    Batched convolutions round differently from unbatched ones, and a 1e-7 change in a
    latent can flip a residual-VQ code; encoding one at a time makes a piece's codes
    independent of what it was batched with (and equal to ``lm.encode`` of it alone).
    """
    out = []
    for wav in wavs:
        x = torch.from_numpy(np.ascontiguousarray(wav))[None, None]
        if lm.device.type == "cuda":
            x = x.pin_memory().to(lm.device, non_blocking=True)
        out.append(lm.encode(x))
    return torch.cat(out)


@torch.no_grad()
def _stats_with_shared_prefix(lm: MusicLM, codes: torch.Tensor, shared_steps: int, prompt) -> delay.TokenStats:
    """Exact :class:`~lossprofile.delay.TokenStats` ``[B, K, T]`` of codes whose first ``shared_steps`` decoder inputs are identical."""
    B, K, T = codes.shape
    decoder_input, _ = delay.decoder_io(codes, lm.special_token)  # [B, K, S]
    if shared_steps <= 0:
        logits = lm._decoder_logits(decoder_input, lm.condition(B, prompt))
        return delay.token_statistics(logits, codes)
    prefix_logits, past = lm._decoder_logits(decoder_input[:1, :, :shared_steps], lm.condition(1, prompt),
                                             use_cache=True)
    past.batch_repeat_interleave(B)
    rest = lm._decoder_logits(decoder_input[:, :, shared_steps:], lm.condition(B, prompt), past=past,
                              use_cache=True)[0]
    logits = torch.cat([prefix_logits.expand(B, -1, -1, -1), rest], dim=2)
    return delay.token_statistics(logits, codes)


def stats_batched(lm: MusicLM, codes: torch.Tensor, method: str = "exact", prompt=None,
                  batch_size: int | None = None, shared_steps: int = 0, precision: str = "auto") -> delay.TokenStats:
    """Per-code NLL, entropy and rank ``[N, K, T]`` (CPU fp32) in batches; halves the batch on CUDA out-of-memory."""
    batch_size = batch_size or auto_batch_size(lm, codes.shape[-1])
    out, lo = [], 0
    while lo < len(codes):
        chunk = codes[lo : lo + batch_size]
        try:
            with autocast_context(lm.device, precision):
                if method == "exact":
                    stats = _stats_with_shared_prefix(lm, chunk.to(lm.device), shared_steps, prompt)
                else:
                    stats = lm.token_statistics(chunk, prompt=prompt, method=method)
        except torch.cuda.OutOfMemoryError:
            if batch_size == 1:
                raise
            torch.cuda.empty_cache()
            batch_size = max(1, batch_size // 2)
            continue
        out.append([x.float().cpu() for x in stats])
        lo += len(chunk)
    return delay.TokenStats(*(torch.cat(parts) for parts in zip(*out)))


def nll_batched(lm: MusicLM, codes: torch.Tensor, method: str = "exact", prompt=None,
                batch_size: int | None = None, shared_steps: int = 0, precision: str = "auto") -> torch.Tensor:
    """Per-code NLL ``[N, K, T]`` (CPU fp32): :func:`stats_batched`'s ``nll``."""
    return stats_batched(lm, codes, method, prompt, batch_size, shared_steps, precision).nll


def score_variants(lm: MusicLM, clean_wav: np.ndarray, variant_wavs: Sequence[np.ndarray],
                   method: str = "exact", prompt: str | None = None, batch_size: int | None = None,
                   prefix_reuse: bool = True, precision: str = "auto", splice: bool = True) -> Scores:
    """Score a clean excerpt ``[S]`` and its variants (each ``[S]``) in one pass.

    With ``splice`` the codec's convolutions re-run only around each variant's change
    (:func:`lossprofile.codec.encode_variants`); ``splice=False`` encodes every waveform whole.

    Returns per-code NLL for the clean piece and every variant. With ``prefix_reuse``
    (exact method only) the shared prefix is computed once; the result equals scoring
    each sequence alone up to float rounding.
    """
    clean_wav = np.asarray(clean_wav, dtype=np.float32)
    variant_wavs = [np.asarray(v, dtype=np.float32) for v in variant_wavs]
    if splice and split_encoder(lm.model.audio_encoder) is not None:
        codes = encode_variants(lm, clean_wav, variant_wavs)  # the codec re-run only around each change
    else:
        codes = encode_each(lm, np.stack([clean_wav, *variant_wavs]))
    shared = 0
    if prefix_reuse and method == "exact" and len(codes) > 1:
        # decoder input at step s holds frames <= s - 1, so steps 0..first_diff are shared
        shared = min(first_difference(codes[1:], codes[0]) + 1, codes.shape[-1] + lm.num_codebooks - 2)
    stats = stats_batched(lm, codes, method, prompt, batch_size, shared, precision)
    return Scores(clean=stats.nll[0], variants=stats.nll[1:], codes_clean=codes[0].cpu(),
                  codes_variants=codes[1:].cpu(), shared_steps=shared, entropy_clean=stats.entropy[0],
                  entropy_variants=stats.entropy[1:], rank_clean=stats.rank[0], rank_variants=stats.rank[1:],
                  surprisal_var_clean=stats.surprisal_var[0], surprisal_var_variants=stats.surprisal_var[1:])
