"""The server serves any reranker: dense:, colbert: and llm: specs, and cross-request batching for each.

In process (fast): a protocol-only fake reranker behind the real application shows that concurrent
requests become one ``score_batch`` call per step, each request one query of it, and what the routes
answer for a reranker without an activation or token counts. Real processes: ``crossrank serve`` with
``dense:`` (all-MiniLM-L6-v2), ``colbert:`` (a ColBERT checkpoint built here from MiniLM's ONNX token
encoder with a seeded projection) and ``llm:`` (against the fake OpenAI-compatible server) models, and
the official cohere SDK gets the in-process ``rank`` of the same reranker.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from crossrank.types import Scores
from server_fakes import RAISE, FakeReranker, fake_logit, sigmoid
from server_process import CROSSRANK_ROOT, REPO, ServerProcess

QUERIES = [
    "what causes tides on earth",
    "how do vaccines train the immune system",
    "why is the sky blue",
    "what is the capital of france",
]
DOCS = [
    "The moon's gravity pulls on the oceans and causes the tides.",
    "Rayleigh scattering of sunlight makes the sky look blue.",
    "Paris is the capital and most populous city of France.",
    "Vaccines expose the immune system to a harmless antigen so it learns to respond.",
    "Bananas are yellow and rich in potassium.",
    "Tides on earth are caused by the moon and, to a lesser degree, the sun.",
    "The Eiffel Tower stands in Paris.",
    "Antibodies are produced by B cells after an infection or vaccination.",
]


# -- in process: the application with a protocol-only fake ---------------------------------------
def run_app(reranker: Any, client_fn: Callable[[httpx.AsyncClient], Awaitable[Any]], **config: Any) -> Any:
    """Run ``client_fn`` against the real application (lifespan, middleware, batcher) in this process."""
    from crossrank.server import ServerConfig, create_app

    app = create_app(reranker, config=ServerConfig(**config))

    async def main() -> Any:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=30) as c:
                return await client_fn(c)

    return asyncio.run(main())


def test_concurrent_requests_become_one_score_batch_call_per_step():
    fake = FakeReranker()
    # Eight requests, two with the same query: each request stays its own query in the call.
    jobs = [(QUERIES[i % 4], DOCS[i % 3 : i % 3 + 4]) for i in range(7)] + [(QUERIES[0], DOCS[4:])]

    async def go(c: httpx.AsyncClient) -> list[httpx.Response]:
        return await asyncio.gather(
            *(c.post("/v2/rerank", json={"query": q, "documents": d}) for q, d in jobs)
        )

    responses = run_app(fake, go, max_wait_ms=500)
    calls = list(fake.calls)
    # Every request was answered with its own in-process ranking.
    for (q, docs), r in zip(jobs, responses, strict=True):
        assert r.status_code == 200, r.text
        want = FakeReranker().rank(q, docs)
        got = r.json()["results"]
        assert [x["index"] for x in got] == [w["corpus_id"] for w in want]
        assert [x["relevance_score"] for x in got] == pytest.approx([w["score"] for w in want], rel=1e-6)
    # Batched across requests: fewer score_batch calls than requests, one query per request.
    assert sum(len(c) for c in calls) == len(jobs)
    assert len(calls) < len(jobs)
    assert max(len(c) for c in calls) >= 2
    assert sorted(q for c in calls for q in c) == sorted(q for q, _ in jobs)


def test_a_reranker_without_activation_or_token_counts():
    fake = FakeReranker(max_length=12)
    long_doc = "moon " * 40

    async def go(c: httpx.AsyncClient) -> dict[str, httpx.Response]:
        return {
            "tei_raw": await c.post(
                "/rerank", json={"query": QUERIES[0], "texts": DOCS[:3], "raw_scores": True, "truncate": True}
            ),
            "tei_long": await c.post("/rerank", json={"query": QUERIES[0], "texts": [long_doc]}),
            "tei_cut": await c.post(
                "/rerank", json={"query": QUERIES[0], "texts": [long_doc], "truncate": True}
            ),
            "v1": await c.post("/v1/rerank", json={"query": QUERIES[0], "documents": DOCS[:3]}),
            "v2_cut": await c.post(
                "/v2/rerank", json={"query": "moon tides", "documents": [long_doc], "max_tokens_per_doc": 3}
            ),
            "fail": await c.post("/v2/rerank", json={"query": "q", "documents": ["a", RAISE]}),
            "after": await c.post("/v2/rerank", json={"query": "q", "documents": ["a"]}),
            "health": await c.get("/health"),
        }

    r = run_app(fake, go)
    # No activation: raw scores are the scores.
    raw = {x["index"]: x["score"] for x in r["tei_raw"].json()}
    assert raw == pytest.approx(
        {i: sigmoid(fake_logit(QUERIES[0], d)) for i, d in enumerate(DOCS[:3])}, rel=1e-6
    )
    # Truncation flags come from Scores.truncated.
    assert r["tei_long"].status_code == 413
    assert "truncate=true" in r["tei_long"].json()["message"]
    assert r["tei_cut"].status_code == 200
    # No token counts reported: no usage is invented.
    v1 = r["v1"].json()
    assert "usage" not in v1
    assert "tokens" not in v1["meta"]
    # max_tokens_per_doc uses the reranker's own truncate_document.
    v2 = r["v2_cut"].json()
    assert v2["results"][0]["relevance_score"] == pytest.approx(
        sigmoid(fake_logit("moon tides", "moon moon moon"))
    )
    assert v2["meta"]["warnings"]
    assert r["fail"].status_code == 500
    assert r["fail"].json()["error_type"] == "inference"
    assert r["after"].status_code == 200
    health = r["health"].json()
    assert (health["status"], health["model"], health["max_length"]) == ("ok", "fake-reranker", 12)


class TokenCountingFake(FakeReranker):
    """Reports the tokens it read per query in ``Scores.stats["tokens"]`` (as the protocol allows)."""

    def _score_many(self, queries: list[str], documents_per_query: list[list[str]]) -> list[Scores]:
        out = super()._score_many(queries, documents_per_query)
        return [
            Scores(
                s.scores,
                s.truncated,
                stats={"tokens": float(sum(len(q.split()) + len(d.split()) for d in docs))},
            )
            for s, q, docs in zip(out, queries, documents_per_query, strict=True)
        ]


def test_token_counts_from_scores_stats_are_summed_per_request():
    jobs = [(QUERIES[i % 4], DOCS[i : i + 3]) for i in range(6)]

    async def go(c: httpx.AsyncClient) -> list[httpx.Response]:
        return await asyncio.gather(
            *(c.post("/v1/rerank", json={"query": q, "documents": d}) for q, d in jobs)
        )

    fake = TokenCountingFake()
    responses = run_app(fake, go, max_wait_ms=500)
    assert len(fake.calls) < len(jobs)  # merged, and still each request gets its own count
    for (q, docs), r in zip(jobs, responses, strict=True):
        want = sum(len(q.split()) + len(d.split()) for d in docs)
        assert r.json()["usage"]["total_tokens"] == want
        assert r.json()["meta"]["tokens"]["input_tokens"] == want


def test_served_reranker_refuses_what_it_cannot_serve():
    from crossrank.server import ServedReranker

    class NoProtocol:
        def rank(self, query: str, documents: list[str]) -> list[dict]:
            return []

    with pytest.raises(TypeError, match="score_batch"):
        ServedReranker(NoProtocol())  # type: ignore[arg-type]

    class ThreeLabels(FakeReranker):
        num_labels = 3

        def predict(self, pairs: Any, *, return_details: bool = False) -> Any:
            raise AssertionError("never called")

    with pytest.raises(ValueError, match="3 labels"):
        ServedReranker(ThreeLabels())


def test_serve_cli_refuses_bad_specs_and_options():
    env = {"PYTHONPATH": f"{CROSSRANK_ROOT}:{REPO / 'tests'}", "PATH": "/usr/bin:/bin"}
    for args, needle in (
        (["--model", "foo:bar"], "unknown reranker kind"),
        (["--model", "llm:http://localhost:1/v1"], "llm:BASE_URL@MODEL"),
        (["--model", "llm:http://127.0.0.1:9/v1@m", "--max-batch-tokens", "512"], "max_batch_tokens"),
        (["--model", "llm:http://127.0.0.1:9/v1@m", "--max-length", "512"], "max_passage_tokens"),
        (["--model", "py:server_fakes:make_embed_model"], "score_batch"),
    ):
        argv = [sys.executable, "-m", "crossrank", "serve", *args]
        p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        assert p.returncode == 2, (args, p.stderr)
        assert needle in p.stderr, (args, p.stderr)


# -- real processes: dense:, colbert: and llm: specs with the cohere SDK ---------------------------
def check_cohere_matches_in_process(server: ServerProcess, reranker: Any) -> None:
    """The cohere SDK's answers equal the in-process rank, alone and under concurrent requests."""
    cohere = pytest.importorskip("cohere")
    client = cohere.ClientV2(base_url=server.url, api_key="unused")
    for q in QUERIES[:2]:
        res = client.rerank(model="m", query=q, documents=DOCS)
        want = reranker.rank(q, DOCS)
        assert [r.index for r in res.results] == [w["corpus_id"] for w in want]
        assert [r.relevance_score for r in res.results] == pytest.approx(
            [w["score"] for w in want], rel=1e-5, abs=1e-5
        )
    top = client.rerank(model="m", query=QUERIES[2], documents=DOCS, top_n=3)
    assert [r.index for r in top.results] == [w["corpus_id"] for w in reranker.rank(QUERIES[2], DOCS, 3)]
    # Concurrent requests share steps; each still gets its own query's ranking.
    jobs = [(QUERIES[i % 4], DOCS[i % 4 :] + DOCS[: i % 4]) for i in range(8)]
    out: list[Any] = [None] * len(jobs)

    def go(k: int) -> None:
        out[k] = client.rerank(model="m", query=jobs[k][0], documents=jobs[k][1])

    threads = [threading.Thread(target=go, args=(k,)) for k in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (q, docs), res in zip(jobs, out, strict=True):
        assert res is not None
        want = {w["corpus_id"]: w["score"] for w in reranker.rank(q, docs)}
        got = {r.index: r.relevance_score for r in res.results}
        assert got == pytest.approx(want, rel=1e-5, abs=1e-5)


@pytest.fixture(scope="module")
def colbert_model(minilm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PyLate-layout ColBERT checkpoint: MiniLM's ONNX token encoder + a seeded 384 -> 64 projection."""
    from test_colbert import model_copy, write_safetensors

    root = model_copy(minilm_dir, tmp_path_factory.mktemp("colbert") / "ckpt")
    (root / "config_sentence_transformers.json").write_text(
        json.dumps(
            {
                "query_prefix": "[unused0]",
                "document_prefix": "[unused1]",
                "query_length": 32,
                "document_length": 96,
            }
        )
    )
    w = np.random.default_rng(7).standard_normal((64, 384)).astype(np.float32)
    write_safetensors(root / "1_Dense" / "model.safetensors", {"linear.weight": w})
    return root


@pytest.fixture
def served(request: pytest.FixtureRequest) -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def start(*args: str) -> ServerProcess:
        srv = ServerProcess([*args, "--max-wait-ms", "20"], startup_s=180)
        started.append(srv)
        return srv

    yield start
    for srv in started:
        assert srv.stop(), srv.logs()


def test_serve_dense_spec_matches_in_process_rank(served, minilm_dir):
    from crossrank.models.embedder import Embedder
    from crossrank.rerank.spec import load_reranker

    # The same bi-encoder also serves /embed (the spec form is accepted there too).
    srv = served("--model", f"dense:{minilm_dir}", "--embed-model", f"dense:{minilm_dir}")
    reranker = load_reranker(f"dense:{minilm_dir}")
    check_cohere_matches_in_process(srv, reranker)
    health = httpx.get(srv.url + "/health").json()
    assert health["model"] == f"dense:{minilm_dir}"
    assert health["max_length"] == reranker.embedder.max_length  # type: ignore[attr-defined]
    texts = ["what causes tides", "the moon pulls the oceans"]
    r = httpx.post(srv.url + "/embed", json={"inputs": texts}, timeout=60)
    assert r.status_code == 200, r.text
    want = Embedder(minilm_dir).encode(texts)
    want = want / np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(np.asarray(r.json(), dtype=np.float32), want, atol=1e-5)


def test_serve_colbert_spec_matches_in_process_rank(served, colbert_model):
    from crossrank.rerank.spec import load_reranker

    srv = served("--model", f"colbert:{colbert_model}", "--max-length", "96")
    reranker = load_reranker(f"colbert:{colbert_model}", max_length=96)
    assert reranker.projection is not None  # type: ignore[attr-defined]
    check_cohere_matches_in_process(srv, reranker)
    assert httpx.get(srv.url + "/health").json()["max_length"] == 96


def test_serve_llm_spec_matches_in_process_rank(served):
    pytest.importorskip("openai")
    from crossrank.rerank.spec import load_reranker
    from fake_openai_server import FakeOpenAIServer

    with FakeOpenAIServer(lifetime_s=300) as llm:
        spec = f"llm:{llm.base_url}@fake-model"
        srv = served("--model", spec)
        check_cohere_matches_in_process(srv, load_reranker(spec))
