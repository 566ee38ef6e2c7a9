"""Token ids of pointwise prompts: the per-query prefix, the documents and the template's tail.

The prefix (everything before ``{document}``, instruction and query filled in) is tokenized as one text;
spaces that end it move to the front of the document (``"<Document>: " + doc`` tokenizes as
``"<Document>:"`` then ``" doc"``), so the pieces' ids equal those of the whole prompt wherever the
pretokenizer splits there (always for byte-level BPE vocabularies such as Qwen's when the document starts
with a non-space character). The tail is tokenized once. Only the document is ever cut; a query too long
to leave the document room is cut first (to ``max_query_length`` tokens, the pair is flagged truncated).

Templates with ``length_rule="body"`` (mxbai-rerank) follow that library instead: the text before the first
slot, the instruction-and-query piece and the text up to the document are tokenized apart (a query ending in
"?" then keeps "?" and the newline after it as two tokens, as the library sends them), the piece is cut to
3/4 of the body by ids, and ``max_length`` bounds the body, the template's own text coming on top.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from .template import PromptTemplate

__all__ = ["PromptEncoder", "QueryPrefix"]


class QueryPrefix:
    """A query's prefix ids, and whether the query had to be cut (immutable by convention; shared).

    Parameters
    ----------
    ids : numpy.ndarray
        int64 ids of the prompt before the document.
    query_cut : bool
        The query was cut to ``max_query_length`` tokens.
    """

    __slots__ = ("ids", "query_cut")

    def __init__(self, ids: np.ndarray, query_cut: bool) -> None:
        self.ids = ids
        self.query_cut = query_cut


class PromptEncoder:
    """Tokenizes prefixes, documents and the tail of one template (thread-safe: only reads the tokenizer).

    Parameters
    ----------
    tokenizer : tokenizers.Tokenizer
        The model's tokenizer (no padding, no truncation).
    template : PromptTemplate
        The prompt.
    max_length : int
        Tokens per prompt (``length_rule="body"``: per body; :attr:`max_length` is then the prompt's bound).
    max_query_length : int, optional
        Query tokens kept at most; default half of what the template leaves (``length_rule="body"``:
        tokens of the instruction-and-query piece, default 3/4 of the body).
    positions : int, optional
        The model's position limit: with ``length_rule="body"`` the body shrinks so that the whole
        prompt stays within it.

    Raises
    ------
    ValueError
        ``max_length`` too short for the template (with the default instruction) plus two tokens.
    """

    def __init__(
        self,
        tokenizer: Any,
        template: PromptTemplate,
        max_length: int,
        max_query_length: int | None = None,
        positions: int | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.template = template
        head, tail = template.split("", None)
        self.lead = " " * (len(head) - len(head.rstrip(" ")))
        self.tail_ids = self._ids(tail)
        self.by_body = template.length_rule == "body"
        self.body_length: int | None = None
        if self.by_body:
            start, _, _ = template.body_pieces("", None)
            self.start_ids = self._ids(start)
            outside = len(self.start_ids) + len(self.tail_ids)
            body = max_length if positions is None else max(1, min(max_length, positions - outside))
            self.body_length = body
            max_length = body + outside
        self.max_length = max_length
        fixed = len(self._ids(head.rstrip(" "))) + len(self.tail_ids)
        self.template_tokens = fixed
        if max_length < fixed + 2:
            raise ValueError(
                f"max_length={max_length} is shorter than the {template.name!r} template needs: its text takes "
                f"{fixed} tokens (default instruction included), plus at least 2 for the query and document; "
                f"pass max_length >= {fixed + 2}"
            )
        room = max_length - fixed
        if max_query_length is not None:
            self.max_query_length = max_query_length
        elif self.body_length is not None:
            self.max_query_length = max(1, self.body_length * 3 // 4)
        else:
            self.max_query_length = max(1, room // 2)
        self._lock = threading.Lock()
        self._prefixes: dict[tuple[str, str | None], QueryPrefix] = {}

    def _ids(self, text: str) -> np.ndarray:
        return np.asarray(self.tokenizer.encode(text, add_special_tokens=False).ids, dtype=np.int64)

    def document_text(self, document: str) -> str:
        """The text whose ids follow the prefix (the prefix's trailing spaces, then the document).

        Parameters
        ----------
        document : str
            The document.
        """
        return self.lead + document

    def prefix(self, query: str, instruction: str | None) -> QueryPrefix:
        """Return the ids of the prompt before the document for ``query`` (cached per query).

        Parameters
        ----------
        query : str
            The query.
        instruction : str, optional
            None uses the template's default.

        Raises
        ------
        ValueError
            The instruction alone leaves no room for a document.
        """
        key = (query, instruction)
        with self._lock:
            hit = self._prefixes.get(key)
        if hit is not None:
            return hit
        if self.by_body:
            ids, cut = self._body_prefix(query, instruction)
        else:
            q_ids = self.tokenizer.encode(query, add_special_tokens=False)
            cut = len(q_ids.ids) > self.max_query_length
            text = query[: q_ids.offsets[self.max_query_length - 1][1]] if cut else query
            head, _ = self.template.split(text, instruction)
            ids = self._ids(head.rstrip(" "))
        if len(ids) + len(self.tail_ids) + 2 > self.max_length:
            raise ValueError(
                f"the prompt before the document takes {len(ids)} tokens (instruction and query "
                f"included, the query cut to {self.max_query_length} tokens) and the tail "
                f"{len(self.tail_ids)}: no room for a document within max_length={self.max_length}; "
                "shorten the instruction or raise max_length"
            )
        got = QueryPrefix(ids, cut)
        with self._lock:
            if len(self._prefixes) > 4096:  # a server sees many queries: keep the dict bounded
                self._prefixes.clear()
            self._prefixes[key] = got
        return got

    def _body_prefix(self, query: str, instruction: str | None) -> tuple[np.ndarray, bool]:
        """``length_rule="body"``: start, the instruction-and-query piece cut by ids, then the text up to
        the document, each tokenized apart."""
        _, piece, after = self.template.body_pieces(query, instruction)
        piece_ids = self._ids(piece)
        cut = len(piece_ids) > self.max_query_length
        parts = [self.start_ids, piece_ids[: self.max_query_length], self._ids(after.rstrip(" "))]
        return np.concatenate(parts), cut

    def prompt_ids(self, query: str, document: str, instruction: str | None = None) -> np.ndarray:
        """The whole prompt's ids as crossrank builds them, before any cut of the document.

        Parameters
        ----------
        query, document : str
            The pair.
        instruction : str, optional
            None uses the template's default.
        """
        pre = self.prefix(query, instruction).ids
        return np.concatenate([pre, self._ids(self.document_text(document)), self.tail_ids])
