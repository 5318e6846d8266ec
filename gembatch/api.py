"""The typed entry points: ``batch_generate``, ``batch_embed``, ``batch_generate_parquet``,
``plan``, ``estimate``. Each checks its arguments, describes the call (:class:`gembatch._run.Call`)
and hands it to :func:`gembatch._run.start`; the ``df.gemini`` namespace calls these.

>>> import polars as pl, gembatch
>>> df = pl.DataFrame({"id": ["a", "b"], "prompt": ["Say hi", "Say bye"]})
>>> out = gembatch.batch_generate(df, "prompt", config=gembatch.Config(model="gemini-2.5-flash"),
...                               key="id", progress=False, poll_interval=0.01)
>>> out["gemini_status"].to_list()
['ok', 'ok']
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, Union, cast, overload

import polars as pl

from ._build.lines import MediaParts
from ._build.sources import as_source
from ._build.spec import RequestSpec
from ._frames import as_polars, give_back, with_results
from ._run import Call, Spend, start
from ._storage import check_apart
from .config import Config, EmbedConfig, Options, RetryPolicy
from .exceptions import ConfigError
from .handle import BatchRun

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from ._money.estimate import Estimate
    from ._money.plan import Plan
    from ._money.pricing import PriceTable
    from .cache import ResultCache
    from .progress import Progress

__all__ = ["batch_embed", "batch_generate", "batch_generate_parquet", "estimate", "plan"]

#: What ``data`` may be: a polars DataFrame or LazyFrame, a pandas DataFrame or a pyarrow Table (the
#: output then has the same type), or the path of Parquet input (local or an fsspec URL).
Frame = Union[pl.DataFrame, pl.LazyFrame, "pd.DataFrame", "pa.Table", str, os.PathLike]
#: How a call's requests are sent (see :func:`batch_generate`).
Mode = Literal["batch", "interactive", "auto"]
MODES: tuple[str, ...] = ("batch", "interactive", "auto")
#: Default vector sizes of the embedding models, when output_dimensionality is not given.
EMBED_DIMENSIONS = {"gemini-embedding-001": 3072, "text-embedding-004": 768, "embedding-001": 768}


def _given_back(original: Any, out: Any, frame: dict[str, Any]) -> Any:
    """The call's output in the type of its input; a pandas frame or pyarrow Table with the result
    columns added to the user's own object (its columns exactly as they were)."""
    if isinstance(out, pl.DataFrame):
        out = give_back(out, frame)
    return with_results(original, out, frame)


def _as_expr(value: str | pl.Expr, what: str) -> pl.Expr:
    if isinstance(value, str):
        return pl.col(value)
    if isinstance(value, pl.Expr):
        return value
    raise ConfigError(f"{what} must be a column name or a polars expression (got {value!r}).")


def _columns_of(*exprs: pl.Expr | None) -> tuple[str, ...]:
    names: list[str] = []
    for expr in exprs:
        if expr is not None:
            names += [n for n in expr.meta.root_names() if n not in names]
    return tuple(names)


def _options(options: Options | None, prefix: str | None, poll_interval: float | None) -> Options:
    opts = options if options is not None else Options()
    if options is not None and not isinstance(options, Options):
        raise ConfigError(f"options must be a gembatch.Options (got {type(options).__name__}).")
    changes: dict[str, Any] = {}
    if prefix is not None:
        changes["prefix"] = prefix
    if poll_interval is not None:
        changes["poll_interval"] = poll_interval
        changes["max_poll_interval"] = (
            max(opts.max_poll_interval, poll_interval)
            if isinstance(poll_interval, (int, float)) and not isinstance(poll_interval, bool)
            else poll_interval
        )
    return opts.replace(**changes) if changes else opts


def _spend(
    cache: Any,
    max_cost: Any,
    dry_run: Any,
    pilot: Any,
    pilot_max_error_rate: Any,
    prices: Any,
    exact_tokens: Any,
    pilot_mode: Any = "batch",
) -> Spend:
    if max_cost is not None and (
        isinstance(max_cost, bool) or not isinstance(max_cost, (int, float)) or not max_cost >= 0
    ):
        raise ConfigError(f"max_cost must be a number of US dollars >= 0 (got {max_cost!r}).")
    if pilot is not None and (
        isinstance(pilot, bool)
        or not isinstance(pilot, (int, float))
        or pilot <= 0
        or (isinstance(pilot, float) and pilot >= 1)
    ):
        raise ConfigError(
            "pilot must be a share of the rows in (0, 1), e.g. 0.01, or a number of rows >= 1 "
            f"(got {pilot!r})."
        )
    if (
        isinstance(pilot_max_error_rate, bool)
        or not isinstance(pilot_max_error_rate, (int, float))
        or not 0 <= pilot_max_error_rate <= 1
    ):
        raise ConfigError(f"pilot_max_error_rate must be in [0, 1] (got {pilot_max_error_rate!r}).")
    for name, value in (("dry_run", dry_run), ("exact_tokens", exact_tokens)):
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be True or False (got {value!r}).")
    return Spend(
        cache=cache,
        max_cost=max_cost,
        dry_run=dry_run,
        pilot=pilot,
        pilot_max_error_rate=pilot_max_error_rate,
        prices=prices,
        exact_tokens=exact_tokens,
        pilot_mode=_mode(pilot_mode, "pilot_mode", ("batch", "interactive")),
    )


def _mode(value: Any, name: str = "mode", allowed: tuple[str, ...] = MODES) -> str:
    if value not in allowed:
        raise ConfigError(
            f"{name} must be one of {', '.join(map(repr, allowed))} (got {value!r})."
            "\nHint: 'interactive' answers now at the interactive price (prototype on a few rows), "
            "'batch' at half the price within hours, 'auto' picks interactive for small work."
        )
    return str(value)


def _check_schema(value: Any) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise ConfigError(f"check_schema must be True, False or None (got {value!r}).")
    return value


def _checked_retry(retry: Any) -> RetryPolicy | None:
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise ConfigError(f"retry must be a gembatch.RetryPolicy (got {type(retry).__name__}).")
    return retry


@overload
def batch_generate(
    data: Frame,
    prompt: str | pl.Expr,
    *,
    config: Config,
    wait: Literal[True] = ...,
    sink: None = ...,
    dry_run: Literal[False] = ...,
    **kw: Any,
) -> pl.DataFrame: ...
@overload
def batch_generate(
    data: Frame, prompt: str | pl.Expr, *, config: Config, wait: Literal[False], **kw: Any
) -> BatchRun: ...
@overload
def batch_generate(
    data: Frame, prompt: str | pl.Expr, *, config: Config, sink: str | os.PathLike[str], **kw: Any
) -> BatchRun: ...
@overload
def batch_generate(
    data: Frame, prompt: str | pl.Expr, *, config: Config, dry_run: Literal[True], **kw: Any
) -> Plan: ...


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
    mode: Mode = "batch",
    pilot_mode: Literal["batch", "interactive"] = "batch",
    check_schema: bool | None = None,
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
        and the same input resumes instead of paying again. Default: a fresh
        ``./.gembatch/run-...``.
    wait: False returns a :class:`gembatch.BatchRun` right after submission.
    system_instruction: a per-row system instruction column or expression (overrides the config's).
    media: extra parts (file URIs or bytes) per row: :class:`gembatch.MediaParts`.
    skip_null_prompts: rows with a null/empty prompt get status ``skipped`` instead of an error.
    client: a ready ``genai.Client``; default: built from ``GEMINI_API_KEY`` /
        ``GOOGLE_GEMINI_BASE_URL``.
    prefix: prefix of the result columns (default ``gemini_``).
    poll_interval: seconds between status polls at first (backs off to
        ``options.max_poll_interval``).
    options: a :class:`gembatch.Options` for shard sizes, inline threshold, concurrency, cleanup.
    retry: a :class:`gembatch.RetryPolicy` for 429 / 5xx / dropped connections (default: 6 tries
        within 10 minutes, exponential backoff with jitter, the service's delay honoured).
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
    prices: a :class:`gembatch.PriceTable` for the estimate and cost report (default: the
        packaged one).
    exact_tokens: with ``dry_run`` or ``max_cost``, count input tokens with the countTokens endpoint
        instead of the local estimate.
    mode: ``"batch"`` (default: batch jobs, half the price, answers within hours),
        ``"interactive"`` (one call per request now, at the interactive price, within the
        per-minute limits of ``Options(tier=, requests_per_minute=, tokens_per_minute=)`` with
        ``Options(concurrency=)`` calls in flight: to prototype a prompt on a few rows), or
        ``"auto"`` (interactive when the work is small: ``Options(auto_max_rows=200,
        auto_max_savings=0.05)``). Same columns, cache, resume and cost report either way;
        ``gemini_origin`` says ``interactive`` and ``gemini_batch_job`` is null for rows answered
        interactively. Applies to what is not sent yet.
    pilot_mode: how the pilot is sent: ``"batch"`` (tests the batch path itself) or
        ``"interactive"`` (answers in seconds).
    check_schema: with ``config.response_schema``, first send a pilot of 20 rows (or ``pilot=``)
        in each schema form the schema has (``responseJsonSchema``, then ``responseSchema``) and
        keep the first whose answers are valid (every answer is checked against the schema, and
        degenerate answers across rows are caught); stop with a report when none is. None
        (default): on for runs of 10,000 rows or more.

    Returns the input frame, every row in order, with ``gemini_text``, ``gemini_status`` (ok /
    error / skipped / missing / cancelled / expired), token counts, errors, ``gemini_batch_job`` and
    ``gemini_parsed`` (when ``config.response_schema`` is set); a :class:`gembatch.BatchRun` with
    ``wait=False`` or ``sink=``; a :class:`gembatch.Plan` with ``dry_run=True``. With
    ``mode="interactive"`` and ``wait=False`` the calls are made by ``run.wait()`` /
    ``run.result()``.

    >>> out = gembatch.batch_generate(df, "prompt", config=cfg, key="id", options=FAST,
    ...                               progress=False)
    >>> out.select("id", "gemini_status").rows()
    [('a', 'ok'), ('b', 'ok')]
    """
    if not isinstance(config, Config):
        raise ConfigError(f"config must be a gembatch.Config (got {type(config).__name__}).")
    if sink is not None and isinstance(data, (str, os.PathLike)):
        check_apart(os.fspath(data), os.fspath(sink))
    original, (data, frame) = data, as_polars(data)
    prompt_expr = _as_expr(prompt, "prompt")
    sys_expr = (
        None if system_instruction is None else _as_expr(system_instruction, "system_instruction")
    )
    media_parts = (media,) if isinstance(media, MediaParts) else tuple(media)
    needed = (
        _columns_of(prompt_expr, sys_expr)
        + tuple(m.column for m in media_parts)
        + ((key,) if key else ())
    )
    spec = RequestSpec(
        kind="generate",
        model=config.model_name,
        static=config.request_static(),
        prompt=prompt_expr,
        key_column=key,
        system_instruction=sys_expr,
        media=media_parts,
        skip_null_prompts=skip_null_prompts,
        columns_needed=needed,
    )
    call = Call(
        frame=frame,
        source=as_source(data, storage_options),
        spec=spec,
        config=config.to_dict(),
        prompt=str(prompt_expr),
        response_schema=config.response_json_schema(),
        job_dir=job_dir,
        options=_options(options, prefix, poll_interval),
        retry=_checked_retry(retry),
        client=client,
        wait=wait,
        progress=progress,
        storage_options=storage_options,
        sink=sink,
        spend=dataclasses.replace(
            _spend(
                cache,
                max_cost,
                dry_run,
                pilot,
                pilot_max_error_rate,
                prices,
                exact_tokens,
                pilot_mode,
            ),
            check_schema=_check_schema(check_schema),
        ),
        mode=_mode(mode),
    )
    out = start(call)
    return _given_back(original, out, frame)


@overload
def batch_generate_parquet(
    source: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    prompt: str | pl.Expr,
    config: Config,
    dry_run: Literal[False] = ...,
    **kwargs: Any,
) -> BatchRun: ...
@overload
def batch_generate_parquet(
    source: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    prompt: str | pl.Expr,
    config: Config,
    dry_run: Literal[True],
    **kwargs: Any,
) -> Plan: ...
def batch_generate_parquet(
    source: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    prompt: str | pl.Expr,
    config: Config,
    dry_run: bool = False,
    **kwargs: Any,
) -> BatchRun | Plan:
    """Parquet in, Parquet out, with flat memory: the streaming form of :func:`batch_generate`.

    ``source`` is a Parquet file, a glob or a dataset directory, or a JSON lines file (``.jsonl``
    / ``.ndjson``); ``dest`` a ``.parquet`` file or a dataset directory (local paths or fsspec
    URLs). The input is read in bounded slices, written
    into request shards, and the output is written shard by shard as jobs finish. Other keyword
    arguments are those of :func:`batch_generate`; ``dry_run=True`` returns the run's
    :class:`~gembatch.Plan` (nothing is sent, nothing written to ``dest``).

    >>> df.write_parquet("reviews.parquet")
    >>> run = gembatch.batch_generate_parquet("reviews.parquet", "scored/", prompt="prompt",
    ...                                       config=cfg, options=FAST, progress=False)
    >>> pl.read_parquet("scored/")["gemini_status"].to_list()
    ['ok', 'ok']
    """
    run = batch_generate(
        os.fspath(source), prompt, config=config, sink=dest, dry_run=dry_run, **kwargs
    )
    assert dry_run or isinstance(run, BatchRun), type(run)
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
    mode: Mode = "batch",
    pilot_mode: Literal["batch", "interactive"] = "batch",
) -> pl.DataFrame | BatchRun | Plan:
    """Embed every row's ``text`` through the batch embeddings endpoint.

    Adds ``gemini_embedding`` (``pl.Array(pl.Float32, d)``) with the same statuses, run directory,
    resume, cache, cost and pilot behaviour (and keyword arguments) as :func:`batch_generate`.

    >>> out = gembatch.batch_embed(df, "text", output_dimensionality=8, task_type="CLUSTERING",
    ...                            options=FAST, progress=False)
    >>> out["gemini_embedding"].dtype
    Array(Float32, shape=(8,))
    """
    cfg = EmbedConfig(
        model=model, task_type=task_type, output_dimensionality=output_dimensionality, title=title
    )
    if sink is not None and isinstance(data, (str, os.PathLike)):
        check_apart(os.fspath(data), os.fspath(sink))
    original, (data, frame) = data, as_polars(data)
    text_expr = _as_expr(text, "text")
    spec = RequestSpec(
        kind="embed",
        model=cfg.model_name,
        static=cfg.request_static(),
        prompt=text_expr,
        key_column=key,
        skip_null_prompts=skip_null_prompts,
        columns_needed=_columns_of(text_expr) + ((key,) if key else ()),
    )
    call = Call(
        frame=frame,
        source=as_source(data, storage_options),
        spec=spec,
        config=cfg.to_dict(),
        prompt=str(text_expr),
        dimensions=output_dimensionality
        or EMBED_DIMENSIONS.get(cfg.model_name.removeprefix("models/")),
        job_dir=job_dir,
        options=_options(options, prefix, poll_interval),
        retry=_checked_retry(retry),
        client=client,
        wait=wait,
        progress=progress,
        storage_options=storage_options,
        sink=sink,
        spend=_spend(
            cache, max_cost, dry_run, pilot, pilot_max_error_rate, prices, exact_tokens, pilot_mode
        ),
        mode=_mode(mode),
    )
    out = start(call)
    return _given_back(original, out, frame)


def plan(
    data: Frame,
    prompt: str | pl.Expr,
    *,
    config: Config | EmbedConfig,
    job_dir: str | os.PathLike[str] | None = None,
    exact: bool = False,
    **kwargs: Any,
) -> Plan:
    """What :func:`batch_generate` (or, with an :class:`EmbedConfig`, :func:`batch_embed`) would
    send and cost, without sending anything (needs no API key unless ``exact``): rows, requests
    after dedup and the result cache, shards against the 20 MB inline / 2 GB file limits, tokens
    and the cost bound at the batch rate.

    With a ``job_dir`` the run stays prepared there: :func:`batch_generate` with the same
    ``job_dir`` then sends exactly this plan. Without one, a temporary directory is used and
    removed. ``exact`` counts input tokens with the service's countTokens endpoint (one call per
    request line). Other keyword arguments are those of :func:`batch_generate`.

    >>> plan = gembatch.plan(df, "prompt", config=cfg)
    >>> plan.rows, plan.to_send
    (2, 2)
    """
    if exact:
        kwargs["exact_tokens"] = True

    def dry(where: str | os.PathLike[str]) -> Plan:
        if isinstance(config, EmbedConfig):
            fields = dataclasses.asdict(config)
            out = batch_embed(data, prompt, job_dir=where, dry_run=True, **fields, **kwargs)
            return cast("Plan", out)  # dry_run=True: the plan
        return batch_generate(data, prompt, config=config, job_dir=where, dry_run=True, **kwargs)

    if job_dir is not None:
        return dry(job_dir)
    with tempfile.TemporaryDirectory(prefix="gembatch-plan-") as tmp:
        return dry(os.path.join(tmp, "run"))


def estimate(
    data: Frame, prompt: str | pl.Expr, *, config: Config, exact: bool = False, **kwargs: Any
) -> Estimate:
    """Input tokens (a fast local estimate, or ``exact`` via countTokens), the output-token bound
    and the cost bound at the batch rate of what :func:`batch_generate` would send (after dedup and
    the result cache).

    >>> est = gembatch.estimate(df, "prompt", config=cfg.replace(max_output_tokens=100))
    >>> est.input_tokens, est.output_tokens_bound
    (4, 200)
    """
    from ._money.pricing import PriceTable

    planned = plan(data, prompt, config=config, exact=exact, **kwargs)
    if planned.estimate is None:
        PriceTable.default().for_model(config.model_name)  # raises: the model has no price
    assert planned.estimate is not None
    return planned.estimate
