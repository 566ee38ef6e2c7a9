"""A BM25 index split into shards that scores exactly as one index: :class:`ShardedBM25Index`.

Each shard is a :class:`~crossrank.retrieve.bm25.BM25Index` over a part of the corpus, built in
parallel (threads here, or Ray tasks on a cluster) and searched by scatter-gather. BM25 is not
local to a shard: IDF needs the collection's document count and each term's document frequency,
and length normalisation the collection's average document length. Those *global statistics* are
collected from all shards at build time, and every shard's impacts are computed from them
(:mod:`crossrank.retrieve.bm25_global`, bit-identical to the core's arithmetic). An ``add`` to one
shard changes them for every shard, so it recomputes every shard's impacts, as an add to one
unsharded index recomputes all of its impacts.

Result contract: ``search`` equals :meth:`BM25Index.search` of one index built from the same texts
in the same order (followed by the same adds): the same ids in the same order and the same float32
scores, ties included -- equal scores rank by lower *global position* (see
:mod:`crossrank.retrieve.shards`). This holds because each document's score is the same float32 sum
of the same impacts in the same query-token order in its shard as in the whole index; for bm25l and
bm25+ every shard's vocabulary also holds every term of the collection (with no postings where the
shard lacks it), so each query adds the same non-occurrence scores in every shard.

Persistence: a directory with ``manifest.json`` (format ``crossrank.bm25.sharded``) and one saved
:class:`BM25Index` per shard (``shard-000``, ...), written aside and swapped in by one rename.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import _core
from .._common import (
    MANIFEST,
    atomic_directory,
    check_int,
    check_texts,
    core_threads,
    manifest_body,
    manifest_field,
    read_consistent,
    read_manifest,
    sha256_file,
    write_json,
)
from ..errors import StateError
from ..text.analyzer import Analyzer
from ..types import Hits
from . import bm25_io
from .bm25 import BM25Index, Variant, _check_params, _check_unique, _ids_array
from .bm25_global import CollectionStats, global_impacts
from .shards import check_same, merge_topk, ray_module, scatter, split_bounds

__all__ = ["ShardedBM25Index"]

FORMAT_NAME = "crossrank.bm25.sharded"
FORMAT_VERSION = 1
_LOWER_BOUND = ("bm25l", "bm25+")


def _terms(vocab: _core.Vocabulary) -> list[str]:
    """The vocabulary's terms in id order."""
    chars, offsets = vocab.arena()
    raw, off = chars.tobytes(), offsets.tolist()
    return [raw[off[i] : off[i + 1]].decode("utf-8") for i in range(len(off) - 1)]


def _map(vocab: _core.Vocabulary, terms: list[str], grow: bool) -> np.ndarray:
    ids, _ = vocab.map_tokens(terms, np.array([0, len(terms)], dtype=np.int64), grow)
    return np.asarray(ids, dtype=np.int64)


@dataclass(frozen=True)
class _State:
    """One published state: never mutated, replaced as a whole by ``add``."""

    shards: tuple[BM25Index, ...]  # ids: the global positions of their documents (int64, increasing)
    local_to_global: tuple[np.ndarray, ...]  # per shard: local term id -> id in `vocab`
    vocab: _core.Vocabulary  # every term of the collection
    stats: CollectionStats
    ids: np.ndarray | None  # caller ids by global position; None: positions are the ids


def _build_shard(
    texts: list[str], start: int, params: dict[str, Any], analyzer: Analyzer, threads: int
) -> BM25Index:
    """A shard's postings over ``texts`` (documents ``start, start + 1, ...`` of the collection)."""
    return BM25Index.build(
        texts,
        ids=np.arange(start, start + len(texts), dtype=np.int64).tolist(),
        analyzer=analyzer,
        num_threads=threads,
        show_progress=False,
        **params,
    )


def _ray_build_shard(texts: list[str], start: int, params: dict[str, Any], analyzer: Analyzer) -> dict:
    """A Ray task: build one shard with the CPUs Ray gives it and return its arrays."""
    from ..ray import assigned_cpus

    shard = _build_shard(texts, start, params, analyzer, assigned_cpus())
    chars, offsets = shard._vocab.arena()
    return {
        "vocab_chars": chars,
        "vocab_offsets": offsets,
        "term_ptr": shard._term_ptr,
        "docs": shard._docs,
        "tfs": shard._tfs,
        "doc_lens": shard._doc_lens,
        "impacts": shard._impacts,
        "nonoccurrence": shard._nonocc,
        "ids": np.asarray(shard.ids, dtype=np.int64),
    }


def _shard_from_arrays(arrays: dict, params: dict[str, Any], analyzer: Analyzer) -> BM25Index:
    state = {k: np.array(v) for k, v in arrays.items()}  # own, writable copies of Ray's buffers
    vocab = _core.Vocabulary.from_arena(state.pop("vocab_chars"), state.pop("vocab_offsets"))
    return BM25Index(
        _state={
            **state,
            "params": _check_params(**params),
            "analyzer": analyzer,
            "ids_kind": "int",
            "vocab": vocab,
        }
    )


class ShardedBM25Index:
    """A BM25 index split into shards, with global statistics: it ranks and scores exactly as one
    :class:`~crossrank.retrieve.bm25.BM25Index` over the same documents.

    Make one with :meth:`build` or :meth:`load`; the constructor is internal.

    Thread safety: one instance may be shared across threads. Searches run concurrently with each
    other, with :meth:`save` and with :meth:`add`; each sees every shard as it was before or after
    an add, never a mix (an add builds new shards aside and publishes them with one reference swap).
    Adds take a lock and run one at a time.

    Examples
    --------
    >>> index = ShardedBM25Index.build(["the cat sat", "a dog barked", "cats purr"], num_shards=2)
    >>> index.search(["cat"], k=2).ids
    array([[0, 2]])
    """

    def __init__(self, *, _state: _State, _ids_kind: str) -> None:
        self._state = _state
        self._ids_kind = _ids_kind
        self._write_lock = threading.Lock()

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(
        cls,
        texts: Sequence[str],
        *,
        num_shards: int,
        ids: Sequence[str] | Sequence[int] | None = None,
        variant: Variant = "lucene",
        k1: float = 1.5,
        b: float = 0.75,
        delta: float = 0.5,
        analyzer: Analyzer | None = None,
        ray: bool | str = False,
        num_threads: int | None = None,
    ) -> ShardedBM25Index:
        """Split texts into ``num_shards`` contiguous parts and index each as a shard.

        Parameters
        ----------
        texts : sequence of str
            One text per document; their order is the global document order.
        num_shards : int
            Number of shards, in [1, len(texts)].
        ids : sequence of str or sequence of int, optional
            The caller's document ids (unique); default the global positions ``0..n-1``.
        variant, k1, b, delta, analyzer
            As in :meth:`BM25Index.build`; every shard uses the same.
        ray : bool or str
            Build the shards as Ray tasks (one CPU each): True uses the running Ray session (or
            starts a local one), a str is the address of a cluster to connect to. False builds them
            here on ``num_threads`` threads. Needs the ``[ray]`` extra.
        num_threads : int, optional
            Threads for the local build and for the impacts; None uses the CPU quota.

        Raises
        ------
        ValueError
            No texts, ``num_shards`` out of range, duplicate ids, a parameter out of range; ``ray``
            names a cluster that cannot be reached (one line naming it).
        TypeError
            A text that is not str, an analyzer that is not a :class:`crossrank.Analyzer`.
        ImportError
            ``ray`` is set but Ray is not installed (the ``[ray]`` extra).
        """
        params = _check_params(variant, k1, b, delta)._asdict()
        texts = check_texts(texts, "texts")
        threads = core_threads(num_threads)
        if not texts:
            raise ValueError("cannot build a BM25 index from 0 documents: pass at least one text")
        num_shards = check_int(num_shards, "num_shards", minimum=1, maximum=len(texts))
        ids_kind, ids_arr = ("position", None) if ids is None else _ids_array(ids, len(texts))
        _check_unique(ids_arr)
        if analyzer is None:
            analyzer = Analyzer()
        elif not isinstance(analyzer, Analyzer):
            raise TypeError(f"analyzer must be a crossrank.Analyzer, got {type(analyzer).__name__}")
        bounds = split_bounds(len(texts), num_shards)
        parts = [(texts[bounds[i] : bounds[i + 1]], bounds[i]) for i in range(num_shards)]
        if not isinstance(ray, (bool, str)):
            raise TypeError(f"ray must be a bool or an address str, got {type(ray).__name__}")
        if ray is not False:
            rt = ray_module(ray)
            task = rt.remote(num_cpus=1)(_ray_build_shard)
            refs = [task.remote(part, start, params, analyzer) for part, start in parts]
            shards = [_shard_from_arrays(a, params, analyzer) for a in rt.get(refs)]
        else:
            shards = scatter(parts, lambda p, t: _build_shard(p[0], p[1], params, analyzer, t), threads)
        return cls(_state=_global_state(shards, None, ids_arr, threads), _ids_kind=ids_kind)

    # ------------------------------------------------------------------ incremental update
    def add(
        self,
        texts: Sequence[str],
        *,
        ids: Sequence[str] | Sequence[int] | None = None,
        shard: int | None = None,
        num_threads: int | None = None,
    ) -> None:
        """Append documents to one shard; every shard's impacts follow the new global statistics.

        Afterwards the index equals one unsharded index built from all texts in order (the new
        documents take the next global positions).

        Parameters
        ----------
        texts : sequence of str
            The new documents.
        ids : sequence of str or int, optional
            Required (of the index's kind, not already used) when the index has caller ids; not
            allowed when it uses positions.
        shard : int, optional
            The shard that receives them; default the one with the fewest documents (the first
            of those).
        num_threads : int, optional
            Threads for analysis and impacts; None uses the CPU quota.

        Raises
        ------
        ValueError
            Ids missing, not allowed, repeated or already used; ``shard`` out of range.
        TypeError
            A text that is not str, ids of the other kind.
        """
        texts = check_texts(texts, "texts")
        threads = core_threads(num_threads)
        with self._write_lock:
            st = self._state
            if shard is None:
                sizes = [len(s) for s in st.shards]
                target = sizes.index(min(sizes))
            else:
                target = check_int(shard, "shard", minimum=0, maximum=len(st.shards) - 1)
            new_ids = self._check_new_ids(st, ids, len(texts))
            if not texts:
                return
            n = st.stats.n_docs
            grown = st.shards[target]._replaced(_external_stats={})  # a new object: st stays intact
            grown.add(texts, ids=list(range(n, n + len(texts))), num_threads=threads or None)
            shards = list(st.shards)
            shards[target] = grown
            all_ids = None if st.ids is None else np.concatenate([st.ids, new_ids])
            self._state = _global_state(shards, st, all_ids, threads)

    def _check_new_ids(
        self, st: _State, ids: Sequence[str] | Sequence[int] | None, n: int
    ) -> np.ndarray | None:
        if self._ids_kind == "position":
            if ids is not None:
                raise ValueError(
                    "this index numbers documents by position (built without ids): call add() without ids"
                )
            return None
        if ids is None:
            raise ValueError(f"this index has caller ids ({self._ids_kind}): pass ids= for the new documents")
        if not n:
            if len(list(ids)):
                raise ValueError(f"ids must have one entry per document: got {len(list(ids))} ids for 0")
            return None
        kind, arr = _ids_array(ids, n)
        if kind != self._ids_kind:
            raise TypeError(f"new ids must be {self._ids_kind} like the index's ids, got {kind}")
        _check_unique(arr)
        assert st.ids is not None
        clash = set(st.ids.tolist()).intersection(arr.tolist())
        if clash:
            raise ValueError(f"ids already in the index: {sorted(clash)[:5]!r}")
        return arr

    # ------------------------------------------------------------------ search
    def search(self, queries: str | Sequence[str], *, k: int = 10, num_threads: int | None = None) -> Hits:
        """Return the top-k documents of each query: every shard's top-k, merged exactly.

        Parameters
        ----------
        queries : str or sequence of str
            One query or a batch (a single str is a batch of one; results stay 2-D).
        k : int
            Results per query, >= 1; ``min(k, len(self))`` columns are returned.
        num_threads : int, optional
            Threads over the shards (and within them when there are more threads than shards);
            None uses the CPU quota. Results do not depend on it.

        Returns
        -------
        crossrank.types.Hits
            As :meth:`BM25Index.search` of one index over all documents: ties by global position.

        Raises
        ------
        ValueError
            ``k < 1``.
        TypeError
            A query that is not str, ``k`` not an int.
        """
        k = check_int(k, "k", minimum=1)
        threads = core_threads(num_threads)
        qs = [queries] if isinstance(queries, str) else check_texts(queries, "queries")
        st = self._state  # one state for the whole call
        analyzer = st.shards[0].analyzer
        if analyzer is None:  # pragma: no cover - shards are built from texts, loaded with analyzers
            raise ValueError("this index has no analyzer: use search_tokens()")
        # Analyse once here; every shard maps the same terms to its own ids (unknown terms drop out,
        # exactly as a shard's own search would drop them).
        tokens = analyzer.analyze_batch(qs, num_threads=threads or None)
        hits = scatter(st.shards, lambda s, t: s.search_tokens(tokens, k=k, num_threads=t), threads)
        return self._gathered(st, hits, k)

    def search_tokens(
        self,
        queries: Sequence[Sequence[str]],
        *,
        k: int = 10,
        num_threads: int | None = None,
    ) -> Hits:
        """Like :meth:`search` for queries already analysed into terms (list of str per query).

        Parameters
        ----------
        queries : sequence of sequence of str
            Terms of each query.
        k, num_threads
            As in :meth:`search`.
        """
        k = check_int(k, "k", minimum=1)
        threads = core_threads(num_threads)
        qs = list(queries)
        st = self._state
        hits = scatter(st.shards, lambda s, t: s.search_tokens(qs, k=k, num_threads=t), threads)
        return self._gathered(st, hits, k)

    @staticmethod
    def _gathered(st: _State, hits: list[Hits], k: int) -> Hits:
        kk = min(k, st.stats.n_docs)
        pos, scores = merge_topk([h.ids for h in hits], [h.scores for h in hits], kk)
        return Hits(ids=pos if st.ids is None else st.ids[pos], scores=scores)

    # ------------------------------------------------------------------ introspection
    def __len__(self) -> int:
        return self._state.stats.n_docs

    @property
    def num_shards(self) -> int:
        """Number of shards."""
        return len(self._state.shards)

    @property
    def shard_sizes(self) -> list[int]:
        """Documents in each shard."""
        return [len(s) for s in self._state.shards]

    @property
    def stats(self) -> CollectionStats:
        """The global statistics every shard scores with (document count, total length)."""
        return self._state.stats

    @property
    def params(self) -> dict[str, Any]:
        """The scoring parameters: ``variant``, ``k1``, ``b``, ``delta``."""
        return self._state.shards[0].params

    @property
    def analyzer(self) -> Analyzer | None:
        """The analyzer applied to texts and queries."""
        return self._state.shards[0].analyzer

    @property
    def vocabulary_size(self) -> int:
        """Number of distinct terms in the collection."""
        return len(self._state.vocab)

    @property
    def ids(self) -> np.ndarray:
        """Document ids in global order: the caller's ids, or int64 positions."""
        st = self._state
        return np.arange(st.stats.n_docs, dtype=np.int64) if st.ids is None else st.ids

    def shard_of(self) -> np.ndarray:
        """The shard of each document, by global position (int64 array of ``len(self)``)."""
        st = self._state
        out = np.empty(st.stats.n_docs, dtype=np.int64)
        for i, s in enumerate(st.shards):
            out[np.asarray(s.ids, dtype=np.int64)] = i
        return out

    def __repr__(self) -> str:
        st, p = self._state, self.params
        return (
            f"ShardedBM25Index(docs={st.stats.n_docs}, shards={len(st.shards)}, terms={len(st.vocab)}, "
            f"variant={p['variant']!r}, k1={p['k1']}, b={p['b']}, ids={self._ids_kind})"
        )

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the index to a directory, atomically: a kill at any moment leaves the old index
        or the new one.

        Layout: ``manifest.json`` (format, version, parameters, analyzer config, global statistics,
        shard names with their sizes and the SHA-256 of their manifests, the ids file's SHA-256),
        ``ids.json`` (caller ids; absent for positions), and ``shard-000``, ... each a saved
        :class:`BM25Index` (its ids are the global positions of its documents).

        Parameters
        ----------
        path : path-like
            The index directory: created, or replaced when it holds a sharded BM25 index.

        Raises
        ------
        FileExistsError
            ``path`` is a non-empty directory that does not hold a sharded BM25 index.
        """
        st = self._state
        analyzer = self.analyzer
        with atomic_directory(path, overwrite=True, replaces=FORMAT_NAME) as tmp:
            names = [f"shard-{i:03d}" for i in range(len(st.shards))]
            for name, shard in zip(names, st.shards, strict=True):
                shard.save(tmp / name)
            files: dict[str, str] = {}
            if st.ids is not None:
                with open(tmp / "ids.json", "w", encoding="utf-8") as f:
                    json.dump(st.ids.tolist(), f, ensure_ascii=False)
                    f.flush()
                    os.fsync(f.fileno())
                files["ids.json"] = sha256_file(tmp / "ids.json")
            body = manifest_body(
                FORMAT_NAME,
                FORMAT_VERSION,
                params=self.params,
                analyzer=None if analyzer is None else dict(analyzer.config),
                shard_format=bm25_io.FORMAT_NAME,
                shard_format_version=bm25_io.FORMAT_VERSION,
                n_docs=st.stats.n_docs,
                total_len=st.stats.total_len,
                ids_kind=self._ids_kind,
                shards=[
                    {"name": n, "docs": len(s), "manifest_sha256": sha256_file(tmp / n / MANIFEST)}
                    for n, s in zip(names, st.shards, strict=True)
                ],
                sha256=files,
            )
            write_json(tmp / MANIFEST, body)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        mmap: bool = True,
        verify: bool = True,
        num_threads: int | None = None,
    ) -> ShardedBM25Index:
        """Open an index written by :meth:`save`.

        Parameters
        ----------
        path : path-like
            The index directory.
        mmap, verify
            As in :meth:`BM25Index.load`, for every shard; ``verify`` also checks each shard's
            manifest and the ids file against this manifest's SHA-256.
        num_threads : int, optional
            Threads for the checks; None uses the CPU quota.

        Raises
        ------
        FileNotFoundError
            The directory does not exist.
        crossrank.errors.StateError
            A missing, corrupted or foreign file; a shard whose format version, parameters or
            analyzer differ from the manifest's (the message names the shard and the field);
            shards whose documents or statistics do not add up.
        """
        root = Path(path)
        if not root.is_dir():
            raise FileNotFoundError(f"no sharded BM25 index directory at {root}")
        threads = core_threads(num_threads)
        return read_consistent(root, lambda: cls._load(root, mmap, verify, threads))

    @classmethod
    def _load(cls, root: Path, mmap: bool, verify: bool, threads: int) -> ShardedBM25Index:
        manifest, _ = read_manifest(root, FORMAT_NAME, FORMAT_VERSION, label="sharded BM25")
        mpath = root / MANIFEST
        params = manifest_field(manifest, "params", dict, mpath)
        analyzer_cfg = manifest_field(manifest, "analyzer", (dict, type(None)), mpath)
        shard_format = manifest_field(manifest, "shard_format", str, mpath)
        if shard_format != bm25_io.FORMAT_NAME:
            raise StateError(
                f"{mpath}: field 'shard_format' is {shard_format!r}, expected {bm25_io.FORMAT_NAME!r}"
            )
        shard_version = manifest_field(manifest, "shard_format_version", int, mpath)
        n_docs = manifest_field(manifest, "n_docs", int, mpath)
        total_len = manifest_field(manifest, "total_len", int, mpath)
        ids_kind = manifest_field(manifest, "ids_kind", str, mpath)
        entries = manifest_field(manifest, "shards", list, mpath)
        digests = manifest_field(manifest, "sha256", dict, mpath)
        if ids_kind not in ("position", "int", "str"):
            raise StateError(f"{mpath}: field 'ids_kind' is {ids_kind!r}, expected position, int or str")
        if not entries:
            raise StateError(f"{mpath}: field 'shards' is empty")
        shards: list[BM25Index] = []
        for i, entry in enumerate(entries):
            where = f"{mpath}: field 'shards'[{i}]"
            if not isinstance(entry, dict):
                raise StateError(f"{where} must be an object")
            name = manifest_field(entry, "name", str, where)
            if "/" in name or name in ("", ".", ".."):
                raise StateError(f"{where}: invalid shard name {name!r}")
            shard_dir = root / name
            label = f"shard {i} ({shard_dir})"
            _, version = read_manifest(shard_dir, bm25_io.FORMAT_NAME, bm25_io.FORMAT_VERSION, label="BM25")
            if version != shard_version:
                raise StateError(
                    f"{label}: field 'format_version' is {version} but the sharded index was saved "
                    f"with shards of version {shard_version}; save every shard with one crossrank"
                )
            shard = BM25Index.load(shard_dir, mmap=mmap, verify=verify)
            check_same(params, shard.params, label, "params")
            found_cfg = None if shard.analyzer is None else dict(shard.analyzer.config)
            if (found_cfg is None) != (analyzer_cfg is None):
                raise StateError(
                    f"{label}: field 'analyzer' is {'absent' if found_cfg is None else 'present'} but "
                    f"{'absent' if analyzer_cfg is None else 'present'} in the sharded index"
                )
            if found_cfg is not None and analyzer_cfg is not None:
                check_same(
                    json.loads(json.dumps(analyzer_cfg)), json.loads(json.dumps(found_cfg)), label, "analyzer"
                )
            expected_sha = manifest_field(entry, "manifest_sha256", str, where)
            if verify and sha256_file(shard_dir / MANIFEST) != expected_sha:
                raise StateError(
                    f"{label}: its manifest does not match the SHA-256 recorded for it; it is not the "
                    "shard this index saved (replaced or corrupted)"
                )
            docs = manifest_field(entry, "docs", int, where)
            if len(shard) != docs:
                raise StateError(f"{label}: holds {len(shard)} documents, the manifest says {docs}")
            shards.append(shard)
        positions = np.concatenate([np.asarray(s.ids, dtype=np.int64) for s in shards])
        if len(positions) != n_docs or not np.array_equal(np.sort(positions), np.arange(n_docs)):
            raise StateError(
                f"{mpath}: the shards' documents are not the global positions 0..{n_docs - 1} once each"
            )
        ids_arr: np.ndarray | None = None
        if ids_kind != "position":
            ids_arr = _read_ids(root, digests, ids_kind, n_docs, verify)
        st = _global_state(shards, None, ids_arr, threads, impacts=False)
        if st.stats != CollectionStats(n_docs, total_len):
            raise StateError(
                f"{mpath}: fields 'n_docs'/'total_len' are {n_docs}/{total_len} but the shards add up "
                f"to {st.stats.n_docs}/{st.stats.total_len}"
            )
        return cls(_state=st, _ids_kind=ids_kind)


def _read_ids(root: Path, digests: dict, ids_kind: str, n_docs: int, verify: bool) -> np.ndarray:
    path = root / "ids.json"
    if not path.is_file():
        raise StateError(f"{path} is missing; the saved index is incomplete")
    if verify:
        digest = manifest_field(digests, "ids.json", str, f"{root / MANIFEST}: field 'sha256'")
        if sha256_file(path) != digest:
            raise StateError(f"{path} is corrupted (checksum mismatch)")
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
        kind, arr = _ids_array(raw, n_docs)
        _check_unique(arr)
    except (OSError, ValueError, TypeError) as exc:
        raise StateError(f"{path}: invalid ids ({exc})") from None
    if kind != ids_kind:
        raise StateError(f"{path}: holds {kind} ids but the manifest's field 'ids_kind' is {ids_kind!r}")
    return arr


def _global_state(
    shards: Sequence[BM25Index],
    previous: _State | None,
    ids: np.ndarray | None,
    threads: int,
    *,
    impacts: bool = True,
) -> _State:
    """Collect the global statistics of ``shards`` and give every shard impacts computed from them.

    ``previous`` (the state before an add) lets the global vocabulary and the term maps grow
    instead of being rebuilt. ``impacts=False`` keeps the shards' impacts (a loaded index: they
    were saved already global).
    """
    if previous is None:
        vocab = _core.Vocabulary()
        l2g = [_map(vocab, _terms(s._vocab), True) for s in shards]
    else:
        vocab = previous.vocab.copy()  # readers of `previous` keep theirs
        l2g = []
        for s, old in zip(shards, previous.local_to_global, strict=True):
            n_old = len(old)
            if len(s._vocab) == n_old:
                l2g.append(old)
            else:
                new_terms = [s._vocab.term(t) for t in range(n_old, len(s._vocab))]
                l2g.append(np.concatenate([old, _map(vocab, new_terms, True)]))
    params = shards[0].params
    shards = list(shards)
    if params["variant"] in _LOWER_BOUND and impacts:
        # Every shard knows every term, so every query adds the same non-occurrence scores.
        all_terms: list[str] | None = None
        for i, s in enumerate(shards):
            if len(l2g[i]) == len(vocab):
                continue
            if all_terms is None:
                all_terms = _terms(vocab)
            present = np.zeros(len(vocab), dtype=bool)
            present[l2g[i]] = True
            missing = np.flatnonzero(~present)
            grown_vocab = s._vocab.copy()
            _map(grown_vocab, [all_terms[t] for t in missing.tolist()], True)  # appended in order
            nnz = s._term_ptr[-1]
            term_ptr = np.concatenate([s._term_ptr, np.full(len(missing), nnz, dtype=np.int64)])
            # Placeholder non-occurrence scores of the right size; the impacts below replace them.
            nonocc = np.zeros(len(term_ptr) - 1, dtype=np.float32)
            shards[i] = s._replaced(
                _external_stats={"vocab": grown_vocab, "term_ptr": term_ptr, "nonoccurrence": nonocc}
            )
            l2g[i] = np.concatenate([l2g[i], missing.astype(np.int64)])
    df = np.zeros(len(vocab), dtype=np.int64)
    for s, g in zip(shards, l2g, strict=True):
        df[g] += np.diff(s._term_ptr)
    stats = CollectionStats(
        n_docs=sum(len(s) for s in shards),
        total_len=sum(int(s._doc_lens.sum(dtype=np.uint64)) for s in shards),
    )
    if impacts:

        def rescored(item: tuple[BM25Index, np.ndarray], _threads: int) -> BM25Index:
            s, g = item
            imp, non = global_impacts(params, stats, df[g], s._term_ptr, s._docs, s._tfs, s._doc_lens)
            return s._replaced(_external_stats={"impacts": imp, "nonoccurrence": non})

        shards = scatter(list(zip(shards, l2g, strict=True)), rescored, threads)
    return _State(tuple(shards), tuple(l2g), vocab, stats, ids)
