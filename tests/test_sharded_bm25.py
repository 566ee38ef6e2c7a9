"""ShardedBM25Index equals one unsharded BM25Index: the same top-100 ids in the same order and the
same scores (within 1e-6; in fact bit-identical), before and after adds, for 1, 2, 4 and 7 shards
on SciFact and CACM; global impacts equal the core's; save/load; StateError for shards that do not
belong together."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from crossrank import Analyzer
from crossrank.errors import StateError
from crossrank.eval.datasets import load_beir
from crossrank.retrieve import bm25_io
from crossrank.retrieve.bm25 import BM25Index
from crossrank.retrieve.bm25_global import CollectionStats, global_impacts
from crossrank.retrieve.sharded_bm25 import ShardedBM25Index

K = 100
VARIANTS = ("robertson", "lucene", "atire", "bm25l", "bm25+")
# Empty and stopword-only queries rank every document at 0: ties all the way, by global position.
EXTRA_QUERIES = ["", "the of and", "zzzunseenterm"]


@pytest.fixture(scope="module")
def collections(datasets_dir):
    out = {}
    for name in ("scifact", "cacm"):
        ds = load_beir(datasets_dir / name, judged_only=False)
        out[name] = (ds.documents(), list(ds.doc_ids), [*ds.queries.values()][:200] + EXTRA_QUERIES)
    return out


@pytest.fixture(scope="module")
def references(collections):
    """Per collection: (single index over the first 70%, single index over all after two adds)."""
    out = {}
    for name, (texts, ids, _) in collections.items():
        cut, mid = _cuts(len(texts))
        part = BM25Index.build(texts[:cut], ids=ids[:cut])
        full = BM25Index.build(texts[:cut], ids=ids[:cut])
        full.add(texts[cut:mid], ids=ids[cut:mid])
        full.add(texts[mid:], ids=ids[mid:])
        out[name] = (part, full)
    return out


def _cuts(n: int) -> tuple[int, int]:
    return int(n * 0.7), int(n * 0.85)


def assert_same_hits(got, want) -> None:
    assert got.ids.shape == want.ids.shape
    assert (got.ids == want.ids).all(), "top-k ids differ from the unsharded index"
    np.testing.assert_allclose(got.scores, want.scores, rtol=0, atol=1e-6)
    # Stronger than the bar: the same float32 sums of the same impacts.
    assert np.array_equal(got.scores, want.scores)


@pytest.mark.parametrize("name", ["scifact", "cacm"])
@pytest.mark.parametrize("num_shards", [1, 2, 4, 7])
def test_equals_single_index_before_and_after_add(collections, references, name, num_shards) -> None:
    texts, ids, queries = collections[name]
    part, full = references[name]
    cut, mid = _cuts(len(texts))
    sharded = ShardedBM25Index.build(texts[:cut], ids=ids[:cut], num_shards=num_shards, num_threads=2)
    assert sharded.num_shards == num_shards
    assert len(sharded) == cut
    assert_same_hits(sharded.search(queries, k=K), part.search(queries, k=K))
    # One add to a chosen shard, one to the smallest: N, avgdl and df change for every shard.
    sharded.add(texts[cut:mid], ids=ids[cut:mid], shard=num_shards - 1)
    sharded.add(texts[mid:], ids=ids[mid:])
    assert len(sharded) == len(texts)
    assert sum(sharded.shard_sizes) == len(texts)
    assert sharded.vocabulary_size == full.vocabulary_size
    assert_same_hits(sharded.search(queries, k=K), full.search(queries, k=K))


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_equals_single_index(collections, variant) -> None:
    texts, _, queries = collections["cacm"]
    params = {"variant": variant, "k1": 1.2, "b": 0.6, "delta": 0.7}
    single = BM25Index.build(texts[:2000], **params)
    single.add(texts[2000:])
    sharded = ShardedBM25Index.build(texts[:2000], num_shards=3, **params)
    sharded.add(texts[2000:], shard=1)
    assert_same_hits(sharded.search(queries, k=K, num_threads=1), single.search(queries, k=K))
    assert_same_hits(
        sharded.search(queries[:5], k=len(texts) + 10), single.search(queries[:5], k=len(texts) + 10)
    )


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(("k1", "b"), [(1.5, 0.75), (0.0, 1.0), (0.9, 0.0)])
def test_global_impacts_equal_the_cores_bit_for_bit(collections, variant, k1, b) -> None:
    """With the collection's own statistics the NumPy path reproduces the C++ impacts exactly."""
    texts = collections["cacm"][0][:800]
    index = BM25Index.build(texts, variant=variant, k1=k1, b=b, delta=0.5)
    stats = CollectionStats(len(index), int(index._doc_lens.sum(dtype=np.uint64)))
    df = np.diff(index._term_ptr)
    imp, non = global_impacts(
        index.params, stats, df, index._term_ptr, index._docs, index._tfs, index._doc_lens
    )
    assert np.array_equal(imp.view(np.uint32), index._impacts.view(np.uint32))
    assert np.array_equal(non.view(np.uint32), index._nonocc.view(np.uint32))


def test_ties_rank_by_global_position_across_shards() -> None:
    # The same text at positions spread over every shard: equal scores, order by global position.
    texts = [f"filler{i} words" if i % 3 else "apple banana" for i in range(40)]
    single = BM25Index.build(texts)
    for n in (2, 4, 7):
        sharded = ShardedBM25Index.build(texts, num_shards=n)
        sharded.add(["apple banana", "banana"], shard=0)  # a later tie lands in the first shard
        ref = BM25Index.build([*texts, "apple banana", "banana"])
        got = sharded.search(["apple", "banana apple", ""], k=20)
        assert_same_hits(got, ref.search(["apple", "banana apple", ""], k=20))
        assert got.ids[0, :3].tolist() == [0, 3, 6]
        assert got.ids[2].tolist() == list(range(20))
    assert_same_hits(
        ShardedBM25Index.build(texts, num_shards=5).search(["apple"], k=40), single.search(["apple"], k=40)
    )


def test_search_tokens_and_str_ids() -> None:
    texts = ["red fish", "blue fish", "one fish two fish", "red red red", "cat"]
    sharded = ShardedBM25Index.build(texts, ids=["a", "b", "c", "d", "e"], num_shards=2)
    single = BM25Index.build(texts, ids=["a", "b", "c", "d", "e"])
    assert_same_hits(
        sharded.search_tokens([["red", "fish"]], k=5), single.search_tokens([["red", "fish"]], k=5)
    )
    assert sharded.ids.tolist() == ["a", "b", "c", "d", "e"]
    assert sharded.shard_of().tolist() == [0, 0, 1, 1, 1]


def test_bad_arguments() -> None:
    texts = ["a b", "c d", "e f"]
    with pytest.raises(ValueError, match="num_shards"):
        ShardedBM25Index.build(texts, num_shards=4)
    with pytest.raises(ValueError, match="num_shards"):
        ShardedBM25Index.build(texts, num_shards=0)
    with pytest.raises(ValueError, match="0 documents"):
        ShardedBM25Index.build([], num_shards=1)
    with pytest.raises(ValueError, match="unique"):
        ShardedBM25Index.build(texts, ids=["x", "y", "x"], num_shards=2)
    index = ShardedBM25Index.build(texts, num_shards=2)
    with pytest.raises(ValueError, match="without ids"):
        index.add(["g"], ids=["g"])
    with pytest.raises(ValueError, match="shard"):
        index.add(["g"], shard=2)
    with pytest.raises(ValueError, match="k"):
        index.search("a", k=0)
    named = ShardedBM25Index.build(texts, ids=["x", "y", "z"], num_shards=3)
    with pytest.raises(ValueError, match="already in the index"):
        named.add(["g"], ids=["y"])
    with pytest.raises(ValueError, match="pass ids"):
        named.add(["g"])
    assert len(named) == 3  # failed adds change nothing


def test_save_load_round_trip_and_add_after_load(collections, tmp_path) -> None:
    texts, ids, queries = collections["cacm"]
    sharded = ShardedBM25Index.build(texts[:2500], ids=ids[:2500], num_shards=4, variant="bm25+")
    sharded.save(tmp_path / "idx")
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["format"] == "crossrank.bm25.sharded"
    assert len(manifest["shards"]) == 4
    loaded = ShardedBM25Index.load(tmp_path / "idx")
    assert_same_hits(loaded.search(queries, k=K), sharded.search(queries, k=K))
    assert loaded.stats == sharded.stats
    assert loaded.ids.tolist() == ids[:2500]
    loaded.add(texts[2500:], ids=ids[2500:], shard=2)
    single = BM25Index.build(texts, ids=ids, variant="bm25+")
    assert_same_hits(loaded.search(queries, k=K), single.search(queries, k=K))
    loaded.save(tmp_path / "idx")  # replaces the old save
    assert_same_hits(
        ShardedBM25Index.load(tmp_path / "idx", mmap=False).search(queries, k=K), single.search(queries, k=K)
    )


def test_a_failed_save_leaves_the_old_index(collections, tmp_path, monkeypatch) -> None:
    texts, _, queries = collections["cacm"]
    old = ShardedBM25Index.build(texts[:1000], num_shards=3)
    old.save(tmp_path / "idx")
    new = ShardedBM25Index.build(texts[:1500], num_shards=3)
    real_save, calls = BM25Index.save, []

    def dying_save(self, path):  # the process "dies" while writing the third shard
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real_save(self, path)

    monkeypatch.setattr(BM25Index, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        new.save(tmp_path / "idx")
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]  # no half-written sibling left
    again = ShardedBM25Index.load(tmp_path / "idx")
    assert len(again) == 1000
    assert_same_hits(again.search(queries, k=K), old.search(queries, k=K))


def _saved(tmp_path, texts, **kwargs):
    index = ShardedBM25Index.build(texts, num_shards=3, **kwargs)
    index.save(tmp_path / "idx")
    return tmp_path / "idx"


def _replace_shard(root, i, index) -> None:
    shutil.rmtree(root / f"shard-{i:03d}")
    index.save(root / f"shard-{i:03d}")


TEXTS = ["the cat sat on the mat", "dogs bark loudly", "cats and dogs", "a quiet mouse", "birds sing"]


def test_shard_with_other_analyzer_is_a_state_error(tmp_path) -> None:
    root = _saved(tmp_path, TEXTS)
    foreign = BM25Index.build(TEXTS[1:3], ids=[1, 2], analyzer=Analyzer(stemmer=None))
    _replace_shard(root, 1, foreign)
    with pytest.raises(StateError, match=r"shard 1 .*field 'analyzer\.stemmer'"):
        ShardedBM25Index.load(root)


def test_shard_with_other_params_is_a_state_error(tmp_path) -> None:
    root = _saved(tmp_path, TEXTS, k1=1.2)
    _replace_shard(root, 2, BM25Index.build(TEXTS[3:], ids=[3, 4], k1=0.9))
    with pytest.raises(
        StateError, match=r"shard 2 .*field 'params\.k1' is 0\.9 but the sharded index has 1\.2"
    ):
        ShardedBM25Index.load(root)
    root2 = _saved(tmp_path / "v", TEXTS)
    _replace_shard(root2, 0, BM25Index.build(TEXTS[:1], ids=[0], variant="atire"))
    with pytest.raises(StateError, match=r"shard 0 .*field 'params\.variant'"):
        ShardedBM25Index.load(root2)


def test_shard_format_version_mismatch_is_a_state_error(tmp_path) -> None:
    root = _saved(tmp_path, TEXTS)
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["shard_format_version"] = manifest["shard_format_version"] + 1
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StateError, match=rf"shard 0 .*field 'format_version' is {bm25_io.FORMAT_VERSION}"):
        ShardedBM25Index.load(root)
    # A shard claiming a newer format than this crossrank reads: the error names that shard's file.
    root = _saved(tmp_path / "newer", TEXTS)
    shard_manifest = root / "shard-001" / "manifest.json"
    body = json.loads(shard_manifest.read_text())
    body["format_version"] = 99
    shard_manifest.write_text(json.dumps(body))
    with pytest.raises(StateError, match=r"shard-001.*format version 99"):
        ShardedBM25Index.load(root)


def test_swapped_or_missing_shard_is_a_state_error(tmp_path) -> None:
    root = _saved(tmp_path, TEXTS)
    # Same parameters and positions, other documents: not the shard this index saved.
    _replace_shard(root, 1, BM25Index.build(["zebra stripes", "lion roars"], ids=[1, 2]))
    with pytest.raises(StateError, match=r"shard 1 .*SHA-256"):
        ShardedBM25Index.load(root)
    root = _saved(tmp_path / "m", TEXTS)
    shutil.rmtree(root / "shard-002")
    with pytest.raises(StateError, match="shard-002"):
        ShardedBM25Index.load(root)
    with pytest.raises(FileNotFoundError):
        ShardedBM25Index.load(tmp_path / "nothing")


def test_concurrent_searches_see_before_or_after_an_add(collections) -> None:
    import threading

    texts, _, queries = collections["cacm"]
    sharded = ShardedBM25Index.build(texts[:2000], num_shards=3)
    before = BM25Index.build(texts[:2000]).search(queries[:20], k=10)
    after_index = BM25Index.build(texts[:2000])
    after_index.add(texts[2000:])
    after = after_index.search(queries[:20], k=10)
    seen, stop = [], threading.Event()

    def reader() -> None:
        while not stop.is_set():
            seen.append(sharded.search(queries[:20], k=10, num_threads=1))

    thread = threading.Thread(target=reader)
    thread.start()
    sharded.add(texts[2000:])
    stop.set()
    thread.join()
    for hits in seen:
        assert (hits.ids == before.ids).all() or (hits.ids == after.ids).all()
    assert_same_hits(sharded.search(queries[:20], k=10), after)


_SAVER = r"""
import sys
import numpy as np
from crossrank.retrieve.sharded_bm25 import ShardedBM25Index
rng = np.random.default_rng(0)
words = [f"w{i}" for i in range(2000)]
texts = [" ".join(rng.choice(words, size=40)) for _ in range(2000)]
states = [ShardedBM25Index.build(texts[:50], num_shards=3, num_threads=1),
          ShardedBM25Index.build(texts, num_shards=4, num_threads=1)]
states[0].save(sys.argv[1])
print("ready", flush=True)
i = 1
while True:
    states[i % 2].save(sys.argv[1])
    i += 1
"""


@pytest.mark.slow
def test_a_save_killed_at_any_moment_leaves_the_old_or_the_new_index(tmp_path) -> None:
    import signal
    import subprocess
    import sys
    import time

    root = tmp_path / "idx"
    child = subprocess.Popen([sys.executable, "-c", _SAVER, str(root)], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == b"ready"
        held = ShardedBM25Index.load(root)
        sizes = set()
        rng = np.random.default_rng(1)
        for _ in range(10):
            time.sleep(float(rng.uniform(0.0, 0.2)))
            child.send_signal(signal.SIGSTOP)  # frozen anywhere in a save: what a kill leaves behind
            try:
                frozen = ShardedBM25Index.load(root)
            finally:
                child.send_signal(signal.SIGCONT)
            sizes.add((len(frozen), frozen.num_shards))
        child.kill()  # and a real kill -9
        child.wait(timeout=30)
        final = ShardedBM25Index.load(root)
        sizes.add((len(final), final.num_shards))
        assert sizes <= {(50, 3), (2000, 4)}
        assert held.search(["w1 w2"], k=3).ids.shape == (1, 3)  # opened before: still answers
    finally:
        child.kill()
        child.wait(timeout=30)
