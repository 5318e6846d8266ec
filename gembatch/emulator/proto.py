"""Proto-JSON parsing of request messages: the field tree, value types, keys to lowerCamelCase.

The service parses request JSON as protobuf messages. ``parse`` walks one message of the tree
below (GenerateContentRequest, EmbedContentRequest, CountTokensRequest), refuses unknown fields and
wrong value types with the service's wording, drops nulls, and returns the message with
lowerCamelCase keys. Values that are user data (``responseJsonSchema``, function-call ``args``,
the property names of a ``responseSchema``) are kept verbatim.

Field names: the HTTP layer accepts both spellings (``generationConfig`` and
``generation_config``); ``snake=True`` accepts only proto field names (snake_case), as the batch
service's JSONL parser is reported to. Errors are ``ProtoError`` (an ``ApiError`` 400) naming the
JSON key at fault, so a JSONL check can say ``no such field: 'thinking_config'``.

Example::

    >>> parse({"contents": {"parts": {"text": "Hi"}}}, REQUEST)
    {'contents': [{'parts': [{'text': 'Hi'}]}]}
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from gembatch.emulator.errors import ApiError

__all__ = ["COUNT", "EMBED", "REQUEST", "SCHEMA", "ProtoError", "parse", "render_path", "snake"]

# A field path is nested tuples (parent, snake_name, index), rendered only for an error message.
_Path = Any
_Check = Callable[[Any, Any, _Path, bool], Any]
_PREFIX = "type.googleapis.com/google.ai.generativelanguage.v1beta."


class ProtoError(ApiError):
    """A request the proto-JSON parser refuses: ``key`` is the JSON key at fault, ``reason`` a
    short description (``no such field: 'x'``) for a JSONL line report."""

    def __init__(self, message: str, key: str, reason: str) -> None:
        super().__init__(400, message)
        self.key, self.reason = key, reason


class _Msg:
    """A proto message: field name -> (camel, snake, check, arg, repeated), for both spellings
    (``fields``) and for proto names only (``snake_fields``)."""

    __slots__ = ("fields", "snake_fields", "type_name")

    def __init__(self, name: str) -> None:
        self.type_name = _PREFIX + name
        self.fields: dict[str, tuple[str, str, _Check, Any, bool]] = {}
        self.snake_fields: dict[str, tuple[str, str, _Check, Any, bool]] = {}

    def define(self, **fields: tuple[Any, ...]) -> None:
        for camel, (check, arg, *repeated) in fields.items():
            name = snake(camel)
            entry = (camel, name, check, arg, bool(repeated))
            self.fields[camel] = self.fields[name] = self.snake_fields[name] = entry


def snake(name: str) -> str:
    """The proto field name of a lowerCamelCase JSON name (``maxOutputTokens`` ->
    ``max_output_tokens``)."""
    return re.sub(r"[A-Z]", lambda m: "_" + m.group().lower(), name)


def render_path(path: _Path) -> str:
    """A field path as the service prints it: ``contents[0].parts[1]``."""
    parts: list[str] = []
    while path:
        path, name, index = path
        parts.append(name if index is None else f"{name}[{index}]")
    return ".".join(reversed(parts))


def _unknown(key: str, path: _Path, why: str = "Cannot find field.") -> ProtoError:
    where = f" at '{render_path(path)}'" if path else ""
    return ProtoError(
        f'Invalid JSON payload received. Unknown name "{key}"{where}: {why}',
        key,
        f"no such field: '{key}'",
    )


def _bad_value(path: _Path, type_name: str, value: Any) -> ProtoError:
    parent, name, _ = path
    if isinstance(value, dict):
        return _unknown(name, parent, "Starting an object on a scalar field.")
    shown = json.dumps(value, ensure_ascii=False)
    return ProtoError(
        f"Invalid value at '{render_path(path)}' ({type_name}), {shown}",
        name,
        f"invalid value for field '{name}': {shown[:40]}",
    )


def parse(value: Any, spec: _Msg, *, snake: bool = False) -> dict[str, Any]:
    """Normalise the root message ``value`` of type ``spec`` (see the module docstring)."""
    return _message(value, spec, None, snake)


def _message(value: Any, spec: _Msg, path: _Path, snake: bool) -> dict[str, Any]:
    """Normalise one message: camelCase keys, checked values, nulls dropped."""
    if not isinstance(value, dict):
        if path is None:
            raise ProtoError(
                'Invalid JSON payload received. Unknown name "": Root element must be a message.',
                "",
                "a request must be a JSON object",
            )
        raise _bad_value(path, spec.type_name, value)
    out: dict[str, Any] = {}
    fields = spec.snake_fields if snake else spec.fields
    for key, item in value.items():
        field = fields.get(key)
        if field is None:
            raise _unknown(key, path)
        if item is None:
            continue
        camel, name, check, arg, repeated = field
        if repeated:  # the service also takes a lone value for a repeated field
            items = item if type(item) is list else [item]
            out[camel] = [check(x, arg, (path, name, i), snake) for i, x in enumerate(items)]
        elif check is _str and type(item) is str:  # the commonest field, checked inline
            out[camel] = item
        elif type(item) is list and check is not _any:
            raise _unknown(key, path, "Proto field is not repeating, cannot start list.")
        else:
            out[camel] = check(item, arg, (path, name, None), snake)
    return out


def _str(value: Any, arg: Any, path: _Path, snake: bool) -> str:
    if type(value) is str:
        return value
    raise _bad_value(path, "TYPE_STRING", value)


def _bool(value: Any, arg: Any, path: _Path, snake: bool) -> bool:
    if type(value) is bool:
        return value
    raise _bad_value(path, "TYPE_BOOL", value)


_INT_RE = re.compile(r"-?\d+")


def _int(value: Any, bits: int, path: _Path, snake: bool) -> int:
    """int32/int64: a JSON integer, an integral float or a decimal string (proto3 JSON)."""
    number: int | None = None
    if (
        type(value) is int
        or (type(value) is str and _INT_RE.fullmatch(value))
        or (type(value) is float and value.is_integer())
    ):
        number = int(value)
    if number is None or not -(2 ** (bits - 1)) <= number < 2 ** (bits - 1):
        raise _bad_value(path, f"TYPE_INT{bits}", value)
    return number


def _float(value: Any, arg: Any, path: _Path, snake: bool) -> float:
    """float/double: a JSON number or a numeric string; always a float, so 1 and 1.0 seed alike."""
    if type(value) is float or type(value) is int:
        return float(value)
    if type(value) is str:
        try:
            return float(value)
        except ValueError:
            pass
    raise _bad_value(path, "TYPE_FLOAT", value)


def _enum(value: Any, allowed: tuple[str, frozenset[str]], path: _Path, snake: bool) -> str:
    name, values = allowed
    if type(value) is str and (not values or value in values):
        return value
    raise _bad_value(path, _PREFIX + name, value)


_B64_RE = re.compile(r"[A-Za-z0-9+/_-]*={0,2}")


def _bytes(value: Any, arg: Any, path: _Path, snake: bool) -> str:
    if type(value) is str and _B64_RE.fullmatch(value.replace("\n", "")):
        return value
    if type(value) is str:
        shown = json.dumps(value[:40], ensure_ascii=False)
        raise ProtoError(
            f"Invalid value at '{render_path(path)}' (TYPE_BYTES), Base64 decoding "
            f"failed for {shown}",
            path[1],
            "invalid base64 data",
        )
    raise _bad_value(path, "TYPE_BYTES", value)


def _any(value: Any, arg: Any, path: _Path, snake: bool) -> Any:
    """A google.protobuf.Value/Struct (user data): kept verbatim."""
    return value


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def _loose(value: Any, arg: Any, path: _Path, snake: bool) -> Any:
    """A message the emulator does not model field by field: keys camelCased, values kept
    (with ``snake``, a key with an upper-case letter is not a proto field name: refused).
    ``arg`` names the message type on the outermost call and is None on the nested ones."""
    if arg is not None and type(value) is not dict:
        raise _bad_value(path, _PREFIX + str(arg), value)
    if type(value) is dict:
        out = {}
        for key, item in value.items():
            if snake and key != key.lower():
                raise _unknown(key, path)
            out[_camel(key)] = _loose(item, None, (path, key, None), snake)
        return out
    if type(value) is list:
        return [_loose(v, None, path, snake) for v in value]
    return value


def _schema_type(value: Any, arg: Any, path: _Path, snake: bool) -> str:
    if type(value) is str and value.upper() in _SCHEMA_TYPES:
        return value
    raise _bad_value(path, _PREFIX + "Type", value)


def _map(value: Any, spec: _Msg, path: _Path, snake: bool) -> dict[str, Any]:
    """A map<string, message> (Schema.properties): keys are user data, values messages."""
    if type(value) is not dict:
        raise _bad_value(path, spec.type_name, value)
    parent, name, _ = path
    return {
        k: _message(v, spec, ((parent, name, i), "value", None), snake)
        for i, (k, v) in enumerate(value.items())
    }


def _sub(spec: _Msg) -> tuple[_Check, _Msg]:
    return (_message, spec)


# The message tree, a table: one field per entry, (check, arg[, repeated]).
# fmt: off
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

REQUEST, _CONTENT, _PART, _BLOB, _FILE_DATA = (_Msg(n) for n in (
    "GenerateContentRequest", "Content", "Part", "Blob", "FileData"))
_FUNCTION_CALL, _FUNCTION_RESPONSE, _CODE, _CODE_RESULT = (_Msg(n) for n in (
    "FunctionCall", "FunctionResponse", "ExecutableCode", "CodeExecutionResult"))
_CONFIG, _THINKING, SCHEMA, _SAFETY, _TOOL, _FUNCTION = (_Msg(n) for n in (
    "GenerationConfig", "ThinkingConfig", "Schema", "SafetySetting", "Tool", "FunctionDeclaration"))
EMBED = _Msg("EmbedContentRequest")
COUNT = _Msg("CountTokensRequest")

REQUEST.define(
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
    responseSchema=_sub(SCHEMA), responseJsonSchema=(_any, None),
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
SCHEMA.define(
    type=(_schema_type, None), format=(_str, None), title=(_str, None), description=(_str, None),
    nullable=(_bool, None), enum=(_str, None, True), maxItems=(_int, 64), minItems=(_int, 64),
    properties=(_map, SCHEMA), required=(_str, None, True), minProperties=(_int, 64),
    maxProperties=(_int, 64), minLength=(_int, 64), maxLength=(_int, 64), pattern=(_str, None),
    example=(_any, None), anyOf=(*_sub(SCHEMA), True), propertyOrdering=(_str, None, True),
    default=(_any, None), items=_sub(SCHEMA), minimum=(_float, None), maximum=(_float, None),
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
    parameters=_sub(SCHEMA), parametersJsonSchema=(_any, None), response=_sub(SCHEMA),
    responseJsonSchema=(_any, None),
)
EMBED.define(model=(_str, None), content=_sub(_CONTENT), taskType=(_enum, _TASK_TYPES),
              title=(_str, None), outputDimensionality=(_int, 32))
COUNT.define(contents=(*_sub(_CONTENT), True), generateContentRequest=_sub(REQUEST))
# fmt: on
