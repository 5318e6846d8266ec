"""The command line, run as a user would (a real subprocess) against the emulator."""

from __future__ import annotations

import os
import subprocess
import sys

import polars as pl


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gembatch.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_run_status_results_and_list_round_trip(emu, tmp_path):
    pl.DataFrame({"id": ["a", "b", "c"], "review": ["great", "bad", "fine"]}).write_csv(
        tmp_path / "in.csv"
    )
    env = emu.environ()
    done = _cli(
        "run",
        str(tmp_path / "in.csv"),
        "--prompt-template",
        "Label: {review}",
        "--model",
        "gemini-2.5-flash",
        "--out",
        str(tmp_path / "out.jsonl"),
        "--job-dir",
        str(tmp_path / "run"),
        "--key",
        "id",
        "--poll-interval",
        "0.05",
        "--no-progress",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    out = pl.read_ndjson(tmp_path / "out.jsonl")
    assert out["gemini_text"].str.contains('Answer to "Label: bad"').to_list() == [
        False,
        True,
        False,
    ]
    status = _cli("status", str(tmp_path / "run"), env=env)
    assert status.returncode == 0 and "[done]" in status.stdout
    results = _cli(
        "results", str(tmp_path / "run"), "--out", str(tmp_path / "again.parquet"), env=env
    )
    assert results.returncode == 0 and pl.read_parquet(tmp_path / "again.parquet").height == 3
    listing = _cli("list", env=env)
    assert (
        listing.returncode == 0 and "batches/" in listing.stdout and "SUCCEEDED" in listing.stdout
    )
    assert emu.api_key not in done.stdout + done.stderr + status.stdout + listing.stdout


def test_parquet_run_streams_and_errors_exit_nonzero(emu, tmp_path):
    pl.DataFrame({"p": ["x", "y"]}).write_parquet(tmp_path / "in.parquet")
    env = emu.environ()
    done = _cli(
        "run",
        str(tmp_path / "in.parquet"),
        "--prompt-col",
        "p",
        "--model",
        "gemini-2.5-flash",
        "--out",
        str(tmp_path / "out.parquet"),
        "--job-dir",
        str(tmp_path / "run"),
        "--poll-interval",
        "0.05",
        "--no-progress",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert pl.read_parquet(tmp_path / "out.parquet")["gemini_status"].to_list() == ["ok", "ok"]
    bad = _cli(
        "run",
        str(tmp_path / "in.parquet"),
        "--prompt-col",
        "nope",
        "--model",
        "gemini-2.5-flash",
        "--out",
        str(tmp_path / "o.parquet"),
        "--job-dir",
        str(tmp_path / "run2"),
        env=env,
    )
    assert bad.returncode == 1 and "nope" in bad.stderr and "Traceback" not in bad.stderr
    missing = _cli("status", str(tmp_path / "nothing"), env=env)
    assert missing.returncode == 1 and "No gembatch run" in missing.stderr
    helptext = _cli("--help", env=env)
    assert helptext.returncode == 0 and "gembatch demo" in helptext.stdout


def test_demo_command_writes_a_parquet_file(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gembatch.cli",
            "demo",
            "--rows",
            "200",
            "--out",
            str(tmp_path / "demo.parquet"),
            "--shard-rows",
            "80",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = pl.read_parquet(tmp_path / "demo.parquet")
    assert out.height == 200 and (out["gemini_status"] == "ok").all()
    assert out.schema["gemini_parsed"] == pl.Struct(
        {"sentiment": pl.Utf8, "summary": pl.Utf8, "score": pl.Int64}
    )


def test_estimate_cost_and_cache_commands(emu, tmp_path):
    pl.DataFrame({"review": ["great", "bad", "great"]}).write_parquet(tmp_path / "in.parquet")
    env = {**emu.environ(), "GEMBATCH_CACHE_DIR": str(tmp_path / "cache")}
    common = ["--prompt-col", "review", "--model", "gemini-2.5-flash", "--max-output-tokens", "10"]
    est = _cli("estimate", str(tmp_path / "in.parquet"), *common, env=env)
    assert est.returncode == 0, est.stderr
    assert "3 rows" in est.stdout and "1 deduplicated" in est.stdout and "2 to send" in est.stdout
    assert "$" in est.stdout and emu.stats()["batches_created"] == 0
    run = _cli(
        "run",
        str(tmp_path / "in.parquet"),
        *common,
        "--out",
        str(tmp_path / "out.parquet"),
        "--job-dir",
        str(tmp_path / "run"),
        "--poll-interval",
        "0.05",
        "--no-progress",
        "--max-cost",
        "1",
        env=env,
    )
    assert run.returncode == 0, run.stderr
    cost = _cli("cost", str(tmp_path / "run"), env=env)
    assert cost.returncode == 0 and "2 rows answered by batch jobs, 1 by dedup" in cost.stdout
    stats = _cli("cache", "stats", env=env)
    assert stats.returncode == 0 and "2 entries" in stats.stdout, stats.stdout
    again = _cli("estimate", str(tmp_path / "in.parquet"), *common, env=env)
    assert "0 to send" in again.stdout
    refused = _cli(
        "run",
        str(tmp_path / "in.parquet"),
        "--prompt-col",
        "review",
        "--model",
        "gemini-2.5-flash",
        "--out",
        str(tmp_path / "o2.parquet"),
        "--job-dir",
        str(tmp_path / "run2"),
        "--no-cache",
        "--max-cost",
        "0",
        env=env,
    )
    assert (
        refused.returncode == 1
        and "CostLimit" not in refused.stderr
        and "max_cost" in refused.stderr
    )
    cleared = _cli("cache", "clear", env=env)
    assert cleared.returncode == 0 and "0 entries" in _cli("cache", "stats", env=env).stdout
