"""ColBERTReranker on all-MiniLM-L6-v2 token vectors (not a ColBERT checkpoint: tests mechanics only)."""

from __future__ import annotations

import json
import os
import string
import struct
from pathlib import Path

import numpy as np
import pytest

from crossrank import ColBERTReranker
from crossrank.errors import StateError
from crossrank.rerank.colbert_checkpoint import read_safetensors
from crossrank.rerank.maxsim import PackedDocs
from crossrank.text.tokenization import load_tokenizer
from reference.maxsim_reference import maxsim_reference

DOCS = [
    "Paris is the capital and most populous city of France.",
    "The cat sat on the mat, and then it slept.",
    "Semiconductor yield depends on defect density!",
    "",
]


@pytest.fixture(scope="module")
def reranker(minilm_dir):
    return ColBERTReranker(minilm_dir, dtype="fp32", num_threads=2)


def write_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    header, blobs, offset = {}, [], 0
    for name, arr in tensors.items():
        data = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        header[name] = {
            "dtype": "F32",
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"".join(blobs))


def model_copy(minilm_dir: Path, dst: Path) -> Path:
    """A directory that links the MiniLM files, to which a test adds ColBERT configs."""
    dst.mkdir()
    for name in ["onnx", "tokenizer.json", "config.json", "tokenizer_config.json", "vocab.txt"]:
        if (minilm_dir / name).exists():
            os.symlink(minilm_dir / name, dst / name)
    return dst


def reference_vectors(minilm_dir: Path, ids: list[int], attend: list[int]) -> np.ndarray:
    """MiniLM token vectors from the plain ONNX Runtime session, normalised."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(minilm_dir / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    feeds = {
        "input_ids": np.array([ids], np.int64),
        "attention_mask": np.array([attend], np.int64),
        "token_type_ids": np.zeros((1, len(ids)), np.int64),
    }
    h = sess.run(None, {k: v for k, v in feeds.items() if k in {i.name for i in sess.get_inputs()}})[0][0]
    return h / np.linalg.norm(h, axis=1, keepdims=True)


def test_query_is_framed_with_marker_and_mask_augmentation(reranker, minilm_dir):
    tok = load_tokenizer(minilm_dir)
    words = tok.encode("capital of france", add_special_tokens=False).ids
    cls, sep, mask, qmark = 101, 102, 103, tok.token_to_id("[unused0]")
    ids = [cls, qmark, *words, sep]
    ids_aug = ids + [mask] * (32 - len(ids))
    attend = [1] * len(ids) + [0] * (32 - len(ids))
    (q,) = reranker.encode_queries(["capital of france"])
    assert q.shape == (32, 384)
    np.testing.assert_allclose(q, reference_vectors(minilm_dir, ids_aug, attend), atol=2e-5)
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)


def test_documents_drop_punctuation_and_report_truncation(reranker, minilm_dir):
    tok = load_tokenizer(minilm_dir)
    text = DOCS[1]
    words = tok.encode(text, add_special_tokens=False).ids
    ids = [101, tok.token_to_id("[unused1]"), *words, 102]
    ref = reference_vectors(minilm_dir, ids, [1] * len(ids))
    punct = {tok.token_to_id(c) for c in string.punctuation} - {None}
    keep = [i for i, t in enumerate(ids) if t not in punct]
    (vec,), truncated = reranker.encode_documents([text])
    assert len(keep) == len(ids) - 2  # "," and "."
    np.testing.assert_allclose(vec, ref[keep], atol=2e-5)
    assert truncated.tolist() == [False]
    _, cut = ColBERTReranker(minilm_dir, doc_maxlen=8).encode_documents([text, "short"])
    assert cut.tolist() == [True, False]


def test_rerank_scores_match_float64_maxsim_and_are_json_safe(reranker):
    out = reranker.rank("what is the capital of france?", DOCS, return_documents=True)
    assert out[0]["corpus_id"] == 0
    assert sorted(r["corpus_id"] for r in out) == [0, 1, 2, 3]
    (q,) = reranker.encode_queries(["what is the capital of france?"])
    vecs, _ = reranker.encode_documents(DOCS)
    want = maxsim_reference(q, vecs)
    got = {r["corpus_id"]: r["score"] for r in out}
    np.testing.assert_allclose([got[i] for i in range(4)], want, rtol=1e-5)
    assert all(type(r["score"]) is float for r in out)
    assert out[0]["text"] == DOCS[0]
    json.dumps(out)
    assert [r["corpus_id"] for r in reranker.rank("capital of france", DOCS, top_k=2)] == [
        r["corpus_id"] for r in out[:2]
    ]
    assert reranker.rank("q", []) == []


def test_fp16_storage_ranks_like_fp32(minilm_dir, reranker):
    fp16 = ColBERTReranker(minilm_dir, dtype="fp16")
    a = reranker.rank("semiconductor defects", DOCS)
    b = fp16.rank("semiconductor defects", DOCS)
    assert [r["corpus_id"] for r in a] == [r["corpus_id"] for r in b]
    np.testing.assert_allclose([r["score"] for r in a], [r["score"] for r in b], rtol=1e-3)


def test_pylate_layout_reads_prefixes_lengths_and_dense_projection(minilm_dir, tmp_path):
    root = model_copy(minilm_dir, tmp_path / "pylate")
    (root / "config_sentence_transformers.json").write_text(
        json.dumps(
            {
                "query_prefix": "[unused2]",
                "document_prefix": "[unused3]",
                "query_length": 16,
                "document_length": 64,
                "skiplist_words": ["!"],
            }
        )
    )
    w = np.random.default_rng(0).standard_normal((48, 384)).astype(np.float32)
    write_safetensors(root / "1_Dense" / "model.safetensors", {"linear.weight": w})
    r = ColBERTReranker(root, dtype="fp32")
    assert r.settings.source == "pylate"
    assert (r.settings.query_maxlen, r.settings.doc_maxlen) == (16, 64)
    (q,) = r.encode_queries(["capital of france"])
    assert q.shape == (16, 48)
    plain = ColBERTReranker(minilm_dir, query_maxlen=16, query_marker="[unused2]", dtype="fp32")
    (h,) = plain.encode_queries(["capital of france"])  # normalised MiniLM vectors: same direction
    proj = h @ w.T
    np.testing.assert_allclose(q, proj / np.linalg.norm(proj, axis=1, keepdims=True), atol=1e-4)
    vecs, _ = r.encode_documents(["yield, density!"])
    assert vecs[0].shape[0] == 6  # [CLS] [unused3] yield , density [SEP]: only "!" is skipped


def test_colbert_ai_layout_reads_artifact_metadata(minilm_dir, tmp_path):
    root = model_copy(minilm_dir, tmp_path / "colbertai")
    (root / "artifact.metadata").write_text(
        json.dumps(
            {
                "query_token_id": "[unused4]",
                "doc_token_id": "[unused5]",
                "query_maxlen": 24,
                "doc_maxlen": 100,
                "mask_punctuation": False,
                "attend_to_mask_tokens": True,
                "dim": 384,
            }
        )
    )
    r = ColBERTReranker(root)
    s = r.settings
    assert (s.source, s.query_maxlen, s.doc_maxlen, s.skiplist, s.attend_to_mask_tokens) == (
        "colbert-ai",
        24,
        100,
        (),
        True,
    )
    assert r._q_marker == r.tokenizer.token_to_id("[unused4]")
    vecs, _ = r.encode_documents(["yield, density!"])
    assert vecs[0].shape[0] == 7  # nothing skipped
    assert "colbert-ai" in repr(r)


def test_unknown_marker_and_bad_arguments_are_typed_errors(minilm_dir, reranker):
    with pytest.raises(ValueError, match="query_marker"):
        ColBERTReranker(minilm_dir, query_marker="[NOPE]")
    with pytest.raises(ValueError, match="dtype"):
        ColBERTReranker(minilm_dir, dtype="int8")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="doc_maxlen"):
        ColBERTReranker(minilm_dir, doc_maxlen=2)
    with pytest.raises(ValueError, match="max_batch_size"):
        ColBERTReranker(minilm_dir, max_batch_size=0)
    with pytest.raises(TypeError, match="query must be a str"):
        reranker.rank(None, DOCS)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"documents\[1\]"):
        reranker.rank("q", ["a", 3])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="sequence of str"):
        reranker.rank("q", "just one string")
    with pytest.raises(ValueError, match="top_k"):
        reranker.rank("q", DOCS, top_k=-1)


def test_index_store_round_trip_and_mismatch(minilm_dir, reranker, tmp_path):
    store = reranker.index(DOCS, ids=["a", "b", "c", "d"], path=tmp_path / "idx")
    assert len(store) == 4
    fresh = ColBERTReranker(minilm_dir, dtype="fp32")
    with pytest.raises(StateError, match="no document index"):
        fresh.rerank_ids("capital of france", ["a"])
    fresh.load_index(tmp_path / "idx")
    got = fresh.rerank_ids("capital of france", ["c", "a", "d"], top_k=2)
    direct = reranker.rank("capital of france", [DOCS[2], DOCS[0], DOCS[3]])
    assert [g["corpus_id"] for g in got] == [["c", "a", "d"][r["corpus_id"]] for r in direct[:2]]
    np.testing.assert_allclose([g["score"] for g in got], [r["score"] for r in direct[:2]], rtol=1e-6)
    with pytest.raises(KeyError, match="zzz"):
        fresh.rerank_ids("q", ["zzz"])
    assert fresh.rerank_ids("q", []) == []
    other = ColBERTReranker(minilm_dir, doc_maxlen=64)
    with pytest.raises(StateError, match="different settings"):
        other.load_index(tmp_path / "idx")
    packed = reranker.index(DOCS)
    assert isinstance(packed, PackedDocs)
    assert reranker.rerank_ids("q", ["3"])[0]["corpus_id"] == "3"


def test_read_safetensors_rejects_garbage(tmp_path):
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(struct.pack("<Q", 5) + b"{oops")
    with pytest.raises(StateError, match="header"):
        read_safetensors(bad, ["linear.weight"])
    bad.write_bytes(b"abc")
    with pytest.raises(StateError, match="too short"):
        read_safetensors(bad, ["linear.weight"])


def test_document_vector_cache_reuses_encodings(minilm_dir):
    r = ColBERTReranker(minilm_dir, dtype="fp32")
    first = r.score("capital of france", [*DOCS, DOCS[0]])
    assert (first.stats["cache_hits"], first.stats["cache_misses"]) == (0, 4)  # the repeat is encoded once
    second = r.score("capital of france", [*DOCS, DOCS[0]])
    assert (second.stats["cache_hits"], second.stats["cache_misses"]) == (5, 0)
    np.testing.assert_array_equal(first.scores, second.scores)
    vecs, _ = r.encode_documents(DOCS[:1])
    assert not vecs[0].flags.writeable
    r.clear_cache()
    assert r.score("capital of france", DOCS[:1]).stats["cache_misses"] == 1
    tiny = ColBERTReranker(minilm_dir, cache_mb=0.001)  # ~1 KB: vectors of 384 floats do not fit
    tiny.score("q", DOCS)
    assert tiny.score("q", DOCS).stats["cache_hits"] == 0
    assert not hasattr(r, "cache_hits")
    with pytest.raises(ValueError, match="cache_mb"):
        ColBERTReranker(minilm_dir, cache_mb=-1)


def test_long_document_is_tokenized_as_a_prefix_and_marked_truncated(reranker):
    (vec,), cut = reranker.encode_documents(["word " * 200_000], cache=False)
    assert cut.tolist() == [True]
    assert vec.shape == (180, 384)  # [CLS] [D] 177 x "word" [SEP]: no punctuation to skip


def test_small_cache_shared_by_threads_gives_single_thread_scores(minilm_dir):
    import threading

    r = ColBERTReranker(minilm_dir, dtype="fp32", cache_mb=0.05)  # room for two or three documents
    pool = [f"{d} number {i}" for i in range(6) for d in DOCS[:3]]
    jobs = [(f"query {i} about france", [pool[(i * 4 + j) % len(pool)] for j in range(7)]) for i in range(6)]
    plain = ColBERTReranker(minilm_dir, dtype="fp32", cache_mb=0)
    want = [plain.score(q, d).scores for q, d in jobs]
    got: list[tuple[int, np.ndarray]] = []
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in [*range(t, 6), *range(t)]:
                got.append((i, r.score(*jobs[i]).scores))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    assert len(got) == 24
    for i, scores in got:
        np.testing.assert_allclose(scores, want[i], rtol=1e-6)


def test_windowed_score_batch_equals_score(minilm_dir):
    r = ColBERTReranker(minilm_dir, dtype="fp32", window_size=8, window_stride=4, num_threads=2)
    queries = ["capital of france", "defect density", "cats"]
    docs = [[DOCS[0], DOCS[1] * 3], [DOCS[2], "", DOCS[0]], [DOCS[1]]]
    batch = r.score_batch(queries, docs)
    for q, d, b in zip(queries, docs, batch, strict=True):
        one = r.score(q, d)
        np.testing.assert_allclose(b.scores, one.scores, rtol=1e-6)
        assert b.windows == one.windows
        assert not b.truncated.any()
    assert batch[0].stats["queries"] == 3
