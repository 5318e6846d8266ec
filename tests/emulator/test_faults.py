"""Every fault kind, and how the real SDK sees it."""

from __future__ import annotations

import io
import threading

import httpx2
import pytest
from emu_helpers import LENIENT, MODEL, keyed, lines_of, make_client, upload, wait_done, write_jsonl
from google.genai import errors

from gembatch.emulator import (
    Delays,
    DropConnection,
    Emulator,
    Faults,
    HttpFault,
    JobOutcome,
    LineFaults,
    parse_fault,
)


# -- HTTP errors ---------------------------------------------------------------------------------
def test_429_on_the_nth_create_with_retry_after(client, emulator):
    emulator.faults.add(HttpFault(endpoint="batches.create", status=429, nth=2, retry_after=3))
    client.batches.create(model=MODEL, src=[{"contents": "one"}])
    with pytest.raises(errors.ClientError) as info:
        client.batches.create(model=MODEL, src=[{"contents": "two"}])
    assert info.value.code == 429 and info.value.status == "RESOURCE_EXHAUSTED"
    assert info.value.response.headers["retry-after"] == "3"
    client.batches.create(model=MODEL, src=[{"contents": "three"}])
    stats = emulator.stats()
    assert stats["batches_created"] == 2 and stats["calls"]["batches.create"] == 3


def test_503_on_any_endpoint_for_a_number_of_calls(client, emulator):
    emulator.faults.add(HttpFault(endpoint="*", status=503, nth=1, times=2))
    with pytest.raises(errors.ServerError) as info:
        client.batches.list()
    assert info.value.code == 503 and info.value.status == "UNAVAILABLE"
    with pytest.raises(errors.ServerError):
        client.files.list()
    assert list(client.batches.list()) == []
    emulator.faults.clear()
    emulator.faults.add(HttpFault(endpoint="models.generate_content", status=500, times=None))
    for _ in range(3):
        with pytest.raises(errors.ServerError) as info:
            client.models.generate_content(model=MODEL, contents="hi")
        assert info.value.code == 500 and info.value.status == "INTERNAL"
    assert client.models.count_tokens(model=MODEL, contents="hi").total_tokens


def test_error_on_an_upload_chunk_stops_the_sdk(client, emulator, tmp_path):
    emulator.faults.add(HttpFault(endpoint="files.upload_chunk", status=500))
    with pytest.raises(errors.ServerError) as info:
        upload(client, write_jsonl(tmp_path / "in.jsonl", [keyed(0)]))
    assert info.value.code == 500
    stats = emulator.stats()
    assert stats["upload_sessions"] == 1 and stats["files_created"] == 0


def test_error_without_upload_status_makes_the_sdk_resend_the_chunk(client, emulator, tmp_path):
    emulator.faults.add(HttpFault(endpoint="files.upload_chunk", status=503, upload_status=None))
    up = upload(
        client, write_jsonl(tmp_path / "in.jsonl", [keyed(0)])
    )  # the SDK waits 1 s, re-sends
    assert up.size_bytes > 0
    assert (
        emulator.stats()["calls"]["files.upload_chunk"] == 2
        and emulator.stats()["files_created"] == 1
    )


# -- dropped connections -------------------------------------------------------------------------
def test_drop_before_a_call(client, emulator):
    job = client.batches.create(model=MODEL, src=[{"contents": "x"}])
    emulator.faults.add(DropConnection(endpoint="batches.get", when="before"))
    with pytest.raises(httpx2.RemoteProtocolError):
        client.batches.get(name=job.name)
    assert client.batches.get(name=job.name).name == job.name


def test_drop_after_a_create_the_job_exists_anyway(client, emulator):
    emulator.faults.add(DropConnection(endpoint="batches.create", when="after"))
    with pytest.raises(httpx2.RemoteProtocolError):
        client.batches.create(model=MODEL, src=[{"contents": "x"}])
    assert emulator.stats()["batches_created"] == 1 and len(emulator.batches()) == 1
    client.batches.create(model=MODEL, src=[{"contents": "x"}])  # a blind retry makes a second job
    assert len(emulator.batches()) == 2


def test_drop_after_an_upload_finalize_the_file_exists_anyway(client, emulator, tmp_path):
    emulator.faults.add(DropConnection(endpoint="files.upload_chunk", when="after"))
    with pytest.raises(httpx2.RemoteProtocolError):
        upload(client, write_jsonl(tmp_path / "in.jsonl", [keyed(0)]))
    assert emulator.stats()["files_created"] == 1 and len(emulator.files()) == 1


def test_drop_mid_upload(client, emulator):
    emulator.faults.add(
        DropConnection(endpoint="files.upload_chunk", when="mid_body", after_bytes=1 << 20)
    )
    data = b"x" * (3 << 20)
    with pytest.raises(httpx2.TransportError):  # the socket closes while the SDK is still sending
        client.files.upload(file=io.BytesIO(data), config={"mime_type": "application/octet-stream"})
    assert emulator.stats()["files_created"] == 0 and emulator.files() == []
    assert client.files.upload(
        file=io.BytesIO(data), config={"mime_type": "text/plain"}
    ).size_bytes == len(data)


def test_drop_mid_download(client, emulator, tmp_path):
    up = upload(client, write_jsonl(tmp_path / "in.jsonl", [keyed(i) for i in range(20)]))
    job = wait_done(client, client.batches.create(model=MODEL, src=up.name).name)
    emulator.faults.add(DropConnection(endpoint="files.download", when="mid_body", after_bytes=100))
    with pytest.raises(httpx2.RemoteProtocolError):
        client.files.download(file=job.dest.file_name)
    assert len(lines_of(client.files.download(file=job.dest.file_name))) == 20


def test_drop_mid_response_of_a_json_call(client, emulator):
    client.batches.create(model=MODEL, src=[{"contents": "x"}])
    emulator.faults.add(DropConnection(endpoint="batches.list", when="mid_body", after_bytes=5))
    with pytest.raises(httpx2.RemoteProtocolError):
        client.batches.list()


# -- job outcomes --------------------------------------------------------------------------------
def test_job_failed_after_some_lines_keeps_partial_results(client, emulator, http, tmp_path):
    emulator.faults.add(JobOutcome(state="FAILED", nth_job=1, after_lines=3))
    up = upload(client, write_jsonl(tmp_path / "in.jsonl", [keyed(i) for i in range(10)]))
    failed = wait_done(client, client.batches.create(model=MODEL, src=up.name).name)
    assert failed.state.name == "JOB_STATE_FAILED"
    raw = http.get(f"/v1beta/{failed.name}").json()
    assert raw["done"] is True and raw["error"]["message"]
    assert raw["metadata"]["batchStats"] == {
        "requestCount": "10",
        "successfulRequestCount": "3",
        "pendingRequestCount": "7",
    }
    assert [r["key"] for r in lines_of(client.files.download(file=failed.dest.file_name))] == [
        "k0",
        "k1",
        "k2",
    ]
    second = wait_done(client, client.batches.create(model=MODEL, src=up.name).name)
    assert second.state.name == "JOB_STATE_SUCCEEDED"  # nth_job=1: only the first job


def test_job_failed_before_any_line_has_no_results(client, emulator):
    emulator.faults.add(JobOutcome(state="FAILED"))
    job = wait_done(client, client.batches.create(model=MODEL, src=[{"contents": "x"}]).name)
    assert job.state.name == "JOB_STATE_FAILED" and job.dest is None


def test_job_expired_has_no_results(client, emulator, tmp_path):
    emulator.faults.add(JobOutcome(state="EXPIRED", after_lines=5))
    up = upload(client, write_jsonl(tmp_path / "in.jsonl", [keyed(i) for i in range(10)]))
    job = wait_done(client, client.batches.create(model=MODEL, src=up.name).name)
    assert job.state.name == "JOB_STATE_EXPIRED" and job.dest is None
    assert len(emulator.files()) == 1


def test_job_cancelled_inline_keeps_the_answers_done(client, emulator):
    emulator.faults.add(JobOutcome(state="CANCELLED", after_lines=2))
    src = [{"contents": f"q{i}", "metadata": {"key": f"m{i}"}} for i in range(5)]
    job = wait_done(client, client.batches.create(model=MODEL, src=src).name)
    assert job.state.name == "JOB_STATE_CANCELLED"
    assert [r.metadata["key"] for r in job.dest.inlined_responses] == ["m0", "m1"]


# -- line faults ---------------------------------------------------------------------------------
def _run_lines(client, tmp_path, n=1000):
    up = upload(client, write_jsonl(tmp_path / "in.jsonl", [keyed(i) for i in range(n)]))
    job = wait_done(client, client.batches.create(model=MODEL, src=up.name).name)
    return job, client.files.download(file=job.dest.file_name)


def test_line_error_rate(client, emulator, http, tmp_path):
    emulator.faults.add(LineFaults(error_rate=0.1))
    job, data = _run_lines(client, tmp_path)
    rows = lines_of(data)
    errors_ = [r for r in rows if "error" in r]
    assert len(rows) == 1000 and 50 < len(errors_) < 150
    assert all(
        r["error"] == {"code": 500, "message": "Internal error encountered.", "status": "INTERNAL"}
        for r in errors_
    )
    stats = http.get(f"/v1beta/{job.name}").json()["metadata"]["batchStats"]
    assert int(stats["failedRequestCount"]) == len(errors_)


def test_missing_lines_are_deterministic_by_key_and_seed(client, emulator, tmp_path):
    emulator.faults.add(LineFaults(missing_rate=0.2, seed=1))
    first = {r["key"] for r in lines_of(_run_lines(client, tmp_path)[1])}
    second = {r["key"] for r in lines_of(_run_lines(client, tmp_path)[1])}
    assert first == second and 700 < len(first) < 900
    emulator.faults.clear()
    emulator.faults.add(LineFaults(missing_rate=0.2, seed=2))
    assert {r["key"] for r in lines_of(_run_lines(client, tmp_path)[1])} != first


def test_duplicated_and_malformed_lines(client, emulator, tmp_path):
    emulator.faults.add(LineFaults(duplicate_rate=1.0))
    rows = lines_of(_run_lines(client, tmp_path, n=10)[1])
    assert [r["key"] for r in rows] == [f"k{i}" for i in range(10) for _ in range(2)]
    emulator.faults.clear()
    emulator.faults.add(LineFaults(malformed_rate=0.5))
    raw_lines = _run_lines(client, tmp_path, n=200)[1].splitlines()
    bad = 0
    for line in raw_lines:
        try:
            lines_of(line)
        except ValueError:
            bad += 1
    assert len(raw_lines) == 200 and 60 < bad < 140


def test_missing_inline_answers(client, emulator):
    emulator.faults.add(LineFaults(missing_rate=1.0))
    job = wait_done(
        client, client.batches.create(model=MODEL, src=[{"contents": "x"}, {"contents": "y"}]).name
    )
    assert job.state.name == "JOB_STATE_SUCCEEDED" and not job.dest.inlined_responses


def test_faults_given_at_construction_and_from_the_cli_syntax(tmp_path):
    with Emulator(
        behaviour=LENIENT,
        faults=[parse_fault("http:batches.create:429@1"), parse_fault("job:EXPIRED")],
    ) as emu:
        client = make_client(emu)
        with pytest.raises(errors.ClientError):
            client.batches.create(model=MODEL, src=[{"contents": "x"}])
        job = wait_done(client, client.batches.create(model=MODEL, src=[{"contents": "x"}]).name)
        assert job.state.name == "JOB_STATE_EXPIRED"


# -- the rule objects ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "rule"),
    [
        ("http:batches.create:429@2", HttpFault(endpoint="batches.create", status=429, nth=2)),
        ("http:*:503@1x3", HttpFault(endpoint="*", status=503, nth=1, times=3)),
        (
            "http:files.get:500x*,retry_after=2",
            HttpFault(endpoint="files.get", status=500, times=None, retry_after=2.0),
        ),
        (
            "drop:files.download:mid@1,bytes=100",
            DropConnection(endpoint="files.download", when="mid_body", after_bytes=100),
        ),
        ("drop:batches.create:after@1", DropConnection(endpoint="batches.create", when="after")),
        ("drop:*:before@4x2", DropConnection(endpoint="*", when="before", nth=4, times=2)),
        ("job:FAILED@1", JobOutcome(state="FAILED", nth_job=1)),
        ("job:cancelled,after_lines=5", JobOutcome(state="CANCELLED", after_lines=5)),
        ("lines:error=0.1,missing=0.05", LineFaults(error_rate=0.1, missing_rate=0.05)),
        (
            "lines:duplicate=0.2,malformed=0.3,seed=7",
            LineFaults(duplicate_rate=0.2, malformed_rate=0.3, seed=7),
        ),
        ("delay:pending=2,running=5", Delays(pending_s=2, running_s=5)),
        ("delay:results_after=30", Delays(results_after_s=30)),
    ],
)
def test_parse_fault(spec, rule):
    assert parse_fault(spec) == rule


@pytest.mark.parametrize(
    "spec",
    [
        "bogus",
        "http:nowhere:429",
        "http:batches.get:200",
        "drop:*:sideways",
        "job:DONE",
        "lines:error=2",
        "delay:pending=-1",
        "lines:typo=0.1",
    ],
)
def test_parse_fault_refuses_bad_specs(spec):
    with pytest.raises(ValueError, match="invalid fault"):
        parse_fault(spec)


def test_rules_validate_their_fields():
    with pytest.raises(ValueError, match="endpoint"):
        HttpFault(endpoint="batches.creat")
    with pytest.raises(ValueError, match="nth"):
        DropConnection(nth=0)
    with pytest.raises(TypeError):
        Faults().add("http:*:500")  # type: ignore[arg-type]


def test_rules_count_matching_calls_across_threads():
    faults = Faults()
    rule = faults.add(HttpFault(endpoint="files.get", nth=100, times=5))
    fired = []

    def hammer() -> None:
        for _ in range(1000):
            fired.append(faults.on_call("files.get"))
            faults.on_call("files.list")

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert faults.counts() == [(rule, 8000)]
    assert sum(f is rule for f in fired) == 5
