"""Long documents: token windows in the dense, ColBERT and cross-encoder rerankers (issue 7 item 1).

References: window arithmetic against the C++ packer's windows and a plain loop; aggregation against a
NumPy loop over per-window scores; char offsets against an independent ``tokenizers`` encoding.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossrank.text.packing import PairTemplate, plan_pairs
from crossrank.text.windows import aggregate_windows, char_span, check_window_options, window_bounds

QUERY = "does aspirin prevent heart attacks"
SENTENCE = "Aspirin reduces the risk of heart attacks in adults."
FILLER = " ".join(
    [
        "The weather report described clouds over the valley and light rain in the afternoon.",
        "Farmers in the region planted wheat early because the soil was warm.",
        "A new bridge over the river opened to traffic last spring.",
    ]
    * 8
)


def _long_doc() -> str:
    return FILLER + " " + SENTENCE + " " + FILLER


# ---------------------------------------------------------------------------------------------- arithmetic
@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 400), size=st.integers(1, 64), data=st.data())
def test_window_bounds_cover_every_token_and_end_at_doc_end(n: int, size: int, data: st.DataObject) -> None:
    stride = data.draw(st.integers(1, size))
    starts, ends = window_bounds(n, size, stride)
    covered = np.zeros(n, dtype=bool)
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        assert 0 <= s < e <= n or (n == 0 and s == e == 0)
        assert e - s == min(n, size)
        covered[s:e] = True
    assert covered.all()
    assert starts[0] == 0
    assert ends[-1] == n
    assert (np.diff(starts) <= stride).all()
    assert (np.diff(starts) > 0).all()
    expected = 1 if n <= size else 1 + -(-(n - size) // stride)
    assert len(starts) == expected


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 300), size=st.integers(1, 40), data=st.data())
def test_window_bounds_match_the_cpp_packer(n: int, size: int, data: st.DataObject) -> None:
    stride = data.draw(st.integers(1, size))
    template = PairTemplate((), (), (), (), (), ())
    # One query token (the packer needs one) beside windows of ``size`` document tokens.
    plan = plan_pairs([[7]], [list(range(n))], template, max_length=size + 1, window_stride=stride)
    starts, ends = window_bounds(n, size, stride)
    np.testing.assert_array_equal(plan.row_start, starts)
    np.testing.assert_array_equal(plan.row_end, ends)


def test_window_bounds_reject_bad_values() -> None:
    with pytest.raises(ValueError, match="stride"):
        window_bounds(10, 4, 5)
    with pytest.raises(ValueError, match="stride"):
        window_bounds(10, 4, 0)
    with pytest.raises(ValueError, match="n_tokens"):
        window_bounds(-1, 4, 2)


def test_char_span_uses_first_and_last_token() -> None:
    offsets = np.array([[0, 3], [4, 7], [7, 9], [10, 12]])
    assert char_span(offsets, 1, 3) == (4, 9)
    assert char_span(offsets, 2, 2) == (0, 0)


# ---------------------------------------------------------------------------------------------- aggregation
def _reference(scores: np.ndarray, counts: list[int], how: str, k: int) -> tuple[list[float], list[int]]:
    agg, best, pos = [], [], 0
    for c in counts:
        w = [float(x) for x in scores[pos : pos + c]]
        pos += c
        b = max(range(c), key=lambda j: (w[j], -j))  # highest, first on ties
        best.append(b)
        if how == "max":
            agg.append(w[b])
        elif how == "first":
            agg.append(w[0])
        elif how == "mean":
            agg.append(sum(w) / c)
        else:
            top = sorted(w, reverse=True)[:k]
            agg.append(sum(top) / len(top))
    return agg, best


@settings(max_examples=200, deadline=None)
@given(
    counts=st.lists(st.integers(1, 9), min_size=0, max_size=12),
    how=st.sampled_from(["max", "mean", "first", "topk_mean"]),
    k=st.integers(1, 5),
    seed=st.integers(0, 2**16),
)
def test_aggregation_matches_numpy_reference(counts: list[int], how: str, k: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    # Rounded scores make ties common, so the tie rule is exercised too.
    scores = np.round(rng.normal(size=sum(counts)), 1)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    agg, best = aggregate_windows(scores, offsets, how, k)  # type: ignore[arg-type]
    ref_agg, ref_best = _reference(scores, counts, how, k)
    np.testing.assert_allclose(agg, ref_agg, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(best, ref_best)


def test_aggregation_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="how"):
        aggregate_windows(np.zeros(2), np.array([0, 2]), "median")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="k must be"):
        aggregate_windows(np.zeros(2), np.array([0, 2]), "topk_mean", 0)
    with pytest.raises(ValueError, match="doc_offsets"):
        aggregate_windows(np.zeros(3), np.array([0, 2]))
    with pytest.raises(ValueError, match="doc_offsets"):
        aggregate_windows(np.zeros(2), np.array([0, 0, 2]))  # an empty document


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"window_size": 0}, "window_size"),
        ({"window_size": 2.5}, "window_size"),
        ({"window_stride": -1}, "window_stride"),
        ({"window_size": 999}, "exceeds"),
        ({"window_size": 8, "window_stride": 9}, "skip"),
        ({"aggregate": "median"}, "aggregate"),
        ({"aggregate_k": 0}, "aggregate_k"),
    ],
)
def test_window_options_errors(kwargs: dict, match: str) -> None:
    opts = {"window_size": None, "window_stride": None, "aggregate": "max", "aggregate_k": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        check_window_options(
            opts["window_size"], opts["window_stride"], 254, opts["aggregate"], opts["aggregate_k"]
        )


# ---------------------------------------------------------------------------------------------- dense
@pytest.fixture(scope="module")
def minilm_embedder(minilm_dir):
    from crossrank.models.embedder import Embedder

    return Embedder(minilm_dir, precision="fp32", num_threads=2)


def test_dense_windows_find_a_sentence_past_the_first_window(minilm_embedder) -> None:
    from crossrank.rerank.dense import DenseReranker

    doc = _long_doc()
    windowed = DenseReranker(minilm_embedder, window_size=32, window_stride=16)
    first = DenseReranker(minilm_embedder, window_size=32, window_stride=16, aggregate="first")
    plain = DenseReranker(minilm_embedder)  # truncation at the model's 256 tokens
    n_tokens = len(windowed._win_tokenizer.encode(FILLER, add_special_tokens=False).ids)
    assert n_tokens > 256  # the sentence lies beyond what plain truncation reads
    ranked = windowed.rank(QUERY, [FILLER, doc])
    assert ranked[0]["corpus_id"] == 1
    w = ranked[0]["window"]
    assert SENTENCE in doc[w["start_char"] : w["end_char"]]
    assert w["start_token"] > 0
    assert w["end_token"] - w["start_token"] == 32
    s_win = windowed.score(QUERY, [doc])[0]
    assert s_win > first.score(QUERY, [doc])[0] + 0.2
    assert s_win > plain.score(QUERY, [doc])[0] + 0.2
    # The window score is the similarity of the window's own embedding.
    ws = windowed.score_windows(QUERY, [doc])
    np.testing.assert_allclose(ws.window_scores.max(), ws.scores[0], rtol=1e-6)


def test_dense_windows_aggregate_from_window_scores(minilm_embedder) -> None:
    from crossrank.rerank.dense import DenseReranker

    docs = [_long_doc(), FILLER, "short text about aspirin", ""]
    base = DenseReranker(minilm_embedder, window_size=40, window_stride=20)
    ws = base.score_windows(QUERY, docs)
    counts = np.diff(ws.window_offsets).tolist()
    for how in ("max", "mean", "first", "topk_mean"):
        r = DenseReranker(minilm_embedder, window_size=40, window_stride=20, aggregate=how, aggregate_k=2)  # type: ignore[arg-type]
        ref, _ = _reference(ws.window_scores, counts, how, 2)
        np.testing.assert_allclose(r.score(QUERY, docs), ref, rtol=1e-5, atol=1e-6)
    # Each window's score equals embedding that window's token ids on their own (cache off).
    fresh = DenseReranker(minilm_embedder, window_size=40, window_stride=20, cache_size=0)
    tok = fresh._win_tokenizer.encode(docs[0], add_special_tokens=False)
    starts, ends = window_bounds(len(tok.ids), 40, 20)
    vecs = minilm_embedder.encode_token_ids(
        [np.asarray(tok.ids[s:e]) for s, e in zip(starts, ends, strict=True)]
    )
    q = minilm_embedder.encode_queries([QUERY])[0]
    np.testing.assert_allclose(vecs @ q, ws.window_scores[: len(starts)], rtol=1e-5, atol=1e-6)


def test_dense_window_options_errors(minilm_embedder) -> None:
    from crossrank.rerank.dense import DenseReranker

    with pytest.raises(ValueError, match="exceeds"):
        DenseReranker(minilm_embedder, window_size=255)  # 256 minus [CLS] and [SEP] = 254 at most
    with pytest.raises(ValueError, match="skip"):
        DenseReranker(minilm_embedder, window_size=16, window_stride=17)
    with pytest.raises(ValueError, match="aggregate"):
        DenseReranker(minilm_embedder, window_stride=16, aggregate="median")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at most"):
        minilm_embedder.encode_token_ids([np.zeros(300, np.int32)])


# ---------------------------------------------------------------------------------------------- ColBERT
def test_colbert_windows_find_a_sentence_past_the_first_window(minilm_dir) -> None:
    from crossrank.rerank.colbert import ColBERTReranker

    doc = _long_doc()
    kw = {"dtype": "fp32", "num_threads": 2, "local_files_only": True}
    windowed = ColBERTReranker(minilm_dir, window_size=32, window_stride=16, **kw)
    first = ColBERTReranker(minilm_dir, window_size=32, window_stride=16, aggregate="first", **kw)
    ranked = windowed.rank(QUERY, [FILLER, doc])
    assert ranked[0]["corpus_id"] == 1
    w = ranked[0]["window"]
    assert SENTENCE in doc[w["start_char"] : w["end_char"]]
    assert ranked[0]["score"] > first.rank(QUERY, [doc])[0]["score"] + 1.0
    # Aggregation modes from the per-window MaxSim scores.
    scores, offsets = windowed.score_windows(QUERY, [doc, FILLER, ""])
    counts = np.diff(offsets).tolist()
    for how in ("mean", "topk_mean"):
        r = ColBERTReranker(minilm_dir, window_size=32, window_stride=16, aggregate=how, aggregate_k=2, **kw)  # type: ignore[arg-type]
        got = {row["corpus_id"]: row["score"] for row in r.rank(QUERY, [doc, FILLER, ""])}
        ref, _ = _reference(scores, counts, how, 2)
        np.testing.assert_allclose([got[i] for i in range(3)], ref, rtol=1e-5)
    with pytest.raises(ValueError, match="exceeds"):
        ColBERTReranker(minilm_dir, doc_maxlen=64, window_size=62, **kw)


# ---------------------------------------------------------------------------------------------- cross-encoder
def test_cross_encoder_rank_returns_window_char_offsets(tiny_bert_onnx) -> None:
    import tokenizers

    from crossrank import CrossEncoder
    from model_fixtures import tiny_texts

    ce = CrossEncoder(tiny_bert_onnx, precision="fp32", activation="none", max_length=48, window_stride=10)
    docs = tiny_texts(6, seed=3, min_words=30, max_words=90)
    query = tiny_texts(1, seed=4, min_words=3, max_words=3)[0]
    ranked = ce.rank(query, docs)
    tok = tokenizers.Tokenizer.from_file(str(tiny_bert_onnx / "tokenizer.json"))
    n_query = len(tok.encode(query, add_special_tokens=False).ids)
    size = 48 - 3 - n_query
    for row in ranked:
        doc = docs[row["corpus_id"]]
        enc = tok.encode(doc, add_special_tokens=False)
        w = row["window"]
        starts, ends = window_bounds(len(enc.ids), size, min(10, size))
        assert (w["start_token"], w["end_token"]) == (starts[w["index"]], ends[w["index"]])
        assert w["start_char"] == enc.offsets[w["start_token"]][0]
        assert w["end_char"] == enc.offsets[w["end_token"] - 1][1]
    # Without windows there is no window entry.
    plain = CrossEncoder(tiny_bert_onnx, precision="fp32", activation="none", max_length=48)
    assert "window" not in plain.rank(query, docs)[0]


# ---------------------------------------------------------------------------------------------- 1 MB document
def _peak_rss_delta(fn) -> tuple[float, object]:
    psutil = pytest.importorskip("psutil")
    proc = psutil.Process()
    base = proc.memory_info().rss
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.005)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        out = fn()
    finally:
        stop.set()
        t.join()
    peak[0] = max(peak[0], proc.memory_info().rss)
    return (peak[0] - base) / 2**20, out


@pytest.mark.parametrize("kind", ["dense", "colbert"])
def test_one_megabyte_document_memory_is_bounded(kind: str, tiny_bert_embedding_onnx) -> None:
    from crossrank.rerank.colbert import ColBERTReranker
    from crossrank.rerank.dense import DenseReranker
    from model_fixtures import tiny_texts

    words = " ".join(tiny_texts(40, seed=11, min_words=200, max_words=200))
    doc = (words + " ") * (2**20 // (len(words) + 1) + 1)
    doc = doc[: 2**20]
    needle = "the end"
    if kind == "dense":
        r = DenseReranker(tiny_bert_embedding_onnx, precision="fp32", window_stride=126, cache_size=0)
        run = lambda: r.rank(needle, [doc, "short"])  # noqa: E731
    else:
        r = ColBERTReranker(
            tiny_bert_embedding_onnx,
            dtype="fp32",
            window_stride=60,
            doc_maxlen=64,
            query_marker="",
            doc_marker="",
        )
        run = lambda: r.rank(needle, [doc, "short"])  # noqa: E731
    run_small = lambda: r.rank(needle, [doc[:2000]])  # noqa: E731
    run_small()  # warm up the runtime's arenas
    delta_mb, ranked = _peak_rss_delta(run)
    assert len(ranked) == 2
    row = next(x for x in ranked if x["corpus_id"] == 0)
    assert 0 <= row["window"]["start_char"] < row["window"]["end_char"] <= len(doc)
    # Embedding 1 MB at once would need gigabytes of activations; windows in token-budgeted batches
    # keep the peak to the tokenizer's encoding of the document plus one batch.
    assert delta_mb < 400, f"peak RSS grew by {delta_mb:.0f} MB for a 1 MB document"
