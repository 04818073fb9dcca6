"""Fast, exact scoring of a clean piece and all its perturbed variants together, for any model family.

[`score_variants`][lossprofile.scoring.score_variants] encodes every waveform once (in memory, no files; a family may re-run its
tokenizer only around each variant's change, [`encode_variants`][lossprofile.models.base.TokenLM.encode_variants]),
then scores the codes with the family's exact factorization. Decoder steps whose inputs are identical
in a group of variants (the family says how many: [`shared_steps`][lossprofile.models.base.TokenLM.shared_steps]; variants
that change at different frames form different groups, [`prefix_groups`][lossprofile.scoring.prefix_groups]) are run once per group; only the
remaining steps run per variant, batched ([`score_codes`][lossprofile.scoring.score_codes]). On GPU the matmuls run in bf16 by
default while log-softmax stays fp32. Everything here goes through the [`TokenLM`][lossprofile.models.base.TokenLM]
protocol only.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from .batching import halved_after_oom, pack
from .models.base import TokenLM, TokenStats

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass
class Scores:
    """Per-code signals of the clean piece ``[K, T]`` and of each variant ``[N, K, T]`` (CPU, fp32).

    ``nll_*``: negative log-likelihood of the code in nats; ``entropy_*``: entropy of the model's prediction for
    that code (nats); ``rank_*``: rank of the true code (1 = top choice); ``surprisal_var_*``: variance
    of the surprisal under the prediction (nats²); ``codes_*``: the codes scored. All from the same forward pass.
    """

    nll_clean: torch.Tensor
    nll_variants: torch.Tensor
    codes_clean: torch.Tensor
    codes_variants: torch.Tensor
    shared_steps: int  # decoder steps every row shares (the shortest group prefix)
    entropy_clean: torch.Tensor
    entropy_variants: torch.Tensor
    rank_clean: torch.Tensor
    rank_variants: torch.Tensor
    surprisal_var_clean: torch.Tensor
    surprisal_var_variants: torch.Tensor
    # (rows, shared decoder steps) of each group of rows that ran its prefix once, as they ran (a prefix group
    # larger than a batch is several; one that shared a batch ran that batch's shortest prefix: `score_codes`)
    prefix_groups: tuple[tuple[int, int], ...] = ()


def frame_mean(nll: torch.Tensor) -> torch.Tensor:
    """Mean over codebooks: ``[..., K, T]`` → ``[..., T]`` (the paper's per-token loss)."""
    return nll.mean(dim=-2)


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """The precision a run really uses: ``auto`` is bf16 on CUDA and fp32 elsewhere (what tables record)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {PRECISIONS}")
    if precision == "auto":
        return "bf16" if torch.device(device).type == "cuda" else "fp32"
    return precision


def autocast_context(device: torch.device, precision: str):
    """bf16/fp16 matmuls under autocast; ``auto`` means bf16 on CUDA and fp32 elsewhere."""
    precision = resolve_precision(precision, device)
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


def stats_batched(lm: TokenLM, codes: torch.Tensor, *, method: str = "exact", prompt=None,
                  batch_size: int | None = None, shared_steps: int = 0, precision: str = "auto") -> TokenStats:
    """Per-code NLL, entropy and rank ``[N, K, T]`` (CPU fp32) in batches; halves the batch on CUDA out-of-memory.

    Every batch's results stay on the device until all batches are queued and come back in one copy per
    signal: a copy to the host waits for the GPU, and waiting after each batch would leave it idle while the
    next batch is launched."""
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
        except torch.cuda.OutOfMemoryError as err:
            torch.cuda.empty_cache()
            batch_size = halved_after_oom(len(chunk), err)
            continue
        out.append([x.float() for x in stats])
        lo += len(chunk)
    return TokenStats(*(torch.cat(parts).cpu() for parts in zip(*out)))


def encode_piece(lm: TokenLM, clean_wav: np.ndarray, variant_wavs: Sequence[np.ndarray], *, splice: bool = True
                 ) -> torch.Tensor:
    """Codes ``[1 + N, K, T]`` of a clean excerpt ``[S]`` and its variants: the family's fast variant encoding
    with ``splice`` (MusicGen: EnCodec's convolutions re-run only around each change), else each whole."""
    clean_wav = np.asarray(clean_wav, dtype=np.float32)
    variant_wavs = [np.asarray(v, dtype=np.float32) for v in variant_wavs]
    if splice:
        return lm.encode_variants(clean_wav, variant_wavs)
    return lm.encode_each(np.stack([clean_wav, *variant_wavs]))


def encode_many(lm: TokenLM, pieces: Sequence[tuple[np.ndarray, Sequence[np.ndarray]]], *, splice: bool = True,
                across_pieces: bool | None = None) -> list[torch.Tensor]:
    """Codes ``[1 + N_i, K, T]`` of each piece (a clean excerpt ``[S]`` and its variants): [`encode_piece`][lossprofile.scoring.encode_piece]
    of each, or with ``across_pieces`` (default: on CUDA, with ``splice``) the family's encoding batched across
    pieces ([`encode_pieces`][lossprofile.models.base.TokenLM.encode_pieces]), equal to piece by piece up to float rounding at
    VQ near-ties; on a GPU the codec is bound by kernel launches and this removes most of them."""
    if across_pieces is None:
        across_pieces = lm.device.type == "cuda"
    pieces = [(np.asarray(clean, dtype=np.float32), [np.asarray(v, dtype=np.float32) for v in variants])
              for clean, variants in pieces]
    if splice and across_pieces and len(pieces) > 1:
        return lm.encode_pieces(pieces)
    return [encode_piece(lm, clean, variants, splice=splice) for clean, variants in pieces]


def scores_of(codes: torch.Tensor, stats: TokenStats, groups: Sequence[tuple[int, int]]) -> Scores:
    """Row 0 is the clean piece, the rest its variants; ``groups``: (rows, shared decoder steps) of each group of
    rows that ran its prefix once."""
    return Scores(nll_clean=stats.nll[0], nll_variants=stats.nll[1:], codes_clean=codes[0].cpu(),
                  codes_variants=codes[1:].cpu(), shared_steps=min(steps for _, steps in groups),
                  entropy_clean=stats.entropy[0], entropy_variants=stats.entropy[1:], rank_clean=stats.rank[0],
                  rank_variants=stats.rank[1:], surprisal_var_clean=stats.surprisal_var[0],
                  surprisal_var_variants=stats.surprisal_var[1:], prefix_groups=tuple(groups))


def score_variants(lm: TokenLM, clean_wav: np.ndarray, variant_wavs: Sequence[np.ndarray],
                   *, method: str = "exact", prompt: str | None = None, batch_size: int | None = None,
                   prefix_reuse: bool = True, precision: str = "auto", splice: bool = True) -> Scores:
    """Score a clean excerpt ``[S]`` and its variants (each ``[S]``) in one pass.

    With ``splice`` the family's fast variant encoding is used (MusicGen: EnCodec's convolutions
    re-run only around each variant's change); ``splice=False`` encodes every waveform whole.

    Returns per-code NLL for the clean piece and every variant. With ``prefix_reuse``
    (exact method only) each group of rows runs its shared prefix once ([`prefix_groups`][lossprofile.scoring.prefix_groups]); the result
    equals scoring each sequence alone up to float rounding.
    """
    codes = encode_piece(lm, clean_wav, variant_wavs, splice=splice)
    return score_codes(lm, [codes], method=method, prompt=prompt, batch_size=batch_size, prefix_reuse=prefix_reuse,
                       precision=precision)[0]


GROUP_COST_STEPS = 64  # a prefix group of its own must save more decoder row-steps than this (one more forward)


def prefix_groups(lm: TokenLM, codes: torch.Tensor, group_cost_steps: float = GROUP_COST_STEPS
                  ) -> list[tuple[list[int], int]]:
    """The rows of one piece's codes ``[N, K, T]`` (row 0 the clean piece) in groups that each run their shared
    decoder prefix once → [(row indices in order, shared steps)] ([`group_rows`][lossprofile.scoring.group_rows] of what each variant shares
    with the clean piece, [`shared_steps`][lossprofile.models.base.TokenLM.shared_steps]: up to its first changed frame)."""
    if len(codes) < 2:
        return [(list(range(len(codes))), 0)]
    own = [lm.shared_steps(codes[[0, i]]) for i in range(1, len(codes))]
    return group_rows([max(own), *own], group_cost_steps)  # the clean row shares every step any variant shares


def group_rows(own: Sequence[int], group_cost_steps: float = GROUP_COST_STEPS) -> list[tuple[list[int], int]]:
    """Rows that share ``own[i]`` decoder steps with one reference sequence, in the groups that cost fewest
    decoder row-steps → [(row indices in order, shared steps)].

    One group of all rows shares only the shortest prefix: a perturbation at frame 0 would make every other
    variant run in full. The paper sweep's variants change at 15 different frames (0 to 700). A group with prefix
    ``m`` costs ``m`` steps once plus ``steps - m`` per row, so it saves ``(rows - 1) * m`` against running its rows
    in full; the grouping that saves most is found exactly (rows sorted by their prefix, the best cut into runs by
    dynamic programming), a group beyond the first counting ``group_cost_steps`` against it (one more forward
    pass). Rows that all share as much stay one group, in their order: what a single shared prefix runs.
    """
    n = len(own)
    order = sorted(range(n), key=lambda i: (own[i], i))
    prefix = [own[i] for i in order]
    # best[j]: row-steps of the best grouping of the first j sorted rows, less what running each in full costs
    best, cut = [0.0] + [float("inf")] * n, [0] * (n + 1)
    for j in range(1, n + 1):
        for a in range(j):
            cost = best[a] - (j - a - 1) * prefix[a] + (group_cost_steps if a else 0)
            if cost < best[j]:
                best[j], cut[j] = cost, a
    groups, j = [], n
    while j > 0:
        a = cut[j]
        groups.append((sorted(order[a:j]), prefix[a]))
        j = a
    return sorted(groups, key=lambda g: g[0][0])


BATCH_SLACK_STEPS = 32  # groups whose prefixes differ by at most this share a batch (each runs the shortest)


def prefix_batches(units: Sequence[tuple[int, list[int], int]], limit: int, slack_steps: int = BATCH_SLACK_STEPS
                   ) -> list[list[tuple[int, list[int], int]]]:
    """Decoder batches of prefix-group units ``(piece, rows, shared steps)``: up to ``limit`` rows each, of units
    whose shared steps lie within ``slack_steps`` of the batch's shortest, which the whole batch then shares.

    Pieces' groups rarely share a prefix length exactly (where a noise window first changes the codes depends on
    the music by a frame or two), and a forward pass per group would be a small batch each: on a GPU, launches
    rather than arithmetic. A unit's rows give up at most ``slack_steps`` of their prefix's reuse to join.
    """
    ordered = sorted(units, key=lambda u: u[2])
    batches: list[list[tuple[int, list[int], int]]] = []
    for unit in ordered:
        last = batches[-1] if batches else None
        if (last is not None and unit[2] - last[0][2] <= slack_steps
                and sum(len(rows) for _, rows, _ in last) + len(unit[1]) <= limit):
            last.append(unit)
        else:
            batches.append([unit])
    return batches


def score_many(lm: TokenLM, pieces: Sequence[tuple[np.ndarray, Sequence[np.ndarray]]], *, method: str = "exact",
               prompt: str | None = None, batch_size: int | None = None, prefix_reuse: bool = True,
               precision: str = "auto", splice: bool = True, encode_across_pieces: bool | None = None
               ) -> list[Scores]:
    """[`score_variants`][lossprofile.scoring.score_variants] of several pieces (each a clean excerpt and its variants), the decoder batched
    across pieces.

    On CPU each piece is encoded on its own, so its codes are exactly those of scoring it alone; on CUDA
    (``encode_across_pieces``, default there) the codec's work is batched across the pieces too
    ([`encode_many`][lossprofile.scoring.encode_many]: the same codes up to float rounding at VQ near-ties). The decoder then scores them
    with [`score_codes`][lossprofile.scoring.score_codes]. One piece gives exactly [`score_variants`][lossprofile.scoring.score_variants]; several give the same codes and
    the same statistics up to float rounding (another batch shape takes other matmul kernels;
    ``tests/test_runner.py`` measures it).
    """
    if len(pieces) == 1:
        return [score_variants(lm, *pieces[0], method=method, prompt=prompt, batch_size=batch_size,
                               prefix_reuse=prefix_reuse, precision=precision, splice=splice)]
    codes = encode_many(lm, pieces, splice=splice, across_pieces=encode_across_pieces)
    return score_codes(lm, codes, method=method, prompt=prompt, batch_size=batch_size, prefix_reuse=prefix_reuse,
                       precision=precision)


def score_codes(lm: TokenLM, codes: Sequence[torch.Tensor], *, method: str = "exact", prompt: str | None = None,
                batch_size: int | None = None, prefix_reuse: bool = True, precision: str = "auto",
                group_cost_steps: float = GROUP_COST_STEPS) -> list[Scores]:
    """[`Scores`][lossprofile.scoring.Scores] of each piece's codes ``[1 + N_i, K, T]`` (row 0 the clean piece), the decoder batched
    across rows and pieces.

    Each piece's rows fall into prefix groups ([`prefix_groups`][lossprofile.scoring.prefix_groups]; with ``prefix_reuse`` and the exact
    method, else one group that shares nothing; ``group_cost_steps=math.inf``: one group per piece, sharing only
    the prefix common to all its rows). Groups of every piece whose prefixes are about
    equally long share a batch of up to ``batch_size`` rows ([`prefix_batches`][lossprofile.scoring.prefix_batches]; default size: what fits,
    [`batch_size`][lossprofile.models.base.TokenLM.batch_size]; a larger group is cut into batches of that size), and each
    group's prefix runs once with the KV cache. On
    CUDA out-of-memory the limit is halved and the batch cut to it (and every later one). Results stay on the
    device until every batch is queued and then come back in one copy per batch (a copy to the host waits for
    the GPU: waiting after each batch would leave it idle while the next is launched).
    """
    exact_prefix = prefix_reuse and method == "exact"
    batch_slack_steps = BATCH_SLACK_STEPS if exact_prefix else 0
    groups = [prefix_groups(lm, c, group_cost_steps) if exact_prefix and len(c) > 1 else [(list(range(len(c))), 0)]
              for c in codes]
    limit = [batch_size or lm.batch_size(codes[0].shape[-1])]
    # a unit: (piece, its rows, shared steps), at most `limit` rows
    units = [(i, rows[lo : lo + limit[0]], steps) for i, piece_groups in enumerate(groups)
             for rows, steps in piece_groups for lo in range(0, len(rows), limit[0])]
    done: list[tuple[list[tuple[int, list[int], int]], int, TokenStats]] = []  # (units, shared steps, results)

    def run(batch: list[tuple[int, list[int], int]], steps: int) -> None:
        total = sum(len(rows) for _, rows, _ in batch)
        if total > limit[0] and total > 1:  # after an out-of-memory: cut to the lowered limit before trying
            return split(batch, steps)
        rows = torch.cat([codes[i][r] for i, r, _ in batch])
        try:
            with autocast_context(lm.device, precision):
                if method != "exact":
                    out = lm.token_statistics(rows, prompt=prompt, method=method)
                else:
                    out = lm.shared_prefix_statistics(rows.to(lm.device), steps, prompt,
                                                      group_sizes=[len(r) for _, r, _ in batch])
        except torch.cuda.OutOfMemoryError as err:
            torch.cuda.empty_cache()
            limit[0] = halved_after_oom(total, err)
            return split(batch, steps)
        done.append((batch, steps, TokenStats(*(x.float() for x in out))))

    def split(batch: list[tuple[int, list[int], int]], steps: int) -> None:  # into batches of the current limit
        cut = [(i, rows[lo : lo + limit[0]], steps) for i, rows, _ in batch for lo in range(0, len(rows), limit[0])]
        for chosen in pack([len(rows) for _, rows, _ in cut], limit[0]):
            run([cut[j] for j in chosen], steps)

    for members in prefix_batches(units, limit[0], batch_slack_steps):
        run(members, min(steps for _, _, steps in members))
    # every batch is queued: now wait for the device, once per batch
    stats = [TokenStats(*(torch.empty(len(c), *c.shape[1:]) for _ in TokenStats._fields)) for c in codes]
    ran: list[list[tuple[int, int]]] = [[] for _ in codes]  # each piece's (rows, shared steps) as they ran
    for batch, steps, out in done:
        out, lo = TokenStats(*(x.cpu() for x in out)), 0
        for i, rows, _ in batch:
            for mine, theirs in zip(stats[i], out):
                mine[rows] = theirs[lo : lo + len(rows)]
            lo += len(rows)
            ran[i].append((len(rows), steps))
    return [scores_of(c, s, r) for c, s, r in zip(codes, stats, ran)]
