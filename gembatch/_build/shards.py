"""Pure planning of shards by rows, bytes and tokens (writing them is the prepare step's job).

Input rows arrive in slices; :class:`ShardCutter` cuts the stream of rows into contiguous shards so
that no shard holds more than ``max_rows`` request lines, ``max_bytes`` bytes of JSONL or
``max_tokens`` estimated input tokens (a job whose input is over the service's enqueued-token quota
can never be created). With ``first_rows`` the first shards are small and grow (x4 each) up to
``max_rows``, so that a big run shows answers early. A row that sends no request weighs nothing.

>>> p = ShardCutter(max_rows=2, max_bytes=100)
>>> p.cuts([10, 10, 10, 10, 10])   # positions in this slice where a new shard starts
[2, 4]
>>> p.cuts([10])                   # continues the open shard (1 row in it so far)
[]
>>> ShardCutter(max_rows=100, max_bytes=10**9, first_rows=1).cuts([10] * 12)  # 1, 4, then 16
[1, 5]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

__all__ = ["INLINE_OVERHEAD_BYTES", "ShardCutter", "fits_inline"]

#: Extra bytes a line costs inline (``{"request": ..., "metadata": {"key": ...}}`` wrapping).
INLINE_OVERHEAD_BYTES = 48


def fits_inline(lines: int, nbytes: int, *, max_rows: int, max_bytes: int) -> bool:
    """Whether ``lines`` request lines of ``nbytes`` JSONL bytes in all go inline in one job: at
    most ``max_rows`` lines (``Options.inline_max_rows``) and ``max_bytes`` with the inline
    wrapping."""
    return lines <= max_rows and nbytes + INLINE_OVERHEAD_BYTES * lines <= max_bytes


@dataclass
class ShardCutter:
    """Greedy, streaming shard cutter: fills each shard up to its row, byte and token bounds."""

    max_rows: int
    max_bytes: int
    max_tokens: int | None = None
    first_rows: int | None = None  # the first shard's row bound, x4 per shard up to max_rows
    rows: int = 0  # request lines in the open shard
    bytes: int = 0
    tokens: int = 0
    shards: int = 0  # shards begun before the open one

    def __post_init__(self) -> None:
        if self.max_rows < 1 or self.max_bytes < 1 or (self.max_tokens or 1) < 1:
            raise ValueError("shard bounds must be positive")

    @property
    def row_bound(self) -> int:
        """The open shard's row bound."""
        if self.first_rows is None:
            return self.max_rows
        return min(self.max_rows, self.first_rows * 4 ** min(self.shards, 30))

    def _close(self) -> None:
        self.rows = self.bytes = self.tokens = 0
        self.shards += 1

    def cuts(
        self, nbytes: Sequence[int] | pl.Series, ntokens: Sequence[int] | pl.Series | None = None
    ) -> list[int]:
        """Positions in this slice where a new shard begins; updates the open shard.

        ``nbytes[i]`` is the JSONL size of row i's request line (0 when the row sends nothing),
        ``ntokens[i]`` its estimated input tokens. A position 0 means "close the shard left open by
        the previous slice first". A row over a bound on its own gets a shard of its own (callers
        refuse rows over the size limit earlier).
        """
        sizes = pl.Series(nbytes).cast(pl.Int64)
        tokens = pl.Series(ntokens if ntokens is not None else [0] * len(sizes)).cast(pl.Int64)
        cum_b, cum_t = sizes.cum_sum(), tokens.cum_sum()
        cum_r = (sizes > 0).cast(pl.Int64).cum_sum()
        n, pos, off_b, off_r, off_t = len(sizes), 0, 0, 0, 0
        out: list[int] = []
        while pos < n:
            stops = [
                int(cum_b.search_sorted(off_b + self.max_bytes - self.bytes, side="right")),
                int(cum_r.search_sorted(off_r + self.row_bound - self.rows, side="right")),
            ]
            if self.max_tokens is not None:
                stops.append(
                    int(cum_t.search_sorted(off_t + self.max_tokens - self.tokens, side="right"))
                )
            stop = min(stops)
            if stop == pos:  # the next row does not fit the open shard
                if self.rows or self.bytes:
                    out.append(pos)
                    self._close()
                    continue
                stop = pos + 1  # an oversized row alone
            stop = min(stop, n)
            self.bytes += int(cum_b[stop - 1]) - off_b
            self.rows += int(cum_r[stop - 1]) - off_r
            self.tokens += int(cum_t[stop - 1]) - off_t
            off_b, off_r, off_t = int(cum_b[stop - 1]), int(cum_r[stop - 1]), int(cum_t[stop - 1])
            pos = stop
            if pos < n:  # full: the next shard starts here
                out.append(pos)
                self._close()
        return out
