"""Embedder parity with sentence-transformers, batching, DenseIndex (exact vs NumPy, save/load, bad input), DenseReranker."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossrank.errors import StateError
from crossrank.models.embedder import Embedder, plan_batches
from crossrank.rerank.dense import DenseReranker
from crossrank.retrieve.dense import DenseIndex


@pytest.fixture(scope="module")
def embedder(minilm_dir):
    return Embedder(minilm_dir, precision="fp32", backend="onnxruntime", num_threads=2)


@pytest.fixture(scope="module")
def sample_texts(datasets_dir):
    from crossrank.eval.datasets import load_beir

    ds = load_beir(datasets_dir / "scifact")
    docs = ds.documents()
    # Long (truncated at 256 tokens), short, empty, non-Latin and a repeated text.
    return [*docs[:40], "", "a", "量子コンピュータ 研究", "Ünïcödé naïve café", docs[0], "x " * 600]


@pytest.mark.slow
def test_embedder_equals_sentence_transformers(embedder, minilm_dir, sample_texts):
    st_mod = pytest.importorskip("sentence_transformers")
    torch = pytest.importorskip("torch")
    torch.set_num_threads(2)
    ref = st_mod.SentenceTransformer(str(minilm_dir), device="cpu").encode(
        sample_texts, batch_size=16, convert_to_numpy=True
    )
    ours = embedder.encode(sample_texts)
    assert ours.dtype == np.float32
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0)


def test_embedder_reads_st_config(embedder):
    assert embedder.pooling == "mean"
    assert embedder.normalize is True
    assert embedder.max_length == 256


def test_embedder_batching_does_not_change_results(embedder, sample_texts, monkeypatch):
    import crossrank.models.embedder

    full = embedder.encode(sample_texts[:6])
    embedder.max_batch_tokens, saved = 64, embedder.max_batch_tokens
    monkeypatch.setattr(crossrank.models.embedder, "_CHUNK", 5)  # several tokenize-and-sort chunks
    try:
        small = embedder.encode(sample_texts[:6])
    finally:
        embedder.max_batch_tokens = saved
    one = np.stack([embedder.encode([t])[0] for t in sample_texts[:3]])
    np.testing.assert_allclose(small, full, atol=1e-5)
    np.testing.assert_allclose(one, full[:3], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(full, axis=1), 1.0, atol=1e-5)


def test_embedder_pooling_reference(embedder):
    # A tiny NumPy reference of the poolings on made-up hidden states.
    rng = np.random.default_rng(0)
    h = rng.normal(size=(3, 5, 4)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    saved = embedder.pooling
    try:
        for how, ref in {
            "mean": [h[i, : mask[i].sum()].mean(0) for i in range(3)],
            "cls": [h[i, 0] for i in range(3)],
            "max": [h[i, : mask[i].sum()].max(0) for i in range(3)],
            "last": [h[i, mask[i].sum() - 1] for i in range(3)],
            "mean_sqrt_len": [h[i, : mask[i].sum()].sum(0) / np.sqrt(mask[i].sum()) for i in range(3)],
        }.items():
            embedder.pooling = how
            np.testing.assert_allclose(embedder._pool(h, mask), np.stack(ref), rtol=1e-5, atol=1e-6)
    finally:
        embedder.pooling = saved


def test_embedder_bad_input(embedder):
    with pytest.raises(TypeError, match="single str"):
        embedder.encode("hello")
    with pytest.raises(TypeError, match=r"texts\[1\] must be str"):
        embedder.encode(["ok", 3])
    with pytest.raises(ValueError, match="no prompt"):
        embedder.encode(["x"], prompt_name="query")
    assert embedder.encode([]).shape[0] == 0


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(1, 300), max_size=60), st.integers(1, 4096), st.integers(1, 64), st.integers(1, 16)
)
def test_plan_batches_covers_everything_under_budget(lengths, budget, max_rows, mult):
    lengths = np.asarray(lengths, dtype=np.int64)
    batches = plan_batches(lengths, max_batch_tokens=budget, max_batch_size=max_rows, pad_multiple=mult)
    seen = np.concatenate([b for b, _ in batches]) if batches else np.zeros(0, np.int64)
    assert sorted(seen.tolist()) == list(range(len(lengths)))
    for rows, width in batches:
        assert width % mult == 0
        assert width >= lengths[rows].max()
        assert len(rows) <= max_rows
        assert len(rows) == 1 or len(rows) * width <= budget
    # longest first
    firsts = [lengths[rows[0]] for rows, _ in batches]
    assert firsts == sorted(firsts, reverse=True)


# ---------------------------------------------------------------- DenseIndex
def _data(n=600, d=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _exact(x, q, k):
    s = q.astype(np.float64) @ x.astype(np.float64).T
    return np.argsort(-s, axis=1, kind="stable")[:, :k], np.sort(s, axis=1)[:, ::-1][:, :k]


def test_flat_index_exact_with_caller_ids():
    x, q = _data(), _data(20, seed=1)
    ids = [f"doc{i}" for i in range(len(x))]
    index = DenseIndex.build(x, ids)
    res = index.search(q, k=10)
    ref_idx, ref_scores = _exact(x, q, 10)
    assert res.ids.shape == (20, 10)
    assert res.ids.tolist() == [[ids[j] for j in row] for row in ref_idx]
    np.testing.assert_allclose(res.scores, ref_scores, atol=1e-5)


@pytest.mark.parametrize("kind", ["hnsw", "ivfpq"])
def test_approximate_indexes_have_good_recall(kind):
    x, q = _data(1000, 32), _data(30, 32, seed=2)
    index = DenseIndex.build(x, kind=kind, nlist=8, nprobe=8, pq_m=8)
    res = index.search(q, k=10)
    ref_idx, _ = _exact(x, q, 10)
    recall = np.mean(
        [len(set(r.tolist()) & set(e.tolist())) / 10 for r, e in zip(res.ids, ref_idx, strict=True)]
    )
    assert recall >= (0.95 if kind == "hnsw" else 0.5)


def test_k_larger_than_index_is_capped():
    index = DenseIndex.build(_data(3), ids=["a", "b", "c"])
    res = index.search(_data(2, seed=3), k=5)
    assert res.ids.shape == res.scores.shape == (2, 3)  # min(k, len(index)) columns, like BM25
    assert set(res.ids[0]) == {"a", "b", "c"}
    assert np.isfinite(res.scores).all()
    huge = index.search(_data(2, seed=3), k=10**9)  # no [2, 10**9] allocation
    assert huge.ids.tolist() == res.ids.tolist()


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfpq"])
def test_save_load_roundtrip(tmp_path, kind):
    x, q = _data(1000, 16), _data(5, 16, seed=4)
    index = DenseIndex.build(x, ids=[f"d{i}" for i in range(1000)], kind=kind, nlist=8, pq_m=4)
    before = index.search(q, k=7)
    index.save(tmp_path / "idx")
    loaded = DenseIndex.load(tmp_path / "idx")
    after = loaded.search(q, k=7)
    assert loaded.kind == kind
    assert len(loaded) == 1000
    assert after.ids.tolist() == before.ids.tolist()
    np.testing.assert_array_equal(after.scores, before.scores)
    loaded.add(_data(1, 16, seed=9), ids=["new"])
    assert loaded.search(_data(1, 16, seed=9), k=1).ids[0, 0] == "new"


def test_load_detects_corruption(tmp_path):
    index = DenseIndex.build(_data(50), ids=list(range(50)))
    root = tmp_path / "idx"
    index.save(root)
    assert DenseIndex.load(root).ids == list(range(50))  # int ids survive
    data = bytearray((root / "index.faiss").read_bytes())
    data[100] ^= 0xFF
    (root / "index.faiss").write_bytes(bytes(data))
    with pytest.raises(StateError, match="corrupted"):
        DenseIndex.load(root)
    index.save(root)
    (root / "ids.json").unlink()
    with pytest.raises(StateError, match="missing"):
        DenseIndex.load(root)
    index.save(root)
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["format_version"] = 99
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StateError, match="version 99"):
        DenseIndex.load(root)
    (root / "manifest.json").write_text("{not json")
    with pytest.raises(StateError, match="corrupted"):
        DenseIndex.load(root)
    (root / "manifest.json").unlink()
    with pytest.raises(StateError, match="no manifest"):
        DenseIndex.load(root)
    with pytest.raises(FileNotFoundError):
        DenseIndex.load(tmp_path / "absent")


def test_index_bad_input():
    x = _data(10, 8)
    with pytest.raises(ValueError, match="non-empty"):
        DenseIndex.build(np.zeros((0, 8), np.float32))
    bad = x.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="row 3 holds NaN"):
        DenseIndex.build(bad)
    index = DenseIndex.build(x)
    with pytest.raises(ValueError, match="dimension 4 but the index holds dimension 8"):
        index.search(np.zeros((1, 4), np.float32))
    with pytest.raises(ValueError, match="dimension 4"):
        index.add(np.zeros((1, 4), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        index.search(np.full((1, 8), np.inf, np.float32))
    with pytest.raises(ValueError, match="2-D"):
        index.search(np.zeros(8, np.float32))
    with pytest.raises(ValueError, match="k must be"):
        index.search(x[:1], k=0)
    with pytest.raises(ValueError, match="already in the index"):
        index.add(x[:1], ids=[0])
    with pytest.raises(ValueError, match="one id per row"):
        index.add(x[:2], ids=["a"])
    with pytest.raises(ValueError, match="is empty"):
        DenseIndex(8).search(x[:1])
    with pytest.raises(ValueError, match="at least 256 vectors"):
        DenseIndex.build(x, kind="ivfpq", nlist=2, pq_m=4)
    with pytest.raises(ValueError, match="kind must be"):
        DenseIndex(8, kind="lsh")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must divide"):
        DenseIndex(8, kind="ivfpq", pq_m=3)
    with pytest.raises(ValueError, match="faiss-gpu"):
        DenseIndex(8, use_gpu=True)


def test_old_manifest_with_version_key_loads(tmp_path):
    index = DenseIndex.build(_data(20), ids=[f"d{i}" for i in range(20)])
    root = tmp_path / "idx"
    index.save(root)
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["format"] == "crossrank.DenseIndex" and manifest["format_version"] == 1  # noqa: PT018
    manifest["version"] = manifest.pop("format_version")  # as v0.1 wrote it
    del manifest["crossrank_version"]
    (root / "manifest.json").write_text(json.dumps(manifest))
    assert DenseIndex.load(root).ids == index.ids


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda m: m.pop("sha256"), "field 'sha256' is missing"),
        (lambda m: m["sha256"].pop("ids.json"), "field 'ids.json' is missing"),
        (lambda m: m.update(sha256=["x"]), "field 'sha256' must be dict"),
        (lambda m: m.update(dim="16"), "field 'dim' must be int"),
        (lambda m: m.update(kind="lsh"), "field 'kind'"),
        (lambda m: m.update(params=[]), "field 'params' must be dict"),
        (lambda m: m["params"].update(evil=1), "unknown keys"),
        (lambda m: m["params"].update(nprobe="16"), "invalid saved index"),
        (lambda m: m.update(size=3), "disagree"),
    ],
)
def test_manifest_problems_are_state_errors(tmp_path, edit, match):
    root = tmp_path / "idx"
    DenseIndex.build(_data(20)).save(root)
    manifest = json.loads((root / "manifest.json").read_text())
    edit(manifest)
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StateError, match=match):
        DenseIndex.load(root)


def test_save_is_atomic_and_validated_first(tmp_path):
    root = tmp_path / "idx"
    DenseIndex.build(_data(20), ids=list(range(20))).save(root)
    files = {p.name: p.read_bytes() for p in root.iterdir()}
    with pytest.raises(ValueError, match="untrained"):
        DenseIndex(16, kind="ivfpq").save(root)
    assert {p.name: p.read_bytes() for p in root.iterdir()} == files
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="not a saved"):
        DenseIndex.build(_data(20)).save(tmp_path / "other")
    DenseIndex.build(_data(30)).save(root)  # replaces the old index as a whole
    assert len(DenseIndex.load(root)) == 30
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_ids_are_checked_when_added():
    index = DenseIndex.build(_data(4))
    with pytest.raises(TypeError, match=r"ids\[0\] must be a str or an int, got NoneType"):
        index.add(_data(1, seed=5), ids=[None])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="got tuple"):
        index.add(_data(1, seed=5), ids=[("a", 1)])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="single str"):
        index.add(_data(1, seed=5), ids="a")
    index.add(_data(1, seed=5), ids=[np.int64(99)])
    assert index.ids[-1] == 99 and type(index.ids[-1]) is int  # noqa: PT018
    with pytest.raises(TypeError, match="k must be an int"):
        index.search(_data(1), k=2.5)  # type: ignore[arg-type]


def test_dense_reranker_orders_by_cosine(embedder):
    rr = DenseReranker(embedder)
    docs = [
        "The cat sat on the mat.",
        "Photosynthesis converts light into chemical energy.",
        "Cats are small felines.",
    ]
    ranked = rr.rank("what do plants do with sunlight?", docs)
    assert ranked[0]["corpus_id"] == 1
    q = embedder.encode(["what do plants do with sunlight?"])[0]
    ref = embedder.encode(docs) @ q
    np.testing.assert_allclose(
        [r["score"] for r in sorted(ranked, key=lambda r: r["corpus_id"])], ref, atol=1e-5
    )
    assert all(isinstance(r["score"], float) for r in ranked)
    assert len(rr.rank("cats", docs, top_k=2)) == 2
    assert rr.rank("cats", []) == []
    with pytest.raises(TypeError):
        rr.score(["not a str"], docs)  # type: ignore[arg-type]


def test_dense_retriever_empty_corpus_and_search(embedder):
    from crossrank.retrieve.dense import DenseRetriever

    with pytest.raises(ValueError, match="0 documents"):
        DenseRetriever.build(embedder, [])
    dr = DenseRetriever.build(embedder, ["cats purr", "stocks fell"], ids=["a", "b"])
    res = dr.search(["kitten sounds"], k=3)
    assert res.ids[0].tolist() == ["a", "b"]  # k is capped at the 2 documents
    assert dr.search([], k=2).ids.shape == (0, 2)


def test_dense_reranker_protocol_shapes(embedder):
    rr = DenseReranker(embedder)
    docs = ["cats purr", "x " * 600, ""]
    s = rr.score("kittens", docs)
    assert s.scores.dtype == np.float32
    assert s.scores.shape == (3,)
    assert s.truncated.tolist() == [False, True, False]  # 600 tokens do not fit MiniLM's 256
    rows = rr.rank("kittens", docs, 2, return_documents=True)
    assert [set(r) for r in rows] == [{"corpus_id", "score", "truncated", "text"}] * 2
    again = rr.score("kittens", docs)
    assert (again.stats["cache_hits"], again.stats["cache_misses"]) == (3, 0)
    assert not hasattr(rr, "timings")


def test_dense_reranker_small_cache_is_thread_safe(tiny_bert_embedding_onnx):
    import threading

    from model_fixtures import tiny_texts

    rr = DenseReranker(tiny_bert_embedding_onnx, precision="fp32", cache_size=3)
    pool = tiny_texts(40, seed=7, max_words=20)
    queries = tiny_texts(8, seed=8, max_words=4)
    jobs = [(queries[i], [pool[(i * 5 + j) % 40] for j in range(12)]) for i in range(8)]
    want = [DenseReranker(rr.embedder, cache_size=0).score(q, d).scores for q, d in jobs]
    got: dict[tuple[int, int], np.ndarray] = {}
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for r in range(3):
                for i in range(t % 8, 8):  # overlapping documents, evicted again and again
                    got[(t, r * 8 + i)] = rr.score(*jobs[i]).scores
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    for (_, key), scores in got.items():
        np.testing.assert_allclose(scores, want[key % 8], atol=1e-6)
    assert len(rr._cache) <= 3
