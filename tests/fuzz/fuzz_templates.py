"""Fuzz the packer's pair template against tokenizer.json post-processors (oracle: tokenizers)."""

from __future__ import annotations

from hypothesis import strategies as st

from fuzz.runner import fuzz
from fuzz.targets import TEMPLATE_VOCAB, check_template

_names = st.sampled_from(["[CLS]", "[SEP]", "<s>", "</s>", "X", "[PAD]"])
_id = st.one_of(st.sampled_from(sorted(TEMPLATE_VOCAB.values())), st.integers(-2, 2**33))
_type = st.one_of(st.integers(0, 3), st.integers(-1, 2**33))
_special = st.builds(
    lambda n, ids: {"id": n, "ids": ids, "tokens": [n] * len(ids)}, _names, st.lists(_id, max_size=3)
)
_item = st.one_of(
    st.builds(lambda n, t: {"SpecialToken": {"id": n, "type_id": t}}, _names, _type),
    st.builds(lambda s, t: {"Sequence": {"id": s, "type_id": t}}, st.sampled_from(["A", "B", "C"]), _type),
)
_template = st.builds(
    lambda single, pair, specials: {
        "type": "TemplateProcessing",
        "single": single,
        "pair": pair,
        "special_tokens": {s["id"]: s for s in specials},
    },
    st.lists(_item, max_size=4),
    st.lists(_item, max_size=7),
    st.lists(_special, max_size=4),
)
_pair = st.tuples(_names, _id).map(list)
_bert = st.builds(lambda sep, cls: {"type": "BertProcessing", "sep": sep, "cls": cls}, _pair, _pair)
_roberta = st.builds(
    lambda sep, cls, trim, prefix: {
        "type": "RobertaProcessing",
        "sep": sep,
        "cls": cls,
        "trim_offsets": trim,
        "add_prefix_space": prefix,
    },
    _pair,
    _pair,
    st.booleans(),
    st.booleans(),
)
_bytelevel = st.just({"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True})
_simple = st.one_of(_template, _bert, _roberta, _bytelevel)
_proc = st.one_of(
    st.none(),
    _simple,
    st.builds(lambda ps: {"type": "Sequence", "processors": ps}, st.lists(_simple, max_size=3)),
)
_padding = st.one_of(
    st.none(),
    st.builds(
        lambda pid, ptype: {
            "strategy": "BatchLongest",
            "direction": "Right",
            "pad_to_multiple_of": None,
            "pad_id": pid,
            "pad_type_id": ptype,
            "pad_token": "[PAD]",
        },
        _id,
        _type,
    ),
)
_words = st.lists(st.sampled_from(["a", "b", "c", "zz"]), max_size=5).map(" ".join)
CASES = st.fixed_dictionaries({"post_processor": _proc, "padding": _padding, "query": _words, "doc": _words})


def test_fuzz_templates() -> None:
    fuzz("templates", CASES, check_template)
