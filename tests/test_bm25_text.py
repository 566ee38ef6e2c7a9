"""BM25Index built from texts through crossrank.Analyzer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crossrank import Analyzer, BM25Index

TEXTS = [
    "The cats are running in the garden.",
    "A dog runs faster than the cat!",
    "東京タワーは高い",
    "Stemming: connected, connecting, connection.",
    "",
    "ÉCOLE élève Straße",
]


def test_text_build_equals_token_build() -> None:
    analyzer = Analyzer()
    a = BM25Index.build(TEXTS, analyzer=analyzer)
    b = BM25Index.from_tokens(analyzer.analyze_batch(TEXTS))
    queries = ["running cats", "connect", "東京", "école", "the"]
    ra = a.search(queries, k=4)
    rb = b.search_tokens(analyzer.analyze_batch(queries), k=4)
    np.testing.assert_array_equal(ra.ids, rb.ids)
    np.testing.assert_array_equal(ra.scores, rb.scores)
    for q in queries:
        np.testing.assert_array_equal(a.get_scores(q), b.get_scores_tokens(analyzer.analyze(q)))


def test_build_threads_give_identical_index() -> None:
    rng = np.random.default_rng(7)
    words = [f"word{i}" for i in range(500)]
    texts = [" ".join(rng.choice(words, size=rng.integers(0, 50))) for _ in range(1000)]
    one = BM25Index.build(texts, num_threads=1)
    many = BM25Index.build(texts, num_threads=4)
    for name in ("_term_ptr", "_docs", "_tfs", "_impacts"):
        np.testing.assert_array_equal(getattr(one, name), getattr(many, name))
    assert one._vocab.arena()[0].tobytes() == many._vocab.arena()[0].tobytes()


def test_add_texts_equals_rebuild() -> None:
    full = BM25Index.build(TEXTS, ids=[f"d{i}" for i in range(6)], variant="bm25+")
    inc = BM25Index.build(TEXTS[:2], ids=["d0", "d1"], variant="bm25+")
    inc.add(TEXTS[2:], ids=[f"d{i}" for i in range(2, 6)])
    q = ["cat dog", "connection école", "東京"]
    np.testing.assert_array_equal(inc.search(q, k=6).ids, full.search(q, k=6).ids)
    np.testing.assert_array_equal(inc.search(q, k=6).scores, full.search(q, k=6).scores)


def test_save_load_keeps_analyzer(tmp_path: Path) -> None:
    analyzer = Analyzer(stopwords=None, stemmer=None, cjk="unigram")
    index = BM25Index.build(TEXTS, analyzer=analyzer, variant="robertson")
    index.save(tmp_path / "ix")
    loaded = BM25Index.load(tmp_path / "ix")
    assert loaded.analyzer is not None
    assert loaded.analyzer.config == analyzer.config
    q = ["the running cats", "東"]
    np.testing.assert_array_equal(index.search(q, k=3).scores, loaded.search(q, k=3).scores)


def test_stopword_only_and_empty_queries() -> None:
    index = BM25Index.build(TEXTS)
    res = index.search(["", "the and of", "!!!"], k=3)
    np.testing.assert_array_equal(res.ids, [[0, 1, 2]] * 3)
    np.testing.assert_array_equal(res.scores, np.zeros((3, 3), dtype=np.float32))
    single = index.search("cat", k=2)
    assert single.ids.shape == (1, 2)


def test_ten_megabyte_document() -> None:
    big = ("lorem ipsum dolor sit amet " * 400_000)[:10_000_000] + " needle"
    index = BM25Index.build([big, "a needle in a haystack", "nothing here"])
    res = index.search(["needle"], k=3)
    assert set(res.ids[0, :2].tolist()) == {0, 1}
    assert res.scores[0, 2] == 0


def test_surrogates_are_separators_not_errors() -> None:
    index = BM25Index.build(["bad\udcffbyte here", "clean text"])
    res = index.search(["byte"], k=1)
    assert res.ids[0, 0] == 0
    assert res.scores[0, 0] > 0


def test_text_bad_inputs() -> None:
    with pytest.raises(ValueError, match="0 documents"):
        BM25Index.build([])
    with pytest.raises(TypeError, match=r"texts\[1\] must be str, got int"):
        BM25Index.build(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="wrap it in a list"):
        BM25Index.build("just one string")
    with pytest.raises(TypeError, match=r"crossrank\.Analyzer"):
        BM25Index.build(["x"], analyzer=str.split)  # type: ignore[arg-type]
    index = BM25Index.build(["x y", "y z"])
    with pytest.raises(TypeError, match=r"queries\[0\] must be str, got bytes"):
        index.search([b"x"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="get_scores_tokens"):
        index.get_scores(["x"])  # type: ignore[arg-type]
