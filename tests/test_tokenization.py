"""Tokenization: ids equal the tokenizer's, prefixes of long texts are exact, the cache is bounded and counted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crossrank.errors import StateError
from crossrank.text.tokenization import TextEncoder, TokenCache, load_tokenizer


@pytest.fixture(scope="module")
def encoder(minilm_dir: Path) -> TextEncoder:
    return TextEncoder.from_file(minilm_dir)


def _reference(enc: TextEncoder, text: str) -> list[int]:
    return list(enc.tokenizer.encode(text, add_special_tokens=False).ids)


TEXTS = [
    "",
    "hello world",
    "Semiconductor yield, répété: naïve café — 東京 ☃ tokenization!",
    "x" * 40,
    " ".join(["antidisestablishmentarianism"] * 300),
    "word " * 5000,
    ("a long unbroken-hyphenated,punctuated;run " * 800).strip(),
    "東京大阪" * 2000,
]


@pytest.mark.parametrize("max_tokens", [None, 1, 7, 64, 511])
def test_ids_equal_tokenizer_prefix(encoder: TextEncoder, max_tokens: int | None) -> None:
    encoder.cache.clear()
    got = encoder.encode(TEXTS, max_tokens=max_tokens)
    for text, ids in zip(TEXTS, got, strict=True):
        ref = _reference(encoder, text)
        want = ref if max_tokens is None else ref[: max_tokens + 1]
        assert ids.dtype == np.int32
        assert ids.tolist() == want, text[:40]
    # Served from the cache the second time, same ids.
    again = encoder.encode(TEXTS, max_tokens=max_tokens)
    assert all(np.array_equal(a, b) for a, b in zip(got, again, strict=True))


def test_cache_hits_skip_tokenization(encoder: TextEncoder) -> None:
    encoder.cache.clear()
    before = encoder.tokenized
    docs = ["doc one", "doc two", "doc one", "doc three"]
    encoder.encode(docs, max_tokens=32)
    assert encoder.tokenized - before == 3  # the duplicate is tokenized once
    s = encoder.cache.stats()
    assert (s.hits, s.misses, s.entries) == (0, 3, 3)
    encoder.encode(docs[:2], max_tokens=32)
    assert encoder.tokenized - before == 3
    assert encoder.cache.stats().hits == 2
    # A prefix entry does not serve a request for more tokens than it holds.
    long_doc = "word " * 5000
    encoder.encode([long_doc], max_tokens=16)
    n = encoder.tokenized
    assert len(encoder.encode([long_doc], max_tokens=8)[0]) == 9
    assert encoder.tokenized == n
    assert len(encoder.encode([long_doc], max_tokens=100)[0]) == 101
    assert encoder.tokenized == n + 1
    # cache=False always tokenizes.
    encoder.encode(docs[:1], cache=False)
    assert encoder.tokenized == n + 2


def test_cache_is_bounded_lru() -> None:
    cache = TokenCache(max_tokens=10)
    for i in range(5):
        cache.put(bytes([i]), np.arange(4, dtype=np.int32), True)
    s = cache.stats()
    assert s.tokens <= 10
    assert s.entries == 2
    assert cache.get(bytes([4]), None) is not None
    assert cache.get(bytes([0]), None) is None
    cache.put(b"big", np.arange(11, dtype=np.int32), True)  # larger than the whole cache: not kept
    assert cache.get(b"big", None) is None
    with pytest.raises(ValueError, match="max_tokens"):
        TokenCache(max_tokens=-1)
    off = TextEncoder(None, cache_tokens=0)  # type: ignore[arg-type]
    assert off.cache.max_tokens == 0


def test_load_tokenizer_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"tokenizer\.json"):
        load_tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text("not json")
    with pytest.raises(StateError, match="not a Hugging Face tokenizers file"):
        load_tokenizer(tmp_path)
