"""Estimates: the local token rule, the output bound, the money, and exact counts on the
emulator."""

from __future__ import annotations

import json
import math

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gembatch import RetryPolicy
from gembatch._build.lines import MediaParts, build_embed_lines, build_generate_lines
from gembatch._money.estimate import (
    Estimate,
    OutputBound,
    _exact_tokens,
    estimate_lines,
    local_tokens,
    output_bound,
)
from gembatch._money.pricing import ModelPrice, PriceTable
from gembatch._service.backend import Backend
from gembatch.emulator import HttpFault
from gembatch.emulator.model import count_tokens, generate_content
from gembatch.exceptions import ConfigError, InputError

M = 1_000_000
FAST_RETRY = RetryPolicy(
    attempts=4, initial_delay=0.01, max_delay=0.05, jitter=0.01, max_elapsed=30
)


def _line(request: dict, key: str = "0", ascii_only: bool = False) -> str:
    return json.dumps({"key": key, "request": request}, ensure_ascii=ascii_only)


def _text(*texts: str, system: str | None = None) -> dict:
    request: dict = {"contents": [{"role": "user", "parts": [{"text": t} for t in texts]}]}
    if system is not None:
        request["systemInstruction"] = {"parts": [{"text": system}]}
    return request


def _tokens(*requests: dict) -> list[int]:
    return local_tokens(pl.Series([_line(r, str(i)) for i, r in enumerate(requests)])).to_list()


# -- local_tokens ---------------------------------------------------------------------------------
def test_text_costs_a_token_per_four_characters_rounded_up_per_part():
    assert _tokens(_text(""), _text("abcd"), _text("abcde"), _text("a" * 400)) == [0, 1, 2, 100]
    assert _tokens(_text("abcde", "abcde")) == [4]  # each part rounds up, as promptTokenCount does
    turns = {
        "contents": [
            {"role": "user", "parts": [{"text": "abcde"}]},
            {"role": "model", "parts": [{"text": "abc"}]},
            {"role": "user", "parts": [{"text": "abcdefgh"}]},
        ]
    }
    assert _tokens(turns) == [2 + 1 + 2]


def test_characters_are_code_points_whatever_the_json_escaping():
    text = 'é😀中"\\\n\t'  # 8 code points
    for ascii_only in (True, False):
        line = _line(_text(text), ascii_only=ascii_only)
        assert local_tokens(pl.Series([line])).to_list() == [2]


def test_system_instruction_counts():
    assert _tokens(_text("abcd", system="abcdefghi")) == [1 + 3]
    assert _tokens(
        {**_text("abcd"), "systemInstruction": {"parts": [{"text": "ab"}, {"text": "cd"}]}}
    ) == [3]


def test_media_parts_cost_258_each():
    request = {
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "abcde"},
                    {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo" * 1000}},
                    {
                        "fileData": {
                            "mimeType": "application/pdf",
                            "fileUri": "https://example.com/f/1",
                        }
                    },
                    # proto names (gembatch's lines) and REST names (lines of 0.1.0) both count
                    {"inline_data": {"mime_type": "image/png", "data": "AAAA"}},
                ],
            }
        ]
    }
    assert _tokens(request) == [2 + 258 + 258 + 258]


def test_embed_lines_count_their_content():
    frame = pl.DataFrame({"t": ["abcd", "abcdefghi", ""]})
    lines = build_embed_lines(
        frame, text=pl.col("t"), keys=pl.int_range(pl.len()), static={"taskType": "CLUSTERING"}
    )["line"]
    assert local_tokens(lines).to_list() == [1, 3, 0]


def test_local_tokens_shape():
    out = local_tokens(pl.Series([_line(_text("abcd"))] * 3))
    assert out.dtype == pl.Int64 and out.name == "tokens" and out.to_list() == [1, 1, 1]
    assert local_tokens(pl.Series([], dtype=pl.Utf8)).to_list() == []
    with pytest.raises(InputError, match="not JSON"):
        local_tokens(pl.Series(['{"key": "0", "request": ']))


@settings(max_examples=200, deadline=None)
@given(text=st.text(), system=st.none() | st.text(), ascii_only=st.booleans())
def test_local_tokens_is_ceil_of_characters_over_four(text, system, ascii_only):
    line = _line(_text(text, system=system), ascii_only=ascii_only)
    expected = math.ceil(len(text) / 4) + (math.ceil(len(system) / 4) if system is not None else 0)
    assert local_tokens(pl.Series([line])).to_list() == [expected]


@settings(max_examples=100, deadline=None)
@given(
    texts=st.lists(st.text(min_size=1), min_size=1, max_size=4),
    system=st.none() | st.text(min_size=1),
    media=st.integers(0, 3),
)
def test_local_tokens_is_the_emulators_prompt_token_count(texts, system, media):
    parts = [{"text": t} for t in texts] + [
        {"inlineData": {"mimeType": "image/png", "data": "AAAA"}}
    ] * media
    request = {"contents": [{"role": "user", "parts": parts}]}
    if system is not None:
        request["systemInstruction"] = {"parts": [{"text": system}]}
    body = {"generateContentRequest": {"model": "models/gemini-2.5-flash", **request}}
    expected = count_tokens("gemini-2.5-flash", body)["totalTokens"]
    assert local_tokens(pl.Series([_line(request)])).item() == expected


# -- output_bound ---------------------------------------------------------------------------------
def test_output_bound_is_max_output_tokens_times_candidates_times_requests():
    static = {"generationConfig": {"maxOutputTokens": 100}}
    assert output_bound(static, "gemini-2.5-flash", 7) == OutputBound(700, False)
    static = {"generationConfig": {"maxOutputTokens": 100, "candidateCount": 3}}
    assert output_bound(static, "gemini-2.5-flash", 7) == (2_100, False)
    assert (
        output_bound(
            {"generation_config": {"max_output_tokens": 5, "candidate_count": 2}},
            "gemini-2.0-flash",
            1,
        ).tokens
        == 10
    )


def test_without_max_output_tokens_the_model_limit_bounds_output():
    assert output_bound({}, "gemini-2.5-flash", 2) == OutputBound(2 * 65_536, True)
    assert output_bound(
        {"generationConfig": {"temperature": 0}}, "models/gemini-2.0-flash-001", 1
    ) == (8_192, True)
    assert output_bound({"generationConfig": {"candidateCount": 2}}, "gemini-3-pro-preview", 1) == (
        131_072,
        True,
    )
    assert output_bound({"taskType": "CLUSTERING"}, "gemini-embedding-001", 9) == (0, False)
    mine = ModelPrice(model="mine", input=1, output=1)
    assert output_bound({"generationConfig": {"maxOutputTokens": 4}}, mine, 2) == (8, False)
    with pytest.raises(ConfigError, match="max_output_tokens"):
        output_bound({}, mine, 1)


# -- Estimate -------------------------------------------------------------------------------------
def test_estimate_arithmetic_applies_the_long_tier_per_request():
    static = {"generationConfig": {"maxOutputTokens": 1_000}}
    small = _line(_text("a" * 400), "0")  # 100 tokens
    large = _line(_text("a" * 800_004), "1")  # 200,001 tokens: the long tier
    batches = iter([pl.Series([small]), pl.Series([], dtype=pl.Utf8), pl.Series([large, small])])
    est = estimate_lines(batches, model="models/gemini-2.5-pro", static=static, rows=5)
    assert (est.model, est.rows, est.requests, est.input_exact) == ("gemini-2.5-pro", 5, 3, False)
    assert (est.input_tokens, est.output_tokens_bound, est.bounded_by_model_limit) == (
        200_201,
        3_000,
        False,
    )
    input_interactive = 200 * 1.25 + 200_001 * 2.5
    output_interactive = 2_000 * 10.0 + 1_000 * 15.0
    assert est.input_usd == pytest.approx(input_interactive / 2 / M)
    assert est.output_usd_bound == pytest.approx(output_interactive / 2 / M)
    assert est.total_usd_bound == pytest.approx(est.input_usd + est.output_usd_bound)
    assert est.interactive_usd_bound == pytest.approx((input_interactive + output_interactive) / M)
    assert est.as_of == "2025-11-20"


def test_estimate_with_model_limit_and_own_table():
    table = PriceTable.from_dict(
        {
            "as_of": "2030-01-01",
            "batch_multiplier": 0.25,
            "models": {"acme": {"input": 4.0, "output": 8.0, "max_output_tokens": 10}},
        }
    )
    lines = [pl.Series([_line(_text("abcd"))] * 4)]
    est = estimate_lines(lines, model="acme-2", static={}, rows=4, table=table)
    assert (est.input_tokens, est.output_tokens_bound, est.bounded_by_model_limit) == (4, 40, True)
    assert est.total_usd_bound == pytest.approx((4 * 4.0 + 40 * 8.0) * 0.25 / M)
    assert est.interactive_usd_bound == pytest.approx((4 * 4.0 + 40 * 8.0) / M)
    assert est.as_of == "2030-01-01"


def test_estimate_of_nothing_is_zero():
    est = estimate_lines([], model="gemini-2.5-flash", static={}, rows=0)
    assert (est.requests, est.input_tokens, est.output_tokens_bound, est.total_usd_bound) == (
        0,
        0,
        0,
        0.0,
    )


def test_estimate_is_readable_and_serialisable():
    est = estimate_lines(
        [pl.Series([_line(_text("a" * 4_000))] * 3)], model="gemini-2.5-flash", static={}, rows=3
    )
    assert isinstance(est, Estimate)
    text = str(est)
    assert "3,000 estimated" in text and "the model's output limit" in text and "2025-11-20" in text
    assert f"${est.total_usd_bound:,.4f}" in text
    assert est._repr_html_().startswith("<table>")
    data = est.to_dict()
    assert data["input_tokens"] == 3_000 and json.loads(json.dumps(data)) == data


def test_estimate_refuses_bad_arguments():
    lines = [pl.Series([_line(_text("abcd"))])]
    with pytest.raises(ConfigError, match="needs a backend"):
        estimate_lines(lines, model="gemini-2.5-flash", static={}, rows=1, exact=True)
    with pytest.raises(ConfigError, match="concurrency"):
        estimate_lines(lines, model="gemini-2.5-flash", static={}, rows=1, concurrency=0)
    with pytest.raises(ConfigError, match="No price is known"):
        estimate_lines(lines, model="gpt-4o", static={}, rows=1)


# -- exact counts on the emulator -----------------------------------------------------------------
PROMPTS = [
    "Hello",
    "Ünïcödé prompts cöunt cödé pöints",
    "日本語のテキストです",
    'emoji 😀🎉 and "quotes"\n',
    "a" * 1_001,
    "x",
]


def _generate_lines() -> pl.Series:
    frame = pl.DataFrame(
        {
            "prompt": PROMPTS,
            "system": [None, "Be brief.", "Réponds en français.", None, "s" * 17, None],
            "image": [b"\x89PNG...", None, b"\x00" * 50, None, None, b"x"],
            "uris": [
                ["https://example.com/a.pdf", "https://example.com/b.pdf"],
                None,
                [],
                ["gs://b/c.mp3"],
                None,
                None,
            ],
        }
    )
    return build_generate_lines(
        frame,
        prompt=pl.col("prompt"),
        keys=pl.int_range(pl.len()),
        static={
            "generationConfig": {"temperature": 0.3},
            "systemInstruction": {"parts": [{"text": "Default"}]},
        },
        system_instruction=pl.col("system"),
        media=[
            MediaParts("image", mime_type="image/png"),
            MediaParts("uris", mime_type="application/pdf"),
        ],
    )["line"]


@pytest.fixture()
def backend(client):
    return Backend(client, retry=FAST_RETRY, sleep=lambda _: None)


def test_exact_counts_equal_local_counts_and_prompt_token_counts_on_the_emulator(backend, emulator):
    lines = _generate_lines()
    local = local_tokens(lines)
    exact = _exact_tokens(lines, "gemini-2.5-flash", backend, concurrency=3)
    assert exact.to_list() == local.to_list()  # same order as the lines
    usage = [
        generate_content("models/gemini-2.5-flash", json.loads(x)["request"])["usageMetadata"]
        for x in lines
    ]
    assert local.to_list() == [u["promptTokenCount"] for u in usage]
    assert emulator.stats()["calls"]["models.count_tokens"] == len(lines)


def test_estimate_exact_equals_local_on_the_emulator(backend):
    lines = _generate_lines()
    static = {"generationConfig": {"temperature": 0.3, "maxOutputTokens": 64}}
    batches = [lines.slice(0, 4), lines.slice(4)]
    exact = estimate_lines(
        batches, model="gemini-2.5-flash", static=static, rows=6, backend=backend, exact=True
    )
    local = estimate_lines(
        batches, model="gemini-2.5-flash", static=static, rows=6, backend=backend
    )
    assert exact.input_exact and not local.input_exact
    assert exact.to_dict() == {**local.to_dict(), "input_exact": True}
    assert "exact (countTokens)" in str(exact)


def test_count_tokens_of_embed_and_system_only_requests(backend):
    assert (
        backend.count_tokens("gemini-embedding-001", {"content": {"parts": [{"text": "abcde"}]}})
        == 2
    )
    request = {
        **_text("abcd"),
        "systemInstruction": {"parts": [{"text": "abcde"}]},
        "tools": [],
        "generationConfig": {"maxOutputTokens": 3},
    }
    assert backend.count_tokens("models/gemini-2.5-flash", request) == 3
    with pytest.raises(InputError, match="no contents"):
        backend.count_tokens("gemini-2.5-flash", {"generationConfig": {}})


def test_count_tokens_is_retried(backend, emulator):
    emulator.faults.add(HttpFault(endpoint="models.count_tokens", status=503, nth=1, times=2))
    assert backend.count_tokens("gemini-2.5-flash", _text("abcdefgh")) == 2
    assert emulator.stats()["calls"]["models.count_tokens"] == 3
