"""The emulator's handler as an in-process httpx2 transport: same behaviour, no socket.

Usage::

    import httpx2
    with Emulator() as emu:
        http = httpx2.Client(transport=EmulatorTransport(emu))
        client = genai.Client(api_key=emu.api_key, http_options=types.HttpOptions(
            base_url="http://emulator.invalid", httpx_client=http))

Connection faults surface as the errors a socket would give: ``DropConnection`` raises
``httpx2.RemoteProtocolError`` (no answer, or a body cut short).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import httpx2

from .handler import Handler, Request, Response
from .server import _blocks

if TYPE_CHECKING:
    from .server import Emulator

__all__ = ["EmulatorTransport"]


class _StreamReader(io.RawIOBase):
    """A readable over an iterator of byte blocks (an httpx request stream)."""

    def __init__(self, blocks: Any) -> None:
        super().__init__()
        self._it: Iterator[bytes] = iter(blocks)
        self._buf = b""

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:  # type: ignore[override]
        if n is None or n < 0:
            data = self._buf + b"".join(self._it)
            self._buf = b""
            return data
        while len(self._buf) < n:
            block = next(self._it, None)
            if block is None:
                break
            self._buf += block
        data, self._buf = self._buf[:n], self._buf[n:]
        return data


class _ResponseStream(httpx2.SyncByteStream):
    def __init__(self, response: Response, request: httpx2.Request) -> None:
        self._response, self._request = response, request

    def __iter__(self) -> Iterator[bytes]:
        budget = self._response.cut_after
        for block in _blocks(self._response.body):
            if budget is not None:
                block = block[:budget]
                budget -= len(block)
            if block:
                yield block
            if budget == 0:
                raise httpx2.RemoteProtocolError(
                    "peer closed connection without sending complete message body",
                    request=self._request,
                )


class EmulatorTransport(httpx2.BaseTransport):
    """Serve httpx2 requests with an emulator's ``Handler`` (pass the ``Emulator`` or handler)."""

    def __init__(self, target: Emulator | Handler) -> None:
        self._target = target

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        handler = self._target if isinstance(self._target, Handler) else self._target.handler
        headers: dict[str, str] = {}
        for name, value in request.headers.multi_items():
            name = name.lower()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        query = dict(parse_qsl(request.url.query.decode("ascii"), keep_blank_values=True))
        body = _StreamReader(request.stream)  # type: ignore[arg-type]
        response = handler.handle(Request(request.method, request.url.path, query, headers, body))
        if response.drop:
            raise httpx2.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            )
        out_headers = list(response.headers)
        length = response.content_length()
        if length is not None and not any(n.lower() == "content-length" for n, _ in out_headers):
            out_headers.append(("Content-Length", str(length)))
        return httpx2.Response(
            response.status,
            headers=out_headers,
            stream=_ResponseStream(response, request),
            request=request,
        )
