"""lossprofile: probe music language models with controlled perturbations and read the shape of
their per-token loss curve.

The public face (what notebooks and users import)::

    import lossprofile as lp
    lm = lp.load_model("tiny")                      # any family: lp.TokenLM is what they all provide
    table = lp.run_experiment(lm, lp.data.pieces("ood", 4), lp.perturb.preset("paper-noise"), "results/x")
    scores = lp.profile_scores(lm, wavs, lm.sample_rate)

Sub-packages: `models` (the protocol, one folder per family, ``load_model``), `perturb`,
`data`, `analysis` (regions, profile score, its validation, musicality measures),
`paper` (the replication the notebooks call), `embedded` (the embedded models' factory),
`commands` (with `cli`, the command line: the top layer).
The core — audio, models, perturb, data, scoring, runner, sweep — never imports ``paper`` or ``embedded``.
"""

import os

# OpenMP's idle threads sleep instead of spinning: on cores shared with other processes, spinning threads wait
# for each other at every parallel region (see lossprofile.threads). Only where torch is not loaded yet and the
# user set nothing.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import audio, data, perturb, stats  # noqa: E402
from .analysis.profile import profile_scores  # noqa: E402
from .models import METHODS, ModelLoadError, TokenLM, TokenStats, load_model  # noqa: E402
from .perturb.probes import ProbeDesign  # noqa: E402
from .runner import piece_summary, run_experiment  # noqa: E402
from .scoring import Scores, score_variants  # noqa: E402
from .threads import set_threads  # noqa: E402

__all__ = ["METHODS", "ModelLoadError", "ProbeDesign", "Scores", "TokenLM", "TokenStats", "audio", "data",
           "load_model", "perturb", "piece_summary", "profile_scores", "run_experiment", "score_variants", "set_threads",
           "stats"]
__version__ = "0.1.0"


def __getattr__(name: str):
    # MusicGen's names, imported on first use so that the core stays free of any one family
    if name in ("MusicLM", "HUB_MODELS"):
        from .models import musicgen

        return getattr(musicgen, name)
    raise AttributeError(f"module 'lossprofile' has no attribute {name!r}")
