"""Tests of the emulator's deterministic fake model (gembatch/emulator/model.py)."""

from __future__ import annotations

import copy
import datetime
import json
import math
from typing import Any, Literal

import httpx2
import jsonschema
import pydantic
import pytest
from google import genai
from google.genai import types
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gembatch.emulator import model
from gembatch.emulator.errors import ApiError

MODEL = "models/gemini-2.5-flash"


def ask(text: str, **request: Any) -> dict[str, Any]:
    """A request with one user text part, plus extra top-level fields."""
    return {"contents": [{"role": "user", "parts": [{"text": text}]}], **request}


def answer_text(response: dict[str, Any], index: int = 0) -> str:
    """The candidate's answer text: its non-thought parts joined."""
    parts = response["candidates"][index]["content"]["parts"]
    return "".join(p["text"] for p in parts if not p.get("thought"))


def refused(request: Any, fn: Any = model.validate_generate_request) -> ApiError:
    with pytest.raises(ApiError) as info:
        fn(request)
    assert info.value.code == 400 and info.value.status == "INVALID_ARGUMENT"
    return info.value


# -- determinism and prompt dependence -------------------------------------------------------------
def test_same_request_gives_byte_identical_response() -> None:
    request = ask("Describe photosynthesis.", generationConfig={"temperature": 0.7})
    first = json.dumps(model.generate_content(MODEL, request))
    assert json.dumps(model.generate_content(MODEL, copy.deepcopy(request))) == first
    reordered = {"generationConfig": {"temperature": 0.7}, "contents": request["contents"]}
    assert json.dumps(model.generate_content(MODEL, reordered)) == first


def test_response_shape() -> None:
    response = model.generate_content(MODEL, ask("Hello there"))
    assert set(response) == {"candidates", "usageMetadata", "modelVersion", "responseId"}
    candidate = response["candidates"][0]
    assert candidate["content"]["role"] == "model" and candidate["index"] == 0
    assert candidate["finishReason"] == "STOP"
    assert response["modelVersion"] == "gemini-2.5-flash"
    assert list(response["usageMetadata"]) == [  # the service's keys and order; zeros left out
        "promptTokenCount",
        "candidatesTokenCount",
        "totalTokenCount",
        "promptTokensDetails",
        "candidatesTokensDetails",
        "thoughtsTokenCount",
        "serviceTier",
    ]
    usage = response["usageMetadata"]
    assert usage["candidatesTokensDetails"] == [
        {"modality": "TEXT", "tokenCount": usage["candidatesTokenCount"]}
    ]
    assert usage["serviceTier"] == "standard"
    flex = model.generate_content(MODEL, ask("Hello there", serviceTier="FLEX"))
    assert flex["usageMetadata"]["serviceTier"] == "flex"
    no_thinking = model.generate_content(
        MODEL, ask("Hi", generationConfig={"thinkingConfig": {"thinkingBudget": 0}})
    )["usageMetadata"]
    assert "thoughtsTokenCount" not in no_thinking and "cachedContentTokenCount" not in no_thinking
    assert model.generate_content("gemini-2.5-flash", ask("Hello there")) == response


def test_answer_shows_the_prompt_system_and_attachments() -> None:
    prompt = "Summarise this review in one sentence, please: " + "the product arrived early. " * 5
    text = answer_text(model.generate_content(MODEL, ask(prompt)))
    assert text.startswith(f'Answer to "{prompt[:80]}": ')
    assert 8 <= len(text.split(": ", 1)[1].split()) <= 40

    request = {
        "contents": [
            {
                "parts": [
                    {"text": "What is in the picture?"},
                    {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
                    {"fileData": {"mimeType": "application/pdf", "fileUri": "https://x/files/abc"}},
                ]
            }
        ],
        "systemInstruction": {"parts": [{"text": "You are a careful, precise image describer."}]},
    }
    text = answer_text(model.generate_content(MODEL, request))
    assert text.startswith(
        '[system: You are a careful, precise image describ] Answer to "What is '
        'in the picture?" (with 2 attachments: image/png, application/pdf): '
    )


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=120).filter(str.strip), st.text(min_size=1, max_size=120))
def test_different_prompts_give_different_answers(a: str, b: str) -> None:
    if a == b:
        return
    first = answer_text(model.generate_content(MODEL, ask(a)))
    second = answer_text(model.generate_content(MODEL, ask(b)))
    assert first != second
    assert f'Answer to "{a[:80]}"' in first


def test_config_and_model_change_the_answer() -> None:
    base = answer_text(model.generate_content(MODEL, ask("Hi")))
    warmer = ask("Hi", generationConfig={"temperature": 1.5})
    assert answer_text(model.generate_content(MODEL, warmer)) != base
    assert answer_text(model.generate_content("models/gemini-2.5-pro", ask("Hi"))) != base
    # The request's own `model` field (the SDK sets it on inline batch requests) does not count.
    assert answer_text(model.generate_content(MODEL, ask("Hi", model=MODEL))) == base


# -- tokens ----------------------------------------------------------------------------------------
def test_token_rule() -> None:
    texts = ("", "a", "abcd", "abcde", "é" * 5)
    assert [model.count_text_tokens(t) for t in texts] == [0, 1, 1, 2, 2]
    assert "ceil(len(text) / 4)" in model.TOKEN_RULE_DOC and "258" in model.TOKEN_RULE_DOC
    request = {
        "contents": [
            {
                "parts": [
                    {"text": "abcdefghij"},  # 3 tokens
                    {"inlineData": {"mimeType": "image/png", "data": "AAAA"}},
                ]
            },
            {"role": "model", "parts": [{"text": "abcd"}]},  # 1
            {"role": "user", "parts": [{"text": "ab"}]},
        ],  # 1
        "systemInstruction": {"parts": [{"text": "abcdefgh"}]},  # 2
        "generationConfig": {"thinkingConfig": {"thinkingBudget": 0}},
    }
    response = model.generate_content(MODEL, request)
    usage = response["usageMetadata"]
    assert usage["promptTokenCount"] == 3 + 258 + 1 + 1 + 2
    assert usage["promptTokensDetails"] == [
        {"modality": "TEXT", "tokenCount": 7},
        {"modality": "IMAGE", "tokenCount": 258},
    ]
    text = answer_text(response)
    assert usage["candidatesTokenCount"] == math.ceil(len(text) / 4)
    assert "thoughtsTokenCount" not in usage and "cachedContentTokenCount" not in usage  # zeros
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"]


def test_count_tokens_matches_prompt_token_count() -> None:
    request = ask(
        "How many tokens is this sentence?",
        systemInstruction={"parts": [{"text": "Be brief."}]},
        generationConfig={"temperature": 0.1},
    )
    prompt_tokens = model.generate_content(MODEL, request)["usageMetadata"]["promptTokenCount"]
    assert prompt_tokens == 9 + 3
    counted = model.count_tokens(MODEL, {"generateContentRequest": {**request, "model": MODEL}})
    assert counted == {
        "totalTokens": prompt_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
    }
    snake = model.count_tokens(MODEL, {"generate_content_request": request})
    assert snake["totalTokens"] == prompt_tokens
    assert model.count_tokens(MODEL, {"contents": request["contents"]})["totalTokens"] == 9
    refused(
        {"contents": request["contents"], "generateContentRequest": request},
        lambda r: model.count_tokens(MODEL, r),
    )
    refused({"contents": []}, lambda r: model.count_tokens(MODEL, r))


def test_max_output_tokens_truncates_with_max_tokens() -> None:
    def story(limit: int) -> dict[str, Any]:
        request = ask(
            "Tell me a story",
            generationConfig={"maxOutputTokens": limit, "thinkingConfig": {"thinkingBudget": 0}},
        )
        return model.generate_content(MODEL, request)

    full = story(1000)
    assert full["candidates"][0]["finishReason"] == "STOP"
    cut = story(3)
    candidate = cut["candidates"][0]
    assert candidate["finishReason"] == "MAX_TOKENS"
    assert answer_text(cut) == 'Answer to "T'  # the first 3 * 4 characters
    assert cut["usageMetadata"]["candidatesTokenCount"] == 3


def test_max_output_tokens_covers_thinking_and_answer() -> None:
    usage = model.generate_content(
        MODEL, ask("Tell me a story", generationConfig={"maxOutputTokens": 20})
    )["usageMetadata"]
    assert usage.get("thoughtsTokenCount", 0) + usage.get("candidatesTokenCount", 0) <= 20
    spent = model.generate_content(
        MODEL, ask("Tell me a story", generationConfig={"maxOutputTokens": 3})
    )
    assert spent["candidates"][0]["finishReason"] == "MAX_TOKENS"  # thinking used the whole budget
    assert spent["usageMetadata"]["thoughtsTokenCount"] == 3


def test_candidate_count() -> None:
    request = ask("Name a colour", generationConfig={"candidateCount": 3})
    response = model.generate_content(MODEL, request)
    candidates = response["candidates"]
    assert [c["index"] for c in candidates] == [0, 1, 2]
    texts = [answer_text(response, i) for i in range(3)]
    assert len(set(texts)) == 3 and all(t.startswith('Answer to "Name a colour": ') for t in texts)
    assert response["usageMetadata"]["candidatesTokenCount"] == sum(
        model.count_text_tokens(t) for t in texts
    )


# -- thinking --------------------------------------------------------------------------------------
def thinking(budget: int | None = None, include: bool | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if budget is not None:
        config["thinkingBudget"] = budget
    if include is not None:
        config["includeThoughts"] = include
    return {"generationConfig": {"thinkingConfig": config}}


def test_thinking_models_report_thoughts() -> None:
    shown = model.generate_content(MODEL, ask("Why is the sky blue?", **thinking(include=True)))
    first, second = shown["candidates"][0]["content"]["parts"]
    assert first["thought"] is True
    assert first["text"].startswith('Thinking about "Why is the sky blue?": ')
    assert "thought" not in second and second["text"].startswith('Answer to "Why is the sky blue?"')
    usage = shown["usageMetadata"]
    assert usage["thoughtsTokenCount"] == model.count_text_tokens(first["text"]) > 0
    assert usage["candidatesTokenCount"] == model.count_text_tokens(second["text"])
    assert usage["totalTokenCount"] == (
        usage["promptTokenCount"] + usage["candidatesTokenCount"] + usage["thoughtsTokenCount"]
    )

    hidden = model.generate_content(MODEL, ask("Why is the sky blue?"))
    assert len(hidden["candidates"][0]["content"]["parts"]) == 1
    assert hidden["usageMetadata"]["thoughtsTokenCount"] > 0


def test_thinking_budget_and_non_thinking_models() -> None:
    capped = model.generate_content(MODEL, ask("Why?", **thinking(budget=5, include=True)))
    assert capped["usageMetadata"]["thoughtsTokenCount"] == 5
    assert len(capped["candidates"][0]["content"]["parts"][0]["text"]) == 20
    off = model.generate_content(MODEL, ask("Why?", **thinking(budget=0, include=True)))
    assert "thoughtsTokenCount" not in off["usageMetadata"]  # zero: left out
    assert len(off["candidates"][0]["content"]["parts"]) == 1
    for name in ("models/gemini-2.0-flash", "gemini-1.5-pro"):
        old = model.generate_content(name, ask("Why?"))
        assert "thoughtsTokenCount" not in old["usageMetadata"]
    assert (
        model.generate_content("gemini-3-pro-preview", ask("Why?"))["usageMetadata"][
            "thoughtsTokenCount"
        ]
        > 0
    )


# -- directives ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "status"),
    [
        (400, "INVALID_ARGUMENT"),
        (429, "RESOURCE_EXHAUSTED"),
        (500, "INTERNAL"),
        (503, "UNAVAILABLE"),
    ],
)
def test_error_directive(code: int, status: str) -> None:
    request = ask(f"Translate this [[error:{code}]] please")
    assert model.validate_generate_request(request)["contents"]  # validation ignores directives
    with pytest.raises(ApiError) as info:
        model.generate_content(MODEL, request)
    assert (info.value.code, info.value.status) == (code, status)
    assert info.value.message


def test_block_directive() -> None:
    response = model.generate_content(MODEL, ask("Something bad [[block]]"))
    assert "candidates" not in response
    assert response["promptFeedback"]["blockReason"] == "SAFETY"
    tokens = model.count_text_tokens("Something bad [[block]]")
    assert response["usageMetadata"] == {
        "promptTokenCount": tokens,
        "totalTokenCount": tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": tokens}],
        "serviceTier": "standard",
    }


@pytest.mark.parametrize("reason", ["SAFETY", "RECITATION", "OTHER"])
def test_finish_directive(reason: str) -> None:
    response = model.generate_content(MODEL, ask(f"Go [[finish:{reason}]]", **thinking(budget=0)))
    (candidate,) = response["candidates"]
    assert candidate["finishReason"] == reason and "content" not in candidate
    assert ("safetyRatings" in candidate) == (reason == "SAFETY")
    if reason == "SAFETY":
        assert sum(r.get("blocked", False) for r in candidate["safetyRatings"]) == 1
    assert "candidatesTokenCount" not in response["usageMetadata"]  # zero: left out


def test_parts_directive_splits_the_answer() -> None:
    request = ask("Write a haiku [[parts:3]]", generationConfig={"candidateCount": 2})
    response = model.generate_content(MODEL, request)
    for index in range(2):
        parts = response["candidates"][index]["content"]["parts"]
        assert len(parts) == 3 and all(p["text"] for p in parts)
        text = "".join(p["text"] for p in parts)
        assert text.startswith('Answer to "Write a haiku [[parts:3]]": ') and text.endswith(".")
    assert response["usageMetadata"]["candidatesTokenCount"] == sum(
        model.count_text_tokens(answer_text(response, i)) for i in range(2)
    )


# -- structured output -----------------------------------------------------------------------------
RECIPE_SCHEMA = {
    "type": "ARRAY",
    "items": {
        "type": "OBJECT",
        "properties": {
            "recipeName": {"type": "STRING"},
            "ingredients": {"type": "ARRAY", "items": {"type": "STRING"}},
        },
        "required": ["recipeName"],
    },
}


def openapi_to_json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The Gemini OpenAPI-subset schema as a JSON Schema (objects closed, as model output is)."""
    out: dict[str, Any] = {}
    for key in (
        "enum",
        "required",
        "minItems",
        "maxItems",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "minProperties",
        "maxProperties",
        "format",
    ):
        if key in schema:
            out[key] = schema[key]
    if "type" in schema:
        out["type"] = schema["type"].lower()
    if "properties" in schema:
        out["properties"] = {k: openapi_to_json_schema(v) for k, v in schema["properties"].items()}
        out["additionalProperties"] = False
    if "items" in schema:
        out["items"] = openapi_to_json_schema(schema["items"])
    if "anyOf" in schema:
        out["anyOf"] = [openapi_to_json_schema(s) for s in schema["anyOf"]]
    if schema.get("nullable"):
        out = {"anyOf": [out, {"type": "null"}]}
    return out


def structured(prompt: str, **config: Any) -> Any:
    request = ask(prompt, generationConfig={"responseMimeType": "application/json", **config})
    response = model.generate_content(MODEL, request)
    text = answer_text(response)
    assert response["usageMetadata"]["candidatesTokenCount"] == model.count_text_tokens(text)
    return json.loads(text)


def test_recipe_schema_from_the_batch_guide() -> None:
    prompt = "List a few popular cookie recipes, and include the amounts of ingredients."
    value = structured(prompt, responseSchema=RECIPE_SCHEMA)
    jsonschema.validate(value, openapi_to_json_schema(RECIPE_SCHEMA))
    assert 1 <= len(value) <= 3
    assert list(value[0]) == ["ingredients", "recipeName"]  # no propertyOrdering: alphabetical
    assert value[0]["ingredients"][0] == prompt[:24]  # the first string is the prompt excerpt
    assert all(
        s.startswith(prompt[:24])
        for item in value
        for s in [item["recipeName"], *item["ingredients"]]
    )
    assert structured(prompt, responseSchema=RECIPE_SCHEMA) == value  # deterministic


def test_json_without_schema_wraps_the_answer() -> None:
    value = structured("Plain JSON please")
    assert list(value) == ["answer"]
    assert value["answer"].startswith('Answer to "Plain JSON please": ')


def test_text_enum_answers_one_value() -> None:
    request = ask(
        "Is this spam?",
        generationConfig={
            "responseMimeType": "text/x.enum",
            "responseSchema": {"type": "STRING", "enum": ["yes", "no"]},
        },
    )
    assert answer_text(model.generate_content(MODEL, request)) in ("yes", "no")


class Ingredient(pydantic.BaseModel):
    name: str
    grams: int = pydantic.Field(ge=1, le=1000)
    note: str | None = None


class Recipe(pydantic.BaseModel):
    recipe_name: str
    kind: Literal["cookie", "cake"]
    ingredients: list[Ingredient] = pydantic.Field(min_length=2, max_length=4)
    main: Ingredient
    rating: int | None = pydantic.Field(default=None, ge=1, le=5)
    tags: list[str] = []
    created: datetime.datetime


class RecipeWithServings(Recipe):  # JSON Schema only: the SDK refuses these for responseSchema
    servings: dict[str, int] = {}
    score: float = pydantic.Field(gt=0, lt=1)
    pair: tuple[int, str]


def test_pydantic_json_schema() -> None:
    schema = RecipeWithServings.model_json_schema()
    for prompt in ("A chewy cookie", "A chocolate cake for twelve people", "x"):
        value = structured(prompt, responseJsonSchema=schema)
        jsonschema.validate(value, schema)
        recipe = RecipeWithServings.model_validate(value)
        assert recipe.recipe_name == prompt[:24]
        assert recipe.main.note is not None and prompt[:24] in recipe.main.note  # Optional filled
        assert recipe.rating is not None and 1 <= recipe.rating <= 5
        assert 2 <= len(recipe.ingredients) <= 4 and recipe.servings and 0 < recipe.score < 1


def sdk_client(seen: list[dict[str, Any]]) -> genai.Client:
    """A real google-genai client whose HTTP calls are answered by the fake model in-process."""

    def handle(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        seen.append(body)
        name = request.url.path.split("/models/")[1].split(":")[0]
        try:
            return httpx2.Response(200, json=model.generate_content(name, body))
        except ApiError as exc:
            return httpx2.Response(exc.code, json=exc.to_body())

    http = httpx2.Client(transport=httpx2.MockTransport(handle))
    options = types.HttpOptions(base_url="http://fake-model.invalid", httpx_client=http)
    return genai.Client(api_key="test-key", http_options=options)


def test_the_sdk_sends_accepted_requests_and_parses_the_answers() -> None:
    seen: list[dict[str, Any]] = []
    client = sdk_client(seen)
    config = types.GenerateContentConfig(
        response_mime_type="application/json",
        response_schema=Recipe,
        system_instruction="Be a chef",
        temperature=0.3,
        max_output_tokens=4000,
        top_k=40,
        stop_sequences=["END"],
        thinking_config=types.ThinkingConfig(include_thoughts=True, thinking_budget=64),
        safety_settings=[
            types.SafetySetting(
                category=types.HarmCategory.HARM_CATEGORY_HATE_SPEECH,
                threshold=types.HarmBlockThreshold.BLOCK_ONLY_HIGH,
            )
        ],
        tools=[
            types.Tool(
                function_declarations=[
                    types.FunctionDeclaration(
                        name="lookup",
                        description="Find a recipe",
                        parameters=types.Schema(
                            type=types.Type.OBJECT,
                            properties={"query_text": types.Schema(type=types.Type.STRING)},
                        ),
                    )
                ]
            )
        ],
    )
    response = client.models.generate_content(
        model="gemini-2.5-flash",
        config=config,
        contents=["A lemon tart", types.Part.from_bytes(data=b"\x89PNG", mime_type="image/png")],
    )
    assert isinstance(response.parsed, Recipe) and response.parsed.recipe_name == "A lemon tart"
    assert response.usage_metadata is not None and response.text is not None
    assert 0 < (response.usage_metadata.thoughts_token_count or 0) <= 64
    wire = seen[0]["generationConfig"]
    assert "property_ordering" in json.dumps(wire["responseSchema"])  # the SDK's nested snake_case
    assert list(json.loads(response.text)) == list(Recipe.model_fields)  # propertyOrdering honoured
    jsonschema.validate(json.loads(response.text), Recipe.model_json_schema())
    with pytest.raises(genai.errors.ClientError) as info:
        client.models.generate_content(model="gemini-2.5-flash", contents="No [[error:429]]")
    assert info.value.code == 429


# random JSON Schemas: every generated value must validate
NAMES = st.text("abcdefghij_XYZ", min_size=1, max_size=8)


def _int_schema(low: int, width: int, exclusive: bool) -> dict[str, Any]:
    if exclusive:
        return {"type": "integer", "exclusiveMinimum": low, "exclusiveMaximum": low + width + 2}
    return {"type": "integer", "minimum": low, "maximum": low + width}


SCALARS = st.one_of(
    st.just({"type": "string"}),
    st.builds(
        lambda lo, extra: {"type": "string", "minLength": lo, "maxLength": lo + extra},
        st.integers(0, 40),
        st.integers(0, 10),
    ),
    st.sampled_from(
        [{"type": "string", "format": f} for f in ("date-time", "date", "email", "uuid")]
    ),
    st.builds(_int_schema, st.integers(-1000, 1000), st.integers(0, 50), st.booleans()),
    st.builds(
        lambda lo, width: {"type": "number", "minimum": lo / 4, "maximum": lo / 4 + width / 8},
        st.integers(-400, 400),
        st.integers(0, 40),
    ),
    st.builds(
        lambda lo: {"type": "number", "exclusiveMinimum": lo, "exclusiveMaximum": lo + 0.5},
        st.integers(-5, 5),
    ),
    st.just({"type": "boolean"}),
    st.just({"type": "null"}),
    st.just({}),
    st.lists(
        st.one_of(st.text(max_size=6), st.integers(), st.booleans()),
        min_size=1,
        max_size=4,
        unique_by=json.dumps,
    ).map(lambda e: {"enum": e}),
    st.integers().map(lambda c: {"const": c}),
    st.sampled_from([{"type": ["string", "null"]}, {"type": ["null", "integer"], "minimum": 3}]),
)


def _object(props: dict[str, Any], required: list[bool], closed: bool) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": props}
    schema["required"] = [n for n, r in zip(props, required[: len(props)], strict=True) if r]
    if closed:
        schema["additionalProperties"] = False
    return schema


def _extend(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.builds(
            _object,
            st.dictionaries(NAMES, children, max_size=4),
            st.lists(st.booleans(), min_size=4, max_size=4),
            st.booleans(),
        ),
        st.builds(
            lambda items, lo, extra: {
                "type": "array",
                "items": items,
                "minItems": lo,
                "maxItems": lo + extra,
            },
            children,
            st.integers(0, 4),
            st.integers(0, 3),
        ),
        st.builds(lambda items: {"type": "array", "items": items}, children),
        st.lists(children, min_size=1, max_size=3).map(lambda bs: {"anyOf": bs}),
        children.map(lambda s: {"anyOf": [{"type": "null"}, s]}),
        children.map(lambda s: {"type": "object", "additionalProperties": s}),
        st.tuples(children, children).map(
            lambda ab: {
                "allOf": [
                    {"type": "object", "properties": {"a": ab[0]}, "required": ["a"]},
                    {"type": "object", "properties": {"b": ab[1]}},
                ]
            }
        ),
    )


def _with_defs(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema moved into root ``$defs``, referenced from ``properties`` (pydantic's layout)."""
    return {
        "$defs": {"Inner": schema},
        "type": "object",
        "properties": {
            "first": {"$ref": "#/$defs/Inner"},
            "more": {"type": "array", "items": {"$ref": "#/$defs/Inner"}},
        },
        "required": ["first"],
    }


JSON_SCHEMAS = st.recursive(SCALARS, _extend, max_leaves=12)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(JSON_SCHEMAS, JSON_SCHEMAS.map(_with_defs)), st.text(max_size=40))
def test_random_json_schemas_validate(schema: dict[str, Any], prompt: str) -> None:
    request = ask(
        prompt or "p",
        generationConfig={"responseMimeType": "application/json", "responseJsonSchema": schema},
    )
    value = json.loads(answer_text(model.generate_content(MODEL, request)))
    checker = jsonschema.FormatChecker()
    jsonschema.Draft202012Validator(schema, format_checker=checker).validate(value)


OPENAPI_SCALARS = st.one_of(
    st.sampled_from([{"type": t} for t in ("STRING", "INTEGER", "NUMBER", "BOOLEAN", "string")]),
    st.builds(
        lambda lo, w: {"type": "INTEGER", "minimum": float(lo), "maximum": float(lo + w)},
        st.integers(-50, 50),
        st.integers(0, 9),
    ),
    st.lists(st.text("abc", min_size=1, max_size=3), min_size=1, max_size=3, unique=True).map(
        lambda e: {"type": "STRING", "format": "enum", "enum": e}
    ),
    st.just({"type": "STRING", "format": "date-time", "nullable": True}),
)


def _openapi_extend(
    children: st.SearchStrategy[dict[str, Any]],
) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.builds(
            lambda props: {
                "type": "OBJECT",
                "properties": props,
                "required": list(props)[:1],
                "propertyOrdering": sorted(props),
            },
            st.dictionaries(NAMES, children, min_size=1, max_size=4),
        ),
        st.builds(
            lambda items, lo, extra: {
                "type": "ARRAY",
                "items": items,
                "minItems": str(lo),
                "maxItems": lo + extra,
            },
            children,
            st.integers(0, 3),
            st.integers(0, 2),
        ),
        st.lists(children, min_size=1, max_size=2).map(lambda bs: {"anyOf": bs}),
    )


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.recursive(OPENAPI_SCALARS, _openapi_extend, max_leaves=10))
def test_random_openapi_schemas_validate(schema: dict[str, Any]) -> None:
    value = structured("Some prompt text", responseSchema=schema)
    normal = model.validate_generate_request(
        ask(
            "x", generationConfig={"responseMimeType": "application/json", "responseSchema": schema}
        )
    )
    jsonschema.validate(value, openapi_to_json_schema(normal["generationConfig"]["responseSchema"]))


# -- normalisation and validation ------------------------------------------------------------------
def test_snake_case_is_accepted_and_equal_to_camel_case() -> None:
    camel = {
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "Look"},
                    {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}},
                    {"fileData": {"mimeType": "video/mp4", "fileUri": "files/v1"}},
                ],
            }
        ],
        "systemInstruction": {"parts": [{"text": "Be kind"}]},
        "generationConfig": {
            "maxOutputTokens": 50,
            "responseMimeType": "application/json",
            "responseSchema": {
                "type": "OBJECT",
                "properties": {"snake_name": {"type": "STRING"}},
                "propertyOrdering": ["snake_name"],
            },
            "thinkingConfig": {"includeThoughts": True, "thinkingBudget": 10},
        },
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        "tools": [{"codeExecution": {}}, {"googleSearch": {}}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}},
    }
    snake = {
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "Look"},
                    {"inline_data": {"mime_type": "image/jpeg", "data": "/9j/4AAQ"}},
                    {"file_data": {"mime_type": "video/mp4", "file_uri": "files/v1"}},
                ],
            }
        ],
        "system_instruction": {"parts": [{"text": "Be kind"}]},
        "generation_config": {
            "max_output_tokens": 50,
            "response_mime_type": "application/json",
            "response_schema": {
                "type": "OBJECT",
                "properties": {"snake_name": {"type": "STRING"}},
                "property_ordering": ["snake_name"],
            },
            "thinking_config": {"include_thoughts": True, "thinking_budget": 10},
        },
        "safety_settings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        "tools": [{"code_execution": {}}, {"google_search": {}}],
        "tool_config": {
            "function_calling_config": {"mode": "ANY", "allowed_function_names": ["f"]}
        },
    }
    assert model.validate_generate_request(snake) == model.validate_generate_request(camel) == camel
    assert model.generate_content(MODEL, snake) == model.generate_content(MODEL, camel)


def test_user_data_is_kept_verbatim() -> None:
    json_schema = {
        "type": "object",
        "properties": {"user_name": {"type": "string"}},
        "additionalProperties": False,
        "$defs": {},
        "x_custom": 1,
    }
    request = ask(
        "Hi",
        generation_config={
            "response_mime_type": "application/json",
            "response_json_schema": json_schema,
        },
    )
    assert (
        model.validate_generate_request(request)["generationConfig"]["responseJsonSchema"]
        == json_schema
    )
    call = {
        "contents": [
            {
                "role": "model",
                "parts": [{"function_call": {"name": "f", "args": {"snake_arg": 1}}}],
            },
            {"parts": [{"text": "go"}]},
        ]
    }
    normal = model.validate_generate_request(call)
    assert normal["contents"][0]["parts"][0] == {
        "functionCall": {"name": "f", "args": {"snake_arg": 1}}
    }


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (
            ask("x", generation_config={"foo": 1}),
            (
                "Invalid JSON payload received. Unknown name \"foo\" at 'generation_config': "
                "Cannot find "
                "field."
            ),
        ),
        (ask("x", bar=1), 'Invalid JSON payload received. Unknown name "bar": Cannot find field.'),
        (
            {"contents": [{"parts": [{"text": "x", "colour": "red"}]}]},
            "Unknown name \"colour\" at 'contents[0].parts[0]': Cannot find field.",
        ),
        (
            ask("x", generationConfig={"thinkingConfig": {"budget": 3}}),
            "Unknown name \"budget\" at 'generation_config.thinking_config': Cannot find field.",
        ),
        (
            ask(
                "x",
                generationConfig={
                    "responseMimeType": "application/json",
                    "responseSchema": {
                        "type": "OBJECT",
                        "properties": {"a": {"type": "STRING", "additionalProperties": False}},
                    },
                },
            ),
            (
                'Unknown name "additionalProperties" at '
                "'generation_config.response_schema.properties[0].value'"
            ),
        ),
        (ask("x", tools=[{"google_search ": {}}]), "Unknown name \"google_search \" at 'tools[0]'"),
        (
            ask("x", system_instructions={"parts": [{"text": "x"}]}),
            'Unknown name "system_instructions"',
        ),
    ],
)
def test_unknown_fields_name_the_field_and_path(request_: dict[str, Any], message: str) -> None:
    assert message in refused(request_).message


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ([], "Root element must be a message"),
        ({}, "* GenerateContentRequest.contents: contents is not specified"),
        ({"contents": []}, "contents is not specified"),
        ({"contents": [{"role": "user"}]}, "contents[0].parts: contents.parts must not be empty."),
        (
            {"contents": [{"parts": [{"text": ""}]}]},
            "contents[0].parts[0].data: required oneof field 'data' must have one "
            "initialized field",
        ),
        ({"contents": [{"parts": [{"thought": True}]}]}, "required oneof field 'data'"),
        (
            {"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]},
            "valid role: user, model",
        ),
        ({"contents": "hello"}, "Invalid value at 'contents[0]' (type.googleapis.com/google.ai."),
        (
            ask("x", generationConfig={"temperature": "hot"}),
            "Invalid value at 'generation_config.temperature' (TYPE_FLOAT), \"hot\"",
        ),
        (ask("x", generationConfig={"temperature": True}), "(TYPE_FLOAT), true"),
        (ask("x", generationConfig={"candidateCount": 0}), "generation_config.candidate_count"),
        (ask("x", generationConfig={"maxOutputTokens": 0}), "generation_config.max_output_tokens"),
        (ask("x", generationConfig={"maxOutputTokens": 2.5}), "(TYPE_INT32), 2.5"),
        (ask("x", generationConfig={"seed": 3812238859}), "generation_config.seed' (TYPE_INT32)"),
        (
            ask("x", generationConfig={"responseSchema": {"type": "STRING"}}),
            "response_mime_type must be `application/json`",
        ),
        (
            ask("x", generationConfig={"responseJsonSchema": {"type": "string"}}),
            "response_mime_type must be `application/json`",
        ),
        (
            ask(
                "x",
                generationConfig={
                    "responseMimeType": "application/json",
                    "responseJsonSchema": {},
                    "responseSchema": {"type": "STRING"},
                },
            ),
            "cannot both be set",
        ),
        (ask("x", generationConfig={"responseMimeType": "image/png"}), "allowed mimetypes are"),
        (
            ask(
                "x",
                generationConfig={
                    "responseMimeType": "application/json",
                    "responseSchema": {"type": "WORD"},
                },
            ),
            "response_schema.type'",
        ),
        (ask("x", generationConfig=[]), "Proto field is not repeating, cannot start list."),
        (ask("x", generationConfig={"temperature": {}}), "Starting an object on a scalar field."),
        (
            ask(
                "x", safetySettings=[{"category": "HARM_CATEGORY_NICE", "threshold": "BLOCK_NONE"}]
            ),
            "Invalid value at 'safety_settings[0].category'",
        ),
        (
            {
                "contents": [
                    {"parts": [{"inlineData": {"mimeType": "image/png", "data": "not base64!"}}]}
                ]
            },
            "Base64 decoding failed",
        ),
        (  # google-genai's own suite: a list of enums is refused with text/x.enum
            ask(
                "x",
                generationConfig={
                    "responseMimeType": "text/x.enum",
                    "responseSchema": {
                        "type": "ARRAY",
                        "items": {"type": "STRING", "enum": ["a", "b"]},
                    },
                },
            ),
            "response_schema must be a STRING schema with enum values",
        ),
        (  # google-genai's own suite: one voice or several speakers, not both
            ask(
                "x",
                generationConfig={
                    "speechConfig": {
                        "voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "puck"}},
                        "multiSpeakerVoiceConfig": {"speakerVoiceConfigs": []},
                    }
                },
            ),
            "voice_config and multi_speaker_voice_config are mutually exclusive",
        ),
    ],
)
def test_invalid_requests_are_refused(request_: Any, message: str) -> None:
    assert message in refused(request_).message


def test_a_part_with_two_kinds_of_data_is_refused() -> None:
    part = {"text": "x", "inline_data": {"mime_type": "image/png", "data": "AAAA"}}
    message = refused({"contents": [{"parts": [part]}]}).message
    assert message == (
        "Invalid JSON payload received. Oneof field 'data' is already set. Cannot set 'inline_data'"
    )


def test_lenient_proto_json_forms_are_accepted() -> None:
    request = {
        "contents": {"parts": {"text": "Hi"}},
        "generationConfig": {
            "maxOutputTokens": "64",
            "temperature": "0.5",
            "topK": 40.0,
            "stopSequences": "END",
            "seed": None,
        },
    }
    assert model.validate_generate_request(request) == {
        "contents": [{"parts": [{"text": "Hi"}]}],
        "generationConfig": {
            "maxOutputTokens": 64,
            "temperature": 0.5,
            "topK": 40,
            "stopSequences": ["END"],
        },
    }
    assert model.validate_generate_request(ask("x", model=MODEL))["model"] == MODEL
    as_int = model.generate_content(MODEL, ask("x", generationConfig={"temperature": 1}))
    assert as_int == model.generate_content(MODEL, ask("x", generationConfig={"temperature": 1.0}))


# -- embeddings ------------------------------------------------------------------------------------
def embed(text: str, name: str = "models/gemini-embedding-001", **request: Any) -> list[float]:
    body = {"content": {"parts": [{"text": text}]}, **request}
    values: list[float] = model.embed_content(name, body)["embedding"]["values"]
    return values


def test_embeddings() -> None:
    vector = embed("hello")
    assert len(vector) == 3072 and abs(sum(x * x for x in vector) - 1) < 1e-9
    assert embed("hello") == vector
    assert len(embed("hello", "models/text-embedding-004")) == 768
    assert len(embed("hello", output_dimensionality=16)) == 16
    small = embed("hello", outputDimensionality=8)
    assert abs(math.fsum(x * x for x in small) - 1) < 1e-9
    ratio = small[0] / vector[0]  # Matryoshka: a prefix of the long vector, renormalised
    assert all(abs(s - v * ratio) < 1e-9 for s, v in zip(small, vector[:8], strict=True))
    assert embed("hello ") != vector
    query = embed("hello", taskType="RETRIEVAL_QUERY")
    assert query != embed("hello", taskType="RETRIEVAL_DOCUMENT") and query != vector
    assert embed("hello", title="A") != embed("hello", title="B")
    assert embed("hello", task_type="CLUSTERING") == embed("hello", taskType="CLUSTERING")


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (
            {"content": {"parts": [{"text": "x"}]}, "outputDimensionality": 0},
            "output_dimensionality",
        ),
        (
            {"content": {"parts": [{"text": "x"}]}, "outputDimensionality": 3073},
            "output_dimensionality",
        ),
        ({"content": {"parts": [{"text": "x"}]}, "taskType": "SUMMARY"}, "task_type"),
        ({"content": {"parts": [{"text": ""}]}}, "required oneof field 'data'"),
        ({"title": "x"}, "content is not specified"),
        ({"content": {"parts": [{"text": "x"}]}, "dims": 3}, 'Unknown name "dims"'),
    ],
)
def test_invalid_embed_requests_are_refused(request_: dict[str, Any], message: str) -> None:
    assert message in refused(request_, model.validate_embed_request).message

    def embed_call(request: dict[str, Any]) -> dict[str, Any]:
        return model.embed_content("gemini-embedding-001", request)

    assert message in refused(request_, embed_call).message
