"""The rolling scheduler on a run many times the service's batch quotas.

An in-process emulator with limits scaled down so the run needs ``--sched-windows`` (default 20)
windows: at most ``--sched-jobs`` (20) unfinished jobs, and an enqueued-token ceiling of
1/``windows`` of the run's input tokens (measured with ``gembatch.estimate``); every job runs
``--sched-job-seconds`` (2 s). A child process runs ``batch_generate_parquet`` over
``--sched-rows`` rows (default 1,000,000) with gembatch's defaults (``Options(tier=None)``: it
starts from tier 1's budget, above this ceiling, and learns the real one from the service's
429s), polling every 0.1-0.25 s (the jobs' 2 s stand for hours). The parent samples the
emulator's counters every 50 ms.

Reported: every row back once (output rows == input rows, all ``ok``, lines answered == rows, no
job created twice: one per display name); quota errors surfaced to the user (target 0: the call
returns normally); the 429s the scheduler met; the share of samples, while work remained (before
the last job was created), in which the queue was full: three quarters of the token ceiling
enqueued or the job cap reached (target >= 90 %); the child's peak RSS at N and at N / 4 (target:
flat, <= 1.3x); the child's CPU per million rows.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Any

from . import Row
from .pipeline import vm_hwm, without_cache
from .streaming import ROOT, write_input

SECTION = "scheduler"
MODEL = "gemini-2.5-flash"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sched-rows", type=int, default=1_000_000, help="scheduler: rows (default 1,000,000)"
    )
    parser.add_argument(
        "--sched-windows", type=int, default=20, help="scheduler: windows the limits force (20)"
    )
    parser.add_argument(
        "--sched-jobs", type=int, default=20, help="scheduler: concurrent-job cap (default 20)"
    )
    parser.add_argument(
        "--sched-job-seconds",
        type=float,
        default=2.0,
        help="scheduler: seconds every job runs on the emulator (default 2)",
    )


def _child(spec: dict[str, Any]) -> int:
    """The measured process: one streaming call under gembatch's defaults."""
    import gembatch

    options = gembatch.Options(poll_interval=0.1, max_poll_interval=0.25)
    started = time.time()
    error = ""
    try:
        gembatch.batch_generate_parquet(
            spec["input"],
            spec["output"],
            prompt="prompt",
            config=gembatch.Config(model=MODEL),
            job_dir=spec["job_dir"],
            options=options,
            progress=False,
            **without_cache(),
        )
    except Exception as exc:  # noqa: BLE001 - reported, not raised: the parent counts it
        error = f"{type(exc).__name__}: {exc}"
    usage = resource.getrusage(resource.RUSAGE_SELF)
    report = {
        "started": started,
        "ended": time.time(),
        "cpu": usage.ru_utime + usage.ru_stime,
        "vm_hwm": vm_hwm(),
        "error": error,
    }
    print(json.dumps(report), flush=True)
    return 0


def _tokens(path: Path) -> int:
    import polars as pl

    import gembatch

    estimate = gembatch.estimate(
        pl.scan_parquet(path), "prompt", config=gembatch.Config(model=MODEL, max_output_tokens=1)
    )
    return int(estimate.input_tokens)


def _one(n: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """One run of ``n`` rows under limits scaled to it; the figures."""
    import subprocess

    import polars as pl

    from gembatch.emulator import Delays, Emulator, Limits

    source = work / f"in-{n}.parquet"
    if not source.exists():
        write_input(source, n)
    total = _tokens(source)
    ceiling = max(1, total // args.sched_windows)
    limits = dataclasses.replace(
        Limits.off(),
        max_concurrent_jobs=args.sched_jobs,
        enqueued_tokens={"*": ceiling},
        batch_retry_delay_s=1.0,
    )
    samples: list[tuple[float, int, int, int]] = []
    with Emulator(limits=limits, faults=[Delays(running_s=args.sched_job_seconds)]) as emu:
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                stats = emu.stats()
                enqueued = sum((stats.get("enqueued_tokens") or {}).values())
                samples.append(
                    (time.time(), enqueued, stats["concurrent_jobs"], stats["batches_created"])
                )
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        job_dir, output = work / f"run-{n}", work / f"out-{n}.parquet"
        spec = {"input": str(source), "output": str(output), "job_dir": str(job_dir)}
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.scheduler", "--child", json.dumps(spec)],
            env={**os.environ, **emu.environ()},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=7200,
            check=False,
        )
        stop.set()
        sampler.join()
        stats = emu.stats()
        batches = emu.batches()
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"the scheduler child failed: {done.stderr[-3000:]}")
    report = json.loads(lines[-1])
    out = pl.read_parquet(output, columns=["id", "gemini_status"]) if output.exists() else None
    manifest = json.loads((job_dir / "run.json").read_text())
    shards = len(manifest["shards"])
    last_create = next(
        (t for t, _, _, created in samples if created >= stats["batches_created"]), None
    )
    busy = [s for s in samples if last_create is None or s[0] < last_create]
    busy = [s for s in busy if s[0] >= report["started"]]
    # full: three quarters of the token ceiling enqueued (the scheduler's shards are at most a
    # quarter of its budget) or the job cap reached
    full = [s for s in busy if s[1] >= 0.75 * ceiling or s[2] >= args.sched_jobs]
    return {
        "n": n,
        "rows_ok": 0 if out is None else int((out["gemini_status"] == "ok").sum()),
        "rows": 0 if out is None else out.height,
        "unique": 0 if out is None else out["id"].n_unique(),
        "lines": stats["lines_processed"],
        "created": stats["batches_created"],
        "names": len({b["metadata"]["displayName"] for b in batches}),
        "shards": shards,
        "error": report["error"],
        "429s": sum(stats["quota_429s"].values()),
        "full_share": len(full) / len(busy) if busy else 0.0,
        "hwm": report["vm_hwm"],
        "cpu": report["cpu"],
        "wall": report["ended"] - report["started"],
        "windows": total / ceiling,
        "ceiling": ceiling,
        "budget": manifest.get("budget", {}),
    }


def run(args: argparse.Namespace) -> list[Row]:
    work: Path = args.workdir_for
    n = args.sched_rows
    big = _one(n, args, work)
    small = _one(max(1, n // 4), args, work)
    once = (
        big["rows"] == n
        and big["rows_ok"] == n
        and big["unique"] == n
        and big["lines"] == n
        and big["created"] == big["names"]
    )
    note = (
        f"{n:,} rows, {big['shards']} shards, ~{big['windows']:.0f} windows of the token ceiling, "
        f"{big['wall']:.0f} s; token ceiling {big['ceiling']:,}; budget learned: {big['budget']}"
    )
    return [
        Row(
            SECTION,
            "every row back once",
            big["rows_ok"],
            "rows ok",
            "input rows",
            n,
            target="all, once (lines answered == rows, no job twice)",
            ok=once,
            note=note + f"; lines answered {big['lines']:,}, jobs {big['created']} "
            f"({big['names']} names)",
            share=True,
        ),
        Row(
            SECTION,
            "quota errors surfaced to the user",
            1 if big["error"] else 0,
            "errors",
            target="0",
            ok=not big["error"],
            note=big["error"] or "the call returned normally",
        ),
        Row(SECTION, "429s the scheduler met", big["429s"], "429s", note="information"),
        Row(
            SECTION,
            "queue full while work remained",
            100 * big["full_share"],
            "% of samples",
            target=">= 90 %",
            ok=big["full_share"] >= 0.9,
        ),
        Row(
            SECTION,
            f"client peak RSS at {n:,} rows",
            big["hwm"] / 2**20,
            "MiB",
            f"at {small['n']:,} rows",
            small["hwm"] / 2**20,
            higher_is_better=False,
            target="<= 1.3x (flat)",
            ok=big["hwm"] <= 1.3 * small["hwm"],
        ),
        Row(
            SECTION,
            "client CPU per million rows",
            big["cpu"] / (n / 1e6),
            "s",
            note=f"{big['cpu']:.1f} s CPU in all (imports included)",
        ),
    ]


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        sys.exit(_child(json.loads(sys.argv[2])))
