"""The emulator's HTTP vocabulary: Request, Response, JSON bodies and errors, field helpers, paging.

The HTTP server and the in-process transport translate sockets or httpx objects to and from
``Request`` and ``Response``; the handler and the File API build answers with ``json_response``
and read bodies with ``read_json`` (which also takes the single-quoted "JSON" of the guide's curl
examples).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Union

from .codec import json_dumps, json_loads
from .errors import ApiError

__all__ = [
    "Body",
    "Readable",
    "Request",
    "Response",
    "base_url",
    "json_response",
    "no_unknown",
    "page",
    "pick",
    "read_json",
    "too_large",
]

Body = Union[bytes, Iterator[bytes], Path]  # noqa: UP007 - a runtime alias on 3.10


class Readable(Protocol):
    """A binary stream to read from (a socket's request body, an httpx request stream)."""

    def read(self, n: int = -1, /) -> bytes: ...


@dataclass
class Request:
    """One HTTP request: ``headers`` with lower-case names, ``body`` a readable binary stream."""

    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Readable | None = None

    def read(self, n: int = -1) -> bytes:
        return self.body.read(n) if self.body is not None else b""


@dataclass
class Response:
    """One answer. ``body`` is bytes, an iterator of byte blocks, or the path of a file to stream.

    ``drop``: close the connection without answering. ``cut_after``: send the status, the headers
    and only this many bytes of the body, then close (a transfer broken mid-way).
    """

    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: Body = b""
    length: int | None = None
    drop: bool = False
    cut_after: int | None = None

    def content_length(self) -> int | None:
        if isinstance(self.body, bytes):
            return len(self.body)
        return self.length


def json_response(
    data: Any, status: int = 200, headers: list[tuple[str, str]] | None = None
) -> Response:
    """A JSON answer, indented as the service sends it."""
    body = json_dumps(data, pretty=True)
    return Response(
        status, [("Content-Type", "application/json; charset=UTF-8"), *(headers or [])], body
    )


def base_url(request: Request) -> str:
    """``http://<Host>``: where the client reached the emulator (for URIs in answers)."""
    return f"http://{request.headers.get('host', '127.0.0.1')}"


def read_json(request: Request, limit: int) -> dict[str, Any]:
    """The request's JSON object body (``{}`` when empty); 400 over ``limit`` bytes or not JSON."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    parts, size = [], 0
    while size <= limit and (part := request.read(limit + 1 - size)):
        parts.append(part)
        size += len(part)
    if size > limit:
        raise too_large(limit)
    data = b"".join(parts)
    if not data.strip():
        return {}
    try:
        body = json_loads(data)
    except ValueError:
        body = _lenient_json(data)  # the guide's curl examples send single-quoted "JSON"
    if not isinstance(body, dict):
        raise ApiError(400, "Invalid JSON payload received. Expected an object.")
    return body


def too_large(limit: int) -> ApiError:
    return ApiError(400, f"Request payload size exceeds the limit: {limit} bytes.")


def pick(data: Mapping[str, Any], *names: str) -> Any:
    """The first of ``names`` present in ``data`` (lowerCamelCase and snake_case spellings)."""
    for name in names:
        if name in data:
            return data[name]
    return None


def no_unknown(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    """400 for the first key of ``data`` not in ``allowed``, in the service's wording."""
    for name in data:
        if name not in allowed:
            at = f" at '{where}'" if where else ""
            raise ApiError(
                400, f'Invalid JSON payload received. Unknown name "{name}"{at}: Cannot find field.'
            )


def page(
    items: list[dict[str, Any]],
    query: Mapping[str, str],
    *,
    default: int,
    maximum: int,
    key: str = "_seq",
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of ``items`` (ordered by decreasing ``key``) after ``pageToken``; the token of the
    next page (None on the last)."""
    size_text = query.get("pageSize", "")
    size = int(size_text) if size_text.isdigit() and int(size_text) > 0 else default
    size = min(size, maximum)
    token = query.get("pageToken")
    if token:
        try:
            after = int(base64.urlsafe_b64decode(token.encode()).decode())
        except ValueError:
            raise ApiError(400, f"Invalid page token {token!r}.") from None
        items = [r for r in items if r.get(key, 0) < after]
    chosen = items[:size]
    more = len(items) > size
    next_token = base64.urlsafe_b64encode(str(chosen[-1][key]).encode()).decode() if more else None
    return chosen, next_token


def _lenient_json(data: bytes) -> Any:
    """Parse JSON written with single quotes (the guide's curl examples); 400 if still invalid."""
    text = data.decode("utf-8", errors="replace")
    out, i, quote = [], 0, None
    while i < len(text):
        ch = text[i]
        if quote is None:
            if ch in "'\"":
                quote = ch
                out.append('"')
            else:
                out.append(ch)
        elif ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            out.append(nxt if nxt == "'" else ch + nxt)
            i += 1
        elif ch == quote:
            quote = None
            out.append('"')
        elif ch == '"':
            out.append('\\"')
        else:
            out.append(ch)
        i += 1
    try:
        return json_loads("".join(out))
    except ValueError as exc:
        raise ApiError(400, f"Invalid JSON payload received. {exc}") from None
