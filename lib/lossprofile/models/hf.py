"""Loading through transformers, shared by the families that use it: quiet, and clear when offline."""

from __future__ import annotations

import contextlib
import os
from typing import Any

import transformers

from .base import ModelLoadError


@contextlib.contextmanager
def quiet_transformers():
    """Silence transformers' warnings and progress bars while loading a model.

    MusicGen's config check warns that the pad/start token id equals the vocabulary size: that is
    MusicGen's design (the special token sits just past the codes), not an error, and users
    should not see it in every notebook.
    """
    verbosity = transformers.logging.get_verbosity()
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers.logging.set_verbosity(verbosity)
        if bars:
            transformers.utils.logging.enable_progress_bar()


def from_pretrained(cls: Any, path: str, **kwargs: Any) -> Any:
    """``cls.from_pretrained(path)``, with an error that says whether the hub was reachable."""
    try:
        return cls.from_pretrained(path, **kwargs)
    except OSError as err:
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        raise ModelLoadError(
            f"cannot load {path!r}: it is neither a local checkpoint nor in the Hugging Face cache, "
            f"and the hub {'is disabled (HF_HUB_OFFLINE=1)' if offline else 'could not be reached'}. "
            f"Download it once with network access (it is then cached). Original error: {err}"
        ) from err
