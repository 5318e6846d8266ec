"""Request validation: the service's semantic checks on top of the proto-JSON parse.

``validate_generate_request`` and ``validate_embed_request`` parse the wire JSON (``proto.parse``:
unknown fields, value types) and then check what a well-typed request can still get wrong, in the
service's wording: empty ``contents``, a content without parts, a part without data (or with two
kinds), roles, value ranges, ``responseMimeType`` and schema combinations, speech configs. They
return the request with lowerCamelCase keys; user data (schemas, function arguments) is shared
with the input, so treat both as read-only.

Example::

    >>> validate_generate_request({"contents": {"parts": {"text": "Hi"}},
    ...                            "generation_config": {"max_output_tokens": 5}})
    {'contents': [{'parts': [{'text': 'Hi'}]}], 'generationConfig': {'maxOutputTokens': 5}}
"""

from __future__ import annotations

from typing import Any

from gembatch.emulator import proto
from gembatch.emulator.errors import ApiError

__all__ = [
    "MAX_EMBEDDING_DIMENSIONS",
    "check_contents",
    "check_generate",
    "invalid",
    "validate_embed_request",
    "validate_generate_request",
]

#: The most dimensions an embedding has (gemini-embedding-001).
MAX_EMBEDDING_DIMENSIONS = 3072
_DATA_FIELDS = frozenset(
    {
        "text",
        "inlineData",
        "fileData",
        "functionCall",
        "functionResponse",
        "executableCode",
        "codeExecutionResult",
        "toolCall",
        "toolResponse",
    }
)
_RANGES = (
    ("candidateCount", "candidate_count", 1, 8),
    ("maxOutputTokens", "max_output_tokens", 1, None),
    ("temperature", "temperature", 0, 2),
    ("topP", "top_p", 0, 1),
)
_MIME_TYPES = frozenset(
    {"text/plain", "application/json", "application/xml", "application/yaml", "text/x.enum"}
)


def invalid(root: str, where: str, message: str) -> ApiError:
    """The service's error for a field of a well-formed request: ``* Root.field: message``."""
    return ApiError(400, f"* {root}.{where}: {message}\n")


def _check_content(content: dict[str, Any], where: str, root: str) -> None:
    parts = content.get("parts")
    if not parts:
        raise invalid(root, f"{where}.parts", "contents.parts must not be empty.")
    for i, part in enumerate(parts):
        if len(part) == 1 and part.get("text"):  # the usual part, checked fast
            continue
        data = [name for name in part if name in _DATA_FIELDS and part[name] != ""]
        if len(data) > 1:
            raise ApiError(
                400,
                "Invalid JSON payload received. Oneof field 'data' is already set. "
                f"Cannot set '{proto.snake(data[1])}'",
            )
        if not data:
            raise invalid(
                root,
                f"{where}.parts[{i}].data",
                "required oneof field 'data' must have one initialized field",
            )


def check_contents(request: dict[str, Any], root: str) -> None:
    """Check ``contents`` and ``systemInstruction`` of a normalised request."""
    contents = request.get("contents")
    if not contents:
        raise invalid(root, "contents", "contents is not specified")
    for i, content in enumerate(contents):
        if content.get("role", "user") not in ("user", "model"):
            raise ApiError(400, "Please use a valid role: user, model.")
        _check_content(content, f"contents[{i}]", root)
    if "systemInstruction" in request:
        _check_content(request["systemInstruction"], "system_instruction", root)


def _check_config(config: dict[str, Any], root: str) -> None:
    where = "generation_config"
    for name, snake, low, high in _RANGES:
        value = config.get(name)
        if value is not None and (value < low or (high is not None and value > high)):
            allowed = f"at least {low}" if high is None else f"in the range [{low}, {high}]"
            raise invalid(root, f"{where}.{snake}", f"{snake} must be {allowed} (got {value}).")
    mime = config.get("responseMimeType")
    if mime is not None and mime not in _MIME_TYPES:
        raise invalid(
            root,
            f"{where}.response_mime_type",
            "allowed mimetypes are "
            "`text/plain`, `application/json`, `application/xml`, `application/yaml` "
            "and `text/x.enum`.",
        )
    has_schema, has_json_schema = "responseSchema" in config, "responseJsonSchema" in config
    if has_json_schema and not isinstance(config["responseJsonSchema"], (dict, bool)):
        raise invalid(
            root,
            f"{where}.response_json_schema",
            "response_json_schema must be a JSON Schema object.",
        )
    if has_schema and has_json_schema:
        raise invalid(
            root,
            f"{where}.response_json_schema",
            "response_json_schema and response_schema cannot both be set; use one of them.",
        )
    if has_json_schema and mime != "application/json":
        raise invalid(
            root,
            f"{where}.response_json_schema",
            "response_mime_type must be `application/json` when response_json_schema is set.",
        )
    if has_schema and mime not in ("application/json", "text/x.enum"):
        raise invalid(
            root,
            f"{where}.response_schema",
            "response_mime_type must be "
            "`application/json` or `text/x.enum` when response_schema is set.",
        )
    if mime == "text/x.enum" and has_schema and not _is_string_enum(config["responseSchema"]):
        raise invalid(
            root,
            f"{where}.response_schema",
            "response_schema must be a STRING "
            "schema with enum values when response_mime_type is `text/x.enum`.",
        )
    speech = config.get("speechConfig")
    if isinstance(speech, dict) and "voiceConfig" in speech and "multiSpeakerVoiceConfig" in speech:
        raise invalid(
            root,
            f"{where}.speech_config",
            "voice_config and multi_speaker_voice_config are mutually exclusive.",
        )


def _is_string_enum(schema: dict[str, Any]) -> bool:
    return str(schema.get("type", "STRING")).upper() == "STRING" and bool(schema.get("enum"))


def validate_generate_request(request: dict[str, Any], *, snake: bool = False) -> dict[str, Any]:
    """Check a GenerateContentRequest (parsed wire JSON); return it with lowerCamelCase keys.

    Raises ``ApiError(400)`` in the service's wording for what the service refuses. ``snake``:
    accept only proto field names (a batch JSONL line, see ``proto``).
    """
    normal = proto.parse(request, proto.REQUEST, snake=snake)
    check_generate(normal, "GenerateContentRequest")
    return normal


def check_generate(normal: dict[str, Any], root: str) -> None:
    """The semantic checks of a parsed GenerateContentRequest (``root`` names it in errors)."""
    check_contents(normal, root)
    if "generationConfig" in normal:
        _check_config(normal["generationConfig"], root)


def validate_embed_request(request: dict[str, Any], *, snake: bool = False) -> dict[str, Any]:
    """Check an EmbedContentRequest (parsed wire JSON); return it with lowerCamelCase keys.

    >>> validate_embed_request({"content": {"parts": [{"text": "Hi"}]}, "task_type": "CLUSTERING"})
    {'content': {'parts': [{'text': 'Hi'}]}, 'taskType': 'CLUSTERING'}
    """
    normal = proto.parse(request, proto.EMBED, snake=snake)
    content = normal.get("content")
    if content is None:
        raise invalid("EmbedContentRequest", "content", "content is not specified")
    _check_content(content, "content", "EmbedContentRequest")
    dims = normal.get("outputDimensionality")
    if dims is not None and not 1 <= dims <= MAX_EMBEDDING_DIMENSIONS:
        raise invalid(
            "EmbedContentRequest",
            "output_dimensionality",
            f"output_dimensionality must be between 1 and {MAX_EMBEDDING_DIMENSIONS} (got {dims}).",
        )
    return normal
