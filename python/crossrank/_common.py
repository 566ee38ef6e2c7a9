"""Shared checks, text keys, checksums, manifests and atomic directory saves.

One copy of each rule, so that every public class answers bad input the same way:

- texts: a non-str where text is expected is a ``TypeError`` naming the argument (and the index);
- counts (``k``, ``top_k``, ``num_threads``, sizes): bools and non-ints are ``TypeError``, out of range
  is ``ValueError``, each message naming the argument and the allowed range;
- saved formats: ``manifest.json`` holds ``{"format": NAME, "format_version": INT, ...}``. A reader
  accepts every version from 1 up to the one it writes (older formats stay loadable) and refuses a
  newer one with :class:`~crossrank.errors.StateError` saying "upgrade crossrank". Every manifest
  problem is a ``StateError`` naming the file and the field.
- saves: a directory is written aside and swapped in with one rename (:func:`atomic_directory`), so a
  reader (or a kill -9) never sees half of it, and files already memory-mapped keep their old inodes.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import hashlib
import json
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from .errors import StateError

MANIFEST = "manifest.json"
_T = TypeVar("_T")
VERSION_KEY = "format_version"


# ------------------------------------------------------------------------------------------------
# Argument checks
# ------------------------------------------------------------------------------------------------
def check_text(value: object, name: str) -> str:
    """Return ``value`` if it is a str, else raise ``TypeError`` naming ``name``."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    return value


def check_texts(values: object, name: str) -> list[str]:
    """Return ``values`` as a list of str; a lone str/bytes or a non-str item is a ``TypeError``."""
    if isinstance(values, (str, bytes)):
        raise TypeError(
            f"{name} must be a sequence of str, got a single {type(values).__name__}; wrap it in a list"
        )
    try:
        out = list(values)  # type: ignore[call-overload]
    except TypeError:
        raise TypeError(f"{name} must be a sequence of str, got {type(values).__name__}") from None
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise TypeError(f"{name}[{i}] must be str, got {type(t).__name__}")
    return out


def check_int(value: object, name: str, *, minimum: int = 0, maximum: int | None = None) -> int:
    """Return ``value`` as an int in ``[minimum, maximum]``; bools and non-ints are ``TypeError``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    v = int(value)
    if v < minimum or (maximum is not None and v > maximum):
        allowed = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{name} must be {allowed}, got {v}")
    return v


def check_top_k(top_k: object, n: int) -> int:
    """The one ``top_k`` rule of every reranker: None means all ``n``; else an int >= 1, capped at ``n``."""
    if top_k is None:
        return n
    return min(check_int(top_k, "top_k", minimum=1), n)


def check_bool(value: object, name: str) -> bool:
    """Return ``value`` if it is a bool (NumPy's too); strings such as ``'False'`` are a ``TypeError``."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return bool(value)


def check_int_array(value: object, name: str) -> np.ndarray:
    """Return ``value`` as an int64 array; floats (``1.5``, even ``2.0``), bools and strings are a
    ``TypeError`` naming ``name``, so offsets and positions are never truncated silently."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu" and not (arr.dtype.kind == "O" and arr.size == 0):
        raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}")
    if arr.dtype.kind == "u" and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
        raise ValueError(f"{name} holds a value above the int64 range")
    return arr.astype(np.int64, copy=False)


def check_bool_array(value: object, name: str) -> np.ndarray:
    """Return ``value`` as a bool array; strings (``'False'``), numbers and objects are a
    ``TypeError`` naming ``name`` (``np.asarray(['False']).astype(bool)`` would read True)."""
    arr = np.asarray(value)
    if arr.dtype.kind != "b":
        raise TypeError(f"{name} must hold bools, got dtype {arr.dtype}; e.g. pass np.asarray(mask, bool)")
    return arr


#: The most threads a call may ask for (``num_threads``); the core also never starts more threads
#: than it has work items, so memory stays bounded by the data.
MAX_THREADS = 1024


def core_threads(num_threads: object) -> int:
    """Map the public ``num_threads`` (None = the CPU quota) to the core's convention (0 = quota)."""
    if num_threads is None:
        return 0
    try:
        return check_int(num_threads, "num_threads", minimum=1, maximum=MAX_THREADS)
    except (TypeError, ValueError):
        raise ValueError(
            f"num_threads must be None (use the CPU quota) or an int in [1, {MAX_THREADS}], "
            f"got {num_threads!r}"
        ) from None


def resolve_threads(num_threads: object) -> int:
    """The thread count to use: ``num_threads``, or the cgroup CPU quota when None."""
    n = core_threads(num_threads)
    if n == 0:
        from . import _core

        return int(_core.default_num_threads())
    return n


# ------------------------------------------------------------------------------------------------
# Locks
# ------------------------------------------------------------------------------------------------
class ReadWriteLock:
    """Many readers at once, or one writer; a waiting writer holds back new readers (no starvation).

    Not reentrant: a thread holding either side must not take the lock again.

    Examples
    --------
    >>> lock = ReadWriteLock()
    >>> with lock.read():
    ...     pass
    >>> with lock.write():
    ...     pass
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0

    @contextlib.contextmanager
    def read(self) -> Iterator[None]:
        """Hold the shared (reader) side for the ``with`` block."""
        with self._cond:
            while self._writer or self._waiting_writers:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        """Hold the exclusive (writer) side for the ``with`` block."""
        with self._cond:
            self._waiting_writers += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._waiting_writers -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


# ------------------------------------------------------------------------------------------------
# Keys and checksums
# ------------------------------------------------------------------------------------------------
def text_key(text: str) -> bytes:
    """A 16-byte cache key of ``text``; lone surrogates are encoded, not rejected."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_bytes(data: bytes | memoryview) -> str:
    """Hex SHA-256 of a buffer."""
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------------------------
# Manifests
# ------------------------------------------------------------------------------------------------
def manifest_body(fmt: str, version: int, **fields: Any) -> dict[str, Any]:
    """A manifest dict in the one convention: format name, ``format_version``, writer's version."""
    from . import _core

    return {"format": fmt, VERSION_KEY: version, "crossrank_version": _core.__version__, **fields}


def write_json(path: str | os.PathLike[str], body: Mapping[str, Any]) -> None:
    """Write ``body`` as JSON and fsync it (the caller renames the directory it lives in)."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(body, f, indent=1, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())


def atomic_write_json(path: str | os.PathLike[str], body: Mapping[str, Any]) -> None:
    """Write one JSON file atomically: a temporary sibling, fsync, ``os.replace``, fsync the folder.

    A reader (or a kill -9) sees the old file or the new one, never half of one.
    """
    target = Path(path)
    _remove_stale_asides(target)
    fd, tmp = tempfile.mkstemp(prefix=_aside_prefix(target, "tmp"), dir=target.parent)
    os.close(fd)
    try:
        write_json(tmp, body)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)


def read_json_file(path: str | os.PathLike[str]) -> Any:
    """Parse a JSON file; a file that is not UTF-8 JSON is a ``StateError`` naming it.

    Parameters
    ----------
    path : path-like
        The file (e.g. a model's ``config.json``).

    Raises
    ------
    FileNotFoundError
        No such file.
    StateError
        Unreadable, not UTF-8, not JSON, or nested too deeply.
    """
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise StateError(f"{path}: not a readable JSON file ({exc}); re-create or re-download it") from None


def read_manifest(
    root: str | os.PathLike[str], fmt: str, version: int, *, label: str | None = None
) -> tuple[dict[str, Any], int]:
    """Read ``root/manifest.json`` of format ``fmt``; return it and its version (1..``version``).

    Parameters
    ----------
    root : path-like
        The saved directory.
    fmt : str
        The expected ``format`` field.
    version : int
        The newest version this crossrank reads.
    label : str, optional
        What the directory holds, for messages (e.g. ``"BM25"``); default ``fmt``.

    Raises
    ------
    StateError
        Missing, unreadable or non-JSON file, a foreign format, or a version newer than ``version``
        (the message names the file and the field).
    """
    path = Path(root) / MANIFEST
    try:
        return read_manifest_file(path, fmt, version, label=label)
    except FileNotFoundError:
        raise StateError(
            f"{path}: missing ({root} has no manifest: not a saved crossrank {label or fmt})"
        ) from None


def read_manifest_file(
    path: str | os.PathLike[str], fmt: str, version: int, *, label: str | None = None
) -> tuple[dict[str, Any], int]:
    """Read a standalone manifest-style JSON file (e.g. ``calibration.json``); see :func:`read_manifest`.

    Parameters
    ----------
    path : path-like
        The JSON file.
    fmt, version, label
        As in :func:`read_manifest`.

    Raises
    ------
    FileNotFoundError
        No such file.
    StateError
        As :func:`read_manifest`.
    """
    path = Path(path)
    label = label or fmt
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise StateError(f"{path}: cannot read the manifest, corrupted or not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise StateError(
            f"{path}: not a crossrank {label} manifest (a JSON object is expected, got "
            f"{type(manifest).__name__})"
        )
    if manifest.get("format") != fmt:
        raise StateError(
            f"{path}: not a crossrank {label} manifest (field 'format' is {manifest.get('format')!r}, "
            f"so not a {fmt!r} file)"
        )
    # "version": the key of v0.1 stores (PackedDocStore, DenseIndex, calibration) before the rename.
    key = VERSION_KEY if VERSION_KEY in manifest or "version" not in manifest else "version"
    found = manifest.get(key)
    if isinstance(found, bool) or not isinstance(found, int) or found < 1:
        raise StateError(f"{path}: invalid format version {found!r}: field {key!r} must be an int >= 1")
    if found > version:
        raise StateError(
            f"{path}: format version {found} (field {key!r}) was written by a newer crossrank "
            f"({manifest.get('crossrank_version')}); this one reads up to {version}: upgrade crossrank"
        )
    return manifest, found


def manifest_field(
    manifest: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: object
) -> Any:
    """``manifest[key]`` checked to be of ``kind``; else a ``StateError`` naming ``where`` and ``key``."""
    if key not in manifest:
        raise StateError(f"{where}: field {key!r} is missing")
    value = manifest[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise StateError(f"{where}: field {key!r} must be {_kind_names(kinds)}, got bool")
    if not isinstance(value, kinds):
        raise StateError(f"{where}: field {key!r} must be {_kind_names(kinds)}, got {type(value).__name__}")
    return value


def _kind_names(kinds: Sequence[type]) -> str:
    return " or ".join(k.__name__ for k in kinds)


# ------------------------------------------------------------------------------------------------
# Atomic directory saves
# ------------------------------------------------------------------------------------------------
_RENAME_EXCHANGE = 2
_UMASK = os.umask(0o022)  # read once at import (mkdtemp makes 0o700 folders; saves get the usual mode)
os.umask(_UMASK)


def _host_tag() -> str:
    """This host's name as letters, digits and ``_`` (no ``-``: it separates the name's fields)."""
    return "".join(c if c.isalnum() else "_" for c in socket.gethostname())[:16] or "host"


def _aside_prefix(target: Path, kind: str) -> str:
    """Name prefix of a save's temporary sibling: ``.NAME.KIND-HOST-PID-`` (mkdtemp adds a suffix).

    The host and process id let a later save remove what a killed save left behind (see
    :func:`_remove_stale_asides`) without touching a sibling another live process is writing.
    """
    return f".{target.name}.{kind}-{_host_tag()}-{os.getpid()}-"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it exists, owned by someone else
        return True
    return True


def _remove_stale_asides(target: Path) -> None:
    """Remove ``.NAME.tmp-*`` / ``.NAME.old-*`` siblings of ``target`` left by a killed save on this host.

    A save killed between writing aside and swapping in leaves its temporary directory (or the old
    copy it was removing) behind; for a large index that is as much disk again. Only names this module
    makes (with this host and a process id that no longer runs) are removed: a live writer's, another
    host's (a shared file system) and anything else are left alone.
    """
    heads = tuple(f".{target.name}.{kind}-{_host_tag()}-" for kind in ("tmp", "old"))
    with contextlib.suppress(OSError):
        for sibling in target.parent.iterdir():
            head = next((h for h in heads if sibling.name.startswith(h)), None)
            pid = sibling.name[len(head) :].split("-")[0] if head else ""
            if not pid.isdigit() or _process_alive(int(pid)):
                continue
            if sibling.is_dir() and not sibling.is_symlink():
                shutil.rmtree(sibling, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    sibling.unlink()


def _manifest_format(root: Path) -> object:
    """The ``format`` field of ``root/manifest.json``, or None when unreadable."""
    try:
        with open(root / MANIFEST, encoding="utf-8") as f:
            body = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    return body.get("format") if isinstance(body, dict) else None


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with Linux renameat2(RENAME_EXCHANGE); False where unsupported."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is None:
        return False
    at_fdcwd = -100
    rc = fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    return rc == 0


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _dir_id(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def read_consistent(path: str | os.PathLike[str], read: Callable[[], _T], *, attempts: int = 5) -> _T:
    """Run ``read()`` (which opens files under directory ``path``) until no save swapped the
    directory in the meantime, so it never mixes the files of two saves.

    Every :func:`atomic_directory` save puts a new directory (a new inode) at ``path``: when the
    directory's identity is the same before and after ``read()``, every file came from one save.
    Memory maps taken by ``read()`` stay valid after a later save (the old files keep their inodes).

    Parameters
    ----------
    path : path-like
        The saved directory.
    read : callable
        Opens and validates what is at ``path``.
    attempts : int
        How many times to try while saves keep replacing the directory.

    Raises
    ------
    StateError
        ``path`` was replaced during every attempt; or what ``read()`` raises when no save interfered.
    """
    root = Path(path)
    for attempt in range(attempts):
        before = _dir_id(root)
        try:
            result = read()
        except (StateError, OSError, ValueError):
            if _dir_id(root) != before and attempt + 1 < attempts:
                continue  # a save replaced the directory mid-read: read the new one
            raise
        if _dir_id(root) == before:
            return result
    raise StateError(f"{root} was replaced by {attempts} saves while being opened; open it again")


@contextlib.contextmanager
def atomic_directory(
    path: str | os.PathLike[str], *, overwrite: bool, replaces: str | None = None
) -> Iterator[Path]:
    """Yield a temporary sibling directory to write into; on success it replaces ``path`` in one step.

    The caller writes (and fsyncs) every file, the manifest last. Then the new directory is swapped
    with the old one by an atomic exchange (Linux), or by renaming the old one aside first, and the old
    one is removed. Readers that already memory-mapped the old files keep them (same inodes). On an
    exception nothing at ``path`` changes. An existing empty directory is always replaced.

    Parameters
    ----------
    path : path-like
        The directory to create or replace as a whole.
    overwrite : bool
        Replace an existing non-empty directory.
    replaces : str, optional
        Format name: a non-empty directory is replaced only when its ``manifest.json`` is of this
        format, so a save never deletes a folder of unrelated files.

    Raises
    ------
    FileExistsError
        ``path`` is a non-empty directory and ``overwrite`` is False, or it does not hold a
        ``replaces`` manifest.
    NotADirectoryError
        ``path`` is a file.
    """
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(f"{target} exists and is not a directory; choose another path")
    if target.is_dir() and any(target.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{target} exists; pass overwrite=True to replace it")
        if replaces is not None and _manifest_format(target) != replaces:
            raise FileExistsError(
                f"{target} holds files that are not a saved {replaces!r}; a save replaces the whole "
                "directory, so choose a new or empty one"
            )
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_asides(target)
    tmp = Path(tempfile.mkdtemp(prefix=_aside_prefix(target, "tmp"), dir=target.parent))
    os.chmod(tmp, target.stat().st_mode & 0o7777 if target.is_dir() else 0o777 & ~_UMASK)
    try:
        yield tmp
        _fsync_dir(tmp)
        if target.exists():
            if _exchange(tmp, target):
                shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the old files
            else:
                aside = Path(tempfile.mkdtemp(prefix=_aside_prefix(target, "old"), dir=target.parent))
                os.replace(target, aside / "old")
                os.replace(tmp, target)
                shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
