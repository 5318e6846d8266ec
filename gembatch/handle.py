"""``BatchRun``: a handle on a run directory, to look at, wait for, collect, cancel or delete a run.

A view over the run directory's state (the journal) and the :class:`gembatch._run.Run` that drives
it.

>>> run = df.gemini.batch_generate("prompt", config=cfg, job_dir=job_dir, options=FAST,
...                                wait=False, progress=False)
>>> run = gembatch.BatchRun.open(job_dir, progress=False)  # e.g. after a kernel restart
>>> run.result()["gemini_status"].to_list()
['ok', 'ok']
>>> run.status().state
'done'
"""

from __future__ import annotations

import dataclasses
import html
import itertools
import os
import warnings
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import polars as pl

from ._frames import give_back
from ._money.estimate import local_tokens
from ._money.report import RunCost, run_cost
from ._run import Run
from ._state.journal import Journal
from ._state.records import HASH, KEY, TOKENS, ShardRecord, ShardState
from ._storage import Directory, OutputSink
from .config import Options, RetryPolicy
from .exceptions import (
    GembatchError,
    ResultWarning,
    RunLockedError,
    RunMismatchError,
    RunNotFinishedError,
)
from .progress import NullProgress, Progress, Snapshot, make_progress

__all__ = ["BatchRun", "RunStatus"]


@dataclass(frozen=True)
class RunStatus:
    """A run at one moment: its state (``submitting``, ``running``, ``done``), progress in rows and
    requests (:class:`gembatch.Snapshot`), and per-shard detail. ``driven_by``: the process that
    drives it now, when another one does (the status was then read from the run directory only)."""

    job_dir: str
    state: str
    progress: Snapshot
    shards: tuple[dict[str, Any], ...] = ()
    driven_by: str | None = None

    @property
    def total(self) -> int:
        """The input's rows."""
        return self.progress.rows

    @property
    def done(self) -> int:
        """Rows with their final answer (or error, or skip)."""
        return self.progress.done

    @property
    def failed(self) -> int:
        return self.progress.failed

    @property
    def jobs(self) -> Counter[str]:
        """Batch jobs by state."""
        return self.progress.jobs

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (``gembatch status --json``)."""
        p = self.progress
        return {
            "job_dir": self.job_dir,
            "state": self.state,
            "rows": p.rows,
            "done": p.done,
            "failed": p.failed,
            "requests": p.requests,
            "answered": p.answered,
            "reused": p.reused,
            "skipped": p.skipped,
            "jobs": dict(p.jobs),
            "shards_by_phase": dict(p.shards),
            "tokens_in_flight": p.tokens,
            "token_budget": p.token_budget,
            "rows_per_second": p.rate,
            "eta_seconds": p.eta,
            "driven_by": self.driven_by,
            "shards": list(self.shards),
        }

    def __str__(self) -> str:
        p = self.progress
        share = f" ({p.done / p.rows:.0%})" if p.rows else ""
        phases = ", ".join(f"{n} {phase}" for phase, n in sorted(p.shards.items()))
        lines = [
            f"gembatch run {self.job_dir} [{self.state}]: {p.done:,}/{p.rows:,} rows{share}",
            f"  {p.describe()}",
            f"  shards: {phases or 'none'}",
        ]
        if p.token_budget and self.state != "done":
            lines.append(
                f"  input tokens in flight: {p.tokens:,} of a budget of {p.token_budget:,}"
            )
        if self.driven_by:
            lines.append(f"  driven by {self.driven_by} (read from the run directory)")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        columns = ("index", "rows", "lines", "state", "job_name", "job_state")
        head = "".join(
            f"<th>{h}</th>" for h in ("shard", "rows", "requests", "state", "job", "job state")
        )
        body = "".join(
            "<tr>"
            + "".join(
                f"<td>{html.escape('' if s.get(k) is None else str(s.get(k)))}</td>"
                for k in columns
            )
            + "</tr>"
            for s in self.shards
        )
        return (
            f"<div><b>gembatch run</b> <code>{html.escape(self.job_dir)}</code> — "
            f"<b>{self.state}</b>: {html.escape(self.progress.describe())}"
            f"<table><tr>{head}</tr>{body}</table></div>"
        )


class BatchRun:
    """A run directory and the service it talks to.

    Use :meth:`open` to reopen a run (after a kernel restart, from another process): it continues
    from what the run directory records and never creates a job twice. Looking at a finished run
    (``status``, ``result``, ``cost``) needs no API key.
    """

    def __init__(self, run: Run, *, progress: bool | Progress = True) -> None:
        self._run = run
        self._journal = run.journal
        self._options = run.options
        self._progress = progress

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

        >>> _ = df.gemini.batch_generate("prompt", config=cfg, job_dir=job_dir, options=FAST,
        ...                              progress=False)
        >>> gembatch.BatchRun.open(job_dir).result().height
        2
        """
        from ._run.flow import _cache

        journal = Journal.open(Directory(job_dir, **(storage_options or {})))
        options = Options.from_dict(journal.manifest.options)
        if poll_interval is not None:
            options = options.replace(
                poll_interval=poll_interval,
                max_poll_interval=max(poll_interval, options.max_poll_interval),
            )
        backend = None
        if client is not None:
            from ._service.backend import Backend

            backend = Backend(client, retry=retry)
        run = Run(journal, backend, options, cache=_cache(journal.manifest.cache), retry=retry)
        return cls(run, progress=progress)

    @property
    def job_dir(self) -> str:
        return self._journal.store.url

    def _driving(
        self, progress: bool | Progress | None = None, sink: OutputSink | None = None
    ) -> Run:
        """The run, set to report to ``progress`` (default: this handle's) and write to ``sink``."""
        self._check_current()
        self._run.progress = make_progress(self._progress if progress is None else progress)
        self._run.sink = sink
        return self._run

    def _check_current(self) -> None:
        """Refuse to act through a handle whose run was replaced in its directory (an update by
        another call): its records are no longer the directory's, and writing them would undo
        the update."""
        store = self._journal.store
        try:
            on_disk = (
                store.read_json("run.json").get("run_id") if store.exists("run.json") else None
            )
        except (ValueError, OSError):
            return  # unreadable: Journal.open reports it where it matters
        mine = self._journal.manifest.run_id
        if on_disk and on_disk != mine:
            raise RunMismatchError(
                f"This handle is of run {mine}, which a later call on {store.url!r} replaced "
                f"(its answers are kept, the run there is now {on_disk}). Hint: "
                f"gembatch.BatchRun.open({store.url!r}) to use the current run."
            )

    def status(self, *, refresh: bool = True) -> RunStatus:
        """Where the run is. With ``refresh`` (default) an unfinished run asks the service first;
        when another process drives the run, its status is read from the run directory alone
        (``driven_by`` says who)."""
        run = self._driving(progress=False)
        driven_by = None
        if refresh and not run.done():
            try:
                with self._journal.locked():
                    run.submit()
                    run.step()
            except RunLockedError as exc:
                driven_by = exc.holder
                self._journal = Journal.open(self._journal.store)  # what that process recorded
                self._run.journal = self._journal
        shards = self._journal.shards
        if all(s.state is ShardState.JOINED for s in shards):
            state = "done"
        elif all(s.state.rank >= ShardState.SUBMITTED.rank or s.mode == "none" for s in shards):
            state = "running"
        else:
            state = "submitting"
        detail = tuple(
            {
                "index": s.name,
                "rows": s.rows,
                "lines": s.lines,
                "state": s.state.value,
                "job_name": s.job_name,
                "job_state": s.job_state,
                "stats": s.stats,
                "report": s.report,
                "reason": s.reason,
                "watchdog": s.watchdog,
                "cleanup_error": s.cleanup_error,
            }
            for s in self._journal.records()
        )
        return RunStatus(
            job_dir=self.job_dir,
            state=state,
            progress=run.snapshot(),
            shards=detail,
            driven_by=driven_by,
        )

    def wait(self, timeout: float | None = None) -> BatchRun:
        """Submit what is left and poll until every result is joined (or ``timeout`` seconds
        pass)."""
        run = self._driving()
        if run.done():
            return self
        with self._journal.locked():
            finished = run.wait(timeout)
        if finished:
            self._report_summary()
        return self

    def cost(self) -> RunCost:
        """Tokens and money of the finished shards: billed at the batch rate (next to what the same
        work would cost interactively), and what dedup and the result cache saved.

        >>> run = df.gemini.batch_generate("prompt", config=cfg, job_dir=job_dir, options=FAST,
        ...                                progress=False, wait=False)
        >>> run.wait().cost().rows["batch"]
        2
        """
        manifest, prefix = self._journal.manifest, self._options.prefix
        joined = [s for s in self._journal.shards if s.state is ShardState.JOINED]
        frames: Iterable[pl.DataFrame]
        if manifest.kind == "embed":
            frames = (self._embed_tokens(s) for s in joined)
        else:
            frames = (self._journal.store.read_parquet(s.path("output.parquet")) for s in joined)
        unkeyed = [u for r in self._journal.records() for u in r.unkeyed_usage or []]
        if unkeyed:  # paid-for inline answers that came back without their keys
            names = ("prompt", "output", "thoughts", "cached")
            extra = pl.DataFrame(
                {
                    f"{prefix}origin": ["unkeyed"] * len(unkeyed),
                    **{f"{prefix}{n}_tokens": [u[i] for u in unkeyed] for i, n in enumerate(names)},
                }
            )
            frames = itertools.chain(frames, [extra])
        cost = run_cost(frames, model=manifest.model, prefix=prefix, table=self._run.prices)
        pilots = [
            BatchRun.open(self._journal.store.child(name).url, progress=False).cost()
            for name in ("pilot", "pilot-schema")
            if Journal.exists(self._journal.store.child(name))
        ]
        if not pilots:
            return cost
        billed = sum(p.rows.get("batch", 0) + p.rows.get("interactive", 0) for p in pilots)
        return dataclasses.replace(
            cost, pilot_rows=billed, pilot_usd=sum(p.spent_usd for p in pilots)
        )

    def _embed_tokens(self, shard: ShardRecord) -> pl.DataFrame:
        """Embedding answers carry no token counts: each row's request, estimated locally, stands
        in, whichever way the row was answered (the estimate prepare kept for every row, so a
        cached or ``dup`` row counts what it would have cost, a skipped one 0; a run directory
        older than that estimate reads it from the request lines: cached rows then count 0). One
        row per output row, beside its ``{prefix}origin``."""
        prefix = self._options.prefix
        store = self._journal.store
        out = store.read_parquet(shard.path("output.parquet"), columns=[f"{prefix}origin"])
        kept = store.read_parquet(shard.path("keys.parquet"))
        if TOKENS in kept.columns:
            return pl.concat(
                [out, kept.select(pl.col(TOKENS).fill_null(0).alias(f"{prefix}prompt_tokens"))],
                how="horizontal",
            ).with_columns(
                pl.lit(0, dtype=pl.Int64).alias(f"{prefix}{n}_tokens")
                for n in ("output", "thoughts", "cached")
            )
        keys = kept.select(KEY, HASH)
        lines = (
            store.read_lines(shard.path("requests.jsonl"))
            if shard.lines
            else pl.Series([], dtype=pl.Utf8)
        )
        estimated = pl.DataFrame(
            {
                KEY: lines.str.json_path_match("$.key"),
                "_tokens": local_tokens(lines) if len(lines) else pl.Series([], dtype=pl.Int64),
            }
        ).unique(KEY, keep="first")
        tokens = keys.join(estimated, on=KEY, how="left", maintain_order="left").select(
            pl.col("_tokens")
            .fill_null(pl.col("_tokens").max().over(HASH))
            .fill_null(0)
            .cast(pl.Int64)
            .alias(f"{prefix}prompt_tokens")
        )
        if tokens.height != out.height:  # (keys.parquet is row for row beside the output)
            raise AssertionError(f"shard {shard.index}: {tokens.height} keys, {out.height} rows")
        return pl.concat([out, tokens], how="horizontal").with_columns(
            pl.lit(0, dtype=pl.Int64).alias(f"{prefix}{n}_tokens")
            for n in ("output", "thoughts", "cached")
        )

    def _report_summary(self) -> None:
        """Give the finished run's cost summary to the progress reporter (it decides to show it)."""
        report = getattr(self._run.progress, "summary", None)
        if report is None or isinstance(self._run.progress, NullProgress):
            return  # (the cost reads every shard's output: not for a reporter that shows nothing)
        try:
            report(self.cost().summary())
        except GembatchError:  # e.g. a model missing from the price table: no money figures
            pass

    def write(
        self, dest: str | os.PathLike[str], *, storage_options: dict[str, Any] | None = None
    ) -> str:
        """Wait for the run and stream its output to ``dest`` without holding it in memory.

        ``dest`` ending in ``.parquet`` is one file (renamed into place at the end); anything else
        is a dataset directory whose ``part-NNNNN.parquet`` files appear as their shards finish.

        >>> run = df.gemini.batch_generate("prompt", config=cfg, job_dir=job_dir, options=FAST,
        ...                                progress=False, wait=False)
        >>> run.write("scored.parquet")  # or a directory, or "s3://bucket/scored/"
        'scored.parquet'
        >>> pl.read_parquet("scored.parquet").height
        2
        """
        prefix = self._options.prefix
        sink = OutputSink(
            dest,
            len(self._journal.shards),
            own_columns=(f"{prefix}status", f"{prefix}origin"),
            **(storage_options or {}),
        )
        run = self._driving(sink=sink)
        with self._journal.locked():
            if run.done():
                for shard in self._journal.shards:
                    sink.offer(shard.index, self._journal.store, shard.path("output.parquet"))
            else:
                run.wait()
        run.sink = None
        self._warn_about_results()
        return os.fspath(dest)

    def done(self) -> bool:
        return self._run.done()

    def result(self, *, wait: bool = True) -> Any:
        """The input frame with the result columns, in input order (waits for the run by default),
        in the type the input had: a polars DataFrame, a pandas DataFrame (with its index) or a
        pyarrow Table (with its schema metadata)."""
        self._check_current()
        if not self.done():
            if not wait:
                raise RunNotFinishedError(
                    f"The run in {self.job_dir} is not finished. Hint: run.wait() or "
                    "run.result(wait=True)."
                )
            with self._run.outputs_kept():  # those joined while waiting are not read back
                self.wait()
                frames = [self._run.output(s) for s in self._journal.shards]
        else:
            frames = [self._run.output(s) for s in self._journal.shards]
        self._warn_about_results()
        out = pl.concat(frames, how="vertical") if frames else pl.DataFrame()
        return give_back(out, self._journal.manifest.frame)

    def _warn_about_results(self) -> None:
        totals: Counter[str] = Counter()
        for shard in self._journal.shards:
            for name in ("missing", "duplicated", "unknown", "malformed"):
                totals[name] += (shard.report or {}).get(name, 0)
        if any(totals.values()):
            warnings.warn(
                ResultWarning(
                    f"Result files of {self.job_dir} were not clean: {totals['missing']:,} rows "
                    "missing, "
                    f"{totals['duplicated']:,} duplicated lines dropped, {totals['unknown']:,} "
                    "unknown keys, "
                    f"{totals['malformed']:,} malformed lines. Each affected row has its own "
                    "status "
                    "(missing / error); run.retry_failed() sends the retryable ones again."
                ),
                stacklevel=3,
            )

    def retry_failed(self, *, wait: bool = True, schema: bool = False) -> int:
        """Send again the rows that got a retryable error (429, 5xx) or no answer, and merge the new
        answers in; rows that succeeded or got a permanent error (e.g. 400) are not sent again.
        ``schema=True``: also the rows whose answer failed the response schema (status
        ``SCHEMA_MISMATCH``: invalid or degenerate), which are checked again when they come back.

        Returns how many rows were resubmitted.

        >>> run = df.gemini.batch_generate("prompt", config=cfg, job_dir=job_dir, options=FAST,
        ...                                progress=False, wait=False)
        >>> run.retry_failed()  # every row was answered: nothing to send again
        0
        """
        run = self._driving(progress=False)
        with self._journal.locked():
            total = sum(
                run.resubmit(shard, reason="retry_failed", include_errors=True, schema=schema)
                for shard in self._journal.shards
                if shard.state is ShardState.JOINED
            )
            run.submit()
        if wait and total:
            self.wait()
        return total

    def cancel(self) -> None:
        """Cancel every job still running; their unanswered rows come back as ``cancelled``."""
        run = self._driving(progress=False)
        with self._journal.locked():
            for record in self._journal.records():
                if record.state is ShardState.SUBMITTED and record.job_name:
                    run.backend.cancel(record.job_name)
            run.step()

    def delete(self) -> None:
        """Delete the run's jobs and files on the service (the local run directory is kept)."""
        run = self._driving(progress=False)
        with self._journal.locked():
            for record in self._journal.records():
                if record.job_name:
                    run.backend.delete_job(record.job_name)
                for name in (record.file_name, record.result_file):
                    if name:
                        run.backend.delete_file(name)

    def cleanup(self) -> dict[str, list[str]]:
        """Delete the run's remote files (its request and result files on the File API) that are
        still there, as the run does when a shard finishes: for shards whose clean-up was refused
        or turned off (``Options(cleanup_remote=False)``). Jobs and the run directory are kept
        (:meth:`delete` deletes the jobs too). Files of unfinished shards are left alone (a running
        job still needs them; they are deleted when the shard finishes).

        Returns ``{"deleted": [file names], "left": ["name: why the service refused", ...],
        "unfinished": [shard names]}``; a file the service refuses to delete expires after 48 h.

        >>> run = df.gemini.batch_generate("prompt", config=cfg, job_dir=job_dir, options=FAST,
        ...                                progress=False, wait=False)
        >>> report = run.wait().cleanup()  # the run deleted what it could as its shards finished
        >>> report["deleted"], report["unfinished"]
        ([], [])
        """
        from ._run.driver import CleanupWarning

        run = self._driving(progress=False)
        report: dict[str, list[str]] = {"deleted": [], "left": [], "unfinished": []}
        with self._journal.locked():
            for record in self._journal.records():
                if record.state is not ShardState.JOINED:
                    report["unfinished"].append(record.name)
                    continue
                if record.cleaned:
                    continue
                names = [
                    n
                    for n in (None if record.file_deleted else record.file_name, record.result_file)
                    if n
                ]
                with warnings.catch_warnings():  # the refusals are returned instead
                    warnings.simplefilter("ignore", CleanupWarning)
                    run._cleanup(record)
                refused = _refusals(record.cleanup_error or "", names)
                if record.file_name in names and record.file_name not in refused:
                    record.file_deleted = True  # not tried again while the result file is kept
                    self._journal.save(record, note="request file deleted")
                report["deleted"] += [n for n in names if n not in refused]
                report["left"] += [f"{n}: {why}" for n, why in refused.items()]
        return report

    def __repr__(self) -> str:
        snap = self._run.snapshot()
        states = Counter(s.state.value for s in self._journal.shards)
        return (
            f"BatchRun({self.job_dir!r}, rows={snap.rows:,}, done={snap.done:,}, "
            f"requests={snap.requests:,}, answered={snap.answered:,}, failed={snap.failed:,}, "
            f"shards={dict(states)})"
        )

    def _repr_html_(self) -> str:
        return self.status(refresh=False)._repr_html_()


def _refusals(text: str, names: list[str]) -> dict[str, str]:
    """``{name: why}`` from a record's ``cleanup_error`` (``"name: why; name: why"``)."""
    out: dict[str, str] = {}
    current = None
    for piece in text.split("; ") if text else ():
        head = next((n for n in names if piece.startswith(f"{n}: ")), None)
        if head is not None:
            current, out[head] = head, piece[len(head) + 2 :].strip()
        elif current is not None:  # a reason that held "; " itself
            out[current] += f"; {piece.strip()}"
    return out
