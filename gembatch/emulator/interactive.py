"""Interactive calls: generateContent, streamGenerateContent, countTokens, embedContent and
batchEmbedContents, between the model check, the per-minute limits and the latency.

An interactive call checks its model (``Behaviour.known_models_only``: the model and method must
be in the catalog; streaming and batchEmbedContents ride on generateContent and embedContent),
then, except countTokens, passes the per-minute limits of its model (``Quotas.admit_call``: one
request per call, one per text of batchEmbedContents, the input tokens by the emulator's rule)
and waits ``Limits.latency_s`` in its handler thread before the fake model answers. A stream is
the same answer as server-sent events: each candidate's text in up to three chunks, the last with
finishReason and the full usage.
"""

from __future__ import annotations

import time
from typing import Any

from . import answers, catalog, embeddings, validate
from .behaviour import Behaviour
from .codec import json_dumps
from .errors import ApiError
from .quota import Quotas
from .tokens import Prompt, count_text_tokens
from .web import Request, Response, json_response, read_json

__all__ = ["InteractiveApi"]

_LIMITED = frozenset(
    {"models.generate_content", "models.stream_generate_content", "models.embed_content"}
)


class InteractiveApi:
    """The interactive calls of one emulator (the handler routes ``models.*`` calls here)."""

    def __init__(self, *, behaviour: Behaviour, quotas: Quotas, max_json_bytes: int) -> None:
        self.behaviour, self.quotas, self.max_json_bytes = behaviour, quotas, max_json_bytes

    def call(
        self, endpoint: str, version: str, request: Request, args: tuple[str, ...]
    ) -> Response:
        model, method = args[0], (args[1] if len(args) > 1 else _METHODS[endpoint])
        if self.behaviour.known_models_only:
            needed = _IMPLIED.get(method, method)
            if not catalog.supports(model, needed):
                raise ApiError(404, catalog.not_found_message(model, method, version))
        body = read_json(request, self.max_json_bytes)
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
