"""``gembatch demo``: a real batch over the sample reviews, on the embedded emulator, to Parquet.

It starts the emulator in-process on a loopback port, points the environment at it (as a user would
point it at Google), and runs the same call a notebook would::

    out = reviews.gemini.batch_generate(prompt, key="review_id",
                                        config=Config(..., response_schema=ReviewLabel))
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Literal

import polars as pl
from pydantic import BaseModel

from .config import Config, Options
from .sample import sample_reviews

__all__ = ["ReviewLabel", "run_demo"]


class ReviewLabel(BaseModel):
    """The structured answer the demo asks for."""

    sentiment: Literal["positive", "neutral", "negative"]
    summary: str
    score: int


def run_demo(
    *,
    rows: int = 2_000,
    out: str = "gembatch_demo.parquet",
    job_dir: str | None = None,
    shard_rows: int | None = None,
) -> pl.DataFrame:
    """Run the demo and write ``out``; returns the result frame."""
    from .api import batch_generate
    from .emulator import Emulator

    reviews = sample_reviews(rows)
    prompt = pl.format(
        "Label this {} review ({} stars): {}", pl.col("product"), pl.col("stars"), pl.col("review")
    )
    config = Config(
        model="gemini-2.5-flash",
        temperature=0.2,
        response_schema=ReviewLabel,
        system_instruction="You label product reviews.",
    )
    options = Options(
        poll_interval=0.2, max_poll_interval=1.0, shard_max_rows=shard_rows or 200_000
    )
    saved = {k: os.environ.get(k) for k in ("GOOGLE_GEMINI_BASE_URL", "GEMINI_API_KEY")}
    with tempfile.TemporaryDirectory(prefix="gembatch-demo-") as tmp, Emulator() as emu:
        os.environ.update(emu.environ())
        try:
            started = time.perf_counter()
            # no result cache: the demo always sends a real batch (a second run would be served from
            # it)
            result = batch_generate(
                reviews,
                prompt,
                config=config,
                key="review_id",
                job_dir=job_dir or os.path.join(tmp, "run"),
                options=options,
                cache=False,
            )
            elapsed = time.perf_counter() - started
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    assert isinstance(result, pl.DataFrame)
    result.write_parquet(out)
    counts = result["gemini_status"].value_counts().sort("gemini_status")
    origins = result["gemini_origin"].value_counts().sort("gemini_origin")
    print(result.select("review_id", "review", "gemini_parsed", "gemini_status").head(5))
    print(
        f"{result.height:,} rows in {elapsed:.1f} s; statuses: "
        + ", ".join(f"{s}={n}" for s, n in counts.iter_rows())
        + "; answered by: "
        + ", ".join(f"{s}={n}" for s, n in origins.iter_rows())
        + f"; tokens in/out: {result['gemini_prompt_tokens'].sum():,}/"
        f"{result['gemini_output_tokens'].sum():,}"
    )
    print(f"wrote {out}")
    return result
