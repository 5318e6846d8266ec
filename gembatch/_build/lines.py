"""Pure: rows + prompt expression + static request part -> keyed request lines (polars expressions).

Every line is one JSON object, ``{"key": "<key>", "request": {...}}``, built without a per-row Python
loop: text is JSON-encoded by polars (``struct.json_encode``), the part of the request that is the same
for every row is serialised once and spliced in as a string.

>>> import polars as pl
>>> frame = pl.DataFrame({"id": [7], "review": ['He said "great"']})
>>> lines = build_generate_lines(
...     frame, prompt=pl.col("review"), keys=pl.col("id").cast(pl.Utf8),
...     static={"generationConfig": {"temperature": 0.2}})
>>> lines["line"][0]
'{"key":"7","request":{"contents":[{"role":"user","parts":[{"text":"He said \\\\"great\\\\""}]}],"generationConfig":{"temperature":0.2}}}'
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

import polars as pl

from . import hashing
from ..exceptions import (
    ColumnNotFoundError,
    ConfigError,
    DuplicateKeyError,
    InputError,
    InvalidPromptError,
    RequestTooLargeError,
)

__all__ = [
    "MediaParts",
    "build_embed_lines",
    "build_generate_lines",
    "check_inputs",
    "check_sizes",
    "request_bytes",
    "static_json",
    "write_jsonl",
]

_SHOWN = 5  # rows named in an error message


@dataclass(frozen=True)
class MediaParts:
    """Extra parts of each request, taken from one column (multimodal rows).

    ``column`` holds file URIs (str, sent as ``fileData``) or raw bytes (Binary, sent base64-encoded as
    ``inlineData``); a List column of either gives several parts per row; null values give no part.
    The MIME type is a literal (``mime_type``) or read per row from ``mime_type_column`` (a scalar column,
    or, for a List media column, a List column of the same lengths).

    >>> MediaParts("image_uri", mime_type="image/png")
    MediaParts(column='image_uri', mime_type='image/png', mime_type_column=None)
    """

    column: str
    mime_type: str | None = None
    mime_type_column: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.column, str) or not self.column:
            raise ConfigError(f"MediaParts.column must be a column name (got {self.column!r}).")
        if (self.mime_type is None) == (self.mime_type_column is None):
            raise ConfigError(
                f"MediaParts({self.column!r}) needs exactly one of mime_type (a literal such as "
                f"'image/png') or mime_type_column (a column of MIME types) "
                f"(got mime_type={self.mime_type!r}, mime_type_column={self.mime_type_column!r})."
            )
        if self.mime_type is not None and (not isinstance(self.mime_type, str) or "/" not in self.mime_type):
            raise ConfigError(
                f"MediaParts.mime_type must be a MIME type such as 'image/png' (got {self.mime_type!r})."
            )


# --------------------------------------------------------------------------------------------- lines
def _canonical(value: Any) -> Any:
    """``value`` with integral floats as ints (``1.0`` and ``1`` are one JSON number) and -0.0 as 0."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def static_json(static: Mapping[str, Any]) -> str:
    """The canonical JSON of ``static``: compact, sorted keys, UTF-8 kept, floats in shortest
    round-trip form and integral ones as integers (so equal requests always give equal text).

    >>> static_json({"b": {"temperature": 1.0, "topP": 0.95}, "a": [2.50]})
    '{"a":[2.5],"b":{"temperature":1,"topP":0.95}}'
    """
    try:
        return json.dumps(_canonical(static), separators=(",", ":"), sort_keys=True, ensure_ascii=False,
                          allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"The static request part is not JSON-serialisable: {exc}.") from exc


def _members(static: Mapping[str, Any], *, drop: str | None = None) -> str:
    """``static`` as object members to splice after another member: ``,"a":1,"b":2`` (or "")."""
    kept = {k: v for k, v in static.items() if k != drop}
    return "," + static_json(kept)[1:-1] if kept else ""


def _text_part(expr: pl.Expr) -> pl.Expr:
    """``{"text":"<expr, JSON-escaped>"}``: a polars-encoded one-field struct is exactly a text part."""
    return pl.struct(expr.cast(pl.Utf8).alias("text")).struct.json_encode()


_ESCAPED = ['"', "\\", *map(chr, range(0x20))]  # what JSON must escape inside a string


def _key_head(keys: pl.Series, column: pl.Expr | None = None) -> pl.Expr:
    """``{"key":"<key>"`` (the line's opening, without the closing brace); ``column`` refers to
    ``keys`` where they are a column of the frame being selected from (else they are a literal).

    Keys are usually plain (row numbers, ids): then they are quoted as they are, which is exact and
    saves encoding them; any key holding a quote, a backslash or a control character, or a null key,
    sends all of them through the JSON encoder.
    """
    expr = pl.lit(keys) if column is None else column
    if not keys.null_count() and not keys.str.contains_any(_ESCAPED).any():
        return pl.concat_str([pl.lit('{"key":"'), expr, pl.lit('"')])
    return pl.struct(expr.alias("key")).struct.json_encode().str.strip_suffix("}")


def _media_kind(frame: pl.DataFrame, media: MediaParts) -> tuple[str, bool]:
    """``("fileData" | "inlineData", is_list)`` from the media column's dtype."""
    dtype = frame.schema[media.column]
    inner = dtype.inner if isinstance(dtype, (pl.List, pl.Array)) else dtype  # type: ignore[union-attr]
    is_list = isinstance(dtype, (pl.List, pl.Array))
    if inner == pl.Utf8:
        return "fileData", is_list
    if inner == pl.Binary:
        return "inlineData", is_list
    raise InputError(
        f"MediaParts column {media.column!r} must hold file URIs (str) or bytes (Binary), or a List of "
        f"either (got {dtype}).\nHint: cast it, e.g. pl.col({media.column!r}).cast(pl.Utf8)."
    )


def _part_json(kind: str, value: pl.Expr, mime: pl.Expr) -> pl.Expr:
    """One media part as JSON, null when ``value`` is null."""
    if kind == "fileData":
        inner = pl.struct(value.alias("fileUri"), mime.cast(pl.Utf8).alias("mimeType"))
    else:
        inner = pl.struct(value.bin.encode("base64").alias("data"), mime.cast(pl.Utf8).alias("mimeType"))
    return pl.when(value.is_not_null()).then(pl.struct(inner.alias(kind)).struct.json_encode())


def _media_json(frame: pl.DataFrame, media: MediaParts) -> pl.Series:
    """The media parts of every row as comma-joined JSON objects (null when a row has none)."""
    kind, is_list = _media_kind(frame, media)
    mime = pl.lit(media.mime_type) if media.mime_type is not None else \
        pl.col(str(media.mime_type_column))
    if not is_list:
        return frame.select(_part_json(kind, pl.col(media.column), mime).alias("media")).to_series()
    cols = [media.column] + ([media.mime_type_column] if media.mime_type_column else [])
    mime_is_list = media.mime_type_column is not None and isinstance(
        frame.schema[media.mime_type_column], (pl.List, pl.Array))
    base = frame.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("row"), *cols)
    try:
        long = base.explode([media.column, *cols[1:]] if mime_is_list else media.column)
    except pl.exceptions.ShapeError as exc:
        raise InputError(
            f"MediaParts columns {media.column!r} and {media.mime_type_column!r} have lists of different "
            f"lengths in some rows.\nHint: give one MIME type per element, or a scalar MIME column."
        ) from exc
    parts = long.group_by("row", maintain_order=True).agg(
        _part_json(kind, pl.col(media.column), mime).str.join(",").alias("media"))
    joined = base.select("row").join(parts, on="row", how="left", maintain_order="left")
    return joined.select(pl.when(pl.col("media") != "").then(pl.col("media"))).to_series()


def build_generate_lines(
    frame: pl.DataFrame,
    *,
    prompt: pl.Expr,
    keys: pl.Expr,
    static: Mapping[str, Any],
    system_instruction: pl.Expr | None = None,
    media: Sequence[MediaParts] = (),
    media_first: bool = False,
    hash_prefix: str | None = None,
) -> pl.DataFrame:
    """Keyed ``generateContent`` request lines: a frame of ``key`` and ``line`` (Utf8), in input order.

    Parameters
    ----------
    frame: the input rows.
    prompt: an expression giving each row's prompt text.
    keys: an expression giving each row's key (sent as a JSON string).
    static: the wire-form part of every request (``generationConfig``, ``tools``, ...).
    system_instruction: a per-row system instruction; overrides ``static["systemInstruction"]`` where
        not null.
    media: extra parts per row; after the text part, or before it when ``media_first``.
    hash_prefix: when given, a ``hash`` column is added: each request's content address
        (:mod:`gembatch.hashing`), the sha256 of this prefix and the request body.
    """
    extra = {f"{_TMP}media{i}": _media_json(frame, m) for i, m in enumerate(media)}
    text = _text_part(prompt)
    media_exprs = [pl.col(name) for name in extra]
    parts = [*media_exprs, text] if media_first else [text, *media_exprs]
    parts_expr = parts[0] if len(parts) == 1 else pl.concat_str(parts, separator=",", ignore_nulls=True)
    opening = ',"request":{"contents":[{"role":"user","parts":['
    if system_instruction is None:
        pieces = [pl.lit(opening), parts_expr, pl.lit("]}]" + _members(static) + "}}")]
    else:
        fallback = _members({"systemInstruction": static["systemInstruction"]}) \
            if "systemInstruction" in static else ""
        per_row = pl.concat_str([
            pl.lit(',"systemInstruction":{"parts":['), _text_part(system_instruction), pl.lit("]}")])
        sys_piece = pl.when(system_instruction.is_not_null()).then(per_row).otherwise(pl.lit(fallback))
        pieces = [pl.lit(opening), parts_expr,
                  pl.lit("]}]" + _members(static, drop="systemInstruction")), sys_piece, pl.lit("}}")]
    return _collect(frame, keys, pieces, hash_prefix, extra)


def build_embed_lines(
    frame: pl.DataFrame, *, text: pl.Expr, keys: pl.Expr, static: Mapping[str, Any],
    hash_prefix: str | None = None,
) -> pl.DataFrame:
    """Keyed ``embedContent`` request lines: ``{"key":..,"request":{"content":{"parts":[{"text":..}]},..}}``.

    ``static`` holds the fields shared by every request (``taskType``, ``outputDimensionality``, ...).
    """
    pieces = [pl.lit(',"request":{"content":{"parts":['), _text_part(text),
              pl.lit("]}" + _members(static) + "}}")]
    return _collect(frame, keys, pieces, hash_prefix)


_TMP = "__gembatch_requests_"  # prefix of the helper columns put next to the input while building


def _collect(frame: pl.DataFrame, keys: pl.Expr, pieces: list[pl.Expr], hash_prefix: str | None = None,
             extra: Mapping[str, pl.Series] | None = None) -> pl.DataFrame:
    """The ``key``, ``line`` (and ``hash``) frame: one pass of the streaming engine, which encodes
    the rows on every core, morsel by morsel (helper series are columns, not literals, for that)."""
    key = frame.lazy().select(keys.cast(pl.Utf8).alias("key")).collect().to_series()
    if len(key) != frame.height:
        raise InputError(f"The key expression {keys} gives {len(key)} values for {frame.height} rows.")
    key_col = f"{_TMP}key"
    line = pl.concat_str([_key_head(key, pl.col(key_col)), *pieces])
    columns = [pl.col(key_col).alias("key"), line.alias("line")]
    if hash_prefix is not None:  # the body is everything after the key: the request, canonical
        columns.append(hashing.hash_expr(pl.concat_str([pl.lit(hash_prefix), *pieces])).alias("hash"))
    helpers = [key.alias(key_col), *(series.alias(name) for name, series in (extra or {}).items())]
    return frame.with_columns(helpers).lazy().select(columns).collect(engine="streaming")


def answer_lines(keys: pl.Series, responses: pl.Series) -> pl.Series:
    """Result lines ``{"key":<key>,"response":<response>}`` (``responses`` holds raw JSON objects)."""
    frame = pl.DataFrame({"key": keys.cast(pl.Utf8), "response": responses})
    return frame.select(pl.concat_str([_key_head(frame["key"]), pl.lit(',"response":'), pl.col("response"),
                                       pl.lit("}")]).alias("line")).to_series()


def request_bytes(lines: pl.DataFrame) -> pl.Series:
    """The size of each request in the JSONL file: the line's UTF-8 bytes plus its newline (Int64)."""
    return (lines.get_column("line").str.len_bytes().cast(pl.Int64) + 1).alias("request_bytes")


def write_jsonl(lines: pl.DataFrame | pl.Series, file: IO[bytes]) -> None:
    """Write each line followed by a newline to a binary file object (a multi-threaded polars writer).

    Lines never contain a raw newline (JSON escapes it), so the CSV writer without quoting writes
    them verbatim; this is ~10x faster than joining the lines into one Python string.
    """
    series = lines.get_column("line") if isinstance(lines, pl.DataFrame) else lines
    if len(series):
        series.to_frame("line").write_csv(file, include_header=False, quote_style="never")


# -------------------------------------------------------------------------------------------- checks
def _rows_text(rows: Sequence[int], total: int) -> str:
    shown = ", ".join(str(r) for r in rows[:_SHOWN])
    more = f" and {total - _SHOWN:,} more" if total > _SHOWN else ""
    return f"row{'s' if total != 1 else ''} {shown}{more}"


def _count(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


def _keys_text(values: Sequence[Any]) -> str:
    return ", ".join(repr(v) for v in values[:_SHOWN])


def _missing_columns(missing: Sequence[str], available: Sequence[str]) -> ColumnNotFoundError:
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
        raise _missing_columns([found.group(1) if found else str(exc).splitlines()[0]],
                               frame.columns) from exc
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
) -> pl.Series:
    """Check the frame before anything is spent; return the Boolean ``send`` mask.

    Raises ColumnNotFoundError, InvalidPromptError (null / blank prompts, unless ``skip_null_prompts``:
    those rows get ``send=False``) or DuplicateKeyError (null or repeated keys). Messages name the first
    rows (0-based, plus ``row_offset``), their keys and the columns, and end with a hint.
    """
    wanted = [*columns_needed, *prompt.meta.root_names(), *([key_column] if key_column else [])]
    missing = [c for c in dict.fromkeys(wanted) if c not in frame.schema]
    if missing:
        raise _missing_columns(missing, frame.columns)
    keys = _checked_keys(frame, key_column, row_offset)
    text = _as_text(_evaluate(frame, prompt, "prompt"), prompt)
    blank = text.is_null() | (text.str.strip_chars() == "")
    if not blank.any():
        return pl.Series("send", [True] * frame.height, dtype=pl.Boolean) if frame.height else \
            pl.Series("send", [], dtype=pl.Boolean)
    if skip_null_prompts:
        return (~blank).alias("send")
    idx = blank.arg_true()
    rows = (idx.cast(pl.Int64) + row_offset).to_list()
    n_null = int(text.is_null().sum())
    what = f"{n_null:,} null and {len(idx) - n_null:,} empty or whitespace-only"
    key_info = f" (keys {_keys_text(keys.gather(idx[:_SHOWN]).to_list())})" if key_column else ""
    cols = ", ".join(repr(c) for c in prompt.meta.root_names()) or "none"
    raise InvalidPromptError(
        f"{len(idx):,} of {_count(frame.height, 'row', 'rows')} "
        f"{'has' if len(idx) == 1 else 'have'} a null or empty prompt ({what}): "
        f"{_rows_text(rows, len(idx))}{key_info}. Prompt: {prompt} (columns: {cols})."
        "\nHint: fill or drop those rows, or pass skip_null_prompts=True to skip them "
        "(they get status 'skipped' and cost nothing)."
    )


def _checked_keys(frame: pl.DataFrame, key_column: str | None, row_offset: int) -> pl.Series:
    """The key column as strings (positions need no check: they are unique by construction)."""
    if key_column is None:
        return pl.Series("key", [], dtype=pl.Utf8)
    column = frame.get_column(key_column)
    try:  # keys go on the wire as text; integers and text compare the same either way
        keys = column if column.dtype.is_integer() or column.dtype == pl.Utf8 else \
            column.cast(pl.Utf8, strict=True)
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
            "\nHint: fill the null keys with unique values, or pass key=None to key by row position."
        )
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
        for k, b in zip(lines.get_column("key").gather(first).to_list(), size.gather(first).to_list())
    )
    raise RequestTooLargeError(
        f"{_count(len(idx), 'request is', 'requests are')} larger than {max_request_bytes:,} bytes: "
        f"{_rows_text(rows, len(idx))} ({detail})."
        "\nHint: shorten those prompts, or send large media as file URIs (upload them with the File "
        "API) instead of inline bytes."
    )
