"""Quota and rate-limit settings: batch limits, per-minute limits, latency (tier-1 defaults).

``Limits`` is frozen and keyword-only; ``None`` turns a limit off and ``Limits.off()`` turns them
all off. Per-model maps are keyed by the bare model name (``gemini-2.5-flash``); ``"*"`` is the
figure for every other model. The defaults are the published tier-1 figures as far as they could
be found (rate-limits page and AI Studio as reported in 2025-2026; the docs say the per-model
figures change and are shown only in AI Studio, so tests should set their own).

Batch limits (enforced on create and upload, released as jobs end and files go):
  max_concurrent_jobs   unfinished batch jobs (100)
  enqueued_tokens       input tokens of the unfinished jobs of a model (emulator token rule)
  storage_bytes         bytes of uploaded files in the File API (20 GiB, FileStorageBytesPerProject)
Per-minute limits of interactive calls (generateContent, embedContent, batchEmbedContents;
countTokens is exempt), a sliding 60-second window of the emulator's clock:
  requests_per_minute, tokens_per_minute   per model (input tokens, emulator token rule)
  latency_s             a real delay in the handler thread of each interactive call
  batch_retry_delay_s   the ``retryDelay`` a batch-quota 429 suggests

Example::

    >>> Limits().enqueued_limit("gemini-2.5-flash"), Limits(storage_bytes=None).storage_bytes
    (3000000, None)
    >>> Limits.off().requests_limit("gemini-2.5-pro") is None
    True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DEFAULT_LIMITS",
    "TIER1_ENQUEUED_TOKENS",
    "TIER1_REQUESTS_PER_MINUTE",
    "TIER1_TOKENS_PER_MINUTE",
    "Limits",
    "parse_model_limit",
]

#: Batch enqueued-token limits of tier 1 (rate-limits page, 2025-2026); "*": other models.
TIER1_ENQUEUED_TOKENS: dict[str, int | None] = {
    "gemini-2.5-pro": 5_000_000,
    "gemini-2.5-flash": 3_000_000,
    "gemini-2.5-flash-lite": 10_000_000,
    "gemini-2.0-flash": 10_000_000,
    "gemini-2.0-flash-lite": 10_000_000,
    "gemini-3-pro-preview": 50_000_000,
    "gemini-embedding-001": 10_000_000,
    "*": 3_000_000,
}
#: Requests per minute of tier 1.
TIER1_REQUESTS_PER_MINUTE: dict[str, int | None] = {
    "gemini-2.5-pro": 150,
    "gemini-2.5-flash": 1_000,
    "gemini-2.5-flash-lite": 4_000,
    "gemini-2.0-flash": 2_000,
    "gemini-2.0-flash-lite": 4_000,
    "gemini-3-pro-preview": 50,
    "gemini-embedding-001": 3_000,
    "*": 1_000,
}
#: Input tokens per minute of tier 1.
TIER1_TOKENS_PER_MINUTE: dict[str, int | None] = {
    "gemini-2.5-pro": 2_000_000,
    "gemini-2.5-flash": 1_000_000,
    "gemini-2.5-flash-lite": 4_000_000,
    "gemini-2.0-flash": 4_000_000,
    "gemini-2.0-flash-lite": 4_000_000,
    "gemini-3-pro-preview": 1_000_000,
    "gemini-embedding-001": 1_000_000,
    "*": 1_000_000,
}


def _per_model(name: str, value: Any) -> dict[str, int | None]:
    if not hasattr(value, "items"):
        raise ValueError(
            f"Limits.{name} must be a mapping of model name -> int or None (got {value!r})"
        )
    out: dict[str, int | None] = {}
    for model, limit in value.items():
        if not isinstance(model, str) or not model:
            raise ValueError(
                f"Limits.{name}: model names must be non-empty strings (got {model!r})"
            )
        _check_limit(f"{name}[{model!r}]", limit)
        out[model.removeprefix("models/")] = limit
    return out


def _check_limit(name: str, value: Any) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ValueError(f"Limits.{name} must be None (no limit) or an int >= 1 (got {value!r})")


@dataclass(frozen=True, kw_only=True)
class Limits:
    """Quotas and rate limits of one emulator (see the module docstring)."""

    max_concurrent_jobs: int | None = 100
    enqueued_tokens: Mapping[str, int | None] = field(
        default_factory=lambda: dict(TIER1_ENQUEUED_TOKENS)
    )
    storage_bytes: int | None = 20 * 1024**3
    requests_per_minute: Mapping[str, int | None] = field(
        default_factory=lambda: dict(TIER1_REQUESTS_PER_MINUTE)
    )
    tokens_per_minute: Mapping[str, int | None] = field(
        default_factory=lambda: dict(TIER1_TOKENS_PER_MINUTE)
    )
    latency_s: float = 0.0
    batch_retry_delay_s: float = 60.0

    def __post_init__(self) -> None:
        _check_limit("max_concurrent_jobs", self.max_concurrent_jobs)
        _check_limit("storage_bytes", self.storage_bytes)
        for name in ("enqueued_tokens", "requests_per_minute", "tokens_per_minute"):
            object.__setattr__(self, name, _per_model(name, getattr(self, name)))
        for name in ("latency_s", "batch_retry_delay_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"Limits.{name} must be a number of seconds >= 0 (got {value!r})")

    @classmethod
    def tier1(cls) -> Limits:
        """The published tier-1 figures (the defaults)."""
        return cls()

    @classmethod
    def off(cls) -> Limits:
        """No quota and no rate limit, no latency."""
        return cls(
            max_concurrent_jobs=None,
            enqueued_tokens={"*": None},
            storage_bytes=None,
            requests_per_minute={"*": None},
            tokens_per_minute={"*": None},
        )

    def with_(self, **changes: Any) -> Limits:
        """A copy with ``changes`` applied; per-model maps are merged into the current ones."""
        for name in ("enqueued_tokens", "requests_per_minute", "tokens_per_minute"):
            if name in changes:
                changes[name] = {**getattr(self, name), **changes[name]}
        return dataclasses.replace(self, **changes)

    def enqueued_limit(self, model: str) -> int | None:
        """The enqueued-token limit of ``model`` (``models/`` prefix optional)."""
        return _lookup(self.enqueued_tokens, model)

    def requests_limit(self, model: str) -> int | None:
        return _lookup(self.requests_per_minute, model)

    def tokens_limit(self, model: str) -> int | None:
        return _lookup(self.tokens_per_minute, model)


def _lookup(table: Mapping[str, int | None], model: str) -> int | None:
    name = model.removeprefix("models/")
    return table[name] if name in table else table.get("*")


def parse_model_limit(spec: str) -> tuple[str, int | None]:
    """Parse ``MODEL=N`` (or ``MODEL=off``) of a command-line flag; ``*`` names every other model.

    >>> parse_model_limit("gemini-2.5-flash=500"), parse_model_limit("*=off")
    (('gemini-2.5-flash', 500), ('*', None))
    """
    model, sep, text = spec.partition("=")
    model, text = model.strip(), text.strip().lower()
    if not sep or not model:
        raise ValueError(
            f"invalid limit {spec!r}: expected MODEL=N or MODEL=off "
            "(e.g. gemini-2.5-flash=3000000, *=off)"
        )
    if text in ("off", "none"):
        return model, None
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"invalid limit {spec!r}: N must be an int >= 1 or 'off'")
    return model, int(text)


#: What ``Emulator(limits=None)`` uses: the tier-1 figures.
DEFAULT_LIMITS: Limits = Limits()
