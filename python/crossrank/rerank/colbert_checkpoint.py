"""ColBERT checkpoint reading: settings (colbert-ai / PyLate configs), the linear projection, hub side files.

Reads without torch: the projection comes out of ``.safetensors`` with NumPy. Layouts:

* colbert-ai: ``artifact.metadata`` (``query_token_id`` "[unused0]", ``doc_token_id`` "[unused1]",
  ``query_maxlen``, ``doc_maxlen``, ``mask_punctuation``, ``attend_to_mask_tokens``) and
  ``linear.weight`` in ``model.safetensors``;
* PyLate / sentence-transformers: ``config_sentence_transformers.json`` (``query_prefix`` "[Q] ",
  ``document_prefix`` "[D] ", ``query_length``, ``document_length``, ``skiplist_words``, ...) and
  ``1_Dense/model.safetensors``.
"""

from __future__ import annotations

import json
import string
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelNotFoundError, StateError

__all__ = [
    "ColBERTSettings",
    "find_projection",
    "hub_side_files",
    "read_safetensors",
    "settings_from_checkpoint",
]

_SAFETENSORS_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64}


@dataclass(frozen=True)
class ColBERTSettings:
    """How queries and documents are turned into token ids (defaults: ColBERTv2).

    Attributes
    ----------
    query_maxlen, doc_maxlen : int
        Token budgets including [CLS], the marker and [SEP].
    query_marker, doc_marker : str or None
        Marker tokens inserted after [CLS] ("[unused0]"/"[unused1]" in colbert-ai checkpoints,
        "[Q] "/"[D] " in PyLate ones); None inserts nothing.
    query_augmentation : bool
        Pad queries with [MASK] up to ``query_maxlen`` and score those vectors too.
    attend_to_mask_tokens : bool
        Let the encoder attend to the [MASK] padding (colbert-ai default False).
    skiplist : tuple of str
        Document tokens whose vectors are dropped (punctuation).
    source : str
        Where the settings came from: "colbert-ai", "pylate" or "defaults".
    """

    query_maxlen: int = 32
    doc_maxlen: int = 180
    query_marker: str | None = "[unused0]"
    doc_marker: str | None = "[unused1]"
    query_augmentation: bool = True
    attend_to_mask_tokens: bool = False
    skiplist: tuple[str, ...] = tuple(string.punctuation)
    source: str = "defaults"
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StateError(f"{path} is not valid JSON: {e}") from e
    return data if isinstance(data, dict) else None


def settings_from_checkpoint(dirs: Sequence[Path]) -> ColBERTSettings:
    """Read ColBERT settings from a colbert-ai ``artifact.metadata`` or a PyLate config in ``dirs``.

    Parameters
    ----------
    dirs : sequence of Path
        Folders to look in, in order; an ``artifact.metadata`` in any of them wins over a PyLate
        ``config_sentence_transformers.json`` (one with ``query_prefix`` / ``document_prefix``).

    Returns
    -------
    ColBERTSettings
        The settings found, or the defaults when no folder has either file.
    """
    for d in dirs:
        meta = _read_json(d / "artifact.metadata")
        if meta is not None:
            base = ColBERTSettings()
            return replace(
                base,
                query_maxlen=int(meta.get("query_maxlen", base.query_maxlen)),
                doc_maxlen=int(meta.get("doc_maxlen", base.doc_maxlen)),
                query_marker=meta.get("query_token_id", base.query_marker),
                doc_marker=meta.get("doc_token_id", base.doc_marker),
                attend_to_mask_tokens=bool(meta.get("attend_to_mask_tokens", False)),
                skiplist=tuple(string.punctuation) if meta.get("mask_punctuation", True) else (),
                source="colbert-ai",
                extra={"dim": meta.get("dim")},
            )
    for d in dirs:
        st = _read_json(d / "config_sentence_transformers.json")
        if st is not None and ("query_prefix" in st or "document_prefix" in st):
            base = ColBERTSettings()
            skip = st.get("skiplist_words")
            return replace(
                base,
                query_maxlen=int(st.get("query_length") or base.query_maxlen),
                doc_maxlen=int(st.get("document_length") or base.doc_maxlen),
                query_marker=st.get("query_prefix", "[Q] "),
                doc_marker=st.get("document_prefix", "[D] "),
                query_augmentation=bool(st.get("do_query_expansion", True)),
                attend_to_mask_tokens=bool(st.get("attend_to_expansion_tokens", False)),
                skiplist=tuple(skip) if isinstance(skip, list) else base.skiplist,
                source="pylate",
            )
    return ColBERTSettings()


def read_safetensors(path: Path, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Read the named tensors of a ``.safetensors`` file with NumPy (fp32/fp16/fp64/bf16).

    Parameters
    ----------
    path : Path
        The ``.safetensors`` file.
    names : sequence of str
        Tensor names to read; names the file lacks are skipped (absent from the result).

    Returns
    -------
    dict of str to numpy.ndarray
        Name -> float32 array of the stored shape (other dtypes widened or narrowed to float32).

    Raises
    ------
    crossrank.errors.StateError
        A header that does not parse or a tensor that lies outside the file.
    """
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise StateError(f"{path} is not a safetensors file (too short)")
        (n,) = struct.unpack("<Q", raw)
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise StateError(f"{path} has a corrupted safetensors header: {e}") from e
        out: dict[str, np.ndarray] = {}
        for name in names:
            info = header.get(name)
            if info is None:
                continue
            begin, end = info["data_offsets"]
            f.seek(8 + n + begin)
            buf = f.read(end - begin)
            if len(buf) != end - begin:
                raise StateError(f"{path} is truncated (tensor {name!r})")
            if info["dtype"] == "BF16":
                arr = (np.frombuffer(buf, "<u2").astype(np.uint32) << 16).view(np.float32)
            elif info["dtype"] in _SAFETENSORS_DTYPES:
                arr = np.frombuffer(buf, np.dtype(_SAFETENSORS_DTYPES[info["dtype"]]).newbyteorder("<"))
            else:
                raise StateError(f"{path}: tensor {name!r} has unsupported dtype {info['dtype']}")
            out[name] = arr.astype(np.float32).reshape(info["shape"])
        return out


def find_projection(dirs: Sequence[Path]) -> tuple[np.ndarray, np.ndarray | None] | None:
    """Return the checkpoint's linear projection (weight [out, in] float32, bias or None), if any.

    Looks for PyLate's ``1_Dense/model.safetensors`` (``linear.weight``) and colbert-ai's
    ``linear.weight`` in ``model.safetensors``.

    Parameters
    ----------
    dirs : sequence of Path
        Folders to look in, in order; the first one with a projection wins.

    Returns
    -------
    tuple of (numpy.ndarray, numpy.ndarray or None), or None
        Weight float32 [out_dim, in_dim] and bias float32 [out_dim] (None when the layer has no
        bias); None when no folder has a projection.

    Raises
    ------
    crossrank.errors.ModelNotFoundError
        The projection is stored only as ``1_Dense/pytorch_model.bin``.
    crossrank.errors.StateError
        A corrupted or truncated safetensors file.
    """
    for d in dirs:
        for path, prefix in ((d / "1_Dense" / "model.safetensors", ""), (d / "model.safetensors", "")):
            if path.is_file():
                t = read_safetensors(path, [prefix + "linear.weight", prefix + "linear.bias"])
                if "linear.weight" in t:
                    return t["linear.weight"], t.get("linear.bias")
        if (d / "1_Dense" / "pytorch_model.bin").is_file():
            raise ModelNotFoundError(
                f"{d / '1_Dense'} stores its projection as pytorch_model.bin; convert it to "
                "model.safetensors (safetensors.torch.save_file) so crossrank can read it without torch"
            )
    return None


def hub_side_files(model: str, local_files_only: bool) -> Path | None:
    """Fetch the ColBERT-specific files resolve_model does not (metadata, projection) for a hub id.

    Parameters
    ----------
    model : str
        Hugging Face hub model id.
    local_files_only : bool
        Use only the local hub cache (no network).

    Returns
    -------
    Path or None
        The snapshot folder holding the files fetched; None when none of them could be fetched
        (or ``huggingface_hub`` is missing).
    """
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:  # pragma: no cover - a hard dependency
        return None
    root: Path | None = None
    for name in ("artifact.metadata", "config_sentence_transformers.json", "1_Dense/model.safetensors"):
        try:
            p = Path(hf_hub_download(model, name, local_files_only=local_files_only))
            root = p.parents[1] if name.startswith("1_Dense/") else p.parent
        except Exception:
            continue
    return root
