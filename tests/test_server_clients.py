"""Real third-party clients, unmodified, against a ``crossrank serve`` process on 127.0.0.1.

Each client gets the URL its users would give it (listed in the README's "Clients" section) and
must return exactly what crossrank computes in this process on the same model files: the order and
the scores of a rerank, the vectors of an embedding. Each client's error path (a wrong API key, a
refused option) must show the server's message to the user.

One server for the module: the tiny seeded cross-encoder as the reranker, and the tiny seeded
bi-encoder (given two prompts) as the embed model, Matryoshka shortening allowed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")

from model_fixtures import tiny_texts
from server_process import ServerProcess

KEY = "client-test-key"
WRONG = "not-the-key"
PROMPTS = {"query": "query: ", "document": "passage: "}


@pytest.fixture(scope="module")
def embed_dir(tiny_bert_embedding_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny bi-encoder with sentence-transformers prompts declared."""
    out = tmp_path_factory.mktemp("tiny_emb_prompts") / "model"
    shutil.copytree(tiny_bert_embedding_onnx, out)
    cfg_path = out / "config_sentence_transformers.json"
    cfg = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
    cfg["prompts"] = PROMPTS
    cfg_path.write_text(json.dumps(cfg))
    return out


@pytest.fixture(scope="module")
def server(tiny_bert_onnx: Path, embed_dir: Path):
    srv = ServerProcess(
        [
            "--model",
            str(tiny_bert_onnx),
            "--embed-model",
            str(embed_dir),
            "--embed-matryoshka",
            "any",
            "--max-wait-ms",
            "2",
        ],
        env={"CROSSRANK_API_KEYS": KEY},
    )
    yield srv
    assert srv.stop()


@pytest.fixture(scope="module")
def encoder(tiny_bert_onnx: Path):
    from crossrank.rerank.cross_encoder import CrossEncoder

    return CrossEncoder(tiny_bert_onnx)


@pytest.fixture(scope="module")
def embedder(embed_dir: Path):
    from crossrank.models.embedder import Embedder

    return Embedder(embed_dir, normalize=False)  # raw, as the server's


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return tiny_texts(40, seed=23, max_words=25)


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def want_rank(encoder, query: str, docs: list[str], k: int | None = None) -> tuple[list[int], list[float]]:
    ranked = encoder.rank(query, docs, top_k=k)
    return [r["corpus_id"] for r in ranked], [r["score"] for r in ranked]


# -- rerank clients -----------------------------------------------------------------------------
def test_cohere_sdk_v1_v2_sync_async_and_wrong_key(server, encoder, texts):
    cohere = pytest.importorskip("cohere")
    query, docs = texts[0], texts[1:16]
    ids, scores = want_rank(encoder, query, docs)
    v2 = cohere.ClientV2(base_url=server.url, api_key=KEY).rerank(model="m", query=query, documents=docs)
    v1 = cohere.Client(base_url=server.url, api_key=KEY).rerank(model="m", query=query, documents=docs)

    async def run_async():
        async with cohere.AsyncClientV2(base_url=server.url, api_key=KEY) as client:
            return await client.rerank(model="m", query=query, documents=docs, top_n=4)

    top = asyncio.run(run_async())
    for res in (v2, v1):
        assert [r.index for r in res.results] == ids
        assert [r.relevance_score for r in res.results] == pytest.approx(scores, rel=1e-6, abs=1e-7)
    assert [r.index for r in top.results] == ids[:4]
    with pytest.raises(cohere.core.api_error.ApiError) as info:
        cohere.ClientV2(base_url=server.url, api_key=WRONG).rerank(model="m", query=query, documents=docs)
    assert info.value.status_code == 401
    assert "invalid API key" in info.value.body["message"]


def test_cohere_rank_fields_scores_key_value_lines(server, encoder, texts):
    cohere = pytest.importorskip("cohere")
    query = texts[0]
    docs = [{"title": texts[i], "body": texts[i + 1]} for i in range(2, 12, 2)]
    # Cohere's v1 API takes document objects and rank_fields (v2 takes strings only).
    res = cohere.Client(base_url=server.url, api_key=KEY).rerank(
        model="m", query=query, documents=docs, rank_fields=["body", "title"], return_documents=True
    )
    lines = [f"body: {d['body']}\ntitle: {d['title']}" for d in docs]
    ids, scores = want_rank(encoder, query, lines)
    assert [r.index for r in res.results] == ids
    assert [r.relevance_score for r in res.results] == pytest.approx(scores, rel=1e-6, abs=1e-7)
    first = res.results[0]
    assert first.document.dict(exclude_none=True) == docs[first.index]  # returned as sent, no text


def test_langchain_cohere_rerank(server, encoder, texts):
    pytest.importorskip("langchain_cohere")
    from langchain_cohere import CohereRerank
    from langchain_core.documents import Document

    query, docs = texts[1], texts[2:14]
    ids, scores = want_rank(encoder, query, docs, 5)
    rr = CohereRerank(base_url=server.url, cohere_api_key=KEY, model="m", top_n=5)
    out = rr.compress_documents(
        [Document(page_content=d, metadata={"i": i}) for i, d in enumerate(docs)], query
    )
    assert [d.metadata["i"] for d in out] == ids
    assert [d.metadata["relevance_score"] for d in out] == pytest.approx(scores, rel=1e-6, abs=1e-7)
    bad = CohereRerank(base_url=server.url, cohere_api_key=WRONG, model="m", top_n=5)
    with pytest.raises(Exception, match="invalid API key"):
        bad.compress_documents([Document(page_content=d) for d in docs], query)


def _nodes(docs: list[str]):
    from llama_index.core.schema import NodeWithScore, TextNode

    return [NodeWithScore(node=TextNode(text=d, id_=f"n{i}")) for i, d in enumerate(docs)]


def test_llamaindex_cohere_rerank(server, encoder, texts):
    pytest.importorskip("llama_index.postprocessor.cohere_rerank")
    from llama_index.postprocessor.cohere_rerank import CohereRerank

    query, docs = texts[3], texts[4:16]
    ids, scores = want_rank(encoder, query, docs, 4)
    out = CohereRerank(api_key=KEY, base_url=server.url, top_n=4, model="m").postprocess_nodes(
        _nodes(docs), query_str=query
    )
    assert [n.node.node_id for n in out] == [f"n{i}" for i in ids]
    assert [n.score for n in out] == pytest.approx(scores, rel=1e-6, abs=1e-7)
    bad = CohereRerank(api_key=WRONG, base_url=server.url, top_n=4, max_retries=1)
    with pytest.raises(Exception, match="invalid API key"):
        bad.postprocess_nodes(_nodes(docs), query_str=query)


def test_llamaindex_jina_rerank(server, encoder, texts):
    pytest.importorskip("llama_index.postprocessor.jinaai_rerank")
    from llama_index.postprocessor.jinaai_rerank import JinaRerank

    query, docs = texts[5], texts[6:18]
    ids, scores = want_rank(encoder, query, docs, 3)
    out = JinaRerank(api_key=KEY, base_url=server.url + "/v1", top_n=3).postprocess_nodes(
        _nodes(docs), query_str=query
    )
    assert [n.node.node_id for n in out] == [f"n{i}" for i in ids]
    assert [n.score for n in out] == pytest.approx(scores, rel=1e-6, abs=1e-7)
    # Jina's client raises RuntimeError(body["detail"]): the message, not KeyError: 'detail'.
    with pytest.raises(RuntimeError, match="invalid API key"):
        JinaRerank(api_key=WRONG, base_url=server.url + "/v1").postprocess_nodes(
            _nodes(docs), query_str=query
        )


def _left_cut_reference(encoder, query: str, doc: str) -> str:
    """Slow reference of TEI's truncation_direction Left: the longest whole-word end that fits."""
    tok = encoder.encoder.tokenizer
    words = doc.split(" ")
    for k in range(len(words), 0, -1):
        end = " ".join(words[-k:])
        n = len(tok.encode(query, end, add_special_tokens=True).ids)
        if n <= encoder.max_length:
            return end
    return ""


def test_haystack_tei_ranker_with_left_truncation(server, encoder, texts):
    pytest.importorskip("haystack_integrations.components.rankers.huggingface_api")
    from haystack import Document
    from haystack.utils import Secret
    from haystack_integrations.components.rankers.huggingface_api import HuggingFaceTEIRanker
    from haystack_integrations.components.rankers.huggingface_api.ranker import TruncationDirection

    query, docs = texts[7], texts[8:20]
    ids, scores = want_rank(encoder, query, docs, 6)
    ranker = HuggingFaceTEIRanker(url=server.url, top_k=6, token=Secret.from_token(KEY))
    out = ranker.run(query=query, documents=[Document(content=d, meta={"i": i}) for i, d in enumerate(docs)])
    assert [d.meta["i"] for d in out["documents"]] == ids
    assert [d.score for d in out["documents"]] == pytest.approx(scores, rel=1e-6, abs=1e-7)
    # A document far past the model's 128 tokens: Left keeps its end, as TEI does.
    long_doc = " ".join(texts[20:40])
    end = _left_cut_reference(encoder, query, long_doc)
    assert 0 < len(end) < len(long_doc)
    left = ranker.run(
        query=query, documents=[Document(content=long_doc)], truncation_direction=TruncationDirection.LEFT
    )
    assert left["documents"][0].score == pytest.approx(float(encoder.predict([(query, end)])[0]), rel=1e-6)
    right = ranker.run(
        query=query, documents=[Document(content=long_doc)], truncation_direction=TruncationDirection.RIGHT
    )
    assert right["documents"][0].score == pytest.approx(
        float(encoder.predict([(query, long_doc)])[0]), rel=1e-6
    )
    bad = HuggingFaceTEIRanker(url=server.url, token=Secret.from_token(WRONG), max_retries=1)
    with pytest.raises(RuntimeError, match="invalid API key"):
        bad.run(query=query, documents=[Document(content=d) for d in docs])


def test_cohere_haystack_ranker(server, encoder, texts):
    pytest.importorskip("haystack_integrations.components.rankers.cohere")
    from haystack import Document
    from haystack.utils import Secret
    from haystack_integrations.components.rankers.cohere import CohereRanker

    query, docs = texts[9], texts[10:22]
    ids, scores = want_rank(encoder, query, docs, 5)
    ranker = CohereRanker(api_key=Secret.from_token(KEY), api_base_url=server.url, top_k=5)
    ranker.warm_up()
    out = ranker.run(query=query, documents=[Document(content=d, meta={"i": i}) for i, d in enumerate(docs)])
    assert [d.meta["i"] for d in out["documents"]] == ids
    assert [d.score for d in out["documents"]] == pytest.approx(scores, rel=1e-6, abs=1e-7)


# -- embedding clients --------------------------------------------------------------------------
def test_huggingface_hub_feature_extraction(server, embedder, texts):
    pytest.importorskip("huggingface_hub")
    from huggingface_hub import InferenceClient
    from huggingface_hub.errors import HfHubHTTPError

    batch = texts[:6]
    client = InferenceClient(model=server.url, token=KEY)  # the server's root, as TEI users give it
    got = client.feature_extraction(batch)
    np.testing.assert_allclose(got, unit(embedder.encode(batch)), rtol=1e-5, atol=1e-6)
    raw = client.feature_extraction(batch[0], normalize=False)
    np.testing.assert_allclose(
        np.asarray(raw).reshape(-1), embedder.encode(batch[:1])[0], rtol=1e-5, atol=1e-6
    )
    # prompt_name: the model's own prompt, prepended.
    got = client.feature_extraction(batch, prompt_name="query")
    np.testing.assert_allclose(got, unit(embedder.encode(batch, prompt_name="query")), rtol=1e-5, atol=1e-6)
    # dimensions: the first N values, re-normalized (Matryoshka).
    got = client.feature_extraction(batch, dimensions=8)
    np.testing.assert_allclose(got, unit(embedder.encode(batch)[:, :8]), rtol=1e-5, atol=1e-6)
    # truncation_direction left: the last max_length - 2 tokens with [CLS] ... [SEP].
    long_text = " ".join(texts[10:40])
    from crossrank.text.tokenization import load_tokenizer  # truncation off: every token

    ids = load_tokenizer(embedder.files.tokenizer_path).encode(long_text, add_special_tokens=False).ids
    keep = np.asarray(ids[-(embedder.max_length - 2) :], dtype=np.int64)
    assert len(ids) > len(keep)
    # Not asked to truncate: refused with 413 (TEI's default), naming the real length.
    with pytest.raises(HfHubHTTPError, match=f"has {len(ids) + 2} tokens, more than the model's limit"):
        client.feature_extraction(long_text)
    got = client.feature_extraction(long_text, truncate=True, truncation_direction="left")
    np.testing.assert_allclose(
        np.asarray(got).reshape(-1), unit(embedder.encode_token_ids([keep]))[0], rtol=1e-5, atol=1e-6
    )
    for kwargs, needle in (
        ({"dimensions": 10_000}, "more than this model's"),
        ({"prompt_name": "nope"}, "not a prompt of this model"),
    ):
        with pytest.raises(HfHubHTTPError, match=needle):
            client.feature_extraction(batch, **kwargs)
    with pytest.raises(HfHubHTTPError, match="invalid API key"):
        InferenceClient(model=server.url, token=WRONG).feature_extraction("x")
    info = InferenceClient(model=server.url, token=KEY, provider="hf-inference").get_endpoint_info()
    assert info["model_type"] == {"reranker": {"id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0}}}
    assert info["embedding_model"]["prompts"] == ["document", "query"]


def test_haystack_tei_embedders(server, embedder, texts):
    pytest.importorskip("haystack_integrations.components.embedders.huggingface_api")
    from haystack import Document
    from haystack.utils import Secret
    from haystack_integrations.components.embedders.huggingface_api import (
        HuggingFaceAPIDocumentEmbedder,
        HuggingFaceAPITextEmbedder,
    )
    from huggingface_hub.errors import HfHubHTTPError

    params = {"url": server.url}
    text_embedder = HuggingFaceAPITextEmbedder(
        api_type="text_embeddings_inference", api_params=params, token=Secret.from_token(KEY)
    )
    text_embedder.warm_up()
    got = text_embedder.run(text=texts[0])["embedding"]
    # haystack's default is normalize=False: the raw vector.
    np.testing.assert_allclose(got, embedder.encode(texts[:1])[0], rtol=1e-5, atol=1e-6)
    doc_embedder = HuggingFaceAPIDocumentEmbedder(
        api_type="text_embeddings_inference",
        api_params=params,
        token=Secret.from_token(KEY),
        normalize=True,
        batch_size=4,
    )
    doc_embedder.warm_up()
    docs = [Document(content=t) for t in texts[1:11]]
    out = doc_embedder.run(documents=docs)["documents"]
    np.testing.assert_allclose(
        [d.embedding for d in out], unit(embedder.encode(texts[1:11])), rtol=1e-5, atol=1e-6
    )
    bad = HuggingFaceAPITextEmbedder(
        api_type="text_embeddings_inference", api_params=params, token=Secret.from_token(WRONG)
    )
    bad.warm_up()
    with pytest.raises(HfHubHTTPError, match="invalid API key"):
        bad.run(text="x")


def test_openai_embeddings_create(server, embedder, texts):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0)
    batch = texts[:5]
    want = unit(embedder.encode(batch))
    res = client.embeddings.create(model="m", input=batch, encoding_format="float")
    np.testing.assert_allclose([d.embedding for d in res.data], want, rtol=1e-5, atol=1e-6)
    assert [d.index for d in res.data] == list(range(5))
    # Asked for explicitly, base64 comes back as the string (little-endian float32).
    res = client.embeddings.create(model="m", input=batch, encoding_format="base64")
    got = [np.frombuffer(base64.b64decode(d.embedding), dtype="<f4") for d in res.data]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    default = client.embeddings.create(model="m", input=batch[0])  # the SDK asks for base64 itself
    np.testing.assert_allclose(default.data[0].embedding, want[0], rtol=1e-5, atol=1e-6)
    assert default.usage.prompt_tokens == int(embedder.count_tokens(batch[:1])[0])
    short = client.embeddings.create(model="m", input=batch, dimensions=16)
    np.testing.assert_allclose(
        [d.embedding for d in short.data], unit(embedder.encode(batch)[:, :16]), rtol=1e-5, atol=1e-6
    )
    with pytest.raises(openai.UnprocessableEntityError, match="more than this model's") as info:
        client.embeddings.create(model="m", input=batch, dimensions=100_000)
    assert info.value.body["param"] == "dimensions"
    with pytest.raises(openai.UnprocessableEntityError, match="token ids"):
        client.embeddings.create(model="m", input=[[1, 2, 3]])
    with pytest.raises(openai.AuthenticationError, match="invalid API key") as info:
        openai.OpenAI(base_url=server.url + "/v1", api_key=WRONG, max_retries=0).embeddings.create(
            model="m", input="x"
        )
    assert info.value.body["code"] == "invalid_api_key"


# -- the new fields' bad input, over plain HTTP ------------------------------------------------
@pytest.fixture(scope="module")
def http(server):
    import httpx

    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as c:
        yield c


@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        ("/embed", {"inputs": "a", "dimensions": 0}, "dimensions"),
        ("/embed", {"inputs": "a", "dimensions": "8"}, "dimensions"),
        ("/embed", {"inputs": "a", "dimensions": 2.5}, "dimensions"),
        ("/embed", {"inputs": "a", "dimensions": 1_000_000}, "more than this model's"),
        ("/embed", {"inputs": "a", "prompt_name": 3}, "prompt_name"),
        ("/embed", {"inputs": "a", "prompt_name": "passage"}, "it declares: 'document', 'query'"),
        ("/embed", {"inputs": "a", "truncation_direction": "Middle"}, "truncation_direction"),
        ("/embed", {"inputs": "a", "encoding_format": "base64"}, "/v1/embeddings"),
        ("/embed", {"inputs": "a", "encoding_format": "hex"}, "encoding_format"),
        ("/rerank", {"query": "q", "texts": ["a"], "truncation_direction": "up"}, "truncation_direction"),
        ("/rerank", {"query": "q", "texts": ["a"], "truncation_direction": 1}, "truncation_direction"),
        ("/v2/rerank", {"query": "q", "documents": ["a"], "rank_fields": ["text", 3]}, "rank_fields"),
        ("/v2/rerank", {"query": "q", "documents": [{"title": "t"}]}, "documents.0.text"),
        ("/", {"query": "q"}, "query and texts, or an embed request: inputs"),
    ],
)
def test_new_fields_bad_input(http, path, body, needle):
    r = http.post(path, json=body)
    assert r.status_code == 422, r.text
    err = r.json()
    assert err["message"] == err["error"] == err["detail"]
    assert needle in err["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "a", "encoding_format": "hex"}, "encoding_format"),
        ({"input": "a", "dimensions": -1}, "dimensions"),
        ({"input": "a", "dimensions": True}, "dimensions"),
        ({"input": []}, "input"),
        ({"input": 5}, "input"),
        ({}, "input"),
    ],
)
def test_openai_route_errors_are_openai_shaped(http, body, param):
    r = http.post("/v1/embeddings", json=body)
    assert r.status_code == 422, r.text
    assert set(r.json()) == {"error"}
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == "invalid_request_error"
    assert err["param"] == param
    r = http.post("/v1/embeddings", content=b"{")  # malformed JSON, refused before routing
    assert r.json()["error"]["type"] == "invalid_request_error"


def test_tei_root_and_invocations_dispatch_by_body(http, embedder, encoder, texts):
    query, docs = texts[0], texts[1:6]
    ids, scores = want_rank(encoder, query, docs)
    for path in ("/", "/invocations"):
        ranks = http.post(path, json={"query": query, "texts": docs}).json()
        assert [r["index"] for r in ranks] == ids
        assert [r["score"] for r in ranks] == pytest.approx(scores, rel=1e-6, abs=1e-7)
        vecs = http.post(path, json={"inputs": docs}).json()
        np.testing.assert_allclose(vecs, unit(embedder.encode(docs)), rtol=1e-5, atol=1e-6)


def test_openai_base64_is_little_endian_float32(http, embedder, texts):
    r = http.post("/v1/embeddings", json={"input": texts[0], "encoding_format": "base64"})
    raw = base64.b64decode(r.json()["data"][0]["embedding"])
    np.testing.assert_allclose(
        np.frombuffer(raw, dtype="<f4"), unit(embedder.encode(texts[:1]))[0], rtol=1e-5, atol=1e-6
    )


# -- configuration (no server) ------------------------------------------------------------------
def test_document_limit_defaults_to_cohere_and_fits_the_queue():
    from crossrank.server.app import ServerConfig

    assert ServerConfig().max_documents == 10_000
    assert ServerConfig(max_queue_pairs=5000).max_documents == 5000
    with pytest.raises(ValueError, match="max_documents"):
        ServerConfig(max_queue_pairs=100, max_documents=200)


def test_matryoshka_rules(tmp_path):
    from crossrank.server.adapters import EmbedderModel, model_card_says_matryoshka
    from crossrank.server.embedding import check_dimensions
    from crossrank.server.errors import ApiError

    (tmp_path / "README.md").write_text(
        "---\ntags:\n- sentence-transformers\n- loss:MatryoshkaLoss\n---\n# x\n"
    )
    assert model_card_says_matryoshka(tmp_path)
    (tmp_path / "README.md").write_text(
        "---\ntags:\n- sentence-transformers\n---\nMatryoshka in the body only\n"
    )
    assert not model_card_says_matryoshka(tmp_path)
    listed = EmbedderModel(object(), "m", matryoshka_dims=[64, 256, 128])
    check_dimensions(listed, 128)
    with pytest.raises(ApiError, match=r"not one of this model's sizes \[256, 128, 64\]"):
        check_dimensions(listed, 100)
    with pytest.raises(ApiError, match="not declared Matryoshka"):
        check_dimensions(EmbedderModel(object(), "m"), 64)
    with pytest.raises(ValueError, match="must be >= 1"):
        EmbedderModel(object(), "m", matryoshka_dims=[0])
