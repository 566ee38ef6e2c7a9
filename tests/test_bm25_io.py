"""BM25Index.save / load: round trip (copied and memory-mapped) and every way a file can be bad."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from crossrank import BM25Index
from crossrank.errors import StateError

DOCS = [["alpha", "beta", "beta"], ["beta", "gamma"], ["delta"], ["gamma", "gamma", "alpha", "é", "東京"]]
QUERIES = [["alpha"], ["beta", "gamma"], ["東京"], ["nothing"]]


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    index = BM25Index.from_tokens(DOCS, ids=["a", "b", "c", "d"], variant="bm25l", k1=1.2, b=0.6, delta=0.4)
    index.save(tmp_path / "ix")
    return tmp_path / "ix"


@pytest.mark.parametrize("mmap", [True, False])
@pytest.mark.parametrize("ids", [None, ["a", "b", "c", "d"], [10, 20, 30, 40]])
def test_round_trip(tmp_path: Path, mmap: bool, ids) -> None:
    index = BM25Index.from_tokens(DOCS, ids=ids, variant="atire", k1=0.9, b=0.4)
    index.save(tmp_path / "ix")
    loaded = BM25Index.load(tmp_path / "ix", mmap=mmap)
    assert len(loaded) == len(index)
    assert loaded.params == index.params
    assert loaded.vocabulary_size == index.vocabulary_size
    a, b = index.search_tokens(QUERIES, k=3), loaded.search_tokens(QUERIES, k=3)
    np.testing.assert_array_equal(a.ids, b.ids)
    assert a.ids.dtype == b.ids.dtype
    np.testing.assert_array_equal(a.scores, b.scores)
    if mmap:
        assert isinstance(loaded._impacts, np.memmap)
        assert "memory-mapped" in repr(loaded)


def test_add_after_load_equals_rebuild(saved: Path) -> None:
    loaded = BM25Index.load(saved)
    loaded.add_tokens([["alpha", "new"]], ids=["e"])
    full = BM25Index.from_tokens(
        [*DOCS, ["alpha", "new"]], ids=list("abcde"), variant="bm25l", k1=1.2, b=0.6, delta=0.4
    )
    np.testing.assert_array_equal(
        loaded.search_tokens(QUERIES, k=5).scores, full.search_tokens(QUERIES, k=5).scores
    )


def test_manifest_describes_files(saved: Path) -> None:
    manifest = json.loads((saved / "manifest.json").read_text())
    assert manifest["format"] == "crossrank.bm25"
    assert manifest["format_version"] == 2
    assert manifest["params"]["variant"] == "bm25l"
    for entry in manifest["arrays"].values():
        path = saved / entry["file"]
        assert path.stat().st_size == entry["shape"][0] * np.dtype(entry["dtype"]).itemsize
        assert entry["dtype"].startswith(("<", "|"))


def _largest_file(root: Path) -> Path:
    files = [p for p in root.iterdir() if p.suffix == ".bin"]
    return max(files, key=lambda p: p.stat().st_size)


def test_truncated_file(saved: Path) -> None:
    victim = saved / "impacts.bin"
    victim.write_bytes(victim.read_bytes()[:-3])
    with pytest.raises(StateError, match=r"impacts\.bin.*truncated"):
        BM25Index.load(saved)


@pytest.mark.parametrize(
    "name", ["packed_postings.bin", "term_ptr.bin", "impacts.bin", "vocab_chars.bin", "ids_chars.bin"]
)
def test_flipped_byte(saved: Path, name: str) -> None:
    victim = saved / name
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x40
    victim.write_bytes(bytes(data))
    with pytest.raises(StateError, match=name.replace(".", r"\.") + ".*SHA-256"):
        BM25Index.load(saved)


@pytest.mark.parametrize(
    "name", ["packed_postings.bin", "block_last.bin", "term_ptr.bin", "impacts.bin", "vocab_offsets.bin"]
)
def test_flipped_byte_without_checksum_never_crashes(saved: Path, name: str) -> None:
    """With verify=False the structural checks still stop out-of-range offsets and ids."""
    victim = saved / name
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0x80  # top bit of the last value: out of range, or a negative impact
    victim.write_bytes(bytes(data))
    with pytest.raises(StateError, match=r"inconsistent index arrays|vocabulary"):
        BM25Index.load(saved, verify=False)


def test_flipped_byte_in_manifest(saved: Path) -> None:
    m = saved / "manifest.json"
    m.write_text(m.read_text().replace('"k1": 1.2', '"k1": 1.3'))
    with pytest.raises(StateError, match=r"manifest\.json: checksum mismatch"):
        BM25Index.load(saved)


def test_future_version(saved: Path) -> None:
    m = saved / "manifest.json"
    manifest = json.loads(m.read_text())
    manifest["format_version"] = 99
    m.write_text(json.dumps(manifest))
    with pytest.raises(StateError, match="newer crossrank"):
        BM25Index.load(saved)


@pytest.mark.parametrize(
    "content",
    [
        b"\x00\x01binary garbage",
        b'{"format": "something.else"}',
        b"[1, 2, 3]",
        b'{"format": "crossrank.bm25"}',
    ],
)
def test_foreign_manifest(saved: Path, content: bytes) -> None:
    (saved / "manifest.json").write_bytes(content)
    with pytest.raises(StateError, match=r"manifest\.json"):
        BM25Index.load(saved)


def test_missing_files(saved: Path, tmp_path: Path) -> None:
    (saved / "block_off.bin").unlink()
    with pytest.raises(StateError, match=r"block_off\.bin: missing"):
        BM25Index.load(saved)
    (saved / "manifest.json").unlink()
    with pytest.raises(StateError, match=r"manifest\.json: missing"):
        BM25Index.load(saved)
    with pytest.raises(FileNotFoundError):
        BM25Index.load(tmp_path / "nope")


def test_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text('{"name": "my model", "format": 3}')
    with pytest.raises(StateError, match="not a crossrank BM25 manifest"):
        BM25Index.load(tmp_path)


def test_save_overwrites(saved: Path) -> None:
    BM25Index.from_tokens([["x"], ["y"]]).save(saved)
    loaded = BM25Index.load(saved)
    assert len(loaded) == 2
    assert loaded.search_tokens([["y"]], k=1).ids.tolist() == [[1]]


def test_save_over_the_directory_it_was_loaded_from(saved: Path) -> None:
    loaded = BM25Index.load(saved, mmap=True)
    before = loaded.search_tokens(QUERIES, k=3)
    loaded.save(saved)  # files are replaced by rename: the live memory maps stay valid
    after = loaded.search_tokens(QUERIES, k=3)
    np.testing.assert_array_equal(before.scores, after.scores)
    np.testing.assert_array_equal(BM25Index.load(saved).search_tokens(QUERIES, k=3).scores, before.scores)


def _rewrite_manifest(root: Path, edit) -> None:
    """Edit the manifest and re-seal it, as a buggy or foreign writer would (the checksum passes)."""
    from crossrank.retrieve.bm25_io import _digest

    path = root / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest.pop("manifest_sha256")
    edit(manifest)
    manifest["manifest_sha256"] = _digest(manifest)
    path.write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda m: m["arrays"]["packed_postings"].update(dtype="<u8"), r"packed_postings\.bin: dtype"),
        (lambda m: m["arrays"]["packed_postings"].update(file="../x.bin"), "plain file name"),
        (lambda m: m["arrays"]["impacts"].update(shape=[-1]), r"impacts\.bin: invalid shape"),
        (lambda m: m["arrays"].pop("block_off"), r"arrays \['block_off'\] are not listed"),
        (lambda m: m["params"].update(b=7), r"invalid parameters \(b must be in \[0, 1\]"),
        (lambda m: m.update(n_docs=99), "n_docs / n_terms do not match"),
        (lambda m: m.update(ids_kind="uuid"), "unknown ids_kind"),
        (lambda m: m.pop("params"), "malformed manifest"),
    ],
)
def test_resealed_manifest_is_still_validated(saved: Path, edit, match: str) -> None:
    _rewrite_manifest(saved, edit)
    with pytest.raises(StateError, match=match):
        BM25Index.load(saved)


# ---------------------------------------------------------------------------------------------------
# Atomic saves, one manifest convention
# ---------------------------------------------------------------------------------------------------
def test_save_is_atomic_and_leaves_no_temporaries(saved: Path) -> None:
    before = {p.name: p.stat().st_ino for p in saved.iterdir()}
    BM25Index.from_tokens([["x"], ["y"]]).save(saved)
    after = {p.name: p.stat().st_ino for p in saved.iterdir()}
    assert set(after) >= {"manifest.json", "packed_postings.bin"}
    assert not set(before.values()) & set(after.values())  # new files, none rewritten in place
    assert [p.name for p in saved.parent.iterdir() if p.name.startswith(".")] == []


def test_a_save_removes_what_killed_saves_left_aside_and_nothing_else(saved: Path) -> None:
    from crossrank._common import _host_tag

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a process id that no longer runs
    host = _host_tag()
    parent = saved.parent
    stale = [f".{saved.name}.tmp-{host}-{dead.pid}-abc", f".{saved.name}.old-{host}-{dead.pid}-def"]
    kept = [
        f".{saved.name}.tmp-{host}-{os.getpid()}-ghi",  # a live process's save in progress
        f".{saved.name}.tmp-otherhost-{dead.pid}-jkl",  # another host's (a shared file system)
        f".{saved.name}.tmp-oldstyle",  # not a name this version makes
        f".other.tmp-{host}-{dead.pid}-mno",  # another target's
    ]
    for name in stale + kept:
        (parent / name).mkdir()
        (parent / name / "docs.bin").write_bytes(b"x")
    BM25Index.from_tokens([["x"], ["y"]]).save(saved)
    left = {p.name for p in parent.iterdir() if p.name.startswith(".")}
    assert left == set(kept)
    assert len(BM25Index.load(saved)) == 2


def test_save_refuses_a_folder_of_other_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match=r"not a saved 'crossrank\.bm25'"):
        BM25Index.from_tokens(DOCS).save(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    (tmp_path / "empty").mkdir()
    BM25Index.from_tokens(DOCS).save(tmp_path / "empty")  # an empty folder is fine
    assert len(BM25Index.load(tmp_path / "empty")) == len(DOCS)


def test_a_failed_save_changes_nothing(saved: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from crossrank.retrieve import bm25_io

    files = {p.name: p.read_bytes() for p in saved.iterdir()}

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(bm25_io, "manifest_body", boom)  # fails after the arrays are written
    with pytest.raises(OSError, match="disk full"):
        BM25Index.from_tokens([["x"], ["y"]]).save(saved)
    assert {p.name: p.read_bytes() for p in saved.iterdir()} == files
    assert [p.name for p in saved.parent.iterdir() if p.name.startswith(".")] == []
    assert len(BM25Index.load(saved)) == len(DOCS)


def test_manifest_uses_the_shared_convention(saved: Path) -> None:
    manifest = json.loads((saved / "manifest.json").read_text())
    assert manifest["format"] == "crossrank.bm25"
    assert manifest["format_version"] == 2
    assert "version" not in manifest
    assert isinstance(manifest["crossrank_version"], str)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda m: m.update(arrays=[1, 2]), "field 'arrays' must be dict"),
        (lambda m: m.update(params="lucene"), "field 'params' must be dict"),
        (lambda m: m.update(n_docs="4"), "field 'n_docs' must be int"),
        (lambda m: m.update(ids_kind=None), "field 'ids_kind' must be str"),
        (lambda m: m["arrays"].update(packed_postings="x.bin"), "an array entry is str"),
        (lambda m: m["arrays"]["packed_postings"].update(file=7), "field 'file' must be str"),
        (lambda m: m["arrays"]["block_last"].update(shape=[True]), r"block_last\.bin: invalid shape"),
        (lambda m: m["params"].update(k1="1.2"), "invalid parameters"),
        (lambda m: m["params"].pop("k1"), "invalid parameters"),
        (lambda m: m.update(analyzer=["not", "a", "config"]), "invalid analyzer config|malformed manifest"),
        (lambda m: m.update(format_version=True), "invalid format version"),
    ],
)
def test_manifest_type_errors_are_state_errors(saved: Path, edit, match: str) -> None:
    _rewrite_manifest(saved, edit)
    with pytest.raises(StateError, match=match):
        BM25Index.load(saved)


def test_duplicate_saved_ids_are_refused(tmp_path: Path) -> None:
    BM25Index.from_tokens(DOCS, ids=["a", "b", "c", "d"]).save(tmp_path / "ix")
    chars = tmp_path / "ix" / "ids_chars.bin"
    chars.write_bytes(b"aacd")  # ids "a", "a", "c", "d"

    def reseal(m):
        import hashlib

        m["arrays"]["ids_chars"]["sha256"] = hashlib.sha256(b"aacd").hexdigest()

    _rewrite_manifest(tmp_path / "ix", reseal)
    with pytest.raises(StateError, match="not unique"):
        BM25Index.load(tmp_path / "ix")


def test_surrogate_ids_round_trip(tmp_path: Path) -> None:
    ids = ["a", "\ud800lone", "東京", ""]
    BM25Index.from_tokens(DOCS, ids=ids).save(tmp_path / "ix")
    assert BM25Index.load(tmp_path / "ix").ids.tolist() == ids


def test_huge_k_is_capped_at_the_corpus() -> None:
    index = BM25Index.from_tokens(DOCS)
    res = index.search_tokens(QUERIES, k=10**30)
    assert res.ids.shape == res.scores.shape == (len(QUERIES), len(DOCS))
    with pytest.raises(TypeError, match="k must be an int"):
        index.search_tokens(QUERIES, k=2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_threads"):
        index.search_tokens(QUERIES, num_threads=True)  # type: ignore[arg-type]


def test_results_are_hits() -> None:
    from crossrank.types import Hits

    res = BM25Index.from_tokens(DOCS).search_tokens(QUERIES, k=2)
    assert type(res) is Hits


_GOLDEN_V1 = Path(__file__).parent / "data" / "bm25_v1"


@pytest.mark.parametrize("mmap", [True, False])
@pytest.mark.parametrize("strategy", ["exhaustive", "pruned", "auto"])
def test_format_version_1_index_still_loads(mmap: bool, strategy: str) -> None:
    # tests/data/bm25_v1 was written by crossrank's format-version-1 code (uncompressed postings);
    # bm25_v1_expected.json holds that code's top-20 (ids and float32 scores as hex).
    expected = json.loads((_GOLDEN_V1.parent / "bm25_v1_expected.json").read_text())
    index = BM25Index.load(_GOLDEN_V1, mmap=mmap)
    hits = index.search(expected["queries"], k=expected["k"], strategy=strategy)  # type: ignore[arg-type]
    assert hits.ids.tolist() == expected["ids"]
    assert [[float(x).hex() for x in row] for row in hits.scores] == expected["scores"]
