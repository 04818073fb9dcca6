"""Encode perturbed variants of one waveform without re-running the codec where nothing changed.

EnCodec's encoder is a stack of convolutions (finite receptive field, most of the cost: it
runs at the audio rate), then an LSTM and a last convolution at the frame rate, then the
residual VQ. A variant that differs from the clean waveform only in samples ``[lo, hi]``
has the same convolution outputs as the clean one outside ``lo - R .. hi + R`` (R the
receptive radius). So the convolutions run once on the clean waveform and, per variant,
only on a segment around the change (plus a margin on both sides, discarded, so the
segment's own edges never matter); the LSTM, last convolution and VQ run on the whole
spliced sequences, the changed variants in one batch (the LSTM steps through the frames one by
one, so at batch 1 per variant it cost more than the convolutions); the clean waveform alone, so
its codes are exactly the codec's own whatever variants come with it.

Convolutions over a shorter input round differently (latents move by ~1e-5 in ~100), so a
latent sitting that close to the boundary between two VQ codewords can get the other code.
The codec's own encoding has exactly this freedom already: encoding the same waveform with
1 and with 2 CPU threads moves its latents by as much and flips codes as often (measured:
docs/computed.md, the engine). The VQ decisions that are
not near a tie are identical, which ``tests/models/test_codec.py`` checks; ``splice=False`` in
[`scoring.score_variants`][lossprofile.scoring.score_variants] encodes every waveform whole instead.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch
from torch import nn

from ...batching import pack_items

if TYPE_CHECKING:
    from .model import MusicLM

def _is_conv1d(module: nn.Module) -> bool:
    return isinstance(module, nn.Conv1d)


def split_encoder(codec: nn.Module) -> tuple[list[nn.Module], list[nn.Module]] | None:
    """(the convolution stack before the encoder's LSTM, the layers from the LSTM on), or None
    when this codec does not have EnCodec's structure (then callers encode whole waveforms)."""
    layers = list(getattr(getattr(codec, "encoder", None), "layers", []))
    config = getattr(codec, "config", None)
    if not layers or config is None or getattr(config, "normalize", True) or getattr(config, "chunk_length_s", None):
        return None  # loudness normalization or chunking make frames depend on the whole input
    first_lstm = next((i for i, layer in enumerate(layers) if any(isinstance(m, nn.LSTM) for m in layer.modules())),
                      len(layers))
    return layers[:first_lstm], layers[first_lstm:]


def receptive_radius_samples(local_layers: list[nn.Module]) -> int:
    """Samples on either side of a frame's centre that can influence the stack's output (an upper bound)."""
    radius, jump = 0, 1
    for layer in local_layers:
        for conv in filter(_is_conv1d, layer.modules()):
            radius += (conv.kernel_size[0] - 1) * conv.dilation[0] * jump
            jump *= conv.stride[0]
    return radius


def quantize_with_margins(quantizer: nn.Module, embeddings: torch.Tensor, num_codebooks: int
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Residual VQ of ``embeddings [B, D, T]`` → (codes ``[B, K, T]``, relative decision margins ``[B, K, T]``).

    Same arithmetic as transformers' EnCodec quantizer (so the same codes), plus how far
    each decision was from a tie: (second-best - best distance) / max(1, |x|² + |e|²), the scale at which
    float32 rounds the expanded distance |x|² - 2 x·e + |e|² (x the residual, e the chosen codeword).
    A diagnostic: which codes float rounding could flip.
    """
    residual = embeddings.transpose(1, 2)  # [B, T, D]
    codes, margins = [], []
    for layer in quantizer.layers[:num_codebooks]:
        flat = residual.reshape(-1, residual.shape[-1])
        embed = layer.codebook.embed.t()
        dist = -(flat.pow(2).sum(1, keepdim=True) - 2 * flat @ embed + embed.pow(2).sum(0, keepdim=True))
        best, index = dist.max(dim=-1)  # transformers' own choice
        # the runner-up is the nearest *different* vector: duplicated codewords tie harmlessly
        _, vector_id = torch.unique(layer.codebook.embed, dim=0, return_inverse=True)
        same = vector_id[None, :] == vector_id[index][:, None]
        runner_up = dist.masked_fill(same, float("-inf")).max(dim=-1).values
        # float32 rounds the expanded distance at the scale of its largest terms, |x|² + |e|², not of the
        # distance itself: a near-match of a large latent (silence, say) has a small distance and rounding of
        # the size of its terms
        scale = flat.pow(2).sum(1) + embed.pow(2).sum(0)[index]
        margins.append(((best - runner_up) / scale.clamp(min=1.0)).view(residual.shape[:2]))
        codes.append(index.view(residual.shape[:2]))
        residual = residual - layer.codebook.embed[index].view(residual.shape)
    return torch.stack(codes, 1).long(), torch.stack(margins, 1)


def residual_norms(quantizer: nn.Module, embeddings: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """The residual VQ's leftovers of the codes it chose: L2 norm of the residual entering each of the ``K`` levels
    of ``codes [B, K, T]`` and of the one left after the last, ``[B, K + 1, T]`` for ``embeddings [B, D, T]``
    (row 0: the latent itself; row k + 1: the distance from level k's input to codeword ``codes[:, k]``).
    Taking the codes ``quantizer.encode`` returned, rather than searching the codebooks again, makes these the
    leftovers of exactly the codes the model reads and costs a lookup, not a second nearest-codeword search."""
    residual = embeddings.transpose(1, 2).float()  # [B, T, D]
    norms = [residual.norm(dim=-1)]
    for k, layer in enumerate(quantizer.layers[: codes.shape[1]]):
        residual = residual - layer.codebook.embed.float()[codes[:, k]]
        norms.append(residual.norm(dim=-1))
    return torch.stack(norms, 1)


def _run(layers: list[nn.Module], x: torch.Tensor) -> torch.Tensor:
    for layer in layers:
        x = layer(x)
    return x


@torch.no_grad()
def encode_variants(lm: "MusicLM", clean: np.ndarray, variants: list[np.ndarray],
                    *, batch_segments: bool | None = None) -> torch.Tensor:
    """Codes ``[1 + N, K, T]`` of ``clean`` ``[S]`` and each variant ``[S]``: ``lm.encode`` of each alone,
    up to the codec's float rounding at VQ near-ties (see the module docstring).

    ``batch_segments`` (default: on CUDA) runs the variants' segments of similar width (`width_groups`)
    through the convolutions as one batch, each widened to the group's longest (more unchanged context to the
    right changes nothing but rounding): on a GPU the launches, not the arithmetic, cost the time; on a CPU the
    widening would cost more than it saves.
    """
    return encode_pieces(lm, [(clean, variants)], batch_segments)[0]


# Conv-stack inputs per call, in samples: bounds the activations (EnCodec 32 kHz: 64 channels at the audio
# rate, ~2 GB in fp32 at this size) when many pieces' waveforms go through the convolutions together.
MAX_BATCH_SAMPLES = 2**23
# Frames per call of the LSTM and the quantizer, whose distances to every codeword (2048 for MusicGen) take
# 1 GB in fp32 at this size: 174 rows of 15 s, more than one piece's variants usually are.
MAX_BATCH_FRAMES = 2**17


def width_groups(keys: list, width_of, ratio: float = 2.0) -> list[list]:
    """``keys`` grouped by width (samples): each group's widest is at most ``ratio`` × its narrowest.

    Segments batched together are widened to the group's widest: one call instead of one per segment saves
    launches, the widening costs arithmetic. The paper's sweep mixes 20- and 700-frame segments (widening all
    to the widest would do 7× the convolutions), so segments are batched with others of similar width only.
    """
    groups: list[list] = []
    for key in sorted(keys, key=lambda k: (width_of(k), k)):
        if groups and width_of(key) <= ratio * width_of(groups[-1][0]):
            groups[-1].append(key)
        else:
            groups.append([key])
    return [sorted(group) for group in groups]


@torch.no_grad()
def encode_pieces(lm: "MusicLM", pieces: Sequence[tuple[np.ndarray, Sequence[np.ndarray]]],
                  batch_segments: bool | None = None, *, max_batch_samples: int = MAX_BATCH_SAMPLES,
                  max_batch_frames: int = MAX_BATCH_FRAMES) -> list[torch.Tensor]:
    """`encode_variants` of several pieces (each a clean waveform ``[S]`` and its variants ``[S]``), the
    codec's work batched across pieces: the clean waveforms' convolutions, the changed segments' convolutions
    (with ``batch_segments``) and the LSTM and VQ of the clean rows and of the changed rows each run as a few
    batches over all pieces instead of a few calls per piece. Returns each piece's codes ``[1 + N_i, K, T_i]``.

    One piece gives exactly `encode_variants` (the clean row runs alone, so its codes are
    ``lm.encode``'s). Several pieces batch the clean rows too, so a clean row's codes equal its own encoding
    only up to the float rounding of another batch shape, at VQ near-ties: on a GPU, where the codec is
    bound by kernel launches, that buys the launches of all but one call per stage
    ([`scoring.score_many`][lossprofile.scoring.score_many] does it there by default; ``make gpu-check`` counts the codes
    that differ).
    """
    codec = lm.model.audio_encoder
    parts = split_encoder(codec)
    if parts is None:
        raise NotImplementedError(f"{type(codec).__name__} has no EnCodec encoder structure to reuse")
    local, rest = parts
    pieces = [(clean, list(variants)) for clean, variants in pieces]
    for clean, variants in pieces:
        for wav in (clean, *variants):
            if wav.shape != clean.shape or not np.isfinite(wav).all():
                raise ValueError(f"variants must be finite waveforms of {clean.shape[0]} samples like the clean one")
    if batch_segments is None:
        batch_segments = lm.device.type == "cuda"
    hop = lm.hop_length
    margin = math.ceil(receptive_radius_samples(local) / hop) + 1
    dtype = next(codec.parameters()).dtype
    bandwidth = max(codec.config.target_bandwidths)

    def to_device(wavs: list[np.ndarray]) -> torch.Tensor:  # [N, 1, S]
        x = torch.from_numpy(np.stack(wavs).astype(np.float32, copy=False))[:, None]
        if lm.device.type == "cuda":
            x = x.pin_memory()
        return x.to(lm.device, dtype=dtype, non_blocking=True)

    def conv_stack(rows: list, wav_of, width_of) -> dict:  # rows of equal width → {row: conv output [1, D, frames]}
        out = {}
        for chunk in pack_items(rows, width_of, max_batch_samples):
            for row, latent in zip(chunk, _run(local, to_device([wav_of(r) for r in chunk])).split(1)):
                out[row] = latent
        return out

    # the clean waveforms, those of equal length together
    clean_latents: dict[int, torch.Tensor] = {}
    for size in sorted({clean.size for clean, _ in pieces}):
        same = [p for p, (clean, _) in enumerate(pieces) if clean.size == size]
        clean_latents.update(conv_stack(same, lambda p: pieces[p][0], lambda p: pieces[p][0].size))

    # (piece, variant) → (first, last) latent frames to take from its segment; (start, stop) samples
    spans: dict[tuple[int, int], tuple[int, int, int, int]] = {}
    for p, (clean, variants) in enumerate(pieces):
        T = clean_latents[p].shape[-1]
        for i, wav in enumerate(variants, start=1):
            changed = np.flatnonzero(wav != clean)
            if changed.size == 0:
                continue
            first, last = max(0, changed[0] // hop - margin), min(T, changed[-1] // hop + 1 + margin)
            start = max(0, first - margin) * hop  # frame-aligned, so every stride lines up with the full run
            spans[p, i] = (first, last, start, min(clean.size, (last + margin) * hop))

    latents = {(p, 0): clean_latents[p] for p in range(len(pieces))}

    def splice(key: tuple[int, int], segment: torch.Tensor) -> None:  # segment: [1, D, frames] from spans[key][2]
        first, last, start, _ = spans[key]
        latent = clean_latents[key[0]].clone()
        latent[..., first:last] = segment[..., first - start // hop : last - start // hop]
        latents[key] = latent

    def variant(key: tuple[int, int]) -> np.ndarray:
        return pieces[key[0]][1][key[1] - 1]

    alone = list(spans)
    if batch_segments and len(spans) > 1:
        alone = []

        def fits(key, width: int) -> bool:  # a segment reaching the waveform's end keeps that end (its padding)
            _, _, start, stop = spans[key]
            size = pieces[key[0]][0].size
            return start + width < size or (stop == size and stop - start == width)

        for group in width_groups(list(spans), lambda k: spans[k][3] - spans[k][2]):
            width = max(spans[k][3] - spans[k][2] for k in group)
            together = [key for key in group if fits(key, width)]
            alone += [key for key in group if key not in together or len(together) == 1]
            if len(together) > 1:
                wide = conv_stack(together, lambda k: variant(k)[spans[k][2] : spans[k][2] + width], lambda k: width)
                for key, segment in wide.items():
                    splice(key, segment)
    for key in alone:
        splice(key, _run(local, to_device([variant(key)[spans[key][2] : spans[key][3]]])))

    remember = getattr(lm, "remember_residual", None)

    def finish(keys: list, clean: bool = False) -> dict:  # conv-stack outputs [N, D, T] of equal T → codes [1, K, T]
        out = {}
        for T in sorted({latents[k].shape[-1] for k in keys}):
            # the quantizer holds a [rows × T, codebook size] distance matrix: a bounded number of frames per call
            for chosen in pack_items([k for k in keys if latents[k].shape[-1] == T], lambda k: T, max_batch_frames):
                embeddings = _run(rest, torch.cat([latents[k] for k in chosen]))
                codes = codec.quantizer.encode(embeddings, bandwidth).transpose(0, 1)[:, : lm.num_codebooks].long()
                out.update(zip(chosen, codes.split(1)))
                if clean and remember is not None:  # the clean rows' VQ leftovers, for the codec statistics
                    norms = residual_norms(codec.quantizer, embeddings, codes).cpu().numpy()
                    for key, row in zip(chosen, norms):
                        remember(pieces[key[0]][0], row)
        return out

    # One piece: its clean row alone, so its codes are exactly lm.encode's whatever variants come with it.
    # The changed variants' rest (EnCodec's LSTM) and quantizer in one batch: row by row, the LSTM's sequential
    # steps at batch 1 dominated the GPU pipeline's time (bench.stage_seconds, tools/gpu_profile.py).
    codes = finish([(p, 0) for p in range(len(pieces))], clean=True)
    codes.update(finish(sorted(spans)))
    return [torch.cat([codes.get((p, i), codes[p, 0]) for i in range(1 + len(variants))])
            for p, (_, variants) in enumerate(pieces)]
