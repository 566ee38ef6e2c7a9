"""BM25Index against the float64 reference (tests/reference/bm25_ref.py), top-k contract, add(),
threads, and bad input. Pre-tokenized input: independent of the analyzer."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossrank import BM25Index, Hits
from reference import bm25_ref

VARIANTS = ["robertson", "lucene", "atire", "bm25l", "bm25+"]
RTOL, ATOL = 2e-6, 2e-6

CORPUS = [
    ["the", "cat", "sat", "on", "the", "mat"],
    ["the", "dog", "barked"],
    ["cat", "and", "dog", "cat"],
    [],
    ["a", "bird", "sang", "on", "a", "tree", "near", "the", "cat"],
    ["mat"],
]
QUERIES = [["cat"], ["the", "cat"], ["dog", "dog", "mat"], ["unknown"], [], ["cat", "unknown", "bird"]]


def expected_top(scores: np.ndarray, k: int) -> np.ndarray:
    """Top-k positions of a float32 score vector: higher score, then lower position."""
    return np.lexsort((np.arange(len(scores)), -scores.astype(np.float64)))[: min(k, len(scores))]


@pytest.mark.parametrize("variant", VARIANTS)
def test_scores_equal_float64_reference(variant: str) -> None:
    params = {"k1": 1.2, "b": 0.75, "delta": 0.7}
    index = BM25Index.from_tokens(CORPUS, variant=variant, **params)
    for q in QUERIES:
        ref = bm25_ref.scores(CORPUS, q, variant=variant, **params)
        got = index.get_scores_tokens(q)
        assert got.dtype == np.float32
        assert got.shape == (len(CORPUS),)
        np.testing.assert_allclose(got, ref, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("variant", VARIANTS)
def test_search_is_exact_top_k_of_all_scores(variant: str) -> None:
    index = BM25Index.from_tokens(CORPUS, variant=variant)
    for k in (1, 2, 4, 6, 50):
        res = index.search_tokens(QUERIES, k=k)
        assert isinstance(res, Hits)
        kk = min(k, len(CORPUS))
        assert res.ids.shape == res.scores.shape == (len(QUERIES), kk)
        assert res.ids.dtype == np.int64
        assert res.scores.dtype == np.float32
        for q, query in enumerate(QUERIES):
            all_scores = index.get_scores_tokens(query)
            top = expected_top(all_scores, k)
            np.testing.assert_array_equal(res.ids[q], top)
            np.testing.assert_array_equal(res.scores[q], all_scores[top])


doc_strategy = st.lists(st.sampled_from("abcdef"), max_size=8)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    corpus=st.lists(doc_strategy, min_size=1, max_size=12),
    query=st.lists(st.sampled_from("abcdefz"), max_size=5),
    variant=st.sampled_from(VARIANTS),
    k1=st.floats(0.0, 3.0),
    b=st.floats(0.0, 1.0),
    delta=st.floats(0.0, 2.0),
    k=st.integers(1, 15),
)
def test_hypothesis_against_reference(corpus, query, variant, k1, b, delta, k) -> None:
    index = BM25Index.from_tokens(corpus, variant=variant, k1=k1, b=b, delta=delta)
    ref = np.array(bm25_ref.scores(corpus, query, variant=variant, k1=k1, b=b, delta=delta))
    got = index.get_scores_tokens(query)
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=ATOL)
    res = index.search_tokens([query], k=k)
    top = expected_top(got, k)
    np.testing.assert_array_equal(res.ids[0], top)
    # The returned scores are the best scores of the reference too (up to float32 rounding).
    np.testing.assert_allclose(res.scores[0], np.sort(ref)[::-1][: len(top)], rtol=RTOL, atol=ATOL)


def test_caller_ids_str_and_int() -> None:
    ids = [f"doc-{i}" for i in range(len(CORPUS))]
    index = BM25Index.from_tokens(CORPUS, ids=ids)
    res = index.search_tokens([["cat"]], k=3)
    assert res.ids.dtype == object
    assert all(type(x) is str for x in res.ids[0])
    plain = BM25Index.from_tokens(CORPUS).search_tokens([["cat"]], k=3)
    assert res.ids[0].tolist() == [ids[i] for i in plain.ids[0]]
    int_index = BM25Index.from_tokens(CORPUS, ids=[100 + i for i in range(len(CORPUS))])
    res_int = int_index.search_tokens([["cat"]], k=3)
    assert res_int.ids.dtype == np.int64
    assert res_int.ids[0].tolist() == [100 + i for i in plain.ids[0]]


def test_int_tokens_with_and_without_vocab() -> None:
    vocab = {"cat": 7, "dog": 3, "mat": 11}
    as_ids = [[7, 7, 11], [3], [3, 7]]
    as_str = [["cat", "cat", "mat"], ["dog"], ["dog", "cat"]]
    a = BM25Index.from_tokens(as_ids, vocab=vocab)
    b = BM25Index.from_tokens(as_str)
    np.testing.assert_array_equal(a.get_scores_tokens([7]), b.get_scores_tokens(["cat"]))
    np.testing.assert_array_equal(a.get_scores_tokens(["cat"]), b.get_scores_tokens(["cat"]))
    c = BM25Index.from_tokens(as_ids)  # ints stand for themselves
    np.testing.assert_array_equal(c.get_scores_tokens([7]), b.get_scores_tokens(["cat"]))
    with pytest.raises(ValueError, match="not an id in vocab"):
        BM25Index.from_tokens([[99]], vocab=vocab)


@pytest.mark.parametrize("variant", VARIANTS)
def test_add_equals_rebuild(variant: str) -> None:
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(40)]
    docs = [list(rng.choice(words, size=rng.integers(0, 30))) for _ in range(120)]
    ids = [f"d{i}" for i in range(len(docs))]
    full = BM25Index.from_tokens(docs, ids=ids, variant=variant)
    inc = BM25Index.from_tokens(docs[:50], ids=ids[:50], variant=variant)
    inc.add_tokens(docs[50:90], ids=ids[50:90])
    inc.add_tokens(docs[90:], ids=ids[90:])
    assert len(inc) == len(full) == 120
    assert inc.vocabulary_size == full.vocabulary_size
    queries = [list(rng.choice(words, size=rng.integers(1, 6))) for _ in range(30)] + [["w1", "nope"]]
    a = inc.search_tokens(queries, k=20)
    b = full.search_tokens(queries, k=20)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.scores, b.scores)  # bit-identical, not just close
    for arr in ("_term_ptr", "_docs", "_tfs", "_doc_lens", "_impacts", "_nonocc"):
        np.testing.assert_array_equal(getattr(inc, arr), getattr(full, arr))


def test_add_id_rules() -> None:
    index = BM25Index.from_tokens(CORPUS[:2], ids=["a", "b"])
    with pytest.raises(ValueError, match="pass ids="):
        index.add_tokens([["x"]])
    with pytest.raises(ValueError, match="already in the index"):
        index.add_tokens([["x"]], ids=["a"])
    with pytest.raises(TypeError, match="str"):
        index.add_tokens([["x"]], ids=[5])
    positional = BM25Index.from_tokens(CORPUS[:2])
    with pytest.raises(ValueError, match="without ids"):
        positional.add_tokens([["x"]], ids=["c"])
    positional.add_tokens([["x"]])
    assert positional.search_tokens([["x"]], k=1).ids.tolist() == [[2]]


def test_threads_bit_identical() -> None:
    rng = np.random.default_rng(1)
    words = [f"w{i}" for i in range(300)]
    docs = [list(rng.choice(words, size=rng.integers(1, 80))) for _ in range(2000)]
    queries = [list(rng.choice(words, size=rng.integers(1, 8))) for _ in range(200)]
    index = BM25Index.from_tokens(docs, variant="bm25l")
    one = index.search_tokens(queries, k=37, num_threads=1)
    for n in (2, 3, 8):
        many = index.search_tokens(queries, k=37, num_threads=n)
        np.testing.assert_array_equal(one.ids, many.ids)
        assert one.scores.tobytes() == many.scores.tobytes()


def test_empty_and_oov_queries_are_defined() -> None:
    for variant in ("lucene", "bm25+"):
        index = BM25Index.from_tokens(CORPUS, variant=variant)
        res = index.search_tokens([[], ["zzz", "yyy"]], k=3)
        np.testing.assert_array_equal(res.ids, [[0, 1, 2], [0, 1, 2]])
        np.testing.assert_array_equal(res.scores, np.zeros((2, 3), dtype=np.float32))
        no_queries = index.search_tokens([], k=3)
        assert no_queries.ids.shape == (0, 3)


def test_k_larger_than_corpus_and_bad_k() -> None:
    index = BM25Index.from_tokens(CORPUS)
    assert index.search_tokens([["cat"]], k=1000).ids.shape == (1, len(CORPUS))
    for bad in (0, -1):
        with pytest.raises(ValueError, match="k must be >= 1"):
            index.search_tokens([["cat"]], k=bad)
    with pytest.raises(TypeError, match="k must be an int"):
        index.search_tokens([["cat"]], k=2.5)  # type: ignore[arg-type]


def test_corpus_of_empty_documents() -> None:
    index = BM25Index.from_tokens([[], []])
    assert index.vocabulary_size == 0
    res = index.search_tokens([["a"]], k=5)
    assert res.ids.tolist() == [[0, 1]]
    assert res.scores.tolist() == [[0.0, 0.0]]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k1": math.nan}, "k1 must be a finite number >= 0"),
        ({"k1": -0.1}, "k1 must be a finite number >= 0"),
        ({"k1": math.inf}, "k1 must be a finite number >= 0"),
        ({"b": 1.5}, r"b must be in \[0, 1\]"),
        ({"b": -0.1}, r"b must be in \[0, 1\]"),
        ({"b": math.nan}, r"b must be in \[0, 1\]"),
        ({"delta": -1.0}, "delta must be a finite number >= 0"),
        ({"delta": math.nan}, "delta must be a finite number >= 0"),
        ({"variant": "okapi"}, "unknown BM25 variant 'okapi'"),
    ],
)
def test_bad_parameters(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        BM25Index.from_tokens(CORPUS, **kwargs)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="0 documents"):
        BM25Index.from_tokens([])
    with pytest.raises(TypeError, match=r"tokens\[1\]\[0\] must be str or int"):
        BM25Index.from_tokens([["a"], [None]])
    with pytest.raises(TypeError, match=r"tokens\[0\] must be a list of tokens"):
        BM25Index.from_tokens(["not tokenized"])
    with pytest.raises(ValueError, match="one entry per document"):
        BM25Index.from_tokens(CORPUS, ids=["a"])
    with pytest.raises(ValueError, match="unique"):
        BM25Index.from_tokens([["a"], ["b"]], ids=["x", "x"])
    with pytest.raises(TypeError, match=r"ids\[1\]"):
        BM25Index.from_tokens([["a"], ["b"]], ids=["x", 1])
    index = BM25Index.from_tokens(CORPUS)
    with pytest.raises(ValueError, match="num_threads"):
        index.search_tokens([["cat"]], num_threads=0)
    with pytest.raises(ValueError, match="search_tokens"):
        index.search(["cat"])


def test_repr_and_len() -> None:
    index = BM25Index.from_tokens(
        CORPUS, ids=[str(i) for i in range(len(CORPUS))], variant="bm25+", delta=1.0
    )
    assert len(index) == len(CORPUS)
    r = repr(index)
    assert "docs=6" in r
    assert "variant='bm25+'" in r
    assert "delta=1.0" in r
    assert index.params == {"variant": "bm25+", "k1": 1.5, "b": 0.75, "delta": 1.0}


def test_long_document() -> None:
    big = ["word"] * 2_000_000 + ["rare"]
    index = BM25Index.from_tokens([big, ["word", "other"]])
    res = index.search_tokens([["rare"], ["word"]], k=2)
    assert res.ids[0, 0] == 0
    for q in (["rare"], ["word"], ["other"]):
        ref = bm25_ref.scores([big, ["word", "other"]], q)
        np.testing.assert_allclose(index.get_scores_tokens(q), ref, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("variant", ["lucene", "bm25+"])
def test_top_k_ties_and_both_scoring_modes(variant: str) -> None:
    """Duplicate documents (exact ties) and rare-term queries (sparse mode: few postings per
    document) as well as common-term queries (dense mode) all give the exact top-k."""
    rng = np.random.default_rng(11)
    common = [f"c{i}" for i in range(5)]
    rare = [f"r{i}" for i in range(2000)]
    base = [list(rng.choice(common, size=3)) + list(rng.choice(rare, size=2)) for _ in range(300)]
    docs = base * 4  # every document appears 4 times: scores tie, lower position must win
    rng.shuffle(docs)
    index = BM25Index.from_tokens(docs, variant=variant)
    queries = [[rare[i]] for i in range(0, 60, 3)] + [[rare[1], rare[2], "c1"], ["c0"], ["c0", "c3", rare[5]]]
    for k in (1, 3, 10, 200):
        res = index.search_tokens(queries, k=k)
        for q, query in enumerate(queries):
            all_scores = index.get_scores_tokens(query)
            top = expected_top(all_scores, k)
            np.testing.assert_array_equal(res.ids[q], top)
            np.testing.assert_array_equal(res.scores[q], all_scores[top])
