"""Adapt crossrank's models to what the server calls: :class:`ServedReranker` and :class:`EmbedderModel`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from itertools import groupby
from typing import Any

import numpy as np

from ..types import Reranker, Scores
from .model import PairPredictor, PairScores

# A first guess of characters per token when cutting a document to a token count; grown x4 when short.
_CHARS_PER_TOKEN = 6

#: One merged item of a rerank step: (request key, query, document). Every request gets its own key,
#: and its items are contiguous in a step, so consecutive equal keys are exactly one request.
RerankItem = tuple[int, str, str]


class ServedReranker:
    """Any :class:`crossrank.types.Reranker` as the server's rerank model.

    The server's single inference thread is the only caller of the wrapped reranker (and of this
    adapter's :meth:`score_items`), so a reranker that is not safe to share across threads can be
    served too; :meth:`truncate_document` runs on worker threads and touches only a tokenizer.

    One step of merged requests becomes **one** call: ``reranker.score_batch(queries,
    documents_per_query)`` with one query per request, so every kind packs work across concurrent
    requests (a cross-encoder plans all their pairs together, a dense or ColBERT reranker embeds all
    their documents together, an LLM reranker runs their windows concurrently). A reranker that also
    meets :class:`~crossrank.server.model.PairPredictor` (crossrank's :class:`~crossrank.CrossEncoder`)
    is called through ``predict(pairs, return_details=True)`` instead: the same single plan over every
    pair, plus the raw logits (TEI's ``raw_scores``) and per-pair token counts (usage). Its relevance is
    exactly what its ``rank`` returns as ``score`` (the model's activation; for two-label models the
    softmax probability of label 1). Other rerankers have no activation: raw scores are their scores,
    and token usage is reported when their :attr:`Scores.stats <crossrank.types.Scores.stats>` carry a
    ``"tokens"`` count.

    Parameters
    ----------
    reranker : Reranker
        The model: a :class:`~crossrank.CrossEncoder`, :class:`~crossrank.DenseReranker`,
        :class:`~crossrank.ColBERTReranker`, :class:`~crossrank.LLMReranker` or any object with
        ``score``, ``score_batch`` and ``rank``.
    name : str, optional
        Reported in responses and ``/health``; default: the reranker's ``name`` attribute, else its
        class name.

    Raises
    ------
    TypeError
        ``reranker`` lacks the protocol's methods.
    ValueError
        A pair predictor with more than two labels (a reranker needs one relevance score).
    """

    def __init__(self, reranker: Reranker, name: str | None = None) -> None:
        if not isinstance(reranker, Reranker):
            raise TypeError(
                f"the server needs a reranker with score, score_batch and rank (crossrank.types.Reranker); "
                f"got {type(reranker).__name__}"
            )
        self.reranker = reranker
        self.name = str(name if name is not None else getattr(reranker, "name", type(reranker).__name__))
        self.predictor: PairPredictor | None = reranker if isinstance(reranker, PairPredictor) else None
        self.num_labels = int(self.predictor.num_labels) if self.predictor is not None else 1
        if self.num_labels > 2:
            raise ValueError(
                f"a rerank server needs a one- or two-label cross-encoder; this one has {self.num_labels} labels"
            )
        self.max_length = _max_length(reranker)
        self._tokenizer: Any = None
        self._tokenizer_loaded = False

    def __repr__(self) -> str:
        return f"ServedReranker({self.reranker!r}, name={self.name!r})"

    # -- scoring (inference thread) -----------------------------------------------------------
    def score_items(self, items: Sequence[RerankItem]) -> PairScores:
        """Score the merged items of one step, in order (called on the inference thread only).

        Parameters
        ----------
        items : sequence of (int, str, str)
            ``(request key, query, document)``; one request's items are contiguous and share a key.

        Returns
        -------
        PairScores
            One row per item.
        """
        if self.predictor is not None:
            return self._predict(self.predictor, [(q, d) for _, q, d in items])
        queries: list[str] = []
        docs: list[list[str]] = []
        for _, group in groupby(items, key=lambda item: item[0]):
            rows = list(group)
            queries.append(rows[0][1])
            docs.append([d for _, _, d in rows])
        results = self.reranker.score_batch(queries, docs)
        if len(results) != len(queries):
            raise RuntimeError(
                f"{type(self.reranker).__name__}.score_batch returned {len(results)} results for "
                f"{len(queries)} queries"
            )
        return PairScores.concat([_rows(s, len(d)) for s, d in zip(results, docs, strict=True)])

    def _predict(self, predictor: PairPredictor, pairs: list[tuple[str, str]]) -> PairScores:
        pred = predictor.predict(pairs, return_details=True)
        logits = np.asarray(pred.logits, dtype=np.float32).reshape(len(pairs), self.num_labels)
        if self.num_labels == 1:
            relevance = np.asarray(pred.scores, dtype=np.float32).reshape(len(pairs))
            raw = logits[:, 0]
        else:
            # As CrossEncoder.rank: the probability of label 1 ("relevant").
            z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
            e = np.exp(z)
            relevance = (e[:, 1] / e.sum(axis=1)).astype(np.float32)
            raw = logits[:, 1]
        return PairScores(
            logits=np.ascontiguousarray(raw),
            relevance=relevance,
            truncated=np.asarray(pred.truncated, dtype=bool).reshape(len(pairs)),
            num_tokens=np.asarray(pred.n_tokens, dtype=np.int64).reshape(len(pairs)),
        )

    # -- Cohere's max_tokens_per_doc (worker threads) -----------------------------------------
    def truncate_document(self, text: str, max_tokens: int) -> tuple[str, bool]:
        """Cut ``text`` after its ``max_tokens``-th token; return the prefix and whether it was cut.

        Tokens are those of the model's own tokenizer (no special tokens); a reranker with a
        ``truncate_document`` method decides itself; one without a local tokenizer (an LLM reranker)
        counts whitespace-separated words. Long texts are tokenized as a growing prefix, dropping the
        pieces of the prefix's last (possibly cut) word, so a 1 MB document costs about as much as a
        page.

        Parameters
        ----------
        text : str
            The document.
        max_tokens : int
            Tokens to keep (>= 1).

        Raises
        ------
        ValueError
            ``max_tokens`` < 1.
        """
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
        own = getattr(self.reranker, "truncate_document", None)
        if callable(own):
            cut, was_cut = own(text, max_tokens)
            return str(cut), bool(was_cut)
        tokenizer = self._load_tokenizer()
        if tokenizer is None:
            words = text.split()
            if len(words) <= max_tokens:
                return text, False
            return " ".join(words[:max_tokens]), True
        budget = (max_tokens + 1) * _CHARS_PER_TOKEN + 64
        while True:
            prefix = text[:budget]
            enc = tokenizer.encode(prefix, add_special_tokens=False)
            n = len(enc.ids)
            if len(prefix) == len(text):
                if n <= max_tokens:
                    return text, False
                return text[: enc.offsets[max_tokens - 1][1]], True
            words = enc.word_ids
            keep = n
            while keep > 0 and words[keep - 1] == words[-1]:
                keep -= 1
            if keep > max_tokens:
                return text[: enc.offsets[max_tokens - 1][1]], True
            budget *= 4

    def _load_tokenizer(self) -> Any:
        """The model's ``tokenizer.json`` (loaded once, our own copy), or None when it has none."""
        if not self._tokenizer_loaded:
            r: Any = self.reranker
            files = getattr(r, "files", None) or getattr(getattr(r, "embedder", None), "files", None)
            path = getattr(files, "tokenizer_path", None)
            if path is not None and os.path.exists(path):
                from ..text.tokenization import load_tokenizer

                self._tokenizer = load_tokenizer(path)
            self._tokenizer_loaded = True
        return self._tokenizer


def _rows(scores: Scores, n: int) -> PairScores:
    """One query's :class:`Scores` as rows (raw = relevance: the protocol has no activation)."""
    if len(scores) != n:
        raise RuntimeError(f"the reranker returned {len(scores)} scores for {n} documents")
    tokens = scores.stats.get("tokens") if scores.stats else None
    counts = None
    if tokens is not None and n:
        counts = np.zeros(n, np.int64)
        counts[0] = int(tokens)
    return PairScores(scores.scores, scores.scores, scores.truncated, counts)


def _max_length(reranker: Any) -> int | None:
    """The model's token limit per document (pair), when it has one: for ``/health`` and messages."""
    for owner, attr in (
        (reranker, "max_length"),  # CrossEncoder (per pair)
        (getattr(reranker, "embedder", None), "max_length"),  # DenseReranker (per document)
        (getattr(reranker, "settings", None), "doc_maxlen"),  # ColBERTReranker (per document)
    ):
        value = getattr(owner, attr, None) if owner is not None else None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


class EmbedderModel:
    """A :class:`crossrank.Embedder` as an :class:`~crossrank.server.model.EmbedModel`.

    Called only from the server's inference thread (one step at a time).

    Parameters
    ----------
    embedder : Embedder
        The embedder (raw vectors: the server L2-normalizes per request).
    name : str
        Reported in ``/health``.
    """

    def __init__(self, embedder: Any, name: str) -> None:
        self.embedder = embedder
        self.name = name

    @classmethod
    def load(cls, model: str, *, num_threads: int | None = None) -> EmbedderModel:
        """Load a sentence-transformers model exported to ONNX (see :class:`crossrank.Embedder`).

        Parameters
        ----------
        model : str
            Directory, ``.onnx`` file or hub id; a ``dense:`` prefix (the reranker spec form) is allowed.
        num_threads : int, optional
            Inference threads (None: the CPU quota).
        """
        from ..models.embedder import Embedder

        # Raw vectors: the server L2-normalizes per request (TEI's "normalize", default true).
        path = model.removeprefix("dense:")
        return cls(Embedder(path, num_threads=num_threads, normalize=False), name=str(model))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``: float32 ``[len(texts), dim]``.

        Parameters
        ----------
        texts : sequence of str
            The texts.
        """
        return np.asarray(self.embedder.encode(list(texts)), dtype=np.float32)
