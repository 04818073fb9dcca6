"""One tester over every model family, as transformers runs one tester over all its models: each family's model
is checked against the protocol (:class:`lossprofile.models.base.TokenLM`) and each family's module against what
``load_model`` expects of it (:class:`lossprofile.models.base.FamilyModule`).

The families: MusicGen (a small random checkpoint, tests/conftest.py), the symbolic family (the embedded
``tiny-symbolic``) and the toy DAC family defined only in the tests (tests/models/toy_family.py). A new family
adds one entry to :data:`CASES` and a fixture that gives its model and folder.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from lossprofile import load_model
from lossprofile.models import loading
from lossprofile.models.base import CERTAIN, NO_CLAIM, FamilyModule, ModelLoadError, TokenLM
from lossprofile.models.symbolic.model import TINY_SYMBOLIC_DIR
from tests.models import toy_family


@dataclass
class Case:
    family: str  # the name FAMILIES knows it by
    module: str  # its family module
    folder: str  # a checkpoint folder load_model must resolve to this family
    lm: TokenLM


@pytest.fixture(scope="session")
def toy_folder(tmp_path_factory) -> str:
    return str(toy_family.save_random_checkpoint(tmp_path_factory.mktemp("toy_dac")))


@pytest.fixture
def with_toy_family(monkeypatch):
    """The toy family registered for one test (FAMILIES is global: never left registered)."""
    monkeypatch.setitem(loading.FAMILIES, toy_family.FAMILY, toy_family.__name__)


@pytest.fixture(scope="session")
def toy_lm(toy_folder):
    return toy_family.load(toy_folder, name="toy", device="cpu", dtype=torch.float32)


CASES = ["musicgen", "symbolic", "toy-dac"]


@pytest.fixture(params=CASES)
def case(request, with_toy_family) -> Case:
    if request.param == "musicgen":
        return Case("musicgen", "lossprofile.models.musicgen", request.getfixturevalue("small_checkpoint"),
                    request.getfixturevalue("small_lm"))
    if request.param == "symbolic":
        return Case("symbolic", "lossprofile.models.symbolic", str(TINY_SYMBOLIC_DIR),
                    request.getfixturevalue("tiny_symbolic_lm"))
    return Case(toy_family.FAMILY, toy_family.__name__, request.getfixturevalue("toy_folder"),
                request.getfixturevalue("toy_lm"))


def random_codes(lm: TokenLM, batch: int, frames: int, seed: int) -> torch.Tensor:
    return torch.randint(0, lm.cardinality, (batch, lm.num_codebooks, frames), generator=torch.Generator().manual_seed(seed))


def test_the_model_declares_the_protocols_attributes(case):
    lm = case.lm
    assert isinstance(lm, TokenLM) and lm.family == case.family and lm.reads in ("audio", "midi")
    assert isinstance(lm.name, str) and isinstance(lm.fingerprint, str) and len(lm.fingerprint) >= 8
    assert isinstance(lm.device, torch.device)
    assert isinstance(lm.sample_rate, int) and lm.sample_rate > 0
    assert isinstance(lm.num_codebooks, int) and lm.num_codebooks >= 1
    assert isinstance(lm.cardinality, int) and lm.cardinality >= 2
    assert isinstance(lm.lookahead_frames, int) and 0 <= lm.lookahead_frames < 64
    # the time grid: a whole number of samples per frame, whatever the frame rate
    assert isinstance(lm.hop_length, int) and lm.hop_length * lm.frame_rate == pytest.approx(lm.sample_rate, rel=1e-9)
    assert isinstance(lm.token_unit, str) and lm.token_unit
    assert set(lm.methods) >= {"exact"}


def test_the_family_module_is_what_load_model_dispatches_to(case):
    module = loading.family_module(case.family)
    assert isinstance(module, FamilyModule)
    assert module.claim(case.folder) == CERTAIN
    assert loading.resolve(case.folder) == (case.family, case.folder)
    # no other family claims this folder at all: dispatch cannot depend on the order of FAMILIES
    others = {f: loading.family_module(f).claim(case.folder) for f in loading.FAMILIES if f != case.family}
    assert set(others.values()) == {NO_CLAIM}, others
    loaded = load_model(case.folder, device="cpu")
    assert type(loaded) is type(case.lm) and loaded.fingerprint == case.lm.fingerprint


def test_token_statistics_are_b_k_t_and_deterministic(case):
    lm = case.lm
    codes = random_codes(lm, 2, 12, seed=0)
    stats = lm.token_statistics(codes)
    for name, x in zip(stats._fields, stats):
        assert x.shape == (2, lm.num_codebooks, 12) and x.dtype == torch.float32, name
        assert torch.isfinite(x).all(), name
    assert (stats.nll >= 0).all() and (stats.rank >= 1).all() and (stats.rank <= lm.cardinality).all()
    assert (stats.entropy <= np.log(lm.cardinality) + 1e-4).all()
    again = lm.token_statistics(codes)
    assert all(torch.equal(a, b) for a, b in zip(stats, again))
    # each row is scored on its own: a row's numbers do not depend on what it is batched with
    alone = lm.token_statistics(codes[1:])
    torch.testing.assert_close(alone.nll[0], stats.nll[1], atol=1e-5, rtol=0)


def test_nll_is_minus_the_log_softmax_at_the_true_code_and_a_distribution_over_the_codes(case):
    """Against an independent computation: the model's probability of every value a code could take, each read
    from its own forward pass with that value in place, sums to one and equals the NLL's exp(-nll) at the true code
    and the predictive distribution the family exposes."""
    lm = case.lm
    codes = random_codes(lm, 1, 6, seed=1)
    stats = lm.token_statistics(codes)
    logp = lm.token_log_probs(codes)
    K, V = lm.num_codebooks, lm.cardinality
    assert logp.shape == (1, K, 6, V)
    at_true = -logp.gather(-1, codes[..., None])[..., 0]
    torch.testing.assert_close(stats.nll, at_true, atol=2e-4, rtol=0)
    torch.testing.assert_close(stats.entropy, -(logp.exp() * logp).sum(-1), atol=2e-4, rtol=0)
    k, t = K - 1, 4  # a code with context before it in every family
    every_value = codes.repeat(V, 1, 1)
    every_value[:, k, t] = torch.arange(V)
    p = torch.cat([torch.exp(-lm.token_statistics(every_value[i : i + 256]).nll[:, k, t]) for i in range(0, V, 256)])
    assert float(p.sum()) == pytest.approx(1.0, abs=1e-3)
    torch.testing.assert_close(p.log(), logp[0, k, t], atol=2e-4, rtol=0)


def test_the_declared_lookahead_is_all_a_code_reads_after_its_frame(case):
    """Cutting a piece after frame T' changes no code before T' - lookahead_frames: what windows_alone relies on."""
    lm = case.lm
    codes = random_codes(lm, 1, 16, seed=2)
    full = lm.token_statistics(codes).nll
    cut = 10
    keep = cut - lm.lookahead_frames
    torch.testing.assert_close(lm.token_statistics(codes[..., :cut]).nll[..., :keep], full[..., :keep], atol=2e-4,
                               rtol=0)


def test_generation_gives_codes_of_the_asked_length_reproducibly(case):
    lm = case.lm
    a = lm.generate(2, 5, top_k=20, temperature=1.0, seed=3)
    assert a.shape == (2, lm.num_codebooks, 5) and a.dtype == torch.long
    assert int(a.min()) >= 0 and int(a.max()) < lm.cardinality
    assert torch.equal(a, lm.generate(2, 5, top_k=20, temperature=1.0, seed=3))
    other = lm.generate(2, 5, seed=4)  # the one signature's defaults (top_k 250, temperature 1, no prompt)
    assert other.shape == a.shape and not torch.equal(a, other)


def test_decoding_gives_the_familys_input_form(case):
    lm = case.lm
    # a codec decodes any codes; a MIDI tokenizer needs a sequence its model would write
    codes = random_codes(lm, 2, 6, seed=5) if lm.reads == "audio" else lm.generate(2, 6, top_k=20, seed=5)
    out = lm.decode(codes)
    if lm.reads == "audio":
        assert isinstance(out, torch.Tensor) and out.shape == (2, 1, 6 * lm.hop_length) and out.dtype == torch.float32
        assert torch.isfinite(out).all()
        again = lm.encode(out)  # the grid is consistent: a decoded waveform encodes to as many frames
        assert again.shape == (2, lm.num_codebooks, 6)
        assert torch.equal(lm.encode(out), again)  # deterministic encoding
    else:
        assert isinstance(out, list) and len(out) == 2
        for data in out:
            assert isinstance(data, bytes) and data[:4] == b"MThd"  # a standard MIDI file
            ids, seconds = lm.encode_midi(data)
            assert ids.shape[:2] == (1, lm.num_codebooks) and len(seconds) == ids.shape[-1]


def test_a_folder_two_families_claim_equally_is_an_error_and_an_unknown_one_names_every_format(
        small_checkpoint, tmp_path, with_toy_family):
    both = tmp_path / "both"
    both.mkdir()
    shutil.copy(Path(small_checkpoint) / "config.json", both / "config.json")  # a MusicGen config
    shutil.copy(TINY_SYMBOLIC_DIR / "tokenizer.json", both / "tokenizer.json")  # beside a miditok tokenizer
    with pytest.raises(ModelLoadError, match="claimed equally .* musicgen, symbolic"):
        load_model(both)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError) as err:
        load_model(tmp_path / "empty")
    for family in loading.FAMILIES:
        assert f"{family}: {loading.family_module(family).FORMATS}" in str(err.value)
    assert "audiocraft" in str(err.value) and "miditok" in str(err.value) and "toy_dac.json" in str(err.value)
    # a config.json of another model type is no MusicGen (it used to be claimed by any config.json)
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ModelLoadError, match="no model family recognises"):
        load_model(tmp_path / "bert")


def test_dispatch_does_not_depend_on_the_order_of_the_families(small_checkpoint, toy_folder, monkeypatch):
    folders = {"musicgen": small_checkpoint, "symbolic": str(TINY_SYMBOLIC_DIR), "toy-dac": toy_folder}
    modules = {**loading.FAMILIES, toy_family.FAMILY: toy_family.__name__}
    for order in (["musicgen", "symbolic", "toy-dac"], ["toy-dac", "symbolic", "musicgen"]):
        monkeypatch.setattr(loading, "FAMILIES", {f: modules[f] for f in order})
        assert {f: loading.resolve(folder)[0] for f, folder in folders.items()} == {f: f for f in folders}
        # hub ids: MusicGen's own names with certainty, any other 'org/name' as its fallback guess
        assert loading.resolve("facebook/musicgen-small") == ("musicgen", "facebook/musicgen-small")
        assert loading.resolve("someone/finetuned") == ("musicgen", "someone/finetuned")


def test_a_fractional_frame_rate_has_an_exact_hop_and_whole_frames(toy_lm):
    # DAC at 44.1 kHz: 86.1328125 frames/s (transformers' DacConfig.frame_rate rounds it up to 87)
    assert toy_lm.frame_rate == pytest.approx(86.1328125) and toy_lm.hop_length == 512
    for seconds in (1.0, 1.5):
        wav = torch.from_numpy(toy_family.music(seconds))[None, None]
        # int(seconds * frame_rate), the callers' count of whole frames, is what the codec gives
        assert toy_lm.encode(wav).shape[-1] == int(seconds * toy_lm.frame_rate)
