"""Fault injection for the emulator: rule objects, the thread-safe rule set, the ``--fault`` syntax.

A rule is a frozen dataclass; ``Faults`` holds the active rules of one emulator and counts, per
rule, the calls (or jobs) it matched. Call rules (``HttpFault``, ``DropConnection``) are consulted
by the handler for every authenticated call; job rules (``JobOutcome``, ``LineFaults``, ``Delays``)
are captured when a batch is created and stored with the job, so a job keeps the faults it was born
with.

Endpoint names (``ENDPOINTS``; ``"*"`` matches any)::

    files.upload_start   files.upload_chunk   files.get        files.list     files.delete
    files.download       batches.create       batches.create_embeddings       batches.get
    batches.list         batches.cancel       batches.delete   models.generate_content
    models.stream_generate_content            models.count_tokens
    models.embed_content models.list          models.get

Command-line syntax (``parse_fault``)::

    http:<endpoint>:<status>[@<nth>][x<times>|x*][,retry_after=<s>]   http:batches.create:429@2
    drop:<endpoint>:<before|after|mid>[@<nth>][x<times>][,bytes=<n>]  drop:files.get:mid@1,bytes=10
    job:<FAILED|EXPIRED|CANCELLED>[@<nth_job>][,after_lines=<n>]     job:FAILED@1,after_lines=5
    lines:error=<p>,missing=<p>,duplicate=<p>,malformed=<p>[,seed=<n>]  lines:error=0.1,missing=0.05
    delay:pending=<s>,running=<s>,results_after=<s>                    delay:pending=2,running=5

Example::

    >>> rules = Faults([HttpFault(endpoint="batches.create", status=429, nth=2)])
    >>> _ = rules.add(parse_fault("drop:files.download:mid@1,bytes=10"))
    >>> len(rules.rules())
    2
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, Union

__all__ = [
    "ENDPOINTS",
    "Delays",
    "DropConnection",
    "Faults",
    "HttpFault",
    "JobOutcome",
    "LineFaults",
    "Rule",
    "parse_fault",
]

ENDPOINTS: tuple[str, ...] = (
    "files.upload_start",
    "files.upload_chunk",
    "files.get",
    "files.list",
    "files.delete",
    "files.download",
    "batches.create",
    "batches.create_embeddings",
    "batches.get",
    "batches.list",
    "batches.cancel",
    "batches.delete",
    "models.generate_content",
    "models.stream_generate_content",
    "models.count_tokens",
    "models.embed_content",
    "models.list",
    "models.get",
)

_TERMINAL_OUTCOMES = ("FAILED", "EXPIRED", "CANCELLED")


def _check_endpoint(endpoint: str) -> None:
    if endpoint != "*" and endpoint not in ENDPOINTS:
        raise ValueError(
            f"endpoint must be '*' or one of {', '.join(ENDPOINTS)} (got {endpoint!r})"
        )


def _check_window(nth: int, times: int | None) -> None:
    if not isinstance(nth, int) or nth < 1:
        raise ValueError(f"nth must be an int >= 1 (got {nth!r})")
    if times is not None and (not isinstance(times, int) or times < 1):
        raise ValueError(
            f"times must be None (every call from nth on) or an int >= 1 (got {times!r})"
        )


@dataclass(frozen=True)
class HttpFault:
    """Answer the ``nth`` matching call (and the ``times - 1`` after it) with an HTTP error.

    The call is not carried out. ``retry_after`` (seconds) becomes a RetryInfo detail in the body
    (strict service) or a ``Retry-After`` header (``Behaviour.retry_after_header``). On
    ``files.upload_chunk`` the answer carries ``X-Goog-Upload-Status: <upload_status>``; the SDK
    raises at once when it is present and silently re-sends the chunk (after 1, 2, 4 s) when it is
    ``None``.
    """

    endpoint: str = "*"
    status: int = 503
    nth: int = 1
    times: int | None = 1
    retry_after: float | None = None
    message: str | None = None
    upload_status: str | None = "final"

    def __post_init__(self) -> None:
        _check_endpoint(self.endpoint)
        _check_window(self.nth, self.times)
        if not isinstance(self.status, int) or not 400 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP error code 400..599 (got {self.status!r})")


@dataclass(frozen=True)
class DropConnection:
    """Close the connection on the ``nth`` matching call (and the ``times - 1`` after it).

    ``when``: ``"before"`` the call is carried out (nothing happens), ``"after"`` it (the effect
    happens, the client never hears of it), or ``"mid_body"``: after ``after_bytes`` bytes of the
    request body for ``files.upload_chunk`` (nothing stored), of the response body otherwise (e.g. a
    download cut short).
    """

    endpoint: str = "*"
    nth: int = 1
    times: int | None = 1
    when: Literal["before", "after", "mid_body"] = "before"
    after_bytes: int = 0

    def __post_init__(self) -> None:
        _check_endpoint(self.endpoint)
        _check_window(self.nth, self.times)
        if self.when not in ("before", "after", "mid_body"):
            raise ValueError(f"when must be 'before', 'after' or 'mid_body' (got {self.when!r})")
        if not isinstance(self.after_bytes, int) or self.after_bytes < 0:
            raise ValueError(f"after_bytes must be an int >= 0 (got {self.after_bytes!r})")


@dataclass(frozen=True)
class JobOutcome:
    """End batch jobs in ``state`` after ``after_lines`` lines were processed.

    ``nth_job=None`` applies to every job created while the rule is active, an int to the n-th one
    created after the rule was added. FAILED and CANCELLED keep the results of the lines processed
    (when there are any); EXPIRED never has results.
    """

    state: Literal["FAILED", "EXPIRED", "CANCELLED"] = "FAILED"
    nth_job: int | None = None
    after_lines: int = 0
    message: str = "The batch failed: an injected emulator fault."

    def __post_init__(self) -> None:
        if self.state not in _TERMINAL_OUTCOMES:
            raise ValueError(
                f"state must be one of {', '.join(_TERMINAL_OUTCOMES)} (got {self.state!r})"
            )
        if self.nth_job is not None and (not isinstance(self.nth_job, int) or self.nth_job < 1):
            raise ValueError(f"nth_job must be None or an int >= 1 (got {self.nth_job!r})")
        if not isinstance(self.after_lines, int) or self.after_lines < 0:
            raise ValueError(f"after_lines must be an int >= 0 (got {self.after_lines!r})")


@dataclass(frozen=True)
class LineFaults:
    """Per-line faults in batch results, chosen deterministically from a hash of (seed, key).

    ``error_rate``: the line gets an ``error`` (``error_code``) instead of its response;
    ``missing_rate``: no result line at all; ``duplicate_rate``: the result line appears twice;
    ``malformed_rate``: the result line is truncated, invalid JSON (file output only). Missing and
    duplicated apply to inline results too (each item keeps its ``metadata``).
    """

    error_rate: float = 0.0
    missing_rate: float = 0.0
    duplicate_rate: float = 0.0
    malformed_rate: float = 0.0
    seed: int = 0
    error_code: int = 500

    def __post_init__(self) -> None:
        for name in ("error_rate", "missing_rate", "duplicate_rate", "malformed_rate"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a number in [0, 1] (got {value!r})")

    @property
    def active(self) -> bool:
        return any((self.error_rate, self.missing_rate, self.duplicate_rate, self.malformed_rate))

    def pick(self, key: str) -> tuple[bool, bool, bool, bool]:
        """(error, missing, duplicate, malformed) for a line key; four independent draws."""
        digest = hashlib.blake2b(
            key.encode(), digest_size=8, salt=self.seed.to_bytes(8, "little", signed=True)
        ).digest()
        draws = [int.from_bytes(digest[i : i + 2], "little") / 65536.0 for i in range(0, 8, 2)]
        return (
            draws[0] < self.error_rate,
            draws[1] < self.missing_rate,
            draws[2] < self.duplicate_rate,
            draws[3] < self.malformed_rate,
        )


@dataclass(frozen=True)
class Delays:
    """State-transition delays of new jobs, in seconds of the emulator's clock.

    A job stays PENDING ``pending_s`` after creation, then RUNNING at least ``running_s`` after its
    lines are done; ``results_after_s`` ("slow mode") holds any result back until that long after
    creation.
    """

    pending_s: float = 0.0
    running_s: float = 0.0
    results_after_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("pending_s", "running_s", "results_after_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be a number of seconds >= 0 (got {value!r})")


Rule = Union[HttpFault, DropConnection, JobOutcome, LineFaults, Delays]  # noqa: UP007 - a runtime alias on 3.10
_RULE_TYPES = (HttpFault, DropConnection, JobOutcome, LineFaults, Delays)


class Faults:
    """The active fault rules of one emulator: add, clear, match calls and jobs (thread-safe)."""

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self._counts: dict[int, int] = {}
        for rule in rules:
            self.add(rule)

    def add(self, rule: Rule) -> Rule:
        """Activate ``rule`` (its match count starts at zero); returns it."""
        if not isinstance(rule, _RULE_TYPES):
            raise TypeError(
                f"rule must be one of {', '.join(t.__name__ for t in _RULE_TYPES)} "
                f"(got {type(rule).__name__})"
            )
        with self._lock:
            self._rules.append(rule)
            self._counts[len(self._rules) - 1] = 0
        return rule

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self._rules.clear()
            self._counts.clear()

    def rules(self) -> list[Rule]:
        """The active rules, in the order they were added."""
        with self._lock:
            return list(self._rules)

    def counts(self) -> list[tuple[Rule, int]]:
        """Each rule with the number of calls or jobs it has matched so far."""
        with self._lock:
            return [(rule, self._counts[i]) for i, rule in enumerate(self._rules)]

    def on_call(self, endpoint: str) -> HttpFault | DropConnection | None:
        """Count a call to ``endpoint`` against every call rule; the first rule that fires."""
        fired: HttpFault | DropConnection | None = None
        with self._lock:
            for i, rule in enumerate(self._rules):
                if not isinstance(rule, (HttpFault, DropConnection)):
                    continue
                if rule.endpoint not in ("*", endpoint):
                    continue
                self._counts[i] += 1
                n = self._counts[i]
                in_window = n >= rule.nth and (rule.times is None or n < rule.nth + rule.times)
                if in_window and fired is None:
                    fired = rule
        return fired

    def on_job(self) -> dict[str, Any]:
        """Count a new batch job; the job faults it is born with, as JSON-able data."""
        out: dict[str, Any] = {}
        with self._lock:
            for i, rule in enumerate(self._rules):
                if isinstance(rule, JobOutcome):
                    self._counts[i] += 1
                    if "outcome" not in out and rule.nth_job in (None, self._counts[i]):
                        out["outcome"] = dataclasses.asdict(rule)
                elif isinstance(rule, LineFaults):
                    self._counts[i] += 1
                    out["lines"] = dataclasses.asdict(rule)  # the last one added wins
                elif isinstance(rule, Delays):
                    self._counts[i] += 1
                    out["delays"] = dataclasses.asdict(rule)
        return out


def _window(text: str) -> tuple[str, int, int | None]:
    """Split ``value[@nth][xTIMES|x*]``."""
    times: int | None = 1
    if "x" in text:
        text, _, t = text.rpartition("x")
        times = None if t == "*" else int(t)
    value, _, nth = text.partition("@")
    return value, int(nth) if nth else 1, times


def _options(parts: list[str]) -> dict[str, str]:
    opts: dict[str, str] = {}
    for part in parts:
        name, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"expected name=value, got {part!r}")
        opts[name.strip()] = value.strip()
    return opts


def parse_fault(spec: str) -> Rule:
    """Parse one ``--fault`` value (see the module docstring) into a rule."""
    try:
        return _parse(spec)
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"invalid fault {spec!r}: {exc}. Examples: http:batches.create:429@2, "
            "drop:files.download:mid@1,bytes=100, drop:batches.create:after@1, job:FAILED@1, "
            "lines:error=0.1,missing=0.05, delay:pending=2,running=5"
        ) from None


def _parse(spec: str) -> Rule:
    kind, _, rest = spec.strip().partition(":")
    head, *extra = rest.split(",")
    if kind == "http":
        endpoint, _, status_part = head.rpartition(":")
        status, nth, times = _window(status_part)
        opts = _options(extra)
        retry_after = float(opts.pop("retry_after")) if "retry_after" in opts else None
        if opts:
            raise ValueError(f"unknown option(s) {', '.join(opts)}")
        return HttpFault(
            endpoint=endpoint, status=int(status), nth=nth, times=times, retry_after=retry_after
        )
    if kind == "drop":
        endpoint, _, when_part = head.rpartition(":")
        when, nth, times = _window(when_part)
        opts = _options(extra)
        after_bytes = int(opts.pop("bytes", "0"))
        if opts:
            raise ValueError(f"unknown option(s) {', '.join(opts)}")
        when = {"mid": "mid_body"}.get(when, when)
        return DropConnection(
            endpoint=endpoint,
            when=when,  # type: ignore[arg-type]
            nth=nth,
            times=times,
            after_bytes=after_bytes,
        )
    if kind == "job":
        state, _, nth_text = head.partition("@")
        opts = _options(extra)
        after_lines = int(opts.pop("after_lines", "0"))
        if opts:
            raise ValueError(f"unknown option(s) {', '.join(opts)}")
        return JobOutcome(
            state=state.upper(),  # type: ignore[arg-type]
            nth_job=int(nth_text) if nth_text else None,
            after_lines=after_lines,
        )
    if kind == "lines":
        opts = _options([head, *extra])
        names = {
            "error": "error_rate",
            "missing": "missing_rate",
            "duplicate": "duplicate_rate",
            "malformed": "malformed_rate",
            "seed": "seed",
            "error_code": "error_code",
        }
        kwargs: dict[str, Any] = {}
        for name, value in opts.items():
            field = names[name]
            kwargs[field] = int(value) if field in ("seed", "error_code") else float(value)
        return LineFaults(**kwargs)
    if kind == "delay":
        opts = _options([head, *extra])
        names = {"pending": "pending_s", "running": "running_s", "results_after": "results_after_s"}
        return Delays(**{names[name]: float(value) for name, value in opts.items()})
    raise ValueError(f"unknown kind {kind!r} (http, drop, job, lines or delay)")
