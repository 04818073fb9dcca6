"""The symbolic family: causal LMs over MIDI tokens (transformers + miditok)."""

from .model import EMBEDDED, FORMATS, HUB_MODELS, SymbolicLM, claim, claims_folder, load

__all__ = ["EMBEDDED", "FORMATS", "HUB_MODELS", "SymbolicLM", "claim", "claims_folder", "load"]
