"""crossrank on Ray Serve, on a real local cluster (127.0.0.1, 2 CPUs): the cohere SDK gets the in-process
order; a model replica killed with ``ray.kill`` under load loses no request (each ends 200, or 503 then a
successful retry); the pipeline deployment (first stage -> reranker by handles) equals crossrank.Pipeline.

One application with two model replicas (0.5 CPU each) and one pipeline application are deployed once
for the module; Ray Serve start-up costs tens of seconds on a busy 2-core machine."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytestmark = pytest.mark.slow

QUERIES = ["bada keto lumo", "sira vone", "kamu", "pelo dani rute"]


def _docs(seed: int, n: int = 8) -> list[str]:
    from model_fixtures import tiny_texts

    return tiny_texts(n, seed, max_words=20)


@pytest.fixture(scope="module")
def served(ray_local, tiny_bert_onnx):
    httpx = pytest.importorskip("httpx")
    from ray import serve

    from crossrank.ray.serve import BM25FirstStage, serve_app, serve_pipeline
    from server_process import free_port

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    # Deploy both applications before waiting on either: their replicas start in parallel.
    app = serve_app(str(tiny_bert_onnx), replicas=2, cpus_per_replica=0.5, options=("--max-wait-ms", "2"))
    corpus = _docs(99, 40)
    ids = [f"d{i}" for i in range(len(corpus))]
    pipe = serve_pipeline(
        BM25FirstStage(corpus, ids),
        str(tiny_bert_onnx),
        depth=10,
        top_k=5,
        cpus_per_replica=0.5,
        first_cpus=0.25,
    )
    serve.run_many(
        [
            serve.RunTarget(app, name="crossrank", route_prefix="/"),
            serve.RunTarget(pipe, name="pipe", route_prefix="/pipe"),
        ]
    )
    url = f"http://127.0.0.1:{port}"
    assert httpx.get(f"{url}/health", timeout=30).json()["status"] == "ok"
    yield {"url": url, "corpus": corpus, "ids": ids}
    serve.delete("crossrank")
    serve.delete("pipe")
    serve.shutdown()


def test_cohere_sdk_gets_the_in_process_order(served, tiny_bert_onnx):
    cohere = pytest.importorskip("cohere")
    from crossrank import CrossEncoder

    model = CrossEncoder(str(tiny_bert_onnx))
    for i, query in enumerate(QUERIES[:2]):
        docs = _docs(i)
        want = model.rank(query, docs)
        v2 = cohere.ClientV2(base_url=served["url"], api_key="unused").rerank(
            model="m", query=query, documents=docs
        )
        v1 = cohere.Client(base_url=served["url"], api_key="unused").rerank(
            model="m", query=query, documents=docs
        )
        for res in (v2, v1):
            assert [r.index for r in res.results] == [w["corpus_id"] for w in want]
            np.testing.assert_allclose(
                [r.relevance_score for r in res.results], [w["score"] for w in want], rtol=0, atol=1e-6
            )


def test_same_api_routes_and_errors(served):
    import httpx

    url = served["url"]
    tei = httpx.post(f"{url}/rerank", json={"query": "kamu", "texts": ["ka", "mu"]}, timeout=30)
    assert tei.status_code == 200
    assert sorted(r["index"] for r in tei.json()) == [0, 1]
    bad = httpx.post(f"{url}/v2/rerank", json={"query": "kamu"}, timeout=30)
    assert bad.status_code == 422
    assert "documents" in bad.text
    metrics = httpx.get(f"{url}/metrics", timeout=30)
    assert metrics.status_code == 200
    assert "crossrank" in metrics.text


def test_replica_threads_follow_its_cpus(served):
    from ray import serve

    from crossrank.ray.serve import MODEL_DEPLOYMENT

    handle = serve.get_deployment_handle(MODEL_DEPLOYMENT, app_name="crossrank")
    assert handle.info.remote().result(timeout_s=60)["threads"] == 1  # 0.5 CPU -> one thread


def _replica_names(deployment: str) -> list[str]:
    from ray._private import state

    return [
        a["Name"]
        for a in state.actors().values()
        if a.get("State") == "ALIVE"
        and deployment in str(a.get("Name", ""))
        and "REPLICA" in str(a.get("Name"))
    ]


def test_a_replica_killed_under_load_loses_no_request(served, ray_local, tiny_bert_onnx):
    """The issue's 2,000 requests are scaled to 400 by default (2 shared cores); the rule is the same.

    ``CROSSRANK_RAY_KILL_REQUESTS=2000`` runs the issue's full load.
    """
    import httpx

    from crossrank import CrossEncoder

    n_requests, clients = int(os.environ.get("CROSSRANK_RAY_KILL_REQUESTS", "400")), 8
    bodies = [{"query": q, "documents": _docs(10 + i)} for i, q in enumerate(QUERIES)]
    model = CrossEncoder(str(tiny_bert_onnx))
    want = [[w["corpus_id"] for w in model.rank(b["query"], b["documents"])] for b in bodies]
    done = 0
    lock = threading.Lock()
    killed = threading.Event()
    outcomes: list[tuple[list[int], bool]] = []  # (statuses of the attempts, order right)

    def one(i: int, client: httpx.Client) -> None:
        nonlocal done
        body = bodies[i % len(bodies)]
        statuses: list[int] = []
        ok = False
        t_end = time.monotonic() + 90
        while time.monotonic() < t_end:
            r = client.post(f"{served['url']}/v2/rerank", json=body, timeout=60)
            statuses.append(r.status_code)
            if r.status_code == 200:
                ok = [x["index"] for x in r.json()["results"]] == want[i % len(bodies)]
                break
            if r.status_code != 503:
                break
            time.sleep(min(float(r.headers.get("retry-after", "1")), 0.5))
        with lock:
            outcomes.append((statuses, ok))
            done += 1

    def worker(k: int) -> None:
        with httpx.Client() as client:
            for i in range(k, n_requests, clients):
                one(i, client)

    def killer() -> None:
        while done < n_requests // 4:
            time.sleep(0.05)
        names = _replica_names("crossrank#crossrank-model")  # this app's model, not the pipeline's
        assert len(names) >= 2, names
        ray_local.kill(ray_local.get_actor(names[0], namespace="serve"))
        killed.set()

    with ThreadPoolExecutor(clients + 1) as pool:
        kill = pool.submit(killer)
        for f in [pool.submit(worker, k) for k in range(clients)]:
            f.result()
        kill.result()
    assert killed.is_set()
    assert len(outcomes) == n_requests  # none lost
    lost = [s for s, _ in outcomes if s[-1] != 200]
    assert not lost, f"{len(lost)} requests did not end 200: {lost[:5]}"
    assert all(set(s[:-1]) <= {503} for s, _ in outcomes), "only 503 may precede a retry"
    assert all(ok for _, ok in outcomes), "a response's order differs from the in-process ranking"
    retried = sum(len(s) > 1 for s, _ in outcomes)
    print(f"replica killed under load: {n_requests} requests, all 200 in the end, {retried} after a 503")


def test_pipeline_deployment_equals_the_in_process_pipeline(served, tiny_bert_onnx):
    from ray import serve

    from crossrank import BM25Index, CrossEncoder, Pipeline

    corpus, ids = served["corpus"], served["ids"]
    pipe = Pipeline(
        BM25Index.build(corpus, ids=ids),
        documents=dict(zip(ids, corpus, strict=True)),
        reranker=CrossEncoder(str(tiny_bert_onnx)),
        depth=10,
        top_k=5,
    )
    handle = serve.get_app_handle("pipe")
    for query in QUERIES:
        got = handle.search.remote(query).result(timeout_s=60)
        want = pipe.search(query)
        assert got["ids"] == [str(i) for i in want.ids]
        np.testing.assert_allclose(got["scores"], want.scores, rtol=0, atol=1e-6)
