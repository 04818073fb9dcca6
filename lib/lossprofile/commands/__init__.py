"""The commands that parse their own command line: ``lossprofile NAME ...`` hands the rest of it to ``main`` of
the module here (``lossprofile NAME --help``).

With `lossprofile.cli` (the entry point and the built-in commands) this is the commands layer, the top of
the package (``tests/test_layout.py``): it parses command lines and prints, and the library modules it calls keep
functions only. Each command imports the library when it runs, so ``lossprofile --help`` and every other command
load only what they use.
"""

from __future__ import annotations

from . import bench, gpu_check, model_card, study, tiny_model, tiny_symbolic, validate

# name → (its main, the line ``lossprofile --help`` shows for it)
FORWARDED = {"bench": (bench.main, "published per-file scoring against the engine, in one process"),
             "tiny-model": (tiny_model.main, "REBUILDS: train (or resume) the embedded model, rewriting its shipped "
                            "weights (caches in build/)"),
             "tiny-symbolic": (tiny_symbolic.main, "REBUILDS: train (or resume) the embedded symbolic model, "
                               "rewriting its shipped weights; --measure-card re-measures its card"),
             "model-card": (model_card.main, "RE-MEASURES the embedded model's card (into build/; --write-card: the "
                            "shipped one); lossprofile card NAME shows it"),
             "study": (study.main, "REBUILDS: run (or resume) the embedded model's ablation study (in build/study)"),
             "validate": (validate.main, "leave-one-family-out, properties and ladder of the profile score "
                          "(make validation)"),
             "gpu-check": (gpu_check.main, "measure the GPU pipeline in minutes (make gpu-check)")}
OWN_THREADS = ("tiny-model", "study")  # forwarded commands whose own parser has --threads
