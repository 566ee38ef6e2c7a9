"""``LLMPointwiseReranker``: Qwen3-Reranker / mxbai-rerank-v2 style LLM rerankers on ONNX Runtime or OpenVINO.

The path of one call::

    per query: prefix ids (system prompt, instruction, query) ─► prefix.onnx once ─► keys/values
    documents ─► ids (cached) ─► pack (C++: only the document cut or windowed, tail kept, rows sorted by
    length, batches under max_batch_tokens, right padding) ─► model.onnx on suffixes against the cached
    keys/values ─► last real token's logits of the two scoring tokens ─► softmax ─► caller's order

Scores equal transformers' ``AutoModelForCausalLM`` on the same prompts (fp32, within 1e-4), with or
without the prefix cache.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..._common import check_bool, check_int, check_text, check_texts, check_top_k, resolve_threads
from ...models.hub import resolve_model
from ...models.onnx_session import OnnxRuntimeBackend, load_backend
from ...text.packing import PackPlan, PairTemplate, plan_pairs
from ...text.tokenization import TextEncoder, load_tokenizer
from ...text.windows import AGGREGATIONS, LazyWindows, char_span, tokenize_with_offsets
from ...types import Aggregation, RankedDoc, Scores, Window
from ..base import RerankerBase, check_batch, ranked_from_scores
from .prefix_cache import CausalScorer
from .prompt import PromptEncoder, QueryPrefix
from .scoring import relevance, scoring_token_ids
from .template import PromptTemplate, resolve_template

__all__ = ["LLMPointwiseReranker"]

_DEVICES = ("auto", "cpu", "cuda")


class _Windows(LazyWindows):
    """Winning windows of one query's documents; character ranges computed when read (a tokenization)."""

    def __init__(self, tokenizer: Any, lead: str, docs: list[str], best: list[tuple[int, int, int]]) -> None:
        super().__init__(len(docs))
        self._tokenizer, self._lead, self._docs, self._best = tokenizer, lead, docs, best

    def _compute(self, i: int) -> Window:
        index, start, end = self._best[i]
        (tok,) = tokenize_with_offsets(self._tokenizer, [self._lead + self._docs[i]])
        cs, ce = char_span(tok.offsets, start, end)
        shift = len(self._lead)  # offsets count the prefix's moved spaces
        return Window(
            index=index,
            start_token=start,
            end_token=end,
            start_char=max(0, cs - shift),
            end_char=max(0, ce - shift),
        )


class LLMPointwiseReranker(RerankerBase):
    """Rerank with a causal LLM read pointwise (Qwen3-Reranker "yes"/"no", mxbai-rerank-v2 "1"/"0").

    Meets the :class:`crossrank.types.Reranker` protocol; ``score``, ``score_batch`` and ``rank`` also
    take ``instruction=`` and ``raw=``. One instance may be shared across threads: the inference sessions
    are thread-safe, the token caches locked, and every call's statistics travel with its result.

    Parameters
    ----------
    model : str or PathLike
        A directory written by ``crossrank export --task causal-lm-reranker`` (``model.onnx`` +
        ``prefix.onnx`` + tokenizer), a Qwen2/Qwen3 checkpoint directory (exported once into crossrank's
        cache; needs ``crossrank[export]``), a hub id, or a plain causal-LM ``.onnx`` (whole prompts only).
    template : {"qwen3", "mxbai"}, PromptTemplate, str or PathLike, optional
        The prompt and scoring tokens: a built-in name, a JSON file (see
        :mod:`crossrank.rerank.pointwise.template`) or an object. None: the model directory's
        ``crossrank_pointwise.json``, else ``mxbai`` when the model's path names it, else ``qwen3``.
    instruction : str, optional
        Default instruction of every call (None: the template's).
    max_length : int, optional
        Tokens per prompt. Only the document is cut to fit (the pair is flagged ``truncated``); the
        template's tail always reaches the model. Default: the model's position limit, at most 8192.
        With the ``mxbai`` template (``length_rule="body"``) it counts the instruction, query and
        document as mxbai-rerank's own ``max_length`` does, the template's text coming on top, and
        shrinks (as there) so that the whole prompt fits the model's positions; :attr:`prompt_length`
        is the bound of the whole prompt either way.
    raw : bool
        Scores are logit differences (positive - negative) instead of probabilities (0..1).
    prefix_cache : bool or "auto"
        Compute each query's prefix once and reuse its keys/values for every candidate. ``auto`` uses
        it when the model has ``prefix.onnx`` and the backend runs it; ``True`` requires it.
    max_batch_tokens : int, optional
        Upper bound of rows x padded prompt length (prefix included) per batch: bounds memory.
        Default: 8192, or one whole prompt when that is longer.
    max_batch_size : int
        Upper bound of rows per batch.
    num_threads : int, optional
        Inference threads; None = the CPU quota.
    backend : {"auto", "onnxruntime", "openvino"}
        The runtime (:func:`crossrank.models.onnx_session.load_backend`).
    precision : {"auto", "fp32", "bf16"}
        ``fp32`` for scores equal to transformers' within 1e-4.
    device : {"auto", "cpu", "cuda"}
        ONNX Runtime execution provider (``auto``: CUDA when ``onnxruntime-gpu`` sees a GPU).
    window_stride : int, optional
        Score long documents as windows starting every ``window_stride`` document tokens (each with
        the whole prefix and tail) and aggregate them, instead of cutting them.
    max_windows : int, optional
        Windows per document at most (the pair is flagged truncated beyond).
    aggregate : {"max", "mean", "first", "topk_mean"}
        How window scores become the document's score.
    aggregate_k : int
        Windows averaged by ``topk_mean``.
    max_query_length : int, optional
        Query tokens kept at most (default: half the room the template leaves).
    cache_tokens : int
        Bound of the document token-id cache, in tokens (0 disables it).

    Raises
    ------
    ValueError
        The model lacks a scoring token (the message names it), a template without a ``{document}`` slot,
        ``max_length`` shorter than the template, or a bad option.
    crossrank.errors.ModelNotFoundError
        No such model.
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        template: str | os.PathLike[str] | PromptTemplate | None = None,
        instruction: str | None = None,
        max_length: int | None = None,
        raw: bool = False,
        prefix_cache: bool | str = "auto",
        max_batch_tokens: int | None = None,
        max_batch_size: int = 64,
        num_threads: int | None = None,
        backend: str = "auto",
        precision: str = "auto",
        device: str = "auto",
        window_stride: int | None = None,
        max_windows: int | None = None,
        aggregate: Aggregation = "max",
        aggregate_k: int = 3,
        max_query_length: int | None = None,
        cache_tokens: int = 4_000_000,
    ) -> None:
        self.raw = check_bool(raw, "raw")
        if prefix_cache not in (True, False, "auto"):
            raise ValueError(f"prefix_cache must be True, False or 'auto'; got {prefix_cache!r}")
        if device not in _DEVICES:
            raise ValueError(f"device must be one of {', '.join(_DEVICES)}; got {device!r}")
        if aggregate not in AGGREGATIONS:
            raise ValueError(f"aggregate must be 'max', 'mean', 'first' or 'topk_mean'; got {aggregate!r}")
        if instruction is not None:
            check_text(instruction, "instruction")
        if max_batch_tokens is not None:
            check_int(max_batch_tokens, "max_batch_tokens", minimum=1)
        self.max_batch_size = check_int(max_batch_size, "max_batch_size", minimum=1)
        self.aggregate: Aggregation = aggregate
        self.aggregate_k = check_int(aggregate_k, "aggregate_k", minimum=1)
        self.window_stride = (
            None if window_stride is None else check_int(window_stride, "window_stride", minimum=1)
        )
        self.max_windows = None if max_windows is None else check_int(max_windows, "max_windows", minimum=1)
        self.files = resolve_model(model, task="causal-lm-reranker")
        self.template = resolve_template(template, self.files.root)
        self.instruction = instruction
        if instruction is not None and not self.template.has_instruction:
            raise ValueError(
                f"template {self.template.name!r} has no {{instruction}} slot; drop instruction="
            )
        self.name = f"pointwise:{model}"
        config = self.files.config
        limit = int(config.get("max_position_embeddings") or 8192)
        if max_length is None:
            max_length = min(limit, 8192)
        self.max_length = check_int(max_length, "max_length", minimum=1)
        # The body rule shrinks the body to fit the positions, as mxbai-rerank does with its max_length.
        if self.max_length > limit and self.template.length_rule != "body":
            raise ValueError(f"max_length={max_length} exceeds the model's {limit} positions")
        tokenizer = load_tokenizer(self.files.tokenizer_path)
        self.prompts = PromptEncoder(
            tokenizer, self.template, self.max_length, max_query_length, positions=limit
        )
        self.prompt_length = self.prompts.max_length
        self.max_batch_tokens = (
            max(8192, self.prompt_length) if max_batch_tokens is None else max_batch_tokens
        )
        if self.max_batch_tokens < self.prompt_length:
            raise ValueError(
                f"max_batch_tokens ({max_batch_tokens}) must be at least the prompt length ({self.prompt_length}) "
                "so that one full-length prompt fits in a batch"
            )
        self.encoder = TextEncoder(tokenizer, cache_tokens=cache_tokens)
        vocab = config.get("vocab_size")
        self.score_ids = scoring_token_ids(
            tokenizer, self.template.positive, self.template.negative, int(vocab) if vocab else None
        )
        pad = tokenizer.token_to_id("<|endoftext|>")
        # Padding sits after each row's last real token and is masked: any id in range will do.
        self._pack_template = PairTemplate(
            (),
            (),
            tuple(int(i) for i in self.prompts.tail_ids),
            (),
            (),
            (0,) * len(self.prompts.tail_ids),
            0,
            0,
            int(pad or 0),
            0,
        )

        self.num_threads = resolve_threads(num_threads)

        def load(path: Any) -> Any:
            if device == "auto":
                return load_backend(
                    path, backend=backend, precision=precision, num_threads=self.num_threads, fuse=False
                )
            if backend == "openvino":
                raise ValueError("device= selects an ONNX Runtime provider; use backend='onnxruntime'")
            providers = (
                ["CUDAExecutionProvider", "CPUExecutionProvider"]
                if device == "cuda"
                else ["CPUExecutionProvider"]
            )
            got = OnnxRuntimeBackend(path, num_threads=self.num_threads, providers=providers)
            if device == "cuda" and "CUDAExecutionProvider" not in got.providers:
                raise ValueError(
                    "device='cuda' but ONNX Runtime has no CUDA provider here (pip install onnxruntime-gpu)"
                )
            return got

        self.backend = load(self.files.onnx_path)
        prefix_path = self.files.onnx_path.with_name("prefix.onnx")
        prefix_backend = None
        if prefix_cache is not False and prefix_path.is_file():
            prefix_backend = load(prefix_path)
        heads = int(config.get("num_attention_heads") or 1)
        kv_shape = (
            int(config.get("num_key_value_heads") or heads),
            int(config.get("head_dim") or int(config.get("hidden_size") or heads) // heads),
        )
        self.scorer = CausalScorer(self.backend, prefix_backend, self.score_ids, kv_shape)
        if prefix_cache is True and not self.scorer.can_cache:
            raise ValueError(
                f"prefix_cache=True but {self.files.root} has no key/value cache graphs (prefix.onnx beside a "
                "model.onnx with past_key_values inputs); export with --task causal-lm-reranker"
            )

    def __repr__(self) -> str:
        return (
            f"LLMPointwiseReranker({str(self.files.root)!r}, template={self.template.name!r}, "
            f"max_length={self.max_length}, prefix_cache={self.scorer.can_cache}, backend={self.backend!r})"
        )

    # ------------------------------------------------------------------ the reranker protocol
    def score(
        self, query: str, documents: Sequence[str], *, instruction: str | None = None, raw: bool | None = None
    ) -> Scores:
        """Score ``documents`` for ``query``, in input order.

        Parameters
        ----------
        query : str
            The query.
        documents : sequence of str
            Candidate texts; an empty sequence gives empty scores.
        instruction : str, optional
            This call's instruction (None: the reranker's default).
        raw : bool, optional
            Logit differences instead of probabilities (None: the reranker's setting).

        Returns
        -------
        Scores
            float32 scores, truncation flags, winning windows (with ``window_stride``) and the call's stats.
        """
        return self.score_batch([check_text(query, "query")], [documents], instruction=instruction, raw=raw)[
            0
        ]

    def score_batch(
        self,
        queries: Sequence[str],
        documents_per_query: Sequence[Sequence[str]],
        *,
        instruction: str | None = None,
        raw: bool | None = None,
    ) -> list[Scores]:
        """Score several queries' documents (each query's prefix computed once).

        Parameters
        ----------
        queries : sequence of str
            The queries.
        documents_per_query : sequence of sequence of str
            ``documents_per_query[i]`` are the candidates of ``queries[i]``.
        instruction : str, optional
            This call's instruction (None: the reranker's default).
        raw : bool, optional
            Logit differences instead of probabilities (None: the reranker's setting).

        Returns
        -------
        list of Scores
            One per query, in order.
        """
        qs, docs = check_batch(queries, documents_per_query)
        inst = self._instruction(instruction)
        use_raw = self.raw if raw is None else check_bool(raw, "raw")
        return [
            self._score_query(q, d, inst, use_raw) if d else Scores.empty()
            for q, d in zip(qs, docs, strict=True)
        ]

    def rank(
        self,
        query: str,
        documents: Sequence[str],
        top_k: int | None = None,
        *,
        return_documents: bool = False,
        instruction: str | None = None,
        raw: bool | None = None,
    ) -> list[RankedDoc]:
        """Rank ``documents`` for ``query``, best first.

        Parameters
        ----------
        query : str
            The query.
        documents : sequence of str
            Candidate texts; an empty sequence gives ``[]``.
        top_k : int, optional
            Keep the best ``top_k`` (an int >= 1); None keeps all.
        return_documents : bool
            Add each document's ``"text"``.
        instruction : str, optional
            This call's instruction (None: the reranker's default).
        raw : bool, optional
            Logit differences instead of probabilities (None: the reranker's setting).

        Returns
        -------
        list of RankedDoc
            Highest score first, ties in input order.
        """
        check_bool(return_documents, "return_documents")
        docs = check_texts(documents, "documents")
        check_top_k(top_k, len(docs))
        s = self.score(query, docs, instruction=instruction, raw=raw)
        return ranked_from_scores(s, docs, top_k, return_documents=return_documents)

    def _score_many(self, queries: list[str], documents_per_query: list[list[str]]) -> list[Scores]:
        return [
            self._score_query(q, d, self.instruction, self.raw)
            for q, d in zip(queries, documents_per_query, strict=True)
        ]

    def _instruction(self, instruction: str | None) -> str | None:
        if instruction is None:
            return self.instruction
        check_text(instruction, "instruction")
        if not self.template.has_instruction:
            raise ValueError(
                f"template {self.template.name!r} has no {{instruction}} slot; drop instruction="
            )
        return instruction

    def prompt_ids(self, query: str, document: str, instruction: str | None = None) -> np.ndarray:
        """The ids of the whole prompt of one pair (before any cut), as the model reads them.

        Parameters
        ----------
        query, document : str
            The pair.
        instruction : str, optional
            None: the reranker's default.
        """
        return self.prompts.prompt_ids(query, document, self._instruction(instruction))

    def _plan(
        self, query: str, docs: list[str], instruction: str | None, counts: dict[str, int] | None = None
    ) -> tuple[QueryPrefix, PackPlan]:
        """The query's prefix ids and the packing plan of its documents (truncation or windows, batches)."""
        pre = self.prompts.prefix(query, instruction)
        budget = self.prompt_length - len(pre.ids) - len(self.prompts.tail_ids)  # document tokens per row
        d_ids = self.encoder.encode(
            [self.prompts.document_text(d) for d in docs],
            max_tokens=None if self.window_stride is not None else budget,
            counts=counts,
        )
        plan = plan_pairs(
            [pre.ids],
            d_ids,
            self._pack_template,
            max_length=self.prompt_length,
            truncation="only_second",
            max_batch_tokens=self.max_batch_tokens,
            max_batch_size=self.max_batch_size,
            buckets=None,
            window_stride=self.window_stride,
            max_windows=self.max_windows,
        )
        return pre, plan

    def _score_query(self, query: str, docs: list[str], instruction: str | None, raw: bool) -> Scores:
        """One query's scores: its prefix once, then its documents' batches."""
        t0 = time.perf_counter()
        counts: dict[str, int] = {}
        pre, plan = self._plan(query, docs, instruction, counts)
        p = len(pre.ids)
        t1 = time.perf_counter()
        past = None
        cached = self.scorer.can_cache
        if cached:
            try:
                past = self.scorer.prefix_state(pre.ids)
            except Exception as exc:  # a backend that cannot take the graph: whole prompts
                self.scorer.disable_cache(exc)
                cached = False
        t2 = time.perf_counter()
        outs = []
        real = padded = 0
        for i in range(plan.n_batches):
            b = plan.batch(i)
            if cached:
                try:
                    outs.append(self.scorer.run(b, p, past))
                except Exception as exc:
                    if i:  # it worked before: a real failure
                        raise
                    self.scorer.disable_cache(exc)
                    cached, past = False, None
                    outs.append(self.scorer.run(b, p, None))
            else:
                outs.append(self.scorer.run(b, p, None))
            real += int(b.n_tokens.sum()) - (p * len(b) if cached else 0)
            padded += int(b.input_ids.size) - (p * len(b) if cached else 0)
        t3 = time.perf_counter()
        rows = relevance(plan.unsort(outs), raw)
        windows = None
        if self.window_stride is not None:
            agg = plan.aggregate(rows, how=self.aggregate, k=self.aggregate_k)
            scores = agg.scores.astype(np.float32)
            best = list(
                zip(agg.best_window.tolist(), agg.best_start.tolist(), agg.best_end.tolist(), strict=True)
            )
            windows = _Windows(self.encoder.tokenizer, self.prompts.lead, docs, best)
        else:
            scores = rows
        truncated = plan.truncated | pre.query_cut
        stats = {
            "pairs": float(len(docs)),
            "rows": float(plan.n_rows),
            "batches": float(plan.n_batches),
            "prefix_cache": float(cached),
            "prefix_tokens": float(p),
            "model_tokens": float(real + (p if cached else 0)),
            "padded_tokens": float(padded),
            "tokens": float(int(plan.row_tokens.sum())),
            "truncated": float(truncated.sum()),
            "peak_batch_tokens": float(plan.peak_batch_tokens),
            "cache_hits": float(counts.get("cache_hits", 0)),
            "cache_misses": float(counts.get("cache_misses", 0)),
            "tokenize_s": t1 - t0,
            "prefix_s": t2 - t1,
            "infer_s": t3 - t2,
            "total_s": time.perf_counter() - t0,
            "queries": 1.0,
        }
        return Scores(scores, truncated, windows, stats)
