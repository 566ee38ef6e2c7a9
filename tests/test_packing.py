"""crossrank.text.packing against the pure-Python reference and against Hugging Face tokenizers itself."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossrank.errors import StateError
from crossrank.text.packing import PairTemplate, plan_pairs
from reference.pack_ref import RefError, materialize_ref, plan_ref

tokenizers = pytest.importorskip("tokenizers")

BERT = PairTemplate.bert(cls_id=101, sep_id=102)
ROBERTA = PairTemplate.roberta(bos_id=0, eos_id=2)
ODD = PairTemplate((7, 8), (), (9, 9, 9), (0, 1), (), (2, 3, 4), 5, 6, pad_id=3, pad_type_id=1)


def _ref_kwargs(t: PairTemplate) -> dict:
    return dict(
        prefix=list(t.prefix),
        prefix_types=list(t.prefix_type_ids),
        middle=list(t.middle),
        middle_types=list(t.middle_type_ids),
        suffix=list(t.suffix),
        suffix_types=list(t.suffix_type_ids),
        query_type=t.query_type_id,
        doc_type=t.doc_type_id,
    )


def _check_against_reference(queries, docs, template, **opts):
    try:
        ref = plan_ref(queries, docs, **_ref_kwargs(template), **opts)
    except RefError:
        with pytest.raises(ValueError, match="cannot fit"):
            plan_pairs(queries, docs, template, **opts)
        return None
    plan = plan_pairs(queries, docs, template, **opts)
    assert plan.truncated.tolist() == ref.truncated
    assert plan.n_tokens.tolist() == ref.n_tokens
    assert plan.n_rows == len(ref.rows)
    assert plan.row_pair.tolist() == [r.pair for r in ref.rows]
    assert plan.row_window.tolist() == [r.window for r in ref.rows]
    assert plan.row_start.tolist() == [r.start for r in ref.rows]
    assert plan.row_end.tolist() == [r.end for r in ref.rows]
    assert plan.n_batches == len(ref.batches)
    for b, batch in enumerate(plan):
        rows, length = ref.batches[b]
        ids, mask, types = materialize_ref(ref, b, template.pad_id, template.pad_type_id)
        assert batch.input_ids.dtype == np.int64
        assert batch.input_ids.shape == (len(rows), length)
        assert batch.input_ids.tolist() == ids
        assert batch.attention_mask.tolist() == mask
        assert batch.token_type_ids.tolist() == types
        assert batch.row_index.tolist() == rows
        assert batch.pair_index.tolist() == [ref.rows[r].pair for r in rows]
        assert batch.n_tokens.tolist() == [len(ref.rows[r].tokens) for r in rows]
    return plan


# ----------------------------------------------------------------------------------------------
# Reference parity (Hypothesis)
# ----------------------------------------------------------------------------------------------

ids_list = st.lists(st.integers(0, 30_000), max_size=40)


@st.composite
def packing_case(draw):
    n = draw(st.integers(0, 12))
    docs = draw(st.lists(ids_list, min_size=n, max_size=n))
    one_query = draw(st.booleans())
    queries = (
        draw(st.lists(ids_list, min_size=1, max_size=1))
        if one_query or n == 0
        else draw(st.lists(ids_list, min_size=n, max_size=n))
    )
    if n and draw(st.booleans()):  # equal query/document lengths: the tie rule of longest_first
        docs = [[7] * len(queries[0 if len(queries) == 1 else i]) for i in range(n)]
    template = draw(st.sampled_from([BERT, ROBERTA, ODD]))
    max_length = draw(st.integers(template.n_special + 2, 70))
    truncation = draw(st.sampled_from(["longest_first", "only_second", "only_first"]))
    windows = truncation != "only_first" and draw(st.booleans())
    opts = dict(
        max_length=max_length,
        truncation=truncation,
        max_query_length=draw(st.none() | st.integers(1, 30)),
        max_batch_tokens=draw(st.integers(max_length, 6 * max_length)),
        max_batch_size=draw(st.integers(1, 8)),
        buckets=draw(
            st.none()
            | st.integers(1, 24)
            | st.lists(st.integers(1, 80), min_size=1, max_size=5, unique=True).map(sorted)
        ),
        window_stride=draw(st.integers(1, 40)) if windows else None,
        max_windows=draw(st.none() | st.integers(1, 5)) if windows else None,
    )
    return queries, docs, template, opts


@settings(max_examples=300, deadline=None)
@given(packing_case())
def test_matches_reference(case):
    queries, docs, template, opts = case
    plan = _check_against_reference(queries, docs, template, **opts)
    if plan is None:
        return
    # Invariants: budget, each pair once per window, order restore.
    for batch in plan:
        rows, length = batch.input_ids.shape
        assert rows <= opts["max_batch_size"]
        assert rows * length <= opts["max_batch_tokens"]
        assert length <= opts["max_length"]
        assert (batch.attention_mask.sum(axis=1) == batch.n_tokens).all()
    assert plan.peak_batch_tokens <= opts["max_batch_tokens"]
    assert sorted(plan.order.tolist()) == list(range(plan.n_rows))
    counts = np.bincount(plan.row_pair, minlength=len(docs))
    assert (counts == plan.n_windows).all()
    assert (counts >= 1).all()
    restored = plan.unsort([b.row_index.astype(np.float64) for b in plan])
    assert restored.tolist() == list(range(plan.n_rows))


def test_flat_input_equals_list_input():
    rng = np.random.default_rng(0)
    docs = [rng.integers(0, 1000, rng.integers(0, 50)).tolist() for _ in range(30)]
    flat = np.array([t for d in docs for t in d], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum([len(d) for d in docs])])
    a = plan_pairs([[5, 6, 7]], docs, BERT, max_length=32, max_batch_tokens=100)
    b = plan_pairs(
        (np.array([5, 6, 7]), np.array([0, 3])), (flat, offsets), BERT, max_length=32, max_batch_tokens=100
    )
    c = plan_pairs(
        [np.array([5, 6, 7], np.int32)],
        [np.array(d, np.int32) for d in docs],
        BERT,
        max_length=32,
        max_batch_tokens=100,
    )
    for x, y, z in zip(a, b, c, strict=True):
        assert (x.input_ids == y.input_ids).all()
        assert (x.input_ids == z.input_ids).all()


def test_sorted_longest_first_stable_and_bucketed():
    docs = [[1] * n for n in (3, 10, 3, 10, 1)]
    plan = plan_pairs([[9]], docs, BERT, max_length=64, buckets=8, max_batch_size=2)
    assert plan.order.tolist() == [1, 3, 0, 2, 4]
    assert plan.batch_lengths.tolist() == [16, 8, 8]
    plan = plan_pairs([[9]], docs, BERT, max_length=64, buckets=[6, 12, 100], max_batch_size=8)
    assert plan.batch_lengths.tolist() == [64]  # 100 capped at max_length
    plan = plan_pairs([[9]], docs, BERT, max_length=64, buckets=None, max_batch_size=8)
    assert plan.batch_lengths.tolist() == [14]


def test_windows_find_the_relevant_token_beyond_the_first_window():
    needle = 777
    doc = [1] * 300 + [needle] + [1] * 300
    plan = plan_pairs([[5, 6]], [[1] * 20, doc], BERT, max_length=64, window_stride=32)
    assert plan.n_windows.tolist()[0] == 1
    assert plan.n_windows[1] > 1
    assert not plan.truncated.any()
    covered = np.zeros(len(doc), bool)
    for r in range(plan.row_offsets[1], plan.row_offsets[2]):
        covered[plan.row_start[r] : plan.row_end[r]] = True
        assert plan.row_end[r] - plan.row_start[r] == 64 - 3 - 2
    assert covered.all()
    batch_scores = [(b.input_ids == needle).any(axis=1).astype(np.float32) for b in plan]
    agg = plan.aggregate(plan.unsort(batch_scores))
    assert agg.scores.tolist() == [0.0, 1.0]
    assert agg.best_start[1] <= 300 < agg.best_end[1]
    assert agg.best_window[1] > 0
    capped = plan_pairs([[5, 6]], [doc], BERT, max_length=64, window_stride=32, max_windows=3)
    assert capped.n_windows.tolist() == [3]
    assert capped.truncated.tolist() == [True]


def test_aggregations():
    plan = plan_pairs([[5]], [[1] * 100, [2] * 3], BERT, max_length=23, window_stride=10)
    n0 = int(plan.n_windows[0])
    scores = np.concatenate([np.arange(n0, dtype=float), [7.0]])
    assert plan.aggregate(scores, how="max").scores.tolist() == [n0 - 1, 7.0]
    assert plan.aggregate(scores, how="first").scores.tolist() == [0.0, 7.0]
    assert plan.aggregate(scores, how="mean").scores.tolist() == [np.mean(np.arange(n0)), 7.0]
    assert plan.aggregate(scores, how="topk_mean", k=2).scores.tolist() == [n0 - 1.5, 7.0]
    with pytest.raises(ValueError, match="how must be"):
        plan.aggregate(scores, how="median")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="k must be"):
        plan.aggregate(scores, how="topk_mean", k=0)
    with pytest.raises(ValueError, match="shape"):
        plan.aggregate(scores[:-1])


def test_empty_plan():
    plan = plan_pairs([], [], BERT, max_length=16)
    assert plan.n_batches == 0
    assert list(plan) == []
    assert plan.peak_batch_tokens == 0
    assert plan.unsort([]).shape == (0,)
    assert plan.aggregate(np.zeros(0)).scores.shape == (0,)
    plan = plan_pairs([[1, 2]], [], BERT, max_length=16)
    assert plan.n_batches == 0


def test_memory_bounded_for_10000_long_candidates():
    docs = (np.ones(10_000 * 600, np.int32), np.arange(0, 10_001 * 600, 600, dtype=np.int64))
    plan = plan_pairs([[5] * 8], docs, BERT, max_length=512, max_batch_tokens=8192)
    assert plan.truncated.all()
    assert plan.peak_batch_tokens <= 8192
    assert plan.n_batches == 10_000 // 16
    batch = plan.batch(plan.n_batches - 1)
    assert batch.input_ids.shape == (16, 512)


def test_one_megabyte_document_in_windows_stays_bounded():
    doc = np.arange(250_000, dtype=np.int32) % 30_000  # ~1 MB of text in WordPiece tokens
    plan = plan_pairs([[5] * 10], (doc, np.array([0, doc.size])), BERT, max_length=256, window_stride=128)
    width = 256 - 3 - 10
    assert plan.n_windows[0] == 1 + -(-(doc.size - width) // 128)
    assert not plan.truncated[0]
    assert plan.row_end[-1] == doc.size
    assert plan.peak_batch_tokens <= 8192
    assert all(
        b.input_ids.shape[0] * b.input_ids.shape[1] <= 8192
        for b in (plan.batch(0), plan.batch(plan.n_batches - 1))
    )
    capped = plan_pairs([[5] * 10], [doc], BERT, max_length=256, window_stride=128, max_windows=8)
    assert capped.n_rows == 8
    assert capped.truncated.tolist() == [True]


# ----------------------------------------------------------------------------------------------
# Parity with Hugging Face tokenizers on real text
# ----------------------------------------------------------------------------------------------


def _scifact_pairs(datasets_dir: Path, n: int = 40) -> list[tuple[str, str]]:
    root = datasets_dir / "scifact"
    if not root.is_dir():
        pytest.skip("scifact not found")
    with open(root / "queries.jsonl", encoding="utf-8") as f:
        queries = [json.loads(line)["text"] for _, line in zip(range(n), f, strict=False)]
    with open(root / "corpus.jsonl", encoding="utf-8") as f:
        docs = []
        for _, line in zip(range(n), f, strict=False):
            d = json.loads(line)
            docs.append((d.get("title", "") + " " + d["text"]).strip())
    pairs = list(zip(queries, docs, strict=True))
    # Long queries too, so longest_first has to cut the query as well as the document.
    pairs += [(d[:600], q + " " + d[:300]) for q, d in zip(queries[:10], docs[:10], strict=True)]
    pairs += [("", docs[0]), (queries[0], "")]
    return pairs


def _roberta_like(base: tokenizers.Tokenizer) -> tokenizers.Tokenizer:
    tok = tokenizers.Tokenizer.from_str(base.to_str())
    tok.post_processor = tokenizers.processors.Sequence(
        [
            tokenizers.processors.ByteLevel(trim_offsets=False),
            tokenizers.processors.RobertaProcessing(("[SEP]", 102), ("[CLS]", 101)),
        ]
    )
    tok.no_padding()
    return tok


def _template_like(base: tokenizers.Tokenizer) -> tokenizers.Tokenizer:
    tok = tokenizers.Tokenizer.from_str(base.to_str())
    tok.post_processor = tokenizers.processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS]:0 [MASK]:1 $A:0 [SEP]:0 [SEP]:1 $B:1 [SEP]:1 [CLS]:2",
        special_tokens=[("[CLS]", 101), ("[SEP]", 102), ("[MASK]", 103)],
    )
    tok.enable_padding(pad_id=7, pad_type_id=2)
    return tok


@pytest.mark.parametrize("variant", ["bert", "roberta", "template"])
@pytest.mark.parametrize("strategy", ["longest_first", "only_second"])
def test_truncation_identical_to_hf_tokenizers(minilm_dir, datasets_dir, variant, strategy):
    base = tokenizers.Tokenizer.from_file(str(minilm_dir / "tokenizer.json"))
    tok = {"bert": base, "roberta": _roberta_like(base), "template": _template_like(base)}[variant]
    template = PairTemplate.from_tokenizer(tok)
    if variant == "template":
        assert template.pad_id == 7
        assert template.pad_type_id == 2
    tok.no_padding()
    tok.no_truncation()  # tokenizer.json ships truncation at 128: raw ids must not be cut
    pairs = _scifact_pairs(datasets_dir)
    q_ids = [e.ids for e in tok.encode_batch([q for q, _ in pairs], add_special_tokens=False)]
    d_ids = [e.ids for e in tok.encode_batch([d for _, d in pairs], add_special_tokens=False)]
    checked = 0
    for max_length in (17, 32, 63, 128, 256, 511):  # tiny max_length: the grid test below
        tok.enable_truncation(max_length, strategy=strategy)
        # Tiny max_length makes tokenizers build hundreds of overflow encodings per pair: fewer pairs there.
        for i, (q, d) in enumerate(pairs):
            if max_length < 64 and (8 <= i < len(pairs) - 12 or len(pairs) - 10 <= i < len(pairs) - 2):
                continue
            try:
                hf = tok.encode(q, d)
            except Exception as exc:
                if "Truncation error" not in str(exc):
                    raise
                with pytest.raises(ValueError, match="cannot fit"):
                    plan_pairs([q_ids[i]], [d_ids[i]], template, max_length=max_length, truncation=strategy)
                continue
            plan = plan_pairs([q_ids[i]], [d_ids[i]], template, max_length=max_length, truncation=strategy)
            (batch,) = list(plan)
            n = int(batch.n_tokens[0])
            assert batch.input_ids[0, :n].tolist() == hf.ids
            assert batch.token_type_ids[0, :n].tolist() == hf.type_ids
            assert bool(plan.truncated[0]) == (
                len(q_ids[i]) + len(d_ids[i]) + template.n_special > max_length
            )
            assert bool(plan.truncated[0]) == bool(hf.overflowing)
            checked += 1
    assert checked > 100


@pytest.mark.parametrize("strategy", ["longest_first", "only_second", "only_first"])
def test_truncation_grid_identical_to_hf_tokenizers(strategy):
    """Every (query, document) length pair up to 12 and every max_length up to 28, ties included."""
    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "a": 4, "b": 5}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.post_processor = tokenizers.processors.BertProcessing(("[SEP]", 3), ("[CLS]", 2))
    template = PairTemplate.from_tokenizer(tok)
    for max_length in range(5, 29):
        tok.enable_truncation(max_length, strategy=strategy)
        for n1 in range(13):
            for n2 in range(13):
                q, d = " ".join(["a"] * n1), " ".join(["b"] * n2)
                try:
                    hf = tok.encode(q, d)
                except Exception:
                    with pytest.raises(ValueError, match="cannot fit"):
                        plan_pairs(
                            [[4] * n1], [[5] * n2], template, max_length=max_length, truncation=strategy
                        )
                    continue
                plan = plan_pairs(
                    [[4] * n1], [[5] * n2], template, max_length=max_length, truncation=strategy
                )
                batch = plan.batch(0)
                n = int(batch.n_tokens[0])
                assert batch.input_ids[0, :n].tolist() == hf.ids, (n1, n2, max_length)
                assert batch.token_type_ids[0, :n].tolist() == hf.type_ids


def test_template_from_minilm(minilm_dir):
    t = PairTemplate.from_tokenizer_json(minilm_dir / "tokenizer.json")
    assert t == PairTemplate.bert(cls_id=101, sep_id=102, pad_id=0)
    assert t.n_special == 3


def test_template_from_plain_processors():
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "a": 3, "<unk>": 4}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.post_processor = tokenizers.processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    assert PairTemplate.from_tokenizer(tok) == PairTemplate.roberta(bos_id=0, eos_id=2, pad_id=1)
    tok.post_processor = tokenizers.processors.BertProcessing(("</s>", 2), ("<s>", 0))
    assert PairTemplate.from_tokenizer(tok) == PairTemplate.bert(cls_id=0, sep_id=2, pad_id=1)
    for proc in (None, tokenizers.processors.ByteLevel()):
        tok.post_processor = proc
        t = PairTemplate.from_tokenizer(tok)
        assert t.n_special == 0
        (batch,) = plan_pairs([[3]], [[3, 3]], t, max_length=8)
        enc = tok.encode("a", "a a")
        assert batch.input_ids[0, :3].tolist() == enc.ids
        assert batch.token_type_ids[0, :3].tolist() == enc.type_ids


def test_template_with_multi_id_special_token_and_empty_suffix():
    vocab = {"[PAD]": 0, "[UNK]": 1, "a": 2, "b": 3, "x": 4, "y": 5}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.post_processor = tokenizers.processors.TemplateProcessing(
        single="$A",
        pair="XY:0 $A:0 XY:1 $B:1",
        special_tokens=[{"id": "XY", "ids": [4, 5], "tokens": ["x", "y"]}],
    )
    template = PairTemplate.from_tokenizer(tok)
    for max_length in range(6, 12):
        tok.enable_truncation(max_length)
        enc = tok.encode("a a a", "b b b b")
        batch = plan_pairs([[2, 2, 2]], [[3, 3, 3, 3]], template, max_length=max_length).batch(0)
        n = int(batch.n_tokens[0])
        assert batch.input_ids[0, :n].tolist() == enc.ids
        assert batch.token_type_ids[0, :n].tolist() == enc.type_ids


def test_concurrent_materialize_is_identical():
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(1)
    docs = [rng.integers(0, 30_000, rng.integers(0, 300)).tolist() for _ in range(500)]
    plan = plan_pairs([[1, 2, 3]], docs, BERT, max_length=128, max_batch_tokens=2048)
    serial = [plan.batch(i).input_ids for i in range(plan.n_batches)]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            threaded = list(pool.map(lambda i: plan.batch(i).input_ids, range(plan.n_batches)))
            assert all((a == b).all() for a, b in zip(serial, threaded, strict=True))


# ----------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------


def test_template_errors(tmp_path):
    vocab = {"a": 0, "<unk>": 1}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="<unk>"))
    tok.post_processor = tokenizers.processors.BertProcessing(("a", 0), ("a", 0))
    with pytest.raises(ValueError, match="pass pad_id="):
        PairTemplate.from_tokenizer(tok)
    assert PairTemplate.from_tokenizer(tok, pad_id=1).pad_id == 1
    tok.post_processor = tokenizers.processors.Sequence(
        [
            tokenizers.processors.BertProcessing(("a", 0), ("a", 0)),
            tokenizers.processors.RobertaProcessing(("a", 0), ("a", 0)),
        ]
    )
    with pytest.raises(ValueError, match="more than once"):
        PairTemplate.from_tokenizer(tok, pad_id=1)
    tok.post_processor = tokenizers.processors.TemplateProcessing(
        single="$A", pair="$B:1 a $A:0", special_tokens=[("a", 0)]
    )
    with pytest.raises(ValueError, match="in that order"):
        PairTemplate.from_tokenizer(tok, pad_id=1)
    config = json.loads(tok.to_str())
    config["post_processor"] = {"type": "Fancy"}
    with pytest.raises(ValueError, match="unsupported tokenizer post-processor 'Fancy'"):
        PairTemplate._from_config(config, tok.token_to_id, 0)
    with pytest.raises(FileNotFoundError):
        PairTemplate.from_tokenizer_json(tmp_path / "missing.json")
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{not json")
    with pytest.raises(StateError):
        PairTemplate.from_tokenizer_json(bad)
    with pytest.raises(ValueError, match="one type id per id"):
        PairTemplate((1,), (), (), (), (), ())
    with pytest.raises(ValueError, match=r"token ids in \[0, 2147483647\], got -1"):
        PairTemplate((-1,), (), (), (0,), (), ())
    with pytest.raises(TypeError, match="integers"):
        PairTemplate((1.5,), (), (), (0,), (), ())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(max_length=4), "max_length must be at least 5"),
        (dict(max_length=16, truncation="middle"), "truncation must be"),
        (dict(max_length=16, max_query_length=0), "max_query_length must be >= 1"),
        (dict(max_length=16, max_batch_tokens=8), "max_batch_tokens must be >= max_length"),
        (dict(max_length=16, max_batch_size=0), "max_batch_size must be >= 1"),
        (dict(max_length=16, buckets=0), "must be >= 1"),
        (dict(max_length=16, buckets=[8, 4]), "strictly increasing"),
        (dict(max_length=16, buckets=[]), "must not be empty"),
        (dict(max_length=16, window_stride=0), "window_stride must be >= 1"),
        (dict(max_length=16, max_windows=2), "max_windows needs window_stride"),
        (dict(max_length=16, window_stride=4, max_windows=0), "max_windows must be >= 1"),
        (dict(max_length=16, window_stride=4, truncation="only_first"), "only_first never cuts"),
    ],
)
def test_option_errors(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        plan_pairs([[1]], [[2]], BERT, **kwargs)


def test_input_errors():
    with pytest.raises(ValueError, match="negative token id -3"):
        plan_pairs([[1, -3]], [[2]], BERT, max_length=16)
    with pytest.raises(ValueError, match="negative token id -3"):
        plan_pairs([[1]], (np.array([2, -3], np.int32), np.array([0, 2])), BERT, max_length=16)
    with pytest.raises(ValueError, match="int32 range"):
        plan_pairs([[1]], [[2**40]], BERT, max_length=16)
    with pytest.raises(ValueError, match="int32 range"):
        plan_pairs([[1]], [[2**70]], BERT, max_length=16)
    with pytest.raises(TypeError, match="integer"):
        plan_pairs([[1]], [[2.5]], BERT, max_length=16)
    with pytest.raises(TypeError, match="integer"):
        plan_pairs([[1]], [np.array([2.5])], BERT, max_length=16)
    with pytest.raises(TypeError, match=re.escape("doc_ids[0][1] is bool")):
        plan_pairs([[1]], [[2, True]], BERT, max_length=16)
    with pytest.raises(TypeError, match="is str"):
        plan_pairs([[1]], [["2"]], BERT, max_length=16)
    with pytest.raises(TypeError, match="pass token ids, not text"):
        plan_pairs([[1]], ["some text"], BERT, max_length=16)
    with pytest.raises(TypeError, match="must be a sequence of token ids, got int"):
        plan_pairs([[1]], [3], BERT, max_length=16)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="int32 range"):
        plan_pairs([[1]], [np.array([2**40])], BERT, max_length=16)
    with pytest.raises(ValueError, match="negative token id -4"):
        plan_pairs([[1]], [np.array([-4])], BERT, max_length=16)
    with pytest.raises(TypeError, match="list of token id sequences"):
        plan_pairs("query", [[2]], BERT, max_length=16)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="one query per document"):
        plan_pairs([[1], [2]], [[2], [3], [4]], BERT, max_length=16)
    with pytest.raises(ValueError, match="non-decreasing"):
        plan_pairs([[1]], (np.array([1, 2], np.int32), np.array([0, 2, 1])), BERT, max_length=16)
    with pytest.raises(ValueError, match="only 2 values"):
        plan_pairs([[1]], (np.array([1, 2], np.int32), np.array([0, 3])), BERT, max_length=16)
    with pytest.raises(ValueError, match="n \\+ 1 >= 1"):
        plan_pairs([[1]], (np.array([1, 2], np.int32), np.array([], np.int64)), BERT, max_length=16)
    with pytest.raises(ValueError, match="cannot fit"):
        plan_pairs([[1] * 20], [[2]], BERT, max_length=16, truncation="only_second")
    with pytest.raises(ValueError, match="cannot fit"):
        plan_pairs([[1]], [[2] * 20], BERT, max_length=16, truncation="only_first")
    plan = plan_pairs([[1]], [[2]], BERT, max_length=16)
    with pytest.raises(IndexError, match="out of range"):
        plan.batch(1)
    with pytest.raises(ValueError, match="expected scores for 1 batches"):
        plan.unsort([])
    with pytest.raises(ValueError, match="has 1 rows"):
        plan.unsort([np.zeros(2)])
