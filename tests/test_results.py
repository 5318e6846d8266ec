"""Result lines -> typed columns (hand-written and property-based), structured output, the checked
join."""

from __future__ import annotations

import json
from typing import Any, Literal

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gembatch._results import parse as results_module
from gembatch._results.codes import CODE_NAMES
from gembatch._results.join import JoinReport, join_results
from gembatch._results.parse import (
    GENERATE_COLUMNS,
    GENERATE_RESULT_SCHEMA,
    embed_columns,
    lines_from_bytes,
    parse_embed_lines,
    parse_generate_lines,
)
from gembatch._results.schema import parse_structured, polars_dtype_from_json_schema
from gembatch.exceptions import ConfigError, InputError

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)


def _ok(
    key: str, *parts: dict, finish: str = "STOP", usage: dict | None = None, **extra: Any
) -> str:
    candidate: dict[str, Any] = {
        "content": {"role": "model", "parts": list(parts)},
        "finishReason": finish,
        "index": 0,
    }
    response = {
        "candidates": [candidate],
        "modelVersion": "gemini-2.5-flash",
        "responseId": "r",
        "usageMetadata": usage
        if usage is not None
        else {"promptTokenCount": 12, "candidatesTokenCount": 40, "totalTokenCount": 52},
        **extra,
    }
    return json.dumps({"key": key, "response": response})


def _parse(lines: list[str], **kw: Any) -> pl.DataFrame:
    out = parse_generate_lines(pl.Series(lines, dtype=pl.Utf8), **kw)
    # the same lines as a JSONL payload decode identically
    assert parse_generate_lines("\n".join(lines).encode(), **kw).equals(out)
    return out


def _row(frame: pl.DataFrame, key: str) -> dict[str, Any]:
    return frame.filter(pl.col("key") == key).row(0, named=True)


HAND = [
    _ok("ok", {"text": "Hello"}),
    _ok(
        "multi",
        {"text": "Hel"},
        {"text": "lo", "thought": False},
        {"functionCall": {"name": "f"}},
        {"text": "!"},
    ),
    _ok(
        "thought",
        {"text": "thinking...", "thought": True},
        {"text": "answer"},
        usage={
            "promptTokenCount": 5,
            "thoughtsTokenCount": 7,
            "candidatesTokenCount": 1,
            "totalTokenCount": 13,
            "cachedContentTokenCount": 2,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 5}],
        },
    ),
    json.dumps(
        {
            "key": "err",
            "error": {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED"},
        }
    ),
    json.dumps(
        {
            "key": "blocked",
            "response": {
                "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
                "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
            },
        }
    ),
    json.dumps(
        {
            "key": "safety",
            "response": {
                "candidates": [{"finishReason": "SAFETY", "safetyRatings": []}],
                "usageMetadata": {"promptTokenCount": 3},
            },
        }
    ),
    json.dumps(
        {
            "key": "nousage",
            "response": {
                "candidates": [
                    {"content": {"parts": [{"text": "x"}]}, "finishReason": "MAX_TOKENS"}
                ]
            },
        }
    ),
    json.dumps({"key": "empty-cands", "response": {"candidates": []}}),
    json.dumps({"key": "neither"}),
    '{"key": "broken", "response": {',
    "definitely not json",
    '["key", "array"]',
    "null",
    '{"key": 12, "response": {}}',
    '{"key": "wrongtype", "response": {"candidates": "nope"}}',
]


def test_hand_written_lines():
    out = _parse(HAND + ["", "   "])  # blank lines are skipped
    assert out.schema == GENERATE_COLUMNS and out.height == len(HAND)
    assert _row(out, "ok") == {
        "key": "ok",
        "text": "Hello",
        "finish_reason": "STOP",
        "prompt_tokens": 12,
        "output_tokens": 40,
        "thoughts_tokens": 0,
        "cached_tokens": 0,
        "total_tokens": 52,
        "model_version": "gemini-2.5-flash",
        "status": "ok",
        "error_code": None,
        "error_status": None,
        "error_message": None,
    }
    assert _row(out, "multi")["text"] == "Hello!"
    thought = _row(out, "thought")
    assert (
        thought["text"] == "answer"
        and thought["thoughts_tokens"] == 7
        and thought["cached_tokens"] == 2
    )
    err = _row(out, "err")
    assert (err["status"], err["error_code"], err["text"], err["prompt_tokens"]) == (
        "error",
        429,
        None,
        None,
    )
    assert err["error_message"] == "RESOURCE_EXHAUSTED: Resource exhausted"
    assert err["error_status"] == "RESOURCE_EXHAUSTED"
    blocked = _row(out, "blocked")
    assert (blocked["status"], blocked["error_code"]) == ("error", None)
    assert blocked["error_status"] == "PROMPT_BLOCKED"
    assert (
        blocked["error_message"] == "prompt blocked: PROHIBITED_CONTENT"
        and blocked["prompt_tokens"] == 9
    )
    safety = _row(out, "safety")
    assert (safety["status"], safety["text"], safety["finish_reason"]) == ("ok", None, "SAFETY")
    assert (safety["prompt_tokens"], safety["output_tokens"]) == (3, 0)
    nousage = _row(out, "nousage")
    assert (
        nousage["text"] == "x" and nousage["total_tokens"] == 0 and nousage["model_version"] is None
    )
    assert _row(out, "empty-cands")["error_message"] == "the response has no candidates"
    for key in ("neither", "broken", "wrongtype"):
        row = _row(out, key)
        assert (
            row["status"] == "error" and row["error_code"] is None and row["prompt_tokens"] is None
        )
        assert row["error_message"].startswith("malformed result line: {")
        assert row["error_status"] == "MALFORMED_RESULT"
    keyless = out.filter(pl.col("key").is_null())
    assert keyless.height == 3 and (keyless["status"] == "error").all()
    assert sorted(keyless["error_message"]) == sorted(
        f"malformed result line: {x}" for x in ["definitely not json", '["key", "array"]', "null"]
    )
    # lines off the wire types are read leniently once any line needs it: a numeric key is text
    assert _row(out, "12")["error_message"] == "the response has no candidates"


def test_malformed_message_is_cut_at_80_characters():
    line = '{"key": "long", "oops": "' + "x" * 200
    out = _parse([line])
    assert out["error_message"][0] == "malformed result line: " + line[:80]
    assert out["key"][0] == "long"


def test_all_candidates_texts_column():
    two = json.dumps(
        {
            "key": "two",
            "response": {
                "candidates": [
                    {"content": {"parts": [{"text": "a"}, {"text": "b"}]}},
                    {"content": {"parts": [{"text": "t", "thought": True}, {"text": "c"}]}},
                ]
            },
        }
    )
    out = _parse([two, HAND[0], HAND[3]], all_candidates=True)
    assert out["texts"].dtype == pl.List(pl.Utf8)
    assert out["texts"].to_list() == [["ab", "c"], ["Hello"], None]
    assert out.drop("texts").equals(_parse([two, HAND[0], HAND[3]]))


def test_empty_input_keeps_the_schema():
    for empty in (pl.Series([], dtype=pl.Utf8), b"", pl.Series(["", " "])):
        out = parse_generate_lines(empty)
        assert out.height == 0 and out.schema == GENERATE_COLUMNS
    assert parse_embed_lines(b"", dimensions=4).schema == embed_columns(4)


def test_explicit_schema_keeps_errors_that_come_late():
    lines = [_ok(str(i), {"text": f"t{i}"}) for i in range(3000)]
    lines.append(
        json.dumps({"key": "late", "error": {"code": 500, "message": "boom", "status": "INTERNAL"}})
    )
    out = _parse(lines)
    assert (
        _row(out, "late")["error_message"] == "INTERNAL: boom"
        and _row(out, "late")["error_code"] == 500
    )
    assert "error" in GENERATE_RESULT_SCHEMA


def test_bad_lines_among_many_good_ones_are_isolated():
    lines = [_ok(str(i), {"text": f"t{i}"}) for i in range(2000)]
    for i in (0, 777, 1999):
        lines[i] = lines[i][:-5]  # cut: invalid JSON
    lines[1000] = '{"key": "1000"} {"key": "extra"}'  # two objects on one line
    out = _parse(lines)
    bad = out.filter(pl.col("error_message").str.starts_with("malformed"))
    assert sorted(bad["key"].to_list()) == ["0", "1000", "1999", "777"]
    assert out.filter(pl.col("status") == "ok").height == 1996
    assert _row(out, "1500")["text"] == "t1500"


JSONISH = st.lists(
    st.sampled_from(
        [
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            " ",
            '"key"',
            '"response"',
            '"error"',
            '"candidates"',
            '"content"',
            '"parts"',
            '"text"',
            '"code"',
            "null",
            "true",
            "0",
            "-1.5",
            "1e999",
            '"x"',
            '"\\ud800"',
            '"\\"',
            "\t",
            "\r",
            "\x00",
            "é",
            '{"key":"k","response":{"candidates":[{"content":{"parts":[{"text":"t"}]}}]}}',
        ]
    ),
    max_size=25,
).map("".join)


@FAST
@given(st.lists(JSONISH, min_size=1, max_size=12))
def test_arbitrary_lines_never_raise_and_give_one_row_per_line(lines):
    out = parse_generate_lines(pl.Series(lines))
    assert out.height == sum(1 for line in lines if line.strip())
    assert set(out["status"].to_list()) <= {"ok", "error"}
    joined = "\n".join(lines).encode()
    assert parse_generate_lines(joined).height == len([x for x in joined.split(b"\n") if x.strip()])


def test_salvaged_key_with_a_lone_surrogate_escape_is_dropped():
    out = _parse(['{"key": "\\ud800", "response": {', '{"key": "ok\\u00e9", "response": {'])
    assert out["key"].to_list() == [None, "oké"]


def test_lines_from_bytes():
    payload = b'{"a":1}\r\n\n  \n{"b":"\xff"}\n{"c":2}'
    assert lines_from_bytes(payload).to_list() == ['{"a":1}', "  ", '{"b":"\ufffd"}', '{"c":2}']
    assert lines_from_bytes(b"").to_list() == []
    assert lines_from_bytes(b'{"x":"\x1f"}\n').to_list() == ['{"x":"\x1f"}']


def test_whitespace_only_lines_are_skipped_in_both_forms():
    lines = [HAND[3], "   ", "\t", HAND[0]]
    assert parse_generate_lines("\n".join(lines).encode()).equals(_parse([HAND[3], HAND[0]]))
    assert _parse(lines).height == 2


def test_crlf_and_padded_payload_parses_like_lines():
    lines = [HAND[0], HAND[3]]
    payload = ("\r\n".join(lines) + "\r\n\r\n").encode()
    assert parse_generate_lines(payload).equals(_parse(lines))
    assert parse_generate_lines(pl.Series(["  " + HAND[0] + " "])).equals(_parse([HAND[0]]))


@pytest.mark.parametrize(
    "odd", [None, "null", '{"key": "cut", "response": {', '{"key": "a"} {"key": "b"}']
)
@pytest.mark.parametrize("newline_at_end", [True, False])
def test_payload_and_file_decoded_piece_by_piece(monkeypatch, tmp_path, odd, newline_at_end):
    # the JSON reader gets the input a few lines at a time; an odd line in a later piece (Arrow must
    # never see a bare null: it crashes) still gives the same rows as the line-by-line way
    monkeypatch.setattr(results_module, "_CHUNK", 700)
    monkeypatch.setattr(results_module, "_BLOCK", 300)
    lines = [_ok(str(i), {"text": f"t{i}"}) for i in range(40)]
    if odd is not None:
        lines[29] = odd
    payload = ("\n".join(lines) + ("\n" if newline_at_end else "")).encode()
    expected = _parse(lines)
    (tmp_path / "results.jsonl").write_bytes(payload)
    assert parse_generate_lines(payload).equals(expected)
    assert parse_generate_lines(tmp_path / "results.jsonl").equals(expected)
    assert expected.filter(pl.col("status") == "ok").height == (40 if odd is None else 39)


# ------------------------------------------------------------------------------ property: generate
PART = st.fixed_dictionaries({}, optional={"text": TEXT, "thought": st.booleans()})
CANDIDATE = st.fixed_dictionaries(
    {},
    optional={
        "content": st.fixed_dictionaries(
            {"parts": st.lists(PART, max_size=4)}, optional={"role": st.just("model")}
        ),
        "finishReason": st.sampled_from(["STOP", "MAX_TOKENS", "SAFETY", "RECITATION", "OTHER"]),
    },
)
USAGE = st.fixed_dictionaries(
    {},
    optional={
        k: st.integers(0, 2**40)
        for k in (
            "promptTokenCount",
            "candidatesTokenCount",
            "totalTokenCount",
            "thoughtsTokenCount",
            "cachedContentTokenCount",
        )
    },
)
RESPONSE = st.fixed_dictionaries(
    {},
    optional={
        "candidates": st.lists(CANDIDATE, max_size=2),
        "usageMetadata": USAGE,
        "modelVersion": TEXT,
        "promptFeedback": st.fixed_dictionaries(
            {}, optional={"blockReason": st.sampled_from(["SAFETY", "OTHER"])}
        ),
    },
)
ERROR = st.one_of(
    st.fixed_dictionaries(  # as some clients' fixtures show it: HTTP codes with a status name
        {"code": st.integers(100, 599), "message": TEXT},
        optional={"status": st.sampled_from(["INTERNAL", "INVALID_ARGUMENT", ""])},
    ),
    # as the service sends it in batch results: a google.rpc.Status, gRPC codes, no status name
    st.fixed_dictionaries({"code": st.integers(1, 16), "message": TEXT}),
)
RESULT = st.one_of(
    st.fixed_dictionaries({"key": TEXT, "response": RESPONSE}),
    st.fixed_dictionaries({"key": TEXT, "error": ERROR}),
)


def _expected(obj: dict[str, Any]) -> dict[str, Any]:
    """What one result object must parse to: a plain-Python reference of the rules."""
    none = dict.fromkeys(GENERATE_COLUMNS.names())
    if "error" in obj:
        err = obj["error"]
        message = f"{err['status']}: {err['message']}" if err.get("status") else err["message"]
        return {
            **none,
            "key": obj["key"],
            "status": "error",
            "error_code": err["code"],
            "error_status": err.get("status") or CODE_NAMES.get(err["code"], "UNKNOWN"),
            "error_message": message,
        }
    response = obj["response"]
    usage = response.get("usageMetadata", {})
    candidates = response.get("candidates") or []
    first = candidates[0] if candidates else {}
    texts = [
        p["text"]
        for p in first.get("content", {}).get("parts", [])
        if "text" in p and not p.get("thought", False)
    ]
    row = {
        **none,
        "key": obj["key"],
        "text": "".join(texts) if texts else None,
        "finish_reason": first.get("finishReason"),
        "model_version": response.get("modelVersion"),
        "prompt_tokens": usage.get("promptTokenCount", 0),
        "output_tokens": usage.get("candidatesTokenCount", 0),
        "thoughts_tokens": usage.get("thoughtsTokenCount", 0),
        "cached_tokens": usage.get("cachedContentTokenCount", 0),
        "total_tokens": usage.get("totalTokenCount", 0),
        "status": "ok",
    }
    if not candidates:
        reason = response.get("promptFeedback", {}).get("blockReason")
        row.update(
            status="error",
            error_status="PROMPT_BLOCKED" if reason else "NO_CANDIDATES",
            error_message=f"prompt blocked: {reason}"
            if reason
            else "the response has no candidates",
        )
    return row


@FAST
@given(st.lists(RESULT, min_size=1, max_size=20))
def test_generated_results_parse_back(objects):
    lines = [json.dumps(o, ensure_ascii=bool(i % 2)) for i, o in enumerate(objects)]
    out = _parse(lines)
    assert out.schema == GENERATE_COLUMNS
    assert out.to_dicts() == [_expected(o) for o in objects]


# -------------------------------------------------------------------------------------------- embed
def test_embed_lines():
    lines = [
        json.dumps({"key": "a", "response": {"embedding": {"values": [0.5, -1, 2e-3]}}}),
        json.dumps({"key": "b", "response": {"embedding": {"values": [1.0, 2.0]}}}),
        json.dumps(
            {
                "key": "c",
                "error": {"code": 400, "message": "too long", "status": "INVALID_ARGUMENT"},
            }
        ),
        json.dumps({"key": "d", "response": {}}),
        "garbage",
    ]
    out = parse_embed_lines(pl.Series(lines), dimensions=3)
    assert out.schema == embed_columns(3)
    assert out.schema["embedding"] == pl.Array(pl.Float32, 3)
    rows = {r["key"]: r for r in out.to_dicts()}
    assert (
        rows["a"]["embedding"] == pytest.approx([0.5, -1.0, 0.002]) and rows["a"]["status"] == "ok"
    )
    assert (
        rows["b"]["embedding"] is None
        and rows["b"]["error_message"] == "the embedding has 2 values, expected 3"
    )
    assert rows["c"]["error_code"] == 400 and rows["c"]["status"] == "error"
    assert rows["d"]["error_message"] == "the response has no embedding"
    assert rows[None]["error_message"] == "malformed result line: garbage"
    free = parse_embed_lines("\n".join(lines).encode(), dimensions=None)
    assert free.schema["embedding"] == pl.List(pl.Float32)
    assert free.filter(pl.col("key") == "b")["embedding"].to_list() == [[1.0, 2.0]]


# --------------------------------------------------------------------------------------- structured
def test_parse_structured_good_bad_wrong_type_and_fences():
    dtype = pl.Struct({"label": pl.Utf8, "score": pl.Int64, "tags": pl.List(pl.Utf8)})
    text = pl.Series(
        [
            '{"label": "pos", "score": 3, "tags": ["a"]}',
            '{"label": "neg", "score": "high"}',
            "{not json",
            None,
            "   ",
            '```json\n{"label": "x", "score": 1}\n```',
            "[1, 2]",
            "null",
            '{"label": "multi\\nline", "score": 2,\n "tags": []}',
            "{not: json}",
            "Sure! Here is the JSON you asked for.",
        ]
    )
    parsed, errors = parse_structured(text, dtype)
    assert (
        parsed.dtype == dtype
        and errors.dtype == pl.Utf8
        and len(parsed) == len(errors) == len(text)
    )
    assert parsed.to_list() == [
        {"label": "pos", "score": 3, "tags": ["a"]},
        None,
        None,
        None,
        None,
        {"label": "x", "score": 1, "tags": None},
        None,
        None,
        {"label": "multi\nline", "score": 2, "tags": []},
        None,
        None,
    ]
    messages = errors.to_list()
    assert (
        messages[0] is None and messages[3] is None and messages[5] is None and messages[8] is None
    )
    assert messages[1].startswith("does not match the response schema")
    assert messages[2] == "not a JSON object: {not json"
    assert messages[9].startswith("not valid JSON")
    assert messages[10] == "not a JSON object: Sure! Here is the JSON you asked for."
    assert messages[4] == "empty text, expected JSON"
    assert messages[6] == "not a JSON object: [1, 2]"
    assert messages[7] == "JSON null, expected a value"


def test_parse_structured_list_dtype_and_all_null():
    parsed, errors = parse_structured(pl.Series(["[1, 2]", "[]", '"x"']), pl.List(pl.Int64))
    assert parsed.to_list()[:2] == [[1, 2], []] and errors[2] is not None
    parsed, errors = parse_structured(
        pl.Series([None, None], dtype=pl.Utf8), pl.Struct({"a": pl.Int64})
    )
    assert parsed.null_count() == 2 and errors.null_count() == 2


# ------------------------------------------------------------------------------------ dtype mapping
def test_dtype_from_pydantic_schema():
    pydantic = pytest.importorskip("pydantic")

    class Address(pydantic.BaseModel):
        city: str
        zip: int | None = None

    class Review(pydantic.BaseModel):
        sentiment: Literal["pos", "neg"]
        score: float
        flags: list[bool]
        home: Address
        previous: list[Address] | None = None
        counts: dict[str, int] = pydantic.Field(default_factory=dict)
        either: int | str = 0
        number: int | float = 0
        anything: Any = None
        mixed: Address | int = 0

    dtype = polars_dtype_from_json_schema(Review.model_json_schema())
    address = pl.Struct({"city": pl.Utf8, "zip": pl.Int64})
    # values without a fixed shape (a dict, Any, a union holding an object) are their JSON text
    assert dtype == pl.Struct(
        {
            "sentiment": pl.Utf8,
            "score": pl.Float64,
            "flags": pl.List(pl.Boolean),
            "home": address,
            "previous": pl.List(address),
            "counts": pl.Utf8,
            "either": pl.Utf8,
            "number": pl.Float64,
            "anything": pl.Utf8,
            "mixed": pl.Utf8,
        }
    )
    samples = [
        Review(
            sentiment="pos",
            score=0.5,
            flags=[True],
            home=Address(city="X"),
            counts={"a": 1},
            either=7,
            number=2,
            anything={"deep": [1]},
            mixed=Address(city="Y"),
        ),
        Review(
            sentiment="neg", score=1, flags=[], home=Address(city="Z", zip=9), either="s", mixed=3
        ),
    ]
    texts = pl.Series([r.model_dump_json() for r in samples])
    parsed, errors = parse_structured(texts, Review.model_json_schema())
    assert errors.to_list() == [None, None] and parsed.dtype == dtype
    assert parsed.to_list() == [
        {
            "sentiment": "pos",
            "score": 0.5,
            "flags": [True],
            "home": {"city": "X", "zip": None},
            "previous": None,
            "counts": '{"a":1}',
            "either": "7",
            "number": 2.0,
            "anything": '{"deep":[1]}',
            "mixed": '{"city":"Y","zip":null}',
        },
        {
            "sentiment": "neg",
            "score": 1.0,
            "flags": [],
            "home": {"city": "Z", "zip": 9},
            "previous": None,
            "counts": "{}",
            "either": "s",
            "number": 0.0,
            "anything": None,
            "mixed": "3",
        },
    ]


def test_dtype_from_openapi_subset_and_edge_cases():
    schema = {
        "type": "OBJECT",
        "properties": {
            "b": {"type": "BOOLEAN"},
            "a": {"type": "ARRAY", "items": {"type": "NUMBER"}},
            "n": {"type": "INTEGER", "nullable": True},
            "e": {"type": "STRING", "enum": ["x", "y"]},
        },
        "propertyOrdering": ["a", "b"],
    }
    assert polars_dtype_from_json_schema(schema) == pl.Struct(
        {"a": pl.List(pl.Float64), "b": pl.Boolean, "n": pl.Int64, "e": pl.Utf8}
    )
    assert polars_dtype_from_json_schema({"type": ["integer", "null"]}) == pl.Int64
    assert polars_dtype_from_json_schema({"enum": [1, 2, None]}) == pl.Int64
    assert (
        polars_dtype_from_json_schema({"anyOf": [{"type": "integer"}, {"type": "string"}]})
        == pl.Utf8
    )
    assert polars_dtype_from_json_schema(
        {
            "type": "object",
            "properties": {
                "free": {"type": "array"},
                "kept": {"type": "array", "items": {"type": "object"}},
            },
        }
    ) == pl.Struct({"free": pl.List(pl.Utf8), "kept": pl.List(pl.Utf8)})
    recursive = {
        "$defs": {"N": {"type": "object", "properties": {"next": {"$ref": "#/$defs/N"}}}},
        "$ref": "#/$defs/N",
    }
    with pytest.raises(ConfigError, match="recursive"):
        polars_dtype_from_json_schema(recursive)


# --------------------------------------------------------------------------------------------- join
def _results(*rows: tuple[str | None, str | None, str]) -> pl.DataFrame:
    return pl.DataFrame(
        [{"key": k, "text": t, "status": s} for k, t, s in rows],
        schema={"key": pl.Utf8, "text": pl.Utf8, "status": pl.Utf8},
    )


def test_join_keeps_order_and_every_row_with_int_keys():
    rows = pl.DataFrame({"id": [30, 10, 20, 40], "v": ["c", "a", "b", "d"]})
    results = _results(("20", "B", "ok"), ("10", "A", "ok"), ("30", None, "error"))
    out, report = join_results(rows, key="id", results=results)
    assert out.columns == ["id", "v", "gemini_text", "gemini_status"]
    assert out["id"].to_list() == [30, 10, 20, 40]
    assert out["gemini_text"].to_list() == [None, "A", "B", None]
    assert out["gemini_status"].to_list() == ["error", "ok", "ok", "missing"]
    assert report == JoinReport(missing=1, duplicated=0, unknown=0, malformed=0)


def test_join_duplicates_unknown_malformed_and_skipped():
    rows = pl.DataFrame({"k": ["a", "b", "c", "d"]})
    results = _results(
        ("a", "bad", "error"),
        ("a", "good", "ok"),
        ("a", "again", "ok"),
        ("b", "x", "ok"),
        ("zzz", "?", "ok"),
        ("zzz", "?", "ok"),
        (None, None, "error"),
        ("c", "late", "ok"),
    )
    mask = pl.Series([True, True, True, False])
    out, report = join_results(
        rows,
        key=pl.col("k"),
        results=results,
        send_mask=mask,
        prefix="g_",
        extra={"g_batch_job": "batches/1", "g_note": None},
    )
    assert out.height == 4 and out["k"].to_list() == ["a", "b", "c", "d"]
    assert out["g_text"].to_list() == ["good", "x", "late", None]
    assert out["g_status"].to_list() == ["ok", "ok", "ok", "skipped"]
    assert out["g_batch_job"].to_list() == ["batches/1"] * 4 and out.schema["g_note"] == pl.Utf8
    assert report == JoinReport(missing=0, duplicated=2, unknown=2, malformed=1)
    assert "2 duplicated" in report.summary() and not report.clean


def test_join_unknown_keys_without_duplicates_and_string_vs_int():
    rows = pl.DataFrame({"id": [0, 1, 2]})
    odd = ["01", "+1", " 1", "1.0", "-0", "99999999999999999999", "x"]
    results = _results(
        ("0", "x", "ok"), ("1", "y", "ok"), ("7", "?", "ok"), *[(k, "?", "ok") for k in odd]
    )
    for dtype in (pl.Int64, pl.UInt8, pl.Int16, pl.Utf8):
        out, report = join_results(rows.cast({"id": dtype}), key="id", results=results)
        assert out["gemini_text"].to_list() == ["x", "y", None] and out.schema["id"] == dtype
        assert report == JoinReport(missing=1, duplicated=0, unknown=1 + len(odd), malformed=0)
    big = pl.DataFrame({"id": [2**63 + 5]}, schema={"id": pl.UInt64})
    out, _ = join_results(big, key="id", results=_results((str(2**63 + 5), "u", "ok")))
    assert out["gemini_text"].to_list() == ["u"]


def test_join_output_dtypes_do_not_depend_on_what_arrived():
    rows = pl.DataFrame({"id": [1, 2]})
    good = parse_generate_lines(pl.Series([HAND[0].replace('"ok"', '"1"', 1)]))
    failed = parse_generate_lines(pl.Series([HAND[3].replace('"err"', '"1"', 1), "junk"]))
    empty = parse_generate_lines(pl.Series([], dtype=pl.Utf8))
    schemas = {
        str(join_results(rows, key="id", results=r, extra={"gemini_batch_job": None})[0].schema)
        for r in (good, failed, empty)
    }
    assert len(schemas) == 1
    out, report = join_results(rows, key="id", results=empty)
    assert out["gemini_status"].to_list() == ["missing", "missing"] and report.missing == 2


def test_join_refuses_clashing_columns_and_bad_keys():
    rows = pl.DataFrame({"id": [1], "gemini_text": ["mine"]})
    with pytest.raises(ConfigError, match="prefix"):
        join_results(rows, key="id", results=_results(("1", "x", "ok")))
    with pytest.raises(InputError, match="key"):
        join_results(pl.DataFrame({"id": [[1]]}), key="id", results=_results(("1", "x", "ok")))
    with pytest.raises(InputError, match="'key' and 'status'"):
        join_results(pl.DataFrame({"id": [1]}), key="id", results=pl.DataFrame({"k": ["1"]}))


@FAST
@given(
    st.lists(
        st.sampled_from(["3", "4", "5", "6", "7", "8", "9", "03", "x"]), min_size=0, max_size=30
    ),
    st.lists(st.booleans(), min_size=9, max_size=9),
    st.sampled_from([pl.Int64, pl.Utf8]),
)
def test_join_row_position_keys_agree_with_the_hash_join(result_keys, oks, dtype):
    # keys 3..8 in order take the direct placement path; the same keys shuffled take the hash join
    results = _results(
        *[(k, f"{k}{i}", "ok" if oks[i % 9] else "error") for i, k in enumerate(result_keys)]
    )
    direct = pl.DataFrame({"id": [3, 4, 5, 6, 7, 8]}).cast({"id": dtype})
    out, report = join_results(direct, key="id", results=results)
    shuffled = direct.reverse()
    expected, expected_report = join_results(shuffled, key="id", results=results)
    assert out.equals(expected.reverse()) and report == expected_report
    known = [k for k in result_keys if k in "345678"]
    assert report.duplicated == len(known) - len(set(known))
    assert report.unknown == len(result_keys) - len(known)


@FAST
@given(
    st.lists(st.sampled_from("abcdefgh"), min_size=0, max_size=30),
    st.lists(st.booleans(), min_size=8, max_size=8),
)
def test_join_property_never_multiplies_rows(result_keys, oks):
    rows = pl.DataFrame({"k": list("abcdef")})
    results = _results(
        *[(k, f"{k}{i}", "ok" if oks[i % 8] else "error") for i, k in enumerate(result_keys)]
    )
    out, report = join_results(rows, key="k", results=results)
    assert out.height == 6 and out["k"].to_list() == list("abcdef")
    known = [k for k in result_keys if k in "abcdef"]
    assert report.unknown == len(result_keys) - len(known)
    assert report.duplicated == len(known) - len(set(known))
    assert report.missing == 6 - len(set(known))
    for k, status, text in out.select("k", "gemini_status", "gemini_text").iter_rows():
        mine = [(i, f"{k}{i}") for i, rk in enumerate(result_keys) if rk == k]
        if not mine:
            assert status == "missing"
        elif any(oks[i % 8] for i, _ in mine):
            assert status == "ok" and text == next(t for i, t in mine if oks[i % 8])
        else:
            assert status == "error" and text == mine[0][1]


@FAST
@given(
    st.integers(0, 8),
    st.sampled_from([0, 5]),
    st.sampled_from([pl.Int64, pl.UInt16, pl.Utf8]),
    st.lists(
        st.one_of(
            st.integers(-3, 14).map(str), st.sampled_from(["01", "+1", "-0", " 2", "x"]), st.none()
        ),
        max_size=16,
    ),
    st.lists(st.booleans(), min_size=16, max_size=16),
)
def test_join_on_row_positions_matches_the_hash_join(n, offset, dtype, result_keys, flags):
    """Keys that are row positions take the direct (gather) way; it must give what the hash join
    gives
    (the same rows reversed are not consecutive, so they take the hash join)."""
    rows = pl.DataFrame({"id": pl.Series(range(offset, offset + n)).cast(dtype)})
    results = _results(
        *[(k, f"t{i}", "ok" if flags[i] else "error") for i, k in enumerate(result_keys)]
    )
    mask = pl.Series([flags[-1 - i] or i % 3 != 0 for i in range(n)], dtype=pl.Boolean)
    out, report = join_results(rows, key="id", results=results, send_mask=mask)
    back, back_report = join_results(
        rows.reverse(), key="id", results=results, send_mask=mask.reverse()
    )
    assert out.equals(back.reverse()) and report == back_report


def test_a_local_file_path_parses_like_the_payload(tmp_path):
    lines = [_ok(str(i), {"text": f"t{i}"}) for i in range(50)] + [HAND[3]]
    for payload in (
        "\n".join(lines) + "\n",
        "\n".join(lines),
        "\n".join(lines + ["junk", ""]) + "\n",
    ):
        path = tmp_path / "results.jsonl"
        path.write_bytes(payload.encode())
        assert parse_generate_lines(path).equals(parse_generate_lines(payload.encode()))
    path.write_bytes(b"")
    assert parse_generate_lines(path).height == 0


def test_structured_answers_no_column_can_hold_or_of_the_wrong_type_are_schema_mismatches():
    """An ok answer whose integer is beyond Int64, whose number is a fraction where an integer
    belongs, or whose fields hold values of other types is error / SCHEMA_MISMATCH with the JSON
    paths named and its text kept: never ok with a null or truncated parsed value."""
    from gembatch._results.join import _check_answers

    schema = {
        "type": "object",
        "properties": {
            "n": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
    }
    texts = ['{"n": 100000000000000000000}', '{"n": 1.5}', '{"n": ["a"], "tags": "b"}', '{"n": 4}']
    joined = pl.DataFrame(
        {
            "gemini_status": ["ok"] * 4,
            "gemini_error_status": pl.Series([None] * 4, dtype=pl.Utf8),
            "gemini_error_message": pl.Series([None] * 4, dtype=pl.Utf8),
            "gemini_text": texts,
        }
    )
    out, failed, degenerate = _check_answers(joined, pl.DataFrame(), schema, "gemini_")
    assert (failed, degenerate) == (3, 0)
    assert out["gemini_status"].to_list() == ["error", "error", "error", "ok"]
    assert out["gemini_error_status"].to_list() == ["SCHEMA_MISMATCH"] * 3 + [None]
    assert out["gemini_error_message"].to_list() == [
        "a value does not fit the parsed column's type: $.n: an integer beyond the range of Int64",
        "the answer does not match the schema: $.n: a number is not of type integer",
        "the answer does not match the schema: $.n: an array is not of type integer; "
        "$.tags: a string is not of type array",
        None,
    ]
    assert out["gemini_text"].to_list() == texts
    assert out["gemini_parsed"][3] == {"n": 4, "tags": None}
