"""Structured answers: parse + validate throughput against a per-row jsonschema loop.

Ours: :func:`gembatch._results.schema.parse_structured` and
:func:`gembatch._results.validate.validate` on N answers (``--rows``) to a nested schema (an
object with a nested object, an Optional, an array of objects with ``additionalProperties:
false``, enums, bounds, a pattern, a date, unique tags); about 1 in 20 answers breaks a
constraint. Baseline in the same run: per row, ``json.loads`` and ``jsonschema``'s Draft 2020-12
validator (``is_valid``, and ``iter_errors`` for the messages of the invalid rows), measured on
``--validation-loop-rows`` rows (default 20,000) and extrapolated to N when N is larger (the
row's note says so). The verdicts (valid or not) of both are compared on those rows. Target:
>= 5x the loop. The degenerate detector's rows/s on the parsed answers is reported as
information.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np
import polars as pl

from gembatch._results.schema import parse_structured
from gembatch._results.validate import _validate, degenerate

from . import Row, best_of

SECTION = "validation"
LOOP_FACTOR = 5
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "sentiment": {"type": "string", "enum": ["positive", "negative", "neutral"]},
        "score": {"type": "integer", "minimum": 1, "maximum": 5},
        "summary": {"type": "string", "maxLength": 200},
        "author": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "country": {
                    "anyOf": [{"type": "string", "pattern": "^[A-Z]{2}$"}, {"type": "null"}]
                },
            },
            "required": ["name", "country"],
        },
        "items": {
            "type": "array",
            "maxItems": 5,
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "price": {"type": "number", "exclusiveMinimum": 0},
                    "qty": {"type": "integer", "minimum": 1},
                },
                "required": ["name", "price"],
                "additionalProperties": False,
            },
        },
        "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
        "date": {"type": "string", "format": "date"},
    },
    "required": ["sentiment", "score", "summary", "author", "items"],
}
_SUMMARIES = [
    "Arrived on time and works as described.",
    "The strap broke after a week; not worth the price.",
    'Good value, though the manual says "assembly required" twice.',
    "Ça marche très bien, livraison rapide.",
    "Average quality. Would not buy again, but it does the job.",
    "Excellent build quality\nand a friendly seller.",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--validation-loop-rows",
        type=int,
        default=20_000,
        help="rows the per-row jsonschema loop runs on (extrapolated to --rows; default 20,000)",
    )


def make_answers(n: int, seed: int = 0) -> pl.Series:
    """``n`` JSON answers to :data:`SCHEMA`, built with polars (about 5 % break a constraint)."""
    rng = np.random.default_rng(seed)

    def pick(options: list[str], p: list[float] | None = None) -> pl.Series:
        return pl.Series(rng.choice(options, size=n, p=p))

    def quoted(values: list[str]) -> list[str]:
        return [json.dumps(v, ensure_ascii=False) for v in values]

    bad = rng.random(n) < 0.01
    price = np.round(rng.uniform(0.5, 99, n), 2)
    frame = pl.DataFrame(
        {
            "sentiment": pick(
                quoted(["positive", "negative", "neutral", "meh"]), [0.4, 0.3, 0.29, 0.01]
            ),
            "score": pl.Series(np.where(bad, 7, rng.integers(1, 6, n))),
            "summary": pick(quoted(_SUMMARIES)),
            "name": pick(quoted(["Ann Lee", "Bo Moss", "Cy Ng", "Di Roe"])),
            "country": pick(['"US"', '"FR"', "null", '"usa"'], [0.5, 0.3, 0.19, 0.01]),
            "count": pl.Series(rng.integers(0, 4, n)),
            "item": pick(quoted(["pen", "lamp", "chair", "mug"])),
            "price": pl.Series(np.where(rng.random(n) < 0.01, -1.0, price)),
            "qty": pl.Series(rng.integers(1, 4, n)),
            "tags": pick(['["a"]', '["a", "b"]', "[]", '["b", "b"]'], [0.4, 0.3, 0.295, 0.005]),
            "date": pick(['"2024-01-31"', '"2025-12-01"', '"2024-02-30"'], [0.6, 0.39, 0.01]),
        }
    )
    item = pl.concat_str(
        pl.lit('{"name": '),
        pl.col("item"),
        pl.lit(', "price": '),
        pl.col("price").cast(pl.Utf8),
        pl.lit(', "qty": '),
        pl.col("qty").cast(pl.Utf8),
        pl.lit("}"),
    )
    items = pl.concat_str(
        [pl.when(pl.col("count") > k).then(item) for k in range(3)],
        separator=", ",
        ignore_nulls=True,
    )
    text = pl.concat_str(
        pl.lit('{"sentiment": '),
        pl.col("sentiment"),
        pl.lit(', "score": '),
        pl.col("score").cast(pl.Utf8),
        pl.lit(', "summary": '),
        pl.col("summary"),
        pl.lit(', "author": {"name": '),
        pl.col("name"),
        pl.lit(', "country": '),
        pl.col("country"),
        pl.lit('}, "items": ['),
        items.fill_null(""),
        pl.lit('], "tags": '),
        pl.col("tags"),
        pl.lit(', "date": '),
        pl.col("date"),
        pl.lit("}"),
    )
    return frame.select(text.alias("text")).to_series()


def run(args: argparse.Namespace) -> list[Row]:
    n, repeat = args.rows, args.repeat
    answers = make_answers(n)

    def ours() -> tuple[pl.Series, pl.Series, pl.Series]:
        parsed, errors = parse_structured(answers, SCHEMA)
        problems, python = _validate(answers, SCHEMA)
        return parsed, problems, python

    timing, (parsed, problems, python) = best_of(ours, repeat)
    parse_timing, _ = best_of(lambda: parse_structured(answers, SCHEMA), repeat)

    import jsonschema

    validator = jsonschema.Draft202012Validator(
        SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    sample = answers.head(min(n, args.validation_loop_rows)).to_list()

    def loop() -> list[bool]:
        verdicts = []
        for text in sample:
            value = json.loads(text)
            valid = validator.is_valid(value)
            if not valid:
                [e.message for e in validator.iter_errors(value)]
            verdicts.append(valid)
        return verdicts

    looped, verdicts = best_of(loop, 1)
    loop_rate = len(sample) / looped.seconds
    ours_rate = n / timing.seconds
    same = [p is None for p in problems.head(len(sample)).to_list()] == verdicts
    invalid = int(problems.is_not_null().sum())
    hashes = pl.Series("hash", [f"h{i % max(1, n // 2)}" for i in range(n)])
    detected, (reasons, counts) = best_of(lambda: degenerate(parsed, hashes, SCHEMA), repeat)
    extrapolated = (
        f"loop measured on {len(sample):,} of {n:,} rows and extrapolated"
        if len(sample) < n
        else f"loop run on all {n:,} rows"
    )
    note = (
        f"{n:,} answers, {invalid:,} invalid; verdicts identical to jsonschema on "
        f"{len(sample):,} rows: {'yes' if same else 'NO'}; {extrapolated}; "
        f"{int(python.sum()):,} rows checked whole in Python; parse alone "
        f"{n / parse_timing.seconds:,.0f} rows/s; ours used {timing.cores_used:.1f} cores"
    )
    flagged = ", ".join(f"{k} {v:,}" for k, v in counts.items())
    return [
        Row(
            SECTION,
            "parse + validate (nested schema)",
            ours_rate,
            "rows/s",
            "json.loads + jsonschema loop",
            loop_rate,
            target=f">= {LOOP_FACTOR}x",
            ok=same and ours_rate >= LOOP_FACTOR * loop_rate,
            note=note,
        ),
        Row(
            SECTION,
            "degenerate detector",
            n / detected.seconds,
            "rows/s",
            note=f"rows flagged: {flagged} (of {reasons.len():,})",
        ),
    ]
