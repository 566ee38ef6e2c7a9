"""Load test collections in BEIR layout: corpus.jsonl, queries.jsonl, qrels/<split>.tsv.

A BEIR folder holds ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl`` (``_id``,
``text``) and ``qrels/<split>.tsv`` (``query-id  corpus-id  score`` with a header line).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .trec import text_lines

__all__ = [
    "BeirDataset",
    "doc_text",
    "fetch_dataset",
    "load_beir",
    "read_corpus",
    "read_qrels",
    "read_queries",
]


@dataclass
class BeirDataset:
    """A BEIR collection held in memory (made by :func:`load_beir`).

    Attributes
    ----------
    path : Path
        The BEIR folder it was read from.
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
    """Join a title and a body the way BEIR retrievers do (title, space, text).

    Parameters
    ----------
    title : str
        Document title; "" when absent (then the body is returned alone).
    text : str
        Document body; "" when absent (then the title is returned alone).
    """
    if title and text:
        return f"{title} {text}"
    return title or text


def _read_jsonl(path: Path) -> Iterator[tuple[int, str, dict[str, object]]]:
    """Yield (line number, id, record) of each non-blank line; the id is checked here."""
    for lineno, line in text_lines(path):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise ValueError(f"{path}:{lineno}: not valid JSON ({getattr(exc, 'msg', exc)})") from None
        if not isinstance(rec, dict) or "_id" not in rec:
            raise ValueError(f"{path}:{lineno}: expected an object with an '_id' field")
        raw = rec["_id"]
        if isinstance(raw, bool) or not isinstance(raw, (str, int)):
            what = "null" if raw is None else type(raw).__name__
            raise ValueError(f"{path}:{lineno}: '_id' must be a str (or an int), got {what}")
        rec_id = str(raw)
        if not rec_id.strip():
            raise ValueError(f"{path}:{lineno}: '_id' is empty")
        yield lineno, rec_id, rec


def _text_field(rec: dict[str, object], key: str, path: Path, lineno: int) -> str:
    value = rec.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{path}:{lineno}: '{key}' must be a str or null, got {type(value).__name__}")
    return value


def read_corpus(path: str | os.PathLike[str]) -> tuple[list[str], list[str], list[str]]:
    """Read ``corpus.jsonl`` into (doc_ids, titles, texts).

    Parameters
    ----------
    path : path-like
        The JSONL file (UTF-8; a byte order mark is dropped).

    Raises
    ------
    ValueError
        A line that is not a JSON object, a missing, null or empty ``_id``, a duplicate id, or a
        ``title`` / ``text`` that is not a string (the message gives the file and line).
    """
    path = Path(path)
    ids: list[str] = []
    titles: list[str] = []
    texts: list[str] = []
    seen: dict[str, int] = {}
    for lineno, doc_id, rec in _read_jsonl(path):
        if doc_id in seen:
            raise ValueError(
                f"{path}:{lineno}: duplicate document id {doc_id!r} (first on line {seen[doc_id]})"
            )
        seen[doc_id] = lineno
        ids.append(doc_id)
        titles.append(_text_field(rec, "title", path, lineno))
        texts.append(_text_field(rec, "text", path, lineno))
    return ids, titles, texts


def read_queries(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read ``queries.jsonl`` into {query id: text}.

    Parameters
    ----------
    path : path-like
        The JSONL file (UTF-8; a byte order mark is dropped).

    Raises
    ------
    ValueError
        As :func:`read_corpus` (for ``text``).
    """
    path = Path(path)
    queries: dict[str, str] = {}
    seen: dict[str, int] = {}
    for lineno, qid, rec in _read_jsonl(path):
        if qid in seen:
            raise ValueError(f"{path}:{lineno}: duplicate query id {qid!r} (first on line {seen[qid]})")
        seen[qid] = lineno
        queries[qid] = _text_field(rec, "text", path, lineno)
    return queries


# Last column names of a qrels header line ("query-id corpus-id score" in BEIR).
_INTEGER = re.compile(r"[+-]?[0-9]+")
_HEADER_NAMES = frozenset({"score", "relevance", "rel", "grade", "label", "judgment", "judgement"})


def read_qrels(path: str | os.PathLike[str]) -> dict[str, dict[str, int]]:
    """Read a BEIR qrels TSV (header optional) or a TREC qrels file into {qid: {docid: grade}}.

    The first line is a header only when its last column is a column name (``score``,
    ``relevance``, ...); any other line must be ``query-id corpus-id grade`` or TREC's
    ``query-id iteration doc-id grade`` with an integer grade.

    Parameters
    ----------
    path : path-like
        The qrels file (UTF-8; a byte order mark is dropped).

    Raises
    ------
    ValueError
        A malformed line, or a grade that is not an integer (``nan``, ``None``, ``1.5``); the
        message gives the file and line.
    """
    qrels: dict[str, dict[str, int]] = {}
    first = True
    for lineno, line in text_lines(path):
        parts = line.split()
        if not parts:
            continue
        if first and len(parts) in (3, 4) and parts[-1].lower() in _HEADER_NAMES:
            first = False
            continue  # header line
        first = False
        if len(parts) == 3:
            qid, did, grade = parts
        elif len(parts) == 4:  # TREC: qid iteration docid grade
            qid, _, did, grade = parts
        else:
            raise ValueError(f"{path}:{lineno}: expected 'query-id corpus-id score', got {line.strip()!r}")
        if not _INTEGER.fullmatch(grade):
            raise ValueError(f"{path}:{lineno}: relevance {grade!r} is not an integer")
        qrels.setdefault(qid, {})[did] = int(grade)
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


def _find_beir_root(folder: Path) -> Path:
    """Return the folder under ``folder`` (itself or one level down) that holds corpus.jsonl."""
    if (folder / "corpus.jsonl").is_file():
        return folder
    subs = [d for d in sorted(folder.iterdir()) if d.is_dir() and (d / "corpus.jsonl").is_file()]
    if len(subs) == 1:
        return subs[0]
    raise FileNotFoundError(f"{folder} holds no BEIR dataset (no corpus.jsonl at the top or one level down)")


def _safe_extract(zip_path: Path, dest: Path) -> None:
    """Unzip into ``dest``, refusing members that would land outside it (zip slip)."""
    tmp = dest.with_name(dest.name + f".part{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with zipfile.ZipFile(zip_path) as zf:
            root = tmp.resolve()
            for member in zf.infolist():
                target = (tmp / member.filename).resolve()
                if root != target and root not in target.parents:
                    raise ValueError(
                        f"{zip_path}: member {member.filename!r} would extract outside the folder"
                    )
            zf.extractall(tmp)
    except zipfile.BadZipFile:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ValueError(
            f"{zip_path} is not a valid zip file (truncated download?); delete it and retry"
        ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.replace(tmp, dest)


def _download(url: str, dest: Path, *, show_progress: bool) -> None:
    part = dest.with_name(dest.name + f".part{os.getpid()}")
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(part, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) or None
            bar = None
            if show_progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {dest.name}")
            try:
                while chunk := resp.read(1 << 20):
                    out.write(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
            finally:
                if bar is not None:
                    bar.close()
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise FileNotFoundError(f"cannot download {url}: {exc}; check the URL or your connection") from None
    os.replace(part, dest)


def fetch_dataset(
    source: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None, show_progress: bool = True
) -> Path:
    """Return a local BEIR folder for a folder, a ``.zip`` file, or a download URL of one.

    A zip (local or downloaded, e.g. ``https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/
    datasets/scifact.zip``) is extracted once into ``<cache_dir>/datasets/<name>`` (default cache:
    ``$CROSSRANK_CACHE`` or ``~/.cache/crossrank``) and reused afterwards.

    Parameters
    ----------
    source : str or path-like
        A BEIR folder (holding corpus.jsonl, or with one subfolder that does), a local ``.zip``, or
        an ``http(s)://`` / ``file://`` URL of a zip.
    cache_dir : path-like, optional
        Where zips are downloaded and extracted (under ``datasets/``); None uses crossrank's
        cache directory. Unused when ``source`` is a folder.
    show_progress : bool
        Show a tqdm bar while downloading.

    Returns
    -------
    Path
        The folder that holds corpus.jsonl.

    Raises
    ------
    FileNotFoundError
        The path does not exist, the download fails, or the archive holds no corpus.jsonl.
    ValueError
        The file is not a zip, or a member would extract outside the cache folder.
    """
    text = os.fspath(source)
    scheme = urllib.parse.urlparse(text).scheme
    if scheme not in ("http", "https", "file"):
        path = Path(text).expanduser()
        if path.is_dir():
            return _find_beir_root(path)
        if not path.exists():
            raise FileNotFoundError(f"dataset {text!r} not found: pass a BEIR folder, a .zip file or a URL")
        if not zipfile.is_zipfile(path):
            raise ValueError(f"{path} is neither a folder nor a zip file")
    if cache_dir is None:
        from ..models.hub import cache_dir as default_cache

        cache_dir = default_cache()
    root = Path(cache_dir) / "datasets"
    root.mkdir(parents=True, exist_ok=True)
    name = Path(urllib.parse.urlparse(text).path if scheme else text).name
    stem = name[:-4] if name.endswith(".zip") else name
    dest = root / stem
    if dest.is_dir():
        return _find_beir_root(dest)
    if scheme:
        zip_path = root / (stem + ".zip")
        if not zip_path.is_file():
            _download(text, zip_path, show_progress=show_progress)
    else:
        zip_path = Path(text).expanduser()
    _safe_extract(zip_path, dest)
    return _find_beir_root(dest)
