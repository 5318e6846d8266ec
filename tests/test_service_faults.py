"""Service faults seen by gembatch: retried, adopted or reported per row, never swallowed."""

from __future__ import annotations

import polars as pl
import pytest
from google import genai
from google.genai import types

import gembatch
from gembatch import Config, Options, RetryPolicy
from gembatch._service.backend import Backend
from gembatch.emulator import DropConnection, HttpFault, JobOutcome, LineFaults

FAST_RETRY = RetryPolicy(
    attempts=4, initial_delay=0.01, max_delay=0.05, jitter=0.01, max_elapsed=30
)
FILES = Options(poll_interval=0.01, max_poll_interval=0.05, inline_max_bytes=0, shard_max_rows=10)
INLINE = Options(poll_interval=0.01, max_poll_interval=0.05, inline_max_rows=5_000)
CFG = Config(model="gemini-2.5-flash")
N = 30


def _frame(n: int = N) -> pl.DataFrame:
    return pl.DataFrame(
        {"id": [f"r{i}" for i in range(n)], "prompt": [f"Prompt {i}" for i in range(n)]}
    )


def _run(tmp_path, name, options=FILES, **kw):
    return _frame().gemini.batch_generate(
        "prompt",
        config=CFG,
        key="id",
        job_dir=tmp_path / name,
        options=options,
        progress=False,
        retry=FAST_RETRY,
        **kw,
    )


@pytest.fixture()
def reference(emu, tmp_path):
    out = _run(
        tmp_path, "reference", cache=False
    )  # the runs under test must send, not reuse these answers
    emu.faults.clear()
    return out.drop("gemini_batch_job")


ENDPOINTS = [
    "files.upload_start",
    "files.upload_chunk",
    "files.list",
    "files.delete",
    "files.download",
    "batches.create",
    "batches.get",
]


@pytest.mark.parametrize("status", [429, 500, 503])
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_transient_http_errors_are_retried_on_every_endpoint(
    emu, tmp_path, reference, endpoint, status
):
    before = emu.stats()
    emu.faults.add(HttpFault(endpoint=endpoint, status=status, nth=1, times=2, retry_after=0.01))
    out = _run(tmp_path, "run")
    assert out.drop("gemini_batch_job").equals(reference)
    after = emu.stats()
    assert after["batches_created"] - before["batches_created"] == 3
    assert after["files_created"] - before["files_created"] == 3
    if endpoint != "files.list":  # a list is only made when reconciling
        assert after["calls"].get(endpoint, 0) > before["calls"].get(endpoint, 0)


@pytest.mark.parametrize(
    "endpoint",
    ["batches.create", "files.upload_chunk", "batches.get", "files.download", "files.delete"],
)
@pytest.mark.parametrize("when", ["before", "after"])
def test_dropped_connections_never_duplicate_a_job_or_an_upload(
    emu, tmp_path, reference, endpoint, when
):
    """'after': the server did the work but the answer was lost; a blind retry would pay twice."""
    before = emu.stats()
    emu.faults.add(DropConnection(endpoint=endpoint, nth=2, when=when))
    out = _run(tmp_path, "run")
    assert out.drop("gemini_batch_job").equals(reference)
    after = emu.stats()
    assert after["batches_created"] - before["batches_created"] == 3, "a job was created twice"
    assert after["files_created"] - before["files_created"] == 3, "a file was uploaded twice"
    assert [f for f in emu.files() if f.get("source") != "GENERATED"] == []  # orphans cleaned up


def test_download_cut_mid_body_is_fetched_again(emu, tmp_path, reference):
    emu.faults.add(
        DropConnection(endpoint="files.download", nth=1, when="mid_body", after_bytes=100)
    )
    assert _run(tmp_path, "run").drop("gemini_batch_job").equals(reference)


def test_retries_exhausted_say_how_to_resume_and_nothing_is_lost(emu, tmp_path, reference):
    emu.faults.add(HttpFault(endpoint="batches.create", status=503, nth=1, times=None))
    with pytest.raises(gembatch.TransientServiceError, match="resume") as info:
        _run(tmp_path, "run")
    assert info.value.transient and emu.api_key not in str(info.value)
    assert emu.stats()["batches_created"] == 3  # only the reference run's
    emu.faults.clear()
    out = gembatch.BatchRun.open(tmp_path / "run", poll_interval=0.01, progress=False).result()
    assert out.drop("gemini_batch_job").equals(reference)


@pytest.mark.parametrize("endpoint", ["batches.get", "files.download"])
def test_a_paid_run_the_service_stops_answering_says_how_to_resume(
    emu, tmp_path, reference, endpoint
):
    emu.faults.add(HttpFault(endpoint=endpoint, status=503, nth=1, times=None))
    with pytest.raises(gembatch.TransientServiceError, match="Nothing was lost") as info:
        _run(tmp_path, "run")
    assert "BatchRun.open(" in str(info.value) and emu.api_key not in str(info.value)
    created = emu.stats()["batches_created"]
    emu.faults.clear()
    out = gembatch.BatchRun.open(tmp_path / "run", poll_interval=0.01, progress=False).result()
    assert out.drop("gemini_batch_job").equals(reference)
    assert emu.stats()["batches_created"] == created


def test_retry_after_is_honoured(emu):
    client = genai.Client(
        api_key=emu.api_key, http_options=types.HttpOptions(base_url=emu.base_url)
    )
    slept: list[float] = []
    backend = Backend(
        client,
        retry=RetryPolicy(attempts=3, initial_delay=0.001, max_delay=0.002, jitter=0),
        sleep=slept.append,
    )
    emu.faults.add(HttpFault(endpoint="batches.list", status=429, nth=1, times=1, retry_after=7))
    assert backend.find_jobs("nothing") == []
    assert slept and slept[0] >= 7


def test_a_terminal_error_is_not_retried(emu, tmp_path):
    emu.faults.add(
        HttpFault(endpoint="batches.create", status=400, nth=1, times=None, message="bad model")
    )
    with pytest.raises(gembatch.TerminalServiceError, match="bad model"):
        _run(tmp_path, "run")
    assert emu.stats()["calls"].get("batches.create") == 3  # one per shard, none repeated


def test_failed_job_keeps_partial_results_and_marks_the_rest(emu, tmp_path):
    emu.faults.add(
        JobOutcome(state="FAILED", nth_job=1, after_lines=4, message="quota exceeded mid-job")
    )
    out = _run(
        tmp_path,
        "run",
        options=Options(
            poll_interval=0.01,
            max_poll_interval=0.05,
            inline_max_bytes=0,
            shard_max_rows=10,
            upload_concurrency=1,
        ),
    )
    first = out.head(10)
    assert first["gemini_status"].value_counts().sort("gemini_status").rows() == [
        ("error", 6),
        ("ok", 4),
    ]
    assert (
        first.filter(pl.col("gemini_status") == "error")["gemini_error_message"]
        .str.contains("quota exceeded")
        .all()
    )
    assert (out.tail(20)["gemini_status"] == "ok").all()


def test_cancelled_job_rows_are_marked_cancelled(emu, tmp_path):
    emu.faults.add(JobOutcome(state="CANCELLED", nth_job=2))
    out = _run(tmp_path, "run")  # shards are created in parallel: any one of them is the 2nd job
    cancelled = out.filter(pl.col("gemini_status") == "cancelled")
    assert cancelled.height == 10 and cancelled["gemini_batch_job"].n_unique() == 1
    assert out.filter(pl.col("gemini_status") != "cancelled")[
        "gemini_status"
    ].unique().to_list() == ["ok"]


def test_bad_result_lines_are_reported_per_row_and_summarised_once(emu, tmp_path, reference):
    emu.faults.add(LineFaults(missing_rate=0.2, duplicate_rate=0.2, malformed_rate=0.2, seed=3))
    with pytest.warns(gembatch.ResultWarning) as record:
        out = _run(tmp_path, "run")
    assert len(record) == 1
    message = str(record[0].message)
    assert "missing" in message and "duplicated" in message and "malformed" in message
    assert out.height == N and out["id"].to_list() == reference["id"].to_list()
    ok = out.filter(pl.col("gemini_status") == "ok")
    assert (
        ok.join(reference, on="id")
        .filter(pl.col("gemini_text") != pl.col("gemini_text_right"))
        .height
        == 0
    )
    assert set(out["gemini_status"].unique()) <= {"ok", "missing", "error"}
    assert out.filter(pl.col("gemini_status") == "missing").height > 0


def test_a_poll_answer_cut_mid_body_and_a_busy_model_lookup_are_retried(emu, tmp_path):
    emu.faults.add(HttpFault(endpoint="models.get", status=503, nth=1, times=1, retry_after=0.01))
    emu.faults.add(DropConnection(endpoint="batches.get", when="mid_body", after_bytes=10))
    out = pl.DataFrame({"prompt": ["a", "b", "c"]}).gemini.batch_generate(
        "prompt",
        config=CFG,
        job_dir=tmp_path / "r",
        options=Options(poll_interval=0.01, max_poll_interval=0.05),
        retry=RetryPolicy(attempts=4, initial_delay=0.01, max_delay=0.02, jitter=0),
        progress=False,
    )
    assert (out["gemini_status"] == "ok").all() and emu.stats()["batches_created"] == 1
