"""Client-side rate limits of interactive calls: requests and input tokens per minute, per model.

The Gemini API limits each project to so many requests (RPM) and input tokens (TPM) a minute per
model, over a sliding window; a call over the limit answers 429 with a RetryInfo delay. Interactive
mode keeps under both on its own side: :meth:`RateLimiter.acquire` blocks a sender thread until one
more call of ``tokens`` input tokens fits the last minute. Calls are counted when they leave, and a
call leaves the window only after ``window`` seconds plus a second of margin (a call may reach the
service a little after it left). A 429 anyway (another client of the project, a lower real limit)
pauses every sender for the service's delay and lowers the rate by a quarter.

Published tier figures (Gemini Developer API, as read in 2026; the rate-limits page says they change
and shows per-model figures in AI Studio: set your own with ``Options``):

>>> per_minute(1, "models/gemini-2.5-flash")
(1000, 1000000)
>>> lim = RateLimiter(requests=20, tokens=1_000, clock=lambda: 0.0, sleep=lambda s: None)
>>> lim.acquire(10), lim.acquire(10), lim.sent  # two calls of 10 tokens go at once
(0.0, 0.0, 2)
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable

__all__ = ["TIER_PER_MINUTE", "LimiterClosed", "RateLimiter", "per_minute"]

#: (requests, input tokens) per minute per model and usage tier ("*": other models).
TIER_PER_MINUTE: dict[int, dict[str, tuple[int, int]]] = {
    1: {
        "gemini-2.5-pro": (150, 2_000_000),
        "gemini-2.5-flash": (1_000, 1_000_000),
        "gemini-2.5-flash-lite": (4_000, 4_000_000),
        "gemini-2.0-flash": (2_000, 4_000_000),
        "gemini-2.0-flash-lite": (4_000, 4_000_000),
        "gemini-3-pro-preview": (50, 1_000_000),
        "gemini-embedding-001": (3_000, 1_000_000),
        "*": (1_000, 1_000_000),
    },
    2: {
        "gemini-2.5-pro": (1_000, 5_000_000),
        "gemini-2.5-flash": (2_000, 3_000_000),
        "gemini-2.5-flash-lite": (10_000, 10_000_000),
        "gemini-2.0-flash": (10_000, 10_000_000),
        "gemini-2.0-flash-lite": (10_000, 10_000_000),
        "gemini-3-pro-preview": (1_000, 5_000_000),
        "gemini-embedding-001": (5_000, 5_000_000),
        "*": (2_000, 3_000_000),
    },
    3: {
        "gemini-2.5-pro": (2_000, 8_000_000),
        "gemini-2.5-flash": (10_000, 8_000_000),
        "gemini-2.5-flash-lite": (30_000, 30_000_000),
        "gemini-2.0-flash": (30_000, 30_000_000),
        "gemini-2.0-flash-lite": (30_000, 30_000_000),
        "gemini-3-pro-preview": (2_000, 8_000_000),
        "gemini-embedding-001": (10_000, 10_000_000),
        "*": (10_000, 8_000_000),
    },
}


class LimiterClosed(Exception):
    """The limiter was closed (the run stopped) while a sender waited for room."""


def per_minute(tier: int, model: str) -> tuple[int, int]:
    """(requests, input tokens) per minute of ``model`` at ``tier`` (longest matching name)."""
    name = model.removeprefix("models/")
    table = TIER_PER_MINUTE[tier]
    found = [k for k in table if k != "*" and (name == k or name.startswith(k + "-"))]
    return table[max(found, key=len)] if found else table["*"]


class RateLimiter:
    """At most ``requests`` calls and ``tokens`` input tokens in any ``window`` seconds, shared by
    threads, and paced: a tenth of each limit may go at once, the rest flows at the limit's
    average rate (so calls reach the service spread out, never as a burst at a window's edge).
    ``clock``/``sleep`` are injectable (tests)."""

    def __init__(
        self,
        *,
        requests: int,
        tokens: int,
        window: float = 60.0,
        margin: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.requests, self.tokens = max(1, requests), max(1, tokens)
        self.window = window + margin
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._calls: collections.deque[tuple[float, int, int]] = collections.deque()
        self._in_window = [0, 0]  # requests, tokens of the calls in the deque
        self._paused_until = 0.0
        self._closed = False
        # token buckets (requests, tokens): a tenth of a window's worth, refilled continuously
        self._room = [self._burst(0), self._burst(1)]
        self._filled = clock()
        self.sent = 0
        self.waited = 0.0  # seconds senders spent waiting for room (all threads together)
        self.refusals = 0

    def acquire(self, tokens: int, requests: int = 1) -> float:
        """Block until ``requests`` calls of ``tokens`` input tokens fit; record them; the seconds
        waited. A call bigger than a whole minute's tokens goes alone into an empty window."""
        waited = 0.0
        while True:
            with self._lock:
                if self._closed:
                    raise LimiterClosed
                now = self._clock()
                self._expire(now)
                self._refill(now)
                pause = self._paused_until - now
                if pause <= 0:
                    n, t = self._in_window
                    fits = n + requests <= self.requests and t + tokens <= self.tokens
                    if fits or not self._calls:
                        pause = self._pace(requests, tokens)
                        if pause <= 0:
                            self._calls.append((now, requests, tokens))
                            self._in_window[0] += requests
                            self._in_window[1] += tokens
                            self._room[0] -= requests
                            self._room[1] -= tokens
                            self.sent += requests
                            self.waited += waited
                            return waited
                    else:
                        pause = self._calls[0][0] + self.window - now
            pause = min(max(pause, 0.001), 0.5)  # wake up now and then: close() is seen
            self._sleep(pause)
            waited += pause

    def refused(self, delay: float | None) -> None:
        """The service answered 429 anyway: every sender pauses ``delay`` seconds (or until the
        oldest call leaves the window) and the rate drops by a quarter."""
        with self._lock:
            now = self._clock()
            self.refusals += 1
            self.requests = max(1, self.requests * 3 // 4)
            self.tokens = max(1, self.tokens * 3 // 4)
            until = (
                now + delay if delay else (self._calls[0][0] + self.window if self._calls else now)
            )
            self._paused_until = max(self._paused_until, until)

    def _burst(self, which: int) -> float:
        return max(1.0, (self.requests, self.tokens)[which] / 10)

    def _refill(self, now: float) -> None:
        elapsed, self._filled = max(0.0, now - self._filled), now
        for i, limit in enumerate((self.requests, self.tokens)):
            self._room[i] = min(self._burst(i), self._room[i] + elapsed * limit / self.window)

    def _pace(self, requests: int, tokens: int) -> float:
        """Seconds until the buckets hold ``requests`` and ``tokens`` (a call bigger than a bucket
        waits for a full one); 0 when they do."""
        pause = 0.0
        for i, (need, limit) in enumerate(((requests, self.requests), (tokens, self.tokens))):
            want = min(float(need), self._burst(i))
            if self._room[i] < want:
                pause = max(pause, (want - self._room[i]) * self.window / limit)
        return pause

    def close(self) -> None:
        """Senders waiting for room (now or later) raise :class:`LimiterClosed`."""
        with self._lock:
            self._closed = True

    def _expire(self, now: float) -> None:
        while self._calls and self._calls[0][0] + self.window <= now:
            _, n, t = self._calls.popleft()
            self._in_window[0] -= n
            self._in_window[1] -= t
