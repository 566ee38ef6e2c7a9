import pytest

from crossrank.eval.datasets import doc_text, load_beir, read_qrels


def test_load_scifact(datasets_dir):
    ds = load_beir(datasets_dir / "scifact")
    assert len(ds.doc_ids) == 5183
    assert len(ds.queries) == 300
    assert sum(len(v) for v in ds.qrels.values()) == 339
    assert ds.documents()[0] == doc_text(ds.titles[0], ds.texts[0])


def test_qrels_header_and_trec_formats(tmp_path):
    beir = tmp_path / "q.tsv"
    beir.write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td2\t0\n")
    trec = tmp_path / "q.txt"
    trec.write_text("q1 0 d1 2\nq1 0 d2 0\n")
    assert read_qrels(beir) == read_qrels(trec) == {"q1": {"d1": 2, "d2": 0}}


def test_bad_files_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"corpus\.jsonl"):
        load_beir(tmp_path)
    (tmp_path / "corpus.jsonl").write_text('{"_id": "a", "text": "x"}\n{"_id": "a", "text": "y"}\n')
    (tmp_path / "queries.jsonl").write_text("not json\n")
    with pytest.raises(ValueError, match="duplicate document id"):
        load_beir(tmp_path)
    (tmp_path / "corpus.jsonl").write_text('{"_id": "a", "text": "x"}\n')
    with pytest.raises(ValueError, match=r"queries\.jsonl:1"):
        load_beir(tmp_path)
