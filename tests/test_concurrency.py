"""Concurrency stress tests: writers beside readers on one shared index.

Every result a reader gets must equal the result of a snapshot index built single-threaded from
the documents present before or after one of the adds (no mix of two states, no crash), and a
reader never sees the index go back in time. Each test runs for a bounded time.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable

import numpy as np
import pytest

from crossrank import BM25Index
from crossrank.types import Hits

TIME_LIMIT_S = 30.0  # a hard bound per test; the work normally ends in a few seconds


def _run_threads(
    writer: Callable[[], None], reader: Callable[[threading.Event], None], n_readers: int
) -> None:
    """Start the readers, then the writer; stop the readers once the writer is done; re-raise errors."""
    errors: list[BaseException] = []
    done = threading.Event()
    started = threading.Barrier(n_readers + 1)

    def guard(fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except BaseException as exc:  # re-raised on the main thread
                errors.append(exc)
                done.set()

        return run

    def read() -> None:
        started.wait(timeout=TIME_LIMIT_S)
        reader(done)

    def write() -> None:
        started.wait(timeout=TIME_LIMIT_S)
        try:
            writer()
        finally:
            done.set()

    threads = [threading.Thread(target=guard(read)) for _ in range(n_readers)]
    threads.append(threading.Thread(target=guard(write)))
    for t in threads:
        t.start()
    deadline = time.monotonic() + TIME_LIMIT_S
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    done.set()
    assert not any(t.is_alive() for t in threads), "a thread did not finish within the time limit"
    if errors:
        raise errors[0]


def _same(a: Hits, b: Hits) -> bool:
    return a.ids.shape == b.ids.shape and np.array_equal(a.ids, b.ids) and np.array_equal(a.scores, b.scores)


def _snapshot_of(result: Hits, refs: list[Hits]) -> int:
    """Index of the last snapshot whose result equals ``result`` (-1: none, a mixed state)."""
    for i in range(len(refs) - 1, -1, -1):
        if _same(result, refs[i]):
            return i
    return -1


def _bm25_corpus(seed: int = 0) -> tuple[list[str], list[list[str]], list[str]]:
    """Initial texts, batches to add (each bringing new words), and queries touching both."""
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(60)]

    def text(extra: list[str]) -> str:
        return " ".join([*rng.choice(words, size=int(rng.integers(3, 25))).tolist(), *extra])

    initial = [text([]) for _ in range(40)]
    batches = [[text([f"novel{b}x{j % 3}"] * int(rng.integers(1, 3))) for j in range(5)] for b in range(12)]
    queries = [
        "w1 w2 w3",
        "w7 novel0x0",
        "novel3x1 novel4x2 w9",
        "novel11x0",
        "w10 w11 w12 w13 novel7x1",
        "nothing-at-all",
        "w59 novel9x2",
        "w0",
    ]
    return initial, batches, queries


def test_bm25_add_beside_searches_matches_a_snapshot() -> None:
    initial, batches, queries = _bm25_corpus()
    texts = list(initial)
    ids = [f"d{i}" for i in range(len(initial))]
    index = BM25Index.build(texts, ids=ids, num_threads=1)
    analyzer = index.analyzer
    assert analyzer is not None
    query_tokens = [analyzer.analyze(q) for q in queries]
    # The single-threaded references: one index per state the shared index goes through.
    refs_text: list[Hits] = []
    refs_tokens: list[Hits] = []
    all_texts, all_ids = list(texts), list(ids)
    for b in range(len(batches) + 1):
        snap = BM25Index.build(all_texts, ids=all_ids, num_threads=1)
        refs_text.append(snap.search(queries, k=10, num_threads=1))
        refs_tokens.append(snap.search_tokens(query_tokens, k=10, num_threads=1))
        if b < len(batches):
            all_texts += batches[b]
            all_ids += [f"b{b}_{j}" for j in range(len(batches[b]))]
    assert len({tuple(map(tuple, r.ids.tolist())) for r in refs_text}) > 3  # the adds change the results

    seen: list[list[int]] = []
    lock = threading.Lock()

    def writer() -> None:
        for b, batch in enumerate(batches):
            index.add(batch, ids=[f"b{b}_{j}" for j in range(len(batch))], num_threads=1)
            time.sleep(0.002)  # let the readers run between adds

    def reader(done: threading.Event) -> None:
        mine: list[int] = []
        use_tokens = len(seen) % 2 == 1
        while True:
            finished = done.is_set()  # read before searching: one more search after the last add
            if use_tokens:
                at = _snapshot_of(index.search_tokens(query_tokens, k=10, num_threads=1), refs_tokens)
            else:
                at = _snapshot_of(index.search(queries, k=10, num_threads=1), refs_text)
            assert at >= 0, "a search saw a state that no snapshot has (a mix of before and after an add)"
            assert not mine or at >= mine[-1], f"a search went back in time: snapshot {at} after {mine[-1]}"
            mine.append(at)
            use_tokens = not use_tokens
            if finished:
                break
        with lock:
            seen.append(mine)

    _run_threads(writer, reader, n_readers=3)
    assert len(seen) == 3
    assert all(s[-1] == len(batches) for s in seen)  # the last search of each reader sees every add
    observed = {i for s in seen for i in s}
    assert len(observed) >= 2, f"the readers only ever saw snapshots {observed}: no overlap was exercised"
    assert len(index) == len(all_texts)
    final = BM25Index.build(all_texts, ids=all_ids, num_threads=1)
    assert _same(index.search(queries, k=10), final.search(queries, k=10))


def test_bm25_concurrent_adds_are_serialized() -> None:
    initial, batches, queries = _bm25_corpus(seed=1)
    index = BM25Index.build(initial, ids=[f"d{i}" for i in range(len(initial))], num_threads=1)
    by_id = {f"d{i}": t for i, t in enumerate(initial)}

    def adder(start: int) -> Callable[[], None]:
        def run() -> None:
            for b in range(start, len(batches), 2):
                new_ids = [f"b{b}_{j}" for j in range(len(batches[b]))]
                index.add(batches[b], ids=new_ids, num_threads=1)

        return run

    for b, batch in enumerate(batches):
        by_id.update({f"b{b}_{j}": t for j, t in enumerate(batch)})
    threads = [threading.Thread(target=adder(s)) for s in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=TIME_LIMIT_S)
    assert len(index) == len(by_id)
    order = index.ids.tolist()
    assert sorted(order) == sorted(by_id)  # no add lost
    rebuilt = BM25Index.build([by_id[i] for i in order], ids=order, num_threads=1)
    assert _same(index.search(queries, k=15), rebuilt.search(queries, k=15))
    for name in ("_term_ptr", "_docs", "_tfs", "_doc_lens", "_impacts", "_nonocc"):
        np.testing.assert_array_equal(getattr(index, name), getattr(rebuilt, name))


def test_bm25_search_during_add_keeps_the_published_arrays() -> None:
    """An add never writes into arrays a reader holds: the old snapshot's arrays stay unchanged."""
    initial, batches, _ = _bm25_corpus(seed=2)
    index = BM25Index.build(initial, num_threads=1)
    before = {name: np.array(getattr(index, name), copy=True) for name in ("_term_ptr", "_docs", "_impacts")}
    held = {name: getattr(index, name) for name in before}
    vocab_before = index._vocab.arena()[0].tobytes()
    held_vocab = index._vocab
    index.add(batches[0], num_threads=1)
    for name, arr in held.items():
        np.testing.assert_array_equal(arr, before[name])
    assert held_vocab.arena()[0].tobytes() == vocab_before  # new terms went into a copy
    assert index.vocabulary_size > len(held_vocab)


# --------------------------------------------------------------------------------------------------
# DenseIndex
# --------------------------------------------------------------------------------------------------
def _vectors(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_dense_add_beside_searches_matches_a_snapshot() -> None:
    pytest.importorskip("faiss")
    from crossrank.retrieve.dense import DenseIndex

    x = _vectors(200)
    q = _vectors(6, seed=1)
    steps = list(range(40, 201, 20))
    refs = [DenseIndex.build(x[:n], ids=[f"v{i}" for i in range(n)]).search(q, k=8) for n in steps]
    index = DenseIndex.build(x[: steps[0]], ids=[f"v{i}" for i in range(steps[0])])
    seen: list[int] = []

    def writer() -> None:
        for a, b in itertools.pairwise(steps):
            index.add(x[a:b], ids=[f"v{i}" for i in range(a, b)])
            time.sleep(0.002)

    def reader(done: threading.Event) -> None:
        last = -1
        while True:
            finished = done.is_set()
            at = _snapshot_of(index.search(q, k=8), refs)
            assert at >= 0, "a search saw a state that no snapshot has"
            assert at >= last
            last = at
            seen.append(at)
            if finished:
                break

    _run_threads(writer, reader, n_readers=2)
    assert max(seen) == len(steps) - 1


def test_dense_hnsw_concurrent_searches_with_different_k_agree_with_serial() -> None:
    """HNSW's search beam is a per-call parameter: concurrent searches with different k do not
    change each other's results."""
    pytest.importorskip("faiss")
    from crossrank.retrieve.dense import DenseIndex

    x, q = _vectors(500, 32), _vectors(20, 32, seed=3)
    index = DenseIndex.build(x, kind="hnsw", ef_search=16)
    ks = [1, 5, 40, 100]
    serial = {k: index.search(q, k=k) for k in ks}
    errors: list[str] = []

    def worker(k: int) -> None:
        for _ in range(20):
            if not _same(index.search(q, k=k), serial[k]):
                errors.append(f"k={k} differs")
                return

    threads = [threading.Thread(target=worker, args=(k,)) for k in ks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=TIME_LIMIT_S)
    assert not errors
    assert index._index.hnsw.efSearch == 16  # searches leave the shared index untouched


def test_dense_index_sets_faiss_threads_once(monkeypatch: pytest.MonkeyPatch) -> None:
    faiss = pytest.importorskip("faiss")
    from crossrank.retrieve.dense import DenseIndex

    calls: list[int] = []
    monkeypatch.setattr(faiss, "omp_set_num_threads", calls.append)
    index = DenseIndex.build(_vectors(30), num_threads=2)
    index.add(_vectors(5, seed=4))
    for _ in range(3):
        index.search(_vectors(2, seed=5), k=3)
    assert calls == [2]  # at construction only, never per call
    DenseIndex.build(_vectors(30))
    assert calls == [2]  # None leaves the process-wide setting alone


# --------------------------------------------------------------------------------------------------
# Saves killed mid-way (kill -9): the directory always holds the old index or the new one
# --------------------------------------------------------------------------------------------------
_SAVER = r"""
import sys
import numpy as np
kind, root = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(0)
if kind == "bm25":
    from crossrank import BM25Index
    words = [f"w{i}" for i in range(2000)]
    big = [" ".join(rng.choice(words, size=40)) for _ in range(20000)]
    states = [BM25Index.build(big[:50], num_threads=1), BM25Index.build(big, num_threads=1)]
    save = lambda s: s.save(root)
elif kind == "store":
    from crossrank.rerank.maxsim import PackedDocs, PackedDocStore
    mats = [rng.standard_normal((int(n), 32)).astype(np.float32) for n in rng.integers(1, 60, 3000)]
    states = [PackedDocs(mats[:5]), PackedDocs(mats)]
    save = lambda s: PackedDocStore.save(root, s, overwrite=True)
else:
    from crossrank.retrieve.dense import DenseIndex
    x = rng.standard_normal((40000, 64)).astype(np.float32)
    states = [DenseIndex.build(x[:50]), DenseIndex.build(x)]
    save = lambda s: s.save(root)
print("ready", flush=True)
i = 1
while True:
    save(states[i % 2])
    i += 1
"""


def _open(kind: str, root: str):  # type: ignore[no-untyped-def]
    if kind == "bm25":
        return BM25Index.load(root)
    if kind == "store":
        from crossrank.rerank.maxsim import PackedDocStore

        return PackedDocStore.open(root)
    from crossrank.retrieve.dense import DenseIndex

    return DenseIndex.load(root)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["bm25", "store", "dense"])
def test_a_save_killed_at_any_moment_leaves_the_old_or_the_new_index(tmp_path, kind: str) -> None:  # type: ignore[no-untyped-def]
    import os
    import signal
    import subprocess
    import sys

    if kind == "dense":
        pytest.importorskip("faiss")
    root = str(tmp_path / "ix")
    child = subprocess.Popen(
        [sys.executable, "-c", _SAVER, kind, root],
        stdout=subprocess.PIPE,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"ready"  # noqa: PT018
        while not os.path.exists(os.path.join(root, "manifest.json")):
            time.sleep(0.01)
        held = _open(kind, root)  # opened before the saves that follow
        sizes = set()
        rng = np.random.default_rng(1)
        for _ in range(20):
            time.sleep(float(rng.uniform(0.0, 0.15)))
            child.send_signal(signal.SIGSTOP)  # freeze it anywhere in a save: what a kill leaves
            try:
                loaded = _open(kind, root)
            finally:
                child.send_signal(signal.SIGCONT)
            sizes.add(len(loaded))
            sizes.add(len(_open(kind, root)))  # and opened while a save runs: never a mix of two
        old, new = (5, 3000) if kind == "store" else (50, 20000 if kind == "bm25" else 40000)
        assert sizes <= {old, new}
        child.kill()  # and a real kill -9 at the end
        child.wait(timeout=30)
        final = _open(kind, root)
        assert len(final) in {old, new}
        len(held)  # the object opened before still answers (its files were replaced, not rewritten)
        if kind == "bm25":
            held.search(["w1 w2"], k=3)
        elif kind == "store":
            from crossrank.rerank.maxsim import maxsim

            maxsim(np.ones((2, 32), np.float32), held)
        else:
            held.search(np.ones((1, 64), np.float32), k=3)
    finally:
        child.kill()
        child.wait(timeout=30)
