"""Secrets, locking, batch stats and remote clean-up around a run."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time

import polars as pl
import pytest

import gembatch
from gembatch import Config, Options
from gembatch.emulator import Behaviour, Delays, Emulator, HttpFault

KEY = "sekret-KEY-0123456789"
CFG = Config(model="gemini-2.5-flash")
FILES = Options(poll_interval=0.01, max_poll_interval=0.05, inline_max_bytes=0, shard_max_rows=5)


def _frame(n: int = 10) -> pl.DataFrame:
    return pl.DataFrame(
        {"id": [f"r{i}" for i in range(n)], "prompt": [f"Prompt {i}" for i in range(n)]}
    )


def test_the_api_key_is_never_written_logged_or_shown(
    tmp_path, monkeypatch, caplog, capsys, private_cache
):
    caplog.set_level(logging.DEBUG)
    with Emulator(api_key=KEY) as emu:
        for name, value in emu.environ().items():
            monkeypatch.setenv(name, value)
        run = _frame().gemini.batch_generate(
            "prompt", config=CFG, job_dir=tmp_path / "run", options=FILES, progress=True, wait=False
        )
        out = run.result()
        texts = [repr(run), str(run.status()), run._repr_html_(), repr(out)]
        emu.faults.add(HttpFault(endpoint="batches.get", status=503, times=None))
        with pytest.raises(gembatch.TransientServiceError) as info:
            _frame(3).gemini.batch_generate(
                "prompt",
                config=CFG,
                job_dir=tmp_path / "run3",
                options=FILES,
                progress=False,
                cache=False,
                retry=gembatch.RetryPolicy(
                    attempts=2, initial_delay=0.01, max_delay=0.01, jitter=0
                ),
            )
        texts.append(str(info.value))
        monkeypatch.setenv("GEMINI_API_KEY", "wrong-key-also-secret")
        with pytest.raises(gembatch.AuthenticationError) as auth:
            _frame(3).gemini.batch_generate(
                "prompt", config=CFG, job_dir=tmp_path / "run4", progress=False, cache=False
            )
        texts.append(str(auth.value))
    captured = capsys.readouterr()
    texts += [captured.out, captured.err, caplog.text]
    for text in texts:
        assert KEY not in text and "wrong-key-also-secret" not in text
    assert any(private_cache.rglob("*.parquet"))  # the result cache was written, and is scanned too
    for path in [*tmp_path.rglob("*"), *private_cache.rglob("*")]:
        if path.is_file():
            data = path.read_bytes()
            assert KEY.encode() not in data and b"wrong-key-also-secret" not in data, path


def test_batch_stats_are_recorded_per_job_and_remote_files_are_cleaned(tmp_path, monkeypatch):
    # result files that can be deleted (the strict service refuses: test_service_variants.py)
    with Emulator(behaviour=Behaviour.strict().with_(long_result_ids=False)) as emu:
        for name, value in emu.environ().items():
            monkeypatch.setenv(name, value)
        _frame().gemini.batch_generate(
            "prompt", config=CFG, job_dir=tmp_path / "run", options=FILES, progress=False
        )
        status = gembatch.BatchRun.open(tmp_path / "run").status(refresh=False)
        for shard in status.shards:
            assert shard["stats"]["successfulRequestCount"] == 5
            assert shard["stats"].get("pendingRequestCount", 0) == 0  # zero counts are omitted
        assert emu.files() == []  # request files and result files deleted once results were safe
        keep = Options(
            poll_interval=0.01,
            max_poll_interval=0.05,
            inline_max_bytes=0,
            shard_max_rows=5,
            cleanup_remote=False,
        )
        _frame().gemini.batch_generate(
            "prompt",
            config=CFG,
            job_dir=tmp_path / "keep",
            options=keep,
            progress=False,
            cache=False,
        )
        assert len(emu.files()) == 4  # two request files, two result files


HOLDER = textwrap.dedent(
    """
    import sys, polars as pl, gembatch
    df = pl.DataFrame({"prompt": ["a", "b", "c"]})
    df.gemini.batch_generate("prompt", config=gembatch.Config(model="gemini-2.5-flash"),
                             job_dir=sys.argv[1], progress=False,
                             options=gembatch.Options(poll_interval=0.05, max_poll_interval=0.05))
    """
)


class _Clock:
    """The emulator's clock, moved only by the test: a job stays pending until it moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_second_process_cannot_drive_the_same_run(tmp_path):
    clock = _Clock()
    with Emulator(faults=[Delays(pending_s=10)], clock=clock) as emu:
        job_dir = tmp_path / "run"
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(job_dir)], env={**os.environ, **emu.environ()}
        )
        try:
            deadline = time.monotonic() + 60
            while not (job_dir / "run.json").exists() or not list(
                job_dir.glob("shards/*/state.json")
            ):
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.05)
            while emu.stats()["batches_created"] == 0:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            os.environ.update(emu.environ())
            run = gembatch.BatchRun.open(job_dir, progress=False)
            with pytest.raises(gembatch.RunLockedError, match=f"pid {proc.pid}"):
                run.wait()
            status = run.status()  # read-only while the other process drives the run
            assert status.driven_by is not None and f"pid {proc.pid}" in status.driven_by
            assert status.state in ("submitting", "running") and status.total == 3
            proc.kill()  # the holder dies; its lock is taken over and the run finishes here
            proc.wait()
            clock.now += 60  # the job's pending time is over
            assert run.wait().status().state == "done"
            assert emu.stats()["batches_created"] == 1
        finally:
            for name in emu.environ():
                os.environ.pop(name, None)
            proc.kill()
            proc.wait()


def test_progress_counts_rows_and_status_works_while_another_process_drives(tmp_path):
    """Rows reused by dedup and the cache count as rows (the bar reaches 100 %, jobs are jobs), and
    a second process asking for the status reads it from the run directory instead of failing."""
    seen: list[gembatch.Snapshot] = []

    class Record:
        def update(self, snapshot):
            seen.append(snapshot)

        def close(self):
            pass

    df = pl.DataFrame({"prompt": [f"Prompt {i % 7}" for i in range(50)]})  # 7 distinct requests
    with Emulator() as emu:
        os.environ.update(emu.environ())
        try:
            out = df.gemini.batch_generate(
                "prompt",
                config=CFG,
                options=FILES.replace(shard_max_rows=100),
                progress=Record(),
                job_dir=tmp_path / "run",
                cache=False,
            )
        finally:
            for name in emu.environ():
                os.environ.pop(name, None)
    last = seen[-1]
    assert (last.rows, last.done, last.requests, last.answered, last.reused) == (50, 50, 7, 7, 43)
    assert last.jobs == {"JOB_STATE_SUCCEEDED": 1} and "succeeded 1" in last.describe_jobs()
    assert (out["gemini_origin"] == "dedup").sum() == 43
    status = gembatch.BatchRun.open(tmp_path / "run").status()
    assert "50/50 rows (100%)" in str(status) and "<td>0</td>" in status._repr_html_()
