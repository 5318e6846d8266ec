"""Run-directory files are checked before use without being read again when they cannot have
changed: a sealed local file keeps its identity (size, mtime, ctime, inode) until it is written,
moved, copied or truncated, and any of those sends it to the full sha256 check."""

from __future__ import annotations

import os
import shutil

import pytest

from gembatch._state.journal import Journal, seal_file
from gembatch._state.records import Manifest, ShardRecord
from gembatch._storage import DigestedFile, DigestWriter, Directory
from gembatch.exceptions import CorruptRunError


def _manifest() -> Manifest:
    return Manifest(
        run_id="r1", kind="generate", model="models/m", static={}, config={}, options={}, prompt="p"
    )


def _journal(tmp_path, name: str = "run"):
    shard = ShardRecord(
        index=0, rows=1, lines=1, bytes=1, sha256="0" * 64, mode="file", display_name="d"
    )
    store = Directory(tmp_path / name)
    journal = Journal.create(store, _manifest(), [shard])
    return store, journal, journal.shards[0]


def _no_reads(monkeypatch):
    def refuse(self, rel):
        raise AssertionError(f"{rel} was read")

    monkeypatch.setattr(Directory, "digest", refuse)


def test_an_unchanged_file_is_not_read_to_be_checked(tmp_path, monkeypatch):
    store, journal, shard = _journal(tmp_path)
    store.write_bytes(shard.path("results.jsonl"), b'{"key":"0"}\n')
    journal.seal(shard, "results.jsonl")
    _no_reads(monkeypatch)
    journal.verify(shard, "results.jsonl")


@pytest.mark.parametrize("how", ["same size in place", "truncated", "appended", "replaced"])
def test_a_file_written_right_after_its_seal_is_caught(tmp_path, how):
    store, journal, shard = _journal(tmp_path)
    path = store.path(shard.path("results.jsonl"))
    store.write_bytes(shard.path("results.jsonl"), b'{"key":"0"}\n')
    journal.seal(shard, "results.jsonl")
    if how == "same size in place":  # within the same tick of a coarse file-system clock
        with open(path, "r+b") as fh:
            fh.write(b'{"key":"1"}\n')
    elif how == "truncated":
        os.truncate(path, 5)
    elif how == "appended":
        with open(path, "ab") as fh:
            fh.write(b"\n")
    else:
        store.write_bytes(shard.path("results.jsonl"), b'{"key":"2"}\n')
    with pytest.raises(CorruptRunError, match="changed since gembatch wrote it"):
        journal.verify(shard, "results.jsonl")


def test_swapped_files_of_the_same_size_are_caught(tmp_path):
    store, journal, shard = _journal(tmp_path)
    other = ShardRecord(
        index=1, rows=1, lines=1, bytes=1, sha256="0" * 64, mode="file", display_name="e"
    )
    store.write_bytes(shard.path("results.jsonl"), b'{"key":"0"}\n')
    store.write_bytes(other.path("results.jsonl"), b'{"key":"1"}\n')
    seal_file(store, shard, "results.jsonl")
    seal_file(store, other, "results.jsonl")
    a, b = store.path(shard.path("results.jsonl")), store.path(other.path("results.jsonl"))
    os.replace(a, a + ".tmp")
    os.replace(b, a)
    os.replace(a + ".tmp", b)
    for record in (shard, other):
        with pytest.raises(CorruptRunError, match="changed since"):
            journal.verify(record, "results.jsonl")


def test_a_copied_run_directory_is_checked_by_content(tmp_path, monkeypatch):
    store, journal, shard = _journal(tmp_path)
    store.write_bytes(shard.path("results.jsonl"), b'{"key":"0"}\n')
    journal.seal(shard, "results.jsonl")
    shutil.copytree(tmp_path / "run", tmp_path / "copy", copy_function=shutil.copy2)
    copy = Journal.open(Directory(tmp_path / "copy"))
    copy.shards[0].files = dict(shard.files)
    copy.verify(copy.shards[0], "results.jsonl")  # another inode: read, and the same bytes
    _no_reads(monkeypatch)
    with pytest.raises(AssertionError, match="was read"):
        copy.verify(copy.shards[0], "results.jsonl")


def test_a_sealed_file_sealed_again_unchanged_is_not_read(tmp_path, monkeypatch):
    store, journal, shard = _journal(tmp_path)
    store.write_bytes(shard.path("keys.parquet"), b"PAR1")
    seal_file(store, shard, "keys.parquet", digest=("ab" * 32, 4))
    _no_reads(monkeypatch)
    seal_file(store, shard, "keys.parquet", rows=3)
    assert shard.files["keys.parquet"].sha256 == "ab" * 32
    assert shard.files["keys.parquet"].rows == 3


def test_digests_taken_while_writing_are_those_of_the_file(tmp_path):
    import hashlib

    store = Directory(tmp_path)
    out = DigestedFile(store, "a/b.bin")
    with pytest.raises(RuntimeError), out.open() as fh:
        fh.write(b"partial")
        raise RuntimeError("dropped")
    assert out.digest is None and not store.exists("a/b.bin")
    with out.open() as fh:
        fh.write(b"hello ")
        fh.write(memoryview(b"world"))
    data = store.read_bytes("a/b.bin")
    assert out.digest == (hashlib.sha256(data).hexdigest(), 11) == store.digest("a/b.bin")
    sink = DigestWriter()
    sink.write(b"x")
    assert sink.digest == (hashlib.sha256(b"x").hexdigest(), 1) and sink.tell() == 1


def test_other_file_systems_are_always_read():
    import time

    store = Directory(f"memory://file-checks-{time.time_ns()}")
    shard = ShardRecord(
        index=0, rows=1, lines=1, bytes=1, sha256="0" * 64, mode="file", display_name="d"
    )
    store.write_bytes(shard.path("results.jsonl"), b"x\n")
    seal_file(store, shard, "results.jsonl")
    assert shard.files["results.jsonl"].stat is None
