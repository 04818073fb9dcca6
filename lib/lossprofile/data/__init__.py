"""Music to score: the paper's three data kinds ([`datasets`][lossprofile.data.datasets]: pieces, excerpts, built sets) and the
music21 corpus the embedded models train on (`corpus`)."""

from .datasets import (ASAP_DIR, DATA_DIR, KIND_LABELS, KINDS, REPO_ROOT, Piece, heldout_score_midis, list_pieces,
                       load_excerpt, midi_pieces, pieces)

__all__ = ["ASAP_DIR", "DATA_DIR", "KINDS", "KIND_LABELS", "REPO_ROOT", "Piece", "heldout_score_midis", "list_pieces",
           "load_excerpt", "midi_pieces", "pieces"]
