"""Where the package reads and writes outside itself: every such folder in one place, each overridable by an
environment variable (read once, at import).

=====================  ==========================  ===============================================================
name                   environment variable        default
=====================  ==========================  ===============================================================
``REPO_ROOT``          ``LOSSPROFILE_HOME``        the checkout (the folder holding ``pyproject.toml`` and ``lib/``)
                                                   or, installed elsewhere, `user_dir`
``DATA_DIR``           ``LOSSPROFILE_DATA``        ``REPO_ROOT/data`` (built data; the committed ASAP subset)
``ASAP_DIR``           (``DATA_DIR/asap``)          the ASAP performances the notebooks and recipes see
``SHARED_ASAP_DIR``    ``LOSSPROFILE_SHARED_ASAP`` the validation's held-out performances: ``../shared/data/asap``
                                                   beside a checkout, ``REPO_ROOT/shared/data/asap`` otherwise
``BUILD_DIR``          ``LOSSPROFILE_BUILD``       ``REPO_ROOT/build`` (the embedded models' work folders)
``RESULTS_DIR``        ``LOSSPROFILE_RESULTS``     ``REPO_ROOT/results``
``VALIDATION_DIR``     (``RESULTS_DIR/validation``) the validation's tables
=====================  ==========================  ===============================================================

A checkout is recognised by ``pyproject.toml`` beside the ``lib/`` folder this package lives in (also what an
editable install, ``pip install -e .``, points at). A package installed from a wheel lives in site-packages, whose
parent is no project: there the defaults are under `user_dir` (``~/.cache/lossprofile``, or
``$XDG_CACHE_HOME/lossprofile``), never beside site-packages. Commands that take an output folder (``lossprofile
profile --out``) write there, wherever the package is.

This is the lowest layer: it imports nothing of the package.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def checkout_root(package_dir: Path = PACKAGE_DIR) -> Path | None:
    """The checkout that holds ``package_dir`` (as ``<root>/lib/lossprofile`` with ``<root>/pyproject.toml``), else
    None (an installed package)."""
    root = package_dir.parent.parent
    if package_dir.parent.name == "lib" and (root / "pyproject.toml").is_file():
        return root
    return None


def user_dir() -> Path:
    """The package's folder for an installation outside a checkout: ``$XDG_CACHE_HOME/lossprofile`` or
    ``~/.cache/lossprofile``."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "lossprofile"


def _env(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else default


CHECKOUT = checkout_root()
REPO_ROOT = _env("LOSSPROFILE_HOME", CHECKOUT or user_dir())
DATA_DIR = _env("LOSSPROFILE_DATA", REPO_ROOT / "data")
ASAP_DIR = DATA_DIR / "asap"
# the workspace keeps the full ASAP copy beside the checkout (../shared); an installed package keeps it in its own folder
SHARED_ASAP_DIR = _env("LOSSPROFILE_SHARED_ASAP", (REPO_ROOT.parent if CHECKOUT and REPO_ROOT == CHECKOUT else REPO_ROOT)
                       / "shared" / "data" / "asap")
BUILD_DIR = _env("LOSSPROFILE_BUILD", REPO_ROOT / "build")
RESULTS_DIR = _env("LOSSPROFILE_RESULTS", REPO_ROOT / "results")
VALIDATION_DIR = RESULTS_DIR / "validation"

__all__ = ["ASAP_DIR", "BUILD_DIR", "CHECKOUT", "DATA_DIR", "PACKAGE_DIR", "REPO_ROOT", "RESULTS_DIR",
           "SHARED_ASAP_DIR", "VALIDATION_DIR", "checkout_root", "user_dir"]
