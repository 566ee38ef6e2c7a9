"""Text → token ids with Hugging Face ``tokenizers``, and a bounded cache of document token ids.

Texts are encoded **without** special tokens; the packer (``crossrank.text.packing``) adds the model's
template (``[CLS] q [SEP] d [SEP]`` …) read from ``tokenizer.json``'s post-processor.

A reranker sees the same documents again and again while only the query changes, so
:class:`TokenCache` keeps document token ids keyed by a hash of the text (BLAKE2b-128 of its UTF-8
bytes; the text itself is not kept), bounded by a total number of tokens and evicted least recently
used. Hits and misses are counted.

Long texts are tokenized only as far as needed: ``encode(..., max_tokens=n)`` tokenizes a prefix of the
text that is long enough to give more than ``n`` tokens (growing it when it is not), so a 1 MB document
costs about as much as a page, and the ids returned are exactly the first ids of the whole text. An
entry cached as a prefix serves any later request for at most as many tokens.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = ["CacheStats", "TextEncoder", "TokenCache", "load_tokenizer"]

# A first guess of characters per token for a prefix; grown ×4 whenever it falls short.
_CHARS_PER_TOKEN = 6


def load_tokenizer(path: str | os.PathLike[str]) -> Tokenizer:
    """Load ``tokenizer.json`` (a file, or the directory holding it) with padding and truncation off.

    Parameters
    ----------
    path : path-like
        The ``tokenizer.json`` file, or a directory holding one under that name.

    Raises
    ------
    FileNotFoundError
        No ``tokenizer.json`` there.
    crossrank.errors.StateError
        The file is not a ``tokenizers`` JSON.
    """
    from tokenizers import Tokenizer

    from ..errors import StateError

    p = Path(path)
    if p.is_dir():
        p = p / "tokenizer.json"
    if not p.is_file():
        raise FileNotFoundError(f"no tokenizer.json at {p}; save the tokenizer with the model")
    try:
        tok = Tokenizer.from_file(str(p))
    except Exception as exc:
        raise StateError(f"{p} is not a Hugging Face tokenizers file: {exc}") from exc
    tok.no_padding()
    tok.no_truncation()
    return tok


@dataclass(frozen=True)
class CacheStats:
    """Counters of a :class:`TokenCache`."""

    hits: int
    misses: int
    entries: int
    tokens: int
    max_tokens: int


@dataclass
class _Entry:
    ids: np.ndarray  # int32, the first ids of the text (all of them when complete)
    complete: bool


class TokenCache:
    """Bounded LRU of token ids keyed by content hash; thread-safe.

    Parameters
    ----------
    max_tokens : int
        Total ids kept (4 bytes each); least recently used entries go first. 0 disables the cache.
    """

    def __init__(self, max_tokens: int = 4_000_000) -> None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 0:
            raise ValueError(f"max_tokens must be an int >= 0, got {max_tokens!r}")
        self.max_tokens = max_tokens
        self._data: OrderedDict[bytes, _Entry] = OrderedDict()
        self._tokens = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(text: str) -> bytes:
        """Return the cache key of ``text`` (BLAKE2b-128 of its UTF-8 bytes).

        Parameters
        ----------
        text : str
            The text (lone surrogates are encoded as-is rather than refused).

        Returns
        -------
        bytes
            16 bytes.
        """
        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()

    def get(self, key: bytes, need: int | None) -> np.ndarray | None:
        """Return the cached ids (at least ``need`` of them, or all), or None; counts a hit or a miss.

        Parameters
        ----------
        key : bytes
            From :meth:`key`.
        need : int, optional
            Ids the caller needs; an entry that holds only a prefix of the text serves the request
            when it has at least this many. None needs all ids (only a complete entry serves it).

        Returns
        -------
        numpy.ndarray or None
            int32 ``[n]``, the stored array itself (not a copy; do not modify it), possibly longer
            than ``need``; None on a miss.
        """
        with self._lock:
            entry = self._data.get(key)
            if entry is not None and (entry.complete or (need is not None and len(entry.ids) >= need)):
                self._data.move_to_end(key)
                self.hits += 1
                return entry.ids
            self.misses += 1
            return None

    def put(self, key: bytes, ids: np.ndarray, complete: bool) -> None:
        """Store ids (int32) for ``key``, evicting least recently used entries beyond ``max_tokens``.

        Parameters
        ----------
        key : bytes
            From :meth:`key`; replaces any entry under it.
        ids : numpy.ndarray
            int32 ``[n]``: all ids of the text, or its first ids. Kept by reference, not copied.
            An array longer than ``max_tokens`` is not stored.
        complete : bool
            True when ``ids`` are all of the text's ids; False for a prefix.
        """
        n = len(ids)
        if n > self.max_tokens:
            return
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._tokens -= len(old.ids)
            self._data[key] = _Entry(ids, complete)
            self._tokens += n
            while self._tokens > self.max_tokens and self._data:
                _, ev = self._data.popitem(last=False)
                self._tokens -= len(ev.ids)

    def clear(self) -> None:
        """Drop every entry and reset the counters."""
        with self._lock:
            self._data.clear()
            self._tokens = 0
            self.hits = self.misses = 0

    def stats(self) -> CacheStats:
        """Return the counters."""
        with self._lock:
            return CacheStats(self.hits, self.misses, len(self._data), self._tokens, self.max_tokens)

    def __len__(self) -> int:
        return len(self._data)


class TextEncoder:
    """Encode texts to token ids without special tokens, caching document ids.

    Parameters
    ----------
    tokenizer : tokenizers.Tokenizer
        Loaded with :func:`load_tokenizer` (padding and truncation off).
    cache_tokens : int
        Bound of the document cache in tokens (0 = no cache).

    Attributes
    ----------
    cache : TokenCache
        The document cache (``cache.hits`` / ``cache.misses``).
    tokenized : int
        Number of texts actually run through the tokenizer (cache hits do not count).
    """

    def __init__(self, tokenizer: Tokenizer, *, cache_tokens: int = 4_000_000) -> None:
        self.tokenizer = tokenizer
        self.cache = TokenCache(cache_tokens)
        self.tokenized = 0
        self._count_lock = threading.Lock()

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, cache_tokens: int = 4_000_000) -> TextEncoder:
        """Load ``tokenizer.json`` (file or directory) and wrap it.

        Parameters
        ----------
        path : path-like
            As in :func:`load_tokenizer`.
        cache_tokens : int
            Bound of the document cache in tokens (0 = no cache).

        Raises
        ------
        FileNotFoundError, crossrank.errors.StateError
            As :func:`load_tokenizer`.
        """
        return cls(load_tokenizer(path), cache_tokens=cache_tokens)

    def _tokenize(self, texts: list[str]) -> list[np.ndarray]:
        if not texts:
            return []
        with self._count_lock:
            self.tokenized += len(texts)
        # encode_batch_fast (tokenizers >= 0.20) skips the offsets we do not need.
        encode = getattr(self.tokenizer, "encode_batch_fast", self.tokenizer.encode_batch)
        encs = encode(texts, add_special_tokens=False)
        return [np.asarray(e.ids, dtype=np.int32) for e in encs]

    def _tokenize_prefixes(self, texts: list[str], max_tokens: int) -> list[tuple[np.ndarray, bool]]:
        """Tokenize each text far enough to hold ``max_tokens + 1`` ids; return (ids, complete)."""
        out: list[tuple[np.ndarray, bool] | None] = [None] * len(texts)
        todo = list(range(len(texts)))
        budget = (max_tokens + 1) * _CHARS_PER_TOKEN + 64
        while todo:
            prefixes = [texts[i][:budget] for i in todo]
            with self._count_lock:
                self.tokenized += len(todo)
            encs = self.tokenizer.encode_batch(prefixes, add_special_tokens=False)
            nxt = []
            for i, pre, enc in zip(todo, prefixes, encs, strict=True):
                ids = enc.ids
                if len(pre) == len(texts[i]):
                    out[i] = (np.asarray(ids, dtype=np.int32), True)
                    continue
                # The cut may fall inside a word, whose pieces then differ from the full text's: keep
                # only the words that end before the last word of the prefix.
                words = enc.word_ids
                last = words[-1] if words else None
                keep = len(ids)
                while keep > 0 and words[keep - 1] == last:
                    keep -= 1
                if keep > max_tokens:
                    out[i] = (np.asarray(ids[:keep], dtype=np.int32), False)
                else:
                    nxt.append(i)
            todo = nxt
            budget *= 4
        return [o for o in out if o is not None]

    def encode(
        self,
        texts: Sequence[str],
        *,
        max_tokens: int | None = None,
        cache: bool = True,
        counts: dict[str, int] | None = None,
    ) -> list[np.ndarray]:
        """Return the token ids of each text (no special tokens), int32, in order.

        Parameters
        ----------
        texts : sequence of str
            Validated by the caller (``str`` only).
        max_tokens : int, optional
            Only the first ``max_tokens + 1`` ids are needed (enough to tell that a text is longer):
            long texts are tokenized as a prefix. None = all ids.
        cache : bool
            Look up / store in the document cache (use False for one-off queries).
        counts : dict, optional
            Receives this call's ``"cache_hits"`` and ``"cache_misses"`` (exact per call, unlike the
            shared counters of :attr:`cache` when several threads encode at once).

        Returns
        -------
        list of numpy.ndarray
            int32 ``[n_tokens_i]`` each; with ``max_tokens``, arrays longer than ``max_tokens`` mean
            the text did not fit.
        """
        n = len(texts)
        result: list[np.ndarray | None] = [None] * n
        keys: list[bytes | None] = [None] * n
        need = None if max_tokens is None else max_tokens + 1
        miss: list[int] = []
        hits = 0
        if cache and self.cache.max_tokens > 0:
            first: dict[bytes, int] = {}
            for i, t in enumerate(texts):
                k = TokenCache.key(t)
                keys[i] = k
                if k in first:  # the same text twice in one call: tokenize once
                    continue
                hit = self.cache.get(k, need)
                if hit is not None:
                    result[i] = hit if need is None else hit[:need]
                    hits += 1
                else:
                    first[k] = i
                    miss.append(i)
        else:
            miss = list(range(n))
        if counts is not None:
            counts["cache_hits"] = hits
            counts["cache_misses"] = len(miss) if cache and self.cache.max_tokens > 0 else 0
        if miss:
            miss_texts = [texts[i] for i in miss]
            if max_tokens is None:
                encoded = [(ids, True) for ids in self._tokenize(miss_texts)]
            else:
                # Short texts in one fast batch; only long ones take the prefix path.
                limit = (max_tokens + 1) * _CHARS_PER_TOKEN
                short = [j for j, t in enumerate(miss_texts) if len(t) <= limit]
                long_ = [j for j, t in enumerate(miss_texts) if len(t) > limit]
                encoded_map: dict[int, tuple[np.ndarray, bool]] = {}
                for j, ids in zip(short, self._tokenize([miss_texts[j] for j in short]), strict=True):
                    encoded_map[j] = (ids, True)
                for j, pair in zip(
                    long_, self._tokenize_prefixes([miss_texts[j] for j in long_], max_tokens), strict=True
                ):
                    encoded_map[j] = pair
                encoded = [encoded_map[j] for j in range(len(miss_texts))]
            for i, (ids, complete) in zip(miss, encoded, strict=True):
                mk = keys[i]
                if mk is not None:
                    self.cache.put(mk, ids, complete)
                result[i] = ids if need is None else ids[:need]
        if cache and self.cache.max_tokens > 0:
            # Duplicates within the call take their first occurrence's ids.
            by_key: dict[bytes, np.ndarray] = {}
            for i in range(n):
                dk = keys[i]
                r = result[i]
                if r is not None and dk is not None:
                    by_key.setdefault(dk, r)
            for i in range(n):
                if result[i] is None:
                    result[i] = by_key[keys[i]]  # type: ignore[index]
        return [r if r is not None else np.zeros(0, np.int32) for r in result]
