"""Service failures -> gembatch errors, declared once: which are transient, how long to wait.

Every SDK / transport exception is translated here into a :class:`gembatch.ServiceError` subclass
(:class:`TransientServiceError` for 429, 5xx, dropped connections and timeouts; Terminal otherwise;
:class:`AuthenticationError` for a refused key). The API key is never part of a message.
"""

from __future__ import annotations

import json

import tenacity
from google.genai import errors as genai_errors

from ..config import RetryPolicy
from ..exceptions import (
    AuthenticationError,
    GembatchError,
    ServiceError,
    TerminalServiceError,
    TransientServiceError,
)

__all__ = ["RETRYABLE_CODES", "Wait", "is_transient", "translate"]

RETRYABLE_CODES = frozenset({408, 429, 500, 502, 503, 504})


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, genai_errors.APIError):
        return exc.code in RETRYABLE_CODES
    if isinstance(exc, TransientServiceError):
        return True
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
            }
        )
        or isinstance(exc, (ConnectionError, TimeoutError))
    )


def _retry_after(exc: BaseException | None) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    value = headers.get("retry-after") or headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class Wait(tenacity.wait.wait_base):
    """Exponential backoff with jitter, but never shorter than the server's Retry-After."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.base = tenacity.wait_exponential_jitter(
            initial=policy.initial_delay, max=policy.max_delay, jitter=policy.jitter
        )

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        delay = float(self.base(retry_state))
        outcome = retry_state.outcome
        after = _retry_after(outcome.exception() if outcome else None)
        return max(delay, after) if after is not None else delay


def translate(exc: BaseException, what: str) -> GembatchError:
    """A gembatch error for an SDK / transport failure; the key is never part of the message."""
    if isinstance(exc, GembatchError):
        return exc
    if isinstance(exc, genai_errors.APIError):
        code, status, message = exc.code or 0, exc.status or "", exc.message or str(exc)
        if code in (401, 403) or "API key" in message or "API_KEY" in json.dumps(exc.details or {}):
            return AuthenticationError(
                f"The service refused the API key while trying to {what}: {code} {status}: "
                f"{message}. "
                "Hint: check GEMINI_API_KEY / the client you passed."
            )
        cls = TransientServiceError if code in RETRYABLE_CODES else TerminalServiceError
        return cls(f"Could not {what}: {code} {status}: {message}", code=code, status=status)
    if _is_transport_error(exc):
        return TransientServiceError(
            f"Could not {what}: the connection failed ({type(exc).__name__}: {exc})."
        )
    return ServiceError(f"Could not {what}: {type(exc).__name__}: {exc}")
