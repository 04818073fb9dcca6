"""MusicGen configurations: the real checkpoints' shapes and the embedded tiny model's.

Used to build random-weight models of the real architecture (tests, benchmarks) and the
embedded tiny model that `lossprofile.embedded.tiny_model` trains. All are ``MusicgenConfig`` objects, so
every model built from them saves and loads like a hub checkpoint.
"""

from __future__ import annotations

import math
from typing import Any

import transformers

from ..hf import quiet_transformers

# Decoder shapes of the published checkpoints (hub config.json files).
DECODER_SIZES: dict[str, dict[str, int]] = {
    "small": dict(num_hidden_layers=24, hidden_size=1024, num_attention_heads=16, ffn_dim=4096),
    "medium": dict(num_hidden_layers=48, hidden_size=1536, num_attention_heads=24, ffn_dim=6144),
    "large": dict(num_hidden_layers=48, hidden_size=2048, num_attention_heads=32, ffn_dim=8192),
}


def musicgen_config(
    *,
    num_hidden_layers: int = 2,
    hidden_size: int = 64,
    num_attention_heads: int = 4,
    ffn_dim: int = 256,
    cardinality: int = 2048,
    num_codebooks: int = 4,
    codec_filters: int = 64,
    codec_hidden: int = 128,
    codec_lstm_layers: int = 2,
    text_vocab: int = 32128,
    text_dim: int = 768,
    text_layers: int = 12,
    text_heads: int = 12,
    text_ff: int = 3072,
    max_position_embeddings: int = 2048,
) -> transformers.MusicgenConfig:
    """A MusicGen config: 32 kHz mono EnCodec at 50 frames/s, K codebooks, T5 conditioner.

    Defaults of the codec and text encoder are MusicGen-small's; pass smaller numbers for
    a tiny model. The codec's bandwidth is chosen so that it yields ``num_codebooks``.
    """
    bits = math.log2(cardinality)
    codec = transformers.EncodecConfig(
        sampling_rate=32000, audio_channels=1, upsampling_ratios=[8, 5, 4, 4],
        num_filters=codec_filters, hidden_size=codec_hidden, codebook_dim=codec_hidden,
        codebook_size=cardinality, target_bandwidths=[num_codebooks * 50 * bits / 1000],
        num_lstm_layers=codec_lstm_layers, use_causal_conv=False, normalize=False,
        norm_type="weight_norm", pad_mode="reflect", chunk_length_s=None, overlap=None,
    )
    text = transformers.T5Config(
        vocab_size=text_vocab, d_model=text_dim, d_kv=text_dim // text_heads, d_ff=text_ff,
        num_layers=text_layers, num_heads=text_heads, pad_token_id=0, eos_token_id=1,
    )
    special = cardinality
    with quiet_transformers():  # the special token id == cardinality is MusicGen's design
        decoder = transformers.MusicgenDecoderConfig(
            vocab_size=cardinality, num_codebooks=num_codebooks, num_hidden_layers=num_hidden_layers,
            hidden_size=hidden_size, num_attention_heads=num_attention_heads, ffn_dim=ffn_dim,
            max_position_embeddings=max_position_embeddings, pad_token_id=special, bos_token_id=special,
            decoder_start_token_id=special, activation_function="gelu", dropout=0.0, attention_dropout=0.0,
            activation_dropout=0.0, layerdrop=0.0, scale_embedding=False, tie_word_embeddings=False,
        )
        cfg = transformers.MusicgenConfig(
            text_encoder=text.to_dict(), audio_encoder=codec.to_dict(), decoder=decoder.to_dict()
        )
    cfg.decoder_start_token_id = special
    cfg.pad_token_id = special
    return cfg


def real_architecture(size: str = "small", **overrides: Any) -> transformers.MusicgenConfig:
    """Config of ``facebook/musicgen-{size}``'s decoder with MusicGen's codec and T5-base."""
    if size not in DECODER_SIZES:
        raise ValueError(f"unknown size {size!r}; expected one of {sorted(DECODER_SIZES)}")
    return musicgen_config(**{**DECODER_SIZES[size], **overrides})


def decoder_flops_per_step(decoder: transformers.MusicgenDecoderConfig, steps: int) -> float:
    """Forward FLOPs of one decoder step at sequence length ``steps`` (matmuls, causal attention on average, and
    the K output heads), from the decoder's shapes alone."""
    d, f, L = decoder.hidden_size, decoder.ffn_dim, decoder.num_hidden_layers
    per_layer = 2 * (4 * d * d + 2 * d * d + 2 * d * f) + 2 * 2 * d * steps / 2
    heads = 2 * decoder.num_codebooks * d * decoder.vocab_size
    return L * per_layer + heads


def build_model(config: transformers.MusicgenConfig, seed: int = 0) -> Any:
    """A randomly initialised ``MusicgenForConditionalGeneration`` (eval mode), deterministic under ``seed``."""
    import torch

    with quiet_transformers():
        torch.manual_seed(seed)
        model = transformers.MusicgenForConditionalGeneration(config)
    return model.eval()


def kmeans_codebooks(quantizer: Any, latents: Any, iters: int = 15, seed: int = 0) -> None:
    """Start each residual-VQ codebook of ``quantizer`` (EnCodec's) from k-means of ``latents`` ``[N, D]``: stage
    q on the residual the stages before it leave, from ``codebook_size`` latents drawn under ``seed`` (repeated
    where there are fewer), ``iters`` Lloyd iterations. EnCodec's own start; the embedded model's training
    (`lossprofile.embedded.codec_training.EmaRVQ`) and `calibrate_codec` use it."""
    import torch

    g = torch.Generator().manual_seed(seed)
    residual = latents.clone()
    for cb in (layer.codebook for layer in quantizer.layers):
        n = cb.embed.shape[0]
        pick = torch.randperm(len(residual), generator=g)[:n]
        if len(pick) < n:  # fewer latents than codes: repeat some (the EMA restarts spread them later)
            pick = pick[torch.arange(n) % len(pick)]
        centers = residual[pick.to(residual.device)].clone()
        for _ in range(iters):
            idx = torch.cdist(residual, centers).argmin(1)
            counts = torch.bincount(idx, minlength=n).float()
            sums = torch.zeros_like(centers).index_add_(0, idx, residual)
            filled = counts > 0
            centers[filled] = sums[filled] / counts[filled, None]
        cb.embed.copy_(centers)
        cb.embed_avg.copy_(centers)
        cb.cluster_size.fill_(1.0)
        cb.inited.fill_(True)
        residual = residual - centers[torch.cdist(residual, centers).argmin(1)]


def calibrate_codec(model: Any, wavs: Any, iters: int = 5, seed: int = 0) -> Any:
    """Make a randomly built codec's codes follow its input, from its own latents of ``wavs`` ``[B, 1, S]``.

    A freshly built EnCodec is no stand-in for a trained one: transformers initialises its codebooks to
    zeros, so every frame of every waveform gets code 0 (a perturbed variant then has the clean piece's codes,
    and a benchmark on such a model scores one row's worth of decoder work per piece while reporting "codes
    identical"); and its random encoder leaves latents a large common vector with a few % of spread, so VQ
    distances differ only in the last bits of float32 and codes flip with the rounding of any batch shape.
    Two data-dependent initialisations fix both, as training starts them:

    1. the encoder's last convolution is rescaled so its latents have zero mean and unit variance per channel
       over ``wavs`` (weight normalization's own data-dependent initialisation, on its gain and bias);
    2. the codebooks start from k-means of those latents (`kmeans_codebooks`, ``iters`` iterations).

    ``wavs`` should hold several times more frames than a codebook has entries (2048 in MusicGen, 41 s at 50
    frames/s): a latent that is its own cluster leaves no residual for the next codebook. Returns ``model``.
    """
    import torch

    codec = model.audio_encoder
    last = codec.encoder.layers[-1].conv
    weight = last.parametrizations.weight.original0 if hasattr(last, "parametrizations") else last.weight
    x = torch.as_tensor(wavs).to(weight.device, weight.dtype)

    def encoded() -> torch.Tensor:  # latent frames [B*T, D], a waveform at a time (the first layers are wide)
        return torch.cat([codec.encoder(wav[None])[0].t() for wav in x])

    with torch.no_grad():
        latents = encoded()
        mean, std = latents.mean(0), latents.std(0).clamp(min=1e-8)
        weight.div_(std.view(-1, *[1] * (weight.ndim - 1)))  # the gain g of weight norm: one per output channel
        last.bias.sub_(mean).div_(std)
        kmeans_codebooks(codec.quantizer, encoded(), iters, seed)
    return model
