"""Pure: JSON Schema -> polars dtype (every schema maps), and structured answers -> typed values.

The mapping (:func:`response_dtype`) takes JSON Schema as pydantic writes it or the API's OpenAPI
subset (UPPERCASE types, ``nullable``, ``propertyOrdering``), with ``$ref``\\ s resolved and a
recursive schema refused (:class:`ConfigError` naming the path):

=================================================  ===========================================
schema                                             dtype
=================================================  ===========================================
object with ``properties``                         Struct, fields in ``propertyOrdering`` (else
                                                   as written)
object without properties, ``dict[str, X]``        Utf8: the value's compact JSON text
(``additionalProperties``), ``Any`` / ``{}`` /
``true``, a union holding objects or arrays,
``allOf`` of several, variadic tuples
tuple (``prefixItems``, fixed length)              Struct with fields ``"0"``, ``"1"``, ...
array with ``items``                               List(items' dtype); List(Utf8 JSON) for
                                                   ``list[Any]``
string / ``format: date`` / ``format: date-time``  Utf8 / Date / Datetime("us", "UTC")
(``uuid``, ``email``, enums of strings: Utf8)
integer / number / boolean                         Int64 / Float64 / Boolean
integer whose bounds (``minimum``, ``maximum``,     Utf8: the value's JSON text (exact; Int64
``enum``, ...) lie beyond int64                    cannot hold it)
enum / const                                       the dtype of its values' type
union of scalars                                   one dtype if all agree, Float64 for integer +
                                                   number, else Utf8 (the value's text)
pydantic Decimal (``anyOf [number, string with     Float64
pattern]``)
``Optional[X]`` (``anyOf [X, null]``,              X's dtype (null when absent or null)
``nullable``)
=================================================  ===========================================

No Struct is ever empty, so every parsed column can be written to Parquet. JSON text columns hold
null for a JSON null or a missing value, and strings JSON-quoted (``"7"`` vs ``7`` stay apart).
An answer value its column's type cannot hold (an integer beyond Int64 where the schema sets no
such bound, a number beyond float64) is an error naming its JSON path, never a silent null.
Enums stay Utf8 rather than ``pl.Enum`` (a value outside the enum is ``validate``'s to report,
not a decoding failure). pydantic 2.14 writes ``Decimal`` as ``anyOf [number, string]`` without a
pattern, which ``float | str`` also writes: that union is Utf8, the value's text, losing nothing.

>>> import polars as pl
>>> schema = {"type": "object", "properties": {"n": {"type": "integer"},
...                                           "extra": {"type": "object"}}}
>>> response_dtype(schema)
Struct({'n': Int64, 'extra': String})
>>> parsed, errors = parse_structured(pl.Series(['{"n": 3, "extra": {"a": [1]}}', "prose"]), schema)
>>> parsed.to_list(), errors.to_list()
([{'n': 3, 'extra': '{"a":[1]}'}, None], [None, 'not a JSON object: prose'])
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

import polars as pl

from .._build.schemas import ANNOTATIONS, inline_refs, to_json_schema
from ..exceptions import ConfigError
from .parse import decode_json

__all__ = [
    "Shape",
    "clean_text",
    "normalise",
    "parse_structured",
    "polars_dtype_from_json_schema",
    "response_dtype",
    "shape_of",
]

Kind = Literal[
    "object",
    "tuple",
    "array",
    "string",
    "integer",
    "number",
    "boolean",
    "scalars",
    "decimal",
    "json",
]
_SCALAR_KINDS = frozenset({"string", "integer", "number", "boolean", "scalars"})
_FENCE = r"^\s*```[A-Za-z]*\s*\n?|\n?\s*```\s*$"


@dataclass(frozen=True)
class Shape:
    """One schema node as gembatch reads it: its kind, its dtype and its children.

    ``schema`` is the node's JSON Schema (``$ref``\\ s inlined; for ``Optional[X]``, X's schema);
    ``nullable`` says that null is one of its values; ``fields`` are an object's properties (a
    tuple's positions ``"0"``, ``"1"``, ...) in column order; ``items`` an array's element shape.
    """

    kind: Kind
    schema: Mapping[str, Any]
    nullable: bool = False
    fields: tuple[tuple[str, Shape], ...] = ()
    items: Shape | None = None
    scalar: pl.DataType | None = None  # the dtype of a union of scalars

    @property
    def dtype(self) -> pl.DataType:
        """The polars dtype of this node's values."""
        return self._dtype(final=True)

    @property
    def decode_dtype(self) -> pl.DataType:
        """The dtype JSON is decoded under (Decimal positions as Utf8, cast afterwards)."""
        return self._dtype(final=False)

    def _dtype(self, *, final: bool) -> pl.DataType:
        if self.kind in ("object", "tuple"):
            return pl.Struct({n: s._dtype(final=final) for n, s in self.fields})
        if self.kind == "array":
            assert self.items is not None
            return pl.List(self.items._dtype(final=final))
        if self.kind == "string":
            fmt = self.schema.get("format")
            return (
                pl.Date()
                if fmt == "date"
                else pl.Datetime("us", "UTC")
                if fmt == "date-time"
                else pl.Utf8()
            )
        if self.kind == "decimal":
            return pl.Float64() if final else pl.Utf8()
        if self.kind == "scalars":
            return self.scalar or pl.Utf8()
        return _SIMPLE.get(self.kind, pl.Utf8())

    @functools.cached_property
    def rewritten(self) -> bool:
        """Whether decoding needs values rewritten first (JSON text or tuple positions inside)."""
        if self.kind in ("json", "tuple"):
            return True
        return any(s.rewritten for _, s in self.fields) or bool(self.items and self.items.rewritten)


_SIMPLE: dict[str, pl.DataType] = {
    "integer": pl.Int64(),
    "number": pl.Float64(),
    "boolean": pl.Boolean(),
}


def normalise(schema: Any) -> Any:
    """``schema`` as plain JSON Schema: ``$ref``\\ s inlined (recursion refused), the OpenAPI
    subset's UPPERCASE types, ``nullable`` and string enums converted."""
    if not isinstance(schema, (Mapping, bool)):
        raise ConfigError(
            f"response schema must be a JSON Schema dict (got {type(schema).__name__})."
            "\nHint: pass a pydantic model, a type like list[Model], or a JSON Schema dict."
        )
    return to_json_schema(inline_refs(schema))


def shape_of(schema: Any) -> Shape:
    """The :class:`Shape` of ``schema`` (JSON Schema or the OpenAPI subset).

    >>> shape_of({"type": "array", "items": {"type": "string"}}).dtype
    List(String)
    """
    return _cached_shape(json.dumps(schema, sort_keys=False, default=repr))


@functools.lru_cache(maxsize=64)
def _cached_shape(text: str) -> Shape:
    return _shape(normalise(json.loads(text)), "#")


def response_dtype(schema: Any) -> pl.DataType:
    """The polars dtype that answers to ``schema`` are parsed to (the table in the module
    docstring).

    >>> response_dtype({"type": "object", "properties": {"n": {"type": "integer"}}})
    Struct({'n': Int64})
    >>> response_dtype({"type": "object", "additionalProperties": {"type": "integer"}})
    String
    """
    return shape_of(schema).dtype


#: The name this mapping had before it covered every schema.
polars_dtype_from_json_schema = response_dtype


def _shape(node: Any, at: str) -> Shape:
    if not isinstance(node, Mapping):  # true (anything) / false (nothing)
        return Shape("json", {}, nullable=node is True)
    body = {k: v for k, v in node.items() if k not in ANNOTATIONS}
    if not body:
        return Shape("json", node, nullable=True)
    for combo in ("anyOf", "oneOf"):
        if isinstance(body.get(combo), list):
            return _union(node, body, combo, at)
    if isinstance(body.get("allOf"), list):
        parts = body["allOf"]
        if len(parts) == 1 and set(body) == {"allOf"}:
            return _shape(parts[0], f"{at}/allOf/0")
        return Shape("json", node)
    kinds, nullable = _types(body)
    values = [body["const"]] if "const" in body else body.get("enum")
    if isinstance(values, list):
        if any(isinstance(v, (Mapping, list)) for v in values):
            return Shape("json", node, nullable=True)
        nullable = nullable or None in values
        if kinds is None:
            kinds = _value_kinds([v for v in values if v is not None])
    if kinds is None:
        if "properties" in body:
            kinds = {"object"}
        elif "items" in body or "prefixItems" in body:
            kinds = {"array"}
        else:
            return Shape("json", node, nullable=True)
    if len(kinds) != 1:
        if kinds and kinds <= _SCALAR_KINDS:
            dtype = _union_dtype([Shape(k, {}).dtype for k in sorted(kinds)])  # type: ignore[arg-type]
            return Shape("scalars", node, nullable, scalar=dtype)
        return Shape("json", node, nullable=True)
    kind = next(iter(kinds))
    if kind == "integer" and _beyond_int64(body, values):
        return Shape("json", node, nullable=True)
    if kind == "object":
        return _object(node, body, nullable, at)
    if kind == "array":
        return _array(node, body, nullable, at)
    return Shape(kind, node, nullable)  # type: ignore[arg-type]


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _whole_beyond_int64(value: Any) -> bool:
    """Whether ``value`` is a whole JSON number (``7``, ``1e20``) outside int64."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return False
    return not _INT64_MIN <= int(value) <= _INT64_MAX


def _beyond_int64(body: Mapping[str, Any], values: Any) -> bool:
    """Whether an integer node's bounds or listed values reach beyond int64 (its values would
    not fit an Int64 column)."""
    bounds = [body.get(k) for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")]
    listed = values if isinstance(values, list) else []
    return any(
        isinstance(b, (int, float))
        and not isinstance(b, bool)
        and math.isfinite(b)
        and not _INT64_MIN < b < _INT64_MAX
        for b in [*bounds, *listed]
    )


def _types(body: Mapping[str, Any]) -> tuple[set[str] | None, bool]:
    kind = body.get("type")
    if kind is None:
        return None, False
    kinds = {str(k).lower() for k in (kind if isinstance(kind, list) else [kind])}
    return kinds - {"null"}, "null" in kinds


def _value_kinds(values: list[Any]) -> set[str]:
    if not values:
        return set()
    if all(isinstance(v, bool) for v in values):
        return {"boolean"}
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return {"integer"}
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return {"number"}
    if all(isinstance(v, str) for v in values):
        return {"string"}
    return {"string", "number", "boolean"}


def _object(node: Mapping[str, Any], body: Mapping[str, Any], nullable: bool, at: str) -> Shape:
    props = body.get("properties")
    if not isinstance(props, Mapping) or not props:
        return Shape("json", node, nullable=True)
    order = node.get("propertyOrdering")
    names = list(props)
    if isinstance(order, list):
        names = [n for n in order if n in props] + [n for n in props if n not in order]
    fields = tuple((n, _shape(props[n], f"{at}/properties/{n}")) for n in names)
    return Shape("object", node, nullable, fields=fields)


def _array(node: Mapping[str, Any], body: Mapping[str, Any], nullable: bool, at: str) -> Shape:
    prefix = body.get("prefixItems")
    items = body.get("items")
    if isinstance(prefix, list):
        closed = items is False or (
            isinstance(body.get("maxItems"), int) and body["maxItems"] <= len(prefix)
        )
        if not closed or not prefix:
            return Shape("json", node, nullable=True)
        fields = tuple((str(i), _shape(s, f"{at}/prefixItems/{i}")) for i, s in enumerate(prefix))
        return Shape("tuple", node, nullable, fields=fields)
    inner = _shape(items if isinstance(items, Mapping) else True, f"{at}/items")
    return Shape("array", node, nullable, items=inner)


def _union(node: Mapping[str, Any], body: Mapping[str, Any], combo: str, at: str) -> Shape:
    branches = body[combo]
    kept = [b for b in branches if not _is_null(b)]
    nullable = len(kept) < len(branches)
    if set(body) != {combo} or not kept:
        return Shape("json", node, nullable=True)
    shapes = [_shape(b, f"{at}/{combo}/{branches.index(b)}") for b in kept]
    if len(shapes) == 1:
        return replace(shapes[0], nullable=nullable or shapes[0].nullable)
    if not all(s.kind in _SCALAR_KINDS for s in shapes):
        return Shape("json", node, nullable=True)
    nullable = nullable or any(s.nullable for s in shapes)
    kinds = sorted(s.kind for s in shapes)
    strings = [s for s in shapes if s.kind == "string"]
    if len(shapes) == 2 and kinds in (["number", "string"], ["integer", "string"]):
        if "pattern" in strings[0].schema:  # pydantic's Decimal
            return Shape("decimal", node, nullable)
    return Shape("scalars", node, nullable, scalar=_union_dtype([s.dtype for s in shapes]))


def _union_dtype(dtypes: list[pl.DataType]) -> pl.DataType:
    if all(d == dtypes[0] for d in dtypes):
        return dtypes[0]
    if all(d in (pl.Int64(), pl.Float64()) for d in dtypes):
        return pl.Float64()
    return pl.Utf8()


def _is_null(node: Any) -> bool:
    if not isinstance(node, Mapping):
        return False
    body = {k: v for k, v in node.items() if k not in ANNOTATIONS}
    return body in ({"type": "null"}, {"enum": [None]}, {"const": None})


# ------------------------------------------------------------------------------------------ parse
def clean_text(text: pl.Series) -> pl.Series:
    """Answer texts as JSON to decode: markdown code fences removed, whitespace stripped."""
    text = text.cast(pl.Utf8)
    fenced = text.str.starts_with("```") | text.str.ends_with("```")
    if bool(fenced.any()):
        text = pl.select(
            pl.when(pl.lit(fenced))
            .then(pl.lit(text).str.replace_all(_FENCE, ""))
            .otherwise(pl.lit(text))
        ).to_series()
    return text.str.strip_chars()


def parse_structured(text: pl.Series, schema: Any) -> tuple[pl.Series, pl.Series]:
    """Decode the JSON answers ``text`` under ``schema``: ``(parsed, errors)``.

    ``parsed`` has :func:`response_dtype`\\ (schema); ``errors`` (Utf8) holds, per row, why the
    text did not decode to it (null when it did, and for null text). Never raises for any text: a
    bad row's value is null. Markdown code fences are removed. The rows are decoded in bulk by
    polars; only schemas with JSON text or tuple positions first rewrite each row in Python (a
    ``json.loads`` and ``json.dumps`` per row). Whether the values also meet the schema's
    constraints (required, enum, ranges, ...) is :func:`gembatch._results.validate.validate`'s
    job.

    ``schema`` may also be a polars dtype (the earlier signature): the text is decoded under it;
    rows that do not fit are tried again with objects and arrays at Utf8 positions as their JSON
    text and arrays at Struct positions named "0", "1", ... as those fields (strings there stay
    unquoted: pass the schema for exact JSON text).
    """
    cleaned = clean_text(text)
    if isinstance(schema, pl.DataType):
        return _decode_dtype(cleaned, schema)
    shape = shape_of(schema)
    opener = {"object": "{", "array": "[", "tuple": "["}.get(shape.kind)
    rewrite = _rewriter(shape) if shape.rewritten else None
    parsed, errors = _decode(
        cleaned, shape.decode_dtype, shape.dtype, opener, rewrite, shape.nullable
    )
    return _unfit(cleaned, shape, parsed, errors)


#: Rows worth a look for numbers their column cannot hold: 19 digits or more, an exponent of two
#: digits or more (a prefilter: strings match too), or numbers the decoders refused.
_BIG_NUMBER = r"[0-9]{19}|[0-9][eE][+]?[0-9]{2}"
_REFUSED_NUMBER = r"InvalidNumber|Out of range float"
#: Paths named per row (the rest counted).
_SHOWN_MISFITS = 3


def _unfit(
    text: pl.Series, shape: Shape, parsed: pl.Series, errors: pl.Series
) -> tuple[pl.Series, pl.Series]:
    """``parsed`` and ``errors`` with the rows holding a number their column's type cannot hold
    (polars reads an integer beyond Int64 as null, and refuses a number beyond float64) made
    errors naming the JSON paths, their values null."""
    look = (
        (errors.is_null() & text.str.contains(_BIG_NUMBER)) | errors.str.contains(_REFUSED_NUMBER)
    ).fill_null(False)
    if not bool(look.any()):
        return parsed, errors
    rows = pl.Series(range(len(text)), dtype=pl.Int64).filter(look).to_list()
    found: dict[int, str] = {}
    for row, raw in zip(rows, text.filter(look).to_list()):
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError):
            continue
        paths = list(_misfits(doc, shape, "$"))
        if paths:
            more = len(paths) - _SHOWN_MISFITS
            found[row] = (
                "a value does not fit the parsed column's type: "
                + "; ".join(paths[:_SHOWN_MISFITS])
                + (f" (and {more} more)" if more > 0 else "")
            )
    if not found:
        return parsed, errors
    at = pl.Series(list(found), dtype=pl.Int64)
    unfit = pl.Series(range(len(text)), dtype=pl.Int64).is_in(at.implode())
    parsed = pl.select(pl.when(pl.lit(unfit)).then(None).otherwise(pl.lit(parsed))).to_series()
    return parsed, errors.scatter(at, pl.Series(list(found.values()), dtype=pl.Utf8))


def _misfits(value: Any, shape: Shape, path: str) -> Any:
    """The JSON paths under ``value`` whose numbers ``shape``'s dtype cannot hold, each with why
    (no value shown, so that the messages of many rows group)."""
    from .validate import join_path  # validate imports this module

    if shape.kind in ("object", "tuple") and isinstance(value, (dict, list)):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        fields = dict(shape.fields)
        for key, inner in items:
            step = join_path(path, key if isinstance(key, str) else int(key))
            field = fields.get(str(key))
            yield from (_misfits(inner, field, step) if field else _floats(inner, step))
    elif shape.kind == "array" and isinstance(value, list) and shape.items is not None:
        for i, inner in enumerate(value):
            yield from _misfits(inner, shape.items, join_path(path, i))
    elif shape.dtype == pl.Int64() and _whole_beyond_int64(value):
        yield f"{path}: an integer beyond the range of Int64"
    else:
        yield from _floats(value, path, exact_integers=shape.kind == "json")


def _floats(value: Any, path: str, *, exact_integers: bool = False) -> Any:
    """The JSON paths under ``value`` holding a number beyond float64 (1e400, read as infinity;
    an integer of 309 digits or more, unless JSON text keeps it: ``exact_integers``)."""
    from .validate import join_path

    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _floats(inner, join_path(path, key), exact_integers=exact_integers)
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield from _floats(inner, join_path(path, i), exact_integers=exact_integers)
    elif isinstance(value, float) and not math.isfinite(value):
        yield f"{path}: a number beyond the range of Float64"
    elif exact_integers or isinstance(value, bool) or not isinstance(value, int):
        return
    elif abs(value) >= 2**1024:
        yield f"{path}: a number beyond the range of Float64"


def _decode_dtype(text: pl.Series, dtype: pl.DataType) -> tuple[pl.Series, pl.Series]:
    opener = {pl.Struct: "{", pl.List: "[", pl.Array: "["}.get(dtype.base_type())
    if isinstance(dtype, pl.Struct) and [f.name for f in dtype.fields][:1] == ["0"]:
        opener = None  # a tuple's fields: an array or an object
    parsed, errors = _decode(text, dtype, dtype, opener, None, nullable=False)
    again = errors.str.starts_with("does not match the response schema").fill_null(False)
    if bool(again.any()):
        retry = pl.select(pl.when(pl.lit(again)).then(pl.lit(text)).otherwise(pl.lit("null")))
        fixed, still = _decode(retry.to_series(), dtype, dtype, opener, _fitter(dtype), False)
        parsed, errors = pl.select(
            pl.when(pl.lit(again)).then(pl.lit(fixed)).otherwise(pl.lit(parsed)).alias("parsed"),
            pl.when(pl.lit(again)).then(pl.lit(still)).otherwise(pl.lit(errors)).alias("errors"),
        )
    return parsed, errors


def _fitter(dtype: Any) -> Callable[[Any], Any]:
    """A rewrite of decoded JSON toward ``dtype``: objects and arrays at Utf8 positions as JSON
    text, arrays at Struct("0", "1", ...) positions as those fields."""
    if dtype == pl.Utf8():
        return lambda v: json_text(v) if isinstance(v, (dict, list)) else v
    if isinstance(dtype, pl.Struct):
        fields = {f.name: _fitter(f.dtype) for f in dtype.fields}
        positional = list(fields) == [str(i) for i in range(len(fields))]

        def struct(value: Any) -> Any:
            if positional and isinstance(value, list):
                value = {str(i): v for i, v in enumerate(value[: len(fields)])}
            if not isinstance(value, dict):
                return value
            return {k: fields[k](v) if k in fields else v for k, v in value.items()}

        return struct
    if isinstance(dtype, (pl.List, pl.Array)):
        inner = _fitter(dtype.inner)
        return lambda v: [inner(x) for x in v] if isinstance(v, list) else v
    return _same


def _decode(
    text: pl.Series,
    dtype: pl.DataType,
    final: pl.DataType,
    opener: str | None,
    rewrite: Callable[[Any], Any] | None,
    nullable: bool,
) -> tuple[pl.Series, pl.Series]:
    blank = text == ""
    closer = {"{": "}", "[": "]"}.get(opener or "")
    # text that cannot be an object (or array) is an error without a decoding attempt, so that many
    # bad rows (the model writing prose) do not make the bisection slow
    shapeless = (
        ~blank & (text != "null") & ~(text.str.starts_with(opener) & text.str.ends_with(closer))
        if opener is not None and closer is not None
        else pl.repeat(False, len(text), eager=True)
    )
    skip = (blank | shapeless).fill_null(True)
    source = pl.select(pl.when(pl.lit(skip)).then(pl.lit("null")).otherwise(pl.lit(text)))
    source_text = source.to_series()
    invalid = pl.Series("invalid", [None] * len(text), dtype=pl.Utf8)
    if rewrite is not None:
        source_text, invalid = _rewritten(source_text, rewrite)
    decoded, problem = decode_json(source_text, dtype)
    problem = pl.select(pl.coalesce(pl.lit(invalid), pl.lit(problem))).to_series()
    if dtype != final:
        decoded = decoded.cast(final, strict=False)
    null_json = (text == "null") & problem.is_null() & (not nullable)
    kind = "a JSON object" if opener == "{" else "a JSON array"
    errors = pl.select(
        pl.when(pl.lit(blank))
        .then(pl.lit("empty text, expected JSON"))
        .when(pl.lit(shapeless))
        .then(pl.lit(f"not {kind}: ") + pl.lit(text).str.slice(0, 80))
        .when(pl.lit(problem).str.contains("json parsing error|^not valid JSON"))
        .then(
            pl.lit("not valid JSON: ")
            + pl.lit(problem).str.replace(r"^(json parsing error|not valid JSON): ", "")
        )
        .when(pl.lit(problem).is_not_null())
        .then(
            pl.lit("does not match the response schema: ")
            + pl.lit(problem).str.replace(_DUMPED, "a value as ").str.replace(_CUT, "a value")
        )
        .when(pl.lit(null_json))
        .then(pl.lit("JSON null, expected a value"))
    ).to_series()
    return decoded.alias("parsed"), errors.cast(pl.Utf8).alias("errors")


#: polars' decoding message shows the value as Rust prints it (``value "Array([String(...)])" as
#: numeric``; cut at 200 characters): the value goes, so that messages of many rows group.
_DUMPED, _CUT = r'(?s)value ".*" as ', r'(?s)value ".*$'


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads(text: str) -> Any:
    """``json.loads`` without the NaN / Infinity extensions (polars refuses them too; a number
    too large for a float, read as infinity, is refused when written back)."""
    return json.loads(text, parse_constant=_refuse_constant)


def _rewritten(text: pl.Series, rewrite: Callable[[Any], Any]) -> tuple[pl.Series, pl.Series]:
    """Each row's JSON with JSON-text and tuple positions rewritten for decoding, and the rows that
    are not JSON at all."""
    out: list[str] = []
    invalid: dict[int, str] = {}
    for i, row in enumerate(text.to_list()):
        if row is None or row == "null":
            out.append("null")
            continue
        try:
            out.append(json.dumps(rewrite(loads(row)), allow_nan=False))
        except (ValueError, RecursionError) as exc:
            invalid[i] = f"not valid JSON: {str(exc)[:160]}"
            out.append("null")
    problems = pl.Series("invalid", [None] * len(out), dtype=pl.Utf8)
    if invalid:
        problems = problems.scatter(list(invalid), list(invalid.values()))
    return pl.Series("t", out, dtype=pl.Utf8), problems


def json_text(value: Any) -> str | None:
    """A value's compact JSON text (what JSON text columns hold); None for null."""
    if value is None:
        return None
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _rewriter(shape: Shape) -> Callable[[Any], Any]:
    """A function taking a decoded answer to the JSON that decodes under ``shape.decode_dtype``:
    JSON-text positions as their text, tuples as objects keyed "0", "1", ..."""
    if shape.kind == "json":
        return json_text
    if shape.kind == "tuple":
        parts = [_rewriter(s) for _, s in shape.fields]

        def tuple_(value: Any) -> Any:
            if not isinstance(value, list):
                return value
            return {str(i): f(v) for i, (f, v) in enumerate(zip(parts, value))}

        return tuple_
    if shape.kind == "object":
        inner = {n: _rewriter(s) for n, s in shape.fields if s.rewritten}

        def object_(value: Any) -> Any:
            if not isinstance(value, dict):
                return value
            return {k: inner[k](v) if k in inner else v for k, v in value.items()}

        return object_
    if shape.kind == "array" and shape.items is not None:
        each = _rewriter(shape.items)

        def array_(value: Any) -> Any:
            return [each(v) for v in value] if isinstance(value, list) else value

        return array_
    return _same


def _same(value: Any) -> Any:
    return value
