"""The emulator's one seam: ``Handler.handle(Request) -> Response``, the whole API behind it.

The HTTP server (server.py) and the in-process httpx transport (transport.py) only translate sockets
or httpx objects to and from these two small dataclasses. Bodies are streams both ways: an upload is
copied to disk in blocks, a download is served from its file path, never read whole.

Order of work for a call: route (unknown -> 404), authenticate (``x-goog-api-key`` header or ``key=``
query; an upload URL is its own credential, as on the service), count the call, consult the fault
rules, carry the call out. Paths are accepted under ``v1beta`` (the guide), ``v1`` (the default of
google-genai 3.x) and ``v1alpha``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Union
from urllib.parse import unquote

from .errors import ApiError
from .faults import DropConnection, Faults, HttpFault
from .jobs import Jobs, json_dumps, json_loads
from .store import Store, file_record, new_id

__all__ = ["Handler", "Request", "Response", "Stats"]

Body = Union[bytes, Iterator[bytes], Path]  # noqa: UP007 - a runtime alias on 3.10
_BLOCK = 1 << 20
_VERSION = r"/(?:v1beta|v1|v1alpha)"
_ROUTES: list[tuple[frozenset[str], re.Pattern[str], str]] = [
    (frozenset({"POST"}), re.compile(rf"^/upload{_VERSION}/files$"), "files.upload"),
    (frozenset({"GET"}), re.compile(rf"^{_VERSION}/files$"), "files.list"),
    (frozenset({"GET"}), re.compile(rf"^{_VERSION}/files/([^/:]+)$"), "files.get"),
    (frozenset({"DELETE"}), re.compile(rf"^{_VERSION}/files/([^/:]+)$"), "files.delete"),
    (frozenset({"GET"}), re.compile(rf"^(?:/download)?{_VERSION}/files/([^/:]+):download$"),
     "files.download"),
    (frozenset({"POST"}), re.compile(rf"^{_VERSION}/models/([^/:]+):batchGenerateContent$"),
     "batches.create"),
    (frozenset({"POST"}), re.compile(rf"^{_VERSION}/models/([^/:]+):asyncBatchEmbedContent$"),
     "batches.create_embeddings"),
    (frozenset({"GET"}), re.compile(rf"^{_VERSION}/batches$"), "batches.list"),
    (frozenset({"GET"}), re.compile(rf"^{_VERSION}/batches/([^/:]+)$"), "batches.get"),
    # the guide's curl examples call :cancel and :delete with a plain GET
    (frozenset({"POST", "GET"}), re.compile(rf"^{_VERSION}/batches/([^/:]+):cancel$"), "batches.cancel"),
    (frozenset({"DELETE"}), re.compile(rf"^{_VERSION}/batches/([^/:]+)$"), "batches.delete"),
    (frozenset({"POST", "GET", "DELETE"}), re.compile(rf"^{_VERSION}/batches/([^/:]+):delete$"),
     "batches.delete"),
    (frozenset({"POST"}), re.compile(rf"^{_VERSION}/models/([^/:]+):generateContent$"),
     "models.generate_content"),
    (frozenset({"POST"}), re.compile(rf"^{_VERSION}/models/([^/:]+):countTokens$"),
     "models.count_tokens"),
    (frozenset({"POST"}), re.compile(rf"^{_VERSION}/models/([^/:]+):(embedContent|batchEmbedContents)$"),
     "models.embed_content"),
]
_NO_KEY = ("Method doesn't allow unregistered callers (callers without established identity). Please "
           "use API Key or other form of API consumer identity to call this API.")
_BAD_KEY = "API key not valid. Please pass a valid API key."
_FAULT_MESSAGES = {429: "Resource has been exhausted (e.g. check quota).",
                   500: "Internal error encountered.", 503: "The service is currently unavailable.",
                   504: "Deadline expired before operation could complete."}
_FILE_ID = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")


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

    ``drop``: close the connection without answering. ``cut_after``: send the status, the headers and
    only this many bytes of the body, then close (a transfer broken mid-way).
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


def json_response(data: Any, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Response:
    body = json_dumps(data, pretty=True)
    return Response(status, [("Content-Type", "application/json; charset=UTF-8"), *(headers or [])], body)


def error_response(exc: ApiError, headers: list[tuple[str, str]] | None = None) -> Response:
    body = exc.to_body()
    details = getattr(exc, "details", None)
    if details:
        body["error"]["details"] = details
    return json_response(body, exc.code, headers)


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
    """

    def __init__(self, store: Store, jobs: Jobs, faults: Faults, *, api_key: str | None = None,
                 max_file_bytes: int = 2 * 1024**3, max_inline_bytes: int = 20 * 1024**2,
                 stats: Stats | None = None, wall: Callable[[], float] | None = None) -> None:
        self.store, self.jobs, self.faults = store, jobs, faults
        self.api_key, self.max_file_bytes, self.max_inline_bytes = api_key, max_file_bytes, max_inline_bytes
        self.stats = stats or Stats()
        self.wall = wall or jobs.wall
        self._upload_locks: dict[str, threading.Lock] = {}
        self._upload_hashes: dict[str, list[Any]] = {}
        self._locks_lock = threading.Lock()

    def handle(self, request: Request) -> Response:
        """Answer one request; never raises."""
        try:
            return self._handle(request)
        except ApiError as exc:
            status = getattr(exc, "upload_status", None)
            return error_response(exc, [("X-Goog-Upload-Status", status)] if status else None)
        except Exception as exc:  # noqa: BLE001 - the emulator answers 500 like the service would
            return error_response(ApiError(500, f"Internal error encountered ({type(exc).__name__}: {exc})."))

    def _handle(self, request: Request) -> Response:
        path = unquote(request.path)
        endpoint, args = self._route(request.method, path)
        if endpoint == "files.upload":
            endpoint = "files.upload_chunk" if "upload_id" in request.query else "files.upload_start"
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
        response = getattr(self, "_" + endpoint.replace(".", "_"))(request, *args)
        if isinstance(rule, DropConnection):
            if rule.when == "after":
                _close_body(response)
                return Response(drop=True)
            response.cut_after = rule.after_bytes
        return response

    # -- plumbing ------------------------------------------------------------------------------
    def _route(self, method: str, path: str) -> tuple[str, tuple[str, ...]]:
        allowed = False
        for methods, pattern, endpoint in _ROUTES:
            match = pattern.match(path)
            if match:
                if method in methods:
                    return endpoint, match.groups()
                allowed = True
        if allowed:
            raise ApiError(405, f"Method {method} is not allowed for {path}.", "METHOD_NOT_ALLOWED")
        raise ApiError(404, f"The requested URL {path} was not found on this server.")

    def _authenticate(self, request: Request) -> None:
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if not key:
            raise ApiError(403, _NO_KEY, "PERMISSION_DENIED")
        if self.api_key is not None and key != self.api_key:
            exc = ApiError(400, _BAD_KEY, "INVALID_ARGUMENT")
            exc.details = [  # type: ignore[attr-defined]
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                 "domain": "googleapis.com",
                 "metadata": {"service": "generativelanguage.googleapis.com"}},
                {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US",
                 "message": _BAD_KEY}]
            raise exc

    def _http_fault(self, rule: HttpFault, endpoint: str) -> Response:
        headers = []
        if rule.retry_after is not None:
            headers.append(("Retry-After", f"{rule.retry_after:g}"))
        if endpoint == "files.upload_chunk" and rule.upload_status:
            headers.append(("X-Goog-Upload-Status", rule.upload_status))
        message = rule.message or _FAULT_MESSAGES.get(rule.status, "An injected emulator fault.")
        return error_response(ApiError(rule.status, message), headers)

    def _json(self, request: Request) -> dict[str, Any]:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_inline_bytes:
            raise _too_large(self.max_inline_bytes)
        parts, size = [], 0
        while size <= self.max_inline_bytes and (part := request.read(self.max_inline_bytes + 1 - size)):
            parts.append(part)
            size += len(part)
        if size > self.max_inline_bytes:
            raise _too_large(self.max_inline_bytes)
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

    @staticmethod
    def base_url(request: Request) -> str:
        return f"http://{request.headers.get('host', '127.0.0.1')}"

    def render_file(self, record: dict[str, Any], base: str) -> dict[str, Any]:
        """A File record as the service sends it (private fields dropped, URIs added)."""
        out = {k: v for k, v in record.items() if not k.startswith("_")}
        fid = record["name"].removeprefix("files/")
        out["uri"] = f"{base}/v1beta/files/{fid}"
        if record.get("source") == "GENERATED":
            out["downloadUri"] = f"{base}/download/v1beta/files/{fid}:download?alt=media"
        return out

    def _file(self, fid: str) -> dict[str, Any]:
        record = self.store.get_file(f"files/{fid}")
        if record is not None and self.wall() >= record.get("_expires", float("inf")):
            self.store.delete_file(record["name"])
            record = None
        if record is None:
            raise ApiError(404, f"Requested entity was not found: files/{fid}.")
        return record

    # -- File API ------------------------------------------------------------------------------
    def _files_upload_start(self, request: Request) -> Response:
        headers = request.headers
        if headers.get("x-goog-upload-protocol", "").lower() != "resumable":
            raise ApiError(400, "Only resumable uploads are supported: send X-Goog-Upload-Protocol: "
                                "resumable and X-Goog-Upload-Command: start.")
        if "start" not in _commands(headers):
            raise ApiError(400, "The first request of a resumable upload needs X-Goog-Upload-Command: start.")
        meta = self._json(request)
        file_meta = meta.get("file") or {}
        size_text = headers.get("x-goog-upload-header-content-length") or str(
            _pick(file_meta, "sizeBytes", "size_bytes") or "")
        size = int(size_text) if size_text.strip().isdigit() else None
        if size is not None and size > self.max_file_bytes:
            raise _file_too_large(size, self.max_file_bytes)
        name = _pick(file_meta, "name")
        if name:
            fid = name.removeprefix("files/")
            if not _FILE_ID.match(fid):
                raise ApiError(400, f"Invalid file name {name!r}: up to 40 characters, lowercase "
                                    "letters, digits and dashes, not starting or ending with a dash.")
            if self.store.get_file(f"files/{fid}") is not None:
                raise ApiError(409, f"A file named files/{fid} already exists.")
        sid = new_id(24)
        mime = (headers.get("x-goog-upload-header-content-type") or _pick(file_meta, "mimeType", "mime_type")
                or "application/octet-stream")
        self.store.put_upload({"id": sid, "name": f"files/{name.removeprefix('files/')}" if name else None,
                               "displayName": _pick(file_meta, "displayName", "display_name"),
                               "mimeType": mime, "size": size, "received": 0})
        self.stats.add("upload_sessions")
        url = f"{self.base_url(request)}/upload/v1beta/files?upload_id={sid}&upload_protocol=resumable"
        return Response(200, [("X-Goog-Upload-URL", url), ("X-Goog-Upload-Status", "active"),
                              ("X-Goog-Upload-Chunk-Granularity", str(8 * 1024 * 1024)),
                              ("X-GUploader-UploadID", sid), ("Content-Length", "0")])

    def _files_upload_chunk(self, request: Request) -> Response:
        sid = request.query["upload_id"]
        with self._locks_lock:
            lock = self._upload_locks.setdefault(sid, threading.Lock())
        with lock:
            session = self.store.get_upload(sid)
            if session is None:
                raise _upload_error(404, f"No upload session {sid} (finished, cancelled or unknown).")
            commands = _commands(request.headers)
            if "cancel" in commands:
                self._forget_upload(sid)
                return Response(200, [("X-Goog-Upload-Status", "cancelled")])
            if "upload" in commands:
                self._receive(request, session)
            if "finalize" in commands:
                return self._finalize(request, session)
            if "upload" not in commands and "query" not in commands:
                raise _upload_error(400, "X-Goog-Upload-Command must be upload, finalize, query or cancel.")
            return Response(200, [("X-Goog-Upload-Status", "active"),
                                  ("X-Goog-Upload-Size-Received", str(session["received"]))])

    def _receive(self, request: Request, session: dict[str, Any]) -> None:
        """Stream one chunk to the session's part file at its offset."""
        sid, received = session["id"], session["received"]
        offset_text = request.headers.get("x-goog-upload-offset", "")
        if not offset_text.isdigit():
            raise _upload_error(400, "X-Goog-Upload-Offset is required with X-Goog-Upload-Command: upload.")
        offset = int(offset_text)
        if offset > received:
            raise _upload_error(400, f"Invalid X-Goog-Upload-Offset {offset}: only {received} bytes were "
                                     "received so far.")
        limit = session["size"] if session["size"] is not None else self.max_file_bytes
        part = self.store.part_path(sid)
        digest = self._upload_hashes.setdefault(sid, [hashlib.sha256(), 0])  # [hasher, bytes hashed]
        position = offset
        with open(part, "r+b" if part.exists() else "wb") as f:
            f.seek(offset)
            while block := request.read(_BLOCK):
                if position + len(block) > limit:
                    raise _file_too_large(position + len(block), limit, declared=session["size"])
                f.write(block)
                if position == digest[1]:  # in order: hash as it streams by
                    digest[0].update(block)
                    digest[1] += len(block)
                position += len(block)
        if position > received:
            session["received"] = position
            self.store.put_upload(session)

    def _finalize(self, request: Request, session: dict[str, Any]) -> Response:
        sid, size = session["id"], session["received"]
        if session["size"] is not None and size != session["size"]:
            raise _upload_error(400, f"Upload finalized after {size} bytes, but "
                                     f"X-Goog-Upload-Header-Content-Length declared {session['size']}.")
        name = session["name"] or f"files/{new_id()}"
        if self.store.get_file(name) is not None:  # another session took the chosen name first
            raise _upload_error(409, f"A file named {name} already exists.")
        part = self.store.part_path(sid)
        if not part.exists():
            part.touch()
        hasher, hashed = self._upload_hashes.pop(sid, (None, 0))
        if hasher is None or hashed != size:  # out of order, or resumed after a restart
            hasher = hashlib.sha256()
            with open(part, "rb") as f:
                while block := f.read(_BLOCK):
                    hasher.update(block)
        os.replace(part, self.store.blob_path(name))
        record = file_record(name=name, display_name=session.get("displayName"),
                             mime_type=session["mimeType"], size=size,
                             sha256_b64=base64.b64encode(hasher.digest()).decode(), source="UPLOADED",
                             now=self.wall(), seq=self.store.next_seq())
        self.store.put_file(record)
        self._forget_upload(sid)
        self.stats.add("files_created")
        return json_response({"file": self.render_file(record, self.base_url(request))},
                             headers=[("X-Goog-Upload-Status", "final")])

    def _forget_upload(self, sid: str) -> None:
        self.store.delete_upload(sid)
        self._upload_hashes.pop(sid, None)
        with self._locks_lock:
            self._upload_locks.pop(sid, None)

    def _files_get(self, request: Request, fid: str) -> Response:
        return json_response(self.render_file(self._file(fid), self.base_url(request)))

    def _files_list(self, request: Request) -> Response:
        live = [r for r in self.store.files() if self.wall() < r.get("_expires", float("inf"))]
        page, token = _page(live, request.query, default=10, maximum=100)
        body: dict[str, Any] = {}
        if page:
            body["files"] = [self.render_file(r, self.base_url(request)) for r in page]
        if token:
            body["nextPageToken"] = token
        return json_response(body)

    def _files_delete(self, request: Request, fid: str) -> Response:
        self._file(fid)
        self.store.delete_file(f"files/{fid}")
        return json_response({})

    def _files_download(self, request: Request, fid: str) -> Response:
        record = self._file(fid)
        if request.query.get("alt") != "media":
            raise ApiError(400, "Add ?alt=media to download the file's contents.")
        if record.get("source") != "GENERATED":
            raise ApiError(400, "Only generated files can be downloaded, uploaded files can't be "
                                "downloaded.")
        path = self.store.blob_path(record["name"])
        return Response(200, [("Content-Type", record.get("mimeType", "application/octet-stream"))],
                        path, length=path.stat().st_size)

    # -- batches -------------------------------------------------------------------------------
    def _batches_create(self, request: Request, model: str) -> Response:
        return self._create(request, "generate", model)

    def _batches_create_embeddings(self, request: Request, model: str) -> Response:
        return self._create(request, "embed", model)

    def _create(self, request: Request, kind: str, model: str) -> Response:
        from . import model as fake_model

        body = self._json(request)
        batch = body.get("batch")
        if not isinstance(batch, dict):
            raise ApiError(400, "Invalid JSON payload received: \"batch\" is required, e.g. "
                                '{"batch": {"display_name": ..., "input_config": {...}}}.')
        _no_unknown(body, {"batch"}, "")
        _no_unknown(batch, {"displayName", "display_name", "model", "inputConfig", "input_config",
                            "priority", "webhookConfig", "webhook_config", "name"}, "batch")
        config = _pick(batch, "inputConfig", "input_config")
        if not isinstance(config, dict):
            raise ApiError(400, "batch.input_config is required: {\"file_name\": \"files/...\"} or "
                                '{"requests": {"requests": [...]}}.')
        _no_unknown(config, {"fileName", "file_name", "requests"}, "batch.input_config")
        file_name, requests = _pick(config, "fileName", "file_name"), config.get("requests")
        if (file_name is None) == (requests is None):
            raise ApiError(400, "batch.input_config needs exactly one of file_name and requests.")
        display_name = _pick(batch, "displayName", "display_name")
        if display_name is not None and not isinstance(display_name, str):
            raise ApiError(400, f"Invalid value at 'batch.display_name' (TYPE_STRING), {display_name!r}")
        model_name = f"models/{model}"
        if file_name is not None:
            if not isinstance(file_name, str):
                raise ApiError(400, "batch.input_config.file_name must be a string like \"files/abc\".")
            name = file_name if file_name.startswith("files/") else f"files/{file_name}"
            self._file(name.removeprefix("files/"))
            job = self.jobs.create(kind=kind, model=model_name, display_name=display_name, file_name=name)
        else:
            validate = (fake_model.validate_generate_request if kind == "generate"
                        else fake_model.validate_embed_request)
            items = _inline_items(requests, validate)
            job = self.jobs.create(kind=kind, model=model_name, display_name=display_name, inline=items)
        self.stats.add("batches_created")
        if kind == "embed":
            self.stats.add("embed_batches_created")
        return json_response(self.jobs.render(job))

    def _batches_get(self, request: Request, jid: str) -> Response:
        return json_response(self.jobs.render(self.jobs.get(jid)))

    def _batches_list(self, request: Request) -> Response:
        page, token = _page(self.jobs.list(), request.query, default=50, maximum=1000)
        body: dict[str, Any] = {}
        if page:
            body["operations"] = [self.jobs.render(job) for job in page]
        if token:
            body["nextPageToken"] = token
        return json_response(body)

    def _batches_cancel(self, request: Request, jid: str) -> Response:
        self.jobs.cancel(jid)
        return json_response({})

    def _batches_delete(self, request: Request, jid: str) -> Response:
        self.jobs.delete(jid)
        return json_response({})

    # -- single requests -----------------------------------------------------------------------
    def _models_generate_content(self, request: Request, model: str) -> Response:
        from . import model as fake_model

        return json_response(fake_model.generate_content(f"models/{model}", self._json(request)))

    def _models_count_tokens(self, request: Request, model: str) -> Response:
        from . import model as fake_model

        return json_response(fake_model.count_tokens(f"models/{model}", self._json(request)))

    def _models_embed_content(self, request: Request, model: str, method: str) -> Response:
        from . import model as fake_model

        body = self._json(request)
        if method == "embedContent":
            return json_response(fake_model.embed_content(f"models/{model}", body))
        items = body.get("requests")
        if not isinstance(items, list) or not items:
            raise ApiError(400, "batchEmbedContents needs a non-empty \"requests\" list.")
        embeddings = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise ApiError(400, f"requests[{i}] must be an EmbedContentRequest object.")
            item_model = item.get("model") or f"models/{model}"
            embeddings.append(fake_model.embed_content(item_model, item)["embedding"])
        return json_response({"embeddings": embeddings})


# -- helpers ---------------------------------------------------------------------------------------
def _pick(data: Mapping[str, Any], *names: str) -> Any:
    """The first of ``names`` present in ``data`` (lowerCamelCase and snake_case spellings)."""
    for name in names:
        if name in data:
            return data[name]
    return None


def _no_unknown(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    for name in data:
        if name not in allowed:
            at = f" at '{where}'" if where else ""
            raise ApiError(400, f'Invalid JSON payload received. Unknown name "{name}"{at}: '
                                "Cannot find field.")


def _inline_items(requests: Any, validate: Callable[[dict[str, Any]], Any]) -> list[dict[str, Any]]:
    items = requests.get("requests") if isinstance(requests, dict) else None
    if not isinstance(items, list) or not items:
        raise ApiError(400, "batch.input_config.requests.requests must be a non-empty list of "
                            '{"request": {...}, "metadata": {...}}.')
    out = []
    for i, item in enumerate(items):
        where = f"batch.input_config.requests.requests[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("request"), dict):
            raise ApiError(400, f'{where} must be an object with a "request" object.')
        _no_unknown(item, {"request", "metadata"}, where)
        try:
            validate(item["request"])
        except ApiError as exc:
            raise ApiError(exc.code, f"{where}.request: {exc.message}", exc.status) from None
        out.append(item)
    return out


def _page(items: list[dict[str, Any]], query: Mapping[str, str], *, default: int,
          maximum: int) -> tuple[list[dict[str, Any]], str | None]:
    """One page of ``items`` (newest first) after ``pageToken``; the token of the next page."""
    size_text = query.get("pageSize", "")
    size = int(size_text) if size_text.isdigit() and int(size_text) > 0 else default
    size = min(size, maximum)
    token = query.get("pageToken")
    if token:
        try:
            after = int(base64.urlsafe_b64decode(token.encode()).decode())
        except ValueError:
            raise ApiError(400, f"Invalid page token {token!r}.") from None
        items = [r for r in items if r.get("_seq", 0) < after]
    page = items[:size]
    more = len(items) > size
    next_token = base64.urlsafe_b64encode(str(page[-1]["_seq"]).encode()).decode() if more else None
    return page, next_token


def _commands(headers: Mapping[str, str]) -> set[str]:
    return {c.strip().lower() for c in headers.get("x-goog-upload-command", "").split(",") if c.strip()}


def _upload_error(code: int, message: str) -> ApiError:
    exc = ApiError(code, message)
    exc.upload_status = "final"  # type: ignore[attr-defined]
    return exc


def _too_large(limit: int) -> ApiError:
    return ApiError(400, f"Request payload size exceeds the limit: {limit} bytes.")


def _file_too_large(size: int, limit: int, declared: int | None = None) -> ApiError:
    if declared is not None and size > declared:
        return _upload_error(400, f"More bytes were sent ({size}) than "
                                  f"X-Goog-Upload-Header-Content-Length declared ({declared}).")
    return _upload_error(400, f"File size {size} bytes exceeds the maximum allowed size of {limit} "
                              "bytes.")


def _close_body(response: Response) -> None:
    close = getattr(response.body, "close", None)
    if close is not None:
        close()


def _lenient_json(data: bytes) -> Any:
    """Parse JSON written with single quotes, as in the guide's curl examples; 400 if still invalid."""
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
