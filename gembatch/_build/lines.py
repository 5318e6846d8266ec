"""Pure: rows + prompt expression + static request part -> keyed request lines (polars expressions).

Every line is one JSON object, ``{"key": "<key>", "request": {...}}``, built without a per-row
Python loop: text is JSON-encoded by polars (``struct.json_encode``), the part of the request that
is the same for every row is serialised once and spliced in as a string.

>>> import json, polars as pl
>>> frame = pl.DataFrame({"id": [7], "review": ['He said "great"']})
>>> lines = build_generate_lines(
...     frame, prompt=pl.col("review"), keys=pl.col("id").cast(pl.Utf8),
...     static={"generationConfig": {"temperature": 0.2}})
>>> line = json.loads(lines["line"][0])
>>> line["key"], line["request"]["contents"][0]["parts"][0]["text"]
('7', 'He said "great"')"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

import polars as pl

from ..exceptions import ConfigError, InputError
from . import hashing
from .wire import snake, to_proto

__all__ = [
    "MediaParts",
    "answer_lines",
    "build_embed_lines",
    "build_generate_lines",
    "request_bytes",
    "static_json",
    "write_jsonl",
]


@dataclass(frozen=True)
class MediaParts:
    """Extra parts of each request, taken from one column (multimodal rows).

    ``column`` holds file URIs (str, sent as ``file_data``) or raw bytes (Binary, sent
    base64-encoded as ``inline_data``); a List column of either gives several parts per row; null
    values give no part. The MIME type is a literal (``mime_type``) or read per row from
    ``mime_type_column`` (a scalar column, or, for a List media column, a List column of the same
    lengths).

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
        if self.mime_type is not None and (
            not isinstance(self.mime_type, str) or "/" not in self.mime_type
        ):
            raise ConfigError(
                "MediaParts.mime_type must be a MIME type such as 'image/png' (got "
                f"{self.mime_type!r})."
            )


# ---------------------------------------------------------------------------------------------
# lines
def _canonical(value: Any) -> Any:
    """``value`` with integral floats as ints (``1.0`` and ``1`` are one JSON number) and -0.0 as
    0."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def static_json(static: Mapping[str, Any]) -> str:
    """The canonical JSON of ``static`` as a request line carries it: proto field names (sorted),
    user data verbatim and in its order (a schema's properties), compact, UTF-8 kept, floats in
    shortest round-trip form and integral ones as integers (equal requests give equal text).

    >>> static_json({"generationConfig": {"topP": 0.95, "temperature": 1.0},
    ...              "stopSequences": [2.50]})
    '{"generation_config":{"temperature":1,"top_p":0.95},"stop_sequences":[2.5]}'
    """
    try:
        return json.dumps(
            _canonical(to_proto(static)),
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"The static request part is not JSON-serialisable: {exc}.") from exc


def _members(static: Mapping[str, Any], *, drop: str | None = None) -> str:
    """``static`` as object members to splice after another member: ``,"a":1,"b":2`` (or "")."""
    kept = {k: v for k, v in static.items() if snake(k) != drop}
    return "," + static_json(kept)[1:-1] if kept else ""


def _text_part(expr: pl.Expr) -> pl.Expr:
    """``{"text":"<expr, JSON-escaped>"}``: a polars-encoded one-field struct is exactly a text
    part."""
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
    """``("file_data" | "inline_data", is_list)`` from the media column's dtype."""
    dtype = frame.schema[media.column]
    inner = dtype.inner if isinstance(dtype, (pl.List, pl.Array)) else dtype
    is_list = isinstance(dtype, (pl.List, pl.Array))
    if inner == pl.Utf8:
        return "file_data", is_list
    if inner == pl.Binary:
        return "inline_data", is_list
    raise InputError(
        f"MediaParts column {media.column!r} must hold file URIs (str) or bytes (Binary), or a "
        "List of "
        f"either (got {dtype}).\nHint: cast it, e.g. pl.col({media.column!r}).cast(pl.Utf8)."
    )


def _part_json(kind: str, value: pl.Expr, mime: pl.Expr) -> pl.Expr:
    """One media part as JSON, null when ``value`` is null."""
    if kind == "file_data":
        inner = pl.struct(value.alias("file_uri"), mime.cast(pl.Utf8).alias("mime_type"))
    else:
        inner = pl.struct(
            value.bin.encode("base64").alias("data"), mime.cast(pl.Utf8).alias("mime_type")
        )
    return pl.when(value.is_not_null()).then(pl.struct(inner.alias(kind)).struct.json_encode())


def _media_json(frame: pl.DataFrame, media: MediaParts) -> pl.Series:
    """The media parts of every row as comma-joined JSON objects (null when a row has none)."""
    kind, is_list = _media_kind(frame, media)
    mime = (
        pl.lit(media.mime_type)
        if media.mime_type is not None
        else pl.col(str(media.mime_type_column))
    )
    if not is_list:
        return frame.select(_part_json(kind, pl.col(media.column), mime).alias("media")).to_series()
    cols = [media.column] + ([media.mime_type_column] if media.mime_type_column else [])
    mime_is_list = media.mime_type_column is not None and isinstance(
        frame.schema[media.mime_type_column], (pl.List, pl.Array)
    )
    base = frame.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("row"), *cols)
    try:
        long = base.explode([media.column, *cols[1:]] if mime_is_list else media.column)
    except pl.exceptions.ShapeError as exc:
        raise InputError(
            f"MediaParts columns {media.column!r} and {media.mime_type_column!r} have lists of "
            "different "
            f"lengths in some rows.\nHint: give one MIME type per element, or a scalar MIME column."
        ) from exc
    parts = long.group_by("row", maintain_order=True).agg(
        _part_json(kind, pl.col(media.column), mime).str.join(",").alias("media")
    )
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
    """Keyed ``generateContent`` request lines: a frame of ``key`` and ``line`` (Utf8), in input
    order.

    Parameters
    ----------
    frame: the input rows.
    prompt: an expression giving each row's prompt text.
    keys: an expression giving each row's key (sent as a JSON string).
    static: the wire-form part of every request (``generationConfig``, ``tools``, ...).
    system_instruction: a per-row system instruction; overrides the shared one (``static``'s
        ``systemInstruction``) where not null.
    media: extra parts per row; after the text part, or before it when ``media_first``.
    hash_prefix: when given, a ``hash`` column is added: each request's content address
        (:mod:`gembatch.hashing`), the sha256 of this prefix and the request body.
    """
    extra = {f"{_TMP}media{i}": _media_json(frame, m) for i, m in enumerate(media)}
    text = _text_part(prompt)
    media_exprs = [pl.col(name) for name in extra]
    parts = [*media_exprs, text] if media_first else [text, *media_exprs]
    parts_expr = (
        parts[0] if len(parts) == 1 else pl.concat_str(parts, separator=",", ignore_nulls=True)
    )
    opening = ',"request":{"contents":[{"role":"user","parts":['
    if system_instruction is None:
        pieces = [pl.lit(opening), parts_expr, pl.lit("]}]" + _members(static) + "}}")]
    else:
        shared = {k: v for k, v in static.items() if snake(k) == "system_instruction"}
        fallback = _members(shared) if shared else ""
        per_row = pl.concat_str(
            [
                pl.lit(',"system_instruction":{"parts":['),
                _text_part(system_instruction),
                pl.lit("]}"),
            ]
        )
        sys_piece = (
            pl.when(system_instruction.is_not_null()).then(per_row).otherwise(pl.lit(fallback))
        )
        pieces = [
            pl.lit(opening),
            parts_expr,
            pl.lit("]}]" + _members(static, drop="system_instruction")),
            sys_piece,
            pl.lit("}}"),
        ]
    return _collect(frame, keys, pieces, hash_prefix, extra)


def build_embed_lines(
    frame: pl.DataFrame,
    *,
    text: pl.Expr,
    keys: pl.Expr,
    static: Mapping[str, Any],
    hash_prefix: str | None = None,
) -> pl.DataFrame:
    """Keyed ``embedContent`` request lines:
    ``{"key":..,"request":{"content":{"parts":[{"text":..}]},..}}``.

    ``static`` holds the fields shared by every request (``taskType``, ``outputDimensionality``,
    ...).
    """
    pieces = [
        pl.lit(',"request":{"content":{"parts":['),
        _text_part(text),
        pl.lit("]}" + _members(static) + "}}"),
    ]
    return _collect(frame, keys, pieces, hash_prefix)


_TMP = "__gembatch_requests_"  # prefix of the helper columns put next to the input while building


def _collect(
    frame: pl.DataFrame,
    keys: pl.Expr,
    pieces: list[pl.Expr],
    hash_prefix: str | None = None,
    extra: Mapping[str, pl.Series] | None = None,
) -> pl.DataFrame:
    """The ``key``, ``line`` (and ``hash``) frame: one pass of the streaming engine, which encodes
    the rows on every core, morsel by morsel (helper series are columns, not literals, for that)."""
    key = frame.lazy().select(keys.cast(pl.Utf8).alias("key")).collect().to_series()
    if len(key) != frame.height:
        raise InputError(
            f"The key expression {keys} gives {len(key)} values for {frame.height} rows."
        )
    key_col = f"{_TMP}key"
    line = pl.concat_str([_key_head(key, pl.col(key_col)), *pieces])
    columns = [pl.col(key_col).alias("key"), line.alias("line")]
    if hash_prefix is not None:  # the body is everything after the key: the request, canonical
        columns.append(
            hashing.hash_expr(pl.concat_str([pl.lit(hash_prefix), *pieces])).alias("hash")
        )
    helpers = [key.alias(key_col), *(series.alias(name) for name, series in (extra or {}).items())]
    return frame.with_columns(helpers).lazy().select(columns).collect(engine="streaming")


def answer_lines(keys: pl.Series, responses: pl.Series) -> pl.Series:
    """Result lines ``{"key":<key>,"response":<response>}`` (``responses`` holds raw JSON
    objects)."""
    frame = pl.DataFrame({"key": keys.cast(pl.Utf8), "response": responses})
    return frame.select(
        pl.concat_str(
            [_key_head(frame["key"]), pl.lit(',"response":'), pl.col("response"), pl.lit("}")]
        ).alias("line")
    ).to_series()


def request_bytes(lines: pl.DataFrame) -> pl.Series:
    """The size of each request in the JSONL file: the line's UTF-8 bytes plus its newline
    (Int64)."""
    return (lines.get_column("line").str.len_bytes().cast(pl.Int64) + 1).alias("request_bytes")


def write_jsonl(lines: pl.DataFrame | pl.Series, file: IO[bytes]) -> None:
    """Write each line followed by a newline to a binary file object (a multi-threaded polars
    writer).

    Lines never contain a raw newline (JSON escapes it), so the CSV writer without quoting writes
    them verbatim; this is ~10x faster than joining the lines into one Python string.
    """
    series = lines.get_column("line") if isinstance(lines, pl.DataFrame) else lines
    if len(series):
        series.to_frame("line").write_csv(file, include_header=False, quote_style="never")
