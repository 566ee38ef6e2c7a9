"""Cross-encoder reranking on ONNX Runtime or OpenVINO: a drop-in for sentence-transformers' ``CrossEncoder``.

The path of one call (DESIGN.md §2)::

    texts ─► token ids (HF tokenizers; document ids cached by content hash; long texts tokenized only as
             far as max_length needs) ─► pack (C++: model template, truncation with a per-pair flag,
             sort by token length, batches under max_batch_tokens, shape buckets) ─► backend ─►
             logits ─► caller's order ─► activation ─► scores

Scores equal sentence-transformers' on the same weights (fp32 backends, within 1e-4); what differs is
speed, that no pair is truncated silently (``truncated`` flags in :meth:`CrossEncoder.predict` details
and :meth:`CrossEncoder.rank` results), and that memory stays bounded by ``max_batch_tokens`` however many
or however long the candidates are.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, overload

import numpy as np

from .._common import check_bool, check_int, check_text, check_texts, check_top_k, resolve_threads
from ..models.hub import ModelFiles, resolve_model
from ..models.onnx_session import InferenceBackend, load_backend
from ..text.packing import PairTemplate, WindowScores, plan_pairs
from ..text.tokenization import TextEncoder, load_tokenizer
from ..text.windows import AGGREGATIONS, LazyWindows, char_span, tokenize_with_offsets
from ..types import Aggregation, RankedDoc, Scores, Window
from .base import RerankerBase, ranked_from_scores

__all__ = ["CrossEncoder", "Prediction", "RerankStats"]

Activation = Literal["auto", "sigmoid", "softmax", "none"]
_ACTIVATIONS = ("auto", "sigmoid", "softmax", "none")
# sentence-transformers stores the activation as a dotted torch class path.
_ST_ACTIVATIONS = {"Sigmoid": "sigmoid", "Identity": "none", "Softmax": "softmax"}
# Queries are tokenized up to this many times max_length (see _score).
_LONG_QUERY = 8
# Above this, tokenizer_config's model_max_length is the "no limit" sentinel transformers writes.
_HUGE = 1_000_000


@dataclass(frozen=True)
class RerankStats:
    """Counts and timings of one :meth:`CrossEncoder.predict` / :meth:`CrossEncoder.score_batch` call.

    Times are wall seconds: ``tokenize_s`` (text → ids, cache lookups included), ``pack_s`` (planning
    and filling batches), ``infer_s`` (the backend), ``total_s`` (the whole call). ``peak_batch_tokens``
    is the largest rows × padded length fed to the model at once (at most ``max_batch_tokens``).
    """

    n_pairs: int
    n_batches: int
    n_rows: int
    real_tokens: int
    padded_tokens: int
    n_truncated: int
    peak_batch_tokens: int
    cache_hits: int
    cache_misses: int
    tokenize_s: float
    pack_s: float
    infer_s: float
    total_s: float

    @property
    def padding_ratio(self) -> float:
        """Share of the tokens fed to the model that were padding."""
        return 1.0 - self.real_tokens / self.padded_tokens if self.padded_tokens else 0.0

    def as_dict(self) -> dict[str, float]:
        """The counters and timings as :attr:`crossrank.types.Scores.stats` carries them.

        Keys drop the ``n_`` prefix (``pairs``, ``batches``, ``rows``, ``truncated``, ...) and add
        ``padding_ratio``.
        """
        out = {k.removeprefix("n_"): float(v) for k, v in asdict(self).items()}
        out["padding_ratio"] = self.padding_ratio
        return out


@dataclass(frozen=True)
class Prediction:
    """Scores with the per-pair details (``predict(..., return_details=True)``).

    Attributes
    ----------
    scores : np.ndarray
        float32 ``[n]`` (one label) or ``[n, num_labels]``, after the activation.
    logits : np.ndarray
        float32 ``[n, num_labels]``, raw model outputs (aggregated over windows when windowing).
    truncated : np.ndarray
        bool ``[n]``: some query or document token did not reach the model.
    n_tokens : np.ndarray
        int32 ``[n]``: tokens of the pair's (first) row, special tokens included.
    stats : RerankStats
    """

    scores: np.ndarray
    logits: np.ndarray
    truncated: np.ndarray
    n_tokens: np.ndarray
    stats: RerankStats


def _activation_from_configs(files: ModelFiles, num_labels: int) -> str:
    """Decide the default activation as sentence-transformers 6 does.

    ``config_sentence_transformers.json["activation_fn"]``, else ``config.json["sentence_transformers"]
    ["activation_fn"]``, else the pre-v4 ``config.json["sbert_ce_default_activation_function"]``; a dotted
    torch class path. Without one: sigmoid for one label, identity (raw logits) otherwise.
    """
    paths: list[Any] = []
    st = files.read_json("config_sentence_transformers.json") or {}
    paths.append(st.get("activation_fn"))
    nested = files.config.get("sentence_transformers")
    if isinstance(nested, dict):
        paths.append(nested.get("activation_fn"))
    paths.append(files.config.get("sbert_ce_default_activation_function"))
    for path in paths:
        if isinstance(path, str) and path:
            name = path.rsplit(".", 1)[-1]
            if name in _ST_ACTIVATIONS:
                return _ST_ACTIVATIONS[name]
            warnings.warn(
                f"the model asks for activation {path!r}, which crossrank does not implement; "
                "using the default (sigmoid for one label, none otherwise). Pass activation= to choose",
                stacklevel=3,
            )
            break
    return "sigmoid" if num_labels == 1 else "none"


def _default_max_length(files: ModelFiles) -> int:
    """Tokens per pair: the tokenizer's model_max_length capped by the position embeddings."""
    tok_cfg = files.read_json("tokenizer_config.json") or {}
    limits = []
    mml = tok_cfg.get("model_max_length")
    if isinstance(mml, (int, float)) and 0 < mml < _HUGE:
        limits.append(int(mml))
    mpe = files.config.get("max_position_embeddings")
    if isinstance(mpe, int) and mpe > 0:
        # RoBERTa/XLM-R positions start after the padding index: two fewer usable positions.
        offset = 2 if files.config.get("model_type") in ("roberta", "xlm-roberta", "camembert") else 0
        limits.append(mpe - offset)
    return min(limits) if limits else 512


def _softmax(x: np.ndarray) -> np.ndarray:
    z = x.astype(np.float64) - x.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-x.astype(np.float64)))).astype(np.float32)


_PairBatch = Sequence[tuple[str, str]] | Sequence[list[str]] | np.ndarray


class _PairWindows(LazyWindows):
    """Winning windows of one query's cross-encoder pairs (character ranges computed when read)."""

    def __init__(self, tokenizer: Any, docs: list[str], ws: WindowScores, offset: int) -> None:
        super().__init__(len(docs))
        self._tokenizer = tokenizer
        self._docs = docs
        self._ws = ws
        self._offset = offset

    def _compute(self, i: int) -> Window:
        p = self._offset + i
        start, end = int(self._ws.best_start[p]), int(self._ws.best_end[p])
        # The packer's ids are those of the whole text, so token positions agree with these offsets.
        (tok,) = tokenize_with_offsets(self._tokenizer, [self._docs[i]])
        cs, ce = char_span(tok.offsets, start, end)
        return Window(
            index=int(self._ws.best_window[p]),
            start_token=start,
            end_token=end,
            start_char=cs,
            end_char=ce,
        )


class CrossEncoder(RerankerBase):
    """Score (query, document) pairs with a cross-encoder; a drop-in for sentence-transformers' CrossEncoder.

    Meets the :class:`crossrank.types.Reranker` protocol (``score``, ``score_batch``, ``rank``) and keeps
    sentence-transformers' ``predict(pairs)``. One instance may be shared across threads: the inference
    session is thread-safe, the token caches are locked, and every call's statistics travel with its
    result (:attr:`Scores.stats <crossrank.types.Scores.stats>`, :attr:`Prediction.stats`).

    Parameters
    ----------
    model : str or PathLike
        A model directory in Hugging Face layout with an ONNX graph (``crossrank export`` writes one), an
        ``.onnx`` file with its ``tokenizer.json`` beside it, or a hub id such as
        ``cross-encoder/ms-marco-MiniLM-L-6-v2``.
    max_length : int, optional
        Tokens per pair, special tokens included. Default: the tokenizer's ``model_max_length`` capped by
        the model's position embeddings (as sentence-transformers).
    activation : {"auto", "sigmoid", "softmax", "none"} or None
        Applied to the logits. ``auto`` follows sentence-transformers: the activation saved with the
        model, else sigmoid for one label and raw logits for more. None = ``"none"``.
    max_batch_tokens : int
        Upper bound of rows × padded length per batch: bounds the activations' memory.
    max_batch_size : int
        Upper bound of rows per batch.
    num_threads : int, optional
        Inference threads; None = the cgroup CPU quota.
    backend : {"auto", "onnxruntime", "openvino"}
        See :func:`crossrank.models.onnx_session.load_backend`. ``auto`` picks OpenVINO bf16 on CPUs with
        bf16 units when ``openvino`` is installed (fast, ~1e-2 from fp32), else ONNX Runtime fp32.
    precision : {"auto", "fp32", "bf16", "int8"}
        ``fp32`` for scores equal to PyTorch's within 1e-4. ``int8`` runs a calibrated int8 model made by
        ``crossrank export --int8-static`` when the folder has one: OpenVINO's NNCF model
        (``int8_openvino/``, backend ``auto``/``openvino``), else ONNX Runtime's static graph
        (``model_int8_static.onnx``); else the dynamic ``model_int8.onnx`` (or a dynamically quantized
        copy). ``auto`` picks a calibrated int8 model only where its manifest records a mean top-10
        overlap with fp32 of at least 0.98 on held-out calibration queries; otherwise as ``backend`` says
        (bf16 on OpenVINO with bf16 units, else fp32). ``CrossEncoder(...).backend.precision`` tells
        which ran.
    truncation : {"longest_first", "only_second", "only_first"}
        How a pair that does not fit is cut (as Hugging Face tokenizers).
    max_query_length : int, optional
        Cap on query tokens applied before pair truncation.
    window_stride : int, optional
        Instead of truncating long documents, score overlapping windows starting every
        ``window_stride`` document tokens and aggregate (``aggregate``). One-label models only.
    max_windows : int, optional
        Windows per document at most (the pair is flagged truncated beyond).
    aggregate : {"max", "mean", "first", "topk_mean"}
        How window scores become the pair's score.
    aggregate_k : int
        Windows averaged by ``topk_mean``.
    onnx_file : str, optional
        Which graph of the model directory (e.g. ``"model_int8.onnx"``).
    cache_tokens : int
        Bound of the document token-id cache, in tokens (0 disables it).

    Raises
    ------
    crossrank.errors.ModelNotFoundError
        The model cannot be found or downloaded.
    ValueError
        Bad option values (the message names the accepted ones).
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        max_length: int | None = None,
        activation: Activation | str | None = "auto",
        max_batch_tokens: int = 8192,
        max_batch_size: int = 256,
        num_threads: int | None = None,
        backend: str = "auto",
        precision: str = "auto",
        truncation: str = "longest_first",
        max_query_length: int | None = None,
        window_stride: int | None = None,
        max_windows: int | None = None,
        aggregate: Aggregation = "max",
        aggregate_k: int = 3,
        onnx_file: str | None = None,
        cache_tokens: int = 4_000_000,
    ) -> None:
        if activation is None:
            activation = "none"
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {', '.join(_ACTIVATIONS)} or None; got {activation!r}"
            )
        if truncation not in ("longest_first", "only_second", "only_first"):
            raise ValueError(
                f"truncation must be 'longest_first', 'only_second' or 'only_first'; got {truncation!r}"
            )
        if aggregate not in AGGREGATIONS:
            raise ValueError(f"aggregate must be 'max', 'mean', 'first' or 'topk_mean'; got {aggregate!r}")
        for name, value in (("max_batch_tokens", max_batch_tokens), ("max_batch_size", max_batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.aggregate_k = check_int(aggregate_k, "aggregate_k", minimum=1)
        self.files = resolve_model(model, onnx_file=onnx_file)
        self.num_threads = resolve_threads(num_threads)
        self.backend: InferenceBackend = load_backend(
            self.files.onnx_path, backend=backend, precision=precision, num_threads=self.num_threads
        )
        limit = _default_max_length(self.files)
        if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int)):
            raise ValueError(f"max_length must be an int or None, got {max_length!r}")
        if max_length is not None and max_length > limit and self.files.config.get("max_position_embeddings"):
            raise ValueError(
                f"max_length={max_length} exceeds what the model can read ({limit} tokens: its position "
                f"embeddings / tokenizer limit); pass max_length <= {limit} or use window_stride= for long documents"
            )
        self.max_length = int(max_length) if max_length is not None else limit
        if max_batch_tokens < self.max_length:
            raise ValueError(
                f"max_batch_tokens ({max_batch_tokens}) must be at least max_length ({self.max_length}) "
                "so that one full-length pair fits in a batch"
            )
        self.num_labels = int(
            self.files.config.get("num_labels") or len(self.files.config.get("id2label") or {}) or 1
        )
        if window_stride is not None and self.num_labels != 1:
            raise ValueError("window_stride (windowed long documents) needs a one-label model")
        self.activation = (
            _activation_from_configs(self.files, self.num_labels) if activation == "auto" else str(activation)
        )
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_size = max_batch_size
        self.truncation = truncation
        self.max_query_length = max_query_length
        self.window_stride = window_stride
        self.max_windows = max_windows
        self.aggregate: Aggregation = aggregate
        tokenizer = load_tokenizer(self.files.tokenizer_path)
        self.template = PairTemplate.from_tokenizer(tokenizer)
        self.encoder = TextEncoder(tokenizer, cache_tokens=cache_tokens)
        self._query_encoder = TextEncoder(tokenizer, cache_tokens=min(cache_tokens, 65_536))
        # Fail on a bad option now rather than at the first call.
        plan_pairs(
            [np.zeros(0, np.int32)],
            [np.zeros(0, np.int32)],
            self.template,
            **self._plan_options(max_batch_size),
        )

    def __repr__(self) -> str:
        return (
            f"CrossEncoder({str(self.files.root)!r}, backend={self.backend!r}, max_length={self.max_length}, "
            f"num_labels={self.num_labels}, activation={self.activation!r})"
        )

    def _plan_options(self, max_batch_size: int) -> dict[str, Any]:
        return {
            "max_length": self.max_length,
            "truncation": self.truncation,
            "max_query_length": self.max_query_length,
            "max_batch_tokens": self.max_batch_tokens,
            "max_batch_size": max_batch_size,
            "window_stride": self.window_stride,
            "max_windows": self.max_windows,
        }

    def _doc_token_limit(self, longest_query: int) -> int | None:
        """Document ids needed for exact truncation (None = all of them).

        Hugging Face's longest_first compares the two lengths when both are long, so a document must be
        read past the longest query as well as past ``max_length``: with ``max(max_length, longest_query)
        + 1`` ids, a longer document is still seen as longer and a shorter one is read whole.
        """
        need = max(self.max_length, longest_query)
        if self.window_stride is None:
            return need
        if self.max_windows is None:
            return None
        return need + self.window_stride * self.max_windows

    @staticmethod
    def _validate(pairs: object) -> tuple[list[str], list[str]]:
        if isinstance(pairs, (str, bytes)) or not isinstance(pairs, (Sequence, np.ndarray)):
            raise TypeError(f"pairs must be a list of (query, document) pairs, got {type(pairs).__name__}")
        queries: list[str] = []
        docs: list[str] = []
        for i, pair in enumerate(pairs):
            if (
                isinstance(pair, (str, bytes))
                or not isinstance(pair, (Sequence, np.ndarray))
                or len(pair) != 2
            ):
                raise ValueError(
                    f"pairs[{i}] must be a (query, document) pair of two str, got {type(pair).__name__} "
                    f"{str(pair)[:60]!r}"
                )
            queries.append(check_text(pair[0], f"pairs[{i}][0] (query)"))
            docs.append(check_text(pair[1], f"pairs[{i}][1] (document)"))
        return queries, docs

    def _resolve_activation(self, activation: object) -> str:
        act = self.activation if activation == "auto" else ("none" if activation is None else activation)
        if act not in _ACTIVATIONS[1:]:
            raise ValueError(
                f"activation must be one of {', '.join(_ACTIVATIONS)} or None; got {activation!r}"
            )
        return str(act)

    @staticmethod
    def _rows_per_batch(batch_size: object, default: int) -> int:
        if batch_size is None:
            return default
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        return batch_size

    # ------------------------------------------------------------------ sentence-transformers' predict
    @overload
    def predict(
        self,
        pairs: tuple[str, str],
        *,
        batch_size: int | None = ...,
        show_progress_bar: bool | None = ...,
        show_progress: bool = ...,
        convert_to_numpy: Literal[True] = ...,
        activation: Activation | str | None = ...,
        return_details: Literal[False] = ...,
    ) -> np.float32 | np.ndarray: ...

    @overload
    def predict(
        self,
        pairs: tuple[str, str],
        *,
        batch_size: int | None = ...,
        show_progress_bar: bool | None = ...,
        show_progress: bool = ...,
        convert_to_numpy: Literal[False],
        activation: Activation | str | None = ...,
        return_details: Literal[False] = ...,
    ) -> float | list[float]: ...

    @overload
    def predict(
        self,
        pairs: _PairBatch | None = ...,
        *,
        sentences: _PairBatch | tuple[str, str] | None = ...,
        batch_size: int | None = ...,
        show_progress_bar: bool | None = ...,
        show_progress: bool = ...,
        convert_to_numpy: Literal[True] = ...,
        activation: Activation | str | None = ...,
        return_details: Literal[False] = ...,
    ) -> np.ndarray: ...

    @overload
    def predict(
        self,
        pairs: _PairBatch | None = ...,
        *,
        sentences: _PairBatch | tuple[str, str] | None = ...,
        batch_size: int | None = ...,
        show_progress_bar: bool | None = ...,
        show_progress: bool = ...,
        convert_to_numpy: Literal[False],
        activation: Activation | str | None = ...,
        return_details: Literal[False] = ...,
    ) -> list[float] | list[list[float]]: ...

    @overload
    def predict(
        self,
        pairs: _PairBatch | tuple[str, str] | None = ...,
        *,
        sentences: _PairBatch | tuple[str, str] | None = ...,
        batch_size: int | None = ...,
        show_progress_bar: bool | None = ...,
        show_progress: bool = ...,
        convert_to_numpy: bool = ...,
        activation: Activation | str | None = ...,
        return_details: Literal[True],
    ) -> Prediction: ...

    def predict(
        self,
        pairs: _PairBatch | tuple[str, str] | None = None,
        *,
        sentences: _PairBatch | tuple[str, str] | None = None,
        batch_size: int | None = None,
        show_progress_bar: bool | None = None,
        show_progress: bool = False,
        convert_to_numpy: bool = True,
        activation: Activation | str | None = "auto",
        return_details: bool = False,
    ) -> np.ndarray | np.float32 | float | list[float] | list[list[float]] | Prediction:
        """Score (query, document) pairs (sentence-transformers' ``CrossEncoder.predict``).

        Parameters
        ----------
        pairs : sequence of (str, str), or one (str, str) pair
            Queries and documents. An empty sequence gives an empty result.
        sentences : sequence of (str, str), or one (str, str) pair, optional
            sentence-transformers' name of ``pairs`` (pass one or the other).
        batch_size : int, optional
            Rows per batch at most (sentence-transformers' knob); batches are also bounded by
            ``max_batch_tokens``. Default: ``max_batch_size``.
        show_progress_bar : bool, optional
            sentence-transformers' name of ``show_progress``.
        show_progress : bool
            A tqdm bar over batches (default off).
        convert_to_numpy : bool
            NumPy array (default) or a list of Python floats (lists of floats for several labels).
        activation : {"auto", "sigmoid", "softmax", "none"} or None
            Override the model's activation for this call (``auto``: the one set at construction).
        return_details : bool
            Return a :class:`Prediction` with logits, truncation flags, token counts and timings.

        Returns
        -------
        numpy.ndarray or list or numpy.float32 or float or Prediction
            float32 ``[n]`` for one-label models, ``[n, num_labels]`` otherwise; a single pair gives a
            scalar (or ``[num_labels]``), as sentence-transformers.

        Raises
        ------
        TypeError
            ``pairs`` is not a sequence, a query or document is not a str (the message names the index),
            or both ``pairs`` and ``sentences`` are given.
        ValueError
            A pair that is not two items, or bad options.
        """
        if sentences is not None:
            if pairs is not None:
                raise TypeError("pass pairs or sentences (its sentence-transformers name), not both")
            pairs = sentences
        elif pairs is None:
            raise TypeError("predict() needs the pairs to score: predict([(query, document), ...])")
        singular = (
            isinstance(pairs, (tuple, list))
            and len(pairs) == 2
            and isinstance(pairs[0], str)
            and isinstance(pairs[1], str)
        )
        queries, docs = self._validate([tuple(pairs)] if singular else pairs)
        act = self._resolve_activation(activation)
        rows = self._rows_per_batch(batch_size, self.max_batch_size)
        progress = bool(show_progress) or bool(show_progress_bar)
        logits, truncated, n_tokens, stats, _ = self._score(queries, docs, rows, progress)
        scores = self._activate(logits, act)
        if return_details:
            return Prediction(scores, logits, truncated, n_tokens, stats)
        if singular:
            return scores[0] if convert_to_numpy else scores[0].tolist()
        return scores if convert_to_numpy else scores.tolist()

    def _activate(self, logits: np.ndarray, act: str) -> np.ndarray:
        if act == "sigmoid":
            out = _sigmoid(logits)
        elif act == "softmax":
            if logits.shape[1] == 1:
                raise ValueError("softmax over a single label is always 1; use 'sigmoid' or 'none'")
            out = _softmax(logits) if len(logits) else logits
        else:
            out = logits
        return out[:, 0].copy() if self.num_labels == 1 else out

    def _relevance(self, logits: np.ndarray, activation: object) -> np.ndarray:
        """One relevance score per pair (what ``score`` and ``rank`` return)."""
        act = self._resolve_activation(activation)
        if self.num_labels == 2:
            # Two-label rerankers: label 1 is "relevant"; by default, its softmax probability.
            if activation == "auto" or act == "softmax":
                return _softmax(logits)[:, 1]
            if act == "sigmoid":
                return _sigmoid(logits[:, 1])
            return logits[:, 1].copy()
        return self._activate(logits, act)

    def _score(
        self, queries: list[str], docs: list[str], max_batch_size: int, progress: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, RerankStats, WindowScores | None]:
        """Logits ``[n, num_labels]``, truncation flags, token counts, stats and the windows of pairs.

        ``queries[i]`` goes with ``docs[i]``; pairs of every query are packed together (one plan).
        """
        t0 = time.perf_counter()
        n = len(docs)
        # Queries: each distinct query once (a rank call has one).
        uniq: dict[str, int] = {}
        for q in queries:
            uniq.setdefault(q, len(uniq))
        # Queries whole (their length decides longest_first) up to a generous cap, or as far as the query
        # cap needs. Beyond _LONG_QUERY x max_length tokens the two lengths are compared on prefixes: a
        # document and a query both that long may get their odd token on the other side than in HF.
        q_cap = self.max_query_length if self.max_query_length is not None else _LONG_QUERY * self.max_length
        q_ids = self._query_encoder.encode(list(uniq), max_tokens=q_cap)
        longest = max((len(x) for x in q_ids), default=0)
        longest = min(longest, q_cap)
        counts: dict[str, int] = {}
        d_ids = self.encoder.encode(docs, max_tokens=self._doc_token_limit(longest), counts=counts)
        hits, misses = counts.get("cache_hits", 0), counts.get("cache_misses", 0)
        per_pair_q = q_ids if len(q_ids) == 1 else [q_ids[uniq[q]] for q in queries]
        t1 = time.perf_counter()
        labels = self.num_labels
        if n == 0:
            empty = RerankStats(0, 0, 0, 0, 0, 0, 0, 0, 0, t1 - t0, 0.0, 0.0, time.perf_counter() - t0)
            return np.zeros((0, labels), np.float32), np.zeros(0, bool), np.zeros(0, np.int32), empty, None
        plan = plan_pairs(per_pair_q, d_ids, self.template, **self._plan_options(max_batch_size))
        t2 = time.perf_counter()
        pack_s = t2 - t1
        infer_s = 0.0
        outputs: list[np.ndarray] = []
        real = padded = 0
        batches: Any = range(plan.n_batches)
        if progress:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc="Batches", unit="batch")
        for i in batches:
            tb = time.perf_counter()
            b = plan.batch(i)
            feeds = {
                "input_ids": b.input_ids,
                "attention_mask": b.attention_mask,
                "token_type_ids": b.token_type_ids,
            }
            ti = time.perf_counter()
            out = self.backend.run(feeds)[0]
            te = time.perf_counter()
            pack_s += ti - tb
            infer_s += te - ti
            out = np.asarray(out, dtype=np.float32).reshape(len(b), -1)
            if out.shape[1] != labels:
                raise ValueError(
                    f"the model returned {out.shape[1]} logits per pair but its config says num_labels={labels}; "
                    "was it exported with --task cross-encoder?"
                )
            outputs.append(out)
            real += int(b.n_tokens.sum())
            padded += int(b.input_ids.size)
        rows = plan.unsort(outputs)
        windows: WindowScores | None = None
        if self.window_stride is not None:
            windows = plan.aggregate(rows[:, 0], how=self.aggregate, k=self.aggregate_k)
            logits = windows.scores.astype(np.float32)[:, None]
        else:
            logits = rows
        stats = RerankStats(
            n_pairs=n,
            n_batches=plan.n_batches,
            n_rows=plan.n_rows,
            real_tokens=real,
            padded_tokens=padded,
            n_truncated=int(plan.truncated.sum()),
            peak_batch_tokens=plan.peak_batch_tokens,
            cache_hits=hits,
            cache_misses=misses,
            tokenize_s=t1 - t0,
            pack_s=pack_s,
            infer_s=infer_s,
            total_s=time.perf_counter() - t0,
        )
        return logits, plan.truncated.copy(), plan.n_tokens.astype(np.int32), stats, windows

    # ------------------------------------------------------------------ the reranker protocol
    def _score_many(self, queries: list[str], documents_per_query: list[list[str]]) -> list[Scores]:
        return self._score_lists(queries, documents_per_query, self.max_batch_size, False, "auto")

    def _score_lists(
        self,
        queries: list[str],
        documents_per_query: list[list[str]],
        max_batch_size: int,
        progress: bool,
        activation: object,
    ) -> list[Scores]:
        """Score every query's documents with ONE packing plan over all pairs (batches span queries)."""
        if self.num_labels > 2:
            raise ValueError(
                f"score/rank need a one- or two-label model (this one has {self.num_labels}); use predict()"
            )
        self._resolve_activation(activation)  # refuse a bad activation before any work
        flat_q = [q for q, docs in zip(queries, documents_per_query, strict=True) for _ in docs]
        flat_d = [d for docs in documents_per_query for d in docs]
        logits, truncated, _, stats, windows = self._score(flat_q, flat_d, max_batch_size, progress)
        scores = self._relevance(logits, activation)
        shared = {**stats.as_dict(), "queries": float(len(queries))}
        out: list[Scores] = []
        pos = 0
        for docs in documents_per_query:
            n = len(docs)
            win = None if windows is None else _PairWindows(self.encoder.tokenizer, docs, windows, pos)
            out.append(Scores(scores[pos : pos + n], truncated[pos : pos + n], win, dict(shared)))
            pos += n
        return out

    def rank(
        self,
        query: str,
        documents: Sequence[str],
        top_k: int | None = None,
        *,
        return_documents: bool = False,
        batch_size: int | None = None,
        show_progress: bool = False,
        show_progress_bar: bool | None = None,
        activation: Activation | str | None = "auto",
    ) -> list[RankedDoc]:
        """Rank documents for one query, best first (sentence-transformers' ``rank``).

        Parameters
        ----------
        query : str
            The query.
        documents : sequence of str
            Candidates; an empty sequence gives ``[]``.
        top_k : int, optional
            Keep the best ``top_k`` (an int >= 1, capped at the number of documents); None keeps all.
        return_documents : bool
            Add each document's ``"text"``.
        batch_size : int, optional
            Rows per batch at most (default ``max_batch_size``).
        show_progress : bool
            A tqdm bar over batches.
        show_progress_bar : bool, optional
            sentence-transformers' name of ``show_progress``.
        activation : {"auto", "sigmoid", "softmax", "none"} or None
            Override the model's activation for this call.

        Returns
        -------
        list of RankedDoc
            ``{"corpus_id": int, "score": float, "truncated": bool[, "window"][, "text": str]}`` sorted
            by score, highest first, ties in input order. With ``window_stride`` the ``"window"`` is
            ``{"index", "start_token", "end_token", "start_char", "end_char"}`` of the best window
            (``documents[i][start_char:end_char]`` is the passage that won). Scores are Python floats
            (JSON-safe). Two-label models are ranked by the softmax probability of label 1.

        Raises
        ------
        TypeError
            A query or document that is not a str (the message names the index), a non-int ``top_k``.
        ValueError
            ``top_k < 1``, a bad option, or a model with more than two labels.
        """
        check_text(query, "query")
        check_bool(return_documents, "return_documents")
        docs = check_texts(documents, "documents")
        check_top_k(top_k, len(docs))
        if self.num_labels > 2:
            raise ValueError(
                f"rank() needs a one- or two-label model (this one has {self.num_labels}); use predict()"
            )
        rows = self._rows_per_batch(batch_size, self.max_batch_size)
        self._resolve_activation(activation)
        if not docs:
            return []
        progress = bool(show_progress) or bool(show_progress_bar)
        (s,) = self._score_lists([query], [docs], rows, progress, activation)
        return ranked_from_scores(s, docs, top_k, return_documents=return_documents)

    def cache_info(self) -> Any:
        """Return the document cache counters (:class:`crossrank.text.tokenization.CacheStats`)."""
        return self.encoder.cache.stats()
