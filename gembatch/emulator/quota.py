"""Quota accounting: batch limits and per-minute windows, the 429s they answer, their counters.

``Quotas`` enforces one emulator's ``Limits``. Batch limits are computed from the store when
asked (unfinished jobs, their ``inputTokens``; live uploaded files), so a job that ends in any
state, or a file deleted or expired, gives its share back at once. Interactive calls pass through
a sliding 60-second window per model on the emulator's clock. Every refusal is the service's 429
RESOURCE_EXHAUSTED: "You exceeded your current quota ... * Quota exceeded for metric: M, limit: N,
model: X", with QuotaFailure and Help details and (batch and per-minute limits) a RetryInfo.

``stats()`` gives the numbers a test asserts on: current and peak concurrent jobs, enqueued
tokens per model and storage bytes, the 429s per kind, the peak requests and tokens in any
60-second window per model, requests and tokens per clock minute, and interactive calls in flight.
"""

from __future__ import annotations

import collections
import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

from gembatch.emulator.errors import ApiError
from gembatch.emulator.limits import Limits

__all__ = ["QUOTA_KINDS", "Quotas", "quota_error"]

#: The kinds of quota refusal, as counted in ``stats()["quota_429s"]``.
QUOTA_KINDS = (
    "concurrent_jobs",
    "enqueued_tokens",
    "storage_bytes",
    "requests_per_minute",
    "tokens_per_minute",
)
_TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED"})
_WINDOW_S = 60.0
_METRIC = "generativelanguage.googleapis.com/"
_QUOTAS = {  # kind -> (metric, quota id)
    "concurrent_jobs": ("batch_concurrent_requests", "BatchConcurrentRequestsPerProject"),
    "enqueued_tokens": ("batch_enqueued_tokens", "BatchEnqueuedTokensPerModelPerProject"),
    "storage_bytes": ("file_storage_bytes", "FileStorageBytesPerProject"),
    "requests_per_minute": (
        "generate_content_paid_tier_requests",
        "GenerateRequestsPerMinutePerProjectPerModel",
    ),
    "tokens_per_minute": (
        "generate_content_paid_tier_input_token_count",
        "GenerateContentPaidTierInputTokensPerModelPerMinute",
    ),
}
_HELP = {
    "@type": "type.googleapis.com/google.rpc.Help",
    "links": [
        {
            "description": "Learn more about Gemini API quotas",
            "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
        }
    ],
}


def quota_error(
    kind: str, limit: int, model: str | None = None, retry_after: float | None = None
) -> ApiError:
    """The service's 429 for quota ``kind`` (one of ``QUOTA_KINDS``) at ``limit``."""
    metric, quota_id = _QUOTAS[kind]
    message = (
        "You exceeded your current quota, please check your plan and billing details. For "
        "more information on this error, head to: "
        "https://ai.google.dev/gemini-api/docs/rate-limits.\n"
        f"* Quota exceeded for metric: {_METRIC}{metric}, limit: {limit}"
    )
    violation: dict[str, Any] = {"quotaMetric": _METRIC + metric, "quotaId": quota_id}
    if model is not None:
        name = model.removeprefix("models/")
        message += f", model: {name}"
        violation["quotaDimensions"] = {"location": "global", "model": name}
    violation["quotaValue"] = str(limit)
    if retry_after is not None:
        message += f"\nPlease retry in {retry_after:.3f}s."
    details = [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [violation]},
        _HELP,
    ]
    return ApiError(429, message, details=details, retry_after=retry_after)


class Quotas:
    """Enforce ``limits`` over ``store`` (jobs and files) with the emulator's ``clock``/``wall``."""

    def __init__(
        self, limits: Limits, store: Any, *, clock: Callable[[], float], wall: Callable[[], float]
    ) -> None:
        self.limits, self.store, self.clock, self.wall = limits, store, clock, wall
        self.lock = threading.RLock()  # held across check + create, so two creates cannot race
        self._refused: collections.Counter[str] = collections.Counter()
        self._peak_jobs = 0
        self._peak_tokens: dict[str, int] = {}
        self._peak_storage = 0
        self._windows: dict[str, collections.deque[tuple[float, int, int]]] = {}
        self._peak_rpm: dict[str, int] = {}
        self._peak_tpm: dict[str, int] = {}
        self._minutes: dict[str, dict[int, list[int]]] = {}
        self._in_flight = 0
        self._peak_in_flight = 0

    # -- batch limits ----------------------------------------------------------------------------
    def _active_jobs(self) -> list[dict[str, Any]]:
        return [j for j in self.store.jobs() if j["state"] not in _TERMINAL]

    def _enqueued(self, jobs: list[dict[str, Any]]) -> dict[str, int]:
        out: dict[str, int] = collections.defaultdict(int)
        for job in jobs:
            out[job["model"].removeprefix("models/")] += int(job.get("inputTokens", 0))
        return dict(out)

    def storage_used(self) -> int:
        """Bytes of live uploaded files."""
        now = self.wall()
        return sum(
            int(r.get("sizeBytes", 0))
            for r in self.store.files()
            if r.get("source") == "UPLOADED" and now < r.get("_expires", float("inf"))
        )

    @contextlib.contextmanager
    def batch_slot(self, model: str, tokens: int) -> Iterator[None]:
        """Admit a new job of ``model`` with ``tokens`` input tokens, or raise the 429; hold the
        quota lock while the caller creates the job, then record the peaks."""
        limits, name = self.limits, model.removeprefix("models/")
        with self.lock:
            jobs = self._active_jobs()
            cap = limits.max_concurrent_jobs
            if cap is not None and len(jobs) + 1 > cap:
                raise self._refuse("concurrent_jobs", cap, None, limits.batch_retry_delay_s)
            cap = limits.enqueued_limit(name)
            enqueued = self._enqueued(jobs).get(name, 0)
            if cap is not None and enqueued + tokens > cap:
                raise self._refuse("enqueued_tokens", cap, name, limits.batch_retry_delay_s)
            yield
            jobs = self._active_jobs()
            self._peak_jobs = max(self._peak_jobs, len(jobs))
            for key, value in self._enqueued(jobs).items():
                self._peak_tokens[key] = max(self._peak_tokens.get(key, 0), value)

    def check_storage(self, size: int) -> None:
        """Refuse an upload of ``size`` more bytes over the storage budget (429, no RetryInfo)."""
        cap = self.limits.storage_bytes
        if cap is not None and self.storage_used() + size > cap:
            raise self._refuse("storage_bytes", cap, None, None)

    def note_storage(self) -> None:
        with self.lock:
            self._peak_storage = max(self._peak_storage, self.storage_used())

    def _refuse(
        self, kind: str, limit: int, model: str | None, retry_after: float | None
    ) -> ApiError:
        with self.lock:
            self._refused[kind] += 1
        return quota_error(kind, limit, model, retry_after)

    # -- per-minute limits -----------------------------------------------------------------------
    def admit_call(self, model: str, requests: int, tokens: int) -> None:
        """Count an interactive call of ``requests`` requests and ``tokens`` input tokens against
        the per-minute limits of ``model``, or raise the 429 with the wait until the window
        frees."""
        name = model.removeprefix("models/")
        limits = self.limits
        with self.lock:
            now = self.clock()
            window = self._windows.setdefault(name, collections.deque())
            while window and window[0][0] <= now - _WINDOW_S:
                window.popleft()
            used_requests = sum(r for _, r, _ in window)
            used_tokens = sum(t for _, _, t in window)
            cap = limits.requests_limit(name)
            if cap is not None and used_requests + requests > cap:
                wait = _wait(window, now, used_requests + requests - cap, 1)
                raise self._refuse("requests_per_minute", cap, name, wait)
            cap = limits.tokens_limit(name)
            if cap is not None and used_tokens + tokens > cap:
                wait = _wait(window, now, used_tokens + tokens - cap, 2)
                raise self._refuse("tokens_per_minute", cap, name, wait)
            window.append((now, requests, tokens))
            self._peak_rpm[name] = max(self._peak_rpm.get(name, 0), used_requests + requests)
            self._peak_tpm[name] = max(self._peak_tpm.get(name, 0), used_tokens + tokens)
            minute = self._minutes.setdefault(name, {}).setdefault(int(now // 60), [0, 0])
            minute[0] += requests
            minute[1] += tokens

    @contextlib.contextmanager
    def in_flight(self) -> Iterator[None]:
        """Count an interactive call in flight (for the peak concurrency)."""
        with self.lock:
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
        try:
            yield
        finally:
            with self.lock:
                self._in_flight -= 1

    # -- numbers for tests -------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        with self.lock:
            jobs = self._active_jobs()
            return {
                "concurrent_jobs": len(jobs),
                "peak_concurrent_jobs": self._peak_jobs,
                "enqueued_tokens": self._enqueued(jobs),
                "peak_enqueued_tokens": dict(self._peak_tokens),
                "storage_bytes": self.storage_used(),
                "peak_storage_bytes": self._peak_storage,
                "quota_429s": {kind: self._refused[kind] for kind in QUOTA_KINDS},
                "peak_requests_per_minute": dict(self._peak_rpm),
                "peak_tokens_per_minute": dict(self._peak_tpm),
                "per_minute": {
                    model: [
                        {"minute": m, "requests": r, "tokens": t}
                        for m, (r, t) in sorted(minutes.items())
                    ]
                    for model, minutes in self._minutes.items()
                },
                "interactive_in_flight": self._in_flight,
                "peak_interactive_in_flight": self._peak_in_flight,
            }


def _wait(
    window: collections.deque[tuple[float, int, int]], now: float, excess: int, column: int
) -> float:
    """Seconds until entries worth ``excess`` of ``column`` leave the 60-second window."""
    freed: float = 0
    for entry in window:
        freed += entry[column]
        if freed >= excess:
            return max(entry[0] + _WINDOW_S - now, 0.001)
    return _WINDOW_S  # more than the whole limit: the window never frees enough
