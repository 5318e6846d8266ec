"""Request hashing throughput (issue #6): content addresses of 1 M request lines.

Ours: :func:`gembatch._build.hashing.request_hashes` (sha256 via the ``polars-hash`` plugin,
vectorised). Baselines in the same run: the same digests with a per-row ``hashlib.sha256`` loop, and
building the lines themselves (information: what the content address adds to the prepare step). The
issue asks for the rows/s and for hashing that is vectorised, not a Python loop per row: the row is
marked ok when the digests equal the loop's and come at least ``LOOP_FACTOR`` times as fast.
"""

from __future__ import annotations

import argparse
import hashlib

import polars as pl

from gembatch._build import hashing
from gembatch._build.lines import build_generate_lines

from . import Row, best_of
from .kernels import STATIC, make_rows

SECTION = "hashing"
LOOP_FACTOR = 5  # both cores and no per-row Python, against one core running a C hash per call


def run(args: argparse.Namespace) -> list[Row]:
    n, repeat = args.rows, args.repeat
    rows = make_rows(n)
    lines = build_generate_lines(
        rows, prompt=pl.col("prompt"), keys=pl.int_range(pl.len()).cast(pl.Utf8), static=STATIC
    )["line"]
    prefix = hashing.hash_prefix("generate", "gemini-2.5-flash")
    hashed, ours = best_of(
        lambda: hashing.request_hashes(lines, kind="generate", model="gemini-2.5-flash"), repeat
    )

    def loop() -> list[str]:
        sha = hashlib.sha256
        return [sha((prefix + v).encode()).hexdigest() for v in lines]

    looped, theirs = best_of(loop, 1)
    same = ours.to_list() == theirs
    built, _ = best_of(
        lambda: build_generate_lines(
            rows,
            prompt=pl.col("prompt"),
            keys=pl.int_range(pl.len()).cast(pl.Utf8),
            static=STATIC,
            hash_prefix=prefix,
        ),
        repeat,
    )
    plain, _ = best_of(
        lambda: build_generate_lines(
            rows, prompt=pl.col("prompt"), keys=pl.int_range(pl.len()).cast(pl.Utf8), static=STATIC
        ),
        repeat,
    )
    mode = (
        "polars-hash plugin"
        if hashing.vectorised()
        else "hashlib fallback (install gembatch[fast])"
    )
    note = (
        f"{n:,} lines; {mode}; digests identical to the loop: {'yes' if same else 'NO'}; "
        f"ours used {hashed.cores_used:.1f} cores"
    )
    return [
        Row(
            SECTION,
            "request hashes (sha256)",
            n / hashed.seconds,
            "rows/s",
            "hashlib loop",
            n / looped.seconds,
            target=f">= {LOOP_FACTOR}x",
            ok=same and looped.seconds >= LOOP_FACTOR * hashed.seconds,
            note=note,
        ),
        Row(
            SECTION,
            "build lines + hashes",
            n / built.seconds,
            "rows/s",
            "build lines only",
            n / plain.seconds,
            note="the prepare step builds both in one pass",
        ),
    ]
