"""The rerank server over real HTTP: a ``crossrank serve`` subprocess with the deterministic fake model.

Covers the API shapes (Cohere v1/v2 with the cohere SDK, Jina, TEI rerank and embed), API keys,
request ids, bad input, load shedding (429), deadlines (504), client disconnects, a failing
inference step, metrics and graceful shutdown. Real-model parity lives in test_server_model.py.
"""

from __future__ import annotations

import json
import math
import re
import signal
import socket
import threading
import time

import httpx
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from server_fakes import RAISE, fake_logit, sigmoid
from server_process import FAKE, FAKE_EMBED, ServerProcess

QUERY = "what causes tides on earth"
DOCS = [
    "the moon causes tides",
    "tides on earth are caused by the moon and the sun",
    "bananas are yellow",
    "earth orbits the sun",
]


def expected_order(query: str, docs: list[str]) -> list[tuple[int, float]]:
    """Reference: indices by descending fake relevance (ties by index), with the 0-1 score."""
    scored = [(i, sigmoid(fake_logit(query, d))) for i, d in enumerate(docs)]
    return sorted(scored, key=lambda t: (-t[1], t[0]))


@pytest.fixture(scope="module")
def server():
    srv = ServerProcess([*FAKE, *FAKE_EMBED, "--max-documents", "1000", "--max-body-bytes", "4000000"])
    yield srv
    assert srv.stop()


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def metric(text: str, name: str, **labels: str) -> float:
    """Read one sample from a Prometheus exposition (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.escape(name) + (r"\{" + re.escape(want) + r"\}" if want else "") + r" (\S+)$"
    for line in text.splitlines():
        m = re.match(pattern, line)
        if m:
            return float(m.group(1))
    return 0.0


# -- API shapes ---------------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["v1", "v2"])
def test_cohere_shape_scores_and_order(client, version):
    r = client.post(f"/{version}/rerank", json={"model": "m", "query": QUERY, "documents": DOCS})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == r.headers["x-request-id"]
    assert body["meta"]["api_version"]["version"] == version[1]
    assert body["meta"]["billed_units"]["search_units"] == 1
    want = expected_order(QUERY, DOCS)
    assert [x["index"] for x in body["results"]] == [i for i, _ in want]
    for got, (_, score) in zip(body["results"], want, strict=True):
        assert got["relevance_score"] == pytest.approx(score, rel=1e-6)
        assert "document" not in got
    if version == "v1":  # Jina's fields beside Cohere's
        assert body["model"] == "m"
        expected_tokens = sum(len(QUERY.split()) + len(d.split()) + 3 for d in DOCS)
        assert body["usage"]["total_tokens"] == expected_tokens


def test_top_n_return_documents_and_document_objects(client):
    docs = [DOCS[0], {"text": DOCS[1], "title": "t1"}, DOCS[2]]
    r = client.post(
        "/v1/rerank", json={"query": QUERY, "documents": docs, "top_n": 2, "return_documents": True}
    )
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    want = expected_order(QUERY, [DOCS[0], DOCS[1], DOCS[2]])[:2]
    assert [x["index"] for x in results] == [i for i, _ in want]
    by_index = {x["index"]: x["document"] for x in results}
    assert by_index[1] == {"text": DOCS[1], "title": "t1"}
    assert by_index[0] == {"text": DOCS[0]}


def test_top_n_larger_than_documents_returns_all(client):
    r = client.post("/v2/rerank", json={"query": QUERY, "documents": DOCS[:2], "top_n": 50})
    assert len(r.json()["results"]) == 2


def test_max_tokens_per_doc_truncates_and_warns(client):
    long_doc = "tides " * 10 + "moon " * 100
    r = client.post("/v2/rerank", json={"query": QUERY, "documents": [long_doc], "max_tokens_per_doc": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["results"][0]["relevance_score"] == pytest.approx(
        sigmoid(fake_logit(QUERY, "tides " * 4 + "tides"))
    )
    assert "truncated" in body["meta"]["warnings"][0]


def test_cohere_sdk_v2_and_v1_parse_the_response(server):
    cohere = pytest.importorskip("cohere")
    v2 = cohere.ClientV2(base_url=server.url, api_key="unused")
    res = v2.rerank(model="anything", query=QUERY, documents=DOCS, top_n=3)
    want = expected_order(QUERY, DOCS)[:3]
    assert [x.index for x in res.results] == [i for i, _ in want]
    assert [x.relevance_score for x in res.results] == pytest.approx([s for _, s in want], rel=1e-6)
    assert res.meta.billed_units.search_units == 1
    v1 = cohere.Client(base_url=server.url, api_key="unused")
    res1 = v1.rerank(model="anything", query=QUERY, documents=DOCS, return_documents=True)
    assert [x.index for x in res1.results] == [i for i, _ in expected_order(QUERY, DOCS)]
    assert res1.results[0].document.text == DOCS[res1.results[0].index]


def test_tei_rerank(client):
    r = client.post("/rerank", json={"query": QUERY, "texts": DOCS, "return_text": True})
    assert r.status_code == 200, r.text
    ranks = r.json()
    want = expected_order(QUERY, DOCS)
    assert [x["index"] for x in ranks] == [i for i, _ in want]
    assert [x["score"] for x in ranks] == pytest.approx([s for _, s in want], rel=1e-6)
    assert [x["text"] for x in ranks] == [DOCS[i] for i, _ in want]
    raw = client.post("/rerank", json={"query": QUERY, "texts": DOCS, "raw_scores": True}).json()
    assert {x["index"]: x["score"] for x in raw} == pytest.approx(
        {i: fake_logit(QUERY, d) for i, d in enumerate(DOCS)}, rel=1e-5, abs=1e-6
    )
    assert "text" not in raw[0]


def test_tei_long_input_needs_truncate(client):
    long_doc = "moon " * 200  # the fake's max_length is 64 tokens
    r = client.post("/rerank", json={"query": QUERY, "texts": ["short", long_doc]})
    assert r.status_code == 413
    assert "truncate=true" in r.json()["message"]
    r = client.post("/rerank", json={"query": QUERY, "texts": ["short", long_doc], "truncate": True})
    assert r.status_code == 200


def test_too_long_embed_inputs_need_truncate(client):
    long_text = "moon " * 100  # 102 of the fake embedder's "tokens"; its max_length is 64
    for body in ({"inputs": ["short", long_text]}, {"inputs": ["short", long_text], "truncate": False}):
        r = client.post("/embed", json=body)
        assert r.status_code == 413, r.text
        assert "inputs[1] has 102 tokens, more than the model's limit of 64" in r.json()["message"]
        assert "truncate=true" in r.json()["message"]
    r = client.post("/embed", json={"inputs": ["short", long_text], "truncate": True})
    assert r.status_code == 200, r.text
    r = client.post("/v1/embeddings", json={"input": ["short", long_text], "model": "m"})
    assert r.status_code == 413, r.text
    assert r.json()["error"]["param"] == "input"
    assert "input[1] has 102 tokens" in r.json()["error"]["message"]
    assert client.post("/embed", json={"inputs": "moon " * 62}).status_code == 200  # 64: at the limit
    assert client.get("/info").json()["auto_truncate"] is False


def test_auto_truncate_cuts_requests_that_do_not_say():
    srv = ServerProcess([*FAKE, *FAKE_EMBED, "--auto-truncate"])
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            long_text = "moon " * 100
            assert c.post("/rerank", json={"query": QUERY, "texts": [long_text]}).status_code == 200
            assert c.post("/embed", json={"inputs": [long_text]}).status_code == 200
            assert c.post("/v1/embeddings", json={"input": long_text, "model": "m"}).status_code == 200
            # An explicit truncate=false still refuses.
            r = c.post("/embed", json={"inputs": [long_text], "truncate": False})
            assert r.status_code == 413, r.text
            r = c.post("/rerank", json={"query": QUERY, "texts": [long_text], "truncate": False})
            assert r.status_code == 413, r.text
            assert c.get("/info").json()["auto_truncate"] is True
    finally:
        assert srv.stop()


def test_embed_tei_shape(client):
    r = client.post("/embed", json={"inputs": ["hello world", "a"]})
    assert r.status_code == 200, r.text
    vecs = r.json()
    assert len(vecs) == 2
    assert len(vecs[0]) == 4
    for v, text in zip(vecs, ["hello world", "a"], strict=True):
        raw = [len(text), len(text.split()), sum(c in "aeiou" for c in text), 1.0]
        norm = math.sqrt(sum(x * x for x in raw))
        assert v == pytest.approx([x / norm for x in raw], rel=1e-6)
    single = client.post("/embed", json={"inputs": "a", "normalize": False}).json()
    assert single == [[1.0, 1.0, 1.0, 1.0]]


def test_embed_without_model_is_501():
    srv = ServerProcess(FAKE)
    try:
        r = httpx.post(srv.url + "/embed", json={"inputs": "x"})
        assert r.status_code == 501
        assert "--embed-model" in r.json()["message"]
        assert "/embed" not in httpx.get(srv.url + "/openapi.json").json()["paths"]
    finally:
        assert srv.stop()


def test_request_id_is_echoed_and_logged(server, client):
    r = client.post(
        "/v2/rerank", json={"query": "q", "documents": ["d"]}, headers={"X-Request-ID": "abc-123"}
    )
    assert r.headers["x-request-id"] == "abc-123"
    assert r.json()["id"] == "abc-123"
    bad = client.get("/health", headers={"X-Request-ID": "has space\u00e9".encode("latin-1")})
    assert re.fullmatch(r"[0-9a-f]{32}", bad.headers["x-request-id"])  # replaced, not echoed
    time.sleep(0.2)
    lines = [json.loads(x) for x in server.logs().splitlines() if x.startswith("{")]
    access = [x for x in lines if x.get("request_id") == "abc-123"]
    assert access
    assert access[0]["path"] == "/v2/rerank"
    assert access[0]["status"] == 200


def test_openapi_document_lists_the_routes(client):
    spec = client.get("/openapi.json").json()
    for path in ("/v1/rerank", "/v2/rerank", "/rerank", "/embed", "/health", "/metrics"):
        assert path in spec["paths"]


def test_metrics_exposition(client):
    client.post("/v2/rerank", json={"query": QUERY, "documents": DOCS})
    text = client.get("/metrics").text
    for family in (
        "crossrank_queue_pairs",
        "crossrank_queue_requests",
        "crossrank_batch_pairs_bucket",
        "crossrank_tokens_total",
        "crossrank_inference_duration_seconds_bucket",
        "crossrank_request_duration_seconds_bucket",
    ):
        assert family in text
    assert metric(text, "crossrank_requests_total", route="/v2/rerank", status="200") >= 1
    assert metric(text, "crossrank_pairs_total") >= len(DOCS)


# -- bad input ----------------------------------------------------------------------------------
BAD_BODIES = [
    (b'{"query": "q", "documents": ', 400),  # malformed JSON
    (b'{"query": "\\ud800", "documents": ["a"]}', 400),  # a lone surrogate (the tokenizer cannot take it)
    (b'{"query": "q", "documents": ["a"], "top_n": NaN}', 400),
    (b"", 422),  # no body
    (b"[1, 2]", 422),  # not an object
    (b'{"documents": ["a"]}', 422),  # missing query
    (b'{"query": "q"}', 422),  # missing documents
    (b'{"query": 5, "documents": ["a"]}', 422),  # mistyped query
    (b'{"query": "q", "documents": "a"}', 422),  # documents not a list
    (b'{"query": "q", "documents": [5]}', 422),  # mistyped document
    (b'{"query": "q", "documents": [{"title": "no text"}]}', 422),
    (b'{"query": "q", "documents": []}', 422),  # empty documents
    (b'{"query": "q", "documents": ["a"], "top_n": 0}', 422),
    (b'{"query": "q", "documents": ["a"], "top_n": "many"}', 422),
    (b'{"query": "q", "documents": ["a"], "top_n": "3"}', 422),  # strict: no string coercion
    (b'{"query": "q", "documents": ["a"], "return_documents": 0}', 422),
    (b'{"query": "q", "documents": ["a"], "rank_fields": []}', 422),  # empty rank_fields
    (b'{"query": "q", "documents": ["a"], "rank_fields": "title"}', 422),  # not a list
    (b'{"query": "q", "documents": ["a"], "rank_fields": [5]}', 422),  # not field names
    (b'{"query": "q", "documents": ["a"], "rank_fields": [""]}', 422),
    (b'{"query": "q", "documents": [{"title": "t"}], "rank_fields": null}', 422),  # no text, no rank_fields
    (b'{"query": "\xff\xfe", "documents": ["a"]}', 400),  # not UTF-8
]


@pytest.mark.parametrize(("body", "status"), BAD_BODIES)
def test_bad_bodies_get_a_json_4xx(client, body, status):
    r = client.post("/v2/rerank", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    err = r.json()
    assert err["error_type"]
    assert err["message"]
    assert err["request_id"] == r.headers["x-request-id"]


@pytest.mark.parametrize("path", ["/rerank", "/embed", "/v1/rerank"])
def test_bad_bodies_on_other_routes(client, path):
    for body, status in ((b"{", 400), (b"{}", 422), (b'{"query": [], "texts": {}, "inputs": 3}', 422)):
        r = client.post(path, content=body)
        assert r.status_code == status, r.text


def test_too_many_documents_is_413_and_a_big_document_is_truncated(client):
    r = client.post("/v2/rerank", json={"query": "q", "documents": ["d"] * 10_000})
    assert r.status_code == 413
    assert "1000" in r.json()["message"]
    big = "moon " * 200_000  # 1 MB
    r = client.post("/v2/rerank", json={"query": QUERY, "documents": [big, "moon"]})
    assert r.status_code == 200, r.text
    assert r.json()["meta"]["warnings"]


def test_body_over_the_limit_is_413_before_parsing(client):
    r = client.post("/v2/rerank", content=b'{"query": "' + b"x" * 5_000_000 + b'"}')
    assert r.status_code == 413
    assert "--max-body-bytes" in r.json()["message"]


def test_unknown_route_and_method(client):
    assert client.get("/v3/rerank").status_code == 404
    r = client.get("/v2/rerank")
    assert r.status_code == 405
    assert r.json()["error_type"] == "method_not_allowed"


def test_a_failing_inference_step_does_not_kill_the_worker(client):
    r = client.post("/v2/rerank", json={"query": "q", "documents": ["a", RAISE]})
    assert r.status_code == 500
    assert r.json()["error_type"] == "inference"
    r = client.post("/v2/rerank", json={"query": "q", "documents": ["a"]})
    assert r.status_code == 200
    assert client.get("/health").json()["status"] == "ok"


def _raw_request(port: int, path: str, body: bytes, *, send_bytes: int | None = None) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    s.sendall(head + body[: send_bytes if send_bytes is not None else len(body)])
    return s


def test_client_disconnects_mid_body_and_mid_request(server, client):
    # Mid-body: the server is left waiting for bytes that never come.
    s = _raw_request(server.port, "/v2/rerank", b'{"query": "q", "documents": ["a", "b"]}', send_bytes=10)
    s.close()
    # Mid-request: the body arrived, then the client goes away before the answer.
    s = _raw_request(server.port, "/v2/rerank", json.dumps({"query": "q", "documents": ["a"] * 50}).encode())
    s.close()
    time.sleep(0.3)
    r = client.post("/v2/rerank", json={"query": "q", "documents": ["a"]})
    assert r.status_code == 200
    assert client.get("/health").json()["status"] == "ok"


# -- load shedding, deadlines, disconnects with a slow model --------------------------------------
def _post_async(url: str, payload: dict, out: list, index: int, timeout: float = 30) -> threading.Thread:
    def go() -> None:
        try:
            out[index] = httpx.post(url, json=payload, timeout=timeout)
        except Exception as exc:  # recorded for the assertion
            out[index] = exc

    t = threading.Thread(target=go)
    t.start()
    return t


def test_queue_full_answers_429_with_retry_after_and_disconnect_withdraws_work():
    srv = ServerProcess(
        [*FAKE, "--max-queue", "10", "--max-documents", "10", "--max-wait-ms", "0"],
        env={"FAKE_DELAY_S": "0.6"},
    )
    try:
        out: list = [None] * 2
        payload = {"query": "q", "documents": [f"doc {i}" for i in range(10)]}
        t0 = _post_async(srv.url + "/v2/rerank", payload, out, 0)
        time.sleep(0.2)  # the first is running; the queue is empty
        t1 = _post_async(srv.url + "/v2/rerank", payload, out, 1)
        time.sleep(0.1)  # the second is queued (10 of 10 pairs)
        r = httpx.post(srv.url + "/v2/rerank", json=payload)
        assert r.status_code == 429, r.text
        assert int(r.headers["retry-after"]) >= 1
        assert r.json()["error_type"] == "overloaded"
        t0.join()
        t1.join()
        assert out[0].status_code == 200
        assert out[1].status_code == 200
        # A client that goes away while queued: its pairs never reach the model.
        blocker = _raw_request(srv.port, "/v2/rerank", json.dumps(payload).encode())
        time.sleep(0.2)
        gone = _raw_request(
            srv.port, "/v2/rerank", json.dumps({"query": "q", "documents": ["x"] * 7}).encode()
        )
        time.sleep(0.1)
        gone.close()
        blocker.recv(1)  # wait for the blocker's answer
        blocker.close()
        time.sleep(0.2)
        text = httpx.get(srv.url + "/metrics").text
        assert metric(text, "crossrank_rejected_total", reason="cancelled") == 1
        assert metric(text, "crossrank_rejected_total", reason="queue_full") == 1
        assert metric(text, "crossrank_pairs_total") == 30  # 3 x 10; the 7 withdrawn pairs never ran
    finally:
        assert srv.stop()


def test_deadline_answers_504_and_drops_queued_work():
    srv = ServerProcess(
        [*FAKE, "--request-timeout-s", "0.4", "--max-wait-ms", "0"], env={"FAKE_DELAY_S": "1.0"}
    )
    try:
        out: list = [None] * 2
        t0 = _post_async(srv.url + "/v2/rerank", {"query": "q", "documents": ["a"] * 3}, out, 0)
        time.sleep(0.15)
        t1 = _post_async(srv.url + "/v2/rerank", {"query": "q", "documents": ["b"] * 5}, out, 1)
        t0.join()
        t1.join()
        assert out[0].status_code == 504
        assert out[1].status_code == 504
        assert out[1].json()["error_type"] == "timeout"
        time.sleep(1.0)  # the running step finishes; its result is discarded
        text = httpx.get(srv.url + "/metrics").text
        assert metric(text, "crossrank_pairs_total") == 3  # the queued request's 5 pairs never ran
        assert httpx.post(srv.url + "/health").status_code == 405
        assert httpx.get(srv.url + "/health").json()["status"] == "ok"
    finally:
        assert srv.stop()


def test_sigterm_finishes_in_flight_requests_then_exits():
    srv = ServerProcess([*FAKE, "--max-wait-ms", "0"], env={"FAKE_DELAY_S": "1.5"})
    out: list = [None] * 3
    threads = []
    for i in range(3):  # staggered, so that the first runs alone and the other two queue behind it
        threads.append(
            _post_async(srv.url + "/v2/rerank", {"query": "q", "documents": [f"d{i}"] * (i + 1)}, out, i)
        )
        time.sleep(0.1)
    # One step running, two requests queued (polled: on a loaded machine the threads connect late).
    deadline = time.monotonic() + 20
    while httpx.get(srv.url + "/health", timeout=5).json()["queue_requests"] < 2:
        assert time.monotonic() < deadline, "the requests never reached the server"
        time.sleep(0.02)
    srv.terminate()
    for t in threads:
        t.join()
    assert [r.status_code for r in out] == [200, 200, 200], out
    assert [len(r.json()["results"]) for r in out] == [1, 2, 3]
    assert srv.proc.wait(30) in (0, -signal.SIGTERM)
    with pytest.raises(httpx.TransportError):
        httpx.get(srv.url + "/health", timeout=2)
    srv.stop()


# -- API keys -----------------------------------------------------------------------------------
def test_api_keys_from_env_and_flag():
    keys = {"CROSSRANK_API_KEYS": "key-one,key-two"}
    srv = ServerProcess([*FAKE, "--api-key", "key-three"], env=keys)
    try:
        body = {"query": "q", "documents": ["a"]}
        url = srv.url + "/v2/rerank"
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": "key-one"},
            {"Authorization": "Basic key-one"},
        ):
            r = httpx.post(url, json=body, headers=headers)
            assert r.status_code == 401, headers
            assert r.json()["error_type"] == "unauthorized"
            assert r.headers["www-authenticate"] == "Bearer"
        for key in ("key-one", "key-two", "key-three"):
            assert httpx.post(url, json=body, headers={"Authorization": f"Bearer {key}"}).status_code == 200
        assert httpx.get(srv.url + "/health").status_code == 200  # open
        assert httpx.get(srv.url + "/metrics").status_code == 401
        assert httpx.get(srv.url + "/openapi.json").status_code == 401
        cohere = pytest.importorskip("cohere")
        res = cohere.ClientV2(base_url=srv.url, api_key="key-two").rerank(
            model="m", query="q", documents=["a", "b"]
        )
        assert len(res.results) == 2
        with pytest.raises(cohere.core.api_error.ApiError) as info:
            cohere.ClientV2(base_url=srv.url, api_key="nope").rerank(model="m", query="q", documents=["a"])
        assert info.value.status_code == 401
    finally:
        assert srv.stop()
    logs = srv.logs()
    for key in ("key-one", "key-two", "key-three", "nope"):
        assert key not in logs


def test_cli_rejects_bad_options(tmp_path):
    import subprocess
    import sys

    from server_process import CROSSRANK_ROOT, REPO

    env = {"PYTHONPATH": f"{CROSSRANK_ROOT}:{REPO / 'tests'}", "PATH": "/usr/bin:/bin"}
    for args, needle in (
        (["--port", "70000"], "--port"),
        (["--api-key", "has space"], "API key"),
        (["--max-documents", "100", "--max-queue", "10"], "max_documents"),
        (["--model", "py:nomodule"], "py:module:callable"),
        (["--embed-model", "/nonexistent", "--embed-matryoshka", "big"], "--embed-matryoshka"),
        (["--embed-model", "/nonexistent", "--embed-matryoshka", "64,0"], "matryoshka sizes must be >= 1"),
    ):
        argv = [sys.executable, "-m", "crossrank", "serve", *FAKE, *args]
        p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        assert p.returncode == 2, (args, p.stderr)
        assert needle in p.stderr


def test_health_reports_a_stuck_inference_step():
    srv = ServerProcess(
        [*FAKE, "--request-timeout-s", "0.3", "--max-wait-ms", "0"], env={"FAKE_DELAY_S": "2.0"}
    )
    try:
        out: list = [None]
        t = _post_async(srv.url + "/v2/rerank", {"query": "q", "documents": ["a"]}, out, 0)
        time.sleep(1.0)  # the step has run for more than twice the request deadline
        r = httpx.get(srv.url + "/health")
        assert r.status_code == 503
        assert r.json()["status"] == "unhealthy"
        t.join()
        assert out[0].status_code == 504
        time.sleep(1.2)
        assert httpx.get(srv.url + "/health").json()["status"] == "ok"
    finally:
        assert srv.stop()
