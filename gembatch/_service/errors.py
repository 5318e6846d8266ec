"""Service failures -> gembatch errors, declared once: which are transient, how long to wait.

Every SDK / transport exception is translated here into a :class:`gembatch.ServiceError` subclass
(:class:`TransientServiceError` for 429, 5xx, dropped connections and timeouts; Terminal otherwise;
:class:`AuthenticationError` for a refused key). A missing or expired object answers 404, or 403
PERMISSION_DENIED "... or it may not exist" on the real service: both are marked ``gone``. The delay
the service asks for (a ``Retry-After`` header, or a ``google.rpc.RetryInfo`` detail: the service
sends the latter, without the header) is honoured. The API key is never part of a message.

Error codes: HTTP statuses (400, 429, 503 ...) on calls; per-request errors inside batch results are
``google.rpc.Status`` with **gRPC** codes (3, 8, 13, 14 ...). :func:`status_name` names either.

>>> retry_delay_seconds("1.5s"), retry_delay_seconds("30s")
(1.5, 30.0)
"""

from __future__ import annotations

import json
import re
from typing import Any

import tenacity
from google.genai import errors as genai_errors

from .._results.codes import RETRYABLE_STATUSES, status_name
from ..config import RetryPolicy
from ..exceptions import (
    AuthenticationError,
    GembatchError,
    ServiceError,
    TerminalServiceError,
    TransientServiceError,
)

__all__ = [
    "RETRYABLE_CODES",
    "RETRYABLE_STATUSES",
    "Wait",
    "is_transient",
    "retry_delay_seconds",
    "server_delay",
    "status_name",
    "translate",
]

#: HTTP statuses worth retrying (calls).
RETRYABLE_CODES = frozenset({408, 429, 500, 502, 503, 504})
_GONE = re.compile(r"may not exist|not found|does not exist", re.IGNORECASE)
_KEY_PROBLEM = re.compile(r"API key|API_KEY|unregistered callers", re.IGNORECASE)


def retry_delay_seconds(text: Any) -> float | None:
    """A ``google.protobuf.Duration`` in JSON (``"30s"``, ``"1.5s"``) as seconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return max(0.0, float(text))
    if isinstance(text, str) and re.fullmatch(r"\d+(\.\d+)?s", text.strip()):
        return float(text.strip()[:-1])
    return None


def server_delay(exc: BaseException | None) -> float | None:
    """The delay the service asked for: ``Retry-After``, or a RetryInfo detail's ``retryDelay``."""
    if isinstance(exc, ServiceError):
        return exc.retry_after
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers:
        value = headers.get("retry-after") or headers.get("Retry-After")
        try:
            if value is not None:
                return max(0.0, float(value))
        except ValueError:
            pass
    details = getattr(exc, "details", None)
    error = details.get("error", details) if isinstance(details, dict) else None
    for item in (error or {}).get("details", []) if isinstance(error, dict) else []:
        if isinstance(item, dict) and str(item.get("@type", "")).endswith("RetryInfo"):
            return retry_delay_seconds(item.get("retryDelay"))
    return None


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, genai_errors.APIError):
        return exc.code in RETRYABLE_CODES
    if isinstance(exc, GembatchError):
        return exc.transient
    return _is_transport_error(exc)


def _is_transport_error(exc: BaseException) -> bool:
    names = {cls.__name__ for cls in type(exc).__mro__}
    module = type(exc).__module__.split(".")[0]
    return (
        module in ("httpx", "httpx2", "httpcore", "aiohttp")
        and bool(
            names
            & {
                "TransportError",
                "NetworkError",
                "TimeoutException",
                "ProtocolError",
                "RemoteProtocolError",
                "ReadError",
                "WriteError",
                "ConnectError",
                "CloseError",
                "ClientConnectionError",
                "ServerDisconnectedError",
                "StreamError",  # StreamConsumed: a body cut mid-way, read again by the SDK
                "IncompleteRead",
            }
        )
    ) or isinstance(exc, (ConnectionError, TimeoutError))


class Wait(tenacity.wait.wait_base):
    """Exponential backoff with jitter, but never shorter than the delay the service asked for
    (capped at ``policy.max_server_delay``)."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.base = tenacity.wait_exponential_jitter(
            initial=policy.initial_delay, max=policy.max_delay, jitter=policy.jitter
        )

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        delay = float(self.base(retry_state))
        outcome = retry_state.outcome
        asked = server_delay(outcome.exception() if outcome else None)
        if asked is None:
            return delay
        return max(delay, min(asked, self.policy.max_server_delay))


def translate(exc: BaseException, what: str, *, base_url: str | None = None) -> GembatchError:
    """A gembatch error for an SDK / transport failure; the key is never part of the message."""
    if isinstance(exc, GembatchError):
        return exc
    if isinstance(exc, genai_errors.APIError):
        code, status, message = exc.code or 0, exc.status or "", exc.message or str(exc)
        details = json.dumps(exc.details or {})
        delay = server_delay(exc)
        gone = code == 404 or (code == 403 and bool(_GONE.search(message)))
        if code == 401 or (
            not gone and (code == 403 or _KEY_PROBLEM.search(message) or "API_KEY" in details)
        ):
            return AuthenticationError(
                f"The service refused the API key while trying to {what}: {code} {status}: "
                f"{message}. Hint: check GEMINI_API_KEY / the client you passed."
            )
        cls = TransientServiceError if code in RETRYABLE_CODES else TerminalServiceError
        return cls(
            f"Could not {what}: {code} {status}: {message}",
            code=code,
            status=status,
            retry_after=delay,
            gone=gone,
        )
    if _is_transport_error(exc):
        where = f" at {base_url}" if base_url else ""
        return TransientServiceError(
            f"Could not {what}: the connection to the service{where} failed "
            f"({type(exc).__name__}: {exc})."
        )
    return ServiceError(f"Could not {what}: {type(exc).__name__}: {exc}")
