"""gembatch benchmarks: ``python -m benchmarks [--rows N] [--only SECTION[,SECTION]]``.

Each section is a module of this package with ``run(args) -> list[Row]`` (and optionally
``add_arguments(parser)``), listed in ``benchmarks.__main__.SECTIONS``. Every figure is reported
next to a baseline measured in the same run, so the table means something on any machine. The shared
pieces live here: :class:`Row`, :func:`best_of` and :func:`print_table`.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["Row", "Timing", "best_of", "format_table", "machine_note", "print_table"]

T = TypeVar("T")


@dataclass(frozen=True)
class Row:
    """One line of the table: our figure, its baseline, and the target it must meet.

    ``value`` and ``baseline_value`` are in ``unit``; ``higher_is_better`` says which way is good
    (rows/s: True; seconds or MB of memory: False). ``ok`` is decided by the section (None: no
    target: the row is information, shown as ``target: none``). ``share``: the ratio is shown as the
    value's share of the baseline (a stage of a total) rather than as "x better/worse".
    """

    section: str
    measure: str
    value: float
    unit: str
    baseline: str = ""
    baseline_value: float | None = None
    higher_is_better: bool = True
    target: str = ""
    ok: bool | None = None
    note: str = ""
    share: bool = False

    @property
    def factor(self) -> float | None:
        """How many times better than the baseline (> 1: better; < 1: worse)."""
        if self.baseline_value is None or not self.value or not self.baseline_value:
            return None
        ratio = self.value / self.baseline_value
        return ratio if self.higher_is_better else 1 / ratio


@dataclass(frozen=True)
class Timing:
    """Best wall-clock seconds of several runs, with the CPU seconds of that run."""

    seconds: float
    cpu_seconds: float
    runs: int

    @property
    def cores_used(self) -> float:
        return self.cpu_seconds / self.seconds if self.seconds else 0.0


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def best_of(
    fn: Callable[[], T], repeat: int, *, before: Callable[[], Any] | None = None
) -> tuple[Timing, T]:
    """Run ``fn`` ``repeat`` times (``before`` untimed ahead of each run); the fastest run and its
    result."""
    best: tuple[float, float] | None = None
    result: Any = None
    for _ in range(max(1, repeat)):
        if before is not None:
            before()
        cpu0, t0 = _cpu(), time.perf_counter()
        out = fn()
        wall, cpu = time.perf_counter() - t0, _cpu() - cpu0
        if best is None or wall < best[0]:
            best, result = (wall, cpu), out
        del out
    assert best is not None
    return Timing(best[0], best[1], max(1, repeat)), result


def _number(value: float, unit: str) -> str:
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit and unit.endswith("/s") and not unit.startswith(("MB", "GB")):
            return f"{value / limit:,.2f} {suffix}{unit}"
    if abs(value) >= 100:
        return f"{value:,.0f} {unit}"
    return f"{value:,.3g} {unit}"


def _factor(row: Row) -> str:
    if row.share and row.baseline_value:
        return f"{row.value / row.baseline_value:.0%} of it"
    factor = row.factor
    if factor is None:
        return "-"
    return f"{factor:,.2f}x better" if factor >= 1 else f"{1 / factor:,.2f}x worse"


def format_table(rows: Sequence[Row]) -> str:
    """The rows as a plain-text table (one line per row, notes underneath)."""
    header = ("section", "measure", "ours", "baseline", "vs baseline", "target", "met")
    cells = [header]
    notes = []
    for row in rows:
        baseline = (
            "-"
            if row.baseline_value is None
            else f"{row.baseline}: {_number(row.baseline_value, row.unit)}"
        )
        ok = "-" if row.ok is None else ("ok" if row.ok else "MISS")
        target = row.target or "none (information)" if row.ok is None else row.target
        cells.append(
            (
                row.section,
                row.measure,
                _number(row.value, row.unit),
                baseline,
                _factor(row),
                target,
                ok,
            )
        )
        if row.note:
            notes.append(f"  [{row.section}] {row.measure}: {row.note}")
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines + (["", "notes:", *notes] if notes else []))


def print_table(rows: Sequence[Row]) -> None:
    print(format_table(rows), flush=True)


def machine_note() -> str:
    """CPUs, thread pool and load, to read the figures against."""
    import platform

    import polars as pl

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"python {platform.python_version()}, polars {pl.__version__}, {os.cpu_count()} CPUs, "
        f"polars threads {pl.thread_pool_size()}, load average {load}"
    )
