"""lossprofile: probe music language models with controlled perturbations and read the
shape of their per-token loss curves ("When Noise Lowers the Loss", ICASSP 2026)."""

from .models import HUB_MODELS, METHODS, ModelLoadError, MusicLM, load_model

__all__ = ["HUB_MODELS", "METHODS", "ModelLoadError", "MusicLM", "load_model"]
__version__ = "0.1.0"
