"""Wire form <-> the SDK's objects: inline requests and answers, countTokens contents, remote files.

gembatch builds every request as a keyed wire-form JSON line; the SDK wants its own pydantic objects
for inline batches and countTokens, and gives its own objects back. These conversions are exact
(tests check that an inline round trip gives the same answers as a file).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from google.genai import types

from ..exceptions import InputError
from .remote import RemoteFile

__all__ = [
    "count_contents",
    "inline_embed_batch",
    "inline_embed_lines",
    "inline_request",
    "inline_result_lines",
    "remote_file",
]

_CONFIG_FROM_REQUEST = (
    "systemInstruction",
    "safetySettings",
    "tools",
    "toolConfig",
    "cachedContent",
    "labels",
)


def inline_request(line: str) -> types.InlinedRequest:
    """A keyed wire-form request line as the SDK's InlinedRequest (the SDK turns it back into the
    same wire request; tests check the round trip gives identical answers)."""
    obj = json.loads(line)
    request = obj["request"]
    config: dict[str, Any] = dict(request.get("generationConfig") or {})
    for name in _CONFIG_FROM_REQUEST:
        if name in request:
            config[name] = request[name]
    return types.InlinedRequest.model_validate(
        {"contents": request["contents"], "metadata": {"key": obj["key"]}, "config": config or None}
    )


def count_contents(request: dict[str, Any]) -> list[types.Content]:
    """The contents countTokens is asked about for a wire-form request: the system instruction's
    parts as a first user turn, then ``contents`` (or an embed request's single ``content``)."""
    contents = list(
        request.get("contents") or ([request["content"]] if "content" in request else [])
    )
    system = request.get("systemInstruction") or request.get("system_instruction") or {}
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
    config = {k: first[k] for k in ("taskType", "title", "outputDimensionality") if k in first}
    return types.EmbedContentBatch.model_validate(
        {"contents": [r["content"] for r in requests], "config": config or None}
    )


def _dump(model: Any) -> Any:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def inline_result_lines(responses: Sequence[Any], keys: Sequence[str] | None) -> Iterator[str]:
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


def inline_embed_lines(responses: Sequence[Any], keys: Sequence[str] | None) -> Iterator[str]:
    for i, item in enumerate(responses):
        out: dict[str, Any] = {"key": keys[i] if keys is not None and i < len(keys) else str(i)}
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
