"""MusicGen's delay pattern, as pure tensor functions.

MusicGen predicts K codebooks per step with codebook k delayed by k steps. With codes
``c[k, t]`` (``[B, K, T]``) the delayed sequence has ``S = T + K - 1`` steps and holds
``D[k, s] = c[k, s - k]`` where ``0 <= s - k < T`` and the special token elsewhere.
The decoder reads ``[special, D[:, 0], ..., D[:, S-2]]`` and its logits at step ``s``
predict ``D[:, s]``; so ``c[k, t]`` is predicted at step ``t + k``, after every code of
lower codebooks up to frame ``t`` and of codebooks ``>= k`` up to frame ``t - 1``.
This is audiocraft's ``DelayedPatternProvider`` and transformers' ``build_delay_pattern_mask``.
"""

from __future__ import annotations

import torch

from ..base import TokenStats, frame_statistics


def delay(codes: torch.Tensor, special: int) -> torch.Tensor:
    """Codes ``[B, K, T]`` → delayed sequence ``[B, K, T + K - 1]``."""
    B, K, T = codes.shape
    out = codes.new_full((B, K, T + K - 1), special)
    for k in range(K):
        out[:, k, k : k + T] = codes[:, k]
    return out


def undelay(delayed: torch.Tensor, num_codebooks: int) -> torch.Tensor:
    """Delayed ``[B, K, S]`` → codes ``[B, K, S - K + 1]`` (inverse of :func:`delay`)."""
    B, K, S = delayed.shape
    T = S - num_codebooks + 1
    return torch.stack([delayed[:, k, k : k + T] for k in range(K)], dim=1)


def decoder_io(codes: torch.Tensor, special: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher-forcing pair for codes ``[B, K, T]``: decoder input and target, each ``[B, K, T+K-1]``."""
    target = delay(codes, special)
    decoder_input = torch.cat([torch.full_like(target[:, :, :1], special), target[:, :, :-1]], dim=2)
    return decoder_input, target


def valid_mask(num_codebooks: int, num_frames: int, device=None) -> torch.Tensor:
    """Bool ``[K, T + K - 1]``: True where the delayed sequence holds a real code."""
    steps = torch.arange(num_frames + num_codebooks - 1, device=device)
    k = torch.arange(num_codebooks, device=device)[:, None]
    return (steps >= k) & (steps < k + num_frames)


def token_statistics(logits: torch.Tensor, codes: torch.Tensor) -> TokenStats:
    """Per-code NLL, entropy and rank ``[B, K, T]`` of codes ``[B, K, T]`` from delayed-step logits ``[B, K, T+K-1, V]``.

    Computed one codebook at a time in fp32, whatever the logits' dtype.
    """
    B, K, S, V = logits.shape
    T = S - K + 1
    per_k = [frame_statistics(logits[:, k, k : k + T], codes[:, k]) for k in range(K)]
    return TokenStats(*(torch.stack(parts, dim=1) for parts in zip(*per_k)))


def gather_nll(logits: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Per-code NLL ``[B, K, T]`` (fp32) of codes ``[B, K, T]`` from delayed-step logits ``[B, K, T+K-1, V]``."""
    return token_statistics(logits, codes).nll
