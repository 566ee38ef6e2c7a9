"""BM25 at scale: crossrank (exhaustive and pruned) against bm25s, PISA and tantivy on one corpus.

Run:  PYTHONPATH=python python bench/bm25_scale.py [--sizes 100000 1000000] [--out bench/bm25_scale]
      PYTHONPATH=python python bench/bm25_scale.py --corpus scifact   (or any dataset folder's name)
      PYTHONPATH=python python bench/bm25_scale.py --corpus union     (every dataset folder together)
Smoke test: add ``--max-docs 3000 --max-queries 50`` (documents per dataset folder, queries in all).

Synthetic corpus (the default, ``--corpus synthetic``), deterministic: documents of 60 tokens drawn
i.i.d. from a Zipf law (exponent 1.0) over 1,000,000 term ranks, seed 0; 1,000 queries of 2 to 6
distinct terms drawn from the same law, seed 1 (a query term absent from the corpus matches nothing).

Real text (``--corpus <name>`` or ``--corpus union``) comes from the BEIR-layout folders of the datasets
directory: ``$CROSSRANK_DATASETS``, default ``../shared/datasets`` next to the repository. Each folder
is read with ``crossrank.eval.load_beir``: documents are title + " " + text, queries are the judged
queries of the ``test`` split (all queries of a folder without ``qrels/test.tsv``). ``union`` indexes
the documents of every folder in name order; the TREC DL passage re-ranking pools (dl19, dl20) are
candidate passages of MS MARCO, not full collections, and share MS MARCO's ids, so a passage present
in both is indexed once (documents are keyed by (source, id): the source is ``msmarco-passage`` for
those and the folder's name otherwise). A folder without ``corpus.jsonl`` is skipped with a note.
The text is analysed ONCE, by the default analyzer of ``crossrank.BM25Index.build`` (lowercase,
Lucene English stopwords, Snowball English stemmer; the same C++ call as ``build``, one thread), into
term ids; the engines are then built from those ids exactly as for the synthetic corpus. Query terms
are analysed the same way; terms that occur in no document are dropped and each query keeps its
distinct terms in first-occurrence order (engines disagree on repeated query terms, and each would
score the same distinct terms); queries left empty are dropped and counted. Analysis time is
reported apart and is not part of any engine's build time.

Every engine gets the same tokens: term id ``i`` is the word ``t<i>``; crossrank and bm25s get the
ids, PISA and tantivy the words joined by spaces (no stemming, no stopwords: every token is a term,
and no word needs escaping in their query parsers). Scoring: BM25, k1 = 0.9, b = 0.4 (Lucene's IDF
where the engine lets us choose).

Timing: one query per call, single thread, exact top-k, at k = 10 and k = 1000. The engines are
interleaved query by query (a seeded random engine order per query) so that load from other processes
on a shared machine, and warm or cold caches, hit them alike; compare ratios within one run. Reported per engine and k: mean,
p50 and p99 latency in microseconds; per engine: build time, index size on disk and the process's
resident memory growth while building (peak RSS of the whole process is reported once). Before
timing, crossrank's pruned and automatic strategies are checked bit for bit against its exhaustive
scan (200 queries of the synthetic corpus, every query of real text). Synthetic results go to
``<out>.json`` (a list, one entry per size) and a plot of latency against corpus size to
``<out>.png``; real text to ``<out>.json`` (one object that also holds per-dataset document, query and
postings counts) and a bar chart of mean latency per engine and k to ``<out>.png``, with ``<out>``
defaulting to ``bench/bm25_scale_<corpus>``.

crossrank's index is built from the token ids directly (no Python token lists); bm25s gets the
same ids (``bm25s.tokenization.Tokenized``). PISA goes through ``pyterrier_pisa`` (its own text
indexer, block_simdbp encoding) and is queried through its C++ entry point, one query per call,
with block-max WAND and MaxScore. tantivy's Python bindings count all matches, so it never prunes.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import re
import resource
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from crossrank import _core
    from crossrank.text.analyzer import Analyzer

VOCAB = 1_000_000
DOC_LEN = 60
N_QUERIES = 1000
EXPONENT = 1.0
K1, B = 0.9, 0.4
KS = (10, 1000)
CHECK_SYNTHETIC = 200  # synthetic queries checked crossrank-pruned/auto == exhaustive (real text: all)
ANALYZE_BATCH = 16_384  # texts per analyzer call
ABSENT = np.uint32(0xFFFFFFFF)  # crossrank id of a term that is in no document
MSMARCO_POOL = re.compile(r"trec-dl\d+-passage")  # folders holding MS MARCO passages under their own ids


# ---------------------------------------------------------------------------------------- corpora
@dataclass
class Corpus:
    """Documents as term ids plus the queries: what every engine is built from and timed on.

    Document ``i`` is ``term_ids[offsets[i]:offsets[i + 1]]``; every id is below ``n_terms`` and
    spells the word :func:`word` (``t<id>``). ``info`` holds extra fields for the JSON report.
    """

    name: str
    term_ids: np.ndarray  # uint32, the documents' tokens back to back
    offsets: np.ndarray  # int64, n_docs + 1
    n_terms: int
    queries: list[list[int]]
    origin: str = "generated"
    n_check: int = CHECK_SYNTHETIC
    info: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def n_docs(self) -> int:
        return len(self.offsets) - 1

    def doc_len(self) -> int | None:
        """The common document length, or None when documents differ in length."""
        lens = np.diff(self.offsets)
        return int(lens[0]) if len(lens) and bool((lens == lens[0]).all()) else None

    def doc_lists(self, ids: np.ndarray | None = None) -> list[list[int]]:
        """Each document's tokens as a Python list (of ``ids``, default ``term_ids``, mapped alike)."""
        flat = self.term_ids if ids is None else ids
        width = self.doc_len()
        if width is not None:
            return flat.reshape(-1, width).tolist()
        return [part.tolist() for part in np.split(flat, self.offsets[1:-1])]

    def docs(self) -> Iterator[list[int]]:
        """Each document's tokens, one list at a time."""
        bounds = self.offsets.tolist()
        for start, end in itertools.pairwise(bounds):
            yield self.term_ids[start:end].tolist()


def word(term: int) -> str:
    """The word every engine sees for term id ``term``."""
    return f"t{term}"


def spell(terms: Iterable[int]) -> str:
    """A document or query as text: its words joined by single spaces."""
    return " ".join(f"t{t}" for t in terms)


def zipf_cdf(vocab: int = VOCAB, s: float = EXPONENT) -> np.ndarray:
    w = 1.0 / np.arange(1, vocab + 1, dtype=np.float64) ** s
    cdf = np.cumsum(w)
    return cdf / cdf[-1]


def corpus(n_docs: int, seed: int = 0) -> np.ndarray:
    """Token ids (n_docs, DOC_LEN) uint32, deterministic for (n_docs, seed)."""
    cdf = zipf_cdf()
    rng = np.random.default_rng(seed)
    out = np.empty((n_docs, DOC_LEN), dtype=np.uint32)
    step = 100_000
    for start in range(0, n_docs, step):
        u = rng.random((min(step, n_docs - start), DOC_LEN))
        out[start : start + len(u)] = np.searchsorted(cdf, u, side="right")
    return np.minimum(out, VOCAB - 1)


def queries(seed: int = 1, n: int = N_QUERIES) -> list[list[int]]:
    """n queries of 2 to 6 distinct Zipf-drawn term ids."""
    cdf = zipf_cdf()
    rng = np.random.default_rng(seed)
    out: list[list[int]] = []
    for _ in range(n):
        want = int(rng.integers(2, 7))
        q: list[int] = []
        while len(q) < want:
            t = min(int(np.searchsorted(cdf, rng.random(), side="right")), VOCAB - 1)
            if t not in q:
                q.append(t)
        out.append(q)
    return out


def synthetic_corpus(n_docs: int, n_queries: int = N_QUERIES) -> Corpus:
    """The Zipf corpus of ``n_docs`` documents and its first ``n_queries`` queries.

    A query none of whose terms occurs in the corpus (only in small corpora: one of the 1,000 at
    20,000 documents, none from 100,000 on) is dropped, with a note: it would time no work.
    """
    term_ids = corpus(n_docs).reshape(-1)
    offsets = np.arange(0, term_ids.size + 1, DOC_LEN, dtype=np.int64)
    present = np.zeros(VOCAB, dtype=bool)
    present[term_ids] = True
    qs = [q for q in queries(n=n_queries) if present[q].any()]
    notes: dict[str, str] = {}
    if len(qs) < n_queries:
        notes["queries"] = f"{n_queries - len(qs)} of {n_queries} queries dropped: no term in the corpus"
    return Corpus(str(n_docs), term_ids, offsets, VOCAB, qs, notes=notes)


def datasets_root() -> Path:
    """``$CROSSRANK_DATASETS``, or ``../shared/datasets`` relative to the repository root."""
    env = os.environ.get("CROSSRANK_DATASETS")
    if env:
        return Path(env)
    return (Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets").resolve()


def dataset_folders(root: Path, name: str) -> list[Path]:
    """The folders of ``--corpus name``: every folder of ``root`` for ``union``, else ``root/name``."""
    if not root.is_dir():
        raise SystemExit(f"datasets folder {root} not found (set CROSSRANK_DATASETS)")
    if name == "union":
        return sorted(d for d in root.iterdir() if d.is_dir())
    if not (root / name).is_dir():
        have = ", ".join(sorted(d.name for d in root.iterdir() if d.is_dir()))
        raise SystemExit(f"no dataset {name!r} in {root} (have: {have}; or 'union', 'synthetic')")
    return [root / name]


def doc_source(folder: str) -> str:
    """The id space of a folder's documents (the TREC DL passage pools share MS MARCO's ids)."""
    return "msmarco-passage" if MSMARCO_POOL.match(folder) else folder


def analyze(
    analyzer: Analyzer, vocab: _core.Vocabulary, texts: list[str], grow: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Term ids (uint32) and offsets (int64) of texts, exactly as ``BM25Index.build`` analyses them."""
    from crossrank.retrieve.bm25 import _analyze_batch_ids

    ids: list[np.ndarray] = [np.zeros(0, dtype=np.uint32)]
    offsets: list[np.ndarray] = [np.zeros(1, dtype=np.int64)]
    done = 0
    for start in range(0, len(texts), ANALYZE_BATCH):
        part, off = _analyze_batch_ids(analyzer, vocab, texts[start : start + ANALYZE_BATCH], grow, 1)
        ids.append(part.astype(np.uint32, copy=False))
        offsets.append(off[1:].astype(np.int64) + done)
        done += len(part)
    return np.concatenate(ids), np.concatenate(offsets)


def count_postings(term_ids: np.ndarray, offsets: np.ndarray) -> int:
    """Distinct (document, term) pairs: the postings of an inverted index over these documents."""
    doc = np.repeat(np.arange(len(offsets) - 1, dtype=np.uint64), np.diff(offsets))
    return len(np.unique((doc << np.uint64(32)) | term_ids.astype(np.uint64)))


@dataclass
class Part:
    """One dataset folder's share of a real-text corpus."""

    name: str
    split: str
    docs: int
    kept_docs: list[str]
    duplicates: int
    conflicts: int
    query_texts: list[str]


def read_part(folder: Path, max_docs: int | None, seen: dict[tuple[str, str], str]) -> Part:
    """A folder's documents not already in ``seen`` (updated) and its test (or all) queries."""
    from crossrank.eval.datasets import load_beir

    ds = load_beir(folder, split="test")
    texts = ds.documents()
    ids = ds.doc_ids
    if max_docs is not None:
        texts, ids = texts[:max_docs], ids[:max_docs]
    source = doc_source(folder.name)
    kept: list[str] = []
    duplicates = conflicts = 0
    for doc_id, text in zip(ids, texts, strict=True):
        key = (source, doc_id)
        if key in seen:
            duplicates += 1
            conflicts += seen[key] != text
            continue
        seen[key] = text
        kept.append(text)
    split = "test" if (folder / "qrels" / "test.tsv").is_file() else "all"
    return Part(folder.name, split, len(texts), kept, duplicates, conflicts, list(ds.queries.values()))


def query_terms(ids: np.ndarray, n_doc_terms: int) -> list[int]:
    """A query's distinct terms that occur in some document, in first-occurrence order."""
    return list(dict.fromkeys(t for t in ids.tolist() if t < n_doc_terms))


def real_corpus(
    name: str, root: Path, max_docs: int | None, max_queries: int | None, log: Callable[[str], None]
) -> Corpus:
    """One dataset folder, or the union of all, analysed once into term ids (module docstring)."""
    from crossrank import _core
    from crossrank.retrieve.bm25 import _default_analyzer

    analyzer = _default_analyzer()
    vocab = _core.Vocabulary()
    seen: dict[tuple[str, str], str] = {}
    notes: dict[str, str] = {}
    parts: list[Part] = []
    for folder in dataset_folders(root, name):
        if not (folder / "corpus.jsonl").is_file():
            notes[folder.name] = "skipped: no corpus.jsonl to index as documents"
            continue
        try:
            parts.append(read_part(folder, max_docs, seen))
        except (OSError, ValueError) as exc:  # not a readable BEIR folder: reported, not fatal
            notes[folder.name] = f"skipped: {type(exc).__name__}: {exc}"
    del seen
    if not parts:
        raise SystemExit(f"no dataset with a corpus.jsonl under {root}")

    t0 = time.perf_counter()
    doc_ids: list[np.ndarray] = []
    doc_offsets: list[np.ndarray] = [np.zeros(1, dtype=np.int64)]
    stats: dict[str, dict[str, Any]] = {}
    for part in parts:
        ids, off = analyze(analyzer, vocab, part.kept_docs, True)
        doc_ids.append(ids)
        doc_offsets.append(off[1:] + int(doc_offsets[-1][-1]))
        stats[part.name] = {
            "docs": part.docs,
            "docs_indexed": len(part.kept_docs),
            "duplicate_docs": part.duplicates,
            "duplicates_with_other_text": part.conflicts,
            "empty_docs": int((np.diff(off) == 0).sum()),
            "tokens": len(ids),
            "postings": count_postings(ids, off),
        }
        part.kept_docs = []
    n_doc_terms = len(vocab)
    qs: list[list[int]] = []
    for part in parts:
        # grow, so that a term in no document gets an id >= n_doc_terms instead of vanishing
        ids, off = analyze(analyzer, vocab, part.query_texts, True)
        raw = [ids[a:b] for a, b in itertools.pairwise(off.tolist())]
        kept = [query_terms(q, n_doc_terms) for q in raw]
        stats[part.name].update(
            query_split=part.split,
            queries=len(raw),
            queries_empty_after_analysis=sum(len(q) == 0 for q in raw),
            queries_without_corpus_term=sum(len(q) > 0 and not k for q, k in zip(raw, kept, strict=True)),
            query_terms_not_in_corpus=int((ids >= n_doc_terms).sum()),
            queries_used=sum(bool(k) for k in kept),
        )
        qs.extend(k for k in kept if k)
    analysis_s = time.perf_counter() - t0
    if max_queries is not None:
        qs = qs[:max_queries]
    term_ids = np.concatenate(doc_ids)
    offsets = np.concatenate(doc_offsets)
    info = {
        "corpus": name,
        "datasets_root": str(root),
        "max_docs_per_dataset": max_docs,
        "analyzer": dict(analyzer.config),
        "analysis_s": analysis_s,
        "n_terms": n_doc_terms,
        "tokens": len(term_ids),
        "postings": sum(s["postings"] for s in stats.values()),
        "n_queries": len(qs),
        "queries_dropped_empty": sum(
            s["queries_empty_after_analysis"] + s["queries_without_corpus_term"] for s in stats.values()
        ),
        "mean_query_terms": float(np.mean([len(q) for q in qs])) if qs else 0.0,
        "datasets": stats,
    }
    for ds_name, s in stats.items():
        log(
            f"[{name}] {ds_name}: {s['docs_indexed']} docs indexed of {s['docs']} "
            f"({s['duplicate_docs']} duplicates), {s['tokens']} tokens, {s['postings']} postings; "
            f"{s['queries_used']} of {s['queries']} {s['query_split']} queries used "
            f"({s['queries_empty_after_analysis']} empty after analysis, "
            f"{s['queries_without_corpus_term']} without a corpus term)"
        )
    return Corpus(name, term_ids, offsets, n_doc_terms, qs, "loaded and analysed", len(qs), info, notes)


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


# ---------------------------------------------------------------------------------------- engines
class Engine:
    """One engine's index over the corpus: build() then search(query_ids, k)."""

    name = ""
    build_s = 0.0
    size_bytes = 0
    rss_growth = 0

    def search(self, q: list[int], k: int) -> Any:  # pragma: no cover - interface
        raise NotImplementedError


def build_crossrank(corpus: Corpus, work: Path) -> dict[str, Engine]:
    from crossrank import BM25Index
    from crossrank.retrieve.bm25 import _check_params

    t0 = time.perf_counter()
    r0 = rss()
    index = BM25Index._empty(_check_params("lucene", K1, B, 0.5), None, "position")
    snap = index._snap
    used = np.unique(corpus.term_ids)
    words = [word(i) for i in used.tolist()]
    vocab = snap.vocab
    ids, _ = vocab.map_tokens(words, np.array([0, len(words)], dtype=np.int64), True)
    remap = np.full(corpus.n_terms, ABSENT, dtype=np.uint32)
    remap[used] = ids
    term_ids = remap[corpus.term_ids]
    index._snap = index._grown(snap, vocab, term_ids, corpus.offsets, 1, None)
    build_s = time.perf_counter() - t0
    growth = rss() - r0
    path = work / "crossrank"
    index.save(path)
    size = dir_size(path)
    shutil.rmtree(path)
    engines: dict[str, Engine] = {}
    for strategy in ("exhaustive", "pruned", "auto"):
        e = Engine()
        e.name = f"crossrank-{strategy}"
        e.build_s, e.size_bytes, e.rss_growth = build_s, size, growth
        view = index._snap.view

        def search(q: list[int], k: int, view: Any = view, strategy: str = strategy) -> Any:
            qi = remap[q]
            qi = qi[qi != ABSENT]  # a term in no document matches nothing (as in the other engines)
            return view.search(qi, np.array([0, len(qi)], dtype=np.int64), k, 1, strategy)

        e.search = search  # type: ignore[method-assign]
        engines[e.name] = e
    return engines


def build_bm25s(corpus: Corpus, work: Path) -> dict[str, Engine]:
    import bm25s
    from bm25s.tokenization import Tokenized

    t0 = time.perf_counter()
    r0 = rss()
    used = np.unique(corpus.term_ids)
    remap = np.zeros(corpus.n_terms, dtype=np.int64)
    remap[used] = np.arange(len(used))
    ids = corpus.doc_lists(remap[corpus.term_ids])
    vocab = {word(t): i for i, t in enumerate(used.tolist())}
    retriever = bm25s.BM25(method="lucene", k1=K1, b=B, backend="numba")
    retriever.index(Tokenized(ids=ids, vocab=vocab), show_progress=False)
    del ids
    build_s = time.perf_counter() - t0
    growth = rss() - r0
    path = work / "bm25s"
    retriever.save(str(path))
    size = dir_size(path)
    shutil.rmtree(path)
    e = Engine()
    e.name = "bm25s-numba"
    e.build_s, e.size_bytes, e.rss_growth = build_s, size, growth
    inverse = {i: w for w, i in vocab.items()}

    def search(q: list[int], k: int) -> Any:
        toks = [[inverse[int(remap[t])] for t in q if word(t) in vocab]]
        return retriever.retrieve(toks, k=k, n_threads=1, show_progress=False)

    e.search = search  # type: ignore[method-assign]
    search([int(used[0]), int(used[1])], 10)  # JIT warm-up
    return {e.name: e}


def build_pisa(corpus: Corpus, work: Path) -> dict[str, Engine]:
    os.environ.setdefault("JAVA_TOOL_OPTIONS", "-Xmx2g")
    import pyterrier_pisa as pp
    from pyterrier_pisa import _pisathon

    path = work / "pisa"
    t0 = time.perf_counter()
    r0 = rss()
    index = pp.PisaIndex(str(path), stemmer="none", stops="none", threads=1)

    def docs() -> Any:
        for i, doc in enumerate(corpus.docs()):
            yield {"docno": str(i), "text": spell(doc)}

    index.index(docs())
    build_s = time.perf_counter() - t0
    growth = rss() - r0
    size = dir_size(path)
    engines: dict[str, Engine] = {}
    for algo in ("block_max_wand", "maxscore", "block_max_maxscore"):
        retr = index.bm25(k1=K1, b=B, num_results=max(KS), threads=1, query_algorithm=algo)
        ctxt = retr._ctxt
        e = Engine()
        e.name = f"pisa-{algo}"
        e.build_s, e.size_bytes, e.rss_growth = build_s, size, growth
        n = max(KS)
        bufs = (
            np.empty(n, dtype=np.int32),
            np.empty(n, dtype=object),
            np.empty(n, dtype=np.int32),
            np.empty(n, dtype=np.float32),
        )

        def search(q: list[int], k: int, ctxt: Any = ctxt, algo: str = algo, bufs: Any = bufs) -> Any:
            return _pisathon.retrieve(
                ctxt,
                algo,
                [(0, spell(q))],
                k=k,
                threads=1,
                query_weighted=0,
                pretokenised=False,
                result_qidxs=bufs[0],
                result_docnos=bufs[1],
                result_ranks=bufs[2],
                result_scores=bufs[3],
            )

        e.search = search  # type: ignore[method-assign]
        engines[e.name] = e
    return engines


def build_tantivy(corpus: Corpus, work: Path) -> dict[str, Engine]:
    import tantivy

    path = work / "tantivy"
    path.mkdir()
    t0 = time.perf_counter()
    r0 = rss()
    sb = tantivy.SchemaBuilder()
    sb.add_text_field("body", stored=False, tokenizer_name="whitespace")
    schema = sb.build()
    index = tantivy.Index(schema, path=str(path))
    writer = index.writer(heap_size=500_000_000, num_threads=1)
    for doc in corpus.docs():
        writer.add_document(tantivy.Document(body=spell(doc)))
    writer.commit()
    writer.wait_merging_threads()
    index.reload()
    searcher = index.searcher()
    build_s = time.perf_counter() - t0
    growth = rss() - r0
    size = dir_size(path)
    e = Engine()
    e.name = "tantivy"
    e.build_s, e.size_bytes, e.rss_growth = build_s, size, growth

    def search(q: list[int], k: int) -> Any:
        query = index.parse_query(spell(q), ["body"])
        return searcher.search(query, k)

    e.search = search  # type: ignore[method-assign]
    return {e.name: e}


BUILDERS: dict[str, Callable[[Corpus, Path], dict[str, Engine]]] = {
    "crossrank": build_crossrank,
    "bm25s": build_bm25s,
    "pisa": build_pisa,
    "tantivy": build_tantivy,
}


# ---------------------------------------------------------------------------------------- timing
def time_interleaved(engines: dict[str, Engine], qs: list[list[int]], k: int) -> dict[str, np.ndarray]:
    names = list(engines)
    lat = {n: np.empty(len(qs)) for n in names}
    for e in engines.values():  # warm-up
        for q in qs[:20]:
            e.search(q, k)
    # A fresh seeded random order per query. A rotation keeps the cyclic order, so the strategies of one
    # engine (crossrank's three, PISA's three) always ran right after each other on the same postings,
    # warm in cache: on the union corpus crossrank-auto (the exhaustive code path there) measured 135 us
    # against crossrank-exhaustive's 194 us, run after tantivy. Random orders give every engine the same
    # odds of a warm or a cold start.
    rng = np.random.default_rng(2)
    for i, q in enumerate(qs):
        for j in rng.permutation(len(names)):
            name = names[int(j)]
            t0 = time.perf_counter()
            engines[name].search(q, k)
            lat[name][i] = time.perf_counter() - t0
    return lat


def check_crossrank(engines: dict[str, Engine], qs: list[list[int]], k: int) -> None:
    """The pruned and automatic strategies return exactly the exhaustive result (ids and bits)."""
    ref = engines["crossrank-exhaustive"]
    for name in ("crossrank-pruned", "crossrank-auto"):
        for q in qs:
            a, b = ref.search(q, k), engines[name].search(q, k)
            if not (
                np.array_equal(a[0], b[0]) and np.array_equal(a[1].view(np.uint32), b[1].view(np.uint32))
            ):
                raise SystemExit(f"{name} differs from exhaustive on query {q} at k={k}")


def run_corpus(
    make: Callable[[], Corpus], engines_wanted: list[str], work: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    """Build every engine on the corpus ``make()`` returns, check crossrank, time all at each k."""
    t0 = time.perf_counter()
    corpus = make()
    label = corpus.name
    log(f"[{label}] corpus {corpus.origin} in {time.perf_counter() - t0:.1f}s")
    for what, note in corpus.notes.items():
        log(f"[{label}] {what}: {note}")
    if corpus.n_docs < max(KS):
        raise SystemExit(f"[{label}] {corpus.n_docs} documents: top-{max(KS)} needs at least {max(KS)}")
    if not corpus.queries:
        raise SystemExit(f"[{label}] no query left to time")
    engines: dict[str, Engine] = {}
    notes = dict(corpus.notes)
    for name in engines_wanted:
        try:
            built = BUILDERS[name](corpus, work)
        except Exception as exc:  # an engine that cannot run here is reported, not fatal
            notes[name] = f"{type(exc).__name__}: {exc}"
            log(f"[{label}] {name}: FAILED {notes[name]}")
            continue
        engines.update(built)
        e = next(iter(built.values()))
        log(f"[{label}] {name}: built in {e.build_s:.1f}s, {e.size_bytes / 2**20:.0f} MiB on disk")
        gc.collect()
    qs, n_check, n_docs = corpus.queries, corpus.n_check, corpus.n_docs
    result: dict[str, Any] = {**corpus.info, "n_docs": n_docs, "notes": notes, "engines": {}}
    del corpus
    gc.collect()
    for k in KS:
        if "crossrank-exhaustive" in engines:
            check_crossrank(engines, qs[:n_check], k)
        lat = time_interleaved(engines, qs, k)
        for name, v in lat.items():
            us = v * 1e6
            row = result["engines"].setdefault(
                name,
                {
                    "build_s": engines[name].build_s,
                    "index_bytes": engines[name].size_bytes,
                    "rss_growth_bytes": engines[name].rss_growth,
                },
            )
            row[f"k{k}"] = {
                "mean_us": float(us.mean()),
                "p50_us": float(np.percentile(us, 50)),
                "p99_us": float(np.percentile(us, 99)),
            }
            log(
                f"[{label}] k={k:<5} {name:<28} mean {us.mean():9.0f}  p50 {np.percentile(us, 50):9.0f}  "
                f"p99 {np.percentile(us, 99):9.0f} us"
            )
    result["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return result


def plot(results: list[dict[str, Any]], png: Path) -> None:
    """Mean latency against corpus size, one line per engine, one panel per k (synthetic sizes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(KS), figsize=(6 * len(KS), 4.5))
    names = sorted({n for r in results for n in r["engines"]})
    for ax, k in zip(axes, KS, strict=True):
        for name in names:
            pts = [
                (r["n_docs"], r["engines"][name][f"k{k}"]["mean_us"]) for r in results if name in r["engines"]
            ]
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, ys, marker="o", label=name)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("documents")
        ax.set_ylabel("mean latency per query (µs)")
        ax.set_title(f"BM25 top-{k}, one thread, synthetic Zipf corpus")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def plot_bars(result: dict[str, Any], png: Path) -> None:
    """Mean latency per engine, one bar per k (one real-text corpus)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["engines"])
    x = np.arange(len(names))
    width = 0.8 / len(KS)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(names)), 4.5))
    for j, k in enumerate(KS):
        ys = [result["engines"][n][f"k{k}"]["mean_us"] for n in names]
        ax.bar(x + (j - (len(KS) - 1) / 2) * width, ys, width, label=f"top-{k}")
    ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("mean latency per query (µs)")
    ax.set_title(
        f"BM25, one thread, {result['corpus']}: {result['n_docs']:,} documents, {result['n_queries']:,} queries"
    )
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--corpus",
        default="synthetic",
        help="'synthetic' (Zipf, --sizes), 'union' (every dataset folder) or one dataset folder's name",
    )
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--engines", nargs="+", default=list(BUILDERS), choices=list(BUILDERS))
    ap.add_argument("--out", default=None, help="output stem (default bench/bm25_scale[_<corpus>])")
    ap.add_argument(
        "--work", default=None, help="scratch directory for on-disk indexes (default: a temp dir)"
    )
    ap.add_argument(
        "--datasets",
        type=Path,
        default=None,
        help="datasets folder (default $CROSSRANK_DATASETS or ../shared/datasets)",
    )
    ap.add_argument("--max-docs", type=int, default=None, help="real text: first N documents of each dataset")
    ap.add_argument("--max-queries", type=int, default=None, help="time only the first N queries")
    args = ap.parse_args(argv)
    synthetic = args.corpus == "synthetic"
    if synthetic and args.max_docs is not None:
        ap.error("--max-docs applies to real text; the synthetic corpus takes --sizes")
    stem = "bm25_scale" if synthetic else f"bm25_scale_{args.corpus}"
    out = Path(args.out) if args.out else Path(__file__).with_name(stem)

    def log(msg: str) -> None:
        print(msg, flush=True)

    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        if synthetic:
            n_queries = N_QUERIES if args.max_queries is None else args.max_queries
            results = []
            for n in args.sizes:
                work = Path(tmp) / str(n)
                work.mkdir()
                results.append(
                    run_corpus(lambda n=n: synthetic_corpus(n, n_queries), args.engines, work, log)
                )
                shutil.rmtree(work, ignore_errors=True)
                gc.collect()
        else:
            root = args.datasets or datasets_root()
            result = run_corpus(
                lambda: real_corpus(args.corpus, root, args.max_docs, args.max_queries, log),
                args.engines,
                Path(tmp),
                log,
            )
    if synthetic:
        out.with_suffix(".json").write_text(json.dumps(results, indent=2))
        plot(results, out.with_suffix(".png"))
    else:
        out.with_suffix(".json").write_text(json.dumps(result, indent=2))
        plot_bars(result, out.with_suffix(".png"))
    log(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
