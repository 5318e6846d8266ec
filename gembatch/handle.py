"""``BatchRun``: a handle on a run directory, to look at, wait for, collect, cancel or delete a run.

>>> # run = df.gemini.batch_generate("prompt", config=cfg, job_dir="runs/x", wait=False)
>>> # run = gembatch.BatchRun.open("runs/x")        # after a kernel restart: continues where it was
>>> # run.status(); out = run.result()
"""

from __future__ import annotations

import html
import os
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from ._service.backend import Backend, RetryPolicy
from .cache import ResultCache
from ._money.estimate import local_tokens
from .exceptions import GembatchError, ResultWarning
from ._state.journal import Journal, ShardRecord, ShardState
from ._build.prepare import Options
from ._money.pricing import PriceTable
from .progress import Progress, make_progress
from ._money.report import RunCost, run_cost
from ._run import Runner
from ._storage import OutputSink, Store

__all__ = ["BatchRun", "RunStatus"]


@dataclass(frozen=True)
class RunStatus:
    """A run at one moment: rows, job states and per-shard detail."""

    job_dir: str
    state: str  # "submitting" | "running" | "done"
    total: int
    done: int
    failed: int
    jobs: Counter[str] = field(default_factory=Counter)
    shards: tuple[dict[str, Any], ...] = ()

    def __str__(self) -> str:
        jobs = ", ".join(f"{k.removeprefix('JOB_STATE_').lower()}: {v}" for k, v in sorted(self.jobs.items()))
        return (f"gembatch run {self.job_dir} [{self.state}] {self.done:,}/{self.total:,} requests "
                f"answered, {self.failed:,} failed; jobs: {jobs or 'none yet'}")

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{h}</th>" for h in ("shard", "rows", "requests", "state", "job", "job state"))
        body = "".join(
            "<tr>" + "".join(
                f"<td>{html.escape(str(s.get(k) or ''))}</td>"
                for k in ("index", "rows", "lines", "state", "job_name", "job_state")
            ) + "</tr>"
            for s in self.shards
        )
        return (f"<div><b>gembatch run</b> <code>{html.escape(self.job_dir)}</code> — "
                f"<b>{self.state}</b>: {self.done:,} / {self.total:,} requests answered, "
                f"{self.failed:,} failed<table><tr>{head}</tr>{body}</table></div>")


class BatchRun:
    """A run directory and the service it talks to.

    Use :meth:`open` to reopen a run (after a kernel restart, from another process): it continues from
    what the run directory records and never creates a job twice.
    """

    def __init__(
        self,
        journal: Journal,
        backend: Backend,
        options: Options,
        *,
        progress: bool | Progress = True,
        sleep: Callable[[float], None] = time.sleep,
        cache: ResultCache | None = None,
        prices: PriceTable | None = None,
    ) -> None:
        self._journal = journal
        self._backend = backend
        self._options = options
        self._progress = progress
        self._sleep = sleep
        self._cache = cache
        self._prices = prices

    @classmethod
    def open(
        cls,
        job_dir: str | os.PathLike[str],
        *,
        client: Any = None,
        poll_interval: float | None = None,
        progress: bool | Progress = True,
        storage_options: dict[str, Any] | None = None,
        retry: RetryPolicy | None = None,
    ) -> BatchRun:
        """Reopen the run in ``job_dir`` (local path or fsspec URL).

        >>> # gembatch.BatchRun.open("runs/reviews").result()
        """
        store = Store(job_dir, **(storage_options or {}))
        journal = Journal.open(store)
        stored = dict(journal.manifest.get("options", {}))
        if poll_interval is not None:
            stored["poll_interval"] = poll_interval
            stored["max_poll_interval"] = max(poll_interval, stored.get("max_poll_interval", poll_interval))
        cache = journal.manifest.get("cache")
        return cls(journal, Backend(client, retry=retry), Options(**stored), progress=progress,
                   cache=None if cache is None else ResultCache(cache))

    @property
    def job_dir(self) -> str:
        return self._journal.store.url

    def _runner(self, progress: bool | Progress | None = None, sink: OutputSink | None = None) -> Runner:
        return Runner(self._journal, self._backend, self._options,
                      progress=make_progress(self._progress if progress is None else progress),
                      sleep=self._sleep, sink=sink, cache=self._cache)

    def status(self, *, refresh: bool = True) -> RunStatus:
        """Where the run is; with ``refresh`` (default) the service is asked first."""
        runner = self._runner(progress=False)
        if refresh:
            with self._journal.locked():
                runner.submit()
                runner.step()
        snap = runner.snapshot()
        shards = self._journal.shards
        if all(s.state is ShardState.JOINED for s in shards):
            state = "done"
        elif all(s.state.rank >= ShardState.SUBMITTED.rank or s.mode == "none" for s in shards):
            state = "running"
        else:
            state = "submitting"
        detail = tuple(
            {"index": s.index if s.parent is None else f"{s.index}.r{s.attempt}", "rows": s.rows,
             "lines": s.lines, "state": s.state.value, "job_name": s.job_name,
             "job_state": s.job_state, "stats": s.stats, "report": s.report,
             "reason": s.reason, "watchdog": s.watchdog}
            for s in self._journal.records()
        )
        return RunStatus(job_dir=self.job_dir, state=state, total=snap.total, done=snap.done,
                         failed=snap.failed, jobs=snap.jobs, shards=detail)

    def wait(self, timeout: float | None = None) -> BatchRun:
        """Submit what is left and poll until every result is joined (or ``timeout`` seconds pass)."""
        with self._journal.locked():
            finished = self._runner().wait(timeout)
        if finished and self._progress:
            self._print_summary()
        return self

    def cost(self) -> RunCost:
        """Tokens and money of the finished shards: billed at the batch rate (next to what the same
        work would cost interactively), and what dedup and the result cache saved.

        >>> # print(run.cost())
        """
        manifest, prefix = self._journal.manifest, self._options.prefix
        joined = [s for s in self._journal.shards if s.state is ShardState.JOINED]
        if manifest.get("kind") == "embed":
            frames = (self._embed_tokens(s) for s in joined)
        else:
            frames = (self._journal.store.read_parquet(s.path("output.parquet")) for s in joined)
        return run_cost(frames, model=manifest["model"], prefix=prefix, table=self._prices)

    def _embed_tokens(self, shard: ShardRecord) -> pl.DataFrame:
        """Embedding answers carry no token counts: the requests' local estimate stands in."""
        prefix = self._options.prefix
        out = self._journal.store.read_parquet(shard.path("output.parquet")).select(f"{prefix}origin")
        lines = self._journal.store.read_lines(shard.path("requests.jsonl")) if shard.lines else \
            pl.Series([], dtype=pl.Utf8)
        billed = pl.DataFrame({f"{prefix}prompt_tokens": local_tokens(lines) if len(lines) else
                               pl.Series([], dtype=pl.Int64)})
        billed = billed.with_columns(pl.lit("batch").alias(f"{prefix}origin"))
        others = out.filter(pl.col(f"{prefix}origin") != "batch").with_columns(
            pl.lit(0, dtype=pl.Int64).alias(f"{prefix}prompt_tokens"))
        frame = pl.concat([billed, others.select(billed.columns)], how="vertical_relaxed")
        return frame.with_columns(pl.lit(0, dtype=pl.Int64).alias(f"{prefix}{n}_tokens")
                                  for n in ("output", "thoughts", "cached"))

    def _print_summary(self) -> None:
        try:
            print(self.cost().summary())
        except GembatchError:  # e.g. a model missing from the price table: no money figures
            pass

    def write(self, dest: str | os.PathLike[str], *, storage_options: dict[str, Any] | None = None) -> str:
        """Wait for the run and stream its output to ``dest`` without holding it in memory.

        ``dest`` ending in ``.parquet`` is one file (renamed into place at the end); anything else is a
        dataset directory whose ``part-NNNNN.parquet`` files appear as their shards finish.

        >>> # run.write("s3://bucket/scored/")      # or "scored.parquet"
        """
        sink = OutputSink(dest, len(self._journal.shards), **(storage_options or {}))
        with self._journal.locked():
            self._runner(sink=sink).wait()
        self._warn_about_results()
        return os.fspath(dest)

    def done(self) -> bool:
        return all(r.state is ShardState.JOINED for r in self._journal.records())

    def result(self, *, wait: bool = True) -> pl.DataFrame:
        """The input frame with the result columns, in input order (waits for the run by default)."""
        if not self.done():
            if not wait:
                raise RuntimeError(
                    f"The run in {self.job_dir} is not finished. Hint: run.wait() or run.result(wait=True)."
                )
            self.wait()
        store = self._journal.store
        frames = [store.read_parquet(s.path("output.parquet")) for s in self._journal.shards]
        self._warn_about_results()
        return pl.concat(frames, how="vertical") if frames else pl.DataFrame()

    def _warn_about_results(self) -> None:
        totals: Counter[str] = Counter()
        for shard in self._journal.shards:
            for name in ("missing", "duplicated", "unknown", "malformed"):
                totals[name] += (shard.report or {}).get(name, 0)
        if any(totals.values()):
            warnings.warn(ResultWarning(
                f"Result files of {self.job_dir} were not clean: {totals['missing']:,} rows missing, "
                f"{totals['duplicated']:,} duplicated lines dropped, {totals['unknown']:,} unknown keys, "
                f"{totals['malformed']:,} malformed lines. Each affected row has its own status "
                "(missing / error); run.retry_failed() sends the retryable ones again."
            ), stacklevel=3)

    def retry_failed(self, *, wait: bool = True) -> int:
        """Send again the rows that got a retryable error (429, 5xx) or no answer, and merge the new
        answers in; rows that succeeded or got a permanent error (e.g. 400) are not sent again.

        Returns how many rows were resubmitted.

        >>> # n = run.retry_failed(); out = run.result()
        """
        with self._journal.locked():
            runner = self._runner(progress=False)
            total = sum(
                runner.resubmit(shard, reason="retry_failed", include_errors=True)
                for shard in self._journal.shards if shard.state is ShardState.JOINED
            )
            runner.submit()
        if wait and total:
            self.wait()
        return total

    def cancel(self) -> None:
        """Cancel every job still running; their unanswered rows come back as ``cancelled``."""
        with self._journal.locked():
            for record in self._journal.records():
                if record.state is ShardState.SUBMITTED and record.job_name:
                    self._backend.cancel(record.job_name)
            self._runner(progress=False).step()

    def delete(self) -> None:
        """Delete the run's jobs and files on the service (the local run directory is kept)."""
        with self._journal.locked():
            for shard in self._journal.records():
                if shard.job_name:
                    self._backend.delete_job(shard.job_name)
                for name in (shard.file_name, shard.result_file):
                    if name:
                        self._backend.delete_file(name)

    def __repr__(self) -> str:
        snap = self._runner(progress=False).snapshot()
        states = Counter(s.state.value for s in self._journal.shards)
        return (f"BatchRun({self.job_dir!r}, requests={snap.total:,}, answered={snap.done:,}, "
                f"failed={snap.failed:,}, shards={dict(states)})")

    def _repr_html_(self) -> str:
        return self.status(refresh=False)._repr_html_()
