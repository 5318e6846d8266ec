"""Interactive mode: a run's request lines answered one call each (``generateContent``, or
``embedContent`` for up to 100 texts), at once instead of by a batch job.

The lines are those the batch path would send (the same shards, built by the same code); only the
sending differs. ``concurrency`` calls are in flight at a time, every one within the per-minute
limits of :class:`~gembatch._run.limiter.RateLimiter`; 429 and 5xx are retried by the backend's one
retry policy (honouring RetryInfo), a 429 also pausing every sender. Each answer is appended to the
record's ``answers.jsonl`` the moment it arrives, in the form of a batch result line (``{"key",
"response"}`` or ``{"key", "error"}``): a run killed half-way resumes by sending only the lines
without an answer there. When every line of a record is answered, the answers become its
``results.jsonl`` and the record moves on to the join like a fetched batch job.

Record states: ``PREPARED -> SUBMITTED`` (sending) ``-> FETCHED``; no job, no file on the service.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from .._money.estimate import local_tokens
from .._results.codes import status_name
from .._state.records import ShardRecord
from .._state.records import ShardState as S
from ..exceptions import ServiceError
from .limiter import LimiterClosed, RateLimiter, per_minute

if TYPE_CHECKING:
    from .driver import Run

__all__ = ["ANSWERS", "LiveSender"]

logger = logging.getLogger("gembatch")

#: A live record's answers as they arrive (appended; the last line may be cut by a kill).
ANSWERS = "answers.jsonl"
#: Texts per embedContent call (the API's batchEmbedContents limit).
EMBED_GROUP = 100
_PROGRESS_EVERY = 0.2  # seconds between progress updates


@dataclass
class _Call:
    record: ShardRecord
    keys: list[str]
    lines: list[str]
    tokens: int


class _AnswerLog:
    """A record's answers, appended as they arrive. A local run directory gets one file written
    line by line (a kill loses at most the answer being written); another store (fsspec URL, no
    append) numbered chunk files written at least every second."""

    def __init__(self, run: Run, record: ShardRecord) -> None:
        self.store = run.store
        self.rel = record.path(ANSWERS)
        self._lock = threading.Lock()
        local = self.store.local_path(self.rel)
        self._file = open(local, "ab") if local is not None else None  # noqa: SIM115
        if self._file is not None and self._file.tell() > 0:
            with open(local, "rb") as f:  # type: ignore[arg-type]
                f.seek(-1, 2)
                if f.read(1) != b"\n":  # a line cut by a kill: the next answer starts afresh
                    self._file.write(b"\n")
        self._buffer: list[bytes] = []
        self._flushed = time.monotonic()
        self._chunk = len(_chunks(run, record))

    def write(self, lines: list[str]) -> None:
        data = [(line + "\n").encode() for line in lines]
        with self._lock:
            if self._file is not None:
                self._file.write(b"".join(data))
                self._file.flush()
                return
            self._buffer.extend(data)
            if time.monotonic() - self._flushed >= 1.0:
                self._flush()

    def _flush(self) -> None:
        if self._buffer:
            self._chunk += 1
            self.store.write_bytes(f"{self.rel}.{self._chunk:06d}", b"".join(self._buffer))
            self._buffer = []
        self._flushed = time.monotonic()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
            else:
                self._flush()


def _chunks(run: Run, record: ShardRecord) -> list[str]:
    """The answer files of ``record``: ``answers.jsonl`` and its numbered chunks."""
    names = run.store.listdir(record.dir) if run.store.exists(record.dir) else []
    return sorted(f"{record.dir}/{n}" for n in names if n.startswith(ANSWERS))


def read_answers(run: Run, record: ShardRecord) -> list[str]:
    """The answer lines saved so far (a line cut by a kill is dropped; later answers win)."""
    by_key: dict[str, str] = {}
    for rel in _chunks(run, record):
        for raw in run.store.read_bytes(rel).split(b"\n"):
            try:
                answer = json.loads(raw)
            except ValueError:
                continue  # an empty tail, or a line a kill cut short
            if isinstance(answer, dict) and isinstance(answer.get("key"), str):
                by_key[answer["key"]] = raw.decode()
    return list(by_key.values())


#: The job state of a live record an interrupted interactive run handed over to batch jobs.
TO_BATCH = "JOB_STATE_TO_BATCH"


class LiveSender:
    """Sends the request lines of a run's live records and journals every answer."""

    def __init__(
        self,
        run: Run,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.run = run
        options = run.options
        requests, tokens = per_minute(options.tier or 1, run.model)
        self.limiter = RateLimiter(
            requests=options.requests_per_minute or requests,
            tokens=options.tokens_per_minute or tokens,
            clock=clock,
            sleep=sleep,
        )
        self._counts: dict[tuple[int, int], list[int]] = {}
        self._lock = threading.Lock()

    def pending(self) -> list[ShardRecord]:
        return [
            r
            for r in self.run.journal.records()
            if r.mode == "live" and r.state in (S.PREPARED, S.SUBMITTED)
        ]

    def send(self) -> bool:
        """Answer every pending live record; True when there was something to send."""
        records = self.pending()
        if not records:
            return False
        journal = self.run.journal
        logs: dict[tuple[int, int], _AnswerLog] = {}
        calls: list[_Call] = []
        for record in records:
            if record.state is S.PREPARED:
                journal.move(
                    record, S.SUBMITTED, note="sending interactively", submitted_at=time.time()
                )
            self.run.mark_in_flight(record)
            todo = self._unanswered(record)
            ident = (record.index, record.attempt)
            self._counts[ident] = [record.lines - len(todo), 0]
            record.stats = {"successfulRequestCount": record.lines - len(todo)}
            logs[ident] = _AnswerLog(self.run, record)
            calls.extend(self._calls(record, todo))
        try:
            self._send_all(calls, logs)
        finally:
            for log in logs.values():
                log.close()
        for record in records:
            self._finish(record)
        return True

    def _unanswered(self, record: ShardRecord) -> list[str]:
        self.run.journal.verify(record, "requests.jsonl")
        lines = self.run.store.read_lines(record.path("requests.jsonl"))
        answered = read_answers(self.run, record)
        if not answered:
            return lines.to_list()
        done = pl.Series(answered, dtype=pl.Utf8).str.json_path_match("$.key")
        keys = lines.str.json_path_match("$.key")
        return lines.filter(~keys.is_in(done.implode())).to_list()

    def _calls(self, record: ShardRecord, lines: list[str]) -> Iterator[_Call]:
        if not lines:
            return
        tokens = local_tokens(pl.Series(lines, dtype=pl.Utf8)).to_list()
        keys = pl.Series(lines, dtype=pl.Utf8).str.json_path_match("$.key").to_list()
        if self.run.kind != "embed":
            for key, line, n in zip(keys, lines, tokens):
                yield _Call(record, [key], [line], int(n or 0))
            return
        group: list[int] = []
        config: str | None = None
        for i, line in enumerate(lines):
            request = json.loads(line)["request"]
            shape = json.dumps({k: v for k, v in request.items() if k != "content"}, sort_keys=True)
            if group and (shape != config or len(group) == EMBED_GROUP):
                yield self._group(record, keys, lines, tokens, group)
                group = []
            config = shape
            group.append(i)
        if group:
            yield self._group(record, keys, lines, tokens, group)

    @staticmethod
    def _group(
        record: ShardRecord, keys: list[Any], lines: list[str], tokens: list[Any], at: list[int]
    ) -> _Call:
        return _Call(
            record,
            [keys[i] for i in at],
            [lines[i] for i in at],
            sum(int(tokens[i] or 0) for i in at),
        )

    def _send_all(self, calls: list[_Call], logs: dict[tuple[int, int], _AnswerLog]) -> None:
        run = self.run
        workers = max(1, min(run.options.concurrency, len(calls)))
        queue = iter(calls)
        pending: set[Future[None]] = set()
        last = 0.0
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gembatch-live") as pool:
            try:
                while True:
                    while len(pending) < workers * 2:
                        call = next(queue, None)
                        if call is None:
                            break
                        ident = (call.record.index, call.record.attempt)
                        pending.add(pool.submit(self._one, call, logs[ident]))
                    if not pending:
                        break
                    finished, pending = wait(
                        pending, timeout=_PROGRESS_EVERY, return_when=FIRST_COMPLETED
                    )
                    for future in finished:
                        future.result()  # a bug in a sender, not a service fault: raise it
                    if time.monotonic() - last >= _PROGRESS_EVERY:
                        run.progress.update(run.snapshot())
                        last = time.monotonic()
            except BaseException:
                self.limiter.close()  # senders waiting for room give up at once
                for future in pending:
                    future.cancel()
                raise

    def _one(self, call: _Call, log: _AnswerLog) -> None:
        run = self.run
        try:
            self.limiter.acquire(call.tokens, requests=len(call.lines))
        except LimiterClosed:
            return  # the run stopped (interrupted): this call is sent on resume

        def on_retry(error: ServiceError) -> None:
            if error.code == 429:
                self.limiter.refused(error.retry_after)
            logger.info("gembatch: retrying an interactive call: %s", error)

        try:
            if run.kind == "embed":
                responses = run.backend.embed(run.model, call.lines, on_retry=on_retry)
                if len(responses) != len(call.lines):
                    raise ServiceError(
                        f"embedContent answered {len(responses)} embeddings for "
                        f"{len(call.lines)} texts",
                        code=500,
                        status="INTERNAL",
                    )
            else:
                responses = [run.backend.generate(run.model, call.lines[0], on_retry=on_retry)]
            answers = [{"key": k, "response": r} for k, r in zip(call.keys, responses)]
            ok = True
        except ServiceError as exc:
            if exc.code == 429:
                self.limiter.refused(exc.retry_after)
            error = _row_error(exc)
            answers = [{"key": k, "error": error} for k in call.keys]
            ok = False
        log.write([json.dumps(a, ensure_ascii=False, separators=(",", ":")) for a in answers])
        with self._lock:
            counts = self._counts[(call.record.index, call.record.attempt)]
            counts[0 if ok else 1] += len(answers)
            call.record.stats = {
                "successfulRequestCount": counts[0],
                "failedRequestCount": counts[1],
            }

    def _finish(self, record: ShardRecord) -> None:
        """Every line answered: the answers become the record's results (sealed), then the
        answer files go."""
        answers = read_answers(self.run, record)
        if len(answers) < record.lines:
            return  # interrupted: sent again on resume
        self._close(record, answers, note=f"{len(answers)} answers (interactive)")

    def hand_over(self, record: ShardRecord, *, rest_by_batch: bool = True) -> None:
        """An interrupted live record, to be finished by batch (``rest_by_batch``) or not at all
        (its run replaced by an update): the answers it has become its results; marked
        ``JOB_STATE_TO_BATCH``, the driver sends the rest by batch jobs
        (:meth:`Run._maybe_resubmit`). Nothing answered is sent again."""
        answers = read_answers(self.run, record)
        rest = "the rest by batch" if rest_by_batch else "the rest not sent (replaced)"
        self._close(
            record,
            answers,
            note=f"{len(answers)} of {record.lines} answered interactively; {rest}",
            job_state=TO_BATCH if rest_by_batch else None,
        )

    def _close(
        self, record: ShardRecord, answers: list[str], *, note: str, job_state: str | None = None
    ) -> None:
        run = self.run
        data = "".join(a + "\n" for a in answers).encode()
        run.store.write_bytes(record.path("results.jsonl"), data)
        run.journal.seal(record, "results.jsonl")
        errors = pl.Series(answers, dtype=pl.Utf8).str.json_path_match("$.error.code")
        failed = int(errors.is_not_null().sum())
        run.journal.move(
            record,
            S.FETCHED,
            note=note,
            finished_at=time.time(),
            **({"job_state": job_state} if job_state else {}),
            stats={"successfulRequestCount": len(answers) - failed, "failedRequestCount": failed},
        )
        for rel in _chunks(run, record):
            run.store.remove(rel)


def _row_error(exc: ServiceError) -> dict[str, Any]:
    """The per-row error of a call that failed: the service's code and status, or for a call that
    got no answer at all (timeout, dropped connection) 504 DEADLINE_EXCEEDED / 503 UNAVAILABLE, so
    that ``retry_failed()`` sends the row again.

    >>> _row_error(ServiceError("Could not x: ReadTimeout", code=0))["status"]
    'DEADLINE_EXCEEDED'
    """
    code = exc.code or (504 if "Timeout" in str(exc) else 503)
    return {"code": code, "message": str(exc), "status": exc.status or status_name(code, None)}
