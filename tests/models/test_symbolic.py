"""The symbolic family: MIDI tokens, exact likelihood, strided windows, loading by folder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers

from lossprofile.data import corpus
from lossprofile.embedded import symbolic as training
from lossprofile.embedded.recipe import SymbolicRecipe
from lossprofile.models import ModelLoadError, load_model
from lossprofile.models.symbolic import SymbolicLM
from lossprofile.models.symbolic.tokens import tokenize


@pytest.fixture(scope="module")
def tokenizer():
    return training.make_tokenizer(SymbolicRecipe())


@pytest.fixture(scope="module")
def chorale(tmp_path_factory):
    """A Bach chorale from music21's corpus, arranged as the embedded models' training data is."""
    job = next(j for j in corpus.jobs(texture_pieces=0) if j.piece.startswith("bach-"))
    return training.arranged_midi(job, tmp_path_factory.mktemp("midi"), SymbolicRecipe())


def random_lm(tokenizer, positions: int = 256, **kwargs) -> SymbolicLM:
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=len(tokenizer), n_layer=2, n_embd=32,
                                                                 n_head=2, n_positions=positions)).eval()
    return SymbolicLM(model=model, tokenizer=tokenizer, name="random", **kwargs)


def test_tokens_carry_the_seconds_of_their_notes_and_decode_back_to_them(tokenizer, chorale):
    ids, seconds = tokenize(tokenizer, chorale)
    assert len(ids) == len(seconds) > 100 and (np.diff(seconds) >= 0).all()
    notes = [(n.start, n.pitch) for inst in chorale.instruments for n in inst.notes]
    pitch_tokens = [(seconds[i], int(tokenizer[int(x)].split("_")[1])) for i, x in enumerate(ids)
                    if tokenizer[int(x)].startswith("Pitch_")]
    # one token per note (miditok merges a few unisons of parts on the same program)
    assert 0.98 * len(notes) <= len(pitch_tokens) <= len(notes)
    grid = 60.0 / chorale.get_tempo_changes()[1][0] / 8  # 8 positions per beat
    for t, pitch in pitch_tokens:  # every note token sits at the onset of a note of its pitch, to within the grid
        assert min(abs(t - start) for start, p in notes if p == pitch) <= grid / 2 + 1e-6
    decoded = tokenizer.decode(ids.tolist())
    assert sorted(n.pitch for t in decoded.tracks for n in t.notes) == sorted(p for _, p in pitch_tokens)


def test_token_nll_equals_transformers_causal_lm_loss_after_bos(tokenizer, chorale):
    lm = random_lm(tokenizer)
    codes, _ = lm.encode_midi(chorale)
    codes = codes[..., :200]
    stats = lm.token_statistics(codes)
    assert stats.nll.shape == (1, 1, 200)
    ids = torch.cat([torch.tensor([[lm.bos_id]]), codes[:, 0]], dim=1)
    with torch.no_grad():
        reference = lm.model(input_ids=ids, labels=ids).loss
    assert torch.allclose(stats.nll.mean(), reference, atol=1e-5)
    # the first token is predicted from BOS alone
    with torch.no_grad():
        first = -torch.log_softmax(lm.model(input_ids=ids[:, :1]).logits[0, 0], -1)[ids[0, 1]]
    assert torch.allclose(stats.nll[0, 0, 0], first, atol=1e-5)


def test_strided_windows_give_each_token_the_context_the_rule_says(tokenizer, chorale):
    window, stride, T = 32, 12, 100
    lm = random_lm(tokenizer, positions=64, window=window, stride=stride)
    codes = lm.encode_midi(chorale)[0][..., :T]
    strided = lm.token_statistics(codes).nll[0, 0]
    ids = torch.cat([torch.tensor([lm.bos_id]), codes[0, 0]])
    plain = random_lm(tokenizer, positions=64).token_statistics(codes[..., : window - 1]).nll[0, 0]
    assert torch.allclose(strided[: window - 1], plain, atol=1e-5)  # the first window is the plain pass
    for j in range(T):  # target j is ids[j + 1]; its window ends at the first e_k past it
        k = max(0, -(-(j + 2 - window) // stride))
        end = min(window + k * stride, T + 1)
        with torch.no_grad():
            logits = lm.model(input_ids=ids[None, end - window : j + 1]).logits[0, -1]
        expected = -torch.log_softmax(logits, -1)[ids[j + 1]]
        assert torch.allclose(strided[j], expected, atol=1e-5), j
        assert window - stride <= j + 1 - (end - window) <= window - 1 or end == window  # context it saw


def test_a_folder_with_a_miditok_tokenizer_loads_as_the_symbolic_family(tokenizer, tmp_path):
    lm = random_lm(tokenizer)
    lm.model.save_pretrained(tmp_path)
    tokenizer.save(tmp_path)
    loaded = load_model(tmp_path, device="cpu")
    assert isinstance(loaded, SymbolicLM) and loaded.num_codebooks == 1 and loaded.cardinality == len(tokenizer)
    codes = torch.randint(0, len(tokenizer), (2, 1, 40))
    assert torch.allclose(loaded.token_statistics(codes).nll, lm.token_statistics(codes).nll, atol=1e-6)
    with pytest.raises(TypeError, match="reads MIDI"):
        loaded.encode(torch.zeros(1, 1, 32000))
    (tmp_path / "tokenizer.json").write_text('{"model": {"type": "BPE"}}')  # a text tokenizer of the same name
    with pytest.raises(ModelLoadError):
        load_model(tmp_path, device="cpu")  # not symbolic; as MusicGen its config is refused by name
