"""The backend seam: every call gembatch makes to the Gemini Batch + File APIs, through the SDK.

Only the ``_service`` package imports google.genai. Every call goes through one retry policy
(tenacity): 429, 5xx and dropped connections are retried with exponential backoff and jitter,
honouring the delay the service asks for, bounded in attempts and time. Calls that are not
idempotent (upload, create) are never retried blindly: they raise ``TransientServiceError`` and the
run reconciles (looks for the file or job by its display name) before trying again.

Per-job progress counts (``batchStats``) are not exposed by the SDK's ``BatchJob``; when gembatch
builds the client it reads them from the raw HTTP responses through an httpx response hook, a public
option of the SDK (``HttpOptions.client_args``). Nothing reaches into SDK internals.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import threading
import time
import urllib.parse
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any, TypeVar, cast

import tenacity
from google import genai
from google.genai import types

from ..config import RetryPolicy
from ..exceptions import AuthenticationError, ConfigError, ServiceError
from .convert import (
    count_contents,
    generate_call,
    inline_embed_batch,
    inline_embed_lines,
    inline_request,
    inline_result_lines,
    remote_file,
    response_dict,
)
from .errors import Wait, is_transient, translate
from .remote import RemoteFile, RemoteJob

__all__ = ["Backend", "make_client", "service_of"]

T = TypeVar("T")
logger = logging.getLogger("gembatch")


def _quiet_experimental() -> None:
    """The SDK warns on every embeddings batch that the call is experimental: gembatch made that
    choice for its users, who should not see it in every notebook cell. A filter for this one
    message (a catch_warnings block around the call would not be thread-safe); set again before each
    call, as test runners and notebooks reset filters."""
    warnings.filterwarnings("ignore", message=r"batches\.create_embeddings\(\) is experimental")


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
                    self.stats[name] = {
                        k: int(v) for k, v in stats.items() if str(v).lstrip("-").isdigit()
                    }
                if isinstance(error, dict) and error.get("message"):
                    self.errors[name] = f"{error.get('code', '')} {error['message']}".strip()


def _notify(
    on_retry: Callable[[ServiceError], None] | None, what: str, base_url: str | None
) -> Callable[[Any], None]:
    """A tenacity ``before_sleep``: each transient error logged (INFO, ``gembatch`` logger) and
    handed to ``on_retry``, as gembatch's."""

    def before_sleep(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        if error is None:
            return
        translated = translate(error, what, base_url=base_url)
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        logger.info(
            "gembatch: %s failed (attempt %d): %s; retrying in %.1f s",
            what,
            state.attempt_number,
            translated,
            wait,
        )
        if on_retry is not None and isinstance(translated, ServiceError):
            on_retry(translated)

    return before_sleep


def make_client(
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    capture: _StatsCapture | None = None,
    timeout: float | None = None,
) -> genai.Client:
    """A ``genai.Client`` built the way the SDK does (env ``GEMINI_API_KEY``/``GOOGLE_API_KEY``,
    ``GOOGLE_GEMINI_BASE_URL``), with gembatch's stats hook and a per-request ``timeout`` (seconds);
    a missing key is an AuthenticationError."""
    key = api_key or os.environ.get("GEMINI_API_KEY") or os.environ.get("GOOGLE_API_KEY")
    if not key:
        raise AuthenticationError(
            "No Gemini API key found. Hint: set GEMINI_API_KEY (or GOOGLE_API_KEY), or pass "
            "client=genai.Client(api_key=...). For offline work, start gembatch's emulator (it "
            "runs until emu.stop()): `import os, gembatch; emu = gembatch.emulator.Emulator()"
            ".start(); os.environ.update(emu.environ())`."
        )
    client_args: dict[str, Any] = {}
    if capture is not None:
        client_args["event_hooks"] = {"response": [capture]}
    options = types.HttpOptions(
        base_url=base_url,
        client_args=client_args or None,
        timeout=None if timeout is None else int(timeout * 1000),
    )
    return genai.Client(api_key=key, http_options=options)


def service_of(base_url: str | None) -> str:
    """Which service a base URL names: ``https://generativelanguage.googleapis.com`` for Google
    (also when None), ``emulator`` for a server on this machine (any loopback port), else scheme and
    host.

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

    >>> backend = Backend()  # from GEMINI_API_KEY / GOOGLE_GEMINI_BASE_URL, as the SDK reads them
    >>> backend.service
    'emulator'
    """

    def __init__(
        self,
        client: genai.Client | None = None,
        *,
        retry: RetryPolicy | None = None,
        base_url: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self._capture = _StatsCapture()
        self.base_url = base_url or os.environ.get("GOOGLE_GEMINI_BASE_URL")
        self.client = (
            client
            if client is not None
            else make_client(
                base_url=self.base_url, capture=self._capture, timeout=self.retry.timeout
            )
        )
        self._sleep = sleep

    def __repr__(self) -> str:  # never show the key
        return f"Backend(base_url={self.base_url!r}, retry={self.retry!r})"

    @property
    def service(self) -> str:
        """Which service answers (see :func:`service_of`): from ``base_url`` (given, or the
        ``GOOGLE_GEMINI_BASE_URL`` the SDK reads); pass ``base_url`` with a client of your own that
        points elsewhere."""
        return service_of(self.base_url)

    def _http(self, timeout: float | None = None) -> types.HttpOptions:
        """Per-call HTTP options: every request bounded in time (a client of the user's too)."""
        return types.HttpOptions(timeout=int((timeout or self.retry.timeout) * 1000))

    # -- the one retry mechanism -----------------------------------------------------------------
    def _call(
        self,
        what: str,
        fn: Callable[[], T],
        *,
        idempotent: bool = True,
        attempts: int | None = None,
        on_retry: Callable[[ServiceError], None] | None = None,
    ) -> T:
        if not idempotent:
            try:
                return fn()
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:
                raise translate(exc, what, base_url=self.base_url) from exc
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(attempts or self.retry.attempts)
            | tenacity.stop_after_delay(self.retry.max_elapsed),
            wait=Wait(self.retry),
            retry=tenacity.retry_if_exception(is_transient),
            sleep=self._sleep,
            reraise=True,
            before_sleep=_notify(on_retry, what, self.base_url),
        )
        try:
            return retrying(fn)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            raise translate(exc, what, base_url=self.base_url) from exc

    # -- models ----------------------------------------------------------------------------------
    def check_model(self, model: str, *, timeout: float = 5.0, methods: Sequence[str] = ()) -> None:
        """Fail fast, before anything is spent: the service must answer (within ``timeout`` seconds,
        naming its URL when it does not) and know ``model`` (else a ConfigError with near names),
        and the model must list one of ``methods`` (e.g. ``batchGenerateContent``) among its
        supported ones when it lists any (an embedding model asked to generate is a ConfigError)."""
        where = self.base_url or "https://generativelanguage.googleapis.com"
        found: list[Any] = []

        def go() -> None:
            found.append(
                self.client.models.get(
                    model=model, config=types.GetModelConfig(http_options=self._http(timeout))
                )
            )

        try:
            try:
                self._call(f"look the model {model} up", go, attempts=1)
            except ServiceError as exc:
                if not (exc.transient and exc.code):  # no service there: say so at once
                    raise
                self._call(f"look the model {model} up", go)  # a 429 / 5xx: the retry policy
        except ServiceError as exc:
            if exc.gone:
                raise ConfigError(self._unknown_model(model)) from exc
            if exc.transient and exc.code == 0:
                raise type(exc)(
                    f"{exc} The service at {where} could not be reached (refused, or no answer "
                    f"within {timeout:g} s). "
                    "Hint: check GOOGLE_GEMINI_BASE_URL / the network, then call again "
                    "(nothing was sent).",
                    code=exc.code,
                    status=exc.status,
                ) from exc
            raise
        actions = list(getattr(found[-1], "supported_actions", None) or []) if found else []
        if methods and actions and not any(m in actions for m in methods):
            name = model.removeprefix("models/")
            embeds = any("embed" in a.lower() for a in actions)
            raise ConfigError(
                f"The model {name!r} cannot do this: it supports {', '.join(actions)}, not "
                f"{' or '.join(methods)}. Nothing was sent. Hint: "
                + (
                    "an embedding model goes with batch_embed."
                    if embeds
                    else "a generation model goes with batch_generate; batch_embed needs an "
                    "embedding model such as gemini-embedding-001."
                )
            )

    def _unknown_model(self, model: str) -> str:
        import difflib

        try:
            names = [
                str(m.name or "").removeprefix("models/")
                for m in self.client.models.list(
                    config=types.ListModelsConfig(http_options=self._http(10))
                )
            ]
        except Exception:  # noqa: BLE001 - the listing only adds hints
            names = []
        name = model.removeprefix("models/")
        near = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(map(repr, near))}?" if near else ""
        listed = f" Models it offers: {', '.join(sorted(names)[:20])}." if names else ""
        return (
            f"The service does not know the model {name!r} (404); nothing was sent.{hint}{listed}"
            "\nHint: pass a model name the service lists (client.models.list())."
        )

    # -- files -----------------------------------------------------------------------------------
    def upload(
        self, stream: IO[bytes], *, display_name: str, mime_type: str = "application/jsonl"
    ) -> RemoteFile:
        """Upload a seekable binary stream. Not retried here: the caller reconciles first."""

        def go() -> RemoteFile:
            stream.seek(0)
            f = self.client.files.upload(
                file=cast(io.IOBase, stream),
                config=types.UploadFileConfig(
                    display_name=display_name, mime_type=mime_type, http_options=self._http()
                ),
            )
            return remote_file(f)

        return self._call(f"upload {display_name}", go, idempotent=False)

    def list_files(self) -> list[RemoteFile]:
        """Every file of the account (one listing)."""

        def go() -> list[RemoteFile]:
            config = types.ListFilesConfig(page_size=100, http_options=self._http())
            return [remote_file(f) for f in self.client.files.list(config=config)]

        return self._call("list files", go)

    def find_files(self, display_name: str) -> list[RemoteFile]:
        """Files whose display name is exactly ``display_name``."""
        return [f for f in self.list_files() if f.display_name == display_name]

    def delete_file(self, name: str) -> None:
        """Delete a file; one already gone (404, or 403 "may not exist") counts as deleted. Other
        refusals (e.g. 400 for a result file whose id is longer than delete accepts) raise."""

        def go() -> None:
            self.client.files.delete(
                name=name, config=types.DeleteFileConfig(http_options=self._http())
            )

        try:
            self._call(f"delete {name}", go)
        except ServiceError as exc:
            if not exc.gone:
                raise

    def download(self, name: str, open_dest: Callable[[], Any]) -> None:
        """Stream a generated file into the writer ``open_dest()`` returns (a context manager).

        Retried whole on a dropped connection: the writer is atomic, so a partial file never lands.
        A file that is gone raises a ServiceError with ``gone`` set.
        """

        def go() -> None:
            with open_dest() as dest:
                self.client.files.download(
                    file=name,
                    destination=dest,
                    config=types.DownloadFileConfig(http_options=self._http()),
                )

        self._call(f"download {name}", go)

    # -- batches ---------------------------------------------------------------------------------
    def create(
        self,
        *,
        kind: str,
        model: str,
        display_name: str,
        file_name: str | None = None,
        inline_lines: Sequence[str] | None = None,
    ) -> RemoteJob:
        """Create a batch job from an uploaded file or inline lines (exactly one). Never retried
        blindly: the caller looks the job up by its display name before trying again."""
        assert (file_name is None) != (inline_lines is None), "one of file_name and inline_lines"

        def go() -> RemoteJob:
            if kind == "embed":
                src: Any = (
                    {"file_name": file_name}
                    if file_name
                    else {"inlined_requests": inline_embed_batch(inline_lines or [])}
                )
                _quiet_experimental()
                job = self.client.batches.create_embeddings(
                    model=model,
                    src=src,
                    config=types.CreateEmbeddingsBatchJobConfig(
                        display_name=display_name, http_options=self._http()
                    ),
                )
            else:
                src = file_name if file_name else [inline_request(x) for x in inline_lines or []]
                job = self.client.batches.create(
                    model=model,
                    src=src,
                    config=types.CreateBatchJobConfig(
                        display_name=display_name, http_options=self._http()
                    ),
                )
            return self._remote_job(job)

        return self._call(f"create batch job {display_name}", go, idempotent=False)

    def get(self, name: str) -> RemoteJob:
        """The job (with its inline answers, as result lines, when it has them). A job that is
        gone raises a ServiceError with ``gone`` set."""
        return self._call(
            f"get {name}",
            lambda: self._remote_job(
                self.client.batches.get(
                    name=name, config=types.GetBatchJobConfig(http_options=self._http())
                )
            ),
        )

    def list_jobs(self) -> list[RemoteJob]:
        """Every batch job of the account, newest first (one listing, without results)."""

        def go() -> list[RemoteJob]:
            config = types.ListBatchJobsConfig(page_size=100, http_options=self._http())
            return [
                self._remote_job(j, with_results=False)
                for j in self.client.batches.list(config=config)
            ]

        return self._call("list batch jobs", go)

    def find_jobs(self, display_name: str) -> list[RemoteJob]:
        """Batch jobs whose display name is exactly ``display_name`` (newest first)."""
        return [j for j in self.list_jobs() if j.display_name == display_name]

    def iter_jobs(self) -> Iterator[RemoteJob]:
        """Every batch job of the account, newest first (without results)."""
        yield from self.list_jobs()

    def cancel(self, name: str) -> None:
        self._call(
            f"cancel {name}",
            lambda: self.client.batches.cancel(
                name=name, config=types.CancelBatchJobConfig(http_options=self._http())
            ),
        )

    def delete_job(self, name: str) -> None:
        """Delete a job; one already gone counts as deleted."""

        def go() -> None:
            self.client.batches.delete(
                name=name, config=types.DeleteBatchJobConfig(http_options=self._http())
            )

        try:
            self._call(f"delete {name}", go)
        except ServiceError as exc:
            if not exc.gone:
                raise

    # -- interactive calls -----------------------------------------------------------------------
    def generate(
        self, model: str, line: str, *, on_retry: Callable[[ServiceError], None] | None = None
    ) -> dict[str, Any]:
        """One request line answered by ``models.generate_content``: the response in its wire
        form (as a batch result line's ``response``). Retried like every idempotent call;
        ``on_retry`` sees each transient error before its retry (the rate limiter's 429s)."""
        contents, config = generate_call(line)
        sdk_config = types.GenerateContentConfig.model_validate(
            {
                **(config or {}),
                "http_options": self._http(),
                "automatic_function_calling": {"disable": True},
            }
        )

        def go() -> dict[str, Any]:
            answer = self.client.models.generate_content(
                model=model, contents=contents, config=sdk_config
            )
            return response_dict(answer)

        return self._call(f"generate with {model}", go, on_retry=on_retry)

    def embed(
        self,
        model: str,
        lines: Sequence[str],
        *,
        on_retry: Callable[[ServiceError], None] | None = None,
    ) -> list[dict[str, Any]]:
        """Embedding request lines (one config) answered by ``models.embed_content`` in one call:
        each answer as a batch result line's ``response`` (``{"embedding": {"values": [...]}}``)."""
        batch = inline_embed_batch(lines)
        config = (batch.config or types.EmbedContentConfig()).model_copy(
            update={"http_options": self._http()}
        )

        def go() -> list[dict[str, Any]]:
            answer = self.client.models.embed_content(
                model=model, contents=batch.contents, config=config
            )
            return [
                {"embedding": {"values": list(e.values or [])}} for e in answer.embeddings or []
            ]

        return self._call(f"embed with {model}", go, on_retry=on_retry)

    # -- tokens ----------------------------------------------------------------------------------
    def count_tokens(self, model: str, request: dict[str, Any]) -> int:
        """The input tokens of one request (generateContent, or embedContent's ``content``) by the
        countTokens endpoint; retried like every idempotent call.

        The SDK's CountTokensConfig refuses ``system_instruction``, ``tools`` and
        ``generation_config`` on the Gemini Developer API, so the system instruction's parts are
        counted as a leading user turn (the same number of tokens on the emulator; within a few
        tokens on the service) and tools are not counted.
        """
        contents = count_contents(request)

        def go() -> int:
            answer = self.client.models.count_tokens(
                model=model,
                contents=contents,
                config=types.CountTokensConfig(http_options=self._http()),
            )
            return int(answer.total_tokens or 0)

        return self._call(f"count tokens with {model}", go)

    def _remote_job(self, job: types.BatchJob, *, with_results: bool = True) -> RemoteJob:
        state = job.state.name if job.state is not None else "JOB_STATE_UNSPECIFIED"
        dest = job.dest
        lines: tuple[str, ...] | None = None
        if with_results and dest is not None:
            if dest.inlined_responses is not None:
                lines = tuple(inline_result_lines(dest.inlined_responses))
            elif dest.inlined_embed_content_responses is not None:
                lines = tuple(inline_embed_lines(dest.inlined_embed_content_responses))
        error = self._capture.errors.get(job.name or "")
        if job.error is not None:
            code = job.error.code
            error = " ".join(str(x) for x in (code, job.error.message) if x) or json.dumps(
                job.error.model_dump(mode="json", exclude_none=True)
            )
        return RemoteJob(
            name=job.name or "",
            display_name=job.display_name,
            state=state,
            error=error,
            result_file=dest.file_name if dest is not None else None,
            inline_lines=lines,
            stats=self._capture.stats.get(job.name or ""),
        )
