"""Repository paths live in lossprofile.paths: the checkout's folders in a checkout, a user folder when installed
elsewhere, each overridable by an environment variable; and the installed wheel runs from another directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lossprofile import paths
from lossprofile.analysis import validation
from lossprofile.data import datasets
from lossprofile.embedded import tiny_model, training_corpus

ROOT = Path(__file__).resolve().parents[1]
NAMES = ['CHECKOUT', 'REPO_ROOT', 'DATA_DIR', 'ASAP_DIR', 'SHARED_ASAP_DIR', 'BUILD_DIR', 'RESULTS_DIR', 'VALIDATION_DIR',
         'PACKAGE_DIR']
# the paths of the package python imports (as installed: every lossprofile import goes through it)
SHOW = f"import json, lossprofile.paths as p; print(json.dumps({{k: str(getattr(p, k)) for k in {NAMES}}}))"
# the same from the module's file alone (it imports nothing of the package, so this skips torch: 0.1 s, not 4)
SHOW_FILE = ("import json, sys, importlib.util as u; s = u.spec_from_file_location('paths', sys.argv[1]); "
             f"p = u.module_from_spec(s); s.loader.exec_module(p); print(json.dumps({{k: str(getattr(p, k)) for k in {NAMES}}}))")


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without the package's own variables (and PYTHONPATH), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOSSPROFILE_") and k != "PYTHONPATH"}
    return {**env, "HF_HUB_OFFLINE": "1", **extra}


def test_in_the_checkout_the_defaults_are_the_checkouts_folders():
    assert paths.CHECKOUT == ROOT and paths.REPO_ROOT == ROOT
    assert paths.BUILD_DIR == ROOT / "build" and paths.RESULTS_DIR == ROOT / "results"
    assert paths.SHARED_ASAP_DIR == ROOT.parent / "shared" / "data" / "asap"  # the workspace's copy beside it
    # the old homes of these names still give them (tests and notebooks import them there)
    assert datasets.REPO_ROOT == paths.REPO_ROOT and datasets.DATA_DIR == paths.DATA_DIR
    assert datasets.ASAP_DIR == paths.ASAP_DIR == paths.DATA_DIR / "asap"
    assert validation.SHARED_ASAP_DIR == paths.SHARED_ASAP_DIR and validation.VALIDATION_DIR == paths.VALIDATION_DIR
    assert tiny_model.WORK_DIR == paths.BUILD_DIR / "tiny-model"
    assert training_corpus.SYMBOLIC_BUILD_DIR == paths.BUILD_DIR / "tiny-symbolic"


def test_a_checkout_is_pyproject_beside_lib_and_nothing_else(tmp_path):
    (tmp_path / "repo" / "lib" / "lossprofile").mkdir(parents=True)
    assert paths.checkout_root(tmp_path / "repo" / "lib" / "lossprofile") is None  # no pyproject.toml
    (tmp_path / "repo" / "pyproject.toml").write_text("[project]\n")
    assert paths.checkout_root(tmp_path / "repo" / "lib" / "lossprofile") == tmp_path / "repo"
    # site-packages: its parent holds no project, whatever lies around it
    (tmp_path / "site-packages" / "lossprofile").mkdir(parents=True)
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    assert paths.checkout_root(tmp_path / "site-packages" / "lossprofile") is None


def test_every_path_is_overridden_by_its_environment_variable(tmp_path):
    env = clean_env(LOSSPROFILE_HOME=str(tmp_path / "home"), LOSSPROFILE_BUILD=str(tmp_path / "b"),
                    LOSSPROFILE_RESULTS=str(tmp_path / "r"), LOSSPROFILE_SHARED_ASAP=str(tmp_path / "asap"))
    show = [sys.executable, "-c", SHOW_FILE, paths.__file__]
    got = json.loads(subprocess.run(show, env=env, cwd=tmp_path, capture_output=True, text=True, check=True).stdout)
    assert got["REPO_ROOT"] == str(tmp_path / "home") and got["DATA_DIR"] == str(tmp_path / "home" / "data")
    assert got["BUILD_DIR"] == str(tmp_path / "b") and got["RESULTS_DIR"] == str(tmp_path / "r")
    assert got["VALIDATION_DIR"] == str(tmp_path / "r" / "validation") and got["SHARED_ASAP_DIR"] == str(tmp_path / "asap")
    env["LOSSPROFILE_DATA"] = str(tmp_path / "d")
    got = json.loads(subprocess.run(show, env=env, cwd=tmp_path, capture_output=True, text=True, check=True).stdout)
    assert got["DATA_DIR"] == str(tmp_path / "d") and got["ASAP_DIR"] == str(tmp_path / "d" / "asap")


@pytest.mark.slow
def test_the_installed_wheel_profiles_a_folder_from_another_directory_and_never_reaches_beside_site_packages(tmp_path):
    # build from a copy of the sources, so the build writes nothing into the checkout
    src = tmp_path / "src"
    shutil.copytree(ROOT / "lib", src / "lib", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy(ROOT / "pyproject.toml", src / "pyproject.toml")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(src)],
                   check=True, env=clean_env())
    (wheel,) = (tmp_path / "dist").glob("lossprofile-*.whl")
    assert "lossprofile/checkpoints/tiny/model.safetensors" in zipfile.ZipFile(wheel).namelist()
    target = tmp_path / "site-packages"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True, env=clean_env())

    elsewhere, home = tmp_path / "elsewhere", tmp_path / "home"
    elsewhere.mkdir()
    (elsewhere / "music").mkdir()
    t = np.arange(7 * 32000) / 32000
    pitch = 220 * 2 ** (np.floor(t * 4) % 5 / 12)
    wav = 0.2 * np.sin(2 * np.pi * np.cumsum(pitch) / 32000) + 0.01 * np.random.default_rng(0).standard_normal(t.size)
    import soundfile

    soundfile.write(elsewhere / "music" / "clip.wav", wav.astype(np.float32), 32000)
    env = clean_env(PYTHONPATH=str(target), HOME=str(home), XDG_CACHE_HOME="")
    got = json.loads(subprocess.run([sys.executable, "-c", SHOW], env=env, cwd=elsewhere, capture_output=True,
                                    text=True, check=True).stdout)
    assert got["PACKAGE_DIR"] == str(target / "lossprofile")  # the installed copy, not the checkout
    assert got["CHECKOUT"] == "None" and got["REPO_ROOT"] == str(home / ".cache" / "lossprofile")
    for name, value in got.items():
        if name != "PACKAGE_DIR":  # nothing beside site-packages, nothing in the checkout
            assert not value.startswith(str(tmp_path / "site-packages")) and not value.startswith(str(ROOT)), name

    run = subprocess.run([sys.executable, "-m", "lossprofile.cli", "profile", "--model", "tiny", "--data", "music",
                          "--out", str(tmp_path / "out"), "--seconds", "6", "--device", "cpu", "--threads", "2"],
                         env=env, cwd=elsewhere, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    table = pd.read_parquet(tmp_path / "out" / "profile_scores.parquet")
    assert table["piece"].tolist() == ["clip"] and np.isfinite(table["mean_nll"]).all()
