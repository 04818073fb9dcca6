"""Train the embedded tiny MusicGen: corpus, codec, codes, language model, export. Resumable.

Run ``lossprofile tiny-model`` (``make tiny-model``). Each stage keeps its state in
``--work`` (default ``build/tiny-model``) and checkpoints often, so an interrupted run
continues where it stopped and gives the same weights as an uninterrupted one: every
random draw of a step comes from a generator seeded by ``(seed, stage, step)``.

1. corpus: :mod:`lossprofile.data.corpus` renders the training corpus (music21 scores, arranged).
2. codec: EnCodec's SEANet encoder/decoder with residual VQ, trained with a waveform L1,
   multi-resolution log-STFT and a pitch-sensitive spectral term (high-resolution magnitudes
   from 50 Hz to 4 kHz, where harmonics decide the pitch), EMA codebooks initialised by
   k-means. No adversarial loss: cheaper, and the LM needs codes that keep pitch and
   loudness, not a perfect waveform.
3. codes: the codec encodes every training piece once.
4. lm: MusicGen's decoder on the codes with the delay pattern, teacher-forced with
   transformers' own MusicGen loss, conditioned on the pieces' text descriptions through a
   one-layer T5 with condition dropout, so the null condition (unconditional scoring) is
   learned too.
5. export: an ordinary ``MusicgenForConditionalGeneration`` checkpoint (config.json +
   model.safetensors in fp16 + tokenizer), the *base* model, in ``build/tiny-model/base``.
6. finish: the base model's LM trained on for 600 steps (:data:`~lossprofile.embedded.recipe.FINISH`, on the CPU about 20
   minutes) on a pool of 300 training pieces, half of the crops from 120 texture clouds
   (:func:`lossprofile.data.corpus.texture_cloud`: dense SoundFont effects and noisy hits that never
   repeat), exported to ``lib/lossprofile/checkpoints/tiny`` and loaded by ``load_model("tiny")``
   through the same ``from_pretrained`` call as the hub models.

Deterministic under ``--seed`` on a given machine and torch build.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

import pandas as pd
import transformers

from .. import audio
from ..data import corpus, datasets
from ..io import atomic_path
from ..models import ModelLoadError
from ..models.hf import quiet_transformers
from ..models.loading import resolve
from ..models.musicgen import delay
from ..models.musicgen.architecture import build_model, kmeans_codebooks, musicgen_config
from ..paths import BUILD_DIR
from .recipe import FINISH, FINISH_POOL, TINY_ARCH, Recipe  # noqa: F401  (re-exported)

WORK_DIR = BUILD_DIR / "tiny-model"
BASE_DIR = WORK_DIR / "base"  # the model of stages 1-5, which the finishing stage (and the study's continued variants) start from


# ---- text conditioning vocabulary ---------------------------------------------------------
def build_tokenizer(descriptions: list[str]):
    """A word-level tokenizer over the training descriptions, saved like T5's (pad=0, eos=1)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = sorted({w for d in descriptions for w in d.lower().split()})
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


# ---- checkpoints ---------------------------------------------------------------------------
def save_state(path: Path, state: dict) -> None:
    """Write ``state`` atomically (an interrupted save never leaves a broken checkpoint)."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_state(path: Path) -> dict | None:
    return torch.load(path, map_location="cpu", weights_only=False) if path.exists() else None


def step_rng(seed: int, stage: int, step: int) -> np.random.Generator:
    """The generator of one training step: resuming at ``step`` draws exactly what an unbroken run draws."""
    return np.random.default_rng([seed, stage, step])


# ---- codec -------------------------------------------------------------------------------
def stft_loss(x: torch.Tensor, y: torch.Tensor, sizes=(256, 512, 1024, 2048)) -> torch.Tensor:
    """Multi-resolution L1 distance of log and linear magnitude spectra; x, y ``[B, S]`` (a distance for reports)."""
    loss = x.new_zeros(())
    for n in sizes:
        win = torch.hann_window(n, device=x.device)
        X = torch.stft(x, n, n // 4, window=win, return_complex=True).abs()
        Y = torch.stft(y, n, n // 4, window=win, return_complex=True).abs()
        loss = loss + (torch.log(X + 1e-5) - torch.log(Y + 1e-5)).abs().mean() + (X - Y).abs().mean()
    return loss / len(sizes)


def spectral_loss(y: torch.Tensor, x: torch.Tensor, sizes=(512, 1024, 2048, 4096), log_weight: float = 0.1
                  ) -> torch.Tensor:
    """The codec's training loss: spectral convergence plus a little log-magnitude L1, at several resolutions.

    Spectral convergence (the relative Frobenius error of the magnitudes) is dominated by the
    strongest partials, so it asks for the right pitches before the right noise floor; the 4096
    window resolves partials a semitone apart down to the bass. A waveform L1 term is left out
    on purpose: it cannot be met without the original phase and pulls a young decoder towards
    noise with the right envelope. y, x ``[B, S]``.
    """
    loss = x.new_zeros(())
    for n in sizes:
        win = torch.hann_window(n, device=x.device)
        X = torch.stft(x, n, n // 4, window=win, return_complex=True).abs()
        Y = torch.stft(y, n, n // 4, window=win, return_complex=True).abs()
        loss = loss + (X - Y).norm() / (X.norm() + 1e-7) + log_weight * (torch.log(X + 1e-4) - torch.log(Y + 1e-4)).abs().mean()
    return loss / len(sizes)


class EmaRVQ:
    """Residual VQ over the codec's own codebook buffers, trained with EMA updates."""

    def __init__(self, quantizer, decay: float = 0.99):
        self.quantizer = quantizer
        self.layers = [layer.codebook for layer in quantizer.layers]
        self.decay = decay

    @torch.no_grad()
    def kmeans_init(self, latents: torch.Tensor, iters: int = 15, seed: int = 0) -> None:
        """latents ``[N, D]``: k-means each stage on the residual left by the previous ones
        (:func:`lossprofile.models.musicgen.architecture.kmeans_codebooks`)."""
        kmeans_codebooks(self.quantizer, latents, iters, seed)

    def __call__(self, z: torch.Tensor, train: bool, generator: torch.Generator | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """z ``[B, D, T]`` → (straight-through quantized ``[B, D, T]``, commitment loss)."""
        flat = z.permute(0, 2, 1).reshape(-1, z.shape[1])
        residual = flat
        quantized = torch.zeros_like(flat)
        for cb in self.layers:
            r = residual.detach()
            idx = torch.cdist(r, cb.embed).argmin(1)
            q = cb.embed[idx]
            if train:
                self._ema_update(cb, r, idx, generator)
            quantized = quantized + q
            residual = residual - q
        commit = F.mse_loss(flat, quantized.detach())
        st = flat + (quantized - flat).detach()
        return st.reshape(z.shape[0], z.shape[2], -1).permute(0, 2, 1), commit

    @torch.no_grad()
    def _ema_update(self, cb, r: torch.Tensor, idx: torch.Tensor, generator: torch.Generator | None) -> None:
        n = cb.embed.shape[0]
        onehot_counts = torch.bincount(idx, minlength=n).float()
        sums = torch.zeros_like(cb.embed).index_add_(0, idx, r)
        cb.cluster_size.mul_(self.decay).add_(onehot_counts, alpha=1 - self.decay)
        cb.embed_avg.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        size = cb.cluster_size + 1e-5
        cb.embed.copy_(cb.embed_avg / size[:, None])
        dead = cb.cluster_size < 0.02
        if dead.any():  # restart unused codes on current residuals
            pick = torch.randint(0, len(r), (int(dead.sum()),), generator=generator)
            cb.embed[dead] = r[pick]
            cb.embed_avg[dead] = r[pick]
            cb.cluster_size[dead] = 1.0


@torch.no_grad()
def data_dependent_init(encoder, x: torch.Tensor) -> None:
    """Rescale each encoder conv, in forward order, to zero-mean unit-variance outputs on ``x``.

    Audio enters at about -20 dBFS and default initialisation shrinks it further, so a
    freshly built encoder's latents barely vary with the input and VQ collapses onto a
    few codes. Weight-norm gains and biases are set from data (Salimans & Kingma, 2016).
    """
    convs = [m for m in encoder.modules() if isinstance(m, torch.nn.Conv1d)]
    for conv in convs:
        captured = {}
        handle = conv.register_forward_hook(lambda mod, inp, out: captured.setdefault("out", out))
        encoder(x)
        handle.remove()
        out = captured["out"]
        mean, std = out.mean(dim=(0, 2)), out.std(dim=(0, 2)) + 1e-6
        gain = conv.parametrizations.weight.original0 if hasattr(conv, "parametrizations") else conv.weight
        gain.div_(std.view(-1, *[1] * (gain.ndim - 1)))
        conv.bias.sub_(mean).div_(std)


def random_segments(wavs: list[np.ndarray], batch: int, length: int, rng: np.random.Generator) -> torch.Tensor:
    """``batch`` random ``length``-sample stretches of random waveforms → ``[batch, length]``."""
    out = np.stack([w[s : s + length] for w in (wavs[i] for i in rng.integers(0, len(wavs), batch))
                    for s in [int(rng.integers(0, w.size - length + 1))]])
    return torch.from_numpy(out)


CODEC_LOSSES = {
    "spectral": lambda y, x: spectral_loss(y[:, 0], x[:, 0]),
    "previous": lambda y, x: F.l1_loss(y, x) + stft_loss(y[:, 0], x[:, 0]),
}


def train_codec(codec, wavs: list[np.ndarray], steps_ae: int, steps_vq: int, batch: int = 8,
                seconds: float = 0.5, lr: float = 5e-4, seed: int = 0, checkpoint: Path | None = None,
                checkpoint_every: int = 100, progress: bool = True, betas=(0.8, 0.99),
                loss: str = "spectral") -> list[dict]:
    """Train an autoencoder, initialise the codebooks by k-means, then fit codebooks and decoder to the codes.

    1. ``steps_ae`` steps: encoder and decoder without quantization (this is where pitch is learned).
    2. k-means of each residual-VQ stage on 16,000 latent frames.
    3. ``steps_vq`` steps: the encoder is frozen, the codebooks follow its latents by EMA and the
       decoder learns to decode quantized latents.

    Why (measured on held-out piano, per-frame pitch-class correlation of the reconstruction):
    with Adam at 2e-3 and beta1 = 0.5, or with the ``previous`` loss, the decoder learns noise
    with the music's envelope and no partials for hundreds of steps (correlation ~0); the
    ``spectral`` loss at 5e-4, betas (0.8, 0.99) reaches 0.64 after 500 autoencoder steps. A
    32-dimensional latent quantized by 4 x 1024 codes keeps it (0.62 right after k-means, 10 dB
    quantization SNR). Training the encoder through the quantizer with a commitment loss instead
    collapsed its latents within 100 steps (correlation 0.04); with the encoder frozen the
    correlation keeps rising (0.66 after 300 steps).

    With ``checkpoint`` the state is saved every ``checkpoint_every`` steps and a run resumes
    from it (same result as an unbroken run).
    """
    length = int(seconds * 32000)
    reconstruction = CODEC_LOSSES[loss]
    codec.train()
    opt = torch.optim.Adam([{"params": codec.encoder.parameters()}, {"params": codec.decoder.parameters()}],
                           lr=lr, betas=tuple(betas))
    rvq = EmaRVQ(codec.quantizer, decay=0.99)
    state = load_state(checkpoint) if checkpoint else None
    if state is None:
        data_dependent_init(codec.encoder, random_segments(wavs, 16, length, step_rng(seed, 0, 0))[:, None])
        start, log, spent = 0, [], 0.0
    else:
        codec.load_state_dict(state["codec"])
        if "opt" in state:  # a finished codec may be kept without its optimiser
            opt.load_state_dict(state["opt"])
        start, log, spent = state["step"], state["log"], state.get("seconds", 0.0)
    resumed_at = time.time()
    total = steps_ae + steps_vq
    for step in tqdm(range(start, total), desc="codec", unit="step", initial=start, total=total, disable=not progress):
        rng = step_rng(seed, 1, step)
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        if step == steps_ae:
            # k-means needs many more latents than codes: 64 stretches of 5 s give 16,000 frames
            with torch.no_grad():
                x = random_segments(wavs, 64, min(5 * 32000, min(w.size for w in wavs)), rng)[:, None]
                z = torch.cat([codec.encoder(x[i : i + 8]) for i in range(0, len(x), 8)])
                rvq.kmeans_init(z.permute(0, 2, 1).reshape(-1, z.shape[1]), seed=seed)
        x = random_segments(wavs, batch, length, rng)[:, None]  # [B, 1, S]
        commit = x.new_zeros(())
        if step < steps_ae:
            z = codec.encoder(x)
        else:
            with torch.no_grad():
                z, commit = rvq(codec.encoder(x), train=True, generator=gen)  # commit: a diagnostic only
        y = codec.decoder(z)[..., : x.shape[-1]]
        rec = reconstruction(y, x)
        opt.zero_grad()
        rec.backward()
        torch.nn.utils.clip_grad_norm_(codec.parameters(), 1.0)
        opt.step()
        seconds = spent + time.time() - resumed_at  # wall time of this stage over every run that worked on it
        if step % 25 == 0 or step == total - 1:
            log.append(dict(stage="codec", step=step, rec=rec.item(), commit=commit.item(), seconds=round(seconds, 1)))
        if checkpoint and ((step + 1) % checkpoint_every == 0 or step == total - 1):
            save_state(checkpoint, dict(step=step + 1, codec=codec.state_dict(), opt=opt.state_dict(), log=log,
                                        seconds=seconds))
    codec.eval()
    return log


def codec_fingerprint(codec) -> str:
    """Identifies a codec's codebooks (a retrained codec invalidates cached codes)."""
    import hashlib

    digest = hashlib.sha256()
    for layer in codec.quantizer.layers:
        digest.update(layer.codebook.embed.detach().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


class LazyList(Sequence):
    """``make(i)`` for ``i < length``, computed when asked for: the clouds render only if their codes are not cached."""

    def __init__(self, make, length: int):
        self.make, self.length = make, length

    def __getitem__(self, i):
        return self.make(i)

    def __len__(self) -> int:
        return self.length


@torch.no_grad()
def encode_cached(codec, pieces: list[str], wavs: list[np.ndarray], cache: Path) -> list[torch.Tensor]:
    """Codes ``[K, T]`` (int16) of each waveform, encoded one at a time; ``cache`` keeps them by piece name."""
    bandwidth = max(codec.config.target_bandwidths)
    fingerprint = codec_fingerprint(codec)
    state = load_state(cache)
    if state is None or state["codec"] != fingerprint:
        state = dict(codec=fingerprint, codes={})
    missing = [i for i, name in enumerate(pieces) if name not in state["codes"]]
    for n, i in enumerate(tqdm(missing, desc="encoding", unit="piece")):
        x = torch.from_numpy(wavs[i])[None, None]
        state["codes"][pieces[i]] = codec.encode(x, bandwidth=bandwidth).audio_codes[0, 0].to(torch.int16)
        if (n + 1) % 100 == 0 or n == len(missing) - 1:
            save_state(cache, state)
    return [state["codes"][name] for name in pieces]


# ---- language model ----------------------------------------------------------------------
def lm_parameters(model) -> list[torch.nn.Parameter]:
    return [p for n, p in model.named_parameters() if not n.startswith("audio_encoder.")]


def resolve_precision(precision: str, device: str = "cpu") -> str:
    """``auto`` → ``bf16`` on a GPU or where oneDNN has bf16 kernels for this CPU (AVX-512 BF16 or AMX), else ``fp32``."""
    if precision != "auto":
        return precision
    if device != "cpu":
        return "bf16"
    return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"


def loop_crop(codes: torch.Tensor, crop_frames: int, rng: np.random.Generator, min_frames: int = 50,
              max_frames: int = 400) -> torch.Tensor:
    """A crop of looped music: a 1–8 s stretch of a piece's codes ``[K, T]`` played again and again → ``[K, crop_frames]``.

    The same as encoding a loop cut on the frame grid, without the codec's tiny differences at the
    seams: in rendered repeats (ostinati, verses) the codes rarely repeat exactly (3% of frames
    had an exact earlier match, measured), so a small LM gets little signal that copying what it
    heard pays; looped music gives it that signal.
    """
    length = int(rng.integers(min_frames, min(max_frames, codes.shape[-1]) + 1))
    start = int(rng.integers(0, codes.shape[-1] - length + 1))
    loop = codes[:, start : start + length]
    return loop.repeat(1, -(-crop_frames // length))[:, :crop_frames]


def init_decoder(model, seed: int) -> None:
    """Re-initialise MusicGen's decoder as PyTorch does by default: embeddings N(0, 1), linear weights N(0, 1/fan_in).

    transformers initialises every weight with N(0, 0.02), made for wide text models. In a small
    MusicGen that leaves the code embeddings 40x smaller than the sinusoidal positions and the
    attention logits near zero, and the model never forms the attention that copies what it
    heard: on a synthetic copy task (random codes looped every 10–40 frames, 2 layers x 128) the
    loss stayed at log(64) for 600 steps, and fell from 4.2 to 1.8 nats with this initialisation.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.decoder.modules():
            if isinstance(module, torch.nn.Embedding):
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator))
            elif isinstance(module, torch.nn.Linear):
                fan_in = module.weight.shape[1]
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * fan_in ** -0.5)
                if module.bias is not None:
                    module.bias.zero_()


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type


def train_lm(model, tokenizer, codes: list[torch.Tensor], descriptions: list[str], steps: int,
             batch: int = 8, crop_frames: int = 760, lr: float = 2e-3, cond_dropout: float = 0.5,
             seed: int = 0, checkpoint: Path | None = None, checkpoint_every: int = 100,
             progress: bool = True, precision: str = "fp32", loop_crops: float = 0.0,
             device: str = "cpu", piece_weights: np.ndarray | None = None,
             loopable: np.ndarray | None = None) -> list[dict]:
    """Teacher-forced training on delayed codes with transformers' own MusicGen loss.

    Crops start anywhere in a piece (pieces drawn in proportion to their length, or to
    ``piece_weights``); a share ``loop_crops`` of them are loops (:func:`loop_crop`) of the
    pieces marked ``loopable`` (default: all). A dropped condition is MusicGen's
    null condition (the text fully masked). ``precision="bf16"`` runs the forward pass under
    autocast (weights, optimiser and loss stay fp32). Resumable from ``checkpoint``, also on
    another device (``device="cuda"`` trains on a GPU; the checkpoint is saved for any device).
    """
    device = torch.device(device)
    model.to(device)
    params = lm_parameters(model)
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), weight_decay=0.01)
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))
    special = model.config.decoder.pad_token_id
    lengths = np.array([max(1, c.shape[-1] - crop_frames + 1) for c in codes], dtype=float)
    weights = lengths if piece_weights is None else np.asarray(piece_weights, dtype=float)
    weights = weights / weights.sum()
    loopable = np.ones(len(codes), bool) if loopable is None else np.asarray(loopable, bool)
    state = load_state(checkpoint) if checkpoint else None
    start, log, spent = 0, [], 0.0
    codec_id = codec_fingerprint(model.audio_encoder)
    if state is not None and state.get("codec") != codec_id:
        raise RuntimeError(f"{checkpoint}: this language-model checkpoint was trained on another codec's codes; "
                           "delete it (and the codes cache) to train the language model again")
    schedule = dict(steps=steps, batch=batch, crop_frames=crop_frames, lr=lr, cond_dropout=cond_dropout, seed=seed,
                    loop_crops=loop_crops)
    if state is not None and state.get("schedule", schedule) != schedule:
        raise RuntimeError(f"{checkpoint}: this checkpoint was trained with {state['schedule']}, not {schedule}; "
                           "delete it to train the language model with the new settings")
    if state is not None:
        model.load_state_dict(state["model"])
        if "opt" in state:  # a finished model may be kept without its optimiser
            opt.load_state_dict(state["opt"])  # moves the moments to the parameters' device
            sched.load_state_dict(state["sched"])
        start, log, spent = state["step"], state["log"], state.get("seconds", 0.0)
    resumed_at = time.time()
    model.train()
    model.audio_encoder.eval()
    for step in tqdm(range(start, steps), desc="language model", unit="step", initial=start, total=steps,
                     disable=not progress):
        rng = step_rng(seed, 4, step)
        torch.manual_seed(int(rng.integers(2**62)))  # dropout (in T5) draws the same after a resume
        picks = rng.choice(len(codes), size=batch, p=weights)
        crops = []
        for i in picks:
            c = codes[i].long()
            if rng.random() < loop_crops and loopable[i]:
                crops.append(loop_crop(c, crop_frames, rng))
                continue
            s = int(rng.integers(0, max(1, c.shape[-1] - crop_frames + 1)))
            crop = c[:, s : s + crop_frames]
            if crop.shape[-1] < crop_frames:  # a short piece: pad with the special token, which the loss ignores
                crop = F.pad(crop, (0, crop_frames - crop.shape[-1]), value=special)
            crops.append(crop)
        x = torch.stack(crops).to(device)  # [B, K, T]
        texts = [descriptions[i] for i in picks]
        tok = tokenizer(texts, return_tensors="pt", padding=True).to(device)
        keep = torch.from_numpy(rng.random(batch) >= cond_dropout).long()[:, None].to(device)
        mask = tok["attention_mask"] * keep  # dropped condition == MusicGen's null condition
        enc = model.text_encoder(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"])
        labels = delay.delay(x, special).transpose(1, 2)  # [B, S, K]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = model(encoder_outputs=(enc.last_hidden_state,), attention_mask=mask, labels=labels)
        opt.zero_grad()
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        seconds = spent + time.time() - resumed_at
        if step % 25 == 0 or step == steps - 1:
            log.append(dict(stage="lm", step=step, loss=out.loss.item(), lr=sched.get_last_lr()[0],
                            seconds=round(seconds, 1), device=device_name(device)))
        if checkpoint and ((step + 1) % checkpoint_every == 0 or step == steps - 1):
            save_state(checkpoint, dict(step=step + 1, model=model.state_dict(), opt=opt.state_dict(),
                                        sched=sched.state_dict(), log=log, seconds=seconds,
                                        codec=codec_id, schedule=schedule))
    model.eval()
    model.to("cpu")
    return log


# ---- the whole recipe ----------------------------------------------------------------------
def load_corpus(split: str = "train"):
    """The rendered corpus's pieces of ``split`` (building what is missing) → (table, waveforms)."""
    folder = datasets.DATA_DIR / "rendered" / "training"
    table = corpus.build(folder, splits=("train", "heldout"))
    table = table[table["split"] == split].reset_index(drop=True)
    wavs = [audio.load_audio(folder / f, 32000) for f in tqdm(table["file"], desc="loading corpus", unit="piece")]
    return table, wavs


def codes_ready(work: Path, codec_steps: int, codec_checkpoint: Path | None = None, codes_cache: Path | None = None):
    """The training table saved in ``work`` if the codec finished its ``codec_steps`` and every piece's codes are cached, else None.

    Then the language model trains without the rendered corpus: copy the work folder (codec.pt,
    codes.pt, pieces.json: about 50 MB) to a GPU machine and run the same command there.
    """
    pieces, codec, codes = work / "pieces.json", load_state(codec_checkpoint or work / "codec.pt"), codes_cache or work / "codes.pt"
    if not pieces.exists() or codec is None or not codes.exists():
        return None
    table = pd.DataFrame(json.loads(pieces.read_text()))
    cached = load_state(codes)["codes"]
    if codec["step"] < codec_steps or not set(table["piece"]) <= set(cached):
        return None
    return table


def finish_recipe(base: Recipe) -> Recipe:
    """The finishing stage's recipe: continue ``base``'s model (saved in BASE_DIR) with FINISH."""
    from dataclasses import replace

    return replace(base, lm_start="base", **FINISH)


def pool_mask(n_pieces: int, pool: int) -> np.ndarray:
    """``pool`` of ``n_pieces`` rows spread evenly over the (name-sorted) training table."""
    keep = np.zeros(n_pieces, bool)
    keep[np.linspace(0, n_pieces - 1, min(pool, n_pieces)).astype(int)] = True
    return keep


def start_model(recipe: Recipe, base_dir: Path = BASE_DIR):
    """The model a continued recipe starts from (``recipe.lm_start``: ``"base"``, in ``base_dir``, or a model name) in fp32, and its tokenizer."""
    if recipe.lm_start == "base":
        if not (base_dir / "config.json").exists():
            raise ModelLoadError(f"{base_dir}: the base model is missing; `make tiny-model` trains it first")
        path = str(base_dir)
    else:
        path = resolve(recipe.lm_start)[1]
    with quiet_transformers():
        model = transformers.MusicgenForConditionalGeneration.from_pretrained(path, dtype=torch.float32)
        tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    if {k: getattr(model.config.decoder, k) for k in ("num_hidden_layers", "hidden_size")} != {
            "num_hidden_layers": recipe.arch["num_hidden_layers"], "hidden_size": recipe.arch["hidden_size"]}:
        raise ValueError(f"{path}: its decoder is not the recipe's arch {recipe.arch}")
    return model, tokenizer


def piece_weights(codes: list[torch.Tensor], is_cloud: np.ndarray, recipe: Recipe) -> np.ndarray | None:
    """Sampling weights of the LM's pieces: by length (None), or with ``recipe.cloud_share`` of them on the clouds."""
    if recipe.cloud_share is None or not is_cloud.any():
        return None
    lengths = np.array([max(1, c.shape[-1] - recipe.lm_crop_frames + 1) for c in codes], dtype=float)
    return np.where(is_cloud, recipe.cloud_share * lengths / lengths[is_cloud].sum(),
                    (1 - recipe.cloud_share) * lengths / lengths[~is_cloud].sum())


def train_model(recipe: Recipe, work: Path, out: Path | None, table=None, wavs=None, progress: bool = True,
                codec_checkpoint: Path | None = None, codes_cache: Path | None = None, device: str = "cpu",
                base_dir: Path = BASE_DIR):
    """Run (or resume) every stage of ``recipe`` in ``work``; export to ``out`` if given. Returns (model, log).

    ``codec_checkpoint`` and ``codes_cache`` (default: in ``work``) let several recipes share one
    trained codec and its codes. ``device`` is where the language model trains (the codec
    always trains on the CPU here). A recipe with ``lm_start="base"`` continues the model saved
    in ``base_dir`` instead of training a new one.
    """
    work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(recipe.seed)
    started = time.time()
    if table is None:
        table = codes_ready(work, recipe.codec_ae_steps + recipe.codec_vq_steps, codec_checkpoint, codes_cache)
        wavs = None
    if table is None:
        table, wavs = load_corpus("train")
        (work / "pieces.json").write_text(json.dumps(table[["piece", "description", "tags"]].to_dict("list")))
    descriptions = list(table["description"])
    cloud_names, cloud_midis, cloud_descriptions, cloud_levels = corpus.cloud_pieces(recipe.cloud_pieces, recipe.seed)
    if recipe.lm_start:  # its codec, tokenizer and weights; only the language model trains on
        model, tokenizer = start_model(recipe, base_dir)
        codec_log = []
    else:
        config = musicgen_config(**recipe.arch)
        model = build_model(config, seed=recipe.seed)
        if recipe.lm_init == "pytorch":
            init_decoder(model, recipe.seed)
        tokenizer = build_tokenizer(descriptions + cloud_descriptions + ["classical piano", "generated"])
        if len(tokenizer) > config.text_encoder.vocab_size:
            raise ValueError(f"{len(tokenizer)} words do not fit the text encoder's {config.text_encoder.vocab_size}")
        codec_log = train_codec(model.audio_encoder, wavs, recipe.codec_ae_steps, recipe.codec_vq_steps,
                                recipe.codec_batch, recipe.codec_seconds, recipe.codec_lr, recipe.seed,
                                checkpoint=codec_checkpoint or work / "codec.pt",
                                checkpoint_every=recipe.checkpoint_every, progress=progress,
                                betas=recipe.codec_betas, loss=recipe.codec_loss)
    codes = encode_cached(model.audio_encoder, list(table["piece"]), wavs, codes_cache or work / "codes.pt")
    is_cloud = np.zeros(len(codes), bool)
    if recipe.cloud_pieces:  # their own cache in this work folder: a shared corpus cache stays the corpus's
        rendered = LazyList(lambda i: corpus.render_cloud(cloud_midis[i], cloud_levels[i]), len(cloud_names))
        codes = codes + encode_cached(model.audio_encoder, cloud_names, rendered, work / "clouds.pt")
        descriptions = descriptions + cloud_descriptions
        is_cloud = np.r_[is_cloud, np.ones(len(cloud_names), bool)]
    lm_log = train_lm(model, tokenizer, codes, descriptions, recipe.lm_steps,
                      recipe.lm_batch, recipe.lm_crop_frames, recipe.lm_lr, recipe.cond_dropout, recipe.seed,
                      checkpoint=work / "lm.pt", checkpoint_every=recipe.checkpoint_every, progress=progress,
                      precision=resolve_precision(recipe.lm_precision, device), loop_crops=recipe.loop_crops,
                      device=device, piece_weights=piece_weights(codes, is_cloud, recipe),
                      loopable=~is_cloud)  # a looped cloud would be a repeating texture, which clouds are not
    stage_seconds = {stage: round(max([row.get("seconds", 0.0) for row in rows], default=0.0))
                     for stage, rows in (("codec", codec_log), ("lm", lm_log))}
    hours = sum(c.shape[-1] for c in codes) / model.config.audio_encoder.frame_rate / 3600
    summary = dict(recipe=asdict(recipe), lm_precision=resolve_precision(recipe.lm_precision, device),
                   train_pieces=len(table) + recipe.cloud_pieces,
                   train_hours=round(hours, 2), lm_device=lm_log[-1].get("device", "cpu") if lm_log else None,
                   stage_seconds=stage_seconds,
                   wall_seconds=sum(stage_seconds.values()), this_run_seconds=round(time.time() - started),
                   threads=torch.get_num_threads(), torch=torch.__version__, log=codec_log + lm_log)
    if out is not None:
        export(model, tokenizer, out, summary)
    return model, summary


def export(model, tokenizer, out: Path, summary: dict) -> None:
    """Save in MusicGen's hub format, weights in fp16 (they load as fp32), with the training log."""
    out.mkdir(parents=True, exist_ok=True)
    model.half().save_pretrained(out)
    model.float()
    tokenizer.save_pretrained(out)
    export_log(out, summary)


def finish_model(recipe: Recipe, work: Path, out: Path | None, device: str = "cpu", progress: bool = True):
    """Stage 6: continue the base model with :data:`FINISH` on the pool and the clouds (resumable in ``work/finish``)."""
    finish = finish_recipe(recipe)
    table = pd.DataFrame(json.loads((work / "pieces.json").read_text()))
    keep = pool_mask(len(table), FINISH_POOL)
    cache = work / "finish" / "codes.pt"
    cached = load_state(cache)
    wavs = None
    if cached is None or not set(table["piece"][keep]) <= set(cached["codes"]):
        table, all_wavs = load_corpus("train")  # the pool's codes through the base model's (fp16) codec
        keep = pool_mask(len(table), FINISH_POOL)
        wavs = [w for w, k in zip(all_wavs, keep) if k]
    return train_model(finish, work / "finish", out, table=table[keep].reset_index(drop=True), wavs=wavs,
                       progress=progress, codes_cache=cache, device=device, base_dir=work / "base")


def export_log(out: Path, summary: dict) -> None:
    (out / "training_log.json").write_text(json.dumps(summary, indent=1))
