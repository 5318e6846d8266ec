"""Error codes and their status names: HTTP statuses (calls) and gRPC codes (per-request errors in
batch results), and which per-row errors are worth sending again.

>>> status_name(13, None), status_name(429, None), status_name(None, "UNAVAILABLE")
('INTERNAL', 'RESOURCE_EXHAUSTED', 'UNAVAILABLE')
"""

from __future__ import annotations

__all__ = ["CODE_NAMES", "GRPC_NAMES", "HTTP_NAMES", "RETRYABLE_STATUSES", "status_name"]

#: google.rpc code names: the codes of per-request errors inside batch results.
GRPC_NAMES = {
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    6: "ALREADY_EXISTS",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    10: "ABORTED",
    11: "OUT_OF_RANGE",
    12: "UNIMPLEMENTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    15: "DATA_LOSS",
    16: "UNAUTHENTICATED",
}
#: HTTP statuses of the Gemini API and the status names it sends with them.
HTTP_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
#: Both: codes below 100 are gRPC codes, the others HTTP statuses.
CODE_NAMES = {**GRPC_NAMES, **HTTP_NAMES}
#: Normalised statuses of per-row errors worth sending again: gRPC 4, 8, 13, 14 and their HTTP
#: spellings (408/504, 429, 500, 502/503), and answers gembatch could not read.
RETRYABLE_STATUSES = frozenset(
    {"DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "INTERNAL", "UNAVAILABLE", "MALFORMED_RESULT"}
)


def status_name(code: int | None, status: str | None) -> str | None:
    """The status name of an error: its own ``status`` when it has one, else its code's name."""
    if status:
        return status
    if code is None:
        return None
    return CODE_NAMES.get(code, "UNKNOWN")
