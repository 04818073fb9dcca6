"""Loading MusicGen-family checkpoints and scoring code sequences with them.

Every checkpoint — the hub's ``facebook/musicgen-*``, a local directory in the same
format, and the embedded ``"tiny"`` model — goes through :func:`load_model`, which
calls transformers' ``from_pretrained``. There is no second code path for the tiny model.

Shapes: waveforms are ``[B, C, S]`` (batch, channels, samples), codes are
``[B, K, T]`` (batch, codebooks, frames), per-code losses are ``[B, K, T]`` in nats.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from . import delay

HUB_MODELS = (
    "facebook/musicgen-small",
    "facebook/musicgen-medium",
    "facebook/musicgen-large",
    "facebook/musicgen-melody",
)
TINY_DIR = Path(__file__).parent / "checkpoints" / "tiny"
METHODS = ("exact", "as_published")


class ModelLoadError(RuntimeError):
    """A checkpoint could not be found or read."""


def resolve_model_path(name_or_path: str | os.PathLike) -> str:
    """Map a user-facing model name to what ``from_pretrained`` takes."""
    name = str(name_or_path)
    if name == "tiny":
        if not (TINY_DIR / "config.json").exists():
            raise ModelLoadError(
                f"the embedded model is missing: {TINY_DIR}/config.json not found. "
                "Rebuild it with `make tiny-model`."
            )
        return str(TINY_DIR)
    if Path(name).is_dir():
        from .audiocraft_format import is_audiocraft_checkpoint

        if not (Path(name) / "config.json").exists() and not is_audiocraft_checkpoint(name):
            raise ModelLoadError(f"{name}: directory has neither config.json (transformers' format) nor "
                                 "state_dict.bin + compression_state_dict.bin (audiocraft's); not a MusicGen checkpoint")
        return name
    if "/" not in name:
        raise ModelLoadError(
            f"unknown model name {name!r}: expected 'tiny', one of {', '.join(HUB_MODELS)}, "
            "another hub id 'org/name', or a local checkpoint directory"
        )
    return name


def _from_pretrained(cls: Any, path: str, **kwargs: Any) -> Any:
    try:
        return cls.from_pretrained(path, **kwargs)
    except OSError as err:
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        raise ModelLoadError(
            f"cannot load {path!r}: it is neither a local checkpoint nor in the Hugging Face cache, "
            f"and the hub {'is disabled (HF_HUB_OFFLINE=1)' if offline else 'could not be reached'}. "
            f"Download it once with network access (it is then cached). Original error: {err}"
        ) from err


def load_model(
    name_or_path: str | os.PathLike = "tiny",
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    backend: str = "transformers",
) -> "MusicLM":
    """Load a MusicGen checkpoint (hub id, local directory in transformers' or audiocraft's format,
    or ``"tiny"``) for scoring.

    ``dtype`` sets the weights' precision (``torch.bfloat16`` on GPU halves memory);
    log-probabilities are always computed in fp32. ``backend="audiocraft"`` (an audiocraft
    checkpoint folder only) returns :class:`~lossprofile.audiocraft_format.AudiocraftLikelihood`
    instead: audiocraft's own ``compute_predictions`` behind the same ``token_nll`` and ``encode``,
    for cross-checks.
    """
    import transformers

    path = resolve_model_path(name_or_path)
    if backend == "audiocraft":
        from .audiocraft_format import AudiocraftLikelihood, is_audiocraft_checkpoint

        if not is_audiocraft_checkpoint(path):
            raise ModelLoadError(f"{path}: backend='audiocraft' needs an audiocraft checkpoint folder "
                                 "(state_dict.bin + compression_state_dict.bin)")
        return AudiocraftLikelihood(path, device=str(device or "cpu"))
    if backend != "transformers":
        raise ValueError(f"unknown backend {backend!r}; expected 'transformers' or 'audiocraft'")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if isinstance(dtype, str):
        dtype = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
                 "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}[dtype]
    dtype = dtype or torch.float32
    from .audiocraft_format import AudiocraftCheckpointError, convert, is_audiocraft_checkpoint

    if is_audiocraft_checkpoint(path):  # converted to transformers' layout on load, in memory
        try:
            model, tokenizer = convert(path)
        except AudiocraftCheckpointError as err:
            raise ModelLoadError(str(err)) from err
        model = model.to(device=device, dtype=dtype).eval()
        return MusicLM(model=model, tokenizer=tokenizer, name=str(name_or_path), device=device, dtype=dtype,
                       fingerprint=checkpoint_fingerprint(path, model))
    with quiet_transformers():
        config = _from_pretrained(transformers.AutoConfig, path)
        if config.model_type == "musicgen":
            cls = transformers.MusicgenForConditionalGeneration
        elif config.model_type == "musicgen_melody":
            cls = transformers.MusicgenMelodyForConditionalGeneration
        else:
            raise ModelLoadError(f"{path}: model_type {config.model_type!r} is not a MusicGen checkpoint")
        model = _from_pretrained(cls, path, dtype=dtype)
    model = model.to(device).eval()
    tokenizer = None
    if (Path(path) / "tokenizer_config.json").exists() or not Path(path).is_dir():
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(path)
        except (OSError, ValueError) as err:  # a checkpoint may ship without one
            logging.getLogger(__name__).info("no tokenizer for %s: %s", path, err)
    return MusicLM(model=model, tokenizer=tokenizer, name=str(name_or_path), device=device, dtype=dtype,
                   fingerprint=checkpoint_fingerprint(path, model))


@contextlib.contextmanager
def quiet_transformers():
    """Silence transformers' warnings and progress bars while loading a MusicGen.

    Its config check warns that the pad/start token id equals the vocabulary size: that is
    MusicGen's design (the special token sits just past the codes), not an error, and users
    should not see it in every notebook.
    """
    import transformers

    verbosity = transformers.logging.get_verbosity()
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers.logging.set_verbosity(verbosity)
        if bars:
            transformers.utils.logging.enable_progress_bar()


def checkpoint_fingerprint(path: str, model: Any) -> str:
    """Identifies the weights, so cached results and samples are never reused across retrainings."""
    import hashlib

    if Path(path).is_dir():
        digest = hashlib.sha256()
        for file in sorted(Path(path).glob("*.safetensors")) + sorted(Path(path).glob("*.bin")) + \
                [Path(path) / "config.json"]:
            if file.exists():
                digest.update(file.read_bytes())
        return digest.hexdigest()[:16]
    return str(getattr(model.config, "_commit_hash", None) or path)


@dataclass
class MusicLM:
    """A loaded MusicGen: codec + (text) conditioner + decoder, with exact scoring."""

    model: Any
    tokenizer: Any = None
    name: str = "model"
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.float32
    fingerprint: str = ""

    # ---- properties of the token stream -------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return int(self.model.config.audio_encoder.sampling_rate)

    @property
    def frame_rate(self) -> int:
        return int(self.model.config.audio_encoder.frame_rate)

    @property
    def hop_length(self) -> int:
        """Samples per frame (640 for MusicGen: 32 kHz / 50 Hz)."""
        return self.sample_rate // self.frame_rate

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

        Down-mix and resample first with :func:`lossprofile.audio.to_mono` and
        :func:`lossprofile.audio.resample`; this method does not guess.
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
    ) -> delay.TokenStats:
        """NLL, predictive entropy and rank of every code (:class:`lossprofile.delay.TokenStats`, CPU).

        Same forward pass and factorization as :meth:`token_nll`; see there for ``method``.
        """
        codes = self._check_codes(codes)
        if method == "exact":
            B = codes.shape[0]
            decoder_input, _ = delay.decoder_io(codes, self.special_token)  # [B, K, T+K-1]
            logits = self._decoder_logits(decoder_input, self.condition(B, prompt))
            return delay.TokenStats(*(x.cpu() for x in delay.token_statistics(logits, codes)))
        if method == "as_published":
            if prompt is not None:
                raise ValueError("method='as_published' scores without conditioning; prompt must be None")
            return self._stats_as_published(codes)
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")

    def _check_codes(self, codes: torch.Tensor) -> torch.Tensor:
        codes = torch.as_tensor(codes)
        if codes.ndim != 3 or codes.shape[1] != self.num_codebooks:
            raise ValueError(f"codes must be [B, {self.num_codebooks}, T], got shape {tuple(codes.shape)}")
        if codes.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise ValueError(f"codes must be integer, got {codes.dtype}")
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.cardinality):
            raise ValueError(f"codes must lie in [0, {self.cardinality}), got [{codes.min()}, {codes.max()}]")
        return codes.long().to(self.device)

    def _stats_as_published(self, codes: torch.Tensor) -> delay.TokenStats:
        B, K, T = codes.shape
        out = [torch.full((B, K, T), float("nan")) for _ in delay.TokenStats._fields]
        if T < 2:
            return delay.TokenStats(*out)
        inputs = codes[:, :, :-1]
        logits = self.model.decoder(input_ids=inputs.reshape(B * K, T - 1)).logits.reshape(B, K, T - 1, -1)
        stats = delay.frame_statistics(logits.reshape(B * K, T - 1, -1), codes[:, :, 1:].reshape(B * K, T - 1))
        for full, part in zip(out, stats):
            full[:, :, 1:] = part.reshape(B, K, T - 1).cpu()
        return delay.TokenStats(*out)

    # ---- generation ---------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        num_samples: int,
        length_frames: int,
        top_k: int = 250,
        temperature: float = 1.0,
        seed: int = 0,
        prompt: str | Sequence[str] | None = None,
    ) -> torch.Tensor:
        """Sample codes ``[num_samples, K, length_frames]`` with the model's own ``generate``."""
        gen = torch.Generator(device=self.device).manual_seed(seed)
        K, T = self.num_codebooks, length_frames
        cond = self.condition(num_samples, prompt)
        valid = delay.valid_mask(K, T, self.device)  # [K, S]
        step_input = torch.full((num_samples, K, 1), self.special_token, device=self.device)
        delayed, past = [], None
        for s in range(T + K - 1):
            logits, past = self._decoder_logits(step_input, cond, past=past, use_cache=True)
            logits = logits[:, :, -1].float() / temperature  # [B, K, V]
            if top_k and top_k < logits.shape[-1]:
                kth = logits.topk(top_k, dim=-1).values[..., -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            probs = logits.softmax(-1).reshape(-1, logits.shape[-1])
            sampled = torch.multinomial(probs, 1, generator=gen).reshape(num_samples, K)
            sampled = torch.where(valid[:, s], sampled, self.special_token)
            delayed.append(sampled)
            step_input = sampled[:, :, None]
        return delay.undelay(torch.stack(delayed, dim=2), K).cpu()
