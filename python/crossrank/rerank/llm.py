"""Listwise reranking with a large language model (RankGPT-style sliding window).

The method is *permutation generation* from Sun et al., "Is ChatGPT Good at Search? Investigating Large
Language Models as Re-Ranking Agents" (EMNLP 2023, https://arxiv.org/abs/2304.09542): the model reads a
query and a numbered list of passages ``[1]`` .. ``[m]`` and answers with an ordering such as
``[2] > [1] > [3]``. A list longer than the model's window is ranked by a window of ``window`` passages that
slides from the bottom of the list to the top in steps of ``step``; the best ``window - step`` passages of
each window are carried up into the next one, so the best ``window - step`` passages of the whole list
reach the top (a bubble sort with a wide comparator).

The model is reached through any OpenAI-compatible ``/v1/chat/completions`` endpoint (OpenAI, vLLM,
llama.cpp server, Ollama, ...) with the official ``openai`` client (the optional extra
``pip install "crossrank[llm]"``).

Quality figures need a real LLM: the test-suite checks the window arithmetic, the answer repairs, retries,
deadline, concurrency and accounting against a local fake server whose answers come from a deterministic
scorer, which says nothing about how well any given model ranks.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..errors import CrossrankError, missing_extra

__all__ = [
    "LLMCall",
    "LLMRankResult",
    "LLMRepairs",
    "LLMRequestError",
    "LLMReranker",
    "LLMUsage",
    "build_messages",
    "parse_llm_spec",
    "parse_permutation",
    "sliding_windows",
]

# Wording of the RankGPT instruction (Sun et al. 2023, Fig. 2 / the authors' repository): a system role,
# the query, the numbered passages, then the query again with the output format "[] > []".
SYSTEM_PROMPT = (
    "You are RankGPT, an intelligent assistant that can rank passages based on their relevancy to the query."
)


class LLMRequestError(CrossrankError):
    """A chat-completions request failed for good (non-retryable status, or retries exhausted)."""


# --------------------------------------------------------------------------------------------- windows
def sliding_windows(n: int, window: int, step: int) -> list[tuple[int, int]]:
    """Return the ``[start, end)`` windows visited for a list of ``n`` candidates, bottom first.

    The first window is ``[n - window, n)``; each next one is ``step`` positions higher; the last one
    starts at 0 (clipped, so it may be shorter than ``window``). The count is
    ``1 + ceil(max(0, n - window) / step)`` for ``n > 0`` and 0 for ``n <= 1`` (nothing to order).
    Unlike the loop in the RankGPT repository, the top of a list whose length is not ``window`` plus a
    multiple of ``step`` is still visited.

    Parameters
    ----------
    n : int
        Number of candidates.
    window, step : int
        Window size (>= 2) and stride (1 <= step <= window).

    Returns
    -------
    list of (int, int)
        Half-open position ranges, in the order they are sent to the model.
    """
    _check_window(window, step)
    if n <= 1:
        return []
    out: list[tuple[int, int]] = []
    end = n
    while True:
        start = max(0, end - window)
        out.append((start, end))
        if start == 0:
            return out
        end -= step


def _check_window(window: int, step: int) -> None:
    if not isinstance(window, int) or isinstance(window, bool) or window < 2:
        raise ValueError(f"window must be an int >= 2, got {window!r}")
    if not isinstance(step, int) or isinstance(step, bool) or not 1 <= step <= window:
        raise ValueError(
            f"step must be an int with 1 <= step <= window ({window}), got {step!r}; "
            "a step smaller than the window lets the best passages move up between windows"
        )


# --------------------------------------------------------------------------------------------- parsing
@dataclass
class LLMRepairs:
    """Counts of the fixes applied to the model's answers (all windows of one query, or totals).

    Attributes
    ----------
    out_of_range : int
        Identifiers outside ``[1, m]`` that were ignored.
    duplicates : int
        Identifiers repeated in an answer; only the first occurrence was kept.
    missing : int
        Passages the answer left out; appended after the ranked ones in their current order.
    unbracketed : int
        Answers whose identifiers were bare numbers (``2 > 1 > 3``) instead of ``[2] > [1] > [3]``.
    unparseable : int
        Answers with no identifier at all (empty, prose only); that window kept its order.
    """

    out_of_range: int = 0
    duplicates: int = 0
    missing: int = 0
    unbracketed: int = 0
    unparseable: int = 0

    def add(self, other: LLMRepairs) -> None:
        """Add ``other``'s counts to this one."""
        self.out_of_range += other.out_of_range
        self.duplicates += other.duplicates
        self.missing += other.missing
        self.unbracketed += other.unbracketed
        self.unparseable += other.unparseable

    @property
    def total(self) -> int:
        """Number of answers or identifiers that needed a repair."""
        return self.out_of_range + self.duplicates + self.missing + self.unbracketed + self.unparseable


_THINK = re.compile(r"<think>.*?(?:</think>|\Z)", re.DOTALL | re.IGNORECASE)
_BRACKETED = re.compile(r"\[\s*(\d+)\s*\]")
_CHAIN = re.compile(r"\d+(?:\s*(?:>|,)\s*\d+)+")
_NUMBER = re.compile(r"\d+")


def parse_permutation(text: str | None, m: int) -> tuple[list[int], LLMRepairs]:
    """Read a permutation of ``range(m)`` out of a model's answer; never raises.

    The identifiers are the bracketed numbers ``[k]`` when the answer has any; otherwise the longest
    ``a > b > c`` (or comma) chain of bare numbers; otherwise every bare number. A ``<think>...</think>``
    block (reasoning models) is dropped first. Identifiers are 1-based in the answer. Out-of-range and
    repeated identifiers are dropped; passages left out are appended in their current order.

    Parameters
    ----------
    text : str or None
        The answer (``None`` counts as empty).
    m : int
        Number of passages in the window.

    Returns
    -------
    perm : list of int
        A permutation of ``range(m)``, best first.
    repairs : LLMRepairs
        What had to be fixed.
    """
    repairs = LLMRepairs()
    body = _THINK.sub(" ", text or "")
    tokens = _BRACKETED.findall(body)
    if not tokens:
        chains = _CHAIN.findall(body)
        if chains:
            tokens = _NUMBER.findall(max(chains, key=lambda c: len(_NUMBER.findall(c))))
        else:
            tokens = _NUMBER.findall(body)
        if tokens:
            repairs.unbracketed = 1
    if not tokens:
        repairs.unparseable = 1
        return list(range(m)), repairs
    seen: set[int] = set()
    perm: list[int] = []
    for tok in tokens:
        k = int(tok[:9]) - 1  # [:9]: a runaway digit string stays a (large, out-of-range) int
        if not 0 <= k < m:
            repairs.out_of_range += 1
        elif k in seen:
            repairs.duplicates += 1
        else:
            seen.add(k)
            perm.append(k)
    if not perm:
        repairs.unparseable = 1
    missing = [k for k in range(m) if k not in seen]
    repairs.missing = len(missing) if perm else 0
    return perm + missing, repairs


# --------------------------------------------------------------------------------------------- tokens
class _Truncator:
    """Cut a passage to a token budget with the best tokenizer available; ``name`` says which."""

    def __init__(self, spec: Any) -> None:
        self._encode: Callable[[str], list[tuple[int, int]]] | None = None
        self._tiktoken: Any = None
        if spec is None:
            try:
                import tiktoken

                self._tiktoken = tiktoken.get_encoding("o200k_base")
                self.name = "tiktoken:o200k_base"
            except Exception:  # not installed, or its vocabulary cannot be fetched offline
                self.name = "whitespace-words"
            return
        if isinstance(spec, str) and spec == "whitespace":
            self.name = "whitespace-words"
            return
        if isinstance(spec, str) and spec.startswith("tiktoken:"):
            try:
                import tiktoken
            except ImportError as e:
                raise ImportError(
                    "tokenizer='tiktoken:...' needs the 'tiktoken' package: pip install tiktoken"
                ) from e
            self._tiktoken = tiktoken.get_encoding(spec.split(":", 1)[1])
            self.name = spec
            return
        if isinstance(spec, (str, os.PathLike)):
            from tokenizers import Tokenizer

            path = os.fspath(spec)
            if os.path.isdir(path):
                path = os.path.join(path, "tokenizer.json")
            if not os.path.isfile(path):
                raise ValueError(
                    f"tokenizer must be None, 'whitespace', 'tiktoken:<encoding>', a tokenizer.json file or "
                    f"a directory holding one; no tokenizer.json at {path!r}"
                )
            spec = Tokenizer.from_file(path)
            self.name = f"hf:{path}"
        else:
            self.name = f"hf:{type(spec).__name__}"
        if not hasattr(spec, "encode"):
            raise TypeError(f"tokenizer must be a tokenizers.Tokenizer or a path, got {type(spec).__name__}")
        # A private copy without padding or truncation (a model's tokenizer.json often pads to and cuts
        # at its max length, which would miscount long passages).
        tok = type(spec).from_str(spec.to_str()) if hasattr(spec, "to_str") else spec
        if hasattr(tok, "no_padding"):
            tok.no_padding()
            tok.no_truncation()

        def encode(text: str) -> list[tuple[int, int]]:
            return list(tok.encode(text, add_special_tokens=False).offsets)

        self._encode = encode

    def truncate(self, text: str, budget: int) -> tuple[str, bool]:
        """Return ``(text cut to about budget tokens, whether it was cut)``."""
        if self._tiktoken is not None:
            ids = self._tiktoken.encode(text, disallowed_special=())
            if len(ids) <= budget:
                return text, False
            return self._tiktoken.decode(ids[:budget]), True
        if self._encode is not None:
            offsets = self._encode(text)
            if len(offsets) <= budget:
                return text, False
            return text[: offsets[budget - 1][1]], True
        # Approximation without a tokenizer: English text averages about 0.75 words per BPE token
        # (OpenAI's rule of thumb), so a budget of T tokens keeps floor(0.75 T) whitespace-separated words.
        words = text.split()
        keep = max(1, (3 * budget) // 4)
        if len(words) <= keep:
            return text, False
        return " ".join(words[:keep]), True


def build_messages(query: str, passages: Sequence[str]) -> list[dict[str, str]]:
    """Return the chat messages asking the model to rank ``passages`` for ``query`` (RankGPT wording).

    Passages are labelled ``[1]`` .. ``[m]`` one per line (newlines inside a passage are collapsed by
    the caller) and the answer is asked for as ``[2] > [1] > ...``.
    """
    m = len(passages)
    lines = [
        f"I will provide you with {m} passages, each indicated by a numerical identifier []. "
        f"Rank the passages based on their relevance to the search query: {query}.",
        "",
    ]
    lines += [f"[{i}] {p}" for i, p in enumerate(passages, start=1)]
    lines += [
        "",
        f"Search Query: {query}.",
        f"Rank the {m} passages above based on their relevance to the search query. All the passages "
        "should be included and listed using identifiers, in descending order of relevance. The output "
        "format should be [] > [], e.g., [2] > [1]. Only respond with the ranking results, do not say "
        "any word or explain.",
    ]
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": "\n".join(lines)}]


# --------------------------------------------------------------------------------------------- results
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
class LLMUsage:
    """Token and cost totals.

    ``n_requests`` counts HTTP attempts (retries included); ``n_retries`` the attempts after a failure;
    ``usage_missing`` the successful responses without a ``usage`` field (their tokens count as 0).
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None
    n_requests: int = 0
    n_retries: int = 0
    usage_missing: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: LLMUsage) -> LLMUsage:
        cost = None if self.cost is None and other.cost is None else (self.cost or 0.0) + (other.cost or 0.0)
        return LLMUsage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            cost,
            self.n_requests + other.n_requests,
            self.n_retries + other.n_retries,
            self.usage_missing + other.usage_missing,
        )


@dataclass(frozen=True)
class LLMRankResult:
    """The outcome of reranking one query's candidates.

    Attributes
    ----------
    order : numpy.ndarray of int64, shape (min(top_k, n),)
        Indices into ``documents``, best first.
    ranks : numpy.ndarray of int64, shape (n,)
        Final rank of every document (0 = best).
    scores : numpy.ndarray of float64, shape (n,)
        ``1 / (rank + 1)`` (reciprocal rank): higher is better, in (0, 1].
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


# --------------------------------------------------------------------------------------------- reranker
class _DeadlineReached(Exception):
    pass


def _positive(name: str, value: Any, *, allow_none: bool = False, integer: bool = False) -> None:
    if value is None and allow_none:
        return
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not value > 0 or not math.isfinite(value):
        what = "a positive int" if integer else "a positive number"
        raise ValueError(f"{name} must be {what}{' or None' if allow_none else ''}, got {value!r}")


class LLMReranker:
    """Rerank candidates with an LLM through an OpenAI-compatible chat-completions endpoint.

    RankGPT-style permutation generation (Sun et al. 2023) with a sliding window from the bottom of the
    list up. Quality depends entirely on the model behind ``base_url``: the figures quoted for this tier
    (e.g. DESIGN.md's "Hybrid + LLM rerank") need a real LLM; the tests use a fake deterministic server.

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
        Seconds per query (per batch in :meth:`rerank_many`); when it passes, the current order is
        returned with ``timed_out=True``. Requests in flight are cut at the deadline.
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
        tokenizer: Any = None,
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
        try:
            import openai
        except ImportError as e:
            raise missing_extra("openai", "llm") from e
        if not isinstance(base_url, str) or not re.match(r"https?://", base_url):
            raise ValueError(
                f"base_url must be an http(s) URL such as 'http://localhost:8000/v1', got {base_url!r}"
            )
        if not isinstance(model, str) or not model:
            raise ValueError(f"model must be a non-empty string, got {model!r}")
        _check_window(window, step)
        _positive("max_passage_tokens", max_passage_tokens, integer=True)
        _positive("max_concurrency", max_concurrency, integer=True)
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an int >= 0, got {max_retries!r}")
        _positive("timeout", timeout)
        _positive("deadline", deadline, allow_none=True)
        _positive("max_tokens", max_tokens, allow_none=True, integer=True)
        if (
            isinstance(temperature, bool)
            or not isinstance(temperature, (int, float))
            or not 0 <= temperature <= 2
        ):
            raise ValueError(f"temperature must be a number in [0, 2], got {temperature!r}")
        for name, price in (
            ("price_per_1k_prompt", price_per_1k_prompt),
            ("price_per_1k_completion", price_per_1k_completion),
        ):
            if price is not None and (
                isinstance(price, bool) or not isinstance(price, (int, float)) or not price >= 0
            ):
                raise ValueError(f"{name} must be a number >= 0 or None, got {price!r}")
        if on_error not in ("raise", "keep"):
            raise ValueError(f"on_error must be 'raise' or 'keep', got {on_error!r}")
        _positive("backoff_base", backoff_base)
        _positive("backoff_max", backoff_max)

        self.base_url = base_url
        self.model = model
        self.window = window
        self.step = step
        self.max_passage_tokens = max_passage_tokens
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.timeout = float(timeout)
        self.deadline = None if deadline is None else float(deadline)
        self.temperature = float(temperature)
        self.max_tokens = max_tokens
        self.price_per_1k_prompt = price_per_1k_prompt
        self.price_per_1k_completion = price_per_1k_completion
        self.on_error = on_error
        self.backoff_base = float(backoff_base)
        self.backoff_max = float(backoff_max)
        self._truncator = _Truncator(tokenizer)
        self._openai = openai
        key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        # Retries are ours (deadline-aware backoff with jitter), so the client's own are off.
        self._client = openai.OpenAI(base_url=base_url, api_key=key, timeout=self.timeout, max_retries=0)
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._total = LLMUsage()
        self._total_repairs = LLMRepairs()

    def __repr__(self) -> str:
        return (
            f"LLMReranker(base_url={self.base_url!r}, model={self.model!r}, window={self.window}, "
            f"step={self.step}, max_passage_tokens={self.max_passage_tokens}, "
            f"tokenizer={self.tokenizer_name!r}, max_concurrency={self.max_concurrency})"
        )

    def close(self) -> None:
        """Close the HTTP connections of the underlying client."""
        self._client.close()

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
        """Tokens, cost and requests summed over every query this reranker has ranked."""
        with self._lock:
            return self._total

    @property
    def total_repairs(self) -> LLMRepairs:
        """Answer repairs summed over every query this reranker has ranked (a copy)."""
        with self._lock:
            r = LLMRepairs()
            r.add(self._total_repairs)
            return r

    # ----------------------------------------------------------------------------------------- public
    def rerank(self, query: str, documents: Sequence[str], *, top_k: int | None = None) -> LLMRankResult:
        """Order ``documents`` by relevance to ``query`` (their given order is the starting order).

        Parameters
        ----------
        query : str
        documents : sequence of str
            Candidates, typically the first stage's ranking, best first.
        top_k : int, optional
            Length of ``order`` (all windows are still ranked: the sliding window needs them).

        Returns
        -------
        LLMRankResult

        Raises
        ------
        TypeError
            ``query`` or a document is not a string.
        ValueError
            ``top_k`` is not a positive int.
        LLMRequestError
            A request failed for good and ``on_error="raise"``.
        """
        deadline_at = None if self.deadline is None else time.monotonic() + self.deadline
        return self._rerank(query, documents, top_k, deadline_at)

    def rank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_k: int | None = None,
        return_documents: bool = False,
    ) -> list[dict[str, Any]]:
        """Rank ``documents`` like ``CrossEncoder.rank``: a list of dicts, best first.

        Each dict has ``corpus_id`` (int, index into ``documents``), ``score`` (Python float, reciprocal
        rank ``1 / (rank + 1)``), ``rank`` (int, 0 = best) and ``truncated`` (bool: the passage was cut
        inside the prompt); with ``return_documents=True`` also ``text``. Use :meth:`rerank` to see
        ``timed_out`` and the accounting.
        """
        if not isinstance(documents, str):
            documents = list(documents)
        res = self.rerank(query, documents, top_k=top_k)
        out: list[dict[str, Any]] = []
        for i in res.order.tolist():
            row: dict[str, Any] = {
                "corpus_id": int(i),
                "score": float(res.scores[i]),
                "rank": int(res.ranks[i]),
                "truncated": bool(res.truncated[i]),
            }
            if return_documents:
                row["text"] = documents[i]
            out.append(row)
        return out

    def rerank_many(
        self,
        queries: Sequence[str],
        documents: Sequence[Sequence[str]],
        *,
        top_k: int | None = None,
    ) -> list[LLMRankResult]:
        """Rerank many queries concurrently (at most ``max_concurrency`` requests in flight).

        ``documents[i]`` are the candidates of ``queries[i]``. Windows of one query stay sequential (each
        depends on the previous one); different queries overlap. ``deadline`` applies to the whole batch.

        Returns
        -------
        list of LLMRankResult
            In the order of ``queries``.
        """
        if isinstance(queries, str) or len(queries) != len(documents):
            raise ValueError(
                "queries must be a sequence of strings with one list of documents each; got "
                f"{'a single string' if isinstance(queries, str) else len(queries)} queries and "
                f"{len(documents)} document lists"
            )
        deadline_at = None if self.deadline is None else time.monotonic() + self.deadline
        if not queries:
            return []
        workers = min(self.max_concurrency, len(queries))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="crossrank-llm") as pool:
            futures = [
                pool.submit(self._rerank, q, d, top_k, deadline_at)
                for q, d in zip(queries, documents, strict=True)
            ]
            return [f.result() for f in futures]

    async def arerank(
        self, query: str, documents: Sequence[str], *, top_k: int | None = None
    ) -> LLMRankResult:
        """Async form of :meth:`rerank` (runs in a worker thread; shares the concurrency limit)."""
        return await asyncio.to_thread(self.rerank, query, documents, top_k=top_k)

    async def arerank_many(
        self, queries: Sequence[str], documents: Sequence[Sequence[str]], *, top_k: int | None = None
    ) -> list[LLMRankResult]:
        """Async form of :meth:`rerank_many`."""
        return await asyncio.to_thread(self.rerank_many, queries, documents, top_k=top_k)

    # ----------------------------------------------------------------------------------------- internals
    def _rerank(
        self, query: str, documents: Sequence[str], top_k: int | None, deadline_at: float | None
    ) -> LLMRankResult:
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, got {type(query).__name__}")
        if isinstance(documents, str):
            raise TypeError("documents must be a sequence of strings, got a single str; wrap it in a list")
        docs = list(documents)
        for i, d in enumerate(docs):
            if not isinstance(d, str):
                raise TypeError(f"documents[{i}] must be a str, got {type(d).__name__}")
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise ValueError(f"top_k must be a positive int or None, got {top_k!r}")
        n = len(docs)
        passages: list[str] = []
        truncated = np.zeros(n, dtype=bool)
        for i, d in enumerate(docs):
            text, cut = self._truncator.truncate(" ".join(d.split()), self.max_passage_tokens)
            passages.append(text)
            truncated[i] = cut
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
            ids = order[start:end]
            call, perm, rep, use = self._rank_window(q, [passages[i] for i in ids], start, end, deadline_at)
            calls.append(call)
            usage = usage + use
            if call.status == "timed_out":
                timed_out = True
                break
            if perm is not None:
                repairs.add(rep)
                order[start:end] = [ids[k] for k in perm]

        with self._lock:
            self._total = self._total + usage
            self._total_repairs.add(repairs)
        ranks = np.empty(n, dtype=np.int64)
        ranks[np.asarray(order, dtype=np.int64)] = np.arange(n, dtype=np.int64)
        keep = n if top_k is None else min(top_k, n)
        return LLMRankResult(
            order=np.asarray(order[:keep], dtype=np.int64),
            ranks=ranks,
            scores=1.0 / (ranks.astype(np.float64) + 1.0),
            truncated=truncated,
            timed_out=timed_out,
            n_calls=len(calls),
            usage=usage,
            repairs=repairs,
            calls=tuple(calls),
        )

    def _cost(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        if self.price_per_1k_prompt is None and self.price_per_1k_completion is None:
            return None
        return (
            prompt_tokens * (self.price_per_1k_prompt or 0.0)
            + completion_tokens * (self.price_per_1k_completion or 0.0)
        ) / 1000.0

    def _retry_delay(self, attempt: int, exc: Exception) -> float:
        delay = min(self.backoff_max, self.backoff_base * 2.0**attempt)
        with self._lock:
            delay *= self._rng.uniform(0.5, 1.0)
        response = getattr(exc, "response", None)
        header = None if response is None else response.headers.get("retry-after")
        if header is not None:
            with contextlib.suppress(ValueError):  # an HTTP-date: keep our own schedule
                delay = max(delay, min(self.backoff_max, float(header)))
        return delay

    def _retryable(self, exc: Exception) -> bool:
        o = self._openai
        if isinstance(exc, o.APIConnectionError):  # includes APITimeoutError
            return True
        if isinstance(exc, o.APIStatusError):
            return exc.status_code in (408, 409, 429) or exc.status_code >= 500
        return False

    def _rank_window(
        self, query: str, passages: list[str], start: int, end: int, deadline_at: float | None
    ) -> tuple[LLMCall, list[int] | None, LLMRepairs, LLMUsage]:
        messages = build_messages(query, passages)
        t0 = time.monotonic()
        attempts = retries = 0
        while True:
            remaining = None if deadline_at is None else deadline_at - time.monotonic()
            try:
                if remaining is not None and remaining <= 0:
                    raise _DeadlineReached
                if not self._slots.acquire(timeout=remaining):
                    raise _DeadlineReached
                try:
                    timeout = (
                        self.timeout
                        if deadline_at is None
                        else min(self.timeout, deadline_at - time.monotonic())
                    )
                    if timeout <= 0:
                        raise _DeadlineReached
                    attempts += 1
                    kwargs: dict[str, Any] = {}
                    if self.max_tokens is not None:
                        kwargs["max_tokens"] = self.max_tokens
                    resp = self._client.chat.completions.create(
                        model=self.model,
                        messages=messages,  # type: ignore[arg-type]
                        temperature=self.temperature,
                        timeout=timeout,
                        **kwargs,
                    )
                finally:
                    self._slots.release()
            except _DeadlineReached:
                call = LLMCall(start, end, "timed_out", attempts, 0, 0, None, time.monotonic() - t0, None)
                return call, None, LLMRepairs(), LLMUsage(n_requests=attempts, n_retries=retries)
            except self._openai.OpenAIError as exc:
                if deadline_at is not None and time.monotonic() >= deadline_at - 1e-3:
                    call = LLMCall(start, end, "timed_out", attempts, 0, 0, None, time.monotonic() - t0, None)
                    return call, None, LLMRepairs(), LLMUsage(n_requests=attempts, n_retries=retries)
                if self._retryable(exc) and retries < self.max_retries:
                    delay = self._retry_delay(retries, exc)
                    if deadline_at is not None and time.monotonic() + delay >= deadline_at:
                        # no attempt could finish in time: give the current order back now
                        call = LLMCall(
                            start, end, "timed_out", attempts, 0, 0, None, time.monotonic() - t0, None
                        )
                        return call, None, LLMRepairs(), LLMUsage(n_requests=attempts, n_retries=retries)
                    time.sleep(delay)
                    retries += 1
                    continue
                if self.on_error == "raise":
                    raise LLMRequestError(
                        f"chat completion for window [{start}, {end}) failed after {attempts} attempt(s) "
                        f"at {self.base_url} (model {self.model!r}): {exc}; check the URL, model name and "
                        "API key, or pass on_error='keep' to keep the order of failed windows"
                    ) from exc
                call = LLMCall(start, end, "failed", attempts, 0, 0, None, time.monotonic() - t0, None)
                return call, None, LLMRepairs(), LLMUsage(n_requests=attempts, n_retries=retries)
            break

        answer: str | None = None
        try:
            answer = resp.choices[0].message.content
        except (AttributeError, IndexError, TypeError):
            answer = None
        u = getattr(resp, "usage", None)
        pt = int(getattr(u, "prompt_tokens", 0) or 0) if u is not None else 0
        ct = int(getattr(u, "completion_tokens", 0) or 0) if u is not None else 0
        cost = self._cost(pt, ct)
        perm, rep = parse_permutation(answer if isinstance(answer, str) else None, len(passages))
        usage = LLMUsage(pt, ct, cost, attempts, retries, 0 if u is not None else 1)
        call = LLMCall(start, end, "ok", attempts, pt, ct, cost, time.monotonic() - t0, answer)
        return call, perm, rep, usage


def parse_llm_spec(spec: str, **kwargs: Any) -> LLMReranker:
    """Build an :class:`LLMReranker` from ``"llm:BASE_URL@MODEL"`` (the CLI's ``--reranker`` value).

    The model is what follows the last ``@``, so a model name cannot contain ``@`` (a user:password
    in the URL can). Extra keyword arguments go to :class:`LLMReranker`.

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
    return LLMReranker(url, model, **kwargs)
