"""The answer generator: ``generate_content`` and ``count_tokens`` of the deterministic fake model.

Every answer is a pure function of (model name, normalised request), so the same request always
gives byte-identical output, and every answer visibly carries its prompt, so a result joined to
the wrong row shows as a wrong answer.

seed = sha256(canonical JSON of the normalised request without its ``model`` field and empty
messages, then the model name without ``models/``); the text is ``[system: <first 40 chars of
systemInstruction>] Answer to "<first 80 chars of the last user text>" (with 1 attachment:
image/png): <8-40 seeded words>.``
``candidateCount = n`` gives n candidates. ``maxOutputTokens`` covers thinking and answer together
(thinking is cut first; an answer over what is left ends with finishReason MAX_TOKENS). With
``responseMimeType: application/json`` the text is compact JSON from ``schema_values.ValueMaker``
(``{"answer": ...}`` without a schema); ``text/x.enum`` answers one enum value. Models named
gemini-2.5 or later think unless ``thinkingBudget`` is 0; ``includeThoughts`` shows the thinking
as a first ``"thought": true`` part.

usageMetadata is shaped as the service sends it: zero counts left out, ``promptTokensDetails`` and
``candidatesTokensDetails`` by modality, and ``serviceTier`` (``standard`` unless the request
names one).

Test directives, anywhere in the text of ``contents`` (precedence in this order):
``[[error:CODE]]`` raise ApiError(CODE); ``[[invalid]]`` a request the service refuses (a JSONL
line the create refuses when JSONL is checked at create, else ApiError(400)); ``[[block]]`` (or
``[[block:OTHER]]``) no candidates, ``promptFeedback.blockReason``; ``[[finish:REASON]]`` one
candidate with that finishReason and no content; ``[[parts:N]]`` each answer split across N text
parts.

Example::

    >>> r = generate_content("gemini-2.5-flash", {"contents": [{"parts": [{"text": "abcd"}]}]})
    >>> r["candidates"][0]["finishReason"], r["usageMetadata"]["promptTokenCount"]
    ('STOP', 1)
"""

from __future__ import annotations

import base64
import functools
import hashlib
import random
import re
from itertools import pairwise
from typing import Any

from gembatch.emulator import proto
from gembatch.emulator.draws import Draws
from gembatch.emulator.errors import ApiError
from gembatch.emulator.schema_values import ValueMaker
from gembatch.emulator.tokens import (
    Prompt,
    canonical_json,
    compact_json,
    count_text_tokens,
    modality_details,
)
from gembatch.emulator.validate import (
    check_contents,
    check_generate,
    invalid,
    validate_generate_request,
)

__all__ = ["ERROR_MESSAGES", "answer", "count_tokens", "generate_content"]

_DIRECTIVE_RE = re.compile(r"\[\[(error|invalid|finish|block|parts)(?::([A-Za-z0-9_]+))?\]\]")
ERROR_MESSAGES = {
    400: "Request contains an invalid argument.",
    401: "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential.",
    403: "The caller does not have permission",
    404: "Requested entity was not found.",
    429: "Resource has been exhausted (e.g. check quota).",
    500: "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}
_RATED_CATEGORIES = (
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
)
_VERSION_RE = re.compile(r"gemini-(\d+(?:\.\d+)?)")


def _directives(prompt: Prompt) -> dict[str, str]:
    """The test directives in the prompt text: name -> argument ("" when none); the first wins."""
    text = prompt.directive_text
    if "[[" not in text:
        return {}
    found: dict[str, str] = {}
    for name, arg in _DIRECTIVE_RE.findall(text):
        found.setdefault(name, arg)
    return found


def _raise_error_directive(arg: str) -> None:
    code = int(arg) if arg.isdigit() and 400 <= int(arg) <= 599 else 500
    message = ERROR_MESSAGES.get(code, f"The emulator was asked to fail this request with {code}.")
    raise ApiError(code, message)


def _usage(prompt: Prompt, candidates: int, thoughts: int, tier: str) -> dict[str, Any]:
    """usageMetadata as the service sends it: zero counts left out (proto3 JSON)."""
    total = prompt.tokens + candidates + thoughts
    counts = {
        "promptTokenCount": prompt.tokens,
        "candidatesTokenCount": candidates,
        "totalTokenCount": total,
    }
    usage: dict[str, Any] = {name: n for name, n in counts.items() if n}
    details = modality_details(prompt.details)
    if details:
        usage["promptTokensDetails"] = details
    if candidates:
        usage["candidatesTokensDetails"] = [{"modality": "TEXT", "tokenCount": candidates}]
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    usage["serviceTier"] = tier
    return usage


def _safety_ratings(rng: random.Random) -> list[dict[str, Any]]:
    flagged = rng.randrange(len(_RATED_CATEGORIES))
    return [
        {"category": c, "probability": "HIGH", "blocked": True}
        if i == flagged
        else {"category": c, "probability": "NEGLIGIBLE"}
        for i, c in enumerate(_RATED_CATEGORIES)
    ]


def _thinks(model: str, thinking: dict[str, Any]) -> bool:
    """Whether the model thinks: gemini-2.5 and later, unless thinkingBudget is 0."""
    return thinking.get("thinkingBudget") != 0 and _thinking_model(model)


@functools.lru_cache(maxsize=64)
def _thinking_model(model: str) -> bool:
    match = _VERSION_RE.search(model)
    return match is not None and float(match.group(1)) >= 2.5


def _head(prompt: Prompt) -> str:
    system = f"[system: {prompt.system_text[:40]}] " if prompt.system_text else ""
    n = len(prompt.attachments)
    attached = ""
    if n:
        attached = f" (with {n} attachment{'s' if n > 1 else ''}: {', '.join(prompt.attachments)})"
    return f'{system}Answer to "{prompt.user_text[:80]}"{attached}: '


def _answer(draws: Draws, head: str, prompt: Prompt, config: dict[str, Any]) -> str:
    """One candidate's answer text (before truncation)."""
    text = f"{head}{draws.words()}."
    mime = config.get("responseMimeType")
    if mime is None or mime == "text/plain":
        return text
    schema = config.get("responseSchema", config.get("responseJsonSchema"))
    if mime == "text/x.enum" and isinstance(schema, dict) and schema.get("enum"):
        return str(draws.rng.choice(schema["enum"]))
    if mime != "application/json":
        return text
    if schema is None:
        return compact_json({"answer": text})
    alphabetical = "responseSchema" in config  # as the service orders responseSchema output
    maker = ValueMaker(draws.rng, prompt.user_text[:24], schema, alphabetical)
    return compact_json(maker.make(schema, 0))


def _split(text: str, n: int) -> list[dict[str, Any]]:
    """``text`` as n non-empty text parts (fewer if it is shorter than n characters)."""
    n = max(1, min(n, len(text)))
    cuts = [len(text) * i // n for i in range(n + 1)]
    return [{"text": text[a:b]} for a, b in pairwise(cuts)]


def generate_content(model: str, request: dict[str, Any], *, snake: bool = False) -> dict[str, Any]:
    """The wire GenerateContentResponse the fake model gives ``request`` (validated first;
    ``snake``: accept proto field names only, as for a batch JSONL line)."""
    return answer(model, validate_generate_request(request, snake=snake))


def answer(model: str, normal: dict[str, Any]) -> dict[str, Any]:
    """The GenerateContentResponse for an already validated (``normal``) request."""
    name = model.removeprefix("models/")
    prompt = Prompt(normal)
    directives = _directives(prompt)
    if "error" in directives:
        _raise_error_directive(directives["error"])
    if "invalid" in directives:
        _raise_error_directive("400")
    # an empty message (the SDK sends ``generationConfig: {}``) means what its absence means
    hashed = {k: v for k, v in normal.items() if k != "model" and v != {}}
    seed = hashlib.sha256(f"{canonical_json(hashed)}\n{name}".encode()).digest()
    draws = Draws(seed)
    tier = str(normal.get("serviceTier", "standard")).lower()
    response: dict[str, Any] = {}
    if "block" in directives:
        response["promptFeedback"] = {
            "blockReason": directives["block"] or "SAFETY",
            "safetyRatings": _safety_ratings(draws.rng),
        }
        response["usageMetadata"] = _usage(prompt, 0, 0, tier)
    else:
        response["candidates"], response["usageMetadata"] = _candidates(
            draws, name, normal.get("generationConfig", {}), prompt, directives, tier
        )
    response["modelVersion"] = name
    response["responseId"] = base64.urlsafe_b64encode(seed[:16]).decode().rstrip("=")
    return response


def _candidates(
    draws: Draws,
    model: str,
    config: dict[str, Any],
    prompt: Prompt,
    directives: dict[str, str],
    tier: str,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The candidates and usageMetadata of a response that is not blocked."""
    thinking = config.get("thinkingConfig", {})
    thought = ""
    if _thinks(model, thinking):
        budget = thinking.get("thinkingBudget", -1)
        thought = f'Thinking about "{prompt.user_text[:40]}": {draws.words()}.'
        thought = thought[: budget * 4] if budget > 0 else thought
    limit = config.get("maxOutputTokens")
    if limit is not None:  # on thinking models maxOutputTokens covers thinking and answer together
        thought = thought[: limit * 4]
    thoughts = count_text_tokens(thought)
    if "finish" in directives:
        reason = directives["finish"] or "OTHER"
        candidate: dict[str, Any] = {"finishReason": reason, "index": 0}
        if reason == "SAFETY":
            candidate["safetyRatings"] = _safety_ratings(draws.rng)
        return [candidate], _usage(prompt, 0, thoughts, tier)
    head = _head(prompt)
    limit = None if limit is None else limit - thoughts  # what thinking left for the answer
    n_parts = int(directives["parts"]) if directives.get("parts", "").isdigit() else 1
    candidates, answer_tokens = [], 0
    for index in range(config.get("candidateCount", 1)):
        text, reason = _answer(draws, head, prompt, config), "STOP"
        if limit is not None and count_text_tokens(text) > limit:
            text, reason = text[: limit * 4], "MAX_TOKENS"
        answer_tokens += count_text_tokens(text)
        parts: list[dict[str, Any]] = _split(text, n_parts) if n_parts > 1 else [{"text": text}]
        if index == 0 and thought and thinking.get("includeThoughts"):
            parts.insert(0, {"text": thought, "thought": True})
        candidates.append(
            {"content": {"role": "model", "parts": parts}, "finishReason": reason, "index": index}
        )
    return candidates, _usage(prompt, answer_tokens, thoughts, tier)


def count_tokens(model: str, request: dict[str, Any]) -> dict[str, Any]:
    """Answer ``models/{m}:countTokens``: body ``{"contents"}`` or ``{"generateContentRequest"}``.

    ``totalTokens`` equals the promptTokenCount ``generate_content`` reports for the same request.

    >>> body = {"contents": [{"parts": [{"text": "abcde"}]}]}
    >>> count_tokens("gemini-2.5-flash", body)["totalTokens"]
    2
    """
    normal = proto.parse(request, proto.COUNT)
    if "generateContentRequest" in normal:
        if "contents" in normal:
            raise invalid(
                "CountTokensRequest",
                "contents",
                "only one of contents and generate_content_request may be set.",
            )
        normal = normal["generateContentRequest"]
        check_generate(normal, "CountTokensRequest.generate_content_request")
    else:
        check_contents(normal, "CountTokensRequest")
    prompt = Prompt(normal)
    return {"totalTokens": prompt.tokens, "promptTokensDetails": modality_details(prompt.details)}
