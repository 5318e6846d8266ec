"""Pure: structured answers checked against their full JSON Schema, and degenerate batches found.

The Batch API is reported to return well-formed JSON that is wrong: ruby_llm #894 saw
``responseJsonSchema`` on ``:batchGenerateContent`` give degenerate JSON for 502 of 502 rows
("prose appearing in object fields, key/value pairs shifted by one position, or an all-null
template that matches the schema but carries no data") while ``responseSchema`` worked;
python-genai #1608 reports batch answers not following the schema. :func:`validate` checks every
answer against every constraint of its schema; :func:`degenerate` looks across a batch for the
patterns that pass a schema yet carry no answer.

**validate** agrees with ``jsonschema`` (Draft 2020-12, with its format checker) on which answers
are valid for these keywords: ``type``, ``enum``, ``const``, ``minimum`` / ``maximum`` /
``exclusiveMinimum`` / ``exclusiveMaximum``, ``multipleOf``, ``minLength`` / ``maxLength``,
``pattern``, ``format`` (``date``, ``date-time``, ``uuid``, ``email``; other formats are not
checked), ``properties``, ``required``, ``additionalProperties``, ``patternProperties``,
``propertyNames``, ``minProperties`` / ``maxProperties``, ``items``, ``prefixItems``,
``minItems`` / ``maxItems``, ``uniqueItems``, ``anyOf``, ``oneOf``, ``allOf``, ``not``; other
keywords are not checked. What runs where:

* vectorised (polars, on all rows at once): every object with ``properties`` (``required``, a
  missing key told apart from a JSON null, ``additionalProperties: false``), array (``items``,
  ``minItems`` / ``maxItems``, ``uniqueItems`` of scalars) and scalar (``type``, ``enum``,
  ``const``, bounds, lengths, ``pattern`` when the Rust regex engine takes it, the four formats).
  The answers are decoded once more with every string marked and every known key flagged, so
  that JSON types and absent keys survive polars' lenient decoding (3.5 read as 3, 3 as "3",
  true as 1, a lone "x" as ["x"], a missing key as null);
* per row in Python (``json.loads`` and a compiled checker): the nodes whose values have no fixed
  shape or whose keywords polars cannot test (``dict[str, X]``, ``Any`` with constraints, unions
  of several schemas, tuples, ``multipleOf``, ``not``, ``patternProperties``, patterns the Rust
  engine refuses, enums of objects), and whole rows the vectorised pass cannot vouch for: a value
  of the wrong shape (an object where a string belongs), a lone scalar where an array of scalars
  belongs, a key the schema does not name, a repeated key (``json.loads`` keeps the last), and,
  as keys and brackets are counted in the raw text, a row whose strings hold ``[`` or ``":``.

A pattern checked by the Rust engine matches ``$`` only at the very end of the string (Python's
``re``, which jsonschema uses, also before a final newline). Numbers are compared as float64
(integers beyond 2**53 may compare equal to a neighbour).

>>> import polars as pl
>>> schema = {"type": "object", "required": ["items"], "properties": {"items": {
...     "type": "array", "items": {"type": "object", "properties": {
...         "score": {"type": "integer", "maximum": 5}}}}}}
>>> validate(pl.Series(['{"items": [{"score": 1}, {"score": 2}, {"score": 7}]}', '{}']),
...          schema).to_list()
['$.items[2].score: 7 is above the maximum 5', "$: required property 'items' is missing"]
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from fractions import Fraction
from typing import Any, Literal

import polars as pl

from .._build.schemas import ANNOTATIONS
from .parse import decode_json
from .schema import Shape, clean_text, loads, normalise, shape_of

__all__ = [
    "DEGENERATE_PATTERNS",
    "compile_check",
    "degenerate",
    "validate",
]

#: Messages kept per row (the rest counted).
SHOWN_PROBLEMS = 3

# ------------------------------------------------------------------------------ Python, per row
Check = Callable[[Any, str], Iterator[str]]
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# the formats as jsonschema checks them (date: fullmatch; date-time: RFC 3339, a final newline
# allowed; uuid: 8-4-4-4-12 hex digits), anchored at the end by "$" in Rust and "\Z" in Python
_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
_DATE_TIME = (
    r"^[0-9]{4}-(?:0[1-9]|1[0-2])-[0-9]{2}[Tt](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(?:\.[0-9]+)?(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])\n?"
)
_UUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_FORMATS = ("date", "date-time", "uuid", "email")
_KINDS = ("null", "boolean", "object", "array", "number", "string", "integer")


def join_path(path: str, step: str | int) -> str:
    """``path`` one step down: ``$.a``, ``$["a b"]``, ``$.a[2]``."""
    if isinstance(step, int):
        return f"{path}[{step}]"
    return f"{path}.{step}" if _IDENTIFIER.match(step) else f"{path}[{json.dumps(step)}]"


def show(value: Any) -> str:
    """A value as a message shows it: JSON, cut at 40 characters."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 42 else text[:40] + '..."'[: 4 if text.startswith('"') else 3]


def kind_of(value: Any) -> str:
    """A value's JSON type as a type error names it (``an array``, ``a string``, ``null``): not the
    value itself, so that the same mistake in many rows gives one message."""
    for kind, name in _KIND_NAMES:
        if _is_kind(value, kind):
            return name
    return type(value).__name__


_KIND_NAMES = (
    ("null", "null"),
    ("boolean", "a boolean"),
    ("object", "an object"),
    ("array", "an array"),
    ("string", "a string"),
    ("integer", "an integer"),
    ("number", "a number"),
)


def _is_kind(value: Any, kind: str) -> bool:
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "string":
        return isinstance(value, str)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return kind == "number" or isinstance(value, int) or value.is_integer()


def _number(value: Any) -> bool:
    return _is_kind(value, "number")


def json_equal(one: Any, two: Any) -> bool:
    """JSON equality: ``1 == 1.0``, ``true != 1``, containers compared deeply."""
    if isinstance(one, bool) or isinstance(two, bool):
        return isinstance(one, bool) and isinstance(two, bool) and one == two
    if isinstance(one, list) and isinstance(two, list):
        return len(one) == len(two) and all(json_equal(a, b) for a, b in zip(one, two))
    if isinstance(one, dict) and isinstance(two, dict):
        return one.keys() == two.keys() and all(json_equal(one[k], two[k]) for k in one)
    if isinstance(one, (list, dict, str)) or isinstance(two, (list, dict, str)):
        return type(one) is type(two) and one == two
    return bool(one == two)


def _format_ok(fmt: str, text: str) -> bool:
    if fmt == "email":
        return "@" in text
    if fmt == "uuid":
        return re.match(_UUID + r"\Z", text) is not None
    if fmt == "date":
        return re.match(_DATE + r"\Z", text) is not None and _real_date(text)
    if fmt == "date-time":
        return re.match(_DATE_TIME + r"\Z", text) is not None and _real_date(text[:10])
    return True


def _real_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def compile_check(schema: Any) -> Check:
    """A function ``check(value, path)`` yielding a message for each way a decoded JSON ``value``
    breaks ``schema`` (normalised JSON Schema: :func:`gembatch._results.schema.normalise`).

    >>> check = compile_check({"type": "array", "items": {"enum": ["a"]}, "maxItems": 1})
    >>> list(check(["a", "b"], "$"))
    ['$: has 2 items, more than the maximum 1', '$[1]: "b" is not one of ["a"]']
    """
    if schema is False:
        return _reject
    if not isinstance(schema, Mapping):
        return _accept
    checks = [c for c in (make(schema) for make in _KEYWORD_CHECKS) if c is not None]
    if not checks:
        return _accept
    if len(checks) == 1:
        return checks[0]

    def run(value: Any, path: str) -> Iterator[str]:
        for check in checks:
            yield from check(value, path)

    return run


def _accept(value: Any, path: str) -> Iterator[str]:
    return iter(())


def _reject(value: Any, path: str) -> Iterator[str]:
    yield f"{path}: no value is allowed here"


def _type_check(schema: Mapping[str, Any]) -> Check | None:
    kinds = schema.get("type")
    if kinds is None:
        return None
    names = [str(k) for k in (kinds if isinstance(kinds, list) else [kinds])]
    wanted = " or ".join(names)

    def check(value: Any, path: str) -> Iterator[str]:
        if not any(_is_kind(value, k) for k in names):
            yield f"{path}: {kind_of(value)} is not of type {wanted}"

    return check


def _enum_check(schema: Mapping[str, Any]) -> Check | None:
    if "const" in schema:
        const = schema["const"]

        def is_const(value: Any, path: str) -> Iterator[str]:
            if not json_equal(value, const):
                yield f"{path}: {show(value)} is not {show(const)}"

        return is_const
    options = schema.get("enum")
    if not isinstance(options, list):
        return None
    listed = show(options) if len(json.dumps(options)) <= 80 else f"the {len(options)} allowed"

    def in_enum(value: Any, path: str) -> Iterator[str]:
        if not any(json_equal(value, o) for o in options):
            yield f"{path}: {show(value)} is not one of {listed}"

    return in_enum


def _number_check(schema: Mapping[str, Any]) -> Check | None:
    bounds = [
        (k, schema[k])
        for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
        if _number(schema.get(k))
    ]
    if not bounds:
        return None

    def check(value: Any, path: str) -> Iterator[str]:
        if not _number(value):
            return
        for key, bound in bounds:
            if key == "minimum" and value < bound:
                yield f"{path}: {show(value)} is below the minimum {bound}"
            elif key == "maximum" and value > bound:
                yield f"{path}: {show(value)} is above the maximum {bound}"
            elif key == "exclusiveMinimum" and value <= bound:
                yield f"{path}: {show(value)} is not above the exclusive minimum {bound}"
            elif key == "exclusiveMaximum" and value >= bound:
                yield f"{path}: {show(value)} is not below the exclusive maximum {bound}"
            elif key == "multipleOf" and not _multiple(value, bound):
                yield f"{path}: {show(value)} is not a multiple of {bound}"

    return check


def _multiple(value: float, step: float) -> bool:
    if isinstance(step, float):
        quotient = value / step
        try:
            return int(quotient) == quotient
        except OverflowError:
            return (Fraction(value) / Fraction(step)).denominator == 1
    return not value % step


def _string_check(schema: Mapping[str, Any]) -> Check | None:
    low, high = schema.get("minLength"), schema.get("maxLength")
    pattern = schema.get("pattern")
    regex = None
    if isinstance(pattern, str):
        try:
            regex = re.compile(pattern)
        except re.error:  # an invalid pattern is not checked (the schema check reports it)
            regex = None
    fmt = schema.get("format") if schema.get("format") in _FORMATS else None
    if low is None and high is None and regex is None and fmt is None:
        return None

    def check(value: Any, path: str) -> Iterator[str]:
        if not isinstance(value, str):
            return
        if isinstance(low, int) and len(value) < low:
            yield f"{path}: {show(value)} is shorter than {low} characters"
        if isinstance(high, int) and len(value) > high:
            yield f"{path}: {show(value)} is longer than {high} characters"
        if regex is not None and not regex.search(value):
            yield f"{path}: {show(value)} does not match the pattern {pattern!r}"
        if fmt is not None and not _format_ok(fmt, value):
            yield f"{path}: {show(value)} is not a valid {fmt}"

    return check


def _array_check(schema: Mapping[str, Any]) -> Check | None:
    prefix = [compile_check(s) for s in schema.get("prefixItems") or []]
    items = schema.get("items")
    rest = compile_check(items) if isinstance(items, (Mapping, bool)) else None
    low, high = schema.get("minItems"), schema.get("maxItems")
    unique = schema.get("uniqueItems") is True
    if not prefix and rest is None and low is None and high is None and not unique:
        return None

    def check(value: Any, path: str) -> Iterator[str]:
        if not isinstance(value, list):
            return
        if isinstance(low, int) and len(value) < low:
            yield f"{path}: has {len(value)} items, fewer than the minimum {low}"
        if isinstance(high, int) and len(value) > high:
            yield f"{path}: has {len(value)} items, more than the maximum {high}"
        if unique and any(json_equal(a, b) for a, b in itertools.combinations(value, 2)):
            yield f"{path}: has repeated items"
        for i, item in enumerate(value):
            each = prefix[i] if i < len(prefix) else rest
            if each is not None:
                yield from each(item, join_path(path, i))

    return check


def _object_check(schema: Mapping[str, Any]) -> Check | None:
    props = {n: compile_check(s) for n, s in (schema.get("properties") or {}).items()}
    patterns = [
        (re.compile(p), compile_check(s))
        for p, s in (schema.get("patternProperties") or {}).items()
    ]
    extra = schema.get("additionalProperties")
    others = compile_check(extra) if isinstance(extra, (Mapping, bool)) else None
    names = compile_check(schema["propertyNames"]) if "propertyNames" in schema else None
    required = [r for r in schema.get("required") or [] if isinstance(r, str)]
    low, high = schema.get("minProperties"), schema.get("maxProperties")
    if not (props or patterns or others or names or required) and low is None and high is None:
        return None

    def check(value: Any, path: str) -> Iterator[str]:
        if not isinstance(value, dict):
            return
        for name in required:
            if name not in value:
                yield f"{path}: required property {name!r} is missing"
        if isinstance(low, int) and len(value) < low:
            yield f"{path}: has {len(value)} properties, fewer than the minimum {low}"
        if isinstance(high, int) and len(value) > high:
            yield f"{path}: has {len(value)} properties, more than the maximum {high}"
        for key, item in value.items():
            where = join_path(path, key)
            if names is not None:
                for problem in names(key, path):
                    yield f"{path}: property name {show(key)}: " + problem.split(": ", 1)[-1]
            matched = key in props
            if matched:
                yield from props[key](item, where)
            for regex, each in patterns:
                if regex.search(key):
                    matched = True
                    yield from each(item, where)
            if not matched and others is not None:
                if extra is False:
                    yield f"{path}: additional property {show(key)} is not allowed"
                else:
                    yield from others(item, where)

    return check


def _combinators(schema: Mapping[str, Any]) -> Check | None:
    all_of = [compile_check(s) for s in schema.get("allOf") or []]
    any_of = [compile_check(s) for s in schema.get("anyOf") or []]
    one_of = [compile_check(s) for s in schema.get("oneOf") or []]
    negated = compile_check(schema["not"]) if "not" in schema else None
    if not (all_of or any_of or one_of or negated):
        return None

    def check(value: Any, path: str) -> Iterator[str]:
        for each in all_of:
            yield from each(value, path)
        if any_of and not any(_valid(c, value) for c in any_of):
            yield f"{path}: {show(value)} matches none of the anyOf schemas"
        if one_of:
            passing = sum(_valid(c, value) for c in one_of)
            if passing != 1:
                how = "none" if passing == 0 else f"{passing}"
                yield f"{path}: {show(value)} matches {how} of the oneOf schemas, not exactly one"
        if negated is not None and _valid(negated, value):
            yield f"{path}: {show(value)} matches the schema under 'not'"

    return check


def _valid(check: Check, value: Any) -> bool:
    return next(check(value, "$"), None) is None


_KEYWORD_CHECKS: tuple[Callable[[Mapping[str, Any]], Check | None], ...] = (
    _type_check,
    _enum_check,
    _number_check,
    _string_check,
    _array_check,
    _object_check,
    _combinators,
)


# ------------------------------------------------------------------------------ vectorised plan
# once decoded, every string value starts with _MARK and every known key has a flag key
# _FLAG + key beside it (written as JSON escapes: raw control characters are not JSON)
_MARK, _FLAG = "\x01", "\x04"
_STRING = r'"((?:[^"\\]|\\.)*)"'
_MARKED = r'"\u0001${1}"'
# counts keys (and any \": inside a string: counting too many only sends a row to Python)
_KEY_END = r'"\s*:'
_COMMON = frozenset({"type", "enum", "const"})
_SCALAR_KEYS = _COMMON | {
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
}
_OBJECT_KEYS = _COMMON | {"properties", "required", "additionalProperties"}
_ARRAY_KEYS = _COMMON | {"items", "minItems", "maxItems", "uniqueItems"}
_SCALAR_TYPES = frozenset({"string", "number", "integer", "boolean"})


@dataclass
class _Py:
    """A node checked per row in Python."""

    check: Check
    null_reason: str | None  # why a JSON null is wrong here (None: null is allowed)


@dataclass
class _Vec:
    """A node checked with polars expressions over all its instances at once."""

    kind: Literal["object", "array", "scalar"]
    schema: Mapping[str, Any]
    null_reason: str | None
    props: list[tuple[str, _Vec | _Py]] = field(default_factory=list)
    items: _Vec | None = None

    @property
    def probe(self) -> pl.DataType:
        """The dtype the marked answer decodes to at this node."""
        if self.kind == "object":
            fields: dict[str, pl.DataType] = {}
            for name, child in self.props:
                fields[_FLAG + name] = pl.Boolean()
                if isinstance(child, _Vec):
                    fields[name] = child.probe
            return pl.Struct(fields)
        if self.kind == "array":
            assert self.items is not None
            return pl.List(self.items.probe)
        return pl.Utf8()


def _null_reason(check: Check) -> str | None:
    problem = next(check(None, "$"), None)
    return None if problem is None else problem.split(": ", 1)[-1]


def _plan(schema: Any) -> _Vec | _Py:
    check = compile_check(schema)
    null_reason = _null_reason(check)
    if not isinstance(schema, Mapping):
        return _Py(check, null_reason)
    body = {k: v for k, v in schema.items() if k not in ANNOTATIONS}
    for combo in ("anyOf", "oneOf"):  # Optional[X]: X, with null allowed
        branches = body.get(combo)
        if set(body) == {combo} and isinstance(branches, list) and len(branches) == 2:
            kept = [b for b in branches if not _null_only(b)]
            if len(kept) == 1:
                inner = _plan(kept[0])
                if isinstance(inner, _Py):
                    return _Py(check, null_reason)
                return replace(inner, null_reason=null_reason)
    kinds = body.get("type")
    listed = kinds if isinstance(kinds, list) else [] if kinds is None else [kinds]
    names = {str(k) for k in listed} - {"null"}
    values = [body["const"]] if "const" in body else body.get("enum")
    if values is not None and (
        not isinstance(values, list) or any(isinstance(v, (dict, list)) for v in values)
    ):
        return _Py(check, null_reason)
    if names == {"object"} and set(body) <= _OBJECT_KEYS and values is None:
        props = body.get("properties")
        required = body.get("required") or []
        extra = body.get("additionalProperties", True)
        if (
            isinstance(props, Mapping)
            and props
            and isinstance(extra, bool)
            and all(isinstance(r, str) and r in props for r in required)
        ):
            children = [(str(n), _plan(s)) for n, s in props.items()]
            return _Vec("object", body, null_reason, props=children)
    elif names == {"array"} and set(body) <= _ARRAY_KEYS and values is None:
        items = _plan(body.get("items", True))
        unique_ok = body.get("uniqueItems") is not True or (
            isinstance(items, _Vec) and items.kind == "scalar"
        )
        if isinstance(items, _Vec) and unique_ok:
            return _Vec("array", body, null_reason, items=items)
    elif (
        (names <= _SCALAR_TYPES and (kinds is not None or values is not None))
        and set(body) <= _SCALAR_KEYS
        and _rust_pattern(body.get("pattern"))
    ):
        return _Vec("scalar", body, null_reason)
    return _Py(check, null_reason)


def _null_only(node: Any) -> bool:
    if not isinstance(node, Mapping):
        return False
    body = {k: v for k, v in node.items() if k not in ANNOTATIONS}
    return body in ({"type": "null"}, {"enum": [None]}, {"const": None})


def _rust_pattern(pattern: Any) -> bool:
    if pattern is None:
        return True
    if not isinstance(pattern, str):
        return False
    try:
        re.compile(pattern)
        pl.Series([""]).str.contains(pattern)
    except (re.error, pl.exceptions.PolarsError):
        return False
    return True


# ------------------------------------------------------------------------------------ validate
def validate(text: pl.Series, schema: Any) -> pl.Series:
    """Check each answer ``text`` (JSON; markdown fences removed) against every constraint of
    ``schema`` (JSON Schema or the API's OpenAPI subset): per row, the problems found, each
    naming its JSON path (``$.items[2].score: 7 is above the maximum 5``; at most
    :data:`SHOWN_PROBLEMS`, then how many more), or null when the answer is valid.

    Rows whose text is null, empty or not JSON at all are null here: :func:`parse_structured`
    reports them. See the module docstring for which checks run vectorised and which per row.
    """
    return _validate(text, schema)[0]


def _validate(text: pl.Series, schema: Any) -> tuple[pl.Series, pl.Series]:
    """:func:`validate`'s problems, and per row whether it was checked whole in Python."""
    norm = normalise(schema)
    cleaned = clean_text(text).alias("text")
    plan = _plan(norm)
    n = len(cleaned)
    found: list[pl.DataFrame] = []
    usable = cleaned.is_not_null() & (cleaned != "")
    if isinstance(plan, _Py):
        fallback = usable
    else:
        opener = {"object": "{", "array": "["}.get(plan.kind)
        probe = usable if opener is None else usable & cleaned.str.starts_with(opener)
        unread = _vectorised(cleaned, probe, plan, found)
        fallback = (usable & ~probe) | unread
    fallback = fallback.fill_null(False).alias("python")
    rows = pl.Series("row", range(n), dtype=pl.UInt32).filter(fallback)
    if len(rows):
        found = [f.filter(~pl.col("row").is_in(rows.implode())) for f in found]
        found.append(_per_row(cleaned, rows, [((), compile_check(norm))], counting=False)[0])
    return _gather(found, n), fallback


def _vectorised(
    text: pl.Series, probe: pl.Series, plan: _Vec, found: list[pl.DataFrame]
) -> pl.Series:
    """Vectorised checks of the ``probe`` rows into ``found``; the rows it cannot vouch for."""
    n = len(text)
    escaped = [json.dumps(name, ensure_ascii=False)[1:-1] for name in sorted(_names(plan))]
    marked = (
        pl.when(pl.col("probe"))
        .then(pl.col("t"))
        .otherwise(pl.lit("null"))
        .str.replace_all(_STRING, _MARKED)
    )
    if escaped:
        marked = marked.str.replace_many(
            [f'"\\u0001{k}":' for k in escaped], [f'"\\u0004{k}":true,"{k}":' for k in escaped]
        )
    lazy = pl.LazyFrame({"t": text, "probe": probe}).select(marked)
    decoded, problem = decode_json(lazy.collect(engine="streaming").to_series(), plan.probe)
    unread = probe & problem.is_not_null()
    ok = probe & problem.is_null()
    frame = pl.DataFrame({"row": pl.Series(range(n), dtype=pl.UInt32), "v": decoded}).filter(ok)
    counts = _Counts()
    nulls = frame.filter(pl.col("v").is_null())
    if plan.null_reason is not None:
        found.append(nulls.select("row", pl.lit(f"$: {plan.null_reason}").alias("msg")))
    regions: list[tuple[tuple[str | None, ...], Check]] = []
    _walk(plan, frame.filter(pl.col("v").is_not_null()), (), (), found, counts, regions)
    counting = counts.arrays_needed or counts.keys_needed
    if regions:
        rows = pl.Series("row", range(n), dtype=pl.UInt32).filter(ok)
        region_found, arrays, keys = _per_row(text, rows, regions, counting=counting)
        found.append(region_found)
        counts.extra(arrays, keys)
    if counting:  # counted in the text, "[" and '":' in strings too: a row may go to Python
        mismatch = pl.repeat(False, n, eager=True)
        if counts.arrays_needed:
            mismatch |= text.str.count_matches("[", literal=True) != counts.total(n, "arrays")
        if counts.keys_needed:
            mismatch |= text.str.count_matches(_KEY_END) != counts.total(n, "keys")
        unread = unread | (ok & mismatch.fill_null(True))
    return unread.fill_null(False)


def _names(node: _Vec | _Py) -> set[str]:
    """The property names of the vectorised objects under ``node``."""
    if not isinstance(node, _Vec):
        return set()
    if node.kind == "array" and node.items is not None:
        return _names(node.items)
    return {n for n, _ in node.props}.union(*(_names(c) for _, c in node.props))


class _Counts:
    """Arrays and keys the vectorised pass saw per row (to find what it could not see)."""

    def __init__(self) -> None:
        self.arrays: list[pl.DataFrame] = []
        self.keys: list[pl.DataFrame] = []
        self.arrays_needed = False  # an array of scalars: polars reads a lone scalar as [scalar]
        self.keys_needed = False  # an unknown key is not decoded, a repeated one decodes once
        self._extra: dict[str, pl.Series] = {}

    def extra(self, arrays: pl.Series, keys: pl.Series) -> None:
        self._extra = {"arrays": arrays, "keys": keys}

    def total(self, n: int, what: str) -> pl.Series:
        counts = pl.Series("count", [0] * n, dtype=pl.Int64)
        seen = (
            [f.select("row", pl.lit(1, pl.Int64).alias("n")) for f in self.arrays]
            if what == "arrays"
            else self.keys
        )
        if seen:
            per = pl.concat(seen).group_by("row").agg(pl.col("n").sum())
            counts = counts.scatter(per["row"].cast(pl.Int64), per["n"].cast(pl.Int64))
        extra = self._extra.get(what)
        return counts if extra is None else counts + extra


def _path_expr(path: tuple[str | int, ...]) -> pl.Expr:
    parts: list[pl.Expr] = []
    text = "$"
    for step in path:
        if isinstance(step, int):
            parts += [pl.lit(text + "["), pl.col(f"i{step}").cast(pl.Utf8)]
            text = "]"
        else:
            text = join_path(text, step)
    return pl.concat_str([*parts, pl.lit(text)])


#: Below this magnitude a Float64 holds every integer exactly.
_EXACT = float(2**53)


def _fail(frame: pl.DataFrame, mask: pl.Expr, path: tuple[str | int, ...], what: pl.Expr) -> Any:
    return frame.filter(mask).select("row", (_path_expr(path) + pl.lit(": ") + what).alias("msg"))


def _walk(
    node: _Vec,
    frame: pl.DataFrame,
    path: tuple[str | int, ...],
    steps: tuple[str | None, ...],
    found: list[pl.DataFrame],
    counts: _Counts,
    regions: list[tuple[tuple[str | None, ...], Check]],
) -> None:
    """Check ``node`` on its non-null instances ``frame`` (row, list indices i0.., value v)."""
    if node.kind == "scalar":
        found.extend(_scalar_failures(node.schema, frame, path))
        return
    if node.kind == "array":
        _walk_array(node, frame, path, steps, found, counts, regions)
        return
    required = set(node.schema.get("required") or [])
    keep = [c for c in frame.columns if c != "v"]
    counts.keys_needed = True  # unknown or repeated keys: the row is checked in Python
    flags = [
        pl.col("v").struct.field(_FLAG + n).is_not_null().cast(pl.Int64) for n, _ in node.props
    ]
    counts.keys.append(frame.select("row", pl.sum_horizontal(flags).alias("n")))
    for name, child in node.props:
        here = (*path, name)
        present = pl.col("v").struct.field(_FLAG + name).is_not_null()
        if name in required:
            what = pl.lit(f"required property {name!r} is missing")
            found.append(_fail(frame, ~present, path, what))
        if isinstance(child, _Py):
            regions.append(((*steps, name), child.check))
            continue
        sub = frame.filter(present).select(*keep, pl.col("v").struct.field(name).alias("v"))
        if child.null_reason is not None:
            found.append(_fail(sub, pl.col("v").is_null(), here, pl.lit(child.null_reason)))
        sub = sub.filter(pl.col("v").is_not_null())
        if len(sub):
            _walk(child, sub, here, (*steps, name), found, counts, regions)


def _walk_array(
    node: _Vec,
    frame: pl.DataFrame,
    path: tuple[str | int, ...],
    steps: tuple[str | None, ...],
    found: list[pl.DataFrame],
    counts: _Counts,
    regions: list[tuple[tuple[str | None, ...], Check]],
) -> None:
    assert node.items is not None
    schema = node.schema
    size = pl.col("v").list.len()
    low, high = schema.get("minItems"), schema.get("maxItems")
    if isinstance(low, int):
        what = pl.format("has {} items, fewer than the minimum {}", size, pl.lit(low))
        found.append(_fail(frame, size < low, path, what))
    if isinstance(high, int):
        what = pl.format("has {} items, more than the maximum {}", size, pl.lit(high))
        found.append(_fail(frame, size > high, path, what))
    if schema.get("uniqueItems") is True:
        repeated = pl.col("v").list.n_unique() < size
        found.append(_fail(frame, repeated, path, pl.lit("has repeated items")))
    if node.items.kind == "scalar":
        counts.arrays_needed = True
    counts.arrays.append(frame.select("row"))
    level = sum(isinstance(s, int) for s in path)
    index = f"i{level}"
    elements = (
        frame.filter(size > 0).with_columns(pl.int_ranges(size).alias(index)).explode(["v", index])
    )
    here = (*path, level)
    if node.items.null_reason is not None:
        found.append(_fail(elements, pl.col("v").is_null(), here, pl.lit(node.items.null_reason)))
    elements = elements.filter(pl.col("v").is_not_null())
    if len(elements):
        _walk(node.items, elements, here, (*steps, None), found, counts, regions)


def _scalar_failures(
    schema: Mapping[str, Any], frame: pl.DataFrame, path: tuple[str | int, ...]
) -> list[pl.DataFrame]:
    v = pl.col("v")
    frame = frame.with_columns(
        is_str=v.str.starts_with(_MARK),
        is_bool=v.is_in(["true", "false"]),
        s=pl.when(v.str.starts_with(_MARK)).then(v.str.slice(1)),
    ).with_columns(
        num=pl.when(~pl.col("is_str") & ~pl.col("is_bool")).then(v.cast(pl.Float64, strict=False))
    )
    is_str, is_bool, s, num = pl.col("is_str"), pl.col("is_bool"), pl.col("s"), pl.col("num")
    is_num = num.is_not_null()
    # a Float64 holds integers exactly only below 2**53: bigger numbers are checked in Python
    inexact = is_num & (num.abs() >= _EXACT)
    exact = is_num & ~inexact
    shown = (
        pl.when(is_str & (s.str.len_chars() > 40))
        .then(pl.lit('"') + s.str.slice(0, 40) + pl.lit('..."'))
        .when(is_str)
        .then(pl.lit('"') + s + pl.lit('"'))
        .otherwise(v)
    )
    out: list[pl.DataFrame] = []

    def fail(mask: pl.Expr, what: pl.Expr | str) -> None:
        text = pl.lit(what) if isinstance(what, str) else what
        out.append(_fail(frame, mask.fill_null(False), path, shown + text))

    big = frame.filter(inexact)
    if len(big):
        out.append(_python_failures(schema, big, path))
    kinds = schema.get("type")
    if kinds is not None:
        names = [str(k) for k in (kinds if isinstance(kinds, list) else [kinds])]
        integer = (exact & (num.floor() == num) & num.is_finite()) | inexact
        tests = {"string": is_str, "boolean": is_bool, "number": is_num, "integer": integer}
        ok = pl.lit(False)
        for name in names:
            ok = ok | tests.get(name, pl.lit(False))
        kind = (
            pl.when(is_str)
            .then(pl.lit("a string"))
            .when(is_bool)
            .then(pl.lit("a boolean"))
            .when(integer)
            .then(pl.lit("an integer"))
            .when(is_num)
            .then(pl.lit("a number"))
            .otherwise(v)
        )
        wanted = " or ".join(names)
        out.append(_fail(frame, (~ok).fill_null(False), path, kind + f" is not of type {wanted}"))
    values = [schema["const"]] if "const" in schema else schema.get("enum")
    if isinstance(values, list):
        strs = [x for x in values if isinstance(x, str)]
        bools = ["true" if x else "false" for x in values if isinstance(x, bool)]
        nums = [float(x) for x in values if _number(x)]
        member = (
            (is_str & s.is_in(pl.Series(strs, dtype=pl.Utf8).implode()))
            | (exact & num.is_in(pl.Series(nums, dtype=pl.Float64).implode()))
            | (is_bool & v.is_in(pl.Series(bools, dtype=pl.Utf8).implode()))
            | inexact
        )
        if "const" in schema:
            fail(~member, f" is not {show(schema['const'])}")
        else:
            listed = show(values) if len(json.dumps(values)) <= 80 else f"the {len(values)} allowed"
            fail(~member, f" is not one of {listed}")
    for key, word in (
        ("minimum", "is below the minimum"),
        ("maximum", "is above the maximum"),
        ("exclusiveMinimum", "is not above the exclusive minimum"),
        ("exclusiveMaximum", "is not below the exclusive maximum"),
    ):
        bound = schema.get(key)
        if _number(bound):
            broken = {
                "minimum": num < bound,
                "maximum": num > bound,
                "exclusiveMinimum": num <= bound,
                "exclusiveMaximum": num >= bound,
            }[key]
            fail(exact & broken, f" {word} {bound}")
    low, high = schema.get("minLength"), schema.get("maxLength")
    if isinstance(low, int):
        fail(is_str & (s.str.len_chars() < low), f" is shorter than {low} characters")
    if isinstance(high, int):
        fail(is_str & (s.str.len_chars() > high), f" is longer than {high} characters")
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        fail(is_str & ~s.str.contains(pattern), f" does not match the pattern {pattern!r}")
    fmt = schema.get("format")
    if fmt in _FORMATS:
        fail(is_str & ~_format_expr(str(fmt), s), f" is not a valid {fmt}")
    return out


def _python_failures(
    schema: Mapping[str, Any], frame: pl.DataFrame, path: tuple[str | int, ...]
) -> pl.DataFrame:
    """The scalar checks of ``schema`` on ``frame``'s values, in Python: exact for numbers that a
    Float64 cannot hold exactly."""
    check = compile_check(schema)
    found = [
        "; ".join(m.removeprefix(": ") for m in check(json.loads(text), "")) or None
        for text in frame["v"]
    ]
    frame = frame.with_columns(py_msg=pl.Series(found, dtype=pl.Utf8))
    return _fail(frame, pl.col("py_msg").is_not_null(), path, pl.col("py_msg"))


def _format_expr(fmt: str, s: pl.Expr) -> pl.Expr:
    if fmt == "email":
        return s.str.contains("@", literal=True)
    if fmt == "uuid":
        return s.str.contains(_UUID + "$")
    day = s.str.slice(0, 10)
    real = day.str.to_date("%Y-%m-%d", strict=False).is_not_null() & ~day.str.starts_with("0000")
    if fmt == "date":
        return s.str.contains(_DATE + "$") & real
    return s.str.contains(_DATE_TIME + "$") & real


def _per_row(
    text: pl.Series,
    rows: pl.Series,
    regions: list[tuple[tuple[str | None, ...], Check]],
    *,
    counting: bool,
) -> tuple[pl.DataFrame, pl.Series, pl.Series]:
    """Python checks of ``regions`` (steps from the root -> check) on ``rows``: the problems, and
    per row the arrays and keys inside the checked values."""
    n = len(text)
    out_rows: list[int] = []
    out_msgs: list[str] = []
    arrays = [0] * n if counting else []
    keys = [0] * n if counting else []
    texts = text.gather(rows).to_list()
    for row, raw in zip(rows.to_list(), texts):
        try:
            doc = loads(raw)
        except (ValueError, RecursionError):
            continue  # not JSON: parse_structured says so
        for steps, check in regions:
            for value, where in _reach(doc, steps, "$"):
                for problem in check(value, where):
                    out_rows.append(row)
                    out_msgs.append(problem.encode("utf-8", "backslashreplace").decode())
                if counting:
                    a, k = _containers(value)
                    arrays[row] += a
                    keys[row] += k
    found = pl.DataFrame(
        {"row": pl.Series(out_rows, dtype=pl.UInt32), "msg": pl.Series(out_msgs, dtype=pl.Utf8)}
    )
    return found, pl.Series(arrays, dtype=pl.Int64), pl.Series(keys, dtype=pl.Int64)


def _reach(doc: Any, steps: tuple[str | None, ...], path: str) -> Iterator[tuple[Any, str]]:
    if not steps:
        yield doc, path
        return
    step, rest = steps[0], steps[1:]
    if step is None:
        if isinstance(doc, list):
            for i, item in enumerate(doc):
                if item is not None:
                    yield from _reach(item, rest, join_path(path, i))
    elif isinstance(doc, dict) and step in doc:
        yield from _reach(doc[step], rest, join_path(path, step))


def _containers(value: Any) -> tuple[int, int]:
    if isinstance(value, list):
        inner = [_containers(v) for v in value]
        return 1 + sum(a for a, _ in inner), sum(k for _, k in inner)
    if isinstance(value, dict):
        inner = [_containers(v) for v in value.values()]
        return sum(a for a, _ in inner), len(value) + sum(k for _, k in inner)
    return 0, 0


def _gather(found: list[pl.DataFrame], n: int) -> pl.Series:
    frames = [f for f in found if len(f)]
    out = pl.Series("problems", [None] * n, dtype=pl.Utf8)
    if not frames:
        return out
    grouped = (
        pl.concat(frames)
        .with_columns(pl.col("msg").cast(pl.Utf8))
        .group_by("row", maintain_order=True)
        .agg(pl.col("msg").head(SHOWN_PROBLEMS), pl.len().alias("n"))
        .select(
            "row",
            pl.col("msg").list.join("; ")
            + pl.when(pl.col("n") > SHOWN_PROBLEMS)
            .then(pl.format(" (and {} more)", pl.col("n") - SHOWN_PROBLEMS))
            .otherwise(pl.lit("")),
        )
    )
    return out.scatter(grouped["row"].cast(pl.Int64), grouped["msg"])


# ---------------------------------------------------------------------------------- degenerate
#: The patterns :func:`degenerate` flags, by name.
DEGENERATE_PATTERNS = ("same_answer", "all_null", "field_names", "shifted", "prose")
#: same_answer: one answer given to at least this many different requests ...
SAME_ANSWER_MIN_REQUESTS = 5
#: ... whose free text (strings without enum / pattern / format, JSON text) totals this many
#: characters: short answers (labels, scores, yes/no) repeat legitimately and are never flagged.
SAME_ANSWER_MIN_TEXT = 100
#: Batch profiles (shifted, prose) need this many filled values of a field; with fewer, or when
#: half the rows or more would be flagged (the profile itself is then in doubt), nothing is.
PROFILE_MIN_ROWS = 20
#: shifted: two neighbouring fields' typical sizes (text length, number magnitude) must differ
#: by this factor before a value of one size in the other's place means anything.
SHIFT_FACTOR = 4.0
#: shifted: neighbouring free-text fields with different names holding the same text (at least
#: this long) in at least this share of the rows.
NEIGHBOUR_MIN_CHARS, NEIGHBOUR_SHARE = 12, 0.5
#: prose: a field is a "short token" field when this share of its values have at most
#: SHORT_WORDS words; a value there is prose with PROSE_MIN_WORDS words and a sentence end.
SHORT_SHARE, SHORT_WORDS, PROSE_MIN_WORDS = 0.9, 3, 8
#: prose anywhere: a chatbot preamble starting a free-text value of six words or more.
_PREAMBLE = (
    r"(?i)^\s*(sure|certainly|of course|here is|here's|here are|as an ai|i'm sorry|i am sorry|"
    r"i cannot|i can't|i am unable|i'm unable)\b"
)


@dataclass(frozen=True)
class _Leaf:
    name: str
    kind: Literal["text", "code", "number", "flag", "json", "other"]


def _leaf(shape: Shape) -> _Leaf | None:
    """How a scalar field counts for the heuristics (None for objects / arrays)."""
    schema = shape.schema
    if shape.kind == "string":
        constrained = any(k in schema for k in ("enum", "const", "pattern", "format"))
        return _Leaf("", "code" if constrained else "text")
    if shape.kind in ("integer", "number", "decimal"):
        return _Leaf("", "code" if "enum" in schema or "const" in schema else "number")
    if shape.kind == "boolean":
        return _Leaf("", "flag")
    if shape.kind == "json":
        return _Leaf("", "json")
    if shape.kind == "scalars":
        return _Leaf("", "other")
    return None


def degenerate(
    parsed: pl.Series, request_hash: pl.Series | None, schema: Any
) -> tuple[pl.Series, dict[str, int]]:
    """Answers that meet their schema but carry no answer, found across the batch: per row the
    patterns seen (``"prose: $.label holds 14 words where its other values hold at most 3"``),
    or null, and the number of rows showing each pattern (every name of
    :data:`DEGENERATE_PATTERNS`, 0 when unseen).

    ``parsed`` is :func:`parse_structured`'s column for ``schema``; ``request_hash`` the rows'
    request content addresses (rows with equal hashes asked the same thing; None: every row is a
    different request). Conservative by design (a flag on real data costs more than a miss):

    * ``same_answer``: one answer given to :data:`SAME_ANSWER_MIN_REQUESTS` or more different
      requests, when its free text totals :data:`SAME_ANSWER_MIN_TEXT` characters or more;
    * ``all_null``: an answer of two or more fields where every field is null or a default
      (``0``, ``""``, ``[]``, ``false``, ``{}``) and at least one is null, ``""`` or ``[]``;
    * ``field_names``: a free-text field holding its own name or the name of a field of the
      same object that is not its neighbour (case and ``_``/``-``/space ignored; names of three
      characters or more);
    * ``shifted``: a free-text field holding the name of its neighbour field (key/value pairs
      moved one position); two or more fields of an object each holding a value of the size
      typical of a neighbour field and far from their own (sizes: text length, number
      magnitude; typical sizes at least :data:`SHIFT_FACTOR` apart, from
      :data:`PROFILE_MIN_ROWS`+ rows); neighbouring free-text fields with different names
      holding the same text (:data:`NEIGHBOUR_MIN_CHARS`+ characters) in at least
      :data:`NEIGHBOUR_SHARE` of the rows;
    * ``prose``: a free-text value of :data:`PROSE_MIN_WORDS`+ words with a sentence end in a
      field whose other values are short tokens (:data:`SHORT_SHARE` of them at most
      :data:`SHORT_WORDS` words), or starting with a chatbot preamble ("Sure!", "Here is",
      "As an AI", ...) over six words or more.

    Enum, pattern and type violations are :func:`validate`'s, not flagged here.

    >>> import polars as pl
    >>> schema = {"type": "object", "properties": {"title": {"type": "string"},
    ...                                           "author": {"type": "string"}}}
    >>> rows = pl.Series([{"title": "Dune", "author": "Herbert"},
    ...                   {"title": "author", "author": "Tolkien"},
    ...                   {"title": None, "author": ""}])
    >>> reasons, counts = degenerate(rows, None, schema)
    >>> reasons.to_list()
    [None, "shifted: $.title holds the name of its neighbour field 'author'", \
'all_null: every field is empty or a default']
    >>> counts["shifted"], counts["all_null"], counts["prose"]
    (1, 1, 0)
    """
    shape = shape_of(schema)
    n = len(parsed)
    frame = pl.DataFrame({"row": pl.Series(range(n), dtype=pl.UInt32), "v": parsed})
    found: dict[str, list[pl.DataFrame]] = {p: [] for p in DEGENERATE_PATTERNS}
    answered = frame.filter(pl.col("v").is_not_null())
    found["all_null"].append(_all_null(shape, answered))
    found["same_answer"].append(_same_answer(shape, answered, request_hash))
    for node, instances, path in _objects(shape, answered, ()):
        _object_patterns(node, instances, path, found)
    reasons = [
        pl.concat(frames).with_columns(pl.col("msg").cast(pl.Utf8))
        for frames in found.values()
        if any(len(f) for f in frames)
    ]
    counts = {
        name: int(pl.concat(frames)["row"].n_unique()) if any(len(f) for f in frames) else 0
        for name, frames in found.items()
    }
    return _gather(reasons, n).alias("degenerate"), counts


def _objects(
    shape: Shape, frame: pl.DataFrame, path: tuple[str | int, ...]
) -> Iterator[tuple[Shape, pl.DataFrame, tuple[str | int, ...]]]:
    """Every object node with its non-null instances (row, list indices, v)."""
    keep = [c for c in frame.columns if c != "v"]
    if shape.kind == "object":
        yield shape, frame, path
        for name, child in shape.fields:
            if child.kind in ("object", "array"):
                sub = frame.select(*keep, pl.col("v").struct.field(name).alias("v"))
                yield from _objects(child, sub.filter(pl.col("v").is_not_null()), (*path, name))
    elif shape.kind == "array" and shape.items is not None:
        if shape.items.kind not in ("object", "array"):
            return
        level = sum(isinstance(s, int) for s in path)
        index = f"i{level}"
        size = pl.col("v").list.len()
        elements = (
            frame.filter(size > 0)
            .with_columns(pl.int_ranges(size).alias(index))
            .explode(["v", index])
        )
        elements = elements.filter(pl.col("v").is_not_null())
        yield from _objects(shape.items, elements, (*path, level))


def _informative(value: pl.Expr, shape: Shape) -> tuple[pl.Expr, pl.Expr, int]:
    """Per value: how many leaves carry data, how many are null / "" / [], and the leaf count
    of the schema (list items counted once)."""
    if shape.kind in ("object", "tuple"):
        parts = [_informative(value.struct.field(n), s) for n, s in shape.fields]
        data = pl.sum_horizontal([p[0] for p in parts])
        empty = pl.sum_horizontal([p[1] for p in parts])
        data = pl.when(value.is_null()).then(0).otherwise(data)
        empty = pl.when(value.is_null()).then(1).otherwise(empty)
        return data, empty, sum(p[2] for p in parts)
    if shape.kind == "array" and shape.items is not None:
        inner, _, leaves = _informative(pl.element(), shape.items)
        data = value.list.eval(inner).list.sum().fill_null(0)
        empty = (value.is_null() | (value.list.len() == 0)).cast(pl.Int64)
        return data, empty, max(leaves, 1)
    leaf = _leaf(shape)
    kind = leaf.kind if leaf else "other"
    present = value.is_not_null()
    if kind == "text":
        filled = present & (value.str.strip_chars() != "")
        empty = ~filled
    elif kind == "number":
        filled = present & (value != 0)
        empty = ~present
    elif kind == "flag":
        filled = value.fill_null(False)
        empty = ~present
    elif kind == "json":
        filled = present & ~value.is_in(["{}", "[]", '""', "0", "false", "null"])
        empty = ~filled
    else:
        filled = present
        empty = ~present
    return filled.fill_null(False).cast(pl.Int64), empty.fill_null(True).cast(pl.Int64), 1


def _all_null(shape: Shape, frame: pl.DataFrame) -> pl.DataFrame:
    data, empty, leaves = _informative(pl.col("v"), shape)
    if shape.kind == "array" and shape.items is not None:
        data, empty, leaves = _informative(pl.col("v"), shape.items)
        per = pl.element()
        inner_data, inner_empty, leaves = _informative(per, shape.items)
        flagged = (
            (pl.col("v").list.len() > 0)
            & (pl.col("v").list.eval(inner_data).list.sum() == 0)
            & (pl.col("v").list.eval(inner_empty).list.sum() > 0)
        )
    else:
        flagged = (data == 0) & (empty > 0)
    if leaves < 2:
        return frame.clear().select("row", pl.lit("").alias("msg"))
    return frame.filter(flagged).select(
        "row", pl.lit("all_null: every field is empty or a default").alias("msg")
    )


def _free_text(value: pl.Expr, shape: Shape) -> pl.Expr:
    """Characters of free text (and JSON text) in a value."""
    if shape.kind in ("object", "tuple"):
        inner = [_free_text(value.struct.field(n), s) for n, s in shape.fields]
        return pl.sum_horizontal(inner) if inner else pl.lit(0)
    if shape.kind == "array" and shape.items is not None:
        return value.list.eval(_free_text(pl.element(), shape.items)).list.sum().fill_null(0)
    leaf = _leaf(shape)
    if leaf is not None and leaf.kind in ("text", "json"):
        return value.str.len_chars().fill_null(0)
    return pl.lit(0)


def _same_answer(shape: Shape, frame: pl.DataFrame, request_hash: pl.Series | None) -> pl.DataFrame:
    hashes = (
        request_hash.cast(pl.Utf8).gather(frame["row"])
        if request_hash is not None
        else frame["row"].cast(pl.Utf8)
    )
    answers = frame.with_columns(
        answer=pl.col("v").hash(seed=1), request=hashes, text=_free_text(pl.col("v"), shape)
    )
    shared = answers.with_columns(
        requests=pl.col("request").n_unique().over("answer"),
    ).filter(
        (pl.col("requests") >= SAME_ANSWER_MIN_REQUESTS) & (pl.col("text") >= SAME_ANSWER_MIN_TEXT)
    )
    return shared.select(
        "row",
        pl.format(
            "same_answer: the same answer was given to {} different requests", pl.col("requests")
        ).alias("msg"),
    )


def _name_key(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name.lower())


def _object_patterns(
    shape: Shape, frame: pl.DataFrame, path: tuple[str | int, ...], found: dict[str, list[Any]]
) -> None:
    names = [n for n, _ in shape.fields]
    leaves = [(n, _leaf(s)) for n, s in shape.fields]
    value = pl.col("v")
    for i, (name, leaf) in enumerate(leaves):
        if leaf is None or leaf.kind != "text":
            continue
        here = (*path, name)
        said = value.struct.field(name).str.replace_all(r"[\s_\-]+", "").str.to_lowercase()
        neighbours = {names[j] for j in (i - 1, i + 1) if 0 <= j < len(names)}
        for other in names:
            if len(_name_key(other)) < 3:  # "a", "id": too likely to be a real value
                continue
            hit = said == _name_key(other)
            if other in neighbours:
                what = f"shifted: {{}} holds the name of its neighbour field {other!r}"
                found["shifted"].append(_flag(frame, hit, here, what))
            else:
                whose = "its own name" if other == name else f"the name of field {other!r}"
                found["field_names"].append(
                    _flag(frame, hit, here, f"field_names: {{}} holds {whose}")
                )
        _prose(frame, value.struct.field(name), here, found)
    _shifted_sizes(shape, frame, path, found)
    _shifted_copies(shape, frame, path, found)


def _flag(
    frame: pl.DataFrame, mask: pl.Expr, path: tuple[str | int, ...], what: str
) -> pl.DataFrame:
    left, right = what.split("{}", 1)
    return frame.filter(mask.fill_null(False)).select(
        "row", (pl.lit(left) + _path_expr(path) + pl.lit(right)).alias("msg")
    )


def _words(value: pl.Expr) -> pl.Expr:
    return value.str.count_matches(r"\S+")


def _prose(
    frame: pl.DataFrame, value: pl.Expr, path: tuple[str | int, ...], found: dict[str, list[Any]]
) -> None:
    words = _words(value)
    preamble = value.str.contains(_PREAMBLE) & (words >= 6)
    found["prose"].append(_flag(frame, preamble, path, "prose: {} starts like a chatbot's reply"))
    stats = frame.select(
        filled=value.is_not_null() & (value.str.strip_chars() != ""),
        short=(words <= SHORT_WORDS),
    ).filter(pl.col("filled"))
    if len(stats) < PROFILE_MIN_ROWS or stats["short"].mean() < SHORT_SHARE:  # type: ignore[operator]
        return
    sentence = value.str.contains(r"[.!?](\s|$)")
    prose = (words >= PROSE_MIN_WORDS) & sentence & ~preamble
    found["prose"].append(
        _flag(
            frame,
            prose,
            path,
            f"prose: {{}} holds a sentence where its other values are at most {SHORT_WORDS} words",
        )
    )


def _size(value: pl.Expr, kind: str) -> pl.Expr:
    """A value's size on a log scale: text length, number magnitude."""
    if kind == "text":
        return (value.str.len_chars().cast(pl.Float64) + 1).log(10)
    return (value.cast(pl.Float64).abs() + 1).log(10)


def _shifted_sizes(
    shape: Shape, frame: pl.DataFrame, path: tuple[str | int, ...], found: dict[str, list[Any]]
) -> None:
    """Rows where two or more fields hold values of a neighbour's typical size."""
    sized = [
        (n, leaf.kind)
        for n, s in shape.fields
        if (leaf := _leaf(s)) is not None and leaf.kind in ("text", "number")
    ]
    if len(sized) < 2 or len(frame) < PROFILE_MIN_ROWS:
        return
    columns = {
        f"__size{i}": _size(pl.col("v").struct.field(n), k) for i, (n, k) in enumerate(sized)
    }
    sizes = frame.with_columns(**columns)
    medians = {c: sizes[c].median() for c in columns}
    if any(sizes[c].count() < PROFILE_MIN_ROWS or medians[c] is None for c in columns):
        return
    gap = math.log10(SHIFT_FACTOR)
    like: list[pl.Expr] = []
    names = list(columns)
    for i, (column, (_, kind)) in enumerate(zip(names, sized)):
        own = float(medians[column])  # type: ignore[arg-type]
        options = []
        for j in (i - 1, i + 1):
            if 0 <= j < len(sized) and sized[j][1] == kind:
                other = float(medians[names[j]])  # type: ignore[arg-type]
                apart = abs(own - other)
                if apart >= gap:
                    x = pl.col(column)
                    near, far = (x - other).abs() <= apart / 4, (x - own).abs() >= apart * 0.75
                    options.append(near & far)
        if options:
            like.append(pl.any_horizontal(options).fill_null(False).cast(pl.Int64))
    if len(like) < 2:
        return
    flagged = sizes.filter(pl.sum_horizontal(like) >= 2)
    if len(flagged) * 2 >= len(sizes):
        return  # most rows differ from the profile: the profile is in doubt
    what = " hold values the size of their neighbours' (values moved one field)"
    found["shifted"].append(
        flagged.select(
            "row", (pl.lit("shifted: fields of ") + _path_expr(path) + pl.lit(what)).alias("msg")
        )
    )


def _shifted_copies(
    shape: Shape, frame: pl.DataFrame, path: tuple[str | int, ...], found: dict[str, list[Any]]
) -> None:
    """Neighbouring free-text fields holding the same text in most rows."""
    texts = [n for n, s in shape.fields if (leaf := _leaf(s)) is not None and leaf.kind == "text"]
    order = [n for n, _ in shape.fields]
    for a, b in zip(texts, texts[1:]):
        if abs(order.index(a) - order.index(b)) != 1 or _shares_word(a, b):
            continue
        x, y = pl.col("v").struct.field(a), pl.col("v").struct.field(b)
        same = (x == y) & (x.str.len_chars() >= NEIGHBOUR_MIN_CHARS)
        both = frame.select(same=same.fill_null(False), both=(x.is_not_null() & y.is_not_null()))
        filled = int(both["both"].sum())
        if filled < PROFILE_MIN_ROWS or int(both["same"].sum()) < NEIGHBOUR_SHARE * filled:
            continue
        found["shifted"].append(
            _flag(frame, same, (*path, b), f"shifted: {{}} holds the same text as {a!r}")
        )


def _shares_word(a: str, b: str) -> bool:
    """Whether two field names share a word (billing_city / shipping_city may agree)."""
    split = re.compile(r"[_\-\s]+|(?<=[a-z])(?=[A-Z])")
    return bool({w.lower() for w in split.split(a) if w} & {w.lower() for w in split.split(b) if w})
