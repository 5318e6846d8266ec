from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

import gembatch
from gembatch import Config, ConfigError, EmbedConfig


class Review(BaseModel):
    sentiment: str
    score: int


def test_static_request_fields_are_wire_form():
    cfg = Config(
        model="gemini-2.5-flash",
        temperature=0.2,
        top_p=0.9,
        max_output_tokens=64,
        system_instruction="Be brief.",
        stop_sequences=["END"],
        thinking_budget=0,
        safety_settings=[{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
    )
    static = cfg.request_static()
    assert static["generationConfig"] == {
        "maxOutputTokens": 64,
        "stopSequences": ["END"],
        "temperature": 0.2,
        "thinkingConfig": {"thinkingBudget": 0},
        "topP": 0.9,
    }
    assert static["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert static["safetySettings"][0]["threshold"] == "BLOCK_NONE"
    assert cfg.model_name == "models/gemini-2.5-flash"


def test_pydantic_schema_becomes_response_json_schema():
    cfg = Config(model="gemini-2.5-flash", response_schema=Review)
    gen = cfg.request_static()["generationConfig"]
    assert gen["responseMimeType"] == "application/json"
    assert gen["responseJsonSchema"]["properties"]["score"]["type"] == "integer"
    assert cfg.response_json_schema() == Review.model_json_schema()


def test_an_openapi_dict_schema_is_sent_as_json_schema_and_bad_schemas_are_refused():
    """A JSONL line refuses ``response_schema`` (python-genai #1150): the OpenAPI form is sent as
    the same JSON Schema. Schemas that would fail only once a batch runs are refused at once,
    naming the path."""
    schema = {"type": "OBJECT", "properties": {"a": {"type": "STRING", "nullable": True}}}
    gen = Config(model="m", response_schema=schema).request_static()["generationConfig"]
    assert "responseSchema" not in gen
    assert gen["responseJsonSchema"]["properties"]["a"] == {
        "anyOf": [{"type": "string"}, {"type": "null"}]
    }
    node = {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#"}}}}
    with pytest.raises(ConfigError, match="#/properties/kids/items"):
        Config(model="m", response_schema=node)
    deep: dict = {"type": "string"}
    for _ in range(12):
        deep = {"type": "object", "properties": {"x": deep}}
    with pytest.raises(ConfigError, match="deep"):
        Config(model="m", response_schema=deep)


def test_raw_generation_config_accepts_known_and_refuses_unknown_fields():
    cfg = Config(
        model="m",
        generation_config={"response_logprobs": True, "mediaResolution": "MEDIA_RESOLUTION_LOW"},
    )
    gen = cfg.request_static()["generationConfig"]
    assert gen["responseLogprobs"] is True and gen["mediaResolution"] == "MEDIA_RESOLUTION_LOW"
    with pytest.raises(ConfigError, match="unknown field 'temprature'"):
        Config(model="m", generation_config={"temprature": 1})
    with pytest.raises(ConfigError, match="repeats"):
        Config(model="m", temperature=1, generation_config={"temperature": 1})
    with pytest.raises(ConfigError, match="request_extra"):
        Config(model="m", request_extra={"foo": 1})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"temperature": 3},
            r"temperature must be a number between 0 and 2 \(got 3 of type int\)",
        ),
        ({"temperature": "hot"}, "temperature"),
        ({"top_k": 1.5}, "top_k must be an int"),
        ({"candidate_count": 0}, "candidate_count"),
        ({"max_output_tokens": True}, "max_output_tokens"),
        ({"stop_sequences": "END"}, "stop_sequences must be a list of strings"),
        ({"system_instruction": ""}, "system_instruction"),
        ({"safety_settings": {"category": "x"}}, "safety_settings"),
        ({"response_schema": 42}, "response_schema"),
        ({"response_schema": Review, "response_mime_type": "text/plain"}, "application/json"),
    ],
)
def test_invalid_values_name_the_field(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Config(model="gemini-2.5-flash", **kwargs)


def test_model_name_is_checked_and_config_is_frozen_and_keyword_only():
    with pytest.raises(ConfigError, match="model"):
        Config(model="")
    cfg = Config(model="m")
    with pytest.raises(AttributeError):
        cfg.temperature = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        Config("m")  # type: ignore[misc]


def test_round_trip_through_the_journal_form():
    cfg = Config(
        model="gemini-2.5-flash", temperature=0.5, response_schema=Review, stop_sequences=["x"]
    )
    data = json.loads(json.dumps(cfg.to_dict()))
    again = Config.from_dict(data)
    assert again.request_static() == cfg.request_static()


def test_embed_config():
    cfg = EmbedConfig(model="gemini-embedding-001", task_type="clustering", output_dimensionality=8)
    assert cfg.request_static() == {"taskType": "CLUSTERING", "outputDimensionality": 8}
    with pytest.raises(ConfigError, match="task_type"):
        EmbedConfig(task_type="nonsense")
    with pytest.raises(ConfigError, match="output_dimensionality"):
        EmbedConfig(output_dimensionality=0)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: gembatch.Options(poll_interval="fast"), r"Options.poll_interval must be a number"),
        (lambda: gembatch.Options(prefix=3), r"Options.prefix must be a name prefix"),
        (lambda: gembatch.Options(shard_max_rows=0), r"Options.shard_max_rows must be an int >= 1"),
        (
            lambda: gembatch.Options(shard_max_bytes=3_000_000_000),
            r"shard_max_bytes must be an int",
        ),
        (lambda: gembatch.Options(cleanup_remote="yes"), r"cleanup_remote must be True or False"),
        (lambda: gembatch.Options(poll_interval=5, max_poll_interval=1), r"max_poll_interval"),
        (lambda: gembatch.RetryPolicy(attempts=0), r"RetryPolicy.attempts must be an int >= 1"),
        (lambda: gembatch.RetryPolicy(max_elapsed=-1), r"RetryPolicy.max_elapsed must be"),
        (lambda: gembatch.RetryPolicy(timeout=0), r"RetryPolicy.timeout must be"),
    ],
)
def test_options_and_retry_policy_validate_every_field(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (
            lambda: Config(model="m", temprature=0.2),
            r"no field 'temprature' \(did you mean 'temperature'\?\)",
        ),
        (
            lambda: Config(model="m", max_tokens=5),
            r"no field 'max_tokens' \(did you mean 'max_output_tokens'",
        ),
        (lambda: gembatch.Options(shard_rows=5), r"did you mean 'shard_max_rows'"),
        (lambda: gembatch.RetryPolicy(atempts=2), r"did you mean 'attempts'"),
        (lambda: EmbedConfig(dimensions=8), r"EmbedConfig has no field 'dimensions'"),
    ],
)
def test_a_misspelt_field_says_did_you_mean(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("stop_sequences", ["a", "b", "c", "d", "e", "f"], "at most 5"),
        ("response_mime_type", "text/csv", "'text/plain' or 'application/json'"),
    ],
)
def test_values_the_api_refuses_row_by_row_are_refused_at_config(field, value, match):
    """The service would refuse every request (after payment) for these: Config refuses them."""
    with pytest.raises(gembatch.ConfigError, match=match):
        gembatch.Config(model="gemini-2.5-flash", **{field: value})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"generation_config": {"responseMimeType": "text/csv"}},
        {"generation_config": {"response_mime_type": "text/csv"}},
        {"generation_config": {"stopSequences": ["a", "b", "c", "d", "e", "f", "g"]}},
        {"system_instruction": "   "},
        {"generation_config": {"temperature": 5}},
        {"generation_config": {"topP": "hot"}},
        {"generation_config": {"max_output_tokens": 0}},
    ],
)
def test_the_same_limits_hold_in_wire_form_and_for_blank_text(kwargs):
    """generation_config's wire fields meet the named parameters' limits (text/csv went through
    that way and every row failed after payment); a blank system instruction is refused as an
    empty one is."""
    with pytest.raises(gembatch.ConfigError):
        gembatch.Config(model="gemini-2.5-flash", **kwargs)
    for mime in ("application/xml", "application/yaml", "text/x.enum"):  # the API takes these
        gembatch.Config(model="gemini-2.5-flash", response_mime_type=mime)
