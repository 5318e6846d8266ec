"""The checked join of result columns onto rows: every row in order, one answer per key at most.

:func:`join_results` is pure (frames in, frame out); :func:`join_shard` reads one shard's files from
the run directory (its keys, its result lines and those of its resubmissions, cached answers) and
joins them, applying the job's outcome to rows it never answered and parsing structured answers.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from .._state.journal import Journal
from .._state.records import HASH, KEY, SEND, VIA, ShardRecord, ShardState
from ..exceptions import ConfigError, InputError
from . import parse
from .codes import RETRYABLE_STATUSES
from .schema import parse_structured
from .validate import degenerate, validate

__all__ = [
    "STATUS_FOR_JOB_STATE",
    "JoinReport",
    "join_results",
    "join_shard",
    "lines_to_resend",
    "merged_results",
    "raw_answers",
    "read_results",
]


@dataclass(frozen=True)
class JoinReport:
    """What the join of results onto rows found, besides the rows' statuses.

    ``missing``: rows that were sent but got no result; ``duplicated``: result lines dropped because
    another line had the same key; ``unknown``: result keys that match no row; ``malformed``: result
    lines without a readable key.
    """

    missing: int = 0
    duplicated: int = 0
    unknown: int = 0
    malformed: int = 0

    def summary(self) -> str:
        """One line for logs, e.g. ``"2 missing, 1 duplicated, 0 unknown, 0 malformed result
        lines"``."""
        return (
            f"{self.missing:,} missing, {self.duplicated:,} duplicated, {self.unknown:,} unknown, "
            f"{self.malformed:,} malformed result lines"
        )

    @property
    def clean(self) -> bool:
        """True when every row got exactly one result and no line was dropped."""
        return not (self.missing or self.duplicated or self.unknown or self.malformed)


_KEY = "__gembatch_join_key__"
_LINE = "__gembatch_result_line__"


def _right_key(keys: pl.Series, dtype: pl.DataType) -> pl.Series:
    """Result keys in the dtype of the rows' keys, compared as text.

    For an integer key column a result key matches only when it is exactly the decimal text of that
    integer ("7", never "07" or "+7"): the text is parsed and printed back, and keys that do not
    come back identical can match no row. Joining on integers is then the same as joining on text,
    faster.
    """
    if not dtype.is_integer():
        return keys.cast(pl.Utf8, strict=True)
    numbers = keys.cast(dtype, strict=False)
    same = pl.lit(numbers).cast(pl.Utf8) == pl.lit(keys)
    return pl.select(pl.when(same).then(pl.lit(numbers))).to_series()


def _consecutive(keys: pl.Series) -> int | None:
    """``k`` when the rows' keys are ``k, k+1, ..., k+n-1`` in order (integers, or their exact
    decimal
    text: gembatch's default keys are row positions), else None."""
    if not len(keys) or keys.null_count():
        return None
    if keys.dtype == pl.Utf8:
        first = keys[0]
        if not (
            first.isascii() and first.lstrip("-").isdigit()
        ):  # cheap refusal of other text keys
            return None
        numbers = keys.cast(pl.Int64, strict=False)
    elif keys.dtype.is_integer():
        numbers = keys.cast(pl.Int64, strict=False)
    else:
        return None
    if numbers.null_count():
        return None
    start = numbers[0]
    if numbers[-1] - start != len(keys) - 1 or not bool((numbers.diff().drop_nulls() == 1).all()):
        return None
    if keys.dtype == pl.Utf8 and not bool((numbers.cast(pl.Utf8) == keys).all()):  # e.g. "007"
        return None
    return int(start)


def _place(height: int, offset: int, keys: pl.Series) -> tuple[pl.Series, int] | None:
    """For rows keyed ``offset + position``: per row, the index of its result line (null when none),
    and the number of lines that match no row; None when some row has several lines.

    A result key matches only as the exact decimal text of ``offset + position`` (as in the hash
    join).
    """
    position = _right_key(keys, pl.Int64()) - offset
    inside = (position >= 0) & (position < height)  # null for keys that are not such text
    found = pl.select(
        pl.lit(position).filter(pl.lit(inside)),
        pl.int_range(len(keys), dtype=pl.UInt32).filter(pl.lit(inside)).alias("line"),
    )
    where = found.to_series(0)
    lines = pl.repeat(None, height, dtype=pl.UInt32, eager=True).scatter(where, found.to_series(1))
    if height - lines.null_count() != len(where):  # two lines landed on one row (no hashing needed)
        return None
    return lines, len(keys) - len(where)


def _literal(value: Any) -> pl.Expr:
    return pl.lit(None, dtype=pl.Utf8) if value is None else pl.lit(value)


def join_results(
    rows: pl.DataFrame,
    *,
    key: pl.Expr | str,
    results: pl.DataFrame,
    prefix: str = "gemini_",
    send_mask: pl.Series | None = None,
    extra: Mapping[str, Any] | None = None,
) -> tuple[pl.DataFrame, JoinReport]:
    """Every row of ``rows``, in order, with the ``results`` columns (prefixed) joined on the key.

    Keys are compared as strings (an Int key column joins against "0", "1", ...; the cast is
    strict). Rows without a result get status ``missing``, rows with ``send_mask`` False
    ``skipped``; a key with several result lines keeps one (an ``ok`` one when there is one) and
    never multiplies rows. ``extra`` adds literal columns. The output dtypes depend only on the
    dtypes of ``rows`` and ``results`` (the ``parse_*`` functions always give the same ones), never
    on what arrived.

    Report: ``duplicated`` counts the lines dropped for a key that already had one, ``unknown`` the
    lines whose key matches no row, ``malformed`` the lines without a key.
    """
    if "key" not in results.columns or "status" not in results.columns:
        raise InputError(f"results must have 'key' and 'status' columns (got {results.columns}).")
    names = {c: f"{prefix}{c}" for c in results.columns if c != "key"}
    clash = [c for c in [*names.values(), *(extra or {})] if c in rows.columns]
    if clash:
        raise ConfigError(
            f"The result columns {clash} already exist in the frame."
            f"\nHint: pass another prefix (got {prefix!r}), or drop those columns first."
        )
    key_expr = pl.col(key) if isinstance(key, str) else key
    try:
        left = rows.with_columns(key_expr.alias(_KEY))
        if not left.schema[_KEY].is_integer():
            left = left.with_columns(pl.col(_KEY).cast(pl.Utf8, strict=True))
    except pl.exceptions.PolarsError as exc:
        raise InputError(f"The join key {key_expr} cannot be cast to text keys: {exc}") from exc
    keyed = results.filter(pl.col("key").is_not_null())
    malformed = results.height - keyed.height
    offset = _consecutive(left.get_column(_KEY))
    placed = None if offset is None else _place(left.height, offset, keyed.get_column("key"))
    if placed is not None:  # row positions as keys: no hashing, each row takes its line directly
        lines, unknown = placed
        duplicated = 0
        joined = left.hstack(
            keyed.select(pl.col(c).alias(n) for c, n in names.items()).select(
                pl.all().gather(lines)
            )
        )
    else:
        keyed = keyed.select(
            _right_key(keyed.get_column("key"), left.schema[_KEY]).alias(_KEY),
            *[pl.col(c).alias(n) for c, n in names.items()],
        )
        joined = left.join(keyed.with_row_index(_LINE), on=_KEY, how="left", maintain_order="left")
        if joined.height == left.height:  # no key matched twice: count the lines no row took
            duplicated, unknown = 0, keyed.height - joined.get_column(_LINE).drop_nulls().n_unique()
        else:
            known = keyed.filter(pl.col(_KEY).is_in(left.get_column(_KEY).drop_nulls().implode()))
            unknown = keyed.height - known.height
            known = known.sort(pl.col(f"{prefix}status") != "ok", maintain_order=True).unique(
                _KEY, keep="first", maintain_order=True
            )
            duplicated = keyed.height - unknown - known.height
            joined = left.join(
                known.with_row_index(_LINE), on=_KEY, how="left", maintain_order="left"
            )
        joined = joined.drop(_LINE)
    status = pl.col(f"{prefix}status")
    sent = (
        pl.lit(True) if send_mask is None else pl.lit(send_mask.cast(pl.Boolean).fill_null(False))
    )
    missing = int(joined.select((status.is_null() & sent).sum()).item())
    joined = joined.with_columns(
        pl.when(~sent)
        .then(pl.lit("skipped"))
        .when(status.is_null())
        .then(pl.lit("missing"))
        .otherwise(status)
        .alias(f"{prefix}status")
    )
    joined = joined.drop(_KEY)
    if extra:
        joined = joined.with_columns(_literal(v).alias(k) for k, v in extra.items())
    report = JoinReport(
        missing=missing, duplicated=duplicated, unknown=unknown, malformed=malformed
    )
    return joined, report


# ------------------------------------------------------------------------------------ one shard's
# join
#: Row statuses for rows a finished job never answered, by the job's end state.
STATUS_FOR_JOB_STATE = {
    "JOB_STATE_FAILED": "error",
    "JOB_STATE_CANCELLED": "cancelled",
    "JOB_STATE_EXPIRED": "expired",
}
_ORIGIN = {"line": "batch", "dup": "dedup", "cache": "cache"}
_SENDER = "sender"


def read_results(
    journal: Journal, record: ShardRecord, name: str = "results.jsonl"
) -> pl.DataFrame:
    """A record's result lines (or its cached answers, ``name="cached.jsonl"``), parsed, with the
    ``batch_job`` that answered them (null for cached answers); the file checked first."""
    store, manifest = journal.store, journal.manifest
    journal.verify(record, name)
    local = store.local_path(record.path(name))
    data: Any = pathlib.Path(local) if local is not None else store.read_bytes(record.path(name))
    if manifest.kind == "embed":
        parsed = parse.parse_embed_lines(data, dimensions=manifest.dimensions)
    else:
        parsed = parse.parse_generate_lines(data)
    cached = name == "cached.jsonl"
    job = None if cached else record.job_name
    origin = "cache" if cached else "interactive" if record.mode == "live" else "batch"
    return parsed.with_columns(
        pl.lit(job, dtype=pl.Utf8).alias("batch_job"), pl.lit(origin).alias("origin")
    )


def merged_results(journal: Journal, shard: ShardRecord) -> tuple[pl.DataFrame, ShardRecord]:
    """The shard's results with those of its fetched resubmissions laid over them (later wins), and
    the last record whose job ended (its outcome applies to rows still unanswered)."""
    merged = read_results(journal, shard)
    last = shard
    for child in journal.resubmissions.get(shard.index, []):
        if child.state.rank < ShardState.FETCHED.rank:
            continue
        newer = read_results(journal, child)
        merged = pl.concat(
            [
                merged.filter(
                    ~pl.col("key").is_in(newer["key"].drop_nulls().implode()).fill_null(False)
                ),
                newer,
            ],
            how="vertical_relaxed",
        )
        last = child
    return merged, last


def lines_to_resend(
    journal: Journal, shard: ShardRecord, *, include_errors: bool, also: pl.Series | None = None
) -> list[str]:
    """Request lines of the shard still unanswered (and, if asked, answered with a retryable error:
    gRPC 4, 8, 13, 14 or their HTTP spellings 408/504, 429, 500, 502/503, or an unreadable result
    line), and those whose key is in ``also``."""
    journal.verify(shard, "requests.jsonl")
    requests = journal.store.read_lines(shard.path("requests.jsonl"))
    keys = requests.str.json_path_match("$.key")
    results, _ = merged_results(journal, shard)
    answered = results.filter(pl.col("key").is_not_null())
    need = ~keys.is_in(answered["key"].implode())
    if include_errors:
        bad = answered.filter(
            (pl.col("status") == "error") & pl.col("error_status").is_in(list(RETRYABLE_STATUSES))
        )["key"]
        good = answered.filter(pl.col("status") == "ok")["key"]
        need = need | (keys.is_in(bad.implode()) & ~keys.is_in(good.implode()))
    if also is not None and len(also):
        need = need | keys.is_in(also.implode())
    return requests.filter(need).to_list()


def join_shard(
    journal: Journal, shard: ShardRecord, prefix: str
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, int]]:
    """The shard's input rows joined with its (merged) results, job outcomes applied:
    ``(output, keys, report)``: the user's rows with the result columns, in input order; gembatch's
    own columns of the same rows (key, hash, send, route), for the result cache; the counts.

    A row routed ``dup`` takes the answer of the row of this shard that sent the same request; a row
    routed ``cache`` its cached answer. The ``{prefix}origin`` column tells which (``batch``,
    ``interactive``, ``dedup``, ``cache``; null for skipped rows).
    """
    store, manifest = journal.store, journal.manifest
    journal.verify(shard, "keys.parquet")
    keys = store.read_parquet(shard.path("keys.parquet"))
    results, last = merged_results(journal, shard)
    if "cached.jsonl" in shard.files or store.exists(shard.path("cached.jsonl")):
        results = pl.concat(
            [results, read_results(journal, shard, "cached.jsonl")], how="vertical_relaxed"
        )
    answer = pl.col(KEY)
    if VIA in keys.columns and bool((keys[VIA] == "dup").any()):
        senders = keys.filter(pl.col(VIA) == "line").select(HASH, pl.col(KEY).alias(_SENDER))
        keys = keys.join(
            senders.unique(HASH, keep="first"), on=HASH, how="left", maintain_order="left"
        )
        answer = pl.when(pl.col(VIA) == "dup").then(pl.col(_SENDER)).otherwise(pl.col(KEY))
    joined, report = join_results(
        keys, key=answer, results=results, prefix=prefix, send_mask=keys[SEND]
    )
    keys, joined = keys.drop(_SENDER, strict=False), joined.drop(_SENDER, strict=False)
    job, origin = f"{prefix}batch_job", f"{prefix}origin"
    via = pl.col(VIA) if VIA in joined.columns else pl.when(pl.col(SEND)).then(pl.lit("line"))
    sender = "interactive" if last.mode == "live" else "batch"  # of rows no answer came for
    joined = joined.with_columns(
        pl.when(via == "line")
        .then(pl.coalesce(pl.col(origin), pl.lit(sender)))
        .otherwise(via.replace_strict(_ORIGIN, default=None, return_dtype=pl.Utf8))
        .alias(origin)
    )
    joined = joined.with_columns(
        pl.when(pl.col(origin).is_null())  # a skipped row: no job ever saw it
        .then(pl.lit(None, dtype=pl.Utf8))
        .when((via == "cache") | (pl.col(origin) == "interactive"))
        .then(pl.col(job))
        .otherwise(pl.coalesce(pl.col(job), pl.lit(last.job_name, dtype=pl.Utf8)))
        .alias(job)
    )
    status, message = f"{prefix}status", f"{prefix}error_message"
    code_status = f"{prefix}error_status"
    outcome = STATUS_FOR_JOB_STATE.get(last.job_state or "")
    if outcome is not None:  # rows the job never answered take the job's outcome
        reason = last.job_error or f"the batch job ended {last.job_state}"
        missing = pl.col(status) == "missing"
        job_status = "JOB_" + (last.job_state or "").removeprefix("JOB_STATE_")
        joined = joined.with_columns(
            pl.when(missing).then(pl.lit(reason)).otherwise(pl.col(message)).alias(message),
            pl.when(missing)
            .then(pl.lit(job_status))
            .otherwise(pl.col(code_status))
            .alias(code_status),
            pl.when(missing).then(pl.lit(outcome)).otherwise(pl.col(status)).alias(status),
        )
    schema_failed = degenerate_rows = 0
    if manifest.response_schema is not None and manifest.kind != "embed":
        joined, schema_failed, degenerate_rows = _check_answers(
            joined, keys, manifest.response_schema, prefix
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
    summary["schema_failed"] = schema_failed  # paid for, but not an answer to the schema
    summary["degenerate"] = degenerate_rows
    summary["deduplicated"] = int((joined[origin] == "dedup").sum())
    summary["cached"] = int((joined[origin] == "cache").sum())
    result_columns = [c for c in joined.columns if c not in keys.columns]
    journal.verify(shard, "input.parquet")
    rows = store.read_parquet(shard.path("input.parquet"))
    return rows.hstack(joined.select(result_columns)), keys, summary


def _check_answers(
    joined: pl.DataFrame, keys: pl.DataFrame, schema: Any, prefix: str
) -> tuple[pl.DataFrame, int, int]:
    """Structured answers parsed (``{prefix}parsed``) and checked: an ``ok`` row whose text does not
    decode, breaks a constraint of the schema (``validate``) or shows a degenerate pattern across
    the shard (``degenerate``: the same answer to different requests, all-null templates, field
    names or shifted values, prose in short fields) becomes ``error`` / ``SCHEMA_MISMATCH`` with the
    reason; its text is kept. Returns the frame, the rows failed and of those the degenerate."""
    status, message = f"{prefix}status", f"{prefix}error_message"
    code_status, text = f"{prefix}error_status", joined[f"{prefix}text"]
    parsed, errors = parse_structured(text, schema)
    ok = joined[status] == "ok"
    problems = validate(text.set(~ok, None), schema)
    hashes = keys[HASH] if HASH in keys.columns else None
    reasons, _ = degenerate(parsed.set(~ok, None), hashes, schema)
    # the validator names every failing JSON path; polars' decoding message (kept when the
    # validator finds nothing) names one value, as Rust prints it
    decoded_badly = errors.str.starts_with("does not match the response schema")
    why = pl.select(
        pl.coalesce(
            pl.when(decoded_badly & problems.is_not_null()).then(
                "the answer does not match the schema: " + problems
            ),
            errors,
            "the answer does not match the schema: " + problems,
            "degenerate answer: " + reasons,
        )
    ).to_series()
    bad = why.is_not_null() & ok
    degenerate_rows = int((bad & errors.is_null() & problems.is_null()).sum())
    joined = joined.with_columns(
        parsed.alias(f"{prefix}parsed"),
        pl.when(bad).then(pl.lit("error")).otherwise(pl.col(status)).alias(status),
        pl.when(bad)
        .then(pl.lit("SCHEMA_MISMATCH"))
        .otherwise(pl.col(code_status))
        .alias(code_status),
        pl.when(bad).then(why).otherwise(pl.col(message)).alias(message),
    )
    return joined, int(bad.sum()), degenerate_rows


def answered_entries(
    journal: Journal, shard: ShardRecord, prefix: str, *, include_cached: bool = False
) -> pl.DataFrame:
    """Result-cache entries for a joined shard's ``ok`` answers: ``hash``, ``response`` (raw JSON),
    ``model``, ``model_version``; the rows it sent (and, with ``include_cached``, those the cache
    answered)."""
    keys = journal.store.read_parquet(shard.path("keys.parquet"))
    output = (
        journal.store.read_parquet(
            shard.path("output.parquet"), columns=[f"{prefix}status", f"{prefix}model_version"]
        )
        if journal.manifest.kind == "generate"
        else journal.store.read_parquet(shard.path("output.parquet"), columns=[f"{prefix}status"])
    )
    if HASH not in keys.columns:
        return pl.DataFrame(
            schema={
                "hash": pl.Utf8,
                "response": pl.Utf8,
                "model": pl.Utf8,
                "model_version": pl.Utf8,
            }
        )
    version = f"{prefix}model_version"
    routes = ["line", "cache"] if include_cached else ["line"]
    answered = (
        keys.select(KEY, HASH, VIA)
        .with_columns(
            output[f"{prefix}status"].alias("status"),
            (output[version] if version in output.columns else pl.lit(None, dtype=pl.Utf8)).alias(
                "model_version"
            ),
        )
        .filter(pl.col(VIA).is_in(routes) & (pl.col("status") == "ok"))
    )
    return (
        answered.select(pl.col(KEY).alias("key"), pl.col(HASH).alias("hash"), "model_version")
        .join(raw_answers(journal, shard, include_cached=include_cached), on="key", how="inner")
        .select("hash", "response", pl.lit(journal.manifest.model).alias("model"), "model_version")
    )


def raw_answers(
    journal: Journal, shard: ShardRecord, *, include_cached: bool = False
) -> pl.DataFrame:
    """``key`` and ``response`` (raw JSON) of the shard's result lines that hold a response, its
    resubmissions' laid over them (later wins); with ``include_cached``, its cached answers too."""
    frames = []
    files = [
        (r, "results.jsonl")
        for r in journal.family(shard)
        if r.state.rank >= ShardState.FETCHED.rank
    ]
    if include_cached:
        files.insert(0, (shard, "cached.jsonl"))
    for record, name in files:
        if not journal.store.exists(record.path(name)):
            continue
        lines = parse.lines_from_bytes(journal.store.read_bytes(record.path(name)))
        frames.append(
            lines.to_frame("line")
            .select(
                pl.col("line").str.json_path_match("$.key").alias("key"),
                pl.col("line").str.json_path_match("$.response").alias("response"),
            )
            .filter(pl.col("key").is_not_null() & pl.col("response").is_not_null())
        )
    if not frames:
        return pl.DataFrame(schema={"key": pl.Utf8, "response": pl.Utf8})
    return pl.concat(frames).unique("key", keep="last", maintain_order=True)
