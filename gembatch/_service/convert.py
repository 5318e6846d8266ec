"""Wire form <-> the SDK's objects: inline requests and answers, countTokens contents, remote files.

gembatch builds every request as a keyed wire-form JSON line; the SDK wants its own pydantic objects
for inline batches and countTokens, and gives its own objects back. These conversions are exact
(tests check that an inline round trip gives the same answers as a file).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from typing import Any

from google.genai import types

from ..exceptions import InputError
from .remote import RemoteFile

__all__ = [
    "count_contents",
    "generate_call",
    "inline_embed_batch",
    "inline_embed_lines",
    "inline_request",
    "inline_result_lines",
    "remote_file",
    "response_dict",
]

#: Request fields the SDK takes inside its GenerateContentConfig (proto spelling = its field names).
_CONFIG_FROM_REQUEST = (
    "system_instruction",
    "safety_settings",
    "tools",
    "tool_config",
    "cached_content",
    "labels",
)


def _field(request: dict[str, Any], name: str) -> Any:
    """A request field by its proto name, or its REST name (lines of run directories of 0.1.0)."""
    if name in request:
        return request[name]
    return request.get(re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), name))


def generate_call(line: str) -> tuple[list[Any], dict[str, Any] | None]:
    """A request line as the SDK's ``generate_content(contents=..., config=...)`` arguments."""
    request = json.loads(line)["request"]
    config: dict[str, Any] = dict(_field(request, "generation_config") or {})
    for name in _CONFIG_FROM_REQUEST:
        value = _field(request, name)
        if value is not None:
            config[name] = value
    return request["contents"], config or None


def inline_request(line: str) -> types.InlinedRequest:
    """A keyed request line as the SDK's InlinedRequest (the SDK turns it back into the same wire
    request; tests check the round trip gives identical answers)."""
    contents, config = generate_call(line)
    return types.InlinedRequest.model_validate(
        {"contents": contents, "metadata": {"key": json.loads(line)["key"]}, "config": config}
    )


def count_contents(request: dict[str, Any]) -> list[types.Content]:
    """The contents countTokens is asked about for a wire-form request: the system instruction's
    parts as a first user turn, then ``contents`` (or an embed request's single ``content``)."""
    contents = list(
        request.get("contents") or ([request["content"]] if "content" in request else [])
    )
    system = _field(request, "system_instruction") or {}
    if system.get("parts"):
        contents.insert(0, {"role": "user", "parts": system["parts"]})
    if not contents:
        raise InputError(
            f"The request has no contents to count tokens of (fields: {sorted(request)})."
        )
    return [types.Content.model_validate(c) for c in contents]


def inline_embed_batch(lines: Sequence[str]) -> types.EmbedContentBatch:
    requests = [json.loads(x)["request"] for x in lines]
    first = requests[0] if requests else {}
    config = {
        k: _field(first, k)
        for k in ("task_type", "title", "output_dimensionality")
        if _field(first, k) is not None
    }
    return types.EmbedContentBatch.model_validate(
        {"contents": [r["content"] for r in requests], "config": config or None}
    )


#: Fields of the SDK's GenerateContentResponse that are its own, not the service's answer.
_SDK_ONLY = {"sdk_http_response", "automatic_function_calling_history", "parsed"}


def response_dict(response: types.GenerateContentResponse) -> dict[str, Any]:
    """An interactive answer in its wire form, what a batch result line holds as ``response``."""
    out: dict[str, Any] = response.model_dump(
        mode="json", by_alias=True, exclude_none=True, exclude=_SDK_ONLY
    )
    return out


def _dump(model: Any) -> Any:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def inline_result_lines(responses: Sequence[Any]) -> Iterator[str]:
    """Inline answers as result lines, keyed by the ``metadata.key`` each carries. An answer without
    it gets a null key: inline answers may come back out of order (python-genai #1909), so an answer
    is never matched to a request by its position; the rows it belonged to are sent again."""
    for item in responses:
        metadata = item.metadata if isinstance(item.metadata, dict) else {}
        out: dict[str, Any] = {"key": metadata.get("key")}
        if item.error is not None:
            out["error"] = _dump(item.error)
        elif item.response is not None:
            out["response"] = _dump(item.response)
        yield json.dumps(out, ensure_ascii=False, separators=(",", ":"))


def inline_embed_lines(responses: Sequence[Any]) -> Iterator[str]:
    """Inline embedding answers as result lines with null keys: the SDK's embedding batches carry
    no per-request metadata, so nothing tells which request an answer belongs to (gembatch sends
    embeddings through files; these lines only ever mark rows to send again)."""
    for item in responses:
        out: dict[str, Any] = {"key": None}
        if getattr(item, "error", None) is not None:
            out["error"] = _dump(item.error)
        elif getattr(item, "response", None) is not None:
            out["response"] = _dump(item.response)
        yield json.dumps(out, separators=(",", ":"))


def remote_file(f: types.File) -> RemoteFile:
    return RemoteFile(
        name=f.name or "",
        display_name=f.display_name,
        state=f.state.name if f.state is not None else None,
        size_bytes=f.size_bytes,
    )
