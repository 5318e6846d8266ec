"""What each row asks: the pure description (:class:`RequestSpec`) the request lines are built from.

>>> import polars as pl
>>> spec = RequestSpec(kind="generate", model="models/gemini-2.5-flash", static={},
...                    prompt=pl.col("p"),
...                    hashed=False)
>>> spec.lines(pl.DataFrame({"p": ["Hi"]}), offset=0)["line"][0]
'{"key":"0","request":{"contents":[{"role":"user","parts":[{"text":"Hi"}]}]}}'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from . import hashing
from . import lines as ln

__all__ = ["TOKENS_PER_MEDIA_PART", "RequestSpec"]

#: Tokens of one inline_data / file_data part (an image up to 384 px a side: Google's flat rate).
TOKENS_PER_MEDIA_PART = 258


def _system_parts(static: dict[str, Any]) -> list[dict[str, Any]]:
    system = static.get("systemInstruction") or static.get("system_instruction") or {}
    return list(system.get("parts") or [])


@dataclass(frozen=True, kw_only=True)
class RequestSpec:
    """How rows become request lines: the prompt (and system instruction, media) expressions, the
    key
    column (default: the row position), and the wire-form part shared by every request."""

    kind: str  # "generate" | "embed"
    model: str
    static: dict[str, Any]
    prompt: pl.Expr
    key_column: str | None = None
    system_instruction: pl.Expr | None = None
    media: tuple[ln.MediaParts, ...] = ()
    skip_null_prompts: bool = False
    columns_needed: tuple[str, ...] = field(default_factory=tuple)
    hashed: bool = True  # add each request's content address (for dedup and the result cache)
    service: str = hashing.GOOGLE  # who answers (part of the content address)

    def keys(self, offset: int) -> pl.Expr:
        """Each row's key as text: the key column, or the row position (``offset`` + index)."""
        if self.key_column is not None:
            return pl.col(self.key_column).cast(pl.Utf8, strict=True)
        return (pl.int_range(pl.len(), dtype=pl.Int64) + offset).cast(pl.Utf8)

    def tokens(self, frame: pl.DataFrame) -> pl.Series:
        """Each row's estimated input tokens (Int64), by the rule the local estimate and the
        emulator use: ceil(characters / 4) per text (prompt, system instruction), 258 per media
        part. What the scheduler budgets against the service's enqueued-token quota."""

        def text(expr: pl.Expr) -> pl.Expr:
            return (expr.cast(pl.Utf8).str.len_chars().fill_null(0).cast(pl.Int64) + 3) // 4

        shared = sum((len(p.get("text") or "") + 3) // 4 for p in _system_parts(self.static))
        total = text(self.prompt) + shared
        if self.system_instruction is not None:  # a row's own system instruction replaces it
            own = text(self.system_instruction)
            total = (
                pl.when(self.system_instruction.is_not_null())
                .then(total - shared + own)
                .otherwise(total)
            )
        for media in self.media:
            column = pl.col(media.column)
            dtype = frame.schema[media.column]
            count = (
                column.list.len()
                if isinstance(dtype, (pl.List, pl.Array))
                else column.is_not_null().cast(pl.Int64)
            )
            total = total + count.fill_null(0).cast(pl.Int64) * TOKENS_PER_MEDIA_PART
        return frame.select(total.cast(pl.Int64).alias("tokens")).to_series()

    def lines(self, frame: pl.DataFrame, offset: int) -> pl.DataFrame:
        """``key``, ``line`` (and ``hash`` when :attr:`hashed`) of every row of ``frame``."""
        prefix = hashing.hash_prefix(self.kind, self.model, self.service) if self.hashed else None
        if self.kind == "embed":
            return ln.build_embed_lines(
                frame,
                text=self.prompt,
                keys=self.keys(offset),
                static=self.static,
                hash_prefix=prefix,
            )
        return ln.build_generate_lines(
            frame,
            prompt=self.prompt,
            keys=self.keys(offset),
            static=self.static,
            system_instruction=self.system_instruction,
            media=self.media,
            hash_prefix=prefix,
        )
