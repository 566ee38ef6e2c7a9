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
        # A cross-encoder's limit holds for query + document; dense and ColBERT limit the document.
        self.limit_per_pair = isinstance(getattr(reranker, "max_length", None), int)
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

    # -- TEI's truncation_direction=Left (worker threads) -----------------------------------------
    def can_cut_left(self) -> bool:
        """Whether :meth:`cut_left` works: the model has no token limit, or a tokenizer to count it."""
        return self.max_length is None or self._load_tokenizer() is not None

    def cut_left(self, query: str, text: str) -> tuple[str, bool]:
        """Cut the start of ``text`` so that it fits the model's limit; return the rest and whether cut.

        The limit is :attr:`max_length` tokens of the model's tokenizer, less its special tokens and,
        for a cross-encoder (a limit per pair), the query's tokens. The cut falls on a word start, so
        the kept end re-tokenizes to at most the budget. A reranker without a limit keeps every text.

        Parameters
        ----------
        query : str
            The query (its length counts against a per-pair limit).
        text : str
            The document.

        Raises
        ------
        ValueError
            The reranker has a token limit but no tokenizer to count it with.
        """
        if self.max_length is None:
            return text, False
        tokenizer = self._load_tokenizer()
        if tokenizer is None:
            raise ValueError(
                "truncation_direction Left needs the model's tokenizer.json to count tokens; this reranker "
                "has none: send Right"
            )
        budget = self.max_length - tokenizer.num_special_tokens_to_add(self.limit_per_pair)
        if self.limit_per_pair:
            budget -= len(tokenizer.encode(query, add_special_tokens=False).ids)
        enc = tokenizer.encode(text, add_special_tokens=False)
        n = len(enc.ids)
        if n <= budget:
            return text, False
        start = n - max(budget, 0)
        words = enc.word_ids
        while 0 < start < n and words[start] is not None and words[start] == words[start - 1]:
            start += 1  # keep whole words only
        if start >= n:
            return "", True
        return text[enc.offsets[start][0] :], True

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

    Called only from the server's inference thread (one step at a time), except :meth:`count_tokens`
    and :meth:`input_lengths`, which only tokenize and may run on a worker thread.

    Besides ``embed`` it offers the optional capabilities the server looks for: ``prompts`` (from the
    model's ``config_sentence_transformers.json``), ``left_truncation``, ``matryoshka_dims``,
    ``count_tokens`` and ``max_length`` with ``input_lengths``.

    Parameters
    ----------
    embedder : Embedder
        The embedder (raw vectors: the server L2-normalizes per request).
    name : str
        Reported in ``/health``.
    matryoshka_dims : "any", sequence of int, or None
        Which ``dimensions`` requests may ask for (the first N values of each vector, then
        normalized): ``"any"`` (1 to the model's size), only the listed sizes, or None (the model was
        not trained for it: ``dimensions`` is refused).
    """

    left_truncation = True

    def __init__(
        self, embedder: Any, name: str, *, matryoshka_dims: str | Sequence[int] | None = None
    ) -> None:
        self.embedder = embedder
        self.name = name
        self.prompts: dict[str, str] = dict(getattr(embedder, "prompts", {}) or {})
        self.max_length: int | None = getattr(embedder, "max_length", None)
        self.matryoshka_dims = _check_matryoshka(matryoshka_dims)
        dim = getattr(embedder, "dim", None)
        self.dim: int | None = dim if isinstance(dim, int) else None

    @classmethod
    def load(cls, model: str, *, num_threads: int | None = None, matryoshka: str = "auto") -> EmbedderModel:
        """Load a sentence-transformers model exported to ONNX (see :class:`crossrank.Embedder`).

        Parameters
        ----------
        model : str
            Directory, ``.onnx`` file or hub id; a ``dense:`` prefix (the reranker spec form) is allowed.
        num_threads : int, optional
            Inference threads (None: the CPU quota).
        matryoshka : str
            Which ``dimensions`` to accept: ``"auto"`` (any, when the model card's tags name Matryoshka
            training, as sentence-transformers writes them; else none), ``"any"``, ``"off"``, or a
            comma-separated list of sizes such as ``"768,512,256,128,64"``.
        """
        from ..models.embedder import Embedder

        dims: str | list[int] | None
        if matryoshka in ("auto", "any"):
            dims = "any"
        elif matryoshka == "off":
            dims = None
        else:
            try:
                dims = [int(x) for x in matryoshka.split(",") if x.strip()]
            except ValueError:
                raise ValueError(
                    f"--embed-matryoshka must be auto, any, off or a list of sizes like 768,256,64; "
                    f"got {matryoshka!r}"
                ) from None
            _check_matryoshka(dims)  # before the model loads: a bad flag fails fast
        # Raw vectors: the server L2-normalizes per request (TEI's "normalize", default true).
        path = model.removeprefix("dense:")
        embedder = Embedder(path, num_threads=num_threads, normalize=False)
        embedder.encode(["crossrank"])  # learns the vector size (the bound of ``dimensions``)
        if matryoshka == "auto" and not model_card_says_matryoshka(embedder.files.root):
            dims = None
        return cls(embedder, name=str(model), matryoshka_dims=dims)

    def embed(self, texts: Sequence[str], *, truncation_direction: str = "right") -> np.ndarray:
        """Embed ``texts``: float32 ``[len(texts), dim]``.

        Parameters
        ----------
        texts : sequence of str
            The texts (prompts already prepended by the server).
        truncation_direction : {"right", "left"}
            Which end of a too-long text is cut.
        """
        return np.asarray(
            self.embedder.encode(list(texts), truncation_direction=truncation_direction), dtype=np.float32
        )

    def count_tokens(self, texts: Sequence[str], *, truncation_direction: str = "right") -> list[int]:
        """Tokens fed to the model per text (special tokens included, after truncation).

        Parameters
        ----------
        texts : sequence of str
            The texts, as given to :meth:`embed`.
        truncation_direction : {"right", "left"}
            As in :meth:`embed`.
        """
        counts = self.embedder.count_tokens(list(texts), truncation_direction=truncation_direction)
        return [int(c) for c in counts]

    def input_lengths(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text before any truncation (special tokens included); above ``max_length`` = cut.

        Parameters
        ----------
        texts : sequence of str
            The texts, as given to :meth:`embed`.
        """
        return [int(c) for c in self.embedder.count_tokens(list(texts), truncate=False)]


def _check_matryoshka(dims: str | Sequence[int] | None) -> str | tuple[int, ...] | None:
    if dims is None or dims == "any":
        return dims
    if isinstance(dims, str):
        raise ValueError(f"matryoshka_dims must be 'any', a sequence of sizes or None, got {dims!r}")
    sizes = tuple(int(d) for d in dims)
    if not sizes or any(d < 1 for d in sizes):
        raise ValueError(f"matryoshka sizes must be >= 1, got {list(dims)!r}")
    return tuple(sorted(set(sizes), reverse=True))


def model_card_says_matryoshka(root: Any) -> bool:
    """Whether the model card (``README.md`` front matter) tags Matryoshka training.

    sentence-transformers writes its loss as a tag (``loss:MatryoshkaLoss``), and Matryoshka models
    on the Hugging Face hub carry a ``matryoshka`` tag; only the YAML front matter is read.

    Parameters
    ----------
    root : path-like
        The model directory.
    """
    path = os.path.join(str(root), "README.md")
    if not os.path.isfile(path):
        return False
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read(200_000)
    if not text.startswith("---"):
        return False
    end = text.find("\n---", 3)
    front = text[3:end] if end > 0 else ""
    return "matryoshka" in front.lower()
