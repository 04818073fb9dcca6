# The README's two commands: `make figures` (main job) and `make test`.
# Both create or reuse .venv and install everything the project needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
MODEL  ?= tiny
DEVICE ?= cpu
DTYPE  ?= auto
export HF_HUB_DISABLE_TELEMETRY := 1
export PYTHONHASHSEED := 0

.PHONY: install lab data figures validation test test-fast docs docs-serve notebook-outputs bench tiny-model tiny-symbolic tiny-symbolic-base model-card study clean-results gpu-check

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	# tinysoundfont declares pyaudio (realtime playback only, needs PortAudio headers); we only render offline
	$(BIN)/python -m pip install -q --no-deps tinysoundfont==0.3.7
	# audiocraft pins torch 2.1 (a multi-GB CUDA build) and an old xformers: both without their requirements
	$(BIN)/python -m pip install -q --no-deps audiocraft==1.3.0 xformers==0.0.35
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

install: $(VENV)/.installed

data: install
	HF_HUB_OFFLINE=1 $(BIN)/lossprofile build-data --model tiny --device cpu

figures: data
	$(BIN)/lossprofile figures --model $(MODEL) --device $(DEVICE) --dtype $(DTYPE)

# The profile score's validation for both embedded models: leave-one-family-out, metric properties and the
# system ladder on 48 held-out ASAP performances (../shared/data/asap minus data/asap), the clean reference of the
# typicality scores (the other 109 ASAP performances, two excerpts each), and the recommended score shipped with
# the package. Over an hour on 2 CPU cores, resumable (results/validation/cache); the small tables it writes to
# results/validation/<modality>/ are committed and `make figures` reads them.
# The symbolic ladder's "weaker model" rung samples tiny-symbolic-base, shipped beside tiny-symbolic (its recipe
# stopped after 300 steps; `make tiny-symbolic-base` rebuilds it), which is also the cross-model score's reference.
# (The audio model's text alignment, `--prompt piano`, is left out: two more passes per version for a score at
# 0.55 mean leave-one-family-out AUROC.)
validation: install
	HF_HUB_OFFLINE=1 $(BIN)/lossprofile validate --model tiny --properties-pieces 24 --ship
	HF_HUB_OFFLINE=1 $(BIN)/lossprofile validate --model tiny-symbolic --weaker tiny-symbolic-base \
		--reference tiny-symbolic-base --properties-pieces 24 --ship

# nbval runs the notebooks with their stored (small) parameters and checks the cells
# marked NBVAL_CHECK_OUTPUT against their stored outputs.
test: data
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest tests notebooks/0*.ipynb --nbval-lax --nbval-current-env

# The layout, contract and unit tests (no notebooks, no test marked slow: trained models at length, end-to-end
# runs, builds; see the slow marker in pyproject.toml), in under 2 minutes on 2 CPU cores. `make test` stays the
# full suite.
test-fast: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest tests -m "not slow"

# The documentation site (mkdocs-material, mkdocstrings, mkdocs-jupyter; pinned in requirements-docs.txt),
# built offline and in strict mode (a broken link, a missing page or an unresolved API reference fails) into
# site/. Generated pages (notebooks/executed/ or, where absent, the stored notebooks; figures/; the model cards;
# the KIND_TABLE/PRESETS and validation tables) come from tools/docs_hooks.py. `make docs-serve` previews it.
$(VENV)/.docs-installed: requirements-docs.txt $(VENV)/.installed
	$(BIN)/python -m pip install -q -r requirements-docs.txt
	touch $@

docs: $(VENV)/.docs-installed
	NO_MKDOCS_2_WARNING=1 HF_HUB_OFFLINE=1 $(BIN)/mkdocs build --strict --site-dir site

docs-serve: $(VENV)/.docs-installed
	NO_MKDOCS_2_WARNING=1 HF_HUB_OFFLINE=1 $(BIN)/mkdocs serve

# After editing a notebook: re-execute it with its own small defaults and store the outputs nbval checks.
notebook-outputs: data
	HF_HUB_OFFLINE=1 $(BIN)/lossprofile store-outputs

bench: install
	$(BIN)/lossprofile bench --model $(MODEL) --device $(DEVICE)

# Resumable: an interrupted run continues from its checkpoints in build/tiny-model.
# DEVICE=cuda trains the base language model on a GPU (minutes; on 2 CPU cores about 7 hours);
# the finishing stage with texture clouds then takes about 20 minutes on 2 CPU cores.
tiny-model: install
	$(BIN)/lossprofile tiny-model --device $(DEVICE)

# JupyterLab on the project's environment (the notebooks import lossprofile from lib/). As root Jupyter
# refuses to start without --allow-root, which is added then. Autosave is off in this environment's JupyterLab
# (settings override in .venv), so running a notebook leaves the tracked file alone until you save it
# yourself; `git checkout notebooks/` undoes a save before you pull.
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings/overrides.json
lab: install
	mkdir -p $(dir $(LAB_SETTINGS))
	echo '{"@jupyterlab/docmanager-extension:plugin": {"autosave": false}}' > $(LAB_SETTINGS)
	PYTHONPATH=lib:$$PYTHONPATH $(BIN)/jupyter lab --notebook-dir=notebooks $(if $(PORT),--port=$(PORT)) $(LAB_ARGS) \
		$$( [ "$$(id -u)" = 0 ] && echo --allow-root )

# The embedded symbolic model (GPT-2 over REMI tokens of the same arrangements; about 40 minutes on 2 CPU
# cores). Resumable from build/tiny-symbolic.
tiny-symbolic: install
	$(BIN)/lossprofile tiny-symbolic --device $(DEVICE)

# The same recipe stopped after 300 steps (its own resume checkpoint, so the full run's is never touched).
tiny-symbolic-base: install
	$(BIN)/lossprofile tiny-symbolic --steps 300 --finish-steps 0 --device $(DEVICE) \
		--out lib/lossprofile/checkpoints/tiny-symbolic-base --checkpoint build/tiny-symbolic/checkpoint-300-steps.pt

# Measures the embedded model and runs (or resumes) its ablation study (build/study).
model-card: install
	HF_HUB_OFFLINE=1 $(BIN)/lossprofile model-card --write-card

study: install
	HF_HUB_OFFLINE=1 $(BIN)/lossprofile study

# On a machine with a GPU: the pipeline's numbers for MusicGen small/medium/large (random weights), the
# smoke sweep, the profile score's cost, the paper sweep projected and (last, within its 8-minute budget) the
# decoder under torch.compile / CUDA graphs for medium, to
# results/gpu-check.md (pyyaml for the projection; without it that step is skipped and named). Runs with that
# machine's own python3 and CUDA torch (GPU_PYTHON), the library from lib/ (nothing to install but
# soundfile, see the README). GPU_CHECK_ARGS adds options, e.g. the compile step alone where the budget left it out:
# make gpu-check GPU_CHECK_ARGS="--steps compile --budget-minutes 9 --out results/gpu-check-compile.md"
GPU_PYTHON ?= python3
gpu-check:
	PYTHONPATH=lib:$$PYTHONPATH HF_HUB_OFFLINE=1 $(GPU_PYTHON) -m lossprofile.cli gpu-check --out results/gpu-check.md $(GPU_CHECK_ARGS)
