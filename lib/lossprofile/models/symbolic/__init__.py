"""The symbolic family: causal LMs over MIDI tokens (transformers + miditok)."""

from .model import EMBEDDED, HUB_MODELS, SymbolicLM, claims_folder, load

__all__ = ["EMBEDDED", "HUB_MODELS", "SymbolicLM", "claims_folder", "load"]
