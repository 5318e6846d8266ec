"""Content addresses of requests: a canonical sha256 per request line, computed in bulk.

Two requests get the same hash exactly when they would ask the same service the same thing: same
service (Google, or an emulator), same kind (generate / embed), same model, same request body. The
body is canonical by construction: the request builders in :mod:`gembatch._build.lines` write every
row's fields in one fixed order with compact separators, and the part shared by all rows is
:func:`gembatch._build.lines.static_json` (proto field names in sorted order, user data such as a
schema verbatim, no whitespace, floats in shortest round-trip form, integral floats as integers).
Prompt text is hashed as it is: whitespace inside a prompt is content.

The digest is sha256 (hex), so it is stable across machines, processes and library versions, and a
cache built by one is valid for all. It is computed by the ``polars-hash`` plugin when installed
(vectorised, ~2-4 M rows/s on one core, the ``fast`` extra); otherwise by :mod:`hashlib` over the
column (same digests, ~3x slower).

>>> import polars as pl
>>> body = pl.Series(['{"contents":[]}'])
>>> h = request_hashes(body, kind="generate", model="gemini-2.5-flash")
>>> len(h[0]), h[0] == request_hashes(body, kind="generate", model="gemini-2.5-flash")[0]
(64, True)
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import polars as pl

__all__ = ["GOOGLE", "HASH_VERSION", "hash_expr", "hash_prefix", "request_hashes", "vectorised"]

#: Bumped whenever what is hashed changes (old cache entries then simply stop matching).
HASH_VERSION = "gembatch-request-v2"  # v2: request lines in proto field names


GOOGLE = "https://generativelanguage.googleapis.com"


def hash_prefix(kind: str, model: str, service: str = GOOGLE) -> str:
    """What every hashed body of ``kind`` / ``model`` sent to ``service`` is prefixed with (an
    emulator's answers must never pass for Google's)."""
    name = model.removeprefix("models/")
    return f"{HASH_VERSION}\x00{service}\x00{kind}\x00{name}\x00"


def _hashlib_sha256(series: pl.Series) -> pl.Series:
    sha = hashlib.sha256
    return pl.Series(
        series.name,
        [None if v is None else sha(v.encode()).hexdigest() for v in series],
        dtype=pl.Utf8,
    )


@lru_cache(maxsize=1)
def vectorised() -> bool:
    """Whether the ``polars-hash`` plugin is importable and agrees with :mod:`hashlib` here."""
    try:
        import polars_hash as plh

        probe = pl.DataFrame({"v": ["", "é\x00x"]})
        got = probe.select(plh.col("v").chash.sha2_256()).to_series().to_list()
    except Exception:  # noqa: BLE001 - missing, or built for another polars: fall back
        return False
    return got == [hashlib.sha256(v.encode()).hexdigest() for v in ["", "é\x00x"]]


def hash_expr(body: pl.Expr) -> pl.Expr:
    """The sha256 hex digest of each value of ``body`` (a Utf8 expression)."""
    if vectorised():
        import polars_hash  # noqa: F401 - registers the ``chash`` expression namespace

        return body.chash.sha2_256()  # type: ignore[attr-defined]
    return body.map_batches(_hashlib_sha256, return_dtype=pl.Utf8)


def request_hashes(bodies: pl.Series, *, kind: str, model: str, service: str = GOOGLE) -> pl.Series:
    """The content address of each request body (the JSON of the ``request`` object of a line)."""
    prefix = hash_prefix(kind, model, service)
    return (
        bodies.to_frame("b")
        .select(hash_expr(pl.concat_str([pl.lit(prefix), pl.col("b")])).alias("hash"))
        .to_series()
    )
