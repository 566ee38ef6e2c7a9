"""The framework-free half of every adapter: what may be wrapped, the ``top_n`` rule, sync and async ranking.

An adapter wraps a *target*: any :class:`crossrank.types.Reranker`, a :class:`crossrank.Pipeline` (its
reranker scores the documents the framework's retriever found, and its ``rerank_fusion`` applies, with
the framework's order as the first stage), or a reranker spec string (``crossrank.rerank.spec``).

Async ranking (:func:`arank_texts`) does not give each call its own thread. Calls made concurrently on
one event loop for one reranker are *coalesced*: every call waiting when a step starts joins one
``score_batch`` call, so a cross-encoder packs the pairs of all those queries into shared,
token-budgeted batches (the server's batcher does the same across HTTP requests). The step runs on the
loop's default executor because crossrank's rerankers are synchronous and CPU-bound: their inference
(ONNX Runtime, OpenVINO, the C++ core, the Rust tokenizer) releases the GIL, so the loop keeps serving
while a step runs. A reranker that offers a native coroutine ``ascore_batch(queries,
documents_per_query)`` (e.g. one calling a remote service with an async HTTP client) is awaited directly
instead, with no thread at all.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .._common import check_int, check_text
from ..rerank.base import ranked_from_scores
from ..types import Reranker, Scores

if TYPE_CHECKING:
    from typing import TypeAlias

    from ..pipeline import Pipeline

    Target: TypeAlias = Reranker | Pipeline  # what an adapter wraps once resolved

__all__ = ["arank_texts", "ascore", "check_top_n", "rank_texts", "resolve_target", "scorer_of", "texts_of"]

# A step takes waiting calls until it holds this many query-document pairs (at least one call), so the
# first caller of a burst is not held back by an unbounded merge.
MAX_STEP_PAIRS = 8192


def resolve_target(target: object, name: str = "reranker", **options: Any) -> Target:
    """Check (or build) what an adapter wraps.

    Parameters
    ----------
    target : Reranker, Pipeline or str
        A protocol reranker, a :class:`crossrank.Pipeline` with a reranker, or a reranker spec
        (``MODEL``, ``dense:MODEL``, ``colbert:MODEL``, ``llm:BASE_URL@MODEL``).
    name : str
        The argument's name in error messages.
    **options
        Passed to :func:`crossrank.rerank.spec.load_reranker` when ``target`` is a spec; refused
        otherwise.

    Returns
    -------
    Reranker or Pipeline

    Raises
    ------
    TypeError
        ``target`` is none of the three.
    ValueError
        A Pipeline without a reranker, options given with an object, or a malformed spec.
    """
    from ..pipeline import Pipeline, _meets_reranker

    if isinstance(target, str):
        from ..rerank.spec import load_reranker

        return load_reranker(target, **options)
    if options:
        raise ValueError(
            f"options ({', '.join(sorted(options))}) apply only when {name} is a spec string; "
            "configure the reranker object itself instead"
        )
    if isinstance(target, Pipeline):
        if target.reranker is None:
            raise ValueError(f"{name} is a Pipeline without a reranker; build it with reranker=...")
        return target
    if _meets_reranker(target):
        return target  # type: ignore[return-value]
    raise TypeError(
        f"{name} must be a crossrank reranker (score/score_batch/rank, crossrank.types.Reranker), a "
        f"crossrank.Pipeline with a reranker, or a reranker spec string; got {type(target).__name__}"
    )


def check_top_n(value: object, name: str = "top_n") -> int | None:
    """Return ``value`` if it is None or an int >= 1, else raise naming ``name``.

    Parameters
    ----------
    value : object
        The value to check.
    name : str
        The argument's name in error messages.

    Returns
    -------
    int or None

    Raises
    ------
    TypeError
        A bool, float, str or other non-int.
    ValueError
        An int < 1.
    """
    if value is None:
        return None
    return check_int(value, name, minimum=1)


def scorer_of(target: Target) -> Reranker:
    """The reranker that scores for ``target`` (a Pipeline's reranker, or the reranker itself).

    Parameters
    ----------
    target : Reranker or Pipeline
        A resolved target (:func:`resolve_target`).
    """
    from ..pipeline import Pipeline

    if isinstance(target, Pipeline):
        assert target.reranker is not None  # resolve_target refused a Pipeline without one
        return target.reranker
    return target


def _ordered(target: Target, scores: Scores, texts: list[str], top_n: int | None) -> list[tuple[int, float]]:
    """(index into ``texts``, score) best first from one query's scores (Pipeline fusion applied)."""
    from ..pipeline import Pipeline, rrf_with_first_stage

    if len(scores) != len(texts):
        raise RuntimeError(
            f"{type(scorer_of(target)).__name__} returned {len(scores)} scores for {len(texts)} documents"
        )
    if isinstance(target, Pipeline):
        final = np.asarray(scores.scores, dtype=np.float64)
        if target.rerank_fusion == "rrf":
            final = rrf_with_first_stage(final, target.rrf_k)
        order = np.argsort(-final, kind="stable")[: len(texts) if top_n is None else top_n]
        return [(int(i), float(final[i])) for i in order]
    return [(r["corpus_id"], r["score"]) for r in ranked_from_scores(scores, texts, top_n)]


def rank_texts(target: Target, query: str, texts: list[str], top_n: int | None) -> list[tuple[int, float]]:
    """Rank ``texts`` for ``query``: ``(index, score)`` pairs, best first, at most ``top_n``.

    A plain reranker's own :meth:`~crossrank.types.Reranker.rank` decides, so the adapter's order and
    scores are exactly the in-process ones.

    Parameters
    ----------
    target : Reranker or Pipeline
        A resolved target (:func:`resolve_target`).
    query : str
        The query.
    texts : list of str
        The documents' texts, in the framework's (first-stage) order.
    top_n : int, optional
        Keep the best ``top_n`` (checked with :func:`check_top_n`); None keeps all.

    Returns
    -------
    list of (int, float)
    """
    from ..pipeline import Pipeline

    check_text(query, "query")
    if not texts:
        return []
    if isinstance(target, Pipeline):
        return _ordered(target, scorer_of(target).score(query, texts), texts, top_n)
    return [(r["corpus_id"], float(r["score"])) for r in target.rank(query, texts, top_n)]


# ------------------------------------------------------------------------------------------- async
@dataclass
class _Job:
    query: str
    texts: list[str]
    future: asyncio.Future[Scores]


class _Coalescer:
    """Pending calls of one reranker on one event loop; lives only while it has work (see module doc)."""

    def __init__(self, reranker: Reranker, loop: asyncio.AbstractEventLoop, key: tuple[object, int]) -> None:
        self.reranker = reranker
        self.key = key
        self.jobs: list[_Job] = []  # waiting for the next step
        self.step: list[_Job] = []  # in the running step
        native = getattr(reranker, "ascore_batch", None)
        self.native = native if inspect.iscoroutinefunction(native) else None
        self.task = loop.create_task(self._drain())

    def _take(self) -> list[_Job]:
        live = [j for j in self.jobs if not j.future.done()]  # a cancelled caller's job is dropped
        step: list[_Job] = []
        pairs = 0
        for j in live:
            if step and pairs + len(j.texts) > MAX_STEP_PAIRS:
                break
            step.append(j)
            pairs += len(j.texts)
        self.jobs = live[len(step) :]
        return step

    async def _score(self, step: list[_Job]) -> list[Scores]:
        queries = [j.query for j in step]
        docs = [j.texts for j in step]
        if self.native is not None:
            return list(await self.native(queries, docs))
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.reranker.score_batch, queries, docs)

    async def _drain(self) -> None:
        try:
            while True:
                await asyncio.sleep(0)  # one loop turn: calls started together join this step
                self.step = step = self._take()
                if not step:
                    return
                try:
                    scored = await self._score(step)
                    if len(scored) != len(step):
                        raise RuntimeError(
                            f"{type(self.reranker).__name__}.score_batch returned {len(scored)} results "
                            f"for {len(step)} queries"
                        )
                except Exception as exc:  # fail this step's callers only; later steps still run
                    for j in step:
                        if not j.future.done():
                            j.future.set_exception(exc)
                    continue
                for j, s in zip(step, scored, strict=True):
                    if not j.future.done():
                        j.future.set_result(s)
        finally:
            _ACTIVE.pop(self.key, None)
            for j in self.step + self.jobs:  # left only when the loop cancels this task (shutdown)
                if not j.future.done():
                    j.future.cancel()


_ACTIVE: dict[tuple[object, int], _Coalescer] = {}


async def ascore(reranker: Reranker, query: str, texts: list[str]) -> Scores:
    """Score ``texts`` for ``query`` in the next coalesced step of ``reranker`` on the running loop.

    Parameters
    ----------
    reranker : Reranker
        The reranker.
    query : str
        The query.
    texts : list of str
        The documents (non-empty).

    Returns
    -------
    Scores
    """
    loop = asyncio.get_running_loop()
    key = (loop, id(reranker))  # the coalescer holds the reranker, so the id stays its own meanwhile
    c = _ACTIVE.get(key)
    if c is None:
        c = _ACTIVE[key] = _Coalescer(reranker, loop, key)
    future: asyncio.Future[Scores] = loop.create_future()
    c.jobs.append(_Job(query, texts, future))
    return await future


async def arank_texts(
    target: Target, query: str, texts: list[str], top_n: int | None
) -> list[tuple[int, float]]:
    """Async :func:`rank_texts`: coalesced with concurrent calls, never blocking the event loop.

    Parameters
    ----------
    target : Reranker or Pipeline
        A resolved target (:func:`resolve_target`).
    query : str
        The query.
    texts : list of str
        The documents' texts, in the framework's (first-stage) order.
    top_n : int, optional
        Keep the best ``top_n``; None keeps all.

    Returns
    -------
    list of (int, float)
        As :func:`rank_texts` (for a protocol reranker: ``ranked_from_scores`` of its scores, the rule
        every crossrank reranker's ``rank`` follows).
    """
    check_text(query, "query")
    if not texts:
        return []
    scores = await ascore(scorer_of(target), query, texts)
    return _ordered(target, scores, texts, top_n)


def texts_of(
    items: Sequence[Any], kind: type, text: Callable[[Any], object], name: str = "documents"
) -> list[str]:
    """Check each item is a ``kind`` and return ``text(item)`` for each (a str, else a clear error).

    Parameters
    ----------
    items : sequence
        The framework's documents.
    kind : type
        What each item must be.
    text : callable
        Item -> its text.
    name : str
        The argument's name in error messages.

    Returns
    -------
    list of str

    Raises
    ------
    TypeError
        ``items`` is not a sequence, an item is not a ``kind``, or an item's text is not a str.
    """
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
        raise TypeError(f"{name} must be a list of documents, got {type(items).__name__}")
    out: list[str] = []
    for i, item in enumerate(items):
        if not isinstance(item, kind):
            raise TypeError(f"{name}[{i}] must be a {kind.__name__}, got {type(item).__name__}")
        t = text(item)
        if not isinstance(t, str):
            raise TypeError(f"{name}[{i}] has no text to rerank (its content is {type(t).__name__})")
        out.append(t)
    return out
