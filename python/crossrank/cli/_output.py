"""Output paths checked before a subcommand starts its work (so a typo fails in a second, not after
an hour of indexing or training)."""

from __future__ import annotations

import os
from pathlib import Path

from .._common import _manifest_format


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (``.`` for a relative path with none)."""
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _writable_parent(path: Path, flag: str) -> None:
    """The folder that would hold ``path`` can be created and written."""
    anchor = _nearest_existing(path.parent)
    if not anchor.is_dir():
        raise NotADirectoryError(f"{flag} {path}: {anchor} is a file, so nothing can be created under it")
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise PermissionError(f"{flag} {path}: {anchor} is not writable; choose another location")


def check_output_dir(path: str | os.PathLike[str], flag: str, *, replaces: str | None = None) -> Path:
    """Refuse an output folder that cannot be written; return it as a Path.

    Parameters
    ----------
    path : path-like
        The folder the command will create (or fill).
    flag : str
        The option that named it, for the message (e.g. ``"--out"``).
    replaces : str, optional
        A saved format's name: a non-empty folder is accepted only when its ``manifest.json`` is of
        this format (the save replaces the folder as a whole).

    Raises
    ------
    NotADirectoryError
        ``path`` (or one of its ancestors) exists and is a file.
    PermissionError
        ``path`` (or the folder that would hold it) is not writable.
    FileExistsError
        ``replaces`` is given and ``path`` holds other files.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise NotADirectoryError(f"{flag} {p}: exists and is a file; give a folder path")
    if p.is_dir():
        if not os.access(p, os.W_OK | os.X_OK):
            raise PermissionError(f"{flag} {p}: the folder is not writable; choose another location")
        if replaces is not None and any(p.iterdir()) and _manifest_format(p) != replaces:
            raise FileExistsError(
                f"{flag} {p}: holds files that are not a saved {replaces!r}; the save would replace the "
                "whole folder, so choose a new or empty one"
            )
    else:
        _writable_parent(p, flag)
    return p


def check_output_file(path: str | os.PathLike[str], flag: str, *, dir_name: str | None = None) -> Path:
    """Refuse an output file that cannot be written; return it as a Path.

    Parameters
    ----------
    path : path-like
        The file the command will write.
    flag : str
        The option that named it, for the message.
    dir_name : str, optional
        When given, a folder at ``path`` is accepted and the file is ``path / dir_name``.

    Raises
    ------
    IsADirectoryError
        ``path`` is a folder (and ``dir_name`` is not given).
    NotADirectoryError
        An ancestor of ``path`` is a file.
    PermissionError
        The file or its folder is not writable.
    """
    p = Path(path)
    if p.is_dir():
        if dir_name is None:
            raise IsADirectoryError(f"{flag} {p}: is a folder; give a file path")
        p = p / dir_name
    if p.exists() and not os.access(p, os.W_OK):
        raise PermissionError(f"{flag} {p}: the file is not writable")
    _writable_parent(p, flag)
    return p
