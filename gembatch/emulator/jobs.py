"""Batch jobs: creation, the state machine, and the background worker that runs their lines.

A job is PENDING when created, RUNNING while the worker streams its input line by line through the
fake model (writing results to a work file, then renaming it into place), and SUCCEEDED when every
line is done and the job's ``Delays`` have passed; ``JobOutcome`` faults, ``cancel`` and the 48 h
limit end it FAILED, CANCELLED or EXPIRED instead. One worker thread serves every job, a step of
``step_lines`` lines at a time, round robin, so a long job does not hold back a short one.

Times: ``clock`` (monotonic seconds) drives the delays and ``wall`` (epoch seconds) the timestamps
and expiry, so tests can move either without sleeping. A job that was PENDING or RUNNING when the
emulator stopped starts again from its first line when an emulator opens the same data directory.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import hashlib
import itertools
import json
import os
import pickle
import random
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import STATUS_BY_CODE, ApiError
from .faults import Faults, LineFaults
from .store import Store, file_record, new_id, rfc3339

__all__ = ["JOB_TTL_S", "TERMINAL_STATES", "Jobs", "json_dumps", "json_loads"]

_orjson: Any
try:  # the "fast" extra; the stdlib codec is the fallback
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None

#: Jobs still pending or running this long after creation end EXPIRED, as on the service.
JOB_TTL_S = 48 * 3600.0
TERMINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED"})
_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main."
_META_TYPE = {"generate": _TYPE + "GenerateContentBatch", "embed": _TYPE + "EmbedContentBatch"}
_OUTPUT_TYPE = {"generate": _TYPE + "GenerateContentBatchOutput",
                "embed": _TYPE + "EmbedContentBatchOutput"}
_KEY_RE = re.compile(rb'"key"\s*:\s*"((?:[^"\\]|\\.)*)"')
_LINE_FIELDS = frozenset({"key", "request", "metadata"})


def json_loads(data: bytes | str) -> Any:
    """Decode JSON (orjson when installed)."""
    return _orjson.loads(data) if _orjson is not None else json.loads(data)


def json_dumps(obj: Any, *, pretty: bool = False) -> bytes:
    """Encode UTF-8 JSON (orjson when installed): compact, or indented with a final newline as the
    service answers HTTP calls."""
    if _orjson is not None:
        return _orjson.dumps(obj, option=_orjson.OPT_INDENT_2 | _orjson.OPT_APPEND_NEWLINE if pretty else 0)
    if pretty:
        return json.dumps(obj, indent=2, ensure_ascii=False).encode() + b"\n"
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _model_calls(kind: str) -> Callable[[str, dict[str, Any]], dict[str, Any]]:
    from . import model  # written alongside; imported late so the emulator starts without it loaded

    return model.generate_content if kind == "generate" else model.embed_content


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
    ``clock``/``wall`` (see the module docstring), ``shuffle_output`` (result files not in input
    order, as the service allows), ``step_lines`` (lines per worker step), ``workers`` (processes
    answering the lines of jobs of ``pool_min_lines`` or more; default: CPUs up to 4, 0: none).
    """

    def __init__(self, store: Store, faults: Faults, *, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, shuffle_output: bool = False,
                 step_lines: int = 1000, workers: int | None = None, pool_min_lines: int = 20_000,
                 idle_wait_s: float = 0.01) -> None:
        self.store, self.faults, self.clock, self.wall = store, faults, clock, wall
        self.shuffle_output, self.step_lines, self.idle_wait_s = shuffle_output, step_lines, idle_wait_s
        self.workers = min(os.cpu_count() or 1, 4) if workers is None else workers
        self.pool_min_lines = pool_min_lines
        self._line_pool: _LinePool | None = None
        self.lines_processed = 0
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._runs: dict[str, _Run] = {}
        now = clock()
        for job in store.jobs():
            if job["state"] not in TERMINAL_STATES:  # interrupted by a stop: run it again from the top
                job.update(succeeded=0, failed=0)
                store.work_path(job["id"]).unlink(missing_ok=True)
                self._runs[job["id"]] = _Run(t0=now)

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker thread."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="gembatch-emulator-worker", daemon=True)
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
    def create(self, *, kind: str, model: str, display_name: str | None, file_name: str | None = None,
               inline: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Create a job over an uploaded JSONL file or inline ``[{"request", "metadata"?}]`` items."""
        jid = new_id()
        if file_name is not None:
            if self.store.get_file(file_name) is None:
                raise ApiError(404, f"Requested entity was not found: input file {file_name}.")
            count = _count_lines(self.store.blob_path(file_name))
            source: dict[str, Any] = {"file": file_name}
        else:
            assert inline is not None
            with open(self.store.job_path(jid, ".requests.jsonl"), "wb") as f:
                f.writelines(json_dumps(item) + b"\n" for item in inline)
            count, source = len(inline), {"inline": len(inline)}
        now = self.wall()
        job = {"id": jid, "_seq": self.store.next_seq(), "kind": kind, "model": model,
               "displayName": display_name or "", "state": "PENDING", "createTime": rfc3339(now),
               "updateTime": rfc3339(now), "_created": now, "input": source,
               "requestCount": count, "succeeded": 0, "failed": 0, "faults": self.faults.on_job()}
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
                raise ApiError(400, f"The batch batches/{jid} is already {job['state'].lower()} and "
                               "cannot be cancelled.", "FAILED_PRECONDITION")
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

    def render(self, job: dict[str, Any]) -> dict[str, Any]:
        """The job as the service sends it: an Operation named ``batches/<id>``."""
        name, state, kind = f"batches/{job['id']}", job["state"], job["kind"]
        done = job["succeeded"] + job["failed"]
        counts = {"requestCount": job["requestCount"], "successfulRequestCount": job["succeeded"],
                  "failedRequestCount": job["failed"], "pendingRequestCount": job["requestCount"] - done}
        meta: dict[str, Any] = {"@type": _META_TYPE[kind], "model": job["model"]}
        if job["displayName"]:  # proto3 JSON leaves out empty strings
            meta["displayName"] = job["displayName"]
        if "file" in job["input"]:
            meta["inputConfig"] = {"fileName": job["input"]["file"]}
        meta.update({"state": f"BATCH_STATE_{state}", "createTime": job["createTime"],
                     "updateTime": job["updateTime"]})
        if "endTime" in job:
            meta["endTime"] = job["endTime"]
        # proto3 JSON leaves out zero counts, as the service does
        meta["batchStats"] = {k: str(v) for k, v in counts.items() if v}
        output = self._output(job)
        if output is not None:
            meta["output"] = output
        meta["name"] = name
        op: dict[str, Any] = {"name": name, "done": state in TERMINAL_STATES, "metadata": meta}
        if output is not None:
            op["response"] = {"@type": _OUTPUT_TYPE[kind], **output}
        if "error" in job:
            op["error"] = job["error"]
        return op

    def _output(self, job: dict[str, Any]) -> dict[str, Any] | None:
        out = job.get("output")
        if out is None:
            return None
        if "file" in out:
            return {"responsesFile": out["file"]}
        items = []
        path = self.store.job_path(job["id"], ".results.jsonl")
        if path.exists():
            with open(path, "rb") as f:
                items = [json_loads(line) for line in f if line.strip()]
        return {"inlinedResponses": {"inlinedResponses": items}}

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
            self._finish(jid, run, "FAILED", error={"code": 13, "message": f"Internal error: {exc}"})
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
        elif (job["state"] == "RUNNING" and run.lines_done_at is not None
              and now >= run.lines_done_at + delays.get("running_s", 0.0)
              and now >= run.t0 + delays.get("results_after_s", 0.0)):
            outcome = job["faults"].get("outcome")
            if outcome is None:
                self._finish(jid, run, "SUCCEEDED")
            else:
                error = {"code": 13, "message": outcome["message"]} if outcome["state"] == "FAILED" else None
                self._finish(jid, run, outcome["state"], error=error)

    def _start(self, jid: str, run: _Run, job: dict[str, Any]) -> None:
        source = job["input"]
        path = (self.store.blob_path(source["file"]) if "file" in source
                else self.store.job_path(jid, ".requests.jsonl"))
        if not path.exists():
            self._finish(jid, run, "FAILED", error={
                "code": 5, "message": f"Input file {source.get('file')} was not found (deleted?)."})
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
                self.store.put_file(file_record(
                    name=name, display_name=f"batch-{jid}-results", mime_type="application/jsonl",
                    size=run.size, sha256_b64=base64.b64encode(run.hasher.digest()).decode(),
                    source="GENERATED", now=self.wall(), seq=self.store.next_seq()))
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

    def _lines(self, jid: str, run: _Run, job: dict[str, Any], path: os.PathLike[str]) -> Iterator[None]:
        """Process the job's input into its work file, one chunk of ``step_lines`` lines per step.

        Big jobs have their chunks answered by a process pool (the fake model costs tens of
        microseconds a line); results are written in input order either way.
        """
        faults = job["faults"]
        line_faults = faults.get("lines")
        spec = (job["kind"], job["model"], "inline" in job["input"],
                line_faults if line_faults and LineFaults(**line_faults).active else None)
        outcome = faults.get("outcome")
        limit = outcome["after_lines"] if outcome is not None else None
        chunks = _chunks(path, self.step_lines, limit)
        target = job["requestCount"] if limit is None else min(limit, job["requestCount"])
        shuffle = random.Random(jid) if self.shuffle_output and not spec[2] else None
        pool = self._pool() if job["requestCount"] >= self.pool_min_lines else None
        with _released(pool):
            results: Generator[tuple[list[bytes], int, int], None, None] = (
                pool.map(spec, chunks) if pool is not None
                else (process_chunk(spec, start, lines) for start, lines in chunks))
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

    def _pool(self) -> _LinePool | None:
        """The worker processes, started on first use; None when ``workers`` is 0 or they are busy."""
        with self._lock:
            if self.workers <= 0 or not sys.executable:
                return None
            if self._line_pool is None or self._line_pool.broken:
                if self._line_pool is not None:
                    self._line_pool.close()
                self._line_pool = _LinePool(self.workers)
            return self._line_pool if self._line_pool.lock.acquire(blocking=False) else None

    def _count(self, jid: str, succeeded: int, failed: int) -> None:
        with self._lock:
            job = self.store.get_job(jid)
            if job is not None:
                job["succeeded"] += succeeded
                job["failed"] += failed
            self.lines_processed += succeeded + failed


_Spec = tuple[str, str, bool, dict[str, Any] | None]  # kind, model, inline, line faults


def _chunks(path: os.PathLike[str], size: int, limit: int | None) -> Iterator[tuple[int, list[bytes]]]:
    """(index of the first line, non-blank lines) in chunks of ``size``, at most ``limit`` lines."""
    chunk: list[bytes] = []
    index = 0
    with open(path, "rb") as src:
        for raw in src:
            if limit is not None and index + len(chunk) >= limit:
                break
            if raw.isspace():
                continue
            chunk.append(raw)
            if len(chunk) == size:
                yield index, chunk
                index, chunk = index + size, []
    if chunk:
        yield index, chunk


class _LinePool:
    """Worker processes answering chunks of lines, each with at most one chunk in flight.

    Started as ``python -c`` programs that import only ``gembatch.emulator`` (never the caller's
    ``__main__``, unlike multiprocessing's spawn and forkserver), talking length-prefixed pickles over
    their stdin and stdout. One job uses the pool at a time (``lock``); others run in-thread meanwhile.
    """

    _CODE = ("import sys, types; pkg = types.ModuleType('gembatch'); pkg.__path__ = [sys.argv[1]]; "
             "sys.modules['gembatch'] = pkg; from gembatch.emulator.jobs import serve_chunks; serve_chunks()")

    def __init__(self, size: int) -> None:
        package_dir = str(Path(__file__).resolve().parents[1])  # skip gembatch/__init__: stay light
        self.lock = threading.Lock()
        self.broken = False
        self._procs = [subprocess.Popen([sys.executable, "-c", self._CODE, package_dir],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
                       for _ in range(size)]

    def map(self, spec: _Spec, chunks: Iterator[tuple[int, list[bytes]]]
            ) -> Generator[tuple[list[bytes], int, int], None, None]:
        """``process_chunk`` over ``chunks`` in the workers, results in input order."""
        busy: collections.deque[subprocess.Popen[bytes]] = collections.deque()
        try:
            for proc, (start, lines) in zip(itertools.cycle(self._procs), chunks):
                if len(busy) == len(self._procs):
                    yield self._receive(busy.popleft())
                _send(proc.stdin, (spec, start, lines))
                busy.append(proc)
            while busy:
                yield self._receive(busy.popleft())
        finally:
            while busy and not self.broken:  # a cancelled job: collect what is in flight
                self._receive(busy.popleft())

    def _receive(self, proc: subprocess.Popen[bytes]) -> tuple[list[bytes], int, int]:
        try:
            status, value = _recv(proc.stdout)
        except (EOFError, OSError) as exc:
            self.broken = True
            raise RuntimeError("an emulator worker process ended unexpectedly") from exc
        if status != "ok":
            raise RuntimeError(f"an emulator worker process failed: {value}")
        return value  # type: ignore[no-any-return]

    def close(self) -> None:
        for proc in self._procs:
            try:
                proc.stdin.close()  # type: ignore[union-attr]
                proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


@contextlib.contextmanager
def _released(pool: _LinePool | None) -> Iterator[None]:
    try:
        yield
    finally:
        if pool is not None:
            pool.lock.release()


def _send(stream: Any, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(len(data).to_bytes(8, "little") + data)
    stream.flush()


def _recv(stream: Any) -> Any:
    head = stream.read(8)
    if len(head) < 8:
        raise EOFError("worker stream closed")
    size = int.from_bytes(head, "little")
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("worker stream closed")
    return pickle.loads(data)


def serve_chunks() -> None:
    """The worker process: answer ``(spec, start, lines)`` requests from stdin until it closes."""
    source, sink = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print must not corrupt the replies
    sys.stdout = sys.stderr
    while True:
        try:
            spec, start, lines = _recv(source)
        except EOFError:
            return
        try:
            reply: tuple[str, Any] = ("ok", process_chunk(spec, start, lines))
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the job
            reply = ("error", f"{type(exc).__name__}: {exc}")
        _send(sink, reply)


def process_chunk(spec: _Spec, start: int, lines: list[bytes]) -> tuple[list[bytes], int, int]:
    """Answer input lines: (result lines, each ending in a newline; successes; failures).

    Module level and pure, so a process pool can run it.
    """
    kind, model, inline, fault_spec = spec
    call = _model_calls(kind)
    faults = LineFaults(**fault_spec) if fault_spec else None
    out: list[bytes] = []
    succeeded = 0
    for index, raw in enumerate(lines, start):
        head, body, ok = _run_line(raw, index, call, model, inline)
        copies, malformed = 1, False
        if faults is not None:
            key = head.get("metadata", {}).get("key") if inline else head.get("key")
            err, missing, duplicate, malformed = faults.pick(str(index if key is None else key))
            if err and ok:
                body, ok = {"error": _injected_error(faults.error_code)}, False
            copies = 0 if missing else 2 if duplicate else 1
        succeeded += ok
        if copies:
            data = json_dumps({**body, **head} if inline else {**head, **body})
            if malformed and not inline:
                data = data[: max(1, len(data) // 2)]
            out.extend([data + b"\n"] * copies)
    return out, succeeded, len(lines) - succeeded


def _injected_error(code: int) -> dict[str, Any]:
    message = "Internal error encountered." if code == 500 else "An injected emulator error."
    return {"code": code, "message": message, "status": STATUS_BY_CODE.get(code, "UNKNOWN")}


def _run_line(raw: bytes, index: int, call: Callable[[str, dict[str, Any]], dict[str, Any]],
              model: str, inline: bool) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """One input line -> (head: key or metadata, body: response or error, ok)."""
    head: dict[str, Any] = {}
    try:
        obj = json_loads(raw)
    except ValueError as exc:
        match = _KEY_RE.search(raw)
        if match:
            try:
                head["key"] = json.loads(b'"' + match.group(1) + b'"')
            except ValueError:
                pass
        return head, _error(f"Invalid JSON payload received on line {index + 1}: {exc}"), False
    if not isinstance(obj, dict):
        return head, _error(f"Invalid JSON payload received on line {index + 1}: "
                            "a line must be a JSON object."), False
    if "request" in obj:
        if inline:
            if "metadata" in obj:
                head["metadata"] = obj["metadata"]
        elif "key" in obj:
            head["key"] = obj["key"]
        unknown = [k for k in obj if k not in _LINE_FIELDS]
        if unknown:
            return head, _error(f'Invalid JSON payload received. Unknown name "{unknown[0]}" on line '
                                f"{index + 1}: Cannot find field."), False
        request = obj["request"]
    elif "key" in obj:
        head["key"] = obj["key"]
        return head, _error(f"Line {index + 1} has no \"request\": expected "
                            '{"key": ..., "request": {...}}.'), False
    else:
        request = obj  # the bare-request form (the guide's REST example): no key
    if not isinstance(request, dict):
        return head, _error(f'Invalid JSON payload received on line {index + 1}: "request" must be '
                            "an object."), False
    try:
        return head, {"response": call(model, request)}, True
    except ApiError as exc:
        return head, {"error": exc.to_status()}, False


def _error(message: str) -> dict[str, Any]:
    return {"error": ApiError(400, message).to_status()}


def _count_lines(path: os.PathLike[str]) -> int:
    """Non-blank lines of a file, streamed."""
    count = 0
    with open(path, "rb") as f:
        for line in f:
            if not line.isspace():
                count += 1
    return count
