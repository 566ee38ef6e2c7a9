"""Resolve a model name to local files: a Hugging Face layout directory, an ``.onnx`` file, or a hub id.

Every model crossrank runs is an ONNX graph plus a ``tokenizer.json`` (Hugging Face ``tokenizers``) and
the ``config.json`` of the checkpoint it came from. :func:`resolve_model` finds those three, wherever the
model lives:

* a local directory in Hugging Face layout (``model.onnx`` or ``onnx/model.onnx`` beside or under
  ``tokenizer.json``), as written by ``crossrank export`` or found in hub repositories;
* a path to an ``.onnx`` file, with its tokenizer in the same directory or the one above;
* a hub id such as ``cross-encoder/ms-marco-MiniLM-L-6-v2``, downloaded once and cached by
  ``huggingface_hub`` (only the files needed: configs, tokenizer, one ONNX graph). ``HF_ENDPOINT``,
  ``HF_HUB_OFFLINE`` and ``HF_HOME`` are honoured as usual.

A checkpoint without an ONNX graph is exported (``crossrank.models.export``) into crossrank's cache when PyTorch
is installed; otherwise the error names the ``crossrank export`` command to run.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._common import read_json_file
from ..errors import ModelNotFoundError

__all__ = ["ModelFiles", "cache_dir", "resolve_model"]

# Where a hub repository keeps its ONNX graph, in order of preference (Hugging Face / Optimum layout).
_DEFAULT_ONNX = ("onnx/model.onnx", "model.onnx")
# Files besides the graph that a model directory needs: configs (sentence-transformers modules and pooling
# included, for the embedder), the tokenizer, and vocabularies.
_SIDE_FILES = re.compile(r"^([^/]+\.(json|txt|model)|\d+_[^/]+/[^/]+\.json)$")
_WEIGHTS = re.compile(r"^[^/]+\.(safetensors|bin)$|^[^/]+\.safetensors\.index\.json$")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


@dataclass(frozen=True)
class ModelFiles:
    """The local files of one model.

    Attributes
    ----------
    root : Path
        Directory holding the tokenizer and configs.
    onnx_path : Path
        The ONNX graph to run.
    tokenizer_path : Path
        ``tokenizer.json`` (Hugging Face ``tokenizers`` format).
    config : dict
        ``config.json`` of the checkpoint (empty when there is none).
    """

    root: Path
    onnx_path: Path
    tokenizer_path: Path
    config: dict[str, Any] = field(default_factory=dict)

    def read_json(self, name: str) -> dict[str, Any] | None:
        """Return the JSON file ``root / name`` parsed, or None when it does not exist.

        Used for ``config_sentence_transformers.json``, ``modules.json``, ``1_Pooling/config.json``,
        ``tokenizer_config.json`` and the like.

        Parameters
        ----------
        name : str
            Path relative to :attr:`root` (may hold a subfolder, e.g. ``"1_Pooling/config.json"``).

        Returns
        -------
        dict or None
            The parsed object; JSON that is not an object is wrapped as ``{"_": value}``.
        """
        path = self.root / name
        if not path.is_file():
            return None
        data = read_json_file(path)  # a corrupt file is a StateError naming it
        return data if isinstance(data, dict) else {"_": data}


def cache_dir() -> Path:
    """Return crossrank's own cache directory (exports, quantized graphs).

    ``$CROSSRANK_CACHE`` when set, else ``$XDG_CACHE_HOME/crossrank`` or ``~/.cache/crossrank``.
    """
    env = os.environ.get("CROSSRANK_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "crossrank"


def resolve_model(
    name_or_path: str | os.PathLike[str],
    *,
    onnx_file: str | None = None,
    revision: str | None = None,
    hub_cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool = False,
    export_if_missing: bool = True,
    task: str = "cross-encoder",
) -> ModelFiles:
    """Find (download, or export) the ONNX graph, tokenizer and config of a model.

    Parameters
    ----------
    name_or_path : str or PathLike
        A local model directory, a path to an ``.onnx`` file, or a Hugging Face hub id.
    onnx_file : str, optional
        Which graph to use when the model has several, relative to the model root or to its ``onnx/``
        folder (e.g. ``"onnx/model_qint8_avx512.onnx"`` or ``"model_qint8_avx512.onnx"``). Default:
        ``onnx/model.onnx``, then ``model.onnx``.
    revision : str, optional
        Hub branch, tag or commit (default ``main``).
    hub_cache_dir : str or PathLike, optional
        huggingface_hub cache directory (default: its own, ``HF_HOME``).
    local_files_only : bool
        Never touch the network; use the hub cache only.
    export_if_missing : bool
        Export a checkpoint that has no ONNX graph (needs ``crossrank[export]``) into :func:`cache_dir`.
    task : {"cross-encoder", "embedding", "token-embedding"}
        What the graph must output when it has to be exported.

    Returns
    -------
    ModelFiles

    Raises
    ------
    ModelNotFoundError
        The path does not exist, the hub cannot be reached and nothing is cached, the repository has
        no such file, or there is no ONNX graph and it cannot be exported.
    """
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    if path.exists():
        if path.is_file():
            return _from_onnx_file(path)
        return _from_directory(path, onnx_file=onnx_file, export_if_missing=export_if_missing, task=task)
    if text.startswith((".", "/", "~")) or text.endswith(".onnx") or os.sep in text.replace("/", ""):
        raise ModelNotFoundError(
            f"model path {text!r} does not exist; pass a model directory, an .onnx file or a hub id"
        )
    if not _HUB_ID.match(text):
        raise ModelNotFoundError(
            f"{text!r} is neither an existing path nor a Hugging Face hub id like 'cross-encoder/ms-marco-MiniLM-L-6-v2'"
        )
    return _from_hub(
        text,
        onnx_file=onnx_file,
        revision=revision,
        hub_cache_dir=hub_cache_dir,
        local_files_only=local_files_only,
        export_if_missing=export_if_missing,
        task=task,
    )


def _read_config(root: Path) -> dict[str, Any]:
    path = root / "config.json"
    if not path.is_file():
        return {}
    data = read_json_file(path)
    return data if isinstance(data, dict) else {}


def _find_tokenizer(*dirs: Path) -> Path | None:
    for d in dirs:
        if (d / "tokenizer.json").is_file():
            return d / "tokenizer.json"
    return None


def _from_onnx_file(path: Path) -> ModelFiles:
    if path.suffix != ".onnx":
        raise ModelNotFoundError(f"{path} is a file but not an .onnx graph; pass the model directory instead")
    # HF layout keeps graphs in <root>/onnx/, the tokenizer in <root>.
    candidates = [path.parent, path.parent.parent]
    tok = _find_tokenizer(*candidates)
    if tok is None:
        raise ModelNotFoundError(
            f"no tokenizer.json beside {path} (looked in {candidates[0]} and {candidates[1]}); "
            "put the model's tokenizer.json next to the .onnx file"
        )
    root = tok.parent
    return ModelFiles(root=root, onnx_path=path, tokenizer_path=tok, config=_read_config(root))


def _pick_onnx(root: Path, onnx_file: str | None) -> Path | None:
    if onnx_file is not None:
        for cand in (root / onnx_file, root / "onnx" / onnx_file):
            if cand.is_file():
                return cand
        raise ModelNotFoundError(
            f"{root} has no ONNX graph {onnx_file!r} (looked in {root} and {root / 'onnx'})"
        )
    for rel in _DEFAULT_ONNX:
        if (root / rel).is_file():
            return root / rel
    return None


def _from_directory(path: Path, *, onnx_file: str | None, export_if_missing: bool, task: str) -> ModelFiles:
    root = path.resolve()
    onnx = _pick_onnx(root, onnx_file)
    if onnx is None:
        root = _export_to_cache(root, task=task, export_if_missing=export_if_missing)
        onnx = root / "model.onnx"
    tok = _find_tokenizer(root)
    if tok is None:
        raise ModelNotFoundError(
            f"{root} has no tokenizer.json; save the tokenizer with the model (tokenizer.save_pretrained)"
        )
    return ModelFiles(root=root, onnx_path=onnx, tokenizer_path=tok, config=_read_config(root))


def _has_torch() -> bool:
    import importlib.util

    return (
        importlib.util.find_spec("torch") is not None and importlib.util.find_spec("transformers") is not None
    )


def _export_to_cache(checkpoint: Path, *, task: str, export_if_missing: bool) -> Path:
    """Export a checkpoint without ONNX graph into the cache (once) and return the exported directory."""
    hint = f"crossrank export {checkpoint} -o OUT_DIR --task {task}"
    if not any(checkpoint.glob("*.safetensors")) and not any(checkpoint.glob("*.bin")):
        raise ModelNotFoundError(
            f"{checkpoint} has no ONNX graph (onnx/model.onnx or model.onnx) and no weights to export"
        )
    if not export_if_missing or not _has_torch():
        raise ModelNotFoundError(
            f"{checkpoint} has no ONNX graph (onnx/model.onnx or model.onnx); export one with `{hint}` "
            '(needs pip install "crossrank[export]") and load OUT_DIR'
        )
    stamp = hashlib.sha256()
    stamp.update(f"{checkpoint}|{task}".encode())
    for f in sorted(checkpoint.iterdir()):
        if f.is_file():
            stamp.update(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}".encode())
    out = cache_dir() / "exports" / stamp.hexdigest()[:24]
    if not (out / "model.onnx").is_file():
        from .export import export_model

        export_model(checkpoint, out, task=task)
    return out


def _offline_error(repo_id: str, cause: BaseException | None) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"cannot download {repo_id!r} from the Hugging Face hub and it is not in the local cache "
        f"({type(cause).__name__ if cause else 'offline'}: {cause}). Either connect and retry, or point crossrank at "
        "a local copy: pass the model directory (or its .onnx file) instead of the hub id, e.g. after "
        f"`huggingface-cli download {repo_id} --local-dir DIR` on a machine with internet."
    )


def _from_hub(
    repo_id: str,
    *,
    onnx_file: str | None,
    revision: str | None,
    hub_cache_dir: str | os.PathLike[str] | None,
    local_files_only: bool,
    export_if_missing: bool,
    task: str,
) -> ModelFiles:
    try:
        import huggingface_hub as hf
        from huggingface_hub.utils import EntryNotFoundError, RepositoryNotFoundError
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise ImportError('resolving hub ids needs huggingface_hub: pip install "huggingface-hub"') from exc

    cache = os.fspath(hub_cache_dir) if hub_cache_dir is not None else None
    # Read at call time (huggingface_hub reads it once at import).
    endpoint = os.environ.get("HF_ENDPOINT") or None
    offline = local_files_only or os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}
    files: list[str] | None = None
    if not offline:
        try:
            info = hf.HfApi(endpoint=endpoint).model_info(repo_id, revision=revision)
            files = [s.rfilename for s in (info.siblings or [])]
            # Downloads name the revision as given (not the commit) so huggingface_hub records the
            # ref in its cache and an offline run finds the same files.
        except RepositoryNotFoundError as exc:
            raise ModelNotFoundError(
                f"no model {repo_id!r} on the Hugging Face hub (or it is private/gated)"
            ) from exc
        except Exception as exc:  # network down, DNS, timeouts: fall back to the cache
            files = None
            offline_cause: BaseException | None = exc
        else:
            offline_cause = None
    else:
        offline_cause = None

    def fetch(name: str, *, cached_only: bool) -> Path:
        return Path(
            hf.hf_hub_download(
                repo_id,
                name,
                revision=revision,
                cache_dir=cache,
                local_files_only=cached_only,
                endpoint=endpoint,
            )
        )

    if files is None:
        # Offline: take whatever the cache has for the default file set.
        try:
            tok = fetch("tokenizer.json", cached_only=True)
        except Exception as exc:
            raise _offline_error(repo_id, offline_cause or exc) from exc
        for name in (
            "config.json",
            "tokenizer_config.json",
            "special_tokens_map.json",
            "config_sentence_transformers.json",
            "modules.json",
            "1_Pooling/config.json",
        ):
            try:
                fetch(name, cached_only=True)
            except Exception:
                continue
        wanted = [onnx_file] if onnx_file else list(_DEFAULT_ONNX)
        if onnx_file and "/" not in onnx_file:
            wanted.append(f"onnx/{onnx_file}")
        for name in wanted:
            try:
                onnx = fetch(name, cached_only=True)
            except Exception:
                continue
            root = tok.parent
            return ModelFiles(root=root, onnx_path=onnx, tokenizer_path=tok, config=_read_config(root))
        raise _offline_error(repo_id, offline_cause)

    chosen = _choose_hub_onnx(repo_id, files, onnx_file)
    side = [f for f in files if _SIDE_FILES.match(f)]
    if "tokenizer.json" not in files:
        raise ModelNotFoundError(
            f"hub repository {repo_id!r} has no tokenizer.json (only the fast-tokenizer format is supported); "
            "convert it with transformers (AutoTokenizer.from_pretrained(...).save_pretrained(DIR)) and load DIR"
        )
    needed = side + ([chosen] if chosen else [f for f in files if _WEIGHTS.match(f)])
    if chosen:
        # External weights of a large graph sit beside it (model.onnx_data / model.onnx.data).
        needed += [f for f in files if f.startswith(chosen) and f != chosen]
    try:
        paths = {name: fetch(name, cached_only=False) for name in needed}
    except EntryNotFoundError as exc:
        raise ModelNotFoundError(f"hub repository {repo_id!r} lists a file it cannot serve: {exc}") from exc
    except Exception as exc:
        raise _offline_error(repo_id, exc) from exc
    root = paths["tokenizer.json"].parent
    if chosen is None:
        root = _export_to_cache(root, task=task, export_if_missing=export_if_missing)
        onnx = root / "model.onnx"
    else:
        onnx = paths[chosen]
    return ModelFiles(
        root=root, onnx_path=onnx, tokenizer_path=root / "tokenizer.json", config=_read_config(root)
    )


def _choose_hub_onnx(repo_id: str, files: list[str], onnx_file: str | None) -> str | None:
    if onnx_file is not None:
        for cand in (onnx_file, f"onnx/{onnx_file}"):
            if cand in files:
                return cand
        graphs = sorted(f for f in files if f.endswith(".onnx"))
        raise ModelNotFoundError(
            f"hub repository {repo_id!r} has no ONNX graph {onnx_file!r}; it has: {', '.join(graphs) or 'none'}"
        )
    for cand in _DEFAULT_ONNX:
        if cand in files:
            return cand
    return None
