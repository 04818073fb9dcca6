"""Model families behind one protocol ([`base`][lossprofile.models.base]) and one loader ([`loading`][lossprofile.models.loading])."""

from .base import METHODS, ModelLoadError, TokenLM, TokenStats, frame_statistics
from .loading import embedded_models, load_model, register_family

__all__ = ["METHODS", "ModelLoadError", "TokenLM", "TokenStats", "embedded_models", "frame_statistics", "load_model",
           "register_family"]
