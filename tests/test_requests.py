"""Request lines: exact JSON round trips (property-based), media parts, checks and sizes."""

from __future__ import annotations

import base64
import io
import json

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gembatch._build.checks import check_inputs, check_sizes
from gembatch._build.lines import (
    MediaParts,
    build_embed_lines,
    build_generate_lines,
    request_bytes,
    write_jsonl,
)
from gembatch._build.wire import to_proto
from gembatch.exceptions import (
    ColumnNotFoundError,
    ConfigError,
    DuplicateKeyError,
    InputError,
    InvalidPromptError,
    RequestTooLargeError,
)

# Any unicode text without surrogates (polars strings are UTF-8): quotes, backslashes, control
# characters, newlines, U+2028, emoji all included.
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
TRICKY = st.sampled_from(
    [
        '"',
        "\\",
        "\n",
        "\r\n",
        "\t",
        "\x00",
        "\x1f",
        "\x7f",
        "\u2028",
        "\u2029",
        "😀",
        "é",
        "\\u0041",
        '\\"',
        "</script>",
        "{}",
        '{"key":1}',
    ]
)
TRICKY_TEXT = st.lists(st.one_of(TRICKY, TEXT), max_size=6).map("".join)
STATIC = {
    "generationConfig": {
        "temperature": 0.2,
        "responseMimeType": "application/json",
        "responseJsonSchema": {"type": "object", "properties": {"a": {"type": "string"}}},
    },
    "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
    "systemInstruction": {"parts": [{"text": 'Be brief. «ü» "q"'}]},
}
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _generate(frame: pl.DataFrame, **kw) -> pl.DataFrame:
    kw.setdefault("prompt", pl.col("p"))
    kw.setdefault("keys", pl.col("k"))
    kw.setdefault("static", STATIC)
    return build_generate_lines(frame, **kw)


@FAST
@given(
    st.lists(st.tuples(TRICKY_TEXT, TRICKY_TEXT), min_size=1, max_size=25, unique_by=lambda t: t[1])
)
def test_generate_lines_round_trip_exactly(rows):
    frame = pl.DataFrame({"p": [p for p, _ in rows], "k": [k for _, k in rows]})
    out = _generate(frame)
    assert out.columns == ["key", "line"] and out.height == frame.height
    assert out.schema == pl.Schema({"key": pl.Utf8, "line": pl.Utf8})
    for (prompt, key), line, out_key in zip(rows, out["line"], out["key"]):
        assert "\n" not in line and "\r" not in line
        assert out_key == key
        assert json.loads(line) == {
            "key": key,
            "request": {
                "contents": [{"role": "user", "parts": [{"text": prompt}]}],
                **to_proto(STATIC),  # the JSONL parser takes proto field names
            },
        }
        assert line.startswith('{"key":')


@FAST
@given(st.lists(st.tuples(TRICKY_TEXT, st.none() | TRICKY_TEXT), min_size=1, max_size=15))
def test_per_row_system_instruction_overrides_the_static_one(rows):
    frame = pl.DataFrame(
        {"p": [p for p, _ in rows], "s": [s for _, s in rows]}, schema={"p": pl.Utf8, "s": pl.Utf8}
    )
    out = _generate(
        frame, keys=pl.int_range(pl.len()).cast(pl.Utf8), system_instruction=pl.col("s")
    )
    for i, ((prompt, system), line) in enumerate(zip(rows, out["line"])):
        request = json.loads(line)["request"]
        expected = STATIC["systemInstruction"] if system is None else {"parts": [{"text": system}]}
        assert request["system_instruction"] == expected
        assert request["contents"][0]["parts"] == [{"text": prompt}]
        assert json.loads(line)["key"] == str(i)


def test_system_instruction_null_without_static_is_omitted():
    frame = pl.DataFrame({"p": ["a", "b"], "s": ["sys", None]})
    out = _generate(
        frame,
        keys=pl.lit("x") + pl.int_range(pl.len()).cast(pl.Utf8),
        static={"generationConfig": {"topK": 3}},
        system_instruction=pl.col("s"),
    )
    first, second = (json.loads(x)["request"] for x in out["line"])
    assert first["system_instruction"] == {"parts": [{"text": "sys"}]}
    assert "system_instruction" not in second and second["generation_config"] == {"top_k": 3}
    assert out["key"].to_list() == ["x0", "x1"]


def test_prompt_expression_keys_with_offset_and_empty_static():
    frame = pl.DataFrame({"t": ["good", 'say "hi"'], "n": [1, 2]})
    out = build_generate_lines(
        frame,
        prompt=pl.format("Review {}: {}", pl.col("n"), pl.col("t")),
        keys=(pl.int_range(pl.len()) + 1000).cast(pl.Utf8),
        static={},
    )
    assert [json.loads(x) for x in out["line"]] == [
        {
            "key": "1000",
            "request": {"contents": [{"role": "user", "parts": [{"text": "Review 1: good"}]}]},
        },
        {
            "key": "1001",
            "request": {"contents": [{"role": "user", "parts": [{"text": 'Review 2: say "hi"'}]}]},
        },
    ]


def test_static_is_serialised_once_sorted_and_utf8():
    frame = pl.DataFrame({"p": ["x"], "k": ["0"]})
    static = {
        "tools": [{"googleSearch": {}}],
        "generationConfig": {"topP": 1, "stopSequences": ["é"]},
    }
    line = _generate(frame, static=static)["line"][0]
    assert line.endswith(
        ',"generation_config":{"stop_sequences":["é"],"top_p":1},"tools":[{"google_search":{}}]}}'
    )


def test_a_schema_is_sent_as_written_in_proto_field_names():
    """Message fields take proto names; the schema itself (keywords, property names, their
    order) is user data, sent verbatim: the model must see the order the user wrote."""
    schema = {
        "type": "object",
        "properties": {"reasoning": {"type": "string"}, "answer": {"type": "integer"}},
        "required": ["reasoning", "answer"],
        "additionalProperties": False,
    }
    openapi = {
        "type": "OBJECT",
        "properties": {"zeta": {"type": "STRING"}, "alpha": {"type": "STRING"}},
        "propertyOrdering": ["zeta", "alpha"],
    }
    frame = pl.DataFrame({"p": ["x"], "k": ["0"]})
    for field, expected_field, value, expected in (
        ("responseJsonSchema", "response_json_schema", schema, schema),
        (
            "responseSchema",
            "response_schema",
            openapi,
            {
                "type": "OBJECT",
                "properties": {"zeta": {"type": "STRING"}, "alpha": {"type": "STRING"}},
                "property_ordering": ["zeta", "alpha"],
            },
        ),
    ):
        line = _generate(frame, static={"generationConfig": {field: value}})["line"][0]
        sent = json.loads(line)["request"]["generation_config"][expected_field]
        assert sent == expected and list(sent["properties"]) == list(value["properties"])
    with pytest.raises(ConfigError, match="JSON"):
        _generate(frame, static={"generationConfig": {"temperature": float("nan")}})


def test_empty_frame_gives_empty_lines():
    frame = pl.DataFrame({"p": [], "k": []}, schema={"p": pl.Utf8, "k": pl.Utf8})
    out = _generate(frame)
    assert out.height == 0 and out.schema == pl.Schema({"key": pl.Utf8, "line": pl.Utf8})


# ------------------------------------------------------------------------------------------ media
def _parts(line: str) -> list[dict]:
    return json.loads(line)["request"]["contents"][0]["parts"]


def test_media_uri_and_bytes_literal_and_per_row_mime():
    frame = pl.DataFrame(
        {
            "p": ["a", "b", "c"],
            "k": ["1", "2", "3"],
            "uri": ["gs://b/x.png", None, "https://e/y.pdf"],
            "blob": [b"\x00\xff\x10", b"plain", None],
            "mime": ["image/jpeg", "text/plain", "audio/wav"],
        }
    )
    out = _generate(
        frame,
        media=[
            MediaParts("uri", mime_type="image/png"),
            MediaParts("blob", mime_type_column="mime"),
        ],
    )
    assert _parts(out["line"][0]) == [
        {"text": "a"},
        {"file_data": {"file_uri": "gs://b/x.png", "mime_type": "image/png"}},
        {
            "inline_data": {
                "data": base64.b64encode(b"\x00\xff\x10").decode(),
                "mime_type": "image/jpeg",
            }
        },
    ]
    assert _parts(out["line"][1]) == [
        {"text": "b"},
        {"inline_data": {"data": base64.b64encode(b"plain").decode(), "mime_type": "text/plain"}},
    ]
    assert _parts(out["line"][2]) == [
        {"text": "c"},
        {"file_data": {"file_uri": "https://e/y.pdf", "mime_type": "image/png"}},
    ]


def test_media_list_columns_and_media_first():
    frame = pl.DataFrame(
        {
            "p": ["a", "b", "c", "d"],
            "k": ["1", "2", "3", "4"],
            "uris": [["u1", "u2"], [], None, ["u3"]],
            "mimes": [["image/png", "image/gif"], [], None, ["video/mp4"]],
            "blobs": [[b"x"], [b"y", None, b"z"], [], None],
        }
    )
    out = _generate(
        frame,
        media_first=True,
        media=[
            MediaParts("uris", mime_type_column="mimes"),
            MediaParts("blobs", mime_type="image/webp"),
        ],
    )

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    assert _parts(out["line"][0]) == [
        {"file_data": {"file_uri": "u1", "mime_type": "image/png"}},
        {"file_data": {"file_uri": "u2", "mime_type": "image/gif"}},
        {"inline_data": {"data": b64(b"x"), "mime_type": "image/webp"}},
        {"text": "a"},
    ]
    assert _parts(out["line"][1]) == [
        {"inline_data": {"data": b64(b"y"), "mime_type": "image/webp"}},
        {"inline_data": {"data": b64(b"z"), "mime_type": "image/webp"}},
        {"text": "b"},
    ]
    assert _parts(out["line"][2]) == [{"text": "c"}]
    assert _parts(out["line"][3]) == [
        {"file_data": {"file_uri": "u3", "mime_type": "video/mp4"}},
        {"text": "d"},
    ]


def test_media_list_with_scalar_mime_column_and_bad_inputs():
    frame = pl.DataFrame(
        {
            "p": ["a"],
            "k": ["1"],
            "uris": [["u1", "u2"]],
            "m": ["image/png"],
            "n": [3],
            "ml": [["image/png"]],
        }
    )
    out = _generate(frame, media=[MediaParts("uris", mime_type_column="m")])
    assert [p.get("file_data", {}).get("mime_type") for p in _parts(out["line"][0])] == [
        None,
        "image/png",
        "image/png",
    ]
    with pytest.raises(InputError, match="file URIs"):
        _generate(frame, media=[MediaParts("n", mime_type="image/png")])
    with pytest.raises(InputError, match="different lengths"):
        _generate(frame, media=[MediaParts("uris", mime_type_column="ml")])
    with pytest.raises(ConfigError, match="exactly one"):
        MediaParts("uris")
    with pytest.raises(ConfigError, match="exactly one"):
        MediaParts("uris", mime_type="image/png", mime_type_column="m")
    with pytest.raises(ConfigError, match="MIME type"):
        MediaParts("uris", mime_type="png")


@FAST
@given(
    st.lists(
        st.tuples(TRICKY_TEXT, st.lists(TRICKY_TEXT, max_size=3), st.binary(max_size=12)),
        min_size=1,
        max_size=8,
    )
)
def test_media_round_trip_property(rows):
    frame = pl.DataFrame(
        {"p": [r[0] for r in rows], "u": [r[1] for r in rows], "b": [r[2] for r in rows]},
        schema={"p": pl.Utf8, "u": pl.List(pl.Utf8), "b": pl.Binary},
    )
    out = _generate(
        frame,
        keys=pl.int_range(pl.len()).cast(pl.Utf8),
        media=[MediaParts("u", mime_type="text/plain"), MediaParts("b", mime_type="image/png")],
    )
    for (prompt, uris, blob), line in zip(rows, out["line"]):
        assert _parts(line) == [
            {"text": prompt},
            *({"file_data": {"file_uri": u, "mime_type": "text/plain"}} for u in uris),
            {"inline_data": {"data": base64.b64encode(blob).decode(), "mime_type": "image/png"}},
        ]


# ------------------------------------------------------------------------------------------ embed
@FAST
@given(st.lists(TRICKY_TEXT, min_size=1, max_size=20))
def test_embed_lines_round_trip(texts):
    frame = pl.DataFrame({"t": texts}, schema={"t": pl.Utf8})
    static = {"taskType": "RETRIEVAL_DOCUMENT", "outputDimensionality": 768, "title": "T «1»"}
    out = build_embed_lines(
        frame, text=pl.col("t"), keys=pl.int_range(pl.len()).cast(pl.Utf8), static=static
    )
    for i, (text, line) in enumerate(zip(texts, out["line"])):
        assert json.loads(line) == {
            "key": str(i),
            "request": {"content": {"parts": [{"text": text}]}, **to_proto(static)},
        }


# ------------------------------------------------------------------------------------ bytes, write
def test_request_bytes_counts_utf8_and_newline_and_write_jsonl():
    frame = pl.DataFrame({"p": ["é", "😀\n"], "k": ["a", "b"]})
    out = _generate(frame, static={})
    sizes = request_bytes(out)
    assert sizes.dtype == pl.Int64
    assert sizes.to_list() == [len(x.encode()) + 1 for x in out["line"]]
    buffer = io.BytesIO()
    write_jsonl(out, buffer)
    assert buffer.getvalue() == "".join(x + "\n" for x in out["line"]).encode()
    assert len(buffer.getvalue()) == sizes.sum()
    empty = io.BytesIO()
    write_jsonl(out.clear(), empty)
    assert empty.getvalue() == b""


def test_check_sizes_names_rows_and_keys():
    frame = pl.DataFrame({"p": ["x", "y" * 500, "z", "w" * 600], "k": ["a", "b", "c", "d"]})
    lines = _generate(frame, static={})
    check_sizes(lines, max_request_bytes=700)
    with pytest.raises(RequestTooLargeError) as info:
        check_sizes(lines, max_request_bytes=300, row_offset=100)
    message = str(info.value)
    assert (
        "rows 101, 103" in message and "'b'" in message and "'d'" in message and "Hint:" in message
    )
    check_sizes(lines, max_request_bytes=300, send_mask=pl.Series([True, False, True, False]))
    with pytest.raises(RequestTooLargeError, match="row 3 "):
        check_sizes(lines, max_request_bytes=300, send_mask=pl.Series([True, False, True, True]))


# ----------------------------------------------------------------------------------------- checks
def _check(frame: pl.DataFrame, **kw) -> pl.Series:
    kw.setdefault("prompt", pl.col("p"))
    kw.setdefault("key_column", None)
    kw.setdefault("columns_needed", ())
    return check_inputs(frame, **kw)


def test_check_inputs_passes_and_returns_send_mask():
    frame = pl.DataFrame({"p": ["a", "b"], "id": [3, 4]})
    mask = _check(frame, key_column="id")
    assert mask.dtype == pl.Boolean and mask.to_list() == [True, True]
    assert _check(frame.clear()).to_list() == []


def test_missing_columns_list_available_and_close_matches():
    frame = pl.DataFrame({"review_text": ["a"], "id": [1]})
    with pytest.raises(ColumnNotFoundError) as info:
        _check(frame, prompt=pl.col("review_txt"), key_column="ID", columns_needed=["image"])
    message = str(info.value)
    assert "'review_txt'" in message and "Did you mean 'review_text'" in message
    assert (
        "'ID'" in message
        and "'image'" in message
        and "Available columns: 'review_text', 'id'" in message
    )
    assert "Hint:" in message
    with pytest.raises(ColumnNotFoundError, match="'t'"):
        _check(frame, prompt=pl.format("x {}", pl.col("t")))


def test_null_and_blank_prompts_named_by_row_and_key():
    frame = pl.DataFrame(
        {
            "p": ["ok", None, "  \n\t", "", "fine", "\u00a0"] + ["x"] * 3 + [None],
            "id": list("abcdefghij"),
        }
    )
    with pytest.raises(InvalidPromptError) as info:
        _check(frame, key_column="id", row_offset=10)
    message = str(info.value)
    assert "5 of the 10 rows from row 10" in message and "rows 11, 12, 13, 15, 19" in message
    assert "'b', 'c', 'd', 'f', 'j'" in message and "'p'" in message
    assert "skip_null_prompts=True" in message
    mask = _check(frame, key_column="id", skip_null_prompts=True)
    assert mask.to_list() == [True, False, False, False, True, False, True, True, True, False]


def test_many_bad_prompts_are_summarised():
    frame = pl.DataFrame({"p": [None] * 12}, schema={"p": pl.Utf8})
    with pytest.raises(InvalidPromptError, match=r"rows 0, 1, 2, 3, 4 and 7 more"):
        _check(frame)


def test_non_text_prompt():
    frame = pl.DataFrame({"p": [[1, 2]]})
    with pytest.raises(InvalidPromptError, match="not text"):
        _check(frame)
    assert _check(pl.DataFrame({"p": [1, 2]})).to_list() == [True, True]  # numbers become text


def test_null_and_duplicate_keys():
    with pytest.raises(DuplicateKeyError) as info:
        _check(
            pl.DataFrame({"p": ["a", "b", "c"], "id": [1, None, 3]}), key_column="id", row_offset=5
        )
    assert (
        "null key" in str(info.value)
        and "row 6" in str(info.value)
        and "key=None" in str(info.value)
    )
    frame = pl.DataFrame({"p": list("abcdef"), "id": ["x", "y", "x", "z", "y", "x"]})
    with pytest.raises(DuplicateKeyError) as info:
        _check(frame, key_column="id")
    message = str(info.value)
    assert (
        "2 key values repeat" in message
        and "'x' at rows 0, 2, 5" in message
        and "'y' at rows 1, 4" in message
    )
    assert "Hint:" in message and "key=None" in message


def test_key_checks_come_before_prompt_checks_only_for_existing_columns():
    frame = pl.DataFrame({"p": [None, None], "id": [1, 1]})
    with pytest.raises(DuplicateKeyError):
        _check(frame, key_column="id")
    with pytest.raises(InvalidPromptError):
        _check(frame)
