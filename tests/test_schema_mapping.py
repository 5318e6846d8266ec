"""Every response schema maps to a dtype Parquet can hold, and any answer text decodes into it
without raising (the bug: an empty Struct found only when the paid results were written)."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import json
import uuid
from typing import Any, Literal

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gembatch._results.schema import parse_structured, response_dtype, shape_of
from gembatch.exceptions import ConfigError

pydantic = pytest.importorskip("pydantic")
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter  # noqa: E402

FAST = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
JUNK = ["", "   ", "prose, not JSON", "{", '{"a": ', "[1, 2]", '{"zz": 1}', "null", "3", '"s"']


def _structs(dtype: pl.DataType) -> list[pl.Struct]:
    if isinstance(dtype, pl.Struct):
        return [dtype, *[s for f in dtype.fields for s in _structs(f.dtype)]]
    if isinstance(dtype, (pl.List, pl.Array)):
        return _structs(dtype.inner)
    return []


def _writes_to_parquet(parsed: pl.Series, tmp_path: Any) -> None:
    assert all(s.fields for s in _structs(parsed.dtype)), parsed.dtype  # never an empty Struct
    path = tmp_path / "parsed.parquet"
    frame = pl.DataFrame({"p": parsed})
    frame.write_parquet(path)
    assert pl.read_parquet(path).equals(frame)


# --------------------------------------------------------------------------- pydantic, every kind
class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Address(BaseModel):
    city: str
    zip: int | None = None


class Cat(BaseModel):
    kind: Literal["cat"]
    lives: int


class Dog(BaseModel):
    kind: Literal["dog"]
    bark: str


class Empty(BaseModel):
    pass


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str


class Everything(BaseModel):
    home: Address = Field(description="where they live")
    previous: Address | None = None
    many: list[Address]
    label: Literal["x", "y"]
    stars: Literal[1, 2, 3]
    only: Literal["only"]
    counts: dict[str, int]
    free: dict[str, Any]
    anything: Any = None
    pair: tuple[int, str]
    numbers: tuple[int, ...]
    day: dt.date
    moment: dt.datetime
    ident: uuid.UUID
    price: decimal.Decimal
    color: Color
    pet: Cat | Dog
    either: int | str
    mixed: list[Any]
    loose: dict = {}
    nothing: Empty
    tags: set[str]


EVERYTHING = Everything(
    home=Address(city="Oslo"),
    many=[Address(city="Rome", zip=100)],
    label="x",
    stars=2,
    only="only",
    counts={"a": 1},
    free={"deep": [1, {"x": None}], "é": "ü"},
    anything="a string",
    pair=(1, "one"),
    numbers=(1, 2, 3),
    day=dt.date(2024, 2, 29),
    moment=dt.datetime(2024, 1, 31, 10, 30, tzinfo=dt.timezone.utc),
    ident=uuid.UUID("12345678-1234-5678-1234-567812345678"),
    price=decimal.Decimal("1.50"),
    color=Color.BLUE,
    pet=Dog(kind="dog", bark="woof"),
    either="7",
    mixed=[1, "1", None, {"a": []}],
    nothing=Empty(),
    tags={"t"},
)
KINDS: list[tuple[Any, list[Any]]] = [
    (Everything, [EVERYTHING]),
    (list[Address], [[Address(city="a"), Address(city="b", zip=1)], []]),
    (dict[str, int], [{"a": 1}, {}]),
    (dict[str, Any], [{"a": [1, {"b": None}]}, {}]),
    (Any, [{"a": 1}, [1, 2], "text", 3, None]),
    (tuple[int, str], [(1, "a")]),
    (tuple[int, ...], [(1, 2), ()]),
    (tuple, [(1, "a", None)]),
    (Address | None, [Address(city="x"), None]),
    (int, [3]),
    (Literal["a", "b"], ["a"]),
    (Literal[1, 2], [2]),
    (Literal["a", 1], ["a", 1]),
    (dt.date, [dt.date(2024, 1, 1)]),
    (dt.datetime, [dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)]),
    (uuid.UUID, [uuid.UUID(int=5)]),
    (decimal.Decimal, [decimal.Decimal("2.25")]),
    (Color, [Color.RED]),
    (list[dict[str, Any]], [[{"a": 1}, {}]]),
    (set[str], [{"a", "b"}]),
    (Cat | Dog, [Cat(kind="cat", lives=9)]),
    (Empty, [Empty()]),
    (Open, [Open(name="n", more=[1])]),  # type: ignore[call-arg]
    (list[list[Address]], [[[Address(city="c")]], [[]]]),
    (dict[str, list[Address]], [{"k": [Address(city="d")]}]),
]


@pytest.mark.parametrize("kind, samples", KINDS, ids=[str(k) for k, _ in KINDS])
def test_every_pydantic_kind_parses_and_writes_parquet(kind, samples, tmp_path):
    adapter = TypeAdapter(kind)
    schema = adapter.json_schema()
    texts = [adapter.dump_json(s).decode() for s in samples]
    parsed, errors = parse_structured(pl.Series([*texts, *JUNK, None], dtype=pl.Utf8), schema)
    assert parsed.dtype == response_dtype(schema)
    assert errors.to_list()[: len(texts)] == [None] * len(texts)
    _writes_to_parquet(parsed, tmp_path)


def test_values_without_a_fixed_shape_keep_their_json_text():
    parsed, errors = parse_structured(
        pl.Series([EVERYTHING.model_dump_json()]), Everything.model_json_schema()
    )
    row = parsed[0]
    assert errors[0] is None
    assert row["home"] == {"city": "Oslo", "zip": None} and row["previous"] is None
    assert json.loads(row["free"]) == {"deep": [1, {"x": None}], "é": "ü"}
    assert row["free"] == '{"deep":[1,{"x":null}],"é":"ü"}'  # compact, not ASCII-escaped
    assert row["counts"] == '{"a":1}' and row["loose"] == "{}" and row["nothing"] == "{}"
    assert row["anything"] == '"a string"'  # a string stays a JSON string: "7" is not 7
    assert row["pet"] == '{"kind":"dog","bark":"woof"}'
    assert row["mixed"] == ["1", '"1"', None, '{"a":[]}']
    assert row["pair"] == {"0": 1, "1": "one"} and row["numbers"] == [1, 2, 3]
    assert row["day"] == dt.date(2024, 2, 29)
    assert row["moment"] == dt.datetime(2024, 1, 31, 10, 30, tzinfo=dt.timezone.utc)
    assert row["ident"] == "12345678-1234-5678-1234-567812345678"
    assert row["either"] == "7" and row["stars"] == 2 and row["color"] == "blue"
    assert row["tags"] == ["t"]


def test_the_dtype_of_each_construct():
    cases: list[tuple[Any, pl.DataType]] = [
        (
            {"type": "object", "properties": {"b": {"type": "integer"}, "a": {}}},
            pl.Struct({"b": pl.Int64, "a": pl.Utf8}),
        ),
        ({"type": "object"}, pl.Utf8),
        ({"type": "object", "properties": {}}, pl.Utf8),
        ({"type": "object", "additionalProperties": {"type": "integer"}}, pl.Utf8),
        ({}, pl.Utf8),
        (True, pl.Utf8),
        ({"title": "only a title"}, pl.Utf8),
        ({"type": "array"}, pl.List(pl.Utf8)),
        ({"type": "array", "items": {"type": "number"}}, pl.List(pl.Float64)),
        (
            {
                "type": "array",
                "prefixItems": [{"type": "integer"}, {"type": "string"}],
                "items": False,
            },
            pl.Struct({"0": pl.Int64, "1": pl.Utf8}),
        ),
        ({"type": "array", "prefixItems": [{"type": "integer"}]}, pl.Utf8),  # open-ended
        ({"type": "string", "format": "date"}, pl.Date),
        ({"type": "string", "format": "date-time"}, pl.Datetime("us", "UTC")),
        ({"type": "string", "format": "uuid"}, pl.Utf8),
        ({"enum": ["a", "b"]}, pl.Utf8),
        ({"enum": [1, 2.5]}, pl.Float64),
        ({"enum": [True]}, pl.Boolean),
        ({"const": 3}, pl.Int64),
        ({"enum": [{"a": 1}]}, pl.Utf8),
        ({"type": ["integer", "number", "null"]}, pl.Float64),
        ({"type": ["boolean", "string"]}, pl.Utf8),
        ({"anyOf": [{"type": "integer"}, {"type": "object"}]}, pl.Utf8),
        (
            {"anyOf": [{"type": "number"}, {"type": "string", "pattern": "^-?[0-9.]+$"}]},
            pl.Float64,
        ),  # pydantic's Decimal (it writes the pattern in some versions)
        ({"anyOf": [{"type": "number"}, {"type": "string"}]}, pl.Utf8),  # float | str: lossless
        ({"allOf": [{"type": "integer"}]}, pl.Int64),
        ({"allOf": [{"type": "object"}, {"required": ["a"]}]}, pl.Utf8),
        ({"type": "null"}, pl.Utf8),
        (
            {"$defs": {"A": {"type": "integer"}}, "type": "array", "items": {"$ref": "#/$defs/A"}},
            pl.List(pl.Int64),
        ),
    ]
    for schema, dtype in cases:
        assert response_dtype(schema) == dtype, schema


def test_openapi_subset():
    schema = {
        "type": "OBJECT",
        "properties": {
            "b": {"type": "BOOLEAN"},
            "a": {"type": "ARRAY", "items": {"type": "NUMBER"}},
            "n": {"type": "INTEGER", "nullable": True},
            "e": {"type": "INTEGER", "format": "enum", "enum": ["1", "2"]},
            "d": {"type": "STRING", "format": "date-time"},
            "m": {"type": "OBJECT", "additionalProperties": {"type": "INTEGER"}},
        },
        "propertyOrdering": ["a", "b"],
    }
    assert response_dtype(schema) == pl.Struct(
        {
            "a": pl.List(pl.Float64),
            "b": pl.Boolean,
            "n": pl.Int64,
            "e": pl.Int64,
            "d": pl.Datetime("us", "UTC"),
            "m": pl.Utf8,
        }
    )
    parsed, errors = parse_structured(
        pl.Series(['{"b": true, "a": [1], "n": null, "e": 2, "d": "2024-01-01T00:00:00+01:00"}']),
        schema,
    )
    assert errors[0] is None
    assert parsed[0]["d"] == dt.datetime(2023, 12, 31, 23, tzinfo=dt.timezone.utc)


def test_recursion_is_refused_naming_the_path():
    class Node(BaseModel):
        name: str
        children: list[Node] = []

    with pytest.raises(ConfigError, match=r"recursive: #/properties/children/items"):
        response_dtype(Node.model_json_schema())
    with pytest.raises(ConfigError, match="recursive"):
        parse_structured(pl.Series(["{}"]), {"properties": {"me": {"$ref": "#"}}})
    with pytest.raises(ConfigError, match="points to nothing"):
        response_dtype({"items": {"$ref": "#/$defs/Missing"}, "type": "array"})
    with pytest.raises(ConfigError, match="must be a JSON Schema dict"):
        response_dtype(["not", "a", "schema"])


def test_top_level_arrays_tuples_and_scalars():
    schema = TypeAdapter(list[Address]).json_schema()
    parsed, errors = parse_structured(
        pl.Series(['[{"city": "a"}]', "[]", '{"city": "a"}', "```json\n[]\n```", "null"]), schema
    )
    assert parsed.to_list() == [[{"city": "a", "zip": None}], [], None, [], None]
    assert errors.to_list() == [
        None,
        None,
        'not a JSON array: {"city": "a"}',
        None,
        "JSON null, expected a value",
    ]
    pair = TypeAdapter(tuple[int, str]).json_schema()
    parsed, errors = parse_structured(pl.Series(['[1, "a"]', "[1]", '[1, "a", 3]', "{}"]), pair)
    assert parsed.to_list()[:3] == [{"0": 1, "1": "a"}, {"0": 1, "1": None}, {"0": 1, "1": "a"}]
    assert errors.to_list()[:3] == [None, None, None] and errors[3].startswith("not a JSON array")
    # a nullable top level takes a JSON null as an answer
    parsed, errors = parse_structured(pl.Series(["null", "3"]), {"type": ["integer", "null"]})
    assert parsed.to_list() == [None, 3] and errors.to_list() == [None, None]


def test_bad_rows_in_rewritten_schemas_get_their_own_errors():
    schema = {"type": "object", "properties": {"m": {"type": "object"}, "n": {"type": "integer"}}}
    texts = ['{"m": {"a": 1}, "n": 2}', '{"m": 1, "n": "x"}', '{"m": NaN}', "{'m': 1}", "[]", "{}"]
    parsed, errors = parse_structured(pl.Series(texts), schema)
    assert parsed.to_list()[0] == {"m": '{"a":1}', "n": 2}
    assert parsed.to_list()[5] == {"m": None, "n": None}
    problems = errors.to_list()
    assert problems[0] is None and problems[5] is None
    assert problems[1].startswith("does not match the response schema")
    assert problems[2].startswith("not valid JSON") and problems[3].startswith("not valid JSON")
    assert problems[4] == "not a JSON object: []"


def test_shapes_name_their_kinds():
    shape = shape_of(Everything.model_json_schema())
    kinds = {name: s.kind for name, s in shape.fields}
    assert kinds["pair"] == "tuple" and kinds["free"] == "json" and kinds["home"] == "object"
    assert kinds["price"] == "scalars" and kinds["either"] == "scalars"
    assert shape.rewritten and not shape_of(TypeAdapter(list[Address]).json_schema()).rewritten


# ------------------------------------------------------------------------ any schema, any text
LEAVES = st.sampled_from(
    [
        {"type": "string"},
        {"type": "integer"},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "null"},
        {"type": "string", "format": "date"},
        {"type": "string", "format": "date-time"},
        {"enum": ["a", 1, None]},
        {"enum": [1, 2]},
        {"const": "c"},
        {},
        True,
        {"type": ["integer", "string"]},
        {"type": "object"},
        {"type": "array"},
    ]
)


def _grow(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    names = st.sampled_from(["a", "b", "c d", "0"])
    return st.one_of(
        st.builds(
            lambda p, order: {"type": "object", "properties": p, **order},
            st.dictionaries(names, children, max_size=3),
            st.sampled_from([{}, {"propertyOrdering": ["b", "a"]}]),
        ),
        st.builds(lambda i: {"type": "array", "items": i}, children),
        st.builds(lambda c: {"anyOf": [c, {"type": "null"}]}, children),
        st.builds(lambda a, b: {"anyOf": [a, b]}, children, children),
        st.builds(lambda c: {"type": "object", "additionalProperties": c}, children),
        st.builds(
            lambda a, b: {"type": "array", "prefixItems": [a, b], "items": False},
            children,
            children,
        ),
        st.builds(lambda c: {"allOf": [c]}, children),
    )


JSON = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=5),
    ),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from(["a", "b", "0"]), c),
    max_leaves=8,
)
TEXTS = st.one_of(
    JSON.map(json.dumps),
    st.text(max_size=30),
    st.sampled_from(JUNK + ['{"a": "\\ud800"}', '["\\u0000"]', "```\n{}\n```", '{"a": 1e999}']),
)


@FAST
@given(schema=st.recursive(LEAVES, _grow, max_leaves=8), texts=st.lists(TEXTS, max_size=8))
def test_any_schema_and_any_text_decode_and_write(schema, texts, tmp_path_factory):
    dtype = response_dtype(schema)
    parsed, errors = parse_structured(pl.Series(texts, dtype=pl.Utf8), schema)
    assert parsed.dtype == dtype and len(parsed) == len(errors) == len(texts)
    _writes_to_parquet(parsed, tmp_path_factory.mktemp("p"))
    # the earlier signature (a dtype) never raises either, and fits what the schema fits
    by_dtype, dtype_errors = parse_structured(pl.Series(texts, dtype=pl.Utf8), dtype)
    assert by_dtype.dtype == dtype
    for text, error, dtype_error in zip(texts, errors, dtype_errors):
        if error is None and text.strip() != "null":  # a dtype cannot say null is an answer
            assert dtype_error is None, (text, dtype_error)


def test_the_earlier_dtype_signature_fits_json_text_and_tuples():
    class Row(BaseModel):
        a: int
        counts: dict[str, int]
        pair: tuple[int, str]
        anything: Any = None

    texts = pl.Series(['{"a": 1, "counts": {"x": 1}, "pair": [1, "z"], "anything": [2]}', "{"])
    parsed, errors = parse_structured(texts, response_dtype(Row.model_json_schema()))
    assert parsed.to_list()[0] == {
        "a": 1,
        "counts": '{"x":1}',
        "pair": {"0": 1, "1": "z"},
        "anything": "[2]",
    }
    assert errors.to_list() == [None, "not a JSON object: {"]


# ------------------------------------------------------------------ numbers beyond the column type
BIG = 10**20
OBJ = {
    "type": "object",
    "properties": {
        "n": {"type": "integer"},
        "xs": {"type": "array", "items": {"type": "integer"}},
        "f": {"type": "number"},
        "t": {"prefixItems": [{"type": "integer"}], "items": False},
    },
}
FIT = "a value does not fit the parsed column's type: "


def test_integers_beyond_int64_are_errors_naming_their_paths_never_silent_nulls():
    texts = [
        f'{{"n": {BIG}}}',
        '{"n": 1e20}',  # a whole number is an integer in JSON Schema
        f'{{"n": 1, "xs": [1, {BIG}, -{BIG}, 2, {BIG}, {BIG}]}}',
        f'{{"t": [{BIG}]}}',
        f'{{"n": {2**63 - 1}, "xs": [{-(2**63)}], "f": {BIG}}}',  # they fit
        '{"n": 2, "f": "12345678901234567890123"}',  # digits in a string: decoded as it is
    ]
    parsed, errors = parse_structured(pl.Series(texts), OBJ)
    assert errors.to_list()[:4] == [
        FIT + "$.n: an integer beyond the range of Int64",
        FIT + "$.n: an integer beyond the range of Int64",
        FIT + "$.xs[1]: an integer beyond the range of Int64; $.xs[2]: an integer beyond the "
        "range of Int64; $.xs[4]: an integer beyond the range of Int64 (and 1 more)",
        FIT + "$.t[0]: an integer beyond the range of Int64",
    ]
    assert parsed.to_list()[:4] == [None] * 4
    assert errors[4] is None and parsed[4] == {
        "n": 2**63 - 1,
        "xs": [-(2**63)],
        "f": 1e20,
        "t": None,
    }
    assert errors[5] is not None and "Int64" not in errors[5]  # a string where a number belongs
    top, top_errors = parse_structured(pl.Series([str(BIG), "7"]), {"type": "integer"})
    assert top.to_list() == [None, 7]
    assert top_errors.to_list() == [FIT + "$: an integer beyond the range of Int64", None]


def test_numbers_beyond_float64_are_errors_naming_their_paths():
    huge = "1" + "0" * 400
    texts = ['{"f": 1e400}', '{"f": -1e400}', f'{{"f": {huge}}}', '{"f": 1e308}']
    parsed, errors = parse_structured(pl.Series(texts), OBJ)
    assert errors.to_list() == [FIT + "$.f: a number beyond the range of Float64"] * 3 + [None]
    assert parsed[3] == {"n": None, "xs": None, "f": 1e308, "t": None}
    # JSON text keeps any integer exactly; infinity is no JSON
    anything = {"type": "object", "properties": {"a": {}}}
    parsed, errors = parse_structured(pl.Series([f'{{"a": {huge}}}', '{"a": [1e400]}']), anything)
    assert parsed[0] == {"a": huge} and errors[0] is None
    assert errors[1] == FIT + "$.a[0]: a number beyond the range of Float64"


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "integer", "minimum": BIG},
        {"type": "integer", "maximum": -BIG},
        {"type": "integer", "exclusiveMaximum": 2**63},
        {"type": "integer", "enum": [1, BIG]},
        {"type": "INTEGER", "minimum": 1e20},
    ],
)
def test_an_integer_schema_bounded_beyond_int64_maps_to_exact_json_text(schema):
    assert response_dtype(schema) == pl.Utf8
    wrapped = {"type": "object", "properties": {"n": schema}}
    assert response_dtype(wrapped) == pl.Struct({"n": pl.Utf8})
    parsed, errors = parse_structured(pl.Series([f'{{"n": {BIG}}}', '{"n": 3}']), wrapped)
    assert parsed.to_list() == [{"n": str(BIG)}, {"n": "3"}]
    assert errors.to_list() == [None, None]
    assert response_dtype({"type": "integer", "minimum": -(2**62), "maximum": 2**62}) == pl.Int64
