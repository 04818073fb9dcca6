"""What a model family provides: the protocol the engine, runner, profile score and bench are written against.

A *family* is a kind of music language model with its own tokenizer and factorization (MusicGen over
EnCodec codes; causal LMs over MIDI tokens next). Everything above the family — perturbing, scoring
variants with a shared prefix, regions, the profile score, sweeps — sees only [`TokenLM`][lossprofile.models.base.TokenLM]:

==========================  ==================================================================
``reads``                   what the tokenizer reads: ``"audio"`` (waveforms) or ``"midi"`` (scores)
``sample_rate``             waveform rate the tokenizer reads (Hz)
``frame_rate``              frames per second on the time axis, a float (DAC at 44.1 kHz: 86.13); one frame
                            stands for ``1 / frame_rate`` s (``token_unit`` says it in words)
``hop_length``              waveform samples per frame, an exact integer (``sample_rate / frame_rate``)
``lookahead_frames``        frames after a code that its prediction may read (MusicGen's delay pattern:
                            K - 1; 0 for a family whose code at frame t depends on frames <= t only)
``loss_unit``, ``frame_loss_unit``
                            the unit of a per-token mean loss and of one frame's loss, in words
``num_codebooks``, ``cardinality``
                            codes are ``[B, K, T]`` integers in ``[0, cardinality)``
``encode(wav)``             waveform ``[B, 1, S]`` → codes ``[B, K, T]``
``encode_midi(midi)``       (families that read MIDI) a score → codes ``[1, K, T]`` and each token's seconds
``encode_variants(...)``    optional fast path: a clean waveform and variants of it → codes
``token_statistics(codes)`` NLL, entropy, rank and surprisal variance of every code
``token_log_probs(codes)``  (optional) the whole predictive distribution of every code, for scores
                            that compare two models' predictions ([`lossprofile.analysis.profile`][])
``shared_prefix_statistics`` the same for codes whose first decoder steps are identical, computed
                            once and shared (optional: the default scores every row in full)
``shared_steps(codes)``     how many decoder steps the rows of ``codes`` share
``batch_size(num_frames)``  how many sequences one forward pass takes
``generate(n, length, ...)`` sample codes ``[n, K, length]`` (``length`` steps of the code grid: frames, or
                            tokens for a family over MIDI); same signature in every family
``decode(codes)``           codes → the family's input form: waveforms ``[B, 1, S]`` (``reads == "audio"``)
                            or one standard MIDI file (bytes) per row (``reads == "midi"``)
==========================  ==================================================================

A new family subclasses [`TokenLM`][lossprofile.models.base.TokenLM], implements the abstract members and is a module that
[`models.loading.load_model`][lossprofile.models.loading.load_model] can dispatch to ([`FamilyModule`][lossprofile.models.base.FamilyModule]: its embedded
models, the hub ids and folders it claims and how sure it is, its formats in words, and ``load``),
registered with [`models.loading.register_family`][lossprofile.models.loading.register_family].
"""

from __future__ import annotations

import abc
import hashlib
import os
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Protocol, Sequence, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ModelLoadError  # noqa: F401  (defined with the package's other errors; importable from here)
from ..grid import samples_per_frame

METHODS = ("exact", "as_published")


# How sure a family is that a name or folder is its own (``FamilyModule.claim``). ``load_model`` takes the one
# family with the highest claim above NO_CLAIM; two families at that level are an error, never a matter of the
# order they were registered in.
NO_CLAIM = 0
FALLBACK = 1  # a guess: e.g. any hub id "org/name" may be a MusicGen (the hub's config is not read offline)
CERTAIN = 2  # the family's own format or a name it knows


@runtime_checkable
class FamilyModule(Protocol):
    """What a model family's module provides to [`models.loading.load_model`][lossprofile.models.loading.load_model].

    ``claim(name)``: how sure the family is that ``name`` (a hub id, or a local folder's path) is one of its
    checkpoints: `CERTAIN` for its own format or a name it knows, `FALLBACK` for a guess,
    `NO_CLAIM` otherwise. ``FORMATS``: its checkpoint formats in words, for the error naming every family's.
    """

    EMBEDDED: Mapping[str, Path]
    HUB_MODELS: Sequence[str] | Mapping[str, str]
    FORMATS: str

    def claim(self, name: str | os.PathLike) -> int: ...

    def load(self, path: str, name: str, device: str | torch.device | None, dtype: torch.dtype,
             backend: str = "transformers") -> "TokenLM": ...


class TokenStats(NamedTuple):
    """Per-code signals of one forward pass, each ``[B, K, T]`` float32.

    ``nll``: -log p(true code) in nats; ``entropy``: entropy of the predictive distribution
    in nats (what the model expected to pay); ``rank``: rank of the true code among all codes
    (1 = the model's top choice; ties with the true code's logit count in its favour);
    ``surprisal_var``: variance of -log p(X) for X drawn from the prediction (nats², the
    normaliser of Fast-DetectGPT's curvature).
    """

    nll: torch.Tensor
    entropy: torch.Tensor
    rank: torch.Tensor
    surprisal_var: torch.Tensor


def frame_statistics(logits: torch.Tensor, targets: torch.Tensor, rows_per_block: int = 1024) -> TokenStats:
    """[`TokenStats`][lossprofile.models.base.TokenStats] of ``targets [B, T]`` under ``logits [B, T, V]``; the softmax runs in fp32.

    On CPU in blocks of about ``rows_per_block`` predictions, so that the five passes over the vocabulary stay
    in cache (every number identical to one block: each is computed over its own row of the vocabulary alone;
    timing: docs/performance.md). On a GPU in one block (launches cost more there).
    """
    B, T = targets.shape
    step = max(1, rows_per_block // max(1, B))
    if logits.device.type != "cpu" or T <= step:
        return _frame_statistics(logits, targets)
    parts = [_frame_statistics(logits[:, t : t + step], targets[:, t : t + step]) for t in range(0, T, step)]
    return TokenStats(*(torch.cat(p, dim=1) for p in zip(*parts)))


def _frame_statistics(logits: torch.Tensor, targets: torch.Tensor) -> TokenStats:
    logp = F.log_softmax(logits.float(), dim=-1)
    target_logp = logp.gather(-1, targets[..., None].long())  # [B, T, 1]
    prob = logp.exp()
    entropy = -(prob * logp).sum(-1)
    second_moment = (prob * logp.square()).sum(-1)
    rank = (logp > target_logp).sum(-1).float() + 1.0
    return TokenStats(-target_logp[..., 0], entropy, rank, (second_moment - entropy.square()).clamp(min=0.0))


def files_fingerprint(files: Sequence[str | os.PathLike]) -> str:
    """Identifies a checkpoint's weights (sha256 of the files that exist, in the order given; 16 hex digits), so
    that cached results and samples are never reused across retrainings."""
    digest = hashlib.sha256()
    for file in map(Path, files):
        if file.is_file():
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def sample_top_k(logits: torch.Tensor, top_k: int, generator: torch.Generator) -> torch.Tensor:
    """One draw per row of ``logits`` ``[..., V]`` (already divided by the temperature; ``-inf`` where a token
    is banned) among its ``top_k`` most likely tokens (0: all) → token ids ``[...]``."""
    if top_k and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = logits.softmax(-1).reshape(-1, logits.shape[-1])
    return torch.multinomial(probs, 1, generator=generator).reshape(logits.shape[:-1])


def first_difference(codes: torch.Tensor, reference: torch.Tensor) -> int:
    """First frame at which any of ``codes [N, K, T]`` differs from ``reference [K, T]`` (T if none)."""
    differs = (codes != reference[None]).any(dim=0).any(dim=0)  # [T]
    idx = torch.nonzero(differs)
    return int(idx[0]) if len(idx) else codes.shape[-1]


class TokenLM(abc.ABC):
    """A music language model over a token grid, as the engine sees it (see the module docstring).

    Subclasses set ``name``, ``fingerprint`` (identifies the weights: cached results are keyed by it)
    and ``device``.
    """

    family: str = "?"
    reads: str = "audio"  # or "midi": the runner then perturbs and tokenises scores instead of waveforms
    methods: tuple[str, ...] = ("exact",)
    name: str
    fingerprint: str
    device: torch.device

    # ---- the token grid ---------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def sample_rate(self) -> int:
        """Waveform rate (Hz) that [`encode`][lossprofile.models.base.TokenLM.encode] reads."""

    @property
    @abc.abstractmethod
    def frame_rate(self) -> float:
        """Frames per second along time (50 for MusicGen: one frame per 20 ms; 44100 / 512 = 86.13 for DAC at
        44.1 kHz). A float where the codec's hop does not divide a second; ``int(seconds * frame_rate)`` is then
        the number of whole frames in ``seconds``."""

    @property
    @abc.abstractmethod
    def num_codebooks(self) -> int:
        """K: parallel code streams per time step."""

    @property
    @abc.abstractmethod
    def cardinality(self) -> int:
        """Codes lie in ``[0, cardinality)``."""

    @property
    def hop_length(self) -> int:
        """Waveform samples per frame, exact (`samples_per_frame`)."""
        return samples_per_frame(self.sample_rate, self.frame_rate)

    @property
    def lookahead_frames(self) -> int:
        """Frames after frame t that the prediction of a code at frame t may read (under a delay pattern a code of
        codebook k is predicted after lower codebooks' codes of later frames). Scores that cut a piece into windows
        ([`modality.windows_alone`][lossprofile.modality.windows_alone]) give each window this many frames after it, so it sees
        what the full pass sees. The default, 0: frame t's codes depend on frames up to t only."""
        return 0

    @property
    def token_unit(self) -> str:
        """What one token stands for, in words (for axis labels and reports)."""
        return f"{1000 / self.frame_rate:g} ms frame"

    @property
    def loss_unit(self) -> str:
        """Unit of a loss averaged over tokens (a sequence's mean NLL, entropy): a codec family's tokens are codes,
        K per frame (a family over another kind of token names it)."""
        return "nats per code"

    @property
    def frame_loss_unit(self) -> str:
        """Unit of one frame's loss in the per-frame tables (``lossprofile score``): here the mean over the frame's
        K codes; a family whose frames hold a varying number of tokens sums them (and says so)."""
        return "nats per code"

    # ---- tokenizer ---------------------------------------------------------------------------
    @abc.abstractmethod
    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """Waveform ``[B, 1, S]`` at [`sample_rate`][lossprofile.models.base.TokenLM.sample_rate] → codes ``[B, K, T]`` (long)."""

    def encode_midi(self, midi: Any) -> tuple[torch.Tensor, np.ndarray]:
        """(codes ``[1, K, T]``, seconds of each token ``[T]``) of a score; only families with ``reads == "midi"``."""
        raise TypeError(f"{self.name} reads audio, not MIDI: render the score first")

    def quantization_residual(self, wav: np.ndarray) -> np.ndarray | None:
        """A codec family's quantisation leftovers of a waveform ``[S]`` (its encoder and quantizer only, no LM
        pass): L2 norms ``[K + 1, T]`` of the residual entering each residual-VQ level and of the one left after the
        last (row k + 1: the distance from level k's input to its codeword). The default, None: the family has no
        such residual (a model over MIDI tokens, a tokenizer that is not a residual VQ); its ``quant_residual_*``
        statistics are NaN."""
        return None

    def encode_variants(self, clean: np.ndarray, variants: Sequence[np.ndarray]) -> torch.Tensor:
        """Codes ``[1 + N, K, T]`` of ``clean [S]`` and each variant ``[S]``.

        The default encodes each waveform alone; a family may reuse the clean encoding where a
        variant did not change (MusicGen's spliced EnCodec does).
        """
        return self.encode_each([clean, *variants])

    def encode_pieces(self, pieces: Sequence[tuple[np.ndarray, Sequence[np.ndarray]]]) -> list[torch.Tensor]:
        """[`encode_variants`][lossprofile.models.base.TokenLM.encode_variants] of several pieces (each a clean ``[S]`` and its variants), a list of codes
        ``[1 + N_i, K, T_i]``. The default encodes piece by piece; a family whose tokenizer is bound by kernel
        launches on a GPU may batch across pieces (MusicGen's EnCodec does), equal to piece by piece up to
        float rounding."""
        return [self.encode_variants(clean, variants) for clean, variants in pieces]

    def encode_each(self, wavs: Sequence[np.ndarray]) -> torch.Tensor:
        """Waveforms (each ``[S]``) → codes ``[N, K, T]``, one waveform per call.

        Batched convolutions round differently from unbatched ones, and a tiny change in a latent can
        flip a quantised code; encoding one at a time makes a piece's codes independent of what it was
        batched with.
        """
        out = []
        for wav in wavs:
            x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))[None, None]
            if self.device.type == "cuda":
                x = x.pin_memory().to(self.device, non_blocking=True)
            out.append(self.encode(x))
        return torch.cat(out)

    # ---- likelihood --------------------------------------------------------------------------
    @abc.abstractmethod
    def token_statistics(self, codes: torch.Tensor, prompt: str | Sequence[str] | None = None,
                         method: str = "exact") -> TokenStats:
        """[`TokenStats`][lossprofile.models.base.TokenStats] ``[B, K, T]`` (CPU, fp32) of codes ``[B, K, T]`` under the model's own factorization."""

    def token_nll(self, codes: torch.Tensor, prompt: str | Sequence[str] | None = None,
                  method: str = "exact") -> torch.Tensor:
        """Negative log-likelihood (nats) of every code given everything before it: ``[B, K, T]``."""
        return self.token_statistics(codes, prompt, method).nll

    def token_log_probs(self, codes: torch.Tensor, prompt: str | Sequence[str] | None = None) -> torch.Tensor:
        """Log-probabilities ``[B, K, T, V]`` (CPU, fp32): entry ``[b, k, t]`` is the model's predictive distribution
        for code ``codes[b, k, t]`` under its own factorization (the distribution [`token_statistics`][lossprofile.models.base.TokenLM.token_statistics] reads).
        Optional: a family that does not provide it cannot take part in two-model scores."""
        raise NotImplementedError(f"{type(self).__name__} does not expose its predictive distributions")

    def shared_steps(self, codes: torch.Tensor) -> int:
        """Decoder steps whose inputs are identical in every row of ``codes [N, K, T]`` (row 0 the reference).

        The default shares nothing; a family whose step ``s`` reads codes before frame ``s`` returns
        the first differing frame (plus its own offsets).
        """
        return 0

    def shared_prefix_statistics(self, codes: torch.Tensor, shared_steps: int,
                                 prompt: str | Sequence[str] | None = None,
                                 group_sizes: Sequence[int] | None = None) -> TokenStats:
        """Exact statistics ``[B, K, T]`` of codes whose first ``shared_steps`` decoder steps are identical.

        ``group_sizes``: the rows are consecutive groups of these sizes (several pieces, each with its
        variants) and only the rows of one group share their prefix; None: one group. The default scores
        every row in full; a family with a KV cache runs each group's shared steps once.
        """
        return self.token_statistics(codes, prompt)

    # ---- generation ----------------------------------------------------------------------------
    def generate(self, num_samples: int, length: int, top_k: int = 250, temperature: float = 1.0, seed: int = 0,
                 prompt: str | Sequence[str] | None = None) -> torch.Tensor:
        """Sample codes ``[num_samples, K, length]`` (CPU, long) from the model's own factorization: ``length`` steps
        of the code grid (frames; tokens for a family over MIDI), at most ``top_k`` candidates per code (0: all),
        ``temperature`` on the logits, reproducible under ``seed``; ``prompt`` conditions a text-conditioned family
        (one that takes none refuses a prompt). Optional: a family that cannot sample raises."""
        raise NotImplementedError(f"{type(self).__name__} does not generate")

    def decode(self, codes: torch.Tensor) -> Any:
        """Codes ``[B, K, T]`` → the family's input form: waveforms ``[B, 1, S]`` (float32, CPU) at
        [`sample_rate`][lossprofile.models.base.TokenLM.sample_rate] when ``reads == "audio"``, a list of ``B`` standard MIDI files (bytes) when
        ``reads == "midi"``. Optional: a family without a decoder raises."""
        raise NotImplementedError(f"{type(self).__name__} does not decode")

    def batch_size(self, num_frames: int, default: int = 8) -> int:
        """Sequences of ``num_frames`` tokens per forward pass (the default; GPU families size it by memory)."""
        return default

    def forward_flops_per_step(self, steps: int) -> float | None:
        """Forward FLOPs of one step at sequence length ``steps`` (None where the family does not say)."""
        return None

    def check_codes(self, codes: Any) -> torch.Tensor:
        """``codes`` as a long tensor ``[B, K, T]`` on `device`; a clear error when they do not fit the model."""
        codes = torch.as_tensor(codes)
        if codes.ndim != 3 or codes.shape[1] != self.num_codebooks:
            raise ValueError(f"codes must be [B, {self.num_codebooks}, T], got shape {tuple(codes.shape)}")
        if codes.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise ValueError(f"codes must be integer, got {codes.dtype}")
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.cardinality):
            raise ValueError(f"codes must lie in [0, {self.cardinality}), got [{codes.min()}, {codes.max()}]")
        return codes.long().to(self.device)
