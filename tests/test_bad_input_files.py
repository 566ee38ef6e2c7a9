"""Bad files (issue 12): TREC runs, qrels and JSONL readers name the file and line; manifests with
wrong types raise StateError naming the file and the field; a save that fails validation leaves the
directory untouched.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from crossrank.errors import StateError
from crossrank.eval.datasets import read_corpus, read_qrels, read_queries
from crossrank.eval.evaluate import evaluate
from crossrank.eval.trec import read_run, write_run
from crossrank.rerank.calibration import Calibrator
from crossrank.rerank.maxsim import PackedDocs, PackedDocStore
from crossrank.retrieve.bm25 import BM25Index

BOM = b"\xef\xbb\xbf"


def _write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    p = tmp_path / name
    p.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return p


# ---------------------------------------------------------------------------------------------
# qrels
# ---------------------------------------------------------------------------------------------
def test_qrels_bom_is_dropped(tmp_path: Path) -> None:
    p = _write(tmp_path, "q.tsv", BOM + b"query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    assert read_qrels(p) == {"q1": {"d1": 1}}


def test_qrels_bom_without_header_keeps_the_first_query(tmp_path: Path) -> None:
    p = _write(tmp_path, "q.tsv", BOM + b"q1\td1\t2\nq2\td2\t0\n")
    assert read_qrels(p) == {"q1": {"d1": 2}, "q2": {"d2": 0}}


def test_concatenated_files_with_boms_keep_every_query(tmp_path: Path) -> None:
    q = _write(tmp_path, "q.tsv", BOM + b"q1\td1\t1\n" + BOM + b"q2\td2\t1\n")
    assert read_qrels(q) == {"q1": {"d1": 1}, "q2": {"d2": 1}}
    r = _write(tmp_path, "r.trec", BOM + BOM + b"q1 Q0 d1 1 2.0 t\n" + BOM + b"q2 Q0 d2 1 1.0 t\n")
    assert read_run(r) == {"q1": {"d1": 2.0}, "q2": {"d2": 1.0}}
    c = _write(tmp_path, "c.jsonl", BOM + b'{"_id": "a"}\n' + BOM + b'{"_id": "b"}\n')
    assert read_corpus(c)[0] == ["a", "b"]


def test_qrels_trec_four_columns(tmp_path: Path) -> None:
    p = _write(tmp_path, "q.txt", "q1 0 d1 1\nq1 0 d2 0\n")
    assert read_qrels(p) == {"q1": {"d1": 1, "d2": 0}}


@pytest.mark.parametrize("grade", ["nan", "None", "1.5", "inf", "", "x", "1e3"])
def test_qrels_non_integer_grade_names_file_and_line(tmp_path: Path, grade: str) -> None:
    p = _write(tmp_path, "q.tsv", f"q0\td0\t1\nq1\td1\t{grade}\n")
    with pytest.raises(ValueError, match=rf"^{p}:2: "):
        read_qrels(p)


@pytest.mark.parametrize("first", ["q1 d1", "q1\td1\t1\textra\tcols", "just-one-field"])
def test_qrels_malformed_first_line_is_not_taken_as_a_header(tmp_path: Path, first: str) -> None:
    p = _write(tmp_path, "q.tsv", f"{first}\nq2\td2\t1\n")
    with pytest.raises(ValueError, match=rf"^{p}:1: expected 'query-id corpus-id score'"):
        read_qrels(p)


def test_qrels_not_utf8_names_file_and_line(tmp_path: Path) -> None:
    p = _write(tmp_path, "q.tsv", b"q1\td1\t1\nq\xff\td\t1\n")
    with pytest.raises(ValueError, match=rf"^{p}:2: not UTF-8 text"):
        read_qrels(p)


# ---------------------------------------------------------------------------------------------
# TREC runs
# ---------------------------------------------------------------------------------------------
def test_run_bom_is_dropped(tmp_path: Path) -> None:
    p = _write(tmp_path, "r.trec", BOM + b"q1 Q0 d1 1 2.5 tag\n")
    assert read_run(p) == {"q1": {"d1": 2.5}}


@pytest.mark.parametrize(
    ("line", "msg"),
    [
        ("q1 Q0 d1 1", "expected 'qid Q0 docid rank score"),
        ("q1 Q0 d1 1 high tag", "score 'high' is not a number"),
        ("q1 Q0 d1 1 nan tag", "score 'nan' is not finite"),
        ("q1 Q0 d1 1 -inf tag", "score '-inf' is not finite"),
    ],
)
def test_run_bad_line_names_file_and_line(tmp_path: Path, line: str, msg: str) -> None:
    p = _write(tmp_path, "r.trec", f"q0 Q0 d0 1 1.0 t\n{line}\n")
    with pytest.raises(ValueError, match=rf"^{p}:2: {msg}"):
        read_run(p)


def test_run_not_utf8_names_the_file(tmp_path: Path) -> None:
    p = _write(tmp_path, "r.trec", b"q1 Q0 d\xc3 1 1.0 t\n")
    with pytest.raises(ValueError, match=rf"^{p}:1: not UTF-8"):
        read_run(p)


@pytest.mark.parametrize("score", [float("inf"), float("-inf"), float("nan")])
def test_write_run_refuses_non_finite_scores_before_writing(tmp_path: Path, score: float) -> None:
    p = tmp_path / "r.trec"
    with pytest.raises(ValueError, match=r"doc(ument)? 'd2'.* (is not finite|is NaN)"):
        write_run({"q": {"d1": 1.0, "d2": score}}, p)
    assert not p.exists()


@pytest.mark.parametrize(
    ("run", "msg"),
    [
        ({"q 1": {"d": 1.0}}, "query id 'q 1'"),
        ({"q": {"": 1.0}}, "doc id ''"),
        ({"\ufeffq": {"d": 1.0}}, "starts with U\\+FEFF"),
    ],
)
def test_write_run_refuses_ids_that_cannot_be_read_back(tmp_path: Path, run: dict, msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        write_run(run, tmp_path / "r.trec")


def test_write_run_then_read_run_round_trips(tmp_path: Path) -> None:
    run = {"q1": {"d1": 0.1 + 0.2, "d2": -3.5e-12}, "q2": {"d3": 7.0}}
    write_run(run, tmp_path / "r.trec")
    assert read_run(tmp_path / "r.trec") == run


# ---------------------------------------------------------------------------------------------
# Grades given to evaluate directly
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("grade", "exc"), [(None, TypeError), (float("nan"), ValueError), (1.5, ValueError)])
def test_evaluate_refuses_non_integer_grades(grade: object, exc: type[Exception]) -> None:
    with pytest.raises(exc, match=r"qrels\['q1'\]\['d1'\] is .*: grades must be integers"):
        evaluate({"q1": {"d1": 1.0}}, {"q1": {"d1": grade}}, ["ndcg@10"])  # type: ignore[dict-item]


# ---------------------------------------------------------------------------------------------
# JSONL corpora and queries
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "msg"),
    [
        ('{"_id": null, "text": "x"}', "'_id' must be a str \\(or an int\\), got null"),
        ('{"text": "x"}', "expected an object with an '_id' field"),
        ('{"_id": "  ", "text": "x"}', "'_id' is empty"),
        ('{"_id": true, "text": "x"}', "'_id' must be a str \\(or an int\\), got bool"),
        ('{"_id": ["a"], "text": "x"}', "'_id' must be a str \\(or an int\\), got list"),
        ('{"_id": "d", "text": 3}', "'text' must be a str or null, got int"),
        ('{"_id": "d", "title": {}}', "'title' must be a str or null, got dict"),
        ('["_id", "d"]', "expected an object with an '_id' field"),
        ('{"_id": "d", ', "not valid JSON"),
        ('{"_id": "d0", "text": "dup"}', "duplicate document id 'd0' \\(first on line 1\\)"),
    ],
)
def test_corpus_bad_line_names_file_and_line(tmp_path: Path, line: str, msg: str) -> None:
    p = _write(tmp_path, "corpus.jsonl", '{"_id": "d0", "text": "ok"}\n' + line + "\n")
    with pytest.raises(ValueError, match=rf"^{p}:2: {msg}"):
        read_corpus(p)


def test_corpus_deep_nesting_is_a_value_error(tmp_path: Path) -> None:
    p = _write(tmp_path, "corpus.jsonl", "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(ValueError, match=rf"^{p}:1: "):
        read_corpus(p)


def test_corpus_bom_int_ids_and_null_title(tmp_path: Path) -> None:
    p = _write(tmp_path, "corpus.jsonl", BOM + b'{"_id": 7, "title": null, "text": "t"}\n\n')
    assert read_corpus(p) == (["7"], [""], ["t"])


def test_queries_null_id_names_the_line(tmp_path: Path) -> None:
    p = _write(tmp_path, "queries.jsonl", '{"_id": "q1", "text": "a"}\n{"_id": null, "text": "b"}\n')
    with pytest.raises(ValueError, match=rf"^{p}:2: '_id' must be a str"):
        read_queries(p)


# ---------------------------------------------------------------------------------------------
# Manifests: wrong types are StateError naming the file and the field
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("saved")
    BM25Index.build(["a b", "c d"], ids=["x", "y"], num_threads=1).save(root / "bm25")
    PackedDocStore.save(root / "store", PackedDocs([np.ones((2, 4), np.float32)]), ids=["a"])
    Calibrator.fit(np.array([-1.0, 0.0, 1.0, 2.0]), np.array([0, 1, 0, 1])).save(root / "cal.json")
    return {"bm25": root / "bm25", "store": root / "store", "cal": root / "cal.json"}


def _load(kind: str, path: Path) -> object:
    if kind == "bm25":
        return BM25Index.load(path)
    if kind == "store":
        return PackedDocStore.open(path)
    if kind == "dense":
        from crossrank.retrieve.dense import DenseIndex

        return DenseIndex.load(path)
    return Calibrator.load(path)


def _edit(kind: str, src: Path, tmp_path: Path, field: str, value: object) -> Path:
    """A copy of the saved ``src`` whose manifest has ``field`` set to ``value`` (deleted for ``...``)."""
    import shutil

    dst = tmp_path / src.name
    (shutil.copytree if src.is_dir() else shutil.copy)(src, dst)
    mpath = dst / "manifest.json" if dst.is_dir() else dst
    body = json.loads(mpath.read_text())
    if value is ...:
        del body[field]
    else:
        body[field] = value
    if kind == "bm25":  # re-sign, so that the field check (not the tamper check) answers
        from crossrank.retrieve.bm25_io import _digest

        body.pop("manifest_sha256", None)
        body["manifest_sha256"] = _digest(body)
    mpath.write_text(json.dumps(body))
    return mpath


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [
        ("bm25", "format_version", "1"),
        ("bm25", "format_version", 99),
        ("bm25", "arrays", []),
        ("bm25", "n_docs", "2"),
        ("bm25", "params", None),
        ("bm25", "format", "crossrank.other"),
        ("bm25", "ids_kind", "float"),
        ("bm25", "n_terms", 2**70),
        ("store", "dim", "4"),
        ("store", "dim", True),
        ("store", "files", None),
        ("store", "n_docs", -1),
        ("store", "dtype", "fp64"),
        ("store", "format_version", ...),
        ("cal", "a", "1.0"),
        ("cal", "a", -1.0),
        ("cal", "method", ["platt"]),
        ("cal", "format", None),
    ],
)
def test_manifest_with_a_wrong_field_is_a_state_error_naming_file_and_field(
    saved: dict[str, Path], tmp_path: Path, kind: str, field: str, value: object
) -> None:
    mpath = _edit(kind, saved[kind], tmp_path, field, value)
    with pytest.raises(StateError) as info:
        _load(kind, mpath.parent if kind != "cal" else mpath)
    msg = str(info.value)
    print(msg)
    assert str(mpath) in msg
    assert repr(field) in msg or field in msg


def test_dense_manifest_without_checksums_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("faiss")
    from crossrank.retrieve.dense import DenseIndex

    DenseIndex.build(np.eye(4, dtype=np.float32), ids=["a", "b", "c", "d"]).save(tmp_path / "d")
    body = json.loads((tmp_path / "d" / "manifest.json").read_text())
    del body["sha256"]
    (tmp_path / "d" / "manifest.json").write_text(json.dumps(body))
    with pytest.raises(StateError, match=r"manifest.json: field 'sha256' is missing"):
        DenseIndex.load(tmp_path / "d")


@pytest.mark.parametrize("content", [b"", b"\xff\xfe", b"[1, 2]", b"{" * 50_000, b'{"format": 1}'])
def test_unreadable_manifest_is_a_state_error_naming_the_file(
    saved: dict[str, Path], tmp_path: Path, content: bytes
) -> None:
    import shutil

    dst = tmp_path / "store"
    shutil.copytree(saved["store"], dst)
    (dst / "manifest.json").write_bytes(content)
    with pytest.raises(StateError, match=rf"^{dst / 'manifest.json'}: "):
        PackedDocStore.open(dst)


# ---------------------------------------------------------------------------------------------
# A save that fails validation changes nothing on disk
# ---------------------------------------------------------------------------------------------
def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_store_save_with_wrong_length_ids_leaves_the_old_store(
    saved: dict[str, Path], tmp_path: Path
) -> None:
    import shutil

    dst = tmp_path / "store"
    shutil.copytree(saved["store"], dst)
    before, siblings = _snapshot(dst), sorted(os.listdir(tmp_path))
    with pytest.raises(ValueError, match=r"^ids has 3 entries but there are 2 documents"):
        PackedDocStore.save(
            dst, PackedDocs([np.ones((1, 4), np.float32)] * 2), ids=["a", "b", "c"], overwrite=True
        )
    with pytest.raises(ValueError, match=r"^metadata must be JSON-serialisable"):
        PackedDocStore.save(
            dst, PackedDocs([np.ones((1, 4), np.float32)]), metadata={"x": float("nan")}, overwrite=True
        )
    assert _snapshot(dst) == before
    assert sorted(os.listdir(tmp_path)) == siblings


def test_bm25_build_with_unhashable_ids_changes_nothing(saved: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    dst = tmp_path / "bm25"
    shutil.copytree(saved["bm25"], dst)
    before = _snapshot(dst)
    with pytest.raises(TypeError, match=r"ids"):
        BM25Index.build(["a", "b"], ids=[["x"], ["y"]]).save(dst)  # type: ignore[list-item]
    assert _snapshot(dst) == before
    assert BM25Index.load(dst).search(["a"], k=1).ids.tolist() == [["x"]]


def test_a_save_that_fails_mid_write_keeps_the_old_directory(
    saved: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from crossrank.rerank import maxsim as maxsim_mod

    dst = tmp_path / "store"
    shutil.copytree(saved["store"], dst)
    before, siblings = _snapshot(dst), sorted(os.listdir(tmp_path))

    def disk_full(path: Path, data: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(maxsim_mod, "_write_synced", disk_full)
    with pytest.raises(OSError, match="No space left"):
        PackedDocStore.save(dst, PackedDocs([np.zeros((3, 4), np.float32)]), overwrite=True)
    assert _snapshot(dst) == before
    assert sorted(os.listdir(tmp_path)) == siblings


def test_save_over_unrelated_files_is_refused_and_keeps_them(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match=r"holds files that are not a saved 'crossrank.bm25'"):
        BM25Index.build(["a"]).save(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_calibration_save_into_a_path_under_a_file_is_an_os_error(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match="Not a directory"):
        Calibrator().save(tmp_path / "f" / "cal.json")
    assert (tmp_path / "f").read_text() == "x"


# ---------------------------------------------------------------------------------------------
# Decode errors name the file (model configs, query files, stopword lists)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("content", [b"\xff\xfe{}", b'{"hidden_size": ', b"[" * 100_000])
def test_model_config_that_is_not_json_is_a_state_error_naming_it(tmp_path: Path, content: bytes) -> None:
    from crossrank.models.hub import resolve_model

    (tmp_path / "model.onnx").write_bytes(b"\x08\x07")  # resolve_model only locates the files
    (tmp_path / "tokenizer.json").write_text("{}")
    (tmp_path / "config.json").write_bytes(content)
    with pytest.raises(StateError, match=rf"^{tmp_path / 'config.json'}: not a readable JSON file"):
        resolve_model(str(tmp_path))


@pytest.mark.parametrize(
    ("content", "msg"),
    [
        (b"q1\tfine\nq2\t\xff\n", ":2: not UTF-8 text"),
        (b'q1\tfine\n{"_id": null}\n', ":2: expected an object with a non-null '_id' field"),
        (b'{"_id": "q1", \n', ":1: not valid JSON"),
        (b"no tab here\n", ":1: expected 'query-id<TAB>text'"),
    ],
)
def test_training_query_file_errors_name_file_and_line(tmp_path: Path, content: bytes, msg: str) -> None:
    from crossrank.train.data import read_query_file

    p = _write(tmp_path, "queries.tsv", content)
    with pytest.raises(ValueError, match=rf"^{p}{msg}"):
        read_query_file(p)


def test_training_query_file_with_a_bom(tmp_path: Path) -> None:
    from crossrank.train.data import read_query_file

    p = _write(tmp_path, "queries.tsv", BOM + b"q1\tfirst query\r\nq2\tsecond\n")
    assert read_query_file(p) == {"q1": "first query", "q2": "second"}


def test_index_stopwords_file_not_utf8_names_it(tmp_path: Path) -> None:
    from crossrank.cli.index import _stopwords

    p = _write(tmp_path, "stop.txt", b"the\n\xff\xfe\n")
    with pytest.raises(ValueError, match=rf"^--stopwords {p}: not UTF-8 text"):
        _stopwords(str(p))


# ---------------------------------------------------------------------------------------------
# Training checkpoints: never replace other files; unreadable ones are StateError
# ---------------------------------------------------------------------------------------------
def test_checkpoint_never_replaces_a_folder_of_other_files(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from crossrank.train.checkpoints import CheckpointError, save_checkpoint

    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "notes.txt").write_text("keep me")
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    with pytest.raises(CheckpointError, match=r"could not write checkpoint .*ck"):
        save_checkpoint(tmp_path / "ck", model=model, optimizer=opt, scheduler=sched, state={"step": 1})
    assert (tmp_path / "ck" / "notes.txt").read_text() == "keep me"


def test_checkpoint_with_a_corrupt_trainer_file_is_a_state_error(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from crossrank.train.checkpoints import load_checkpoint, save_checkpoint

    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    save_checkpoint(tmp_path / "ck", model=model, optimizer=opt, scheduler=sched, state={"step": 7})
    assert load_checkpoint(tmp_path / "ck", model=model, optimizer=opt, scheduler=sched)["step"] == 7
    torch.save({"optimizer": {}}, tmp_path / "ck" / "trainer.pt")  # keys missing
    with pytest.raises(StateError, match=rf"^checkpoint {tmp_path / 'ck'} cannot be read"):
        load_checkpoint(tmp_path / "ck", model=model, optimizer=opt, scheduler=sched)
