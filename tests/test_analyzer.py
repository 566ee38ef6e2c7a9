"""Tests of crossrank.Analyzer against a pure-Python reference and PyStemmer."""

from __future__ import annotations

import itertools
import json
import pickle
import re
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import crossrank
from crossrank import _core
from crossrank.text.analyzer import ENGLISH_STOPWORDS, MAX_TERM_BYTES, Analyzer
from reference import analyzer_ref as ref

Stemmer = pytest.importorskip("Stemmer")
PYSTEM = Stemmer.Stemmer("english")

# The C++ tables come from one Unicode version; when this Python's differs (e.g. CI's Python),
# compare only characters that every version since 3.2 agrees are assigned.
SAME_UNICODE = unicodedata.unidata_version == _core.analyzer_unicode_version()


def _stable(ch: str) -> bool:
    return SAME_UNICODE or (0xD800 <= ord(ch) <= 0xDFFF) or unicodedata.ucd_3_2_0.category(ch) != "Cn"


# ---------------------------------------------------------------------------------------------
# Stems equal PyStemmer's over whole collection vocabularies (tokenized independently of us).
# ---------------------------------------------------------------------------------------------


def _vocabulary(path: Path) -> set[str]:
    words: set[str] = set()
    for name in ("corpus.jsonl", "queries.jsonl"):
        with open(path / name, encoding="utf-8") as f:
            for line in f:
                doc = json.loads(line)
                text = f"{doc.get('title') or ''} {doc.get('text') or ''}".lower()
                words.update(re.findall(r"\w+", text))
                words.update(text.split())  # also words with punctuation and apostrophes
    return words


@pytest.mark.parametrize("dataset", ["scifact", "cacm", "cranfield", "vaswani"])
def test_stems_equal_pystemmer_over_vocabulary(datasets_dir: Path, dataset: str) -> None:
    path = datasets_dir / dataset
    if not path.is_dir():
        pytest.skip(f"{path} not found")
    words = sorted(_vocabulary(path))
    assert len(words) > 5000
    expected = PYSTEM.stemWords(words)
    got = [_core.stem_english(w) for w in words]
    mismatches = [(w, e, g) for w, e, g in zip(words, expected, got, strict=True) if e != g]
    assert mismatches == [], f"{len(mismatches)} of {len(words)} stems differ, e.g. {mismatches[:10]}"


def test_analyzer_stems_through_cache_equal_pystemmer(datasets_dir: Path) -> None:
    words = sorted(w for w in _vocabulary(datasets_dir / "scifact") if re.fullmatch(r"[^\W_]+", w))
    a = Analyzer(stopwords=None)
    expected = [[PYSTEM.stemWord(w)] if len(w.encode()) <= MAX_TERM_BYTES else [] for w in words]
    # Twice: the first pass fills the stem cache, the second reads it.
    for num_threads in (2, 1):
        assert a.analyze_batch(words, num_threads=num_threads) == expected


# Pieces that exercise every rule of the algorithm: suffixes of each step, the exceptional R1
# prefixes and whole-word exceptions, doubles, y/Y, apostrophes, non-ASCII letters.
_MORPHEMES = [
    "a",
    "e",
    "i",
    "o",
    "u",
    "y",
    "Y",
    "b",
    "c",
    "d",
    "l",
    "ll",
    "s",
    "ss",
    "t",
    "tt",
    "n",
    "nn",
    "r",
    "w",
    "x",
    "'",
    "é",
    "ü",
    "ß",
    "ing",
    "ed",
    "edly",
    "eed",
    "eedly",
    "ingly",
    "ies",
    "ied",
    "sses",
    "us",
    "ational",
    "tional",
    "enci",
    "anci",
    "abli",
    "entli",
    "izer",
    "ization",
    "ation",
    "ator",
    "alism",
    "aliti",
    "alli",
    "fulness",
    "ousli",
    "ousness",
    "iveness",
    "iviti",
    "biliti",
    "bli",
    "ogi",
    "ogist",
    "fulli",
    "lessli",
    "li",
    "alize",
    "icate",
    "iciti",
    "ical",
    "ful",
    "ness",
    "ative",
    "al",
    "ance",
    "ence",
    "er",
    "ic",
    "able",
    "ible",
    "ant",
    "ement",
    "ment",
    "ent",
    "ism",
    "ate",
    "iti",
    "ous",
    "ive",
    "ize",
    "ion",
    "sion",
    "tion",
    "gener",
    "commun",
    "arsen",
    "past",
    "univers",
    "later",
    "emerg",
    "organ",
    "inter",
    "proc",
    "exc",
    "succ",
    "inn",
    "out",
    "cann",
    "herr",
    "earr",
    "even",
    "sky",
    "news",
    "howe",
    "atlas",
    "bias",
    "dy",
    "ly",
    "ty",
    "vy",
    "at",
    "bl",
    "iz",
    "hop",
    "ho",
]


@given(st.lists(st.sampled_from(_MORPHEMES), min_size=1, max_size=5).map("".join))
@settings(max_examples=2000, deadline=None)
def test_stem_equals_pystemmer_on_generated_words(word: str) -> None:
    assert _core.stem_english(word) == PYSTEM.stemWord(word)


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz'yY", min_size=0, max_size=14))
@settings(max_examples=1000, deadline=None)
def test_stem_equals_pystemmer_on_random_letters(word: str) -> None:
    assert _core.stem_english(word) == PYSTEM.stemWord(word)


# ---------------------------------------------------------------------------------------------
# Tokenizer against the pure-Python reference.
# ---------------------------------------------------------------------------------------------

_PIECES = st.sampled_from(
    [" ", "  ", "\t", "\n", ".", ",", "-", "'", "_", "\u00a0", "\u3000", "The", "running", "of", "İ",
     "ΣΟΦΟΣ", "é", "e\u0301", "\u0301", "ß", "東京", "タワー", "한국어", "ภาษาไทย", "ที่", "ພາສາລາວ",
     "ភាសាខ្មែរ", "မြန်မာ", "ー", "々", "２０２０", "ｶﾀｶﾅ", "x" * 300, "é" * 128, "é" * 129, "\U0001d400",
     "\U00020000", "😀", "\ufffd", "\ud800", "\udfff"]
)  # fmt: skip
_CHARS = st.characters(codec=None).filter(_stable)
_TEXT = st.lists(st.one_of(_PIECES, st.text(alphabet=_CHARS, max_size=6)), max_size=25).map("".join)

_CONFIGS = [
    {"lowercase": True, "stopwords": "english", "stemmer": "english", "cjk": "bigram"},
    {"lowercase": True, "stopwords": None, "stemmer": None, "cjk": "unigram"},
    {"lowercase": False, "stopwords": ["The", "of", "東京"], "stemmer": "english", "cjk": "bigram"},
    {"lowercase": True, "stopwords": ["The", "x", "ΣΟΦΟΣ"], "stemmer": None, "cjk": "bigram"},
]


def _ref(text: str, config: dict) -> list[str]:
    stop = config["stopwords"]
    return ref.analyze(
        text,
        lowercase=config["lowercase"],
        stopwords=ENGLISH_STOPWORDS if stop == "english" else (stop or ()),
        stem=PYSTEM.stemWord if config["stemmer"] else None,
        cjk=config["cjk"],
    )


_ANALYZERS = [Analyzer.from_config(c) for c in _CONFIGS]


@pytest.mark.parametrize("index", range(len(_CONFIGS)))
@given(text=_TEXT)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_matches_reference_on_random_text(index: int, text: str) -> None:
    assert _ANALYZERS[index].analyze(text) == _ref(text, _CONFIGS[index])


@given(
    data=st.lists(st.one_of(st.binary(max_size=5), _TEXT.map(lambda s: s.encode("utf-8", "surrogatepass"))))
)
@settings(max_examples=200, deadline=None)
def test_invalid_utf8_bytes_are_separators(data: list[bytes]) -> None:
    raw = b"".join(data)
    expected = _ref(raw.decode("utf-8", errors="replace"), _CONFIGS[0])
    assert _ANALYZERS[0]._impl._analyze_bytes(raw) == expected


@pytest.mark.slow
@pytest.mark.skipif(not SAME_UNICODE, reason="tables generated from another Unicode version")
def test_every_code_point_matches_reference() -> None:
    """Exhaustive check of the generated tables: each code point alone, and after a letter."""
    chars = [chr(cp) for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF]
    for config in (_CONFIGS[1], {**_CONFIGS[1], "lowercase": False}):
        a = Analyzer.from_config(config)
        got = a.analyze_batch(chars)
        expected = [_ref(ch, config) for ch in chars]
        bad = [(hex(ord(ch)), g, e) for ch, g, e in zip(chars, got, expected, strict=True) if g != e]
        assert bad == [], f"{len(bad)} code points differ, e.g. {bad[:10]}"
    # Marks join the character before them; class changes split.
    pairs = ["a" + ch for ch in chars[::7]]
    a = Analyzer.from_config(_CONFIGS[1])
    assert a.analyze_batch(pairs) == [_ref(t, _CONFIGS[1]) for t in pairs]


@pytest.mark.skipif(not SAME_UNICODE, reason="tables generated from another Unicode version")
def test_generated_tables_are_up_to_date() -> None:
    script = Path(__file__).resolve().parents[1] / "tools" / "gen_unicode_tables.py"
    done = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_examples() -> None:
    a = Analyzer()
    assert a.analyze("ÉCOLE Straße ΑΘΗΝΑ МОСКВА") == ["école", "straße", "αθηνα", "москва"]
    assert a.analyze("The running dogs") == ["run", "dog"]
    assert Analyzer(cjk="unigram").analyze("東京タワー") == ["東", "京", "タ", "ワ", "ー"]
    assert a.analyze("東京タワー") == ["東京", "京タ", "タワ", "ワー"]
    assert a.analyze("東") == ["東"]


def test_term_length_cap() -> None:
    a = Analyzer(stopwords=None, stemmer=None)
    assert MAX_TERM_BYTES == 256
    assert a.analyze("é" * 128) == ["é" * 128]  # 256 bytes: kept
    assert a.analyze("é" * 128 + "a") == []  # 257 bytes: dropped
    assert a.analyze("x" * 256 + " y " + "z" * 257) == ["x" * 256, "y"]


# ---------------------------------------------------------------------------------------------
# Batches, threads, bad input.
# ---------------------------------------------------------------------------------------------


def test_batch_equals_single_and_threads_agree(datasets_dir: Path) -> None:
    with open(datasets_dir / "scifact" / "corpus.jsonl", encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in itertools.islice(f, 2000)]
    texts += ["", "東京タワーです", "x\ud800y", "é" * 200]
    a = Analyzer()
    single = [a.analyze(t) for t in texts]
    assert a.analyze_batch(texts, num_threads=1) == single
    assert a.analyze_batch(texts, num_threads=4) == single
    assert a.analyze_batch(tuple(texts)) == single
    assert a.analyze_batch(iter(texts), num_threads=2) == single
    assert a.analyze_batch([]) == []


def test_non_str_input_raises_type_error() -> None:
    a = Analyzer()
    with pytest.raises(TypeError, match="text must be str, got bytes"):
        a.analyze(b"abc")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="got NoneType"):
        a.analyze(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"texts\[2\] must be str, got int"):
        a.analyze_batch(["a", "b", 3])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="got a single str; for one text use analyze"):
        a.analyze_batch("one text")
    with pytest.raises(TypeError, match="not iterable"):
        a.analyze_batch(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"texts\[0\] must be str, got NoneType"):
        a.analyze_batch([None])  # type: ignore[list-item]


def test_num_threads_validation() -> None:
    a = Analyzer()
    with pytest.raises(ValueError, match="num_threads must be >= 1"):
        a.analyze_batch(["x"], num_threads=0)
    with pytest.raises(TypeError, match="num_threads must be an int"):
        a.analyze_batch(["x"], num_threads=1.5)  # type: ignore[arg-type]


def test_lone_surrogates_are_separators() -> None:
    a = Analyzer(stopwords=None, stemmer=None)
    assert a.analyze("abc\ud800def\udfff") == ["abc", "def"]
    assert a.analyze("\ud83d") == []


def test_empty_and_separator_only() -> None:
    a = Analyzer()
    assert a.analyze("") == []
    assert a.analyze(" ,.;!? \n\t") == []
    assert a.analyze("the of and") == []  # stopwords only


def test_ten_megabyte_document() -> None:
    a = Analyzer()
    start = time.perf_counter()
    assert a.analyze("start " + "x" * (10 << 20) + " end") == ["start", "end"]
    words = ("lorem ipsum dolor sit amet " * ((10 << 20) // 27 + 1))[: 10 << 20]
    terms = a.analyze(words)
    assert len(terms) > 1_500_000
    assert time.perf_counter() - start < 30


def test_options_validation() -> None:
    with pytest.raises(ValueError, match="stopwords must be 'english'"):
        Analyzer(stopwords="french")
    with pytest.raises(TypeError, match=r"stopwords\[1\] must be str"):
        Analyzer(stopwords=["a", 1])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="stopwords must be"):
        Analyzer(stopwords=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="stemmer must be 'english' or None"):
        Analyzer(stemmer="porter")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cjk must be 'bigram' or 'unigram'"):
        Analyzer(cjk="trigram")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="lowercase must be a bool"):
        Analyzer(lowercase=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Analyzer("english")  # type: ignore[misc]  # keyword-only


def test_config_round_trip_and_repr() -> None:
    for config in _CONFIGS:
        a = Analyzer.from_config(config)
        assert a.config == config
        assert json.loads(json.dumps(a.config)) == config
        b = pickle.loads(pickle.dumps(a))
        assert b == a
        assert hash(b) == hash(a)
        assert b.analyze("The Running ΣΟΦΟΣ of 東京") == a.analyze("The Running ΣΟΦΟΣ of 東京")
    assert (
        repr(Analyzer()) == "Analyzer(lowercase=True, stopwords='english', stemmer='english', cjk='bigram')"
    )
    assert "<7 words>" in repr(Analyzer(stopwords=list("abcdefg")))
    assert Analyzer(stopwords=[]).analyze("the") == ["the"]
    assert Analyzer(stopwords={"b", "a"}).config["stopwords"] == ["a", "b"]  # canonical order
    assert Analyzer(stopwords=["b", "a"]) == Analyzer(stopwords=("a", "b", "a"))
    with pytest.raises(ValueError, match="unknown analyzer config keys"):
        Analyzer.from_config({"lowercase": True, "stemer": "english"})
    with pytest.raises(TypeError, match="config must be a dict"):
        Analyzer.from_config([("lowercase", True)])  # type: ignore[arg-type]
    assert crossrank.Analyzer is Analyzer


def test_english_stopwords_are_the_lucene_set() -> None:
    assert len(ENGLISH_STOPWORDS) == 33
    assert {"the", "a", "and", "with", "into"} <= ENGLISH_STOPWORDS
