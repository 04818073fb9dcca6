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
1 and with 2 CPU threads moves its latents by as much and flips codes as often (measured on
15 pieces with the tiny model: up to 2.3e-5, 2 codes in one piece). The VQ decisions that are
not near a tie are identical, which ``tests/test_codec.py`` checks; ``splice=False`` in
:func:`lossprofile.scoring.score_variants` encodes every waveform whole instead.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

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
    each decision was from a tie: (second-best - best distance) / max(1, |best distance|).
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
        margins.append(((best - runner_up) / best.abs().clamp(min=1.0)).view(residual.shape[:2]))
        codes.append(index.view(residual.shape[:2]))
        residual = residual - layer.codebook.embed[index].view(residual.shape)
    return torch.stack(codes, 1).long(), torch.stack(margins, 1)


def _run(layers: list[nn.Module], x: torch.Tensor) -> torch.Tensor:
    for layer in layers:
        x = layer(x)
    return x


@torch.no_grad()
def encode_variants(lm: "MusicLM", clean: np.ndarray, variants: list[np.ndarray],
                    batch_segments: bool | None = None) -> torch.Tensor:
    """Codes ``[1 + N, K, T]`` of ``clean`` ``[S]`` and each variant ``[S]``: ``lm.encode`` of each alone,
    up to the codec's float rounding at VQ near-ties (see the module docstring).

    ``batch_segments`` (default: on CUDA) runs the variants' segments through the convolutions as one batch,
    each widened to the longest one (more unchanged context to the right changes nothing but rounding): on a
    GPU the launches, not the arithmetic, cost the time; on a CPU the widening would cost more than it saves.
    """
    codec = lm.model.audio_encoder
    parts = split_encoder(codec)
    if parts is None:
        raise NotImplementedError(f"{type(codec).__name__} has no EnCodec encoder structure to reuse")
    local, rest = parts
    for wav in (clean, *variants):
        if wav.shape != clean.shape or not np.isfinite(wav).all():
            raise ValueError(f"variants must be finite waveforms of {clean.shape[0]} samples like the clean one")
    if batch_segments is None:
        batch_segments = lm.device.type == "cuda"
    hop = lm.hop_length
    margin = math.ceil(receptive_radius_samples(local) / hop) + 1
    dtype = next(codec.parameters()).dtype

    def to_device(wavs: list[np.ndarray]) -> torch.Tensor:  # [N, 1, S]
        x = torch.from_numpy(np.stack(wavs).astype(np.float32, copy=False))[:, None]
        if lm.device.type == "cuda":
            x = x.pin_memory()
        return x.to(lm.device, dtype=dtype, non_blocking=True)

    bandwidth = max(codec.config.target_bandwidths)
    clean_latent = _run(local, to_device([clean]))
    T = clean_latent.shape[-1]
    latents = [clean_latent] * (1 + len(variants))
    spans = {}  # variant index → (first, last) latent frames to take from its segment; (start, stop) samples
    for i, wav in enumerate(variants, start=1):
        changed = np.flatnonzero(wav != clean)
        if changed.size == 0:
            continue
        first, last = max(0, changed[0] // hop - margin), min(T, changed[-1] // hop + 1 + margin)
        start = max(0, first - margin) * hop  # frame-aligned, so every stride lines up with the full run
        spans[i] = (first, last, start, min(clean.size, (last + margin) * hop))

    def splice(i: int, segment: torch.Tensor) -> None:  # segment: [1, D, frames] from sample spans[i][2]
        first, last, start, _ = spans[i]
        latent = clean_latent.clone()
        latent[..., first:last] = segment[..., first - start // hop : last - start // hop]
        latents[i] = latent

    alone = list(spans)
    if batch_segments and len(spans) > 1:
        width = max(stop - start for _, _, start, stop in spans.values())
        # a segment that reaches the waveform's end keeps that end (its padding is the full run's)
        together = [i for i, (_, _, start, stop) in spans.items()
                    if start + width < clean.size or (stop == clean.size and stop - start == width)]
        if len(together) > 1:
            wavs = [variants[i - 1][spans[i][2] : spans[i][2] + width] for i in together]
            for i, segment in zip(together, _run(local, to_device(wavs)).split(1)):
                splice(i, segment)
            alone = [i for i in spans if i not in together]
    for i in alone:
        splice(i, _run(local, to_device([variants[i - 1][spans[i][2] : spans[i][3]]])))
    def finish(rows: list[torch.Tensor]) -> torch.Tensor:  # conv-stack outputs [N, D, T] → codes [N, K, T]
        codes = codec.quantizer.encode(_run(rest, torch.cat(rows)), bandwidth).transpose(0, 1)
        return codes[:, : lm.num_codebooks].long()

    # The clean row alone, so its codes are exactly lm.encode's whatever variants come with it; the changed
    # variants' rest (EnCodec's LSTM) and quantizer in one batch: row by row, the LSTM's sequential steps at
    # batch 1 dominated the GPU pipeline's time (bench.stage_seconds, tools/gpu_profile.py).
    clean_codes = finish([clean_latent])
    out = [clean_codes] * len(latents)
    changed = sorted(spans)
    if changed:
        for i, codes in zip(changed, finish([latents[i] for i in changed]).split(1)):
            out[i] = codes
    return torch.cat(out)
