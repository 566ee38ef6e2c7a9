"""The fuzz targets' checks: each takes a JSON-ready case and raises AssertionError (or lets an
undocumented exception through) only on a bug.

Cases are plain JSON (bytes travel as hex) so a failing one can be stored in ``regressions/`` and
replayed by ``tests/test_fuzz_regressions.py``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from crossrank.errors import StateError

_TMP = Path(tempfile.mkdtemp(prefix="crossrank-fuzz-"))
_LOCK = threading.Lock()


@contextlib.contextmanager
def _scratch() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(dir=_TMP))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ------------------------------------------------------------------------------------------------
# Analyzer: arbitrary text (bytes decoded leniently, or str with lone surrogates)
# ------------------------------------------------------------------------------------------------
def _text_of(case: dict[str, Any]) -> str:
    if "hex" in case:
        return bytes.fromhex(case["hex"]).decode("utf-8", case.get("errors", "replace"))
    return str(case["text"])


def check_analyzer(case: dict[str, Any]) -> None:
    """Terms are non-empty str within the byte limit; batch = one by one; BM25 over it works."""
    from crossrank.retrieve.bm25 import BM25Index
    from crossrank.text.analyzer import MAX_TERM_BYTES, Analyzer

    text = _text_of(case)
    analyzer = Analyzer(**case.get("config", {}))
    terms = analyzer.analyze(text)
    assert all(isinstance(t, str) and t for t in terms), terms
    assert all(len(t.encode("utf-8", "surrogatepass")) <= MAX_TERM_BYTES for t in terms)
    assert analyzer.analyze(text) == terms  # deterministic
    other = text[::-1]
    assert analyzer.analyze_batch([text, other], num_threads=2) == [terms, analyzer.analyze(other)]
    index = BM25Index.build([text, "plain words here"], analyzer=analyzer, num_threads=1)
    hits = index.search([text, other], k=2, num_threads=1)
    assert hits.ids.shape == (2, 2)
    assert np.all(np.isfinite(hits.scores))
    if terms:  # a document always matches itself at least as well as the other one
        assert float(hits.scores[0, 0]) == float(index.get_scores(text).max())


# ------------------------------------------------------------------------------------------------
# Readers: TREC runs, qrels, BEIR JSONL
# ------------------------------------------------------------------------------------------------
_READERS = ("qrels", "run", "corpus", "queries")


def _read(kind: str, path: Path) -> Any:
    from crossrank.eval.datasets import read_corpus, read_qrels, read_queries
    from crossrank.eval.trec import read_run

    return {"qrels": read_qrels, "run": read_run, "corpus": read_corpus, "queries": read_queries}[kind](path)


def _clean_id(x: str) -> bool:
    """Non-empty, no whitespace (byte order marks opening a line: tests/test_bad_input_files.py)."""
    return bool(x) and not any(c.isspace() for c in x)


def check_reader(case: dict[str, Any]) -> None:
    """A reader returns well-formed data or a ValueError naming the file and the line."""
    from crossrank.eval.trec import write_run

    kind, data = case["kind"], bytes.fromhex(case["hex"])
    assert kind in _READERS
    with _scratch() as d:
        path = d / f"input.{kind}"
        path.write_bytes(data)
        try:
            got = _read(kind, path)
        except ValueError as exc:
            msg = str(exc)
            assert msg.startswith(f"{path}:"), msg  # names the file...
            line = msg[len(str(path)) + 1 :].split(":", 1)[0]
            assert line.isdigit(), msg  # ...and the line
            assert 1 <= int(line) <= data.count(b"\n") + 1, msg
            return
        if kind == "qrels":
            for qid, docs in got.items():
                assert _clean_id(qid), qid
                for did, grade in docs.items():
                    assert _clean_id(did), did
                    assert type(grade) is int, grade
        elif kind == "run":
            for qid, docs in got.items():
                assert _clean_id(qid), qid
                for did, score in docs.items():
                    assert _clean_id(did), did
                    assert math.isfinite(score), score
            out = d / "again.trec"
            if all(not q.startswith(("#", "\ufeff")) for q in got):
                write_run(got, out)  # what was read can be written and read back unchanged
                assert _read("run", out) == {q: v for q, v in got.items() if v}
        elif kind == "corpus":
            ids, titles, texts = got
            assert len(ids) == len(set(ids)) == len(titles) == len(texts)
            assert all(isinstance(i, str) and i.strip() for i in ids)
            assert all(isinstance(t, str) for t in titles + texts)
        else:
            assert all(isinstance(k, str) and isinstance(v, str) for k, v in got.items())


# ------------------------------------------------------------------------------------------------
# Manifests of every saved format
# ------------------------------------------------------------------------------------------------
_FORMATS = ("bm25", "store", "dense", "calibration")
_SAVED: dict[str, Path] = {}


def _saved(fmt: str) -> Path:
    """One saved object of each format, written once per process."""
    with _LOCK:
        if fmt not in _SAVED:
            root = _TMP / f"saved-{fmt}"
            if fmt == "bm25":
                from crossrank.retrieve.bm25 import BM25Index

                BM25Index.build(["a b c", "b c d", "x"], ids=["d1", "d2", "d3"], num_threads=1).save(root)
            elif fmt == "store":
                from crossrank.rerank.maxsim import PackedDocs, PackedDocStore

                docs = PackedDocs([np.eye(3, 4, dtype=np.float32), np.ones((1, 4), np.float32)], dtype="fp16")
                PackedDocStore.save(root, docs, ids=["p", "q"], metadata={"model": "m"})
            elif fmt == "dense":
                from crossrank.retrieve.dense import DenseIndex

                DenseIndex.build(np.eye(4, dtype=np.float32), ids=["a", "b", 3, "d"]).save(root)
            else:
                from crossrank.rerank.calibration import Calibrator

                root.mkdir()
                Calibrator.fit(np.array([-2.0, -1.0, 0.5, 2.0]), np.array([0, 1, 0, 1])).save(root)
            _SAVED[fmt] = root
    return _SAVED[fmt]


def _manifest_name(fmt: str) -> str:
    return "calibration.json" if fmt == "calibration" else "manifest.json"


def _open_and_use(fmt: str, root: Path) -> None:
    if fmt == "bm25":
        from crossrank.retrieve.bm25 import BM25Index

        for mmap in (True, False):
            idx = BM25Index.load(root, mmap=mmap)
            if idx.analyzer is None:  # a manifest without an analyzer: an index built from tokens
                hits = idx.search_tokens([["b", "c"], ["zzz"]], k=5, num_threads=1)
            else:
                hits = idx.search(["b c", "zzz"], k=5, num_threads=1)
            assert hits.ids.shape[1] == min(5, len(idx))
            assert np.all(np.isfinite(hits.scores))
    elif fmt == "store":
        from crossrank.rerank.maxsim import PackedDocStore, maxsim

        store = PackedDocStore.open(root)
        out = maxsim(np.ones((2, store.docs.dim), np.float32), store)
        assert out.shape == (len(store),)
        assert np.all(np.isfinite(out))
    elif fmt == "dense":
        from crossrank.retrieve.dense import DenseIndex

        idx = DenseIndex.load(root)
        hits = idx.search(np.ones((1, idx.dim), np.float32), k=3)
        assert hits.ids.shape == (1, min(3, len(idx)))
    else:
        from crossrank.rerank.calibration import Calibrator

        cal = Calibrator.load(root)
        p = cal(np.array([-1e300, -1.0, 0.0, 1.0, 1e300]))
        assert np.all(np.diff(p) >= 0)
        assert np.all((p >= 0) & (p <= 1))


def _set_path(body: Any, path: list[Any], value: Any) -> Any:
    """``body`` with the item at ``path`` replaced (``...`` deletes it); a path that does not
    exist sets nothing."""
    if not path:
        return value
    cur = body
    for key in path[:-1]:
        if (isinstance(cur, dict) and key in cur) or (
            isinstance(cur, list) and isinstance(key, int) and -len(cur) <= key < len(cur)
        ):
            cur = cur[key]
        else:
            return body
    last = path[-1]
    if isinstance(cur, dict):
        if value == "__delete__":
            cur.pop(last, None)
        else:
            cur[str(last)] = value
    elif isinstance(cur, list) and isinstance(last, int) and -len(cur) <= last < len(cur):
        if value == "__delete__":
            del cur[last]
        else:
            cur[last] = value
    return body


def check_manifest(case: dict[str, Any]) -> None:
    """A changed manifest loads to a working object or raises StateError naming the file."""
    fmt = case["format"]
    assert fmt in _FORMATS
    src = _saved(fmt)
    with _scratch() as d:
        root = d / "saved"
        shutil.copytree(src, root)
        mpath = root / _manifest_name(fmt)
        if "hex" in case:
            mpath.write_bytes(bytes.fromhex(case["hex"]))
        else:
            body = json.loads(mpath.read_text(encoding="utf-8"))
            for path, value in case["edits"]:
                body = _set_path(body, path, copy.deepcopy(value))
            if fmt == "bm25" and case.get("resign") and isinstance(body, dict):
                from crossrank.retrieve.bm25_io import _digest

                body.pop("manifest_sha256", None)
                body["manifest_sha256"] = _digest(body)
            mpath.write_text(json.dumps(body), encoding="utf-8")
        try:
            _open_and_use(fmt, root)
        except StateError as exc:
            msg = str(exc)
            assert str(mpath) in msg or str(root) in msg, msg


# ------------------------------------------------------------------------------------------------
# The packer's pair template, read from tokenizer.json post-processors
# ------------------------------------------------------------------------------------------------
TEMPLATE_VOCAB = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "<s>": 4, "</s>": 5, "a": 6, "b": 7, "c": 8}


def tokenizer_json(post_processor: Any, padding: Any = None) -> dict[str, Any]:
    """A WordLevel tokenizer.json (whitespace split) with the given post-processor."""
    return {
        "version": "1.0",
        "truncation": None,
        "padding": padding,
        "added_tokens": [],
        "normalizer": None,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": post_processor,
        "decoder": None,
        "model": {"type": "WordLevel", "vocab": TEMPLATE_VOCAB, "unk_token": "[UNK]"},
    }


def check_template(case: dict[str, Any]) -> None:
    """PairTemplate either refuses the post-processor (ValueError / StateError) or lays a pair out
    exactly as Hugging Face tokenizers does."""
    import tokenizers

    from crossrank.text.packing import PairTemplate, plan_pairs

    with _scratch() as d:
        path = d / "tokenizer.json"
        path.write_text(
            json.dumps(tokenizer_json(case["post_processor"], case.get("padding"))), encoding="utf-8"
        )
        try:
            template = PairTemplate.from_tokenizer_json(path)
        except (ValueError, StateError) as exc:
            msg = str(exc)
            assert msg, "an error without a message"
            return
        tok = tokenizers.Tokenizer.from_file(str(path))
    # The texts' own ids come from the same tokenizer without a post-processor (a single-sequence
    # template without $A makes tokenizers drop the text even with add_special_tokens=False).
    plain = tokenizers.Tokenizer.from_str(json.dumps(tokenizer_json(None)))
    query, doc = case.get("query", "a b"), case.get("doc", "c a b")
    enc = tok.encode(query, doc)
    q_ids = plain.encode(query, add_special_tokens=False).ids
    d_ids = plain.encode(doc, add_special_tokens=False).ids
    plan = plan_pairs([q_ids], [d_ids], template, max_length=len(enc.ids) + 8)
    batch = plan.batch(0)
    n = int(batch.n_tokens[0])
    assert batch.input_ids[0, :n].tolist() == enc.ids, (batch.input_ids[0, :n].tolist(), enc.ids)
    assert batch.token_type_ids[0, :n].tolist() == enc.type_ids, (
        batch.token_type_ids[0, :n].tolist(),
        enc.type_ids,
    )


# ------------------------------------------------------------------------------------------------
# Server request bodies (in-process, a fake model; the server code is not changed here)
# ------------------------------------------------------------------------------------------------
SERVER_PATHS = ("/rerank", "/v1/rerank", "/v2/rerank", "/embed", "/v1/embeddings", "/", "/invocations")
_CLIENT: dict[str, Any] = {}


def _client() -> Any:
    with _LOCK:
        if "client" not in _CLIENT:
            from fastapi.testclient import TestClient

            from crossrank.server.app import create_app
            from server_fakes import FakeCrossEncoder, FakeEmbedModel

            app = create_app(FakeCrossEncoder(), embed_model=FakeEmbedModel())
            client = TestClient(app, raise_server_exceptions=False)
            client.__enter__()  # runs the lifespan (starts the batchers) once for the process
            _CLIENT["client"] = client
    return _CLIENT["client"]


def check_server(case: dict[str, Any]) -> None:
    """Any body gets a JSON answer below 500; a 200 rerank answer ranks valid indices, best first."""
    client = _client()
    path = case["path"]
    assert path in SERVER_PATHS
    if "hex" in case:
        content = bytes.fromhex(case["hex"])
    else:
        content = json.dumps(case["json"], allow_nan=True).encode("utf-8")
    resp = client.post(path, content=content, headers={"content-type": "application/json"})
    assert resp.status_code < 500, (resp.status_code, resp.text[:500])
    body = resp.json()
    if resp.status_code != 200 or "json" not in case or not isinstance(case["json"], dict):
        return
    sent = case["json"]
    ranked = isinstance(body, list) and all(isinstance(r, dict) and "index" in r for r in body)
    if path == "/rerank" or (path in ("/", "/invocations") and ranked and "texts" in sent):
        n = len(sent["texts"])
        indices = [r["index"] for r in body]
        scores = [r["score"] for r in body]
        assert all(0 <= i < n for i in indices), body
        assert len(set(indices)) == len(indices), body
        assert scores == sorted(scores, reverse=True), body
    elif path in ("/v1/rerank", "/v2/rerank"):
        n = len(sent["documents"])
        results = body["results"]
        indices = [r["index"] for r in results]
        assert all(0 <= i < n for i in indices), body
        assert len(set(indices)) == len(indices), body
        scores = [r["relevance_score"] for r in results]
        assert scores == sorted(scores, reverse=True), body


CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "analyzer": check_analyzer,
    "readers": check_reader,
    "manifests": check_manifest,
    "templates": check_template,
    "server": check_server,
}
