"""The package's errors: what a user can cause, told apart from bugs.

``LossprofileError`` is the base of every error the package raises on purpose. The command line prints such an
error as one line (``lossprofile --debug ...`` shows the traceback); anything else is a bug and keeps its
traceback. The per-piece loops ([`runner.for_each_piece`][lossprofile.runner.for_each_piece], the profile score, sweeps) skip a piece
only on `BadInputError`, so a bug in scoring fails the run instead of turning every piece into a skip.
"""

from __future__ import annotations


class LossprofileError(Exception):
    """An error the package raises on purpose, with a message fit to show a user as it is."""


class BadInputError(LossprofileError, ValueError):
    """A file (or folder) that cannot be used, the message naming it and the problem: ``path: reason``.

    A ``ValueError`` too, so code written before this class (``except ValueError``) still catches it."""


class ModelLoadError(LossprofileError, RuntimeError):
    """A checkpoint could not be found or read."""


class UsageError(LossprofileError, ValueError):
    """Options that cannot work together or name nothing known (a preset typo, a missing folder), with the fix."""


class MissingInputError(BadInputError, FileNotFoundError):
    """A file or folder that is not there (a ``FileNotFoundError`` too, for code that catches that)."""
