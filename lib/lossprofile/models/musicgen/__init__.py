"""The MusicGen family through transformers: model and scoring ([`model`][lossprofile.models.musicgen.model]), the delay pattern
(`delay`), spliced EnCodec encoding of variants (`codec`), the real and embedded
architectures (`architecture`) and audiocraft checkpoints and likelihood (`audiocraft`)."""

from .model import (EMBEDDED, FORMATS, HUB_MODELS, TINY_DIR, MusicLM, checkpoint_fingerprint, claim, claims_folder,
                    load)

__all__ = ["EMBEDDED", "FORMATS", "HUB_MODELS", "TINY_DIR", "MusicLM", "checkpoint_fingerprint", "claim",
           "claims_folder", "load"]
