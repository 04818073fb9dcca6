"""The paper's three kinds of data, built from music that ships with the project.

- ``training``: the embedded model's training corpus (`lossprofile.data.corpus`: scores from
  ``music21`` arranged for several instruments, drums, textures and repeats); its held-out
  split is what the experiments evaluate.
- ``ood``: expressive piano performances (ASAP, ``data/asap``) rendered with piano.
- ``generated``: samples of a model at several top-k values, decoded to audio.

Each built dataset is a folder of FLAC files plus ``manifest.csv``; any folder of
wav/flac/mp3/mid files is a dataset too ([`list_pieces`][lossprofile.data.datasets.list_pieces]).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .. import audio
from ..errors import MissingInputError
from ..io import atomic_path, slug
from ..paths import ASAP_DIR, DATA_DIR, REPO_ROOT  # noqa: F401  (their home is lossprofile.paths; kept here for callers)

SAMPLE_RATE = 32000
# The paper's three kinds of data, and how its figures name them.
KINDS = ("training", "ood", "generated")
KIND_LABELS = {"training": "TrainingSet", "ood": "OOD", "generated": "Generated"}

@dataclass(frozen=True)
class Piece:
    """One piece of a dataset: where its audio is and what it is called."""

    dataset: str
    name: str
    path: Path
    description: str | None = None


def list_pieces(folder: str | os.PathLike, dataset: str | None = None, split: str | None = None) -> list[Piece]:
    """The pieces of a dataset folder: its ``manifest.csv`` if it is one of ours (``piece`` and ``file`` columns),
    else every audio/MIDI file (a dataset's own manifest, such as ASAP's, is not ours), named by its path relative
    to the folder ([`piece_names`][lossprofile.data.datasets.piece_names])."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingInputError(f"{folder}: " + ("not a folder" if folder.exists() else "folder not found") + (
            # only the datasets this package builds can be built; a user's own folder is a path to check
            " (build the datasets with `make data`)" if is_built_dataset(folder) else
            " (give --data an existing folder of wav/flac/mp3/ogg/mid files)"))
    dataset = dataset or folder.name
    manifest = folder / "manifest.csv"
    table = pd.read_csv(manifest) if manifest.exists() else None
    if table is not None and {"piece", "file"} <= set(table.columns):
        if split is not None and "split" in table:
            table = table[table["split"] == split]
        return [Piece(dataset, row["piece"], folder / row["file"], row.get("description"))
                for _, row in table.iterrows()]
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in audio.AUDIO_SUFFIXES + audio.MIDI_SUFFIXES)
    return [Piece(dataset, name, p) for name, p in zip(piece_names(files, folder), files)]


def is_built_dataset(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` is (or lies in) one of the datasets this package renders under ``DATA_DIR``."""
    folder = Path(folder).resolve()
    return any(folder.is_relative_to((DATA_DIR / sub).resolve()) for sub in ("rendered", "generated"))


def piece_names(files: list[Path], folder: Path) -> list[str]:
    """Each file's name as a piece: its path relative to ``folder`` without the extension, or with it where two
    files share that stem (``dup.wav`` beside ``dup.flac``), so that no two files ever become one piece."""
    stems = [p.relative_to(folder).with_suffix("").as_posix() for p in files]
    counts = Counter(stems)
    return [p.relative_to(folder).as_posix() if counts[stem] > 1 else stem for stem, p in zip(stems, files)]


def _write_manifest(folder: Path, rows: list[dict]) -> pd.DataFrame:
    table = pd.DataFrame(rows).sort_values("piece").reset_index(drop=True)
    with atomic_path(folder / "manifest.csv") as tmp:
        table.to_csv(tmp, index=False)
    return table


def build_training_set(out_dir: str | os.PathLike | None = None, splits=("heldout",), first: int | None = None
                       ) -> pd.DataFrame:
    """The TrainingSet kind: the embedded model's corpus (`lossprofile.data.corpus`), rendered to
    ``out_dir`` (default ``data/rendered/training``). Evaluation needs only the held-out split
    (the model never trained on it); ``make tiny-model`` renders the training split too. ``first``: only as
    far as the first ``first`` pieces in name order (`lossprofile.data.corpus.build`).
    """
    from . import corpus

    return corpus.build(Path(out_dir or DATA_DIR / "rendered" / "training"), splits=splits, first=first)


def midi_pieces(folder: str | os.PathLike, n: int | None = None, dataset: str = "ood") -> list[Piece]:
    """The first ``n`` MIDI files of a folder, sorted by path (pieces that take score perturbations)."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in audio.MIDI_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"{folder}: no MIDI files found")
    return [Piece(dataset, str(p.relative_to(folder).with_suffix("")).replace(os.sep, "-"), p) for p in files[:n]]


def heldout_score_midis(n: int | None = None) -> list[Piece]:
    """The scores (as music21 wrote them, before arrangement) of the corpus's held-out pieces: the TrainingSet's MIDI."""
    folder = DATA_DIR / "rendered" / "training"
    build_training_set(folder, splits=("heldout",), first=n)
    table = pd.read_csv(folder / "manifest.csv")
    names = table.loc[table["split"] == "heldout", "piece"]
    paths = [(name, folder / "midi" / f"{name}.mid") for name in names]
    return [Piece("training", name, path) for name, path in paths if path.exists()][:n]


def arranged_training_midis(n: int | None = None, split: str = "heldout") -> list[Piece]:
    """The TrainingSet kind as MIDI, for a model that reads MIDI: each piece's arrangement as its audio plays it
    (`lossprofile.data.corpus.arranged_midi`, written once to ``data/rendered/training/arranged``), under
    the audio piece's name and in the same order. Texture pieces have no score and are left out."""
    from . import corpus

    root = DATA_DIR / "rendered" / "training"
    jobs = {j.piece: j for j in corpus.jobs(texture_pieces=0)}
    first = n
    while True:  # texture pieces have no score: render further until n pieces with one are there
        build_training_set(root, splits=(split,), first=first)
        names = [p.name for p in list_pieces(root, "training", split=split)]
        with_score = sum(name in jobs for name in names[:first])  # the name-order prefix built for sure
        if n is None or with_score >= n or len(names) < (first or 0):
            break
        first += n - with_score
    out = root / "arranged"
    out.mkdir(parents=True, exist_ok=True)
    chosen = []
    for piece in list_pieces(root, "training", split=split):
        if n is not None and len(chosen) == n:
            break
        if piece.name not in jobs:
            continue
        path = out / f"{piece.name}.mid"
        if not path.exists():
            with atomic_path(path) as tmp:
                corpus.arranged_midi(jobs[piece.name], root / "midi").write(str(tmp))
        chosen.append(Piece("training", piece.name, path, piece.description))
    return chosen


def ood_midis(n: int | None = None) -> list[Piece]:
    """The OOD kind as MIDI: the ASAP performances the OOD set renders, under the same names and in its order."""
    root = DATA_DIR / "rendered" / "ood"
    if not (root / "manifest.csv").exists():
        build_ood_set(out_dir=root)
    table = pd.read_csv(root / "manifest.csv").head(n)
    return [Piece("ood", row.piece, ASAP_DIR / row.source.removeprefix("ASAP: "), row.description)
            for row in table.itertuples()]


def build_ood_set(src_dir: str | os.PathLike | None = None, out_dir: str | os.PathLike | None = None,
                  max_seconds: float = 30.0, limit: int | None = None) -> pd.DataFrame:
    """Render ASAP piano performances (any folder of MIDI files) with piano to ``out_dir``."""
    src = Path(src_dir or ASAP_DIR)
    out = Path(out_dir or DATA_DIR / "rendered" / "ood")
    out.mkdir(parents=True, exist_ok=True)
    midis = sorted(p for p in src.rglob("*") if p.suffix.lower() in audio.MIDI_SUFFIXES)[:limit]
    if not midis:
        raise FileNotFoundError(f"{src}: no MIDI files found")
    rows = []
    todo = sum(not (out / f"{str(m.relative_to(src).with_suffix('')).replace(os.sep, '-')}.flac").exists() for m in midis)
    for midi_path in tqdm(midis, desc="OOD set", unit="piece", disable=not todo):
        piece = str(midi_path.relative_to(src).with_suffix("")).replace(os.sep, "-")
        flac = out / f"{piece}.flac"
        if not flac.exists():
            wav = audio.render_midi(midi_path, SAMPLE_RATE, program=0, max_seconds=max_seconds + 10)
            start = audio.first_sound_sample(wav, SAMPLE_RATE)
            audio.save_audio(flac, audio.normalize_rms(wav[start : start + int(max_seconds * SAMPLE_RATE)]),
                             SAMPLE_RATE)
        rows.append(dict(piece=piece, file=flac.name, description="classical piano", split="eval",
                         source=f"ASAP: {midi_path.relative_to(src)}"))
    return _write_manifest(out, rows)


def generated_dir(model_name: str) -> Path:
    """Where a model's generated set lives: ``data/generated/<model name, slashes as _>``."""
    return DATA_DIR / "generated" / slug(model_name)


def generated_is_current(model, folder: Path) -> bool:
    """True when ``folder`` holds a complete generated set of exactly these weights."""
    manifest, marker = folder / "manifest.csv", folder / "weights.txt"
    if not (manifest.exists() and marker.exists() and marker.read_text().strip() == model.fingerprint):
        return False
    table = pd.read_csv(manifest, dtype=str)
    return set(table.get("weights", [None])) == {model.fingerprint} and all((folder / f).exists() for f in table["file"])


def build_generated_set(model, out_dir: str | os.PathLike | None = None, top_ks=(10, 50, 250, 500),
                        per_top_k: int = 5, seconds: float = 15.0, seed: int = 0,
                        batch_size: int = 8) -> pd.DataFrame:
    """Sample ``per_top_k`` pieces from ``model`` at each top-k and decode them, in the form the model reads: to
    audio (FLAC), or to MIDI files for a model that reads MIDI (``seconds`` ×
    `lossprofile.modality.MIDI_TOKENS_PER_SECOND` tokens each)."""
    from ..modality import modality_of  # the modality builds on this module

    modality = modality_of(model)
    out = Path(out_dir or generated_dir(model.name))
    out.mkdir(parents=True, exist_ok=True)
    # Samples already here are kept (an interrupted build resumes) only if the marker says they
    # come from these very weights; otherwise the model was retrained or their origin is unknown.
    marker = out / "weights.txt"
    if not marker.exists() or marker.read_text().strip() != model.fingerprint:
        for old in [*out.glob("*.flac"), *out.glob("*.mid")]:
            old.unlink()
        marker.write_text(model.fingerprint + "\n")
    suffix = modality.sample_suffix
    length = int(round(seconds * modality.tokens_per_second(model)))
    rows = []
    complete = all((out / f"topk{k:04d}-{i:02d}{suffix}").exists() for k in top_ks for i in range(per_top_k))
    for top_k in tqdm(top_ks, desc="generated set", unit="top-k", disable=complete):
        names = [f"topk{top_k:04d}-{i:02d}" for i in range(per_top_k)]
        missing = [i for i, n in enumerate(names) if not (out / f"{n}{suffix}").exists()]
        for lo in range(0, len(missing), batch_size):
            chunk = missing[lo : lo + batch_size]
            # one seed per (top_k, chunk start) so re-runs and partial builds agree
            codes = model.generate(len(chunk), length, top_k=top_k, seed=seed * 100003 + top_k * 1009 + chunk[0])
            modality.write_samples(model, codes, [out / f"{names[i]}{suffix}" for i in chunk])
        rows += [dict(piece=n, file=f"{n}{suffix}", description=f"generated top_k={top_k}", split="eval",
                      top_k=top_k, source=f"{model.name} samples", weights=model.fingerprint) for n in names]
    return _write_manifest(out, rows)


def pieces(kind: str, n: int, lm=None, folder: str | Path | None = None,
           split: str = "heldout") -> list[Piece]:
    """The first ``n`` pieces of a data kind, building the dataset if it is missing.

    ``training`` uses the held-out split (the tiny model never saw it); ``generated``
    takes the samples of ``lm``, spread over its top-k values. For a model that reads MIDI (``lm.reads``) the
    same pieces come as MIDI: the arrangements the training audio plays, the ASAP files, its own samples.
    """
    if folder is not None:  # a relative folder is taken from the working directory, like every path here
        return list_pieces(folder, dataset=kind)[:n]
    if kind in ("training", "ood"):
        from ..modality import modality_of  # the modality builds on this module

        return modality_of(lm).pieces(kind, n, split)
    if kind == "generated":
        if lm is None:
            raise ValueError("the generated set needs the model that generates it")
        root = generated_dir(lm.name)
        if not generated_is_current(lm, root):
            build_generated_set(lm, root)
        table = pd.read_csv(root / "manifest.csv")
        # interleave top-k values so that a small n still spans them
        table["rank"] = table.groupby("top_k").cumcount()
        table = table.sort_values(["rank", "top_k"]).head(n)
        return [Piece("generated", r.piece, root / r.file, r.description) for r in table.itertuples()]
    raise ValueError(f"unknown data kind {kind!r}; expected one of {KINDS}")


def rendered_pieces(kind: str, n: int | None, split: str = "heldout") -> list[Piece]:
    """The first ``n`` pieces of the ``training`` kind (the ``split`` of the corpus, rendered) or the ``ood`` kind
    (ASAP performances rendered with piano), as audio files; each set is built where it is missing."""
    if kind == "training":
        root = DATA_DIR / "rendered" / "training"
        build_training_set(root, splits=(split,), first=n)  # renders only what is missing, only as far as n
        return list_pieces(root, "training", split=split)[:n]
    root = DATA_DIR / "rendered" / "ood"
    if not (root / "manifest.csv").exists():
        build_ood_set(out_dir=root)
    return list_pieces(root, "ood")[:n]


def load_excerpt(piece: Piece, sample_rate: int, seconds: float) -> np.ndarray:
    """The piece's first ``seconds`` of sound as mono float32 ``[S]``; `AudioError` names the file."""
    return audio.load_excerpt_audio(piece.path, sample_rate, seconds)
