"""The Batch API calls: create (generate and embeddings), get, list, cancel, delete.

A create checks its body as the service does, then, by the emulator's ``Behaviour``: the model
(``known_models_only``), the display name (``require_display_name``), the input (JSONL parsed
at create with ``jsonl_validation="create"``; schema depth limits; a schema deep enough to fail
the job), and last the batch quotas (concurrent jobs, enqueued tokens per model), which it holds
while the job is created so two creates cannot both take the last slot.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import catalog, validate
from .behaviour import Behaviour
from .errors import ApiError
from .files_api import FileApi
from .inputs import create_error, scan_file, scan_inline
from .jobs import Jobs
from .quota import Quotas
from .schema_faults import depth_error
from .web import Request, Response, json_response, no_unknown, page, pick, read_json

__all__ = ["DEEP_SCHEMA_MESSAGE", "BatchApi"]

#: The job-level error of a job failed for a deep schema (python-genai #1307: state FAILED).
DEEP_SCHEMA_MESSAGE = "Internal error encountered."
_BATCH_FIELDS = {
    "displayName",
    "display_name",
    "model",
    "inputConfig",
    "input_config",
    "priority",
    "webhookConfig",
    "webhook_config",
    "name",
}
_METHOD = {"generate": "batchGenerateContent", "embed": "asyncBatchEmbedContent"}


class BatchApi:
    """The Batch API of one emulator (the handler routes ``batches.*`` calls here)."""

    def __init__(
        self,
        jobs: Jobs,
        files: FileApi,
        *,
        behaviour: Behaviour,
        quotas: Quotas,
        stats: Any,
        max_json_bytes: int,
    ) -> None:
        self.jobs, self.files, self.behaviour, self.quotas = jobs, files, behaviour, quotas
        self.stats, self.max_json_bytes = stats, max_json_bytes

    def create(self, request: Request, kind: str, model: str, version: str) -> Response:
        body = read_json(request, self.max_json_bytes)
        batch = body.get("batch")
        if not isinstance(batch, dict):
            raise ApiError(
                400,
                'Invalid JSON payload received: "batch" is required, e.g. '
                '{"batch": {"display_name": ..., "input_config": {...}}}.',
            )
        no_unknown(body, {"batch"}, "")
        no_unknown(batch, _BATCH_FIELDS, "batch")
        config = pick(batch, "inputConfig", "input_config")
        if not isinstance(config, dict):
            raise ApiError(
                400,
                'batch.input_config is required: {"file_name": "files/..."} '
                'or {"requests": {"requests": [...]}}.',
            )
        no_unknown(config, {"fileName", "file_name", "requests"}, "batch.input_config")
        file_name, requests = pick(config, "fileName", "file_name"), config.get("requests")
        if (file_name is None) == (requests is None):
            raise ApiError(400, "batch.input_config needs exactly one of file_name and requests.")
        display_name = pick(batch, "displayName", "display_name")
        if display_name is not None and not isinstance(display_name, str):
            raise ApiError(
                400, f"Invalid value at 'batch.display_name' (TYPE_STRING), {display_name!r}"
            )
        behaviour = self.behaviour
        if behaviour.known_models_only and not catalog.supports(model, _METHOD[kind]):
            raise ApiError(404, catalog.not_found_message(model, _METHOD[kind], version))
        if behaviour.require_display_name and not display_name:
            raise ApiError(
                400, "* BatchGenerateContentRequest.batch.display_name: display_name is required.\n"
            )
        if file_name is not None:
            job = self._create_from_file(kind, f"models/{model}", display_name, file_name)
        else:
            job = self._create_inline(kind, f"models/{model}", display_name, requests)
        self.stats.add("batches_created")
        if kind == "embed":
            self.stats.add("embed_batches_created")
        return json_response(self.jobs.render(job))

    def _create_from_file(
        self, kind: str, model: str, display_name: str | None, file_name: Any
    ) -> dict[str, Any]:
        if not isinstance(file_name, str):
            raise ApiError(400, 'batch.input_config.file_name must be a string like "files/abc".')
        name = file_name if file_name.startswith("files/") else f"files/{file_name}"
        self.files.file(name.removeprefix("files/"))
        behaviour = self.behaviour
        at_create = behaviour.jsonl_validation == "create"
        limit = behaviour.schema_depth_limit
        scan = scan_file(
            self.jobs.store.blob_path(name),
            kind,
            snake=at_create and behaviour.jsonl_field_names == "snake",
            depth_limit=limit,
        )
        if at_create:
            error = create_error(
                scan,
                report=behaviour.jsonl_errors_reported,
                refuse_response_schema=behaviour.jsonl_response_schema == "refused",
                depth_limit=limit,
            )
            if error is not None:
                raise error
        with self.quotas.batch_slot(model, scan.tokens):
            return self.jobs.create(
                kind=kind,
                model=model,
                display_name=display_name,
                file_name=name,
                count=scan.count,
                input_tokens=scan.tokens,
                fail_message=self._fail_message(scan.max_depth),
            )

    def _create_inline(
        self, kind: str, model: str, display_name: str | None, requests: Any
    ) -> dict[str, Any]:
        check = (
            validate.validate_generate_request
            if kind == "generate"
            else validate.validate_embed_request
        )
        items = _inline_items(requests, check)
        scan = scan_inline(items, kind)
        limit = self.behaviour.schema_depth_limit
        if limit is not None and scan.max_depth > limit:
            raise depth_error(scan.max_depth, limit)
        with self.quotas.batch_slot(model, scan.tokens):
            return self.jobs.create(
                kind=kind,
                model=model,
                display_name=display_name,
                inline=items,
                input_tokens=scan.tokens,
                fail_message=self._fail_message(scan.max_depth),
            )

    def _fail_message(self, depth: int) -> str | None:
        above = self.behaviour.deep_schema_fails_job_above
        return DEEP_SCHEMA_MESSAGE if above is not None and depth > above else None

    def get(self, request: Request, jid: str) -> Response:
        return json_response(self.jobs.render(self.jobs.get(jid), read=True))

    def list(self, request: Request) -> Response:
        chosen, token = page(self.jobs.list(), request.query, default=50, maximum=1000)
        body: dict[str, Any] = {}
        if chosen:
            body["operations"] = [self.jobs.render(job, read=True, listing=True) for job in chosen]
        if token:
            body["nextPageToken"] = token
        return json_response(body)

    def cancel(self, request: Request, jid: str) -> Response:
        self.jobs.cancel(jid)
        return json_response({})

    def delete(self, request: Request, jid: str) -> Response:
        self.jobs.delete(jid)
        return json_response({})


def _inline_items(requests: Any, check: Callable[[dict[str, Any]], Any]) -> list[dict[str, Any]]:
    items = requests.get("requests") if isinstance(requests, dict) else None
    if not isinstance(items, list) or not items:
        raise ApiError(
            400,
            "batch.input_config.requests.requests must be a non-empty list of "
            '{"request": {...}, "metadata": {...}}.',
        )
    out = []
    for i, item in enumerate(items):
        where = f"batch.input_config.requests.requests[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("request"), dict):
            raise ApiError(400, f'{where} must be an object with a "request" object.')
        no_unknown(item, {"request", "metadata"}, where)
        try:
            check(item["request"])
        except ApiError as exc:
            raise ApiError(exc.code, f"{where}.request: {exc.message}", exc.status) from None
        out.append(item)
    return out
