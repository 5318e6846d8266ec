"""The emulator's deterministic fake Gemini model: request checks, answers, tokens, embeddings.

Nothing here is a language model. Every answer is a pure function of (model name, normalised
request), so the same request always gives byte-identical output, and every answer visibly carries
its prompt, so a result joined to the wrong row shows as a wrong answer.

Requests
    ``validate_generate_request`` and ``validate_embed_request`` check the wire JSON as the
    service does and return it with lowerCamelCase field names (snake_case is accepted too: the
    service takes both, and the SDK leaves nested keys such as ``thinking_budget`` in snake_case).
    Unknown fields,
    wrong value types, empty ``contents``, a content without parts and a part without data are
    refused with the service's wording, e.g. ``Invalid JSON payload received. Unknown name "foo" at
    'generation_config': Cannot find field.`` User data (``responseJsonSchema``, property names,
    function arguments) is kept verbatim.

Answers
    seed = sha256(canonical JSON of the normalised request without its ``model`` field, then the
    model name without ``models/``). Words come from a SHAKE-256 stream of the seed, everything else
    from ``random.Random(seed)``. Any change to the request, temperature included, changes the
    answer. The answer text is::

        [system: <first 40 chars of systemInstruction>] Answer to "<first 80 chars of the last user
        text>" (with 1 attachment: image/png): <8-40 seeded words>.

    ``candidateCount = n`` gives n different candidates. ``maxOutputTokens = m`` covers thinking and
    answer together (as on the service's thinking models): thinking is cut to m tokens first, and an
    answer over what is left (m - thinking) to 4 characters per token, with finishReason MAX_TOKENS. With
    ``responseMimeType: application/json`` the text is compact JSON: a value that validates against
    ``responseSchema`` (OpenAPI subset) or ``responseJsonSchema`` (JSON Schema, ``$ref``/``$defs``
    included), with every property filled, whose first string is the first 24 characters of the
    prompt (later strings start with them); without a schema, ``{"answer": "<answer text>"}``.
    ``text/x.enum`` with an enum schema answers one of the values. Models named gemini-2.5 or later
    think unless ``thinkingBudget`` is 0: thoughtsTokenCount counts a seeded thinking text (cut to a
    positive budget), which ``includeThoughts`` shows as a first ``"thought": true`` part of
    candidate 0.

Test directives, anywhere in the text of ``contents`` (``generate_content`` acts on them, validation
ignores them; precedence in this order)
    ``[[error:CODE]]``     raise ApiError(CODE) with the service's message (400, 429, 500, 503, ...)
    ``[[block]]``          no candidates, ``promptFeedback.blockReason`` SAFETY (``[[block:OTHER]]``
                           names another reason); usageMetadata has the prompt tokens only
    ``[[finish:REASON]]``  one candidate with that finishReason (SAFETY, RECITATION, OTHER, ...) and
                           no content; SAFETY adds safetyRatings
    ``[[parts:N]]``        each candidate's answer split across N text parts (joined: the usual
                           answer)

Tokens
    One rule, ``TOKEN_RULE_DOC``: ceil(characters / 4) per text, 258 per media part.

Embeddings
    ``embed_content`` gives a unit vector from shake_256(text, taskType, title); a smaller
    ``outputDimensionality`` gives a renormalised prefix of the full vector (Matryoshka-style).
    3072 dimensions by default, 768 for text-embedding-* and embedding-001.

Example::

    >>> r = generate_content("models/gemini-2.5-flash", {"contents": [{"parts": [{"text": "Hi"}]}]})
    >>> r["candidates"][0]["content"]["parts"][0]["text"].startswith('Answer to "Hi": ')
    True
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
import random
import re
import uuid
from collections.abc import Callable
from itertools import pairwise
from typing import Any

from gembatch.emulator.errors import ApiError

__all__ = [
    "TOKENS_PER_MEDIA_PART",
    "TOKEN_RULE_DOC",
    "count_text_tokens",
    "count_tokens",
    "embed_content",
    "generate_content",
    "validate_embed_request",
    "validate_generate_request",
]

TOKENS_PER_MEDIA_PART = 258

TOKEN_RULE_DOC = (
    "The emulator counts tokens with one rule, not Gemini's tokenizer: a text costs "
    "ceil(len(text) / 4) tokens, counting Python characters (code points), so \"\" costs 0, "
    "\"abcd\" 1 and \"abcde\" 2; every inlineData or fileData part costs a flat 258 tokens "
    "whatever its size; any other part (functionCall, functionResponse, executableCode, "
    "codeExecutionResult) costs the text rule applied to its compact JSON. promptTokenCount is the "
    "sum over every part of contents and systemInstruction, and countTokens answers the same "
    "number; candidatesTokenCount applies the text rule to the answer text of every candidate "
    "(thought parts excluded); thoughtsTokenCount applies it to the thinking text (0 for models "
    "before gemini-2.5 and when thinkingBudget is 0); cachedContentTokenCount is always 0; "
    "totalTokenCount = promptTokenCount + candidatesTokenCount + thoughtsTokenCount."
)


def count_text_tokens(text: str) -> int:
    """Tokens of ``text`` under the emulator's rule: ceil(len(text) / 4).

    >>> [count_text_tokens(t) for t in ("", "abcd", "abcde")]
    [0, 1, 2]
    """
    return (len(text) + 3) // 4


# -- wire messages ---------------------------------------------------------------------------------
# A field path is nested tuples (parent, snake_name, index), rendered only for an error message.
_Path = Any
_Check = Callable[[Any, Any, _Path], Any]
_PREFIX = "type.googleapis.com/google.ai.generativelanguage.v1beta."


class _Msg:
    """A proto message: both spellings of a field name -> (camel, snake, check, arg, repeated)."""

    __slots__ = ("fields", "type_name")

    def __init__(self, name: str) -> None:
        self.type_name = _PREFIX + name
        self.fields: dict[str, tuple[str, str, _Check, Any, bool]] = {}

    def define(self, **fields: tuple[Any, ...]) -> None:
        for camel, (check, arg, *repeated) in fields.items():
            snake = _snake(camel)
            entry = (camel, snake, check, arg, bool(repeated))
            self.fields[camel] = self.fields[snake] = entry


def _snake(name: str) -> str:
    return re.sub(r"[A-Z]", lambda m: "_" + m.group().lower(), name)


def _render(path: _Path) -> str:
    parts: list[str] = []
    while path:
        path, name, index = path
        parts.append(name if index is None else f"{name}[{index}]")
    return ".".join(reversed(parts))


def _unknown(key: str, path: _Path, why: str = "Cannot find field.") -> ApiError:
    where = f" at '{_render(path)}'" if path else ""
    return ApiError(400, f'Invalid JSON payload received. Unknown name "{key}"{where}: {why}')


def _bad_value(path: _Path, type_name: str, value: Any) -> ApiError:
    if isinstance(value, dict):
        parent, name, _ = path
        return _unknown(name, parent, "Starting an object on a scalar field.")
    shown = json.dumps(value, ensure_ascii=False)
    return ApiError(400, f"Invalid value at '{_render(path)}' ({type_name}), {shown}")


def _message(value: Any, spec: _Msg, path: _Path) -> dict[str, Any]:
    """Normalise one message: camelCase keys, checked values, nulls dropped."""
    if not isinstance(value, dict):
        if path is None:
            raise ApiError(400, 'Invalid JSON payload received. Unknown name "": Root element '
                                "must be a message.")
        raise _bad_value(path, spec.type_name, value)
    out: dict[str, Any] = {}
    fields = spec.fields
    for key, item in value.items():
        field = fields.get(key)
        if field is None:
            raise _unknown(key, path)
        if item is None:
            continue
        camel, snake, check, arg, repeated = field
        if repeated:  # the service also takes a lone value for a repeated field
            items = item if type(item) is list else [item]
            out[camel] = [check(x, arg, (path, snake, i)) for i, x in enumerate(items)]
        elif check is _str and type(item) is str:  # the commonest field, checked inline
            out[camel] = item
        elif type(item) is list and check is not _any:
            raise _unknown(key, path, "Proto field is not repeating, cannot start list.")
        else:
            out[camel] = check(item, arg, (path, snake, None))
    return out


def _str(value: Any, arg: Any, path: _Path) -> str:
    if type(value) is str:
        return value
    raise _bad_value(path, "TYPE_STRING", value)


def _bool(value: Any, arg: Any, path: _Path) -> bool:
    if type(value) is bool:
        return value
    raise _bad_value(path, "TYPE_BOOL", value)


_INT_RE = re.compile(r"-?\d+")


def _int(value: Any, bits: int, path: _Path) -> int:
    """int32/int64: a JSON integer, an integral float or a decimal string (proto3 JSON)."""
    number: int | None = None
    if (type(value) is int or (type(value) is str and _INT_RE.fullmatch(value))
            or (type(value) is float and value.is_integer())):
        number = int(value)
    if number is None or not -(2 ** (bits - 1)) <= number < 2 ** (bits - 1):
        raise _bad_value(path, f"TYPE_INT{bits}", value)
    return number


def _float(value: Any, arg: Any, path: _Path) -> float:
    """float/double: a JSON number or a numeric string; always a float, so 1 and 1.0 seed alike."""
    if type(value) is float or type(value) is int:
        return float(value)
    if type(value) is str:
        try:
            return float(value)
        except ValueError:
            pass
    raise _bad_value(path, "TYPE_FLOAT", value)


def _enum(value: Any, allowed: tuple[str, frozenset[str]], path: _Path) -> str:
    name, values = allowed
    if type(value) is str and (not values or value in values):
        return value
    raise _bad_value(path, _PREFIX + name, value)


_B64_RE = re.compile(r"[A-Za-z0-9+/_-]*={0,2}")


def _bytes(value: Any, arg: Any, path: _Path) -> str:
    if type(value) is str and _B64_RE.fullmatch(value.replace("\n", "")):
        return value
    if type(value) is str:
        shown = json.dumps(value[:40], ensure_ascii=False)
        raise ApiError(400, f"Invalid value at '{_render(path)}' (TYPE_BYTES), Base64 decoding "
                            f"failed for {shown}")
    raise _bad_value(path, "TYPE_BYTES", value)


def _any(value: Any, arg: Any, path: _Path) -> Any:
    """A google.protobuf.Value/Struct (user data): kept verbatim."""
    return value


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def _loose(value: Any, arg: Any, path: _Path) -> Any:
    """A message the emulator does not model field by field: keys camelCased, values kept."""
    if path is not None and type(value) is not dict:
        raise _bad_value(path, _PREFIX + str(arg or "Message"), value)
    if type(value) is dict:
        return {_camel(k): _loose(v, None, None) for k, v in value.items()}
    if type(value) is list:
        return [_loose(v, None, None) for v in value]
    return value


def _schema_type(value: Any, arg: Any, path: _Path) -> str:
    if type(value) is str and value.upper() in _SCHEMA_TYPES:
        return value
    raise _bad_value(path, _PREFIX + "Type", value)


def _map(value: Any, spec: _Msg, path: _Path) -> dict[str, Any]:
    """A map<string, message> (Schema.properties): keys are user data, values messages."""
    if type(value) is not dict:
        raise _bad_value(path, spec.type_name, value)
    parent, name, _ = path
    return {k: _message(v, spec, ((parent, name, i), "value", None))
            for i, (k, v) in enumerate(value.items())}


def _sub(spec: _Msg) -> tuple[_Check, _Msg]:
    return (_message, spec)


_SCHEMA_TYPES = frozenset({"TYPE_UNSPECIFIED", "STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY",
                           "OBJECT", "NULL"})
_HARM_CATEGORIES = ("HarmCategory", frozenset({
    "HARM_CATEGORY_UNSPECIFIED", "HARM_CATEGORY_HARASSMENT", "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT", "HARM_CATEGORY_DANGEROUS_CONTENT",
    "HARM_CATEGORY_CIVIC_INTEGRITY", "HARM_CATEGORY_DEROGATORY", "HARM_CATEGORY_TOXICITY",
    "HARM_CATEGORY_VIOLENCE", "HARM_CATEGORY_SEXUAL", "HARM_CATEGORY_MEDICAL",
    "HARM_CATEGORY_DANGEROUS", "HARM_CATEGORY_JAILBREAK", "HARM_CATEGORY_IMAGE_HATE",
    "HARM_CATEGORY_IMAGE_DANGEROUS_CONTENT", "HARM_CATEGORY_IMAGE_HARASSMENT",
    "HARM_CATEGORY_IMAGE_SEXUALLY_EXPLICIT"}))
_THRESHOLDS = ("SafetySetting.HarmBlockThreshold", frozenset({
    "HARM_BLOCK_THRESHOLD_UNSPECIFIED", "BLOCK_LOW_AND_ABOVE", "BLOCK_MEDIUM_AND_ABOVE",
    "BLOCK_ONLY_HIGH", "BLOCK_NONE", "OFF"}))
_TASK_TYPES = ("TaskType", frozenset({
    "TASK_TYPE_UNSPECIFIED", "RETRIEVAL_QUERY", "RETRIEVAL_DOCUMENT", "SEMANTIC_SIMILARITY",
    "CLASSIFICATION", "CLUSTERING", "QUESTION_ANSWERING", "FACT_VERIFICATION",
    "CODE_RETRIEVAL_QUERY"}))
_ANY_ENUM: tuple[str, frozenset[str]] = ("Enum", frozenset())

_REQUEST, _CONTENT, _PART, _BLOB, _FILE_DATA = (_Msg(n) for n in (
    "GenerateContentRequest", "Content", "Part", "Blob", "FileData"))
_FUNCTION_CALL, _FUNCTION_RESPONSE, _CODE, _CODE_RESULT = (_Msg(n) for n in (
    "FunctionCall", "FunctionResponse", "ExecutableCode", "CodeExecutionResult"))
_CONFIG, _THINKING, _SCHEMA, _SAFETY, _TOOL, _FUNCTION = (_Msg(n) for n in (
    "GenerationConfig", "ThinkingConfig", "Schema", "SafetySetting", "Tool", "FunctionDeclaration"))
_EMBED = _Msg("EmbedContentRequest")
_COUNT = _Msg("CountTokensRequest")

_REQUEST.define(
    model=(_str, None), contents=(*_sub(_CONTENT), True), systemInstruction=_sub(_CONTENT),
    generationConfig=_sub(_CONFIG), safetySettings=(*_sub(_SAFETY), True),
    tools=(*_sub(_TOOL), True), toolConfig=(_loose, "ToolConfig"), cachedContent=(_str, None),
    labels=(_any, None), serviceTier=(_enum, _ANY_ENUM), store=(_bool, None),
)
_CONTENT.define(parts=(*_sub(_PART), True), role=(_str, None))
_PART.define(
    text=(_str, None), inlineData=_sub(_BLOB), fileData=_sub(_FILE_DATA),
    functionCall=_sub(_FUNCTION_CALL), functionResponse=_sub(_FUNCTION_RESPONSE),
    executableCode=_sub(_CODE), codeExecutionResult=_sub(_CODE_RESULT), thought=(_bool, None),
    thoughtSignature=(_bytes, None), videoMetadata=(_loose, "VideoMetadata"),
    mediaResolution=(_loose, "MediaResolution"), partMetadata=(_any, None),
    toolCall=(_loose, "ToolCall"), toolResponse=(_loose, "ToolResponse"),
)
_BLOB.define(mimeType=(_str, None), data=(_bytes, None), displayName=(_str, None))
_FILE_DATA.define(mimeType=(_str, None), fileUri=(_str, None), displayName=(_str, None))
_FUNCTION_CALL.define(id=(_str, None), name=(_str, None), args=(_any, None))
_FUNCTION_RESPONSE.define(
    id=(_str, None), name=(_str, None), response=(_any, None),
    parts=(_loose, "FunctionResponsePart", True), willContinue=(_bool, None),
    scheduling=(_enum, _ANY_ENUM),
)
_CODE.define(id=(_str, None), language=(_enum, _ANY_ENUM), code=(_str, None))
_CODE_RESULT.define(id=(_str, None), outcome=(_enum, _ANY_ENUM), output=(_str, None))
_CONFIG.define(
    stopSequences=(_str, None, True), responseMimeType=(_str, None),
    responseSchema=_sub(_SCHEMA), responseJsonSchema=(_any, None),
    responseModalities=(_enum, _ANY_ENUM, True), candidateCount=(_int, 32),
    maxOutputTokens=(_int, 32), temperature=(_float, None), topP=(_float, None), topK=(_int, 32),
    seed=(_int, 32), presencePenalty=(_float, None), frequencyPenalty=(_float, None),
    responseLogprobs=(_bool, None), logprobs=(_int, 32),
    enableEnhancedCivicAnswers=(_bool, None),
    speechConfig=(_loose, "SpeechConfig"), thinkingConfig=_sub(_THINKING),
    imageConfig=(_loose, "ImageConfig"), mediaResolution=(_enum, _ANY_ENUM),
    audioTranscriptionConfig=(_loose, "AudioTranscriptionConfig"),
    responseFormat=(_loose, "ResponseFormat"), enableAffectiveDialog=(_bool, None),
)
_THINKING.define(includeThoughts=(_bool, None), thinkingBudget=(_int, 32),
                 thinkingLevel=(_enum, _ANY_ENUM))
_SCHEMA.define(
    type=(_schema_type, None), format=(_str, None), title=(_str, None), description=(_str, None),
    nullable=(_bool, None), enum=(_str, None, True), maxItems=(_int, 64), minItems=(_int, 64),
    properties=(_map, _SCHEMA), required=(_str, None, True), minProperties=(_int, 64),
    maxProperties=(_int, 64), minLength=(_int, 64), maxLength=(_int, 64), pattern=(_str, None),
    example=(_any, None), anyOf=(*_sub(_SCHEMA), True), propertyOrdering=(_str, None, True),
    default=(_any, None), items=_sub(_SCHEMA), minimum=(_float, None), maximum=(_float, None),
)
_SAFETY.define(category=(_enum, _HARM_CATEGORIES), threshold=(_enum, _THRESHOLDS))
_TOOL.define(
    functionDeclarations=(*_sub(_FUNCTION), True), googleSearch=(_loose, "GoogleSearch"),
    googleSearchRetrieval=(_loose, "GoogleSearchRetrieval"),
    codeExecution=(_loose, "CodeExecution"), urlContext=(_loose, "UrlContext"),
    computerUse=(_loose, "ComputerUse"), fileSearch=(_loose, "FileSearch"),
    googleMaps=(_loose, "GoogleMaps"), mcpServers=(_any, None),
)
_FUNCTION.define(
    name=(_str, None), description=(_str, None), behavior=(_enum, _ANY_ENUM),
    parameters=_sub(_SCHEMA), parametersJsonSchema=(_any, None), response=_sub(_SCHEMA),
    responseJsonSchema=(_any, None),
)
_EMBED.define(model=(_str, None), content=_sub(_CONTENT), taskType=(_enum, _TASK_TYPES),
              title=(_str, None), outputDimensionality=(_int, 32))
_COUNT.define(contents=(*_sub(_CONTENT), True), generateContentRequest=_sub(_REQUEST))


# -- validation ------------------------------------------------------------------------------------
_DATA_FIELDS = frozenset({"text", "inlineData", "fileData", "functionCall", "functionResponse",
                          "executableCode", "codeExecutionResult", "toolCall", "toolResponse"})
_RANGES = (("candidateCount", "candidate_count", 1, 8),
           ("maxOutputTokens", "max_output_tokens", 1, None),
           ("temperature", "temperature", 0, 2), ("topP", "top_p", 0, 1))
_MIME_TYPES = frozenset({"text/plain", "application/json", "application/xml", "application/yaml",
                         "text/x.enum"})


def _invalid(root: str, where: str, message: str) -> ApiError:
    return ApiError(400, f"* {root}.{where}: {message}\n")


def _check_content(content: dict[str, Any], where: str, root: str) -> None:
    parts = content.get("parts")
    if not parts:
        raise _invalid(root, f"{where}.parts", "contents.parts must not be empty.")
    for i, part in enumerate(parts):
        if len(part) == 1 and part.get("text"):  # the usual part, checked fast
            continue
        data = [name for name in part if name in _DATA_FIELDS and part[name] != ""]
        if len(data) > 1:
            raise ApiError(400, "Invalid JSON payload received. Oneof field 'data' is already set. "
                                f"Cannot set '{_snake(data[1])}'")
        if not data:
            raise _invalid(root, f"{where}.parts[{i}].data",
                           "required oneof field 'data' must have one initialized field")


def _check_contents(request: dict[str, Any], root: str) -> None:
    contents = request.get("contents")
    if not contents:
        raise _invalid(root, "contents", "contents is not specified")
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
            raise _invalid(root, f"{where}.{snake}", f"{snake} must be {allowed} (got {value}).")
    mime = config.get("responseMimeType")
    if mime is not None and mime not in _MIME_TYPES:
        raise _invalid(root, f"{where}.response_mime_type", "allowed mimetypes are "
                       "`text/plain`, `application/json`, `application/xml`, `application/yaml` "
                       "and `text/x.enum`.")
    has_schema, has_json_schema = "responseSchema" in config, "responseJsonSchema" in config
    if has_json_schema and not isinstance(config["responseJsonSchema"], (dict, bool)):
        raise _invalid(root, f"{where}.response_json_schema", "response_json_schema must be a "
                       "JSON Schema object.")
    if has_schema and has_json_schema:
        raise _invalid(root, f"{where}.response_json_schema", "response_json_schema and "
                       "response_schema cannot both be set; use one of them.")
    if has_json_schema and mime != "application/json":
        raise _invalid(root, f"{where}.response_json_schema", "response_mime_type must be "
                       "`application/json` when response_json_schema is set.")
    if has_schema and mime not in ("application/json", "text/x.enum"):
        raise _invalid(root, f"{where}.response_schema", "response_mime_type must be "
                       "`application/json` or `text/x.enum` when response_schema is set.")


def validate_generate_request(request: dict[str, Any]) -> dict[str, Any]:
    """Check a GenerateContentRequest (parsed wire JSON); return it with lowerCamelCase keys.

    Raises ``ApiError(400)`` in the service's wording for what the service refuses. The result
    shares nested user data (schemas, function arguments) with ``request``: treat both as read-only.

    >>> validate_generate_request({"contents": {"parts": {"text": "Hi"}},
    ...                            "generation_config": {"max_output_tokens": 5}})
    {'contents': [{'parts': [{'text': 'Hi'}]}], 'generationConfig': {'maxOutputTokens': 5}}
    """
    return _validate_generate(request, None, "GenerateContentRequest")


def _validate_generate(request: Any, path: _Path, root: str) -> dict[str, Any]:
    normal = _message(request, _REQUEST, path)
    _check_generate(normal, root)
    return normal


def _check_generate(normal: dict[str, Any], root: str) -> None:
    _check_contents(normal, root)
    if "generationConfig" in normal:
        _check_config(normal["generationConfig"], root)


def validate_embed_request(request: dict[str, Any]) -> dict[str, Any]:
    """Check an EmbedContentRequest (parsed wire JSON); return it with lowerCamelCase keys.

    >>> validate_embed_request({"content": {"parts": [{"text": "Hi"}]}, "task_type": "CLUSTERING"})
    {'content': {'parts': [{'text': 'Hi'}]}, 'taskType': 'CLUSTERING'}
    """
    normal = _message(request, _EMBED, None)
    content = normal.get("content")
    if content is None:
        raise _invalid("EmbedContentRequest", "content", "content is not specified")
    _check_content(content, "content", "EmbedContentRequest")
    dims = normal.get("outputDimensionality")
    if dims is not None and not 1 <= dims <= _MAX_DIMENSIONS:
        raise _invalid("EmbedContentRequest", "output_dimensionality", "output_dimensionality "
                       f"must be between 1 and {_MAX_DIMENSIONS} (got {dims}).")
    return normal


# -- prompt facts and tokens -----------------------------------------------------------------------
class _Prompt:
    """What the fake model reads from a request: texts, attachments, directives, prompt tokens."""

    __slots__ = ("attachments", "details", "directive_text", "system_text", "tokens", "user_text")

    def __init__(self, request: dict[str, Any]) -> None:
        self.attachments: list[str] = []
        self.details: dict[str, int] = {"TEXT": 0}
        self.user_text = ""
        texts: list[str] = []
        for content in request["contents"]:
            text = self._scan(content["parts"])
            if text is not None:
                texts.append(text)
                if content.get("role", "user") == "user":
                    self.user_text = text
        self.directive_text = "\n".join(texts)
        system = request.get("systemInstruction")
        self.system_text = (self._scan(system["parts"], media=False) or "") if system else ""
        self.tokens = sum(self.details.values())

    def _scan(self, parts: list[dict[str, Any]], media: bool = True) -> str | None:
        """Count the parts' tokens into ``details``; return their joined text (None if none)."""
        texts: list[str] = []
        details = self.details
        for part in parts:
            text = part.get("text")
            if text is not None:
                texts.append(text)
                details["TEXT"] += (len(text) + 3) // 4
                continue
            blob = part.get("inlineData") or part.get("fileData")
            if blob is not None:
                mime = blob.get("mimeType", "application/octet-stream")
                if media:
                    self.attachments.append(mime)
                modality = _modality(mime)
                details[modality] = details.get(modality, 0) + TOKENS_PER_MEDIA_PART
            else:
                details["TEXT"] += count_text_tokens(_canonical(part))
        return " ".join(texts) if texts else None


_MODALITIES = {"image": "IMAGE", "video": "VIDEO", "audio": "AUDIO", "text": "TEXT"}


def _modality(mime: str) -> str:
    return _MODALITIES.get(mime.split("/", 1)[0], "DOCUMENT")


_canonical: Callable[[Any], str] = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode
_compact: Callable[[Any], str] = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _details(prompt: _Prompt) -> list[dict[str, Any]]:
    return [{"modality": m, "tokenCount": n} for m, n in prompt.details.items()]


def count_tokens(model: str, request: dict[str, Any]) -> dict[str, Any]:
    """Answer ``models/{m}:countTokens``: body ``{"contents"}`` or ``{"generateContentRequest"}``.

    ``totalTokens`` equals the promptTokenCount ``generate_content`` reports for the same request.

    >>> body = {"contents": [{"parts": [{"text": "abcde"}]}]}
    >>> count_tokens("gemini-2.5-flash", body)["totalTokens"]
    2
    """
    normal = _message(request, _COUNT, None)
    if "generateContentRequest" in normal:
        if "contents" in normal:
            raise _invalid("CountTokensRequest", "contents", "only one of contents and "
                           "generate_content_request may be set.")
        normal = normal["generateContentRequest"]
        _check_generate(normal, "CountTokensRequest.generate_content_request")
    else:
        _check_contents(normal, "CountTokensRequest")
    prompt = _Prompt(normal)
    return {"totalTokens": prompt.tokens, "promptTokensDetails": _details(prompt)}


# -- generation ------------------------------------------------------------------------------------
_VOCAB = (  # 64 words: a random byte & 63 picks one without bias
    "amber", "basalt", "cobalt", "delta", "ember", "fjord", "granite", "harbor", "indigo",
    "juniper", "kestrel", "lagoon", "meadow", "nebula", "orchid", "prairie", "quartz", "raven",
    "saffron", "tundra", "umber", "valley", "willow", "xenon", "yarrow", "zephyr", "anchor",
    "beacon", "canyon", "dune", "estuary", "falcon", "glacier", "heron", "island", "jasper", "kelp",
    "lichen", "mesa", "nectar", "ocean", "pebble", "quill", "river", "summit", "thistle", "upland",
    "vapor", "wharf", "yonder", "zenith", "alpine", "brook", "cedar", "dawn", "elm", "fern",
    "grove", "hollow", "ivy", "jade", "knoll", "lantern", "maple",
)
_DIRECTIVE_RE = re.compile(r"\[\[(error|finish|block|parts)(?::([A-Za-z0-9_]+))?\]\]")
_ERROR_MESSAGES = {
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
_RATED_CATEGORIES = ("HARM_CATEGORY_SEXUALLY_EXPLICIT", "HARM_CATEGORY_HATE_SPEECH",
                     "HARM_CATEGORY_HARASSMENT", "HARM_CATEGORY_DANGEROUS_CONTENT")
_VERSION_RE = re.compile(r"gemini-(\d+(?:\.\d+)?)")


def _directives(prompt: _Prompt) -> dict[str, str]:
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
    message = _ERROR_MESSAGES.get(code, f"The emulator was asked to fail this request with {code}.")
    raise ApiError(code, message)


def _usage(prompt: _Prompt, candidates: int, thoughts: int) -> dict[str, Any]:
    return {
        "promptTokenCount": prompt.tokens, "candidatesTokenCount": candidates,
        "totalTokenCount": prompt.tokens + candidates + thoughts, "thoughtsTokenCount": thoughts,
        "cachedContentTokenCount": 0, "promptTokensDetails": _details(prompt),
    }


class _Draws:
    """The seeded choices of one request.

    Words come from a SHAKE-256 stream of the seed (one byte each, cheap enough for a million
    lines); everything else (structured values, safety ratings) from ``random.Random(seed)``, made
    on first use because seeding a Mersenne Twister costs as much as the rest of a plain answer.
    """

    __slots__ = ("_rng", "pos", "seed", "stream")

    def __init__(self, seed: bytes) -> None:
        self.seed, self.stream, self.pos = seed, b"", 0
        self._rng: random.Random | None = None

    @property
    def rng(self) -> random.Random:
        if self._rng is None:
            self._rng = random.Random(int.from_bytes(self.seed, "big"))
        return self._rng

    def words(self) -> str:
        """8-40 words of the 64-word vocabulary: one byte for the count, one per word."""
        pos = self.pos
        if pos + 41 > len(self.stream):  # SHAKE output is prefix-stable: a longer read extends it
            self.stream = hashlib.shake_256(self.seed).digest(2 * len(self.stream) + 164)
        data = self.stream[pos: pos + 41]
        count = 8 + data[0] % 33
        self.pos = pos + 1 + count
        return " ".join([_VOCAB[b & 63] for b in data[1: 1 + count]])


def _safety_ratings(rng: random.Random) -> list[dict[str, Any]]:
    flagged = rng.randrange(len(_RATED_CATEGORIES))
    return [{"category": c, "probability": "HIGH", "blocked": True} if i == flagged
            else {"category": c, "probability": "NEGLIGIBLE"}
            for i, c in enumerate(_RATED_CATEGORIES)]


def _thinks(model: str, thinking: dict[str, Any]) -> bool:
    """Whether the model thinks: gemini-2.5 and later, unless thinkingBudget is 0."""
    return thinking.get("thinkingBudget") != 0 and _thinking_model(model)


@functools.lru_cache(maxsize=64)
def _thinking_model(model: str) -> bool:
    match = _VERSION_RE.search(model)
    return match is not None and float(match.group(1)) >= 2.5


def _head(prompt: _Prompt) -> str:
    system = f"[system: {prompt.system_text[:40]}] " if prompt.system_text else ""
    n = len(prompt.attachments)
    attached = ""
    if n:
        attached = f" (with {n} attachment{'s' if n > 1 else ''}: {', '.join(prompt.attachments)})"
    return f'{system}Answer to "{prompt.user_text[:80]}"{attached}: '


def _answer(draws: _Draws, head: str, prompt: _Prompt, config: dict[str, Any]) -> str:
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
        return _compact({"answer": text})
    alphabetical = "responseSchema" in config  # as the service orders responseSchema output
    maker = _ValueMaker(draws.rng, prompt.user_text[:24], schema, alphabetical)
    return _compact(maker.make(schema, 0))


def _split(text: str, n: int) -> list[dict[str, Any]]:
    """``text`` as n non-empty text parts (fewer if it is shorter than n characters)."""
    n = max(1, min(n, len(text)))
    cuts = [len(text) * i // n for i in range(n + 1)]
    return [{"text": text[a:b]} for a, b in pairwise(cuts)]


def generate_content(model: str, request: dict[str, Any]) -> dict[str, Any]:
    """The wire GenerateContentResponse the fake model gives ``request`` (validated first).

    >>> r = generate_content("gemini-2.5-flash", {"contents": [{"parts": [{"text": "abcd"}]}]})
    >>> r["candidates"][0]["finishReason"], r["usageMetadata"]["promptTokenCount"]
    ('STOP', 1)
    """
    normal = validate_generate_request(request)
    name = model.removeprefix("models/")
    prompt = _Prompt(normal)
    directives = _directives(prompt)
    if "error" in directives:
        _raise_error_directive(directives["error"])
    hashed = {k: v for k, v in normal.items() if k != "model"} if "model" in normal else normal
    seed = hashlib.sha256(f"{_canonical(hashed)}\n{name}".encode()).digest()
    draws = _Draws(seed)
    response: dict[str, Any] = {}
    if "block" in directives:
        response["promptFeedback"] = {"blockReason": directives["block"] or "SAFETY",
                                      "safetyRatings": _safety_ratings(draws.rng)}
        response["usageMetadata"] = {"promptTokenCount": prompt.tokens,
                                     "totalTokenCount": prompt.tokens,
                                     "promptTokensDetails": _details(prompt)}
    else:
        response["candidates"], response["usageMetadata"] = _candidates(
            draws, name, normal.get("generationConfig", {}), prompt, directives)
    response["modelVersion"] = name
    response["responseId"] = base64.urlsafe_b64encode(seed[:16]).decode().rstrip("=")
    return response


def _candidates(draws: _Draws, model: str, config: dict[str, Any], prompt: _Prompt,
                directives: dict[str, str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
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
        return [candidate], _usage(prompt, 0, thoughts)
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
        candidates.append({"content": {"role": "model", "parts": parts},
                           "finishReason": reason, "index": index})
    return candidates, _usage(prompt, answer_tokens, thoughts)


# -- structured output -----------------------------------------------------------------------------
_MAX_DEPTH = 6
_FORMATS: dict[str, Callable[[random.Random], str]] = {
    "date-time": lambda r: f"2025-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}T"
                           f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:00Z",
    "date": lambda r: f"2025-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}",
    "time": lambda r: f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:00Z",
    "email": lambda r: f"{r.choice(_VOCAB)}@example.com",
    "uri": lambda r: f"https://example.com/{r.choice(_VOCAB)}",
    "uuid": lambda r: str(uuid.UUID(int=r.getrandbits(128), version=4)),
}
_FORMATS["url"] = _FORMATS["uri"]
_KINDS = frozenset({"string", "integer", "number", "boolean", "array", "object", "null"})
_LOWER = {"minimum", "minLength", "minItems", "minProperties", "exclusiveMinimum"}
_UPPER = {"maximum", "maxLength", "maxItems", "maxProperties", "exclusiveMaximum"}


class _ValueMaker:
    """Seeded values that validate against an OpenAPI-subset or JSON Schema (best effort).

    Objects get every property, in ``propertyOrdering`` order, then (OpenAPI schemas) alphabetical
    or (JSON Schema) schema order; the first string is the prompt excerpt, later ones start with it;
    numbers stay within their bounds; arrays have 1-3 items within minItems/maxItems. Not honoured:
    ``pattern``, ``not``, ``if``/``then``, ``dependentSchemas``, float ``multipleOf``.
    """

    def __init__(self, rng: random.Random, excerpt: str, root: Any, alphabetical: bool) -> None:
        self.rng, self.excerpt, self.root = rng, excerpt, root
        self.alphabetical = alphabetical
        self.strings = 0

    def make(self, schema: Any, depth: int) -> Any:
        schema = self._resolve(schema)
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return self.rng.choice(schema["enum"])
        for key in ("anyOf", "oneOf"):
            if schema.get(key):
                return self._branch(schema, key, depth)
        kind = _kind(schema)
        if kind == "null" or depth > 3 * _MAX_DEPTH:
            return None
        maker: Callable[[dict[str, Any], int], Any] = getattr(self, "_" + kind)
        return maker(schema, depth)

    def _resolve(self, schema: Any) -> dict[str, Any]:
        """The schema with ``$ref`` and ``allOf`` folded in (True/None: {}; False: "not")."""
        if schema is True or schema is None:
            return {}
        if schema is False:
            return {"not": {}}
        for _ in range(32):  # a chain of refs longer than this is a cycle
            if "$ref" in schema:
                rest = {k: v for k, v in schema.items() if k != "$ref"}
                schema = _merge(rest, self._lookup(schema["$ref"]))
            elif "allOf" in schema:
                rest = {k: v for k, v in schema.items() if k != "allOf"}
                for sub in schema["allOf"]:
                    rest = _merge(rest, sub if isinstance(sub, dict) else {})
                schema = rest
            else:
                break
        return schema  # type: ignore[no-any-return]

    def _lookup(self, ref: str) -> dict[str, Any]:
        node: Any = self.root
        for token in ref.lstrip("#").split("/"):
            if token:
                token = token.replace("~1", "/").replace("~0", "~")
                node = node.get(token) if isinstance(node, dict) else None
        return node if isinstance(node, dict) else {}

    def _branch(self, schema: dict[str, Any], key: str, depth: int) -> Any:
        """anyOf/oneOf: the first branch that is not null (null deep in a recursive schema)."""
        branches = [self._resolve(b) for b in schema[key]]
        rest = {k: v for k, v in schema.items() if k != key}
        nulls = [b for b in branches if _kind(b) == "null"]
        others = [b for b in branches if _kind(b) != "null"]
        chosen = nulls[0] if nulls and (depth > _MAX_DEPTH or not others) else others[0]
        return self.make(_merge(rest, chosen), depth + 1)

    def _string(self, schema: dict[str, Any], depth: int) -> str:
        rng = self.rng
        fmt = schema.get("format")
        if fmt in _FORMATS:
            return _FORMATS[fmt](rng)
        self.strings += 1
        text = self.excerpt
        if self.strings > 1:
            text = f"{text} {rng.choice(_VOCAB)}".lstrip()
        while len(text) < schema.get("minLength", 0):
            text += " " + rng.choice(_VOCAB)
        if schema.get("maxLength") is not None:
            text = text[: int(schema["maxLength"])]
        return text

    def _integer(self, schema: dict[str, Any], depth: int) -> int:
        low, high = _bounds(schema, True)
        step = schema.get("multipleOf")
        if isinstance(step, int) and step > 0:
            first, last = -(-low // step), high // step
            return (self.rng.randint(first, last) if first <= last else first) * step
        return self.rng.randint(int(low), int(high)) if low <= high else int(low)

    def _number(self, schema: dict[str, Any], depth: int) -> float:
        if isinstance(schema.get("multipleOf"), int):
            return float(self._integer(schema, depth))
        low, high = _bounds(schema, False)
        value = round(self.rng.uniform(low, high), 2)
        if not low <= value <= high:
            value = (low + high) / 2
        return value

    def _boolean(self, schema: dict[str, Any], depth: int) -> bool:
        return self.rng.random() < 0.5

    def _array(self, schema: dict[str, Any], depth: int) -> list[Any]:
        low = int(schema.get("minItems", 0))
        high = schema.get("maxItems")
        prefix = schema.get("prefixItems") or []
        items = schema.get("items", {})
        if isinstance(items, list):  # draft 4 tuple form
            prefix, items = items, schema.get("additionalItems", {})
        most = max(low, 1 if depth > _MAX_DEPTH else 3)
        if high is not None:
            most = min(most, int(high))
        if items is False:
            most = min(most, len(prefix))
        least = min(max(low, 0 if depth > _MAX_DEPTH else 1), most)
        count = self.rng.randint(least, most) if least <= most else least
        out: list[Any] = []
        seen: set[str] = set()
        for i in range(count):
            sub = prefix[i] if i < len(prefix) else items
            for _ in range(8 if schema.get("uniqueItems") else 1):
                value = self.make(sub, depth + 1)
                key = _canonical(value)
                if key not in seen:
                    break
            seen.add(key)
            out.append(value)
        if schema.get("uniqueItems"):
            out = list({_canonical(v): v for v in out}.values())
        return out

    def _object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        props = schema.get("properties") or {}
        required = list(schema.get("required") or [])
        extra = schema.get("additionalProperties", True)
        order = [n for n in schema.get("propertyOrdering") or [] if n in props]
        order += sorted(props) if self.alphabetical else list(props)
        keep = required if depth > _MAX_DEPTH else list(dict.fromkeys(order + required))
        spare = extra if isinstance(extra, dict) else {}
        out: dict[str, Any] = {}
        for name in keep:
            sub = props.get(name, spare)
            if sub is not False:
                out[name] = self.make(sub, depth + 1)
        want = int(schema.get("minProperties", 0))
        if not props and spare and depth <= _MAX_DEPTH:  # a map such as dict[str, int]
            want = max(want, 1)
        while len(out) < want and extra is not False:
            name = next(f"key{i}" for i in range(1, len(out) + 2) if f"key{i}" not in out)
            out[name] = self.make(spare, depth + 1)
        cap = schema.get("maxProperties")
        for name in [n for n in reversed(list(out)) if n not in required]:
            if cap is None or len(out) <= cap:
                break
            del out[name]
        return out


def _kind(schema: dict[str, Any]) -> str:
    """The JSON type a value for ``schema`` gets (lowercase); inferred when ``type`` is missing."""
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if str(k).lower() != "null"), "null")
    if isinstance(kind, str) and kind.lower() in _KINDS:
        return kind.lower()
    if "properties" in schema or "additionalProperties" in schema or "required" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    if any(k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")):
        return "number"
    return "string"


def _bounds(schema: dict[str, Any], integer: bool) -> tuple[Any, Any]:
    """Inclusive [low, high] for a number (exclusive bounds moved inwards), 100 wide if open."""
    low, high = schema.get("minimum"), schema.get("maximum")
    ex_low, ex_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if ex_low is True:  # draft 4: a flag on minimum
        ex_low, low = low, None
    if ex_high is True:
        ex_high, high = high, None
    nudge = 1 if integer else 0.01
    if isinstance(ex_low, (int, float)) and not isinstance(ex_low, bool):
        low = max(low, ex_low + nudge) if low is not None else ex_low + nudge
    if isinstance(ex_high, (int, float)) and not isinstance(ex_high, bool):
        high = min(high, ex_high - nudge) if high is not None else ex_high - nudge
    if low is None:
        low = 0 if high is None or high >= 100 else high - 100
    if high is None:
        high = low + 100
    if integer:
        return math.ceil(low), math.floor(high)
    return low, high


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Both schemas at once (for allOf, ``$ref`` with siblings, a branch with its parent)."""
    out = dict(a)
    for key, value in b.items():
        if key not in out:
            out[key] = value
        elif key == "properties":
            merged = dict(out[key])
            for name, sub in value.items():
                merged[name] = {"allOf": [merged[name], sub]} if name in merged else sub
            out[key] = merged
        elif key == "required":
            out[key] = list(dict.fromkeys([*out[key], *value]))
        elif key in _LOWER and isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = max(out[key], value)
        elif key in _UPPER and isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = min(out[key], value)
        elif key == "type" and isinstance(out[key], list):
            both = [t for t in out[key] if t in (value if isinstance(value, list) else [value])]
            out[key] = both or value
        else:
            out[key] = value
    return out


# -- embeddings ------------------------------------------------------------------------------------
_MAX_DIMENSIONS = 3072
_SQUARES = tuple((2 * b - 255) ** 2 for b in range(256))


def embed_content(model: str, request: dict[str, Any]) -> dict[str, Any]:
    """The wire EmbedContentResponse: a deterministic unit vector for (text, taskType, title).

    >>> v = embed_content("models/gemini-embedding-001", {"content": {"parts": [{"text": "Hi"}]},
    ...                   "outputDimensionality": 8})["embedding"]["values"]
    >>> len(v), round(sum(x * x for x in v), 6)
    (8, 1.0)
    """
    normal = validate_embed_request(request)
    name = model.removeprefix("models/")
    default = 768 if name.startswith(("text-embedding", "embedding-001")) else _MAX_DIMENSIONS
    dims = normal.get("outputDimensionality", default)
    text = "\n".join(p["text"] for p in normal["content"]["parts"] if "text" in p)
    key = _canonical([text, normal.get("taskType", ""), normal.get("title", "")])
    digest = hashlib.shake_256(key.encode()).digest(dims)  # byte b -> 2b - 255, then normalised
    scale = 1 / math.sqrt(sum(map(_SQUARES.__getitem__, digest)))
    table = [(2 * b - 255) * scale for b in range(256)]
    return {"embedding": {"values": list(map(table.__getitem__, digest))}}
