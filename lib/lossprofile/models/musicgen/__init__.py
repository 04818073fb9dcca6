"""The MusicGen family through transformers: model and scoring (:mod:`.model`), the delay pattern
(:mod:`.delay`), spliced EnCodec encoding of variants (:mod:`.codec`), the real and embedded
architectures (:mod:`.architecture`) and audiocraft checkpoints and likelihood (:mod:`.audiocraft`)."""

from .model import (EMBEDDED, FORMATS, HUB_MODELS, TINY_DIR, MusicLM, checkpoint_fingerprint, claim, claims_folder,
                    load)

__all__ = ["EMBEDDED", "FORMATS", "HUB_MODELS", "TINY_DIR", "MusicLM", "checkpoint_fingerprint", "claim",
           "claims_folder", "load"]
