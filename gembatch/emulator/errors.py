"""The emulator's API error: one exception that becomes the service's JSON error body.

Also the two codes the service uses for a google.rpc.Status: HTTP (an answer's ``error.code``)
and gRPC (a batch line's or an operation's ``error.code``), and the RetryInfo detail.

Example::

    >>> ApiError(429, "slow down", retry_after=30).to_body()["error"]["details"]
    [{'@type': 'type.googleapis.com/google.rpc.RetryInfo', 'retryDelay': '30s'}]
    >>> grpc_status(ApiError(500, "boom"))
    {'code': 13, 'message': 'boom'}
"""

from __future__ import annotations

from typing import Any

__all__ = ["GRPC_BY_HTTP", "STATUS_BY_CODE", "ApiError", "duration", "grpc_status"]

#: google.rpc status names by HTTP status, as the Gemini API sends them.
STATUS_BY_CODE: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

#: gRPC status codes by HTTP status (google.rpc.Code); anything else is 2 (UNKNOWN).
GRPC_BY_HTTP: dict[int, int] = {
    400: 3,
    401: 16,
    403: 7,
    404: 5,
    409: 6,
    413: 3,
    429: 8,
    500: 13,
    501: 12,
    503: 14,
    504: 4,
}


def duration(seconds: float) -> str:
    """A google.protobuf.Duration in JSON: ``30s``, ``12.5s``."""
    text = f"{max(seconds, 0.0):.3f}".rstrip("0").rstrip(".")
    return f"{text}s"


class ApiError(Exception):
    """An error the emulated service answers with: ``{"error": {"code", "message", "status"}}``.

    Raised by the fake model for an invalid request (a batch turns it into a per-line error) and by
    the handler for a refused call (it becomes the HTTP response). ``details`` are google.rpc
    detail objects for the body; ``retry_after`` (seconds) adds a RetryInfo detail, and a
    ``Retry-After`` header where the emulator's behaviour sends one.
    """

    def __init__(
        self,
        code: int,
        message: str,
        status: str | None = None,
        *,
        details: list[dict[str, Any]] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or STATUS_BY_CODE.get(code, "UNKNOWN")
        self.details = list(details or [])
        self.retry_after = retry_after

    def to_status(self) -> dict[str, Any]:
        """The google.rpc.Status with HTTP codes (as in a lenient result line's ``error``)."""
        return {"code": self.code, "message": self.message, "status": self.status}

    def to_body(self) -> dict[str, Any]:
        """The HTTP error body."""
        body = self.to_status()
        details = list(self.details)
        if self.retry_after is not None:
            details.append(
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": duration(self.retry_after),
                }
            )
        if details:
            body["details"] = details
        return {"error": body}


def grpc_status(exc: ApiError) -> dict[str, Any]:
    """The google.rpc.Status a batch line or operation carries: gRPC code, no ``status``."""
    return {"code": GRPC_BY_HTTP.get(exc.code, 2), "message": exc.message}
