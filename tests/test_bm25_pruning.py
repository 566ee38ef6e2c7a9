"""Pruned BM25 top-k (block-max MaxScore) equals exhaustive scoring bit for bit, ties included.

Every strategy of ``BM25Index.search_tokens`` must return the same ids and the same float32 score
bits for every variant, k in {1, 10, 100, 1000, n}, on random and adversarial corpora: single-term
queries, repeated query terms, very frequent terms, many equal scores, documents added after build,
and indexes saved and memory-mapped back (the block-max metadata is derived on load).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossrank import BM25Index

VARIANTS = ["robertson", "lucene", "atire", "bm25l", "bm25+"]


def zipf_corpus(seed: int, n_docs: int, vocab: int, max_len: int, s: float = 1.0) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    w = 1.0 / np.arange(1, vocab + 1) ** s
    p = w / w.sum()
    lens = rng.integers(0, max_len + 1, size=n_docs)
    return [[f"w{t}" for t in rng.choice(vocab, size=int(n), p=p)] for n in lens]


def assert_same(index: BM25Index, queries: list[list[str]], ks: list[int]) -> None:
    for k in ks:
        ref = index.search_tokens(queries, k=k, strategy="exhaustive", num_threads=1)
        for strategy in ("pruned", "auto"):
            got = index.search_tokens(queries, k=k, strategy=strategy, num_threads=2)
            np.testing.assert_array_equal(got.ids, ref.ids, err_msg=f"{strategy} k={k}")
            np.testing.assert_array_equal(
                got.scores.view(np.uint32), ref.scores.view(np.uint32), err_msg=f"{strategy} k={k}"
            )


def ks_for(n: int) -> list[int]:
    return [1, 10, 100, 1000, n]


@pytest.mark.parametrize("variant", VARIANTS)
def test_zipf_corpus_every_variant_and_k(variant: str) -> None:
    docs = zipf_corpus(0, 2500, 400, 50)
    index = BM25Index.from_tokens(docs, variant=variant, k1=1.2, b=0.75, delta=0.6)
    rng = np.random.default_rng(1)
    queries: list[list[str]] = [
        [f"w{t}" for t in rng.integers(0, 60, size=rng.integers(1, 7))] for _ in range(40)
    ]
    queries += [["w0"], ["w0", "w0", "w1"], ["w399"], [], ["nope"], ["w3", "w300", "w3", "w300"]]
    assert_same(index, queries, ks_for(len(index)))


@pytest.mark.parametrize("variant", VARIANTS)
def test_many_equal_scores_keep_document_order(variant: str) -> None:
    docs = [["a", "b", "c"] if i % 3 == 0 else ["a", "b", "d"] for i in range(3000)]
    index = BM25Index.from_tokens(docs, variant=variant, k1=0.9, b=0.4)
    queries = [["a"], ["a", "b"], ["c"], ["c", "d"], ["b", "c", "a"], ["d", "d"], ["e"]]
    assert_same(index, queries, ks_for(len(index)))


def test_documents_added_after_build_and_saved_index(tmp_path) -> None:
    docs = zipf_corpus(2, 1500, 200, 40)
    index = BM25Index.from_tokens(docs[:1000], variant="lucene")
    index.add_tokens(docs[1000:])
    queries = [["w0", "w5"], ["w1"], ["w2", "w2", "w150"], ["w7", "w0", "w190", "w3"]]
    assert_same(index, queries, ks_for(len(index)))
    index.save(tmp_path / "ix")
    loaded = BM25Index.load(tmp_path / "ix", mmap=True)
    assert_same(loaded, queries, [1, 10, 100])
    ref = index.search_tokens(queries, k=50, strategy="exhaustive")
    got = loaded.search_tokens(queries, k=50, strategy="pruned")
    np.testing.assert_array_equal(got.ids, ref.ids)
    np.testing.assert_array_equal(got.scores.view(np.uint32), ref.scores.view(np.uint32))


def test_strategy_is_checked() -> None:
    index = BM25Index.from_tokens([["a"], ["b"]])
    with pytest.raises(ValueError, match="strategy"):
        index.search_tokens([["a"]], strategy="fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="strategy"):
        BM25Index.build(["a cat"]).search("cat", strategy=None)  # type: ignore[arg-type]


# Small vocabularies make frequent terms and equal scores common; duplicates in queries test the
# query-token order of float32 additions.
corpora = st.lists(st.lists(st.integers(0, 12), max_size=25), min_size=1, max_size=300)
query_lists = st.lists(st.lists(st.integers(0, 14), max_size=7), min_size=1, max_size=6)


@settings(max_examples=120, deadline=None, derandomize=True)
@given(
    corpus=corpora,
    extra=st.lists(st.lists(st.integers(0, 14), max_size=25), max_size=60),
    queries=query_lists,
    variant=st.sampled_from(VARIANTS),
    k1=st.sampled_from([0.0, 0.9, 1.5, 3.0]),
    b=st.sampled_from([0.0, 0.4, 0.75, 1.0]),
    k=st.sampled_from([1, 2, 10, 100, 1000]),
)
def test_hypothesis_pruned_equals_exhaustive(corpus, extra, queries, variant, k1, b, k) -> None:
    index = BM25Index.from_tokens(
        [[str(t) for t in d] for d in corpus], variant=variant, k1=k1, b=b, delta=0.5
    )
    if extra:
        index.add_tokens([[str(t) for t in d] for d in extra])
    qs = [[str(t) for t in q] for q in queries]
    assert_same(index, qs, [k, len(index)])
