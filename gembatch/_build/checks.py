"""Pure checks of the input before anything is spent: columns, prompts, keys and request sizes.

Every message names the rows (0-based positions), their keys and the columns, and ends with a hint.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import Any

import polars as pl

from ..exceptions import (
    ColumnNotFoundError,
    DuplicateKeyError,
    InputError,
    InvalidPromptError,
    RequestTooLargeError,
)
from .lines import request_bytes

__all__ = ["check_frame", "check_inputs", "check_keys", "check_sizes", "missing_columns"]

_SHOWN = 5  # rows named in an error message


def _rows_text(rows: Sequence[int], total: int) -> str:
    shown = ", ".join(str(r) for r in rows[:_SHOWN])
    more = f" and {total - _SHOWN:,} more" if total > _SHOWN else ""
    return f"row{'s' if total != 1 else ''} {shown}{more}"


def _count(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


def _keys_text(values: Sequence[Any]) -> str:
    return ", ".join(repr(v) for v in values[:_SHOWN])


def missing_columns(missing: Sequence[str], available: Sequence[str]) -> ColumnNotFoundError:
    lines = []
    for name in missing:
        close = difflib.get_close_matches(name, available, n=3, cutoff=0.6)
        near = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        lines.append(f"Column {name!r} not found.{near}")
    shown = ", ".join(repr(c) for c in available[:30]) + (" ..." if len(available) > 30 else "")
    return ColumnNotFoundError(
        "\n".join(lines) + f"\nAvailable columns: {shown}."
        "\nHint: check the spelling and the case of the column names given as prompt, key, "
        "system_instruction and media."
    )


def _evaluate(frame: pl.DataFrame, expr: pl.Expr, name: str) -> pl.Series:
    try:
        out = frame.with_columns(expr.alias("__gembatch_value__")).get_column("__gembatch_value__")
    except pl.exceptions.ColumnNotFoundError as exc:
        found = re.search(r'"([^"]+)"', str(exc))
        raise missing_columns(
            [found.group(1) if found else str(exc).splitlines()[0]], frame.columns
        ) from exc
    except pl.exceptions.PolarsError as exc:
        raise InputError(
            f"The {name} expression {expr} cannot be evaluated on the frame: {exc}"
            f"\nHint: check it with df.select(...) first."
        ) from exc
    return out.alias(name)


def _as_text(series: pl.Series, expr: pl.Expr) -> pl.Series:
    if series.dtype == pl.Utf8:
        return series
    if series.dtype.is_nested() or series.dtype in (pl.Binary, pl.Object):
        raise InvalidPromptError(
            f"The prompt {expr} gives {series.dtype} values, not text."
            f"\nHint: build a text prompt, e.g. pl.format('...{{}}...', pl.col(...))."
        )
    return series.cast(pl.Utf8)


def check_inputs(
    frame: pl.DataFrame,
    *,
    prompt: pl.Expr,
    key_column: str | None,
    columns_needed: Sequence[str],
    skip_null_prompts: bool = False,
    row_offset: int = 0,
    system_instruction: pl.Expr | None = None,
) -> pl.Series:
    """Check the frame before anything is spent; return the Boolean ``send`` mask.

    Raises ColumnNotFoundError, InvalidPromptError (null / blank prompts, unless
    ``skip_null_prompts``: those rows get ``send=False``) or DuplicateKeyError (null or repeated
    keys). Messages name the first rows (0-based, plus ``row_offset``), their keys and the columns,
    and end with a hint.
    """
    wanted = [*columns_needed, *prompt.meta.root_names(), *([key_column] if key_column else [])]
    missing = [c for c in dict.fromkeys(wanted) if c not in frame.schema]
    if missing:
        raise missing_columns(missing, frame.columns)
    keys = _checked_keys(frame, key_column, row_offset)
    text = _as_text(_evaluate(frame, prompt, "prompt"), prompt)
    blank = text.is_null() | ~text.str.contains(
        r"\S"
    )  # no copy of the text (strip_chars makes one)
    if system_instruction is not None:
        _check_system_instructions(frame, system_instruction, ~blank, keys, row_offset)
    if not blank.any():
        return pl.repeat(True, frame.height, dtype=pl.Boolean, eager=True).alias("send")
    if skip_null_prompts:
        return (~blank).alias("send")
    idx = blank.arg_true()
    n_null = int(text.is_null().sum())
    what = f"{n_null:,} null and {len(idx) - n_null:,} empty or whitespace-only"
    many, where = _bad_rows(idx, frame.height, keys if key_column else None, row_offset)
    cols = ", ".join(repr(c) for c in prompt.meta.root_names()) or "none"
    raise InvalidPromptError(
        f"{many} a null or empty prompt ({what}): {where}. Prompt: {prompt} (columns: {cols})."
        "\nHint: fill or drop those rows, or pass skip_null_prompts=True to skip them "
        "(they get status 'skipped' and cost nothing)."
    )


def _bad_rows(
    idx: pl.Series, height: int, keys: pl.Series | None, row_offset: int
) -> tuple[str, str]:
    """``("2 of 10 rows have", "rows 3, 7 (keys 'a', 'b')")`` for the rows at ``idx``."""
    rows = (idx.cast(pl.Int64) + row_offset).to_list()
    key_info = (
        f" (keys {_keys_text(keys.gather(idx[:_SHOWN]).to_list())})" if keys is not None else ""
    )
    many = f"{len(idx):,} of {_scope(height, row_offset)} {'has' if len(idx) == 1 else 'have'}"
    return many, f"{_rows_text(rows, len(idx))}{key_info}"


def _check_system_instructions(
    frame: pl.DataFrame, expr: pl.Expr, sent: pl.Series, keys: pl.Series, row_offset: int
) -> None:
    """A row's own system instruction may be null (the shared one, if any, applies) but not empty
    or blank: the service refuses such a request (INVALID_ARGUMENT), after it was paid to send."""
    own = _as_text(_evaluate(frame, expr, "system_instruction"), expr)
    empty = own.is_not_null() & ~own.str.contains(r"\S") & sent
    if not empty.any():
        return
    many, where = _bad_rows(empty.arg_true(), frame.height, keys if len(keys) else None, row_offset)
    cols = ", ".join(repr(c) for c in expr.meta.root_names()) or "none"
    raise InvalidPromptError(
        f"{many} an empty system instruction: {where}. System instruction: {expr} "
        f"(columns: {cols})."
        "\nHint: use null where a row has no instruction of its own (the shared one, if any, "
        "applies), or fill it."
    )


def _scope(height: int, row_offset: int) -> str:
    """The rows checked: all of them, or (a slice of a streamed input) which ones."""
    if not row_offset:
        return _count(height, "row", "rows")
    return f"the {height:,} rows from row {row_offset:,}"


def check_keys(frame: pl.DataFrame, key_column: str, row_offset: int = 0) -> pl.Series:
    """Check the key column alone (null or repeated keys, as :func:`check_inputs` does); the keys
    as text."""
    return _checked_keys(frame, key_column, row_offset)


def _repeats(keys: pl.Series) -> bool:
    """Whether some value of ``keys`` (no nulls) repeats: equal neighbours once sorted, which needs
    a third of the memory of a hash table of the keys (1 M string keys: +33 MB, not +100 MB)."""
    if len(keys) < 2:
        return False
    ordered = keys.sort()
    return bool((ordered.slice(1) == ordered.slice(0, len(ordered) - 1)).any())


def _checked_keys(frame: pl.DataFrame, key_column: str | None, row_offset: int) -> pl.Series:
    """The key column as strings (positions need no check: they are unique by construction)."""
    if key_column is None:
        return pl.Series("key", [], dtype=pl.Utf8)
    column = frame.get_column(key_column)
    try:  # keys go on the wire as text; integers and text compare the same either way
        keys = (
            column
            if column.dtype.is_integer() or column.dtype == pl.Utf8
            else column.cast(pl.Utf8, strict=True)
        )
    except pl.exceptions.PolarsError as exc:
        raise DuplicateKeyError(
            f"The key column {key_column!r} ({column.dtype}) cannot be turned into text keys: {exc}"
            "\nHint: pass a column of str or int keys, or key=None to key by row position."
        ) from exc
    nulls = keys.is_null()
    if nulls.any():
        idx = nulls.arg_true()
        raise DuplicateKeyError(
            f"{_count(len(idx), 'row has', 'rows have')} a null key in column {key_column!r}: "
            f"{_rows_text((idx.cast(pl.Int64) + row_offset).to_list(), len(idx))}."
            "\nHint: fill the null keys with unique values, or pass key=None to key by row "
            "position."
        )
    if not _repeats(keys):
        return keys
    dup = keys.is_duplicated()
    if dup.any():
        groups = (
            pl.DataFrame({"row": pl.int_range(frame.height, eager=True) + row_offset, "key": keys})
            .filter(dup)
            .group_by("key", maintain_order=True)
            .agg(pl.col("row").head(3), pl.len().alias("n"))
        )
        shown = "; ".join(
            f"{k!r} at rows {', '.join(map(str, rows))}{' ...' if n > 3 else ''}"
            for k, rows, n in groups.head(_SHOWN).iter_rows()
        )
        more = f"; and {groups.height - _SHOWN:,} more" if groups.height > _SHOWN else ""
        raise DuplicateKeyError(
            f"{_count(groups.height, 'key value repeats', 'key values repeat')} in column "
            f"{key_column!r} ({int(dup.sum()):,} rows): "
            f"{shown}{more}.\nHint: make the keys unique (e.g. df.unique({key_column!r})), or pass "
            "key=None to key by row position."
        )
    return keys


def check_sizes(
    lines: pl.DataFrame,
    *,
    max_request_bytes: int,
    row_offset: int = 0,
    send_mask: pl.Series | None = None,
) -> None:
    """Raise RequestTooLargeError naming the rows whose request line is over ``max_request_bytes``.

    Row numbers are positions in ``lines`` plus ``row_offset``; pass the unfiltered lines with
    ``send_mask`` to check only the rows that will be sent and still name their true positions.
    """
    size = request_bytes(lines)
    over = size > max_request_bytes
    if send_mask is not None:
        over = over & send_mask
    if not over.any():
        return
    idx = over.arg_true()
    rows = (idx.cast(pl.Int64) + row_offset).to_list()
    first = idx[:_SHOWN]
    detail = ", ".join(
        f"key {k!r}: {b:,} bytes"
        for k, b in zip(
            lines.get_column("key").gather(first).to_list(), size.gather(first).to_list()
        )
    )
    raise RequestTooLargeError(
        f"{_count(len(idx), 'request is', 'requests are')} larger than {max_request_bytes:,} "
        "bytes: "
        f"{_rows_text(rows, len(idx))} ({detail})."
        "\nHint: shorten those prompts, or send large media as file URIs (upload them with the "
        "File "
        "API) instead of inline bytes."
    )


#: Column types a run directory cannot keep (Parquet / Arrow have no such type).
_UNSTORABLE = (pl.Int128, pl.UInt128, pl.Object)


def check_frame(schema: pl.Schema, *, key_column: str | None, produced: Sequence[str]) -> None:
    """Refuse, before anything is spent, a frame gembatch cannot give back whole: a column that
    would be overwritten by a result column (``produced``), a column of a type Parquet cannot
    store, or a floating-point key (``0.0`` and ``-0.0`` are equal numbers but different keys).

    >>> check_frame(pl.Schema({"gemini_text": pl.Utf8}), key_column=None, produced=["gemini_text"])
    Traceback (most recent call last):
    ...
    gembatch.exceptions.InputError: The frame already has the result column(s) ['gemini_text'] ...
    """
    clash = [c for c in produced if c in schema]
    if clash:
        raise InputError(
            f"The frame already has the result column(s) {clash} that gembatch would write; "
            "nothing was sent.\nHint: pass another prefix (prefix='llm_'), or rename or drop "
            "those columns first."
        )
    odd = {name: str(dtype) for name, dtype in schema.items() if dtype in _UNSTORABLE}
    if odd:
        raise InputError(
            f"Column(s) {odd} have a type Parquet cannot store, and the run directory keeps every "
            "row in Parquet; nothing was sent.\nHint: cast them first, e.g. "
            "pl.col(name).cast(pl.Decimal(38, 0)) or .cast(pl.Utf8)."
        )
    if key_column is not None and key_column in schema and schema[key_column].is_float():
        raise DuplicateKeyError(
            f"The key column {key_column!r} holds floating-point numbers ({schema[key_column]}): "
            "0.0 and -0.0 or two NaNs are hard to tell apart as keys; nothing was sent.\nHint: "
            "pass a column of str or int keys (e.g. pl.col(key).cast(pl.Utf8)), or key=None to "
            "key by row position."
        )
