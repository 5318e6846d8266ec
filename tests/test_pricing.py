"""The price table and pricing of token counts: prefixes, tiers, cache hits, the batch
multiplier."""

from __future__ import annotations

import json

import polars as pl
import pytest

from gembatch._build.lines import answer_lines
from gembatch._money.pricing import Cost, ModelPrice, PriceTable, TokenCounts, cost_of, price_frame
from gembatch._results.parse import parse_generate_lines
from gembatch.emulator.model import generate_content
from gembatch.exceptions import ColumnNotFoundError, ConfigError

M = 1_000_000
PRO = PriceTable.default().for_model("gemini-2.5-pro")


def _frame(prompt, output=None, thoughts=None, cached=None, prefix="gemini_"):
    n = len(prompt)
    cols = {
        "prompt": prompt,
        "output": output or [0] * n,
        "thoughts": thoughts or [0] * n,
        "cached": cached or [0] * n,
    }
    return pl.DataFrame(
        {f"{prefix}{k}_tokens": pl.Series(v, dtype=pl.Int64) for k, v in cols.items()}
    )


def test_default_table_is_dated_and_sourced():
    table = PriceTable.default()
    assert table.as_of == "2025-11-20"
    assert table.source == "https://ai.google.dev/gemini-api/docs/pricing"
    assert table.batch_multiplier == 0.5
    assert PriceTable.default() is table  # loaded once
    flash = table.models["gemini-2.5-flash"]
    assert (flash.input, flash.output, flash.cached_input, flash.max_output_tokens) == (
        0.3,
        2.5,
        0.03,
        65536,
    )
    assert (PRO.long_context_threshold, PRO.input_long, PRO.output_long, PRO.cached_input_long) == (
        200_000,
        2.5,
        15.0,
        0.25,
    )
    assert table.models["gemini-2.0-flash-lite"].cached_input is None


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("gemini-2.5-flash", "gemini-2.5-flash"),
        ("models/gemini-2.5-flash", "gemini-2.5-flash"),
        ("gemini-2.5-flash-001", "gemini-2.5-flash"),
        ("gemini-2.5-flash-lite-preview-09-2025", "gemini-2.5-flash-lite"),
        ("gemini-2.5-flash-lite", "gemini-2.5-flash-lite"),
        ("gemini-2.0-flash-lite-001", "gemini-2.0-flash-lite"),
        ("gemini-2.0-flash-001", "gemini-2.0-flash"),
        ("gemini-2.5-pro-preview-06-05", "gemini-2.5-pro"),
        ("gemini-3-pro-preview", "gemini-3-pro-preview"),
        ("models/gemini-embedding-001", "gemini-embedding-001"),
    ],
)
def test_for_model_matches_the_longest_known_prefix(model, family):
    assert PriceTable.default().for_model(model).model == family


@pytest.mark.parametrize("model", ["gpt-4o", "gemini-2.5-flashy", "gemini-1.5-pro", ""])
def test_unknown_model_says_what_is_known_and_how_to_pass_a_table(model):
    with pytest.raises(ConfigError) as info:
        PriceTable.default().for_model(model)
    message = str(info.value)
    assert repr(model) in message
    assert "gemini-2.5-flash-lite" in message and "gemini-embedding-001" in message
    assert "PriceTable.from_json" in message and "Hint" in message


def test_long_context_tier_applies_per_request():
    df = _frame([200_000, 200_001], output=[1_000, 1_000])
    short = 200_000 * 1.25 + 1_000 * 10.0
    long = 200_001 * 2.5 + 1_000 * 15.0
    assert price_frame(df, PRO, batch=False) == pytest.approx((short + long) / M)
    assert price_frame(df, PRO, batch=True) == pytest.approx((short + long) / 2 / M)
    # summing first would put both requests in the long tier
    assert price_frame(df, PRO, batch=False) < (400_001 * 2.5 + 2_000 * 15.0) / M


def test_long_requests_pay_long_cached_rates():
    df = _frame([300_000], cached=[100_000])
    expected_batch = 200_000 * 2.5 * 0.5 + 100_000 * 0.25
    assert price_frame(df, PRO, batch=True) == pytest.approx(expected_batch / M)


def test_cached_tokens_pay_the_cached_rate_without_batch_discount():
    flash = PriceTable.default().for_model("gemini-2.5-flash")
    df = _frame([1_000], cached=[400])
    assert price_frame(df, flash, batch=False) == pytest.approx((600 * 0.3 + 400 * 0.03) / M)
    assert price_frame(df, flash, batch=True) == pytest.approx((600 * 0.3 * 0.5 + 400 * 0.03) / M)


def test_a_model_without_cache_price_bills_cached_tokens_as_input():
    lite = PriceTable.default().for_model("gemini-2.0-flash-lite")
    df = _frame([1_000], cached=[400])
    assert price_frame(df, lite, batch=True) == pytest.approx(1_000 * 0.075 * 0.5 / M)


def test_thinking_is_billed_as_output_and_batch_is_half():
    flash = PriceTable.default().for_model("gemini-2.5-flash")
    df = _frame([100, 200], output=[10, 20], thoughts=[5, None])
    interactive = (300 * 0.3 + 35 * 2.5) / M
    assert price_frame(df, flash, batch=False) == pytest.approx(interactive)
    assert price_frame(df, flash, batch=True) == pytest.approx(interactive / 2)
    assert price_frame(df, flash, batch=True, batch_multiplier=0.25) == pytest.approx(
        interactive / 4
    )


def test_cost_of_equals_hand_computation():
    df = _frame(
        [1_000, 250_000, None],
        output=[100, 2_000, None],
        thoughts=[50, 0, None],
        cached=[200, 50_000, None],
        prefix="x_",
    )
    cost = cost_of(df, "models/gemini-2.5-pro-001", prefix="x_")
    batch = (
        800 * 1.25 * 0.5
        + 200 * 0.125
        + 150 * 10.0 * 0.5
        + 200_000 * 2.5 * 0.5
        + 50_000 * 0.25
        + 2_000 * 15.0 * 0.5
    ) / M
    interactive = (
        800 * 1.25 + 200 * 0.125 + 150 * 10.0 + 200_000 * 2.5 + 50_000 * 0.25 + 2_000 * 15.0
    ) / M
    assert cost.batch_usd == pytest.approx(batch)
    assert cost.interactive_usd == pytest.approx(interactive)
    assert cost.saved_usd == pytest.approx(interactive - batch)
    assert cost.tokens == TokenCounts(prompt=251_000, output=2_100, thoughts=50, cached=50_200)
    assert (cost.model, cost.as_of) == ("gemini-2.5-pro-001", "2025-11-20")


def test_cost_is_readable():
    cost = cost_of(_frame([1_234_567], output=[1_000]), "gemini-2.5-flash")
    text = str(cost)
    assert "1,234,567 prompt tokens" in text and "batch rate" in text and "2025-11-20" in text
    assert f"${cost.batch_usd:,.4f}" in text and f"${cost.interactive_usd:,.4f}" in text
    html = cost._repr_html_()
    assert html.startswith("<table>") and "saved" in html and "gemini-2.5-flash" in html


def test_cost_of_the_emulators_usage_is_usage_times_prices():
    requests = [
        {"contents": [{"parts": [{"text": f"Prompt number {i} " * (i + 1)}]}]} for i in range(5)
    ]
    responses = [json.dumps(generate_content("models/gemini-2.5-flash", r)) for r in requests]
    results = parse_generate_lines(
        answer_lines(pl.Series([str(i) for i in range(5)]), pl.Series(responses))
    )
    usage = [json.loads(r)["usageMetadata"] for r in responses]
    prompt = sum(u["promptTokenCount"] for u in usage)
    out = sum(u["candidatesTokenCount"] + u["thoughtsTokenCount"] for u in usage)
    assert out > sum(u["candidatesTokenCount"] for u in usage)  # 2.5 models think on the emulator
    cost = cost_of(results, "gemini-2.5-flash", prefix="")
    assert cost.batch_usd == pytest.approx((prompt * 0.3 + out * 2.5) * 0.5 / M)


def test_token_counts_from_frame_treat_nulls_as_zero():
    df = _frame(
        [10, None, 5], output=[1, 2, None], thoughts=[None, None, None], cached=[0, 3, None]
    )
    assert TokenCounts.from_frame(df) == TokenCounts(prompt=15, output=3, thoughts=0, cached=3)
    assert TokenCounts.from_frame(df.clear()) == TokenCounts()
    total = TokenCounts(1, 2, 3, 4) + TokenCounts(10, 20, 30, 40)
    assert total == TokenCounts(11, 22, 33, 44) and total.total == 66


def test_missing_token_columns_are_named():
    with pytest.raises(ColumnNotFoundError, match="gemini_cached_tokens"):
        TokenCounts.from_frame(_frame([1]).drop("gemini_cached_tokens"))
    with pytest.raises(ColumnNotFoundError, match="prefix"):
        cost_of(_frame([1]), "gemini-2.5-flash", prefix="other_")


def test_a_table_of_ones_own(tmp_path):
    data = {
        "as_of": "2030-01-01",
        "source": "mine",
        "batch_multiplier": 0.4,
        "models": {"models/acme-1": {"input": 1.0, "output": 2.0, "cached_input": 0.5}},
    }
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(data))
    table = PriceTable.from_json(path)
    assert table == PriceTable.from_dict(data)
    expected = ModelPrice(model="acme-1", input=1.0, output=2.0, cached_input=0.5)
    assert table.for_model("acme-1-turbo") == expected
    cost = cost_of(_frame([1_000], output=[100], cached=[500]), "acme-1", table=table)
    assert cost.batch_usd == pytest.approx((500 * 1.0 * 0.4 + 500 * 0.5 + 100 * 2.0 * 0.4) / M)
    assert cost.as_of == "2030-01-01"
    with pytest.raises(ConfigError, match="gemini"):
        table.for_model("gemini-2.5-flash")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"models": {"m": {"input": -1, "output": 1}}},
            r"ModelPrice\('m'\).input must be a non-negative",
        ),
        ({"models": {"m": {"input": 1, "output": "2"}}}, "output must be a non-negative number"),
        ({"models": {"m": {"input": 1}}}, "needs 'input' and 'output'"),
        ({"models": {"m": {"input": 1, "output": 1, "cache": 1}}}, r"Unknown fields \['cache'\]"),
        ({"models": {"m": {"input": 1, "output": 1, "long_context_threshold": 10}}}, "input_long"),
        ({"models": {}}, "empty"),
        ({"batch_multiplier": 2}, r"batch_multiplier must be in \(0, 1\]"),
        ({"currency": "EUR"}, "USD"),
        ({"prices": {}}, r"Unknown price table fields \['prices'\]"),
    ],
)
def test_bad_tables_are_refused_with_the_field(change, message):
    data = {"as_of": "2030-01-01", "models": {"m": {"input": 1, "output": 1}}, **change}
    with pytest.raises(ConfigError, match=message):
        PriceTable.from_dict(data)


def test_unreadable_table_file(tmp_path):
    with pytest.raises(ConfigError, match="Cannot read the price table"):
        PriceTable.from_json(tmp_path / "missing.json")


def test_cost_is_frozen():
    cost = Cost(tokens=TokenCounts(), batch_usd=0.0, interactive_usd=0.0, model="m", as_of="d")
    with pytest.raises(AttributeError):
        cost.batch_usd = 1.0  # type: ignore[misc]
