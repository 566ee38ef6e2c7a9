"""Exceptions raised by crossrank.

Bad arguments raise the built-in ``ValueError`` / ``TypeError`` / ``IndexError``; a missing optional
dependency raises ``ImportError`` naming the ``pip install "crossrank[extra]"`` to run. Everything
specific to crossrank derives from :class:`CrossrankError`.
"""

from __future__ import annotations

__all__ = ["CrossrankError", "ModelNotFoundError", "StateError", "missing_extra"]


class CrossrankError(Exception):
    """Base class of crossrank's own exceptions."""


class StateError(CrossrankError):
    """A file or object cannot be used: truncated, corrupted, foreign, or of an unknown version."""


class ModelNotFoundError(CrossrankError, FileNotFoundError):
    """A model could not be resolved to local files (missing path, offline hub, no ONNX file)."""


def missing_extra(package: str, extra: str) -> ImportError:
    """Return the ImportError to raise when an optional dependency is missing.

    Parameters
    ----------
    package : str
        The missing import, named in the message (e.g. ``"openvino"``).
    extra : str
        The crossrank extra that installs it: the message says ``pip install "crossrank[<extra>]"``.

    Returns
    -------
    ImportError
        Not raised here; the caller raises it.
    """
    return ImportError(
        f"this feature needs the optional dependency '{package}'; "
        f'install it with: pip install "crossrank[{extra}]"'
    )
