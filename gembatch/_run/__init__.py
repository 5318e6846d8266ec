"""The orchestrator of a run: the whole call (:mod:`.flow`) and the shard-by-shard driver
(:mod:`.driver`)."""

from __future__ import annotations

from .driver import Run
from .flow import Call, Spend, start

__all__ = ["Call", "Run", "Spend", "start"]
