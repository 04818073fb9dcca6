"""The symbolic family: MIDI tokens, exact likelihood, strided windows, loading by folder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers

from lossprofile.data import corpus
from lossprofile.embedded import training_corpus
from lossprofile.embedded.recipe import SymbolicRecipe
from lossprofile.models import ModelLoadError, load_model
from lossprofile.models.symbolic import SymbolicLM
from lossprofile.models.symbolic.tokens import tokenize


@pytest.fixture(scope="module")
def tokenizer():
    return training_corpus.make_tokenizer(SymbolicRecipe())


@pytest.fixture(scope="module")
def chorale(tmp_path_factory):
    """A Bach chorale from music21's corpus, arranged as the embedded models' training data is."""
    job = next(j for j in corpus.jobs(texture_pieces=0) if j.piece.startswith("bach-"))
    return training_corpus.arranged_midi(job, tmp_path_factory.mktemp("midi"), SymbolicRecipe())


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


@pytest.mark.slow
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


def scale_file(folder, name: str, seconds: float = 8.0):
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(initial_tempo=120)
    inst = pretty_midi.Instrument(program=0)
    for k, t in enumerate(np.arange(0.5, seconds, 0.25)):
        inst.notes.append(pretty_midi.Note(velocity=80, pitch=60 + [0, 2, 4, 5, 7, 9, 11, 12][k % 8], start=t,
                                           end=t + 0.2))
    midi.instruments.append(inst)
    path = folder / f"{name}.mid"
    midi.write(str(path))
    return path


def test_the_runner_scores_a_symbolic_model_on_the_audio_models_frame_grid(tokenizer, tmp_path, capsys):
    from lossprofile.data.datasets import Piece
    from lossprofile.perturb import Perturbation
    from lossprofile.perturb.score import ScorePerturbation
    from lossprofile.runner import run_experiment

    lm = random_lm(tokenizer)
    pieces = [Piece("test", "scale", scale_file(tmp_path, "scale")), Piece("test", "wav", tmp_path / "x.wav")]
    (tmp_path / "x.wav").write_bytes(b"RIFF")
    perts = [Perturbation("noise", 100, 50), Perturbation("shuffle", 50, 200, segment_frames=25),
             ScorePerturbation("shift_pitches", fraction=1.0, semitones=(2,), in_key=False, onset_frame=150,
                               length_frames=100)]
    table = run_experiment(lm, pieces, perts, tmp_path / "out", excerpt_seconds=6.0, progress=False)
    assert "a model over MIDI tokens reads MIDI files" in capsys.readouterr().err  # the WAV is named and skipped
    assert set(table["piece"]) == {"scale"} and len(table) == 3 * 300
    assert {"frame", "nll_clean", "nll_perturbed", "delta", "delta_k0", "tokens_clean", "tokens_perturbed",
            "perturbation", "onset_frame", "length_frames"} <= set(table.columns)
    # the frames' NLL add up to the clean excerpt's total NLL, scored directly (6 s from the first note)
    from lossprofile import audio

    midi = audio.read_midi(pieces[0].path)
    codes, seconds = lm.encode_midi(audio.midi_excerpt(midi, audio.midi_first_onset(midi), 6.0))
    noise = table[table.perturbation == "noise"]
    assert np.isclose(noise["nll_clean"].sum(), lm.token_nll(codes).sum().item(), atol=1e-3)
    assert noise["tokens_clean"].sum() == codes.shape[-1]
    # causal: nothing changes before the window (frame 100 = 2 s); the window's notes are replaced
    before = noise[noise.frame < 100]
    assert np.abs(before["delta"]).max() < 1e-4 and (before.tokens_clean == before.tokens_perturbed).all()
    pitched = table[table.perturbation == "shift_pitches"]
    assert np.abs(pitched[pitched.frame < 150]["delta"]).max() < 1e-4
    assert np.abs(pitched[(pitched.frame >= 150) & (pitched.frame < 250)]["delta"]).max() > 0.1
    # a waveform kind without a score analogue is refused with a clear reason
    from lossprofile.errors import UsageError

    with pytest.raises(UsageError, match="'add_noise' has no analogue in a score"):  # before any work
        run_experiment(lm, pieces[:1], [Perturbation("add_noise", 100, 50)], tmp_path / "o2", excerpt_seconds=6.0,
                       progress=False)
    assert not (tmp_path / "o2" / "parts").exists()


@pytest.mark.slow
def test_generate_is_seeded_never_draws_special_tokens_and_slides_past_the_window_like_a_fresh_pass(tokenizer):
    lm = random_lm(tokenizer, positions=16)
    a, b, c = (lm.generate(2, 40, top_k=30, seed=s) for s in (3, 3, 4))
    assert a.shape == (2, 1, 40) and torch.equal(a, b) and not torch.equal(a, c)
    assert not set(a.flatten().tolist()) & {tokenizer[t] for t in tokenizer.special_tokens}
    # top_k=1 is greedy: the cached, sliding generation equals recomputing every step from the window alone
    greedy = lm.generate(1, 40, top_k=1)[0, 0].tolist()
    ids, start = [lm.bos_id], 0
    specials = [tokenizer[t] for t in tokenizer.special_tokens]
    with torch.no_grad():
        for _ in range(40):
            logits = lm.model(input_ids=torch.tensor([ids[start:]])).logits[0, -1]
            logits[specials] = float("-inf")
            ids.append(int(logits.argmax()))
            if len(ids) - start >= 16:
                start = len(ids) - 8
    assert greedy == ids[1:]


def test_decode_midi_gives_files_that_hold_the_tokens_notes(tokenizer, chorale):
    import io

    import pretty_midi

    lm = random_lm(tokenizer)
    codes, _ = lm.encode_midi(chorale)
    (data,) = lm.decode_midi(codes)
    decoded = pretty_midi.PrettyMIDI(io.BytesIO(data))
    pitches = sorted(int(tokenizer[int(x)].split("_")[1]) for x in codes[0, 0] if tokenizer[int(x)].startswith("Pitch_"))
    assert sorted(n.pitch for inst in decoded.instruments for n in inst.notes) == pitches


def test_token_windows_alone_score_each_windows_tokens_after_bos_only(tokenizer, chorale):
    from lossprofile import modality
    from lossprofile.analysis import profile

    lm = random_lm(tokenizer)
    codes, seconds = lm.encode_midi(chorale)
    keep = seconds < 7.5
    codes, seconds = codes[..., : int(keep.sum())], seconds[keep]
    alone = modality.token_windows_alone(lm, codes, seconds, window_seconds=3.0)
    assert np.isnan(alone[seconds < 3.0]).all() and np.isfinite(alone[seconds >= 3.0]).all()
    ids = codes[0, 0]
    for lo in (int(np.argmax(seconds >= 3.0)), int(np.argmax(seconds >= 6.0))):  # each window's first token
        with torch.no_grad():
            logits = lm.model(input_ids=torch.tensor([[lm.bos_id]])).logits[0, -1]
        assert alone[lo] == pytest.approx(float(-torch.log_softmax(logits, -1)[ids[lo]]), abs=1e-4)
    full = lm.token_statistics(codes).nll[0, 0].numpy()
    assert profile.context_gain(full, alone) == pytest.approx(float(np.nanmean(alone - full)), abs=1e-9)


def test_token_log_probs_are_the_distributions_token_statistics_reads_windowed_alike(tokenizer, chorale):
    lm = random_lm(tokenizer, positions=64, window=32, stride=12)
    codes = lm.encode_midi(chorale)[0][..., :90]
    logp = lm.token_log_probs(codes)
    assert logp.shape == (1, 1, 90, lm.cardinality)
    torch.testing.assert_close(-logp.gather(-1, codes[..., None])[..., 0], lm.token_statistics(codes).nll,
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(logp.exp().sum(-1), torch.ones(1, 1, 90), atol=1e-5, rtol=0)
