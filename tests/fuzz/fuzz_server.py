"""Fuzz the server's request bodies in-process (FastAPI TestClient, a fake model)."""

from __future__ import annotations

from hypothesis import strategies as st

from fuzz.runner import fuzz
from fuzz.targets import SERVER_PATHS, check_server

_scalar = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.sampled_from([0, 1, -1, 2, 1000, 10**6, 2**31, 2**63, 1.5, float("nan"), float("inf"), "", "x"])
    | st.floats()
    | st.text(max_size=12)
)
_value = st.recursive(
    _scalar,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=3),
    max_leaves=10,
)
_docs = st.lists(st.text(max_size=30) | _value, max_size=6)
_valid = {
    "/rerank": st.fixed_dictionaries(
        {"query": st.text(max_size=30), "texts": st.lists(st.text(max_size=30), max_size=6)},
        optional={
            "raw_scores": st.booleans(),
            "return_text": st.booleans(),
            "truncate": st.booleans(),
            "truncation_direction": st.sampled_from(["Right", "Left", "up"]),
            "top_n": _scalar,
        },
    ),
    "/v1/rerank": st.fixed_dictionaries(
        {"query": st.text(max_size=30), "documents": _docs},
        optional={
            "model": st.text(max_size=8),
            "top_n": _scalar,
            "return_documents": _scalar,
            "max_chunks_per_doc": _scalar,
            "rank_fields": _value,
        },
    ),
    "/v2/rerank": st.fixed_dictionaries(
        {"query": st.text(max_size=30), "documents": _docs, "model": st.text(max_size=8)},
        optional={"top_n": _scalar, "max_tokens_per_doc": _scalar},
    ),
    "/embed": st.fixed_dictionaries(
        {"inputs": st.text(max_size=20) | st.lists(st.text(max_size=20), max_size=4) | _value},
        optional={"normalize": _scalar, "truncate": _scalar},
    ),
    "/v1/embeddings": st.fixed_dictionaries(
        {"input": st.text(max_size=20) | _value},
        optional={"model": _scalar, "encoding_format": _scalar, "dimensions": _scalar},
    ),
}
_valid["/"] = _valid["/invocations"] = st.one_of(_valid["/rerank"], _valid["/embed"])


def _mutate(body: dict, key: str, value: object, drop: bool) -> dict:
    out = dict(body)
    if drop:
        out.pop(key, None)
    else:
        out[key] = value
    return out


def _cases(path: str) -> st.SearchStrategy[dict]:
    body = _valid[path]
    mutated = st.builds(
        _mutate,
        body,
        st.sampled_from(["query", "texts", "documents", "inputs", "input", "top_n", "model", "extra"]),
        _value,
        st.booleans(),
    )
    return st.fixed_dictionaries({"path": st.just(path), "json": st.one_of(body, mutated, _value)})


CASES = st.one_of(
    *[_cases(p) for p in SERVER_PATHS],
    st.fixed_dictionaries(
        {
            "path": st.sampled_from(SERVER_PATHS),
            "hex": st.one_of(
                st.binary(max_size=200),
                st.sampled_from(
                    [b"[" * 5000, b'{"query": "q", "texts": ["a"]', b"\xff\xfe{}", b"NaN", b"1e99999"]
                ),
            ).map(bytes.hex),
        }
    ),
)


def test_fuzz_server() -> None:
    fuzz("server", CASES, check_server)
