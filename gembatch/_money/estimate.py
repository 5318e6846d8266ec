"""Estimate before spending: input tokens, an output-token bound and their price, from lines.

Input tokens are estimated locally with Google's rule of thumb, which is also the emulator's rule: a
text part costs ceil(characters / 4) tokens and every ``inline_data`` / ``file_data`` part 258; or
counted exactly, one countTokens call per request (``exact=True``). Output is bounded, not
estimated: ``maxOutputTokens`` x ``candidateCount`` per request, or the model's output limit when
the request sets no ``maxOutputTokens``. Prices come from a
:class:`~gembatch._money.pricing.PriceTable`.

>>> import polars as pl
>>> line = '{"key":"0","request":{"contents":[{"role":"user","parts":[{"text":"abcde"}]}]}}'
>>> local_tokens(pl.Series([line])).to_list()
[2]
>>> est = estimate_lines([pl.Series([line])], model="gemini-2.5-flash",
...                      static={"generationConfig": {"maxOutputTokens": 10}}, rows=1)
>>> est.input_tokens, est.output_tokens_bound
(2, 10)
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import polars as pl
import pyarrow as pa
import pyarrow.json as pa_json

from .._build.lines import write_jsonl
from ..exceptions import ConfigError, InputError
from .pricing import ModelPrice, PriceTable, _html_table, _usd_exprs

__all__ = [
    "Estimate",
    "OutputBound",
    "TokenCounter",
    "estimate_lines",
    "local_tokens",
    "output_bound",
]

# : Tokens of one inlineData / fileData part (an image up to 384 px on each side, Google's flat
# rate).
TOKENS_PER_MEDIA_PART = 258
CHARS_PER_TOKEN = 4

_MEDIA = pl.Struct({"mimeType": pl.Utf8})  # only a field to see the part is there; data is skipped
_PART = pl.Struct(
    {
        "text": pl.Utf8,
        "inline_data": _MEDIA,
        "file_data": _MEDIA,
        "inlineData": _MEDIA,
        "fileData": _MEDIA,
    }
)  # proto names; REST names in lines of 0.1.0 run directories
_CONTENT = pl.Struct({"parts": pl.List(_PART)})
#: The decode schema of a request line, only what the token rule reads.
LINE_SCHEMA = pl.Struct(
    {
        "request": pl.Struct(
            {
                "contents": pl.List(_CONTENT),
                "system_instruction": _CONTENT,
                "systemInstruction": _CONTENT,
                "content": _CONTENT,
            }
        )
    }
)


#: Output tokens of a typical answer, for the expected cost (answers and thinking together).
TYPICAL_OUTPUT_TOKENS = 300


def _part_tokens(part: pl.Expr) -> pl.Expr:
    text = part.struct.field("text")
    media = pl.any_horizontal(
        part.struct.field(name).is_not_null()
        for name in ("inline_data", "file_data", "inlineData", "fileData")
    )
    return (
        pl.when(text.is_not_null())
        .then((text.str.len_chars().cast(pl.Int64) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN)
        .when(media)
        .then(pl.lit(TOKENS_PER_MEDIA_PART, dtype=pl.Int64))
        .otherwise(pl.lit(0, dtype=pl.Int64))
    )


def _content_tokens(content: pl.Expr) -> pl.Expr:
    return (
        content.struct.field("parts").list.eval(_part_tokens(pl.element())).list.sum().fill_null(0)
    )


def local_tokens(lines: pl.Series) -> pl.Series:
    """A fast local estimate of each request line's input tokens (Int64, named ``tokens``).

    Every text part of ``contents``, ``system_instruction`` and an embed request's ``content`` costs
    ceil(characters / 4) tokens (characters are code points), every ``inline_data`` / ``file_data``
    part 258; other parts (function calls, code) count 0. On the emulator this equals
    promptTokenCount.

    >>> import polars as pl
    >>> lines = pl.Series(['{"key":"a","request":{"content":{"parts":[{"text":"abcd"}]}}}'])
    >>> local_tokens(lines).to_list()
    [1]
    """
    if not len(lines):
        return pl.Series("tokens", [], dtype=pl.Int64)
    buffer = io.BytesIO()
    write_jsonl(lines, buffer)
    try:  # Arrow's multi-threaded reader under an explicit schema: ~2.5x polars' json_decode here
        table = pa_json.read_json(
            pa.BufferReader(buffer.getvalue()),
            read_options=pa_json.ReadOptions(block_size=1 << 24),
            parse_options=pa_json.ParseOptions(
                explicit_schema=_ARROW_SCHEMA, unexpected_field_behavior="ignore"
            ),
        )
        decoded = pl.from_arrow(table)
    except (pa.ArrowException, pl.exceptions.PolarsError):
        try:
            decoded = lines.str.json_decode(LINE_SCHEMA).struct.unnest()  # the lenient decoder
        except pl.exceptions.PolarsError as exc:
            raise InputError(
                f"Some request lines are not JSON objects: {exc}"
                "\nHint: pass the lines gembatch built (one JSON object per line)."
            ) from exc
    assert isinstance(decoded, pl.DataFrame)
    request = pl.col("request")
    contents = request.struct.field("contents")
    tokens = (
        contents.list.eval(_content_tokens(pl.element())).list.sum().fill_null(0)
        + _content_tokens(request.struct.field("system_instruction"))
        + _content_tokens(request.struct.field("systemInstruction"))
        + _content_tokens(request.struct.field("content"))
    )
    return decoded.select(tokens.cast(pl.Int64).alias("tokens")).to_series()


def _arrow_type(dtype: Any) -> pa.DataType:
    if isinstance(dtype, pl.Struct):
        return pa.struct([pa.field(f.name, _arrow_type(f.dtype)) for f in dtype.fields])
    if isinstance(dtype, pl.List):
        return pa.list_(_arrow_type(dtype.inner))
    return pa.string()


_ARROW_SCHEMA = pa.schema([pa.field(f.name, _arrow_type(f.dtype)) for f in LINE_SCHEMA.fields])


class TokenCounter(Protocol):
    """What ``exact=True`` needs: :meth:`gembatch.backend.Backend.count_tokens`."""

    def count_tokens(self, model: str, request: dict[str, Any]) -> int: ...


class OutputBound(NamedTuple):
    """At most ``tokens`` output tokens; ``bounded_by_model_limit`` when no maxOutputTokens was set
    and the model's own output limit gave the bound."""

    tokens: int
    bounded_by_model_limit: bool


def _config_value(config: Mapping[str, Any], camel: str, snake: str) -> Any:
    return config.get(camel, config.get(snake))


def output_bound(
    static: Mapping[str, Any],
    model: ModelPrice | str,
    requests: int,
    *,
    table: PriceTable | None = None,
) -> OutputBound:
    """The most output tokens ``requests`` requests sharing ``static`` can produce.

    ``generationConfig.maxOutputTokens`` x ``candidateCount`` x ``requests``; without
    maxOutputTokens the model's output-token limit (``max_output_tokens`` in the price table) takes
    its place.

    >>> output_bound({"generationConfig": {"maxOutputTokens": 100, "candidateCount": 2}},
    ...              "gemini-2.5-flash", 3)
    OutputBound(tokens=600, bounded_by_model_limit=False)
    """
    price = (
        model if isinstance(model, ModelPrice) else (table or PriceTable.default()).for_model(model)
    )
    config = _config_value(static, "generationConfig", "generation_config") or {}
    candidates = _config_value(config, "candidateCount", "candidate_count") or 1
    limit = _config_value(config, "maxOutputTokens", "max_output_tokens")
    by_model = limit is None
    if by_model:
        if price.max_output_tokens is None:
            raise ConfigError(
                f"No output bound for {price.model!r}: the request sets no maxOutputTokens and the "
                "price "
                "table gives no max_output_tokens for the model.\nHint: set max_output_tokens in "
                "the "
                "config, or add max_output_tokens to the model's entry of your price table."
            )
        limit = price.max_output_tokens
    return OutputBound(int(limit) * int(candidates) * requests, by_model and limit > 0)


@dataclass(frozen=True)
class Estimate:
    """What a run would cost at most: input tokens (estimated or exact), an output bound, in USD.

    ``input_usd`` and ``output_usd_bound`` are at the batch rate; ``total_usd_bound`` is their sum
    and ``interactive_usd_bound`` the same bound at interactive prices.
    """

    model: str
    rows: int
    requests: int
    input_tokens: int
    input_exact: bool
    output_tokens_bound: int
    bounded_by_model_limit: bool
    input_usd: float
    output_usd_bound: float
    total_usd_bound: float
    interactive_usd_bound: float
    as_of: str
    # what a typical answer would cost: TYPICAL_OUTPUT_TOKENS output tokens per request, or twice
    # its input tokens when more, within the bound (a figure to plan with, not a limit)
    expected_output_tokens: int = 0
    expected_usd: float = 0.0
    expected_interactive_usd: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (JSON-serialisable)."""
        return dataclasses.asdict(self)

    def _lines(self) -> list[tuple[str, str]]:
        how = "exact (countTokens)" if self.input_exact else "estimated, ~4 characters per token"
        limit = (
            " (the model's output limit: set max_output_tokens for a tighter bound)"
            if self.bounded_by_model_limit
            else ""
        )
        return [
            ("model", self.model),
            ("rows", f"{self.rows:,}"),
            ("requests", f"{self.requests:,}"),
            ("input tokens", f"{self.input_tokens:,} {how}"),
            ("output tokens", f"at most {self.output_tokens_bound:,}{limit}"),
            ("input, batch rate", f"${self.input_usd:,.4f}"),
            ("output, batch rate", f"at most ${self.output_usd_bound:,.4f}"),
            ("total, batch rate", f"at most ${self.total_usd_bound:,.4f}"),
            ("total, interactive", f"at most ${self.interactive_usd_bound:,.4f}"),
            (
                "expected, batch rate",
                f"~${self.expected_usd:,.4f} (~{self.expected_output_tokens:,} output tokens: "
                f"{TYPICAL_OUTPUT_TOKENS} a request or twice the input; a typical figure)",
            ),
            ("expected, interactive", f"~${self.expected_interactive_usd:,.4f}"),
            ("prices as of", self.as_of),
        ]

    def __str__(self) -> str:
        lines = self._lines()
        width = max(len(k) for k, _ in lines)
        return "Estimate\n" + "\n".join(f"  {k:<{width}}  {v}" for k, v in lines)

    def _repr_html_(self) -> str:
        return _html_table(self._lines())


def _exact_tokens(
    lines: pl.Series, model: str, backend: TokenCounter, concurrency: int
) -> pl.Series:
    """countTokens for every line, in order (``concurrency`` calls in flight)."""

    def count(line: str) -> int:
        return int(backend.count_tokens(model, json.loads(line)["request"]))

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return pl.Series("tokens", list(pool.map(count, lines.to_list())), dtype=pl.Int64)


def estimate_lines(
    line_batches: Iterable[pl.Series],
    *,
    model: str,
    static: Mapping[str, Any],
    rows: int,
    table: PriceTable | None = None,
    backend: TokenCounter | None = None,
    exact: bool = False,
    concurrency: int = 8,
) -> Estimate:
    """The :class:`Estimate` of sending every line of ``line_batches`` (Utf8 request lines) to
    ``model``.

    Batches are read one at a time (memory stays flat). ``static`` is the request part shared by
    every line (its ``generationConfig`` bounds the output); ``rows`` the number of frame rows
    behind the lines (shown, not priced). ``exact`` asks ``backend.count_tokens`` for every line
    instead of the local estimate. The long-context tier applies per request, as in
    :func:`~gembatch.pricing.price_frame`.
    """
    if exact and backend is None:
        raise ConfigError(
            "exact=True counts tokens with the service and needs a backend."
            "\nHint: pass backend=gembatch.backend.Backend(client), or exact=False."
        )
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigError(f"concurrency must be a positive int (got {concurrency!r}).")
    counter = backend if exact else None
    table = table or PriceTable.default()
    price = table.for_model(model)
    per_request = output_bound(static, price, 1)
    prompt, output = pl.col("tokens").cast(pl.Float64), pl.col("output")
    batch_in, batch_out = _usd_exprs(price, table.batch_multiplier, prompt, output, pl.lit(0.0))
    inter_in, inter_out = _usd_exprs(price, 1.0, prompt, output, pl.lit(0.0))
    typical = pl.min_horizontal(
        pl.max_horizontal(prompt * 2, pl.lit(float(TYPICAL_OUTPUT_TOKENS))), output
    )
    _, batch_typical = _usd_exprs(price, table.batch_multiplier, prompt, typical, pl.lit(0.0))
    _, inter_typical = _usd_exprs(price, 1.0, prompt, typical, pl.lit(0.0))
    sums = [
        e.sum().alias(str(i))
        for i, e in enumerate(
            [
                batch_in,
                batch_out,
                inter_in + inter_out,
                batch_in + batch_typical,
                inter_in + inter_typical,
                typical,
            ]
        )
    ]
    requests, tokens, usd = 0, 0, [0.0] * 6
    for lines in line_batches:
        if not len(lines):
            continue
        counted = (
            local_tokens(lines)
            if counter is None
            else _exact_tokens(lines, model, counter, concurrency)
        )
        frame = counted.to_frame("tokens").with_columns(
            pl.lit(float(per_request.tokens)).alias("output")
        )
        requests += len(counted)
        tokens += int(counted.sum())
        usd = [a + float(b or 0.0) for a, b in zip(usd, frame.select(sums).row(0))]
    million = 1_000_000
    input_usd, output_usd, interactive, expected, expected_interactive = (
        u / million for u in usd[:5]
    )
    return Estimate(
        model=model.removeprefix("models/"),
        rows=rows,
        requests=requests,
        input_tokens=tokens,
        input_exact=exact,
        output_tokens_bound=per_request.tokens * requests,
        bounded_by_model_limit=per_request.bounded_by_model_limit,
        input_usd=input_usd,
        output_usd_bound=output_usd,
        total_usd_bound=input_usd + output_usd,
        interactive_usd_bound=interactive,
        as_of=table.as_of,
        expected_output_tokens=int(usd[5]),
        expected_usd=expected,
        expected_interactive_usd=expected_interactive,
    )
