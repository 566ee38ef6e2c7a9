"""Read and write TREC run files: ``qid Q0 docid rank score tag``, one line per retrieved document."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["read_run", "write_run"]


def read_run(path: str | os.PathLike) -> dict[str, dict[str, float]]:
    """Read a TREC run into ``{query id: {doc id: score}}``.

    Lines are split on any whitespace. The six standard fields are read from the front; anything
    after the tag (comments, extra columns) is ignored, and a missing tag is accepted. The second
    field (``Q0``) and the rank are not used: evaluation orders by score. A document listed twice
    for one query keeps its highest score.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        A line with fewer than 5 fields, or a score that is not a finite number (message gives
        the file and line).
    """
    run: dict[str, dict[str, float]] = {}
    with open(Path(path), encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
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


def write_run(
    run: Mapping[str, Mapping[str, float]], path: str | os.PathLike, *, tag: str = "crossrank"
) -> None:
    """Write ``{query id: {doc id: score}}`` as a TREC run, each query ranked like trec_eval.

    Ranks start at 1; scores are written with ``repr`` precision so reading them back is exact.

    Raises
    ------
    ValueError
        An id or the tag contains whitespace (the format could not be read back), or a score is NaN.
    """
    from .evaluate import rank_documents

    if not tag or any(c.isspace() for c in tag):
        raise ValueError(f"tag {tag!r} must be non-empty and contain no whitespace")
    lines: list[str] = []
    for qid, docs in run.items():
        if not qid or any(c.isspace() for c in qid):
            raise ValueError(f"query id {qid!r} is empty or contains whitespace")
        for rank, did in enumerate(rank_documents(docs), 1):
            if not did or any(c.isspace() for c in did):
                raise ValueError(f"doc id {did!r} of query {qid!r} is empty or contains whitespace")
            lines.append(f"{qid} Q0 {did} {rank} {float(docs[did])!r} {tag}\n")
    Path(path).write_text("".join(lines), encoding="utf-8")
