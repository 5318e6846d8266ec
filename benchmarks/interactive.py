"""Interactive mode: rows per second against the ideal, concurrency / latency.

An emulator in this process answers every generateContent after ``--interactive-latency`` seconds
(default 0.1; its quotas off); ``df.gemini.batch_generate(..., mode="interactive")`` sends
``--interactive-rows`` rows (default 800) with ``Options(concurrency=C)`` calls in flight, for C in
``--interactive-concurrency`` (default 4,16,32), and the client's per-minute limits raised out of
the way (what is measured is the sender, not a tier's limits). Rows/s is over the whole call
(prepare, send, join); the ideal is C / latency. Target: >= 80 % of the ideal at every C.
Correctness: every row ``ok``, answered by its own request, ``gemini_origin`` interactive.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from typing import Any

import polars as pl

from . import Row

SECTION = "interactive"
TARGET = 0.8


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--interactive-rows", type=int, default=800, help="rows per interactive run (default 800)"
    )
    parser.add_argument(
        "--interactive-latency",
        type=float,
        default=0.1,
        help="seconds the emulator takes per call (default 0.1)",
    )
    parser.add_argument(
        "--interactive-concurrency",
        default="4,16,32",
        help="comma-separated calls in flight to measure (default 4,16,32)",
    )


def run(args: Any) -> list[Row]:
    import gembatch
    from gembatch.emulator import Emulator, Limits

    n, latency = args.interactive_rows, args.interactive_latency
    levels = [int(c) for c in str(args.interactive_concurrency).split(",") if c.strip()]
    df = pl.DataFrame(
        {"id": [f"r{i:06d}" for i in range(n)], "prompt": [f"Review {i}: good" for i in range(n)]}
    )
    rows: list[Row] = []
    limits = dataclasses.replace(Limits.off(), latency_s=latency)
    saved = {k: os.environ.get(k) for k in ("GOOGLE_GEMINI_BASE_URL", "GEMINI_API_KEY")}
    with Emulator(limits=limits) as emu:
        os.environ.update(emu.environ())
        try:
            for level in levels:
                options = gembatch.Options(
                    concurrency=level,
                    requests_per_minute=10**9,
                    tokens_per_minute=10**12,
                    poll_interval=0.05,
                )
                started = time.perf_counter()
                out = df.gemini.batch_generate(
                    "prompt",
                    config=gembatch.Config(model="gemini-2.5-flash"),
                    key="id",
                    mode="interactive",
                    options=options,
                    job_dir=args.workdir_for / f"c{level}",
                    progress=False,
                    cache=False,
                )
                seconds = time.perf_counter() - started
                quoted = out["gemini_text"].str.extract(r'^Answer to "(.*?)":', 1)
                correct = bool(
                    (out["gemini_status"] == "ok").all()
                    and (quoted == out["prompt"]).all()
                    and (out["gemini_origin"] == "interactive").all()
                )
                rate, ideal = n / seconds, level / latency
                rows.append(
                    Row(
                        SECTION,
                        f"rows/s, {level} calls in flight, {latency:g} s a call",
                        rate,
                        "rows/s",
                        "ideal (concurrency / latency)",
                        ideal,
                        target=f">= {TARGET:.0%} of ideal",
                        ok=rate >= TARGET * ideal,
                        note=f"{n:,} rows in {seconds:.2f} s; answers ok and own: "
                        + ("yes" if correct else "NO"),
                        share=True,
                    )
                )
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    return rows
