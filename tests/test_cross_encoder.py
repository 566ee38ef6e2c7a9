"""CrossEncoder: scores equal transformers on the same weights, truncation flags, ranking, bounds, bad input."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from crossrank import CrossEncoder
from crossrank.models.export import int8_tolerance
from model_fixtures import reference_logits, tiny_texts

MAXLEN = 128


@pytest.fixture(scope="module")
def ce(tiny_bert_onnx: Path) -> CrossEncoder:
    return CrossEncoder(tiny_bert_onnx, precision="fp32", activation="none")


def _pairs(
    n: int, seed: int, *, q_words: int = 8, d_words: int = 60, d_min: int = 1
) -> list[tuple[str, str]]:
    qs = tiny_texts(n, seed, max_words=q_words)
    ds = tiny_texts(n, seed + 100, min_words=d_min, max_words=d_words)
    return list(zip(qs, ds, strict=True))


def _hf_truncated(tok_dir: Path, pairs: list[tuple[str, str]], max_length: int) -> np.ndarray:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
    out = []
    for q, d in pairs:
        n = len(tok.encode(q, add_special_tokens=False).ids) + len(
            tok.encode(d, add_special_tokens=False).ids
        )
        out.append(n + 3 > max_length)
    return np.array(out)


@pytest.mark.parametrize(
    ("kind", "d_words"),
    [("short", 20), ("truncated", 200), ("mixed", 160)],
)
def test_scores_equal_transformers(
    ce: CrossEncoder, tiny_bert_checkpoint: Path, kind: str, d_words: int
) -> None:
    pairs = _pairs(48, seed=len(kind), d_words=d_words, d_min=150 if kind == "truncated" else 1)
    ref = reference_logits(tiny_bert_checkpoint, pairs, MAXLEN)[:, 0]
    det = ce.predict(pairs, return_details=True)
    np.testing.assert_allclose(det.scores, ref, atol=1e-4, rtol=0)
    flags = _hf_truncated(tiny_bert_checkpoint, pairs, MAXLEN)
    np.testing.assert_array_equal(det.truncated, flags)
    if kind == "truncated":
        assert flags.all()
    if kind == "short":
        assert not flags.any()
    if kind == "mixed":
        assert 0 < flags.sum() < len(flags)
    assert det.stats.peak_batch_tokens <= ce.max_batch_tokens


def test_any_order_and_threads(tiny_bert_onnx: Path, tiny_bert_checkpoint: Path) -> None:
    pairs = _pairs(60, seed=11, d_words=120)
    ref = reference_logits(tiny_bert_checkpoint, pairs, MAXLEN)[:, 0]
    one = CrossEncoder(tiny_bert_onnx, precision="fp32", activation="none", num_threads=1)
    two = CrossEncoder(
        tiny_bert_onnx, precision="fp32", activation="none", num_threads=2, max_batch_tokens=512
    )
    s1 = one.predict(pairs)
    s2 = two.predict(pairs, show_progress_bar=True)
    np.testing.assert_allclose(s1, ref, atol=1e-4, rtol=0)
    np.testing.assert_allclose(s2, ref, atol=1e-4, rtol=0)
    perm = np.random.default_rng(3).permutation(len(pairs))
    shuffled = one.predict([pairs[i] for i in perm])
    np.testing.assert_allclose(shuffled, s1[perm], atol=1e-6, rtol=0)


def test_concurrent_calls_share_one_session(ce: CrossEncoder) -> None:
    jobs = [_pairs(20, seed=s) for s in range(4)]
    want = [ce.predict(p) for p in jobs]
    got: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        got[i] = ce.predict(jobs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        np.testing.assert_array_equal(got[i], want[i])


def test_activation_default_and_shapes(
    tiny_bert_onnx: Path, tiny_bert_multilabel_onnx: Path, tiny_bert_multilabel_checkpoint: Path
) -> None:
    pairs = _pairs(5, seed=5)
    raw = CrossEncoder(tiny_bert_onnx, precision="fp32", activation=None).predict(pairs)
    auto = CrossEncoder(tiny_bert_onnx, precision="fp32")
    assert auto.activation == "sigmoid"  # sentence-transformers: Sigmoid for one label
    got = auto.predict(pairs)
    assert got.dtype == np.float32
    assert got.shape == (5,)
    np.testing.assert_allclose(got, 1 / (1 + np.exp(-raw.astype(np.float64))), atol=1e-6)
    single = auto.predict(pairs[0])
    assert np.ndim(single) == 0
    assert abs(float(single) - got[0]) < 1e-6
    assert auto.predict(pairs, convert_to_numpy=False) == pytest.approx(got.tolist(), abs=1e-7)

    multi = CrossEncoder(tiny_bert_multilabel_onnx, precision="fp32")
    assert multi.activation == "none"  # sentence-transformers: Identity for several labels
    logits = multi.predict(pairs)
    assert logits.shape == (5, 3)
    np.testing.assert_allclose(
        logits, reference_logits(tiny_bert_multilabel_checkpoint, pairs, MAXLEN), atol=1e-4
    )
    soft = multi.predict(pairs, activation="softmax")
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, atol=1e-6)
    with pytest.raises(ValueError, match="one- or two-label"):
        multi.rank("q", ["d"])


def test_activation_from_sentence_transformers_config(tiny_bert_onnx: Path, tmp_path: Path) -> None:
    import json
    import shutil

    model = tmp_path / "m"
    shutil.copytree(tiny_bert_onnx, model)
    (model / "config_sentence_transformers.json").write_text(
        json.dumps({"activation_fn": "torch.nn.modules.linear.Identity"})
    )
    assert CrossEncoder(model, precision="fp32").activation == "none"
    cfg = json.loads((model / "config.json").read_text())
    (model / "config_sentence_transformers.json").unlink()
    cfg["sentence_transformers"] = {"activation_fn": "torch.nn.modules.activation.Sigmoid"}
    (model / "config.json").write_text(json.dumps(cfg))
    assert CrossEncoder(model, precision="fp32").activation == "sigmoid"
    cfg["sentence_transformers"] = {"activation_fn": "my.custom.Thing"}
    (model / "config.json").write_text(json.dumps(cfg))
    with pytest.warns(UserWarning, match="does not implement"):
        assert CrossEncoder(model, precision="fp32").activation == "sigmoid"


def test_rank_matches_predict(ce: CrossEncoder) -> None:
    query = tiny_texts(1, 21, max_words=6)[0]
    docs = tiny_texts(30, 22, max_words=150)
    docs.append(docs[3])  # a tie: input order decides
    scores = ce.predict([(query, d) for d in docs])
    ranked = ce.rank(query, docs, return_documents=True)
    assert [r["corpus_id"] for r in ranked] == np.argsort(-scores, kind="stable").tolist()
    assert all(type(r["score"]) is float and type(r["truncated"]) is bool for r in ranked)
    assert ranked[0]["text"] == docs[ranked[0]["corpus_id"]]
    ids = [r["corpus_id"] for r in ranked]
    assert ids.index(3) < ids.index(30)
    assert any(r["truncated"] for r in ranked)
    assert not all(r["truncated"] for r in ranked)
    top = ce.rank(query, docs, top_k=5)
    assert [r["corpus_id"] for r in top] == ids[:5]
    assert "text" not in top[0]
    assert [r["corpus_id"] for r in ce.rank(query, docs, 5)] == ids[:5]  # top_k positional
    with pytest.raises(ValueError, match="top_k"):
        ce.rank(query, docs, top_k=0)


def test_cache_hits_skip_tokenization(tiny_bert_onnx: Path) -> None:
    ce = CrossEncoder(tiny_bert_onnx, precision="fp32")
    docs = tiny_texts(50, 31)
    first = ce.rank("kabo", docs)
    n = ce.encoder.tokenized
    s1 = ce.score("duve", docs[::-1]).stats  # every document was tokenized by rank()
    assert (s1["cache_hits"], s1["cache_misses"]) == (50, 0)
    fresh = CrossEncoder(tiny_bert_onnx, precision="fp32")
    s0 = fresh.score("kabo", docs).stats
    assert (s0["cache_hits"], s0["cache_misses"]) == (0, 50)
    second = ce.rank("duve miro", docs)  # new query, same documents
    s2 = ce.score("duve miro", docs).stats
    assert (s2["cache_hits"], s2["cache_misses"]) == (50, 0)
    assert ce.encoder.tokenized == n  # no document was tokenized again
    assert not hasattr(ce, "last_stats")  # per-call stats live on the result, never on the instance
    assert ce.rank("kabo", docs) == first
    assert second != first


def test_empty_and_bad_input(ce: CrossEncoder) -> None:
    assert ce.rank("q", []) == []
    out = ce.predict([])
    assert isinstance(out, np.ndarray)
    assert out.shape == (0,)
    det = ce.predict([("", ""), ("", "kabo"), ("kabo", "")], return_details=True)
    assert det.scores.shape == (3,)
    assert np.isfinite(det.scores).all()
    assert not det.truncated.any()
    with pytest.raises(TypeError, match=r"pairs\[1\]\[1\] \(document\) must be a str, got NoneType"):
        ce.predict([("a", "b"), ("a", None)])
    with pytest.raises(TypeError, match=r"pairs\[0\]\[0\] \(query\) must be a str, got int"):
        ce.predict([(3, "b")])
    with pytest.raises(ValueError, match=r"pairs\[1\] must be a \(query, document\) pair"):
        ce.predict([("a", "b"), ("a", "b", "c")])
    with pytest.raises(TypeError, match="list of"):
        ce.predict("just a string")
    with pytest.raises(TypeError, match=r"documents\[2\].*NoneType"):
        ce.rank("q", ["a", "b", None])
    with pytest.raises(TypeError, match=r"documents\[0\].*bytes"):
        ce.rank("q", [b"x"])
    with pytest.raises(TypeError, match="query must be a str, got NoneType"):
        ce.rank(None, ["a"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="top_k"):
        ce.rank("q", ["a"], top_k=-1)
    with pytest.raises(ValueError, match="batch_size"):
        ce.predict([("a", "b")], batch_size=0)
    with pytest.raises(ValueError, match="activation"):
        ce.predict([("a", "b")], activation="relu")


def test_bad_options(tiny_bert_onnx: Path) -> None:
    with pytest.raises(ValueError, match="activation must be one of"):
        CrossEncoder(tiny_bert_onnx, activation="tanh")
    with pytest.raises(ValueError, match="truncation"):
        CrossEncoder(tiny_bert_onnx, truncation="middle")
    with pytest.raises(ValueError, match="max_batch_tokens"):
        CrossEncoder(tiny_bert_onnx, max_batch_tokens=0)
    with pytest.raises(ValueError, match=r"max_batch_tokens \(64\) must be at least max_length"):
        CrossEncoder(tiny_bert_onnx, max_batch_tokens=64)
    with pytest.raises(ValueError, match="aggregate"):
        CrossEncoder(tiny_bert_onnx, aggregate="median")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_threads"):
        CrossEncoder(tiny_bert_onnx, num_threads=0)
    with pytest.raises(ValueError, match=r"max_length=129 exceeds what the model can read \(128"):
        CrossEncoder(tiny_bert_onnx, max_length=129)
    with pytest.raises(ValueError, match="max_length must be an int"):
        CrossEncoder(tiny_bert_onnx, max_length=64.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_length"):
        CrossEncoder(tiny_bert_onnx, max_length=3)  # not even the special tokens fit


def test_truncation_options_equal_transformers(tiny_bert_onnx: Path, tiny_bert_checkpoint: Path) -> None:
    pairs = _pairs(24, seed=41, q_words=30, d_words=150)
    only2 = CrossEncoder(
        tiny_bert_onnx, precision="fp32", activation=None, truncation="only_second", max_length=96
    )
    ref = reference_logits(tiny_bert_checkpoint, pairs, 96, truncation="only_second")[:, 0]
    np.testing.assert_allclose(only2.predict(pairs), ref, atol=1e-4)
    # A query cap: the same as truncating the query's tokens first.
    capped = CrossEncoder(tiny_bert_onnx, precision="fp32", activation=None, max_query_length=4)
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tiny_bert_checkpoint / "tokenizer.json"))
    short_q = [(tok.decode(tok.encode(q, add_special_tokens=False).ids[:4]), d) for q, d in pairs]
    det = capped.predict(pairs, return_details=True)
    np.testing.assert_allclose(
        det.scores, reference_logits(tiny_bert_checkpoint, short_q, MAXLEN)[:, 0], atol=1e-4
    )
    long_q = np.array([len(tok.encode(q, add_special_tokens=False).ids) > 4 for q, _ in pairs])
    assert det.truncated[long_q].all()


def test_long_queries_and_documents_equal_transformers(ce: CrossEncoder, tiny_bert_checkpoint: Path) -> None:
    # Both sides longer than max_length: longest_first compares their full lengths (which one gets the
    # odd token), so documents must be read past the query's length, not just past max_length.
    qs = tiny_texts(12, 95, min_words=120, max_words=220)
    ds = tiny_texts(12, 96, min_words=60, max_words=260)
    pairs = list(zip(qs, ds, strict=True))
    ref = reference_logits(tiny_bert_checkpoint, pairs, MAXLEN)[:, 0]
    det = ce.predict(pairs, return_details=True)
    np.testing.assert_allclose(det.scores, ref, atol=1e-4, rtol=0)
    assert det.truncated.all()


def test_megabyte_document_truncated_and_bounded(ce: CrossEncoder) -> None:
    rng = np.random.default_rng(0)
    words = tiny_texts(1, 51, min_words=300, max_words=300)[0].split()
    big = " ".join(rng.choice(words, size=260_000))
    assert len(big) > 1_000_000
    tokens_before = ce.encoder.cache.stats().tokens
    start = time.perf_counter()
    det = ce.predict([("kabo", big), ("kabo", big[:3000])], return_details=True)
    elapsed = time.perf_counter() - start
    assert det.truncated.all()
    assert det.scores[0] == pytest.approx(det.scores[1], abs=1e-6)  # both see the same first tokens
    assert elapsed < 2.0, "a 1 MB document must be tokenized only as far as max_length needs"
    assert ce.encoder.cache.stats().tokens - tokens_before < 2_000  # not the ~400k ids of the whole text


def test_ten_thousand_candidates_bounded(tiny_bert_onnx: Path) -> None:
    ce = CrossEncoder(tiny_bert_onnx, precision="fp32", max_batch_tokens=2048)
    docs = tiny_texts(10_000, 61, max_words=30)
    ranked = ce.rank("kabo duve", docs, top_k=10)
    s = ce.score("kabo duve", docs).stats
    assert s["pairs"] == 10_000
    assert len(ranked) == 10
    assert s["peak_batch_tokens"] <= 2048
    assert s["padding_ratio"] < 0.3  # sorted by token length; the rest is the 16-token shape buckets


def test_int8_within_documented_tolerance(tiny_bert_onnx: Path, tiny_bert_checkpoint: Path) -> None:
    pairs = _pairs(40, seed=71, d_words=100)
    ce8 = CrossEncoder(tiny_bert_onnx, precision="int8", activation=None)
    assert "int8" in ce8.backend.onnx_path.name  # type: ignore[attr-defined]
    ref = reference_logits(tiny_bert_checkpoint, pairs, MAXLEN)[:, 0]
    err = np.abs(ce8.predict(pairs) - ref).max()
    assert err <= int8_tolerance(ref)


def test_openvino_bf16_close(tiny_bert_onnx: Path, tiny_bert_checkpoint: Path) -> None:
    pytest.importorskip("openvino")
    pairs = _pairs(40, seed=81, d_words=100)
    ref = reference_logits(tiny_bert_checkpoint, pairs, MAXLEN)[:, 0]
    ov32 = CrossEncoder(tiny_bert_onnx, backend="openvino", precision="fp32", activation=None)
    np.testing.assert_allclose(ov32.predict(pairs), ref, atol=1e-4)
    ovbf = CrossEncoder(tiny_bert_onnx, backend="openvino", precision="bf16", activation=None)
    assert np.abs(ovbf.predict(pairs) - ref).max() < 0.1


def test_windows_score_long_documents(tiny_bert_onnx: Path) -> None:
    pairs = _pairs(12, seed=91, d_words=300)
    plain = CrossEncoder(tiny_bert_onnx, precision="fp32", activation=None)
    win = CrossEncoder(tiny_bert_onnx, precision="fp32", activation=None, window_stride=64)
    p = plain.predict(pairs, return_details=True)
    w = win.predict(pairs, return_details=True)
    assert p.truncated.any()
    assert not w.truncated.any()
    assert (w.scores >= p.scores - 1e-6).all()  # max over windows includes window 0 = the truncated pair
    assert (w.scores > p.scores + 1e-6).any()
    short = _pairs(6, seed=92, d_words=10)
    np.testing.assert_allclose(win.predict(short), plain.predict(short), atol=1e-6)
    capped = CrossEncoder(tiny_bert_onnx, precision="fp32", window_stride=64, max_windows=1)
    assert capped.predict(pairs, return_details=True).truncated.any()


@pytest.mark.slow
def test_minilm_with_seeded_head_equals_transformers(
    minilm_ce_onnx: Path, minilm_ce_checkpoint: Path
) -> None:
    rng = np.random.default_rng(5)
    vocab = [
        "cell",
        "protein",
        "gene",
        "expression",
        "tumor",
        "patients",
        "study",
        "results",
        "increased",
        "reduced",
        "risk",
        "treatment",
        "mice",
        "levels",
        "effect",
        "human",
        "disease",
        "clinical",
        "analysis",
        "associated",
        "function",
        "response",
        "blood",
    ]
    texts = [" ".join(rng.choice(vocab, size=int(n))) for n in rng.integers(3, 700, size=40)]
    pairs = [(texts[i], texts[-1 - i]) for i in range(len(texts))]
    ref = reference_logits(minilm_ce_checkpoint, pairs, 512)[:, 0]
    for threads in (1, 2):
        ce = CrossEncoder(minilm_ce_onnx, precision="fp32", activation=None, num_threads=threads)
        np.testing.assert_allclose(ce.predict(pairs), ref, atol=1e-4, rtol=0)
    ov = CrossEncoder(minilm_ce_onnx, backend="openvino", precision="fp32", activation=None)
    np.testing.assert_allclose(ov.predict(pairs), ref, atol=1e-4, rtol=0)
    ce8 = CrossEncoder(minilm_ce_onnx, precision="int8", activation=None)
    assert np.abs(ce8.predict(pairs) - ref).max() <= int8_tolerance(ref)
    opt = CrossEncoder(
        minilm_ce_onnx, onnx_file="model_optimized.onnx", backend="onnxruntime", activation=None
    )
    np.testing.assert_allclose(opt.predict(pairs), ref, atol=1e-4, rtol=0)


def test_predict_is_a_sentence_transformers_drop_in(ce: CrossEncoder) -> None:
    pairs = _pairs(6, seed=201)
    want = ce.predict(pairs)
    np.testing.assert_array_equal(ce.predict(sentences=pairs), want)
    np.testing.assert_array_equal(ce.predict(pairs, show_progress_bar=False, batch_size=2), want)
    assert isinstance(ce.predict(sentences=pairs[0]), np.float32)
    with pytest.raises(TypeError, match="not both"):
        ce.predict(pairs, sentences=pairs)
    with pytest.raises(TypeError, match="needs the pairs"):
        ce.predict()


def test_score_batch_packs_across_queries_with_equal_scores(
    ce: CrossEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    queries = tiny_texts(6, 301, max_words=6)
    docs = [tiny_texts(7, 310 + i, max_words=40) for i in range(6)]
    runs = [0]
    real_run = ce.backend.run

    def counting_run(feeds):  # type: ignore[no-untyped-def]
        runs[0] += 1
        return real_run(feeds)

    monkeypatch.setattr(ce.backend, "run", counting_run)
    single = [ce.score(q, d) for q, d in zip(queries, docs, strict=True)]
    separate_runs, runs[0] = runs[0], 0
    batch = ce.score_batch(queries, docs)
    assert runs[0] < separate_runs  # 42 pairs fit one batch instead of one per query
    for s, b in zip(single, batch, strict=True):
        np.testing.assert_allclose(b.scores, s.scores, atol=1e-5, rtol=0)
        np.testing.assert_array_equal(b.truncated, s.truncated)
    assert batch[0].stats["queries"] == 6
    assert batch[0].stats["pairs"] == 42
    ref = ce.predict([(q, d) for q, ds in zip(queries, docs, strict=True) for d in ds])
    np.testing.assert_allclose(np.concatenate([b.scores for b in batch]), ref, atol=1e-6)
