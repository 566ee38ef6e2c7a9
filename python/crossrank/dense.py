"""Dense retrieval: a bi-encoder :class:`Embedder` on ONNX Runtime / OpenVINO, a FAISS :class:`DenseIndex`,
and a :class:`DenseReranker` that rescores candidates with the bi-encoder.

The embedder reads everything sentence-transformers would from the model folder: ``modules.json``
(which modules, and whether a ``Normalize`` module follows pooling), the pooling module's
``config.json`` (CLS / mean / max / mean-sqrt-len / last-token pooling), ``sentence_bert_config.json``
(``max_seq_length``) and ``config_sentence_transformers.json`` (prompts, similarity function). With
``precision="fp32"`` the embeddings equal ``SentenceTransformer.encode`` within 1e-4.

Batching: the cross-encoder packer (``crossrank.packing``) plans (query, document) *pairs*; an
embedder encodes single texts, so :func:`plan_batches` here does the same job for single sequences:
sort by token count (longest first, stable), cut a batch when ``rows * padded_length`` would pass
the token budget or the row cap, and pad each batch to a multiple of ``pad_multiple`` tokens so
the runtime sees few distinct shapes.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeVar

import numpy as np

from .errors import StateError, missing_extra
from .windows import Aggregation

__all__ = [
    "DenseIndex",
    "DenseReranker",
    "DenseRetriever",
    "Embedder",
    "SearchResults",
    "WindowedScores",
    "plan_batches",
]

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


def _check_texts(texts: Any, what: str = "texts") -> list[str]:
    if isinstance(texts, str):
        raise TypeError(f"{what} must be a list of str, got a single str; wrap it: [{what[:-1]}]")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise TypeError(f"{what}[{i}] is {type(t).__name__}, expected str")
    return out


class Embedder:
    """Encode texts into vectors with a sentence-transformers model exported to ONNX.

    Parameters
    ----------
    model : str or PathLike
        Model directory (Hugging Face layout with ``onnx/model.onnx``), ``.onnx`` file, or hub id.
    backend : {"auto", "onnxruntime", "openvino"}
        Inference runtime (see :func:`crossrank.onnx_session.load_backend`).
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
        from .hub import resolve_model
        from .onnx_session import load_backend
        from .tokenization import load_tokenizer

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

    def encode(
        self,
        texts: Sequence[str],
        *,
        prompt_name: str | None = None,
        prompt: str | None = None,
        show_progress: bool = False,
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

        Returns
        -------
        numpy.ndarray of float32, shape [len(texts), dim]
            In input order; L2-normalised rows when the model normalises.

        Raises
        ------
        TypeError
            ``texts`` is a single str or holds a non-str.
        ValueError
            Unknown ``prompt_name``.
        """
        items = _check_texts(texts)
        if prompt is None and prompt_name is not None:
            if prompt_name not in self.prompts:
                raise ValueError(
                    f"model has no prompt {prompt_name!r}; it has {sorted(self.prompts) or 'none'}"
                )
            prompt = self.prompts[prompt_name]
        if prompt:
            items = [prompt + t for t in items]
        if not items:
            return np.zeros((0, self.dim or 0), dtype=np.float32)
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
                encs = self._tokenizer.encode_batch_fast(chunk, add_special_tokens=True)
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
        """Embed queries, with the model's ``query`` prompt when it has one."""
        if "query" in self.prompts and "prompt" not in kw and "prompt_name" not in kw:
            kw["prompt_name"] = "query"
        return self.encode(queries, **kw)

    def encode_documents(self, documents: Sequence[str], **kw: Any) -> np.ndarray:
        """Embed documents, with the model's ``document``/``passage`` prompt when it has one."""
        for name in ("document", "passage"):
            if name in self.prompts and "prompt" not in kw and "prompt_name" not in kw:
                kw["prompt_name"] = name
        return self.encode(documents, **kw)


# --------------------------------------------------------------------------------------------------
# FAISS index
# --------------------------------------------------------------------------------------------------
class SearchResults(NamedTuple):
    """Top-k hits of a batch of queries.

    Attributes
    ----------
    ids : numpy.ndarray of object, shape [nq, k]
        The caller's document ids, best first; ``None`` where fewer than k documents exist.
    scores : numpy.ndarray of float32, shape [nq, k]
        Inner products; ``-inf`` for padding.
    """

    ids: np.ndarray
    scores: np.ndarray


_FORMAT = "crossrank.DenseIndex"
_FORMAT_VERSION = 1


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise missing_extra("faiss-cpu", "dense") from exc
    return faiss


def _gpu_available(faiss: Any) -> bool:
    return hasattr(faiss, "StandardGpuResources") and getattr(faiss, "get_num_gpus", lambda: 0)() > 0


def _check_vectors(x: Any, dim: int | None, what: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array [n, dim], got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating) and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{what} must hold numbers, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{what} have dimension {arr.shape[1]} but the index holds dimension {dim}")
    if arr.shape[1] == 0:
        raise ValueError(f"{what} have dimension 0")
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        raise ValueError(
            f"{what} row {int(np.flatnonzero(bad)[0])} holds NaN or inf ({int(bad.sum())} such rows); "
            "fix or drop those vectors"
        )
    return arr


class DenseIndex:
    """Nearest neighbours by inner product over FAISS, keeping the caller's ids.

    Parameters
    ----------
    dim : int
        Vector dimension.
    kind : {"flat", "hnsw", "ivfpq"}
        ``flat``: exact (``IndexFlatIP``). ``hnsw``: graph index (``IndexHNSWFlat``, ``hnsw_m``
        links, ``ef_search`` at query time). ``ivfpq``: inverted lists over product-quantised codes
        (``nlist`` lists, ``pq_m`` sub-quantisers of ``nbits`` bits, ``nprobe`` lists searched);
        trained on the first :meth:`add` (needs at least ``max(nlist, 2**nbits)`` vectors).
    use_gpu : bool or "auto"
        Put flat and IVF-PQ indexes on the GPU when faiss-gpu and a GPU are present (HNSW stays on
        the CPU: FAISS has no GPU HNSW).
    num_threads : int, optional
        FAISS (OpenMP) threads for add/search; None leaves FAISS's setting.

    Raises
    ------
    ValueError
        ``dim < 1``, unknown ``kind``, bad parameters, or ``use_gpu=True`` without a GPU.
    """

    def __init__(
        self,
        dim: int,
        *,
        kind: IndexKind = "flat",
        hnsw_m: int = 32,
        ef_construction: int = 200,
        ef_search: int = 128,
        nlist: int | None = None,
        pq_m: int | None = None,
        nbits: int = 8,
        nprobe: int = 16,
        use_gpu: bool | Literal["auto"] = "auto",
        num_threads: int | None = None,
    ) -> None:
        faiss = _faiss()
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive int, got {dim!r}")
        if kind not in ("flat", "hnsw", "ivfpq"):
            raise ValueError(f"kind must be 'flat', 'hnsw' or 'ivfpq', got {kind!r}")
        if pq_m is not None and (pq_m < 1 or dim % pq_m):
            raise ValueError(f"pq_m={pq_m} must divide dim={dim}")
        if num_threads is not None and (not isinstance(num_threads, int) or num_threads < 1):
            raise ValueError(f"num_threads must be a positive int or None, got {num_threads!r}")
        gpu = _gpu_available(faiss)
        if use_gpu is True and not gpu:
            raise ValueError(
                "use_gpu=True but faiss has no GPU support here; install faiss-gpu or use use_gpu='auto'"
            )
        self.dim = dim
        self.kind: IndexKind = kind
        self.params = {
            "hnsw_m": hnsw_m,
            "ef_construction": ef_construction,
            "ef_search": ef_search,
            "nlist": nlist,
            "pq_m": pq_m,
            "nbits": nbits,
            "nprobe": nprobe,
        }
        self.num_threads = num_threads
        self._use_gpu = bool(use_gpu) and gpu and kind != "hnsw"
        self._ids: list[Any] = []
        self._id_set: set[Any] = set()
        self._index: Any = None
        self._gpu_res: Any = None
        if kind == "flat":
            self._set_index(faiss.IndexFlatIP(dim))
        elif kind == "hnsw":
            idx = faiss.IndexHNSWFlat(dim, int(hnsw_m), faiss.METRIC_INNER_PRODUCT)
            idx.hnsw.efConstruction = int(ef_construction)
            idx.hnsw.efSearch = int(ef_search)
            self._set_index(idx)
        # ivfpq is created on the first add, when the data size fixes nlist.

    def _set_index(self, cpu_index: Any) -> None:
        faiss = _faiss()
        if self._use_gpu:
            self._gpu_res = faiss.StandardGpuResources()
            self._index = faiss.index_cpu_to_gpu(self._gpu_res, 0, cpu_index)
        else:
            self._index = cpu_index

    @property
    def on_gpu(self) -> bool:
        """Whether the index lives on a GPU."""
        return self._gpu_res is not None

    def __len__(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        return f"DenseIndex(dim={self.dim}, kind={self.kind!r}, size={len(self)}, gpu={self.on_gpu})"

    @property
    def ids(self) -> list[Any]:
        """The caller's ids, in insertion order."""
        return list(self._ids)

    @classmethod
    def build(cls, vectors: Any, ids: Sequence[Any] | None = None, **kwargs: Any) -> DenseIndex:
        """Create an index of ``vectors`` (float32 [n, dim]) with ids (default 0..n-1).

        Raises
        ------
        ValueError
            Empty input, NaN/inf rows, or anything :meth:`add` rejects.
        """
        arr = np.asarray(vectors)
        if arr.ndim != 2 or arr.shape[0] == 0:
            raise ValueError(
                f"cannot build a DenseIndex from {arr.shape} vectors: pass a non-empty [n, dim] array"
            )
        index = cls(int(arr.shape[1]), **kwargs)
        index.add(arr, ids)
        return index

    def _threads(self) -> None:
        if self.num_threads is not None:
            _faiss().omp_set_num_threads(self.num_threads)

    def add(self, vectors: Any, ids: Sequence[Any] | None = None) -> None:
        """Add vectors with their ids.

        Parameters
        ----------
        vectors : array-like of float, shape [n, dim]
        ids : sequence of hashable, optional
            One id per row (str or int); default continues 0, 1, 2, ... from the current size.

        Raises
        ------
        ValueError
            Wrong dimension, NaN/inf rows, ids of the wrong length, duplicate ids, or too few
            vectors to train an IVF-PQ index.
        """
        faiss = _faiss()
        arr = _check_vectors(vectors, self.dim, "vectors")
        n = arr.shape[0]
        if ids is None:
            new_ids: list[Any] = list(range(len(self._ids), len(self._ids) + n))
        else:
            new_ids = [i.item() if isinstance(i, np.generic) else i for i in ids]
            if len(new_ids) != n:
                raise ValueError(f"got {len(new_ids)} ids for {n} vectors; pass one id per row")
        seen = set(self._id_set)
        for i in new_ids:
            if i is None:
                raise ValueError("an id is None; ids must be str or int")
            if i in seen:
                raise ValueError(f"id {i!r} is already in the index (or repeated); ids must be unique")
            seen.add(i)
        if n == 0:
            return
        self._threads()
        if self._index is None:  # ivfpq: create and train on this first batch
            nbits = int(self.params["nbits"])  # type: ignore[arg-type]
            nlist = self.params["nlist"] or max(1, min(4096, int(4 * np.sqrt(n))))
            pq_m = self.params["pq_m"] or next(
                m for m in (48, 32, 24, 16, 12, 8, 6, 4, 3, 2, 1) if self.dim % m == 0
            )
            need = max(int(nlist), 2**nbits)
            if n < need:
                raise ValueError(
                    f"an IVF-PQ index needs at least {need} vectors to train (nlist={nlist}, "
                    f"nbits={nbits}); got {n}: add more at once, lower nlist/nbits, or use kind='flat'"
                )
            quantizer = faiss.IndexFlatIP(self.dim)
            idx = faiss.IndexIVFPQ(
                quantizer, self.dim, int(nlist), int(pq_m), nbits, faiss.METRIC_INNER_PRODUCT
            )
            idx.train(arr)
            idx.nprobe = int(self.params["nprobe"])  # type: ignore[arg-type]
            self.params.update(nlist=int(nlist), pq_m=int(pq_m))
            self._quantizer = quantizer  # keep alive alongside the index
            self._set_index(idx)
        self._index.add(arr)
        self._ids.extend(new_ids)
        self._id_set = seen

    def search(self, queries: Any, k: int = 10) -> SearchResults:
        """Return the ``k`` best documents of each query by inner product.

        Parameters
        ----------
        queries : array-like of float, shape [nq, dim]
        k : int
            Hits per query; rows are padded with id None / score -inf when the index holds fewer.

        Raises
        ------
        ValueError
            ``k < 1``, wrong dimension, NaN/inf queries, or an empty index.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        q = _check_vectors(queries, self.dim, "queries")
        if not self._ids:
            raise ValueError("the index is empty: add vectors before searching")
        kk = min(k, len(self._ids))
        self._threads()
        if self.kind == "hnsw":
            self._index.hnsw.efSearch = max(int(self.params["ef_search"]), kk)  # type: ignore[arg-type]
        scores, labels = self._index.search(q, kk)
        nq = q.shape[0]
        ids = np.full((nq, k), None, dtype=object)
        out_scores = np.full((nq, k), -np.inf, dtype=np.float32)
        valid = labels >= 0
        lookup = np.empty(len(self._ids), dtype=object)
        lookup[:] = self._ids
        ids[:, :kk][valid] = lookup[labels[valid]]
        out_scores[:, :kk][valid] = scores[valid]
        return SearchResults(ids, out_scores)

    # -- persistence ------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the index to a directory: ``index.faiss``, ``ids.json`` and ``manifest.json``.

        The manifest records format version, kind, dimension, size, parameters and the SHA-256 of
        the two data files, so :meth:`load` detects truncation and corruption.
        """
        faiss = _faiss()
        if self._index is None:
            raise ValueError("the IVF-PQ index is untrained and empty; add vectors before saving")
        root = Path(path)
        root.mkdir(parents=True, exist_ok=True)
        cpu = faiss.index_gpu_to_cpu(self._index) if self.on_gpu else self._index
        faiss.write_index(cpu, str(root / "index.faiss"))
        id_types = {type(i).__name__ for i in self._ids}
        if not id_types <= {"str", "int"}:
            raise TypeError(f"ids of type {sorted(id_types)} cannot be saved; use str or int ids")
        (root / "ids.json").write_text(json.dumps(self._ids), encoding="utf-8")
        manifest = {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "kind": self.kind,
            "dim": self.dim,
            "size": len(self._ids),
            "params": self.params,
            "sha256": {name: _sha256(root / name) for name in ("index.faiss", "ids.json")},
        }
        (root / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        use_gpu: bool | Literal["auto"] = "auto",
        num_threads: int | None = None,
    ) -> DenseIndex:
        """Read an index written by :meth:`save`.

        Raises
        ------
        FileNotFoundError
            No such directory.
        crossrank.errors.StateError
            Missing or corrupted files, a foreign or newer format, or sizes that disagree.
        """
        faiss = _faiss()
        root = Path(path)
        if not root.is_dir():
            raise FileNotFoundError(f"no DenseIndex directory at {root}")
        try:
            manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise StateError(f"{root} has no manifest.json: not a saved DenseIndex") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise StateError(f"{root / 'manifest.json'} is corrupted ({exc})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
            raise StateError(f"{root} does not hold a crossrank DenseIndex")
        if manifest.get("version") != _FORMAT_VERSION:
            raise StateError(
                f"{root} has DenseIndex format version {manifest.get('version')}; this crossrank reads "
                f"version {_FORMAT_VERSION} (rebuild the index or upgrade crossrank)"
            )
        for name, digest in (manifest.get("sha256") or {}).items():
            f = root / name
            if not f.is_file():
                raise StateError(f"{f} is missing; the saved index is incomplete")
            if _sha256(f) != digest:
                raise StateError(f"{f} is corrupted (checksum mismatch); rebuild and save the index again")
        try:
            cpu = faiss.read_index(str(root / "index.faiss"))
            ids = json.loads((root / "ids.json").read_text(encoding="utf-8"))
        except Exception as exc:
            raise StateError(f"cannot read the index in {root}: {exc}") from None
        if cpu.d != manifest.get("dim") or cpu.ntotal != manifest.get("size") or len(ids) != cpu.ntotal:
            raise StateError(f"{root}: sizes in the manifest, the FAISS index and ids.json disagree")
        params = dict(manifest.get("params") or {})
        self = cls(int(cpu.d), kind=manifest["kind"], use_gpu=use_gpu, num_threads=num_threads, **params)
        self._set_index(cpu)
        self._ids = list(ids)
        self._id_set = set(self._ids)
        return self


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------------
# Reranker
# --------------------------------------------------------------------------------------------------

_V = TypeVar("_V")


def _lru_trim(cache: OrderedDict[bytes, Any], size: int) -> None:
    """Evict the least recently used entries beyond ``size``."""
    while len(cache) > size:
        cache.popitem(last=False)


def _lru_merge(
    cache: OrderedDict[bytes, _V], keys: Sequence[bytes], fresh: dict[bytes, _V], size: int
) -> list[_V]:
    """Values for ``keys``: freshly computed ones, else cached ones (marked recently used); then
    store the fresh values and evict beyond ``size`` (0 keeps nothing)."""
    out: list[_V] = []
    for k in keys:
        v = fresh.get(k)
        if v is None:
            v = cache[k]
            cache.move_to_end(k)
        out.append(v)
    if size > 0:
        cache.update(fresh)
        _lru_trim(cache, size)
    return out


class DenseReranker:
    """Rescore candidate documents by bi-encoder similarity to the query.

    Document embeddings are cached (keyed by a hash of the text, least recently used dropped past
    ``cache_size``), so documents that come back for several queries are embedded once.

    Parameters
    ----------
    model : Embedder, str or PathLike
        An :class:`Embedder`, or a model to load one from (``embedder_kwargs`` passed on).
    cache_size : int
        Document embeddings kept (0 disables the cache); with windows, one entry holds a document's
        window vectors.
    window_size : int, optional
        Long documents: split each document into windows of this many tokens (default: all the model
        reads, ``max_length`` minus special tokens and the document prompt) and embed each window as
        its own text. Windows are on when ``window_size`` or ``window_stride`` is given.
    window_stride : int, optional
        Tokens between window starts (default ``window_size // 2``); the last window ends at the
        document's end (see :mod:`crossrank.windows`).
    aggregate : {"max", "mean", "first", "topk_mean"}
        How window similarities become the document's score (``first`` = plain truncation to the window).
    aggregate_k : int
        Windows averaged by ``topk_mean``.

    Raises
    ------
    ValueError
        Bad window options (the message gives the accepted range).
    """

    def __init__(
        self,
        model: Embedder | str | os.PathLike[str],
        *,
        cache_size: int = 200_000,
        window_size: int | None = None,
        window_stride: int | None = None,
        aggregate: Aggregation = "max",
        aggregate_k: int = 3,
        **embedder_kwargs: Any,
    ):
        from .windows import check_window_options

        self.embedder = model if isinstance(model, Embedder) else Embedder(model, **embedder_kwargs)
        self.cache_size = int(cache_size)
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._win_cache: OrderedDict[bytes, _DocWindows] = OrderedDict()
        self.timings: dict[str, float] = {}
        self.windowed = window_size is not None or window_stride is not None
        self._prompt_ids: np.ndarray = np.zeros(0, np.int32)
        limit = self.embedder.max_length
        if self.windowed:
            from .tokenization import load_tokenizer

            self._win_tokenizer = load_tokenizer(self.embedder.files.tokenizer_path)  # no truncation
            prompt = next(
                (self.embedder.prompts[n] for n in ("document", "passage") if n in self.embedder.prompts), ""
            )
            if prompt:
                self._prompt_ids = np.asarray(
                    self._win_tokenizer.encode(prompt, add_special_tokens=False).ids, dtype=np.int32
                )
            head, tail = self.embedder.special_tokens()
            limit = self.embedder.max_length - len(head) - len(tail) - len(self._prompt_ids)
        check_window_options(window_size, window_stride, limit, aggregate, aggregate_k)
        self.window_size = window_size if window_size is not None else limit
        self.window_stride = window_stride if window_stride is not None else max(1, self.window_size // 2)
        self.aggregate: Aggregation = aggregate
        self.aggregate_k = aggregate_k

    def __repr__(self) -> str:
        return f"DenseReranker({self.embedder!r})"

    @staticmethod
    def _key(text: str) -> bytes:
        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()

    def embed_documents(self, documents: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        """Return document embeddings (float32 [n, dim]), from the cache where possible."""
        docs = _check_texts(documents, "documents")
        keys = [self._key(d) for d in docs]
        todo: dict[bytes, int] = {}
        for i, k in enumerate(keys):
            if k not in self._cache and k not in todo:
                todo[k] = i
        fresh: dict[bytes, np.ndarray] = {}
        if todo:
            vecs = self.embedder.encode_documents(
                [docs[i] for i in todo.values()], show_progress=show_progress
            )
            fresh = dict(zip(todo, vecs, strict=True))
        rows = _lru_merge(self._cache, keys, fresh, self.cache_size)
        dim = self.embedder.dim or 0
        return np.stack(rows) if rows else np.zeros((0, dim), dtype=np.float32)

    def add_to_cache(self, documents: Sequence[str], vectors: np.ndarray) -> None:
        """Seed the cache with embeddings computed elsewhere (e.g. while indexing the corpus)."""
        docs = _check_texts(documents, "documents")
        vecs = np.asarray(vectors, dtype=np.float32)
        if vecs.ndim != 2 or vecs.shape[0] != len(docs):
            raise ValueError(f"vectors must be [{len(docs)}, dim], got {vecs.shape}")
        for d, v in zip(docs, vecs, strict=True):
            self._cache[self._key(d)] = v
        _lru_trim(self._cache, self.cache_size)

    def score_batch(self, queries: Sequence[str], documents: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """Score many queries' candidates at once: unique documents are embedded in one sorted pass.

        Returns
        -------
        list of numpy.ndarray of float32
            ``[len(documents[i])]`` per query.
        """
        qs = _check_texts(queries, "queries")
        if len(documents) != len(qs):
            raise ValueError(f"got {len(documents)} document lists for {len(qs)} queries")
        flat = [d for docs in documents for d in _check_texts(docs, "documents")]
        doc_vecs = self.embed_documents(flat)
        q_vecs = self.embedder.encode_queries(qs) if qs else np.zeros((0, 0), np.float32)
        out, start = [], 0
        for i, docs in enumerate(documents):
            n = len(docs)
            sims = self._similarity(q_vecs[i], doc_vecs[start : start + n]) if n else np.zeros(0)
            out.append(np.asarray(sims, dtype=np.float32))
            start += n
        return out

    def _similarity(self, q: np.ndarray, d: np.ndarray) -> np.ndarray:
        if self.embedder.similarity == "cosine" and not self.embedder.normalize:
            q = q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-12)
            d = d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-12)
        elif self.embedder.similarity in ("euclidean", "manhattan"):
            ord_ = 2 if self.embedder.similarity == "euclidean" else 1
            return -np.linalg.norm(d - q[None, :], ord=ord_, axis=1)
        return d @ q

    def _windows(self, docs: list[str]) -> list[_DocWindows]:
        """Window vectors and spans of each document (from the cache where possible)."""
        from .windows import tokenize_with_offsets, window_bounds

        tag = f"{self.window_size}/{self.window_stride}".encode()
        keys = [self._key(d) + tag for d in docs]
        todo: dict[bytes, int] = {}
        for i, k in enumerate(keys):
            if k not in self._win_cache and k not in todo:
                todo[k] = i
        fresh: dict[bytes, _DocWindows] = {}
        # A chunk of documents at a time: their token ids and offsets are dropped once embedded.
        todo_items = list(todo.items())
        for c in range(0, len(todo_items), 256):
            chunk = todo_items[c : c + 256]
            toks = tokenize_with_offsets(self._win_tokenizer, [docs[i] for _, i in chunk])
            seqs: list[np.ndarray] = []
            spans = []
            for t in toks:
                starts, ends = window_bounds(len(t.ids), self.window_size, self.window_stride)
                for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
                    w = t.ids[s:e]
                    seqs.append(np.concatenate([self._prompt_ids, w]) if self._prompt_ids.size else w)
                if len(t.ids):
                    cs, ce = t.offsets[starts, 0], t.offsets[ends - 1, 1]
                else:
                    cs = ce = np.zeros(1, np.int64)
                spans.append((starts, ends, cs, ce))
            vecs = self.embedder.encode_token_ids(seqs)
            pos = 0
            for (k, _), (starts, ends, cs, ce) in zip(chunk, spans, strict=True):
                n = len(starts)
                fresh[k] = _DocWindows(vecs[pos : pos + n].copy(), starts, ends, cs, ce)
                pos += n
        return _lru_merge(self._win_cache, keys, fresh, self.cache_size)

    def score_windows(self, query: str, documents: Sequence[str]) -> WindowedScores:
        """Score every window of every document, aggregate per document, and name the winning window.

        Works with windows off too (one window per document: the text as the embedder truncates it).

        Returns
        -------
        WindowedScores
        """
        from .windows import aggregate_windows

        if not isinstance(query, str):
            raise TypeError(f"query must be a str, got {type(query).__name__}")
        docs = _check_texts(documents, "documents")
        q = self.embedder.encode_queries([query])[0]
        if not self.windowed:
            sims = self._similarity(q, self.embed_documents(docs)) if docs else np.zeros(0)
            z = np.zeros(len(docs), np.int64)
            offs = np.arange(len(docs) + 1, dtype=np.int64)
            return WindowedScores(
                np.asarray(sims, np.float64), np.asarray(sims, np.float64), offs, z, z, z, z - 1, z - 1
            )
        wins = self._windows(docs)
        counts = np.array([len(w.starts) for w in wins], dtype=np.int64)
        offsets = np.zeros(len(docs) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        if not docs:
            e = np.zeros(0, np.int64)
            return WindowedScores(np.zeros(0), np.zeros(0), offsets, e, e, e, e, e)
        window_scores = np.concatenate([self._similarity(q, w.vectors) for w in wins]).astype(np.float64)
        agg, best = aggregate_windows(window_scores, offsets, self.aggregate, self.aggregate_k)

        def pick(attr: str) -> np.ndarray:
            return np.array([getattr(w, attr)[b] for w, b in zip(wins, best.tolist(), strict=True)], np.int64)

        return WindowedScores(
            agg,
            window_scores,
            offsets,
            best,
            pick("starts"),
            pick("ends"),
            pick("char_starts"),
            pick("char_ends"),
        )

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        """Return the similarity of each document to the query (float32 [n]; cosine for cosine models).

        With windows, the aggregated similarity of the document's windows (``aggregate``).
        """
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, got {type(query).__name__}")
        t0 = time.perf_counter()
        if self.windowed:
            out = self.score_windows(query, documents).scores.astype(np.float32)
            self.timings = {"rerank_s": time.perf_counter() - t0}
            return out
        docs = self.embed_documents(documents)
        q = self.embedder.encode_queries([query])[0]
        out = self._similarity(q, docs).astype(np.float32) if docs.shape[0] else np.zeros(0, np.float32)
        self.timings = {"rerank_s": time.perf_counter() - t0}
        return out

    def rank(self, query: str, documents: Sequence[str], top_k: int | None = None) -> list[dict[str, Any]]:
        """Rank documents for a query; like ``CrossEncoder.rank``.

        Returns
        -------
        list of dict
            ``{"corpus_id": index into documents, "score": float}``, best first (ties by index); with
            windows also ``"window": {"index", "start_token", "end_token", "start_char", "end_char"}``
            of the best window (``documents[i][start_char:end_char]`` is its text).
        """
        if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
            raise ValueError(f"top_k must be a positive int or None, got {top_k!r}")
        if not self.windowed:
            scores = self.score(query, documents)
            order = np.argsort(-scores, kind="stable")[:top_k]
            return [{"corpus_id": int(i), "score": float(scores[i])} for i in order]
        t0 = time.perf_counter()
        ws = self.score_windows(query, documents)
        self.timings = {"rerank_s": time.perf_counter() - t0}
        scores = ws.scores.astype(np.float32)
        order = np.argsort(-scores, kind="stable")[:top_k]
        return [{"corpus_id": int(i), "score": float(scores[i]), "window": ws.window(int(i))} for i in order]


@dataclass(frozen=True)
class _DocWindows:
    vectors: np.ndarray  # float32 [n_windows, dim]
    starts: np.ndarray  # int64 [n_windows] token ranges
    ends: np.ndarray
    char_starts: np.ndarray  # int64 [n_windows] character ranges
    char_ends: np.ndarray


class WindowedScores(NamedTuple):
    """Per-document scores aggregated over token windows, with the winning window.

    Attributes
    ----------
    scores : numpy.ndarray
        float64 [n_docs], aggregated.
    window_scores : numpy.ndarray
        float64 [n_windows], every window's score, documents one after another.
    window_offsets : numpy.ndarray
        int64 [n_docs + 1]: document ``i``'s windows are ``window_scores[window_offsets[i]:window_offsets[i+1]]``.
    best_window, best_start, best_end, best_start_char, best_end_char : numpy.ndarray
        int64 [n_docs]: the highest-scoring window, its token range and its character range (-1 when
        windows are off).
    """

    scores: np.ndarray
    window_scores: np.ndarray
    window_offsets: np.ndarray
    best_window: np.ndarray
    best_start: np.ndarray
    best_end: np.ndarray
    best_start_char: np.ndarray
    best_end_char: np.ndarray

    def window(self, i: int) -> dict[str, int]:
        """The winning window of document ``i`` as a JSON-ready dict."""
        return {
            "index": int(self.best_window[i]),
            "start_token": int(self.best_start[i]),
            "end_token": int(self.best_end[i]),
            "start_char": int(self.best_start_char[i]),
            "end_char": int(self.best_end_char[i]),
        }


# --------------------------------------------------------------------------------------------------
# Retriever: embedder + index
# --------------------------------------------------------------------------------------------------
class DenseRetriever:
    """First-stage dense retrieval: embed queries with an :class:`Embedder`, search a :class:`DenseIndex`.

    Has the same ``search(queries, k=...)`` shape as :class:`crossrank.BM25Index`, so a
    :class:`crossrank.pipeline.Pipeline` can use either.
    """

    def __init__(self, embedder: Embedder, index: DenseIndex) -> None:
        self.embedder = embedder
        self.index = index

    def __repr__(self) -> str:
        return f"DenseRetriever({self.embedder!r}, {self.index!r})"

    @classmethod
    def build(
        cls,
        embedder: Embedder,
        texts: Sequence[str],
        ids: Sequence[Any] | None = None,
        *,
        show_progress: bool = False,
        vectors: np.ndarray | None = None,
        **index_kwargs: Any,
    ) -> DenseRetriever:
        """Embed ``texts`` (unless ``vectors`` [n, dim] are given) and index them with the caller's ids.

        Raises
        ------
        ValueError
            No texts, or what :meth:`DenseIndex.build` rejects.
        """
        texts = _check_texts(texts, "texts")
        if not texts:
            raise ValueError("cannot build a dense index from 0 documents: pass at least one text")
        if vectors is None:
            vectors = embedder.encode_documents(texts, show_progress=show_progress)
        elif len(vectors) != len(texts):
            raise ValueError(f"got {len(vectors)} vectors for {len(texts)} texts")
        return cls(embedder, DenseIndex.build(vectors, ids, **index_kwargs))

    def search(self, queries: str | Sequence[str], *, k: int = 10) -> SearchResults:
        """Return the ``k`` nearest documents of each query (see :meth:`DenseIndex.search`)."""
        qs = [queries] if isinstance(queries, str) else _check_texts(queries, "queries")
        if not qs:
            return SearchResults(np.zeros((0, k), dtype=object), np.zeros((0, k), dtype=np.float32))
        return self.index.search(self.embedder.encode_queries(qs), k=k)
