"""Fuzz the analyzer (and a BM25 index over its terms) with arbitrary bytes and text."""

from __future__ import annotations

from hypothesis import strategies as st

from fuzz.runner import fuzz
from fuzz.targets import check_analyzer

# Scripts and code points where tokenizers break: CJK, Thai, combining marks, RTL, emoji, ZWJ,
# full-width digits, Turkish dotted I, the German sharp s, lone surrogates, controls.
_TRICKY = list(
    "aZé\u0301\u4e2d\u6587\u65e5\u672c\u0e44\u0e17\u0e22\u05d0\u0627\U0001f600\u200d\uff11\u0130\u00df\ud800\udfff\x00\t\n ,.'-_"
)

_config = st.fixed_dictionaries(
    {},
    optional={
        "lowercase": st.booleans(),
        "stopwords": st.sampled_from(["english", None, ["the", "a", "\u4e2d"]]),
        "stemmer": st.sampled_from(["english", None]),
        "cjk": st.sampled_from(["bigram", "unigram"]),
    },
)
_text = st.one_of(
    st.text(st.characters(codec=None, exclude_categories=()), max_size=200),
    st.text(st.sampled_from(_TRICKY), max_size=300),
    st.builds(
        lambda w, n: " ".join([w] * n),
        st.text(st.sampled_from("ab\u4e2d\u00e9"), min_size=1, max_size=400),
        st.integers(1, 4),
    ),
)
CASES = st.one_of(
    st.fixed_dictionaries({"text": _text, "config": _config}),
    st.fixed_dictionaries(
        {
            "hex": st.binary(max_size=400).map(bytes.hex),
            "errors": st.sampled_from(["replace", "surrogateescape", "ignore"]),
            "config": _config,
        }
    ),
)


def test_fuzz_analyzer() -> None:
    fuzz("analyzer", CASES, check_analyzer)
