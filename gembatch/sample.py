"""A small, deterministic sample dataset: product reviews, for the demo, the README and the
notebooks.

>>> sample_reviews(3).columns
['review_id', 'product', 'stars', 'review']
"""

from __future__ import annotations

import polars as pl

__all__ = ["sample_reviews"]

_PRODUCTS = [
    "kettle",
    "headphones",
    "desk lamp",
    "backpack",
    "coffee grinder",
    "keyboard",
    "running shoes",
    "blender",
    "e-reader",
    "water bottle",
]
_GOOD = [
    "works perfectly",
    "exceeded my expectations",
    "is sturdy and well made",
    "arrived early and looks great",
    "is worth every cent",
]
_BAD = [
    "stopped working after a week",
    "feels cheap",
    "is much louder than advertised",
    "arrived scratched",
    "has a confusing manual",
]
_EXTRA = [
    "Customer service was friendly.",
    "I would buy it again.",
    "Shipping took ages.",
    "The colour is nicer in person.",
    "Battery life could be better.",
    "",
]
_USE = [
    "at home",
    "at work",
    "on trips",
    "in the kitchen",
    "every morning",
    "for the kids",
    "as a gift",
]


def sample_reviews(n: int = 1_000) -> pl.DataFrame:
    """``n`` synthetic product reviews with ids, stars and text (same every call)."""
    i = pl.int_range(n, eager=True)
    stars = (i * 7919 % 5 + 1).cast(pl.Int8)
    product = pl.Series(_PRODUCTS).gather(i * 31 % len(_PRODUCTS))
    good = pl.Series(_GOOD).gather(i * 17 % len(_GOOD))
    bad = pl.Series(_BAD).gather(i * 13 % len(_BAD))
    extra = pl.Series(_EXTRA).gather(i * 11 % len(_EXTRA))
    use = pl.Series(_USE).gather(i * 3 % len(_USE))
    weeks = (i * 37 % 53 + 1).cast(pl.Utf8)  # periods 10, 5, 6, 7 and 53: ~11,000 distinct reviews
    review_id = "r" + i.cast(pl.Utf8).str.zfill(6)
    frame = pl.DataFrame({"review_id": review_id, "product": product, "stars": stars})
    verdict = pl.when(pl.col("stars") >= 3).then(good.alias("g")).otherwise(bad.alias("b"))
    return frame.with_columns(
        pl.format(
            "The {} {}. Used {} for {} weeks. {}",
            pl.col("product"),
            verdict,
            pl.lit(use),
            pl.lit(weeks),
            extra,
        )
        .str.strip_chars()
        .alias("review")
    )
