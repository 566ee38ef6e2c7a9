"""LLMReranker: RankGPT's sliding window (:mod:`.rankgpt`) over an OpenAI-compatible endpoint (:mod:`.client`).

Quality figures need a real LLM: the test-suite checks the window arithmetic, the answer repairs, retries,
deadline, concurrency and accounting against a local fake server whose answers come from a deterministic
scorer, which says nothing about how well any given model ranks.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ..._common import check_text, check_texts, check_top_k
from ...types import Scores
from ..base import RerankerBase, check_batch
from .client import ChatClient, LLMUsage, positive
from .rankgpt import (
    LLMRepairs,
    PassageTruncator,
    apply_permutation,
    build_messages,
    check_window,
    parse_permutation,
    prepare_passages,
    scores_from_order,
    sliding_windows,
)

__all__ = ["LLMCall", "LLMRankResult", "LLMReranker", "parse_llm_spec"]


@dataclass(frozen=True)
class LLMCall:
    """One window sent to the model.

    Attributes
    ----------
    start, end : int
        Positions ``[start, end)`` of the window in the list at that moment.
    status : {"ok", "failed", "timed_out"}
        ``failed``: the request failed for good and ``on_error="keep"`` kept the window's order.
    attempts : int
        HTTP attempts made (1 + retries).
    prompt_tokens, completion_tokens : int
        From the response's ``usage`` (0 when the server sends none).
    cost : float or None
        From the prices given to the reranker (None without prices).
    latency_s : float
        Wall time of the window, retries and backoff included.
    answer : str or None
        The model's raw answer.
    """

    start: int
    end: int
    status: Literal["ok", "failed", "timed_out"]
    attempts: int
    prompt_tokens: int
    completion_tokens: int
    cost: float | None
    latency_s: float
    answer: str | None


@dataclass(frozen=True)
class LLMRankResult:
    """The detailed outcome of reranking one query's candidates (:meth:`LLMReranker.rerank_detailed`).

    Attributes
    ----------
    order : numpy.ndarray of int64, shape (min(top_k, n),)
        Indices into ``documents``, best first.
    ranks : numpy.ndarray of int64, shape (n,)
        Final rank of every document (0 = best).
    scores : numpy.ndarray of float64, shape (n,)
        ``n - rank``: the best document scores ``n``, the last 1 (what :meth:`LLMReranker.score` returns).
    truncated : numpy.ndarray of bool, shape (n,)
        Whether the document was cut to ``max_passage_tokens`` inside the prompt.
    timed_out : bool
        The deadline passed before every window was ranked; the windows not ranked kept their order
        (the input order where no window reached).
    n_calls : int
        Windows sent to the model.
    usage : LLMUsage
        Tokens and cost of this query.
    repairs : LLMRepairs
        Fixes applied to the answers.
    calls : tuple of LLMCall
        Per-window details.
    """

    order: np.ndarray
    ranks: np.ndarray
    scores: np.ndarray
    truncated: np.ndarray
    timed_out: bool
    n_calls: int
    usage: LLMUsage
    repairs: LLMRepairs
    calls: tuple[LLMCall, ...] = field(default=())

    def to_scores(self) -> Scores:
        """This result as the protocol's :class:`~crossrank.types.Scores`, with its accounting as stats."""
        stats = {
            "calls": float(self.n_calls),
            "failed_calls": float(sum(c.status == "failed" for c in self.calls)),
            "timed_out": float(self.timed_out),
            "prompt_tokens": float(self.usage.prompt_tokens),
            "completion_tokens": float(self.usage.completion_tokens),
            "requests": float(self.usage.n_requests),
            "retries": float(self.usage.n_retries),
            "usage_missing": float(self.usage.usage_missing),
            "repairs": float(self.repairs.total),
            "latency_s": float(sum(c.latency_s for c in self.calls)),
        }
        if self.usage.cost is not None:
            stats["cost"] = float(self.usage.cost)
        return Scores(self.scores, self.truncated, None, stats)


class LLMReranker(RerankerBase):
    """Rerank candidates with an LLM through an OpenAI-compatible chat-completions endpoint.

    RankGPT-style permutation generation (Sun et al. 2023) with a sliding window from the bottom of the
    list up. Meets the :class:`crossrank.types.Reranker` protocol: :meth:`score` gives the document at
    final rank ``r`` (0 = best) of ``n`` the score ``n - r`` (an order, not a calibrated relevance;
    compare within one query), ``truncated`` flags passages cut to ``max_passage_tokens``, and
    ``Scores.stats`` carries the query's calls, tokens, cost, retries, repairs and ``timed_out``.
    :meth:`score_batch` ranks the queries concurrently (windows of one query stay sequential: each
    depends on the previous one). The given order of the documents is the starting order, so pass them
    best first (e.g. the first stage's ranking).

    One instance may be shared across threads: the HTTP client is thread-safe, ``max_concurrency``
    bounds the requests in flight across all of them, per-call numbers travel with each result, and the
    cumulative :attr:`total_usage` / :attr:`total_repairs` are updated under a lock.

    Quality depends entirely on the model behind ``base_url``; the tests use a fake deterministic server.

    Parameters
    ----------
    base_url : str
        The API root, e.g. ``"http://localhost:8000/v1"`` (vLLM), ``"http://localhost:11434/v1"`` (Ollama),
        ``"https://api.openai.com/v1"``.
    model : str
        Model name as the server knows it.
    api_key : str, optional
        Defaults to ``$OPENAI_API_KEY``, else the placeholder ``"EMPTY"`` (local servers ignore it).
    window, step : int
        Passages per request (>= 2) and stride (1 <= step <= window). The best ``window - step`` passages
        overall are guaranteed to reach the top when the model ranks each window correctly; positions
        below that are only partially sorted.
    max_passage_tokens : int
        Each passage is cut to this many tokens inside the prompt (newlines collapsed first). Tokens are
        counted with ``tokenizer``.
    tokenizer : None, str, path or tokenizers.Tokenizer
        ``None``: tiktoken's ``o200k_base`` when tiktoken is installed and its vocabulary loads, else the
        whitespace approximation. ``"whitespace"``: keep ``floor(0.75 * max_passage_tokens)`` words
        (about 0.75 English words per BPE token). ``"tiktoken:<encoding>"``, a ``tokenizer.json`` path,
        a model directory holding one, or a ``tokenizers.Tokenizer``: count real tokens. ``tokenizer_name``
        says which one is in use.
    max_concurrency : int
        Most requests in flight at once from this reranker, across threads and queries.
    max_retries : int
        Retries after a 408/409/429/5xx status, a timeout or a connection error (exponential backoff
        ``backoff_base * 2**attempt`` capped at ``backoff_max``, times a random jitter in [0.5, 1];
        a ``Retry-After`` header is honoured up to ``backoff_max``).
    timeout : float
        Seconds per HTTP attempt.
    deadline : float, optional
        Seconds per call (per batch in :meth:`score_batch` / :meth:`rerank_detailed_batch`); when it
        passes, the current order is returned with ``timed_out``. Requests in flight are cut at the deadline.
    temperature : float
        Sampling temperature (0: as deterministic as the server allows).
    max_tokens : int, optional
        Cap on completion tokens (None: the server's default; reasoning models need room to think).
    price_per_1k_prompt, price_per_1k_completion : float, optional
        Prices for the cost accounting (``cost`` is None unless at least one is given).
    on_error : {"raise", "keep"}
        After a non-retryable status or exhausted retries: raise :class:`LLMRequestError`, or keep that
        window's order, record the call as ``failed`` and go on.
    backoff_base, backoff_max : float
        Backoff schedule in seconds.
    seed : int, optional
        Seed of the jitter's random generator.

    Raises
    ------
    ImportError
        The ``openai`` package is missing (``pip install "crossrank[llm]"``).
    ValueError
        A parameter is out of range.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        window: int = 20,
        step: int = 10,
        max_passage_tokens: int = 300,
        tokenizer: object = None,
        max_concurrency: int = 4,
        max_retries: int = 3,
        timeout: float = 60.0,
        deadline: float | None = None,
        temperature: float = 0.0,
        max_tokens: int | None = None,
        price_per_1k_prompt: float | None = None,
        price_per_1k_completion: float | None = None,
        on_error: Literal["raise", "keep"] = "raise",
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        seed: int | None = None,
    ) -> None:
        check_window(window, step)
        positive("max_passage_tokens", max_passage_tokens, integer=True)
        positive("deadline", deadline, allow_none=True)
        if on_error not in ("raise", "keep"):
            raise ValueError(f"on_error must be 'raise' or 'keep', got {on_error!r}")
        self.window = window
        self.step = step
        self.max_passage_tokens = max_passage_tokens
        self.deadline = None if deadline is None else float(deadline)
        self.on_error: Literal["raise", "keep"] = on_error
        self._truncator = PassageTruncator(tokenizer)
        self.client = ChatClient(
            base_url,
            model,
            api_key=api_key,
            max_concurrency=max_concurrency,
            max_retries=max_retries,
            timeout=timeout,
            temperature=temperature,
            max_tokens=max_tokens,
            price_per_1k_prompt=price_per_1k_prompt,
            price_per_1k_completion=price_per_1k_completion,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            seed=seed,
        )
        self._lock = threading.Lock()
        self._total = LLMUsage()
        self._total_repairs = LLMRepairs()

    @property
    def base_url(self) -> str:
        """The API root."""
        return self.client.base_url

    @property
    def model(self) -> str:
        """The model name sent with every request."""
        return self.client.model

    @property
    def max_concurrency(self) -> int:
        """Most requests in flight at once."""
        return self.client.max_concurrency

    def __repr__(self) -> str:
        return (
            f"LLMReranker(base_url={self.base_url!r}, model={self.model!r}, window={self.window}, "
            f"step={self.step}, max_passage_tokens={self.max_passage_tokens}, "
            f"tokenizer={self.tokenizer_name!r}, max_concurrency={self.max_concurrency})"
        )

    def close(self) -> None:
        """Close the HTTP connections of the underlying client."""
        self.client.close()

    def __enter__(self) -> LLMReranker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def tokenizer_name(self) -> str:
        """Which token counter cuts passages: ``tiktoken:...``, ``hf:...`` or ``whitespace-words``."""
        return self._truncator.name

    @property
    def total_usage(self) -> LLMUsage:
        """Tokens, cost and requests summed over every query this reranker has ranked (cumulative)."""
        with self._lock:
            return self._total

    @property
    def total_repairs(self) -> LLMRepairs:
        """Answer repairs summed over every query this reranker has ranked (cumulative; a copy)."""
        with self._lock:
            r = LLMRepairs()
            r.add(self._total_repairs)
            return r

    # ----------------------------------------------------------------------------------------- protocol
    def _deadline_at(self) -> float | None:
        return None if self.deadline is None else time.monotonic() + self.deadline

    def _score_many(self, queries: list[str], documents_per_query: list[list[str]]) -> list[Scores]:
        results = self._run_many(queries, documents_per_query, None, self._deadline_at())
        return [r.to_scores() for r in results]

    def _run_many(
        self,
        queries: list[str],
        documents_per_query: list[list[str]],
        top_k: int | None,
        deadline_at: float | None,
    ) -> list[LLMRankResult]:
        """Queries concurrently (their windows share the client's ``max_concurrency`` slots)."""
        if not queries:
            return []
        if len(queries) == 1:
            return [self._rerank(queries[0], documents_per_query[0], top_k, deadline_at)]
        workers = min(self.max_concurrency, len(queries))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="crossrank-llm") as pool:
            futures = [
                pool.submit(self._rerank, q, d, top_k, deadline_at)
                for q, d in zip(queries, documents_per_query, strict=True)
            ]
            return [f.result() for f in futures]

    # ----------------------------------------------------------------------------------------- detailed
    def rerank_detailed(
        self, query: str, documents: Sequence[str], top_k: int | None = None
    ) -> LLMRankResult:
        """Order ``documents`` by relevance to ``query`` and return every detail of the run.

        Parameters
        ----------
        query : str
            The query.
        documents : sequence of str
            Candidates, typically the first stage's ranking, best first (the starting order).
        top_k : int, optional
            Length of ``order`` (an int >= 1; all windows are still ranked: the sliding window needs them).

        Returns
        -------
        LLMRankResult

        Raises
        ------
        TypeError
            ``query`` or a document is not a str, or ``documents`` is a lone str.
        ValueError
            ``top_k`` < 1.
        LLMRequestError
            A request failed for good and ``on_error="raise"``.
        """
        check_text(query, "query")
        docs = check_texts(documents, "documents")
        check_top_k(top_k, len(docs))
        return self._rerank(query, docs, top_k, self._deadline_at())

    def rerank_detailed_batch(
        self,
        queries: Sequence[str],
        documents_per_query: Sequence[Sequence[str]],
        top_k: int | None = None,
    ) -> list[LLMRankResult]:
        """:meth:`rerank_detailed` for many queries, run concurrently; ``deadline`` covers the batch.

        Parameters
        ----------
        queries : sequence of str
            The queries.
        documents_per_query : sequence of sequence of str
            ``documents_per_query[i]`` are the candidates of ``queries[i]``.
        top_k : int, optional
            Length of each ``order``.

        Returns
        -------
        list of LLMRankResult
            In the order of ``queries``.

        Raises
        ------
        TypeError
            A non-str query or document, or ``queries`` is a lone str.
        ValueError
            ``queries`` and ``documents_per_query`` differ in length, or ``top_k`` < 1.
        LLMRequestError
            A request failed for good and ``on_error="raise"``.
        """
        qs, docs = check_batch(queries, documents_per_query)
        check_top_k(top_k, 0)
        return self._run_many(qs, docs, top_k, self._deadline_at())

    async def arerank_detailed(
        self, query: str, documents: Sequence[str], top_k: int | None = None
    ) -> LLMRankResult:
        """Async form of :meth:`rerank_detailed` (runs in a worker thread; shares the concurrency limit).

        Parameters
        ----------
        query, documents, top_k
            As in :meth:`rerank_detailed`.
        """
        return await asyncio.to_thread(self.rerank_detailed, query, documents, top_k)

    async def arerank_detailed_batch(
        self,
        queries: Sequence[str],
        documents_per_query: Sequence[Sequence[str]],
        top_k: int | None = None,
    ) -> list[LLMRankResult]:
        """Async form of :meth:`rerank_detailed_batch`.

        Parameters
        ----------
        queries, documents_per_query, top_k
            As in :meth:`rerank_detailed_batch`.
        """
        return await asyncio.to_thread(self.rerank_detailed_batch, queries, documents_per_query, top_k)

    # ----------------------------------------------------------------------------------------- internals
    def _rerank(
        self, query: str, docs: list[str], top_k: int | None, deadline_at: float | None
    ) -> LLMRankResult:
        """The sliding window over one query's candidates (inputs already checked)."""
        n = len(docs)
        passages, truncated = prepare_passages(docs, self._truncator, self.max_passage_tokens)
        q = " ".join(query.split())
        order = list(range(n))
        calls: list[LLMCall] = []
        repairs = LLMRepairs()
        usage = LLMUsage()
        timed_out = False
        for start, end in sliding_windows(n, self.window, self.step):
            if deadline_at is not None and time.monotonic() >= deadline_at:
                timed_out = True
                break
            window = [passages[i] for i in order[start:end]]
            got = self.client.complete(
                build_messages(q, window),
                deadline_at=deadline_at,
                on_error=self.on_error,
                what=f"chat completion for window [{start}, {end})",
            )
            u = got.usage
            calls.append(
                LLMCall(
                    start,
                    end,
                    got.status,
                    got.attempts,
                    u.prompt_tokens,
                    u.completion_tokens,
                    u.cost,
                    got.latency_s,
                    got.answer,
                )
            )
            usage = usage + u
            if got.status == "timed_out":
                timed_out = True
                break
            if got.status == "ok":
                perm, rep = parse_permutation(got.answer, len(window))
                repairs.add(rep)
                apply_permutation(order, start, end, perm)
        with self._lock:
            self._total = self._total + usage
            self._total_repairs.add(repairs)
        ranks = np.empty(n, dtype=np.int64)
        ranks[np.asarray(order, dtype=np.int64)] = np.arange(n, dtype=np.int64)
        keep = check_top_k(top_k, n)
        return LLMRankResult(
            order=np.asarray(order[:keep], dtype=np.int64),
            ranks=ranks,
            scores=scores_from_order(order),
            truncated=truncated,
            timed_out=timed_out,
            n_calls=len(calls),
            usage=usage,
            repairs=repairs,
            calls=tuple(calls),
        )


def parse_llm_spec(spec: str, **kwargs: object) -> LLMReranker:
    """Build an :class:`LLMReranker` from ``"llm:BASE_URL@MODEL"`` (the CLI's reranker value).

    The model is what follows the last ``@``, so a model name cannot contain ``@`` (a user:password
    in the URL can).

    Parameters
    ----------
    spec : str
        ``"llm:BASE_URL@MODEL"``.
    **kwargs
        Passed to :class:`LLMReranker`.

    Examples
    --------
    >>> parse_llm_spec("llm:http://localhost:8000/v1@Qwen/Qwen2.5-7B-Instruct")  # doctest: +SKIP

    Raises
    ------
    ValueError
        The string does not have that shape.
    """
    example = "llm:http://localhost:8000/v1@Qwen/Qwen2.5-7B-Instruct"
    if not isinstance(spec, str) or not spec.startswith("llm:"):
        raise ValueError(f"an LLM reranker spec starts with 'llm:', e.g. {example!r}; got {spec!r}")
    rest = spec[len("llm:") :]
    url, sep, model = rest.rpartition("@")
    if not sep or not url or not model:
        raise ValueError(f"an LLM reranker spec is 'llm:BASE_URL@MODEL', e.g. {example!r}; got {spec!r}")
    if not re.match(r"https?://[^/\s]+", url):
        raise ValueError(
            f"the base URL in {spec!r} must start with http:// or https:// and name a host, e.g. {example!r}"
        )
    return LLMReranker(url, model, **kwargs)  # type: ignore[arg-type]
