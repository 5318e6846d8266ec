"""The command line, run as a user would (a real subprocess, or main() in this process) against the
emulator."""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

import polars as pl
import pytest

import gembatch
from gembatch import __version__, cli
from gembatch.emulator import Delays, Emulator


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
    assert "row [" not in results.stderr  # a finished run: no (empty) progress bar
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
        and "--max-cost" in refused.stderr
    )
    cleared = _cli("cache", "clear", env=env)
    assert cleared.returncode == 0 and "0 entries" in _cli("cache", "stats", env=env).stdout


# -- scripting: --version, help everywhere, --json, exit codes, clean errors, runs / gc ------------
class _Clock:
    """The emulator's clock, moved only by the test: a job stays pending until it moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The CLI in this process: (exit code, stdout, stderr); a traceback would fail the test."""
    capsys.readouterr()
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def _json(capsys: pytest.CaptureFixture[str], command: str, *args: str) -> tuple[int, Any]:
    """``gembatch COMMAND ARGS --json``: its exit code and its one JSON document, whose keys must be
    the ones its --help documents."""
    code, out, _ = _main(capsys, command, *args, "--json")
    doc = json.loads(out)
    assert tuple(doc) == cli.JSON_KEYS[command], doc
    return code, doc


def test_version_and_help_on_every_option(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"gembatch {__version__}"
    from gembatch.emulator.__main__ import _parser as emulator_parser

    parsers = {"gembatch": cli._parser(), "gembatch emulator": emulator_parser()}
    for action in parsers["gembatch"]._actions:
        if isinstance(action, argparse._SubParsersAction):
            parsers.update({f"gembatch {n}": p for n, p in action.choices.items()})
            assert set(action.choices) == {a.dest for a in action._choices_actions}
            assert all(a.help for a in action._choices_actions)  # each command's one line
    assert {"gembatch runs", "gembatch gc", "gembatch cleanup"} <= set(parsers)
    for name, parser in parsers.items():
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            assert action.help and action.help.strip() and action.help != argparse.SUPPRESS, (
                f"{name} {action.option_strings or action.dest} has no help"
            )
    for command, keys in cli.JSON_KEYS.items():  # --json documents its keys
        text = parsers[f"gembatch {command}"].format_help()
        assert "--json" in text and all(k in " ".join(text.split()) for k in keys), command


def test_status_cost_runs_gc_while_another_process_drives_the_run(tmp_path, monkeypatch, capsys):
    clock = _Clock()
    pl.DataFrame({"p": ["x", "y", "z"]}).write_parquet(tmp_path / "in.parquet")
    root, out = tmp_path / "runs", tmp_path / "out.parquet"
    job_dir = root / "slow"
    with Emulator(faults=[Delays(pending_s=10)], clock=clock) as emu:
        for name, value in emu.environ().items():
            monkeypatch.setenv(name, value)
        child = subprocess.Popen(
            [sys.executable, "-m", "gembatch.cli", "run", str(tmp_path / "in.parquet")]
            + ["--prompt-col", "p", "--model", "gemini-2.5-flash", "--out", str(out)]
            + ["--job-dir", str(job_dir), "--poll-interval", "0.05", "--no-progress", "--json"],
            env=dict(os.environ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while emu.stats()["batches_created"] == 0:  # the child made the run and its job
                assert time.monotonic() < deadline and child.poll() is None
                time.sleep(0.05)
            driver = f"pid {child.pid} on "
            while True:  # until the child records the job and polls it, holding the run
                code, doc = _json(capsys, "status", str(job_dir))
                assert code == 3 and doc["rows"] == 3 and doc["done"] == 0
                if doc["state"] == "running" and doc["driven_by"]:
                    break
                assert time.monotonic() < deadline and child.poll() is None
                time.sleep(0.05)
            assert driver in doc["driven_by"] and doc["jobs"] == {"JOB_STATE_PENDING": 1}
            code, text, _ = _main(capsys, "status", str(job_dir))
            assert code == 3 and f"driven by {driver}" in text and "[running]" in text
            code, text, _ = _main(capsys, "cost", str(job_dir))
            assert code == 3 and text.startswith("PARTIAL: ") and "not finished" in text
            code, doc = _json(capsys, "cost", str(job_dir))
            assert code == 3 and doc["finished"] is False and doc["input_rows"] == 3
            code, doc = _json(capsys, "runs", str(root))
            assert code == 0 and [r["job_dir"] for r in doc["runs"]] == [str(job_dir)]
            listed = doc["runs"][0]
            assert tuple(listed) == cli.RUN_KEYS and driver in listed["driven_by"]
            assert listed["state"] == "running" and listed["rows"] == 3 and listed["bytes"] > 0
            code, doc = _json(capsys, "gc", str(root), "--include-unfinished", "--yes")
            assert code == 0 and doc["removed"] == [] and doc["freed_bytes"] == 0
            assert doc["kept"][0]["reason"].startswith(f"driven by {driver}")
            assert (job_dir / "run.json").exists()
            code, _, err = _main(capsys, "cleanup", str(job_dir))
            assert code == 1 and "driven by another process" in err
            # wait follows the child from the run directory; the job ends a second later
            threading.Timer(1.0, lambda: setattr(clock, "now", clock.now + 60)).start()
            code, doc = _json(capsys, "wait", str(job_dir), "--poll-interval", "0.05")
            assert code == 0 and doc["state"] == "done" and doc["done"] == 3
            stdout, stderr = child.communicate(timeout=60)
            assert child.returncode == 0, stderr
            final = json.loads(stdout)  # --json: the one document on stdout, nothing else
            assert tuple(final) == cli.JSON_KEYS["run"] and final["out"] == str(out)
            assert pl.read_parquet(out)["gemini_status"].to_list() == ["ok"] * 3
        finally:
            child.kill()
            child.wait()
        code, doc = _json(capsys, "status", str(job_dir))
        assert code == 0 and doc["state"] == "done" and doc["driven_by"] is None
        code, doc = _json(capsys, "cost", str(job_dir))
        assert code == 0 and doc["finished"] is True and doc["rows_by_origin"]["batch"] == 3
        code, doc = _json(capsys, "gc", str(root), "--yes")
        assert code == 0 and [r["job_dir"] for r in doc["removed"]] == [str(job_dir)]
        assert doc["freed_bytes"] > 0 and not job_dir.exists()


def test_no_wait_then_status_wait_results_cleanup_and_json(emu, client, tmp_path, capsys):
    pl.DataFrame({"id": ["a", "b"], "review": ["good", "bad"]}).write_csv(tmp_path / "in.csv")
    asks = [str(tmp_path / "in.csv"), "--prompt-template", "Rate: {review}", "--key", "id"]
    asks += ["--model", "gemini-2.5-flash"]
    common = [*asks, "--no-progress", "--poll-interval", "0.05"]
    emu.faults.add(Delays(pending_s=3600))  # this first job never starts
    stuck = str(tmp_path / "stuck")
    code, text, _ = _main(capsys, "run", *common, "--job-dir", stuck, "--no-wait")
    assert code == 0 and f"gembatch status {stuck}" in text and f"gembatch wait {stuck}" in text
    assert emu.stats()["batches_created"] == 1
    code, doc = _json(capsys, "status", stuck)
    assert code == 3 and doc["state"] == "running" and doc["driven_by"] is None
    code, doc = _json(capsys, "wait", stuck, "--timeout", "0.2", "--poll-interval", "0.05")
    assert code == 3 and doc["state"] == "running"
    code, doc = _json(capsys, "cleanup", stuck)  # its request file is still needed
    assert code == 3 and doc["unfinished"] == ["0"] and doc["deleted"] == []
    code, doc = _json(capsys, "cancel", stuck)
    assert code == 0 and _main(capsys, "status", stuck)[0] == 0
    emu.faults.clear()

    run_dir = str(tmp_path / "run")
    code, doc = _json(capsys, "run", *common, "--job-dir", run_dir, "--no-wait")
    assert code == 0 and doc["job_dir"] == run_dir and doc["out"] is None
    code, doc = _json(capsys, "wait", run_dir, "--poll-interval", "0.05")
    assert code == 0 and doc["state"] == "done" and doc["failed"] == 0
    for name in ("out.json", "out.jsonl", "out.csv", "out.parquet", "dataset/"):
        code, text, _ = _main(capsys, "results", run_dir, "--out", str(tmp_path / name))
        assert code == 0 and text.startswith("wrote")
    frames = [
        pl.read_json(tmp_path / "out.json"),
        pl.read_ndjson(tmp_path / "out.jsonl"),
        pl.read_csv(tmp_path / "out.csv"),
        pl.read_parquet(tmp_path / "out.parquet"),
        pl.read_parquet(tmp_path / "dataset"),
    ]
    for frame in frames:
        assert frame["id"].to_list() == ["a", "b"]
        assert frame["gemini_text"].str.contains('"Rate: bad"').to_list() == [False, True]
    code, doc = _json(capsys, "cost", run_dir)
    assert code == 0 and doc["finished"] and doc["tokens"]["prompt"] > 0 and doc["batch_usd"] > 0
    code, doc = _json(capsys, "list")
    assert code == 0 and len(doc["jobs"]) == 2
    assert all(tuple(j) == cli.JOB_KEYS for j in doc["jobs"])
    assert {j["state"] for j in doc["jobs"]} == {"JOB_STATE_CANCELLED", "JOB_STATE_SUCCEEDED"}
    code, doc = _json(capsys, "estimate", *asks)
    assert code == 0 and doc["rows"] == 2 and doc["to_send"] == 0  # the cache answers both
    code, doc = _json(capsys, "cache", "stats")
    assert code == 0 and doc["entries"] == 2

    # a run that keeps its remote files: cleanup deletes them, and says what the service kept
    kept = str(tmp_path / "kept")
    gembatch.batch_generate(
        pl.DataFrame({"p": ["one", "two"]}),
        "p",
        config=gembatch.Config(model="gemini-2.5-flash"),
        job_dir=kept,
        cache=False,
        progress=False,
        options=gembatch.Options(cleanup_remote=False, poll_interval=0.05),
    )
    before = {f.name for f in client.files.list()}
    code, doc = _json(capsys, "cleanup", kept)
    assert code == 0 and doc["unfinished"] == [] and doc["deleted"]
    left = {item.split(": ", 1)[0] for item in doc["left"]}
    assert set(doc["deleted"]) <= before and not set(doc["deleted"]) & left
    assert {f.name for f in client.files.list()} == before - set(doc["deleted"])
    code, text, _ = _main(capsys, "cleanup", kept)  # again: nothing more to delete
    assert code == 0 and text.startswith("deleted 0 remote file(s)")


def test_clean_errors_before_anything_is_sent(emu, tmp_path, capsys, monkeypatch):
    env = emu.environ()
    missing = _cli(
        "run", str(tmp_path / "nope.csv"), "--prompt-col", "p", "--model", "gemini-2.5-flash",
        "--out", str(tmp_path / "o.parquet"), "--job-dir", str(tmp_path / "r"), env=env,
    )  # fmt: skip
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert "No input file" in missing.stderr and "nope.csv" in missing.stderr
    (tmp_path / "in.txt").write_text("p\nx\n")
    (tmp_path / "bad.csv").write_text('a,b\n1,2,3,4\n"x')
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    pl.DataFrame({"p": ["x"]}).write_parquet(tmp_path / "in.parquet")
    base = ["--prompt-col", "p", "--model", "gemini-2.5-flash", "--job-dir", str(tmp_path / "r")]
    for name, expected in (
        ("in.txt", "Cannot tell the format"),
        ("bad.csv", "cannot be read as CSV"),
        ("bad.parquet", "cannot be read as Parquet"),
    ):
        code, _, err = _main(capsys, "run", str(tmp_path / name), *base, "--out", "o.csv")
        assert code == 1 and expected in err and ".parquet" in err, err
    for out in ("scored.xlsx", "scored.txt"):
        with pytest.raises(SystemExit) as refused:
            _main(capsys, "run", str(tmp_path / "in.parquet"), *base, "--out", str(tmp_path / out))
        err = capsys.readouterr().err
        assert refused.value.code == 2 and "not an output format" in err
        assert all(s in err for s in (".parquet", ".csv", ".jsonl", ".json", "directory"))
    with pytest.raises(SystemExit) as refused:  # --out is needed unless --no-wait / --dry-run
        _main(capsys, "run", str(tmp_path / "in.parquet"), *base)
    assert refused.value.code == 2 and "--out" in capsys.readouterr().err
    assert emu.stats()["batches_created"] == 0 and not (tmp_path / "r").exists()
    monkeypatch.chdir(tmp_path)
    code, _, err = _main(capsys, "results", "nothing", "--out", "x.csv")
    assert code == 1 and "No gembatch run" in err


def test_runs_lists_and_gc_removes_finished_run_directories(emu, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pl.DataFrame({"p": ["x", "y"]}).write_csv("x.csv")
    ask = ["x.csv", "--prompt-col", "p", "--model", "gemini-2.5-flash", "--poll-interval", "0.05"]
    code, text, _ = _main(capsys, "run", *ask, "--no-wait")  # no --job-dir: a default one
    assert code == 0 and "gembatch status .gembatch/runs/generate-" in text
    code, doc = _json(capsys, "run", *ask, "--out", "x.jsonl", "--no-progress")  # resumed
    assert code == 0 and doc["job_dir"] in text and emu.stats()["batches_created"] == 1
    assert _main(capsys, "runs", "elsewhere")[1].startswith("no run directories under elsewhere")
    code, doc = _json(capsys, "runs")  # the default root: where runs without job_dir are kept
    (default,) = doc["runs"]
    assert doc["root"] == os.path.join(".gembatch", "runs")
    assert code == 0 and default["state"] == "done" and default["done"] == 2
    assert default["job_dir"].startswith(".gembatch/runs/generate-")
    pl.DataFrame({"p": ["u", "v"]}).write_parquet("in.parquet")  # not in the cache
    prepared = _main(
        capsys, "estimate", "in.parquet", "--prompt-col", "p", "--model", "gemini-2.5-flash",
        "--job-dir", ".gembatch/runs/prepared",
    )  # fmt: skip
    assert prepared[0] == 0
    (tmp_path / ".gembatch/runs/broken").mkdir()
    (tmp_path / ".gembatch/runs/broken/run.json").write_text("{not json")
    (tmp_path / ".gembatch/runs/not-a-run").mkdir()
    code, text, _ = _main(capsys, "runs", ".gembatch/runs")
    assert code == 0 and "3 run directories" in text and "not-a-run" not in text
    assert "done" in text and "2/2" in text and "prepared" in text and "unreadable" in text
    code, doc = _json(capsys, "runs", ".gembatch/runs")
    states = {os.path.basename(r["job_dir"]): r["state"] for r in doc["runs"]}
    assert states == {
        os.path.basename(default["job_dir"]): "done",
        "prepared": "prepared",
        "broken": "unreadable",
    }
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # not a terminal: --yes is needed
    code, _, err = _main(capsys, "gc", ".gembatch/runs")
    assert code == 2 and "--yes" in err and os.path.exists(default["job_dir"])
    code, doc = _json(capsys, "gc", ".gembatch/runs", "--dry-run")
    assert code == 0 and [r["job_dir"] for r in doc["removed"]] == [default["job_dir"]]
    assert os.path.exists(default["job_dir"])
    code, doc = _json(capsys, "gc", ".gembatch/runs", "--older-than", "1", "--yes")
    reasons = {os.path.basename(k["job_dir"]): k["reason"] for k in doc["kept"]}
    assert code == 0 and doc["removed"] == []
    assert reasons[os.path.basename(default["job_dir"])] == "changed less than 1 day ago"
    assert reasons["prepared"] == "prepared: not finished (--include-unfinished removes it)"
    code, text, _ = _main(capsys, "gc", ".gembatch/runs", "--yes")
    assert code == 0 and f"removed {default['job_dir']}" in text and "freed" in text
    assert not os.path.exists(default["job_dir"])
    code, doc = _json(capsys, "gc", ".gembatch/runs", "--yes", "--include-unfinished")
    assert code == 0 and len(doc["removed"]) == 2 and os.listdir(".gembatch/runs") == ["not-a-run"]


def test_run_interactively_from_the_shell(emu, tmp_path, capsys):
    pl.DataFrame({"id": ["a", "b", "c"], "review": ["good", "bad", "meh"]}).write_csv(
        tmp_path / "in.csv"
    )
    out = str(tmp_path / "out.parquet")
    code, text, _ = _main(
        capsys,
        "run",
        str(tmp_path / "in.csv"),
        "--prompt-template",
        "Rate: {review}",
        "--key",
        "id",
        "--model",
        "gemini-2.5-flash",
        "--no-progress",
        "--mode",
        "interactive",
        "--out",
        out,
    )
    assert code == 0, text
    frame = pl.read_parquet(out)
    assert frame["gemini_origin"].to_list() == ["interactive"] * 3
    assert emu.stats()["batches_created"] == 0
    assert emu.stats()["calls"]["models.generate_content"] == 3


def test_a_prompt_template_is_checked_before_anything_is_read_or_sent(emu, tmp_path, capsys):
    pl.DataFrame({"review": ["good"]}).write_csv(tmp_path / "in.csv")
    for template, message in (
        ("{review", "expected '}'"),
        ("{review}}", "Single '}'"),
        ("Rate this", "names no column"),
    ):
        code, _, err = _main(
            capsys,
            "run",
            str(tmp_path / "in.csv"),
            "--prompt-template",
            template,
            "--model",
            "gemini-2.5-flash",
            "--out",
            str(tmp_path / "o.parquet"),
            "--no-progress",
        )
        assert code == 1 and message in err and "Traceback" not in err
    with pytest.raises(SystemExit) as refused:  # argparse's usage error
        cli.main(
            [
                "run",
                str(tmp_path / "in.csv"),
                "--prompt-col",
                "review",
                "--model",
                "gemini-2.5-flash",
                "--out",
                str(tmp_path / "in.csv"),
            ]
        )
    assert refused.value.code == 2 and "is the input file" in capsys.readouterr().err
    assert emu.stats()["calls"].get("batches.create", 0) == 0


def test_an_existing_input_path_is_read_literally_brackets_and_all(emu, tmp_path, capsys):
    pl.DataFrame({"id": [0, 1], "p": ["a", "b"]}).write_parquet(tmp_path / "reviews[1].parquet")
    pl.DataFrame({"id": [0, 1], "p": ["c", "d"]}).write_csv(tmp_path / "reviews[2].csv")
    ask = ["--prompt-col", "p", "--model", "gemini-2.5-flash", "--no-progress"]
    for name, prompts in (("reviews[1].parquet", ["a", "b"]), ("reviews[2].csv", ["c", "d"])):
        out = str(tmp_path / f"out-{name}.parquet")
        job_dir = str(tmp_path / f"run-{name}")
        code, _, err = _main(capsys, "run", str(tmp_path / name), *ask, "--out", out,
                             "--job-dir", job_dir, "--poll-interval", "0.05")  # fmt: skip
        assert code == 0, err
        frame = pl.read_parquet(out, glob=False)
        assert frame["p"].to_list() == prompts and frame["gemini_status"].to_list() == ["ok"] * 2
    # a path that does not exist is a pattern only with '*', as for gembatch.batch_generate
    missing = str(tmp_path / "reviews[3].parquet")
    code, _, err = _main(capsys, "run", missing, *ask, "--out", "o.csv")
    assert code == 1 and "No input file" in err and "only '*' patterns" in err
    code, text, err = _main(capsys, "estimate", str(tmp_path / "reviews*.parquet"), *ask[:4])
    assert code == 0 and "2 rows" in text, err


def test_number_flags_take_what_the_api_takes_with_clear_messages(capsys):
    parser = cli._parser()
    ask = ["run", "in.csv", "--prompt-col", "p", "--model", "m", "--no-wait"]
    assert parser.parse_args([*ask, "--pilot", "50"]).pilot == 50
    assert isinstance(parser.parse_args([*ask, "--pilot", "50"]).pilot, int)
    assert parser.parse_args([*ask, "--pilot", "0.01"]).pilot == 0.01
    for pilot in ("2.5", "50.0", "0", "1.0", "-3", "nan", "abc"):
        with pytest.raises(SystemExit) as refused:
            parser.parse_args([*ask, "--pilot", pilot])
        err = capsys.readouterr().err
        assert refused.value.code == 2 and "argument --pilot: expected a share" in err, err
        assert repr(pilot) in err
    for flag in ("--max-cost", "--poll-interval"):
        for value in ("abc", "-1", "nan", "inf"):
            with pytest.raises(SystemExit) as refused:
                parser.parse_args([*ask, flag, value])
            err = capsys.readouterr().err
            assert refused.value.code == 2 and f"argument {flag}: expected a" in err, err
            assert "_positive" not in err and repr(value) in err
    assert parser.parse_args([*ask, "--max-cost", "0.5"]).max_cost == 0.5


def test_json_commands_that_fail_print_a_json_error(emu, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = _main(capsys, "status", "nowhere", "--json")
    doc = json.loads(out)
    assert code == 1 and doc["error"] == "RunDirectoryError" and doc["exit_code"] == 1
    assert "nowhere" in doc["message"] and f"gembatch: {doc['message']}" in err
    assert "gembatch run ... --job-dir DIR" in err and "batch_generate(" not in err
    pl.DataFrame({"p": ["x", None]}).write_csv("in.csv")
    ask = ["in.csv", "--prompt-col", "p", "--model", "gemini-2.5-flash", "--json"]
    code, out, err = _main(capsys, "estimate", *ask)
    doc = json.loads(out)
    assert code == 1 and doc["error"] == "InvalidPromptError" and "null" in doc["message"]
    assert "--skip-null-prompts" in err and "skip_null_prompts=True" not in err
    code, out, _ = _main(capsys, "estimate", *ask, "--skip-null-prompts")
    assert code == 0 and json.loads(out)["skipped"] == 1


def test_usage_errors_with_json_print_one_json_object(tmp_path, capsys, monkeypatch):
    """Exit 2 from argparse: the usage text on stderr as always, and with --json among the
    arguments one JSON object on stdout, as the other failures print."""
    monkeypatch.chdir(tmp_path)
    pl.DataFrame({"id": ["a"], "review": ["ok"]}).write_parquet("in.parquet")
    run = ["run", "in.parquet", "--prompt-col", "review", "--model", "gemini-2.5-flash", "--json"]
    cases = [
        (run, "--out"),  # required, checked after parsing
        ([*run, "--out", "x.txt"], "argument --out"),
        ([*run, "--out", "x.parquet", "--pilot", "0"], "argument --pilot"),
        ([*run, "--out", "x.parquet", "--mode", "live"], "argument --mode"),
        ([*run, "--out", "in.parquet"], "is the input file"),
        (["status", "--json"], "job_dir"),  # a subcommand's parser
        (["--json", "status", "nowhere"], "unrecognized arguments: --json"),
        (["nonsense", "--json"], "invalid choice"),
    ]
    for argv, expected in cases:
        capsys.readouterr()
        with pytest.raises(SystemExit) as refused:
            cli.main(argv)
        out, err = capsys.readouterr()
        assert refused.value.code == 2, argv
        doc = json.loads(out)
        assert doc == {"error": "UsageError", "message": doc["message"], "exit_code": 2}
        assert expected in doc["message"] and f"error: {doc['message']}" in err, (argv, err)
        assert "usage: gembatch" in err and "Traceback" not in err
    with pytest.raises(SystemExit):  # without --json: stdout stays empty
        cli.main(run[:-1])
    out, err = capsys.readouterr()
    assert out == "" and "--out" in err
    assert not (tmp_path / ".gembatch").exists()  # nothing was run


def test_the_cost_refusal_gives_cli_hints(emu, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pl.DataFrame({"id": [1, 2], "p": ["x", "y"]}).write_csv("in.csv")
    ask = ["in.csv", "--prompt-col", "p", "--model", "gemini-2.5-flash", "--no-progress"]
    code, out, err = _main(capsys, "run", *ask, "--max-cost", "0", "--out", "o.csv", "--json")
    assert code == 1 and json.loads(out)["error"] == "CostLimitError"
    assert "--max-output-tokens N" in err and "raise --max-cost" in err
    assert "run again with --job-dir .gembatch/runs/generate-" in err
    assert "Config(" not in err and "job_dir=" not in err and "max_cost" not in err
    assert emu.stats()["batches_created"] == 0


def test_estimate_without_a_job_dir_shows_no_temporary_directory(emu, tmp_path, capsys):
    pl.DataFrame({"p": ["x", "y"]}).write_csv(tmp_path / "in.csv")
    ask = [str(tmp_path / "in.csv"), "--prompt-col", "p", "--model", "gemini-2.5-flash"]
    code, doc = _json(capsys, "estimate", *ask)
    assert code == 0 and doc["job_dir"] is None and doc["rows"] == 2
    code, text, _ = _main(capsys, "estimate", *ask)
    assert code == 0 and "gembatch-plan-" not in text and "2 rows" in text
    kept = str(tmp_path / "kept")
    code, doc = _json(capsys, "estimate", *ask, "--job-dir", kept)
    assert code == 0 and doc["job_dir"] == kept


def test_a_csv_input_is_read_as_written(tmp_path):
    """CSV columns are text, exactly as in the file: codes keep their leading zeros and
    exponent-like text is not turned into a number (the prompt sent is the text the user sees)."""
    path = tmp_path / "codes.csv"
    path.write_text("id,zip,code\n007,02139,1e5\n7,00501,12\n")
    frame = cli._read(str(path))
    assert frame.schema == pl.Schema({"id": pl.Utf8, "zip": pl.Utf8, "code": pl.Utf8})
    assert frame.rows() == [("007", "02139", "1e5"), ("7", "00501", "12")]


@pytest.mark.parametrize("kind", ["pandas", "arrow"])
def test_results_of_a_pandas_or_arrow_run_write_every_format(tmp_path, kind):
    """``gembatch results --out x.csv`` (and .json / .jsonl) of a run started from a pandas frame
    or a pyarrow Table (it stopped with an AssertionError)."""
    pytest.importorskip("pandas")
    frame = pl.DataFrame({"id": ["a", "b"], "gemini_text": ["x", "y"]})
    given = frame.to_pandas().set_index("id") if kind == "pandas" else frame.to_arrow()
    for name, read in (("o.csv", pl.read_csv), ("o.jsonl", pl.read_ndjson), ("o.json", None)):
        cli._write(given, str(tmp_path / name), cli._out_kind(name))
        if read is not None:
            assert read(tmp_path / name).rows() == [("a", "x"), ("b", "y")]


def test_cli_messages_say_what_is_wrong():
    """A template format spec is named as such (it said "{price} is not a column name"), and the
    key hints read as CLI advice ("pass leave out --key" before)."""
    with pytest.raises(gembatch.ConfigError, match=r"\{price:\.2f\}: formats and conversions"):
        cli._template("Price {price:.2f}")
    with pytest.raises(gembatch.ConfigError, match=r"\{p!r\}: formats"):
        cli._template("{p!r}")
    args = cli._parser().parse_args(["run", "x.csv", "--prompt-col", "p", "--model", "m"])
    said = cli._cli_hints(args, "Hint: fill them, or pass key=None to key by position.")
    assert said.endswith("or leave out --key to key by position.")
    said = cli._cli_hints(args, "Hint: pass key=None to key by position.")
    assert said.endswith("Hint: leave out --key to key by position.")


def test_a_jsonl_input_keeps_a_field_first_seen_late(tmp_path):
    """Types come from every line: a field first seen on line 121 is kept (the first 100 lines
    decided before, and the field vanished from the output)."""
    path = tmp_path / "late.jsonl"
    rows = [{"id": i, "prompt": f"p{i}"} for i in range(120)] + [
        {"id": 120, "prompt": "p", "email": "a@b.c"}
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    frame = cli._read(str(path))
    assert frame.columns == ["id", "prompt", "email"] and frame["email"][-1] == "a@b.c"


def test_run_checks_its_output_before_anything_is_sent(emu, tmp_path):
    """A file name that is an existing directory, and an output inside the input glob's folder,
    are refused before the run (the run was paid for, then failed or wrote into the input)."""
    (tmp_path / "sub").mkdir()
    pl.DataFrame({"p": ["x"]}).write_parquet(tmp_path / "sub" / "in.parquet")
    (tmp_path / "taken.parquet").mkdir()
    env = emu.environ()
    for out, said in (
        (tmp_path / "taken.parquet", "is a directory"),
        (tmp_path / "sub" / "out.parquet", "would overwrite the input"),
    ):
        done = _cli(
            "run",
            str(tmp_path / "sub" / "*.parquet"),
            "--prompt-col",
            "p",
            "--model",
            "gemini-2.5-flash",
            "--out",
            str(out),
            "--job-dir",
            str(tmp_path / "run"),
            "--no-progress",
            env=env,
        )
        assert done.returncode == 1 and said in done.stderr, done.stderr
    assert emu.stats()["upload_sessions"] == 0
