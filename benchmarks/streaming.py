"""Peak memory of the streaming path: ``batch_generate_parquet`` at N and at a large size.

A Parquet input of N rows (``id`` = row position, a ~200-character ``prompt``) is generated in row
groups (never held whole in memory). The emulator runs in a process of its own; the gembatch client
runs ``gembatch.batch_generate_parquet(input, output_dir, ...)`` in a child process (``python -m
benchmarks.streaming --child ...``) whose peak resident set is measured: the child reports its own
``VmHWM`` (/proc/self/status: the kernel's high-water mark of its address space, exact) when the
call has returned, and the parent samples its RSS with psutil every 50 ms as a cross-check.
(``ru_maxrss`` of the child, from ``wait4``/``RUSAGE_CHILDREN``, is not used: on Linux a child
started from this process begins with this process's high-water mark.) Rows are keyed by row
position (gembatch's default key).

Targets (issue #4): peak RSS at the large size <= 1.3x the peak at N, and under 1 GiB. The output
row count must equal the input's, every row ``ok`` and in input order. The child's import of polars,
pyarrow and google-genai alone is measured too (the floor no streaming can go under).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from . import Row
from .kernels import _texts
from .pipeline import (
    EmulatorProcess,
    RssTimeline,
    Stages,
    answered_ok,
    run_sampled,
    shard_events,
    stage_times,
    states_at,
    vm_hwm,
    without_cache,
)

SECTION = "streaming"
ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stream-rows-large",
        type=int,
        default=10_000_000,
        help="streaming: the large size, compared with --rows (default 10,000,000)",
    )
    parser.add_argument(
        "--stream-shard-rows",
        type=int,
        default=None,
        help="streaming: Options.shard_max_rows (default: gembatch's own default, "
        "what a user gets; the client's peak memory follows the shard size)",
    )
    parser.add_argument(
        "--stream-timeout",
        type=float,
        default=3600.0,
        help="streaming: seconds before a child run is killed (default 3600)",
    )


def write_input(path: Path, n: int, group: int = 200_000) -> int:
    """``n`` rows in row groups of ``group``, generated group by group; returns the file size."""
    writer: pq.ParquetWriter | None = None
    for start in range(0, n, group):
        m = min(group, n - start)
        table = pl.DataFrame(
            {
                "id": pl.int_range(start, start + m, eager=True),
                "prompt": _texts(m, 40, 200, seed=start),
            }
        ).to_arrow()
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema, compression="zstd")
        writer.write_table(table, row_group_size=group)
    assert writer is not None
    writer.close()
    return path.stat().st_size


def _child(spec: dict[str, Any]) -> int:
    """The measured process: one streaming call, nothing else (its RSS sampled on a thread)."""
    import gembatch

    shard_rows = {} if spec["shard_rows"] is None else {"shard_max_rows": spec["shard_rows"]}
    options = gembatch.Options(**shard_rows, poll_interval=0.1, max_poll_interval=0.5)
    with RssTimeline() as timeline:
        started = time.time()
        gembatch.batch_generate_parquet(
            spec["input"],
            spec["output"],
            prompt="prompt",
            config=gembatch.Config(model="gemini-2.5-flash"),
            job_dir=spec["job_dir"],
            options=options,
            progress=False,
            **without_cache(),
        )
        ended = time.time()
    Path(spec["rss_log"]).write_text(json.dumps(timeline.samples))
    print(json.dumps({"started": started, "ended": ended, "vm_hwm": vm_hwm()}), flush=True)
    return 0


def _default_shard_rows() -> int:
    import gembatch

    return int(gembatch.Options().shard_max_rows)


def _import_floor() -> int:
    """VmHWM of a child that only imports what the client imports."""
    code = (
        "import gembatch, polars, pyarrow.parquet, pyarrow.json, google.genai\n"
        "from benchmarks.pipeline import vm_hwm\nprint(vm_hwm())"
    )
    _, _, _, out = run_sampled([sys.executable, "-c", code], env={}, cwd=ROOT, timeout=120)
    return int(out.split()[-1])


def _progress(job_dir: Path, rows: int, elapsed: float) -> None:
    states: Counter[str] = Counter()
    for events in shard_events(job_dir) if (job_dir / "shards").exists() else []:
        latest = max(events, key=lambda k: events[k]) if events else "preparing"
        states[latest] += 1
    shown = ", ".join(f"{k}: {v}" for k, v in sorted(states.items())) or "preparing shards"
    print(f"  [streaming] {rows:,} rows, {elapsed:.0f} s: {shown}", flush=True)


def _verify(output: Path, n: int) -> tuple[int, int, bool]:
    """(output rows, rows answered ok by the batch job itself, ids in input order)."""
    files = sorted(output.glob("*.parquet"))
    rows = sum(pq.read_metadata(f).num_rows for f in files)
    scan = pl.scan_parquet(files)
    got = (
        scan.select(
            answered_ok(scan.collect_schema()).sum().alias("ok"),
            (pl.col("id") == pl.int_range(pl.len(), dtype=pl.Int64)).all().alias("ordered"),
        )
        .collect()
        .row(0)
    )
    return rows, int(got[0]), bool(got[1])


def _where(
    samples: list[tuple[float, int]], started: float, stages: Stages, job_dir: Path
) -> dict[str, Any]:
    """Which stage held the memory: the peak while preparing shards (until every shard is written)
    and while running them (upload, poll, fetch, join, write), the least RSS between the two (what
    stays resident once prepared), what the shards were doing at the overall peak and, when a shard
    was being joined then, the RSS when its join began."""
    timeline = RssTimeline()
    timeline.samples = samples
    at, peak = timeline.peak()
    events = list(shard_events(job_dir))
    first_join = min((e["fetched"] for e in events if "fetched" in e), default=float("inf"))
    between = [rss for t, rss in samples if stages.prepared_at <= t <= first_join]
    joining = [
        e for e in events if e.get("fetched", float("inf")) <= at < e.get("joined", float("inf"))
    ]
    before = [rss for t, rss in samples if joining and t <= joining[0]["fetched"]]
    return {
        "at": at - started,
        "peak_sampled": peak,
        "first": samples[0][1] if samples else 0,
        "prepare_peak": timeline.peak(0, stages.prepared_at)[1],
        "run_peak": timeline.peak(stages.prepared_at)[1],
        "resident_after_prepare": min(between) if between else 0,
        "join_began_at": before[-1] if before else None,
        "states": ", ".join(f"{k} {v}" for k, v in sorted(states_at(job_dir, at).items())),
        "phase": "prepare" if at <= stages.prepared_at else "run",
    }


def _one(n: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    base = work / f"n{n}"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    source = base / "input.parquet"
    t0 = time.perf_counter()
    size = write_input(source, n)
    print(
        f"  [streaming] {n:,} rows: input written ({size / MiB:,.0f} MiB) in "
        f"{time.perf_counter() - t0:.0f} s",
        flush=True,
    )
    job_dir = base / "run"
    spec = {
        "input": str(source),
        "output": str(base / "out"),
        "job_dir": str(job_dir),
        "shard_rows": args.stream_shard_rows,
        "rss_log": str(base / "rss.json"),
    }
    with EmulatorProcess(base / "emulator") as emulator:
        code, wall, sampled, stdout = run_sampled(
            [sys.executable, "-m", "benchmarks.streaming", "--child", json.dumps(spec)],
            env=emulator.env,
            cwd=ROOT,
            timeout=args.stream_timeout,
            on_tick=lambda elapsed: _progress(job_dir, n, elapsed),
        )
    if code != 0:
        raise RuntimeError(f"the streaming child exited with {code} at {n:,} rows")
    report = json.loads(stdout.strip().splitlines()[-1])
    peak = int(report["vm_hwm"])
    rows, ok, ordered = _verify(base / "out", n)
    stages = stage_times(job_dir)
    where = _where(json.loads((base / "rss.json").read_text()), report["started"], stages, job_dir)
    print(
        f"  [streaming] {n:,} rows: {wall:.0f} s, peak RSS {peak / MiB:,.0f} MiB "
        f"(sampled {sampled / MiB:,.0f} MiB); {stages.describe()}",
        flush=True,
    )
    print(f"  [streaming] {n:,} rows: {_memory_note(where)}", flush=True)
    shutil.rmtree(base, ignore_errors=True)  # several GB at 10 M rows
    return {
        "n": n,
        "wall": wall,
        "peak": peak,
        "sampled": sampled,
        "rows": rows,
        "ok": ok,
        "ordered": ordered,
        "shards": stages.shards,
        "input_mb": size / MiB,
        "where": where,
    }


def _memory_note(where: dict[str, Any]) -> str:
    note = (
        f"RSS after imports {where['first'] / MiB:,.0f} MiB; peak while preparing shards "
        f"{where['prepare_peak'] / MiB:,.0f} MiB; least RSS between prepare and the first join "
        f"{where['resident_after_prepare'] / MiB:,.0f} MiB; peak while running the shards (upload, "
        "poll, "
        f"fetch, join, write) {where['run_peak'] / MiB:,.0f} MiB; the peak sample "
        f"({where['peak_sampled'] / MiB:,.0f} MiB) came {where['at']:.0f} s in, during "
        f"{where['phase']}, "
        f"shards then: {where['states']}"
    )
    if where["join_began_at"] is not None:
        note += f"; RSS when that shard's join began: {where['join_began_at'] / MiB:,.0f} MiB"
    return note


def run(args: argparse.Namespace) -> list[Row]:
    work = Path(args.workdir_for)
    small_n, large_n = args.rows, args.stream_rows_large
    floor = _import_floor()
    results = [_one(n, args, work) for n in (small_n, large_n)]
    small, large = results
    out: list[Row] = []
    for r in results:
        same = r["rows"] == r["n"] and r["ok"] == r["n"] and r["ordered"]
        out.append(
            Row(
                SECTION,
                f"output rows, all ok and in order ({r['n']:,} rows)",
                r["rows"],
                "rows",
                "input rows",
                r["n"],
                target="equal, all ok, in order",
                ok=same,
                note=f"{r['ok']:,} answered ok by the batch jobs (none from a cache); ids in input "
                f"order: {'yes' if r['ordered'] else 'NO'}",
            )
        )
    shard_rows = args.stream_shard_rows or _default_shard_rows()
    out.append(
        Row(
            SECTION,
            f"batch_generate_parquet end to end ({large_n:,} rows)",
            large_n / large["wall"],
            "rows/s",
            f"the same at {small_n:,} rows",
            small_n / small["wall"],
            note=f"{large['wall']:.0f} s and {small['wall']:.0f} s wall, {large['shards']} and "
            f"{small['shards']} shards of <= {shard_rows:,} rows; the emulator (in "
            f"another process) answers the lines and shares the CPUs",
        )
    )
    gib = 1024 * MiB
    out.append(
        Row(
            SECTION,
            f"peak RSS of the client ({small_n:,} rows)",
            small["peak"] / MiB,
            "MiB",
            "importing gembatch's dependencies alone",
            floor / MiB,
            higher_is_better=False,
            target="< 1 GiB",
            ok=small["peak"] < gib,
            note="VmHWM reported by the child; psutil samples peaked at "
            f"{small['sampled'] / MiB:,.0f} MiB; " + _memory_note(small["where"]),
        )
    )
    ratio = large["peak"] / small["peak"]
    out.append(
        Row(
            SECTION,
            f"peak RSS of the client ({large_n:,} rows)",
            large["peak"] / MiB,
            "MiB",
            f"peak RSS at {small_n:,} rows",
            small["peak"] / MiB,
            higher_is_better=False,
            target="<= 1.3x; < 1 GiB",
            ok=ratio <= 1.3 and large["peak"] < gib,
            note=f"ratio {ratio:.2f}; psutil samples peaked at {large['sampled'] / MiB:,.0f} MiB; "
            + _memory_note(large["where"]),
        )
    )
    return out


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        sys.exit(_child(json.loads(sys.argv[2])))
    sys.exit("usage: python -m benchmarks --only streaming (this module is a section of it)")
