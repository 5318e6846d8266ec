"""Job outcomes that need rows sent again: expired jobs, stuck jobs (watchdog), retry_failed()."""

from __future__ import annotations

import polars as pl

import gembatch
from gembatch import Config, Options
from gembatch.emulator import Delays, JobOutcome, LineFaults

CFG = Config(model="gemini-2.5-flash")


def _options(**kw) -> Options:
    return Options(
        poll_interval=0.01,
        max_poll_interval=0.05,
        inline_max_bytes=0,
        shard_max_rows=10,
        upload_concurrency=1,
        **kw,
    )


def _frame(n: int = 20) -> pl.DataFrame:
    return pl.DataFrame(
        {"id": [f"r{i}" for i in range(n)], "prompt": [f"Prompt {i}" for i in range(n)]}
    )


def test_expired_job_is_resubmitted_automatically(emu, tmp_path):
    emu.faults.add(JobOutcome(state="EXPIRED", nth_job=1))
    out = _frame().gemini.batch_generate(
        "prompt", config=CFG, key="id", job_dir=tmp_path / "run", options=_options(), progress=False
    )
    assert (out["gemini_status"] == "ok").all()
    assert emu.stats()["batches_created"] == 3  # two shards + one resubmission
    status = gembatch.BatchRun.open(tmp_path / "run", progress=False).status(refresh=False)
    reasons = [s["reason"] for s in status.shards]
    assert reasons.count("expired") == 1
    assert out.head(10)["gemini_batch_job"].n_unique() == 1  # answered by the resubmission
    assert out.head(10)["gemini_batch_job"][0] != status.shards[0]["job_name"]


def test_expired_rows_are_reported_when_resubmission_is_off(emu, tmp_path):
    emu.faults.add(JobOutcome(state="EXPIRED", nth_job=1))
    out = _frame().gemini.batch_generate(
        "prompt",
        config=CFG,
        key="id",
        job_dir=tmp_path / "run",
        options=_options(resubmit_expired=False),
        progress=False,
    )
    assert out.head(10)["gemini_status"].unique().to_list() == ["expired"]
    assert (out.tail(10)["gemini_status"] == "ok").all()
    assert emu.stats()["batches_created"] == 2


def test_retry_failed_resends_only_retryable_errors_and_merges(emu, tmp_path):
    df = _frame().with_columns(
        pl.when(pl.col("id") == "r3")
        .then(pl.lit("[[error:400]] never valid"))
        .otherwise(pl.col("prompt"))
        .alias("prompt")
    )
    emu.faults.add(LineFaults(error_rate=0.4, error_code=503, seed=1))
    run = df.gemini.batch_generate(
        "prompt",
        config=CFG,
        key="id",
        job_dir=tmp_path / "run",
        options=_options(),
        progress=False,
        wait=False,
    )
    first = run.result()
    failed = first.filter(pl.col("gemini_error_status") == "UNAVAILABLE")  # 503, gRPC 14
    assert failed.height > 0
    emu.faults.clear()
    created = emu.stats()["batches_created"]
    assert run.retry_failed() == failed.height
    second = run.result()
    assert second.filter(pl.col("id").is_in(failed["id"].implode()))[
        "gemini_status"
    ].unique().to_list() == ["ok"]
    assert second.filter(pl.col("id") == "r3")["gemini_error_status"].to_list() == [
        "INVALID_ARGUMENT"
    ]
    kept = first.filter(pl.col("gemini_status") == "ok")
    assert (
        second.join(kept, on="id")
        .filter(pl.col("gemini_text") != pl.col("gemini_text_right"))
        .height
        == 0
    )
    assert emu.stats()["batches_created"] - created == failed["gemini_batch_job"].n_unique()
    assert run.retry_failed() == 0  # nothing retryable is left


def test_watchdog_cancels_a_stuck_job_and_resubmits_its_rows_split(emu, tmp_path):
    emu.faults.add(Delays(pending_s=3600))
    run = _frame(10).gemini.batch_generate(
        "prompt",
        config=CFG,
        key="id",
        job_dir=tmp_path / "run",
        options=_options(stuck_after=0.2),
        progress=False,
        wait=False,
    )
    emu.faults.clear()  # later jobs start at once
    out = run.result()
    assert (out["gemini_status"] == "ok").all()
    assert emu.stats()["batches_created"] == 3  # the stuck one + two halves
    status = run.status(refresh=False)
    assert status.shards[0]["watchdog"] is True
    assert [s["reason"] for s in status.shards[1:]] == ["watchdog", "watchdog"]
    assert sorted(s["lines"] for s in status.shards[1:]) == [5, 5]
