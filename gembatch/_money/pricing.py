"""Pure: token counts -> money, from one price table kept as data (``gembatch/data/prices.json``).

Prices are USD per 1M tokens at the *interactive* (standard) paid-tier rate; the Batch API bills
``batch_multiplier`` (0.5) times that, except context-cache hits, which are billed at the
interactive cached rate. Thinking tokens are billed as output. A request whose prompt is longer than
the model's ``long_context_threshold`` pays the long-context rates for all of its tokens. Prices
change: the packaged table carries its date (``as_of``) and ``source``, and every function takes
your own table.

>>> import polars as pl
>>> frame = pl.DataFrame({"gemini_prompt_tokens": [1_000_000], "gemini_output_tokens": [0],
...                       "gemini_thoughts_tokens": [0], "gemini_cached_tokens": [0]})
>>> cost = cost_of(frame, "gemini-2.5-flash")
>>> cost.batch_usd, cost.interactive_usd
(0.15, 0.3)
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType
from typing import Any

import polars as pl

from ..exceptions import ColumnNotFoundError, ConfigError

__all__ = ["Cost", "ModelPrice", "PriceTable", "TokenCounts", "cost_of", "price_frame"]

_MILLION = 1_000_000  # prices are per 1M tokens
_TOKEN_COLUMNS = ("prompt", "output", "thoughts", "cached")
_OPTIONAL_PRICES = ("cached_input", "input_long", "output_long", "cached_input_long")


def _number(where: str, value: Any, *, integer: bool = False) -> None:
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if not ok or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        kind = "a non-negative integer" if integer else "a non-negative number"
        raise ConfigError(f"{where} must be {kind} (got {value!r}).")


@dataclass(frozen=True, kw_only=True)
class ModelPrice:
    """The interactive price of one model (family), USD per 1M tokens.

    ``long_context_threshold``: prompts above this many tokens pay the ``*_long`` rates (None: one
    tier). ``cached_input`` None: the model has no context-cache price (cached tokens pay
    ``input``). ``max_output_tokens``: the model's output-token limit (bounds output when a request
    sets none).

    >>> ModelPrice(model="my-model", input=0.1, output=0.4).output
    0.4
    """

    model: str
    input: float
    output: float
    cached_input: float | None = None
    long_context_threshold: int | None = None
    input_long: float | None = None
    output_long: float | None = None
    cached_input_long: float | None = None
    max_output_tokens: int | None = None

    def __post_init__(self) -> None:
        where = f"ModelPrice({self.model!r})"
        if not isinstance(self.model, str) or not self.model:
            raise ConfigError(f"ModelPrice.model must be a non-empty str (got {self.model!r}).")
        _number(f"{where}.input", self.input)
        _number(f"{where}.output", self.output)
        for name in _OPTIONAL_PRICES:
            if getattr(self, name) is not None:
                _number(f"{where}.{name}", getattr(self, name))
        for name in ("long_context_threshold", "max_output_tokens"):
            if getattr(self, name) is not None:
                _number(f"{where}.{name}", getattr(self, name), integer=True)
        if self.long_context_threshold is not None and None in (self.input_long, self.output_long):
            raise ConfigError(
                f"{where} has long_context_threshold={self.long_context_threshold} but no "
                "input_long / "
                "output_long price.\nHint: give both long-context prices, or drop the threshold."
            )


_MODEL_FIELDS = frozenset(f.name for f in dataclasses.fields(ModelPrice)) - {"model"}
_TABLE_FIELDS = frozenset(
    {"as_of", "source", "currency", "unit", "tier", "note", "batch_multiplier", "models"}
)


@dataclass(frozen=True, kw_only=True)
class PriceTable:
    """A dated price table: ``models`` maps a model-name prefix to its :class:`ModelPrice`.

    >>> PriceTable.default().for_model("models/gemini-2.5-flash-lite-preview-09-2025").model
    'gemini-2.5-flash-lite'
    """

    as_of: str
    source: str
    batch_multiplier: float
    models: Mapping[str, ModelPrice] = field(hash=False)

    def __post_init__(self) -> None:
        _number("PriceTable.batch_multiplier", self.batch_multiplier)
        if not 0 < self.batch_multiplier <= 1:
            raise ConfigError(
                f"PriceTable.batch_multiplier must be in (0, 1] (got {self.batch_multiplier!r})."
            )
        if not self.models:
            raise ConfigError(
                "PriceTable.models is empty.\nHint: give at least one model's prices."
            )
        object.__setattr__(self, "models", MappingProxyType(dict(self.models)))

    @staticmethod
    def default() -> PriceTable:
        """The table shipped with gembatch (``gembatch/data/prices.json``), loaded once."""
        return _default_table()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PriceTable:
        """A table from the layout of ``prices.json``: ``{"as_of", "source", "batch_multiplier",
        "models": {name: {"input", "output", "cached_input", ...}}}`` (prices per 1M tokens,
        USD)."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"A price table must be a mapping (got {type(data).__name__}).")
        unknown = sorted(set(data) - _TABLE_FIELDS)
        if unknown:
            raise ConfigError(
                f"Unknown price table fields {unknown}; allowed: {sorted(_TABLE_FIELDS)}."
            )
        missing = [k for k in ("as_of", "models") if k not in data]
        if missing:
            raise ConfigError(
                f"The price table has no {missing} field(s).\nHint: see gembatch/data/prices.json."
            )
        if data.get("currency", "USD") != "USD":
            raise ConfigError(f"Price tables are in USD (got currency={data['currency']!r}).")
        models = data["models"]
        if not isinstance(models, Mapping):
            raise ConfigError(
                f"The price table's 'models' must be a mapping (got {type(models).__name__})."
            )
        prices = {}
        for name, entry in models.items():
            if not isinstance(entry, Mapping):
                raise ConfigError(f"The price of {name!r} must be a mapping (got {entry!r}).")
            bad = sorted(set(entry) - _MODEL_FIELDS)
            if bad:
                raise ConfigError(
                    f"Unknown fields {bad} in the price of {name!r}; "
                    f"allowed: {sorted(_MODEL_FIELDS)}."
                )
            if "input" not in entry or "output" not in entry:
                raise ConfigError(
                    f"The price of {name!r} needs 'input' and 'output' (USD per 1M tokens)."
                )
            key = str(name).removeprefix("models/")
            prices[key] = ModelPrice(model=key, **entry)
        return cls(
            as_of=str(data["as_of"]),
            source=str(data.get("source", "")),
            batch_multiplier=data.get("batch_multiplier", 0.5),
            models=prices,
        )

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> PriceTable:
        """A table from a JSON file in the layout of ``gembatch/data/prices.json``."""
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"Cannot read the price table {os.fspath(path)!r}: {exc}") from exc
        return cls.from_dict(data)

    def for_model(self, model: str) -> ModelPrice:
        """The price of ``model``: the longest known name that is the model or a ``-``-separated
        prefix of it (``gemini-2.5-flash-001`` -> ``gemini-2.5-flash``); a leading ``models/`` is
        ignored."""
        name = model.removeprefix("models/")
        found = [k for k in self.models if name == k or name.startswith(k + "-")]
        if found:
            return self.models[max(found, key=len)]
        near = difflib.get_close_matches(name, list(self.models), n=3)
        raise ConfigError(
            f"No price is known for model {model!r} (prices as of {self.as_of}). Known models (and "
            "their "
            f"versions, e.g. '<model>-001'): {', '.join(sorted(self.models))}."
            + (f" Did you mean {', '.join(map(repr, near))}?" if near else "")
            + "\nHint: pass your own table, e.g. "
            "table=gembatch.PriceTable.from_json('prices.json') in the "
            "layout of gembatch/data/prices.json, or PriceTable.from_dict({...}) with this model "
            "added."
        )


@functools.lru_cache(maxsize=1)
def _default_table() -> PriceTable:
    text = resources.files("gembatch").joinpath("data/prices.json").read_text(encoding="utf-8")
    return PriceTable.from_dict(json.loads(text))


@dataclass(frozen=True)
class TokenCounts:
    """Token totals: ``prompt`` (includes ``cached``), ``output`` (answers), ``thoughts``
    (thinking).

    >>> TokenCounts(10, 5, 1, 2) + TokenCounts(1, 1, 1, 1)
    TokenCounts(prompt=11, output=6, thoughts=2, cached=3)
    """

    prompt: int = 0
    output: int = 0
    thoughts: int = 0
    cached: int = 0

    def __add__(self, other: TokenCounts) -> TokenCounts:
        if not isinstance(other, TokenCounts):
            return NotImplemented
        return TokenCounts(*(getattr(self, n) + getattr(other, n) for n in _TOKEN_COLUMNS))

    @property
    def total(self) -> int:
        """Prompt + output + thinking tokens (cached tokens are part of the prompt)."""
        return self.prompt + self.output + self.thoughts

    @classmethod
    def from_frame(cls, df: pl.DataFrame, prefix: str = "gemini_") -> TokenCounts:
        """The sums of the ``{prefix}prompt_tokens``, ``output_tokens``, ``thoughts_tokens`` and
        ``cached_tokens`` columns of a result frame (nulls, e.g. failed rows, count 0)."""
        columns = _token_columns(df, prefix)
        sums = df.select(pl.col(c).fill_null(0).sum().cast(pl.Int64) for c in columns.values()).row(
            0
        )
        return cls(*(int(v) for v in sums))


def _token_columns(df: pl.DataFrame, prefix: str) -> dict[str, str]:
    columns = {n: f"{prefix}{n}_tokens" for n in _TOKEN_COLUMNS}
    missing = [c for c in columns.values() if c not in df.columns]
    if missing:
        raise ColumnNotFoundError(
            f"The frame has no token columns {missing} (columns: {df.columns[:10]}).\nHint: pass "
            "the "
            f"frame batch_generate returned, with the prefix it used (got prefix={prefix!r})."
        )
    return columns


@dataclass(frozen=True)
class Cost:
    """What some finished work cost, at the batch rate and as if sent interactively."""

    tokens: TokenCounts
    batch_usd: float
    interactive_usd: float
    model: str
    as_of: str

    @property
    def saved_usd(self) -> float:
        """What the batch rate saved against interactive calls."""
        return self.interactive_usd - self.batch_usd

    def __str__(self) -> str:
        t = self.tokens
        return (
            f"{self.model}: {t.prompt:,} prompt tokens ({t.cached:,} cached), {t.output:,} output, "
            f"{t.thoughts:,} thinking -> ${self.batch_usd:,.4f} at the batch rate "
            f"(${self.interactive_usd:,.4f} interactive, saved ${self.saved_usd:,.4f}; "
            f"prices as of {self.as_of})"
        )

    def _repr_html_(self) -> str:
        t = self.tokens
        rows = [
            ("model", self.model),
            ("prompt tokens", f"{t.prompt:,}"),
            ("cached tokens", f"{t.cached:,}"),
            ("output tokens", f"{t.output:,}"),
            ("thinking tokens", f"{t.thoughts:,}"),
            ("cost, batch rate", f"${self.batch_usd:,.4f}"),
            ("cost, interactive", f"${self.interactive_usd:,.4f}"),
            ("saved", f"${self.saved_usd:,.4f}"),
            ("prices as of", self.as_of),
        ]
        return _html_table(rows)


def _html_table(rows: list[tuple[str, str]]) -> str:
    from html import escape

    body = "".join(
        f"<tr><th style='text-align:left'>{escape(k)}</th><td style='text-align:right'>"
        f"{escape(v)}</td></tr>"
        for k, v in rows
    )
    return f"<table>{body}</table>"


def _rates(price: ModelPrice, long: pl.Expr) -> tuple[pl.Expr, pl.Expr, pl.Expr | None]:
    """Per-request (input, output, cached) rates in USD per 1M tokens; cached None when there is no
    cache price (cached tokens then pay the input rate)."""

    def tiered(short: float, high: float | None) -> pl.Expr:
        if price.long_context_threshold is None or high is None:
            return pl.lit(float(short))
        return pl.when(long).then(pl.lit(float(high))).otherwise(pl.lit(float(short)))

    cached = (
        None if price.cached_input is None else tiered(price.cached_input, price.cached_input_long)
    )
    return tiered(price.input, price.input_long), tiered(price.output, price.output_long), cached


def _usd_exprs(
    price: ModelPrice, multiplier: float, prompt: pl.Expr, output: pl.Expr, cached: pl.Expr
) -> tuple[pl.Expr, pl.Expr]:
    """Per-request (input USD, output USD) for token-count expressions (output includes
    thinking)."""
    threshold = price.long_context_threshold
    long = pl.lit(False) if threshold is None else prompt > threshold
    input_rate, output_rate, cached_rate = _rates(price, long)
    cached = pl.min_horizontal(cached, prompt)
    fresh = prompt - cached
    if cached_rate is None:
        input_usd = prompt * input_rate * multiplier
    else:  # cache hits are billed as interactive cache hits, without the batch discount
        input_usd = fresh * input_rate * multiplier + cached * cached_rate
    return input_usd, output * output_rate * multiplier


def _priced(
    df: pl.DataFrame, price: ModelPrice, multiplier: float, prefix: str
) -> tuple[float, float]:
    """(input USD, output USD) of a frame of per-request token counts."""
    c = _token_columns(df, prefix)
    tokens = [pl.col(c[n]).fill_null(0).cast(pl.Float64) for n in _TOKEN_COLUMNS]
    prompt, output, thoughts, cached = tokens
    input_usd, output_usd = _usd_exprs(price, multiplier, prompt, output + thoughts, cached)
    row = df.select(input_usd.sum(), output_usd.sum().alias("o")).row(0)
    return float(row[0] or 0.0) / _MILLION, float(row[1] or 0.0) / _MILLION


def price_frame(
    df: pl.DataFrame,
    model_price: ModelPrice,
    *,
    batch: bool,
    prefix: str = "gemini_",
    batch_multiplier: float | None = None,
) -> float:
    """The USD price of a frame of per-request token counts (``{prefix}prompt_tokens`` etc.).

    Per request: a prompt above the model's ``long_context_threshold`` pays the long rates for all
    its tokens; cached tokens pay the cached rate and the rest of the prompt the input rate; output
    and thinking tokens pay the output rate. ``batch`` applies the batch multiplier (the default
    table's unless given) to everything but cached tokens. Nulls count 0.
    """
    multiplier = 1.0
    if batch:
        multiplier = (
            PriceTable.default().batch_multiplier if batch_multiplier is None else batch_multiplier
        )
    return sum(_priced(df, model_price, multiplier, prefix))


def cost_of(
    df: pl.DataFrame, model: str, table: PriceTable | None = None, prefix: str = "gemini_"
) -> Cost:
    """The :class:`Cost` of a result frame, at the batch rate and interactively.

    >>> import polars as pl
    >>> frame = pl.DataFrame({"gemini_prompt_tokens": [100], "gemini_output_tokens": [None],
    ...                       "gemini_thoughts_tokens": [0], "gemini_cached_tokens": [0]})
    >>> cost_of(frame, "gemini-2.0-flash").tokens
    TokenCounts(prompt=100, output=0, thoughts=0, cached=0)
    """
    table = table or PriceTable.default()
    price = table.for_model(model)
    return Cost(
        tokens=TokenCounts.from_frame(df, prefix),
        batch_usd=sum(_priced(df, price, table.batch_multiplier, prefix)),
        interactive_usd=sum(_priced(df, price, 1.0, prefix)),
        model=model.removeprefix("models/"),
        as_of=table.as_of,
    )
