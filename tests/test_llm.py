"""LLMReranker against a local fake OpenAI-compatible server (no LLM weights needed).

These tests check the mechanics (window arithmetic, answer repairs, retries, deadline, concurrency,
accounting); they say nothing about ranking quality, which needs a real LLM.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import random
import sys
import time
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossrank.rerank.llm import (
    LLMRequestError,
    LLMReranker,
    build_messages,
    parse_llm_spec,
    parse_permutation,
    sliding_windows,
)
from fake_openai_server import FakeOpenAIServer, word_count_scorer  # tests/ is on sys.path (pytest)

QUERY = "apple"


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(lifetime_s=60) as srv:
        yield srv


def make_docs(n: int, seed: int = 0) -> tuple[list[str], list[int]]:
    """Documents whose relevance to QUERY (occurrences of 'apple') is a random permutation of range(n)."""
    rel = list(range(n))
    random.Random(seed).shuffle(rel)
    return [f"d{i} " + "apple " * rel[i] + "end" for i in range(n)], rel


def reranker(srv: FakeOpenAIServer, **kw: object) -> LLMReranker:
    kw.setdefault("max_passage_tokens", 10_000)
    kw.setdefault("backoff_base", 0.01)
    kw.setdefault("seed", 0)
    return LLMReranker(srv.base_url, "fake-model", **kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ references
def reference_windows(n: int, window: int, step: int) -> list[tuple[int, int]]:
    """RankGPT's bottom-up loop, extended so the top of the list is always visited."""
    out = []
    start, end = n - window, n
    while n > 1:
        out.append((max(start, 0), end))
        if start <= 0:
            break
        start, end = start - step, end - step
    return out


def reference_rerank(docs: list[str], window: int, step: int, n_windows: int | None = None) -> list[int]:
    """Sort each window by the fake server's scorer (ties by position), bottom window first."""
    order = list(range(len(docs)))
    wins = reference_windows(len(docs), window, step)
    for s, e in wins[: len(wins) if n_windows is None else n_windows]:
        ids = order[s:e]
        order[s:e] = sorted(ids, key=lambda i: (-word_count_scorer(QUERY, docs[i]), ids.index(i)))
    return order


# ------------------------------------------------------------------------------------------ windows
@pytest.mark.parametrize(
    ("n", "window", "step"),
    [(0, 20, 10), (1, 20, 10), (2, 20, 10), (7, 20, 10), (20, 20, 10), (21, 20, 10), (25, 20, 10),
     (30, 20, 10), (100, 20, 10), (101, 20, 10), (13, 4, 3), (10, 5, 5), (9, 2, 1)],
)  # fmt: skip
def test_sliding_windows_formula(n: int, window: int, step: int) -> None:
    wins = sliding_windows(n, window, step)
    assert wins == reference_windows(n, window, step)
    expected_count = 0 if n <= 1 else 1 + math.ceil(max(0, n - window) / step)
    assert len(wins) == expected_count
    if n > 1:
        assert wins[0] == (max(0, n - window), n)
        assert wins[-1][0] == 0
        covered = set().union(*(range(s, e) for s, e in wins))
        assert covered == set(range(n))
        for (s1, e1), (s2, e2) in itertools.pairwise(wins):
            assert e2 == e1 - step
            assert s2 == max(0, s1 - step)
            assert e1 - s1 == window


@pytest.mark.parametrize(("window", "step"), [(1, 1), (0, 1), (5, 0), (5, 6), (5.0, 2), (True, 1), (5, None)])
def test_sliding_windows_rejects_bad_sizes(window: object, step: object) -> None:
    with pytest.raises(ValueError, match=r"window|step"):
        sliding_windows(10, window, step)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("n", "window", "step"),
    [(3, 20, 10), (20, 20, 10), (35, 20, 10), (47, 20, 10), (100, 20, 10), (23, 6, 4)],
)
def test_window_arithmetic_through_server(server: FakeOpenAIServer, n: int, window: int, step: int) -> None:
    docs, rel = make_docs(n, seed=n)
    res = reranker(server, window=window, step=step).rerank_detailed(QUERY, docs)
    wins = sliding_windows(n, window, step)
    assert res.n_calls == len(wins) == len(server.requests)
    assert [(c.start, c.end) for c in res.calls] == wins
    # each request carried exactly the documents that sat in that window at that moment
    order = list(range(n))
    for (s, e), req in zip(wins, server.requests, strict=True):
        assert req.passages == [docs[i] for i in order[s:e]]
        assert req.query == QUERY
        ids = order[s:e]
        order[s:e] = sorted(ids, key=lambda i: -rel[i])
    visited = {p for req in server.requests for p in req.passages}
    assert visited == set(docs)
    assert res.order.tolist() == order == reference_rerank(docs, window, step)
    truth = sorted(range(n), key=lambda i: -rel[i])
    top = n if n <= window else window - step
    assert res.order.tolist()[:top] == truth[:top]
    assert not res.timed_out
    assert sorted(res.ranks.tolist()) == list(range(n))
    assert res.repairs.total == 0


def test_trivial_lists_make_no_calls(server: FakeOpenAIServer) -> None:
    r = reranker(server)
    assert r.rerank_detailed(QUERY, []).order.tolist() == []
    one = r.rerank_detailed(QUERY, ["only"])
    assert one.order.tolist() == [0]
    assert one.n_calls == 0
    assert one.scores.tolist() == [1.0]
    assert server.requests == []


# ------------------------------------------------------------------------------------------ parsing
@pytest.mark.parametrize(
    ("text", "m", "perm", "fix"),
    [
        ("[2] > [1] > [3]", 3, [1, 0, 2], {}),
        ("[ 2 ]>[1]>[3]", 3, [1, 0, 2], {}),
        ("Here is the ranking:\n[3] > [1] > [2]\nPassage [3] is best.", 3, [2, 0, 1], {"duplicates": 1}),
        ("[2] > [2] > [1] > [3] > [1]", 3, [1, 0, 2], {"duplicates": 2}),
        ("[3]", 3, [2, 0, 1], {"missing": 2}),
        ("[0] > [4] > [2] > [99999999999999]", 3, [1, 0, 2], {"out_of_range": 3, "missing": 2}),
        ("Ranking of 3 passages: 2 > 3 > 1", 3, [1, 2, 0], {"unbracketed": 1}),
        ("2, 1, 3", 3, [1, 0, 2], {"unbracketed": 1}),
        ("3 1", 3, [2, 0, 1], {"unbracketed": 1, "missing": 1}),
        ("<think>[1] > [2] surely</think>[2] > [3] > [1]", 3, [1, 2, 0], {}),
        ("<think>never closed [1] > [2]", 3, [0, 1, 2], {"unparseable": 1}),
        ("I cannot help with that.", 3, [0, 1, 2], {"unparseable": 1}),
        ("", 4, [0, 1, 2, 3], {"unparseable": 1}),
        (None, 2, [0, 1], {"unparseable": 1}),
        ("[7] > [9]", 2, [0, 1], {"out_of_range": 2, "unparseable": 1}),
    ],
)
def test_parse_permutation_repairs(text: str | None, m: int, perm: list[int], fix: dict[str, int]) -> None:
    got, rep = parse_permutation(text, m)
    assert got == perm
    for name in ("out_of_range", "duplicates", "missing", "unbracketed", "unparseable"):
        assert getattr(rep, name) == fix.get(name, 0), name


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="[]>0123456789 ,abc\n<think/>", max_size=80), st.integers(0, 30))
def test_parse_permutation_always_a_permutation(text: str, m: int) -> None:
    perm, _ = parse_permutation(text, m)
    assert sorted(perm) == list(range(m))


@settings(max_examples=100, deadline=None)
@given(st.permutations(list(range(12))))
def test_parse_permutation_round_trip(p: list[int]) -> None:
    text = " > ".join(f"[{k + 1}]" for k in p)
    perm, rep = parse_permutation(text, 12)
    assert perm == p
    assert rep.total == 0


@pytest.mark.parametrize(
    ("mode", "exact", "counter"),
    [("prose", True, "duplicates"), ("think", True, None), ("bare", True, "unbracketed"),
     ("duplicates", True, "duplicates"), ("out_of_range", True, "out_of_range"), ("missing", False, "missing"),
     ("garbage", False, "unparseable"), ("empty", False, "unparseable")],
)  # fmt: skip
def test_server_misbehaviour_is_repaired(
    server: FakeOpenAIServer, mode: str, exact: bool, counter: str | None
) -> None:
    server.behaviour.mode = mode
    docs, _ = make_docs(35, seed=3)
    res = reranker(server).rerank_detailed(QUERY, docs)
    assert sorted(res.order.tolist()) == list(range(35))
    assert res.n_calls == 3
    if exact:
        assert res.order.tolist() == reference_rerank(docs, 20, 10)
    if mode in ("garbage", "empty"):
        assert res.order.tolist() == list(range(35))
    if counter is None:
        assert res.repairs.total == 0
    else:
        assert getattr(res.repairs, counter) >= res.n_calls


def test_missing_ids_keep_their_order(server: FakeOpenAIServer) -> None:
    server.behaviour.mode = "missing"  # answers only the best half of each window
    docs, rel = make_docs(8, seed=5)
    res = reranker(server).rerank_detailed(QUERY, docs)
    best = sorted(range(8), key=lambda i: -rel[i])[:4]
    rest = [i for i in range(8) if i not in best]
    assert res.order.tolist() == best + rest
    assert res.repairs.missing == 4


# ------------------------------------------------------------------------------------------ retries
def test_retries_on_429_and_500_then_succeeds(server: FakeOpenAIServer) -> None:
    server.behaviour.fail_statuses = [429, 500, 503]
    docs, _ = make_docs(12)
    t0 = time.monotonic()
    res = reranker(server, max_retries=3, backoff_base=0.05).rerank_detailed(QUERY, docs)
    elapsed = time.monotonic() - t0
    assert res.order.tolist() == reference_rerank(docs, 20, 10)
    assert [r.status for r in server.requests] == [429, 500, 503, 200]
    assert res.usage.n_requests == 4
    assert res.usage.n_retries == 3
    assert res.calls[0].attempts == 4
    # backoff 0.05 * (1 + 2 + 4) with jitter in [0.5, 1]
    assert elapsed >= 0.05 * 7 * 0.5


def test_retry_after_header_is_honoured(server: FakeOpenAIServer) -> None:
    server.behaviour.fail_statuses = [429]
    server.behaviour.retry_after = "0.4"
    t0 = time.monotonic()
    res = reranker(server, backoff_base=0.01).rerank_detailed(QUERY, make_docs(5)[0])
    assert time.monotonic() - t0 >= 0.4
    assert res.usage.n_retries == 1


def test_retries_exhausted_raise(server: FakeOpenAIServer) -> None:
    server.behaviour.fail_statuses = [500] * 3
    with pytest.raises(LLMRequestError, match="after 3 attempt"):
        reranker(server, max_retries=2).rerank_detailed(QUERY, make_docs(5)[0])
    assert len(server.requests) == 3


def test_client_error_is_not_retried(server: FakeOpenAIServer) -> None:
    server.behaviour.fail_statuses = [400]
    with pytest.raises(LLMRequestError, match="check the URL"):
        reranker(server).rerank_detailed(QUERY, make_docs(5)[0])
    assert len(server.requests) == 1


def test_on_error_keep_keeps_window_order(server: FakeOpenAIServer) -> None:
    docs, _ = make_docs(35, seed=1)
    server.behaviour.fail_statuses = [401]  # the first (bottom) window fails, the others succeed
    res = reranker(server, on_error="keep").rerank_detailed(QUERY, docs)
    assert [c.status for c in res.calls] == ["failed", "ok", "ok"]
    order = list(range(35))
    for s, e in sliding_windows(35, 20, 10)[1:]:
        ids = order[s:e]
        order[s:e] = sorted(ids, key=lambda i: -word_count_scorer(QUERY, docs[i]))
    assert res.order.tolist() == order


def test_connection_refused_is_retried_then_raises() -> None:
    srv = FakeOpenAIServer(lifetime_s=5)  # take a free port, then close it: connections are refused
    url = srv.base_url
    srv.stop()
    r = LLMReranker(url, "m", max_retries=1, backoff_base=0.01, timeout=2)
    with pytest.raises(LLMRequestError, match="after 2 attempt"):
        r.rerank_detailed(QUERY, ["a", "b"])


# ------------------------------------------------------------------------------------------ deadline
def test_deadline_returns_input_order(server: FakeOpenAIServer) -> None:
    server.behaviour.delay_s = 10.0
    docs, _ = make_docs(35)
    r = reranker(server, deadline=0.5)
    t0 = time.monotonic()
    res = r.rerank_detailed(QUERY, docs)
    elapsed = time.monotonic() - t0
    assert res.timed_out
    assert elapsed < 0.5 + 1.0
    assert res.order.tolist() == list(range(35))
    assert res.calls[-1].status == "timed_out"


def test_deadline_keeps_finished_windows(server: FakeOpenAIServer) -> None:
    server.behaviour.delay_s = 0.4
    docs, _ = make_docs(47)  # 4 windows of 0.4 s each; the deadline lets one or two finish
    t0 = time.monotonic()
    res = reranker(server, deadline=1.0).rerank_detailed(QUERY, docs)
    assert time.monotonic() - t0 < 1.0 + 1.0
    assert res.timed_out
    done = sum(c.status == "ok" for c in res.calls)
    assert 1 <= done < 4
    assert res.order.tolist() == reference_rerank(docs, 20, 10, n_windows=done)


def test_deadline_during_backoff(server: FakeOpenAIServer) -> None:
    server.behaviour.fail_statuses = [429] * 10
    server.behaviour.retry_after = "5"
    t0 = time.monotonic()
    res = reranker(server, deadline=0.6, backoff_max=5.0).rerank_detailed(QUERY, make_docs(5)[0])
    assert time.monotonic() - t0 < 0.6 + 1.0
    assert len(server.requests) == 1  # the 5 s Retry-After cannot fit: no second attempt
    assert res.timed_out
    assert res.order.tolist() == list(range(5))


# ------------------------------------------------------------------------------------------ concurrency
@pytest.mark.parametrize("limit", [1, 2, 4])
def test_concurrency_limit(server: FakeOpenAIServer, limit: int) -> None:
    server.behaviour.delay_s = 0.25  # long enough for every worker to be in flight at once, even under load
    queries = [QUERY] * 8
    docs = [make_docs(6, seed=s)[0] for s in range(8)]
    res = reranker(server, max_concurrency=limit).rerank_detailed_batch(queries, docs)
    assert server.max_in_flight == limit
    assert [x.order.tolist() for x in res] == [reference_rerank(d, 20, 10) for d in docs]


def test_async_forms(server: FakeOpenAIServer) -> None:
    server.behaviour.delay_s = 0.1
    r = reranker(server, max_concurrency=2)
    docs = [make_docs(6, seed=s)[0] for s in range(5)]

    async def main() -> list[list[int]]:
        single = await r.arerank_detailed(QUERY, docs[0])
        many = await r.arerank_detailed_batch([QUERY] * 5, docs)
        return [single.order.tolist()] + [x.order.tolist() for x in many]

    got = asyncio.run(main())
    assert got == [reference_rerank(docs[0], 20, 10)] + [reference_rerank(d, 20, 10) for d in docs]
    assert server.max_in_flight <= 2


def test_rerank_detailed_batch_checks_lengths(server: FakeOpenAIServer) -> None:
    r = reranker(server)
    with pytest.raises(ValueError, match="one list per query"):
        r.rerank_detailed_batch([QUERY, QUERY], [["a"]])
    with pytest.raises(TypeError, match="single str"):
        r.rerank_detailed_batch(QUERY, [["a"]])
    assert r.rerank_detailed_batch([], []) == []


# ------------------------------------------------------------------------------------------ accounting
def _server_usage(srv: FakeOpenAIServer) -> tuple[int, int]:
    """Recompute what the fake server reported: words of the messages / of the answer."""
    pt = ct = 0
    for req in srv.requests:
        msgs = build_messages(req.query, req.passages)
        pt += sum(len(m["content"].split()) for m in msgs)
        ct += 2 * len(req.passages) - 1  # "[a] > [b] > ..." words
    return pt, ct


def test_token_and_cost_accounting(server: FakeOpenAIServer) -> None:
    docs, _ = make_docs(35)
    r = reranker(server, price_per_1k_prompt=0.5, price_per_1k_completion=1.5)
    res = r.rerank_detailed(QUERY, docs)
    pt, ct = _server_usage(server)
    assert (res.usage.prompt_tokens, res.usage.completion_tokens) == (pt, ct)
    assert res.usage.total_tokens == pt + ct
    assert res.usage.cost == pytest.approx((pt * 0.5 + ct * 1.5) / 1000)
    assert sum(c.prompt_tokens for c in res.calls) == pt
    assert sum(c.cost or 0.0 for c in res.calls) == pytest.approx(res.usage.cost)
    res2 = r.rerank_detailed(QUERY, docs[:5])
    assert r.total_usage.prompt_tokens == res.usage.prompt_tokens + res2.usage.prompt_tokens
    assert r.total_usage.n_requests == 4
    assert r.total_usage.cost == pytest.approx(res.usage.cost + res2.usage.cost)


def test_accounting_without_prices_or_usage(server: FakeOpenAIServer) -> None:
    server.behaviour.usage = False
    res = reranker(server).rerank_detailed(QUERY, make_docs(25)[0])
    assert res.usage.cost is None
    assert res.usage.prompt_tokens == 0
    assert res.usage.usage_missing == res.n_calls == 2


# ------------------------------------------------------------------------------------------ truncation
def test_whitespace_truncation(server: FakeOpenAIServer) -> None:
    docs = ["w " * 50, "short doc", "a\n\nb   c"]
    res = reranker(server, max_passage_tokens=8, tokenizer="whitespace").rerank_detailed(QUERY, docs)
    sent = server.requests[0].passages
    assert sent == ["w w w w w w", "short doc", "a b c"]  # floor(0.75 * 8) = 6 words
    assert res.truncated.tolist() == [True, False, False]


def test_hf_tokenizer_truncation(server: FakeOpenAIServer, minilm_dir: object) -> None:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(minilm_dir) + "/tokenizer.json")  # type: ignore[operator]
    tok.no_padding()
    tok.no_truncation()
    long = "Photosynthesis converts light energy into chemical energy stored in glucose molecules " * 30
    assert len(tok.encode(long, add_special_tokens=False).ids) > 128  # beyond the file's own truncation
    r_obj = reranker(
        server, max_passage_tokens=200, tokenizer=Tokenizer.from_file(str(minilm_dir) + "/tokenizer.json")
    )  # type: ignore[operator]
    r_obj.rerank_detailed(QUERY, [long, "x"])
    assert len(tok.encode(server.requests[0].passages[0], add_special_tokens=False).ids) == 200
    server.requests.clear()
    r = reranker(server, max_passage_tokens=12, tokenizer=minilm_dir)
    assert r.tokenizer_name.startswith("hf:")
    docs = [
        "Photosynthesis converts light energy into chemical energy stored in glucose molecules " * 3,
        "tiny",
    ]
    res = r.rerank_detailed(QUERY, docs)
    sent = server.requests[0].passages
    assert len(tok.encode(sent[0], add_special_tokens=False).ids) == 12
    assert docs[0].startswith(sent[0])
    assert sent[1] == "tiny"
    assert res.truncated.tolist() == [True, False]


def test_bad_tokenizer_path(tmp_path: object) -> None:
    with pytest.raises(ValueError, match=r"tokenizer\.json"):
        LLMReranker("http://127.0.0.1:1/v1", "m", tokenizer=tmp_path)


# ------------------------------------------------------------------------------------------ rank()
def test_rank_shape_matches_cross_encoder(server: FakeOpenAIServer) -> None:
    docs, rel = make_docs(9)
    rows = reranker(server).rank(QUERY, docs, 3, return_documents=True)
    assert [r["corpus_id"] for r in rows] == sorted(range(9), key=lambda i: -rel[i])[:3]
    assert [r["score"] for r in rows] == [9.0, 8.0, 7.0]  # rank r of n scores n - r
    assert set(rows[0]) == {"corpus_id", "score", "truncated", "text"}
    assert all(type(r["score"]) is float and type(r["corpus_id"]) is int for r in rows)
    assert rows[0]["text"] == docs[rows[0]["corpus_id"]]
    json.dumps(rows)
    assert "text" not in reranker(server).rank(QUERY, docs)[0]


def test_top_k(server: FakeOpenAIServer) -> None:
    docs, _ = make_docs(9)
    res = reranker(server).rerank_detailed(QUERY, docs, top_k=20)
    assert len(res.order) == 9
    res = reranker(server).rerank_detailed(QUERY, docs, top_k=2)
    assert len(res.order) == 2
    assert len(res.ranks) == 9


# ------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"window": 1}, "window"),
        ({"step": 0}, "step"),
        ({"step": 30}, "step"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"max_retries": -1}, "max_retries"),
        ({"timeout": 0}, "timeout"),
        ({"deadline": -1.0}, "deadline"),
        ({"deadline": float("nan")}, "deadline"),
        ({"max_passage_tokens": 0}, "max_passage_tokens"),
        ({"temperature": 3}, "temperature"),
        ({"price_per_1k_prompt": -1}, "price_per_1k_prompt"),
        ({"on_error": "ignore"}, "on_error"),
        ({"max_tokens": 0}, "max_tokens"),
    ],
)
def test_bad_parameters(kw: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LLMReranker("http://127.0.0.1:1/v1", "m", **kw)  # type: ignore[arg-type]


def test_bad_url_and_model() -> None:
    with pytest.raises(ValueError, match="base_url"):
        LLMReranker("localhost:8000", "m")
    with pytest.raises(ValueError, match="model"):
        LLMReranker("http://localhost:8000/v1", "")


def test_bad_inputs_to_rerank(server: FakeOpenAIServer) -> None:
    r = reranker(server)
    with pytest.raises(TypeError, match="query"):
        r.rerank_detailed(1, ["a"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="single str"):
        r.rerank_detailed(QUERY, "abc")
    with pytest.raises(TypeError, match=r"documents\[1\]"):
        r.rerank_detailed(QUERY, ["a", None])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="top_k"):
        r.rerank_detailed(QUERY, ["a"], top_k=0)
    assert server.requests == []


def test_missing_openai_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openai", None)
    with pytest.raises(ImportError, match=r'pip install "crossrank\[llm\]"'):
        LLMReranker("http://127.0.0.1:1/v1", "m")


# ------------------------------------------------------------------------------------------ CLI spec
def test_parse_llm_spec(server: FakeOpenAIServer) -> None:
    r = parse_llm_spec(f"llm:{server.base_url}@Qwen/Qwen2.5-7B-Instruct", window=4, step=2)
    assert (r.base_url, r.model, r.window, r.step) == (server.base_url, "Qwen/Qwen2.5-7B-Instruct", 4, 2)
    assert r.rank(QUERY, make_docs(3)[0])[0]["score"] == 3.0
    r = parse_llm_spec("llm:http://user:pw@host:11434/v1@llama3.1:8b")
    assert (r.base_url, r.model) == ("http://user:pw@host:11434/v1", "llama3.1:8b")


@pytest.mark.parametrize(
    "spec",
    ["http://h/v1@m", "llm:http://h/v1", "llm:http://h/v1@", "llm:@m", "llm:ftp://h/v1@m", "llm:h:8000@m", 3],
)
def test_parse_llm_spec_errors(spec: object) -> None:
    with pytest.raises(ValueError, match="llm:"):
        parse_llm_spec(spec)  # type: ignore[arg-type]


def test_prompt_format() -> None:
    msgs = build_messages("what is x", ["alpha", "beta"])
    assert [m["role"] for m in msgs] == ["system", "user"]
    user = msgs[1]["content"]
    assert "[1] alpha\n[2] beta" in user
    assert "Search Query: what is x." in user
    assert "[2] > [1]" in user


@pytest.mark.parametrize("limit", [1, 3])
def test_score_batch_runs_queries_concurrently(server: FakeOpenAIServer, limit: int) -> None:
    server.behaviour.delay_s = 0.25
    docs = [make_docs(6, seed=s)[0] for s in range(6)]
    r = reranker(server, max_concurrency=limit)
    batch = r.score_batch([QUERY] * 6, docs)
    assert server.max_in_flight == limit
    for d, s in zip(docs, batch, strict=True):
        order = reference_rerank(d, 20, 10)
        assert [int(i) for i in np.argsort(-s.scores, kind="stable")] == order
        assert s.scores.dtype == np.float32
        assert s.scores.max() == 6.0
        assert not s.truncated.any()
        assert s.stats["calls"] == 1
        assert s.stats["prompt_tokens"] > 0
    assert not hasattr(r, "last_stats")
    assert r.total_usage.n_requests == 6  # cumulative, under a lock
