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

__all__ = ["RequestSpec"]


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
