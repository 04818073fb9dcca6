"""The embedded models' training corpus, as each model trains on it, and what a recipe may add to it.

The music is the core's `lossprofile.data.corpus` (music21 scores arranged and rendered like real music),
whose held-out split is also the TrainingSet kind the experiments evaluate. What only training uses is here:

- the audio model's pieces: the rendered ``train`` split as waveforms (`load_corpus`);
- the symbolic model's: every ``train`` score arranged exactly as the audio model heard it and tokenised
  (`token_corpus`, cached per piece in ``build/tiny-symbolic/tokens``);
- texture clouds (`cloud_pieces`: dense crowds of SoundFont effects and noisy hits that never repeat),
  which a recipe may add; the finishing stage of the tiny model does. Every sound comes from the SoundFont: no
  synthetic noise, so the noise the experiments inject stays unseen.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .. import audio, paths
from ..data import corpus, datasets
from ..data.corpus import SAMPLE_RATE, TEXTURES, piece_rng
from ..io import atomic_path, write_text_atomic
from ..models.symbolic.tokens import tokenize
from .recipe import SymbolicRecipe

SYMBOLIC_BUILD_DIR = paths.BUILD_DIR / "tiny-symbolic"  # the symbolic model's tokens, arrangements and checkpoint


# ---- the audio model's pieces -----------------------------------------------------------------------------
def load_corpus(split: str = "train"):
    """The rendered corpus's pieces of ``split`` (building what is missing) → (table, waveforms)."""
    folder = datasets.DATA_DIR / "rendered" / "training"
    table = corpus.build(folder, splits=("train", "heldout"))
    table = table[table["split"] == split].reset_index(drop=True)
    wavs = [audio.load_audio(folder / f, 32000) for f in tqdm(table["file"], desc="loading corpus", unit="piece")]
    return table, wavs


# ---- texture clouds ------------------------------------------------------------------------------------
# Noisy percussion of the GM drum kit: hi-hats, cymbals, clap, tambourine, cabasa, maracas, shaker.
CLOUD_DRUMS = (39, 42, 44, 46, 49, 51, 52, 54, 55, 57, 69, 70, 82)


def texture_cloud(rng: np.random.Generator, seconds: float = 30.0):
    """A crowd of SoundFont sounds that never repeats: many overlapping effect notes, noisy hits or both.

    The corpus's other textures are SoundFont samples played a few at a time, so a texture at one
    pitch sounds the same every time and a model learns to copy it. A dense cloud, 8–40 events
    per second at random times, pitches and velocities, is stationary without repeating, as a
    crowd, surf or a cymbal wash is in a recording. Every sound is a SoundFont sample: no
    synthetic noise. Returns (midi, description, tags).
    """
    import pretty_midi

    midi = pretty_midi.PrettyMIDI()
    kind = int(rng.integers(3))  # 0: effects, 1: effects and hits, 2: hits
    rate = float(rng.uniform(8, 40))  # events per second per part
    names = []
    if kind < 2:
        for program in rng.choice(list(TEXTURES), size=int(rng.integers(1, 4)), replace=False):
            inst = pretty_midi.Instrument(program=int(program), name=TEXTURES[int(program)][0])
            for t in np.sort(rng.uniform(0, seconds, int(rate * seconds))):
                inst.notes.append(pretty_midi.Note(int(rng.integers(50, 110)), int(rng.integers(30, 100)), float(t),
                                                   float(t + rng.uniform(0.2, 2.0))))
            midi.instruments.append(inst)
            names.append(TEXTURES[int(program)][0])
    if kind > 0:
        inst = pretty_midi.Instrument(0, is_drum=True, name="noisy percussion")
        for t in np.sort(rng.uniform(0, seconds, int(2 * rate * seconds))):
            inst.notes.append(pretty_midi.Note(int(rng.integers(50, 110)), int(rng.choice(CLOUD_DRUMS)), float(t),
                                               float(t + 0.1)))
        midi.instruments.append(inst)
        names.append("cymbals")
    return midi, "crowd of " + " and ".join(names), {"texture": "+".join(names), "cloud": True}


def cloud_pieces(count: int, seed: int = 0, seconds: float = 30.0) -> tuple[list[str], list, list[str], list[float]]:
    """``count`` texture clouds (`texture_cloud`): names, MIDI, descriptions and levels (dBFS).

    Nothing is rendered here (`render_cloud` does it), and never into the corpus folder,
    so a recipe that asks for no clouds trains on exactly the corpus it always did. The same
    ``seed`` gives the same clouds.
    """
    names, midis, descriptions, levels = [], [], [], []
    for i in range(count):
        rng = piece_rng(f"cloud-{i:03d}", seed)
        midi, description, _ = texture_cloud(rng, seconds)
        names.append(f"cloud-{i:03d}")
        midis.append(midi)
        descriptions.append(description)
        levels.append(float(rng.uniform(-26.0, -16.0)))  # the corpus's recording levels
    return names, midis, descriptions, levels


def render_cloud(midi, level_dbfs: float, seconds: float = 30.0) -> np.ndarray:
    """A cloud's waveform ``[S]`` at 32 kHz, ``seconds`` long, at ``level_dbfs``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wav = audio.render_midi(midi, SAMPLE_RATE, max_seconds=seconds)[: int(seconds * SAMPLE_RATE)]
    return audio.normalize_rms(wav, target_dbfs=level_dbfs).astype(np.float32)


# ---- the symbolic model's tokens -------------------------------------------------------------------------
def make_tokenizer(recipe: SymbolicRecipe):
    from miditok import REMI, TokenizerConfig

    return REMI(TokenizerConfig(**recipe.tokenizer))


def arranged_midi(job: corpus.Job, cache_dir: Path, recipe: SymbolicRecipe, seed: int = 0):
    """The job's arrangement as the audio model heard it (same draws as ``corpus.render_job``)."""
    return corpus.arranged_midi(job, cache_dir, recipe.max_seconds, seed)


def _tokenize_job(args) -> tuple[str, np.ndarray | None, str]:
    job, cache_dir, recipe = args
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            midi = arranged_midi(job, cache_dir, recipe)
            ids, seconds = tokenize(make_tokenizer(recipe), midi)
        keep = seconds < recipe.max_seconds  # the audio pieces are cut there too
        return job.piece, ids[keep], ""
    except Exception as err:  # music21 and MIDI parsing raise many kinds on odd scores
        return job.piece, None, f"{type(err).__name__}: {err}"


def token_corpus(split: str, recipe: SymbolicRecipe, build_dir: Path = SYMBOLIC_BUILD_DIR, workers: int = 2,
                 limit: int | None = None) -> dict[str, np.ndarray]:
    """piece → token ids of every score of ``split`` (cached per piece in ``build_dir/tokens``; resumable)."""
    from multiprocessing import get_context

    out = build_dir / "tokens" / split
    out.mkdir(parents=True, exist_ok=True)
    cache_dir = build_dir / "midi"
    cache_dir.mkdir(parents=True, exist_ok=True)
    todo = [j for j in corpus.jobs(texture_pieces=0) if j.split == split][:limit]
    missing = [(j, cache_dir, recipe) for j in todo
               if not (out / f"{j.piece}.npy").exists() and not (out / f"{j.piece}.error").exists()]
    bar = tqdm(total=len(missing), desc=f"tokens ({split})", unit="piece")
    results = (get_context("spawn").Pool(workers).imap_unordered(_tokenize_job, missing, chunksize=4)
               if workers > 1 and len(missing) > 1 else map(_tokenize_job, missing))
    for piece, ids, error in results:
        if ids is None or len(ids) < 16:
            write_text_atomic(error or "fewer than 16 tokens", out / f"{piece}.error")
        else:
            with atomic_path(out / f"{piece}.npy", suffix=".tmp.npy") as tmp:
                np.save(tmp, ids.astype(np.int16))
        bar.update()
    bar.close()
    return {j.piece: np.load(out / f"{j.piece}.npy").astype(np.int64) for j in todo
            if (out / f"{j.piece}.npy").exists()}
