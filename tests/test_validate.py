"""Answers checked against their full schema (agreeing with jsonschema, vectorised where it says),
and degenerate batches found without flagging real ones."""

from __future__ import annotations

import json
import random
from typing import Any

import jsonschema
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gembatch._results.schema import normalise, parse_structured
from gembatch._results.validate import (
    DEGENERATE_PATTERNS,
    _validate,
    compile_check,
    degenerate,
    validate,
)
from gembatch.emulator.schema_faults import degenerate as emulator_degenerate

FAST = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
FORMAT_CHECKER = jsonschema.Draft202012Validator.FORMAT_CHECKER


def _jsonschema_valid(schema: Any, instance: Any) -> bool:
    validator = jsonschema.Draft202012Validator(schema, format_checker=FORMAT_CHECKER)
    return bool(validator.is_valid(instance))


# --------------------------------------------------------------------------- generated schemas
NAMES = st.sampled_from(["a", "b", "name", "x y", "Ünï", "id"])
WORDS = st.sampled_from(
    [
        "",
        "a",
        "b",
        "ab",
        "abc",
        "1",
        "x@y",
        "2024-01-31",
        "2024-02-30",
        "0000-01-01",
        "2024-01-31T10:00:00Z",
        "2024-01-31t10:00:00+02:00",
        "2024-13-01T10:00:00Z",
        "12345678-1234-1234-1234-123456789abc",
        "12345678-1234-1234-1234-123456789abz",
        'q"\\\x01é😀',
        "null",
        "true",
    ]
)
NUMBERS = st.one_of(
    st.integers(-5, 12),
    st.sampled_from([0.5, -1.5, 2.0, 3.25, 1e16, 10.0]),
)
SCALARS = st.one_of(WORDS, NUMBERS, st.booleans(), st.none())


@st.composite
def scalar_schemas(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["string", "integer", "number", "boolean", "null", "list", "enum"]))
    if kind == "enum":
        values = draw(st.lists(SCALARS, min_size=1, max_size=4, unique_by=json.dumps))
        return (
            {"const": values[0]} if len(values) == 1 and draw(st.booleans()) else {"enum": values}
        )
    schema: dict[str, Any] = {"type": kind}
    if kind == "list":
        schema["type"] = draw(
            st.sampled_from([["string", "null"], ["integer", "string"], ["number", "boolean"]])
        )
    if kind == "string" or kind == "list":
        for key in ("minLength", "maxLength"):
            if draw(st.booleans()):
                schema[key] = draw(st.integers(0, 4))
        if draw(st.integers(0, 3)) == 0:
            schema["pattern"] = draw(st.sampled_from(["^a", "b", "^[a-c]+$", "x|@", "(?=a)", "é"]))
        if draw(st.integers(0, 3)) == 0:
            schema["format"] = draw(st.sampled_from(["date", "date-time", "uuid", "email", "x"]))
    if kind in ("integer", "number", "list"):
        for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"):
            if draw(st.integers(0, 3)) == 0:
                bound = draw(st.sampled_from([0, 1, 3, 2.5, 10]))
                schema[key] = bound if key != "multipleOf" or bound else 2
    if kind != "null" and draw(st.integers(0, 4)) == 0:
        schema["enum"] = draw(st.lists(SCALARS, min_size=1, max_size=4, unique_by=json.dumps))
    return schema


def _compound(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    @st.composite
    def objects(draw: st.DrawFn) -> dict[str, Any]:
        props = draw(st.dictionaries(NAMES, children, min_size=1, max_size=4))
        schema: dict[str, Any] = {"type": "object", "properties": props}
        required = draw(st.lists(st.sampled_from(sorted(props)), unique=True, max_size=len(props)))
        if required:
            schema["required"] = required
        extra = draw(st.sampled_from([None, False, True, "schema"]))
        if extra == "schema":
            schema["additionalProperties"] = draw(children)
        elif extra is not None:
            schema["additionalProperties"] = extra
        if draw(st.integers(0, 6)) == 0:
            schema["minProperties"] = draw(st.integers(0, 3))
        if draw(st.integers(0, 6)) == 0:
            schema["patternProperties"] = {"^x": draw(children)}
        return schema

    @st.composite
    def arrays(draw: st.DrawFn) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "array", "items": draw(children)}
        for key in ("minItems", "maxItems"):
            if draw(st.integers(0, 2)) == 0:
                schema[key] = draw(st.integers(0, 3))
        if draw(st.integers(0, 3)) == 0:
            schema["uniqueItems"] = True
        if draw(st.integers(0, 4)) == 0:
            schema["prefixItems"] = draw(st.lists(children, min_size=1, max_size=2))
            if draw(st.booleans()):
                schema["items"] = False
        return schema

    return st.one_of(
        objects(),
        arrays(),
        st.builds(lambda c: {"anyOf": [c, {"type": "null"}], "default": None}, children),
        st.builds(lambda a, b: {"anyOf": [a, b]}, children, children),
        st.builds(lambda a, b: {"oneOf": [a, b]}, children, children),
        st.builds(lambda a, b: {"allOf": [a, b]}, children, children),
        st.builds(lambda a: {"not": a}, children),
        st.builds(lambda a: {"type": "object", "additionalProperties": a}, children),
        st.just({}),
        st.just(True),
    )


SCHEMAS = st.recursive(scalar_schemas(), _compound, max_leaves=8)


def _instances(schema: Any, draw: st.DrawFn, depth: int = 0) -> Any:
    """A value shaped like ``schema`` most of the time (so that both valid and invalid answers
    come), anything else sometimes."""
    if depth > 6 or draw(st.integers(0, 9)) == 0:
        return draw(
            st.recursive(SCALARS, lambda c: st.lists(c, max_size=3) | st.dictionaries(NAMES, c))
        )
    if not isinstance(schema, dict):
        return draw(SCALARS)
    for combo in ("anyOf", "oneOf", "allOf"):
        if combo in schema:
            return _instances(draw(st.sampled_from(schema[combo])), draw, depth + 1)
    if "not" in schema:
        return draw(SCALARS)
    if "enum" in schema and draw(st.booleans()):
        return draw(st.sampled_from(schema["enum"]))
    if "const" in schema and draw(st.booleans()):
        return schema["const"]
    kinds = schema.get("type")
    kind = draw(st.sampled_from(kinds)) if isinstance(kinds, list) else kinds
    if kind == "object":
        out: dict[str, Any] = {}
        for name, child in (schema.get("properties") or {}).items():
            pick = draw(st.integers(0, 9))
            if pick < 7:
                out[name] = _instances(child, draw, depth + 1)
            elif pick == 7:
                out[name] = None
        if isinstance(schema.get("additionalProperties"), dict) or draw(st.integers(0, 5)) == 0:
            extra = schema.get("additionalProperties", True)
            for name in draw(st.lists(st.sampled_from(["zz", "xa", "a b"]), max_size=2)):
                out[name] = _instances(extra, draw, depth + 1)
        return out
    if kind == "array":
        prefix = schema.get("prefixItems") or []
        size = draw(st.integers(0, 4))
        items = [
            _instances(prefix[i] if i < len(prefix) else schema.get("items", True), draw, depth + 1)
            for i in range(size)
        ]
        if schema.get("uniqueItems") and items and draw(st.booleans()):
            items.append(items[0])
        return items
    if kind == "string":
        return draw(WORDS)
    if kind == "integer":
        return draw(st.integers(-5, 12))
    if kind == "number":
        return draw(NUMBERS)
    if kind == "boolean":
        return draw(st.booleans())
    return draw(SCALARS)


@st.composite
def schema_and_answers(draw: st.DrawFn) -> tuple[Any, list[Any]]:
    schema = draw(SCHEMAS)
    answers = [_instances(schema, draw) for _ in range(draw(st.integers(1, 12)))]
    return schema, answers


@FAST
@given(schema_and_answers())
def test_validate_agrees_with_jsonschema(case):
    schema, answers = case
    texts = [
        json.dumps(a, ensure_ascii=draw_ascii) for a, draw_ascii in zip(answers, [True, False] * 8)
    ]
    problems = validate(pl.Series(texts, dtype=pl.Utf8), schema)
    for answer, text, problem in zip(answers, texts, problems.to_list()):
        expected = _jsonschema_valid(schema, answer)
        assert (problem is None) == expected, (schema, text, problem)
        # the per-row checker alone agrees too, and names the same way
        own = list(compile_check(normalise(schema))(answer, "$"))
        assert (not own) == expected, (schema, text, own)


@FAST
@given(schema_and_answers())
def test_validate_agrees_with_jsonschema_on_the_openapi_form_too(case):
    from gembatch._build.schemas import to_json_schema, to_openapi

    schema, answers = case
    try:
        openapi = to_openapi(schema)
    except Exception:  # noqa: BLE001 - a schema the OpenAPI form cannot say
        return
    texts = [json.dumps(a) for a in answers]
    problems = validate(pl.Series(texts, dtype=pl.Utf8), openapi).to_list()
    back = to_json_schema(openapi)
    for answer, problem in zip(answers, problems):
        assert (
            (problem is None)
            == _jsonschema_valid(back, answer)
            == _jsonschema_valid(schema, answer)
        ), (schema, openapi, answer, problem)


# ------------------------------------------------------------------------------- hand-written
REVIEW = {
    "type": "object",
    "properties": {
        "sentiment": {"type": "string", "enum": ["pos", "neg"]},
        "score": {"type": "integer", "minimum": 1, "maximum": 5},
        "summary": {"type": "string", "maxLength": 40},
        "zip": {"anyOf": [{"type": "string", "pattern": "^[0-9]{5}$"}, {"type": "null"}]},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3, "uniqueItems": True},
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "price": {"type": "number", "exclusiveMinimum": 0},
                    "when": {"type": "string", "format": "date"},
                },
                "required": ["name", "price"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["sentiment", "score", "zip"],
}


def _one(answer: Any, schema: Any = REVIEW) -> str | None:
    text = answer if isinstance(answer, str) else json.dumps(answer)
    return validate(pl.Series([text]), schema)[0]


def test_messages_name_the_json_path():
    good = {"sentiment": "pos", "score": 5, "zip": None, "items": [{"name": "a", "price": 1}]}
    assert _one(good) is None
    assert _one({**good, "score": 7}) == "$.score: 7 is above the maximum 5"
    assert _one({**good, "sentiment": "meh"}) == '$.sentiment: "meh" is not one of ["pos", "neg"]'
    bad_items = [{"name": "a", "price": 1}, {"name": "", "price": 0}, {"price": 2, "x": 1}]
    assert _one({**good, "items": bad_items}) == (
        '$.items[1].name: "" is shorter than 1 characters; '
        "$.items[1].price: 0 is not above the exclusive minimum 0; "
        "$.items[2]: required property 'name' is missing (and 1 more)"
    )
    assert _one({**good, "items": [{"name": "a", "price": 1, "when": "2024-02-30"}]}) == (
        '$.items[0].when: "2024-02-30" is not a valid date'
    )
    assert _one({**good, "tags": ["a", "a"]}) == "$.tags: has repeated items"
    assert _one({**good, "zip": "1234"}).startswith('$.zip: "1234" does not match')


def test_a_missing_key_and_a_json_null_are_told_apart():
    base = {"sentiment": "pos", "score": 3}
    # zip is required but nullable: null is fine, absent is not
    assert _one({**base, "zip": None}) is None
    assert _one(base) == "$: required property 'zip' is missing"
    # summary is optional but not nullable: absent is fine, null is not
    assert _one({**base, "zip": None, "summary": None}) == "$.summary: null is not of type string"


def test_rows_polars_reads_leniently_are_still_caught():
    base = {"sentiment": "pos", "score": 3, "zip": None}
    texts = [
        {**base, "tags": "solo"},  # a lone string where an array belongs
        {**base, "score": 3.5},  # polars would truncate it to 3
        {**base, "score": True},  # polars would read it as 1
        {**base, "score": "3"},  # a string that looks like a number
        {**base, "summary": 12},  # a number in a string field
        {**base, "items": [{"name": "a", "price": 1, "extra": 1}]},  # additionalProperties false
        '{"sentiment": "pos", "score": 3, "zip": null, "score": 9}',  # a duplicated key
        {**base, "items": {"name": "a"}},  # an object where an array belongs
    ]
    problems = [_one(t) for t in texts]
    assert problems == [
        "$.tags: a string is not of type array",
        "$.score: a number is not of type integer",
        "$.score: a boolean is not of type integer",
        "$.score: a string is not of type integer",
        "$.summary: an integer is not of type string",
        '$.items[0]: additional property "extra" is not allowed',
        "$.score: 9 is above the maximum 5",  # the last value counts, as for json.loads
        "$.items: an object is not of type array",
    ]


def test_clean_rows_are_checked_without_python():
    rows = [
        json.dumps(
            {
                "sentiment": random.Random(i).choice(["pos", "neg", "meh"]),
                "score": i % 7,
                "zip": None if i % 2 else f"{i:05d}",
                "tags": ["a", "b"][: i % 3],
                "items": [{"name": f"n{i}", "price": i / 3 - 1}],
            }
        )
        for i in range(400)
    ]
    problems, python = _validate(pl.Series(rows), REVIEW)
    assert not python.any()
    schema = {k: v for k, v in REVIEW.items()}
    expected = [_jsonschema_valid(schema, json.loads(r)) for r in rows]
    assert [p is None for p in problems.to_list()] == expected
    assert 0 < sum(expected) < len(expected)


def test_text_that_is_not_json_is_left_to_parse_structured():
    texts = pl.Series([None, "", "   ", "prose", '{"a": ', "```json\n[1]\n```", "null"])
    out = validate(texts, {"type": "object", "properties": {"a": {"type": "integer"}}})
    assert out.to_list()[:5] == [None] * 5
    assert out[5] == "$: an array is not of type object"
    assert out[6] == "$: null is not of type object"
    # a schema that allows null at the top
    nullable = {"anyOf": [{"type": "object"}, {"type": "null"}]}
    assert validate(pl.Series(["null", "{}"]), nullable).to_list() == [None, None]


def test_openapi_form_and_schemas_without_fixed_shape():
    openapi = {
        "type": "OBJECT",
        "properties": {
            "n": {"type": "INTEGER", "nullable": True, "maximum": 3},
            "e": {"type": "INTEGER", "format": "enum", "enum": ["1", "2"]},
            "counts": {"type": "OBJECT", "additionalProperties": {"type": "INTEGER"}},
        },
        "required": ["n"],
    }
    texts = ['{"n": null, "e": 2}', '{"n": 4}', '{"e": "1"}', '{"n": 1, "counts": {"a": "x"}}']
    assert validate(pl.Series(texts), openapi).to_list() == [
        None,
        "$.n: 4 is above the maximum 3",
        "$: required property 'n' is missing; $.e: a string is not of type integer; "
        '$.e: "1" is not one of [1, 2]',
        "$.counts.a: a string is not of type integer",
    ]
    assert validate(pl.Series(['{"a": [1, {}]}', "3", "prose"]), {}).to_list() == [None] * 3


def test_top_level_arrays_and_python_only_schemas():
    schema = {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "t": {"prefixItems": [{"type": "string"}]}},
        },
        "minItems": 1,
    }
    texts = ['[{"a": 1, "t": ["x", 2]}]', "[]", '[{"a": "1"}, {"t": [3]}]', '{"a": 1}']
    problems, python = _validate(pl.Series(texts), schema)
    assert problems.to_list() == [
        None,
        "$: has 0 items, fewer than the minimum 1",
        "$[0].a: a string is not of type integer; $[1].t[0]: an integer is not of type string",
        "$: an object is not of type array",
    ]
    assert python.to_list() == [False, False, False, True]


# -------------------------------------------------------------------------------- degenerate
BOOK = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "summary": {"type": "string"},
        "author": {"type": "string"},
        "genre": {"type": "string"},
        "year": {"type": "integer"},
        "pages": {"type": "integer"},
        "rating": {"type": "string", "enum": ["good", "bad"]},
    },
}
GENRES = ["fantasy", "crime", "science fiction", "romance", "history", "poetry"]


def _books(n: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    words = "the of a river night house silver garden war letters old new last city".split()
    rows = []
    for _ in range(n):
        title = " ".join(rng.choice(words) for _ in range(rng.randint(2, 5))).title()
        sentences = rng.randint(3, 6)
        summary = " ".join(
            " ".join(rng.choice(words) for _ in range(rng.randint(8, 14))).capitalize() + "."
            for _ in range(sentences)
        )
        rows.append(
            {
                "title": title,
                "summary": summary,
                "author": f"{rng.choice(['Ann', 'Bo', 'Cy', 'Di'])} {rng.choice(['Lee', 'Moss'])}",
                "genre": rng.choice(GENRES),
                "year": rng.randint(1800, 2024),
                "pages": rng.randint(90, 900),
                "rating": rng.choice(["good", "bad"]),
            }
        )
    return rows


def _parsed(rows: list[Any], schema: Any = BOOK) -> pl.Series:
    parsed, errors = parse_structured(pl.Series([json.dumps(r) for r in rows]), schema)
    assert errors.null_count() == len(rows)
    return parsed


def test_real_looking_batches_are_not_flagged():
    for seed in range(3):
        reasons, counts = degenerate(_parsed(_books(300, seed)), None, BOOK)
        assert counts == dict.fromkeys(DEGENERATE_PATTERNS, 0), reasons.drop_nulls().head(5)
    # short repeated answers to different requests are normal (labels, scores)
    label = {
        "type": "object",
        "properties": {"label": {"type": "string"}, "ok": {"type": "boolean"}},
    }
    rows = [{"label": "positive", "ok": True}] * 200 + [{"label": "", "ok": False}]
    reasons, counts = degenerate(_parsed(rows, label), None, label)
    assert counts["same_answer"] == 0 and counts["all_null"] == 1
    # a batch that asked the same thing many times may get the same long answer
    book = _books(1)[0]
    reasons, counts = degenerate(_parsed([book] * 50), pl.Series(["h"] * 50), BOOK)
    assert counts["same_answer"] == 0


@pytest.mark.parametrize("pattern", ["shifted", "prose", "null_template"])
def test_the_emulators_degenerate_answers_are_flagged(pattern):
    """The emulator's degenerate transforms (its model of ruby_llm #894) are found in a batch.

    Its transforms also break types (numbers shifted into text fields, prose in number fields):
    those are validate()'s; here they are applied to the text fields, where only this can tell.
    """
    books = _books(200)
    bad = set(range(0, 200, 10))  # 10 % of the rows
    texts = ("title", "summary", "author", "genre")
    rows = []
    for i, book in enumerate(books):
        if i in bad:
            part = book if pattern == "null_template" else {k: book[k] for k in texts}
            book = {**book, **json.loads(emulator_degenerate(json.dumps(part), pattern, str(i)))}
        rows.append(book)
    name = {"null_template": "all_null"}.get(pattern, pattern)
    reasons, counts = degenerate(_parsed(rows), None, BOOK)
    flagged = {i for i, r in enumerate(reasons.to_list()) if r is not None and name in r}
    assert flagged == bad, (pattern, reasons.drop_nulls().head(3).to_list())
    assert counts[name] == len(bad)
    assert reasons.drop_nulls().len() == len(bad)  # no other pattern on the other rows


def test_each_pattern_by_hand():
    schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "author": {"type": "string"},
            "code": {"type": "string"},
            "notes": {"type": "string"},
        },
    }
    rng = random.Random(1)
    rows = [
        {
            "title": f"Book {i}",
            "author": rng.choice(["Ann Lee", "Bo Moss"]),
            "code": rng.choice(["A1", "B2", "C3"]),
            "notes": f"Note {i} on this book, written by a reader.",
        }
        for i in range(100)
    ]
    rows[1] = {**rows[1], "title": "Title"}  # its own name
    rows[2] = {**rows[2], "title": "author", "author": "code"}  # the next field's name
    rows[3] = {**rows[3], "code": "Sure! Here is the code you asked for, in a few words."}
    rows[4] = {**rows[4], "code": "The code of this book is not given in the text at all."}
    rows[5] = {**rows[5], "notes": "title"}  # a field's name, not a neighbour's
    long_note = (
        "A long and specific note that the model gave to every one of these requests, "
        "word for word, although each asked about another book."
    )
    for i in range(10, 16):
        rows[i] = {**rows[i], "notes": long_note, "title": "Same", "author": "Same", "code": "A1"}
    reasons, counts = degenerate(_parsed(rows, schema), None, schema)
    got = reasons.to_list()
    assert got[0] is None
    assert got[1] == "field_names: $.title holds its own name"
    assert got[2] == (
        "shifted: $.title holds the name of its neighbour field 'author'; "
        "shifted: $.author holds the name of its neighbour field 'code'"
    )
    assert got[3] == "prose: $.code starts like a chatbot's reply"
    assert got[4] == "prose: $.code holds a sentence where its other values are at most 3 words"
    assert got[5] == "field_names: $.notes holds the name of field 'title'"
    assert got[10] == "same_answer: the same answer was given to 6 different requests"
    assert counts == {
        "same_answer": 6,
        "all_null": 0,
        "field_names": 2,
        "shifted": 1,
        "prose": 2,
    }
    # the same answer to requests that were the same is not flagged
    hashes = pl.Series([str(i) if not 10 <= i < 16 else "same" for i in range(100)])
    assert degenerate(_parsed(rows, schema), hashes, schema)[1]["same_answer"] == 0


def test_degenerate_on_lists_nested_objects_and_json_columns():
    schema = {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "extra": {"type": "object"},
                "inner": {"type": "object", "properties": {"a": {"type": "string"}}},
            },
        },
    }
    rows = [
        [{"name": "x", "extra": {"k": 1}, "inner": {"a": "q"}}],
        [{"name": None, "extra": {}, "inner": {"a": ""}}],
        [{"name": "name", "extra": None}],
        [],
    ]
    reasons, counts = degenerate(_parsed(rows, schema), None, schema)
    assert reasons.to_list() == [
        None,
        "all_null: every field is empty or a default",
        "field_names: $[0].name holds its own name",
        None,
    ]
    assert counts["all_null"] == 1 and counts["field_names"] == 1


def test_shifted_elements_of_a_top_level_list_are_found_by_position():
    schema = {"type": "array", "items": BOOK}
    books = _books(600)
    rows = [books[i * 3 : (i + 1) * 3] for i in range(200)]
    texts = ("title", "summary", "author", "genre")
    bad = set(range(0, 200, 10))
    for i in bad:  # the second book of every tenth answer: its text values moved one field up
        values = [rows[i][1][k] for k in texts]
        rows[i][1] = {**rows[i][1], **dict(zip(texts, values[1:] + values[:1]))}
    reasons, counts = degenerate(_parsed(rows, schema), None, schema)
    assert {i for i, r in enumerate(reasons.to_list()) if r} == bad
    assert counts["shifted"] == len(bad) and sum(counts.values()) == len(bad)
    assert reasons[10] == (
        "shifted: fields of $[1] hold values the size of their neighbours' (values moved one field)"
    )


JUNK_TEXTS = st.sampled_from(
    ["", "prose", "{", "[1, [2]]", '{"a": {"b": []}}', "null", '"s"', "```json\n{}\n```"]
)


@FAST
@given(schema_and_answers(), st.lists(JUNK_TEXTS, max_size=4))
def test_validate_and_degenerate_never_raise(case, junk):
    schema, answers = case
    texts = pl.Series([json.dumps(a) for a in answers] + junk, dtype=pl.Utf8)
    problems = validate(texts, schema)
    parsed, _ = parse_structured(texts, schema)
    reasons, counts = degenerate(parsed, texts, schema)
    assert len(problems) == len(reasons) == len(texts)
    assert set(counts) == set(DEGENERATE_PATTERNS)


def test_type_errors_name_the_type_not_the_value_so_rows_group():
    """Values moved to fields of other types (the 'shifted' degenerate answers) differ in every
    row; the message names each failing path and the value's JSON type, so one message counts
    them all. Checked vectorised (scalars) and per row in Python (containers) alike."""
    schema = {
        "type": "object",
        "properties": {
            "sentiment": {"type": "string"},
            "score": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
    }
    rows = [
        json.dumps({"sentiment": i * 7, "score": [f"review {i}", "x" * i], "tags": f"r{i}"})
        for i in range(1, 30)
    ]
    out = validate(pl.Series(rows), schema)
    assert set(out.to_list()) == {
        "$.sentiment: an integer is not of type string; $.score: an array is not of type "
        "integer; $.tags: a string is not of type array"
    }
    scalars = [json.dumps({"sentiment": i * 7, "score": 0.5 + i}) for i in range(1, 30)]
    assert set(validate(pl.Series(scalars), schema).to_list()) == {
        "$.sentiment: an integer is not of type string; $.score: a number is not of type integer"
    }


BIG = 2**53


@pytest.mark.parametrize(
    ("schema", "values"),
    [
        ({"type": "integer", "exclusiveMinimum": 2**63 - 1}, [2**63 + 35, 2**63 - 1, 2**64]),
        ({"type": "integer", "exclusiveMinimum": BIG, "maximum": BIG + 8}, [BIG + 1, BIG, BIG + 9]),
        ({"type": "integer", "maximum": BIG}, [BIG + 1, BIG, BIG - 1]),
        ({"enum": [BIG + 1, "a"]}, [BIG + 1, BIG, BIG + 2]),
        ({"const": 2**70}, [2**70, 2**70 + 1]),
        ({"type": "integer"}, [BIG + 1, 1e20, 2**80]),
    ],
)
def test_numbers_beyond_float_precision_are_checked_exactly(schema, values):
    """A Float64 holds integers exactly only below 2**53: the vectorised checks must not round a
    valid answer onto its bound (or an invalid one inside it)."""
    wrapped = {"type": "object", "properties": {"n": schema}, "required": ["n"]}
    texts = pl.Series([json.dumps({"n": v}) for v in values] + ['{"n": 9007199254740993.5}'])
    got = validate(texts, wrapped).to_list()
    for text, problems in zip(texts, got):
        expected = jsonschema.Draft202012Validator(wrapped).is_valid(json.loads(text))
        assert (problems is None) == expected, (schema, text, problems)
        if problems is not None:
            assert problems.startswith("$.n: ")
