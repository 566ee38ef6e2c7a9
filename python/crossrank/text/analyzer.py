"""Text analyzer: turn UTF-8 text into the terms BM25 indexes and searches.

The work happens in C++ (``cpp/include/crossrank/analyzer.hpp`` documents every rule); this module
validates options and converts results. In short:

* Tokens are maximal runs of letters, digits (Python's ``str.isalnum()``) and combining marks;
  everything else separates. Invalid UTF-8 bytes and lone surrogates separate too.
* Scripts written without spaces (Han, Hiragana, Katakana, Hangul, Thai, Lao, Khmer, Myanmar,
  Bopomofo) are emitted as overlapping character bigrams (``cjk="bigram"``, a lone character stays
  a unigram) or unigrams (``cjk="unigram"``), never dropped, never stemmed.
* Lowercasing is Unicode-wide (``str.lower()`` of each character; Σ always becomes σ).
* Stopwords are removed after lowercasing, before stemming. ``"english"`` is the classic 33-word
  Lucene English stop set (the one Anserini and bm25s use).
* Stemming is Snowball English (Porter2), identical to PyStemmer's ``"english"`` stemmer.
* A term longer than 256 bytes of UTF-8 (``MAX_TERM_BYTES``) is dropped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from .. import _core
from .._common import MAX_THREADS

__all__ = ["ENGLISH_STOPWORDS", "MAX_TERM_BYTES", "Analyzer"]

#: The default English stop set (Lucene's classic ``ENGLISH_STOP_WORDS_SET``, 33 words).
ENGLISH_STOPWORDS: frozenset[str] = frozenset(_core.english_stopwords())
#: Terms longer than this many bytes of UTF-8 input are dropped.
MAX_TERM_BYTES: int = _core.analyzer_max_term_bytes

_CONFIG_KEYS = ("lowercase", "stopwords", "stemmer", "cjk")


def _num_threads_arg(num_threads: int | None) -> int:
    if num_threads is None:
        return 0
    if isinstance(num_threads, bool) or not isinstance(num_threads, int):
        raise TypeError(f"num_threads must be an int >= 1 or None, got {type(num_threads).__name__}")
    if num_threads < 1:
        raise ValueError(f"num_threads must be >= 1 (or None for the CPU quota), got {num_threads}")
    if num_threads > MAX_THREADS:
        raise ValueError(
            f"num_threads must be <= {MAX_THREADS} (or None for the CPU quota), got {num_threads}"
        )
    return num_threads


class Analyzer:
    """Tokenize, lowercase, remove stopwords and stem text, in C++.

    Parameters
    ----------
    lowercase : bool, default True
        Lowercase every character (Unicode, not only ASCII).
    stopwords : "english", None or iterable of str, default "english"
        Terms to drop, compared after lowercasing and before stemming. ``"english"`` is the classic
        Lucene English set (:data:`ENGLISH_STOPWORDS`); ``None`` or an empty iterable keeps every
        term. With ``lowercase=True`` the given words are lowercased too. :attr:`config` lists
        custom words sorted and without repeats.
    stemmer : "english" or None, default "english"
        Snowball English (Porter2) stemming, exactly PyStemmer's ``"english"``; ``None`` disables.
    cjk : "bigram" or "unigram", default "bigram"
        How runs of Han/Kana/Hangul/Thai/Lao/Khmer/Myanmar characters become terms.

    Raises
    ------
    TypeError
        An option of the wrong type, or a stopword that is not a str.
    ValueError
        An unknown option value.

    Notes
    -----
    Thread safety: an Analyzer is immutable after construction (the C++ analyzer is only read), so
    one instance may be shared across threads; the GIL is released while it works.

    Examples
    --------
    >>> Analyzer().analyze("The running dogs of Zürich")
    ['run', 'dog', 'zürich']
    """

    __slots__ = ("_cjk", "_impl", "_lowercase", "_stemmer", "_stopwords")

    def __init__(
        self,
        *,
        lowercase: bool = True,
        stopwords: Literal["english"] | Iterable[str] | None = "english",
        stemmer: Literal["english"] | None = "english",
        cjk: Literal["bigram", "unigram"] = "bigram",
    ) -> None:
        if not isinstance(lowercase, bool):
            raise TypeError(f"lowercase must be a bool, got {type(lowercase).__name__}")
        if stemmer is not None and stemmer != "english":
            raise ValueError(f"stemmer must be 'english' or None, got {stemmer!r}")
        if cjk not in ("bigram", "unigram"):
            raise ValueError(f"cjk must be 'bigram' or 'unigram', got {cjk!r}")
        words: list[str]
        spec: str | tuple[str, ...] | None
        if stopwords is None:
            spec, words = None, []
        elif isinstance(stopwords, str):
            if stopwords != "english":
                raise ValueError(
                    f"stopwords must be 'english', None or an iterable of str, got {stopwords!r}; "
                    f"for a single word pass a list: [{stopwords!r}]"
                )
            spec, words = "english", sorted(ENGLISH_STOPWORDS)
        else:
            try:
                items = list(stopwords)
            except TypeError:
                raise TypeError(
                    f"stopwords must be 'english', None or an iterable of str, got {type(stopwords).__name__}"
                ) from None
            for i, w in enumerate(items):
                if not isinstance(w, str):
                    raise TypeError(f"stopwords[{i}] must be str, got {type(w).__name__}")
            spec = tuple(sorted(set(items)))  # canonical: order and repeats do not matter
            words = list(spec)
        self._lowercase = lowercase
        self._stopwords = spec
        self._stemmer = stemmer
        self._cjk = cjk
        self._impl = _core.Analyzer(lowercase=lowercase, stem=stemmer is not None, stopwords=words, cjk=cjk)

    def analyze(self, text: str) -> list[str]:
        """Return the terms of one text, in order.

        Parameters
        ----------
        text : str
            Any Unicode text; lone surrogates act as separators.

        Returns
        -------
        list of str

        Raises
        ------
        TypeError
            ``text`` is not a str.
        """
        return self._impl.analyze(text)

    def analyze_batch(self, texts: Iterable[str], *, num_threads: int | None = None) -> list[list[str]]:
        """Return the terms of many texts, analyzed in parallel with the GIL released.

        Parameters
        ----------
        texts : iterable of str
            The texts (a list or tuple is used as is; other iterables are read into a list).
        num_threads : int or None, default None
            Worker threads; ``None`` uses the CPU quota, ``1`` runs serially. Results are identical
            for any value.

        Returns
        -------
        list of list of str
            ``result[i]`` equals ``self.analyze(texts[i])``.

        Raises
        ------
        TypeError
            ``texts`` is a single str, an item is not a str (the message names its index), or
            ``num_threads`` is not an int.
        ValueError
            ``num_threads < 1``.
        """
        threads = _num_threads_arg(num_threads)
        if isinstance(texts, (str, bytes)):
            raise TypeError(
                f"texts must be an iterable of str, got a single {type(texts).__name__}; "
                "for one text use analyze(text) or pass [text]"
            )
        seq = texts if isinstance(texts, (list, tuple)) else list(texts)
        return self._impl.analyze_batch(seq, num_threads=threads)

    @property
    def config(self) -> dict[str, Any]:
        """The options as a JSON-serialisable dict; :meth:`from_config` rebuilds the analyzer."""
        stop = self._stopwords
        return {
            "lowercase": self._lowercase,
            "stopwords": list(stop) if isinstance(stop, tuple) else stop,
            "stemmer": self._stemmer,
            "cjk": self._cjk,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Analyzer:
        """Rebuild an analyzer from :attr:`config`.

        Parameters
        ----------
        config : mapping of str to object
            Some or all of ``lowercase``, ``stopwords``, ``stemmer``, ``cjk`` with the constructor's
            meanings (e.g. another analyzer's :attr:`config`); missing keys take the defaults.

        Raises
        ------
        TypeError
            ``config`` is not a mapping.
        ValueError
            ``config`` has keys other than ``lowercase``, ``stopwords``, ``stemmer``, ``cjk``, or bad values.
        """
        if not isinstance(config, Mapping):
            raise TypeError(f"config must be a dict, got {type(config).__name__}")
        unknown = sorted(set(config) - set(_CONFIG_KEYS))
        if unknown:
            raise ValueError(
                f"unknown analyzer config keys {unknown}; expected a subset of {list(_CONFIG_KEYS)}"
            )
        return cls(**dict(config))

    def __repr__(self) -> str:
        stop = self._stopwords
        if isinstance(stop, tuple):
            shown = repr(list(stop)) if len(stop) <= 5 else f"<{len(stop)} words>"
        else:
            shown = repr(stop)
        return (
            f"Analyzer(lowercase={self._lowercase}, stopwords={shown}, "
            f"stemmer={self._stemmer!r}, cjk={self._cjk!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Analyzer):
            return NotImplemented
        return self.config == other.config

    def __hash__(self) -> int:
        return hash(json.dumps(self.config, sort_keys=True))

    def __reduce__(self) -> tuple[Any, ...]:
        return (Analyzer.from_config, (self.config,))
