"""The emulator's API error: one exception that becomes the service's JSON error body."""

from __future__ import annotations

from typing import Any

__all__ = ["STATUS_BY_CODE", "ApiError"]

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


class ApiError(Exception):
    """An error the emulated service answers with: ``{"error": {"code", "message", "status"}}``.

    Raised by the fake model for an invalid request (a batch turns it into a per-line error) and by the
    handler for a refused call (it becomes the HTTP response).
    """

    def __init__(self, code: int, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or STATUS_BY_CODE.get(code, "UNKNOWN")

    def to_status(self) -> dict[str, Any]:
        """The google.rpc.Status object (as in a result line's ``error``)."""
        return {"code": self.code, "message": self.message, "status": self.status}

    def to_body(self) -> dict[str, Any]:
        """The HTTP error body."""
        return {"error": self.to_status()}
