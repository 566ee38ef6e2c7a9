"""The command line under bad input (issue 12): every failure of every subcommand is one line on
stderr with a non-zero exit code and no traceback (``--debug`` shows it); bad output paths are refused
before any work starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from crossrank import cli
from crossrank.cli import _output


@pytest.fixture
def beir(tmp_path: Path) -> Path:
    """A two-document BEIR folder whose qrels start with a byte order mark."""
    ds = tmp_path / "ds"
    (ds / "qrels").mkdir(parents=True)
    (ds / "corpus.jsonl").write_text(
        '{"_id": "d1", "title": "", "text": "cats sit on mats"}\n{"_id": "d2", "text": "dogs bark loudly"}\n'
    )
    (ds / "queries.jsonl").write_text('{"_id": "q1", "text": "cats"}\n{"_id": "q2", "text": "dogs"}\n')
    (ds / "qrels" / "test.tsv").write_bytes(b"\xef\xbb\xbfquery-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n")
    return ds


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    f = tmp_path / "afile"
    f.write_text("not a folder")
    return f


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(err: str, command: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # nothing was logged before it: the check came before any work
    assert lines[0].startswith(f"crossrank {command}: error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, err)


# ---------------------------------------------------------------------------------------------
# Output paths refused before the work starts
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("command", "args", "flag"),
    [
        ("eval", ["{ds}", "--no-plot", "--out", "{file}"], "--out"),
        ("eval", ["{ds}", "--no-plot", "--out", "{file}/sub"], "--out"),
        ("index", ["{ds}", "-o", "{file}"], "-o"),
        ("index", ["{ds}", "-o", "{file}/idx"], "-o"),
        ("export", ["{ds}", "-o", "{file}"], "-o"),
        ("train", ["{ds}", "{ds}", "-o", "{file}"], "-o"),
        ("calibrate", ["{ds}", "{ds}", "--output", "{file}/cal.json"], "--output"),
    ],
)
def test_bad_output_path_is_one_line_before_any_work(
    capsys: pytest.CaptureFixture[str], beir: Path, a_file: Path, command: str, args: list[str], flag: str
) -> None:
    argv = [a.format(ds=beir, file=a_file) for a in args]
    code, out, err = _run(capsys, command, *argv)
    assert code == 2
    assert out == ""
    _one_line_error(err, command, flag, str(a_file))
    assert a_file.read_text() == "not a folder"


def test_index_into_a_folder_of_other_files_is_refused_before_indexing(
    capsys: pytest.CaptureFixture[str], beir: Path
) -> None:
    code, _, err = _run(capsys, "index", beir, "-o", beir, "--no-progress")
    assert code == 2
    _one_line_error(err, "index", "-o", "not a saved 'crossrank.bm25'")
    assert (beir / "corpus.jsonl").is_file()  # nothing was replaced


def test_read_only_output_folder_is_refused(
    capsys: pytest.CaptureFixture[str], beir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    real_access = os.access
    # The tests run as root here, for whom chmod 555 does not stop writes: ask os.access instead.
    monkeypatch.setattr(
        _output.os, "access", lambda p, mode: False if Path(p) == ro else real_access(p, mode)
    )
    code, _, err = _run(capsys, "index", beir, "-o", ro / "idx", "--no-progress")
    assert code == 2
    _one_line_error(err, "index", f"{ro} is not writable")


def test_calibrate_output_folder_gets_calibration_json(tmp_path: Path) -> None:
    assert (
        _output.check_output_file(tmp_path, "--output", dir_name="calibration.json")
        == tmp_path / "calibration.json"
    )
    with pytest.raises(IsADirectoryError, match=r"^--output .*: is a folder; give a file path"):
        _output.check_output_file(tmp_path, "--output")


def test_good_output_paths_pass(tmp_path: Path) -> None:
    assert _output.check_output_dir(tmp_path / "new" / "deeper", "-o") == tmp_path / "new" / "deeper"
    assert _output.check_output_dir(tmp_path, "--out") == tmp_path  # an existing folder is fine


# ---------------------------------------------------------------------------------------------
# Failures inside the work: one line, exit 2, no traceback
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def index_dir(beir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    out = tmp_path / "idx"
    assert cli.main(["index", str(beir), "-o", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    return out


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["-k", "0"], "k must be >= 1"),
        (["--threads", str(2**70)], "num_threads must be None"),
        (["--threads", "0"], "num_threads must be None"),
    ],
)
def test_search_bad_numbers_are_one_line(
    capsys: pytest.CaptureFixture[str], index_dir: Path, extra: list[str], needle: str
) -> None:
    code, out, err = _run(capsys, "search", index_dir, "cats", *extra)
    assert code == 2
    assert out == ""
    _one_line_error(err, "search", needle)


def test_search_overflowing_k_is_capped(capsys: pytest.CaptureFixture[str], index_dir: Path) -> None:
    code, out, err = _run(capsys, "search", index_dir, "cats", "-k", str(2**80), "--json")
    assert code == 0, err
    results = json.loads(out)[0]["results"]
    assert next(r["id"] for r in results) == "d1"
    assert len(results) == 2


@pytest.mark.parametrize("where", ["missing", "afile"])
def test_search_without_an_index_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, a_file: Path, where: str
) -> None:
    path = tmp_path / "missing" if where == "missing" else a_file
    code, _, err = _run(capsys, "search", path, "cats")
    assert code == 2
    _one_line_error(err, "search", str(path))


@pytest.mark.parametrize(
    ("corpus", "needle"),
    [
        (b'{"_id": "d1", "text": "a"}\n{"_id": null, "text": "b"}\n', "corpus.jsonl:2: '_id' must be a str"),
        (b'{"_id": "d1", "text": "\xff"}\n', "corpus.jsonl:1: not UTF-8 text"),
        (b'{"_id": "d1", "text": "a"}\n{"_id": "d1"}\n', "corpus.jsonl:2: duplicate document id 'd1'"),
    ],
)
def test_index_bad_corpus_names_file_and_line(
    capsys: pytest.CaptureFixture[str], beir: Path, tmp_path: Path, corpus: bytes, needle: str
) -> None:
    (beir / "corpus.jsonl").write_bytes(corpus)
    code, _, err = _run(capsys, "index", beir, "-o", tmp_path / "idx", "--no-progress")
    assert code == 2
    _one_line_error(err, "index", needle, str(beir))
    assert not (tmp_path / "idx").exists()


def test_eval_bad_qrels_grade_names_file_and_line(
    capsys: pytest.CaptureFixture[str], beir: Path, tmp_path: Path
) -> None:
    (beir / "qrels" / "test.tsv").write_text("q1\td1\t1\nq2\td2\tNone\n")
    code, _, err = _run(capsys, "eval", beir, "--no-plot", "--out", tmp_path / "ev")
    assert code == 2
    _one_line_error(err, "eval", "test.tsv:2: relevance 'None' is not an integer")


def test_eval_with_a_bom_in_qrels_counts_every_query(
    capsys: pytest.CaptureFixture[str], beir: Path, tmp_path: Path
) -> None:
    code, _, err = _run(capsys, "eval", beir, "--no-plot", "--depth", str(2**70), "--out", tmp_path / "ev")
    assert code == 0, err
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert report["queries"] == 2
    assert report["rows"][0]["metrics"]["nDCG@10"] == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------
# The wrapper itself: unexpected errors, multi-line messages, --debug
# ---------------------------------------------------------------------------------------------
def _patched_search(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    from crossrank.cli import search

    def boom(args: object) -> int:
        raise exc

    monkeypatch.setattr(search, "run", boom)


def test_unexpected_error_is_one_line_with_exit_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _patched_search(monkeypatch, RuntimeError("kaboom"))
    code, _, err = _run(capsys, "search", tmp_path, "q")
    assert code == 1
    _one_line_error(err, "search", "kaboom (RuntimeError; run with --debug for the traceback)")


def test_multi_line_message_becomes_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _patched_search(
        monkeypatch, TypeError("f(): incompatible arguments\n  1. (x: int)\n\nInvoked with: 2**70")
    )
    code, _, err = _run(capsys, "search", tmp_path, "q")
    assert code == 2
    _one_line_error(err, "search", "f(): incompatible arguments 1. (x: int) Invoked with: 2**70")


def test_empty_message_shows_the_exception_type(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _patched_search(monkeypatch, KeyError())
    code, _, err = _run(capsys, "search", tmp_path, "q")
    assert code == 2
    _one_line_error(err, "search", "KeyError")


@pytest.mark.parametrize("position", ["global", "after"])
def test_debug_shows_the_traceback(
    capsys: pytest.CaptureFixture[str], beir: Path, a_file: Path, position: str
) -> None:
    argv = ["index", beir, "-o", a_file]
    argv = ["--debug", *argv] if position == "global" else [*argv, "--debug"]
    code, _, err = _run(capsys, *argv)
    assert code == 2
    assert "Traceback (most recent call last)" in err
    assert "NotADirectoryError" in err
    assert err.strip().splitlines()[-1].startswith("crossrank index: error: -o ")


def test_keyboard_interrupt_exits_130(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _patched_search(monkeypatch, KeyboardInterrupt())
    code, _, err = _run(capsys, "search", tmp_path, "q")
    assert code == 130
    assert "Traceback" not in err


def test_the_installed_entry_point_prints_one_line(beir: Path, a_file: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "crossrank", "index", str(beir), "-o", str(a_file)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    _one_line_error(proc.stderr, "index", "exists and is a file")
