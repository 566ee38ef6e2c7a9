"""Fuzz manifest loading of every saved format: edited fields, wrong types, garbage bytes."""

from __future__ import annotations

from hypothesis import strategies as st

from fuzz.runner import fuzz
from fuzz.targets import _FORMATS, check_manifest

_value = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.sampled_from(
        [0, 1, -1, 2, 3, 4, 2**31, 2**63, 1.5, "fp16", "fp32", "bf16", "lucene", "str", "int", "position"]
    )
    | st.floats(allow_nan=False)
    | st.text(max_size=10),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3),
    max_leaves=6,
)
# Paths into the manifests: the top-level fields of every format and the nested ones that matter.
_key = st.sampled_from(
    [
        "format",
        "format_version",
        "version",
        "crossrank_version",
        "params",
        "analyzer",
        "n_docs",
        "n_terms",
        "ids_kind",
        "arrays",
        "dtype",
        "dim",
        "stride",
        "n_tokens",
        "byteorder",
        "files",
        "metadata",
        "kind",
        "size",
        "sha256",
        "method",
        "a",
        "b",
        "temperature",
        "n_pairs",
        "log_loss_before",
        "log_loss_after",
        "manifest_sha256",
    ]
)
_subkey = st.sampled_from(
    [
        "term_ptr",
        "docs",
        "tfs",
        "doc_lens",
        "impacts",
        "nonoccurrence",
        "ids_chars",
        "ids_offsets",
        "ids",
        "tokens.bin",
        "offsets.bin",
        "ids.json",
        "index.faiss",
        "file",
        "dtype",
        "shape",
        "sha256",
        "bytes",
        "variant",
        "k1",
        "b",
        "delta",
        "lowercase",
        "stopwords",
        "stemmer",
        "cjk",
        "hnsw_m",
        "nlist",
    ]
)
_path = st.one_of(
    st.tuples(_key).map(list),
    st.tuples(_key, _subkey).map(list),
    st.tuples(_key, _subkey, _subkey | st.integers(0, 2)).map(list),
)
_edit = st.tuples(_path, _value | st.just("__delete__")).map(list)
CASES = st.one_of(
    st.fixed_dictionaries(
        {
            "format": st.sampled_from(_FORMATS),
            "edits": st.lists(_edit, min_size=1, max_size=3),
            "resign": st.booleans(),
        }
    ),
    st.fixed_dictionaries(
        {"format": st.sampled_from(_FORMATS), "hex": st.binary(max_size=200).map(bytes.hex)}
    ),
)


def test_fuzz_manifests() -> None:
    fuzz("manifests", CASES, check_manifest)
