"""Fast, exact scoring of a clean piece and all its perturbed variants together, for any model family.

:func:`score_variants` encodes every waveform once (in memory, no files; a family may re-run its
tokenizer only around each variant's change, :meth:`~lossprofile.models.TokenLM.encode_variants`),
then scores the codes with the family's exact factorization. Decoder steps whose inputs are identical
in every variant (the family says how many: :meth:`~lossprofile.models.TokenLM.shared_steps`) are run
once and shared; only the remaining steps run per variant, batched. On GPU the matmuls run in bf16 by
default while log-softmax stays fp32. Everything here goes through the :class:`~lossprofile.models.TokenLM`
protocol only.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from .models.base import TokenLM, TokenStats

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
    stack = contextlib.ExitStack()
    stack.enter_context(torch.autocast(device_type="cpu", dtype=dtype))
    stack.enter_context(sdpa_kernel(SDPBackend.MATH))
    return stack


def stats_batched(lm: TokenLM, codes: torch.Tensor, method: str = "exact", prompt=None,
                  batch_size: int | None = None, shared_steps: int = 0, precision: str = "auto") -> TokenStats:
    """Per-code NLL, entropy and rank ``[N, K, T]`` (CPU fp32) in batches; halves the batch on CUDA out-of-memory."""
    batch_size = batch_size or lm.batch_size(codes.shape[-1])
    out, lo = [], 0
    while lo < len(codes):
        chunk = codes[lo : lo + batch_size]
        try:
            with autocast_context(lm.device, precision):
                if method == "exact":
                    stats = lm.shared_prefix_statistics(chunk.to(lm.device), shared_steps, prompt)
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
    return TokenStats(*(torch.cat(parts) for parts in zip(*out)))


def encode_piece(lm: TokenLM, clean_wav: np.ndarray, variant_wavs: Sequence[np.ndarray], splice: bool = True
                 ) -> torch.Tensor:
    """Codes ``[1 + N, K, T]`` of a clean excerpt ``[S]`` and its variants: the family's fast variant encoding
    with ``splice`` (MusicGen: EnCodec's convolutions re-run only around each change), else each whole."""
    clean_wav = np.asarray(clean_wav, dtype=np.float32)
    variant_wavs = [np.asarray(v, dtype=np.float32) for v in variant_wavs]
    if splice:
        return lm.encode_variants(clean_wav, variant_wavs)
    return lm.encode_each(np.stack([clean_wav, *variant_wavs]))


def encode_many(lm: TokenLM, pieces: Sequence[tuple[np.ndarray, Sequence[np.ndarray]]], splice: bool = True,
                across_pieces: bool | None = None) -> list[torch.Tensor]:
    """Codes ``[1 + N_i, K, T]`` of each piece (a clean excerpt ``[S]`` and its variants): :func:`encode_piece`
    of each, or with ``across_pieces`` (default: on CUDA, with ``splice``) the family's encoding batched across
    pieces (:meth:`~lossprofile.models.TokenLM.encode_pieces`), equal to piece by piece up to float rounding at
    VQ near-ties; on a GPU the codec is bound by kernel launches and this removes most of them."""
    if across_pieces is None:
        across_pieces = lm.device.type == "cuda"
    pieces = [(np.asarray(clean, dtype=np.float32), [np.asarray(v, dtype=np.float32) for v in variants])
              for clean, variants in pieces]
    if splice and across_pieces and len(pieces) > 1:
        return lm.encode_pieces(pieces)
    return [encode_piece(lm, clean, variants, splice) for clean, variants in pieces]


def scores_of(codes: torch.Tensor, stats: TokenStats, shared: int) -> Scores:
    """Row 0 is the clean piece, the rest its variants."""
    return Scores(clean=stats.nll[0], variants=stats.nll[1:], codes_clean=codes[0].cpu(),
                  codes_variants=codes[1:].cpu(), shared_steps=shared, entropy_clean=stats.entropy[0],
                  entropy_variants=stats.entropy[1:], rank_clean=stats.rank[0], rank_variants=stats.rank[1:],
                  surprisal_var_clean=stats.surprisal_var[0], surprisal_var_variants=stats.surprisal_var[1:])


def score_variants(lm: TokenLM, clean_wav: np.ndarray, variant_wavs: Sequence[np.ndarray],
                   method: str = "exact", prompt: str | None = None, batch_size: int | None = None,
                   prefix_reuse: bool = True, precision: str = "auto", splice: bool = True) -> Scores:
    """Score a clean excerpt ``[S]`` and its variants (each ``[S]``) in one pass.

    With ``splice`` the family's fast variant encoding is used (MusicGen: EnCodec's convolutions
    re-run only around each variant's change); ``splice=False`` encodes every waveform whole.

    Returns per-code NLL for the clean piece and every variant. With ``prefix_reuse``
    (exact method only) the shared prefix is computed once; the result equals scoring
    each sequence alone up to float rounding.
    """
    codes = encode_piece(lm, clean_wav, variant_wavs, splice)
    shared = lm.shared_steps(codes) if prefix_reuse and method == "exact" and len(codes) > 1 else 0
    return scores_of(codes, stats_batched(lm, codes, method, prompt, batch_size, shared, precision), shared)


def pack(sizes: Sequence[int], limit: int) -> list[list[int]]:
    """Consecutive runs of item indices whose sizes add up to at most ``limit`` (a larger item runs alone)."""
    packs, current, total = [], [], 0
    for i, size in enumerate(sizes):
        if current and total + size > limit:
            packs.append(current)
            current, total = [], 0
        current.append(i)
        total += size
    return packs + ([current] if current else [])


def score_many(lm: TokenLM, pieces: Sequence[tuple[np.ndarray, Sequence[np.ndarray]]], method: str = "exact",
               prompt: str | None = None, batch_size: int | None = None, prefix_reuse: bool = True,
               precision: str = "auto", splice: bool = True, encode_across_pieces: bool | None = None
               ) -> list[Scores]:
    """:func:`score_variants` of several pieces (each a clean excerpt and its variants), the decoder batched
    across pieces.

    On CPU each piece is encoded on its own, so its codes are exactly those of scoring it alone; on CUDA
    (``encode_across_pieces``, default there) the codec's work is batched across the pieces too
    (:func:`encode_many`: the same codes up to float rounding at VQ near-ties). The decoder then
    takes the rows of several pieces per batch (up to ``batch_size`` rows; default: what fits, see
    :meth:`~lossprofile.models.TokenLM.batch_size`), each piece keeping its own shared prefix: pieces whose
    prefixes are equally long share one batch, the prefix of each runs once. One piece gives exactly
    :func:`score_variants`; several give the same codes and the same statistics up to float rounding
    (another batch shape takes other matmul kernels; ``tests/test_runner.py`` measures it).
    """
    if len(pieces) == 1:
        return [score_variants(lm, *pieces[0], method=method, prompt=prompt, batch_size=batch_size,
                               prefix_reuse=prefix_reuse, precision=precision, splice=splice)]
    codes = encode_many(lm, pieces, splice, encode_across_pieces)
    exact_prefix = prefix_reuse and method == "exact"
    shared = [lm.shared_steps(c) if exact_prefix and len(c) > 1 else 0 for c in codes]
    limit = batch_size or lm.batch_size(codes[0].shape[-1])
    stats: list[TokenStats] = [None] * len(codes)  # type: ignore[list-item]

    def run(chosen: list[int], steps: int) -> None:
        rows = torch.cat([codes[i] for i in chosen])
        if len(chosen) == 1 or steps <= 0:
            out = stats_batched(lm, rows, method, prompt, limit, steps, precision)
        else:
            try:
                with autocast_context(lm.device, precision):
                    out = lm.shared_prefix_statistics(rows.to(lm.device), steps, prompt,
                                                      group_sizes=[len(codes[i]) for i in chosen])
                out = TokenStats(*(x.float().cpu() for x in out))
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                half = len(chosen) // 2
                run(chosen[:half], steps)
                run(chosen[half:], steps)
                return
        lo = 0
        for i in chosen:
            stats[i] = TokenStats(*(x[lo : lo + len(codes[i])] for x in out))
            lo += len(codes[i])

    for steps in sorted(set(shared)):
        members = [i for i, s in enumerate(shared) if s == steps]
        for group in pack([len(codes[i]) for i in members], limit):
            run([members[j] for j in group], steps)
    return [scores_of(c, s, sh) for c, s, sh in zip(codes, stats, shared)]
