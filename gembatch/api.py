"""The typed entry points: ``batch_generate`` and ``batch_embed`` (the ``df.gemini`` namespace calls these).

>>> import polars as pl, gembatch
>>> # out = gembatch.batch_generate(df, "prompt", config=gembatch.Config(model="gemini-2.5-flash"))
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, overload

import polars as pl

from . import __version__
from ._service.backend import Backend, RetryPolicy, service_of
from .cache import ResultCache
from .config import Config, EmbedConfig
from ._money.estimate import Estimate
from .exceptions import (
    AuthenticationError,
    ConfigError,
    CostLimitError,
    PilotFailedError,
    RunMismatchError,
)
from ._state.journal import Journal, ShardState
from ._money.plan import Plan, plan_of
from ._build.prepare import (
    FrameSource,
    Options,
    RequestPlan,
    Source,
    as_source,
    check_same_input,
    iter_prepared,
    prepare_run,
)
from ._money.pricing import PriceTable
from .progress import Progress
from ._build.lines import MediaParts
from .handle import BatchRun
from ._storage import Store

__all__ = ["batch_embed", "batch_generate", "batch_generate_parquet", "estimate", "plan"]

Frame = pl.DataFrame | pl.LazyFrame
#: Default vector sizes of the embedding models, when output_dimensionality is not given.
EMBED_DIMENSIONS = {"gemini-embedding-001": 3072, "text-embedding-004": 768, "embedding-001": 768}


def _as_expr(value: str | pl.Expr, what: str) -> pl.Expr:
    if isinstance(value, str):
        return pl.col(value)
    if isinstance(value, pl.Expr):
        return value
    raise ConfigError(f"{what} must be a column name or a polars expression (got {value!r}).")


def _convert(data: Any) -> tuple[Any, Any]:
    """(polars DataFrame/LazyFrame or path, a function giving the caller's frame type back)."""
    if isinstance(data, (pl.DataFrame, pl.LazyFrame, str, os.PathLike)):
        return data, lambda out: out
    module = type(data).__module__.split(".")[0]
    if module == "pyarrow":
        return pl.from_arrow(data), lambda out: out.to_arrow() if isinstance(out, pl.DataFrame) else out
    if module == "pandas":
        return pl.from_pandas(data), lambda out: out.to_pandas() if isinstance(out, pl.DataFrame) else out
    return data, lambda out: out


def _default_job_dir() -> str:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return os.path.join(".gembatch", f"run-{stamp}-{secrets.token_hex(3)}")


def _columns_of(*exprs: pl.Expr | None) -> tuple[str, ...]:
    names: list[str] = []
    for expr in exprs:
        if expr is not None:
            names += [n for n in expr.meta.root_names() if n not in names]
    return tuple(names)


def _options(options: Options | None, overrides: dict[str, Any]) -> Options:
    base = options.to_dict() if options is not None else {}
    base.update({k: v for k, v in overrides.items() if v is not None})
    if "poll_interval" in overrides and overrides["poll_interval"] is not None:
        base["max_poll_interval"] = max(base.get("max_poll_interval", 120.0), overrides["poll_interval"])
    return Options(**base)


@dataclass(frozen=True, kw_only=True)
class _Spend:
    """How a call saves money: the result cache, a cost ceiling, a dry run, a pilot sample."""

    cache: bool | str | os.PathLike[str] | ResultCache | None = True
    max_cost: float | None = None
    dry_run: bool = False
    pilot: float | int | None = None
    pilot_max_error_rate: float = 0.2
    prices: PriceTable | None = None
    exact_tokens: bool = False

    def __post_init__(self) -> None:
        if self.max_cost is not None and not (isinstance(self.max_cost, (int, float)) and self.max_cost >= 0):
            raise ConfigError(f"max_cost must be a number of US dollars >= 0 (got {self.max_cost!r}).")
        pilot = self.pilot
        if pilot is not None and (isinstance(pilot, bool) or not isinstance(pilot, (int, float))
                                  or pilot <= 0 or (isinstance(pilot, float) and pilot >= 1)):
            raise ConfigError(
                f"pilot must be a share of the rows in (0, 1), e.g. 0.01, or a number of rows >= 1 "
                f"(got {pilot!r}).")
        if not 0 <= self.pilot_max_error_rate <= 1:
            raise ConfigError(f"pilot_max_error_rate must be in [0, 1] (got {self.pilot_max_error_rate!r}).")


def _cache(value: bool | str | os.PathLike[str] | ResultCache | None) -> ResultCache | None:
    if value is None or value is False:
        return None
    if value is True:
        return ResultCache()
    if isinstance(value, ResultCache):
        return value
    if isinstance(value, (str, os.PathLike)):
        return ResultCache(value)
    raise ConfigError(f"cache must be True, False, a path / fsspec URL or a gembatch.ResultCache (got {value!r}).")


def _backend(client: Any, retry: RetryPolicy | None, *, required: bool) -> Backend | None:
    """The backend; a missing API key fails here, before any work (unless nothing will be sent)."""
    try:
        return Backend(client, retry=retry)
    except AuthenticationError:
        if required:
            raise
        return None


def _start(
    source: Source, plan: RequestPlan, manifest: dict[str, Any], *, job_dir: str | os.PathLike[str] | None,
    client: Any, options: Options, wait: bool, progress: bool | Progress, storage_options: dict[str, Any] | None,
    retry: RetryPolicy | None, sink: str | os.PathLike[str] | None = None, spend: _Spend = _Spend(),
) -> pl.DataFrame | BatchRun | Plan:
    backend = _backend(client, retry, required=not spend.dry_run or spend.exact_tokens)
    service = backend.service if backend is not None else service_of(os.environ.get("GOOGLE_GEMINI_BASE_URL"))
    cache = _cache(spend.cache)
    plan = dataclasses.replace(plan, service=service,
                               hashed=options.dedup or cache is not None or spend.pilot is not None)
    manifest.update(service=service, cache=None if cache is None else cache.path)
    store = Store(job_dir if job_dir is not None else _default_job_dir(), **(storage_options or {}))
    if Journal.exists(store):
        journal = Journal.open(store)
        stored = journal.manifest
        if stored.get("kind") != plan.kind or stored.get("model") != plan.model or stored.get("static") != plan.static:
            raise RunMismatchError(
                f"The run directory {store.url!r} holds a {stored.get('kind')} run of "
                f"{stored.get('model')} with another config. Hint: use a new job_dir, or "
                "BatchRun.open(job_dir) to look at that run."
            )
        check_same_input(stored, source, plan, options, store.url)
    else:
        lookup = cache
        if spend.pilot is not None and not spend.dry_run:
            assert backend is not None
            lookup = _pilot(source, plan, manifest, store, options=options, backend=backend, cache=cache,
                            progress=progress, retry=retry, spend=spend, storage_options=storage_options)
        with _prepare_lock(store):
            journal = prepare_run(store, source, plan, options, manifest, lookup)
    unsent = all(s.state is ShardState.PREPARED or s.mode == "none" for s in journal.records())
    if spend.dry_run or (spend.max_cost is not None and unsent):
        the_plan = plan_of(journal, table=spend.prices, strict=spend.max_cost is not None,
                           backend=backend, exact=spend.exact_tokens)
        estimate = the_plan.estimate
        if spend.max_cost is not None and unsent and estimate is not None \
                and estimate.total_usd_bound > spend.max_cost:
            raise CostLimitError(
                f"The run would cost up to ${estimate.total_usd_bound:,.4f} at the batch rate, above "
                f"max_cost=${spend.max_cost:,.4f}; nothing was sent.\n{estimate}\nHint: set "
                "Config(max_output_tokens=...) to tighten the output bound, raise max_cost, or call "
                f"again with job_dir={store.url!r} to send this prepared run.")
        if spend.dry_run:
            return the_plan
    assert backend is not None
    run = BatchRun(journal, backend, options, progress=progress, cache=cache, prices=spend.prices)
    if not wait:
        with journal.locked():
            run._runner(progress=False).submit()
        return run
    if sink is not None:
        run.write(sink, storage_options=storage_options)
        return run
    return run.result()


def _pilot(
    source: Source, plan: RequestPlan, manifest: dict[str, Any], store: Store, *, options: Options,
    backend: Backend, cache: ResultCache | None, progress: bool | Progress, retry: RetryPolicy | None,
    spend: _Spend, storage_options: dict[str, Any] | None,
) -> ResultCache:
    """Validate every row, then send a random sample as a run of its own (``<job_dir>/pilot``); stop
    with :class:`PilotFailedError` if too many of its rows fail. Returns the cache that holds the
    pilot's answers (so the full run does not pay for them again)."""
    for _ in iter_prepared(source, dataclasses.replace(plan, hashed=False), options):
        pass  # a bad row anywhere stops here, before the pilot spends anything
    assert spend.pilot is not None
    sample = source.sample(spend.pilot, seed=0, slice_rows=options.slice_rows)
    answers = cache if cache is not None else \
        ResultCache(f"{store.url.rstrip('/')}/pilot-cache", storage_options=storage_options)
    out = _start(FrameSource(sample), plan, {**manifest, "pilot": True},
                 job_dir=f"{store.url.rstrip('/')}/pilot", client=backend.client, options=options, wait=True,
                 progress=progress, storage_options=storage_options, retry=retry,
                 spend=_Spend(cache=answers, prices=spend.prices))
    assert isinstance(out, pl.DataFrame)
    status = out[f"{options.prefix}status"]
    asked = int((status != "skipped").sum())
    failed = out.filter((status != "skipped") & (status != "ok"))
    rate = failed.height / asked if asked else 0.0
    if rate > spend.pilot_max_error_rate:
        errors = failed.group_by(f"{options.prefix}error_message").len().sort("len", descending=True).head(3)
        top = "; ".join(f"{n:,} x {msg!r}" for msg, n in errors.iter_rows())
        raise PilotFailedError(
            f"The pilot sample failed: {failed.height:,} of {asked:,} rows ({rate:.0%}) did not get an "
            f"answer (limit {spend.pilot_max_error_rate:.0%}); the full batch was not sent. Most common "
            f"errors: {top}.\nHint: fix the config or prompt (see the pilot's rows in "
            f"error.result or {store.url.rstrip('/')}/pilot), or raise pilot_max_error_rate.",
            result=out)
    return answers


def _prepare_lock(store: Store) -> Any:
    from ._state.journal import run_lock

    store.makedirs()
    return run_lock(store)


@overload
def batch_generate(data: Frame, prompt: str | pl.Expr, *, config: Config, wait: Literal[True] = ..., **kw: Any) -> pl.DataFrame: ...
@overload
def batch_generate(data: Frame, prompt: str | pl.Expr, *, config: Config, wait: Literal[False], **kw: Any) -> BatchRun: ...


def batch_generate(  # type: ignore[misc]  # the overloads take **kw; this lists every keyword
    data: Frame,
    prompt: str | pl.Expr,
    *,
    config: Config,
    key: str | None = None,
    job_dir: str | os.PathLike[str] | None = None,
    wait: bool = True,
    system_instruction: str | pl.Expr | None = None,
    media: MediaParts | Sequence[MediaParts] = (),
    skip_null_prompts: bool = False,
    client: Any = None,
    progress: bool | Progress = True,
    prefix: str | None = None,
    poll_interval: float | None = None,
    options: Options | None = None,
    storage_options: dict[str, Any] | None = None,
    retry: RetryPolicy | None = None,
    sink: str | os.PathLike[str] | None = None,
    cache: bool | str | os.PathLike[str] | ResultCache = True,
    max_cost: float | None = None,
    dry_run: bool = False,
    pilot: float | None = None,
    pilot_max_error_rate: float = 0.2,
    prices: PriceTable | None = None,
    exact_tokens: bool = False,
) -> pl.DataFrame | BatchRun | Plan:
    """Send every row of ``data`` through the Gemini Batch API and join the answers back.

    Parameters
    ----------
    data: a polars DataFrame or LazyFrame (also a pandas DataFrame or a pyarrow Table: the result
        then has the same type), or a Parquet path / glob / directory (local or fsspec URL).
    prompt: a column name, or any polars expression giving the prompt text
        (``pl.format("Summarise: {}", pl.col("text"))``).
    config: a :class:`gembatch.Config` (model, generation config, structured output ...).
    key: a column of stable, unique row keys; default: the row position.
    job_dir: the run directory (local path or fsspec URL); calling again with the same ``job_dir``
        and the same input resumes instead of paying again. Default: a fresh ``./.gembatch/run-...``.
    wait: False returns a :class:`gembatch.BatchRun` right after submission.
    system_instruction: a per-row system instruction column or expression (overrides the config's).
    media: extra parts (file URIs or bytes) per row: :class:`gembatch.MediaParts`.
    skip_null_prompts: rows with a null/empty prompt get status ``skipped`` instead of an error.
    client: a ready ``genai.Client``; default: built from ``GEMINI_API_KEY``/``GOOGLE_GEMINI_BASE_URL``.
    prefix: prefix of the result columns (default ``gemini_``).
    poll_interval: seconds between status polls at first (backs off to ``options.max_poll_interval``).
    options: a :class:`gembatch.Options` for shard sizes, inline threshold, concurrency, cleanup.
    retry: a :class:`gembatch.RetryPolicy` for 429 / 5xx / dropped connections (default: 6 tries
        within 10 minutes, exponential backoff with jitter, Retry-After honoured).
    sink: write the output there (``.parquet`` file or dataset directory, local or fsspec URL)
        shard by shard instead of returning it; memory stays flat. Returns the BatchRun.
    cache: the result cache: True (default) uses :func:`gembatch.cache.default_path`, a path or
        fsspec URL another one, False none. Requests it already answered are not sent again; fresh
        ``ok`` answers are added to it. Identical requests within a shard are always sent once
        (``Options(dedup=False)`` turns that off).
    max_cost: refuse to send (:class:`gembatch.CostLimitError`) when the estimated cost bound at
        the batch rate, in US dollars, is above this. Nothing is spent; the run stays prepared.
    dry_run: prepare the run directory and return its :class:`gembatch.Plan` (rows, requests after
        dedup and cache, shards against the limits, tokens and cost) without sending anything; call
        again with the same ``job_dir`` to send it.
    pilot: first send this share (``0.01``) or number of random rows as a run of its own
        (``<job_dir>/pilot``); if more than ``pilot_max_error_rate`` of them fail, stop with
        :class:`gembatch.PilotFailedError`. Their answers are reused by the full run.
    prices: a :class:`gembatch.PriceTable` for the estimate and cost report (default: the packaged one).
    exact_tokens: with ``dry_run`` or ``max_cost``, count input tokens with the countTokens endpoint
        instead of the local estimate.

    Returns the input frame, every row in order, with ``gemini_text``, ``gemini_status`` (ok / error /
    skipped / missing / cancelled / expired), token counts, errors, ``gemini_batch_job`` and
    ``gemini_parsed`` (when ``config.response_schema`` is set).

    >>> # out = gembatch.batch_generate(df, "prompt", config=Config(model="gemini-2.5-flash"), key="id")
    """
    if not isinstance(config, Config):
        raise ConfigError(f"config must be a gembatch.Config (got {type(config).__name__}).")
    data, back = _convert(data)
    source = as_source(data, storage_options)
    prompt_expr = _as_expr(prompt, "prompt")
    sys_expr = None if system_instruction is None else _as_expr(system_instruction, "system_instruction")
    media_parts = (media,) if isinstance(media, MediaParts) else tuple(media)
    opts = _options(options, {"prefix": prefix, "poll_interval": poll_interval})
    needed = _columns_of(prompt_expr, sys_expr) + tuple(m.column for m in media_parts) + (
        (key,) if key else ())
    plan = RequestPlan(
        kind="generate", model=config.model_name, static=config.request_static(), prompt=prompt_expr,
        key_column=key, system_instruction=sys_expr, media=media_parts,
        skip_null_prompts=skip_null_prompts, columns_needed=needed,
    )
    manifest = {
        "kind": "generate", "model": config.model_name, "static": plan.static,
        "config": config.to_dict(), "options": opts.to_dict(), "prompt": str(prompt_expr),
        "key": key, "response_schema": config.response_json_schema(),
        "gembatch": __version__,
    }
    return back(_start(source, plan, manifest, job_dir=job_dir, client=client, options=opts, wait=wait,
                       progress=progress, storage_options=storage_options, retry=retry, sink=sink,
                       spend=_Spend(cache=cache, max_cost=max_cost, dry_run=dry_run, pilot=pilot,
                                    pilot_max_error_rate=pilot_max_error_rate, prices=prices,
                                    exact_tokens=exact_tokens)))


def batch_generate_parquet(
    source: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    prompt: str | pl.Expr,
    config: Config,
    **kwargs: Any,
) -> BatchRun:
    """Parquet in, Parquet out, with flat memory: the streaming form of :func:`batch_generate`.

    ``source`` is a Parquet file, a glob or a dataset directory; ``dest`` a ``.parquet`` file or a
    dataset directory (local paths or fsspec URLs). The input is read in bounded slices, written into
    request shards, and the output is written shard by shard as jobs finish. Other keyword arguments are
    those of :func:`batch_generate`.

    >>> # gembatch.batch_generate_parquet("reviews/*.parquet", "scored/", prompt="review", config=cfg)
    """
    run = batch_generate(os.fspath(source), prompt, config=config, sink=dest, **kwargs)  # type: ignore[call-overload]
    assert isinstance(run, BatchRun)
    return run


def batch_embed(
    data: Frame,
    text: str | pl.Expr,
    *,
    model: str = "gemini-embedding-001",
    task_type: str | None = None,
    output_dimensionality: int | None = None,
    title: str | None = None,
    key: str | None = None,
    job_dir: str | os.PathLike[str] | None = None,
    wait: bool = True,
    skip_null_prompts: bool = False,
    client: Any = None,
    progress: bool | Progress = True,
    prefix: str | None = None,
    poll_interval: float | None = None,
    options: Options | None = None,
    storage_options: dict[str, Any] | None = None,
    retry: RetryPolicy | None = None,
    sink: str | os.PathLike[str] | None = None,
    cache: bool | str | os.PathLike[str] | ResultCache = True,
    max_cost: float | None = None,
    dry_run: bool = False,
    pilot: float | None = None,
    pilot_max_error_rate: float = 0.2,
    prices: PriceTable | None = None,
    exact_tokens: bool = False,
) -> pl.DataFrame | BatchRun | Plan:
    """Embed every row's ``text`` through the batch embeddings endpoint.

    Adds ``gemini_embedding`` (``pl.Array(pl.Float32, d)``) with the same statuses, run directory,
    resume, cache, cost and pilot behaviour (and keyword arguments) as :func:`batch_generate`.

    >>> # out = gembatch.batch_embed(df, "text", output_dimensionality=256, task_type="CLUSTERING")
    """
    cfg = EmbedConfig(model=model, task_type=task_type, output_dimensionality=output_dimensionality,
                      title=title)
    data, back = _convert(data)
    source = as_source(data, storage_options)
    text_expr = _as_expr(text, "text")
    opts = _options(options, {"prefix": prefix, "poll_interval": poll_interval})
    plan = RequestPlan(
        kind="embed", model=cfg.model_name, static=cfg.request_static(), prompt=text_expr,
        key_column=key, skip_null_prompts=skip_null_prompts,
        columns_needed=_columns_of(text_expr) + ((key,) if key else ()),
    )
    dims = output_dimensionality or EMBED_DIMENSIONS.get(cfg.model_name.removeprefix("models/"))
    manifest = {
        "kind": "embed", "model": cfg.model_name, "static": plan.static, "config": cfg.to_dict(),
        "options": opts.to_dict(), "prompt": str(text_expr), "key": key, "dimensions": dims,
        "gembatch": __version__,
    }
    return back(_start(source, plan, manifest, job_dir=job_dir, client=client, options=opts, wait=wait,
                       progress=progress, storage_options=storage_options, retry=retry, sink=sink,
                       spend=_Spend(cache=cache, max_cost=max_cost, dry_run=dry_run, pilot=pilot,
                                    pilot_max_error_rate=pilot_max_error_rate, prices=prices,
                                    exact_tokens=exact_tokens)))


def plan(data: Frame, prompt: str | pl.Expr, *, config: Config, job_dir: str | os.PathLike[str] | None = None,
         exact: bool = False, **kwargs: Any) -> Plan:
    """What :func:`batch_generate` would send and cost, without sending anything (needs no API key
    unless ``exact``): rows, requests after dedup and the result cache, shards against the 20 MB
    inline / 2 GB file limits, tokens and the cost bound at the batch rate.

    With a ``job_dir`` the run stays prepared there: :func:`batch_generate` with the same ``job_dir``
    then sends exactly this plan. Without one, a temporary directory is used and removed. ``exact``
    counts input tokens with the service's countTokens endpoint (one call per request line). Other
    keyword arguments are those of :func:`batch_generate`.

    >>> # print(df.gemini.plan("prompt", config=gembatch.Config(model="gemini-2.5-flash")))
    """
    return _planned(batch_generate, data, prompt, job_dir=job_dir, exact=exact, config=config, **kwargs)


def estimate(data: Frame, prompt: str | pl.Expr, *, config: Config, exact: bool = False,
             **kwargs: Any) -> Estimate:
    """Input tokens (a fast local estimate, or ``exact`` via countTokens), the output-token bound and
    the cost bound at the batch rate of what :func:`batch_generate` would send (after dedup and the
    result cache).

    >>> # gembatch.estimate(df, "prompt", config=cfg).total_usd_bound
    """
    planned = plan(data, prompt, config=config, exact=exact, **kwargs)
    if planned.estimate is None:
        PriceTable.default().for_model(config.model_name)  # raises: the model has no price
    assert planned.estimate is not None
    return planned.estimate


def _planned(call: Any, data: Any, prompt: Any, *, job_dir: Any, exact: bool, **kwargs: Any) -> Plan:
    import tempfile

    if exact:
        kwargs["exact_tokens"] = True
    if job_dir is not None:
        return call(data, prompt, job_dir=job_dir, dry_run=True, **kwargs)  # type: ignore[no-any-return]
    with tempfile.TemporaryDirectory(prefix="gembatch-plan-") as tmp:
        return call(data, prompt, job_dir=os.path.join(tmp, "run"), dry_run=True,  # type: ignore[no-any-return]
                    **kwargs)
