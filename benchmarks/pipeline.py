"""Shared pieces of the pipeline sections (``streaming``, ``e2e``); not a section itself.

* :class:`EmulatorProcess`: ``python -m gembatch.emulator --port 0`` in its own process, so the
process
  being measured is only the gembatch client (its CPU still competes on a small machine);
* :func:`stage_times`: the time of each stage of a finished run, read from the journal's shard
  histories (every state change is recorded with its time), without instrumenting any code;
* :class:`RssTimeline` and :func:`states_at`: a process's resident set sampled over time, and what
  every shard was doing at a given moment (to tell which stage holds the memory at the peak).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, final

__all__ = [
    "EmulatorProcess",
    "RssTimeline",
    "Stages",
    "answered_ok",
    "run_sampled",
    "stage_times",
    "states_at",
    "vm_hwm",
    "without_cache",
]

_TERMINAL = ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED")


@final
class EmulatorProcess:
    """The emulator in a subprocess, for ``with``: sets nothing globally, gives ``env`` for
    clients."""

    def __init__(
        self, data_dir: Path, *, shuffle_output: bool = True, workers: int | None = None
    ) -> None:
        self.data_dir = data_dir
        self.args = [
            sys.executable,
            "-m",
            "gembatch.emulator",
            "--port",
            "0",
            "--data-dir",
            str(data_dir),
        ]
        if shuffle_output:  # the service does not keep the input order either
            self.args.append("--shuffle-output")
        if workers is not None:
            self.args += ["--workers", str(workers)]
        self.proc: subprocess.Popen[str] | None = None
        self.base_url = ""

    def __enter__(self) -> EmulatorProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.data_dir.parent / f"{self.data_dir.name}.log", "w")
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=self._log, text=True)
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("export GOOGLE_GEMINI_BASE_URL="):
                self.base_url = line.split("=", 1)[1].strip()
                break
        if not self.base_url:
            self.__exit__(None, None, None)
            raise RuntimeError(f"the emulator did not start (see {self._log.name})")
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def env(self) -> dict[str, str]:
        """Environment variables pointing the google-genai SDK (and so gembatch) at this
        emulator."""
        return {"GOOGLE_GEMINI_BASE_URL": self.base_url, "GEMINI_API_KEY": "emulator-key"}

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()


def _time(stamp: str) -> float:
    return dt.datetime.fromisoformat(stamp).timestamp()


def _events(history: list[list[str]]) -> dict[str, float]:
    """First time of each state in a shard's history (notes name the state or the outcome)."""
    out: dict[str, float] = {}
    for stamp, note in history:
        if note in ("prepared", "uploading", "creating", "joined"):
            state = note
        elif note.startswith("uploaded "):
            state = "uploaded"
        elif note.startswith(("created ", "adopted ")):
            state = "submitted"
        elif note in _TERMINAL:
            state = "finished"
        elif note.startswith("results of ") or note.endswith("inline results saved"):
            state = "fetched"
        elif note == "remote files deleted":
            state = "cleaned"
        else:
            continue
        out.setdefault(state, _time(stamp))
    return out


@dataclass
class Stages:
    """Seconds per stage of one run. ``spans`` are wall-clock windows (first start to last end, for
    stages that run in parallel across shards); ``sums`` add the per-shard durations (for stages the
    runner's main thread does one shard at a time)."""

    shards: int
    prepared_at: float  # the last shard's "prepared" record: the request files are written
    ended_at: float  # the last record of any shard
    spans: dict[str, float] = field(default_factory=dict)
    sums: dict[str, float] = field(default_factory=dict)

    def describe(self) -> str:
        return "; ".join(
            [f"{k} {v:.1f} s (span)" for k, v in self.spans.items()]
            + [f"{k} {v:.2f} s (sum over shards)" for k, v in self.sums.items()]
        )


_PAIRS = {  # stage: (from state, to state)
    "upload": ("uploading", "uploaded"),
    "create": ("creating", "submitted"),
    "poll wait (emulator)": ("submitted", "finished"),
    "download": ("finished", "fetched"),
    "parse + join + write shard": ("fetched", "joined"),
    "delete remote files": ("joined", "cleaned"),
}


def shard_events(job_dir: Path) -> Iterator[dict[str, float]]:
    for state in sorted((job_dir / "shards").glob("*/state.json")):
        yield _events(json.loads(state.read_text())["history"])


def states_at(job_dir: Path, when: float) -> Counter[str]:
    """How many shards were in each state at the wall-clock time ``when`` (their latest event by
    then;
    ``preparing`` before a shard's first record)."""
    states: Counter[str] = Counter()
    for events in shard_events(job_dir):
        past = {k: v for k, v in events.items() if v <= when}
        states[max(past, key=lambda k: past[k]) if past else "preparing"] += 1
    return states


def stage_times(job_dir: Path) -> Stages:
    """Stage times of the finished run in ``job_dir`` (a local run directory)."""
    events = list(shard_events(job_dir))
    prepared = max(e["prepared"] for e in events)
    ended = max(max(e.values()) for e in events)
    stages = Stages(shards=len(events), prepared_at=prepared, ended_at=ended)
    for name, (a, b) in _PAIRS.items():
        pairs = [(e[a], e[b]) for e in events if a in e and b in e]
        if not pairs:
            continue
        stages.spans[name] = max(y for _, y in pairs) - min(x for x, _ in pairs)
        stages.sums[name] = sum(y - x for x, y in pairs)
    return stages


def vm_hwm() -> int:
    """This process's peak resident set in bytes (``VmHWM`` of /proc/self/status: the high-water
    mark
    of its own address space since exec)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


@final
class RssTimeline:
    """This process's resident set (``VmRSS``), sampled every ``every`` s on a daemon thread, for
    ``with``; ``samples`` holds ``(wall-clock time, bytes)``."""

    def __init__(self, every: float = 0.05) -> None:
        self.every = every
        self.samples: list[tuple[float, int]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _run(self) -> None:
        while not self._done.is_set():
            self.samples.append((time.time(), self.rss()))
            self._done.wait(self.every)

    def __enter__(self) -> RssTimeline:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self.samples.append((time.time(), self.rss()))

    def peak(self, start: float = 0.0, end: float = float("inf")) -> tuple[float, int]:
        """``(time, bytes)`` of the highest sample within ``[start, end]`` (``(nan, 0)`` if
        none)."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        return max(inside, key=lambda s: s[1]) if inside else (float("nan"), 0)


def run_sampled(
    argv: list[str],
    *,
    env: dict[str, str],
    cwd: Path,
    timeout: float,
    sample_every: float = 0.05,
    on_tick: Any = None,
) -> tuple[int, float, int, str]:
    """Run ``argv``; return ``(exit code, wall seconds, highest sampled RSS in bytes, its stdout)``.

    psutil samples the child's RSS every ``sample_every`` s (a cross-check: the exact figure is the
    ``VmHWM`` the child reports itself, see :func:`vm_hwm`; ``ru_maxrss`` of a child started from a
    big parent is useless on Linux, it starts from the parent's high-water mark).
    ``on_tick(elapsed)`` is called about every 15 s (progress). The child is killed after
    ``timeout`` s.
    """
    import psutil

    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, env={**os.environ, **env}, cwd=cwd, stdout=subprocess.PIPE, text=True
    )
    sampled = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal sampled
        child = psutil.Process(proc.pid)
        last_tick = time.perf_counter()
        while not done.is_set():
            try:
                sampled = max(sampled, child.memory_info().rss)
            except psutil.Error:
                return
            now = time.perf_counter()
            if on_tick is not None and now - last_tick >= 15:
                last_tick = now
                on_tick(now - started)
            if now - started > timeout:
                proc.kill()
                return
            time.sleep(sample_every)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    wall = time.perf_counter() - started
    done.set()
    sampler.join()
    return proc.returncode, wall, sampled, out


def answered_ok(schema: Any, prefix: str = "gemini_") -> Any:
    """A polars expression: the row's status is ``ok`` and, when the output tells, the batch job
    answered it (``{prefix}origin`` is ``batch``, not ``cache`` or ``dedup``)."""
    import polars as pl

    ok = pl.col(f"{prefix}status") == "ok"
    origin = f"{prefix}origin"
    return ok & (pl.col(origin) == "batch") if origin in schema else ok


def without_cache() -> dict[str, Any]:
    """``{"cache": False}`` when gembatch has a result cache (``batch_generate(..., cache=...)``;
    the other entry points pass their keywords on to it): a benchmark must send every row, and must
    neither read nor fill the user's cache (a cache filled by an earlier run answers every row of
    the
    next)."""
    import inspect

    import gembatch

    return (
        {"cache": False} if "cache" in inspect.signature(gembatch.batch_generate).parameters else {}
    )
