"""Fuzz the TREC run, qrels and BEIR JSONL readers with near-valid and arbitrary files."""

from __future__ import annotations

import json

from hypothesis import strategies as st

from fuzz.runner import fuzz
from fuzz.targets import check_reader

_word = st.text(st.sampled_from("qd01_-x\u00e9\ufeff#"), min_size=0, max_size=6)
_number = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(
        ["nan", "NaN", "inf", "-Infinity", "None", "null", "1e999", "0x10", "1_000", "+1", "", "score"]
    ),
)
_sep = st.sampled_from([" ", "\t", "  ", "\u00a0", "\u3000"])
_eol = st.sampled_from(["\n", "\r\n", "\r", ""])


def _line(fields: list[str], seps: list[str], eol: str) -> str:
    out = fields[0] if fields else ""
    for f, s in zip(fields[1:], seps, strict=False):
        out += s + f
    return out + eol


_fields = st.lists(st.one_of(_word, _number), min_size=0, max_size=7)
_tsv_line = st.builds(_line, _fields, st.lists(_sep, min_size=6, max_size=6), _eol)
_json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=5), kids, max_size=3),
    max_leaves=8,
)
_record = st.fixed_dictionaries(
    {},
    optional={"_id": _json_value | _word, "title": _json_value, "text": _json_value | st.text(max_size=20)},
)
_json_line = st.builds(lambda r, eol: json.dumps(r, allow_nan=True) + eol, _record | _json_value, _eol)


def _file(lines: list[str], bom: bool) -> str:
    data = "".join(lines).encode("utf-8", "surrogatepass")
    return ((b"\xef\xbb\xbf" if bom else b"") + data).hex()


CASES = st.one_of(
    st.fixed_dictionaries(
        {
            "kind": st.sampled_from(["qrels", "run"]),
            "hex": st.builds(_file, st.lists(_tsv_line, max_size=8), st.booleans()),
        }
    ),
    st.fixed_dictionaries(
        {
            "kind": st.sampled_from(["corpus", "queries"]),
            "hex": st.builds(_file, st.lists(_json_line, max_size=6), st.booleans()),
        }
    ),
    st.fixed_dictionaries(
        {
            "kind": st.sampled_from(["qrels", "run", "corpus", "queries"]),
            "hex": st.binary(max_size=300).map(bytes.hex),
        }
    ),
)


def test_fuzz_readers() -> None:
    fuzz("readers", CASES, check_reader)
