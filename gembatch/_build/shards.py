"""Pure planning of shards by rows and bytes (writing them is the prepare step's job).

Input rows arrive in slices; :class:`ShardCutter` cuts the stream of rows into contiguous shards so
that no shard holds more than ``max_rows`` request lines or ``max_bytes`` bytes of JSONL. A row that
sends no request (a skipped row) weighs nothing.

>>> p = ShardCutter(max_rows=2, max_bytes=100)
>>> p.cuts([10, 10, 10, 10, 10])   # positions in this slice where a new shard starts
[2, 4]
>>> p.cuts([10])                   # continues the open shard (1 row in it so far)
[]
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
    most
    ``max_rows`` lines (``Options.inline_max_rows``) and ``max_bytes`` with the inline wrapping."""
    return lines <= max_rows and nbytes + INLINE_OVERHEAD_BYTES * lines <= max_bytes


@dataclass
class ShardCutter:
    """Greedy, streaming shard cutter: fills each shard up to its row and byte bounds."""

    max_rows: int
    max_bytes: int
    rows: int = 0  # request lines in the open shard
    bytes: int = 0

    def __post_init__(self) -> None:
        if self.max_rows < 1 or self.max_bytes < 1:
            raise ValueError("shard bounds must be positive")

    def cuts(self, nbytes: Sequence[int] | pl.Series) -> list[int]:
        """Positions in this slice where a new shard begins; updates the open shard.

        ``nbytes[i]`` is the JSONL size of row i's request line (0 when the row sends nothing). A
        position 0 means "close the shard left open by the previous slice first". A row larger than
        ``max_bytes`` gets a shard of its own (callers refuse such rows earlier).
        """
        sizes = pl.Series(nbytes).cast(pl.Int64)
        cum_b = sizes.cum_sum()
        cum_r = (sizes > 0).cast(pl.Int64).cum_sum()
        n, pos, off_b, off_r = len(sizes), 0, 0, 0
        out: list[int] = []
        while pos < n:
            stop = min(
                int(cum_b.search_sorted(off_b + self.max_bytes - self.bytes, side="right")),
                int(cum_r.search_sorted(off_r + self.max_rows - self.rows, side="right")),
            )
            if stop == pos:  # the next row does not fit the open shard
                if self.rows or self.bytes:
                    out.append(pos)
                    self.rows, self.bytes = 0, 0
                    continue
                stop = pos + 1  # an oversized row alone
            stop = min(stop, n)
            self.bytes += int(cum_b[stop - 1]) - off_b
            self.rows += int(cum_r[stop - 1]) - off_r
            off_b, off_r, pos = int(cum_b[stop - 1]), int(cum_r[stop - 1]), stop
            if pos < n:  # full: the next shard starts here
                out.append(pos)
                self.rows, self.bytes = 0, 0
        return out
