"""The emulator's one seam: ``Handler.handle(Request) -> Response``, the whole API behind it.

The HTTP server (server.py) and the in-process httpx transport (transport.py) only translate
sockets or httpx objects to and from ``Request`` and ``Response`` (web.py). Bodies are streams
both ways: an upload is copied to disk in blocks, a download is served from its file path.

Order of work for a call: route (unknown -> 404), authenticate (``x-goog-api-key`` header or
``key=`` query; an upload URL is its own credential, as on the service), count the call, consult
the fault rules, then carry the call out: ``files.*`` in ``FileApi``, ``batches.*`` in
``BatchApi``, the model list and the interactive calls (generateContent, countTokens,
embedContent, batchEmbedContents) here. Interactive calls check the model
(``Behaviour.known_models_only``), pass the per-minute limits (``Quotas``) and wait
``Limits.latency_s``. Paths are accepted under ``v1beta`` (the guide), ``v1`` (the default of
google-genai 3.x) and ``v1alpha``.
"""

from __future__ import annotations

import base64
import math
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from . import answers, catalog, embeddings, validate
from .batches_api import BatchApi
from .behaviour import Behaviour
from .codec import json_dumps
from .errors import ApiError
from .faults import DropConnection, Faults, HttpFault
from .files_api import FileApi, render_file
from .jobs import Jobs
from .limits import Limits
from .quota import Quotas
from .store import Store
from .tokens import Prompt, count_text_tokens
from .web import Request, Response, json_response, read_json

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
_LIMITED = frozenset(
    {"models.generate_content", "models.stream_generate_content", "models.embed_content"}
)


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
        return self._interactive(endpoint, version, request, args)

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
        if entry is None:
            raise ApiError(404, catalog.not_found_message(model, "get", version))
        return json_response(catalog.public(entry))

    # -- interactive calls ---------------------------------------------------------------------
    def _interactive(
        self, endpoint: str, version: str, request: Request, args: tuple[str, ...]
    ) -> Response:
        model, method = args[0], (args[1] if len(args) > 1 else _METHODS[endpoint])
        if self.behaviour.known_models_only:
            needed = _IMPLIED.get(method, method)
            if not catalog.supports(model, needed):
                raise ApiError(404, catalog.not_found_message(model, method, version))
        body = read_json(request, self.max_inline_bytes)
        if method in ("generateContent", "streamGenerateContent"):
            _check_system_instruction(model, body)
        if endpoint not in _LIMITED:  # countTokens is exempt from the per-minute limits
            return json_response(answers.count_tokens(f"models/{model}", body))
        requests, tokens = _cost(method, body)
        self.quotas.admit_call(model, requests, tokens)
        with self.quotas.in_flight():
            latency = self.quotas.limits.latency_s
            if latency:
                time.sleep(latency)
            if method == "generateContent":
                return json_response(answers.generate_content(f"models/{model}", body))
            if method == "streamGenerateContent":
                response = answers.generate_content(f"models/{model}", body)
                return Response(200, [("Content-Type", "text/event-stream")], _sse(response))
            return json_response(_embed(model, method, body))


#: Methods the model list does not name: allowed with the one they imply.
_IMPLIED = {"batchEmbedContents": "embedContent", "streamGenerateContent": "generateContent"}
_METHODS = {
    "models.generate_content": "generateContent",
    "models.stream_generate_content": "streamGenerateContent",
    "models.count_tokens": "countTokens",
}


def _check_system_instruction(model: str, body: dict[str, Any]) -> None:
    """Image-generation models refuse a system instruction (google-genai's own tests)."""
    entry = catalog.find(model)
    if entry is not None and entry.get("_noSystemInstruction"):
        if "systemInstruction" in body or "system_instruction" in body:
            raise ApiError(400, f"Developer instruction is not enabled for models/{model}")


def _sse(response: dict[str, Any]) -> bytes:
    """``response`` as the server-sent events of streamGenerateContent: each candidate's answer in
    up to three pieces, one chunk each; the last chunk carries finishReason and the full usage."""
    candidates = response.get("candidates")
    if not candidates:
        return b"data: " + json_dumps(response) + b"\r\n\r\n"
    texts = [_pieces(c) for c in candidates]
    count = max(len(t) for t in texts)
    usage = response.get("usageMetadata", {})
    partial = {k: v for k, v in usage.items() if k.startswith("prompt") or k == "serviceTier"}
    if "promptTokenCount" in usage:
        partial["totalTokenCount"] = usage["promptTokenCount"]
    out = []
    for i in range(count):
        last = i == count - 1
        chunk_candidates = []
        for candidate, pieces in zip(candidates, texts, strict=True):
            chunk: dict[str, Any] = {}
            if i < len(pieces) and pieces[i]:
                chunk["content"] = {"role": "model", "parts": pieces[i]}
            if last:
                chunk.update({k: v for k, v in candidate.items() if k != "content"})
            chunk["index"] = candidate.get("index", 0)
            chunk_candidates.append(chunk)
        chunk_response = {
            "candidates": chunk_candidates,
            "usageMetadata": usage if last else partial,
        }
        chunk_response.update(
            {k: response[k] for k in ("modelVersion", "responseId") if k in response}
        )
        out.append(b"data: " + json_dumps(chunk_response) + b"\r\n\r\n")
    return b"".join(out)


def _pieces(candidate: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """A candidate's parts as up to three chunks of parts (thought parts in the first)."""
    parts = candidate.get("content", {}).get("parts", [])
    thoughts = [p for p in parts if p.get("thought")]
    answer = "".join(p["text"] for p in parts if not p.get("thought") and "text" in p)
    others = [p for p in parts if not p.get("thought") and "text" not in p]
    size = max(1, -(-len(answer) // 3))
    texts = [answer[i : i + size] for i in range(0, len(answer), size)] or [""]
    chunks: list[list[dict[str, Any]]] = [[{"text": t}] if t else [] for t in texts]
    chunks[0] = thoughts + chunks[0]
    chunks[-1] = chunks[-1] + others
    return chunks


def _cost(method: str, body: dict[str, Any]) -> tuple[int, int]:
    """(requests, input tokens) an interactive call counts against the per-minute limits
    (a request too malformed to count costs 0 tokens; it is refused afterwards)."""
    try:
        if method == "generateContent":
            return 1, Prompt(validate.validate_generate_request(body)).tokens
        items = [body] if method == "embedContent" else list(body.get("requests") or [])
        tokens = 0
        for item in items:
            parts = validate.validate_embed_request(item)["content"]["parts"]
            tokens += sum(count_text_tokens(p.get("text", "")) for p in parts)
        return max(len(items), 1), tokens
    except (ApiError, AttributeError, TypeError):
        return 1, 0


def _embed(model: str, method: str, body: dict[str, Any]) -> dict[str, Any]:
    if method == "embedContent":
        return embeddings.embed_content(f"models/{model}", body)
    items = body.get("requests")
    if not isinstance(items, list) or not items:
        raise ApiError(400, 'batchEmbedContents needs a non-empty "requests" list.')
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ApiError(400, f"requests[{i}] must be an EmbedContentRequest object.")
        item_model = item.get("model") or f"models/{model}"
        out.append(embeddings.embed_content(item_model, item)["embedding"])
    return {"embeddings": out}


def _close_body(response: Response) -> None:
    close = getattr(response.body, "close", None)
    if close is not None:
        close()
