"""crossrank.integrations' shared half: targets, the top_n rule, lazy imports, the async coalescer."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from crossrank import BM25Index, Pipeline
from crossrank.integrations._core import (
    arank_texts,
    check_top_n,
    rank_texts,
    resolve_target,
)
from crossrank.pipeline import rrf_with_first_stage
from crossrank.types import Scores
from test_reranker_conformance import ToyReranker

REPO = Path(__file__).resolve().parents[1]
DOCS = ["a b c", "a", "b c d", "", "a b", "c c c a", "d"]


class Counting(ToyReranker):
    """ToyReranker recording each score_batch call's queries (and optionally slow or failing)."""

    def __init__(self, delay_s: float = 0.0, fail_on: str | None = None) -> None:
        self.calls: list[list[str]] = []
        self.threads: list[str] = []
        self.delay_s = delay_s
        self.fail_on = fail_on

    def score_batch(
        self, queries: Sequence[str], documents_per_query: Sequence[Sequence[str]]
    ) -> list[Scores]:
        self.calls.append(list(queries))
        self.threads.append(threading.current_thread().name)
        time.sleep(self.delay_s)  # stands for CPU-bound inference that releases the GIL
        if self.fail_on is not None and self.fail_on in queries:
            raise RuntimeError(f"model failed on {self.fail_on!r}")
        return super().score_batch(queries, documents_per_query)


def spy_async(monkeypatch: pytest.MonkeyPatch, module: str) -> list[str]:
    """Record each query the adapter's async path ranks (so a test knows that path really ran)."""
    import importlib

    mod = importlib.import_module(module)
    real, seen = mod.arank_texts, []

    async def spy(target, query, texts, top_n):
        seen.append(query)
        return await real(target, query, texts, top_n)

    monkeypatch.setattr(mod, "arank_texts", spy)
    return seen


def test_import_crossrank_imports_no_framework() -> None:
    code = (
        "import sys, crossrank, crossrank.integrations; "
        "from crossrank.integrations import _core; "
        "heavy = [m for m in ('langchain_core', 'llama_index', 'haystack', 'pydantic', 'torch', "
        "'onnxruntime', 'faiss', 'fastapi') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_lazy_names() -> None:
    import crossrank.integrations as integrations

    assert set(integrations.__all__) == {"HaystackRanker", "LangChainReranker", "LlamaIndexReranker"}
    assert integrations.LangChainReranker.__module__ == "crossrank.integrations.langchain"
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = integrations.Nope


def test_missing_framework_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['langchain_core'] = None\n"
        "try:\n    from crossrank.integrations import LangChainReranker\n"
        "except ImportError as e:\n    assert 'crossrank[langchain]' in str(e), e\n"
        "else:\n    raise SystemExit('no ImportError')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (0, ValueError, "top_n must be >= 1"),
        (-3, ValueError, ">= 1"),
        (True, TypeError, "int"),
        (2.0, TypeError, "int"),
        ("3", TypeError, "int"),
    ],
)
def test_top_n_rule(value: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        check_top_n(value)
    assert check_top_n(None) is None
    assert check_top_n(4) == 4


def test_resolve_target_errors() -> None:
    with pytest.raises(TypeError, match="must be a crossrank reranker"):
        resolve_target(object())
    with pytest.raises(TypeError, match="got int"):
        resolve_target(3, "model")
    index = BM25Index.build(DOCS)
    with pytest.raises(ValueError, match="Pipeline without a reranker"):
        resolve_target(Pipeline(index))
    with pytest.raises(ValueError, match="only when reranker is a spec string"):
        resolve_target(ToyReranker(), precision="fp32")
    with pytest.raises(ValueError, match="unknown reranker kind"):
        resolve_target("dens:model")


def _expected(query: str, docs: list[str], top_n: int | None) -> list[tuple[int, float]]:
    return [(r["corpus_id"], r["score"]) for r in ToyReranker().rank(query, docs, top_n)]


def test_rank_texts_matches_rank_and_empty() -> None:
    r = ToyReranker()
    assert rank_texts(r, "a b", DOCS, 3) == _expected("a b", DOCS, 3)
    assert rank_texts(r, "a b", DOCS, None) == _expected("a b", DOCS, None)
    assert rank_texts(r, "a b", [], 3) == []
    assert asyncio.run(arank_texts(r, "a b", [], 3)) == []
    with pytest.raises(TypeError, match="query must be a str"):
        rank_texts(r, None, DOCS, 3)  # type: ignore[arg-type]


def test_pipeline_target_applies_its_rerank_fusion() -> None:
    index = BM25Index.build(DOCS)
    plain = Pipeline(index, documents=DOCS, reranker=ToyReranker())
    assert rank_texts(plain, "a b", DOCS, 4) == _expected("a b", DOCS, 4)
    fused = Pipeline(index, documents=DOCS, reranker=ToyReranker(), rerank_fusion="rrf", rrf_k=10)
    raw = ToyReranker().score("a b", DOCS).scores
    rrf = rrf_with_first_stage(raw, 10.0)
    want = [(int(i), float(rrf[i])) for i in np.argsort(-rrf, kind="stable")[:4]]
    assert rank_texts(fused, "a b", DOCS, 4) == want
    assert asyncio.run(arank_texts(fused, "a b", DOCS, 4)) == want


def test_concurrent_async_calls_share_one_score_batch() -> None:
    r = Counting()
    queries = ["a", "b c", "d", "a b", "c"]

    async def main() -> list[list[tuple[int, float]]]:
        return await asyncio.gather(*(arank_texts(r, q, DOCS, 3) for q in queries))

    got = asyncio.run(main())
    assert r.calls == [queries]  # one step for the five calls, queries in call order
    assert r.threads[0] != threading.main_thread().name  # the step ran off the loop's thread
    assert got == [_expected(q, DOCS, 3) for q in queries]


def test_event_loop_keeps_running_during_a_step() -> None:
    r = Counting(delay_s=0.4)

    async def main() -> int:
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        t = asyncio.create_task(ticker())
        await arank_texts(r, "a", DOCS, 2)
        stop.set()
        await t
        return ticks

    assert asyncio.run(main()) >= 10  # a blocked loop would tick once or twice in 0.4 s


def test_failure_reaches_its_step_only_and_later_calls_work() -> None:
    r = Counting(fail_on="boom")

    async def main() -> None:
        with pytest.raises(RuntimeError, match="model failed on 'boom'"):
            await asyncio.gather(arank_texts(r, "boom", DOCS, 2), arank_texts(r, "a", DOCS, 2))
        assert await arank_texts(r, "a", DOCS, 2) == _expected("a", DOCS, 2)

    asyncio.run(main())


def test_cancelled_caller_is_dropped_from_the_step() -> None:
    r = Counting()

    async def main() -> list[tuple[int, float]]:
        doomed = asyncio.create_task(arank_texts(r, "doomed", DOCS, 2))
        kept = asyncio.create_task(arank_texts(r, "a", DOCS, 2))
        await asyncio.sleep(0)  # both queued, step not started
        doomed.cancel()
        return await kept

    assert asyncio.run(main()) == _expected("a", DOCS, 2)
    assert r.calls == [["a"]]


def test_native_async_reranker_is_awaited_without_a_thread() -> None:
    class NativeAsync(ToyReranker):
        def __init__(self) -> None:
            self.threads: list[str] = []

        async def ascore_batch(
            self, queries: Sequence[str], documents_per_query: Sequence[Sequence[str]]
        ) -> list[Scores]:
            self.threads.append(threading.current_thread().name)
            await asyncio.sleep(0)
            return self.score_batch(queries, documents_per_query)

    r = NativeAsync()
    assert asyncio.run(arank_texts(r, "a b", DOCS, 3)) == _expected("a b", DOCS, 3)
    assert r.threads == [threading.main_thread().name]


def test_a_step_stops_at_max_step_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    from crossrank.integrations import _core

    monkeypatch.setattr(_core, "MAX_STEP_PAIRS", 2 * len(DOCS))
    r = Counting()
    queries = ["a", "b", "c", "d", "a b"]

    async def main() -> list[list[tuple[int, float]]]:
        return await asyncio.gather(*(arank_texts(r, q, DOCS, 2) for q in queries))

    assert asyncio.run(main()) == [_expected(q, DOCS, 2) for q in queries]
    assert r.calls == [["a", "b"], ["c", "d"], ["a b"]]  # two calls' pairs per step, in call order


def test_a_reranker_returning_too_few_scores_is_an_error() -> None:
    class Short(ToyReranker):
        def score_batch(self, queries, documents_per_query):
            return [
                Scores(s.scores[:-1], s.truncated[:-1])
                for s in super().score_batch(queries, documents_per_query)
            ]

    with pytest.raises(
        RuntimeError, match=f"Short returned {len(DOCS) - 1} scores for {len(DOCS)} documents"
    ):
        asyncio.run(arank_texts(Short(), "a", DOCS, 2))
