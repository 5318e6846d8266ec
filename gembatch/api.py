"""The typed entry points: ``batch_generate`` and ``batch_embed`` (the ``df.gemini`` namespace calls these).

>>> import polars as pl, gembatch
>>> # out = gembatch.batch_generate(df, "prompt", config=gembatch.Config(model="gemini-2.5-flash"))
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from collections.abc import Sequence
from typing import Any, Literal, overload

import polars as pl

from . import __version__
from .backend import Backend, RetryPolicy
from .config import Config, EmbedConfig
from .exceptions import ConfigError, RunMismatchError
from .journal import Journal
from .prepare import Options, RequestPlan, Source, as_source, check_same_input, prepare_run
from .progress import Progress
from .requests import MediaParts
from .run import BatchRun
from .storage import Store

__all__ = ["batch_embed", "batch_generate", "batch_generate_parquet"]

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


def _start(
    source: Source, plan: RequestPlan, manifest: dict[str, Any], *, job_dir: str | os.PathLike[str] | None,
    client: Any, options: Options, wait: bool, progress: bool | Progress, storage_options: dict[str, Any] | None,
    retry: RetryPolicy | None, sink: str | os.PathLike[str] | None = None,
) -> pl.DataFrame | BatchRun:
    backend = Backend(client, retry=retry)  # a missing API key fails here, before any work
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
        with _prepare_lock(store):
            journal = prepare_run(store, source, plan, options, manifest)
    run = BatchRun(journal, backend, options, progress=progress)
    if not wait:
        with journal.locked():
            run._runner(progress=False).submit()
        return run
    if sink is not None:
        run.write(sink, storage_options=storage_options)
        return run
    return run.result()


def _prepare_lock(store: Store) -> Any:
    from .journal import run_lock

    store.makedirs()
    return run_lock(store)


@overload
def batch_generate(data: Frame, prompt: str | pl.Expr, *, config: Config, wait: Literal[True] = ..., **kw: Any) -> pl.DataFrame: ...
@overload
def batch_generate(data: Frame, prompt: str | pl.Expr, *, config: Config, wait: Literal[False], **kw: Any) -> BatchRun: ...


def batch_generate(
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
) -> pl.DataFrame | BatchRun:
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
                       progress=progress, storage_options=storage_options, retry=retry, sink=sink))


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
    run = batch_generate(os.fspath(source), prompt, config=config, sink=dest, **kwargs)
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
) -> pl.DataFrame | BatchRun:
    """Embed every row's ``text`` through the batch embeddings endpoint.

    Adds ``gemini_embedding`` (``pl.Array(pl.Float32, d)``) with the same statuses, run directory and
    resume behaviour as :func:`batch_generate`.

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
                       progress=progress, storage_options=storage_options, retry=retry, sink=sink))
