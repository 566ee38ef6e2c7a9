"""Slow, obvious pure-Python reference of crossrank's analyzer (the test oracle).

It restates the rules of ``cpp/include/crossrank/analyzer.hpp`` with nothing but ``unicodedata``,
``str.isalnum()`` and ``str.lower()``, one character at a time. The blocks of the scripts written
without spaces are copied here on purpose (not imported from the table generator), so a mistake in
one of the two copies shows up as a test failure.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable

MAX_TERM_BYTES = 256

NOSPACE_BLOCKS = (
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x1000, 0x109F),  # Myanmar
    (0x1100, 0x11FF),  # Hangul Jamo
    (0x1780, 0x17FF),  # Khmer
    (0x19E0, 0x19FF),  # Khmer Symbols
    (0x2E80, 0x2FDF),  # CJK Radicals Supplement, Kangxi Radicals
    (0x3000, 0x312F),  # CJK Symbols and Punctuation, Hiragana, Katakana, Bopomofo
    (0x3130, 0x318F),  # Hangul Compatibility Jamo
    (0x31A0, 0x31BF),  # Bopomofo Extended
    (0x31F0, 0x31FF),  # Katakana Phonetic Extensions
    (0x3400, 0x4DBF),  # CJK Extension A
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0xA960, 0xA97F),  # Hangul Jamo Extended-A
    (0xA9E0, 0xA9FF),  # Myanmar Extended-B
    (0xAA60, 0xAA7F),  # Myanmar Extended-A
    (0xAC00, 0xD7FF),  # Hangul Syllables, Hangul Jamo Extended-B
    (0xF900, 0xFAFF),  # CJK Compatibility Ideographs
    (0xFF66, 0xFFDC),  # Halfwidth Katakana and Hangul
    (0x1AFF0, 0x1B16F),  # Kana Extended-B .. Small Kana Extension
    (0x20000, 0x2FA1F),  # CJK Extensions B-F, Compatibility Supplement
    (0x30000, 0x323AF),  # CJK Extensions G, H
)


def is_nospace(ch: str) -> bool:
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in NOSPACE_BLOCKS)


def is_mark(ch: str) -> bool:
    return unicodedata.category(ch).startswith("M")


def segments(text: str) -> list[tuple[str, list[str]]]:
    """Split text into ("word", [chars]) and ("nospace", [unit, unit, ...]) segments."""
    out: list[tuple[str, list[str]]] = []
    kind: str | None = None
    units: list[str] = []
    for ch in text:
        if is_mark(ch):
            if kind is None:
                kind, units = ("nospace" if is_nospace(ch) else "word"), [ch]
            else:
                units[-1] += ch  # a mark joins the character (unit) before it
            continue
        if not ch.isalnum():  # separators, including lone surrogates
            if kind is not None:
                out.append((kind, units))
            kind, units = None, []
            continue
        k = "nospace" if is_nospace(ch) else "word"
        if k != kind:
            if kind is not None:
                out.append((kind, units))
            kind, units = k, [ch]
        elif k == "word":
            units[-1] += ch
        else:
            units.append(ch)
    if kind is not None:
        out.append((kind, units))
    return out


def lower(s: str) -> str:
    return "".join(ch.lower() for ch in s)  # per character: no final-sigma context


def analyze(
    text: str,
    *,
    lowercase: bool = True,
    stopwords: Iterable[str] = (),
    stem: Callable[[str], str] | None = None,
    cjk: str = "bigram",
) -> list[str]:
    stop = {lower(w) if lowercase else w for w in stopwords}
    terms: list[str] = []
    for kind, units in segments(text):
        if kind == "word":
            candidates = [("".join(units), True)]
        elif cjk == "unigram" or len(units) == 1:
            candidates = [(u, False) for u in units]
        else:
            candidates = [(units[i] + units[i + 1], False) for i in range(len(units) - 1)]
        for term, stemmable in candidates:
            if len(term.encode("utf-8")) > MAX_TERM_BYTES:
                continue
            if lowercase:
                term = lower(term)
            if term in stop:
                continue
            if stemmable and stem is not None:
                term = stem(term)
            terms.append(term)
    return terms
