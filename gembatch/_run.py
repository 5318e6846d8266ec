"""The life of one run, top to bottom: prepare -> pilot -> price -> submit -> poll -> fetch -> join
-> write.

This module is the orchestrator; each step's detail lives with its concern (building requests in
``_build``, the run directory in ``_state``, the service in ``_service``, results in ``_results``,
money in ``_money``)::

    start(call)                    batch_generate / batch_embed / plan: one call, top to bottom
      open_or_prepare(call)          1. reopen the run directory, or validate every row and write
                                        the shards (nothing is sent until every row is checked)
        run_pilot(...)               2. pilot=: a random sample sent first, as a run of its own
      Run.plan() / check_cost()      3. dry_run= / max_cost=: what will be sent and what it costs
      Run.submit()                   4. upload each shard and create its batch job, exactly once
      Run.wait()                     5-7. poll the jobs, fetch their results, join them onto the
        Run.step()                        rows, shard by shard (resubmit what must go again)
      BatchRun.result() / write()    8. the output: one frame, or Parquet parts as shards finish

Exactly once: before an upload or a create the journal records the intent (``UPLOADING`` /
``CREATING``) under the shard's deterministic display name; a step that finds an intent of a process
that died first looks the file or job up on the service by that name and adopts it.
"""

from __future__ import annotations

import dataclasses
import os
import random
import time
import warnings
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import polars as pl

from . import __version__
from ._build.prepare import digests, iter_checked, write_shards
from ._build.shards import fits_inline
from ._build.sources import FrameSource, Source
from ._build.spec import RequestSpec
from ._money.plan import Plan, prepared_plan
from ._money.pricing import PriceTable
from ._results.join import join_shard, lines_to_resend, raw_answers
from ._state.journal import Journal, new_run_id
from ._state.lock import run_lock
from ._state.records import HASH, KEY, VIA, Manifest, ShardRecord, ShardState
from ._storage import Directory, OutputSink
from .config import Options, RetryPolicy
from .exceptions import (
    AuthenticationError,
    CostLimitError,
    GembatchError,
    PilotFailedError,
    ResultWarning,
    RunMismatchError,
    TransientServiceError,
)
from .progress import NullProgress, Progress, Snapshot

if TYPE_CHECKING:
    from ._service.backend import Backend
    from ._service.remote import RemoteFile, RemoteJob
    from .cache import ResultCache
    from .handle import BatchRun

__all__ = ["Call", "Run", "Spend", "start"]

T = TypeVar("T")
S = ShardState


@dataclass(frozen=True, kw_only=True)
class Spend:
    """How a call saves money: the result cache, a cost ceiling, a dry run, a pilot sample."""

    cache: Any = True  # True | False | None | path | ResultCache
    max_cost: float | None = None
    dry_run: bool = False
    pilot: float | int | None = None
    pilot_max_error_rate: float = 0.2
    prices: PriceTable | None = None
    exact_tokens: bool = False


@dataclass(frozen=True, kw_only=True)
class Call:
    """One validated call: which rows, what each asks, where the run lives, and how to run it."""

    source: Source
    spec: RequestSpec
    config: dict[str, Any]  # Config.to_dict() / EmbedConfig.to_dict()
    prompt: str  # the prompt expression, as text
    response_schema: dict[str, Any] | None = None
    dimensions: int | None = None
    frame: dict[str, Any] = field(default_factory=dict)  # how to give the output back
    job_dir: str | os.PathLike[str] | None = None
    options: Options = field(default_factory=Options)
    retry: RetryPolicy | None = None
    client: Any = None
    wait: bool = True
    progress: bool | Progress = True
    storage_options: dict[str, Any] | None = None
    sink: str | os.PathLike[str] | None = None
    spend: Spend = field(default_factory=Spend)


# ------------------------------------------------------------------------------------ the whole
# call
def start(call: Call) -> pl.DataFrame | BatchRun | Plan:
    """Carry one call out, from the input rows to the output (or a plan, or a handle)."""
    from .handle import BatchRun

    spend = call.spend
    backend = _backend(call.client, call.retry, required=not spend.dry_run or spend.exact_tokens)
    run = open_or_prepare(call, backend)
    unsent = all(r.state is S.PREPARED or r.mode == "none" for r in run.journal.shards)
    if spend.dry_run or (spend.max_cost is not None and unsent):
        plan = run.plan(
            table=spend.prices, strict=spend.max_cost is not None, exact=spend.exact_tokens
        )
        check_cost(plan, spend.max_cost if unsent else None, run.store.url)
        if spend.dry_run:
            return plan
    handle = BatchRun(run, progress=call.progress)
    if not call.wait:
        with run.journal.locked():
            run.submit()
        return handle
    if call.sink is not None:
        handle.write(call.sink, storage_options=call.storage_options)
        return handle
    return handle.result()


def _backend(client: Any, retry: RetryPolicy | None, *, required: bool) -> Backend | None:
    """The backend; a missing API key fails here, before any work (unless nothing will be sent)."""
    from ._service.backend import Backend

    try:
        return Backend(client, retry=retry)
    except AuthenticationError:
        if required:
            raise
        return None


def _service(backend: Backend | None) -> str:
    from ._service.backend import service_of

    return (
        backend.service
        if backend is not None
        else service_of(os.environ.get("GOOGLE_GEMINI_BASE_URL"))
    )


def _cache(value: Any) -> ResultCache | None:
    from .cache import ResultCache
    from .exceptions import ConfigError

    if value is None or value is False:
        return None
    if value is True:
        return ResultCache()
    if isinstance(value, ResultCache):
        return value
    if isinstance(value, (str, os.PathLike)):
        return ResultCache(value)
    raise ConfigError(
        f"cache must be True, False, a path / fsspec URL or a gembatch.ResultCache (got {value!r})."
    )


def default_job_dir() -> str:
    import datetime as dt
    import secrets

    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return os.path.join(".gembatch", f"run-{stamp}-{secrets.token_hex(3)}")


# ------------------------------------------------------------------------------------ 1. prepare
def open_or_prepare(call: Call, backend: Backend | None) -> Run:
    """The run of ``call``: its run directory reopened (same input and config only), or prepared."""
    cache = _cache(call.spend.cache)
    spec = dataclasses.replace(
        call.spec,
        service=_service(backend),
        hashed=call.options.dedup or cache is not None or call.spend.pilot is not None,
    )
    store = Directory(
        call.job_dir if call.job_dir is not None else default_job_dir(),
        **(call.storage_options or {}),
    )
    if Journal.exists(store):
        journal = Journal.open(store)
        check_same_run(journal.manifest, call, spec, store.url)
    else:
        lookup = cache
        if call.spend.pilot is not None and not call.spend.dry_run:
            assert backend is not None
            lookup = run_pilot(call, spec, store, backend, cache)
        manifest = Manifest(
            run_id=new_run_id(),
            kind=spec.kind,
            model=spec.model,
            static=spec.static,
            config=call.config,
            options=call.options.to_dict(),
            prompt=call.prompt,
            key=spec.key_column,
            response_schema=call.response_schema,
            dimensions=call.dimensions,
            service=spec.service,
            cache=None if cache is None else cache.path,
            frame=call.frame,
            gembatch=__version__,
        )
        with run_lock(store):
            journal = prepare(store, call.source, spec, call.options, manifest, lookup)
    return Run(
        journal, backend, call.options, cache=cache, prices=call.spend.prices, retry=call.retry
    )


def prepare(
    store: Directory,
    source: Source,
    spec: RequestSpec,
    options: Options,
    manifest: Manifest,
    lookup: ResultCache | None,
) -> Journal:
    """Validate the input, write its shards, then the manifest; return the new journal."""
    prepared = write_shards(store, source, spec, options, run_id=manifest.run_id, cache=lookup)
    manifest.fingerprint = prepared.fingerprint
    manifest.rows, manifest.lines, manifest.requests = (
        prepared.rows,
        prepared.lines,
        prepared.requests,
    )
    manifest.deduplicated, manifest.cached = prepared.deduplicated, prepared.cached
    journal = Journal.create(store, manifest, prepared.shards)
    for shard in journal.shards:
        if shard.mode == "none":  # nothing to send: every row skipped or answered from the cache
            store.write_bytes(shard.path("results.jsonl"), b"")
            journal.move(shard, S.FETCHED, note="nothing to send")
    return journal


def check_same_run(manifest: Manifest, call: Call, spec: RequestSpec, where: str) -> None:
    """Refuse to resume a run over a different model, config or input."""
    if manifest.kind != spec.kind or manifest.model != spec.model or manifest.static != spec.static:
        raise RunMismatchError(
            f"The run directory {where!r} holds a {manifest.kind} run of {manifest.model} with "
            "another "
            "config. Hint: use a new job_dir, or BatchRun.open(job_dir) to look at that run."
        )
    fp = manifest.fingerprint
    lines_sha, data_sha = digests(call.source, spec, call.options)
    problems = []
    if fp is None or fp.requests_sha256 != lines_sha:
        problems.append("the requests differ (prompts, keys or config changed)")
    elif fp.polars == pl.__version__ and fp.data_sha256 != data_sha:
        problems.append("the input rows differ (other columns changed)")
    if problems:
        raise RunMismatchError(
            f"The run directory {where!r} holds a run over different input: {'; '.join(problems)}. "
            "Hint: use a new job_dir for new input, or BatchRun.open(job_dir) to look at the old "
            "run."
        )


# ------------------------------------------------------------------------------------ 2. pilot
def run_pilot(
    call: Call, spec: RequestSpec, store: Directory, backend: Backend, cache: ResultCache | None
) -> ResultCache:
    """Validate every row, then send a random sample as a run of its own (``<job_dir>/pilot``); stop
    with :class:`PilotFailedError` if too many of its rows fail. Returns the cache that holds the
    pilot's answers (so the full run does not pay for them again)."""
    from .cache import ResultCache
    from .handle import BatchRun

    spend = call.spend
    for _ in iter_checked(call.source, dataclasses.replace(spec, hashed=False), call.options):
        pass  # a bad row anywhere stops here, before the pilot spends anything
    assert spend.pilot is not None
    sample = call.source.sample(spend.pilot, seed=0, slice_rows=call.options.slice_rows)
    answers = (
        cache
        if cache is not None
        else ResultCache(
            f"{store.url.rstrip('/')}/pilot-cache", storage_options=call.storage_options
        )
    )
    pilot_store = store.child("pilot")
    if Journal.exists(pilot_store):
        journal = Journal.open(pilot_store)
    else:
        manifest = Manifest(
            run_id=new_run_id(),
            kind=spec.kind,
            model=spec.model,
            static=spec.static,
            config=call.config,
            options=call.options.to_dict(),
            prompt=call.prompt,
            key=spec.key_column,
            response_schema=call.response_schema,
            dimensions=call.dimensions,
            service=spec.service,
            cache=answers.path,
            pilot=True,
            gembatch=__version__,
        )
        with run_lock(pilot_store):
            journal = prepare(
                pilot_store, FrameSource(sample), spec, call.options, manifest, answers
            )
    run = Run(journal, backend, call.options, cache=answers, prices=spend.prices, retry=call.retry)
    out = BatchRun(run, progress=call.progress).result()
    status = out[f"{call.options.prefix}status"]
    asked = int((status != "skipped").sum())
    failed = out.filter((status != "skipped") & (status != "ok"))
    rate = failed.height / asked if asked else 0.0
    if rate > spend.pilot_max_error_rate:
        errors = (
            failed.group_by(f"{call.options.prefix}error_message")
            .len()
            .sort("len", descending=True)
            .head(3)
        )
        top = "; ".join(f"{n:,} x {msg!r}" for msg, n in errors.iter_rows())
        raise PilotFailedError(
            f"The pilot sample failed: {failed.height:,} of {asked:,} rows ({rate:.0%}) did not "
            "get an "
            f"answer (limit {spend.pilot_max_error_rate:.0%}); the full batch was not sent. Most "
            "common "
            f"errors: {top}.\nHint: fix the config or prompt (see the pilot's rows in "
            f"error.result or {pilot_store.url}), or raise pilot_max_error_rate.",
            result=out,
        )
    return answers


# ------------------------------------------------------------------------------------ 3. price
def check_cost(plan: Plan, max_cost: float | None, where: str) -> None:
    """Refuse to send when the cost bound at the batch rate is above ``max_cost``."""
    estimate = plan.estimate
    if max_cost is None or estimate is None or estimate.total_usd_bound <= max_cost:
        return
    raise CostLimitError(
        f"The run would cost up to ${estimate.total_usd_bound:,.4f} at the batch rate, above "
        f"max_cost=${max_cost:,.4f}; nothing was sent.\n{estimate}\nHint: set "
        "Config(max_output_tokens=...) to tighten the output bound, raise max_cost, or call "
        f"again with job_dir={where!r} to send this prepared run."
    )


# ------------------------------------------------------------------------------------ 4-7. the
# driver
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

    @property
    def backend(self) -> Backend:
        """The service; built from the environment on first use (a missing key fails here)."""
        if self._backend is None:
            from ._service.backend import Backend

            self._backend = Backend(retry=self.retry)
        return self._backend

    @property
    def shards(self) -> list[ShardRecord]:
        return self.journal.shards

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
        """Upload and create every shard not yet submitted (uploads in parallel)."""
        todo = [
            r
            for r in self.journal.records()
            if r.state.rank < S.SUBMITTED.rank and r.mode != "none"
        ]
        if not todo:
            return
        workers = min(self.options.upload_concurrency, len(todo))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gembatch-submit") as pool:
            outcomes = list(pool.map(self._submit_safely, todo))
        errors = [e for e in outcomes if e is not None]
        if errors:
            raise errors[0]

    def _submit_safely(self, record: ShardRecord) -> GembatchError | None:
        try:
            self._submit_one(record)
        except GembatchError as exc:
            return exc
        return None

    def _submit_one(self, record: ShardRecord) -> None:
        if record.mode == "file":
            if record.state is S.PREPARED:
                self.journal.move(record, S.UPLOADING)
                self._upload(record, look_first=False)
            elif record.state is S.UPLOADING:
                self._upload(record, look_first=True)
        if record.state in (S.UPLOADED, S.PREPARED):
            self.journal.move(record, S.CREATING)
            self._create(record, look_first=False)
        elif record.state is S.CREATING:
            self._create(record, look_first=True)

    def _exactly_once(
        self,
        *,
        look: Callable[[], list[T]],
        act: Callable[[], T],
        adopt: Callable[[list[T]], None],
        look_first: bool,
    ) -> None:
        """Look for the remote object (when an earlier try may have made it), else make it.

        Only transient failures are tried again, each time looking first: a create whose response
        was lost is found by the look and adopted instead of being sent again.
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
                        f"{exc} Gave up after {policy.attempts} tries. Nothing was lost and "
                        "nothing "
                        "will be sent twice. Hint: run the same call again, or "
                        f"gembatch.BatchRun.open({self.store.url!r}).wait(), to resume.",
                        code=exc.code,
                        status=exc.status,
                    ) from exc
                delay = min(policy.max_delay, policy.initial_delay * 2**attempt)
                self._sleep(delay + random.uniform(0, policy.jitter))
                look_first = True
                continue
            adopt([made])
            return

    def _upload(self, record: ShardRecord, *, look_first: bool) -> None:
        def act() -> RemoteFile:
            with self.store.open(record.path("requests.jsonl"), "rb") as stream:
                return self.backend.upload(stream, display_name=record.display_name)

        def look() -> list[RemoteFile]:
            return [
                f
                for f in self.backend.find_files(record.display_name)
                if f.state in (None, "ACTIVE") and f.size_bytes in (None, record.bytes)
            ]

        def adopt(files: list[RemoteFile]) -> None:
            keep, *extra = files
            for orphan in extra:  # copies left by uploads whose answer was lost
                self.backend.delete_file(orphan.name)
            note = f"uploaded {keep.name}" + (f" (+{len(extra)} orphans deleted)" if extra else "")
            self.journal.move(record, S.UPLOADED, file_name=keep.name, note=note)

        self._exactly_once(look=look, act=act, adopt=adopt, look_first=look_first)

    def _create(self, record: ShardRecord, *, look_first: bool) -> None:
        def act() -> RemoteJob:
            if record.mode == "inline":
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

        def adopt(jobs: list[RemoteJob]) -> None:
            job = jobs[0]
            note = f"created {job.name}" if not look_first else f"adopted {job.name}"
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

        self._exactly_once(
            look=lambda: self.backend.find_jobs(record.display_name),
            act=act,
            adopt=adopt,
            look_first=look_first,
        )

    # -- 5. poll --------------------------------------------------------------------------------
    def _inline_keys(self, record: ShardRecord) -> list[str] | None:
        if record.mode != "inline":
            return None
        lines = self.store.read_lines(record.path("requests.jsonl"))
        return lines.str.json_path_match("$.key").to_list()

    def _poll(self, record: ShardRecord) -> None:
        assert record.job_name is not None
        job = self.backend.get(record.job_name, inline_keys=self._inline_keys(record))
        if not job.done:
            if job.state != record.job_state or (job.stats and job.stats != record.stats):
                self.journal.progress(
                    record, job_state=job.state, stats=job.stats or record.stats, at=self._wall()
                )
            self._watch(record)
            return
        fields: dict[str, Any] = {
            "job_state": job.state,
            "job_error": job.error,
            "finished_at": self._wall(),
            "result_file": job.result_file,
            "stats": job.stats or record.stats,
        }
        if job.inline_lines is not None:
            data = "".join(line + "\n" for line in job.inline_lines).encode()
            self.store.write_bytes(record.path("results.jsonl"), data)
            self.journal.move(
                record, S.FETCHED, note=f"{job.state}, inline results saved", **fields
            )
        else:
            self.journal.move(record, S.FINISHED, note=job.state, **fields)

    def _watch(self, record: ShardRecord) -> None:
        """Cancel a job that has not started or progressed within ``options.stuck_after``
        seconds."""
        limit = self.options.stuck_after
        since = record.progress_at or record.submitted_at
        if limit is None or since is None or record.watchdog or self._wall() - since < limit:
            return
        parent = record.index if record.parent is None else record.parent
        if len(self.journal.resubmissions.get(parent, [])) >= self.options.max_resubmits:
            return
        assert record.job_name is not None
        self.journal.move(
            record,
            S.SUBMITTED,
            watchdog=True,
            note=f"watchdog: no progress for {limit:g} s in {record.job_state}; cancelling",
        )
        self.backend.cancel(record.job_name)

    # -- 6. fetch -------------------------------------------------------------------------------
    def _fetch(self, record: ShardRecord) -> None:
        target = record.path("results.jsonl")
        if record.result_file:
            self.backend.download(record.result_file, lambda: self.store.atomic_writer(target))
        else:  # no output (expired, or cancelled/failed before any line)
            self.store.write_bytes(target, b"")
        self.journal.move(record, S.FETCHED, note=f"results of {record.job_name} saved")

    # -- 7. join --------------------------------------------------------------------------------
    def _settle(self, shard: ShardRecord) -> bool:
        """Join a shard whose results (and its resubmissions') are in; resubmit what must go
        again."""
        changed = False
        family = self.journal.family(shard)
        fetched = [r for r in family if r.state is S.FETCHED]
        if fetched and shard.state.rank >= S.FETCHED.rank:
            self._join(shard)
            for record in fetched:
                if record is not shard:
                    self.journal.move(record, S.JOINED, note="merged into its shard")
            changed = True
            changed |= self._maybe_resubmit(shard, fetched)
        final = all(r.state is S.JOINED for r in family)
        if final and self.options.cleanup_remote:
            for record in family:
                if not record.cleaned:
                    self._cleanup(record)
        if final and self.sink is not None:
            self.sink.offer(shard.index, self.store, shard.path("output.parquet"))
        return changed

    def _join(self, shard: ShardRecord) -> None:
        output, keys, report = join_shard(self.journal, shard, self.options.prefix)
        self.store.write_parquet(shard.path("output.parquet"), output, compression="snappy")
        self._remember(shard, output, keys)
        self.journal.move(shard, S.JOINED, report=report)

    def _remember(self, shard: ShardRecord, output: pl.DataFrame, keys: pl.DataFrame) -> None:
        """Put the shard's fresh ``ok`` answers in the result cache (a failure only warns: the cache
        saves money, the run directory holds the results)."""
        prefix = self.options.prefix
        if self.cache is None or HASH not in keys.columns:
            return
        version = f"{prefix}model_version"
        answered = keys.select(KEY, HASH, VIA).with_columns(
            output[f"{prefix}status"].alias("status"),
            (output[version] if version in output.columns else pl.lit(None, dtype=pl.Utf8)).alias(
                "model_version"
            ),
        )
        fresh = answered.filter((pl.col(VIA) == "line") & (pl.col("status") == "ok"))
        if not fresh.height:
            return
        try:
            entries = fresh.select(
                pl.col(KEY).alias("key"), pl.col(HASH).alias("hash"), "model_version"
            ).join(raw_answers(self.journal, shard), on="key", how="inner")
            self.cache.put(entries.with_columns(pl.lit(self.model).alias("model")))
        except Exception as exc:  # noqa: BLE001 - the cache is an optimisation, never a failure
            warnings.warn(
                f"gembatch could not add shard {shard.index}'s answers to the result cache "
                f"{self.cache.path!r}: {exc}",
                ResultWarning,
                stacklevel=2,
            )

    def _in_flight(self, shard: ShardRecord) -> bool:
        return any(
            r.state.rank < S.FETCHED.rank for r in self.journal.resubmissions.get(shard.index, [])
        )

    def _maybe_resubmit(self, shard: ShardRecord, fetched: list[ShardRecord]) -> bool:
        """Send again the rows of an EXPIRED job, or of a job the watchdog cancelled (split in
        two)."""
        expired = self.options.resubmit_expired and any(
            r.job_state == "JOB_STATE_EXPIRED" for r in fetched
        )
        stuck = any(r.watchdog for r in fetched)
        if not (expired or stuck) or self._in_flight(shard):
            return False
        return (
            self.resubmit(
                shard,
                reason="watchdog" if stuck else "expired",
                include_errors=False,
                parts=2 if stuck else 1,
            )
            > 0
        )

    def resubmit(
        self, shard: ShardRecord, *, reason: str, include_errors: bool, parts: int = 1
    ) -> int:
        """Record resubmissions of the shard's unanswered (and, if asked, retryable-error) rows."""
        if len(shard.resubmissions) >= self.options.max_resubmits or self._in_flight(shard):
            return 0
        lines = lines_to_resend(self.journal, shard, include_errors=include_errors)
        if not lines:
            return 0
        parts = max(
            1, min(parts, len(lines), self.options.max_resubmits - len(shard.resubmissions))
        )
        size = -(-len(lines) // parts)
        for i in range(0, len(lines), size):
            part = lines[i : i + size]
            nbytes = sum(len(x.encode()) + 1 for x in part)
            inline = fits_inline(
                len(part),
                nbytes,
                max_rows=self.options.inline_max_rows,
                max_bytes=self.options.inline_max_bytes,
            )
            self.journal.add_resubmission(shard, part, reason, mode="inline" if inline else "file")
        return len(lines)

    def _cleanup(self, record: ShardRecord) -> None:
        for name in (record.file_name, record.result_file):
            if name:
                self.backend.delete_file(name)
        self.journal.move(record, S.JOINED, cleaned=True, note="remote files deleted")

    # -- the loop -------------------------------------------------------------------------------
    def step(self) -> bool:
        """Advance every shard and resubmission by what can be done now; True when something
        changed."""
        changed = False
        for shard in self.shards:
            for record in self.journal.family(shard):
                before = (record.state, record.job_state, repr(record.stats))
                if record.state is S.SUBMITTED:
                    self._poll(record)
                if record.state is S.FINISHED:
                    self._fetch(record)
                changed |= before != (record.state, record.job_state, repr(record.stats))
            changed |= self._settle(shard)
        return changed

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
                done += s.stats.get("successfulRequestCount", 0) + s.stats.get(
                    "failedRequestCount", 0
                )
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
        finally:
            self.progress.close()
