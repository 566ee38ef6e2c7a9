"""The bi-encoder :class:`Embedder` on ONNX Runtime / OpenVINO.

The embedder reads everything sentence-transformers would from the model folder: ``modules.json``
(which modules, and whether a ``Normalize`` module follows pooling), the pooling module's
``config.json`` (CLS / mean / max / mean-sqrt-len / last-token pooling), ``sentence_bert_config.json``
(``max_seq_length``) and ``config_sentence_transformers.json`` (prompts, similarity function). With
``precision="fp32"`` the embeddings equal ``SentenceTransformer.encode`` within 1e-4.

Batching: the cross-encoder packer (``crossrank.text.packing``) plans (query, document) *pairs*; an
embedder encodes single texts, so :func:`plan_batches` here does the same job for single sequences:
sort by token count (longest first, stable), cut a batch when ``rows * padded_length`` would pass
the token budget or the row cap, and pad each batch to a multiple of ``pad_multiple`` tokens so
the runtime sees few distinct shapes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .._common import check_texts
from ..errors import StateError

__all__ = ["Embedder", "plan_batches"]

Pooling = Literal["mean", "cls", "max", "mean_sqrt_len", "last"]
# Texts tokenized and length-sorted together (bounds the memory of token lists on big corpora).
_CHUNK = 16384
IndexKind = Literal["flat", "hnsw", "ivfpq"]


# --------------------------------------------------------------------------------------------------
# Batching of single sequences
# --------------------------------------------------------------------------------------------------
def plan_batches(
    lengths: np.ndarray, *, max_batch_tokens: int = 16384, max_batch_size: int = 256, pad_multiple: int = 8
) -> list[tuple[np.ndarray, int]]:
    """Cut sequences into padded batches under a token budget, longest first.

    Parameters
    ----------
    lengths : numpy.ndarray of int, shape [n]
        Token count of each sequence (special tokens included).
    max_batch_tokens : int
        Upper bound of ``rows * padded_length`` per batch (a single longer row still gets a batch).
    max_batch_size : int
        Upper bound of rows per batch.
    pad_multiple : int
        Each batch is padded to its longest row rounded up to this multiple.

    Returns
    -------
    list of (numpy.ndarray of int64, int)
        For each batch, the indices of its rows (into ``lengths``) and its padded length.
    """
    if max_batch_tokens < 1 or max_batch_size < 1 or pad_multiple < 1:
        raise ValueError("max_batch_tokens, max_batch_size and pad_multiple must be >= 1")
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    batches: list[tuple[np.ndarray, int]] = []
    i, n = 0, order.shape[0]
    while i < n:
        longest = int(lengths[order[i]])
        padded = max(pad_multiple, -(-longest // pad_multiple) * pad_multiple)
        rows = max(1, min(max_batch_size, max_batch_tokens // padded, n - i))
        batches.append((order[i : i + rows], padded))
        i += rows
    return batches


# --------------------------------------------------------------------------------------------------
# Embedder
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _STConfig:
    pooling: Pooling
    normalize: bool
    max_length: int
    prompts: dict[str, str]
    similarity: str


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise StateError(f"{path} is not valid JSON ({exc.msg}); re-download the model") from None
    return data if isinstance(data, dict) else None


def _read_st_config(root: Path, model_config: dict[str, Any]) -> _STConfig:
    """Read pooling, normalisation, max length, prompts from a sentence-transformers folder."""
    modules_path = root / "modules.json"
    pooling_dir: Path | None = None
    normalize = False
    if modules_path.is_file():
        try:
            modules = json.loads(modules_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise StateError(f"{modules_path} is not valid JSON ({exc.msg})") from None
        for m in modules if isinstance(modules, list) else []:
            kind = str(m.get("type", ""))
            if kind.endswith(".Pooling"):
                pooling_dir = root / str(m.get("path", ""))
            elif kind.endswith(".Normalize"):
                normalize = True
    elif (root / "1_Pooling" / "config.json").is_file():
        pooling_dir = root / "1_Pooling"
    pooling: Pooling = "mean"  # sentence-transformers' default for a bare transformer
    if pooling_dir is not None:
        pc = _read_json(pooling_dir / "config.json") or {}
        if pc.get("pooling_mode_cls_token"):
            pooling = "cls"
        elif pc.get("pooling_mode_lasttoken"):
            pooling = "last"
        elif pc.get("pooling_mode_max_tokens"):
            pooling = "max"
        elif pc.get("pooling_mode_mean_sqrt_len_tokens"):
            pooling = "mean_sqrt_len"
        else:
            pooling = "mean"
    sb = _read_json(root / "sentence_bert_config.json") or {}
    max_len = sb.get("max_seq_length")
    if not isinstance(max_len, int) or max_len < 1:
        tc = _read_json(root / "tokenizer_config.json") or {}
        limits = [
            v
            for v in (tc.get("model_max_length"), model_config.get("max_position_embeddings"))
            if isinstance(v, int)
        ]
        limits = [v for v in limits if 0 < v < 1_000_000]
        max_len = min(limits) if limits else 512
    stc = _read_json(root / "config_sentence_transformers.json") or {}
    prompts = {str(k): str(v) for k, v in (stc.get("prompts") or {}).items()}
    similarity = str(stc.get("similarity_fn_name") or "cosine")
    return _STConfig(pooling, normalize, int(max_len), prompts, similarity)


class Embedder:
    """Encode texts into vectors with a sentence-transformers model exported to ONNX.

    Parameters
    ----------
    model : str or PathLike
        Model directory (Hugging Face layout with ``onnx/model.onnx``), ``.onnx`` file, or hub id.
    backend : {"auto", "onnxruntime", "openvino"}
        Inference runtime (see :func:`crossrank.models.onnx_session.load_backend`).
    precision : {"auto", "fp32", "bf16", "fp16", "int8"}
        ``fp32`` reproduces sentence-transformers within 1e-4; ``auto`` picks bf16 on CPUs with
        bf16 units (faster, embeddings within ~1e-2).
    num_threads : int, optional
        Inference threads; None = the CPU quota.
    max_length : int, optional
        Token limit per text (default: the model's ``max_seq_length``). Longer texts are cut.
    pooling : {"mean", "cls", "max", "mean_sqrt_len", "last"}, optional
        Override the pooling read from the model.
    normalize : bool, optional
        Override whether vectors are L2-normalised (default: a ``Normalize`` module is present).
    max_batch_tokens, max_batch_size : int
        Batching budget (see :func:`plan_batches`).

    Raises
    ------
    crossrank.errors.ModelNotFoundError
        The model cannot be found.
    crossrank.errors.StateError
        A config file of the model is corrupt.
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        backend: str = "auto",
        precision: str = "auto",
        num_threads: int | None = None,
        max_length: int | None = None,
        pooling: Pooling | None = None,
        normalize: bool | None = None,
        max_batch_tokens: int = 16384,
        max_batch_size: int = 256,
    ) -> None:
        from ..text.tokenization import load_tokenizer
        from .hub import resolve_model
        from .onnx_session import load_backend

        self.files = resolve_model(model, task="embedding")
        cfg = _read_st_config(self.files.root, self.files.config)
        if pooling is not None and pooling not in ("mean", "cls", "max", "mean_sqrt_len", "last"):
            raise ValueError(f"pooling must be mean, cls, max, mean_sqrt_len or last, got {pooling!r}")
        if max_length is not None and (not isinstance(max_length, int) or max_length < 2):
            raise ValueError(f"max_length must be an int >= 2, got {max_length!r}")
        self.pooling: Pooling = pooling or cfg.pooling
        self.normalize = cfg.normalize if normalize is None else bool(normalize)
        self.max_length = max_length or cfg.max_length
        self.prompts = cfg.prompts
        self.similarity = cfg.similarity
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_size = max_batch_size
        self._tokenizer = load_tokenizer(self.files.tokenizer_path)
        self._tokenizer.enable_truncation(self.max_length)
        # Left truncation keeps a text's end; built on first use (a copy, so the two never race).
        self._tokenizer_left: Any = None
        self._tokenizer_full: Any = None  # no truncation: counts what a text would lose (built on use)
        self.session = load_backend(
            self.files.onnx_path, backend=backend, precision=precision, num_threads=num_threads
        )
        self.dim: int | None = None
        self.tokens_encoded = 0

    def __repr__(self) -> str:
        return (
            f"Embedder({self.files.root.name!r}, pooling={self.pooling!r}, normalize={self.normalize}, "
            f"max_length={self.max_length}, session={self.session!r})"
        )

    def _pool(self, hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if hidden.ndim == 2:  # the graph already pools (a "sentence_embedding" output)
            return hidden.astype(np.float32, copy=False)
        h = hidden.astype(np.float32, copy=False)
        m = mask.astype(np.float32)[:, :, None]
        if self.pooling == "cls":
            return h[:, 0]
        if self.pooling == "last":
            last = mask.sum(axis=1).astype(np.int64) - 1  # right padding
            return h[np.arange(h.shape[0]), np.maximum(last, 0)]
        if self.pooling == "max":
            return np.where(m > 0, h, -1e9).max(axis=1)
        summed = (h * m).sum(axis=1)
        count = np.maximum(m.sum(axis=1), 1e-9)
        if self.pooling == "mean_sqrt_len":
            return summed / np.sqrt(count)
        return summed / count

    def _tokenizer_uncut(self) -> Any:
        if self._tokenizer_full is None:
            from ..text.tokenization import load_tokenizer

            self._tokenizer_full = load_tokenizer(self.files.tokenizer_path)  # truncation off
        return self._tokenizer_full

    def _tokenizer_for(self, truncation_direction: str) -> Any:
        if truncation_direction == "right":
            return self._tokenizer
        if truncation_direction != "left":
            raise ValueError(f"truncation_direction must be 'right' or 'left', got {truncation_direction!r}")
        if self._tokenizer_left is None:
            from ..text.tokenization import load_tokenizer

            tok = load_tokenizer(self.files.tokenizer_path)
            tok.enable_truncation(self.max_length, direction="left")
            self._tokenizer_left = tok
        return self._tokenizer_left

    def _prompted(self, texts: Sequence[str], prompt_name: str | None, prompt: str | None) -> list[str]:
        items = check_texts(texts, "texts")
        if prompt is None and prompt_name is not None:
            if prompt_name not in self.prompts:
                raise ValueError(
                    f"model has no prompt {prompt_name!r}; it has {sorted(self.prompts) or 'none'}"
                )
            prompt = self.prompts[prompt_name]
        return [prompt + t for t in items] if prompt else items

    def count_tokens(
        self,
        texts: Sequence[str],
        *,
        prompt_name: str | None = None,
        prompt: str | None = None,
        truncation_direction: Literal["right", "left"] = "right",
        truncate: bool = True,
    ) -> np.ndarray:
        """Tokens :meth:`encode` feeds the model per text (special tokens included, after truncation).

        Parameters
        ----------
        texts : sequence of str
            The texts.
        prompt_name, prompt, truncation_direction
            As in :meth:`encode`.
        truncate : bool
            False: count every token of each text, as if there were no ``max_length`` (a count above
            ``max_length`` means :meth:`encode` would cut that text).

        Returns
        -------
        numpy.ndarray of int64, shape [len(texts)]
        """
        items = self._prompted(texts, prompt_name, prompt)
        tokenizer = self._tokenizer_for(truncation_direction) if truncate else self._tokenizer_uncut()
        encs = tokenizer.encode_batch_fast(items, add_special_tokens=True)
        return np.fromiter((len(e.ids) for e in encs), dtype=np.int64, count=len(encs))

    def encode(
        self,
        texts: Sequence[str],
        *,
        prompt_name: str | None = None,
        prompt: str | None = None,
        show_progress: bool = False,
        truncation_direction: Literal["right", "left"] = "right",
        dimensions: int | None = None,
    ) -> np.ndarray:
        """Embed texts.

        Parameters
        ----------
        texts : sequence of str
        prompt_name : str, optional
            A prompt from the model's ``config_sentence_transformers.json`` (e.g. ``"query"``).
        prompt : str, optional
            A literal prefix prepended to every text (wins over ``prompt_name``).
        show_progress : bool
            Show a tqdm progress bar over texts.
        truncation_direction : {"right", "left"}
            Which end of a text longer than ``max_length`` is cut: ``"right"`` keeps its start (as
            sentence-transformers does), ``"left"`` keeps its end.
        dimensions : int, optional
            Keep only the first ``dimensions`` values of each vector (sentence-transformers'
            ``truncate_dim``, meaningful for Matryoshka-trained models), re-normalised when the model
            normalises.

        Returns
        -------
        numpy.ndarray of float32, shape [len(texts), dim]
            In input order; L2-normalised rows when the model normalises.

        Raises
        ------
        TypeError
            ``texts`` is a single str or holds a non-str.
        ValueError
            Unknown ``prompt_name`` or ``truncation_direction``; ``dimensions`` < 1 or larger than the
            model's.
        """
        if dimensions is not None and (
            isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1
        ):
            raise ValueError(f"dimensions must be an int >= 1, got {dimensions!r}")
        items = self._prompted(texts, prompt_name, prompt)
        tokenizer = self._tokenizer_for(truncation_direction)
        if not items:
            return np.zeros((0, dimensions or self.dim or 0), dtype=np.float32)
        out: np.ndarray | None = None
        want_types = "token_type_ids" in self.session.input_names
        bar = None
        if show_progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(items), desc="embedding", unit="text")
        try:
            # Tokenize and sort a chunk at a time: memory stays bounded for large corpora, and
            # chunks of this size already sort almost as well as the whole corpus would.
            for start in range(0, len(items), _CHUNK):
                chunk = items[start : start + _CHUNK]
                encs = tokenizer.encode_batch_fast(chunk, add_special_tokens=True)
                lengths = np.fromiter((len(e.ids) for e in encs), dtype=np.int64, count=len(encs))
                self.tokens_encoded += int(lengths.sum())
                for rows, width in plan_batches(
                    lengths, max_batch_tokens=self.max_batch_tokens, max_batch_size=self.max_batch_size
                ):
                    ids = np.zeros((rows.shape[0], width), dtype=np.int64)
                    mask = np.zeros((rows.shape[0], width), dtype=np.int64)
                    for r, idx in enumerate(rows.tolist()):
                        seq = encs[idx].ids
                        ids[r, : len(seq)] = seq
                        mask[r, : len(seq)] = 1
                    feeds = {"input_ids": ids, "attention_mask": mask}
                    if want_types:
                        feeds["token_type_ids"] = np.zeros_like(ids)
                    pooled = self._pool(self.session.run(feeds)[0], mask)
                    if out is None:
                        self.dim = int(pooled.shape[1])
                        out = np.empty((len(items), self.dim), dtype=np.float32)
                    out[start + rows] = pooled
                    if bar is not None:
                        bar.update(rows.shape[0])
        finally:
            if bar is not None:
                bar.close()
        assert out is not None
        if dimensions is not None:
            if dimensions > out.shape[1]:
                raise ValueError(f"dimensions={dimensions} is more than this model's {out.shape[1]}")
            out = np.ascontiguousarray(out[:, :dimensions])
        if self.normalize:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            out /= np.maximum(norms, 1e-12)
        return out

    def special_tokens(self) -> tuple[list[int], list[int]]:
        """Return the ids the tokenizer puts before and after a single text (e.g. ``[CLS]``, ``[SEP]``)."""
        enc = self._tokenizer.encode("a", add_special_tokens=True)
        mask = list(enc.special_tokens_mask)
        if 0 not in mask:
            return [int(i) for i in enc.ids], []
        first = mask.index(0)
        last = len(mask) - 1 - mask[::-1].index(0)
        return [int(i) for i in enc.ids[:first]], [int(i) for i in enc.ids[last + 1 :]]

    def encode_token_ids(self, sequences: Sequence[np.ndarray]) -> np.ndarray:
        """Embed texts given as token ids without special tokens (windows of a long document).

        The model's special tokens are added around each sequence; sequences are sorted into padded
        batches under ``max_batch_tokens`` (:func:`plan_batches`) and filled one batch at a time, so
        memory stays bounded however many there are.

        Parameters
        ----------
        sequences : sequence of numpy.ndarray of int
            ``[n_i]`` each, at most ``max_length`` minus the special tokens (views are fine).

        Returns
        -------
        numpy.ndarray of float32, shape [len(sequences), dim]
            In input order; L2-normalised rows when the model normalises.

        Raises
        ------
        ValueError
            A sequence longer than ``max_length`` with its special tokens.
        """
        head, tail = self.special_tokens()
        n_special = len(head) + len(tail)
        lengths = np.fromiter((len(s) + n_special for s in sequences), dtype=np.int64, count=len(sequences))
        if lengths.size and int(lengths.max()) > self.max_length:
            raise ValueError(
                f"a sequence has {int(lengths.max()) - n_special} tokens; at most {self.max_length - n_special} "
                f"fit with the special tokens (max_length={self.max_length})"
            )
        if not len(sequences):
            return np.zeros((0, self.dim or 0), dtype=np.float32)
        want_types = "token_type_ids" in self.session.input_names
        out: np.ndarray | None = None
        self.tokens_encoded += int(lengths.sum())
        for rows, width in plan_batches(
            lengths, max_batch_tokens=self.max_batch_tokens, max_batch_size=self.max_batch_size
        ):
            ids = np.zeros((rows.shape[0], width), dtype=np.int64)
            mask = np.zeros((rows.shape[0], width), dtype=np.int64)
            for r, idx in enumerate(rows.tolist()):
                seq = sequences[idx]
                m = len(seq)
                ids[r, : len(head)] = head
                ids[r, len(head) : len(head) + m] = seq
                ids[r, len(head) + m : len(head) + m + len(tail)] = tail
                mask[r, : m + n_special] = 1
            feeds = {"input_ids": ids, "attention_mask": mask}
            if want_types:
                feeds["token_type_ids"] = np.zeros_like(ids)
            pooled = self._pool(self.session.run(feeds)[0], mask)
            if out is None:
                self.dim = int(pooled.shape[1])
                out = np.empty((len(sequences), self.dim), dtype=np.float32)
            out[rows] = pooled
        assert out is not None
        if self.normalize:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def encode_queries(self, queries: Sequence[str], **kw: Any) -> np.ndarray:
        """Embed queries, with the model's ``query`` prompt when it has one.

        Parameters
        ----------
        queries : sequence of str
            The query texts.
        **kw
            Passed to :meth:`encode` (``show_progress``, ``prompt``, ``prompt_name``); an explicit
            ``prompt`` or ``prompt_name`` replaces the ``query`` prompt.

        Returns
        -------
        numpy.ndarray of float32, shape [len(queries), dim]
            As :meth:`encode`.
        """
        if "query" in self.prompts and "prompt" not in kw and "prompt_name" not in kw:
            kw["prompt_name"] = "query"
        return self.encode(queries, **kw)

    def encode_documents(self, documents: Sequence[str], **kw: Any) -> np.ndarray:
        """Embed documents, with the model's ``document``/``passage`` prompt when it has one.

        Parameters
        ----------
        documents : sequence of str
            The document texts.
        **kw
            Passed to :meth:`encode` (``show_progress``, ``prompt``, ``prompt_name``); an explicit
            ``prompt`` or ``prompt_name`` replaces the model's prompt (``document`` wins over
            ``passage`` when it has both).

        Returns
        -------
        numpy.ndarray of float32, shape [len(documents), dim]
            As :meth:`encode`.
        """
        for name in ("document", "passage"):
            if name in self.prompts and "prompt" not in kw and "prompt_name" not in kw:
                kw["prompt_name"] = name
        return self.encode(documents, **kw)
