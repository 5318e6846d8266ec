"""The only module that imports google.genai: upload, create, get, list, cancel, delete, download.

Every call goes through one retry policy (tenacity): 429, 5xx and dropped connections are retried with
exponential backoff and jitter, honouring ``Retry-After``, bounded in attempts and time. Calls that are
not idempotent (upload, create) are never retried blindly: they raise ``TransientServiceError`` and the
runner reconciles (looks for the file or job by its display name) before trying again.

Per-job progress counts (``batchStats``) are not exposed by the SDK's ``BatchJob``; when gembatch builds
the client it reads them from the raw HTTP responses through an httpx response hook, a public option of
the SDK (``HttpOptions.client_args``), so nothing reaches into SDK internals.
"""

from __future__ import annotations

import io
import json
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any, TypeVar, cast

import tenacity
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from ..exceptions import (
    AuthenticationError,
    GembatchError,
    ServiceError,
    TerminalServiceError,
    TransientServiceError,
)

__all__ = ["Backend", "RemoteFile", "RemoteJob", "RetryPolicy", "make_client"]

T = TypeVar("T")
RETRYABLE_CODES = frozenset({408, 429, 500, 502, 503, 504})
JOB_STATE_PREFIX = "JOB_STATE_"


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How transient faults are retried: attempts, exponential backoff with jitter, a time budget."""

    attempts: int = 6
    initial_delay: float = 1.0
    max_delay: float = 60.0
    jitter: float = 1.0
    max_elapsed: float = 600.0


@dataclass(frozen=True)
class RemoteFile:
    """A File API file, as gembatch needs it."""

    name: str
    display_name: str | None
    state: str | None
    size_bytes: int | None


@dataclass(frozen=True)
class RemoteJob:
    """A batch job, as gembatch needs it. ``state`` is a ``JOB_STATE_*`` name."""

    name: str
    display_name: str | None
    state: str
    error: str | None = None
    result_file: str | None = None
    inline_lines: tuple[str, ...] | None = None
    stats: dict[str, int] | None = None

    @property
    def done(self) -> bool:
        return self.state in (
            "JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"
        )


class _StatsCapture:
    """An httpx response hook that keeps the latest ``batchStats`` and ``error`` of every batch the
    client reads (the SDK's BatchJob drops both for the Gemini Developer API)."""

    _PATH = re.compile(r"/v1[a-z0-9]*/(batches/[^/:?]+)")

    def __init__(self) -> None:
        self.stats: dict[str, dict[str, int]] = {}
        self.errors: dict[str, str] = {}
        self._lock = threading.Lock()

    def __call__(self, response: Any) -> None:
        if response.request.method != "GET" or response.status_code != 200:
            return
        if not self._PATH.search(response.request.url.path or ""):
            return
        try:
            response.read()
            body = json.loads(response.content)
        except Exception:  # noqa: BLE001 - a hook must never break the call it observes
            return
        for op in body.get("operations", [body]) if isinstance(body, dict) else []:
            name = op.get("name") if isinstance(op, dict) else None
            if not name:
                continue
            stats = (op.get("metadata") or {}).get("batchStats")
            error = op.get("error")
            with self._lock:
                if isinstance(stats, dict):
                    self.stats[name] = {k: int(v) for k, v in stats.items() if str(v).lstrip("-").isdigit()}
                if isinstance(error, dict) and error.get("message"):
                    self.errors[name] = f"{error.get('code', '')} {error['message']}".strip()


def make_client(
    *, api_key: str | None = None, base_url: str | None = None, capture: _StatsCapture | None = None
) -> genai.Client:
    """A ``genai.Client`` built the way the SDK does (env ``GEMINI_API_KEY``/``GOOGLE_API_KEY``,
    ``GOOGLE_GEMINI_BASE_URL``), with gembatch's stats hook; a missing key is an AuthenticationError."""
    key = api_key or os.environ.get("GEMINI_API_KEY") or os.environ.get("GOOGLE_API_KEY")
    if not key:
        raise AuthenticationError(
            "No Gemini API key found. Hint: set GEMINI_API_KEY (or GOOGLE_API_KEY), or pass "
            "client=genai.Client(api_key=...). For offline work, start gembatch's emulator: "
            "`with gembatch.emulator.Emulator() as emu: os.environ.update(emu.environ())`."
        )
    client_args: dict[str, Any] = {}
    if capture is not None:
        client_args["event_hooks"] = {"response": [capture]}
    options = types.HttpOptions(base_url=base_url, client_args=client_args or None)
    return genai.Client(api_key=key, http_options=options)


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, genai_errors.APIError):
        return exc.code in RETRYABLE_CODES
    if isinstance(exc, TransientServiceError):
        return True
    return _is_transport_error(exc)


def _is_transport_error(exc: BaseException) -> bool:
    names = {cls.__name__ for cls in type(exc).__mro__}
    module = type(exc).__module__.split(".")[0]
    return module in ("httpx", "httpx2", "httpcore", "aiohttp") and bool(
        names & {"TransportError", "NetworkError", "TimeoutException", "ProtocolError",
                 "RemoteProtocolError", "ReadError", "WriteError", "ConnectError", "CloseError",
                 "ClientConnectionError", "ServerDisconnectedError"}
    ) or isinstance(exc, (ConnectionError, TimeoutError))


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


class _Wait(tenacity.wait.wait_base):
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
                f"The service refused the API key while trying to {what}: {code} {status}: {message}. "
                "Hint: check GEMINI_API_KEY / the client you passed."
            )
        cls = TransientServiceError if code in RETRYABLE_CODES else TerminalServiceError
        return cls(f"Could not {what}: {code} {status}: {message}", code=code, status=status)
    if _is_transport_error(exc):
        return TransientServiceError(
            f"Could not {what}: the connection failed ({type(exc).__name__}: {exc})."
        )
    return ServiceError(f"Could not {what}: {type(exc).__name__}: {exc}")


def service_of(base_url: str | None) -> str:
    """Which service a base URL names: ``https://generativelanguage.googleapis.com`` for Google (also
    when None), ``emulator`` for a server on this machine (any loopback port), else scheme and host.

    Cached answers are kept per service, so an emulator's answers are never served for Google's.

    >>> service_of(None), service_of("http://127.0.0.1:8123/"), service_of("https://proxy.example/x")
    ('https://generativelanguage.googleapis.com', 'emulator', 'https://proxy.example')
    """
    parts = urllib.parse.urlsplit(str(base_url or "https://generativelanguage.googleapis.com/"))
    if parts.hostname in ("127.0.0.1", "localhost", "::1"):
        return "emulator"
    return f"{parts.scheme}://{parts.hostname}"


class Backend:
    """gembatch's view of the Gemini Batch + File APIs, through the real google-genai SDK.

    >>> # backend = Backend(genai.Client(api_key=..., http_options={"base_url": emu.base_url}))
    """

    def __init__(
        self,
        client: genai.Client | None = None,
        *,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._capture = _StatsCapture()
        self.client = client if client is not None else make_client(capture=self._capture)
        self.retry = retry or RetryPolicy()
        self._sleep = sleep

    def __repr__(self) -> str:  # never show the key
        return f"Backend(retry={self.retry!r})"

    @property
    def service(self) -> str:
        """Which service answers (see :func:`service_of`)."""
        http_options = getattr(getattr(self.client, "_api_client", None), "_http_options", None)
        return service_of(getattr(http_options, "base_url", None))

    # -- the one retry mechanism -----------------------------------------------------------------
    def _call(self, what: str, fn: Callable[[], T], *, idempotent: bool = True) -> T:
        if not idempotent:
            try:
                return fn()
            except BaseException as exc:
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    raise
                raise translate(exc, what) from exc
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.retry.attempts)
            | tenacity.stop_after_delay(self.retry.max_elapsed),
            wait=_Wait(self.retry),
            retry=tenacity.retry_if_exception(_is_transient),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            return retrying(fn)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            raise translate(exc, what) from exc

    # -- files -----------------------------------------------------------------------------------
    def upload(self, stream: IO[bytes], *, display_name: str, mime_type: str = "application/jsonl") -> RemoteFile:
        """Upload a seekable binary stream. Not retried here: the caller reconciles first."""
        def go() -> RemoteFile:
            stream.seek(0)
            f = self.client.files.upload(
                file=cast(io.IOBase, stream), config={"display_name": display_name, "mime_type": mime_type}
            )
            return _remote_file(f)
        return self._call(f"upload {display_name}", go, idempotent=False)

    def find_files(self, display_name: str) -> list[RemoteFile]:
        """Files whose display name is exactly ``display_name``."""
        def go() -> list[RemoteFile]:
            found = []
            for f in self.client.files.list(config={"page_size": 100}):
                if f.display_name == display_name:
                    found.append(_remote_file(f))
            return found
        return self._call("list files", go)

    def delete_file(self, name: str) -> None:
        def go() -> None:
            try:
                self.client.files.delete(name=name)
            except genai_errors.ClientError as exc:
                if exc.code != 404:
                    raise
        self._call(f"delete {name}", go)

    def download(self, name: str, open_dest: Callable[[], Any]) -> None:
        """Stream a generated file into the writer ``open_dest()`` returns (a context manager).

        Retried whole on a dropped connection: the writer is atomic, so a partial file never lands.
        """
        def go() -> None:
            with open_dest() as dest:
                self.client.files.download(file=name, destination=dest)
        self._call(f"download {name}", go)

    # -- batches ---------------------------------------------------------------------------------
    def create(
        self, *, kind: str, model: str, display_name: str,
        file_name: str | None = None, inline_lines: Sequence[str] | None = None,
    ) -> RemoteJob:
        """Create a batch job from an uploaded file or inline lines. Never retried blindly."""
        if (file_name is None) == (inline_lines is None):
            raise ValueError("give exactly one of file_name and inline_lines")
        def go() -> RemoteJob:
            if kind == "embed":
                src: Any = {"file_name": file_name} if file_name else {
                    "inlined_requests": _inline_embed_batch(inline_lines or [])}
                job = self.client.batches.create_embeddings(
                    model=model, src=src, config=types.CreateEmbeddingsBatchJobConfig(display_name=display_name))
            else:
                src = file_name if file_name else [_inline_request(x) for x in inline_lines or []]
                job = self.client.batches.create(
                    model=model, src=src, config=types.CreateBatchJobConfig(display_name=display_name))
            return self._remote_job(job, inline_keys=None)
        return self._call(f"create batch job {display_name}", go, idempotent=False)

    def get(self, name: str, *, inline_keys: Sequence[str] | None = None) -> RemoteJob:
        return self._call(
            f"get {name}", lambda: self._remote_job(self.client.batches.get(name=name), inline_keys)
        )

    def find_jobs(self, display_name: str) -> list[RemoteJob]:
        """Batch jobs whose display name is exactly ``display_name`` (newest first)."""
        def go() -> list[RemoteJob]:
            return [
                self._remote_job(j, inline_keys=None, with_results=False)
                for j in self.client.batches.list(config={"page_size": 100})
                if j.display_name == display_name
            ]
        return self._call("list batch jobs", go)

    def iter_jobs(self) -> Iterator[RemoteJob]:
        """Every batch job of the account, newest first (without results)."""
        for j in self._call("list batch jobs", lambda: list(self.client.batches.list(config={"page_size": 100}))):
            yield self._remote_job(j, inline_keys=None, with_results=False)

    def cancel(self, name: str) -> None:
        self._call(f"cancel {name}", lambda: self.client.batches.cancel(name=name))

    def delete_job(self, name: str) -> None:
        def go() -> None:
            try:
                self.client.batches.delete(name=name)
            except genai_errors.ClientError as exc:
                if exc.code != 404:
                    raise
        self._call(f"delete {name}", go)

    # -- tokens ----------------------------------------------------------------------------------
    def count_tokens(self, model: str, request: dict[str, Any]) -> int:
        """The input tokens of one wire-form request (generateContent, or embedContent's ``content``)
        by the countTokens endpoint; retried like every idempotent call.

        The SDK's CountTokensConfig refuses ``system_instruction``, ``tools`` and ``generation_config``
        on the Gemini Developer API, so the system instruction's parts are counted as a leading user
        turn (the same number of tokens on the emulator; within a few tokens on the service) and
        tools are not counted.
        """
        contents = _count_contents(request)

        def go() -> int:
            answer = self.client.models.count_tokens(model=model, contents=contents)
            return int(answer.total_tokens or 0)
        return self._call(f"count tokens with {model}", go)

    def _remote_job(
        self, job: types.BatchJob, inline_keys: Sequence[str] | None, *, with_results: bool = True
    ) -> RemoteJob:
        state = job.state.name if job.state is not None else "JOB_STATE_UNSPECIFIED"
        dest = job.dest
        lines: tuple[str, ...] | None = None
        if with_results and dest is not None:
            if dest.inlined_responses is not None:
                lines = tuple(_inline_result_lines(dest.inlined_responses, inline_keys))
            elif dest.inlined_embed_content_responses is not None:
                lines = tuple(_inline_embed_lines(dest.inlined_embed_content_responses, inline_keys))
        error = self._capture.errors.get(job.name or "")
        if job.error is not None:
            error = job.error.message or json.dumps(job.error.model_dump(mode="json", exclude_none=True))
        return RemoteJob(
            name=job.name or "",
            display_name=job.display_name,
            state=state,
            error=error,
            result_file=dest.file_name if dest is not None else None,
            inline_lines=lines,
            stats=self._capture.stats.get(job.name or ""),
        )


# -- wire <-> SDK conversions for inline requests ----------------------------------------------
_CONFIG_FROM_REQUEST = ("systemInstruction", "safetySettings", "tools", "toolConfig",
                        "cachedContent", "labels")


def _inline_request(line: str) -> types.InlinedRequest:
    """A keyed wire-form request line as the SDK's InlinedRequest (the SDK turns it back into the
    same wire request; tests check the round trip gives identical answers)."""
    obj = json.loads(line)
    request = obj["request"]
    config: dict[str, Any] = dict(request.get("generationConfig") or {})
    for name in _CONFIG_FROM_REQUEST:
        if name in request:
            config[name] = request[name]
    return types.InlinedRequest.model_validate(
        {"contents": request["contents"], "metadata": {"key": obj["key"]},
         "config": config or None}
    )


def _count_contents(request: dict[str, Any]) -> list[types.Content]:
    """The contents countTokens is asked about for a wire-form request: the system instruction's
    parts as a first user turn, then ``contents`` (or an embed request's single ``content``)."""
    contents = list(request.get("contents") or ([request["content"]] if "content" in request else []))
    system = request.get("systemInstruction") or request.get("system_instruction") or {}
    if system.get("parts"):
        contents.insert(0, {"role": "user", "parts": system["parts"]})
    if not contents:
        from ..exceptions import InputError

        raise InputError(f"The request has no contents to count tokens of (fields: {sorted(request)}).")
    return [types.Content.model_validate(c) for c in contents]


def _inline_embed_batch(lines: Sequence[str]) -> types.EmbedContentBatch:
    requests = [json.loads(x)["request"] for x in lines]
    first = requests[0] if requests else {}
    config = {k: first[k] for k in ("taskType", "title", "outputDimensionality") if k in first}
    return types.EmbedContentBatch.model_validate(
        {"contents": [r["content"] for r in requests], "config": config or None}
    )


def _dump(model: Any) -> Any:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def _inline_result_lines(responses: Sequence[Any], keys: Sequence[str] | None) -> Iterator[str]:
    for i, item in enumerate(responses):
        key = (item.metadata or {}).get("key") if item.metadata else None
        if key is None and keys is not None and i < len(keys):
            key = keys[i]
        out: dict[str, Any] = {"key": key}
        if item.error is not None:
            out["error"] = _dump(item.error)
        elif item.response is not None:
            out["response"] = _dump(item.response)
        yield json.dumps(out, ensure_ascii=False, separators=(",", ":"))


def _inline_embed_lines(responses: Sequence[Any], keys: Sequence[str] | None) -> Iterator[str]:
    for i, item in enumerate(responses):
        out: dict[str, Any] = {"key": keys[i] if keys is not None and i < len(keys) else str(i)}
        if getattr(item, "error", None) is not None:
            out["error"] = _dump(item.error)
        elif getattr(item, "response", None) is not None:
            out["response"] = _dump(item.response)
        yield json.dumps(out, separators=(",", ":"))


def _remote_file(f: types.File) -> RemoteFile:
    return RemoteFile(
        name=f.name or "",
        display_name=f.display_name,
        state=f.state.name if f.state is not None else None,
        size_bytes=f.size_bytes,
    )
