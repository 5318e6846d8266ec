"""The ``gembatch`` logger says what a run does (shards, job names and states, retries, decisions)
at INFO, and nothing reaches the user's screen until the application configures logging."""

from __future__ import annotations

import inspect
import logging
import subprocess
import sys

import polars as pl

import gembatch
from gembatch import Config, Options, RetryPolicy
from gembatch.emulator import HttpFault

CFG = Config(model="gemini-2.5-flash")
FAST = Options(poll_interval=0.01, max_poll_interval=0.05)


def test_job_names_states_and_retries_are_logged(emu, tmp_path, caplog):
    emu.faults.add(HttpFault(endpoint="batches.get", status=503, nth=1, times=1))
    df = pl.DataFrame({"prompt": ["a", "b", "c"]})
    with caplog.at_level(logging.INFO, logger="gembatch"):
        df.gemini.batch_generate(
            "prompt",
            config=CFG,
            options=FAST,
            retry=RetryPolicy(attempts=3, initial_delay=0.01, max_delay=0.02, jitter=0),
            progress=False,
            job_dir=tmp_path / "r",
        )
    text = caplog.text
    job = emu.batches()[0]["name"]
    assert f"created {job}" in text  # the job's name, by shard
    assert "shard 0: uploaded" in text or "shard 0: uploading" in text
    assert "JOB_STATE_SUCCEEDED" in text and "shard 0: joined" in text
    assert "failed (attempt 1)" in text and "retrying in" in text  # the 503 and its retry


def test_nothing_is_printed_without_logging_configured(emu, tmp_path):
    script = (
        "import polars as pl, gembatch\n"
        "pl.DataFrame({'p': ['a']}).gemini.batch_generate('p', "
        "config=gembatch.Config(model='gemini-2.5-flash'), progress=False, "
        f"job_dir={str(tmp_path / 'r')!r}, "
        "options=gembatch.Options(poll_interval=0.01, max_poll_interval=0.05))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout == "" and done.stderr == ""


def test_the_namespace_methods_show_every_option():
    """Shift-Tab / help() on df.gemini.batch_generate lists the function's keywords."""
    frame = pl.DataFrame({"a": [1]})
    for name in ("batch_generate", "batch_embed", "plan", "estimate"):
        method = inspect.signature(getattr(frame.gemini, name))
        function = inspect.signature(getattr(gembatch, name))
        assert list(method.parameters) == list(function.parameters)[1:]
    assert "mode:" in (frame.gemini.batch_generate.__doc__ or "")
