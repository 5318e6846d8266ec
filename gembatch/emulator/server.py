"""The emulator as a real HTTP/1.1 server on loopback, and ``Emulator``, which owns its parts.

``_HttpServer`` adapts sockets to ``Handler.handle``: request bodies are handed over as a stream
limited to their length (or de-chunked), response bodies are written in blocks (a file path is
copied 1 MiB at a time), so an upload or download of any size holds little memory. Connection
faults are carried out here: ``Response.drop`` closes the socket without an answer,
``Response.cut_after`` closes it part-way through the body.
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from . import behaviour as _behaviour
from . import limits as _limits
from .behaviour import Behaviour
from .faults import Faults, Rule
from .handler import Handler, Request, Response, Stats
from .jobs import Jobs
from .limits import Limits
from .quota import Quotas
from .store import Store

__all__ = ["DEFAULT_API_KEY", "Emulator"]

logger = logging.getLogger("gembatch.emulator")

#: The key ``Emulator()`` tells clients to use when none was set (any non-empty key is accepted).
DEFAULT_API_KEY = "emulator-key"
_BLOCK = 1 << 20
_DRAIN_LIMIT = 64 << 20
_KEY_IN_URL = re.compile(r"([?&]key=)[^&\s\"]*")


class _BodyReader(io.RawIOBase):
    """The request body: at most ``length`` bytes of the socket, or a chunked body de-chunked."""

    def __init__(self, rfile: Any, length: int | None, chunked: bool) -> None:
        super().__init__()
        self._rfile, self._left, self._chunked = rfile, length or 0, chunked
        self._chunk_left, self.done = 0, not chunked and not length

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:  # type: ignore[override]
        if self.done:
            return b""
        if n is None or n < 0:
            return b"".join(iter(lambda: self.read(_BLOCK), b""))
        if self._chunked:
            return self._read_chunked(n)
        data = self._rfile.read(min(n, self._left))
        self._left -= len(data)
        if not data or self._left == 0:
            self.done = True
        return data

    def _read_chunked(self, n: int) -> bytes:
        if self._chunk_left == 0:
            size_line = self._rfile.readline(65537)
            self._chunk_left = int(size_line.split(b";")[0].strip() or b"0", 16)
            if self._chunk_left == 0:
                while self._rfile.readline(65537).strip():  # trailers
                    pass
                self.done = True
                return b""
        data = self._rfile.read(min(n, self._chunk_left))
        self._chunk_left -= len(data)
        if not data:
            self.done = True
        elif self._chunk_left == 0:
            self._rfile.readline(3)  # the CRLF after a chunk
        return data

    def drain(self, limit: int) -> bool:
        """Discard the rest of the body (up to ``limit`` bytes); True when it was all read."""
        total = 0
        while not self.done and total <= limit:
            total += len(self.read(_BLOCK))
        return self.done


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "gembatch-emulator"
    sys_version = ""
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: _HttpServer

    def _serve(self) -> None:
        url = urlsplit(self.path)
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            name = name.lower()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        length_text = headers.get("content-length", "")
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        body = _BodyReader(self.rfile, int(length_text) if length_text.isdigit() else None, chunked)
        request = Request(
            self.command,
            url.path,
            dict(parse_qsl(url.query, keep_blank_values=True)),
            headers,
            body,
        )
        response = self.server.api.handle(request)
        if response.drop:
            self.close_connection = True
            self._abort()
            return
        if not body.done and not body.drain(_DRAIN_LIMIT):
            self.close_connection = True
        try:
            self._write(response)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _serve

    def _abort(self) -> None:
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _write(self, response: Response) -> None:
        length = response.content_length()
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        if length is not None:
            if not any(n.lower() == "content-length" for n, _ in response.headers):
                self.send_header("Content-Length", str(length))
        else:
            self.send_header("Transfer-Encoding", "chunked")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        budget = response.cut_after
        for block in _blocks(response.body):
            if budget is not None:
                block = block[:budget]
                budget -= len(block)
            if block:
                self.wfile.write(
                    block if length is not None else b"%x\r\n%s\r\n" % (len(block), block)
                )
            if budget == 0:
                self.wfile.flush()
                self.close_connection = True
                self._abort()
                return
        if length is None:
            self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), _KEY_IN_URL.sub(r"\1***", format % args))


def _blocks(body: bytes | Iterable[bytes] | Path) -> Iterable[bytes]:
    if isinstance(body, bytes):
        yield body
    elif isinstance(body, Path):
        with open(body, "rb") as f:
            while block := f.read(_BLOCK):
                yield block
    else:
        yield from body


class _HttpServer(ThreadingHTTPServer):
    """A threading HTTP server that knows its connections (``stop`` closes idle keep-alives)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], api: Handler) -> None:
        self.api = api
        self._track_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._conn_threads: set[threading.Thread] = set()
        super().__init__(address, _RequestHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name="gembatch-emulator-conn",
            daemon=True,
        )
        with self._track_lock:
            self._connections.add(request)
            self._conn_threads.add(thread)
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._track_lock:
                self._connections.discard(request)
                self._conn_threads.discard(threading.current_thread())

    def handle_error(self, request: Any, client_address: Any) -> None:  # called inside ``except``
        logger.debug("connection from %s ended with an error", client_address, exc_info=True)  # noqa: LOG014

    def close_everything(self, timeout: float = 5.0) -> None:
        """Close every open connection and wait for their threads."""
        with self._track_lock:
            connections, threads = list(self._connections), list(self._conn_threads)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


class Emulator:
    """A local Gemini Batch + File API (Gemini Developer API, v1beta) for tests and offline work.

    Parameters (keyword-only):
      api_key: the only key accepted; ``None`` accepts any non-empty key (``emu.api_key`` is then
        ``"emulator-key"``).
      data_dir: where files and jobs persist; ``None`` uses a temporary directory removed at stop.
      port: TCP port on 127.0.0.1 (0: an ephemeral one). The server never binds another interface.
      faults: initial fault rules (see ``gembatch.emulator.faults``); change them with
        ``emu.faults``.
      clock, wall: monotonic seconds for delays, epoch seconds for timestamps and expiry.
      max_file_bytes, max_inline_bytes: the 2 GB file and 20 MB request limits, lowered in tests.
      shuffle_output: write result files out of input order (the service does not promise order).
      workers: processes answering the lines of big jobs (None: CPUs up to 4; 0: in-process only).
      behaviour: how the service behaves where reports differ (``Behaviour``); None uses
        ``behaviour.DEFAULT_BEHAVIOUR``.
      limits: quotas, per-minute limits and latency (``Limits``); None uses
        ``limits.DEFAULT_LIMITS``; ``Limits.off()`` turns them all off.

    Example::

        with Emulator() as emu:
            client = genai.Client(api_key=emu.api_key,
                                  http_options=types.HttpOptions(base_url=emu.base_url))
            os.environ.update(emu.environ())  # or point the SDK at it through the environment
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        port: int = 0,
        faults: Iterable[Rule] = (),
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        max_file_bytes: int = 2 * 1024**3,
        max_inline_bytes: int = 20 * 1024**2,
        shuffle_output: bool = False,
        workers: int | None = None,
        behaviour: Behaviour | None = None,
        limits: Limits | None = None,
    ) -> None:
        if api_key is not None and (not isinstance(api_key, str) or not api_key.strip()):
            raise ValueError("api_key must be None (accept any key) or a non-empty string")
        if workers is not None and (not isinstance(workers, int) or workers < 0):
            raise ValueError(
                f"workers must be None (CPUs, up to 4) or an int >= 0 (got {workers!r})"
            )
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an int in 0..65535 (got {port!r})")
        for name, value in (
            ("max_file_bytes", max_file_bytes),
            ("max_inline_bytes", max_inline_bytes),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int (got {value!r})")
        self._key, self._data_dir, self._port = api_key, data_dir, port
        self._clock, self._wall = clock, wall
        self._max_file_bytes, self._max_inline_bytes = max_file_bytes, max_inline_bytes
        self._shuffle_output, self._workers = shuffle_output, workers
        if behaviour is not None and not isinstance(behaviour, Behaviour):
            raise ValueError(f"behaviour must be None or a Behaviour (got {behaviour!r})")
        if limits is not None and not isinstance(limits, Limits):
            raise ValueError(f"limits must be None or a Limits (got {limits!r})")
        self.behaviour = behaviour if behaviour is not None else _behaviour.DEFAULT_BEHAVIOUR
        self.limits = limits if limits is not None else _limits.DEFAULT_LIMITS
        self.faults = Faults(faults)
        self._server: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._tmp: str | None = None
        self._jobs: Jobs | None = None
        self._handler: Handler | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> Emulator:
        """Open the data directory, start the worker and serve on 127.0.0.1; returns ``self``."""
        if self._server is not None:
            raise RuntimeError("this Emulator is already running")
        if self._data_dir is None:
            self._tmp = tempfile.mkdtemp(prefix="gembatch-emulator-")
        store = Store(self._data_dir if self._data_dir is not None else self._tmp)  # type: ignore[arg-type]
        self._jobs = Jobs(
            store,
            self.faults,
            behaviour=self.behaviour,
            clock=self._clock,
            wall=self._wall,
            shuffle_output=self._shuffle_output,
            workers=self._workers,
        )
        quotas = Quotas(self.limits, store, clock=self._clock, wall=self._wall)
        self._handler = Handler(
            store,
            self._jobs,
            self.faults,
            api_key=self._key,
            max_file_bytes=self._max_file_bytes,
            max_inline_bytes=self._max_inline_bytes,
            stats=Stats(),
            wall=self._wall,
            behaviour=self.behaviour,
            quotas=quotas,
        )
        self._server = _HttpServer(("127.0.0.1", self._port), self._handler)
        self._jobs.start()
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="gembatch-emulator-server",
            daemon=True,
        )
        self._thread.start()
        logger.info("gembatch emulator serving at %s (data: %s)", self.base_url, store.root)
        return self

    def stop(self) -> None:
        """Stop serving, close open connections, stop the worker; remove a temporary data dir."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server.close_everything()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._jobs is not None:
            self._jobs.stop()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> Emulator:  # noqa: PYI034 - typing.Self needs 3.11
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what a client needs -------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``, for ``HttpOptions(base_url=...)``."""
        if self._server is None:
            raise RuntimeError(
                "the emulator is not running: use `with Emulator() as emu:` or .start()"
            )
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    @property
    def api_key(self) -> str:
        """The key clients should send."""
        return self._key if self._key is not None else DEFAULT_API_KEY

    def environ(self) -> dict[str, str]:
        """The variables the SDK reads: ``GOOGLE_GEMINI_BASE_URL`` and ``GEMINI_API_KEY``."""
        return {"GOOGLE_GEMINI_BASE_URL": self.base_url, "GEMINI_API_KEY": self.api_key}

    @property
    def handler(self) -> Handler:
        """The request handler (for ``transport.EmulatorTransport``)."""
        if self._handler is None:
            raise RuntimeError("the emulator is not running")
        return self._handler

    def transport(self) -> Any:
        """An httpx2 transport that serves requests in-process, without the socket::

        http = httpx2.Client(transport=emu.transport())
        client = genai.Client(api_key=emu.api_key, http_options=types.HttpOptions(
            base_url="http://emulator.invalid", httpx_client=http))
        """
        from .transport import EmulatorTransport

        return EmulatorTransport(self.handler)

    @property
    def data_dir(self) -> Path:
        return self.handler.store.root

    # -- what a test needs ---------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Counts since start: ``upload_sessions``, ``files_created`` (finalized uploads),
        ``batches_created`` (of which ``embed_batches_created``), ``lines_processed``, ``calls``
        (per endpoint name), and the quota numbers (``quota.Quotas.stats``):
        ``concurrent_jobs``/``peak_concurrent_jobs``, ``enqueued_tokens``/
        ``peak_enqueued_tokens`` (per model), ``storage_bytes``/``peak_storage_bytes``,
        ``quota_429s`` (per kind), ``peak_requests_per_minute``/``peak_tokens_per_minute`` (per
        model, any 60 s window), ``per_minute`` (per model: requests and tokens per clock
        minute), ``interactive_in_flight``/``peak_interactive_in_flight``."""
        snapshot = self.handler.stats.snapshot()
        snapshot["lines_processed"] = self._jobs.lines_processed if self._jobs else 0
        snapshot.update(self.handler.quotas.stats())
        return snapshot

    def files(self) -> list[dict[str, Any]]:
        """Current files (uploaded and generated), newest first, as File resources on the wire."""
        handler = self.handler
        now = self._wall()
        return [
            handler.render_file(r, self.base_url)
            for r in handler.store.files()
            if now < r.get("_expires", float("inf"))
        ]

    def batches(self) -> list[dict[str, Any]]:
        """Current batch jobs, newest first, as the Operations ``batches.get`` answers."""
        assert self._jobs is not None
        return [self._jobs.render(job) for job in self._jobs.list()]

    def __repr__(self) -> str:
        where = self.base_url if self._server is not None else "stopped"
        return f"Emulator({where})"
