"""State persists in the data directory: a restarted emulator knows its files and jobs."""

from __future__ import annotations

import json

import pytest
from emu_helpers import (
    LENIENT,
    MODEL,
    FakeClock,
    keyed,
    lines_of,
    make_client,
    upload,
    wait_done,
    write_jsonl,
)

from gembatch.emulator import Delays, Emulator, JobOutcome


def test_restart_keeps_files_and_jobs_and_finishes_running_ones(tmp_path):
    data = tmp_path / "data"
    clock = FakeClock()
    with Emulator(behaviour=LENIENT, data_dir=data, clock=clock) as first:
        client = make_client(first)
        up = upload(client, write_jsonl(tmp_path / "in.jsonl", [keyed(i) for i in range(30)]))
        done = wait_done(
            client,
            client.batches.create(model=MODEL, src=up.name, config={"display_name": "a"}).name,
        )
        inline_done = wait_done(
            client,
            client.batches.create(
                model=MODEL, src=[{"contents": "kept", "metadata": {"key": "m"}}]
            ).name,
        )
        first.faults.add(Delays(running_s=60))
        running = client.batches.create(model=MODEL, src=up.name, config={"display_name": "b"})
        first.faults.add(Delays(pending_s=60))
        pending = client.batches.create(model=MODEL, src=up.name, config={"display_name": "c"})
        assert client.batches.get(name=pending.name).state.name == "JOB_STATE_PENDING"
        first_results = client.files.download(file=done.dest.file_name)
        before = {"files": first.files(), "batches": [op["name"] for op in first.batches()]}
    assert data.exists()

    with Emulator(
        behaviour=LENIENT, data_dir=data
    ) as second:  # a real clock: delays re-start from the restart
        client = make_client(second)
        assert [f["name"] for f in second.files()] == [f["name"] for f in before["files"]]
        assert [op["name"] for op in second.batches()][-4:] == before["batches"][-4:]
        assert client.files.get(name=up.name).size_bytes == up.size_bytes
        assert client.files.download(file=done.dest.file_name) == first_results
        again = client.batches.get(name=done.name)
        assert again.state.name == "JOB_STATE_SUCCEEDED" and again.display_name == "a"
        assert client.batches.get(name=inline_done.name).dest.inlined_responses[0].metadata == {
            "key": "m"
        }
        # the jobs that were running or pending carry their delays with them; cancel one, wait the
        # other
        client.batches.cancel(name=pending.name)
        assert client.batches.get(name=pending.name).state.name == "JOB_STATE_CANCELLED"
        assert client.batches.get(name=running.name).state.name == "JOB_STATE_RUNNING"
        newer = client.batches.create(model=MODEL, src=[{"contents": "after restart"}])
        assert second.batches()[0]["name"] == newer.name  # newest first across restarts


def test_a_job_interrupted_mid_run_is_finished_after_restart(tmp_path):
    data = tmp_path / "data"
    with Emulator(behaviour=LENIENT, data_dir=data, faults=[Delays(running_s=3600)]) as first:
        client = make_client(first)
        up = upload(client, write_jsonl(tmp_path / "in.jsonl", [keyed(i) for i in range(40)]))
        name = client.batches.create(model=MODEL, src=up.name).name
        assert client.batches.get(name=name).state.name in (
            "JOB_STATE_PENDING",
            "JOB_STATE_RUNNING",
        )
    record = json.loads((data / "batches" / f"{name.removeprefix('batches/')}.json").read_text())
    record["faults"].pop("delays")  # as if the delay had passed while the emulator was down
    (data / "batches" / f"{name.removeprefix('batches/')}.json").write_text(json.dumps(record))
    with Emulator(behaviour=LENIENT, data_dir=data) as second:
        client = make_client(second)
        job = wait_done(client, name)
        assert job.state.name == "JOB_STATE_SUCCEEDED"
        keys = [r["key"] for r in lines_of(client.files.download(file=job.dest.file_name))]
        assert keys == [f"k{i}" for i in range(40)]  # each line once, though it ran twice


def test_job_faults_survive_a_restart(tmp_path):
    data = tmp_path / "data"
    clock = FakeClock()
    with Emulator(
        behaviour=LENIENT,
        data_dir=data,
        clock=clock,
        faults=[Delays(pending_s=5), JobOutcome(state="FAILED")],
    ) as emu:
        client = make_client(emu)
        name = client.batches.create(model=MODEL, src=[{"contents": "x"}]).name
    with Emulator(behaviour=LENIENT, data_dir=data, clock=clock) as emu:
        client = make_client(emu)
        assert client.batches.get(name=name).state.name == "JOB_STATE_PENDING"
        clock.advance(5)
        assert wait_done(client, name).state.name == "JOB_STATE_FAILED"


def test_temporary_data_dir_is_removed_and_unknown_store_versions_refused(tmp_path):
    with Emulator(behaviour=LENIENT) as emu:
        temporary = emu.data_dir
        assert temporary.exists()
    assert not temporary.exists()
    (tmp_path / "store.json").write_text('{"version": 99}')
    with pytest.raises(ValueError, match="store version 99"):
        Emulator(behaviour=LENIENT, data_dir=tmp_path).start()
