# Dumps plain index arrays + queries (old tree) for the in-process A/B harness.
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, "/work/wt18/bench")
import bm25_scale as S
from crossrank import BM25Index
from crossrank.eval.datasets import load_beir
from crossrank.retrieve.bm25 import _check_params


def dump(name, index, qt, qo):
    s = index._snap
    for k, a in (
        ("term_ptr", s.term_ptr),
        ("docs", s.docs),
        ("tfs", s.tfs),
        ("impacts", s.impacts),
        ("nonocc", s.nonocc),
        ("qt", qt),
        ("qo", qo),
    ):
        np.ascontiguousarray(a).tofile(f"/tmp/ab/{name}.{k}")
    Path(f"/tmp/ab/{name}.n_docs").write_text(str(len(s.doc_lens)))


ds = load_beir("/work/shared/datasets/scifact")
index = BM25Index.build(ds.documents(), variant="lucene", k1=0.9, b=0.4)
qs = list(ds.queries.values())[:300]
qt, qo = index._analyze_to_ids(index._vocab, qs, False, 1)
dump("scifact", index, np.asarray(qt, dtype=np.uint32), np.asarray(qo, dtype=np.int64))

tokens = S.corpus(100_000)
index = BM25Index._empty(_check_params("lucene", S.K1, S.B, 0.5), None, "position")
snap = index._snap
used = np.unique(tokens)
words = [f"t{i}" for i in used.tolist()]
ids, _ = snap.vocab.map_tokens(words, np.array([0, len(words)], dtype=np.int64), True)
remap = np.zeros(S.VOCAB, dtype=np.uint32)
remap[used] = ids
index._snap = index._grown(
    snap,
    snap.vocab,
    remap[tokens.reshape(-1)],
    np.arange(0, tokens.size + 1, S.DOC_LEN, dtype=np.int64),
    1,
    None,
)
qs = S.queries()
qt = np.concatenate([remap[q] for q in qs]).astype(np.uint32)
qo = np.concatenate([[0], np.cumsum([len(q) for q in qs])]).astype(np.int64)
dump("zipf100k", index, qt, qo)
print("ok")
