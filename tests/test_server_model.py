"""The rerank server with a real (tiny, seeded) cross-encoder: clients see the in-process scores.

The server is a real ``crossrank serve`` subprocess on the tiny BERT cross-encoder exported by
``tests/model_fixtures.py``; every expectation is computed in this process with
``crossrank.CrossEncoder`` on the same files.
"""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import numpy as np
import pytest

pytest.importorskip("fastapi")

from server_process import ServerProcess


@pytest.fixture(scope="module")
def tiny_model(tiny_bert_onnx: Path) -> Path:
    return tiny_bert_onnx


@pytest.fixture(scope="module")
def encoder(tiny_model: Path):
    from crossrank.rerank.cross_encoder import CrossEncoder

    return CrossEncoder(tiny_model)


@pytest.fixture(scope="module")
def server(tiny_model: Path):
    srv = ServerProcess(
        ["--model", str(tiny_model), "--max-wait-ms", "20"], env={"CROSSRANK_API_KEYS": "k-test"}
    )
    yield srv
    assert srv.stop()


AUTH = {"Authorization": "Bearer k-test"}


@pytest.fixture(scope="module")
def texts():
    from model_fixtures import tiny_texts

    return tiny_texts(40, seed=11, max_words=30)


def test_cohere_sdk_matches_in_process_rank(server, encoder, texts):
    cohere = pytest.importorskip("cohere")
    query, docs = texts[0], texts[1:21]
    res = cohere.ClientV2(base_url=server.url, api_key="k-test").rerank(
        model="tiny", query=query, documents=docs
    )
    want = encoder.rank(query, docs)
    assert [r.index for r in res.results] == [w["corpus_id"] for w in want]
    assert [r.relevance_score for r in res.results] == pytest.approx(
        [w["score"] for w in want], rel=1e-6, abs=1e-7
    )
    top = cohere.ClientV2(base_url=server.url, api_key="k-test").rerank(
        model="tiny", query=query, documents=docs, top_n=3
    )
    assert [r.index for r in top.results] == [w["corpus_id"] for w in want[:3]]


def test_jina_shape_matches_in_process(server, encoder, texts):
    query, docs = texts[2], texts[3:13]
    body = {
        "model": "jina-reranker-v2",
        "query": query,
        "documents": docs,
        "top_n": 5,
        "return_documents": True,
    }
    r = httpx.post(server.url + "/v1/rerank", json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    out = r.json()
    want = encoder.rank(query, docs, top_k=5)
    assert [x["index"] for x in out["results"]] == [w["corpus_id"] for w in want]
    assert [x["relevance_score"] for x in out["results"]] == pytest.approx(
        [w["score"] for w in want], rel=1e-6
    )
    assert [x["document"]["text"] for x in out["results"]] == [docs[w["corpus_id"]] for w in want]
    details = encoder.predict([(query, d) for d in docs], return_details=True)
    assert out["usage"]["total_tokens"] == int(np.sum(details.n_tokens))
    assert out["model"] == "jina-reranker-v2"


def test_tei_shape_raw_scores_and_truncation(server, encoder, texts):
    query, docs = texts[4], texts[5:15]
    r = httpx.post(
        server.url + "/rerank", json={"query": query, "texts": docs, "raw_scores": True}, headers=AUTH
    )
    assert r.status_code == 200, r.text
    raw = encoder.predict([(query, d) for d in docs], activation=None)
    assert {x["index"]: x["score"] for x in r.json()} == pytest.approx(
        dict(enumerate(raw.tolist())), rel=1e-5
    )
    long_doc = " ".join(texts[15:40])  # longer than the tiny model's 128 tokens with the query
    assert encoder.predict([(query, long_doc)], return_details=True).truncated[0]
    r = httpx.post(server.url + "/rerank", json={"query": query, "texts": [long_doc]}, headers=AUTH)
    assert r.status_code == 413
    r = httpx.post(
        server.url + "/rerank", json={"query": query, "texts": [long_doc], "truncate": True}, headers=AUTH
    )
    assert r.status_code == 200
    assert r.json()[0]["score"] == pytest.approx(float(encoder.predict([(query, long_doc)])[0]), rel=1e-6)


def test_max_tokens_per_doc_matches_a_cut_by_full_tokenization(server, encoder, texts):
    query, doc = texts[6], " ".join(texts[7:12])
    tok = encoder.encoder.tokenizer
    enc = tok.encode(doc, add_special_tokens=False)
    n = 9
    assert len(enc.ids) > n
    cut = doc[: enc.offsets[n - 1][1]]  # reference: offsets of the whole text
    body = {"query": query, "documents": [doc, texts[13]], "max_tokens_per_doc": n}
    r = httpx.post(server.url + "/v2/rerank", json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    got = {x["index"]: x["relevance_score"] for x in r.json()["results"]}
    assert got[0] == pytest.approx(float(encoder.predict([(query, cut)])[0]), rel=1e-6)
    assert r.json()["meta"]["warnings"]


def test_concurrent_requests_are_merged_and_routed_back(server, encoder, texts):
    jobs = [(texts[i], texts[(i + 1) % 40 : (i + 1) % 40 + 8] or texts[:8]) for i in range(12)]
    out: list = [None] * len(jobs)

    def go(k: int) -> None:
        q, docs = jobs[k]
        out[k] = httpx.post(
            server.url + "/v2/rerank", json={"query": q, "documents": docs}, headers=AUTH, timeout=60
        )

    threads = [threading.Thread(target=go, args=(k,)) for k in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (q, docs), r in zip(jobs, out, strict=True):
        assert r.status_code == 200, r.text
        want = {w["corpus_id"]: w["score"] for w in encoder.rank(q, docs)}
        got = {x["index"]: x["relevance_score"] for x in r.json()["results"]}
        # Other requests' pairs share the batches: padding differs, so allow float noise only.
        assert got == pytest.approx(want, rel=1e-5, abs=1e-6)
    metrics = httpx.get(server.url + "/metrics", headers=AUTH).text
    sizes = [line for line in metrics.splitlines() if line.startswith("crossrank_batch_requests_bucket")]
    assert sizes
    # At least one step merged several requests: fewer than all observations fall in the le="1" bucket.
    one = next(float(x.split()[-1]) for x in sizes if 'le="1"' in x)
    total = next(float(x.split()[-1]) for x in sizes if 'le="+Inf"' in x)
    assert one < total


def test_embed_matches_the_in_process_embedder(tiny_model, minilm_dir):
    from crossrank.models.embedder import Embedder

    srv = ServerProcess(["--model", str(tiny_model), "--embed-model", str(minilm_dir)])
    try:
        texts = ["what causes tides on earth", "the moon pulls the oceans", "bananas"]
        r = httpx.post(srv.url + "/embed", json={"inputs": texts}, timeout=60)
        assert r.status_code == 200, r.text
        got = np.asarray(r.json(), dtype=np.float32)
        want = Embedder(minilm_dir).encode(texts)
        want = want / np.linalg.norm(want, axis=1, keepdims=True)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-5)
        assert "/embed" in httpx.get(srv.url + "/openapi.json").json()["paths"]
    finally:
        assert srv.stop()
