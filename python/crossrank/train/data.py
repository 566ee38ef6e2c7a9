"""Training data: a corpus, train queries with judged positives, and a dev split carved from them.

Two layouts are read: a BEIR folder with ``qrels/train.tsv`` (the usual case), or any corpus folder plus
explicit TREC/BEIR qrels and a queries file. The dev split is drawn (seeded) from the *train* queries
only, and any query that also has test judgements is left out of both, so model selection never sees
test queries.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..eval.datasets import read_corpus, read_qrels, read_queries
from ..eval.trec import text_lines

__all__ = ["TrainData", "load_train_data", "read_query_file", "split_dev"]


@dataclass
class TrainData:
    """A corpus with train and dev queries.

    Attributes
    ----------
    doc_ids, docs : list of str
        Document ids and their texts (title + " " + body), aligned.
    queries : dict of str to str
        Query id -> text, for every train and dev query.
    qrels : dict of str to dict of str to int
        Train judgements (query id -> {doc id -> grade}) of the train and dev queries.
    train_qids, dev_qids : list of str
        Disjoint; both drawn from the train judgements, never from test.
    skipped : dict of str to list of str
        Query ids left out, by reason (``"no_positive"``, ``"no_text"``, ``"in_test"``,
        ``"unknown_docs"``).
    test_qids : frozenset of str
        Queries judged in ``qrels/test.tsv`` (excluded from training and dev).
    """

    doc_ids: list[str]
    docs: list[str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    train_qids: list[str]
    dev_qids: list[str]
    skipped: dict[str, list[str]] = field(default_factory=dict)
    test_qids: frozenset[str] = frozenset()

    def positives(self, qid: str) -> list[str]:
        """Judged relevant documents (grade > 0) of ``qid``, in id order."""
        return sorted(d for d, g in self.qrels.get(qid, {}).items() if g > 0)

    def n_positives(self, qids: list[str]) -> int:
        """Total judged positives over ``qids``."""
        return sum(len(self.positives(q)) for q in qids)

    def summary(self) -> dict[str, object]:
        """Counts for logs and the model card."""
        return {
            "documents": len(self.doc_ids),
            "train_queries": len(self.train_qids),
            "train_positives": self.n_positives(self.train_qids),
            "dev_queries": len(self.dev_qids),
            "dev_positives": self.n_positives(self.dev_qids),
            "skipped": {k: len(v) for k, v in self.skipped.items()},
        }


def read_query_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read queries from ``queries.jsonl`` (``_id``, ``text``) or a TSV file (``qid<TAB>text``)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"queries file {p} not found")
    if p.suffix == ".jsonl":
        return read_queries(p)
    out: dict[str, str] = {}
    for lineno, line in text_lines(p):  # drops a BOM; bytes that are not UTF-8 name the file and line
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        if "\t" not in line:
            # One JSON object per line without the .jsonl suffix is accepted too.
            if line.lstrip().startswith("{"):
                try:
                    rec = json.loads(line)
                except (json.JSONDecodeError, RecursionError) as exc:
                    raise ValueError(f"{p}:{lineno}: not valid JSON ({exc})") from None
                if not isinstance(rec, dict) or rec.get("_id") is None:
                    raise ValueError(f"{p}:{lineno}: expected an object with a non-null '_id' field")
                out[str(rec["_id"])] = str(rec.get("text") or "")
                continue
            raise ValueError(f"{p}:{lineno}: expected 'query-id<TAB>text'")
        qid, text = line.split("\t", 1)
        out[qid] = text
    return out


def split_dev(qids: list[str], dev: float | int, seed: int) -> tuple[list[str], list[str]]:
    """Split query ids into (train, dev) with a seeded permutation.

    Parameters
    ----------
    qids : list of str
        Candidate query ids (sorted by the caller for reproducibility).
    dev : float or int
        Fraction in [0, 1) of the queries, or a count >= 0.
    seed : int
        Seed of the permutation.
    """
    n = len(qids)
    if isinstance(dev, bool) or not isinstance(dev, (int, float)):
        raise TypeError(f"dev_queries must be a fraction or a count, got {type(dev).__name__}")
    if isinstance(dev, float):
        if not 0.0 <= dev < 1.0:
            raise ValueError(f"dev_queries as a fraction must be in [0, 1), got {dev}")
        n_dev = round(n * dev)
    else:
        if dev < 0:
            raise ValueError(f"dev_queries must be >= 0, got {dev}")
        n_dev = dev
    if n_dev >= n:
        raise ValueError(f"dev_queries={dev} leaves no training queries out of {n}")
    order = np.random.default_rng(seed).permutation(n)
    dev_set = {qids[i] for i in order[:n_dev]}
    return [q for q in qids if q not in dev_set], [q for q in qids if q in dev_set]


def load_train_data(
    dataset: str | os.PathLike[str],
    *,
    qrels: str | os.PathLike[str] | None = None,
    queries: str | os.PathLike[str] | None = None,
    dev_queries: float | int = 0.1,
    seed: int = 0,
    max_queries: int | None = None,
) -> TrainData:
    """Load a corpus and its training judgements, and carve a dev split from the train queries.

    Parameters
    ----------
    dataset : path-like
        Folder with ``corpus.jsonl`` (and, for the BEIR layout, ``queries.jsonl`` and
        ``qrels/train.tsv``).
    qrels : path-like, optional
        Training judgements (TREC ``qid 0 docid grade`` or BEIR TSV) instead of ``qrels/train.tsv``.
    queries : path-like, optional
        Queries (``.jsonl`` or ``qid<TAB>text``) instead of ``queries.jsonl``.
    dev_queries : float or int
        Dev split size: a fraction of the usable train queries, or a count.
    seed : int
        Seed of the dev split.
    max_queries : int, optional
        Use only the first N usable train queries (in id order) before the dev split (quick runs).

    Raises
    ------
    FileNotFoundError
        No corpus, no queries, or no training judgements (the message says what to pass).
    ValueError
        No usable training query (every query lacks a positive, a text, or known documents).
    """
    root = Path(dataset)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset {root} is not a folder (expected corpus.jsonl inside)")
    corpus = root / "corpus.jsonl"
    if not corpus.is_file():
        raise FileNotFoundError(f"{corpus} not found: the dataset folder needs a corpus.jsonl")
    qrels_path = Path(qrels) if qrels is not None else root / "qrels" / "train.tsv"
    if not qrels_path.is_file():
        if qrels is None:
            raise FileNotFoundError(
                f"dataset {root} has no train split (qrels/train.tsv): training needs judged train "
                "queries; pass qrels=/--qrels with TREC or BEIR judgements (never the test split)"
            )
        raise FileNotFoundError(f"qrels file {qrels_path} not found")
    queries_path = Path(queries) if queries is not None else root / "queries.jsonl"
    all_queries = read_query_file(queries_path)
    train_qrels = read_qrels(qrels_path)
    test_path = root / "qrels" / "test.tsv"
    test_qids = frozenset(read_qrels(test_path)) if test_path.is_file() else frozenset()
    if qrels is not None and qrels_path.resolve() == test_path.resolve():
        raise ValueError(f"{qrels_path} is the test split: train on training judgements, never on test")

    doc_ids, titles, texts = read_corpus(corpus)
    docs = [f"{t} {x}" if t and x else (t or x) for t, x in zip(titles, texts, strict=True)]
    known = set(doc_ids)
    skipped: dict[str, list[str]] = {"no_positive": [], "no_text": [], "in_test": [], "unknown_docs": []}
    usable: list[str] = []
    for qid in sorted(train_qrels, key=_id_key):
        judged = train_qrels[qid]
        pos = [d for d, g in judged.items() if g > 0]
        if qid in test_qids:
            skipped["in_test"].append(qid)
        elif not all_queries.get(qid, "").strip():
            skipped["no_text"].append(qid)
        elif not pos:
            skipped["no_positive"].append(qid)
        elif not any(d in known for d in pos):
            skipped["unknown_docs"].append(qid)
        else:
            usable.append(qid)
    if max_queries is not None:
        usable = usable[:max_queries]
    if not usable:
        counts = ", ".join(f"{k}: {len(v)}" for k, v in skipped.items() if v)
        raise ValueError(
            f"no usable training query in {qrels_path} ({len(train_qrels)} judged; skipped {counts}): "
            "every query needs a text and at least one judged positive (grade > 0) in the corpus"
        )
    # Judgements naming documents outside the corpus cannot be trained on: drop them.
    kept = {q: {d: g for d, g in train_qrels[q].items() if d in known} for q in usable}
    train_qids, dev_qids = split_dev(usable, dev_queries, seed)
    return TrainData(
        doc_ids=doc_ids,
        docs=docs,
        queries={q: all_queries[q] for q in usable},
        qrels=kept,
        train_qids=train_qids,
        dev_qids=dev_qids,
        skipped={k: v for k, v in skipped.items() if v},
        test_qids=test_qids,
    )


def _id_key(qid: str) -> tuple[int, int | str]:
    # Numeric ids in numeric order, then the rest as strings: stable across platforms.
    return (0, int(qid)) if qid.isdigit() else (1, qid)
