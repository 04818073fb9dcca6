"""audiocraft checkpoints load, and our exact likelihood equals audiocraft's own compute_predictions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lossprofile import ModelLoadError, load_model
from lossprofile.models.musicgen.audiocraft import AudiocraftLikelihood, import_audiocraft

audiocraft = import_audiocraft()
from audiocraft.models import builders  # noqa: E402
from audiocraft.modules.conditioners import ConditioningAttributes  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

K, CARD, DIM = 4, 64, 32


def lm_config() -> dict:
    return {
        "device": "cpu", "dtype": "float32", "lm_model": "transformer_lm", "dataset": {"segment_duration": 10},
        "codebooks_pattern": {"modeling": "delay", "delay": {"delays": list(range(K)), "flatten_first": 0,
                                                             "empty_initial": 0}},
        "transformer_lm": {  # MusicGen's own choices (config/model/lm/musicgen_lm.yaml) at a small size
            "dim": DIM, "num_heads": 4, "num_layers": 2, "hidden_scale": 4, "n_q": K, "card": CARD, "dropout": 0.0,
            "emb_lr": None, "activation": "gelu", "norm_first": True, "bias_ff": False, "bias_attn": False,
            "bias_proj": False, "past_context": None, "causal": True, "custom": False, "memory_efficient": False,
            "attention_as_float32": False, "layer_scale": None, "positional_embedding": "sin", "xpos": False,
            "checkpointing": "none", "weight_init": "gaussian", "depthwise_init": "current", "zero_bias_init": True,
            "norm": "layer_norm", "cross_attention": False, "qk_layer_norm": False, "qk_layer_norm_cross": False,
            "attention_dropout": None, "kv_repeat": 1, "two_step_cfg": False},
        "classifier_free_guidance": {"training_dropout": 0.3, "inference_coef": 3.0},
        "attribute_dropout": {},
        "fuser": {"cross_attention_pos_emb": False, "cross_attention_pos_emb_scale": 1, "sum": [], "prepend": [],
                  "cross": ["description"], "input_interpolate": []},
        # a look-up-table conditioner: T5 needs the hub, the LUT's embedding plays the text encoder's output
        "conditioners": {"description": {"model": "lut", "lut": {"n_bins": 16, "dim": 24, "tokenizer": "noop",
                                                                  "pad_idx": 0}}},
    }


def codec_config() -> dict:
    return {
        "device": "cpu", "compression_model": "encodec", "sample_rate": 32000, "channels": 1,
        "encodec": {"autoencoder": "seanet", "quantizer": "rvq", "sample_rate": 32000, "channels": 1, "causal": False,
                    "renormalize": False},
        "seanet": {"dimension": 16, "channels": 1, "causal": False, "n_filters": 4, "n_residual_layers": 1,
                   "ratios": [8, 5, 4, 4], "activation": "ELU", "activation_params": {"alpha": 1.0},
                   "norm": "weight_norm", "norm_params": {}, "kernel_size": 7, "residual_kernel_size": 3,
                   "last_kernel_size": 7, "dilation_base": 2, "pad_mode": "constant", "true_skip": True,
                   "compress": 2, "lstm": 2, "disable_norm_outer_blocks": 0,
                   "decoder": {"trim_right_ratio": 1.0, "final_activation": None, "final_activation_params": None},
                   "encoder": {}},
        "rvq": {"n_q": K, "q_dropout": False, "bins": CARD, "decay": 0.99, "kmeans_init": False, "kmeans_iters": 50,
                "threshold_ema_dead_code": 2, "orthogonal_reg_weight": 0.0, "orthogonal_reg_active_codes_only": False},
    }


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A random audiocraft MusicGen built by audiocraft's own builders, saved as its exporter does."""
    folder = tmp_path_factory.mktemp("audiocraft_musicgen")
    torch.manual_seed(0)
    for config, build, name in ((lm_config(), builders.get_lm_model, "state_dict.bin"),
                                (codec_config(), builders.get_compression_model, "compression_state_dict.bin")):
        model = build(OmegaConf.create(config))
        torch.save({"best_state": model.state_dict(), "xp.cfg": OmegaConf.to_yaml(OmegaConf.create(config)),
                    "version": audiocraft.__version__, "exported": True}, folder / name)
    return folder


def codes_of(seed: int, batch: int = 2, frames: int = 23) -> torch.Tensor:
    return torch.randint(0, CARD, (batch, K, frames), generator=torch.Generator().manual_seed(seed))


@pytest.mark.slow
def test_our_exact_nll_equals_audiocrafts_compute_predictions_under_the_null_condition(checkpoint):
    ours = load_model(checkpoint, device="cpu")
    reference = load_model(checkpoint, backend="audiocraft")  # chosen by name, same token_nll [B, K, T]
    assert isinstance(reference, AudiocraftLikelihood)
    for seed, frames in ((0, 23), (1, 5), (2, 60)):
        codes = codes_of(seed, frames=frames)
        expected = reference.token_nll(codes)
        assert torch.isfinite(expected).all()
        assert torch.allclose(ours.token_nll(codes), expected, atol=1e-5), (ours.token_nll(codes) - expected).abs().max()


def test_a_conditioned_forward_matches_through_the_converted_projection(checkpoint):
    ours = load_model(checkpoint, device="cpu")
    reference = AudiocraftLikelihood(checkpoint)
    codes = codes_of(3)
    texts = ["piano", "strings"]
    conditions = [ConditioningAttributes(text={"description": t}) for t in texts]
    expected = reference.token_nll(codes, conditions)
    lut = reference.lm.condition_provider.conditioners["description"]
    tokens, mask = lut.tokenizer(texts)  # audiocraft's hash of each text: the input, not the thing tested
    from lossprofile.models.musicgen import delay

    decoder_input, _ = delay.decoder_io(codes, ours.special_token)
    with torch.no_grad():
        logits = ours._decoder_logits(decoder_input, {"encoder_outputs": (lut.embed(tokens),), "attention_mask": mask})
    assert torch.allclose(delay.gather_nll(logits, codes), expected, atol=1e-5)
    assert not torch.allclose(expected, reference.token_nll(codes), atol=1e-3)  # the condition matters


@pytest.mark.slow
def test_codes_equal_audiocrafts_encodec(checkpoint):
    ours = load_model(checkpoint, device="cpu")
    reference = AudiocraftLikelihood(checkpoint)
    t = torch.arange(32000) / 32000
    wav = (0.3 * torch.sin(2 * torch.pi * 330 * t) + 0.05 * torch.randn(32000, generator=torch.Generator().manual_seed(0)))
    wav = wav[None, None].float()
    assert torch.equal(ours.encode(wav), reference.encode(wav))


def test_a_prompt_without_t5_and_broken_checkpoints_are_named(checkpoint, tmp_path):
    ours = load_model(checkpoint, device="cpu")
    with pytest.raises(ValueError, match="t5-base in the Hugging Face cache"):
        ours.token_nll(codes_of(0), prompt="piano")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "state_dict.bin").write_bytes((checkpoint / "state_dict.bin").read_bytes()[:1000])
    (broken / "compression_state_dict.bin").write_bytes((checkpoint / "compression_state_dict.bin").read_bytes())
    with pytest.raises(ModelLoadError, match="state_dict.bin: unreadable audiocraft checkpoint"):
        load_model(broken, device="cpu")
    torch.save({"weights": {}}, broken / "state_dict.bin")
    with pytest.raises(ModelLoadError, match=r"state_dict.bin: not an audiocraft checkpoint: expected 'best_state'"):
        load_model(broken, device="cpu")
    assert np.isfinite(ours.token_nll(codes_of(0)).numpy()).all()
