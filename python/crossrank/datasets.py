"""Load test collections in BEIR layout: corpus.jsonl, queries.jsonl, qrels/<split>.tsv.

A BEIR folder holds ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl`` (``_id``,
``text``) and ``qrels/<split>.tsv`` (``query-id  corpus-id  score`` with a header line).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["BeirDataset", "doc_text", "load_beir", "read_corpus", "read_qrels", "read_queries"]


@dataclass
class BeirDataset:
    """A BEIR collection held in memory.

    Attributes
    ----------
    doc_ids : list of str
        Document ids in file order.
    titles, texts : list of str
        Title and body of each document, aligned with ``doc_ids`` ("" when absent).
    queries : dict of str to str
        Query id -> query text (only the queries that have judgements in ``qrels`` when loaded
        with ``judged_only=True``).
    qrels : dict of str to dict of str to int
        Query id -> {document id -> graded relevance}.
    """

    path: Path
    doc_ids: list[str] = field(default_factory=list)
    titles: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    queries: dict[str, str] = field(default_factory=dict)
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)

    def documents(self) -> list[str]:
        """Return title + text of each document, the usual BEIR input to a retriever."""
        return [doc_text(t, x) for t, x in zip(self.titles, self.texts, strict=True)]


def doc_text(title: str, text: str) -> str:
    """Join a title and a body the way BEIR retrievers do (title, space, text)."""
    if title and text:
        return f"{title} {text}"
    return title or text


def _read_jsonl(path: Path) -> Iterator[dict]:
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(rec, dict) or "_id" not in rec:
                raise ValueError(f"{path}:{lineno}: expected an object with an '_id' field")
            yield rec


def read_corpus(path: str | os.PathLike) -> tuple[list[str], list[str], list[str]]:
    """Read ``corpus.jsonl`` into (doc_ids, titles, texts). Duplicate ids raise ValueError."""
    ids: list[str] = []
    titles: list[str] = []
    texts: list[str] = []
    seen: set[str] = set()
    for rec in _read_jsonl(Path(path)):
        doc_id = str(rec["_id"])
        if doc_id in seen:
            raise ValueError(f"{path}: duplicate document id {doc_id!r}")
        seen.add(doc_id)
        ids.append(doc_id)
        titles.append(str(rec.get("title") or ""))
        texts.append(str(rec.get("text") or ""))
    return ids, titles, texts


def read_queries(path: str | os.PathLike) -> dict[str, str]:
    """Read ``queries.jsonl`` into {query id: text}."""
    return {str(rec["_id"]): str(rec.get("text") or "") for rec in _read_jsonl(Path(path))}


def read_qrels(path: str | os.PathLike) -> dict[str, dict[str, int]]:
    """Read a BEIR qrels TSV (header optional) or a TREC qrels file into {qid: {docid: grade}}."""
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            if lineno == 1 and not parts[-1].lstrip("-").isdigit():
                continue  # header line
            if len(parts) == 3:
                qid, did, grade = parts
            elif len(parts) == 4:  # TREC: qid iteration docid grade
                qid, _, did, grade = parts
            else:
                raise ValueError(f"{path}:{lineno}: expected 'query-id corpus-id score', got {line!r}")
            try:
                qrels.setdefault(qid, {})[did] = int(grade)
            except ValueError:
                raise ValueError(f"{path}:{lineno}: relevance {grade!r} is not an integer") from None
    return qrels


def load_beir(path: str | os.PathLike, *, split: str = "test", judged_only: bool = True) -> BeirDataset:
    """Load a BEIR-layout folder.

    Parameters
    ----------
    path : path-like
        Folder with corpus.jsonl, queries.jsonl and qrels/<split>.tsv.
    split : str
        Which qrels file to read (``test``, ``train``, ``dev``).
    judged_only : bool
        Keep only the queries that have judgements in that split.

    Raises
    ------
    FileNotFoundError
        The folder or one of its files is missing (the message names it).
    ValueError
        A malformed line (the message gives file and line).
    """
    root = Path(path)
    for name in ("corpus.jsonl", "queries.jsonl"):
        if not (root / name).is_file():
            raise FileNotFoundError(f"{root / name} not found: expected a BEIR folder with {name}")
    ds = BeirDataset(path=root)
    ds.doc_ids, ds.titles, ds.texts = read_corpus(root / "corpus.jsonl")
    ds.queries = read_queries(root / "queries.jsonl")
    qrels_path = root / "qrels" / f"{split}.tsv"
    if qrels_path.is_file():
        ds.qrels = read_qrels(qrels_path)
        if judged_only:
            ds.queries = {q: t for q, t in ds.queries.items() if q in ds.qrels}
    return ds
