"""What a finished run cost, and what dedup and the result cache saved.

Rows are counted by origin (``{prefix}origin``): ``batch`` rows were answered by a batch job and are
billed at the batch rate, ``interactive`` rows by interactive calls at the interactive rate;
``dedup`` and ``cache`` rows carry the token counts of the answer they reused and were not billed:
their price is what they saved.

>>> out = df.gemini.batch_generate("prompt", config=cfg, job_dir=job_dir, options=FAST,
...                                progress=False)
>>> cost = gembatch.BatchRun.open(job_dir).cost()
>>> cost.rows["batch"], cost.batch_usd < cost.interactive_usd
(2, True)
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass

import polars as pl

from .pricing import Cost, PriceTable, TokenCounts, cost_of

__all__ = ["RunCost", "run_cost"]

_ORIGINS = ("batch", "interactive", "dedup", "cache")


@dataclass(frozen=True)
class RunCost:
    """The cost report of a run: ``billed`` (rows a batch job answered), ``live`` (rows answered
    by interactive calls) and ``reused`` (rows answered by dedup or the result cache, priced as
    what they saved), with row counts by origin."""

    model: str
    rows: dict[str, int]  # by origin: batch / interactive / dedup / cache / skipped
    billed: Cost
    reused: Cost
    live: Cost | None = None
    schema_failed: int = 0  # paid-for rows whose answer failed the response schema
    pilot_rows: int = 0  # rows the run's pilot runs paid for (then served to it from the cache)
    pilot_usd: float = 0.0

    @property
    def spent_usd(self) -> float:
        """What the run paid: batch rows at the batch rate, interactive rows at the interactive
        rate."""
        live = self.live.interactive_usd if self.live else 0.0
        return self.billed.batch_usd + live + self.pilot_usd

    @property
    def batch_usd(self) -> float:
        return self.billed.batch_usd

    @property
    def interactive_usd(self) -> float:
        """What the billed work would have cost sent interactively."""
        return self.billed.interactive_usd

    @property
    def saved_usd(self) -> float:
        """Saved by the batch rate, by dedup and by the cache together (against interactive
        calls)."""
        return self.billed.saved_usd + self.reused.interactive_usd

    def summary(self) -> str:
        t = self.billed.tokens
        reused = self.rows.get("dedup", 0) + self.rows.get("cache", 0)
        live = ""
        if self.live is not None and self.rows.get("interactive", 0):
            live = (
                f"{self.rows['interactive']:,} rows answered interactively: "
                f"${self.live.interactive_usd:,.4f} at the interactive rate. "
            )
        if self.pilot_rows:
            live += (
                f"Its pilot runs paid for {self.pilot_rows:,} rows: ${self.pilot_usd:,.4f} (their "
                "answers then served this run from the cache). "
            )
        if self.rows.get("unkeyed"):
            live += (
                f"{self.rows['unkeyed']:,} inline answers came back without their keys: paid for, "
                "then their rows were sent again through a file (both counted above). "
            )
        if self.schema_failed:
            live += (
                f"Paid for {self.schema_failed:,} rows whose answers failed the schema "
                "(SCHEMA_MISMATCH; run.retry_failed(schema=True) sends them again). "
            )
        return (
            f"gembatch: {self.rows.get('batch', 0):,} rows answered by batch jobs, "
            f"{self.rows.get('dedup', 0):,} by dedup, {self.rows.get('cache', 0):,} from the "
            "cache. "
            f"Tokens in {t.prompt:,} ({t.cached:,} cached), out {t.output:,}, thinking "
            f"{t.thoughts:,}: "
            f"${self.batch_usd:,.4f} at the batch rate (interactive ${self.interactive_usd:,.4f}); "
            f"{live}{reused:,} reused rows saved ${self.reused.batch_usd:,.4f} more "
            f"(prices of {self.billed.as_of})."
        )

    def __str__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        t, r = self.billed.tokens, self.reused.tokens
        rows = [
            (
                "rows: batch / interactive / dedup / cache",
                " / ".join(f"{self.rows.get(o, 0):,}" for o in _ORIGINS),
            ),
            ("prompt tokens (cached)", f"{t.prompt:,} ({t.cached:,})"),
            ("output tokens", f"{t.output:,}"),
            ("thinking tokens", f"{t.thoughts:,}"),
            ("cost at the batch rate", f"${self.batch_usd:,.4f}"),
            (
                "interactive rows, at the interactive rate",
                f"${self.live.interactive_usd if self.live else 0.0:,.4f}",
            ),
            ("pilot runs: rows, $", f"{self.pilot_rows:,}, ${self.pilot_usd:,.4f}"),
            ("spent in all", f"${self.spent_usd:,.4f}"),
            ("paid-for rows failing the schema", f"{self.schema_failed:,}"),
            ("same work interactively", f"${self.interactive_usd:,.4f}"),
            ("reused (dedup + cache): tokens", f"{r.total:,}"),
            ("reused: saved at the batch rate", f"${self.reused.batch_usd:,.4f}"),
            ("prices as of", self.billed.as_of),
        ]
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
            f"<td style='text-align:right'>{html.escape(v)}</td></tr>"
            for k, v in rows
        )
        return f"<div><b>gembatch cost</b> — {html.escape(self.model)}<table>{body}</table></div>"


def _zero(model: str, table: PriceTable) -> Cost:
    return Cost(
        tokens=TokenCounts(), batch_usd=0.0, interactive_usd=0.0, model=model, as_of=table.as_of
    )


def _plus(a: Cost, b: Cost) -> Cost:
    return Cost(
        tokens=a.tokens + b.tokens,
        batch_usd=a.batch_usd + b.batch_usd,
        interactive_usd=a.interactive_usd + b.interactive_usd,
        model=a.model,
        as_of=a.as_of,
    )


def run_cost(
    frames: Iterable[pl.DataFrame],
    *,
    model: str,
    prefix: str = "gemini_",
    table: PriceTable | None = None,
) -> RunCost:
    """The :class:`RunCost` of a run's output, read frame by frame (one per shard; memory stays
    flat)."""
    table = table or PriceTable.default()
    table.for_model(model)  # an unknown model fails before any reading
    origin = f"{prefix}origin"
    billed, reused, live = _zero(model, table), _zero(model, table), _zero(model, table)
    rows = dict.fromkeys((*_ORIGINS, "skipped"), 0)
    schema_failed = 0
    error_status = f"{prefix}error_status"
    for frame in frames:
        if error_status in frame.columns:
            schema_failed += int(
                (
                    (frame[error_status] == "SCHEMA_MISMATCH")
                    & frame[origin].is_in(["batch", "interactive"])
                ).sum()
            )
        counts = frame.group_by(origin).len()
        for name, n in counts.iter_rows():
            rows[name or "skipped"] = rows.get(name or "skipped", 0) + int(n)
        paid = frame.filter(pl.col(origin).is_in(["batch", "unkeyed"]))
        billed = _plus(billed, cost_of(paid, model, table, prefix))
        live = _plus(
            live, cost_of(frame.filter(pl.col(origin) == "interactive"), model, table, prefix)
        )
        reused = _plus(
            reused,
            cost_of(frame.filter(pl.col(origin).is_in(["dedup", "cache"])), model, table, prefix),
        )
    return RunCost(
        model=model,
        rows=rows,
        billed=billed,
        reused=reused,
        live=live,
        schema_failed=schema_failed,
    )
