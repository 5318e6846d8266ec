"""What a run will send and cost, read from its prepared run directory, before anything is spent.

A :class:`Plan` is made from a journal whose shards are written but not submitted: rows, unique
requests after dedup and the result cache, the shards and their sizes against the service's limits,
and the token and cost estimate of the lines that will actually go out.

>>> plan = df.gemini.plan("prompt", config=cfg)
>>> plan.rows, plan.requests, plan.to_send, len(plan.shards)
(2, 2, 2, 1)
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import polars as pl

from .._state.journal import Journal
from ..exceptions import ConfigError
from .estimate import Estimate, estimate_lines
from .pricing import PriceTable

__all__ = ["FILE_LIMIT_BYTES", "INLINE_LIMIT_BYTES", "Plan", "ShardInfo", "prepared_plan"]

INLINE_LIMIT_BYTES = 20_000_000  # the whole inline batch request
FILE_LIMIT_BYTES = 2_000_000_000  # one input file


@dataclass(frozen=True)
class ShardInfo:
    """One request shard: how many rows, how many lines it sends, their bytes, inline or file."""

    index: int
    rows: int
    lines: int
    bytes: int
    mode: str  # "inline" | "file" | "none" (nothing to send)

    @property
    def limit(self) -> int:
        return INLINE_LIMIT_BYTES if self.mode == "inline" else FILE_LIMIT_BYTES

    @property
    def share_of_limit(self) -> float:
        """The shard's bytes as a share of its limit (20 MB inline, 2 GB file)."""
        return self.bytes / self.limit


@dataclass(frozen=True)
class Plan:
    """What a run will do, without having spent anything.

    ``requests`` rows ask something (the others are ``skipped``); of those, ``deduplicated`` repeat
    a request already in their shard and ``cached`` are answered by the result cache, so ``to_send``
    request lines go to the service, in ``shards``. ``estimate`` holds their tokens and cost bound.
    """

    job_dir: str
    model: str
    rows: int
    requests: int
    deduplicated: int
    cached: int
    to_send: int
    shards: tuple[ShardInfo, ...]
    estimate: Estimate | None

    @property
    def skipped(self) -> int:
        return self.rows - self.requests

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_dir": self.job_dir,
            "model": self.model,
            "rows": self.rows,
            "requests": self.requests,
            "skipped": self.skipped,
            "deduplicated": self.deduplicated,
            "cached": self.cached,
            "to_send": self.to_send,
            "shards": [
                {
                    "index": s.index,
                    "rows": s.rows,
                    "lines": s.lines,
                    "bytes": s.bytes,
                    "mode": s.mode,
                }
                for s in self.shards
            ],
            "estimate": None if self.estimate is None else self.estimate.to_dict(),
        }

    def _shard_lines(self) -> list[str]:
        sent = [s for s in self.shards if s.mode != "none"]
        if not sent:
            return ["nothing to send"]
        biggest = max(sent, key=lambda s: s.share_of_limit)
        modes = sorted({s.mode for s in sent})
        return [
            (
                f"{len(sent)} shard(s) ({'/'.join(modes)}), largest {biggest.bytes / 1e6:,.1f} MB "
                "= "
                f"{biggest.share_of_limit:.1%} of the {biggest.limit / 1e6:,.0f} MB "
                f"{'inline' if biggest.mode == 'inline' else 'file'} limit"
            )
        ]

    def __str__(self) -> str:
        head = (
            f"Plan for {self.model} in {self.job_dir}: {self.rows:,} rows, {self.requests:,} "
            "requests "
            f"({self.skipped:,} skipped), {self.deduplicated:,} deduplicated, {self.cached:,} from "
            "the "
            f"cache -> {self.to_send:,} to send"
        )
        parts = [head, *self._shard_lines()]
        if self.estimate is not None:
            parts.append(str(self.estimate))
        return "\n".join(parts)

    def __repr__(self) -> str:
        return (
            f"Plan(model={self.model!r}, rows={self.rows:,}, to_send={self.to_send:,}, "
            f"shards={len(self.shards)}, job_dir={self.job_dir!r})"
        )

    def _repr_html_(self) -> str:
        cells = [
            ("rows", f"{self.rows:,}"),
            ("requests", f"{self.requests:,}"),
            ("skipped", f"{self.skipped:,}"),
            ("deduplicated", f"{self.deduplicated:,}"),
            ("from the cache", f"{self.cached:,}"),
            ("to send", f"{self.to_send:,}"),
            ("shards", html.escape(self._shard_lines()[0])),
        ]
        body = "".join(
            f"<tr><td>{k}</td><td style='text-align:right'>{v}</td></tr>" for k, v in cells
        )
        estimate = "" if self.estimate is None else self.estimate._repr_html_()
        return (
            f"<div><b>gembatch plan</b> — {html.escape(self.model)} in "
            f"<code>{html.escape(self.job_dir)}</code><table>{body}</table>{estimate}</div>"
        )


def _lines(journal: Journal) -> Iterator[pl.Series]:
    for shard in journal.shards:
        if shard.lines:
            yield journal.store.read_lines(shard.path("requests.jsonl"))


def prepared_plan(
    journal: Journal,
    *,
    table: PriceTable | None = None,
    backend: Any = None,
    exact: bool = False,
    strict: bool = False,
) -> Plan:
    """The plan of a prepared run (``exact`` counts input tokens with the service's countTokens).

    A model missing from the price table gives a plan without estimate, or, when ``strict``, the
    table's :class:`~gembatch.exceptions.ConfigError`.
    """
    manifest = journal.manifest
    shards = tuple(ShardInfo(s.index, s.rows, s.lines, s.bytes, s.mode) for s in journal.shards)
    to_send = sum(s.lines for s in shards)
    try:
        estimate: Estimate | None = estimate_lines(
            _lines(journal),
            model=manifest.model,
            static=manifest.static,
            rows=manifest.rows,
            table=table,
            backend=backend,
            exact=exact,
        )
    except ConfigError:
        if strict:
            raise
        estimate = None
    return Plan(
        job_dir=journal.store.url,
        model=manifest.model,
        rows=manifest.rows,
        requests=manifest.requests,
        deduplicated=manifest.deduplicated,
        cached=manifest.cached,
        to_send=to_send,
        shards=shards,
        estimate=estimate,
    )
