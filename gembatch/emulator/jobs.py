"""Batch jobs: creation, the state machine, and the background worker that runs their lines.

A job is PENDING when created, RUNNING while the worker streams its input line by line through the
fake model (writing results to a work file, then renaming it into place), and SUCCEEDED when every
line is done and the job's ``Delays`` have passed; ``JobOutcome`` faults, ``cancel`` and the 48 h
limit end it FAILED, CANCELLED or EXPIRED instead. One worker thread serves every job, a step of
``step_lines`` lines at a time, round robin, so a long job does not hold back a short one.

Lines are answered by ``lines.process_chunk`` (in worker processes for big jobs) with the line
rules the job was created under; a job renders as an Operation (``operations``), its output
held back for ``output_lag_polls`` reads after SUCCEEDED. Result files are
``files/batch-<id>`` with ids of 36 characters (``long_result_ids``) or 12.

Times: ``clock`` (monotonic seconds) drives the delays and ``wall`` (epoch seconds) the timestamps
and expiry, so tests can move either without sleeping. A job that was PENDING or RUNNING when the
emulator stopped starts again from its first line when an emulator opens the same data directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

from .behaviour import Behaviour
from .codec import json_dumps, json_loads
from .errors import ApiError
from .faults import Faults, LineFaults
from .lines import LinePool, Spec, chunks, process_chunk, released
from .operations import TERMINAL_STATES, job_behaviour, job_output, operation
from .store import Store, file_record, new_id, rfc3339, sha256_b64

__all__ = ["JOB_TTL_S", "TERMINAL_STATES", "Jobs", "json_dumps", "json_loads"]

#: Jobs still pending or running this long after creation end EXPIRED, as on the service.
JOB_TTL_S = 48 * 3600.0
#: Length of a batch id: 36 characters on the service (``long_result_ids``), 12 before.
LONG_ID, SHORT_ID = 36, 12


@dataclass
class _Run:
    """What this process knows about a live job beyond its record."""

    t0: float
    step_lock: threading.Lock = field(default_factory=threading.Lock)
    waiters: int = 0  # calls waiting for step_lock; the worker stands aside while there are any
    lines: Iterator[None] | None = None
    lines_done_at: float | None = None
    processed: int = 0
    hasher: Any = field(default_factory=hashlib.sha256)
    size: int = 0
    last_saved: float = 0.0


class Jobs:
    """The batch jobs of one emulator and the worker that runs them.

    Parameters: ``store`` (records and files), ``faults`` (job faults are captured at creation),
    ``behaviour`` (the parts a job needs are captured at creation too), ``clock``/``wall`` (see the
    module docstring), ``shuffle_output`` (result files not in input order, as the service
    allows), ``step_lines`` (lines per worker step), ``workers`` (processes answering the lines of
    jobs of ``pool_min_lines`` or more; default: CPUs up to 4, 0: none).
    """

    def __init__(
        self,
        store: Store,
        faults: Faults,
        *,
        behaviour: Behaviour | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        shuffle_output: bool = False,
        step_lines: int = 1000,
        workers: int | None = None,
        pool_min_lines: int = 20_000,
        idle_wait_s: float = 0.01,
    ) -> None:
        self.store, self.faults, self.clock, self.wall = store, faults, clock, wall
        self.behaviour = behaviour if behaviour is not None else Behaviour.lenient()
        self.shuffle_output, self.step_lines = shuffle_output, step_lines
        self.idle_wait_s = idle_wait_s
        self.workers = min(os.cpu_count() or 1, 4) if workers is None else workers
        self.pool_min_lines = pool_min_lines
        self._line_pool: LinePool | None = None
        self.lines_processed = 0
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._runs: dict[str, _Run] = {}
        now = clock()
        for job in store.jobs():
            if (
                job["state"] not in TERMINAL_STATES
            ):  # interrupted by a stop: run it again from the top
                job.update(succeeded=0, failed=0)
                store.work_path(job["id"]).unlink(missing_ok=True)
                self._runs[job["id"]] = _Run(t0=now)

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker thread."""
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, name="gembatch-emulator-worker", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the worker thread (jobs in progress resume when the data directory is reopened)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            for run in self._runs.values():
                if run.lines is not None:
                    run.lines.close()  # type: ignore[attr-defined]
                    run.lines = None
            if self._line_pool is not None:
                self._line_pool.close()
                self._line_pool = None

    # -- calls ---------------------------------------------------------------------------------
    def create(
        self,
        *,
        kind: str,
        model: str,
        display_name: str | None,
        file_name: str | None = None,
        inline: list[dict[str, Any]] | None = None,
        count: int | None = None,
        input_tokens: int = 0,
        fail_message: str | None = None,
    ) -> dict[str, Any]:
        """Create a job over an uploaded JSONL file or inline ``[{"request", "metadata"?}]`` items.

        ``count`` and ``input_tokens``: what the create's input scan found (lines are counted here
        when ``count`` is None); ``fail_message``: the job ends FAILED with it, before any line.
        """
        behaviour = self.behaviour
        jid = new_id(LONG_ID if behaviour.long_result_ids else SHORT_ID)
        if file_name is not None:
            if self.store.get_file(file_name) is None:
                raise ApiError(404, f"Requested entity was not found: input file {file_name}.")
            if count is None:
                count = _count_lines(self.store.blob_path(file_name))
            source: dict[str, Any] = {"file": file_name}
        else:
            assert inline is not None
            with open(self.store.job_path(jid, ".requests.jsonl"), "wb") as f:
                f.writelines(json_dumps(item) + b"\n" for item in inline)
            count, source = len(inline), {"inline": len(inline)}
        now = self.wall()
        faults = self.faults.on_job()
        if fail_message is not None:
            faults["outcome"] = {
                "state": "FAILED",
                "nth_job": None,
                "after_lines": 0,
                "message": fail_message,
            }
        job = {
            "id": jid,
            "_seq": self.store.next_seq(),
            "kind": kind,
            "model": model,
            "displayName": display_name or "",
            "state": "PENDING",
            "createTime": rfc3339(now),
            "updateTime": rfc3339(now),
            "_created": now,
            "input": source,
            "requestCount": count,
            "succeeded": 0,
            "failed": 0,
            "faults": faults,
            "inputTokens": input_tokens,
            "behaviour": job_behaviour(behaviour),
            "lagLeft": behaviour.output_lag_polls,
        }
        with self._lock:
            self.store.put_job(job)
            self._runs[jid] = _Run(t0=self.clock())
        self._wake.set()
        return job

    def get(self, jid: str) -> dict[str, Any]:
        """The job record, after any transition that is due; 404 when there is none."""
        run = self._runs.get(jid)
        if run is not None:
            with self._claim(run):  # waits for the worker's step at most
                self._tick(jid, run)
        job = self.store.get_job(jid)
        if job is None:
            raise ApiError(404, f"Requested entity was not found: batches/{jid}.")
        return job

    def list(self) -> list[dict[str, Any]]:
        """Every job, newest first."""
        for job in self.store.jobs():
            if job["id"] in self._runs:
                self.get(job["id"])
        return self.store.jobs()

    def cancel(self, jid: str) -> None:
        """Cancel a pending or running job now; results of lines already done are kept."""
        run = self._runs.get(jid)
        if run is None:
            job = self.get(jid)  # 404 when unknown
            if job["state"] != "CANCELLED":
                raise ApiError(
                    400,
                    f"The batch batches/{jid} is already {job['state'].lower()} and "
                    "cannot be cancelled.",
                    "FAILED_PRECONDITION",
                )
            return
        with self._claim(run):
            if jid in self._runs and self.store.get_job(jid) is not None:
                self._finish(jid, run, "CANCELLED")

    def delete(self, jid: str) -> None:
        """Delete a job (it stops processing); its results file, if any, stays."""
        run = self._runs.get(jid)
        with self._claim(run) if run is not None else contextlib.nullcontext(), self._lock:
            self._runs.pop(jid, None)
            if run is not None and run.lines is not None:
                run.lines.close()  # type: ignore[attr-defined]
            if not self.store.delete_job(jid):
                raise ApiError(404, f"Requested entity was not found: batches/{jid}.")

    @contextlib.contextmanager
    def _claim(self, run: _Run) -> Iterator[None]:
        """Hold a job's step lock; the worker stands aside meanwhile (``Lock`` is not fair)."""
        with self._lock:
            run.waiters += 1
        try:
            with run.step_lock:
                yield
        finally:
            with self._lock:
                run.waiters -= 1

    def render(
        self, job: dict[str, Any], *, read: bool = False, listing: bool = False
    ) -> dict[str, Any]:
        """The job as the service sends it (``operations.operation``). ``read``: a client's get
        or list, which counts against ``output_lag_polls``; ``listing``: as ``batches.list``
        sends it (no ``inlinedResponses``)."""
        output = None
        if not self._lagging(job, read):
            rules = job.get("behaviour") or job_behaviour(self.behaviour)
            output = job_output(job, self.store, rules, listing=listing)
        return operation(job, output)

    def _lagging(self, job: dict[str, Any], read: bool) -> bool:
        """Whether a SUCCEEDED job still hides its output (``output_lag_polls``); a read counts."""
        if job["state"] != "SUCCEEDED" or job.get("lagLeft", 0) <= 0:
            return False
        if read:
            with self._lock:
                job["lagLeft"] -= 1
                self.store.put_job(job)
        return True

    # -- the worker ----------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            worked = False
            with self._lock:
                live = list(self._runs.items())
            for jid, run in live:
                if self._stop.is_set():
                    break
                if run.waiters:
                    continue
                with run.step_lock:
                    if jid not in self._runs:
                        continue
                    worked |= self._advance(jid, run)
                    self._tick(jid, run)
            if not worked:
                self._wake.wait(self.idle_wait_s)
                self._wake.clear()

    def _advance(self, jid: str, run: _Run) -> bool:
        """Run one step of a RUNNING job's lines; True when it did work."""
        if run.lines is None or run.lines_done_at is not None:
            return False
        try:
            next(run.lines)
            finished = False
        except StopIteration:
            finished = True
        except Exception as exc:  # noqa: BLE001 - a broken job fails, the emulator keeps serving
            self._finish(
                jid, run, "FAILED", error={"code": 13, "message": f"Internal error: {exc}"}
            )
            return True
        job = self.store.get_job(jid)
        if job is None:
            return True
        if finished or run.lines_done_at is not None:
            if run.lines_done_at is None:
                run.lines_done_at = self.clock()
            self.store.put_job(job)
            run.last_saved = time.monotonic()
        elif time.monotonic() - run.last_saved > 0.5:
            self.store.put_job(job)
            run.last_saved = time.monotonic()
        return True

    def _tick(self, jid: str, run: _Run) -> None:
        """Make any transition that is due (call with ``run.step_lock`` held)."""
        job = self.store.get_job(jid)
        if job is None or jid not in self._runs:
            return
        delays = job["faults"].get("delays", {})
        now = self.clock()
        if self.wall() - job["_created"] >= JOB_TTL_S:
            self._finish(jid, run, "EXPIRED")
        elif run.lines is None and run.lines_done_at is None:
            # PENDING until its delay is over; RUNNING without lines: resumed after a restart
            if job["state"] == "RUNNING" or now >= run.t0 + delays.get("pending_s", 0.0):
                self._start(jid, run, job)
        elif (
            job["state"] == "RUNNING"
            and run.lines_done_at is not None
            and now >= run.lines_done_at + delays.get("running_s", 0.0)
            and now >= run.t0 + delays.get("results_after_s", 0.0)
        ):
            outcome = job["faults"].get("outcome")
            if outcome is None:
                self._finish(jid, run, "SUCCEEDED")
            else:
                error = (
                    {"code": 13, "message": outcome["message"]}
                    if outcome["state"] == "FAILED"
                    else None
                )
                self._finish(jid, run, outcome["state"], error=error)

    def _start(self, jid: str, run: _Run, job: dict[str, Any]) -> None:
        source = job["input"]
        path = (
            self.store.blob_path(source["file"])
            if "file" in source
            else self.store.job_path(jid, ".requests.jsonl")
        )
        if not path.exists():
            self._finish(
                jid,
                run,
                "FAILED",
                error={
                    "code": 5,
                    "message": f"Input file {source.get('file')} was not found (deleted?).",
                },
            )
            return
        if job["state"] != "RUNNING":
            job.update(state="RUNNING", updateTime=rfc3339(self.wall()))
            self.store.put_job(job)
        run.processed, run.size, run.hasher = 0, 0, hashlib.sha256()
        run.lines = self._lines(jid, run, job, path)
        self._wake.set()

    def _finish(self, jid: str, run: _Run, state: str, error: dict[str, Any] | None = None) -> None:
        """End a job in ``state``, keeping the results written so far where the state allows."""
        job = self.store.get_job(jid)
        if job is None:
            return
        if run.lines is not None:
            run.lines.close()  # type: ignore[attr-defined]
            run.lines = None
        stamp = rfc3339(self.wall())
        changes: dict[str, Any] = {"state": state, "updateTime": stamp, "endTime": stamp}
        work = self.store.work_path(jid)
        keep = state == "SUCCEEDED" or (state in ("FAILED", "CANCELLED") and run.processed > 0)
        if keep and work.exists():
            if "inline" in job["input"]:
                os.replace(work, self.store.job_path(jid, ".results.jsonl"))
                changes["output"] = {"inline": True}
            else:
                name = f"files/batch-{jid}"
                os.replace(work, self.store.blob_path(name))
                self.store.put_file(
                    file_record(
                        name=name,
                        display_name=f"batch-{jid}-results",
                        mime_type="application/jsonl",
                        size=run.size,
                        sha256_b64=sha256_b64(run.hasher),
                        source="GENERATED",
                        now=self.wall(),
                        seq=self.store.next_seq(),
                    )
                )
                changes["output"] = {"file": name}
        else:
            work.unlink(missing_ok=True)
        if state == "EXPIRED":
            changes.update(succeeded=0, failed=0)
        if error is not None:
            changes["error"] = error
        with self._lock:
            job.update(changes)  # one step, so a concurrent render sees the job before or after
            self.store.put_job(job)
            self._runs.pop(jid, None)

    def _lines(
        self, jid: str, run: _Run, job: dict[str, Any], path: os.PathLike[str]
    ) -> Iterator[None]:
        """Process the job's input into its work file, one chunk of ``step_lines`` lines per step.

        Big jobs have their chunks answered by a process pool (the fake model costs tens of
        microseconds a line); results are written in input order either way.
        """
        faults = job["faults"]
        line_faults = faults.get("lines")
        rules = (job.get("behaviour") or job_behaviour(self.behaviour))["lines"]
        spec: Spec = (
            job["kind"],
            job["model"],
            "inline" in job["input"],
            line_faults if line_faults and LineFaults(**line_faults).active else None,
            rules,
        )
        outcome = faults.get("outcome")
        limit = outcome["after_lines"] if outcome is not None else None
        pieces = chunks(path, self.step_lines, limit)
        target = job["requestCount"] if limit is None else min(limit, job["requestCount"])
        shuffle = random.Random(jid) if self.shuffle_output and not spec[2] else None
        pool = self._pool() if job["requestCount"] >= self.pool_min_lines else None
        with released(pool):
            results: Generator[tuple[list[bytes], int, int], None, None] = (
                pool.map(spec, pieces)
                if pool is not None
                else (process_chunk(spec, start, lines) for start, lines in pieces)
            )
            with contextlib.closing(results), open(self.store.work_path(jid), "wb") as out:
                for data, succeeded, failed in results:
                    if shuffle is not None:
                        shuffle.shuffle(data)
                    block = b"".join(data)
                    run.hasher.update(block)
                    run.size += len(block)
                    out.write(block)
                    run.processed += succeeded + failed
                    if run.processed >= target:  # done before the counts say so
                        run.lines_done_at = self.clock()
                    self._count(jid, succeeded, failed)
                    yield

    def _pool(self) -> LinePool | None:
        """The worker processes, started on first use; None when ``workers`` is 0 or busy."""
        with self._lock:
            if self.workers <= 0 or not sys.executable:
                return None
            if self._line_pool is None or self._line_pool.broken:
                if self._line_pool is not None:
                    self._line_pool.close()
                self._line_pool = LinePool(self.workers)
            return self._line_pool if self._line_pool.lock.acquire(blocking=False) else None

    def _count(self, jid: str, succeeded: int, failed: int) -> None:
        with self._lock:
            job = self.store.get_job(jid)
            if job is not None:
                job["succeeded"] += succeeded
                job["failed"] += failed
            self.lines_processed += succeeded + failed


def _count_lines(path: os.PathLike[str]) -> int:
    """Non-blank lines of a file, streamed."""
    count = 0
    with open(path, "rb") as f:
        for line in f:
            if not line.isspace():
                count += 1
    return count
