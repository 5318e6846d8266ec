"""Response schema forms: JSON Schema <-> the OpenAPI subset without changing meaning, and the
schemas refused before anything is spent (recursion, depth, size, keywords a form lacks)."""

from __future__ import annotations

import json
from typing import Any, Literal

import jsonschema
import pytest

from gembatch._build.schemas import (
    DEFAULT_MAX_DEPTH,
    check,
    form_of,
    inline_refs,
    schema_depth,
    to_json_schema,
    to_openapi,
)
from gembatch._results.schema import response_dtype
from gembatch.emulator.schema_faults import schema_depth as emulator_depth
from gembatch.exceptions import ConfigError

pydantic = pytest.importorskip("pydantic")
from pydantic import BaseModel, Field, TypeAdapter  # noqa: E402


class Address(BaseModel):
    city: str = Field(description="the city")
    zip: int | None = None


class Review(BaseModel):
    sentiment: Literal["pos", "neg"]
    stars: Literal[1, 2, 3, 4, 5]
    kind: Literal["review"]
    score: float = Field(ge=0, le=1)
    summary: str = Field(max_length=200, min_length=1)
    home: Address
    previous: Address | None = None
    visits: list[Address]
    counts: dict[str, int]
    notes: dict[str, Address] = {}
    tags: list[str] = Field(default_factory=list, max_length=5)
    maybe: list[int] | None = None


TYPICAL = [Review, Address, list[Review], list[Address] | None, dict[str, list[int]]]

INSTANCES: list[Any] = [
    {
        "sentiment": "pos",
        "stars": 5,
        "kind": "review",
        "score": 0.5,
        "summary": "fine",
        "home": {"city": "a"},
        "visits": [],
        "counts": {"x": 1},
    },
    {
        "sentiment": "neg",
        "stars": 1,
        "kind": "review",
        "score": 1,
        "summary": "s",
        "home": {"city": "a", "zip": None},
        "previous": None,
        "visits": [{"city": "b", "zip": 3}],
        "counts": {},
        "notes": {"k": {"city": "c"}},
        "tags": ["a"],
        "maybe": [1],
    },
]


def _mutations(value: Any) -> list[Any]:
    """Near misses of a valid answer: each key dropped, nulled, retyped; each item too."""
    out: list[Any] = []
    if isinstance(value, dict):
        for key, item in value.items():
            out.append({k: v for k, v in value.items() if k != key})
            for other in (None, "x", 7, 2.5, True, [], {}, [item]):
                out.append({**value, key: other})
            out += [{**value, key: m} for m in _mutations(item)[:6]]
        out.append({**value, "extra": 1})
    elif isinstance(value, list):
        out += [value + value[:1], [], [None]]
        out += [[m] for m in _mutations(value[0])[:4]] if value else []
    elif isinstance(value, str):
        out += ["", value * 300, "pos", "review"]
    elif isinstance(value, (int, float)):
        out += [-1, 0, 1, 3, 6, 1.5]
    return out


def _verdicts(schema: Any, instances: list[Any]) -> list[bool]:
    validator = jsonschema.Draft202012Validator(schema)
    return [bool(validator.is_valid(i)) for i in instances]


@pytest.mark.parametrize("kind", TYPICAL, ids=str)
def test_typical_pydantic_schemas_round_trip_without_changing_meaning(kind):
    schema = TypeAdapter(kind).json_schema()
    openapi = to_openapi(schema)
    check(openapi, "openapi")
    check(schema, "json_schema")
    assert form_of(openapi) == "openapi" and form_of(schema) == "json_schema"
    back = to_json_schema(openapi)
    check(back, "json_schema")
    # the same columns, and the same answers valid, in every form
    assert response_dtype(schema) == response_dtype(openapi) == response_dtype(back)
    seeds = [*INSTANCES, {"city": "a"}, {"city": "b", "zip": 1}, {"k": [1, 2]}]
    samples = [*seeds, *[m for i in seeds for m in _mutations(i)]]
    if kind in (list[Review], list[Address] | None):
        samples = [[s] for s in samples] + [None, []]
    expected = _verdicts(schema, samples)
    assert _verdicts(back, samples) == expected
    assert 0 < sum(expected) < len(expected)
    # converting again changes nothing
    assert to_openapi(back) == openapi
    assert to_json_schema(to_openapi(back)) == back


def test_openapi_output_in_detail():
    openapi = to_openapi(Review.model_json_schema())
    props = openapi["properties"]
    assert openapi["type"] == "OBJECT" and openapi["propertyOrdering"] == list(props)
    assert props["sentiment"] == {"type": "STRING", "title": "Sentiment", "enum": ["pos", "neg"]}
    assert props["stars"]["enum"] == ["1", "2", "3", "4", "5"]
    assert props["stars"]["format"] == "enum" and props["stars"]["type"] == "INTEGER"
    assert props["kind"]["enum"] == ["review"]  # const
    assert props["previous"]["nullable"] is True and props["previous"]["type"] == "OBJECT"
    assert props["previous"]["properties"]["zip"] == {
        "type": "INTEGER",
        "default": None,
        "title": "Zip",
        "nullable": True,
    }
    assert props["home"]["properties"]["city"]["description"] == "the city"  # $ref inlined
    assert props["counts"]["additionalProperties"] == {"type": "INTEGER"}
    assert props["score"]["minimum"] == 0 and props["score"]["maximum"] == 1
    assert "$defs" not in json.dumps(openapi) and "$ref" not in json.dumps(openapi)


def test_openapi_forms_come_back_unchanged():
    openapi = {
        "type": "OBJECT",
        "properties": {
            "b": {"type": "STRING", "nullable": True, "enum": ["x"], "description": "d"},
            "a": {"type": "ARRAY", "items": {"type": "NUMBER"}, "minItems": 1},
            "c": {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]},
        },
        "required": ["a"],
        "propertyOrdering": ["b", "a", "c"],
    }
    assert to_openapi(to_json_schema(openapi)) == openapi
    assert to_json_schema({"type": "ARRAY", "minItems": "2", "example": [1]}) == {
        "type": "array",
        "minItems": 2,
        "examples": [[1]],
    }


def test_what_the_openapi_form_cannot_say_is_refused_or_loosened_on_request():
    refused = {
        "oneOf": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
        "prefixItems": TypeAdapter(tuple[int, str]).json_schema(),
        "exclusiveMinimum": {"type": "integer", "exclusiveMinimum": 0},
        "uniqueItems": TypeAdapter(set[str]).json_schema(),
        "enum": {"enum": [True, False]},
        "allOf": {"allOf": [{"type": "object"}, {"required": ["a"]}]},
        "the schema False": {"type": "object", "properties": {"a": False}},
        "not": {"not": {"type": "string"}},
    }
    for what, schema in refused.items():
        with pytest.raises(ConfigError, match="has no OpenAPI") as info:
            to_openapi(schema)
        assert what in str(info.value)
        loose = to_openapi(schema, lossy=True)
        check(loose, "openapi")
    assert to_openapi({"type": "integer", "exclusiveMinimum": 0}, lossy=True) == {
        "type": "INTEGER",
        "minimum": 0,
    }
    assert to_openapi(TypeAdapter(tuple[int, str]).json_schema(), lossy=True)["items"] == {
        "anyOf": [{"type": "INTEGER"}, {"type": "STRING"}]
    }
    # several types become anyOf, each with the keywords that apply to it
    assert to_openapi({"type": ["string", "integer", "null"], "maxLength": 3, "maximum": 9}) == {
        "anyOf": [{"type": "STRING", "maxLength": 3}, {"type": "INTEGER", "maximum": 9}],
        "nullable": True,
    }
    # null in an enum is null only where the type allows it
    assert to_openapi({"type": "string", "enum": ["a", None]}) == {"type": "STRING", "enum": ["a"]}


def test_recursion_is_refused_before_anything_is_sent():
    class Node(BaseModel):
        name: str
        children: list[Node] = []

    with pytest.raises(ConfigError, match=r"#/properties/children/items refers back to"):
        check(Node.model_json_schema())
    with pytest.raises(ConfigError, match="recursive"):
        to_openapi(Node.model_json_schema())
    with pytest.raises(ConfigError, match="outside the schema"):
        check({"$ref": "https://example.com/schema.json"})


def test_depth_limit_follows_the_reports():
    class Segment(BaseModel):
        start: str

    class Evidence(BaseModel):
        segments: list[Segment]

    class Reason(BaseModel):
        evidence: list[Evidence]

    class Subscore(BaseModel):
        reason: Reason

    class Score(BaseModel):
        subscores: list[Subscore]

    class Scores(BaseModel):
        a: Score

    class Evaluation(BaseModel):  # the shape of python-genai #1307's schema, which FAILED a job
        scores: Scores

    schema = Evaluation.model_json_schema()
    assert schema_depth(inline_refs(schema)) == 11 > DEFAULT_MAX_DEPTH
    with pytest.raises(ConfigError, match=r"nests 11 levels deep \(down to #/properties/scores"):
        check(schema)
    check(schema, max_depth=11)
    check(Review.model_json_schema(), max_depth=5)


def test_depth_is_counted_as_the_emulator_counts_it():
    for kind in [*TYPICAL, int, list[list[int]]]:
        schema = inline_refs(TypeAdapter(kind).json_schema())
        assert schema_depth(schema) == emulator_depth(schema), kind


def test_size_limit():
    big = {"type": "string", "enum": [f"value number {i}" for i in range(5000)]}
    with pytest.raises(ConfigError, match=r"bytes once its \$refs are inlined"):
        check(big)
    check(big, max_bytes=10**6)
    # a definition used in many places multiplies once inlined
    defs = {"A": {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(60)}}}
    wide = {"$defs": defs, "type": "array", "items": {"anyOf": [{"$ref": "#/$defs/A"}] * 100}}
    with pytest.raises(ConfigError, match="bytes"):
        check(wide)


def test_keywords_a_form_does_not_have():
    cases: list[tuple[Any, Literal["openapi", "json_schema"], str]] = [
        ({"type": "object", "requried": ["a"]}, "json_schema", "Did you mean 'required'"),
        ({"type": "OBJECT", "additionalItems": False}, "openapi", "'additionalItems'"),
        ({"type": "OBJECT", "properties": {"a": {"type": "string"}}}, "openapi", "'string'"),
        ({"type": "STRING", "enum": [1]}, "openapi", "holds non-strings"),
        ({"type": "OBJECT", "properties": {"a": {"$ref": "#/x"}}}, "openapi", "'\\$ref'"),
        ({"type": "STRING"}, "json_schema", "It is an OpenAPI type"),
        ({"type": "string", "nullable": True}, "json_schema", "nullable is OpenAPI"),
        ({"type": "object", "if": {}}, "json_schema", "'if'"),
        (True, "openapi", "must be a dict"),
    ]
    for schema, form, message in cases:
        with pytest.raises(ConfigError, match=message):
            check(schema, form)
    # annotations pydantic writes, and constraints gembatch checks itself, pass in JSON Schema
    check(
        {
            "type": "object",
            "title": "T",
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "properties": {"a": {"type": "string", "pattern": "^a", "default": "a"}},
            "additionalProperties": False,
        }
    )
    check(True)


def test_inline_refs_keeps_field_descriptions_and_merges_annotations():
    schema = {
        "$defs": {"A": {"type": "object", "properties": {"x": {"type": "integer"}}, "title": "A"}},
        "type": "object",
        "properties": {
            "a": {"$ref": "#/$defs/A", "description": "the a"},
            "b": {"$ref": "#/$defs/A", "required": ["x"]},
            "c": {"$ref": "#/$defs/A", "type": "object"},
        },
    }
    out = inline_refs(schema)
    assert out["properties"]["a"] == {
        "type": "object",
        "properties": {"x": {"type": "integer"}},
        "title": "A",
        "description": "the a",
    }
    assert out["properties"]["b"]["required"] == ["x"]
    assert out["properties"]["c"]["allOf"][1] == {"type": "object"}
    assert "$defs" not in out
