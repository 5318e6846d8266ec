"""The emulator's one seam: ``Handler.handle(Request) -> Response``, the whole API behind it.

The HTTP server (server.py) and the in-process httpx transport (transport.py) only translate
sockets or httpx objects to and from ``Request`` and ``Response`` (web.py). Bodies are streams
both ways: an upload is copied to disk in blocks, a download is served from its file path.

Order of work for a call: route (unknown -> 404), authenticate (``x-goog-api-key`` header or
``key=`` query; an upload URL is its own credential, as on the service), count the call, consult
the fault rules, then carry the call out: ``files.*`` in ``FileApi``, ``batches.*`` in
``BatchApi``, the interactive calls (generateContent, streamGenerateContent, countTokens,
embedContent, batchEmbedContents) in ``InteractiveApi``, the model list here. Errors become the
service's JSON error body (with ``Retry-After`` where ``Behaviour.retry_after_header`` sends
one). Paths are accepted under ``v1beta`` (the guide), ``v1`` (the default of google-genai 3.x)
and ``v1alpha``.
"""

from __future__ import annotations

import base64
import math
import re
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from . import catalog
from .batches_api import BatchApi
from .behaviour import Behaviour
from .errors import ApiError
from .faults import DropConnection, Faults, HttpFault
from .files_api import FileApi, render_file
from .interactive import InteractiveApi
from .jobs import Jobs
from .limits import Limits
from .quota import Quotas
from .store import Store
from .web import Request, Response, json_response

__all__ = ["Handler", "Request", "Response", "Stats"]

_VERSION = r"/(v1beta|v1|v1alpha)"
_ROUTES: list[tuple[frozenset[str], re.Pattern[str], str]] = [
    (frozenset({"POST"}), re.compile(rf"^/upload{_VERSION}/files$"), "files.upload"),
    (frozenset({"GET"}), re.compile(rf"^{_VERSION}/files$"), "files.list"),
    (frozenset({"GET"}), re.compile(rf"^{_VERSION}/files/([^/:]+)$"), "files.get"),
    (frozenset({"DELETE"}), re.compile(rf"^{_VERSION}/files/([^/:]+)$"), "files.delete"),
    (
        frozenset({"GET"}),
        re.compile(rf"^(?:/download)?{_VERSION}/files/([^/:]+):download$"),
        "files.download",
    ),
    (
        frozenset({"POST"}),
        re.compile(rf"^{_VERSION}/models/([^/:]+):batchGenerateContent$"),
        "batches.create",
    ),
    (
        frozenset({"POST"}),
        re.compile(rf"^{_VERSION}/models/([^/:]+):asyncBatchEmbedContent$"),
        "batches.create_embeddings",
    ),
    (frozenset({"GET"}), re.compile(rf"^{_VERSION}/batches$"), "batches.list"),
    (frozenset({"GET"}), re.compile(rf"^{_VERSION}/batches/([^/:]+)$"), "batches.get"),
    # the guide's curl examples call :cancel and :delete with a plain GET
    (
        frozenset({"POST", "GET"}),
        re.compile(rf"^{_VERSION}/batches/([^/:]+):cancel$"),
        "batches.cancel",
    ),
    (frozenset({"DELETE"}), re.compile(rf"^{_VERSION}/batches/([^/:]+)$"), "batches.delete"),
    (
        frozenset({"POST", "GET", "DELETE"}),
        re.compile(rf"^{_VERSION}/batches/([^/:]+):delete$"),
        "batches.delete",
    ),
    (frozenset({"GET"}), re.compile(rf"^{_VERSION}/models$"), "models.list"),
    (frozenset({"GET"}), re.compile(rf"^{_VERSION}/models/([^/:]+)$"), "models.get"),
    (
        frozenset({"POST"}),
        re.compile(rf"^{_VERSION}/models/([^/:]+):generateContent$"),
        "models.generate_content",
    ),
    (
        frozenset({"POST"}),
        re.compile(rf"^{_VERSION}/models/([^/:]+):streamGenerateContent$"),
        "models.stream_generate_content",
    ),
    (
        frozenset({"POST"}),
        re.compile(rf"^{_VERSION}/models/([^/:]+):countTokens$"),
        "models.count_tokens",
    ),
    (
        frozenset({"POST"}),
        re.compile(rf"^{_VERSION}/models/([^/:]+):(embedContent|batchEmbedContents)$"),
        "models.embed_content",
    ),
]
_NO_KEY = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)
_BAD_KEY = "API key not valid. Please pass a valid API key."
_FAULT_MESSAGES = {
    429: "Resource has been exhausted (e.g. check quota).",
    500: "Internal error encountered.",
    503: "The service is currently unavailable.",
    504: "Deadline expired before operation could complete.",
}


class Stats:
    """Counts for exactly-once tests: upload sessions, files, batches, calls per endpoint."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._calls: Counter[str] = Counter()

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def call(self, endpoint: str) -> None:
        with self._lock:
            self._calls[endpoint] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            names = ("upload_sessions", "files_created", "batches_created", "embed_batches_created")
            return {**{n: self._counts[n] for n in names}, "calls": dict(self._calls)}


class Handler:
    """The emulated Gemini Batch + File API.

    ``api_key=None`` accepts any non-empty key. ``max_file_bytes`` caps an upload (2 GB on the
    service), ``max_inline_bytes`` a JSON request body such as an inline batch (20 MB).
    ``behaviour`` and ``limits``: see behaviour.py and limits.py.
    """

    def __init__(
        self,
        store: Store,
        jobs: Jobs,
        faults: Faults,
        *,
        api_key: str | None = None,
        max_file_bytes: int = 2 * 1024**3,
        max_inline_bytes: int = 20 * 1024**2,
        stats: Stats | None = None,
        wall: Callable[[], float] | None = None,
        behaviour: Behaviour | None = None,
        limits: Limits | None = None,
        quotas: Quotas | None = None,
    ) -> None:
        self.store, self.jobs, self.faults = store, jobs, faults
        self.api_key, self.max_inline_bytes = api_key, max_inline_bytes
        self.stats = stats or Stats()
        self.wall = wall or jobs.wall
        self.behaviour = behaviour if behaviour is not None else jobs.behaviour
        self.quotas = quotas or Quotas(
            limits if limits is not None else Limits.off(), store, clock=jobs.clock, wall=self.wall
        )
        self.files = FileApi(
            store,
            behaviour=self.behaviour,
            quotas=self.quotas,
            stats=self.stats,
            wall=self.wall,
            max_file_bytes=max_file_bytes,
            max_json_bytes=max_inline_bytes,
        )
        self.interactive = InteractiveApi(
            behaviour=self.behaviour, quotas=self.quotas, max_json_bytes=max_inline_bytes
        )
        self.batches = BatchApi(
            jobs,
            self.files,
            behaviour=self.behaviour,
            quotas=self.quotas,
            stats=self.stats,
            max_json_bytes=max_inline_bytes,
        )

    def handle(self, request: Request) -> Response:
        """Answer one request; never raises."""
        try:
            return self._handle(request)
        except ApiError as exc:
            status = getattr(exc, "upload_status", None)
            return self.error_response(exc, [("X-Goog-Upload-Status", status)] if status else [])
        except Exception as exc:  # noqa: BLE001 - the emulator answers 500 like the service would
            return self.error_response(
                ApiError(500, f"Internal error encountered ({type(exc).__name__}: {exc}).")
            )

    def error_response(
        self, exc: ApiError, headers: list[tuple[str, str]] | None = None
    ) -> Response:
        """The error's JSON answer; a ``Retry-After`` header too where the behaviour sends one."""
        headers = list(headers or [])
        if exc.retry_after is not None and self.behaviour.retry_after_header:
            headers.append(("Retry-After", str(max(1, math.ceil(exc.retry_after)))))
        return json_response(exc.to_body(), exc.code, headers)

    def _handle(self, request: Request) -> Response:
        path = unquote(request.path)
        endpoint, version, args = self._route(request.method, path)
        if endpoint == "files.upload":
            endpoint = (
                "files.upload_chunk" if "upload_id" in request.query else "files.upload_start"
            )
        if endpoint != "files.upload_chunk":
            self._authenticate(request)
        self.stats.call(endpoint)
        rule = self.faults.on_call(endpoint)
        if isinstance(rule, HttpFault):
            return self._http_fault(rule, endpoint)
        if isinstance(rule, DropConnection):
            if rule.when == "before":
                return Response(drop=True)
            if rule.when == "mid_body" and endpoint == "files.upload_chunk":
                request.read(rule.after_bytes)
                return Response(drop=True)
        response = self._dispatch(endpoint, version, request, args)
        if isinstance(rule, DropConnection):
            if rule.when == "after":
                _close_body(response)
                return Response(drop=True)
            response.cut_after = rule.after_bytes
        return response

    def _dispatch(
        self, endpoint: str, version: str, request: Request, args: tuple[str, ...]
    ) -> Response:
        files, batches = self.files, self.batches
        if endpoint == "files.upload_start":
            return files.upload_start(request)
        if endpoint == "files.upload_chunk":
            return files.upload_chunk(request)
        if endpoint.startswith("files."):
            return getattr(files, endpoint.removeprefix("files."))(request, *args)
        if endpoint == "batches.create":
            return batches.create(request, "generate", args[0], version)
        if endpoint == "batches.create_embeddings":
            return batches.create(request, "embed", args[0], version)
        if endpoint.startswith("batches."):
            return getattr(batches, endpoint.removeprefix("batches."))(request, *args)
        if endpoint == "models.list":
            return self._models_list(request)
        if endpoint == "models.get":
            return self._models_get(args[0], version)
        return self.interactive.call(endpoint, version, request, args)

    def render_file(self, record: dict[str, Any], base: str) -> dict[str, Any]:
        """A File record as the service sends it (see ``files_api.render_file``)."""
        return render_file(record, base)

    # -- plumbing ------------------------------------------------------------------------------
    def _route(self, method: str, path: str) -> tuple[str, str, tuple[str, ...]]:
        allowed = False
        for methods, pattern, endpoint in _ROUTES:
            match = pattern.match(path)
            if match:
                if method in methods:
                    version, *args = match.groups()
                    return endpoint, version, tuple(args)
                allowed = True
        if allowed:
            raise ApiError(405, f"Method {method} is not allowed for {path}.", "METHOD_NOT_ALLOWED")
        raise ApiError(404, f"The requested URL {path} was not found on this server.")

    def _authenticate(self, request: Request) -> None:
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if not key:
            raise ApiError(403, _NO_KEY, "PERMISSION_DENIED")
        if self.api_key is not None and key != self.api_key:
            raise ApiError(
                400,
                _BAD_KEY,
                "INVALID_ARGUMENT",
                details=[
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                        "metadata": {"service": "generativelanguage.googleapis.com"},
                    },
                    {
                        "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                        "locale": "en-US",
                        "message": _BAD_KEY,
                    },
                ],
            )

    def _http_fault(self, rule: HttpFault, endpoint: str) -> Response:
        """An injected error. Strict: ``retry_after`` becomes a RetryInfo detail in the body;
        lenient (``retry_after_header``): a ``Retry-After`` header, as before."""
        headers = []
        if endpoint == "files.upload_chunk" and rule.upload_status:
            headers.append(("X-Goog-Upload-Status", rule.upload_status))
        message = rule.message or _FAULT_MESSAGES.get(rule.status, "An injected emulator fault.")
        if self.behaviour.retry_after_header:
            if rule.retry_after is not None:
                headers.append(("Retry-After", f"{rule.retry_after:g}"))
            return json_response(ApiError(rule.status, message).to_body(), rule.status, headers)
        return json_response(
            ApiError(rule.status, message, retry_after=rule.retry_after).to_body(),
            rule.status,
            headers,
        )

    # -- models --------------------------------------------------------------------------------
    def _models_list(self, request: Request) -> Response:
        size_text = request.query.get("pageSize", "")
        size = min(int(size_text), 1000) if size_text.isdigit() and int(size_text) > 0 else 50
        token = request.query.get("pageToken", "")
        try:
            start = int(base64.urlsafe_b64decode(token.encode()).decode()) if token else 0
        except ValueError:
            raise ApiError(400, f"Invalid page token {token!r}.") from None
        models = catalog.MODELS[start : start + size]
        body: dict[str, Any] = {"models": [catalog.public(m) for m in models]}
        if start + size < len(catalog.MODELS):
            body["nextPageToken"] = base64.urlsafe_b64encode(str(start + size).encode()).decode()
        return json_response(body)

    def _models_get(self, model: str, version: str) -> Response:
        entry = catalog.find(model)
        if entry is None and not self.behaviour.known_models_only:
            entry = catalog.any_model(model)  # the lenient service knows every name
        if entry is None:
            raise ApiError(404, catalog.not_found_message(model, "get", version))
        return json_response(catalog.public(entry))


def _close_body(response: Response) -> None:
    close = getattr(response.body, "close", None)
    if close is not None:
        close()
