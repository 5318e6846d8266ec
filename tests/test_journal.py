from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from gembatch._state.journal import Journal
from gembatch._state.lock import run_lock
from gembatch._state.records import Manifest, ShardRecord, ShardState
from gembatch._storage import Directory
from gembatch.exceptions import CorruptRunError, RunDirectoryError, RunLockedError


def _shard(i: int) -> ShardRecord:
    return ShardRecord(
        index=i,
        rows=10,
        lines=9,
        bytes=900,
        sha256="ab" * 32,
        mode="file",
        display_name=f"gembatch-x-{i:05d}",
    )


def _manifest() -> Manifest:
    return Manifest(
        run_id="r1",
        kind="generate",
        model="models/m",
        static={},
        config={},
        options={},
        prompt="col('p')",
    )


@pytest.mark.parametrize("root", ["local", "memory"])
def test_create_move_and_reopen(tmp_path, root):
    url = (
        str(tmp_path / "run")
        if root == "local"
        else f"memory://journal-{os.getpid()}-{time.time_ns()}"
    )
    store = Directory(url)
    journal = Journal.create(store, _manifest(), [_shard(0), _shard(1)])
    journal.move(journal.shards[1], ShardState.UPLOADING)
    journal.move(journal.shards[1], ShardState.UPLOADED, file_name="files/abc")
    again = Journal.open(Directory(url))
    assert again.manifest.kind == "generate" and again.manifest.shards == [0, 1]
    s0, s1 = again.shards
    assert s0.state is ShardState.PREPARED
    assert s1.state is ShardState.UPLOADED and s1.file_name == "files/abc"
    assert [h[1] for h in s1.history] == ["prepared", "uploading", "uploaded"]
    assert ShardState.UPLOADED.rank > ShardState.UPLOADING.rank


def test_open_errors_say_what_to_do(tmp_path):
    with pytest.raises(RunDirectoryError, match="No gembatch run"):
        Journal.open(Directory(tmp_path / "nothing"))
    store = Directory(tmp_path / "bad")
    Journal.create(store, _manifest(), [_shard(0)])
    store.write_bytes("shards/000000/state.json", b"{not json")
    with pytest.raises(CorruptRunError, match="shards/000000/state.json cannot be read"):
        Journal.open(store)
    store.remove("shards/000000/state.json")
    with pytest.raises(CorruptRunError, match="shards/000000/state.json is missing"):
        Journal.open(store)
    store.write_json("run.json", {"version": 99, "shards": []})
    with pytest.raises(CorruptRunError, match="format version 99"):
        Journal.open(store)


def test_atomic_write_leaves_old_file_when_the_writer_fails(tmp_path):
    store = Directory(tmp_path)
    store.write_json("a.json", {"v": 1})
    with pytest.raises(RuntimeError), store.atomic_writer("a.json") as fh:
        fh.write(b'{"v": 2')
        raise RuntimeError("died mid-write")
    assert store.read_json("a.json") == {"v": 1}
    assert [n for n in store.listdir("") if n.startswith(".tmp")] == []


HOLDER = textwrap.dedent(
    """
    import sys, time
    from gembatch._state.lock import run_lock
    from gembatch._storage import Directory
    with run_lock(Directory(sys.argv[1])):
        print("locked", flush=True)
        time.sleep(60)
    """
)


def test_second_process_is_refused_and_a_dead_holder_is_taken_over(tmp_path):
    store = Directory(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        holder = json.loads((tmp_path / "lock.json").read_text())
        assert holder["pid"] == proc.pid
        with pytest.raises(RunLockedError, match=f"pid {proc.pid}"), run_lock(store):
            pass
        proc.kill()
        proc.wait()
        with run_lock(store):  # the dead holder's lock is taken over
            assert json.loads((tmp_path / "lock.json").read_text())["pid"] == os.getpid()
        assert not (tmp_path / "lock.json").exists()
    finally:
        proc.kill()
        proc.wait()


def test_progress_saves_a_new_state_at_once_and_counts_alone_at_most_every_interval(tmp_path):
    store = Directory(tmp_path / "run")
    journal = Journal.create(store, _manifest(), [_shard(0)])
    shard = journal.shards[0]
    journal.move(shard, ShardState.CREATING)
    journal.move(shard, ShardState.SUBMITTED, job_name="batches/1", job_state="JOB_STATE_PENDING")
    for done in range(1, 101):  # a fast poll seeing the counts grow
        journal.progress(
            shard, job_state="JOB_STATE_RUNNING", stats={"successfulRequestCount": done}, at=done
        )
    assert (
        shard.stats == {"successfulRequestCount": 100} and shard.progress_at == 100
    )  # in memory: the latest
    saved = Journal.open(store).shards[0]
    assert saved.job_state == "JOB_STATE_RUNNING" and saved.stats == {"successfulRequestCount": 1}
    assert [h[1] for h in saved.history].count("JOB_STATE_RUNNING") == 1  # one write, not a hundred

    journal.progress(
        shard, job_state="JOB_STATE_SUCCEEDED", stats={"successfulRequestCount": 101}, at=101
    )
    assert Journal.open(store).shards[0].stats == {
        "successfulRequestCount": 101
    }  # a new state: at once

    journal.progress_save_every = 0.0
    journal.progress(
        shard, job_state="JOB_STATE_SUCCEEDED", stats={"successfulRequestCount": 102}, at=102
    )
    assert Journal.open(store).shards[0].stats == {
        "successfulRequestCount": 102
    }  # the interval passed
