"""Pure: structured answers -> typed Arrow values, and the JSON Schema -> polars dtype mapping.

>>> import polars as pl
>>> schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
>>> dtype = polars_dtype_from_json_schema(schema)
>>> parse_structured(pl.Series(['{"n": 3}', "prose"]), dtype)[1].to_list()
[None, 'not a JSON object: prose']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from ..exceptions import ConfigError
from .parse import decode_json

__all__ = ["parse_structured", "polars_dtype_from_json_schema"]

_FENCE = r"^\s*```[A-Za-z]*\s*\n?|\n?\s*```\s*$"


def parse_structured(text: pl.Series, dtype: pl.DataType) -> tuple[pl.Series, pl.Series]:
    """Decode JSON ``text`` under ``dtype``: ``(parsed, errors)``.

    ``errors`` (Utf8) holds, per row, why the text did not decode to ``dtype`` (null when it did,
    and for null text). A bad row never raises: its ``parsed`` value is null. Markdown code fences
    are removed.
    """
    text = text.cast(pl.Utf8)
    fenced = text.str.starts_with("```") | text.str.ends_with("```")
    if bool(fenced.any()):
        text = pl.select(
            pl.when(pl.lit(fenced))
            .then(pl.lit(text).str.replace_all(_FENCE, ""))
            .otherwise(pl.lit(text))
        ).to_series()
    text = text.str.strip_chars()
    blank = text == ""
    # text that cannot be an object (or array) is an error without a decoding attempt, so that many
    # bad rows (the model writing prose) do not make the bisection slow
    opener = {pl.Struct: ("{", "}"), pl.List: ("[", "]"), pl.Array: ("[", "]")}.get(
        dtype.base_type()
    )
    shapeless = (
        ~blank
        & (text != "null")
        & ~(text.str.starts_with(opener[0]) & text.str.ends_with(opener[1]))
        if opener is not None
        else pl.repeat(False, len(text), eager=True)
    )
    skip = (blank | shapeless).fill_null(True)
    decoded, problem = decode_json(
        pl.select(pl.when(pl.lit(skip)).then(pl.lit("null")).otherwise(pl.lit(text))).to_series(),
        dtype,
    )
    null_json = (text == "null") & problem.is_null()
    kind = "a JSON object" if opener == ("{", "}") else "a JSON array"
    errors = pl.select(
        pl.when(pl.lit(blank))
        .then(pl.lit("empty text, expected JSON"))
        .when(pl.lit(shapeless))
        .then(pl.lit(f"not {kind}: ") + pl.lit(text).str.slice(0, 80))
        .when(pl.lit(problem).str.contains("json parsing error"))
        .then(
            pl.lit("not valid JSON: ") + pl.lit(problem).str.replace(r"^json parsing error: ", "")
        )
        .when(pl.lit(problem).is_not_null())
        .then(pl.lit("does not match the response schema: ") + pl.lit(problem))
        .when(pl.lit(null_json))
        .then(pl.lit("JSON null, expected a value"))
    ).to_series()
    return decoded.alias("parsed"), errors.cast(pl.Utf8).alias("errors")


_SIMPLE: dict[str, pl.DataType] = {
    "string": pl.Utf8(),
    "integer": pl.Int64(),
    "number": pl.Float64(),
    "boolean": pl.Boolean(),
}


def polars_dtype_from_json_schema(schema: Mapping[str, Any]) -> pl.DataType:
    """The polars dtype that JSON matching ``schema`` decodes to.

    Understands JSON Schema (``$defs``/``$ref`` as pydantic writes them, ``anyOf``/``oneOf`` with
    null for Optional, ``type`` lists, ``enum``/``const``, nested objects and arrays) and the API's
    OpenAPI subset (UPPERCASE types, ``nullable``). Values without a fixed shape decode without
    errors: a free-form object (no ``properties``) is an empty Struct, a union of scalars Utf8
    (numbers of both kinds: Float64); a property that may be anything, or a union holding objects or
    arrays, is left out of the struct (its value stays in the raw text).

    >>> polars_dtype_from_json_schema({"type": "object", "properties": {"n": {"type": "integer"}}})
    Struct({'n': Int64})
    """
    if not isinstance(schema, Mapping):
        raise ConfigError(
            f"response schema must be a JSON Schema dict (got {type(schema).__name__})."
        )
    defs = {**schema.get("definitions", {}), **schema.get("$defs", {})}
    dtype = _dtype(schema, defs, ())
    return pl.Utf8() if dtype is None else dtype


_SCALARS = (pl.Utf8(), pl.Int64(), pl.Float64(), pl.Boolean())


def _dtype(node: Any, defs: Mapping[str, Any], seen: tuple[str, ...]) -> pl.DataType | None:
    """``node``'s dtype; None when its values have no fixed shape."""
    if not isinstance(node, Mapping):
        return None
    ref = node.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        if name in seen or name not in defs:
            raise ConfigError(
                f"response schema: cannot resolve {'recursive ' if name in seen else ''}$ref "
                f"{ref!r}."
                "\nHint: gembatch needs a finite schema without recursion."
            )
        return _dtype(defs[name], defs, (*seen, name))
    for combo in ("anyOf", "oneOf", "allOf"):
        options = node.get(combo)
        if isinstance(options, list) and options:
            kept = [o for o in options if not (isinstance(o, Mapping) and _type_of(o) == "null")]
            return _union([_dtype(o, defs, seen) for o in kept[: 1 if combo == "allOf" else None]])
    kind = _type_of(node)
    if kind is None and "enum" in node:
        kind = _kind_of_values([v for v in node["enum"] if v is not None])
    if kind is None and "const" in node:
        kind = _kind_of_values([node["const"]])
    if kind is None:
        kind = "object" if "properties" in node else "array" if "items" in node else None
    if kind == "object":
        props = node.get("properties")
        if not isinstance(props, Mapping):
            return pl.Struct({})
        order = node.get("propertyOrdering")
        names = (
            [n for n in order if n in props] + [n for n in props if n not in order]
            if isinstance(order, list)
            else list(props)
        )
        fields = {n: _dtype(props[n], defs, seen) for n in names}
        return pl.Struct({n: d for n, d in fields.items() if d is not None})
    if kind == "array":
        inner = _dtype(node.get("items"), defs, seen)
        return None if inner is None else pl.List(inner)
    return _SIMPLE.get(kind or "")


def _union(dtypes: list[pl.DataType | None]) -> pl.DataType | None:
    if not dtypes or any(d is None for d in dtypes):
        return None
    if all(d == dtypes[0] for d in dtypes):
        return dtypes[0]
    if all(d in (pl.Int64(), pl.Float64()) for d in dtypes):
        return pl.Float64()
    if all(d in _SCALARS for d in dtypes):
        return pl.Utf8()
    return None


def _type_of(node: Mapping[str, Any]) -> str | None:
    kind = node.get("type")
    if isinstance(kind, list):
        kinds = [str(k).lower() for k in kind if str(k).lower() != "null"]
        if len(kinds) == 1:
            return kinds[0]
        return "string" if kinds else "null"
    return str(kind).lower() if isinstance(kind, str) else None


def _kind_of_values(values: list[Any]) -> str:
    if values and all(isinstance(v, bool) for v in values):
        return "boolean"
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "integer"
    if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "number"
    return "string"
