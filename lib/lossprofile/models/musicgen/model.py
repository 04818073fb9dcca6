"""MusicGen through transformers: the codec, its (text) conditioner and the decoder, with exact scoring.

Every MusicGen checkpoint — the hub's ``facebook/musicgen-*``, a local directory in the same format,
an audiocraft checkpoint folder (converted on load, `audiocraft`) and the embedded ``"tiny"``
model — becomes a [`MusicLM`][lossprofile.models.musicgen.model.MusicLM] through [`load`][lossprofile.models.musicgen.model.load]. There is no second code path for the tiny model.

Shapes: waveforms are ``[B, C, S]`` (batch, channels, samples), codes are
``[B, K, T]`` (batch, codebooks, frames), per-code losses are ``[B, K, T]`` in nats.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import transformers

from ..base import (CERTAIN, FALLBACK, METHODS, NO_CLAIM, ModelLoadError, TokenLM, TokenStats, files_fingerprint,
                    first_difference, sample_top_k)
from ..hf import from_pretrained, quiet_transformers
from . import delay
from .architecture import decoder_flops_per_step
from .audiocraft import AudiocraftCheckpointError, AudiocraftLikelihood, convert, is_audiocraft_checkpoint
from .codec import encode_pieces, encode_variants, split_encoder

HUB_MODELS = (
    "facebook/musicgen-small",
    "facebook/musicgen-medium",
    "facebook/musicgen-large",
    "facebook/musicgen-melody",
)
TINY_DIR = Path(__file__).resolve().parents[2] / "checkpoints" / "tiny"
EMBEDDED = {"tiny": TINY_DIR}
MODEL_TYPES = ("musicgen", "musicgen_melody")  # config.json's model_type of the checkpoints this family loads
FORMATS = ("a folder in transformers' format (config.json with model_type musicgen or musicgen_melody, and its "
           "weights) or in audiocraft's (state_dict.bin + compression_state_dict.bin); any hub id 'org/name'")


def claims_folder(path: str | os.PathLike) -> bool:
    """A MusicGen folder in transformers' format (config.json of a MusicGen model_type) or audiocraft's
    (state_dict.bin + compression_state_dict.bin)."""
    return claim_folder(path) == CERTAIN


def claim_folder(path: str | os.PathLike) -> int:
    if is_audiocraft_checkpoint(path):
        return CERTAIN
    try:
        config = json.loads((Path(path) / "config.json").read_text())
    except (OSError, ValueError):
        return NO_CLAIM
    return CERTAIN if isinstance(config, dict) and config.get("model_type") in MODEL_TYPES else NO_CLAIM


def claim(name: str | os.PathLike) -> int:
    """How sure this family is that ``name`` is a MusicGen: a folder in its formats or a hub id it knows, certain;
    any other hub id 'org/name', a fallback (its config is not read before loading, and the hub serves no other
    family of ours today); anything else, no claim."""
    if Path(name).is_dir():
        return claim_folder(name)
    if str(name) in HUB_MODELS:
        return CERTAIN
    return FALLBACK if "/" in str(name) else NO_CLAIM


def load(path: str, name: str, device: str | torch.device | None, dtype: torch.dtype,
         backend: str = "transformers") -> "MusicLM | AudiocraftLikelihood":
    """A MusicGen checkpoint (hub id, local directory in transformers' or audiocraft's format) for scoring.

    ``backend="audiocraft"`` (an audiocraft checkpoint folder only) returns
    `lossprofile.models.musicgen.audiocraft.AudiocraftLikelihood` instead: audiocraft's own
    ``compute_predictions`` behind the same ``token_nll`` and ``encode``, for cross-checks.
    """
    if backend == "audiocraft":
        if not is_audiocraft_checkpoint(path):
            raise ModelLoadError(f"{path}: backend='audiocraft' needs an audiocraft checkpoint folder "
                                 "(state_dict.bin + compression_state_dict.bin)")
        return AudiocraftLikelihood(path, device=str(device or "cpu"))
    if backend != "transformers":
        raise ValueError(f"unknown backend {backend!r}; expected 'transformers' or 'audiocraft'")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if is_audiocraft_checkpoint(path):  # converted to transformers' layout on load, in memory
        try:
            model, tokenizer = convert(path)
        except AudiocraftCheckpointError as err:
            raise ModelLoadError(str(err)) from err
        model = model.to(device=device, dtype=dtype).eval()
        return MusicLM(model=model, tokenizer=tokenizer, name=name, device=device, dtype=dtype,
                       fingerprint=checkpoint_fingerprint(path, model))
    with quiet_transformers():
        config = from_pretrained(transformers.AutoConfig, path)
        if config.model_type == "musicgen":
            cls = transformers.MusicgenForConditionalGeneration
        elif config.model_type == "musicgen_melody":
            cls = transformers.MusicgenMelodyForConditionalGeneration
        else:
            raise ModelLoadError(f"{path}: model_type {config.model_type!r} is not a MusicGen checkpoint")
        model = from_pretrained(cls, path, dtype=dtype)
    model = model.to(device).eval()
    tokenizer = None
    if (Path(path) / "tokenizer_config.json").exists() or not Path(path).is_dir():
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(path)
        except (OSError, ValueError) as err:  # a checkpoint may ship without one
            logging.getLogger(__name__).info("no tokenizer for %s: %s", path, err)
    return MusicLM(model=model, tokenizer=tokenizer, name=name, device=device, dtype=dtype,
                   fingerprint=checkpoint_fingerprint(path, model))


def checkpoint_fingerprint(path: str, model: Any) -> str:
    """Identifies the weights, so cached results and samples are never reused across retrainings."""
    if Path(path).is_dir():
        folder = Path(path)
        return files_fingerprint(sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
                                 + [folder / "config.json"])
    return str(getattr(model.config, "_commit_hash", None) or path)


def _digest(wav: np.ndarray) -> str:
    return hashlib.sha1(wav.tobytes()).hexdigest() + str(wav.shape)


@dataclass
class MusicLM(TokenLM):
    """A loaded MusicGen: codec + (text) conditioner + decoder, with exact scoring."""

    family = "musicgen"
    methods = METHODS

    model: Any
    tokenizer: Any = None
    name: str = "model"
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.float32
    fingerprint: str = ""
    _residuals: dict = field(default_factory=dict, repr=False, compare=False)  # digest -> residual norms

    # ---- properties of the token stream -------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return int(self.model.config.audio_encoder.sampling_rate)

    @property
    def frame_rate(self) -> int:
        return int(self.model.config.audio_encoder.frame_rate)

    @property
    def lookahead_frames(self) -> int:
        """K - 1: under the delay pattern codebook k of frame t is predicted at step t + k, after codebook 0's codes
        of frames up to t + k - 1."""
        return self.num_codebooks - 1

    @property
    def num_codebooks(self) -> int:
        return int(self.model.config.decoder.num_codebooks)

    @property
    def cardinality(self) -> int:
        return int(self.model.config.decoder.vocab_size)

    @property
    def special_token(self) -> int:
        """Id used for the start step and the delay pattern's empty cells (== cardinality)."""
        return int(self.model.config.decoder.pad_token_id)

    @property
    def is_melody(self) -> bool:
        return self.model.config.model_type == "musicgen_melody"

    # ---- codec ---------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """Waveform ``[B, 1, S]`` at ``sample_rate`` → codes ``[B, K, T]`` (long).

        Down-mix and resample first with [`audio.to_mono`][lossprofile.audio.to_mono] and
        [`audio.resample`][lossprofile.audio.resample]; this method does not guess.
        """
        wav = torch.as_tensor(wav)
        if wav.ndim != 3:
            raise ValueError(f"encode expects a waveform [B, C, S], got shape {tuple(wav.shape)}")
        if wav.shape[1] != 1:
            raise ValueError(
                f"encode expects mono audio [B, 1, S], got {wav.shape[1]} channels; use lossprofile.audio.to_mono"
            )
        if wav.shape[-1] < self.hop_length:
            raise ValueError(f"waveform of {wav.shape[-1]} samples is shorter than one frame ({self.hop_length})")
        if not torch.isfinite(wav).all():
            raise ValueError("waveform contains NaN or inf samples")
        codec = self.model.audio_encoder
        x = wav.to(self.device, dtype=next(codec.parameters()).dtype)
        out = codec.encode(x, bandwidth=max(codec.config.target_bandwidths))
        codes = out.audio_codes[0] if out.audio_codes.ndim == 4 else out.audio_codes
        return codes[:, : self.num_codebooks].long()

    @torch.no_grad()
    def quantization_residual(self, wav: np.ndarray) -> np.ndarray | None:
        """The codec's own quantisation leftovers of a waveform ``[S]`` (no LM pass): L2 norms ``[K + 1, T]`` of the
        residual entering each RVQ level and of the one left after the last (`codec.residual_norms`), or
        None where the codec's encoder cannot be run apart from its quantizer (loudness normalisation, chunks)."""
        from .codec import residual_norms, split_encoder

        codec = self.model.audio_encoder
        if split_encoder(codec) is None:
            return None
        wav = np.ascontiguousarray(wav, dtype=np.float32)
        known = self._residuals.get(_digest(wav))
        if known is not None:  # the clean pass encoded this waveform already (`codec.encode_pieces`)
            return known
        x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))[None, None]
        x = x.to(self.device, dtype=next(codec.parameters()).dtype)
        embeddings = codec.encoder(x)
        codes = codec.quantizer.encode(embeddings, max(codec.config.target_bandwidths)).transpose(0, 1)
        return residual_norms(codec.quantizer, embeddings, codes[:, : self.num_codebooks].long())[0].cpu().numpy()

    def remember_residual(self, wav: np.ndarray, norms: np.ndarray) -> None:
        """Keep a clean waveform's [`quantization_residual`][lossprofile.models.musicgen.model.MusicLM.quantization_residual] from the encoding that produced its codes (the
        last few only), so that the profile's codec statistics cost no second encoder run."""
        self._residuals[_digest(np.ascontiguousarray(wav, dtype=np.float32))] = norms
        while len(self._residuals) > 64:
            self._residuals.pop(next(iter(self._residuals)))

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, K, T]`` → waveform ``[B, 1, S]`` (float32, on CPU)."""
        codec = self.model.audio_encoder
        wav = codec.decode(codes.to(self.device)[None], [None]).audio_values
        return wav.float().cpu()

    # ---- conditioning -------------------------------------------------------------------
    @torch.no_grad()
    def condition(self, batch_size: int, prompt: str | Sequence[str] | None = None) -> dict[str, Any]:
        """Keyword arguments that condition the decoder as the model itself does.

        ``prompt=None`` gives the null condition MusicGen uses for unconditional
        generation (zero text embedding, fully masked); for the melody model also a null
        chroma. A string (or one per batch item) is encoded with the checkpoint's T5.
        """
        if prompt is None and self.is_melody:
            # The melody model prepends its condition to the decoder sequence. A fully masked text
            # is zeroed inside its forward, and with no chroma given it uses its own "no melody"
            # chroma (one-hot on bin 0, what audiocraft's argmax chroma gives for silence).
            zeros = torch.zeros(batch_size, 1, dtype=torch.long, device=self.device)
            return {"input_ids": zeros, "attention_mask": zeros}
        if prompt is None:
            cond = dict(self.model.get_unconditional_inputs(batch_size))
            cond.pop("guidance_scale", None)
            return cond
        prompts = [prompt] * batch_size if isinstance(prompt, str) else list(prompt)
        if len(prompts) != batch_size:
            raise ValueError(f"got {len(prompts)} prompts for a batch of {batch_size}")
        if self.tokenizer is None:
            raise ValueError(f"model {self.name!r} ships no tokenizer, so it cannot take a text prompt (an audiocraft "
                             "checkpoint carries no T5: it needs the hub's t5-base in the Hugging Face cache)")
        tok = self.tokenizer(prompts, return_tensors="pt", padding=True).to(self.device)
        if self.is_melody:
            return {"input_ids": tok["input_ids"], "attention_mask": tok["attention_mask"]}
        enc = self.model.text_encoder(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"])
        return {"encoder_outputs": (enc.last_hidden_state,), "attention_mask": tok["attention_mask"]}

    def _decoder_logits(self, decoder_input: torch.Tensor, cond: dict[str, Any], past=None, use_cache=False):
        """Run the full model on decoder inputs ``[B, K, S]`` → logits ``[B, K, S, V]`` (model dtype)."""
        B, K, S = decoder_input.shape
        if past is not None and self.is_melody:
            cond = {}  # its condition is a prefix of the decoder sequence, already in the cache
        out = self.model(**cond, decoder_input_ids=decoder_input.reshape(B * K, S),
                         past_key_values=past, use_cache=use_cache)
        logits = out.logits.reshape(B, K, -1, out.logits.shape[-1])[:, :, -S:]
        return (logits, out.past_key_values) if use_cache else logits

    # ---- likelihood -----------------------------------------------------------------------
    @torch.no_grad()
    def token_nll(
        self,
        codes: torch.Tensor,
        prompt: str | Sequence[str] | None = None,
        method: str = "exact",
    ) -> torch.Tensor:
        """Negative log-likelihood (nats) of every code given everything before it.

        codes: ``[B, K, T]`` long. Returns ``[B, K, T]`` float32 on CPU.

        ``method="exact"`` follows MusicGen's training factorization: start token, delay
        pattern (codebook k shifted by k steps) and the model's own conditioning.
        ``method="as_published"`` reproduces the published research script: the raw code
        matrix fed to the decoder with a one-frame shift, no delay pattern, no
        conditioning. It cannot score frame 0, which is returned as NaN.
        """
        return self.token_statistics(codes, prompt, method).nll

    @torch.no_grad()
    def token_statistics(
        self,
        codes: torch.Tensor,
        prompt: str | Sequence[str] | None = None,
        method: str = "exact",
    ) -> TokenStats:
        """NLL, predictive entropy and rank of every code ([`TokenStats`][lossprofile.models.base.TokenStats], CPU).

        Same forward pass and factorization as [`token_nll`][lossprofile.models.musicgen.model.MusicLM.token_nll]; see there for ``method``.
        """
        codes = self.check_codes(codes)
        if method == "exact":
            B = codes.shape[0]
            decoder_input, _ = delay.decoder_io(codes, self.special_token)  # [B, K, T+K-1]
            logits = self._decoder_logits(decoder_input, self.condition(B, prompt))
            return TokenStats(*(x.cpu() for x in delay.token_statistics(logits, codes)))
        if method == "as_published":
            if prompt is not None:
                raise ValueError("method='as_published' scores without conditioning; prompt must be None")
            return self._stats_as_published(codes)
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")

    @torch.no_grad()
    def token_log_probs(self, codes: torch.Tensor, prompt: str | Sequence[str] | None = None) -> torch.Tensor:
        """Log-probabilities ``[B, K, T, V]`` (CPU, fp32) of every code's prediction: the exact factorization's
        delayed-step logits, codebook k read at steps ``t + k`` (as `delay.token_statistics` reads them)."""
        codes = self.check_codes(codes)
        T, K = codes.shape[-1], codes.shape[1]
        decoder_input, _ = delay.decoder_io(codes, self.special_token)
        logits = self._decoder_logits(decoder_input, self.condition(codes.shape[0], prompt))
        return torch.stack([torch.log_softmax(logits[:, k, k : k + T].float(), -1) for k in range(K)], 1).cpu()

    def _stats_as_published(self, codes: torch.Tensor) -> TokenStats:
        B, K, T = codes.shape
        out = [torch.full((B, K, T), float("nan")) for _ in TokenStats._fields]
        if T < 2:
            return TokenStats(*out)
        inputs = codes[:, :, :-1]
        logits = self.model.decoder(input_ids=inputs.reshape(B * K, T - 1)).logits.reshape(B, K, T - 1, -1)
        stats = delay.frame_statistics(logits.reshape(B * K, T - 1, -1), codes[:, :, 1:].reshape(B * K, T - 1))
        for full, part in zip(out, stats):
            full[:, :, 1:] = part.reshape(B, K, T - 1).cpu()
        return TokenStats(*out)

    # ---- what the engine needs beyond the protocol's defaults --------------------------------
    def encode_variants(self, clean: np.ndarray, variants: Sequence[np.ndarray]) -> torch.Tensor:
        """Codes ``[1 + N, K, T]``: EnCodec's convolutions re-run only around each variant's change
        (`codec.encode_variants`), or every waveform encoded whole where the codec's structure
        does not allow that (loudness normalisation, chunking)."""
        if split_encoder(self.model.audio_encoder) is not None:
            return encode_variants(self, clean, list(variants))
        return self.encode_each(np.stack([clean, *variants]))

    def encode_pieces(self, pieces: Sequence[tuple[np.ndarray, Sequence[np.ndarray]]]) -> list[torch.Tensor]:
        """[`encode_variants`][lossprofile.models.musicgen.model.MusicLM.encode_variants] of several pieces, EnCodec's work batched across them
        (`codec.encode_pieces`); piece by piece where the codec's structure does not allow splicing."""
        if split_encoder(self.model.audio_encoder) is not None:
            return encode_pieces(self, pieces)
        return super().encode_pieces(pieces)

    def shared_steps(self, codes: torch.Tensor) -> int:
        """Decoder steps shared by all rows of ``codes [N, K, T]``: the input at step s holds frames <= s - 1,
        so steps 0..first difference are shared (the last step always runs per row)."""
        return min(first_difference(codes[1:], codes[0]) + 1, codes.shape[-1] + self.num_codebooks - 2)

    @torch.no_grad()
    def shared_prefix_statistics(self, codes: torch.Tensor, shared_steps: int,
                                 prompt: str | Sequence[str] | None = None,
                                 group_sizes: Sequence[int] | None = None) -> TokenStats:
        """Exact [`TokenStats`][lossprofile.models.base.TokenStats] ``[B, K, T]`` (on the model's device) of codes whose first ``shared_steps``
        decoder inputs are identical within each group of rows (``group_sizes``; None: all rows): each group's
        prefix runs once with the KV cache, the rest per row."""
        B, K, T = codes.shape
        decoder_input, _ = delay.decoder_io(codes, self.special_token)  # [B, K, S]
        if shared_steps <= 0:
            logits = self._decoder_logits(decoder_input, self.condition(B, prompt))
            return delay.token_statistics(logits, codes)
        sizes = torch.tensor([B] if group_sizes is None else list(group_sizes))
        if int(sizes.sum()) != B:
            raise ValueError(f"group sizes {sizes.tolist()} do not add up to the {B} rows")
        firsts = torch.cumsum(sizes, 0) - sizes  # the first row of each group holds its prefix
        prefix_logits, past = self._decoder_logits(decoder_input[firsts, :, :shared_steps],
                                                   self.condition(len(sizes), prompt), use_cache=True)
        rows = torch.repeat_interleave(torch.arange(len(sizes)), sizes).to(self.device)  # [B]: each row's group
        if len(sizes) == 1:
            past.batch_repeat_interleave(B)
        else:
            past.reorder_cache(rows)
        rest = self._decoder_logits(decoder_input[:, :, shared_steps:], self.condition(B, prompt), past=past,
                                    use_cache=True)[0]
        return delay.shared_prefix_token_statistics(prefix_logits, rest, codes, rows)

    def batch_size(self, num_frames: int, default: int = 8, limit: int = 64) -> int:
        """Sequences per decoder batch that fit in half the free GPU memory (``default`` on CPU)."""
        if self.device.type != "cuda":
            return default
        free, _ = torch.cuda.mem_get_info(self.device)
        cfg = self.model.config.decoder
        steps = num_frames + self.num_codebooks
        logits = steps * self.num_codebooks * self.cardinality * (2 + 4 + 4)  # bf16 logits + fp32 log-softmax + grads-free copy
        cache = 2 * cfg.num_hidden_layers * steps * cfg.hidden_size * 2
        activations = steps * (cfg.ffn_dim + 4 * cfg.hidden_size) * 4
        return int(max(1, min(limit, 0.5 * free // (logits + cache + activations))))

    @contextlib.contextmanager
    def compiled_decoder(self, mode: str | None = "default") -> Iterator[None]:
        """Within the block, each decoder layer runs through ``torch.compile`` (dynamic shapes, inductor;
        ``mode="reduce-overhead"`` adds CUDA graphs); eager again after it.

        Per layer rather than the whole decoder: the same small graph for every layer (transformers' KV cache
        keys it by ``layer_idx``, so dynamo guards on it and compiles once per layer: the recompile limit is
        raised to fit). Not on the default path: on CPU it did not pay (README, "torch.compile"); ``make
        gpu-check`` measures it on a GPU (`lossprofile.bench.compile_check`).
        """
        import torch._dynamo

        layers = self.model.decoder.model.decoder.layers
        limit = torch._dynamo.config.recompile_limit
        torch._dynamo.config.recompile_limit = max(limit, 4 * len(layers))
        try:
            for layer in layers:
                layer.forward = torch.compile(layer.forward, dynamic=True, mode=mode)
            yield
        finally:
            for layer in layers:
                vars(layer).pop("forward", None)  # the instance attribute shadowed the class's forward
            torch._dynamo.config.recompile_limit = limit

    def forward_flops_per_step(self, steps: int) -> float:
        """Forward FLOPs of one decoder step at sequence length ``steps`` (matmuls + attention, causal average)."""
        return decoder_flops_per_step(self.model.config.decoder, steps)

    # ---- generation ---------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        num_samples: int,
        length: int,
        top_k: int = 250,
        temperature: float = 1.0,
        seed: int = 0,
        prompt: str | Sequence[str] | None = None,
    ) -> torch.Tensor:
        """Sample codes ``[num_samples, K, length]`` (``length`` frames) through the delay pattern, with the KV cache."""
        gen = torch.Generator(device=self.device).manual_seed(seed)
        K, T = self.num_codebooks, length
        cond = self.condition(num_samples, prompt)
        valid = delay.valid_mask(K, T, self.device)  # [K, S]
        step_input = torch.full((num_samples, K, 1), self.special_token, device=self.device)
        delayed, past = [], None
        for s in range(T + K - 1):
            logits, past = self._decoder_logits(step_input, cond, past=past, use_cache=True)
            logits = logits[:, :, -1].float() / temperature  # [B, K, V]
            sampled = sample_top_k(logits, top_k, gen)  # [B, K]
            sampled = torch.where(valid[:, s], sampled, self.special_token)
            delayed.append(sampled)
            step_input = sampled[:, :, None]
        return delay.undelay(torch.stack(delayed, dim=2), K).cpu()
