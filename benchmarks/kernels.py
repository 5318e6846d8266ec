"""The pure data kernels: building request lines, parsing result lines and joining them back.

Measured against baselines run on the same data in the same process:

* request lines (``build_generate_lines`` + ``write_jsonl`` to a file) vs a per-row ``json.dumps``
  loop writing the same bytes (target: >= 12x), and vs ``shutil.copyfile`` of the produced file,
  i.e. just moving those bytes (target: within 2.5x);
* result lines (read the JSONL file, ``parse_generate_lines`` + ``join_results`` onto the input
  frame) vs a per-row ``json.loads`` loop building the same columns and joining them with polars
  (target: >= 5x and >= 400k rows/s). Results come back shuffled (the service does not keep order);
  the in-order case is reported too. gembatch is given the file's path (read memory-mapped); the
  file read into ``bytes`` first, as the runner does for a remote run directory, is reported as well
  (no target).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl

from gembatch._build.lines import build_generate_lines, write_jsonl
from gembatch._build.wire import to_proto
from gembatch._results.join import join_results
from gembatch._results.parse import GENERATE_COLUMNS, parse_generate_lines

from . import Row, Timing, best_of

SECTION = "kernels"
PARSE_FLOOR = 400_000  # rows/s: issue #4's absolute target for read + parse + join
STATIC: dict[str, Any] = {
    "generationConfig": {"maxOutputTokens": 256, "temperature": 0.2},
    "systemInstruction": {
        "parts": [{"text": "You classify product reviews. Answer in one sentence."}]
    },
}
PROTO = to_proto(STATIC)  # what a line carries (the JSONL parser takes proto field names)
# Review-like vocabulary: mostly plain words, some punctuation, quotes, non-ASCII text and newlines.
_WORDS = [
    "the",
    "a",
    "and",
    "it",
    "is",
    "was",
    "this",
    "that",
    "for",
    "with",
    "not",
    "but",
    "very",
    "my",
    "I",
    "they",
    "great",
    "good",
    "bad",
    "terrible",
    "product",
    "quality",
    "price",
    "delivery",
    "arrived",
    "broken",
    "works",
    "perfectly",
    "love",
    "hate",
    "would",
    "buy",
    "again",
    "recommend",
    "never",
    "ever",
    "battery",
    "screen",
    "size",
    "colour",
    "fits",
    "returned",
    "refund",
    "service",
    "helpful",
    "slow",
    "fast",
    "cheap",
    "expensive",
    "value",
    "money",
    "box",
    "packaging",
    "instructions",
    "easy",
    "hard",
    '"amazing"',
    '"meh"',
    "café",
    "naïve",
    "—",
    "👍",
    "5/5",
    "don't",
    "\\o/",
    "it's\nok",
    "\tindented",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--skip-baselines", action="store_true", help="kernels: skip the slow per-row Python loops"
    )


def _texts(n: int, words: int, chars: int, seed: int) -> pl.Series:
    """``n`` review-like texts of about ``chars`` characters."""
    pool = pl.Series(_WORDS).sample(n * words, with_replacement=True, seed=seed)
    return pool.reshape((n, words)).arr.join(" ").str.slice(0, chars)


def make_rows(n: int) -> pl.DataFrame:
    """The input frame: ``id`` 0..n-1 and a ~200-character ``prompt``."""
    return pl.DataFrame({"id": pl.int_range(n, eager=True), "prompt": _texts(n, 40, 200, seed=1)})


def make_results(n: int, path: Path, *, shuffle: bool) -> int:
    """Write ``n`` result lines in the wire format (1 % errors); return the file size."""
    text = pl.lit(_texts(n, 30, 150, seed=2))
    parts = pl.concat_list(pl.struct(text.alias("text")))
    candidate = pl.struct(
        pl.struct(parts.alias("parts"), pl.lit("model").alias("role")).alias("content"),
        pl.lit("STOP").alias("finishReason"),
        pl.lit(0).alias("index"),
    )
    details = pl.concat_list(
        pl.struct(pl.lit("TEXT").alias("modality"), pl.lit(61).alias("tokenCount"))
    )
    usage = pl.struct(
        pl.lit(61).alias("promptTokenCount"),
        (pl.col("id") % 50 + 20).alias("candidatesTokenCount"),
        (pl.col("id") % 50 + 81).alias("totalTokenCount"),
        details.alias("promptTokensDetails"),
    )
    response = pl.struct(
        pl.concat_list(candidate).alias("candidates"),
        usage.alias("usageMetadata"),
        pl.lit("gemini-2.5-flash").alias("modelVersion"),
        pl.format("resp-{}", pl.col("id")).alias("responseId"),
    )
    key = pl.col("id").cast(pl.Utf8).alias("key")
    ok = pl.struct(key, response.alias("response")).struct.json_encode()
    error = pl.struct(
        key,
        pl.struct(
            pl.lit(429).alias("code"),
            pl.lit("Resource has been exhausted").alias("message"),
            pl.lit("RESOURCE_EXHAUSTED").alias("status"),
        ).alias("error"),
    ).struct.json_encode()
    frame = pl.DataFrame({"id": pl.int_range(n, eager=True)}).select(
        pl.when(pl.col("id") % 100 == 7).then(error).otherwise(ok).alias("line")
    )
    if shuffle:
        frame = frame.sample(fraction=1.0, shuffle=True, seed=3)
    with open(path, "wb") as fh:
        write_jsonl(frame, fh)
    return path.stat().st_size


# ------------------------------------------------------------------------------------------
# requests
def ours_build(rows: pl.DataFrame, path: Path) -> None:
    lines = build_generate_lines(
        rows, prompt=pl.col("prompt"), keys=pl.int_range(pl.len()).cast(pl.Utf8), static=STATIC
    )
    with open(path, "wb") as fh:
        write_jsonl(lines, fh)


def loop_build(rows: pl.DataFrame, path: Path) -> None:
    """The baseline: one ``json.dumps`` per row (the same bytes: the shared part in the proto
    field names gembatch writes, in sorted order)."""
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for i, prompt in enumerate(rows.get_column("prompt").to_list()):
            request = {"contents": [{"role": "user", "parts": [{"text": prompt}]}], **PROTO}
            fh.write(
                json.dumps(
                    {"key": str(i), "request": request}, separators=(",", ":"), ensure_ascii=False
                )
                + "\n"
            )


# -------------------------------------------------------------------------------------------
# results
def ours_parse_join(rows: pl.DataFrame, path: Path) -> pl.DataFrame:
    """The file's path goes in: gembatch reads it memory-mapped and decodes it in place."""
    results = parse_generate_lines(path)
    joined, _ = join_results(rows, key="id", results=results)
    return joined


def ours_parse_join_bytes(rows: pl.DataFrame, path: Path) -> pl.DataFrame:
    """The file read into bytes first (what ``_results.join.read_results`` does for a remote run
    directory)."""
    results = parse_generate_lines(path.read_bytes())
    joined, _ = join_results(rows, key="id", results=results)
    return joined


def loop_parse_join(rows: pl.DataFrame, path: Path) -> pl.DataFrame:
    """The baseline: one ``json.loads`` per line, the same columns built in Python, a polars
    join."""
    cols: dict[str, list[Any]] = {name: [] for name in GENERATE_COLUMNS.names()}
    usage_fields = {
        "prompt_tokens": "promptTokenCount",
        "output_tokens": "candidatesTokenCount",
        "thoughts_tokens": "thoughtsTokenCount",
        "cached_tokens": "cachedContentTokenCount",
        "total_tokens": "totalTokenCount",
    }
    with open(path, "rb") as fh:
        for raw in fh:
            if not raw.strip():
                continue
            obj = json.loads(raw)
            cols["key"].append(obj.get("key"))
            error, response = obj.get("error"), obj.get("response") or {}
            candidates = response.get("candidates") or []
            first = candidates[0] if candidates and error is None else {}
            parts = (first.get("content") or {}).get("parts") or []
            texts = [p["text"] for p in parts if "text" in p and not p.get("thought")]
            cols["text"].append("".join(texts) if texts else None)
            cols["finish_reason"].append(first.get("finishReason"))
            usage = response.get("usageMetadata") or {}
            for name, wire in usage_fields.items():
                cols[name].append(None if error is not None else usage.get(wire, 0))
            cols["model_version"].append(
                None if error is not None else response.get("modelVersion")
            )
            ok = error is None and bool(candidates)
            cols["status"].append("ok" if ok else "error")
            cols["error_code"].append(error.get("code") if error else None)
            cols["error_status"].append(
                None if ok else (error.get("status") or "UNKNOWN") if error else "NO_CANDIDATES"
            )
            cols["error_message"].append(
                None
                if ok
                else f"{error.get('status')}: {error.get('message')}"
                if error
                else "no candidates"
            )
    results = pl.DataFrame(cols, schema=GENERATE_COLUMNS)
    return (
        rows.with_columns(pl.col("id").cast(pl.Utf8).alias("__k"))
        .join(
            results.rename(lambda c: c if c == "key" else f"gemini_{c}"),
            left_on="__k",
            right_on="key",
            how="left",
            maintain_order="left",
        )
        .drop("__k")
    )


def _remove(*paths: Path) -> None:
    for p in paths:
        if p.exists():
            os.remove(p)


def run(args: argparse.Namespace) -> list[Row]:
    n, repeat, work = args.rows, args.repeat, Path(args.workdir_for)
    skip = getattr(args, "skip_baselines", False)
    rows = make_rows(n)
    out: list[Row] = []

    # request lines --------------------------------------------------------------------------------
    ours_path, loop_path, copy_path = work / "ours.jsonl", work / "loop.jsonl", work / "copy.jsonl"
    built, _ = best_of(
        lambda: ours_build(rows, ours_path), repeat, before=lambda: _remove(ours_path)
    )
    size_mb = ours_path.stat().st_size / 1e6
    copied, _ = best_of(
        lambda: shutil.copyfile(ours_path, copy_path), repeat, before=lambda: _remove(copy_path)
    )
    _remove(copy_path)
    note = f"{n:,} lines, {size_mb:,.0f} MB; ours used {built.cores_used:.1f} cores"
    if not skip:
        looped, _ = best_of(lambda: loop_build(rows, loop_path), 1)
        same = loop_path.read_bytes() == ours_path.read_bytes()
        note += f"; loop output byte-identical: {'yes' if same else 'NO'}"
        _remove(loop_path)
        factor = looped.seconds / built.seconds
        out.append(
            Row(
                SECTION,
                "request lines: build + write JSONL",
                n / built.seconds,
                "rows/s",
                "json.dumps loop",
                n / looped.seconds,
                target=">= 12x",
                ok=factor >= 12 and same,
                note=note,
            )
        )
    out.append(
        Row(
            SECTION,
            "request lines: build + write JSONL",
            size_mb / built.seconds,
            "MB/s",
            "copyfile of the same file",
            size_mb / copied.seconds,
            target="within 2.5x",
            ok=built.seconds <= 2.5 * copied.seconds,
            note="" if not skip else note,
        )
    )
    _remove(ours_path)

    # result lines ---------------------------------------------------------------------------------
    for shuffle in (True, False):
        label = "shuffled" if shuffle else "in order"
        path = work / f"results-{label.replace(' ', '-')}.jsonl"
        size_mb = make_results(n, path, shuffle=shuffle) / 1e6
        parsed, ours = best_of(partial(ours_parse_join, rows, path), repeat)
        rate = n / parsed.seconds
        note = (
            f"{n:,} result lines ({label}), {size_mb:,.0f} MB; ours used {parsed.cores_used:.1f} "
            "cores "
            f"({parsed.cpu_seconds:.2f} CPU s)"
        )
        looped: Timing | None = None
        if not skip:
            looped, theirs = best_of(partial(loop_parse_join, rows, path), 1)
            same = ours.get_column("gemini_text").equals(
                theirs.get_column("gemini_text")
            ) and ours.get_column("gemini_total_tokens").equals(
                theirs.get_column("gemini_total_tokens")
            )
            del theirs
            note += (
                f"; the loop used {looped.cpu_seconds:.2f} CPU s; "
                f"same texts and tokens as the loop: {'yes' if same else 'NO'}"
            )
            factor = looped.seconds / parsed.seconds
            out.append(
                Row(
                    SECTION,
                    f"result lines ({label}): read + parse + join",
                    rate,
                    "rows/s",
                    "json.loads loop + join",
                    n / looped.seconds,
                    target=">= 5x",
                    ok=factor >= 5 and same,
                    note=note,
                )
            )
            note = ""
        out.append(
            Row(
                SECTION,
                f"result lines ({label}): read + parse + join",
                rate,
                "rows/s",
                "the issue's floor",
                PARSE_FLOOR,
                target=">= 400k rows/s",
                ok=rate >= PARSE_FLOOR,
                note=note,
            )
        )
        del ours
        if shuffle:
            as_bytes, _ = best_of(partial(ours_parse_join_bytes, rows, path), repeat)
            out.append(
                Row(
                    SECTION,
                    f"result lines ({label}): read_bytes + parse + join",
                    n / as_bytes.seconds,
                    "rows/s",
                    "read + parse + join (memory-mapped)",
                    rate,
                    note="the file read into bytes first (as read_results does for a remote run "
                    "directory); "
                    f"used {as_bytes.cores_used:.1f} cores",
                )
            )
        _remove(path)
    return out
