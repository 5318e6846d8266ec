"""Steps 4-7 of a run, shard by shard: submit (exactly once), poll, fetch, join; resubmit what
must go again; clean up. :class:`Run` drives one run directory against the service until every
shard is joined; :mod:`gembatch._run.flow` decides when.

Exactly once: before an upload or a create the journal records the intent (``UPLOADING`` /
``CREATING``) under the record's deterministic display name. Every submission round first lists the
account's jobs and files once, and a record whose file or job is already there is adopted instead of
sent: so a process that died after the paid call, a lost answer, or a state file rolled back never
pays twice.

What the real service does that this module copes with (docs/service-behaviour.md): a job reported
SUCCEEDED before its result file is set (keep polling); a job or result file that disappeared (the
unanswered rows go again); a create refused for some invalid request lines (those rows get the
service's error, the others go in a new job); inline answers without their keys (never joined by
position: the rows go again through a file); result files the File API refuses to delete (recorded
and warned about, never fatal).
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import re
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import polars as pl

from .._build.lines import answer_lines, write_jsonl
from .._build.shards import fits_inline
from .._money.estimate import local_tokens
from .._money.plan import Plan, prepared_plan
from .._money.pricing import PriceTable
from .._results.join import answered_entries, join_shard, lines_to_resend
from .._state.journal import Journal
from .._state.records import HASH, KEY, VIA, ShardRecord, ShardState
from .._storage import DigestedFile, OutputSink
from ..config import Options, RetryPolicy
from ..exceptions import (
    CorruptRunError,
    GembatchError,
    ResultWarning,
    ServiceError,
    TerminalServiceError,
    TransientServiceError,
)
from ..progress import NullProgress, Progress, Snapshot
from .budget import Budget
from .live import TO_BATCH, LiveSender

if TYPE_CHECKING:
    from .._service.backend import Backend
    from .._service.remote import RemoteFile, RemoteJob
    from ..cache import ResultCache

__all__ = ["COUNTED_REASONS", "CleanupWarning", "Run"]

T = TypeVar("T")
S = ShardState
logger = logging.getLogger("gembatch")
#: A shard's phase, as status and progress count them.
_PHASE = {
    S.PREPARED: "queued",
    S.UPLOADING: "uploading",
    S.UPLOADED: "uploading",
    S.CREATING: "uploading",
    S.SUBMITTED: "running",
    S.FINISHED: "running",
    S.FETCHED: "done",
    S.JOINED: "done",
}
#: Why rows are sent again; resubmissions for these reasons count against ``Options.max_resubmits``
#: (``refused``: the rows left after the service refused some lines at create, does not: nothing of
#: it was paid).
COUNTED_REASONS = frozenset({"expired", "watchdog", "retry_failed", "lost", "unkeyed"})
_LINE_NUMBER = re.compile(r"\bline (\d+)\b", re.IGNORECASE)
#: Seconds (at least) between two polls of a job younger than one found still running.
BEHIND_POLL = 10.0


class CleanupWarning(UserWarning):
    """Some remote files of a run could not be deleted (they expire on the service after 48 h);
    ``gembatch cleanup JOB_DIR`` tries again and lists what is left."""


class _QuotaRefused(GembatchError):
    """The service refused a create (or an upload) for quota: the record waits for room."""

    def __init__(self, record: ShardRecord, kind: str, cause: ServiceError) -> None:
        super().__init__(str(cause))
        self.record, self.kind, self.retry_after = record, kind, cause.retry_after


@dataclass
class _Round:
    """One submission round's view of the service: jobs and files by display name, listed once."""

    jobs: dict[str, list[RemoteJob]] = field(default_factory=dict)
    files: dict[str, list[RemoteFile]] = field(default_factory=dict)


def _usage_of_unkeyed(lines: Sequence[str]) -> list[list[int]]:
    """[prompt, output, thoughts, cached] tokens of each inline answer that came back without its
    key (paid for, then dropped: its row is sent again)."""
    fields = ("promptTokenCount", "candidatesTokenCount", "thoughtsTokenCount")
    usage = []
    for line in lines:
        answer = json.loads(line)
        if answer.get("key") is not None:
            continue
        meta = (answer.get("response") or {}).get("usageMetadata") or {}
        usage.append([int(meta.get(f) or 0) for f in (*fields, "cachedContentTokenCount")])
    return usage


class Run:
    """One run directory being driven against the service: submit, poll, fetch, join.

    ``backend`` may be None for a run that only needs reading (a finished run needs no API key); it
    is made from the environment the first time the service is needed.
    """

    def __init__(
        self,
        journal: Journal,
        backend: Backend | None,
        options: Options,
        *,
        cache: ResultCache | None = None,
        prices: PriceTable | None = None,
        retry: RetryPolicy | None = None,
        progress: Progress | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.journal = journal
        self.store = journal.store
        self.options = options
        self.cache = cache
        self.prices = prices
        self.retry = retry
        self.progress: Progress = progress or NullProgress()
        self.sink: OutputSink | None = None
        self._backend = backend
        self._sleep, self._clock, self._wall = sleep, clock, wall
        self.kind, self.model = journal.manifest.kind, journal.manifest.model
        self._warned_cleanup = False
        self._budget: Budget | None = None
        self._hold_until = 0.0  # wall time before which nothing new is submitted (quota)
        self._quota_since: float | None = None
        self._live: LiveSender | None = None
        self._listed = False  # the service's jobs and files listed by this process
        self._plain_429s: dict[str, int] = {}  # creates refused with a 429 naming no quota
        self._polled: dict[tuple[int, int], float] = {}  # (index, attempt) -> clock of last poll
        self._keep_outputs = False  # see outputs_kept
        #: False for a run an update replaces: what its jobs leave unanswered is not sent again
        #: (the update sends what its own input still needs).
        self.resubmits = True
        self._outputs: dict[int, pl.DataFrame] = {}

    @property
    def backend(self) -> Backend:
        """The service; built from the environment on first use (a missing key fails here)."""
        if self._backend is None:
            from .._service.backend import Backend

            self._backend = Backend(retry=self.retry)
        return self._backend

    @property
    def shards(self) -> list[ShardRecord]:
        return self.journal.shards

    @property
    def live(self) -> LiveSender:
        """The sender of interactive records (made on first use)."""
        if self._live is None:
            self._live = LiveSender(self)
        return self._live

    def set_mode(self, mode: str, *, hand_over: bool = False) -> int:
        """Send what is not sent yet interactively (``"interactive"``) or by batch jobs
        (``"batch"``); the records changed. ``hand_over``: the rows an interrupted interactive
        run has not had answered yet go by batch too."""
        changed = 0
        for record in self.journal.records():
            if (
                hand_over
                and mode == "batch"
                and record.mode == "live"
                and record.state is S.SUBMITTED
            ):
                self.live.hand_over(record)  # interrupted interactive: the rest goes by batch
                changed += 1
                continue
            if record.state is not S.PREPARED or record.mode == "none":
                continue
            if mode == "interactive" and record.mode != "live":
                record.mode = "live"
            elif mode == "batch" and record.mode == "live":
                inline = self.kind == "generate" and not self.journal.manifest.inline_unkeyed
                inline = inline and fits_inline(
                    record.lines,
                    record.bytes,
                    max_rows=self.options.inline_max_rows,
                    max_bytes=self.options.inline_max_bytes,
                )
                record.mode = "inline" if inline else "file"
            else:
                continue
            self.journal.save(record, note=f"to be sent by {record.mode}")
            changed += 1
        return changed

    def in_flight(self) -> bool:
        """Whether some of the run is on the service (a job created, or being created or uploaded):
        what :meth:`drop_unsent` leaves to finish."""
        return any(
            S.UPLOADING.rank <= r.state.rank < S.FETCHED.rank
            and r.state is not S.UPLOADED
            and not (r.mode == "live" and r.state is S.SUBMITTED)
            for r in self.journal.records()
        )

    def drop_unsent(self) -> int:
        """Let go of what is not sent yet (an update replaces this run): records not uploaded nor
        created close without answers, interrupted interactive ones with the answers they have.
        What is in flight is left to finish (it is paid for). The records closed."""
        dropped = 0
        for record in self.journal.records():
            if record.mode == "live" and record.state is S.SUBMITTED:
                self.live.hand_over(record, rest_by_batch=False)
            elif record.state in (S.PREPARED, S.UPLOADED) and record.mode != "none":
                self.store.write_bytes(record.path("results.jsonl"), b"")
                self.journal.seal(record, "results.jsonl")
                self.journal.move(record, S.FETCHED, note="not sent: replaced by an update")
                if self._backend is not None:  # else left to the clean-up
                    self._free_request_file(record)  # uploaded, never used
            else:
                continue
            dropped += 1
        return dropped

    def plan(
        self, *, table: PriceTable | None = None, strict: bool = False, exact: bool = False
    ) -> Plan:
        """What the prepared run sends and costs (``exact``: input tokens counted by the
        service)."""
        return prepared_plan(
            self.journal,
            table=table or self.prices,
            strict=strict,
            backend=self.backend if exact else None,
            exact=exact,
        )

    # -- 4. submit ------------------------------------------------------------------------------
    def submit(self) -> None:
        """Feed the records not yet submitted to the service, in queue order and within the budget
        (a file is uploaded when it fits the storage budget; a job created when it fits the job and
        token budgets), each exactly once; uploads in parallel."""
        if self.journal.manifest.inline_unkeyed:  # learned before a restart
            self._inline_to_files()
        todo = [
            r
            for r in self.journal.records()
            if r.state.rank < S.SUBMITTED.rank and r.mode not in ("none", "live")
        ]
        if not todo or self._wall() < self._hold_until:
            return
        plan = self._admit(todo)
        if not plan:
            return
        seen = _Round()
        if not self._listed and self.journal.fresh:  # prepared by this process under a new run
            self._listed = True  # id: none of its display names can be on the service yet
        if not self._listed:  # once per process: what a run directory rolled back (a copy, a
            # lost answer before this process) may not know it made; later rounds only send what
            # this process recorded, and intents look themselves up by name
            self._listed = True
            for job in self.backend.list_jobs():
                seen.jobs.setdefault(job.display_name or "", []).append(job)
            if any(r.mode == "file" and r.state.rank < S.UPLOADED.rank for r, _ in plan):
                for f in self.backend.list_files():
                    seen.files.setdefault(f.display_name or "", []).append(f)
        workers = min(self.options.upload_concurrency, len(plan))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gembatch-submit") as pool:
            outcomes = list(pool.map(lambda rc: self._submit_safely(rc[0], seen, rc[1]), plan))
        refusals = [e for e in outcomes if isinstance(e, _QuotaRefused)]
        if refusals:
            self._refused(refusals)
        errors = [e for e in outcomes if e is not None and not isinstance(e, _QuotaRefused)]
        if errors:
            raise errors[0]

    @property
    def budget(self) -> Budget:
        """What may be in flight (kept in the manifest; lowered by quota refusals)."""
        if self._budget is None:
            data = self.journal.manifest.budget
            self._budget = Budget.from_json(data) if data else Budget.of(self.options, self.model)
        return self._budget

    def usage(self) -> dict[str, int]:
        """What of this run is on the service now: unfinished ``jobs`` and their ``tokens``, and
        ``storage``: bytes of request files uploaded and not yet deleted."""
        jobs = tokens = storage = 0
        for r in self.journal.records():
            if r.state in (S.CREATING, S.SUBMITTED):
                jobs, tokens = jobs + 1, tokens + r.tokens
            uploaded = r.state is S.UPLOADING or (
                r.file_name is not None and r.state.rank >= S.UPLOADED.rank
            )
            if r.mode == "file" and uploaded and not (r.file_deleted or r.cleaned):
                storage += r.bytes
        return {"jobs": jobs, "tokens": tokens, "storage": storage}

    def _admit(self, todo: list[ShardRecord]) -> list[tuple[ShardRecord, bool]]:
        """``(record, create)`` for the records to advance now, in queue order: intents left by a
        process that died first (they may already exist on the service), then what fits the budget;
        nothing jumps the queue."""
        budget, use = self.budget, self.usage()
        plan: list[tuple[ShardRecord, bool]] = []
        uploads_open = creates_open = True
        for r in todo:
            if r.state in (S.UPLOADING, S.CREATING):  # admitted before: resolve it
                plan.append((r, True))
                continue
            needs_file = r.mode == "file" and r.state is S.PREPARED
            if needs_file:
                fits = use["storage"] == 0 or use["storage"] + r.bytes <= budget.storage
                if not (uploads_open and fits):
                    uploads_open = creates_open = False
                    continue
                use["storage"] += r.bytes
            fits = use["jobs"] < budget.jobs and (
                use["jobs"] == 0 or use["tokens"] + r.tokens <= budget.tokens
            )
            if not fits and use["jobs"] < budget.jobs and creates_open:
                raised = budget.probe(self.model, use["tokens"] + r.tokens)  # tier unknown
                if raised:
                    self.journal.manifest.budget = budget.to_json()
                    self.journal.save_manifest()
                    logger.info("gembatch: enqueued-token budget raised to %s", budget.tokens)
                fits = raised and use["tokens"] + r.tokens <= budget.tokens
            create = creates_open and fits
            if create:
                use["jobs"], use["tokens"] = use["jobs"] + 1, use["tokens"] + r.tokens
            else:
                creates_open = False
            if needs_file or create:
                plan.append((r, create))
        return plan

    def _refused(self, refusals: list[_QuotaRefused]) -> None:
        """The service refused for quota what the budget let through: lower the budget to what is
        in flight and wait for a job to end (or, with nothing of this run in flight, for the
        service's retry delay, up to ``options.quota_wait``)."""
        use = self.usage()
        for e in refusals:  # a plain 429 again and again with nothing else running: over a quota
            if e.kind == "rate":
                tries = self._plain_429s[e.record.display_name] = (
                    self._plain_429s.get(e.record.display_name, 0) + 1
                )
                if tries >= 3 and use["jobs"] <= len(refusals):
                    e.kind = "tokens"
        kinds = {e.kind for e in refusals}
        for kind in kinds:
            refused = [e.record for e in refusals if e.kind == kind]
            if kind == "rate":
                continue
            if kind == "storage":
                self.budget.lower(kind, max(1, use["storage"]))
                continue
            if kind == "jobs":
                self.budget.lower(kind, max(1, use["jobs"] - len(refused)))
                continue
            others = use["tokens"] - sum(r.tokens for r in refused)
            smallest = min(r.tokens for r in refused)
            self.budget.refused(others + smallest, smallest)
        self.journal.manifest.budget = self.budget.to_json()
        self.journal.save_manifest()
        if "tokens" in kinds:
            self._split_oversized({id(e.record) for e in refusals})
        delay = max((e.retry_after or 0.0) for e in refusals) or self.options.poll_interval
        if "rate" in kinds or not any(r.state is S.SUBMITTED for r in self.journal.records()):
            self._hold_until = self._wall() + delay  # else: room comes when a job ends
        waited = self._quota_since = self._quota_since or self._wall()
        logger.info(
            "gembatch: the service refused %s for quota; budget now %s; waiting",
            ", ".join(sorted(kinds)),
            self.budget,
        )
        nothing_running = not any(r.state is S.SUBMITTED for r in self.journal.records())
        if nothing_running and self._wall() - waited > self.options.quota_wait:
            raise TransientServiceError(
                f"The service has refused this run's jobs for quota for "
                f"{self._wall() - waited:,.0f} s ({refusals[0]}) while none of them runs: its "
                "quota is taken by other work, or one shard is over it. Nothing was lost. Hint: "
                "lower Options(shard_max_tokens=...) or max_enqueued_tokens, or resume later with "
                f"gembatch.BatchRun.open({self.store.url!r}).wait().",
                code=429,
                status="RESOURCE_EXHAUSTED",
            )

    def _split_oversized(self, refused: set[int]) -> None:
        """Records not yet on the service whose tokens exceed the (lowered) budget could never be
        taken: each is replaced by resubmissions of its lines in parts of a quarter of the budget
        (four fill it, as shards are cut), and finishes with
        no results of its own (``JOB_STATE_SPLIT``). A single request over the budget gets the
        quota error as its result."""
        budget = self.budget.tokens
        for record in list(self.journal.records()):
            waiting = record.state in (S.PREPARED, S.UPLOADED) or (
                record.state is S.CREATING and id(record) in refused
            )
            if not waiting or record.mode in ("none", "live") or record.tokens <= budget:
                continue
            self.journal.verify(record, "requests.jsonl")
            lines = self.store.read_lines(record.path("requests.jsonl")).to_list()
            shard = self._shard_of(record)
            results = b""
            if len(lines) > 1:  # parts of a quarter of the budget, as shards are cut
                parts = min(len(lines), -(-record.tokens // max(1, budget // 4)))
                size = -(-len(lines) // parts)
                for i in range(0, len(lines), size):
                    self._resubmit_part(shard, lines[i : i + size], "split", record.mode)
            else:
                error = {
                    "code": 8,
                    "status": "RESOURCE_EXHAUSTED",
                    "message": f"this request alone ({record.tokens:,} input tokens) is over the "
                    f"service's enqueued-token quota ({budget:,})",
                }
                key = json.loads(lines[0])["key"]
                results = (json.dumps({"key": key, "error": error}) + "\n").encode()
            self.store.write_bytes(record.path("results.jsonl"), results)
            self.journal.seal(record, "results.jsonl")
            self.journal.move(
                record,
                S.FETCHED,
                job_state="JOB_STATE_SPLIT",
                finished_at=self._wall(),
                note=f"{record.tokens:,} tokens, over the quota alone: split to fit {budget:,}",
            )
            self._free_request_file(record)  # after the move: a resume never creates from it

    def _resubmit_part(self, shard: ShardRecord, lines: list[str], reason: str, mode: str) -> None:
        """One resubmission of ``lines`` of ``shard``, its tokens estimated (for the budget)."""
        child = self.journal.add_resubmission(shard, lines, reason, mode=mode)
        child.tokens = int(local_tokens(pl.Series(lines, dtype=pl.Utf8)).sum())
        self.journal.save(child, note=f"{child.tokens:,} tokens")

    def _submit_safely(
        self, record: ShardRecord, seen: _Round, create: bool
    ) -> GembatchError | None:
        try:
            self._submit_one(record, seen, create)
        except GembatchError as exc:
            return exc
        return None

    def _submit_one(self, record: ShardRecord, seen: _Round, create: bool = True) -> None:
        if record.display_name in seen.jobs:  # made before (a lost answer, a rolled-back state)
            if record.state is S.UPLOADING:
                self.journal.move(record, S.UPLOADED, note="its job exists already")
            if record.state in (S.PREPARED, S.UPLOADED):
                self.journal.move(record, S.CREATING, note="its job exists already")
            self._adopt_job(record, seen.jobs[record.display_name], adopted=True)
            return
        if record.mode == "file" and record.state.rank < S.UPLOADED.rank:
            if record.state is S.PREPARED:
                self.journal.move(record, S.UPLOADING)
            self._upload(record, seen.files.get(record.display_name, []))
        if not create:
            return
        if record.state in (S.UPLOADED, S.PREPARED):
            self.journal.move(record, S.CREATING)
        if record.state is S.CREATING:
            self._create(record)

    def _exactly_once(
        self,
        what: str,
        *,
        look: Callable[[], list[T]],
        act: Callable[[], T],
        adopt: Callable[[list[T], bool], None],
    ) -> None:
        """Make the remote object, unless a look finds it made already; after a transient failure
        (the call may or may not have happened) always look again before trying again."""
        policy = self.backend.retry
        for attempt in range(policy.attempts):
            if attempt:
                found = look()
                if found:
                    adopt(found, True)
                    return
            try:
                made = act()
            except TransientServiceError as exc:
                if attempt + 1 >= policy.attempts:
                    raise TransientServiceError(
                        f"{exc} Gave up {what} after {policy.attempts} tries. Nothing was lost and "
                        "nothing will be sent twice. Hint: run the same call again, or "
                        f"gembatch.BatchRun.open({self.store.url!r}).wait(), to resume.",
                        code=exc.code,
                        status=exc.status,
                        retry_after=exc.retry_after,
                    ) from exc
                delay = min(policy.max_delay, policy.initial_delay * 2**attempt)
                if exc.retry_after is not None:
                    delay = max(delay, min(exc.retry_after, policy.max_server_delay))
                self._sleep(delay + random.uniform(0, policy.jitter))
                continue
            adopt([made], False)
            return

    def _upload(self, record: ShardRecord, seen: list[RemoteFile]) -> None:
        def usable(f: RemoteFile) -> bool:
            return f.state in (None, "ACTIVE") and f.size_bytes in (None, record.bytes)

        def act() -> RemoteFile:
            self.journal.verify(record, "requests.jsonl")  # what goes out is what was prepared
            with self.store.open(record.path("requests.jsonl"), "rb") as stream:
                try:
                    return self.backend.upload(stream, display_name=record.display_name)
                except TransientServiceError as exc:
                    if exc.code == 429:  # the File API's storage quota
                        raise _QuotaRefused(record, "storage", exc) from exc
                    raise

        def look() -> list[RemoteFile]:
            return [f for f in self.backend.find_files(record.display_name) if usable(f)]

        def adopt(files: list[RemoteFile], found: bool) -> None:
            keep, *extra = files
            for orphan in extra:  # copies left by uploads whose answer was lost
                self._delete_quietly(orphan.name)
            verb = "adopted" if found else "uploaded"
            note = f"{verb} {keep.name}" + (f" (+{len(extra)} orphans deleted)" if extra else "")
            self.journal.move(record, S.UPLOADED, file_name=keep.name, note=note)

        found = [f for f in seen if usable(f)]
        if found:
            adopt(found, True)
            return
        self._exactly_once("uploading", look=look, act=act, adopt=adopt)

    def _create(self, record: ShardRecord) -> None:
        def act() -> RemoteJob:
            try:
                return make()
            except TransientServiceError as exc:
                if exc.code == 429:  # the project's batch quota: wait for room, do not retry now
                    text = str(exc).lower()
                    kind = (
                        "jobs"
                        if "concurrent" in text
                        else "tokens"
                        if "token" in text
                        else "rate"  # a plain 429 (too many requests): wait, learn nothing
                    )
                    raise _QuotaRefused(record, kind, exc) from exc
                raise

        def make() -> RemoteJob:
            if record.mode == "inline":
                self.journal.verify(record, "requests.jsonl")
                lines = self.store.read_lines(record.path("requests.jsonl")).to_list()
                return self.backend.create(
                    kind=self.kind,
                    model=self.model,
                    display_name=record.display_name,
                    inline_lines=lines,
                )
            return self.backend.create(
                kind=self.kind,
                model=self.model,
                display_name=record.display_name,
                file_name=record.file_name,
            )

        def adopt(jobs: list[RemoteJob], found: bool) -> None:
            self._adopt_job(record, jobs, adopted=found)

        try:
            self._exactly_once(
                "creating the batch job",
                look=lambda: self.backend.find_jobs(record.display_name),
                act=act,
                adopt=adopt,
            )
        except TerminalServiceError as exc:
            if exc.code == 400 and _LINE_NUMBER.search(str(exc)):
                self._refuse_lines(record, str(exc))
                return
            raise

    def mark_in_flight(self, record: ShardRecord) -> None:
        """Tell the result cache that the shard's requests are on the service (once per shard):
        another run needing them waits for them instead of paying again. Best effort."""
        shard = self._shard_of(record)
        if self.cache is None or shard.in_flight:
            return
        try:
            keys = self.store.read_parquet(shard.path("keys.parquet"), columns=[HASH, VIA])
            hashes = keys.filter(pl.col(VIA) == "line")[HASH] if VIA in keys.columns else keys[HASH]
            self.cache.mark_in_flight(self._in_flight_name(shard), hashes, self.store.url)
            shard.in_flight = True
        except Exception as exc:  # noqa: BLE001 - the cache saves money; the run goes on
            logger.info("gembatch: could not record shard %s in flight: %s", shard.index, exc)

    def _in_flight_name(self, shard: ShardRecord) -> str:
        return f"{self.journal.manifest.run_id}-{shard.index:06d}"

    def _adopt_job(self, record: ShardRecord, jobs: list[RemoteJob], *, adopted: bool) -> None:
        job = jobs[0]
        self.mark_in_flight(record)
        if not adopted and self._budget is not None:  # the level the service took it at
            level = self.usage()["tokens"]
            self._budget.accepted(level)
        note = f"{'adopted' if adopted else 'created'} {job.name}"
        if len(jobs) > 1:
            others = [j.name for j in jobs[1:]]
            note += f" ({len(others)} other jobs share its display name: {others})"
        now = self._wall()
        self.journal.move(
            record,
            S.SUBMITTED,
            job_name=job.name,
            job_state=job.state,
            note=note,
            submitted_at=now,
            progress_at=now,
        )

    def _refuse_lines(self, record: ShardRecord, message: str) -> None:
        """The service refused the create because of some request lines (named in its message):
        those rows get its error as their result; the shard's other rows go out again in a new job
        (a resubmission for reason ``refused``)."""
        lines = self.store.read_lines(record.path("requests.jsonl"))
        numbers = sorted({int(n) for n in _LINE_NUMBER.findall(message)})
        bad = [n for n in numbers if 1 <= n <= len(lines)]
        if not bad:
            raise TerminalServiceError(message, code=400, status="INVALID_ARGUMENT")
        keys = lines.gather([n - 1 for n in bad]).str.json_path_match("$.key").to_list()
        results = "".join(
            json.dumps(
                {
                    "key": key,
                    "error": {
                        "code": 3,
                        "status": "INVALID_ARGUMENT",
                        "message": _message_for_line(message, n),
                    },
                },
                ensure_ascii=False,
            )
            + "\n"
            for key, n in zip(keys, bad)
        )
        self.store.write_bytes(record.path("results.jsonl"), results.encode())
        self.journal.seal(record, "results.jsonl")
        self.journal.move(
            record,
            S.FETCHED,
            job_state="JOB_STATE_REFUSED",
            job_error=message[:500],
            finished_at=self._wall(),
            note=f"create refused {len(bad)} request line(s): {bad[:10]}",
        )

    # -- 5. poll --------------------------------------------------------------------------------
    def _poll(self, record: ShardRecord) -> None:
        assert record.job_name is not None
        try:
            job = self.backend.get(record.job_name)
        except ServiceError as exc:
            if not exc.gone:
                raise
            self._lose(record, f"the job {record.job_name} disappeared from the service")
            return
        if not job.done:
            if job.state != record.job_state or (job.stats and job.stats != record.stats):
                self.journal.progress(
                    record, job_state=job.state, stats=job.stats or record.stats, at=self._wall()
                )
            self._watch(record)
            return
        if job.state == "JOB_STATE_SUCCEEDED" and not job.result_file and job.inline_lines is None:
            self._await_output(record, job)
            return
        self._free_request_file(record)
        fields: dict[str, Any] = {
            "job_state": job.state,
            "job_error": job.error,
            "finished_at": self._wall(),
            "result_file": job.result_file,
            "stats": job.stats or record.stats,
        }
        if job.inline_lines is not None:
            answers, unkeyed = self._keyed_answers(record, list(job.inline_lines))
            if unkeyed:
                fields["unkeyed_usage"] = _usage_of_unkeyed(job.inline_lines)
            data = "".join(line + "\n" for line in answers).encode()
            self.store.write_bytes(record.path("results.jsonl"), data)
            self.journal.seal(record, "results.jsonl")
            note = f"{job.state}, inline results saved"
            if unkeyed:
                note += f" ({unkeyed} answers without their keys dropped: sent again)"
            self.journal.move(record, S.FETCHED, note=note, **fields)
        else:
            self.journal.move(record, S.FINISHED, note=job.state, **fields)

    def _keyed_answers(self, record: ShardRecord, answers: list[str]) -> tuple[list[str], int]:
        """Inline answers that carry their request's key, and how many came back without one
        (they are dropped: never matched to a request by position; those rows go again). The one
        answer of a one-request job is that request's whatever it carries."""
        parsed = [json.loads(a) for a in answers]
        if record.lines == 1 and len(parsed) == 1 and parsed[0].get("key") is None:
            request = self.store.read_lines(record.path("requests.jsonl")).to_list()[0]
            parsed[0]["key"] = json.loads(request)["key"]
            return [json.dumps(parsed[0], ensure_ascii=False, separators=(",", ":"))], 0
        keyed = [a for a, p in zip(answers, parsed) if p.get("key") is not None]
        return keyed, len(answers) - len(keyed)

    def _inline_to_files(self) -> None:
        """Inline answers came back without their keys (the service drops the ``metadata`` echo):
        no later inline job of this run could be joined either, so every unsent inline shard of
        more than one request goes through a file from now on (kept in run.json on resume)."""
        if not self.journal.manifest.inline_unkeyed:
            self.journal.manifest.inline_unkeyed = True
            self.journal.save_manifest()
            logger.warning(
                "gembatch: the service answered an inline batch without the requests' keys; "
                "this run sends the rest through files (Options(inline_max_rows=0) avoids it)"
            )
        for r in self.journal.records():
            if r.mode == "inline" and r.state is S.PREPARED and r.lines > 1:
                r.mode = "file"
                self.journal.save(r, note="inline answers come back without keys: sent as a file")

    def _free_request_file(self, record: ShardRecord) -> None:
        """Delete a finished job's request file at once (not when its shard is joined): it frees
        File API storage for the next shards. A refusal is left to the clean-up."""
        if not self.options.cleanup_remote or record.file_name is None or record.file_deleted:
            return
        if self._delete_quietly(record.file_name) is None:
            record.file_deleted = True

    def _await_output(self, record: ShardRecord, job: RemoteJob) -> None:
        """The job says SUCCEEDED but its result file is not set yet (the service does this): keep
        polling, up to ``options.output_wait`` seconds, then stop with a resumable error."""
        now = self._wall()
        if record.output_wait_since is None:
            self.journal.move(
                record,
                S.SUBMITTED,
                job_state=job.state,
                output_wait_since=now,
                note="SUCCEEDED, its result file not set yet: waiting",
            )
            return
        waited = now - record.output_wait_since
        if waited > self.options.output_wait:
            raise TransientServiceError(
                f"The batch job {record.job_name} has reported SUCCEEDED for {waited:,.0f} s "
                "without a result file. Nothing was lost: the run directory remembers the job. "
                f"Hint: resume later with gembatch.BatchRun.open({self.store.url!r}).wait()."
            )

    def _watch(self, record: ShardRecord) -> None:
        """Cancel a job that has not started or progressed within ``options.stuck_after``
        seconds."""
        limit = self.options.stuck_after
        since = record.progress_at or record.submitted_at
        if limit is None or since is None or record.watchdog or self._wall() - since < limit:
            return
        shard = self._shard_of(record)
        if self._counted(shard) >= self.options.max_resubmits:
            return
        assert record.job_name is not None
        self.journal.move(
            record,
            S.SUBMITTED,
            watchdog=True,
            note=f"watchdog: no progress for {limit:g} s in {record.job_state}; cancelling",
        )
        self.backend.cancel(record.job_name)

    def _lose(self, record: ShardRecord, why: str) -> None:
        """The record's results cannot be had (its job or result file is gone): it ends with no
        answer, and its rows are sent again (reason ``lost``)."""
        self.store.write_bytes(record.path("results.jsonl"), b"")
        self.journal.seal(record, "results.jsonl")
        self.journal.move(
            record,
            S.FETCHED,
            lost=True,
            job_error=why,
            job_state=record.job_state or "JOB_STATE_UNSPECIFIED",
            finished_at=self._wall(),
            note=f"{why}: its rows will be sent again",
        )

    # -- 6. fetch -------------------------------------------------------------------------------
    def _fetch(self, record: ShardRecord) -> None:
        target = record.path("results.jsonl")
        written = DigestedFile(self.store, target)  # hashed as it lands: never read back to seal
        if record.result_file:
            try:
                self.backend.download(record.result_file, written.open)
            except ServiceError as exc:
                if not exc.gone:
                    raise
                self._lose(record, f"its result file {record.result_file} is gone (expired?)")
                return
        else:  # no output (expired, or cancelled/failed before any line)
            self.store.write_bytes(target, b"")
        self.journal.seal(record, "results.jsonl", digest=written.digest)
        self.journal.move(record, S.FETCHED, note=f"results of {record.job_name} saved")

    # -- 7. join --------------------------------------------------------------------------------
    def _settle(self, shard: ShardRecord) -> bool:
        """Join a shard whose results (and its resubmissions') are in; resubmit what must go again;
        clean up remote files once everything is joined."""
        changed = False
        family = self.journal.family(shard)
        fetched = [r for r in family if r.state is S.FETCHED]
        # joined once its whole family is in (a shard split in many parts is not joined again
        # as each part comes back)
        waiting = any(r.state.rank < S.FETCHED.rank for r in family)
        if fetched and shard.state.rank >= S.FETCHED.rank and not waiting:
            self._join(shard)
            for record in fetched:
                if record is not shard:
                    self.journal.move(record, S.JOINED, note="merged into its shard")
            changed = True
            changed |= self._maybe_resubmit(shard, fetched)
        final = all(r.state is S.JOINED for r in family)
        if final and self.cache is not None and shard.in_flight:
            self.cache.unmark_in_flight(self._in_flight_name(shard))  # its answers are cached
            shard.in_flight = False
        if final and self.options.cleanup_remote:
            for record in family:
                if not record.cleaned and record.cleanup_error is None:
                    self._cleanup(record)
        if final and self.sink is not None:
            self._check_output(shard)  # (joined again if it changed) before it is copied out
            self.sink.offer(shard.index, self.store, shard.path("output.parquet"))
        return changed

    def _join(self, shard: ShardRecord) -> None:
        try:
            output, keys, report = join_shard(self.journal, shard, self.options.prefix)
        except CorruptRunError as exc:
            if exc.path != shard.path("cached.jsonl") or not self._restore_cached(shard):
                raise
            output, keys, report = join_shard(self.journal, shard, self.options.prefix)
        self.store.write_parquet(shard.path("output.parquet"), output, compression="snappy")
        self.journal.seal(shard, "output.parquet", rows=output.height)
        if self._keep_outputs:
            self._outputs[shard.index] = output
        self._remember(shard)
        self.journal.move(shard, S.JOINED, report=report)

    @contextlib.contextmanager
    def outputs_kept(self) -> Iterator[None]:
        """Within the block, each shard's output stays in memory when it is joined, and
        :meth:`output` gives it (checked as ever) instead of reading it back: for a caller that
        waits for the run and then asks for every output."""
        self._keep_outputs = True
        try:
            yield
        finally:
            self._keep_outputs = False
            self._outputs.clear()

    def output(self, shard: ShardRecord) -> pl.DataFrame:
        """A joined shard's output, checked: one that changed since it was written (overwritten,
        swapped with another shard's) is joined again from the shard's own files, with a warning."""
        self._check_output(shard)
        kept = self._outputs.pop(shard.index, None)  # what was just written there, still in memory
        return kept if kept is not None else self.store.read_parquet(shard.path("output.parquet"))

    def _check_output(self, shard: ShardRecord) -> None:
        """Check a joined shard's ``output.parquet`` (see :meth:`output`) without reading it."""
        try:
            self.journal.verify(shard, "output.parquet")
        except CorruptRunError as exc:
            warnings.warn(
                ResultWarning(f"{exc} It was joined again from the shard's own files."),
                stacklevel=3,
            )
            self._join(shard)

    def _restore_cached(self, shard: ShardRecord) -> bool:
        """Rewrite a shard's lost ``cached.jsonl`` from the result cache (its rows were answered
        from it at prepare time); False when the cache no longer holds every answer."""
        if self.cache is None:
            return False
        keys = self.store.read_parquet(shard.path("keys.parquet")).filter(pl.col(VIA) == "cache")
        hits = self.cache.lookup(keys[HASH])
        if hits.height < keys[HASH].n_unique():
            return False
        responses = keys.join(
            hits.select("hash", "response"),
            left_on=HASH,
            right_on="hash",
            how="left",
            maintain_order="left",
        )
        with self.store.atomic_writer(shard.path("cached.jsonl")) as fh:
            write_jsonl(answer_lines(responses[KEY], responses["response"]), fh)
        self.journal.seal(shard, "cached.jsonl")
        self.journal.save(shard, note="cached.jsonl restored from the result cache")
        warnings.warn(
            ResultWarning(
                f"{shard.path('cached.jsonl')} of {self.store.url} was missing "
                "or changed; restored from the result cache."
            ),
            stacklevel=3,
        )
        return True

    def _remember(self, shard: ShardRecord) -> None:
        """Put the shard's fresh ``ok`` answers in the result cache (a failure only warns: the cache
        saves money, the run directory holds the results)."""
        if self.cache is None:
            return
        try:
            entries = answered_entries(self.journal, shard, self.options.prefix)
            if entries.height:
                self.cache.put(entries)
        except Exception as exc:  # noqa: BLE001 - the cache is an optimisation, never a failure
            warnings.warn(
                f"gembatch could not add shard {shard.index}'s answers to the result cache "
                f"{self.cache.path!r}: {exc}",
                ResultWarning,
                stacklevel=2,
            )

    def _shard_of(self, record: ShardRecord) -> ShardRecord:
        return (
            record
            if record.parent is None
            else self.journal.shards[[s.index for s in self.journal.shards].index(record.parent)]
        )

    def _counted(self, shard: ShardRecord) -> int:
        """Resubmissions of ``shard`` that count against ``options.max_resubmits``."""
        return sum(
            r.reason in COUNTED_REASONS for r in self.journal.resubmissions.get(shard.index, [])
        )

    def _in_flight(self, shard: ShardRecord) -> bool:
        return any(
            r.state.rank < S.FETCHED.rank for r in self.journal.resubmissions.get(shard.index, [])
        )

    def _maybe_resubmit(self, shard: ShardRecord, fetched: list[ShardRecord]) -> bool:
        """Send again, automatically, the unanswered rows of: an EXPIRED job; a job the watchdog
        cancelled (split in two); a job or result file that was lost; inline answers that came back
        without their keys (through a file); a create refused for some lines (the other rows)."""
        if not self.resubmits or self._in_flight(shard):
            return False
        reason, parts = None, 1
        if any(r.job_state == "JOB_STATE_REFUSED" for r in fetched):
            reason = "refused"
        elif any(r.job_state == TO_BATCH for r in fetched):
            reason = "to_batch"
        elif any(r.lost for r in fetched):
            reason = "lost"
        elif any(r.watchdog for r in fetched):
            reason, parts = "watchdog", 2
        elif self.options.resubmit_expired and any(
            r.job_state == "JOB_STATE_EXPIRED" for r in fetched
        ):
            reason = "expired"
        elif any(r.mode == "inline" for r in fetched) and (shard.report or {}).get("missing"):
            reason = "unkeyed"
            self._inline_to_files()
        if reason is None:
            return False
        return self.resubmit(shard, reason=reason, include_errors=False, parts=parts) > 0

    def resubmit(
        self,
        shard: ShardRecord,
        *,
        reason: str,
        include_errors: bool,
        parts: int = 1,
        schema: bool = False,
    ) -> int:
        """Record resubmissions of the shard's unanswered (and, if asked, retryable-error) rows;
        ``schema``: also the rows whose answer failed the response schema (SCHEMA_MISMATCH)."""
        counted = reason in COUNTED_REASONS
        if (counted and self._counted(shard) >= self.options.max_resubmits) or self._in_flight(
            shard
        ):
            return 0
        also = self._schema_failed(shard) if schema else None
        lines = lines_to_resend(self.journal, shard, include_errors=include_errors, also=also)
        if not lines:
            return 0
        room = self.options.max_resubmits - self._counted(shard) if counted else parts
        parts = max(1, min(parts, len(lines), room))
        size = -(-len(lines) // parts)
        for i in range(0, len(lines), size):
            part = lines[i : i + size]
            nbytes = sum(len(x.encode()) + 1 for x in part)
            inline = (
                self.kind == "generate"
                and not self.journal.manifest.inline_unkeyed
                and fits_inline(
                    len(part),
                    nbytes,
                    max_rows=self.options.inline_max_rows,
                    max_bytes=self.options.inline_max_bytes,
                )
            )
            live = shard.mode == "live" and reason != "to_batch"
            mode = "live" if live else "inline" if inline else "file"
            self._resubmit_part(shard, part, reason, mode)
        return len(lines)

    def _schema_failed(self, shard: ShardRecord) -> pl.Series:
        """The request keys of the shard's rows whose answer failed the schema (rows answered by
        their own request line: a cached answer has no line to send again)."""
        output = self.output(shard)
        keys = self.store.read_parquet(shard.path("keys.parquet"), columns=[KEY, VIA])
        failed = output[f"{self.options.prefix}error_status"] == "SCHEMA_MISMATCH"
        return keys.filter(failed & (keys[VIA] == "line"))[KEY].cast(pl.Utf8)

    def _delete_quietly(self, name: str) -> str | None:
        """Delete a remote file; the error, when the service refuses, as text (never raised)."""
        try:
            self.backend.delete_file(name)
        except ServiceError as exc:
            return f"{name}: {exc}"
        return None

    def _cleanup(self, record: ShardRecord) -> None:
        """Delete the record's remote files once its results are safe. A refusal is recorded (the
        file expires on the service after 48 h), never raised: the service's known refusal to
        delete result files whose id is over 40 characters is logged; any other is warned about,
        once per run."""
        names = [
            n for n in (None if record.file_deleted else record.file_name, record.result_file) if n
        ]
        errors = [e for e in (self._delete_quietly(n) for n in names) if e]
        self.journal.move(
            record,
            S.JOINED,
            cleaned=not errors,
            cleanup_error="; ".join(errors)[:1000] or None,
            note="remote files deleted" if not errors else "remote clean-up refused",
        )
        known = [e for e in errors if "cannot be more than 40 characters" in e]
        for error in known:
            logger.info(
                "gembatch: the service does not delete result files with long ids (%s); "
                "it expires after 48 h",
                error.split(":", 1)[0],
            )
        errors = [e for e in errors if e not in known]
        if errors and not self._warned_cleanup:
            self._warned_cleanup = True
            warnings.warn(
                CleanupWarning(
                    f"The service refused to delete some files of {self.store.url} "
                    f"({errors[0]}). Your results are safe in the run directory; the files expire "
                    "on the service after 48 h. "
                    f"Hint: `gembatch cleanup {self.store.url}` tries again and lists what is left."
                ),
                stacklevel=2,
            )

    # -- the loop -------------------------------------------------------------------------------
    def step(self) -> bool:
        """Advance every shard and resubmission by what can be done now; True when something
        changed."""
        changed = False

        def look(r: ShardRecord) -> tuple[Any, ...]:
            return r.state, r.job_state, repr(r.stats)

        seen = {id(r): look(r) for r in self.journal.records()}
        self._poll_jobs()
        finished = [r for r in self.journal.records() if r.state is S.FINISHED]
        # several result files to fetch: downloaded in the background while shards are joined
        pool = ThreadPoolExecutor(2, "gembatch-fetch") if len(finished) > 1 else None
        fetching = {id(r): pool.submit(self._fetch, r) for r in finished} if pool else {}
        try:
            for shard in self.shards:
                for record in self.journal.family(shard):
                    if record.state is S.PREPARED and record.mode == "none":
                        self.nothing_to_send(record)  # prepared, then killed before it was marked
                    if id(record) in fetching:
                        fetching.pop(id(record)).result()
                    elif record.state is S.FINISHED:
                        self._fetch(record)
                    changed |= seen.get(id(record)) != look(record)
                changed |= self._settle(shard)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        return changed

    def _poll_jobs(self) -> None:
        """Poll the running jobs, oldest first. Jobs end about in the order they were created, so
        once one is found still running, the younger ones are polled only when their last poll is
        older than ``max(options.max_poll_interval, BEHIND_POLL)`` seconds: a run of many jobs
        polls about one job per step, not every job (a fresh Run polls each once first). A job
        that ended and waits for its result file is polled every step."""
        running = sorted(
            (r for r in self.journal.records() if r.state is S.SUBMITTED and r.mode != "live"),
            key=lambda r: r.submitted_at or 0.0,
        )
        behind, stale = False, max(self.options.max_poll_interval, BEHIND_POLL)
        for record in running:
            last = self._polled.get((record.index, record.attempt))
            ended = record.output_wait_since is not None
            if behind and not ended and last is not None and self._clock() - last < stale:
                continue
            self._polled[(record.index, record.attempt)] = self._clock()
            self._poll(record)
            behind |= record.state is S.SUBMITTED and record.output_wait_since is None

    def done(self) -> bool:
        return all(r.state is S.JOINED for r in self.journal.records())

    def nothing_to_send(self, record: ShardRecord) -> None:
        """A shard whose rows were all skipped or answered from the cache: fetched at once, with no
        results of its own."""
        self.store.write_bytes(record.path("results.jsonl"), b"")
        self.journal.move(record, S.FETCHED, note="nothing to send")

    def snapshot(self) -> Snapshot:
        """Where the run stands, in rows of the input and in requests (see :class:`Snapshot`)."""
        manifest = self.journal.manifest
        done = failed = answered = requests = reused = 0
        jobs: Counter[str] = Counter()
        phases: Counter[str] = Counter()
        started = None
        for shard in self.shards:
            requests += shard.lines
            reused += shard.reused
            phases[_PHASE[shard.state]] += 1
            for record in self.journal.family(shard):
                if record.job_state:
                    jobs[record.job_state] += 1
                if record.submitted_at is not None:
                    started = min(started or record.submitted_at, record.submitted_at)
            if shard.state is S.JOINED and shard.report is not None:
                done += shard.rows
                failed += shard.report.get("failed", 0)
                answered += shard.lines - shard.report.get("missing", 0)
            elif shard.stats:
                seen = shard.stats.get("successfulRequestCount", 0) + shard.stats.get(
                    "failedRequestCount", 0
                )
                answered += min(seen, shard.lines)
                done += min(seen, shard.lines)
                failed += shard.stats.get("failedRequestCount", 0)
        rate = eta = None
        if started is not None and done:
            elapsed = max(self._wall() - started, 1e-6)
            rate = done / elapsed
            eta = max(0, manifest.rows - done) / rate
        return Snapshot(
            rows=manifest.rows,
            done=min(done, manifest.rows),
            failed=failed,
            requests=requests,
            answered=max(0, answered),
            reused=reused,
            skipped=manifest.rows - manifest.requests,
            jobs=jobs,
            shards=phases,
            tokens=self.usage()["tokens"],
            token_budget=self.budget.tokens,
            rate=rate,
            eta=eta,
        )

    def wait(self, timeout: float | None = None) -> bool:
        """Submit what is left, then poll until every shard is joined; False on timeout."""
        deadline = None if timeout is None else self._clock() + timeout
        interval = self.options.poll_interval
        try:
            while True:
                sent = self.live.send()  # interactive records: answered here, call by call
                self.submit()  # resubmissions recorded by the last step
                changed = self.step() or sent
                self.progress.update(self.snapshot())
                if self.done():
                    return True
                if deadline is not None and self._clock() >= deadline:
                    return False
                interval = (
                    self.options.poll_interval
                    if changed
                    else min(interval * 1.5, self.options.max_poll_interval)
                )
                pause = (
                    interval
                    if deadline is None
                    else max(0.0, min(interval, deadline - self._clock()))
                )
                self._sleep(pause)
        except TransientServiceError as exc:
            if "Hint:" in str(exc):
                raise
            raise TransientServiceError(
                f"{exc} Nothing was lost: the run directory remembers every job, and nothing "
                "will be sent twice. Hint: run the same call again, or "
                f"gembatch.BatchRun.open({self.store.url!r}).wait(), to resume when the service "
                "answers again.",
                code=exc.code,
                status=exc.status,
                retry_after=exc.retry_after,
                gone=exc.gone,
            ) from exc
        finally:
            self.progress.close()


def _message_for_line(message: str, number: int) -> str:
    """The part of the service's message about line ``number`` (the whole message if it cannot be
    told apart)."""
    for piece in re.split(r"(?<=[.;\n])\s+|\s*;\s*", message):
        if re.search(rf"\bline {number}\b", piece, re.IGNORECASE):
            return piece.strip()
    return message.strip()
