"""Requests already in flight in another run are not paid again: the result cache records them
while their jobs run; a second run that needs them drives that run to its answers (nobody drives
it) or waits for the process that does, then takes them from the cache."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import polars as pl

from gembatch import Config, Options
from gembatch.emulator import Delays

CFG = Config(model="gemini-2.5-flash")
FAST = Options(poll_interval=0.01, max_poll_interval=0.05)


def _frame(n: int, start: int = 0) -> pl.DataFrame:
    ids = range(start, start + n)
    return pl.DataFrame({"id": [f"r{i:03d}" for i in ids], "prompt": [f"Prompt {i}" for i in ids]})


def test_a_run_nobody_drives_is_driven_to_the_answers_a_new_run_needs(emu, tmp_path, private_cache):
    emu.faults.add(Delays(running_s=0.3))
    first = _frame(20).gemini.batch_generate(
        "prompt",
        config=CFG,
        key="id",
        options=FAST,
        progress=False,
        job_dir=tmp_path / "a",
        wait=False,
    )
    assert emu.stats()["batches_created"] >= 1  # its jobs run; nobody polls them
    wider = _frame(30)  # the same 20 requests and 10 more, in another run directory
    out = wider.gemini.batch_generate(
        "prompt", config=CFG, key="id", options=FAST, progress=False, job_dir=tmp_path / "b"
    )
    assert (out["gemini_status"] == "ok").all()
    assert out["gemini_origin"].value_counts(sort=True).rows() == [("cache", 20), ("batch", 10)]
    assert emu.stats()["lines_processed"] == 30  # nothing paid twice
    assert (first.result()["gemini_status"] == "ok").all()  # its own handle sees the answers
    assert emu.stats()["lines_processed"] == 30
    assert not list(private_cache.glob("inflight/*"))  # nothing left marked in flight


DRIVER = textwrap.dedent(
    """
    import sys, polars as pl, gembatch
    df = pl.DataFrame({"id": [f"r{i:03d}" for i in range(20)],
                       "prompt": [f"Prompt {i}" for i in range(20)]})
    df.gemini.batch_generate("prompt", config=gembatch.Config(model="gemini-2.5-flash"), key="id",
                             job_dir=sys.argv[1], progress=False,
                             options=gembatch.Options(poll_interval=0.05, max_poll_interval=0.1))
    """
)


def test_a_run_another_process_drives_is_waited_for(emu, tmp_path):
    emu.faults.add(Delays(running_s=1.5))
    child = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(tmp_path / "a")],
        env={**os.environ},
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while emu.stats()["batches_created"] == 0:  # the child's job is created and running
        assert time.monotonic() < deadline and child.poll() is None
        time.sleep(0.02)
    out = _frame(25).gemini.batch_generate(
        "prompt", config=CFG, key="id", options=FAST, progress=False, job_dir=tmp_path / "b"
    )
    assert child.wait(timeout=60) == 0
    assert (out["gemini_status"] == "ok").all()
    assert out["gemini_origin"].value_counts(sort=True).rows() == [("cache", 20), ("batch", 5)]
    assert emu.stats()["lines_processed"] == 25
