"""End to end: an N-row DataFrame through ``batch_generate`` against the emulator (zero model
latency), time per stage, and gembatch's own stages against the pure kernels measured in the same
run.

The emulator runs in a process of its own (``--shuffle-output``: results out of order, as the
service may send them); the client runs in this process. Stage times come from the run directory's
journal (each shard's ``state.json`` records every state change with its time), not from
instrumented code:

* build: the call starts -> the last shard is ``prepared`` (validation, request lines,
``requests.jsonl``
  and ``input.parquet`` of every shard, hashes, manifest);
* upload, create: spans across shards (they run in parallel, ``Options.upload_concurrency``);
* poll wait: ``submitted`` -> ``finished``, a span: the emulator answering the lines (and HTTP
polls);
* download: ``finished`` -> ``fetched``, summed over shards (the runner's main thread);
* parse + join + write shard: ``fetched`` -> ``joined``, summed over shards. The same work is
replayed
  on the same files after the run to split it into parse + join (``_results.join.join_shard``) and
  the write of the shard's ``output.parquet``;
* assemble: the last journal record -> the call returns (``BatchRun.result()`` reads the shard
  outputs back and concatenates them).

gembatch's own stages are build + parse/join/write + assemble (upload, create, poll, download and
delete are HTTP and the emulator). Target (issue #4): no more than 3x the sum of the two kernels of
:mod:`benchmarks.kernels` (build + write JSONL; read + parse + join) at the same N, measured here.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl

from . import Row, best_of
from .kernels import make_results, make_rows, ours_build, ours_parse_join
from .pipeline import EmulatorProcess, answered_ok, stage_times, without_cache

SECTION = "e2e"


def _replay(job_dir: Path) -> tuple[float, float]:
    """Seconds of parse + join and of writing the output, over every shard, redone after the run."""
    from gembatch._results.join import join_shard
    from gembatch._state.journal import Journal
    from gembatch._storage import Directory

    journal = Journal.open(Directory(str(job_dir)))
    prefix = journal.manifest.options.get("prefix", "gemini_")
    parse = write = 0.0
    for shard in journal.shards:
        t0 = time.perf_counter()
        out = join_shard(journal, shard, prefix)[0]
        t1 = time.perf_counter()
        journal.store.write_parquet(shard.path("replay.parquet"), out, compression="snappy")
        t2 = time.perf_counter()
        parse, write = parse + (t1 - t0), write + (t2 - t1)
        journal.store.remove(shard.path("replay.parquet"))
    return parse, write


def _pipeline(rows: pl.DataFrame, work: Path) -> dict[str, Any]:
    import gembatch

    job_dir = work / "run"
    shutil.rmtree(job_dir, ignore_errors=True)
    options = gembatch.Options(poll_interval=0.1, max_poll_interval=0.5)
    with EmulatorProcess(work / "emulator") as emulator:
        saved = {k: os.environ.get(k) for k in emulator.env}
        os.environ.update(emulator.env)
        try:
            started = time.time()
            out = gembatch.batch_generate(
                rows,
                "prompt",
                config=gembatch.Config(model="gemini-2.5-flash"),
                job_dir=str(job_dir),
                options=options,
                progress=False,
                **without_cache(),
            )
            ended = time.time()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    assert isinstance(out, pl.DataFrame)
    checks = {
        "rows": out.height,
        "ok": int(out.select(answered_ok(out.schema).sum()).item()),
        "ordered": bool(out["id"].equals(rows["id"])),
    }
    del out
    stages = stage_times(job_dir)
    results_mb = sum(f.stat().st_size for f in job_dir.glob("shards/*/results.jsonl")) / 1e6
    parse, write = _replay(job_dir)
    shutil.rmtree(job_dir, ignore_errors=True)
    return {
        "started": started,
        "ended": ended,
        "stages": stages,
        "replay_parse": parse,
        "replay_write": write,
        "results_mb": results_mb,
        **checks,
    }


def run(args: argparse.Namespace) -> list[Row]:
    n, repeat, work = args.rows, args.repeat, Path(args.workdir_for)
    rows = make_rows(n)
    # the kernels, same N, same process, same run
    build_path, results_path = work / "kernel-requests.jsonl", work / "kernel-results.jsonl"
    built, _ = best_of(
        lambda: ours_build(rows, build_path),
        repeat,
        before=lambda: build_path.unlink(missing_ok=True),
    )
    build_path.unlink(missing_ok=True)
    kernel_mb = make_results(n, results_path, shuffle=True) / 1e6
    parsed, _ = best_of(partial(ours_parse_join, rows, results_path), repeat)
    results_path.unlink(missing_ok=True)
    kernels = built.seconds + parsed.seconds

    got = _pipeline(rows, work)
    stages = got["stages"]
    total = got["ended"] - got["started"]
    build = stages.prepared_at - got["started"]
    joining = stages.sums.get("parse + join + write shard", 0.0)
    assemble = got["ended"] - stages.ended_at
    own = build + joining + assemble
    correct = got["rows"] == n and got["ok"] == n and got["ordered"]
    out = [
        Row(
            SECTION,
            "output rows, all ok and in order",
            got["rows"],
            "rows",
            "input rows",
            n,
            target="equal, all ok, in order",
            ok=correct,
            note=f"{n:,} rows, {stages.shards} shards; rows answered ok by the batch jobs (none "
            "from a "
            f"cache): {got['ok']:,}; in input order: {'yes' if got['ordered'] else 'NO'}; emulator "
            "in "
            f"another process on the same CPUs, results shuffled",
        ),
        Row(
            SECTION,
            "batch_generate end to end (total)",
            total,
            "s",
            "sum of the two kernels",
            kernels,
            higher_is_better=False,
            note="the rest of the time is HTTP and the emulator (below)",
        ),
    ]
    kernel = {
        "build": ("kernel: build + write JSONL", built.seconds),
        "parse": ("kernel: read + parse + join", parsed.seconds),
    }
    # (name, seconds, compared with, what the stage is)
    timeline: list[tuple[str, float, tuple[str, float], str]] = [
        (
            "build (prepare until every shard is written)",
            build,
            kernel["build"],
            "validation, request lines, requests.jsonl + input.parquet per shard, manifest",
        )
    ]
    timeline += [
        (f"{name} (span)", seconds, ("total", total), "HTTP + emulator")
        for name, seconds in stages.spans.items()
        if name in ("upload", "create", "poll wait (emulator)")
    ]
    timeline += [
        (f"{name} (sum over shards)", stages.sums[name], ("total", total), "HTTP + emulator")
        for name in ("download", "delete remote files")
        if name in stages.sums
    ]
    timeline += [
        (
            "parse + join + write shard (sum over shards)",
            joining,
            kernel["parse"],
            "in the run; split by replaying the same work on the same files after it (next two "
            "rows)",
        ),
        (
            "  of which parse + join (replayed)",
            got["replay_parse"],
            kernel["parse"],
            (
                f"join_shard on the emulator's result lines: {got['results_mb']:,.0f} MB "
                f"(the kernel's synthetic lines: {kernel_mb:,.0f} MB)"
            ),
        ),
        ("  of which write output.parquet (replayed)", got["replay_write"], ("total", total), ""),
        (
            "assemble the output (result(): read shard outputs, concat)",
            assemble,
            ("total", total),
            "",
        ),
    ]
    for name, seconds, (base, base_seconds), why in timeline:
        out.append(
            Row(
                SECTION,
                f"stage: {name}",
                seconds,
                "s",
                base,
                base_seconds,
                higher_is_better=False,
                note=why,
                share=base == "total",
            )
        )
    out.append(
        Row(
            SECTION,
            "gembatch's own stages (build + parse/join/write + assemble)",
            own,
            "s",
            "sum of the two kernels",
            kernels,
            higher_is_better=False,
            target="<= 3x",
            ok=own <= 3 * kernels,
            note=f"{own / kernels:.2f}x; kernels: build + write JSONL {built.seconds:.2f} s, "
            f"read + parse + join {parsed.seconds:.2f} s (best of {repeat}); stages overlap "
            f"across shards, so they do not add up to the total",
        )
    )
    return out
