"""The rolling scheduler: a run many times the service's batch quotas is fed window by window, in
queue order, never over the limits (checked on the emulator's own counters), and survives a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import polars as pl
import pytest

import gembatch
from gembatch import Config, Options
from gembatch.emulator import Delays, Emulator, Limits

CFG = Config(model="gemini-2.5-flash")


def _frame(n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": [f"r{i:05d}" for i in range(n)],
            "prompt": [f"Prompt {i:05d} " + "word " * 10 for i in range(n)],
        }
    )


@pytest.fixture()
def tight(monkeypatch):
    """An emulator with small batch limits: 3 jobs, 2,000 enqueued tokens, 40 kB of files."""
    limits = Limits(
        max_concurrent_jobs=3,
        enqueued_tokens={"*": 2_000},
        storage_bytes=40_000,
        batch_retry_delay_s=0.05,
    )
    with Emulator(limits=limits, faults=[Delays(running_s=0.05)]) as emu:
        for name, value in emu.environ().items():
            monkeypatch.setenv(name, value)
        yield emu


def _budgeted(**kw) -> Options:
    base = dict(
        poll_interval=0.01,
        max_poll_interval=0.05,
        max_jobs=3,
        max_enqueued_tokens=2_000,
        max_storage_bytes=40_000,
        shard_max_rows=40,
        first_shard_rows=None,
    )
    return Options(**{**base, **kw})


def test_a_run_many_windows_big_stays_within_every_limit(tight, tmp_path):
    df = _frame(400)  # 16 tokens a row: 6,400 tokens, over 3 windows of 2,000
    out = df.gemini.batch_generate(
        "prompt",
        config=CFG,
        key="id",
        options=_budgeted(),
        progress=False,
        job_dir=tmp_path / "run",
        cache=False,
    )
    assert out["id"].to_list() == df["id"].to_list() and (out["gemini_status"] == "ok").all()
    assert all(
        t.startswith(f'Answer to "{p[:80]}"') for p, t in zip(out["prompt"], out["gemini_text"])
    )
    stats = tight.stats()
    assert stats["peak_concurrent_jobs"] <= 3
    assert max(stats["peak_enqueued_tokens"].values()) <= 2_000
    assert stats["peak_storage_bytes"] <= 40_000
    shards = json.loads((tmp_path / "run" / "run.json").read_text())["shards"]
    assert len(shards) == 13  # by tokens: a quarter of the budget (500) each
    assert stats["batches_created"] == 13 and stats["files_created"] == 13  # each once
    assert sum(stats["quota_429s"].values()) == 0  # the budget kept it under the limits


def test_a_budget_above_the_real_quota_is_lowered_by_the_refusals(tight, tmp_path):
    """The user thinks the quota is larger than it is: the service's 429s lower the budget, the run
    waits for jobs to end, and every row is answered once."""
    options = _budgeted(
        max_jobs=50, max_enqueued_tokens=1_000_000, max_storage_bytes=10**9, shard_max_tokens=900
    )
    out = _frame(300).gemini.batch_generate(
        "prompt",
        config=CFG,
        key="id",
        options=options,
        progress=False,
        job_dir=tmp_path / "run",
        cache=False,
    )
    assert (out["gemini_status"] == "ok").all()
    stats = tight.stats()
    assert sum(stats["quota_429s"].values()) > 0  # it met the limits ...
    manifest = json.loads((tmp_path / "run" / "run.json").read_text())
    assert manifest["budget"]["lowered"] >= 1  # ... and learned from them
    jobs = {b["metadata"]["displayName"] for b in tight.batches()}
    assert len(jobs) == stats["batches_created"]  # no job twice


def test_first_shards_are_small_so_answers_come_early(tmp_path, emu):
    options = Options(poll_interval=0.01, max_poll_interval=0.05, first_shard_rows=10)
    run = _frame(300).gemini.batch_generate(
        "prompt",
        config=CFG,
        key="id",
        options=options,
        progress=False,
        job_dir=tmp_path / "run",
        wait=False,
    )
    rows = [s["rows"] for s in run.status(refresh=False).shards]
    assert rows == [10, 40, 160, 90]
    assert (run.result()["gemini_status"] == "ok").all()


KILLED = textwrap.dedent(
    """
    import os, signal, sys
    import polars as pl, gembatch
    from gembatch._run import driver
    calls = {"n": 0}
    original = driver.Run._submit_one
    def dying(self, record, seen, create=True):
        calls["n"] += 1
        if calls["n"] == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)  # in the middle of a submission round
        return original(self, record, seen, create)
    driver.Run._submit_one = dying
    df = pl.DataFrame({"id": [f"r{i:05d}" for i in range(400)],
                       "prompt": [f"Prompt {i:05d} " + "word " * 10 for i in range(400)]})
    opts = gembatch.Options(poll_interval=0.01, max_poll_interval=0.05, max_jobs=3,
                            max_enqueued_tokens=2000, max_storage_bytes=40000, shard_max_rows=40,
                            first_shard_rows=None)
    df.gemini.batch_generate("prompt", config=gembatch.Config(model="gemini-2.5-flash"), key="id",
                             job_dir=sys.argv[1], options=opts, progress=False, cache=False)
    """
)


@pytest.mark.parametrize("nth", [2, 5])
def test_a_kill_while_scheduling_pays_nothing_twice(tight, tmp_path, nth):
    job_dir = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-c", KILLED, str(job_dir), str(nth)],
        env={**os.environ, **tight.environ()},
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]
    out = gembatch.BatchRun.open(job_dir, progress=False, poll_interval=0.01).result()
    assert (out["gemini_status"] == "ok").all() and out.height == 400
    stats = tight.stats()
    assert stats["batches_created"] == 13 and stats["files_created"] == 13
    assert stats["peak_concurrent_jobs"] <= 3


@pytest.mark.parametrize("service_tokens", [1_000, 100_000])
def test_an_unknown_tier_is_probed_upward_until_the_service_refuses(
    service_tokens, tmp_path, monkeypatch
):
    """tier=None (the default): the token budget starts at tier 1's figure (here 800) and doubles
    while the service takes every job; the first refusal fixes it at what the service holds. A
    project with a bigger quota gets its speed; one with a smaller one loses one refused create."""
    from gembatch._run import budget

    monkeypatch.setitem(budget.TIER_ENQUEUED_TOKENS[1], "*", 800)
    monkeypatch.setitem(budget.TIER_ENQUEUED_TOKENS[3], "*", 50_000)
    limits = Limits(enqueued_tokens={"*": service_tokens}, batch_retry_delay_s=0.05)
    with Emulator(limits=limits, faults=[Delays(running_s=0.1)]) as emu:
        for name, value in emu.environ().items():
            monkeypatch.setenv(name, value)
        options = Options(
            poll_interval=0.01, max_poll_interval=0.05, shard_max_tokens=400, first_shard_rows=None
        )
        out = _frame(300).gemini.batch_generate(  # 4,800 tokens in 12 shards of 400
            "prompt",
            config=CFG.replace(model="gemini-3-flash-preview"),  # "*" in the tier tables
            key="id",
            options=options,
            progress=False,
            job_dir=tmp_path / "run",
            cache=False,
        )
        stats = emu.stats()
    assert (out["gemini_status"] == "ok").all()
    budget_json = json.loads((tmp_path / "run" / "run.json").read_text())["budget"]
    peak = max(stats["peak_enqueued_tokens"].values())
    assert budget_json["raised"] >= 1
    if service_tokens > 4_800:
        assert peak > 800 and sum(stats["quota_429s"].values()) == 0
    else:
        assert peak <= service_tokens and budget_json["lowered"] >= 1
    assert stats["batches_created"] == 12  # every shard once


def test_a_shard_over_the_service_limit_alone_is_split_not_stuck(tmp_path, monkeypatch):
    """Shards cut for a budget larger than the service's limit: each is refused even alone; it is
    split into parts that fit, every row answered once, never more than the limit enqueued."""
    limits = Limits(enqueued_tokens={"*": 1_000}, batch_retry_delay_s=0.05)
    with Emulator(limits=limits, faults=[Delays(running_s=0.05)]) as emu:
        for name, value in emu.environ().items():
            monkeypatch.setenv(name, value)
        options = Options(
            poll_interval=0.01,
            max_poll_interval=0.05,
            shard_max_tokens=2_400,
            first_shard_rows=None,
            quota_wait=30,
        )
        out = _frame(300).gemini.batch_generate(  # 16 tokens a row: 2 shards of 2,400
            "prompt",
            config=CFG,
            key="id",
            options=options,
            progress=False,
            job_dir=tmp_path / "run",
            cache=False,
        )
        stats = emu.stats()
        names = [b["metadata"]["displayName"] for b in emu.batches()]
    assert (out["gemini_status"] == "ok").all()
    assert all(
        t.startswith(f'Answer to "{p[:80]}"') for p, t in zip(out["prompt"], out["gemini_text"])
    )
    assert stats["lines_processed"] == 300 and len(names) == len(set(names))
    assert max(stats["peak_enqueued_tokens"].values()) <= 1_000
    states = [
        json.loads(p.read_text())["job_state"]
        for p in (tmp_path / "run").glob("shards/*/state.json")
    ]
    assert "JOB_STATE_SPLIT" in states
