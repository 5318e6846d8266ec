"""Structured-output misbehaviours reported of batch jobs: degenerate JSON, depth limits, tools.

Reports (all about batch, while the same request works interactively): ``responseJsonSchema``
answers degenerate for every row while ``responseSchema`` works (values shifted by one field,
prose in object fields, all-null templates; ruby_llm #894); a nested schema makes the job FAILED
(python-genai #1307); schema plus tools fails every row with code 3 while the job SUCCEEDS
(python-genai #2693); a nesting-depth limit (js-genai #882). The ``Behaviour`` switches that turn
them on call these helpers; the normal fake model keeps answering schema-valid JSON.

Example::

    >>> schema_depth({"type": "object", "properties": {"a": {"type": "array", "items": {}}}})
    3
    >>> degenerate('{"a":1,"b":2}', "shifted", "k1")
    '{"a":2,"b":1}'
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from gembatch.emulator.errors import ApiError
from gembatch.emulator.tokens import compact_json

__all__ = [
    "DEGENERATE_PATTERNS",
    "TOOLS_MESSAGE",
    "degenerate",
    "depth_error",
    "schema_depth",
    "schema_form",
    "uses_tools_with_schema",
]

DEGENERATE_PATTERNS = ("shifted", "prose", "null_template")
#: The error every row of a schema-plus-tools request gets (python-genai #2693).
TOOLS_MESSAGE = "Function calling with a response mime type: 'application/json' is unsupported"
_MAX_DEPTH = 64
_CHILDREN = ("items", "additionalProperties", "not", "contains", "if", "then", "else")
_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems", "items")
_MAPS = ("properties", "patternProperties")


def schema_form(request: dict[str, Any]) -> tuple[str | None, Any]:
    """("schema", responseSchema) or ("json_schema", responseJsonSchema) of a normalised request;
    (None, None) without a response schema."""
    config = request.get("generationConfig") or {}
    if "responseSchema" in config:
        return "schema", config["responseSchema"]
    if "responseJsonSchema" in config:
        return "json_schema", config["responseJsonSchema"]
    return None, None


def schema_depth(schema: Any, root: Any = None, _hops: int = 0) -> int:
    """Nesting depth of a schema: 1 for a leaf, +1 per properties/items/anyOf/... level; a
    ``$ref`` counts as its target (a cycle counts as very deep)."""
    if not isinstance(schema, dict):
        return 0 if schema is None or schema is False else 1
    if _hops > _MAX_DEPTH:
        return _MAX_DEPTH
    root = schema if root is None else root
    if isinstance(schema.get("$ref"), str):
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        target = schema_depth(_lookup(root, schema["$ref"]), root, _hops + 1)
        return max(target, schema_depth(rest, root, _hops + 1) if rest else 1)
    children: list[Any] = [schema[k] for k in _CHILDREN if isinstance(schema.get(k), dict)]
    for key in _LISTS:
        if isinstance(schema.get(key), list):
            children.extend(schema[key])
    for key in _MAPS:
        if isinstance(schema.get(key), dict):
            children.extend(schema[key].values())
    return 1 + max((schema_depth(c, root, _hops + 1) for c in children), default=0)


def _lookup(root: Any, ref: str) -> Any:
    node = root
    for token in ref.lstrip("#").split("/"):
        if token:
            token = token.replace("~1", "/").replace("~0", "~")
            node = node.get(token) if isinstance(node, dict) else None
    return node


def depth_error(depth: int, limit: int) -> ApiError:
    """The 400 for a response schema nested deeper than ``limit``."""
    return ApiError(
        400,
        "A schema in GenerationConfig in the request exceeds the maximum allowed "
        f"nesting depth (depth {depth}, at most {limit}).",
    )


def uses_tools_with_schema(request: dict[str, Any]) -> bool:
    """Whether a normalised request has both tools and a response schema."""
    return bool(request.get("tools")) and schema_form(request)[0] is not None


def degenerate(text: str, pattern: str, row: str) -> str:
    """A degenerate version of the structured answer ``text`` (JSON) for the row keyed ``row``:
    ``shifted`` (each object's values moved one field up), ``prose`` (object fields hold prose),
    ``null_template`` (every value null, keys kept) or ``mixed`` (one of them, by row)."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if pattern == "mixed":
        digest = hashlib.sha256(row.encode()).digest()
        pattern = DEGENERATE_PATTERNS[digest[0] % len(DEGENERATE_PATTERNS)]
    transform = {"shifted": _shifted, "prose": _prose, "null_template": _nulls}[pattern]
    return compact_json(transform(value))


def _shifted(value: Any) -> Any:
    if isinstance(value, list):
        return [_shifted(v) for v in value]
    if isinstance(value, dict) and len(value) > 1:
        keys, values = list(value), list(value.values())
        return dict(zip(keys, values[1:] + values[:1], strict=True))
    return value


def _prose(value: Any) -> Any:
    if isinstance(value, list):
        return [_prose(v) for v in value]
    if isinstance(value, dict):
        return {k: f"Sure! Here is the {k} you asked for, described in a few words." for k in value}
    return "Sure! Here is the answer you asked for, described in a few words."


def _nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: None for k in value}
    if isinstance(value, list):
        return [_nulls(v) for v in value]
    return None
