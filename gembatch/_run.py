"""The state machine that drives a run: upload -> create -> poll -> fetch -> join, shard by shard.

Each step first records its intent in the journal, then makes the remote call, then records the outcome.
A step that finds an intent recorded by a process that died (``UPLOADING``, ``CREATING``) first looks on
the service for the file or job by the shard's deterministic display name and adopts it, so a job is
never created twice for the same shard and a produced result is never lost.
"""

from __future__ import annotations

import json
import pathlib
import random
import time
import warnings
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

import polars as pl

from ._results import parse as rs
from ._service.backend import Backend, RemoteFile, RemoteJob
from .exceptions import GembatchError, ResultWarning, TransientServiceError
from ._state.journal import Journal, ShardRecord, ShardState
from ._build.prepare import HASH_COL, KEY_COL, SEND_COL, VIA_COL, Options
from .progress import NullProgress, Progress, Snapshot
from ._storage import OutputSink, Store

if TYPE_CHECKING:
    from .cache import ResultCache

__all__ = ["Runner"]

T = TypeVar("T")
S = ShardState
STATUS_FOR_JOB_STATE = {
    "JOB_STATE_FAILED": "error",
    "JOB_STATE_CANCELLED": "cancelled",
    "JOB_STATE_EXPIRED": "expired",
}


class Runner:
    """Drives one run directory to completion against one backend."""

    def __init__(
        self,
        journal: Journal,
        backend: Backend,
        options: Options,
        *,
        progress: Progress | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sink: OutputSink | None = None,
        cache: ResultCache | None = None,
    ) -> None:
        self.journal = journal
        self.cache = cache
        self.store = journal.store
        self.backend = backend
        self.options = options
        self.progress = progress or NullProgress()
        self._sleep = sleep
        self._clock = clock
        self._wall = wall
        self.sink = sink
        self.kind = journal.manifest.get("kind", "generate")
        self.model = journal.manifest["model"]

    @property
    def shards(self) -> list[ShardRecord]:
        return self.journal.shards

    # -- submission ------------------------------------------------------------------------------
    def submit(self) -> None:
        """Upload and create every shard not yet submitted (uploads in parallel)."""
        todo = [r for r in self.journal.records() if r.state.rank < S.SUBMITTED.rank and r.mode != "none"]
        if not todo:
            return
        workers = min(self.options.upload_concurrency, len(todo))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gembatch-submit") as pool:
            outcomes = list(pool.map(self._submit_safely, todo))
        errors = [e for e in outcomes if e is not None]
        if errors:
            raise errors[0]

    def _submit_safely(self, shard: ShardRecord) -> GembatchError | None:
        try:
            self._submit_one(shard)
        except GembatchError as exc:
            return exc
        return None

    def _submit_one(self, shard: ShardRecord) -> None:
        if shard.mode == "file":
            if shard.state is S.PREPARED:
                self.journal.move(shard, S.UPLOADING)
                self._upload(shard, look_first=False)
            elif shard.state is S.UPLOADING:
                self._upload(shard, look_first=True)
        if shard.state in (S.UPLOADED, S.PREPARED):
            self.journal.move(shard, S.CREATING)
            self._create(shard, look_first=False)
        elif shard.state is S.CREATING:
            self._create(shard, look_first=True)

    def _exactly_once(
        self, what: str, *, look: Callable[[], list[T]], act: Callable[[], T],
        adopt: Callable[[list[T]], None], look_first: bool,
    ) -> None:
        """Look for the remote object (when an earlier try may have made it), else make it.

        Only transient failures are tried again, each time looking first: a create whose response was
        lost is found by the look and adopted instead of being sent again.
        """
        policy = self.backend.retry
        for attempt in range(policy.attempts):
            if look_first:
                found = look()
                if found:
                    adopt(found)
                    return
            try:
                made = act()
            except TransientServiceError as exc:
                if attempt + 1 >= policy.attempts:
                    raise TransientServiceError(
                        f"{exc} Gave up after {policy.attempts} tries. Nothing was lost and nothing "
                        "will be sent twice. Hint: run the same call again, or "
                        f"gembatch.BatchRun.open({self.store.url!r}).wait(), to resume.",
                        code=exc.code, status=exc.status,
                    ) from exc
                delay = min(policy.max_delay, policy.initial_delay * 2**attempt)
                self._sleep(delay + random.uniform(0, policy.jitter))
                look_first = True
                continue
            adopt([made])
            return

    def _upload(self, shard: ShardRecord, *, look_first: bool) -> None:
        def act() -> RemoteFile:
            with self.store.open(shard.path("requests.jsonl"), "rb") as stream:
                return self.backend.upload(stream, display_name=shard.display_name)

        def look() -> list[RemoteFile]:
            return [f for f in self.backend.find_files(shard.display_name)
                    if f.state in (None, "ACTIVE") and f.size_bytes in (None, shard.bytes)]

        def adopt(files: list[RemoteFile]) -> None:
            keep, *extra = files
            for orphan in extra:  # copies left by uploads whose answer was lost
                self.backend.delete_file(orphan.name)
            self.journal.move(shard, S.UPLOADED, file_name=keep.name,
                              note=f"uploaded {keep.name}" + (f" (+{len(extra)} orphans deleted)" if extra else ""))

        self._exactly_once("upload", look=look, act=act, adopt=adopt, look_first=look_first)

    def _create(self, shard: ShardRecord, *, look_first: bool) -> None:
        def act() -> RemoteJob:
            if shard.mode == "inline":
                lines = self.store.read_lines(shard.path("requests.jsonl")).to_list()
                return self.backend.create(kind=self.kind, model=self.model,
                                           display_name=shard.display_name, inline_lines=lines)
            return self.backend.create(kind=self.kind, model=self.model,
                                       display_name=shard.display_name, file_name=shard.file_name)

        def adopt(jobs: list[RemoteJob]) -> None:
            job = jobs[0]
            note = f"created {job.name}" if not look_first else f"adopted {job.name}"
            if len(jobs) > 1:
                note += f" ({len(jobs) - 1} other jobs share its display name: {[j.name for j in jobs[1:]]})"
            now = self._wall()
            self.journal.move(shard, S.SUBMITTED, job_name=job.name, job_state=job.state, note=note,
                              submitted_at=now, progress_at=now)

        self._exactly_once("create", look=lambda: self.backend.find_jobs(shard.display_name),
                           act=act, adopt=adopt, look_first=look_first)

    # -- polling, fetching, joining --------------------------------------------------------------
    def step(self) -> bool:
        """Advance every shard and resubmission by what can be done now; True when something changed."""
        changed = False
        for shard in self.shards:
            for record in (shard, *self.journal.retries.get(shard.index, [])):
                before = (record.state, record.job_state, json.dumps(record.stats))
                if record.state is S.SUBMITTED:
                    self._poll(record)
                if record.state is S.FINISHED:
                    self._fetch(record)
                changed |= before != (record.state, record.job_state, json.dumps(record.stats))
            changed |= self._settle(shard)
        return changed

    def _settle(self, shard: ShardRecord) -> bool:
        """Join a shard whose results (and its resubmissions') are in; resubmit what must go again."""
        changed = False
        retries = self.journal.retries.get(shard.index, [])
        fetched = [r for r in (shard, *retries) if r.state is S.FETCHED]
        if fetched and shard.state.rank >= S.FETCHED.rank:
            self._join(shard)
            for record in fetched:
                if record is not shard:
                    self.journal.move(record, S.JOINED, note="merged into its shard")
            changed = True
            changed |= self._maybe_resubmit(shard, fetched)
        final = all(r.state is S.JOINED for r in (shard, *retries))
        if final and self.options.cleanup_remote:
            for record in (shard, *retries):
                if not record.cleaned:
                    self._cleanup(record)
        if final and self.sink is not None:
            self.sink.offer(shard.index, self.store, shard.path("output.parquet"))
        return changed

    def _in_flight(self, shard: ShardRecord) -> bool:
        return any(r.state.rank < S.FETCHED.rank for r in self.journal.retries.get(shard.index, []))

    def _maybe_resubmit(self, shard: ShardRecord, fetched: list[ShardRecord]) -> bool:
        """Send again the rows of an EXPIRED job, or of a job the watchdog cancelled (split in two)."""
        expired = self.options.resubmit_expired and any(r.job_state == "JOB_STATE_EXPIRED" for r in fetched)
        stuck = any(r.watchdog for r in fetched)
        if not (expired or stuck) or self._in_flight(shard):
            return False
        return self.resubmit(shard, reason="watchdog" if stuck else "expired",
                             include_errors=False, parts=2 if stuck else 1) > 0

    def resubmit(self, shard: ShardRecord, *, reason: str, include_errors: bool, parts: int = 1) -> int:
        """Record resubmissions of the shard's unanswered (and, if asked, retryable-error) rows."""
        if len(shard.retries) >= self.options.max_resubmits or self._in_flight(shard):
            return 0
        lines = retryable_lines(self.journal, shard, include_errors=include_errors)
        if not lines:
            return 0
        parts = max(1, min(parts, len(lines), self.options.max_resubmits - len(shard.retries)))
        size = -(-len(lines) // parts)
        for i in range(0, len(lines), size):
            self.journal.add_retry(shard, lines[i:i + size], reason)
        return len(lines)

    def _inline_keys(self, shard: ShardRecord) -> list[str] | None:
        if shard.mode != "inline":
            return None
        lines = self.store.read_lines(shard.path("requests.jsonl"))
        return lines.str.json_path_match("$.key").to_list()

    def _poll(self, shard: ShardRecord) -> None:
        assert shard.job_name is not None
        job = self.backend.get(shard.job_name, inline_keys=self._inline_keys(shard))
        if not job.done:
            if job.state != shard.job_state or (job.stats and job.stats != shard.stats):
                self.journal.progress(shard, job_state=job.state, stats=job.stats or shard.stats,
                                      at=self._wall())
            self._watch(shard)
            return
        fields: dict[str, Any] = {"job_state": job.state, "job_error": job.error,
                                  "result_file": job.result_file, "stats": job.stats or shard.stats}
        if job.inline_lines is not None:
            data = "".join(line + "\n" for line in job.inline_lines).encode()
            self.store.write_bytes(shard.path("results.jsonl"), data)
            self.journal.move(shard, S.FETCHED, note=f"{job.state}, inline results saved", **fields)
        else:
            self.journal.move(shard, S.FINISHED, note=job.state, **fields)

    def _watch(self, shard: ShardRecord) -> None:
        """Cancel a job that has not started or progressed within ``options.stuck_after`` seconds."""
        limit = self.options.stuck_after
        since = shard.progress_at or shard.submitted_at
        if limit is None or since is None or shard.watchdog or self._wall() - since < limit:
            return
        if len(self.journal.retries.get(shard.index if shard.parent is None else shard.parent, [])) >= self.options.max_resubmits:
            return
        assert shard.job_name is not None
        self.journal.move(shard, S.SUBMITTED, watchdog=True,
                          note=f"watchdog: no progress for {limit:g} s in {shard.job_state}; cancelling")
        self.backend.cancel(shard.job_name)

    def _fetch(self, shard: ShardRecord) -> None:
        target = shard.path("results.jsonl")
        if shard.result_file:
            self.backend.download(shard.result_file, lambda: self.store.atomic_writer(target))
        else:  # no output (expired, or cancelled/failed before any line)
            self.store.write_bytes(target, b"")
        self.journal.move(shard, S.FETCHED, note=f"results of {shard.job_name} saved")

    def _join(self, shard: ShardRecord) -> None:
        joined, report = join_shard(self.journal, shard, self.options.prefix)
        write_output(self.store, shard.path("output.parquet"), output_frame(joined))
        self._remember(shard, joined)
        self.journal.move(shard, S.JOINED, report=report)

    def _remember(self, shard: ShardRecord, joined: pl.DataFrame) -> None:
        """Put the shard's fresh ``ok`` answers in the result cache (a failure only warns: the cache
        saves money, the run directory holds the results)."""
        prefix = self.options.prefix
        if self.cache is None or HASH_COL not in joined.columns:
            return
        fresh = joined.filter((pl.col(VIA_COL) == "line") & (pl.col(f"{prefix}status") == "ok"))
        if not fresh.height:
            return
        try:
            version = f"{prefix}model_version"
            entries = fresh.select(
                pl.col(KEY_COL).alias("key"), pl.col(HASH_COL).alias("hash"),
                (pl.col(version) if version in fresh.columns else pl.lit(None, dtype=pl.Utf8))
                .alias("model_version"),
            ).join(raw_answers(self.journal, shard), on="key", how="inner")
            self.cache.put(entries.with_columns(pl.lit(self.model).alias("model")))
        except Exception as exc:  # noqa: BLE001 - the cache is an optimisation, never a failure
            warnings.warn(f"gembatch could not add shard {shard.index}'s answers to the result cache "
                          f"{self.cache.path!r}: {exc}", ResultWarning, stacklevel=2)

    def _cleanup(self, shard: ShardRecord) -> None:
        for name in (shard.file_name, shard.result_file):
            if name:
                self.backend.delete_file(name)
        self.journal.move(shard, S.JOINED, cleaned=True, note="remote files deleted")

    # -- waiting ---------------------------------------------------------------------------------
    def done(self) -> bool:
        return all(r.state is S.JOINED for r in self.journal.records())

    def snapshot(self) -> Snapshot:
        total = done = failed = 0
        jobs: Counter[str] = Counter()
        for s in self.shards:
            total += s.lines
            if s.job_state:
                jobs[s.job_state] += 1
            if s.report is not None:
                done += s.report.get("answered", 0)
                failed += s.report.get("failed", 0)
            elif s.stats:
                done += s.stats.get("successfulRequestCount", 0) + s.stats.get("failedRequestCount", 0)
                failed += s.stats.get("failedRequestCount", 0)
        return Snapshot(total=total, done=done, failed=failed, jobs=jobs)

    def wait(self, timeout: float | None = None) -> bool:
        """Submit what is left, then poll until every shard is joined; False on timeout."""
        deadline = None if timeout is None else self._clock() + timeout
        interval = self.options.poll_interval
        try:
            while True:
                self.submit()  # resubmissions recorded by the last step
                changed = self.step()
                self.progress.update(self.snapshot())
                if self.done():
                    return True
                if deadline is not None and self._clock() >= deadline:
                    return False
                interval = self.options.poll_interval if changed else min(
                    interval * 1.5, self.options.max_poll_interval)
                pause = interval if deadline is None else max(0.0, min(interval, deadline - self._clock()))
                self._sleep(pause)
        finally:
            self.progress.close()


RETRYABLE_ERROR_CODES = (408, 429, 500, 502, 503, 504)


def _read_results(store: Any, rel: str) -> Any:
    """A local results file as a path (memory-mapped by the parser: ~1.2x faster), else its bytes."""
    local = store.local_path(rel)
    return pathlib.Path(local) if local is not None else store.read_bytes(rel)


def _parse(journal: Journal, record: ShardRecord) -> pl.DataFrame:
    lines = _read_results(journal.store, record.path("results.jsonl"))
    if journal.manifest.get("kind") == "embed":
        parsed = rs.parse_embed_lines(lines, dimensions=journal.manifest.get("dimensions"))
    else:
        parsed = rs.parse_generate_lines(lines)
    return parsed.with_columns(pl.lit(record.job_name, dtype=pl.Utf8).alias("batch_job"))


def merged_results(journal: Journal, shard: ShardRecord) -> tuple[pl.DataFrame, ShardRecord]:
    """The shard's results with those of its fetched resubmissions laid over them (later wins), and
    the last record whose job ended (its outcome applies to rows still unanswered)."""
    merged = _parse(journal, shard)
    last = shard
    for child in journal.retries.get(shard.index, []):
        if child.state.rank < S.FETCHED.rank:
            continue
        newer = _parse(journal, child)
        merged = pl.concat([
            merged.filter(~pl.col("key").is_in(newer["key"].drop_nulls().implode()).fill_null(False)),
            newer,
        ], how="vertical_relaxed")
        last = child
    return merged, last


def retryable_lines(journal: Journal, shard: ShardRecord, *, include_errors: bool) -> list[str]:
    """Request lines of the shard still unanswered (and, if asked, answered with a retryable error)."""
    requests = journal.store.read_lines(shard.path("requests.jsonl"))
    keys = requests.str.json_path_match("$.key")
    results, _ = merged_results(journal, shard)
    answered = results.filter(pl.col("key").is_not_null())
    need = ~keys.is_in(answered["key"].implode())
    if include_errors:
        bad = answered.filter((pl.col("status") == "error") &
                              pl.col("error_code").is_in(list(RETRYABLE_ERROR_CODES)))["key"]
        good = answered.filter(pl.col("status") == "ok")["key"]
        need = need | (keys.is_in(bad.implode()) & ~keys.is_in(good.implode()))
    return requests.filter(need).to_list()


def _cached_results(journal: Journal, shard: ShardRecord) -> pl.DataFrame | None:
    """The parsed answers the result cache gave this shard's rows at prepare time (None: none)."""
    rel = shard.path("cached.jsonl")
    if not journal.store.exists(rel):
        return None
    lines = journal.store.read_bytes(rel)
    if journal.manifest.get("kind") == "embed":
        parsed = rs.parse_embed_lines(lines, dimensions=journal.manifest.get("dimensions"))
    else:
        parsed = rs.parse_generate_lines(lines)
    return parsed.with_columns(pl.lit(None, dtype=pl.Utf8).alias("batch_job"))


_ORIGIN = {"line": "batch", "dup": "dedup", "cache": "cache"}


def write_output(store: Store, rel: str, frame: pl.DataFrame) -> None:
    """Write a shard's output file. Snappy: half zstd's time for ~1.4x its size; the file is written
    once per shard and is what a dataset-directory sink receives as its part file (as pyarrow would
    write it by default)."""
    store.write_parquet(rel, frame, compression="snappy")


def join_shard(journal: Journal, shard: ShardRecord, prefix: str) -> tuple[pl.DataFrame, dict[str, int]]:
    """The shard's input rows joined with its (merged) results, job outcomes applied.

    A row routed ``dup`` takes the answer of the row of this shard that sent the same request; a row
    routed ``cache`` its cached answer. The ``{prefix}origin`` column tells which (``batch``, ``dedup``,
    ``cache``; null for skipped rows). The internal columns (key, hash, route) are kept: callers drop
    them with :func:`output_frame`.
    """
    store, manifest = journal.store, journal.manifest
    rows = store.read_parquet(shard.path("input.parquet"))
    results, last = merged_results(journal, shard)
    cached = _cached_results(journal, shard)
    if cached is not None:
        results = pl.concat([results, cached], how="vertical_relaxed")
    answer = pl.col(KEY_COL)
    if VIA_COL in rows.columns and bool((rows[VIA_COL] == "dup").any()):
        senders = rows.filter(pl.col(VIA_COL) == "line").select(HASH_COL, pl.col(KEY_COL).alias(_SENDER))
        rows = rows.join(senders.unique(HASH_COL, keep="first"), on=HASH_COL, how="left", maintain_order="left")
        answer = pl.when(pl.col(VIA_COL) == "dup").then(pl.col(_SENDER)).otherwise(pl.col(KEY_COL))
    joined, report = rs.join_results(
        rows, key=answer, results=results, prefix=prefix, send_mask=rows[SEND_COL],
    )
    joined = joined.drop(_SENDER, strict=False)
    job, origin = f"{prefix}batch_job", f"{prefix}origin"
    via = pl.col(VIA_COL) if VIA_COL in joined.columns else \
        pl.when(pl.col(SEND_COL)).then(pl.lit("line"))
    joined = joined.with_columns(
        pl.when(via == "cache").then(pl.col(job))
        .otherwise(pl.coalesce(pl.col(job), pl.lit(last.job_name, dtype=pl.Utf8))).alias(job),
        via.replace_strict(_ORIGIN, default=None, return_dtype=pl.Utf8).alias(origin),
    )
    status, message = f"{prefix}status", f"{prefix}error_message"
    outcome = STATUS_FOR_JOB_STATE.get(last.job_state or "")
    if outcome is not None:  # rows the job never answered take the job's outcome
        reason = last.job_error or f"the batch job ended {last.job_state}"
        joined = joined.with_columns(
            pl.when(pl.col(status) == "missing").then(pl.lit(reason)).otherwise(pl.col(message)).alias(message),
            pl.when(pl.col(status) == "missing").then(pl.lit(outcome)).otherwise(pl.col(status)).alias(status),
        )
    schema = manifest.get("response_schema")
    if schema is not None and manifest.get("kind") != "embed":
        dtype = rs.polars_dtype_from_json_schema(schema)
        parsed, errors = rs.parse_structured(joined[f"{prefix}text"], dtype)
        bad = errors.is_not_null() & (joined[status] == "ok")
        joined = joined.with_columns(
            parsed.alias(f"{prefix}parsed"),
            pl.when(bad).then(pl.lit("error")).otherwise(pl.col(status)).alias(status),
            pl.when(bad).then(errors).otherwise(pl.col(message)).alias(message),
        )
    counts = joined[status].value_counts()
    by_status = dict(zip(counts[status].to_list(), counts["count"].to_list()))
    summary = {
        "answered": int(by_status.get("ok", 0) + by_status.get("error", 0)),
        "failed": int(by_status.get("error", 0)),
        **{f"status_{k}": int(v) for k, v in by_status.items()},
        **{k: int(v) for k, v in vars(report).items() if isinstance(v, int)},
        "missing": int(by_status.get("missing", 0)),  # rows a finished job did not answer
    }
    summary["deduplicated"] = int((joined[origin] == "dedup").sum())
    summary["cached"] = int((joined[origin] == "cache").sum())
    return joined, summary


_SENDER = "__gembatch_sender"


def output_frame(joined: pl.DataFrame) -> pl.DataFrame:
    """A joined shard without gembatch's internal columns."""
    return joined.drop([c for c in (KEY_COL, SEND_COL, HASH_COL, VIA_COL) if c in joined.columns])


def raw_answers(journal: Journal, shard: ShardRecord) -> pl.DataFrame:
    """``key`` and ``response`` (raw JSON) of the shard's result lines that hold a response, its
    resubmissions' laid over them (later wins)."""
    frames = []
    for record in (shard, *journal.retries.get(shard.index, [])):
        if record.state.rank < S.FETCHED.rank or not journal.store.exists(record.path("results.jsonl")):
            continue
        lines = rs.lines_from_bytes(journal.store.read_bytes(record.path("results.jsonl")))
        frames.append(lines.to_frame("line").select(
            pl.col("line").str.json_path_match("$.key").alias("key"),
            pl.col("line").str.json_path_match("$.response").alias("response"),
        ).filter(pl.col("key").is_not_null() & pl.col("response").is_not_null()))
    if not frames:
        return pl.DataFrame(schema={"key": pl.Utf8, "response": pl.Utf8})
    return pl.concat(frames).unique("key", keep="last", maintain_order=True)
