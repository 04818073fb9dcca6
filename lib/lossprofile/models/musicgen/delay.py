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
    """Delayed ``[B, K, S]`` → codes ``[B, K, S - K + 1]`` (inverse of `delay`)."""
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


def shared_prefix_token_statistics(prefix_logits: torch.Tensor, rest_logits: torch.Tensor, codes: torch.Tensor,
                                   rows: torch.Tensor) -> TokenStats:
    """`token_statistics` of codes ``[B, K, T]`` whose delayed-step logits are ``prefix_logits[rows]`` for the
    first P steps (``[G, K, P, V]``: one row per group of rows whose first P decoder inputs agree; ``rows [B]``
    each row's group) and ``rest_logits`` ``[B, K, S - P, V]`` after them, without expanding either.

    A step's target is the next step's input, so the targets of all prefix steps but the last agree within a
    group too: their statistics (log-softmax, entropy, rank over the vocabulary) are computed once per group,
    not once per row. Equal to
    `token_statistics` of the concatenated logits: the same arithmetic per row.
    """
    B, K, T = codes.shape
    G, _, P, _ = prefix_logits.shape
    Q = P - 1  # steps whose inputs and targets agree within each group
    firsts = torch.zeros(G, dtype=torch.long, device=rows.device).scatter_reduce(
        0, rows, torch.arange(B, device=rows.device), reduce="amin", include_self=False)
    per_k = []
    for k in range(K):  # codebook k's frame t is predicted at step t + k
        a, b = (min(T, max(0, step - k)) for step in (Q, P))  # frames [0, a) shared, [a, b) last prefix step, [b, T) rest
        parts = []
        if a:
            shared = frame_statistics(prefix_logits[:, k, k : k + a], codes[firsts.to(codes.device), k, :a])
            parts.append([x[rows.to(x.device)] for x in shared])
        if b > a:
            parts.append(frame_statistics(prefix_logits[:, k, k + a : k + b][rows], codes[:, k, a:b]))
        if T > b:
            parts.append(frame_statistics(rest_logits[:, k, b + k - P : T + k - P], codes[:, k, b:]))
        per_k.append([torch.cat(p, dim=-1) for p in zip(*parts)])
    return TokenStats(*(torch.stack(parts, dim=1) for parts in zip(*per_k)))


def gather_nll(logits: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Per-code NLL ``[B, K, T]`` (fp32) of codes ``[B, K, T]`` from delayed-step logits ``[B, K, T+K-1, V]``."""
    return token_statistics(logits, codes).nll
