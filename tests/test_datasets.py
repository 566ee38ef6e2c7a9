import pytest

from crossrank.eval.datasets import doc_text, load_beir, read_corpus, read_qrels, read_queries


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


def test_qrels_bom_and_header(tmp_path):
    p = tmp_path / "q.tsv"
    p.write_bytes(b"\xef\xbb\xbfquery-id\tcorpus-id\tscore\nq1\td1\t1\n")
    assert read_qrels(p) == {"q1": {"d1": 1}}
    p.write_bytes(b"\xef\xbb\xbfq1\td1\t1\nq2\td2\t2\n")  # no header: the first query is kept, BOM-free
    assert read_qrels(p) == {"q1": {"d1": 1}, "q2": {"d2": 2}}


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("q1\td1\tnan\n", r"q\.tsv:1: relevance 'nan'"),  # never mistaken for a header
        ("q1\td1\tabc\nq2\td2\t1\n", r"q\.tsv:1: relevance 'abc'"),
        ("q1 d1\n", r"q\.tsv:1: expected"),
        ("query-id\tcorpus-id\tscore\nq1\td1\tNone\n", r"q\.tsv:2: relevance 'None'"),
        ("q1\td1\t1\nq1\td2\t1.5\n", r"q\.tsv:2: relevance '1\.5'"),
        ("q1\td1\t1\nq1\td2\t1_0\n", r"q\.tsv:2: relevance '1_0'"),
        ("q1\td1\t1\nquery-id\tcorpus-id\tscore\n", r"q\.tsv:2: relevance 'score'"),  # header only first
    ],
)
def test_qrels_bad_lines_name_file_and_line(tmp_path, content, match):
    p = tmp_path / "q.tsv"
    p.write_text(content)
    with pytest.raises(ValueError, match=match):
        read_qrels(p)


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ('{"_id": null, "text": "x"}', r"corpus\.jsonl:2: '_id' must be a str \(or an int\), got null"),
        ('{"text": "x"}', r"corpus\.jsonl:2: expected an object with an '_id' field"),
        ('{"_id": true, "text": "x"}', r"corpus\.jsonl:2: '_id' must be .* got bool"),
        ('{"_id": "", "text": "x"}', r"corpus\.jsonl:2: '_id' is empty"),
        ('{"_id": "b", "text": 5}', r"corpus\.jsonl:2: 'text' must be a str or null"),
        ('{"_id": "a", "text": "y"}', r"corpus\.jsonl:2: duplicate document id 'a' \(first on line 1\)"),
        ("[1, 2]", r"corpus\.jsonl:2: expected an object"),
    ],
)
def test_corpus_bad_records_name_the_line(tmp_path, line, match):
    p = tmp_path / "corpus.jsonl"
    p.write_text('{"_id": "a", "text": "x"}\n' + line + "\n")
    with pytest.raises(ValueError, match=match):
        read_corpus(p)


def test_corpus_and_queries_bom_and_int_ids(tmp_path):
    c = tmp_path / "corpus.jsonl"
    c.write_bytes(b'\xef\xbb\xbf{"_id": 7, "title": null, "text": "x"}\n\n{"_id": "b", "text": "y"}\n')
    assert read_corpus(c) == (["7", "b"], ["", ""], ["x", "y"])
    q = tmp_path / "queries.jsonl"
    q.write_bytes(b'\xef\xbb\xbf{"_id": "q1", "text": "hi"}\n{"_id": "q1", "text": "again"}\n')
    with pytest.raises(ValueError, match=r"queries\.jsonl:2: duplicate query id 'q1'"):
        read_queries(q)
