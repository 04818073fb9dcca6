"""The exact per-code NLL against two independent references (not against itself).

1. transformers' own training loss, ``forward(labels=...)``, with labels laid out by
   transformers' own ``build_delay_pattern_mask`` (pad cells ignored);
2. step-by-step autoregressive scoring with the KV cache, one decoder step at a time,
   with the delay pattern written out as explicit loops here.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lossprofile import ModelLoadError, load_model
from lossprofile.models.musicgen import delay
from lossprofile.models.musicgen.architecture import DECODER_SIZES, build_model, musicgen_config
from lossprofile.models.musicgen import MusicLM

from ..conftest import SMALL


def transformers_labels(lm: MusicLM, codes: torch.Tensor) -> torch.Tensor:
    """Delayed labels ``[B, S, K]`` built by transformers' ``build_delay_pattern_mask``."""
    B, K, T = codes.shape
    special = lm.special_token
    with_bos = torch.cat([torch.full((B, K, 1), special), codes], dim=2).reshape(B * K, T + 1)
    _, pattern = lm.model.decoder.build_delay_pattern_mask(with_bos, special, max_length=T + K)
    return pattern.reshape(B, K, T + K)[:, :, 1:].transpose(1, 2)


def text_condition(lm: MusicLM, prompts: list[str]) -> dict:
    tok = lm.tokenizer(prompts, return_tensors="pt", padding=True)
    hidden = lm.model.text_encoder(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"])
    return dict(encoder_outputs=(hidden.last_hidden_state,), attention_mask=tok["attention_mask"])


def stepwise_nll(lm: MusicLM, codes: torch.Tensor, prompts: list[str] | None = None) -> torch.Tensor:
    """NLL ``[B, K, T]`` by feeding one delayed step at a time through the KV cache (float64 log-softmax)."""
    model = lm.model
    B, K, T = codes.shape
    special = lm.special_token
    seq = torch.full((B, K, T + K - 1), special)
    for k in range(K):
        for t in range(T):
            seq[:, k, t + k] = codes[:, k, t]
    cond = dict(model.get_unconditional_inputs(B)) if prompts is None else text_condition(lm, prompts)
    cond.pop("guidance_scale", None)
    step_input = torch.full((B * K, 1), special)
    past, logp = None, []
    with torch.no_grad():
        for s in range(T + K - 1):
            out = model(**cond, decoder_input_ids=step_input, past_key_values=past, use_cache=True)
            past = out.past_key_values
            logp.append(F.log_softmax(out.logits.reshape(B, K, -1).double(), dim=-1))
            step_input = seq[:, :, s].reshape(B * K, 1)
    nll = torch.empty(B, K, T, dtype=torch.float64)
    for b in range(B):
        for k in range(K):
            for t in range(T):
                nll[b, k, t] = -logp[t + k][b, k, codes[b, k, t]]
    return nll


def random_codes(lm: MusicLM, batch: int, frames: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, lm.cardinality, (batch, lm.num_codebooks, frames), generator=g)


@pytest.mark.parametrize("frames", [4, 17])
def test_exact_mean_equals_transformers_training_loss(small_lm, frames):
    codes = random_codes(small_lm, 3, frames, seed=frames)
    nll = small_lm.token_nll(codes)
    cond = dict(small_lm.model.get_unconditional_inputs(3))
    cond.pop("guidance_scale")
    with torch.no_grad():
        loss = small_lm.model(**cond, labels=transformers_labels(small_lm, codes)).loss
    assert nll.shape == (3, small_lm.num_codebooks, frames)
    assert abs(nll.mean().item() - loss.item()) < 1e-5


def test_exact_mean_equals_training_loss_with_text_prompt(small_lm):
    codes = random_codes(small_lm, 2, 9, seed=3)
    prompts = ["organ chorale", "strings with drums"]
    nll = small_lm.token_nll(codes, prompt=prompts)
    with torch.no_grad():
        loss = small_lm.model(**text_condition(small_lm, prompts), labels=transformers_labels(small_lm, codes)).loss
    assert abs(nll.mean().item() - loss.item()) < 1e-5
    # the prompt is really used: the unconditional NLL differs
    assert (small_lm.token_nll(codes) - nll).abs().max() > 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("frames", [1, 12])
def test_exact_equals_stepwise_kv_cache_elementwise(small_lm, frames):
    codes = random_codes(small_lm, 2, frames, seed=5)
    ours = small_lm.token_nll(codes).double()
    ref = stepwise_nll(small_lm, codes)
    assert torch.allclose(ours, ref, atol=1e-4, rtol=0)
    ref_prompt = stepwise_nll(small_lm, codes, ["piano", "organ chorale"])
    assert torch.allclose(small_lm.token_nll(codes, prompt=["piano", "organ chorale"]).double(), ref_prompt,
                          atol=1e-4, rtol=0)


def test_delay_pattern_is_respected(small_lm):
    """Changing code (k, t) may change NLL only at (k', t') that see it under the delay pattern."""
    codes = random_codes(small_lm, 1, 10, seed=7)
    base = small_lm.token_nll(codes)
    k, t = 2, 4
    changed = codes.clone()
    changed[0, k, t] = (changed[0, k, t] + 1) % small_lm.cardinality
    diff = (small_lm.token_nll(changed) - base).abs()[0] > 1e-6
    K = small_lm.num_codebooks
    for kk in range(K):
        for tt in range(10):
            step_changed, step_other = t + k, tt + kk
            if step_other <= step_changed and not (kk == k and tt == t):
                assert not diff[kk, tt], f"code ({kk},{tt}) cannot see ({k},{t}) but its NLL changed"
    assert diff[k, t]  # its own likelihood changed
    assert diff[:, t + 1 :].any()  # later frames see it


@pytest.fixture(scope="module")
def real_arch_lm():
    """MusicGen-small's decoder (24 layers, width 1024, 16 heads, 4 x 2048 codes), random weights."""
    arch = {**SMALL, **DECODER_SIZES["small"], "cardinality": 2048, "max_position_embeddings": 2048}
    return MusicLM(build_model(musicgen_config(**arch), seed=1))


@pytest.mark.slow
def test_real_architecture_against_both_references(real_arch_lm):
    lm = real_arch_lm
    assert (lm.num_codebooks, lm.cardinality, lm.model.config.decoder.num_hidden_layers) == (4, 2048, 24)
    codes = random_codes(lm, 2, 6, seed=11)
    nll = lm.token_nll(codes)
    cond = dict(lm.model.get_unconditional_inputs(2))
    cond.pop("guidance_scale")
    with torch.no_grad():
        loss = lm.model(**cond, labels=transformers_labels(lm, codes)).loss
    assert abs(nll.mean().item() - loss.item()) < 1e-5
    assert torch.allclose(nll.double(), stepwise_nll(lm, codes), atol=1e-4, rtol=0)


def independent_as_published(lm: MusicLM, codes: torch.Tensor) -> torch.Tensor:
    """The published script, written out: decoder(raw codes[:-1]) scores codes[1:], per codebook."""
    B, K, T = codes.shape
    out = torch.full((B, K, T), float("nan"), dtype=torch.float64)
    with torch.no_grad():
        logits = lm.model.decoder(input_ids=codes[:, :, :-1].reshape(B * K, T - 1)).logits
    logits = logits.reshape(B, K, T - 1, -1).double()
    for k in range(K):
        ce = F.cross_entropy(logits[:, k].transpose(1, 2), codes[:, k, 1:], reduction="none")
        out[:, k, 1:] = ce
    return out


def test_as_published_reproduces_the_published_script_and_differs_from_exact(small_lm):
    codes = random_codes(small_lm, 2, 15, seed=13)
    pub = small_lm.token_nll(codes, method="as_published")
    ref = independent_as_published(small_lm, codes)
    assert torch.isnan(pub[:, :, 0]).all()
    assert torch.allclose(pub[:, :, 1:].double(), ref[:, :, 1:], atol=1e-5)
    exact = small_lm.token_nll(codes)
    assert (exact[:, :, 1:] - pub[:, :, 1:]).abs().max() > 1e-3


def test_low_precision_weights_give_finite_fp32_nll(small_checkpoint):
    lm = load_model(small_checkpoint, device="cpu", dtype=torch.bfloat16)
    codes = random_codes(lm, 2, 8)
    nll = lm.token_nll(codes)
    assert nll.dtype == torch.float32 and torch.isfinite(nll).all()
    ref = load_model(small_checkpoint, device="cpu").token_nll(codes)
    assert (nll - ref).abs().max() < 0.1


def test_nll_is_finite_for_extreme_but_finite_weights(small_checkpoint):
    lm = load_model(small_checkpoint, device="cpu")
    with torch.no_grad():
        for head in lm.model.decoder.lm_heads:
            head.weight.mul_(1e4)  # logits of order 1e4-1e5: softmax must not overflow
    nll = lm.token_nll(random_codes(lm, 1, 6))
    assert torch.isfinite(nll).all() and (nll >= 0).all()


def test_bad_codes_and_methods_raise_clear_errors(small_lm):
    with pytest.raises(ValueError, match=r"codes must be \[B, 4, T\]"):
        small_lm.token_nll(torch.zeros(1, 3, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="must lie in"):
        small_lm.token_nll(torch.full((1, 4, 5), small_lm.cardinality))
    with pytest.raises(ValueError, match="integer"):
        small_lm.token_nll(torch.zeros(1, 4, 5))
    with pytest.raises(ValueError, match="unknown method"):
        small_lm.token_nll(torch.zeros(1, 4, 5, dtype=torch.long), method="approximate")


def test_unknown_and_unreachable_models_raise_clear_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="unknown model name 'musicgen-huge'"):
        load_model("musicgen-huge")
    with pytest.raises(ModelLoadError, match="no model family recognises this directory.*config.json.*state_dict.bin"):
        load_model(tmp_path)
    with pytest.raises(ModelLoadError, match="neither a local checkpoint nor in the Hugging Face cache"):
        load_model("facebook/musicgen-small-not-cached-here")


def test_encode_checks_its_input(small_lm):
    with pytest.raises(ValueError, match="mono"):
        small_lm.encode(torch.zeros(1, 2, 3200))
    with pytest.raises(ValueError, match=r"\[B, C, S\]"):
        small_lm.encode(torch.zeros(3200))
    with pytest.raises(ValueError, match="NaN"):
        small_lm.encode(torch.full((1, 1, 3200), float("nan")))
    codes = small_lm.encode(torch.from_numpy(np.random.default_rng(0).standard_normal((2, 1, 6400)).astype(np.float32)))
    assert codes.shape == (2, 4, 10) and codes.dtype == torch.long


@pytest.mark.slow
def test_generate_respects_length_and_top_k(small_lm):
    a = small_lm.generate(2, 12, top_k=1, seed=0)
    assert a.shape == (2, 4, 12)
    assert torch.equal(a[0], a[1])  # top_k=1 is greedy: both samples agree
    b = small_lm.generate(2, 12, top_k=50, seed=3)
    assert torch.equal(b, small_lm.generate(2, 12, top_k=50, seed=3))  # deterministic under a seed


def small_melody_lm() -> MusicLM:
    import transformers

    cfg = musicgen_config(**SMALL)
    fields = transformers.MusicgenMelodyDecoderConfig().to_dict()
    decoder = transformers.MusicgenMelodyDecoderConfig(**{k: v for k, v in cfg.decoder.to_dict().items() if k in fields})
    melody = transformers.MusicgenMelodyConfig(text_encoder=cfg.text_encoder.to_dict(),
                                               audio_encoder=cfg.audio_encoder.to_dict(), decoder=decoder.to_dict(),
                                               num_chroma=12, chroma_length=235)
    melody.decoder_start_token_id = melody.pad_token_id = cfg.decoder_start_token_id
    torch.manual_seed(0)
    model = transformers.MusicgenMelodyForConditionalGeneration(melody).eval()
    return MusicLM(model, name="random musicgen-melody", device=torch.device("cpu"))


def test_melody_model_scores_with_its_no_melody_condition_exactly():
    # The melody model prepends its condition (chroma, then text) to the decoder sequence, so
    # the null condition and the KV-cache path differ from the other sizes.
    lm = small_melody_lm()
    assert lm.is_melody
    codes = random_codes(lm, 2, 9)
    codes[1, :, :6] = codes[0, :, :6]
    nll = lm.token_nll(codes)
    with torch.no_grad():
        loss = lm.model(input_ids=torch.zeros(2, 1, dtype=torch.long), attention_mask=torch.zeros(2, 1, dtype=torch.long),
                        labels=transformers_labels(lm, codes)).loss  # no input_features: transformers' no-melody chroma
    assert abs(nll.mean().item() - loss.item()) < 1e-5
    shared = lm.shared_prefix_statistics(codes, 6, None).nll
    assert torch.allclose(shared.cpu(), nll, atol=1e-5)
    assert lm.generate(1, 5, top_k=10).shape == (1, 4, 5)


@pytest.mark.parametrize("sizes", [[3, 2], [1, 4, 2]])
def test_groups_of_rows_each_with_its_own_shared_prefix_score_as_each_row_alone(small_lm, sizes):
    # several pieces in one batch: each group's rows share their first frames, groups differ from the start
    groups = []
    for g, size in enumerate(sizes):
        codes = random_codes(small_lm, size, 14, seed=10 + g)
        codes[:, :, :7] = codes[0, :, :7]
        groups.append(codes)
    rows = torch.cat(groups)
    alone = small_lm.token_statistics(rows)
    steps = 7 + 1  # the decoder input at step s holds frames <= s - 1
    together = small_lm.shared_prefix_statistics(rows, steps, None, group_sizes=sizes)
    for a, b in zip(alone, together):
        assert torch.allclose(a, b.cpu(), atol=1e-5)
    # the rows of one group really shared one prefix pass: wrong group sizes give other numbers
    wrong = small_lm.shared_prefix_statistics(rows, steps, None, group_sizes=[sum(sizes)])
    assert not torch.allclose(wrong.nll.cpu(), alone.nll, atol=1e-3)
    with pytest.raises(ValueError, match="do not add up"):
        small_lm.shared_prefix_statistics(rows, steps, None, group_sizes=[1, 1])


def test_entropy_and_rank_come_with_the_nll_and_match_a_direct_softmax(small_lm):
    codes = random_codes(small_lm, 2, 9)
    stats = small_lm.token_statistics(codes)
    assert torch.equal(stats.nll, small_lm.token_nll(codes))
    # recomputed independently from the raw logits, in double precision, one code at a time
    decoder_input, _ = delay.decoder_io(codes, small_lm.special_token)
    logits = small_lm._decoder_logits(decoder_input, small_lm.condition(2))
    for k in range(small_lm.num_codebooks):
        for t in (0, 4, 8):
            logp = torch.log_softmax(logits[:, k, t + k].double(), -1)
            true = codes[:, k, t]
            expected_entropy = -(logp.exp() * logp).sum(-1)
            expected_rank = 1 + (logp > logp.gather(-1, true[:, None])).sum(-1)
            expected_var = (logp.exp() * (logp + expected_entropy[:, None]).square()).sum(-1)
            assert torch.allclose(stats.entropy[:, k, t].double(), expected_entropy, atol=1e-4)
            assert torch.allclose(stats.surprisal_var[:, k, t].double(), expected_var, atol=1e-3)
            assert torch.equal(stats.rank[:, k, t].long(), expected_rank)
    assert (stats.entropy >= 0).all() and (stats.entropy <= math.log(small_lm.cardinality) + 1e-4).all()
    assert (stats.rank >= 1).all() and (stats.rank <= small_lm.cardinality).all()
    pub = small_lm.token_statistics(codes, method="as_published")
    assert torch.isnan(pub.rank[:, :, 0]).all() and torch.isfinite(pub.entropy[:, :, 1:]).all()


@pytest.mark.parametrize("prefix_steps", [1, 2, 3, 5, 9, 12, 13])  # K = 4, T = 10: S = 13 delayed steps
def test_shared_prefix_statistics_read_once_per_group_equal_the_expanded_logits(prefix_steps):
    # groups of rows whose first prefix_steps decoder inputs agree: their logits agree there, and so do the
    # targets of every prefix step but the last (a target is the next step's input)
    B, K, T, V, sizes = 5, 4, 10, 32, [2, 3]
    gen = torch.Generator().manual_seed(prefix_steps)
    rows = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    codes = torch.randint(0, V, (B, K, T), generator=gen)
    agree = max(0, prefix_steps - 1)  # frames < agree agree within a group
    codes[:, :, :agree] = codes[[0, 2]][rows][:, :, :agree]  # rows 0 and 2 begin the groups
    prefix = torch.randn(len(sizes), K, prefix_steps, V, generator=gen) * 3
    rest = torch.randn(B, K, T + K - 1 - prefix_steps, V, generator=gen) * 3
    expected = delay.token_statistics(torch.cat([prefix[rows], rest], dim=2), codes)
    got = delay.shared_prefix_token_statistics(prefix, rest, codes, rows)
    for a, b in zip(expected, got):
        assert a.shape == b.shape == (B, K, T) and torch.allclose(a, b, atol=1e-6, rtol=0)


def test_frame_statistics_in_blocks_equal_one_pass():
    from lossprofile.models import frame_statistics

    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 50, 64, generator=gen) * 4
    targets = torch.randint(0, 64, (3, 50), generator=gen)
    whole = frame_statistics(logits, targets, rows_per_block=10**9)
    for block in (1, 8, 31, 150):  # 1 frame per block, a ragged last block, exactly one block
        for a, b in zip(whole, frame_statistics(logits, targets, rows_per_block=block)):
            assert a.shape == b.shape == (3, 50) and torch.allclose(a, b, atol=1e-6, rtol=0)
