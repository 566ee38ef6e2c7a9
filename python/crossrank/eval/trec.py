"""Read and write TREC run files: ``qid Q0 docid rank score tag``, one line per retrieved document."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

__all__ = ["read_run", "write_run"]


def read_run(path: str | os.PathLike[str]) -> dict[str, dict[str, float]]:
    """Read a TREC run into ``{query id: {doc id: score}}``.

    Lines are split on any whitespace. The six standard fields are read from the front; anything
    after the tag (comments, extra columns) is ignored, and a missing tag is accepted. The second
    field (``Q0``) and the rank are not used: evaluation orders by score. A document listed twice
    for one query keeps its highest score. A UTF-8 byte order mark at the start is dropped.

    Parameters
    ----------
    path : path-like
        The run file (UTF-8).

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        A line with fewer than 5 fields, a score that is not a finite number, or bytes that are
        not UTF-8 (the message gives the file and line).
    """
    run: dict[str, dict[str, float]] = {}
    for lineno, line in text_lines(path):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) < 5:
            raise ValueError(
                f"{path}:{lineno}: expected 'qid Q0 docid rank score [tag]', got {line.strip()!r}"
            )
        qid, _, did, _, raw = parts[:5]
        try:
            score = float(raw)
        except ValueError:
            raise ValueError(f"{path}:{lineno}: score {raw!r} is not a number") from None
        if not math.isfinite(score):
            raise ValueError(f"{path}:{lineno}: score {raw!r} is not finite")
        docs = run.setdefault(qid, {})
        if did not in docs or score > docs[did]:
            docs[did] = score
    return run


def text_lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, str]]:
    """Yield (line number, line) of a UTF-8 text file; a byte order mark opening a line is dropped
    (the file's, or that of a file concatenated to it, e.g. by ``cat a.trec b.trec``).

    Parameters
    ----------
    path : path-like
        The file.

    Raises
    ------
    ValueError
        A line that is not UTF-8 (the message gives the file and line).
    """
    with open(Path(path), "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            while raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(
                    f"{path}:{lineno}: not UTF-8 text ({exc.reason}); re-encode the file"
                ) from None


def write_run(
    run: Mapping[str, Mapping[str, float]], path: str | os.PathLike[str], *, tag: str = "crossrank"
) -> None:
    """Write ``{query id: {doc id: score}}`` as a TREC run, each query ranked like trec_eval.

    Ranks start at 1; scores are written with ``repr`` precision so reading them back is exact.
    Everything is checked before the file is written.

    Parameters
    ----------
    run : mapping of str to mapping of str to float
        Query id -> {doc id -> score}.
    path : path-like
        The file to write.
    tag : str
        The run name in the last column.

    Raises
    ------
    ValueError
        An id or the tag contains whitespace, a query id starts with U+FEFF (the format could not be
        read back), or a score is NaN or infinite (:func:`read_run` refuses those).
    """
    from .evaluate import rank_documents

    if not tag or any(c.isspace() for c in tag):
        raise ValueError(f"tag {tag!r} must be non-empty and contain no whitespace")
    lines: list[str] = []
    for qid, docs in run.items():
        if not qid or any(c.isspace() for c in qid) or qid.startswith("\ufeff"):
            # A leading U+FEFF would be read back as a byte order mark and dropped.
            raise ValueError(f"query id {qid!r} is empty, contains whitespace or starts with U+FEFF")
        for rank, did in enumerate(rank_documents(docs), 1):
            if not did or any(c.isspace() for c in did):
                raise ValueError(f"doc id {did!r} of query {qid!r} is empty or contains whitespace")
            score = float(docs[did])
            if not math.isfinite(score):
                raise ValueError(
                    f"score {score} of doc {did!r} for query {qid!r} is not finite; give it a number"
                )
            lines.append(f"{qid} Q0 {did} {rank} {score!r} {tag}\n")
    Path(path).write_text("".join(lines), encoding="utf-8")
