"""The rolling scheduler's limits: how much of a run may be in flight on the service at once.

The Batch API limits each project: concurrent batch jobs, input tokens *enqueued* per model (the
tokens of every job not yet finished) and bytes of File API storage. A run bigger than that is fed
to the service window by window: a shard is uploaded only when its file fits the storage budget,
and its job created only when it fits the job and token budgets (in queue order: nothing jumps
ahead). A create the service refuses for quota anyway lowers the budget to what is in flight, and
the run waits for a job to finish. The budget, and every lowering, is kept in the run directory.

Tier figures (published for the Gemini Developer API, as read in 2026; the rate-limits page says
they change and shows per-model figures in AI Studio: set your own with ``Options``):

>>> Budget.of(Options(tier=1), "models/gemini-2.5-flash").tokens
3000000
>>> b = Budget.of(Options(), "models/gemini-2.5-flash")  # tier unknown: tier 1's, probing
>>> b.probe("models/gemini-2.5-flash", 4_000_000), b.tokens
(True, 6000000)
>>> b.accepted(5_000_000); b.refused(6_000_000, 1_000_000); b.tokens  # the limit: 5 M .. 6 M
5000000
>>> for _ in range(4):  # four jobs through at that level: try halfway to the refusal
...     b.accepted(5_000_000)
>>> b.probe("models/gemini-2.5-flash", 5_500_000), b.tokens
(True, 5500000)
>>> Budget.of(Options(tier=3, max_enqueued_tokens=5_000), "models/gemini-2.5-pro").tokens
5000
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..config import Options

__all__ = ["TIER_ENQUEUED_TOKENS", "Budget"]

#: Enqueued input tokens per model and usage tier ("*": other models).
TIER_ENQUEUED_TOKENS: dict[int, dict[str, int]] = {
    1: {
        "gemini-2.5-pro": 5_000_000,
        "gemini-2.5-flash": 3_000_000,
        "gemini-2.5-flash-lite": 10_000_000,
        "gemini-2.0-flash": 10_000_000,
        "gemini-3-pro-preview": 50_000_000,
        "gemini-embedding-001": 10_000_000,
        "*": 3_000_000,
    },
    2: {
        "gemini-2.5-pro": 500_000_000,
        "gemini-2.5-flash": 400_000_000,
        "gemini-2.5-flash-lite": 500_000_000,
        "gemini-2.0-flash": 400_000_000,
        "gemini-3-pro-preview": 500_000_000,
        "gemini-embedding-001": 400_000_000,
        "*": 400_000_000,
    },
    3: {
        "gemini-2.5-pro": 1_000_000_000,
        "gemini-2.5-flash": 1_000_000_000,
        "gemini-2.5-flash-lite": 1_000_000_000,
        "gemini-2.0-flash": 1_000_000_000,
        "gemini-3-pro-preview": 1_000_000_000,
        "gemini-embedding-001": 1_000_000_000,
        "*": 1_000_000_000,
    },
}
#: Concurrent batch jobs and File API storage of every tier.
TIER_JOBS = 100
TIER_STORAGE_BYTES = 20 * 1024**3


def tier_tokens(tier: int, model: str) -> int:
    """The enqueued-token limit of ``model`` at ``tier`` (the longest name that prefixes it)."""
    name = model.removeprefix("models/")
    table = TIER_ENQUEUED_TOKENS[tier]
    found = [k for k in table if k != "*" and (name == k or name.startswith(k + "-"))]
    return table[max(found, key=len)] if found else table["*"]


@dataclass
class Budget:
    """What may be in flight at once: ``jobs`` unfinished jobs, ``tokens`` enqueued input tokens,
    ``storage`` bytes of uploaded files; ``lowered``: how often a quota refusal lowered it."""

    jobs: int
    tokens: int
    storage: int
    lowered: int = 0
    probing: bool = False  # tier unknown: the token budget searches for the service's limit
    raised: int = 0  # how often probing raised it
    # the bracket of the service's token limit seen so far: the highest enqueued level (this run's
    # in-flight tokens with the new job) a create was accepted at, the lowest it was refused at
    accepted_at: int = 0
    refused_at: int | None = None
    since_refusal: int = 0  # creates accepted since the last refusal

    @classmethod
    def of(cls, options: Options, model: str) -> Budget:
        """The budget ``options`` give for ``model`` (explicit limits, else the tier's)."""
        return cls(
            jobs=options.max_jobs if options.max_jobs is not None else TIER_JOBS,
            tokens=options.max_enqueued_tokens
            if options.max_enqueued_tokens is not None
            else tier_tokens(options.tier or 1, model),
            storage=options.max_storage_bytes
            if options.max_storage_bytes is not None
            else TIER_STORAGE_BYTES,
            probing=options.tier is None and options.max_enqueued_tokens is None,
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Budget:
        known = ("jobs", "tokens", "storage", "lowered", "raised", "accepted_at", "since_refusal")
        refused = data.get("refused_at")
        return cls(
            **{k: int(v) for k, v in data.items() if k in known},
            probing=bool(data.get("probing", False)),
            refused_at=None if refused is None else int(refused),
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def probe(self, model: str, needed: int) -> bool:
        """The token budget binds while probing: raise it. Before any refusal x2 (at least to
        ``needed``, at most tier 3's figure); after one, halfway to the lowest level refused (a
        binary search for the service's limit, which other work of the project may move), once
        four jobs went through since the last refusal and while the gap is over 5 %. False when it
        cannot grow."""
        ceiling = tier_tokens(3, model)
        if not self.probing or self.tokens >= ceiling:
            return False
        if self.refused_at is None:
            grown = max(self.tokens * 2, needed)
        else:  # after a refusal: only once 4 jobs went through, and not for the last 5 %
            grown = (max(self.tokens, self.accepted_at) + self.refused_at) // 2
            if self.since_refusal < 4 or self.refused_at - self.tokens < self.refused_at // 20:
                return False
        self.tokens = min(ceiling, grown)
        self.raised += 1
        return True

    def accepted(self, level: int) -> None:
        """A create went through with ``level`` tokens of this run enqueued (the new job's too)."""
        self.accepted_at = max(self.accepted_at, level)
        self.since_refusal += 1
        if self.refused_at is not None and self.refused_at <= level:
            self.refused_at = None  # the limit moved up (other work ended): search again

    def refused(self, level: int, smallest: int) -> None:
        """A create was refused for tokens at ``level`` (with the refused job): the limit is below
        it. The budget drops to the highest level seen accepted under it (or, with none, what else
        of this run is in flight; with nothing else, half the ``smallest`` refused job: it is
        over the limit alone)."""
        self.refused_at = level if self.refused_at is None else min(self.refused_at, level)
        self.since_refusal = 0
        if self.accepted_at >= self.refused_at:
            self.accepted_at = 0  # accepted when other work was smaller: no longer a bound
        others = level - smallest  # what else of this run was in flight
        floor = self.accepted_at or (others if others > 0 else max(1, smallest // 2))
        self.tokens = max(1, min(self.tokens, floor, self.refused_at - 1))
        self.lowered += 1

    def lower(self, kind: str, in_flight: int) -> None:
        """A quota refusal of ``kind`` ("tokens", "jobs", "storage") with ``in_flight`` of it on
        the service: the service's real limit is at most that (at least 1)."""
        current = getattr(self, kind)
        setattr(self, kind, max(1, min(current, in_flight)))
        self.lowered += 1
