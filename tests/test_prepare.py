"""The prepare step on its own: shards written by a background writer, one slice behind."""

from __future__ import annotations

import hashlib
import threading

import polars as pl
import pyarrow.parquet as pq
import pytest

from gembatch import Options
from gembatch._build.sources import as_source
from gembatch._build.spec import RequestSpec
from gembatch._run.flow import prepare
from gembatch._state.journal import Journal
from gembatch._state.records import HASH, KEY, Manifest
from gembatch._storage import Directory
from gembatch.exceptions import InputError

SPEC = RequestSpec(
    kind="generate",
    model="gemini-2.5-flash",
    static={},
    prompt=pl.col("prompt"),
    columns_needed=("prompt",),
)


def _frame(n: int) -> pl.DataFrame:
    # every 7th prompt repeats an earlier one: deduplicated within its shard
    return pl.DataFrame(
        {"id": range(n), "prompt": [f"review {i % 7 if i % 7 == 3 else i}" for i in range(n)]}
    )


def _prepare(tmp_path, frame: pl.DataFrame, **options) -> Journal:
    store = Directory(str(tmp_path / "run"))
    opts = Options(**options)
    manifest = Manifest(
        run_id="r1",
        kind="generate",
        model="gemini-2.5-flash",
        static={},
        config={},
        options=opts.to_dict(),
        prompt="col('prompt')",
    )
    return prepare(store, as_source(frame), SPEC, opts, manifest, None)


def _writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("gembatch-prepare")]


def _files(journal: Journal) -> list[tuple[bytes, pl.DataFrame, pl.DataFrame]]:
    return [
        (
            journal.store.read_bytes(s.path("requests.jsonl")),
            journal.store.read_parquet(s.path("input.parquet")),
            journal.store.read_parquet(s.path("keys.parquet")),
        )
        for s in journal.shards
    ]


@pytest.mark.parametrize("slice_rows", [1, 7, 50, 1000])
def test_shards_do_not_depend_on_the_slice_size(tmp_path, slice_rows):
    frame = _frame(230)
    whole = _prepare(tmp_path / "whole", frame, shard_max_rows=60, slice_rows=1000)
    sliced = _prepare(tmp_path / "sliced", frame, shard_max_rows=60, slice_rows=slice_rows)
    assert [(s.rows, s.lines, s.bytes, s.sha256) for s in sliced.shards] == [
        (s.rows, s.lines, s.bytes, s.sha256) for s in whole.shards
    ]
    assert sliced.manifest.fingerprint == whole.manifest.fingerprint
    for (data, rows, keys), shard in zip(_files(sliced), sliced.shards):
        assert len(data) == shard.bytes and data.count(b"\n") == shard.lines
        assert (
            hashlib.sha256(data).hexdigest() == shard.sha256
        )  # the digest is of the file as written
        assert rows.height == shard.rows == keys.height
    rows = pl.concat([r for _, r, _ in _files(sliced)])
    keys = pl.concat([k for _, _, k in _files(sliced)])
    assert rows.equals(frame)  # the user's rows, exactly: gembatch's own columns live beside them
    assert keys[KEY].to_list() == [str(i) for i in range(230)]
    assert keys[HASH].str.len_chars().min() == 64
    assert sum(s.lines for s in sliced.shards) < 230  # duplicates within a shard were written once
    assert not _writer_threads()


def test_bad_row_in_a_later_slice_stops_before_the_journal_and_leaves_no_thread(tmp_path):
    frame = _frame(100).with_columns(
        pl.when(pl.col("id") == 83).then(pl.lit(None)).otherwise(pl.col("prompt")).alias("prompt")
    )
    with pytest.raises(InputError, match="83"):
        _prepare(tmp_path, frame, shard_max_rows=30, slice_rows=20)
    assert not Journal.exists(
        Directory(str(tmp_path / "run"))
    )  # nothing a run could be resumed from
    assert not _writer_threads()
    again = _prepare(
        tmp_path, frame.drop_nulls(), shard_max_rows=30, slice_rows=20
    )  # a fresh prepare
    assert sum(s.rows for s in again.shards) == 99


def test_a_failed_write_surfaces_and_leaves_no_thread(tmp_path, monkeypatch):
    def refuse(self, table, row_group_size=None):
        raise OSError("No space left on device")

    monkeypatch.setattr(pq.ParquetWriter, "write_table", refuse)
    with pytest.raises(OSError, match="No space left"):
        _prepare(tmp_path, _frame(100), slice_rows=10)
    assert not Journal.exists(Directory(str(tmp_path / "run")))
    assert not _writer_threads()
