"""The tiny model's codec: EnCodec's SEANet encoder/decoder with residual VQ, trained; and the corpus's codes.

Stage 2 of ``make tiny-model`` (`lossprofile.embedded.tiny_model`): trained with a pitch-sensitive spectral
loss (high-resolution magnitudes, where harmonics decide the pitch), EMA codebooks initialised by k-means. No
adversarial loss: cheaper, and the LM needs codes that keep pitch and loudness, not a perfect waveform.
Stage 3: the codec encodes every training piece once (`encode_cached`).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..models.musicgen.architecture import kmeans_codebooks
from .state import load_state, save_state, step_rng


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
        (`lossprofile.models.musicgen.architecture.kmeans_codebooks`)."""
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

