"""Structured output: the fake model's schema-valid answers, and the batch misbehaviours the
switches turn on (degenerate JSON, depth limits, a job failed by a deep schema, schema + tools)."""

from __future__ import annotations

import json
import random
import re
from typing import Any

import jsonschema
import pytest
from emu_helpers import LENIENT, MODEL, STRICT, lines_of, make_client, upload, wait_for, write_jsonl
from google.genai import errors
from hypothesis import given, settings
from hypothesis import strategies as st

from gembatch.emulator import Behaviour, Emulator, model
from gembatch.emulator.schema_faults import schema_depth
from gembatch.emulator.schema_values import sample_pattern

BASE = LENIENT.with_(jsonl_field_names="snake")
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "city": {"type": "string"},
    },
    "required": ["name", "age", "city"],
}
OPENAPI_PERSON = {
    "type": "OBJECT",
    "properties": {
        "name": {"type": "STRING"},
        "age": {"type": "INTEGER"},
        "city": {"type": "STRING"},
    },
    "required": ["name", "age", "city"],
}


def nested(depth: int) -> dict[str, Any]:
    """A JSON Schema ``depth`` levels deep (objects inside objects)."""
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth - 1):
        schema = {"type": "object", "properties": {"inner": schema}, "required": ["inner"]}
    return schema


def line(key: str, text: str, **config: Any) -> dict[str, Any]:
    request: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": text}]}]}
    if config:
        request["generation_config"] = {"response_mime_type": "application/json", **config}
    return {"key": key, "request": request}


def run_file(emu: Emulator, tmp_path, rows: list) -> tuple[dict, list[dict]]:
    client = make_client(emu)
    up = upload(client, write_jsonl(tmp_path / "in.jsonl", rows))
    job = client.batches.create(model=MODEL, src=up.name, config={"display_name": "schema"})

    def done() -> bool:
        op = next(o for o in emu.batches() if o["name"] == job.name)
        return op.get("done", False)

    wait_for(done)
    op = next(o for o in emu.batches() if o["name"] == job.name)
    output = op["metadata"].get("output", {}).get("responsesFile")
    return op, lines_of(client.files.download(file=output)) if output else []


def text_of(result: dict) -> str:
    parts = result["response"]["candidates"][0]["content"]["parts"]
    return "".join(p["text"] for p in parts if not p.get("thought"))


# -- the presets leave every misbehaviour off ------------------------------------------------------
@pytest.mark.parametrize("preset", [Behaviour.strict(), Behaviour.lenient()])
def test_misbehaviours_are_off_in_both_presets(preset):
    assert preset.degenerate_schema_form is None and preset.schema_depth_limit is None
    assert preset.deep_schema_fails_job_above is None and preset.schema_with_tools_fails is False


# -- degenerate answers ----------------------------------------------------------------------------
@pytest.mark.parametrize("pattern", ["shifted", "prose", "null_template"])
def test_degenerate_json_schema_answers_in_batch_only(tmp_path, pattern):
    behaviour = BASE.with_(degenerate_schema_form="json_schema", degenerate_pattern=pattern)
    with Emulator(behaviour=behaviour) as emu:
        rows = [line(f"j{i}", f"Person {i}", response_json_schema=PERSON) for i in range(5)]
        rows += [line(f"s{i}", f"Person {i}", response_schema=OPENAPI_PERSON) for i in range(5)]
        _, out = run_file(emu, tmp_path, rows)
        for result in out:
            value = json.loads(text_of(result))
            if result["key"].startswith("s"):  # the other form still answers valid JSON
                assert set(value) == {"age", "city", "name"} and isinstance(value["age"], int)
                continue
            assert list(value) == ["name", "age", "city"]  # same keys, degenerate values
            with pytest.raises(jsonschema.ValidationError):
                jsonschema.validate(value, PERSON)
            if pattern == "shifted":
                assert isinstance(value["name"], int) and value["city"].startswith("Person")
            elif pattern == "prose":
                assert all(v.startswith("Sure! Here is the") for v in value.values())
            else:
                assert set(value.values()) == {None}
        client = make_client(emu)  # interactive calls are not affected
        single = client.models.generate_content(
            model=MODEL,
            contents="Person 1",
            config={"response_mime_type": "application/json", "response_json_schema": PERSON},
        )
        jsonschema.validate(json.loads(single.text), PERSON)


def test_degenerate_schema_form_and_mixed_patterns(tmp_path):
    behaviour = BASE.with_(degenerate_schema_form="schema", degenerate_pattern="mixed")
    with Emulator(behaviour=behaviour) as emu:
        rows = [line(f"s{i}", "Same prompt", response_schema=OPENAPI_PERSON) for i in range(30)]
        rows.append(line("j0", "Same prompt", response_json_schema=PERSON))
        _, out = run_file(emu, tmp_path, rows)
        shapes = set()
        for result in out[:-1]:
            value = json.loads(text_of(result))
            shapes.add(
                "null"
                if set(value.values()) == {None}
                else "prose"
                if str(value.get("age", "")).startswith("Sure")
                else "shifted"
            )
        assert shapes == {"null", "prose", "shifted"}  # each row its own, by key
        jsonschema.validate(json.loads(text_of(out[-1])), PERSON)
        _, again = run_file(emu, tmp_path, rows)
        assert [text_of(r) for r in again] == [text_of(r) for r in out]  # deterministic


# -- schema depth ----------------------------------------------------------------------------------
def test_schema_depth_counts_levels():
    assert schema_depth({"type": "string"}) == 1
    assert schema_depth(nested(4)) == 4
    assert schema_depth({"type": "array", "items": nested(2)}) == 3
    assert (
        schema_depth(
            {
                "$defs": {"A": nested(3)},
                "type": "object",
                "properties": {"a": {"$ref": "#/$defs/A"}},
            }
        )
        == 4
    )
    recursive = {
        "$defs": {"N": {"type": "object", "properties": {"next": {"$ref": "#/$defs/N"}}}},
        "$ref": "#/$defs/N",
    }
    assert schema_depth(recursive) >= 32


def test_schema_depth_limit_refuses_at_create_or_per_line(tmp_path):
    behaviour = BASE.with_(schema_depth_limit=3, jsonl_validation="create")
    with Emulator(behaviour=behaviour) as emu:
        client = make_client(emu)
        with pytest.raises(errors.ClientError) as info:  # inline: the whole create
            client.batches.create(
                model=MODEL,
                src=[
                    {
                        "contents": "x",
                        "config": {
                            "response_mime_type": "application/json",
                            "response_json_schema": nested(4),
                        },
                    }
                ],
            )
        assert info.value.code == 400 and "maximum allowed nesting depth" in info.value.message
        rows = [
            line("ok", "x", response_json_schema=nested(3)),
            line("deep", "x", response_json_schema=nested(5)),
        ]
        up = upload(client, write_jsonl(tmp_path / "in.jsonl", rows))
        with pytest.raises(errors.ClientError) as info:
            client.batches.create(model=MODEL, src=up.name)
        assert info.value.message == (
            "Error on line 2: A schema in GenerationConfig in the "
            "request exceeds the maximum allowed nesting depth (depth 5,"
            " at most 3)."
        )
        single = client.models.generate_content(
            model=MODEL,
            contents="x",
            config={"response_mime_type": "application/json", "response_json_schema": nested(5)},
        )
        assert json.loads(single.text)  # interactive: no limit
    with Emulator(behaviour=behaviour.with_(jsonl_validation="per_line")) as emu:
        op, out = run_file(emu, tmp_path, rows)
        assert "response" in out[0] and out[1]["error"]["code"] == 400
        assert op["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"


def test_a_deep_schema_fails_the_job(tmp_path):
    behaviour = BASE.with_(deep_schema_fails_job_above=3)
    with Emulator(behaviour=behaviour) as emu:
        op, out = run_file(
            emu, tmp_path, [line("a", "x", response_json_schema=nested(4)), line("b", "y")]
        )
        assert op["metadata"]["state"] == "BATCH_STATE_FAILED" and out == []
        assert op["error"] == {"code": 13, "message": "Internal error encountered."}
        op, out = run_file(emu, tmp_path, [line("a", "x", response_json_schema=nested(3))])
        assert op["metadata"]["state"] == "BATCH_STATE_SUCCEEDED" and len(out) == 1
        client = make_client(emu)
        job = client.batches.create(
            model=MODEL,
            src=[
                {
                    "contents": "x",
                    "config": {
                        "response_mime_type": "application/json",
                        "response_schema": {
                            "type": "OBJECT",
                            "properties": {
                                "a": {
                                    "type": "OBJECT",
                                    "properties": {
                                        "b": {"type": "ARRAY", "items": {"type": "STRING"}}
                                    },
                                }
                            },
                        },
                    },
                }
            ],
        )
        wait_for(lambda: next(o for o in emu.batches() if o["name"] == job.name).get("done"))
        assert client.batches.get(name=job.name).state.name == "JOB_STATE_FAILED"


# -- schema + tools --------------------------------------------------------------------------------
def test_schema_with_tools_fails_every_such_row_while_the_job_succeeds(tmp_path):
    tools = [{"function_declarations": [{"name": "lookup", "description": "Find"}]}]
    rows = [
        line("both", "x", response_json_schema=PERSON),
        line("plain", "y"),
        line("schema", "z", response_json_schema=PERSON),
    ]
    rows[0]["request"]["tools"] = tools
    with Emulator(
        behaviour=BASE.with_(schema_with_tools_fails=True, line_error_codes="grpc")
    ) as emu:
        op, out = run_file(emu, tmp_path, rows)
        assert op["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"
        assert out[0]["error"] == {
            "code": 3,
            "message": "Function calling with a response mime "
            "type: 'application/json' is unsupported",
        }
        assert "response" in out[1] and "response" in out[2]
        client = make_client(emu)
        answer = client.models.generate_content(
            model=MODEL,
            contents="x",
            config={
                "response_mime_type": "application/json",
                "response_json_schema": PERSON,
                "tools": [{"function_declarations": [{"name": "lookup"}]}],
            },
        )
        assert json.loads(answer.text)  # interactive: fine
    with Emulator(behaviour=BASE) as emu:
        _, out = run_file(emu, tmp_path, rows)
        assert all("response" in r for r in out)


# -- the normal fake model stays schema-valid ------------------------------------------------------
def structured(schema: dict[str, Any], prompt: str = "Prompt", form: str = "responseJsonSchema"):
    request = {
        "contents": [{"parts": [{"text": prompt}]}],
        "generationConfig": {"responseMimeType": "application/json", form: schema},
    }
    response = model.generate_content(MODEL, request)
    return json.loads(response["candidates"][0]["content"]["parts"][-1]["text"])


def test_enums_bounds_items_required_and_property_ordering():
    schema = {
        "type": "object",
        "properties": {
            "colour": {"type": "string", "enum": ["red", "green"]},
            "score": {"type": "number", "minimum": 0.5, "maximum": 0.75},
            "count": {"type": "integer", "exclusiveMinimum": 10, "exclusiveMaximum": 13},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 4, "maxItems": 5},
            "code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"},
            "note": {"type": ["string", "null"]},
        },
        "required": ["colour", "score", "count", "tags", "code"],
        "propertyOrdering": ["tags", "code"],
    }
    for prompt in ("a", "b", "c", "a longer prompt"):
        value = structured(schema, prompt)
        jsonschema.validate(value, schema)
        assert list(value)[:2] == ["tags", "code"]  # propertyOrdering first, then schema order
        assert re.fullmatch(r"[A-Z]{3}-[0-9]{4}", value["code"])
    openapi = {
        "type": "OBJECT",
        "properties": {
            "b": {"type": "STRING", "enum": ["x", "y"]},
            "a": {"type": "INTEGER", "minimum": 3, "maximum": 4},
            "c": {
                "type": "ARRAY",
                "items": {"type": "STRING", "pattern": "^id-[0-9]+$"},
                "minItems": 2,
            },
        },
        "required": ["a", "b", "c"],
        "propertyOrdering": ["c", "b", "a"],
    }
    value = structured(openapi, form="responseSchema")
    assert list(value) == ["c", "b", "a"] and value["a"] in (3, 4) and value["b"] in ("x", "y")
    assert len(value["c"]) >= 2 and all(re.fullmatch(r"id-[0-9]+", s) for s in value["c"])


PATTERNS = st.sampled_from(
    [
        r"^[a-z]{2,5}$",
        r"^\d{3}-\d{2}$",
        r"^(cat|dog)s?$",
        r"^[A-F0-9]{8}$",
        r"x+y*z?",
        r"^\w+@\w+\.(com|org)$",
        r"^[^ ]{4}$",
        r"^(ab|cd){2,3}!$",
        r"^\S+\s\S+$",
    ]
)


@settings(max_examples=60, deadline=None)
@given(PATTERNS, st.integers(0, 10_000))
def test_sampled_strings_match_their_pattern(pattern, seed):
    sample = sample_pattern(pattern, random.Random(seed))
    assert sample is not None and re.search(pattern, sample)


def test_patterns_it_cannot_sample_fall_back_to_text():
    assert sample_pattern(r"(a)\1", random.Random(1)) is None
    value = structured(
        {"type": "object", "properties": {"x": {"type": "string", "pattern": "(a)\\1"}}}
    )
    assert isinstance(value["x"], str)


def test_strict_preset_answers_structured_batches_validly(tmp_path):
    with Emulator(behaviour=STRICT.with_(output_lag_polls=0)) as emu:
        _, out = run_file(
            emu, tmp_path, [line(f"k{i}", f"P{i}", response_json_schema=PERSON) for i in range(3)]
        )
        for result in out:
            jsonschema.validate(json.loads(text_of(result)), PERSON)
