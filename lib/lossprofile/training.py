"""Train the embedded tiny MusicGen: first its EnCodec codec, then the language model.

Run ``python -m lossprofile.training`` (``make tiny-model``). The result is an ordinary
``MusicgenForConditionalGeneration`` checkpoint (config.json + model.safetensors +
tokenizer) in ``lib/lossprofile/checkpoints/tiny``, loaded by ``load_model("tiny")``
through the same ``from_pretrained`` call as the hub models. Deterministic under
``--seed`` on a given machine and torch build.

Codec: SEANet encoder/decoder with residual VQ (as EnCodec), trained with an L1 +
multi-resolution log-STFT reconstruction loss and EMA codebooks (no adversarial loss:
cheaper, and the LM only needs informative codes). LM: MusicGen's decoder on the
codec's codes with the delay pattern, conditioned on short text descriptions through
a one-layer T5, with 30% condition dropout so the null condition is learned too.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import audio, datasets, delay
from .architecture import build_model, musicgen_config
from .models import TINY_DIR

TINY_ARCH = dict(
    num_hidden_layers=4, hidden_size=192, num_attention_heads=4, ffn_dim=768, cardinality=256,
    num_codebooks=4, codec_filters=8, codec_hidden=64, codec_lstm_layers=1, text_vocab=64, text_dim=64,
    text_layers=1, text_heads=4, text_ff=128, max_position_embeddings=1024,
)


# ---- text conditioning vocabulary ---------------------------------------------------------
def build_tokenizer(descriptions: list[str]):
    """A word-level tokenizer over the training descriptions, saved like T5's (pad=0, eos=1)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = sorted({w for d in descriptions for w in d.lower().split()})
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    from tokenizers import normalizers

    tok.normalizer = normalizers.Lowercase()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


# ---- codec -------------------------------------------------------------------------------
def stft_loss(x: torch.Tensor, y: torch.Tensor, sizes=(256, 512, 1024, 2048)) -> torch.Tensor:
    """Multi-resolution L1 distance of log-magnitude spectra; x, y ``[B, S]``."""
    loss = x.new_zeros(())
    for n in sizes:
        win = torch.hann_window(n, device=x.device)
        X = torch.stft(x, n, n // 4, window=win, return_complex=True).abs()
        Y = torch.stft(y, n, n // 4, window=win, return_complex=True).abs()
        loss = loss + (torch.log(X + 1e-5) - torch.log(Y + 1e-5)).abs().mean() + (X - Y).abs().mean()
    return loss / len(sizes)


class EmaRVQ:
    """Residual VQ over the codec's own codebook buffers, trained with EMA updates."""

    def __init__(self, quantizer, decay: float = 0.99):
        self.layers = [layer.codebook for layer in quantizer.layers]
        self.decay = decay

    @torch.no_grad()
    def kmeans_init(self, latents: torch.Tensor, iters: int = 15, seed: int = 0) -> None:
        """latents ``[N, D]``: k-means each stage on the residual left by the previous ones."""
        g = torch.Generator().manual_seed(seed)
        residual = latents.clone()
        for cb in self.layers:
            n = cb.embed.shape[0]
            centers = residual[torch.randperm(len(residual), generator=g)[:n]].clone()
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

    def __call__(self, z: torch.Tensor, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """z ``[B, D, T]`` → (straight-through quantized ``[B, D, T]``, commitment loss)."""
        flat = z.permute(0, 2, 1).reshape(-1, z.shape[1])
        residual = flat
        quantized = torch.zeros_like(flat)
        for cb in self.layers:
            r = residual.detach()
            idx = torch.cdist(r, cb.embed).argmin(1)
            q = cb.embed[idx]
            if train:
                self._ema_update(cb, r, idx)
            quantized = quantized + q
            residual = residual - q
        commit = F.mse_loss(flat, quantized.detach())
        st = flat + (quantized - flat).detach()
        return st.reshape(z.shape[0], z.shape[2], -1).permute(0, 2, 1), commit

    @torch.no_grad()
    def _ema_update(self, cb, r: torch.Tensor, idx: torch.Tensor) -> None:
        n = cb.embed.shape[0]
        onehot_counts = torch.bincount(idx, minlength=n).float()
        sums = torch.zeros_like(cb.embed).index_add_(0, idx, r)
        cb.cluster_size.mul_(self.decay).add_(onehot_counts, alpha=1 - self.decay)
        cb.embed_avg.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        size = cb.cluster_size + 1e-5
        cb.embed.copy_(cb.embed_avg / size[:, None])
        dead = cb.cluster_size < 0.02
        if dead.any():  # restart unused codes on current residuals
            pick = torch.randint(0, len(r), (int(dead.sum()),))
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
    out = np.stack([w[s : s + length] for w in (wavs[i] for i in rng.integers(0, len(wavs), batch))
                    for s in [int(rng.integers(0, w.size - length + 1))]])
    return torch.from_numpy(out)


def train_codec(codec, wavs: list[np.ndarray], steps_ae: int, steps_vq: int, batch: int = 8,
                seconds: float = 1.0, lr: float = 2e-3, seed: int = 0) -> list[dict]:
    """Autoencoder warm-up, k-means codebook init, then training through the quantizer."""
    rng = np.random.default_rng(seed)
    length = int(seconds * 32000)
    codec.train()
    opt = torch.optim.Adam([{"params": codec.encoder.parameters()}, {"params": codec.decoder.parameters()}],
                           lr=lr, betas=(0.5, 0.9))
    rvq = EmaRVQ(codec.quantizer, decay=0.9)
    data_dependent_init(codec.encoder, random_segments(wavs, 16, length, rng)[:, None])
    log = []
    for step in tqdm(range(steps_ae + steps_vq), desc="codec", unit="step"):
        if step == steps_ae:
            opt.param_groups[0]["lr"] = lr / 10  # a slower encoder lets the codebooks follow it
            with torch.no_grad():
                x = random_segments(wavs, 32, length, rng)[:, None]
                z = codec.encoder(x)
                rvq.kmeans_init(z.permute(0, 2, 1).reshape(-1, z.shape[1]), seed=seed)
        x = random_segments(wavs, batch, length, rng)[:, None]  # [B, 1, S]
        z = codec.encoder(x)
        commit = z.new_zeros(())
        if step >= steps_ae:
            z, commit = rvq(z, train=True)
        y = codec.decoder(z)[..., : x.shape[-1]]
        rec = F.l1_loss(y, x) + stft_loss(y[:, 0], x[:, 0])
        loss = rec + commit
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(codec.parameters(), 1.0)
        opt.step()
        if step % 25 == 0 or step == steps_ae + steps_vq - 1:
            log.append(dict(stage="codec", step=step, rec=rec.item(), commit=commit.item()))
    codec.eval()
    return log


# ---- language model ----------------------------------------------------------------------
def train_lm(model, tokenizer, codes: list[torch.Tensor], descriptions: list[str], steps: int,
             batch: int = 6, crop_frames: int = 760, lr: float = 1e-3, cond_dropout: float = 0.3,
             seed: int = 0) -> list[dict]:
    """Teacher-forced training on delayed codes with transformers' own MusicGen loss."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    params = [p for n, p in model.named_parameters() if not n.startswith("audio_encoder.")]
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), weight_decay=0.01)
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))
    special = model.config.decoder.pad_token_id
    model.train()
    model.audio_encoder.eval()
    log = []
    for step in tqdm(range(steps), desc="language model", unit="step"):
        picks = rng.integers(0, len(codes), batch)
        crops = []
        for i in picks:
            c = codes[i]
            s = int(rng.integers(0, c.shape[-1] - crop_frames + 1))
            crops.append(c[:, s : s + crop_frames])
        x = torch.stack(crops)  # [B, K, T]
        texts = [descriptions[i] for i in picks]
        tok = tokenizer(texts, return_tensors="pt", padding=True)
        keep = torch.from_numpy(rng.random(batch) >= cond_dropout).long()[:, None]
        mask = tok["attention_mask"] * keep  # dropped condition == MusicGen's null condition
        enc = model.text_encoder(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"])
        labels = delay.delay(x, special).transpose(1, 2)  # [B, S, K]
        out = model(encoder_outputs=(enc.last_hidden_state,), attention_mask=mask, labels=labels)
        opt.zero_grad()
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if step % 25 == 0 or step == steps - 1:
            log.append(dict(stage="lm", step=step, loss=out.loss.item(), lr=sched.get_last_lr()[0]))
    model.eval()
    return log


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=TINY_DIR)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--codec-ae-steps", type=int, default=500)
    p.add_argument("--codec-vq-steps", type=int, default=1000)
    p.add_argument("--lm-steps", type=int, default=1800)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    started = time.time()

    table = datasets.build_training_set()
    train = table[table["split"] == "train"].reset_index(drop=True)
    folder = datasets.DATA_DIR / "rendered" / "training"
    wavs = [audio.load_audio(folder / f, 32000) for f in train["file"]]
    config = musicgen_config(**TINY_ARCH)
    model = build_model(config, seed=args.seed)
    tokenizer = build_tokenizer(list(table["description"]) + ["classical piano", "generated"])
    if len(tokenizer) > config.text_encoder.vocab_size:
        raise ValueError(f"{len(tokenizer)} words do not fit the text encoder's {config.text_encoder.vocab_size}")

    log = train_codec(model.audio_encoder, wavs, args.codec_ae_steps, args.codec_vq_steps, seed=args.seed)
    codec_seconds = time.time() - started
    with torch.no_grad():
        codes = [model.audio_encoder.encode(torch.from_numpy(w)[None, None], bandwidth=max(
            config.audio_encoder.target_bandwidths)).audio_codes[0, 0] for w in wavs]
    log += train_lm(model, tokenizer, codes, list(train["description"]), args.lm_steps, seed=args.seed)

    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)
    summary = dict(seed=args.seed, train_pieces=len(train), codec_seconds=round(codec_seconds),
                   total_seconds=round(time.time() - started), threads=torch.get_num_threads(),
                   codec_ae_steps=args.codec_ae_steps, codec_vq_steps=args.codec_vq_steps,
                   lm_steps=args.lm_steps, torch=torch.__version__, arch=TINY_ARCH, log=log)
    (args.out / "training_log.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k != "log"}, indent=1))


if __name__ == "__main__":
    main()
