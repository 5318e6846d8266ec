"""The life of one run, top to bottom: prepare -> pilot -> price -> submit -> poll -> fetch -> join.

This module is the orchestrator (steps 4-7, shard by shard, are :mod:`gembatch._run.driver`); each
step's detail lives with its concern (building requests in ``_build``, the run directory in
``_state``, the service in ``_service``, results in ``_results``, money in ``_money``)::

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
``CREATING``) under the shard's deterministic display name; the service is searched for that name
before anything is sent, and what is found is adopted instead of paid for again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl

from .. import __version__
from .._build.checks import check_frame
from .._build.prepare import digests, iter_checked, write_shards
from .._build.schemas import with_form
from .._build.sources import FrameSource, Source
from .._build.spec import RequestSpec
from .._money.plan import Plan
from .._money.pricing import PriceTable
from .._results.join import answered_entries
from .._state.journal import Journal, new_run_id, seal_file
from .._state.lock import run_lock
from .._state.records import Manifest, ShardState
from .._storage import Directory
from ..config import Options, RetryPolicy
from ..exceptions import (
    AuthenticationError,
    ConfigError,
    CostLimitError,
    GembatchError,
    PilotFailedError,
    RunDirectoryError,
    RunMismatchError,
    TerminalServiceError,
)
from ..progress import Progress
from .budget import Budget
from .driver import Run

if TYPE_CHECKING:
    from .._service.backend import Backend
    from ..cache import ResultCache
    from ..handle import BatchRun

__all__ = [
    "Call",
    "Spend",
    "check_cost",
    "choose_mode",
    "open_or_prepare",
    "prepare",
    "run_pilot",
    "start",
]

S = ShardState
logger = logging.getLogger("gembatch")


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
    pilot_mode: str = "batch"  # how the pilot is sent: "batch" or "interactive" (in seconds)
    check_schema: bool | None = None  # a structured run's pilot tries each schema form (None: auto)


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
    mode: str = "batch"  # "batch" | "interactive" | "auto" (see choose_mode)


# ------------------------------------------------------------------------------------ the whole
# call
def start(call: Call) -> pl.DataFrame | BatchRun | Plan:
    """Carry one call out, from the input rows to the output (or a plan, or a handle)."""

    spend = call.spend
    backend = _backend(call.client, call.retry, required=not spend.dry_run or spend.exact_tokens)
    if backend is not None and not spend.dry_run:
        backend.check_model(call.spec.model, methods=_methods(call))  # fail fast: no service,
        # no such model, or one that cannot do this kind of work
    run = open_or_prepare(call, backend)
    if not spend.dry_run:
        with run.journal.locked():
            run.set_mode(choose_mode(call, run), hand_over=call.mode == "batch")
    try:
        return _carry_on(call, run)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(
            f"gembatch: interrupted. Nothing is lost and nothing will be paid twice: run the same "
            f"call again, or gembatch.BatchRun.open({run.store.url!r}).result(), to resume."
        ) from None


def _methods(call: Call) -> tuple[str, ...]:
    """The service methods the call may use (one of them must be the model's)."""
    batch, live = (
        ("asyncBatchEmbedContent", "embedContent")
        if call.spec.kind == "embed"
        else ("batchGenerateContent", "generateContent")
    )
    return {"batch": (batch,), "interactive": (live,)}.get(call.mode, (batch, live))


def _carry_on(call: Call, run: Run) -> pl.DataFrame | BatchRun | Plan:
    """Steps 3-8 of a prepared (or reopened) run."""
    from ..handle import BatchRun

    spend = call.spend
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


def choose_mode(call: Call, run: Run) -> str:
    """How what is left of the run is sent: ``call.mode``, or for ``"auto"`` interactively when the
    work is small (at most ``Options.auto_max_rows`` requests to send, and at most
    ``Options.auto_max_savings`` dollars that the batch rate would save on the expected cost),
    by batch jobs otherwise."""
    if call.mode != "auto":
        return call.mode
    options = call.options
    lines = sum(
        r.lines for r in run.journal.records() if r.state is S.PREPARED and r.mode != "none"
    )
    if lines == 0 or lines > options.auto_max_rows:
        decision, why = (
            "batch",
            f"{lines:,} requests to send (auto_max_rows={options.auto_max_rows})",
        )
    else:
        try:
            estimate = run.plan(table=call.spend.prices).estimate
        except GembatchError:  # no price for the model: decide on the rows alone
            estimate = None
        saved = (
            0.0 if estimate is None else estimate.expected_interactive_usd - estimate.expected_usd
        )
        small = saved <= options.auto_max_savings
        decision = "interactive" if small else "batch"
        why = (
            f"{lines:,} requests; the batch rate would save ~${saved:,.4f} "
            f"(auto_max_savings=${options.auto_max_savings:,.2f})"
        )
    logger.info("gembatch: mode=auto sends by %s: %s", decision, why)
    return decision


def _backend(client: Any, retry: RetryPolicy | None, *, required: bool) -> Backend | None:
    """The backend; a missing API key fails here, before any work (unless nothing will be sent)."""
    from .._service.backend import Backend

    try:
        return Backend(client, retry=retry)
    except AuthenticationError:
        if required:
            raise
        return None


def _service(backend: Backend | None) -> str:
    from .._service.backend import service_of

    return (
        backend.service
        if backend is not None
        else service_of(os.environ.get("GOOGLE_GEMINI_BASE_URL"))
    )


def _cache(value: Any) -> ResultCache | None:
    from ..cache import ResultCache
    from ..exceptions import ConfigError

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


#: Where runs without a ``job_dir`` live: one folder per (input, request) content, so that running
#: the same cell again resumes (or returns the finished result) instead of paying again.
RUNS_DIR = os.path.join(".gembatch", "runs")


def default_job_dir(call: Call, spec: RequestSpec) -> str:
    """The run directory of a call without ``job_dir``: derived from what it asks of which rows."""
    what = {
        "kind": spec.kind,
        "model": spec.model,
        "static": spec.static,
        "prompt": call.prompt,
        "system_instruction": str(spec.system_instruction),
        "media": repr(spec.media),
        "key": spec.key_column,
        "skip_null_prompts": spec.skip_null_prompts,
        "service": spec.service,
        "prefix": call.options.prefix,
    }
    digest = hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode())
    digest.update(call.source.fingerprint().encode())
    return os.path.join(RUNS_DIR, f"{spec.kind}-{digest.hexdigest()[:20]}")


# ------------------------------------------------------------------------------------ 1. prepare
def open_or_prepare(call: Call, backend: Backend | None) -> Run:
    """The run of ``call``: its run directory reopened (same input and config only), or prepared."""
    cache = _cache(call.spend.cache)
    spec = dataclasses.replace(
        call.spec,
        service=_service(backend),
        hashed=True,  # content addresses: dedup, the result cache, updates of this run
    )
    store = Directory(
        call.job_dir if call.job_dir is not None else default_job_dir(call, spec),
        **(call.storage_options or {}),
    )
    _finish_interrupted_update(store)
    check_frame(
        call.source.schema,
        key_column=spec.key_column,
        produced=result_columns(spec.kind, call.options.prefix, call.response_schema),
    )
    previous: list[str] = []
    if Journal.exists(store):
        journal = Journal.open(store)
        if journal.manifest.schema_form:  # the form a pilot chose for this run
            spec = _in_form(spec, journal.manifest.schema_form)
        changed = check_same_run(journal.manifest, call, spec, store.url)
        if changed is None:
            return Run(
                journal,
                backend,
                call.options,
                cache=cache,
                prices=call.spend.prices,
                retry=call.retry,
            )
        answers = _retire(journal, call, backend, changed)
        previous = [*journal.manifest.previous, journal.manifest.run_id]
        # every run this directory held serves the update (A -> B -> A pays nothing the 2nd time)
        older = [a for run_id, a in _retired_answers(store, call) if run_id != previous[-1]]
        stores = [answers, *older]
        lookup: Any = _Lookups([*stores, cache] if cache is not None else stores)
    else:
        _refuse_orphaned_shards(store)
        lookup = cache
        retired = _retired_answers(store, call)
        if retired:  # an update was interrupted after the old run was retired: reuse its answers
            previous = [run_id for run_id, _ in retired][::-1]
            stores = [answers for _, answers in retired]
            lookup = _Lookups([*stores, cache] if cache is not None else stores)
    schema_form = None
    pilot = call.spend.pilot
    if pilot is None and _checks_schema(call, spec):
        pilot = SCHEMA_PILOT_ROWS
    if pilot is not None and not call.spend.dry_run and not previous:
        assert backend is not None
        lookup, schema_form = run_pilot(call, spec, store, backend, cache, pilot)
        if schema_form is not None:
            spec = _in_form(spec, schema_form)
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
        previous=previous,
        schema_form=schema_form,
        gembatch=__version__,
    )
    if cache is not None:
        lookup = _AwaitInFlight(lookup, cache, store.url, call)
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
    budget = Budget.of(options, spec.model)
    manifest.budget = budget.to_json()
    prepared = write_shards(
        store,
        source,
        spec,
        options,
        run_id=manifest.run_id,
        cache=lookup,
        max_tokens=options.shard_max_tokens or max(1, budget.tokens // 4),
    )
    for shard in prepared.shards:  # what each file holds, checked before it is sent or joined
        seal_file(
            store, shard, "requests.jsonl", rows=shard.lines, digest=(shard.sha256, shard.bytes)
        )
        for name in ("input.parquet", "keys.parquet"):
            seal_file(store, shard, name, rows=shard.rows)
        if store.exists(shard.path("cached.jsonl")):
            seal_file(store, shard, "cached.jsonl")
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


def result_columns(kind: str, prefix: str, response_schema: Any = None) -> list[str]:
    """The columns a run adds to the frame, with their prefix."""
    from .._results.parse import GENERATE_COLUMNS, embed_columns

    names = [
        n for n in (GENERATE_COLUMNS if kind == "generate" else embed_columns(None)) if n != "key"
    ]
    names += ["batch_job", "origin"] + (["parsed"] if response_schema is not None else [])
    return [f"{prefix}{n}" for n in names]


def _refuse_orphaned_shards(store: Directory) -> None:
    """A run directory whose manifest (and its copy) is gone, but whose shards were sent, is not
    prepared over: its jobs would be paid for again."""
    for name in store.listdir("shards"):
        rel = f"shards/{name}/state.json"
        if not name.isdigit() or not store.exists(rel):
            continue
        try:
            state = store.read_json(rel).get("state")
        except ValueError:
            state = None
        if state != ShardState.PREPARED.value:
            raise RunDirectoryError(
                f"The run directory {store.url!r} has no run.json (nor its copy shards/run.json), "
                f"but its shards were sent (shard {int(name)} is {state or 'unreadable'}). "
                "gembatch will not prepare over it: its jobs would be paid for again. Hint: "
                "restore run.json from a copy of the run directory, or use another job_dir."
            )


def check_same_run(manifest: Manifest, call: Call, spec: RequestSpec, where: str) -> str | None:
    """None when the call is the run's own (resume it); what changed when only the input changed (an
    update); RunMismatchError when the model or config differ."""
    if manifest.kind != spec.kind or manifest.model != spec.model or manifest.static != spec.static:
        raise RunMismatchError(
            f"The run directory {where!r} holds a {manifest.kind} run of {manifest.model} with "
            "another config. Hint: use a new job_dir, or BatchRun.open(job_dir) to look at that "
            "run."
        )
    fp = manifest.fingerprint
    lines_sha, data_sha = digests(call.source, spec, call.options)
    if fp is None or fp.requests_sha256 != lines_sha:
        return "the requests differ (prompts, keys or rows changed)"
    if fp.polars == pl.__version__ and fp.data_sha256 != data_sha:
        return "the input rows differ (other columns changed)"
    return None


def _retire(journal: Journal, call: Call, backend: Backend | None, changed: str) -> ResultCache:
    """Make way for an update: let go of what the old run never sent, finish what it has in flight
    (paid for), keep its answers in ``history/<run id>/answers`` (request hash -> answer) and move
    its files under ``history/``. A call that must not wait (``wait=False``, a dry run) is refused
    while jobs are in flight, before anything changes."""
    from ..cache import ResultCache
    from ..progress import make_progress

    store, old_id = journal.store, journal.manifest.run_id
    old = Run(journal, backend, Options.from_dict(journal.manifest.options), retry=call.retry)
    if old.in_flight() and (not call.wait or call.spend.dry_run):
        raise RunMismatchError(
            f"The run directory {store.url!r} holds a run over other input ({changed}) whose jobs "
            "are still running. Hint: call with wait=True (and without dry_run) to finish them and "
            f"update it (its answers are reused), or gembatch.BatchRun.open({store.url!r}).wait() "
            "first."
        )
    if not old.done():
        with journal.locked():
            dropped = old.drop_unsent()  # the update sends what it still needs, once
        if dropped:
            logger.info("gembatch: %s: %s parts of the old run not sent", store.url, dropped)
    if not old.done():
        old.resubmits = False  # what its jobs leave unanswered, the update sends if still needed
        old.progress = make_progress(call.progress)
        with journal.locked():
            old.wait()
    logger.info(
        "gembatch: %s in %s (%s): updating it; unchanged requests reuse its answers",
        old_id,
        store.url,
        changed,
    )
    answers = ResultCache(
        store.child(f"history/{old_id}/answers").url,
        max_bytes=2**62,
        storage_options=call.storage_options,
    )
    for shard in journal.shards:
        answers.put(answered_entries(journal, shard, old.options.prefix, include_cached=True))
    with run_lock(store):
        store.move("shards", f"history/{old_id}/shards")
        store.move("run.json", f"history/{old_id}/run.json")
    return answers


def _retired_answers(store: Directory, call: Call) -> list[tuple[str, ResultCache]]:
    """The answers of the runs this directory held before (``history/<run id>/``), newest first:
    a directory with a history and no current run is an update that died before its new run was
    written; those answers are paid for and must serve it."""
    from ..cache import ResultCache

    if not store.exists("history"):
        return []
    found: list[tuple[str, str, ResultCache]] = []
    for run_id in store.listdir("history"):
        if not store.exists(f"history/{run_id}/answers") or not store.exists(
            f"history/{run_id}/run.json"
        ):
            continue
        try:
            created = str(store.read_json(f"history/{run_id}/run.json").get("created", ""))
        except (ValueError, OSError):
            created = ""
        answers = ResultCache(
            store.child(f"history/{run_id}/answers").url,
            max_bytes=2**62,
            storage_options=call.storage_options,
        )
        found.append((created, run_id, answers))
    found.sort(key=lambda item: item[0], reverse=True)
    return [(run_id, answers) for _, run_id, answers in found]


def _finish_interrupted_update(store: Directory) -> None:
    """An update that died between moving the old run's shards and its manifest: finish the move."""
    if not store.exists("run.json") or store.exists("shards"):
        return
    try:
        old_id = str(store.read_json("run.json").get("run_id"))
    except ValueError:
        return
    if store.exists(f"history/{old_id}/shards"):
        store.move("run.json", f"history/{old_id}/run.json")


class _AwaitInFlight:
    """The answer lookup of a run being prepared, which first settles the requests another run
    has in flight (recorded in the result cache): a run nobody drives is driven here to its
    answers; one another process drives is waited for (up to ``Options.inflight_wait``). Either
    way those requests then come from the cache instead of being paid again."""

    def __init__(self, inner: Any, cache: ResultCache, own: str, call: Call) -> None:
        self.inner, self.cache, self.own, self.call = inner, cache, own, call

    def lookup(self, hashes: pl.Series) -> pl.DataFrame:
        self._settle(hashes)
        result: pl.DataFrame = self.inner.lookup(hashes)
        return result

    def _settle(self, hashes: pl.Series) -> None:
        from ..exceptions import RunLockedError
        from ..handle import BatchRun

        deadline = time.monotonic() + self.call.options.inflight_wait
        driven: set[str] = set()
        while True:
            others = {d: n for d, n in self.cache.in_flight(hashes).items() if d != self.own}
            waiting = {}
            for run_dir, count in others.items():
                if run_dir in driven or not Journal.exists(Directory(run_dir)):
                    continue  # gone, or driven to its end already (what it lacks it failed)
                logger.info(
                    "gembatch: %s requests are in flight in %s: waiting for its answers",
                    count,
                    run_dir,
                )
                try:
                    BatchRun.open(run_dir, progress=False, retry=self.call.retry).wait()
                    driven.add(run_dir)
                except RunLockedError:
                    waiting[run_dir] = count  # another process drives it: its answers will come
                except GembatchError as exc:  # not ours to fix: send those requests ourselves
                    logger.info("gembatch: not waiting for %s: %s", run_dir, exc)
                    driven.add(run_dir)
            if not waiting or time.monotonic() > deadline:
                return
            time.sleep(min(self.call.options.poll_interval, 5.0))


class _Lookups:
    """Several answer stores asked in turn (an updated run's old answers, then the result cache)."""

    def __init__(self, stores: list[Any]) -> None:
        self.stores = stores
        self.path = ", ".join(str(s.path) for s in stores)

    def lookup(self, hashes: pl.Series) -> pl.DataFrame:
        found: list[pl.DataFrame] = []
        for store in self.stores:
            hits = store.lookup(hashes)
            found.append(hits)
            hashes = hashes.filter(~hashes.is_in(hits["hash"].implode()))
            if not len(hashes):
                break
        return pl.concat(found, how="vertical_relaxed")


# ------------------------------------------------------------------------------------ 2. pilot
#: Rows of the pilot a structured run sends on its own (``check_schema``), per schema form.
SCHEMA_PILOT_ROWS = 20
#: Requests from which a structured run checks its schema form by default (``check_schema=None``).
SCHEMA_CHECK_MIN_ROWS = 10_000


def _checks_schema(call: Call, spec: RequestSpec) -> bool:
    """Whether a run without ``pilot=`` first sends a small pilot to choose its schema form."""
    if call.response_schema is None or spec.kind != "generate" or call.spend.dry_run:
        return False
    if call.spend.check_schema is not None:
        return call.spend.check_schema
    return call.source.height() >= SCHEMA_CHECK_MIN_ROWS


def _in_form(spec: RequestSpec, form: str) -> RequestSpec:
    return dataclasses.replace(spec, static=with_form(spec.static, form))


def run_pilot(
    call: Call,
    spec: RequestSpec,
    store: Directory,
    backend: Backend,
    cache: ResultCache | None,
    size: float,
) -> tuple[ResultCache, str | None]:
    """Validate every row, then send a random sample of ``size`` rows as a run of its own
    (``<job_dir>/pilot``); stop with :class:`PilotFailedError` if too many of its rows fail.

    A structured run tries its schema forms in turn on the same sample: ``responseJsonSchema``
    first, then (if the schema has that form) ``responseSchema`` in ``<job_dir>/pilot-schema``;
    answers that do not decode, break the schema or are degenerate count as failures. The first
    form within ``pilot_max_error_rate`` is the run's (recorded in run.json); when none is, the
    report gives each form's figures. Returns the cache holding the pilot's answers (the full run
    does not pay for them again) and the chosen form (None without a schema)."""
    from ..cache import ResultCache

    spend = call.spend
    for _ in iter_checked(call.source, dataclasses.replace(spec, hashed=False), call.options):
        pass  # a bad row anywhere stops here, before the pilot spends anything
    sample = call.source.sample(size, seed=0, slice_rows=call.options.slice_rows)
    answers = (
        cache
        if cache is not None
        else ResultCache(
            f"{store.url.rstrip('/')}/pilot-cache", storage_options=call.storage_options
        )
    )
    structured = call.response_schema is not None and spec.kind == "generate"
    forms: list[str | None] = ["json_schema", "schema"] if structured else [None]
    reports: list[str] = []
    failed_out: pl.DataFrame | None = None
    for form in forms:
        try:
            form_spec = spec if form is None else _in_form(spec, form)
        except ConfigError as exc:  # the schema says what this form cannot
            reports.append(f"{FORM_NAMES[form or '']}: not tried ({exc})")
            continue
        name = "pilot" if form in (None, "json_schema") else f"pilot-{form}"
        try:
            out = _pilot_run(call, form_spec, store.child(name), backend, answers, sample)
        except TerminalServiceError as exc:
            if form is None:
                raise
            reports.append(f"{FORM_NAMES[form]}: refused by the service ({exc})")
            continue
        status = out[f"{call.options.prefix}status"]
        asked = int((status != "skipped").sum())
        failed = out.filter((status != "skipped") & (status != "ok"))
        rate = failed.height / asked if asked else 0.0
        if rate <= spend.pilot_max_error_rate:
            if form is not None:
                logger.info(
                    "gembatch: the pilot chose %s (%.0f%% failed)", FORM_NAMES[form], 100 * rate
                )
            return answers, form
        top = "; ".join(
            f"{n:,} x {msg!r}"
            for msg, n in failed.group_by(f"{call.options.prefix}error_message")
            .len()
            .sort("len", descending=True)
            .head(3)
            .iter_rows()
        )
        what = f"{FORM_NAMES[form]}: " if form is not None else ""
        reports.append(
            f"{what}{failed.height:,} of {asked:,} rows ({rate:.0%}) did not get a valid answer; "
            f"most common errors: {top}"
        )
        failed_out = out
    hint = (
        "Hint: fix the config or prompt (see the pilot's rows in error.result or "
        f"{store.url.rstrip('/')}/pilot*), or raise pilot_max_error_rate."
    )
    if structured:
        hint += (
            " The same schema may work interactively (mode='interactive'): several reports "
            "describe structured output that fails in batch only."
        )
    raise PilotFailedError(
        f"The pilot sample failed (limit {spend.pilot_max_error_rate:.0%}); the full batch was "
        "not sent.\n" + "\n".join(f"  {r}" for r in reports) + f"\n{hint}",
        result=failed_out,
    )


#: How reports name the schema forms.
FORM_NAMES = {"json_schema": "responseJsonSchema", "schema": "responseSchema"}


def _pilot_run(
    call: Call,
    spec: RequestSpec,
    pilot_store: Directory,
    backend: Backend,
    answers: ResultCache,
    sample: pl.DataFrame,
) -> pl.DataFrame:
    """The pilot's own run over ``sample`` (reopened when it exists), waited for."""
    from ..handle import BatchRun

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
    spend = call.spend
    run = Run(journal, backend, call.options, cache=answers, prices=spend.prices, retry=call.retry)
    with journal.locked():
        run.set_mode(spend.pilot_mode)
    result: pl.DataFrame = BatchRun(run, progress=call.progress).result()
    return result


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
