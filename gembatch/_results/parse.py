"""Result lines -> Arrow-typed columns (text, tokens, status, error; or embeddings), in bulk.

Takes a Series of lines, a JSONL payload (bytes), or the path of a local JSONL file, which it reads
memory-mapped (the fastest way in; it does no other I/O). Lines are decoded under an explicit schema
(never inferred: inference from the first lines silently drops ``error`` when errors come late), by
Arrow's multi-threaded JSON reader: on the nested response schema it needs half the CPU of
``str.json_decode``. Lines that do not decode are found by bisection, so the good lines are still
decoded in bulk; they become rows with status ``error``.

>>> import polars as pl
>>> lines = pl.Series(['{"key":"0","response":{"candidates":[{"content":{"parts":[{"text":"hi"}]},'
...                    '"finishReason":"STOP"}]}}'])
>>> parse_generate_lines(lines).select("key", "text", "status").row(0)
('0', 'hi', 'ok')
"""

from __future__ import annotations

import contextlib
import io
import json
import mmap
import os
import re
from dataclasses import dataclass
from typing import Any, TypeAlias

import polars as pl
import pyarrow as pa
import pyarrow.json as pa_json

from .codes import CODE_NAMES

__all__ = [
    "EMBED_RESULT_SCHEMA",
    "GENERATE_COLUMNS",
    "GENERATE_RESULT_SCHEMA",
    "decode_json",
    "embed_columns",
    "lines_from_bytes",
    "parse_embed_lines",
    "parse_generate_lines",
]

Payload = bytes | bytearray | memoryview  # a JSONL file's content
_I64, _STR = pl.Int64(), pl.String()
_ERROR = pl.Struct({"code": _I64, "message": _STR, "status": _STR})
_PART = pl.Struct({"text": _STR, "thought": pl.Boolean()})
_CANDIDATE = pl.Struct(
    {
        "content": pl.Struct({"parts": pl.List(_PART)}),
        "finishReason": _STR,
    }
)
_USAGE_FIELDS = {
    "prompt_tokens": "promptTokenCount",
    "output_tokens": "candidatesTokenCount",
    "thoughts_tokens": "thoughtsTokenCount",
    "cached_tokens": "cachedContentTokenCount",
    "total_tokens": "totalTokenCount",
}
_USAGE = pl.Struct({wire: _I64 for wire in _USAGE_FIELDS.values()})
_RESPONSE = pl.Struct(
    {
        "candidates": pl.List(_CANDIDATE),
        "usageMetadata": _USAGE,
        "modelVersion": _STR,
        "promptFeedback": pl.Struct({"blockReason": _STR}),
    }
)

#: The decode schema of a generateContent result line (only the fields gembatch reads).
GENERATE_RESULT_SCHEMA = pl.Schema({"key": _STR, "response": _RESPONSE, "error": _ERROR})
#: The decode schema of an embedContent result line.
EMBED_RESULT_SCHEMA = pl.Schema(
    {
        "key": _STR,
        "response": pl.Struct({"embedding": pl.Struct({"values": pl.List(pl.Float32())})}),
        "error": _ERROR,
    }
)
_STATUS_COLUMNS = {
    "status": _STR,
    "error_code": pl.Int32(),
    "error_status": _STR,
    "error_message": _STR,
}
#: The columns of :func:`parse_generate_lines`, in order (``texts`` is added on request).
GENERATE_COLUMNS = pl.Schema(
    {
        "key": _STR,
        "text": _STR,
        "finish_reason": _STR,
        **{name: _I64 for name in _USAGE_FIELDS},
        "model_version": _STR,
        **_STATUS_COLUMNS,
    }
)


def embed_columns(dimensions: int | None) -> pl.Schema:
    """The columns of :func:`parse_embed_lines` for ``dimensions`` (List when None)."""
    vector = pl.List(pl.Float32()) if dimensions is None else pl.Array(pl.Float32(), dimensions)
    return pl.Schema({"key": _STR, "embedding": vector, **_STATUS_COLUMNS})


# ------------------------------------------------------------------------------------------
# decoding
_CSV: dict[str, Any] = {  # one column per line: no quoting, a separator valid JSON never holds raw
    "has_header": False,
    "separator": "\x1f",
    "quote_char": None,
    "new_columns": ["line"],
    "schema": {"line": pl.Utf8},
    "encoding": "utf8-lossy",
    "raise_if_empty": False,
}


def _read_lines(source: bytes | str) -> pl.Series:
    """Every line of ``source`` (a payload, or a local file path read memory-mapped), blank ones
    kept.

    Uses polars' multi-threaded CSV reader with no quoting and a separator byte that valid JSON
    never holds raw; falls back to a plain split when some (malformed) line does hold that byte.
    """
    try:  # a path is literal: glob=False (a run directory named "run[1]" is not a pattern)
        if isinstance(source, bytes):
            frame = pl.read_csv(source, empty_string_is_null=False, **_CSV)
        else:
            frame = pl.read_csv(source, empty_string_is_null=False, glob=False, **_CSV)
        return frame.get_column("line")
    except pl.exceptions.PolarsError:
        if isinstance(source, str):
            with open(source, "rb") as fh:
                source = fh.read()
        text = source.decode("utf-8", errors="replace")
        return pl.Series("line", [text]).str.split("\n").explode()


def _non_blank(lines: pl.Series) -> pl.Series:
    if bool(lines.str.ends_with("\r").any()):
        lines = lines.str.strip_suffix("\r")
    return lines.filter(lines.is_not_null() & (lines.str.len_bytes() > 0)).alias("line")


def lines_from_bytes(data: Payload | os.PathLike[str]) -> pl.Series:
    """The non-blank lines of a JSONL payload (or local file) as a Utf8 Series (``\\r\\n``
    tolerated,
    bad UTF-8 replaced).

    Uses polars' multi-threaded CSV reader (~20x faster than splitting a decoded Python string).
    """
    if isinstance(data, os.PathLike):
        path = os.fspath(data)
        return (
            _non_blank(_read_lines(path))
            if os.path.getsize(path)
            else pl.Series("line", [], dtype=pl.Utf8)
        )
    if not len(data):
        return pl.Series("line", [], dtype=pl.Utf8)
    return _non_blank(_read_lines(data if isinstance(data, bytes) else bytes(data)))


def _arrow_type(dtype: Any) -> pa.DataType:
    """The pyarrow type the JSON reader fills for ``dtype`` (it takes no large_list)."""
    if isinstance(dtype, pl.Struct):
        return pa.struct([pa.field(f.name, _arrow_type(f.dtype)) for f in dtype.fields])
    if isinstance(dtype, pl.List):
        return pa.list_(_arrow_type(dtype.inner))
    simple = {
        pl.Utf8: pa.string(),
        pl.Int64: pa.int64(),
        pl.Int32: pa.int32(),
        pl.Float32: pa.float32(),
        pl.Float64: pa.float64(),
        pl.Boolean: pa.bool_(),
    }
    return simple[dtype.base_type()]


Lines: TypeAlias = "bytes | mmap.mmap | pa.Buffer"  # whole lines, each ending in a newline


def _read_json(data: Lines, arrow_schema: pa.Schema, block_size: int) -> pa.Table:
    """Decode ``data`` with Arrow's multi-threaded JSON reader, ``_CHUNK`` bytes (cut at a line
    end) at a time. A memory-mapped file gives back the pages of each chunk once it is decoded, so
    the file
    never becomes resident memory as a whole (its pages would count in the process's RSS)."""
    read_options = pa_json.ReadOptions(block_size=block_size, use_threads=True)
    parse_options = pa_json.ParseOptions(
        explicit_schema=arrow_schema, unexpected_field_behavior="ignore"
    )
    if isinstance(data, pa.Buffer):  # lines gathered from a Series: already in memory, one go
        return pa_json.read_json(
            pa.BufferReader(data), read_options=read_options, parse_options=parse_options
        )
    mapped = isinstance(data, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED")
    tables, start, size = [], 0, len(data)
    chunk = max(_CHUNK, 4 * block_size)
    with memoryview(data) as view:
        while start < size:
            cut = data.find(b"\n", min(start + chunk, size) - 1)
            stop = size if cut < 0 else cut + 1
            piece = pa.py_buffer(view[start:stop])
            tables.append(
                pa_json.read_json(
                    pa.BufferReader(piece), read_options=read_options, parse_options=parse_options
                )
            )
            del piece
            if mapped:
                first = start - start % mmap.PAGESIZE
                data.madvise(mmap.MADV_DONTNEED, first, stop - first)  # type: ignore[union-attr]
            start = stop
    return pa.concat_tables(tables)


def _arrow_schema(schema: pl.Schema) -> pa.Schema:
    return pa.schema([pa.field(name, _arrow_type(dtype)) for name, dtype in schema.items()])


@dataclass(frozen=True)
class _Shape:
    """What one pass over the lines tells: all ``{...}``, how many, their total and largest size."""

    objects: bool
    count: int
    total: int
    largest: int

    @staticmethod
    def _aggregates() -> list[pl.Expr]:
        line, size = pl.col("line"), pl.col("line").str.len_bytes()
        return [
            (line.str.starts_with("{") & line.str.ends_with("}"))
            .fill_null(False)
            .all()
            .alias("objects"),
            pl.len().alias("count"),
            size.sum().alias("total"),
            size.max().alias("largest"),
        ]

    @classmethod
    def _make(cls, row: tuple[Any, ...]) -> _Shape:
        objects, count, total, largest = row
        return cls(bool(objects) or not count, int(count), int(total or 0), int(largest or 0))

    @classmethod
    def of(cls, lines: pl.Series) -> _Shape:
        return cls._make(
            lines.alias("line").to_frame().lazy().select(cls._aggregates()).collect().row(0)
        )

    @classmethod
    def scan(cls, source: bytes | str) -> _Shape | None:
        """The shape of every raw line of a payload or local file, streamed (the lines are never
        held
        in memory); None when the lines cannot be split that way."""
        try:
            return cls._make(
                (
                    pl.scan_csv(io.BytesIO(source), **_CSV)
                    if isinstance(source, bytes)
                    else pl.scan_csv(source, glob=False, **_CSV)
                )
                .select(cls._aggregates())
                .collect(engine="streaming")
                .row(0)
            )
        except pl.exceptions.PolarsError:
            return None


def _bulk_from_lines(
    lines: pl.Series, schema: pl.Schema, shape: _Shape | None = None, *, try_arrow: bool = True
) -> pl.DataFrame:
    """Decode ``lines`` under ``schema``; a ``bad`` column marks lines that do not decode (their
    fields
    null).

    All lines go to Arrow's JSON reader at once (strict: wire types only). Should it refuse, polars'
    more lenient decoder takes the lines instead, in bulk, and bisection finds the ones it refuses
    too. Only lines that look like objects are decoded (a line starting with ``null`` crashes the
    reader).
    """
    shape = shape or _Shape.of(lines)
    shaped = None if shape.objects else lines.str.starts_with("{") & lines.str.ends_with("}")
    good = lines if shaped is None else lines.filter(shaped)
    decoded = None
    if try_arrow:
        largest = shape.largest if shaped is None else _Shape.of(good).largest
        decoded = _arrow_decode(_payload(good), len(good), schema, largest)
    if decoded is None:
        structs, problem = decode_json(good, pl.Struct(schema))
        decoded = structs.struct.unnest().with_columns(problem.is_not_null().alias("bad"))
    if shaped is None:
        return decoded
    position = (shaped.cum_sum() - 1).cast(pl.UInt32)
    where = pl.select(pl.when(pl.lit(shaped)).then(pl.lit(position))).to_series()
    return decoded.select(pl.all().gather(where)).with_columns(pl.col("bad").fill_null(True))


def _arrow_decode(data: Lines, count: int, schema: pl.Schema, largest: int) -> pl.DataFrame | None:
    """``count`` lines (each a ``{...}`` and a newline) decoded by Arrow's JSON reader, or None if
    it
    refuses any of them."""
    if not count:
        return pl.DataFrame(schema={**schema, "bad": pl.Boolean})
    try:
        table = _read_json(data, _arrow_schema(schema), max(_BLOCK, largest + 2))
    except (pa.ArrowException, ValueError):
        return None
    if table.num_rows != count:  # e.g. two objects on one line
        return None
    if len(data) >= _CHUNK:  # a big file's scratch memory, back to the system; a small one's is
        pa.default_memory_pool().release_unused()  # kept for the next (given back, it is faulted
    frame = pl.from_arrow(table, rechunk=False)  # in afresh: +48 k page faults per 400 MB)
    assert isinstance(frame, pl.DataFrame)
    return frame.cast(schema).with_columns(pl.lit(False).alias("bad"))


def _payload(lines: pl.Series) -> pa.Buffer:
    """Every line followed by a newline, contiguous: the values buffer of a large_string array."""
    if not len(lines):
        return pa.py_buffer(b"")
    arrow = pl.select(pl.concat_str([pl.lit(lines), pl.lit("\n")])).to_series().to_arrow()
    arrow = arrow.combine_chunks() if isinstance(arrow, pa.ChunkedArray) else arrow
    if not pa.types.is_large_string(arrow.type):
        arrow = arrow.cast(pa.large_string())
    offsets = memoryview(arrow.buffers()[1]).cast("q")
    start, stop = offsets[arrow.offset], offsets[arrow.offset + len(arrow)]
    return arrow.buffers()[2].slice(start, stop - start)


_BLOCK = 4 << 20  # bytes per block of the JSON reader (a line must fit in one)
_CHUNK = 64 << 20  # bytes per call of the JSON reader (its blocks are decoded on all cores)
_KEY_RE = re.compile(r'"key"\s*:\s*("(?:[^"\\]|\\.)*")')


def _salvage_key(line: str) -> str | None:
    found = _KEY_RE.search(line)
    if not found:
        return None
    try:
        key = json.loads(found.group(1))
        key.encode("utf-8")  # a lone surrogate escape cannot be a polars string
    except (ValueError, AttributeError):  # UnicodeEncodeError is a ValueError
        return None
    return key if isinstance(key, str) else None


def _decode_lines(lines: pl.Series | Payload | os.PathLike[str], schema: pl.Schema) -> pl.DataFrame:
    """Result lines decoded: the fields of ``schema`` plus ``malformed`` (a message, null when
    fine).

    A line is malformed when it is not a JSON object of the schema's types, or has neither
    ``response`` nor ``error``; its key is salvaged from the text when possible.

    A payload (or a local file, memory-mapped) that is exactly one ``{...}`` per line is decoded in
    place, without ever splitting it into a Series of lines; anything else takes the general way.
    """
    frame, refused = None, False
    if isinstance(lines, pl.Series):
        text: pl.Series | None = lines.cast(pl.Utf8).drop_nulls()
    else:
        frame, refused = _decode_in_place(lines, schema)
        text = None if frame is not None else lines_from_bytes(lines)
    if frame is None:
        assert text is not None
        shape = _Shape.of(text)
        if not shape.objects:
            text = text.str.strip_chars()
            text = text.filter(text != "")
            shape = _Shape.of(text)
        frame = _bulk_from_lines(text, schema, shape, try_arrow=not refused)
    bad = pl.col("bad").fill_null(False)
    shapeless = bad | (pl.col("response").is_null() & pl.col("error").is_null())
    if not bool(frame.select(shapeless.any()).item()):
        return frame.drop("bad").with_columns(pl.lit(None, pl.Utf8).alias("malformed"))
    if text is None:  # decoded in place: the lines are exactly the rows
        text = lines_from_bytes(lines)  # type: ignore[arg-type]
    frame = frame.with_columns(
        pl.when(shapeless)
        .then(pl.lit("malformed result line: ") + pl.lit(text).str.slice(0, 80))
        .alias("malformed")
    )
    undecoded = frame.select(bad).to_series().arg_true()
    if len(undecoded):
        keys = pl.Series([_salvage_key(text[i]) for i in undecoded.to_list()], dtype=pl.Utf8)
        frame = frame.with_columns(frame.get_column("key").scatter(undecoded, keys))
    return frame.drop("bad")


def _decode_in_place(
    lines: Payload | os.PathLike[str], schema: pl.Schema
) -> tuple[pl.DataFrame | None, bool]:
    """A payload or local file decoded by Arrow straight from its bytes (a file memory-mapped), when
    every line is a ``{...}`` (no blank line, no ``\\r``, nothing replaced) and Arrow takes them
    all;
    else None. The flag is True when Arrow was tried and refused (no use trying it again)."""
    data: bytes | mmap.mmap
    if isinstance(lines, os.PathLike):
        path = os.fspath(lines)
        size = os.path.getsize(path)
        if not size:
            return None, False
        shape = _Shape.scan(path)
        with open(path, "rb") as fh:
            data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    else:
        data = lines if isinstance(lines, bytes) else bytes(lines)
        size = len(data)
        if not size:
            return None, False
        shape = _Shape.scan(data)
    try:
        if shape is None or not shape.objects:
            return None, False
        ends = data[size - 1 :] == b"\n"
        if shape.total + shape.count != size + (0 if ends else 1):
            return None, False  # some line was changed on the way (bad UTF-8 replaced)
        frame = _arrow_decode(data if ends else data[:] + b"\n", shape.count, schema, shape.largest)
        return frame, frame is None
    finally:
        if isinstance(data, mmap.mmap):
            with contextlib.suppress(
                BufferError
            ):  # should Arrow still hold a view, unmapped when freed
                data.close()


def decode_json(texts: pl.Series, dtype: pl.DataType) -> tuple[pl.Series, pl.Series]:
    """``texts`` decoded under ``dtype`` by polars (any JSON value, text over several lines), and
    per
    row the decoder's message for rows that do not decode (null when fine).

    The rows are decoded in bulk; a failing block is halved until the failing rows are found (one by
    one below 16 rows), so a few bad rows cost a few dozen extra calls.
    """
    frame = texts.alias("t").to_frame()
    problems: dict[int, str] = {}
    pieces: list[pl.Series] = []

    def attempt(start: int, length: int) -> pl.Series | str:
        try:  # the lazy engine decodes large blocks on all cores; tiny ones are cheaper eagerly
            out = (
                texts.slice(start, length).str.json_decode(dtype)
                if length <= 16
                else frame.slice(start, length)
                .lazy()
                .select(pl.col("t").str.json_decode(dtype))
                .collect()
                .to_series()
            )
        except pl.exceptions.PolarsError as exc:
            return _first_line(str(exc))
        return out if len(out) == length else "no JSON value"  # blank text gives no row at all

    def walk(start: int, length: int) -> None:
        out = attempt(start, length)
        if isinstance(out, pl.Series):
            pieces.append(out)
        elif length == 1:
            problems[start] = out
            pieces.append(pl.Series("t", [None], dtype=dtype))
        elif length <= 16:
            for i in range(start, start + length):
                walk(i, 1)
        else:
            walk(start, length // 2)
            walk(start + length // 2, length - length // 2)

    if len(texts):
        walk(0, len(texts))
    decoded = pl.concat(pieces) if pieces else pl.Series("t", [], dtype=dtype)
    problem = pl.Series("problem", [None] * len(texts), dtype=pl.Utf8)
    if problems:
        problem = problem.scatter(list(problems), list(problems.values()))
    return decoded.alias("decoded"), problem


def _first_line(message: str) -> str:
    text = message.strip().splitlines()[0] if message.strip() else "cannot decode"
    return re.sub(r"^error deserializing JSON: ", "", text)[:200]


# ------------------------------------------------------------------------------------------
# generate
def _parts_text(frame: pl.DataFrame, parts: pl.Expr) -> pl.Expr:
    """The non-thought parts' texts of a List(part) expression, concatenated; null when there is
    none.

    When no row of ``frame`` has several parts or a thought part, it is simply the first part's
    text.
    """
    part = pl.element().struct
    # with at most one part per row, the first parts are all the parts (no list.eval pass needed)
    single, thought = (
        frame.lazy()
        .select(
            (parts.list.len().max().fill_null(0) <= 1).alias("single"),
            parts.list.first().struct.field("thought").fill_null(False).any().alias("thought"),
        )
        .collect()
        .row(0)
    )
    if single and not thought:
        return parts.list.first().struct.field("text")
    texts = parts.list.eval(
        part.field("text").filter(~part.field("thought").fill_null(False)).drop_nulls()
    )
    return pl.when(texts.list.len() > 0).then(texts.list.join(""))


def _status(
    is_ok: pl.Expr, error: pl.Expr, fallback_message: pl.Expr, fallback_status: pl.Expr
) -> list[pl.Expr]:
    """``status``, ``error_code``, ``error_status`` and ``error_message`` from the decoded ``error``
    struct (a google.rpc.Status: gRPC codes in batch results, HTTP codes in some clients' fixtures;
    ``error_status`` names either), or from ``fallback_*`` for a row that failed otherwise."""
    code = error.struct.field("code")
    given = error.struct.field("status")
    status_name = pl.when(given.str.len_bytes() > 0).then(given)  # "" names nothing
    named = pl.coalesce(
        status_name,
        code.replace_strict(CODE_NAMES, default=None, return_dtype=pl.Utf8),
        pl.lit("UNKNOWN"),
    )
    message = error.struct.field("message")
    api_message = (
        pl.concat_str([status_name, pl.lit(": "), message], ignore_nulls=False)
        .fill_null(message)
        .fill_null(status_name)
        .fill_null(pl.lit("the service returned an error"))
    )
    has_error = error.is_not_null()
    return [
        pl.when(has_error)
        .then(pl.lit("error"))
        .when(is_ok)
        .then(pl.lit("ok"))
        .otherwise(pl.lit("error"))
        .alias("status"),
        pl.when(has_error).then(code).cast(pl.Int32, strict=False).alias("error_code"),
        pl.when(has_error)
        .then(named)
        .when(is_ok)
        .then(pl.lit(None, pl.Utf8))
        .otherwise(fallback_status)
        .alias("error_status"),
        pl.when(has_error)
        .then(api_message)
        .when(is_ok)
        .then(pl.lit(None, pl.Utf8))
        .otherwise(fallback_message)
        .alias("error_message"),
    ]


def parse_generate_lines(
    lines: pl.Series | Payload | os.PathLike[str], *, all_candidates: bool = False
) -> pl.DataFrame:
    """One row per non-blank result line, with the columns of :data:`GENERATE_COLUMNS`.

    ``lines`` is a Utf8 Series of result lines, the JSONL payload itself (bytes: decoded in place),
    or the path of a local JSONL file (a ``pathlib.Path``: memory-mapped and decoded in place, the
    fastest way in).

    ``text`` concatenates the non-thought parts of candidate 0 (null without content). A blocked
    prompt (no candidates) and an ``error`` line have status ``error``; so has a malformed line
    (message ``malformed result line: ...``, key salvaged when possible). With ``all_candidates`` a
    ``texts`` List(Utf8) column holds the text of every candidate.
    """
    frame = _decode_lines(lines, GENERATE_RESULT_SCHEMA)
    response, error = pl.col("response"), pl.col("error")
    candidates = response.struct.field("candidates")
    first = candidates.list.first()
    usage = response.struct.field("usageMetadata")
    has_response = response.is_not_null() & error.is_null()
    has_candidates = candidates.list.len().fill_null(0) > 0
    block = response.struct.field("promptFeedback").struct.field("blockReason")
    fallback = (
        pl.when(pl.col("malformed").is_not_null())
        .then(pl.col("malformed"))
        .when(block.is_not_null())
        .then(pl.lit("prompt blocked: ") + block)
        .otherwise(pl.lit("the response has no candidates"))
    )
    fallback_status = (
        pl.when(pl.col("malformed").is_not_null())
        .then(pl.lit("MALFORMED_RESULT"))
        .when(block.is_not_null())
        .then(pl.lit("PROMPT_BLOCKED"))
        .otherwise(pl.lit("NO_CANDIDATES"))
    )
    columns = [
        pl.col("key"),
        pl.when(has_response)
        .then(_parts_text(frame, first.struct.field("content").struct.field("parts")))
        .alias("text"),
        pl.when(has_response).then(first.struct.field("finishReason")).alias("finish_reason"),
        *[
            pl.when(has_response).then(usage.struct.field(wire).fill_null(0)).alias(name)
            for name, wire in _USAGE_FIELDS.items()
        ],
        pl.when(has_response).then(response.struct.field("modelVersion")).alias("model_version"),
        *_status(
            has_response & has_candidates & pl.col("malformed").is_null(),
            error,
            fallback,
            fallback_status,
        ),
    ]
    # one chunk per column (the decoder gives one per block): a gather, as in the join, on a column
    # of
    # many chunks is several times slower
    out = frame.lazy().select(columns).collect().cast(GENERATE_COLUMNS).rechunk()
    if all_candidates:
        out = out.with_columns(_all_texts(frame))
    return out


def _all_texts(frame: pl.DataFrame) -> pl.Series:
    """The text of every candidate of every row (List(Utf8); null for rows without a response)."""
    candidates = frame.select(
        pl.int_range(pl.len(), dtype=pl.UInt32).alias("row"),
        pl.col("response").struct.field("candidates").alias("c"),
    )
    long = candidates.explode("c")
    parts = pl.col("c").struct.field("content").struct.field("parts")
    long = long.with_columns(_parts_text(long, parts).alias("t"))
    grouped = (
        long.filter(pl.col("c").is_not_null())
        .group_by("row", maintain_order=True)
        .agg(pl.col("t").alias("texts"))
    )
    joined = candidates.select("row").join(grouped, on="row", how="left", maintain_order="left")
    has = frame.get_column("response").is_not_null()
    return joined.select(
        pl.when(pl.lit(has)).then(pl.col("texts")).cast(pl.List(pl.Utf8)).alias("texts")
    ).to_series()


# ----------------------------------------------------------------------------------------------
# embed
def parse_embed_lines(
    lines: pl.Series | Payload | os.PathLike[str], *, dimensions: int | None
) -> pl.DataFrame:
    """One row per non-blank embed result line: ``key``, ``embedding`` (Array(Float32, dimensions),
    or List(Float32) when ``dimensions`` is None), ``status``, ``error_code``, ``error_status``,
    ``error_message``.

    An embedding of the wrong length is an ``error`` row (its vector null).
    """
    frame = _decode_lines(lines, EMBED_RESULT_SCHEMA)
    values = pl.col("response").struct.field("embedding").struct.field("values")
    has_values = pl.col("error").is_null() & values.is_not_null() & pl.col("malformed").is_null()
    fits = pl.lit(True) if dimensions is None else values.list.len() == dimensions
    fallback = (
        pl.when(pl.col("malformed").is_not_null())
        .then(pl.col("malformed"))
        .when(values.is_null())
        .then(pl.lit("the response has no embedding"))
        .otherwise(
            pl.format(
                "the embedding has {} values, expected {}", values.list.len(), pl.lit(dimensions)
            )
        )
    )
    fallback_status = (
        pl.when(pl.col("malformed").is_not_null())
        .then(pl.lit("MALFORMED_RESULT"))
        .otherwise(pl.lit("BAD_EMBEDDING"))
    )
    schema = embed_columns(dimensions)
    vector = pl.when(has_values & fits).then(values)
    out = (
        frame.lazy()
        .select(
            pl.col("key"),
            vector.alias("embedding"),
            *_status(has_values & fits, pl.col("error"), fallback, fallback_status),
        )
        .collect()
    )
    return out.cast(schema).rechunk()
