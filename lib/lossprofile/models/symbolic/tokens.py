"""MIDI ↔ tokens for the symbolic family: a miditok tokenizer, and the time (seconds) of every token.

The tokenizer is whatever miditok saved beside the weights (``tokenizer.json``; REMI by default, any
miditok 3 tokenizer loads). Scores are passed around as `symusic.Score`; ``pretty_midi`` objects
(what the rest of the package renders and perturbs) convert through MIDI bytes, so both describe the
same file. Times come from the tokenizer's own events: an event's tick is in the tokenizer's time
division after `miditok.MusicTokenizer.preprocess_score`, and the file's tempo map turns it into seconds (scaled back to the file's own division and tempo map, not the tokenizer's
quantised tempos), so a token lines up with the audio render of the same score to within the
tokenizer's time grid.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np

TOKENIZER_FILE = "tokenizer.json"


def is_miditok_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a tokenizer miditok saved (not a text tokenizer of the same file name)."""
    import json

    try:
        return "tokenization" in json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return False


def load_tokenizer(folder: str | os.PathLike) -> Any:
    """The miditok tokenizer saved in ``folder`` (its class is read from the file)."""
    import miditok

    path = Path(folder) / TOKENIZER_FILE
    params = __import__("json").loads(path.read_text())
    cls = getattr(miditok, params["tokenization"])
    return cls(params=path)


def as_score(midi: Any) -> Any:
    """A `symusic.Score` from a path, MIDI bytes, a ``pretty_midi.PrettyMIDI`` or a Score."""
    import symusic

    if isinstance(midi, symusic.Score):
        return midi
    if isinstance(midi, (str, os.PathLike)):
        return symusic.Score(str(midi))
    if isinstance(midi, (bytes, bytearray)):
        return symusic.Score.from_midi(bytes(midi))
    buffer = io.BytesIO()
    midi.write(buffer)  # pretty_midi
    return symusic.Score.from_midi(buffer.getvalue())


def tick_seconds(score: Any, ticks: np.ndarray) -> np.ndarray:
    """Seconds of ``ticks`` under ``score``'s tempo map (120 qpm before the first tempo event)."""
    ticks = np.asarray(ticks, dtype=np.float64)
    tpq = float(score.ticks_per_quarter)
    starts = np.array([0.0] + [float(t.time) for t in score.tempos])
    qpm = np.array([120.0] + [float(t.qpm) for t in score.tempos])
    order = np.argsort(starts, kind="stable")
    starts, qpm = starts[order], qpm[order]
    seconds_per_tick = 60.0 / (qpm * tpq)
    at_start = np.concatenate([[0.0], np.cumsum(np.diff(starts) * seconds_per_tick[:-1])])
    seg = np.searchsorted(starts, ticks, side="right") - 1
    return at_start[seg] + (ticks - starts[seg]) * seconds_per_tick[seg]


def tokenize(tokenizer: Any, midi: Any) -> tuple[np.ndarray, np.ndarray]:
    """(token ids ``[T]``, time of each token's event in seconds ``[T]``) of a score, one stream.

    A tokenizer that gives one stream per track is refused: the family scores one sequence per piece.
    """
    score = as_score(midi)
    seq = tokenizer.encode(score)
    if isinstance(seq, list):
        if len(seq) != 1:
            raise ValueError(f"the tokenizer gives {len(seq)} streams (one per track); the symbolic family needs "
                             "one (e.g. REMI with use_programs=True, one_token_stream_for_programs=True)")
        seq = seq[0]
    ticks = np.array([e.time for e in seq.events], dtype=np.float64)
    # event ticks are in the tokenizer's time division; the original tempo map (not the tokenizer's quantised
    # tempos) gives the seconds of the audio render
    division = tokenizer.preprocess_score(score.copy()).ticks_per_quarter
    return np.asarray(seq.ids, dtype=np.int64), tick_seconds(score, ticks * score.ticks_per_quarter / division)
