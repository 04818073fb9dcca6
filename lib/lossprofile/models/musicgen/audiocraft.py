"""Checkpoints in audiocraft's format (where MusicGen is trained and fine-tuned), and audiocraft's own likelihood.

An audiocraft MusicGen checkpoint is a folder with ``state_dict.bin`` (the language model)
and ``compression_state_dict.bin`` (the codec, or a reference to a pretrained one), each a
dict holding ``best_state`` (weights) and ``xp.cfg`` (the training config as YAML).
`convert` turns one into transformers' ``MusicgenForConditionalGeneration`` (the
layout every other part of lossprofile reads), so ``load_model(folder)`` works on it
unchanged. `AudiocraftLikelihood` scores codes with audiocraft's own
``LMModel.compute_predictions``: a third, independent reference for the exact likelihood.

audiocraft itself is an optional extra (``pip install lossprofile[audiocraft]``; see the
README for the ``--no-deps`` install beside a CPU torch). Only `AudiocraftLikelihood`
and the tests need it; `convert` reads checkpoints without it.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import math
import os
import sys
import types
from pathlib import Path

import torch

from ..hf import quiet_transformers

LM_FILE = "state_dict.bin"
CODEC_FILE = "compression_state_dict.bin"


class AudiocraftCheckpointError(RuntimeError):
    """An audiocraft checkpoint that cannot be read or converted, with the file named."""


def is_audiocraft_checkpoint(folder: str | os.PathLike) -> bool:
    folder = Path(folder)
    return folder.is_dir() and (folder / LM_FILE).exists() and (folder / CODEC_FILE).exists()


# ---- importing audiocraft beside a CPU torch ------------------------------------------------------
@contextlib.contextmanager
def _torchaudio_stand_in():
    """While audiocraft imports, a stand-in for torchaudio, only if the real one cannot be imported.

    Why: every torchaudio wheel the registry offers for Linux is a CUDA build that fails to load
    beside the CPU torch this project pins, yet audiocraft imports torchaudio at module level in six
    modules (chroma, spectrogram losses, metrics, discriminators, loudness) that the language model
    and EnCodec never call. The stand-in offers the names those modules touch at import time; using
    any of them raises ImportError. It leaves ``sys.modules`` as soon as audiocraft is imported, so
    nothing else (transformers checks for torchaudio) ever sees it. With a working torchaudio
    (e.g. a GPU machine with matching torch/torchaudio) audiocraft runs unmodified.
    """
    try:
        import torchaudio  # noqa: F401

        yield
        return
    except (ImportError, OSError):
        pass
    import transformers  # noqa: F401  (imported first: it must not see the stand-in)

    class Unavailable:
        def __init__(self, *args, **kwargs):
            raise ImportError("torchaudio is not installed (a lossprofile stand-in let audiocraft import); "
                              "this audiocraft feature needs the real torchaudio")

    module = types.ModuleType("torchaudio")
    module.__spec__ = importlib.machinery.ModuleSpec("torchaudio", None)
    transforms = types.ModuleType("torchaudio.transforms")
    transforms.__spec__ = importlib.machinery.ModuleSpec("torchaudio.transforms", None)
    for name in ("Spectrogram", "MelSpectrogram", "Resample", "Loudness"):
        setattr(transforms, name, Unavailable)
    module.transforms = transforms
    module.save = module.load = Unavailable
    sys.modules["torchaudio"], sys.modules["torchaudio.transforms"] = module, transforms
    try:
        yield
    finally:
        for name in ("torchaudio", "torchaudio.transforms"):
            if sys.modules.get(name) in (module, transforms):
                del sys.modules[name]


def import_audiocraft():
    """``audiocraft`` (with `_torchaudio_stand_in` where needed), or a clear error if it is not installed."""
    with _torchaudio_stand_in():
        try:
            import audiocraft.models  # noqa: F401
            import audiocraft.modules.conditioners  # noqa: F401
        except ImportError as err:
            raise ImportError(f"audiocraft is not installed ({err}); install the extra: see the README, "
                              "'audiocraft checkpoints'") from err
    import audiocraft

    return audiocraft


# ---- reading checkpoints -------------------------------------------------------------------------
def read_package(path: Path) -> dict:
    """One of the two checkpoint files: a dict with ``best_state`` and ``xp.cfg`` (or ``pretrained``)."""
    try:
        pkg = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise AudiocraftCheckpointError(f"{path}: unreadable audiocraft checkpoint ({type(err).__name__}: {err})") \
            from err
    if not isinstance(pkg, dict) or not ("pretrained" in pkg or {"best_state", "xp.cfg"} <= set(pkg)):
        found = sorted(pkg) if isinstance(pkg, dict) else type(pkg).__name__
        raise AudiocraftCheckpointError(f"{path}: not an audiocraft checkpoint: expected 'best_state' and 'xp.cfg' "
                                        f"(or 'pretrained'), found {found}")
    return pkg


def config_of(pkg: dict, path: Path):
    from omegaconf import OmegaConf

    try:
        return OmegaConf.create(pkg["xp.cfg"])
    except Exception as err:
        raise AudiocraftCheckpointError(f"{path}: its 'xp.cfg' is not a readable config ({err})") from err


def codec_from_package(pkg: dict, path: Path):
    """transformers' ``EncodecModel`` holding the checkpoint's codec (or the pretrained one it names)."""
    import transformers

    if "pretrained" in pkg:
        name = str(pkg["pretrained"]).replace("//pretrained/", "")
        return transformers.EncodecModel.from_pretrained(name if "/" in name else f"facebook/{name}")
    cfg = config_of(pkg, path)
    seanet, rvq, encodec = cfg.seanet, cfg.rvq, cfg.encodec
    if cfg.compression_model != "encodec" or encodec.autoencoder != "seanet" or encodec.quantizer != "rvq":
        raise AudiocraftCheckpointError(f"{path}: only SEANet/RVQ EnCodec codecs convert, got {cfg.compression_model}")
    hop = math.prod(seanet.ratios)
    frame_rate = cfg.sample_rate / hop
    config = transformers.EncodecConfig(
        sampling_rate=int(cfg.sample_rate), audio_channels=int(cfg.channels), num_filters=int(seanet.n_filters),
        num_residual_layers=int(seanet.n_residual_layers), upsampling_ratios=list(seanet.ratios),
        norm_type=str(seanet.norm), kernel_size=int(seanet.kernel_size), last_kernel_size=int(seanet.last_kernel_size),
        residual_kernel_size=int(seanet.residual_kernel_size), dilation_growth_rate=int(seanet.dilation_base),
        use_causal_conv=bool(encodec.causal), pad_mode=str(seanet.pad_mode), compress=int(seanet.compress),
        num_lstm_layers=int(seanet.lstm), trim_right_ratio=float(seanet.decoder.get("trim_right_ratio", 1.0)),
        codebook_size=int(rvq.bins), codebook_dim=int(seanet.dimension), hidden_size=int(seanet.dimension),
        use_conv_shortcut=not bool(seanet.true_skip), normalize=bool(encodec.get("renormalize", False)),
        chunk_length_s=None, overlap=None,
        target_bandwidths=[int(rvq.n_q) * math.log2(int(rvq.bins)) * frame_rate / 1000],
    )
    model = transformers.EncodecModel(config)
    state = {}
    for key, value in pkg["best_state"].items():
        new = (key.replace(".conv.conv.", ".conv.").replace(".convtr.convtr.", ".conv.").replace(".model.", ".layers.")
               .replace("quantizer.vq.layers.", "quantizer.layers.").replace("._codebook.", ".codebook.")
               .replace(".weight_g", ".parametrizations.weight.original0")
               .replace(".weight_v", ".parametrizations.weight.original1"))
        state[new] = value
    _load_strict(model, state, path)
    return model


def _load_strict(module, state: dict, path: Path) -> None:
    missing, unexpected = module.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("embed_positions.weights")]  # sinusoids are computed
    if missing or unexpected:
        raise AudiocraftCheckpointError(f"{path}: weights do not match the architecture its config describes "
                                        f"(missing {missing[:5]}, unexpected {unexpected[:5]})")


# audiocraft's LMModel names → transformers' MusicGen names (applied in this order).
LM_RENAMES = (("emb.", "model.decoder.embed_tokens."), ("transformer.", "model.decoder."),
              ("cross_attention", "encoder_attn"), ("linear1", "fc1"), ("linear2", "fc2"),
              ("norm1", "self_attn_layer_norm"), ("norm_cross", "encoder_attn_layer_norm"),
              ("norm2", "final_layer_norm"), ("out_norm", "model.decoder.layer_norm"), ("linears", "lm_heads"))


def lm_state(pkg: dict, dim: int) -> tuple[dict, dict]:
    """The LM's weights in transformers' layout → (decoder state, enc_to_dec_proj state)."""
    decoder, projection = {}, {}
    for key, value in pkg["best_state"].items():
        if key.startswith("condition_provider."):
            if ".output_proj." in key:  # the conditioner's projection into the LM's width
                projection[key.rsplit(".", 1)[1]] = value
            continue
        key = key.replace(".mha.", ".")  # without audiocraft's custom attention, torch's MultiheadAttention is inside
        for old, new in LM_RENAMES:
            if key.startswith(old) if old.endswith(".") else old in key:
                key = key.replace(old, new, 1)
        if key.endswith("in_proj_weight"):  # audiocraft fuses q, k and v in one matrix
            for name, part in zip(("q_proj", "k_proj", "v_proj"), value.split(dim, dim=0)):
                decoder[key.replace("in_proj_weight", f"{name}.weight")] = part
        else:
            decoder[key] = value
    return decoder, projection


def convert(folder: str | os.PathLike, text_encoder: str = "t5-base"):
    """A ``MusicgenForConditionalGeneration`` with the weights of an audiocraft checkpoint folder.

    The T5 text encoder is not part of audiocraft checkpoints: the hub's ``text_encoder`` is
    used when cached; without it a random T5 of the same shape stands in, so unconditional scoring
    (the null condition never reads the text encoder) works and a text prompt raises a clear error
    (see [`models.load_model`][lossprofile.models.loading.load_model]).
    """
    import transformers

    folder = Path(folder)
    lm_path, codec_path = folder / LM_FILE, folder / CODEC_FILE
    lm_pkg = read_package(lm_path)
    if "pretrained" in lm_pkg:
        raise AudiocraftCheckpointError(f"{lm_path}: refers to the pretrained {lm_pkg['pretrained']!r}; load that "
                                        "name directly (e.g. facebook/musicgen-small)")
    cfg = config_of(lm_pkg, lm_path)
    lm = cfg.transformer_lm
    pattern = cfg.codebooks_pattern
    n_q, card, dim = int(lm.n_q), int(lm.card), int(lm.dim)
    checks = {"codebooks_pattern.modeling == delay": pattern.modeling == "delay",
              "delays == 0..n_q-1": list(pattern.delay.delays) == list(range(n_q)),
              "positional_embedding == sin": lm.get("positional_embedding", "sin") == "sin",
              "norm_first": bool(lm.norm_first), "no biases": not (lm.bias_ff or lm.bias_attn or lm.bias_proj),
              "cross-attention conditioning": list(cfg.fuser.cross) == ["description"]}
    failed = [name for name, ok in checks.items() if not ok]
    if failed:
        raise AudiocraftCheckpointError(f"{lm_path}: this MusicGen variant does not convert to transformers' "
                                        f"MusicGen ({', '.join(failed)} not met)")
    codec = codec_from_package(read_package(codec_path), codec_path)
    conditioner = cfg.conditioners.description
    with quiet_transformers():
        if conditioner.model == "t5":
            try:
                text = transformers.T5EncoderModel.from_pretrained(conditioner.t5.name)
                tokenizer = transformers.AutoTokenizer.from_pretrained(conditioner.t5.name)
            except OSError:
                text, tokenizer = None, None
            text_config = text.config if text is not None else transformers.T5Config.from_dict(
                dict(d_model=768, num_layers=12, num_heads=12, d_ff=3072, d_kv=64, vocab_size=32128))
        else:  # a look-up table conditioner: its embedding plays the text encoder's output
            text, tokenizer = None, None
            text_config = transformers.T5Config(d_model=int(conditioner[conditioner.model].dim), num_layers=1,
                                                num_heads=1, d_ff=8, d_kv=8, vocab_size=8)
        decoder_config = transformers.MusicgenDecoderConfig(
            vocab_size=card, num_codebooks=n_q, num_hidden_layers=int(lm.num_layers), hidden_size=dim,
            num_attention_heads=int(lm.num_heads), ffn_dim=int(dim * lm.hidden_scale), max_position_embeddings=2048,
            pad_token_id=card, bos_token_id=card, decoder_start_token_id=card, activation_function=str(lm.activation),
            dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, layerdrop=0.0, scale_embedding=False,
            tie_word_embeddings=False)
        config = transformers.MusicgenConfig(text_encoder=text_config.to_dict(), audio_encoder=codec.config.to_dict(),
                                             decoder=decoder_config.to_dict())
        config.decoder_start_token_id = config.pad_token_id = card
        model = transformers.MusicgenForConditionalGeneration(config)
    decoder_state, projection = lm_state(lm_pkg, dim)
    _load_strict(model.decoder, decoder_state, lm_path)
    model.enc_to_dec_proj.load_state_dict(projection)
    model.audio_encoder.load_state_dict(codec.state_dict())
    if text is not None:
        model.text_encoder.load_state_dict(text.state_dict())
    model.config.lossprofile_text_encoder = "pretrained" if text is not None else "missing"
    return model.eval(), tokenizer


# ---- audiocraft's own likelihood -----------------------------------------------------------------
class AudiocraftLikelihood:
    """Per-code NLL ``[B, K, T]`` from audiocraft's ``LMModel.compute_predictions`` (a reference implementation).

    Built from the same checkpoint folder; the null condition is audiocraft's own
    ``ClassifierFreeGuidanceDropout(p=1.0)``.
    """

    def __init__(self, folder: str | os.PathLike, device: str = "cpu"):
        import_audiocraft()
        from audiocraft.models import loaders

        self.folder = Path(folder)
        self.lm = loaders.load_lm_model(self.folder / LM_FILE, device=device)
        self.codec = loaders.load_compression_model(self.folder / CODEC_FILE, device=device)

    @torch.no_grad()
    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """Waveform ``[B, 1, S]`` → codes ``[B, K, T]`` with audiocraft's EnCodec."""
        codes, _ = self.codec.encode(wav)
        return codes

    @torch.no_grad()
    def token_nll(self, codes: torch.Tensor, conditions: list | None = None) -> torch.Tensor:
        """NLL (nats) of every code; ``conditions``: audiocraft ``ConditioningAttributes`` (None: the null condition)."""
        from audiocraft.modules.conditioners import ClassifierFreeGuidanceDropout, ConditioningAttributes

        B = codes.shape[0]
        if conditions is None:
            conditions = ClassifierFreeGuidanceDropout(p=1.0)([ConditioningAttributes(text={"description": None})
                                                                for _ in range(B)])
        out = self.lm.compute_predictions(codes, conditions, keep_only_valid_steps=False)
        logp = torch.log_softmax(out.logits.float(), dim=-1)
        return -logp.gather(-1, codes[..., None].long())[..., 0].cpu()
