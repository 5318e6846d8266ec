"""Pure: response schema forms (JSON Schema <-> the API's OpenAPI subset) and their limits.

A response schema reaches the API in one of two forms: ``responseJsonSchema`` (JSON Schema, what
pydantic writes) or ``responseSchema`` (a subset of OpenAPI 3.0: UPPERCASE types, ``nullable``,
``propertyOrdering``, string enums). :func:`to_openapi` and :func:`to_json_schema` convert between
them without changing what an answer may be; :func:`check` refuses, before anything is spent,
the schemas that are reported to fail only once a batch runs: recursive ones (gembatch gives every
answer fixed columns), deeply nested ones (python-genai #1307: a nested pydantic schema made the
batch job FAILED; js-genai #882: "A schema in GenerationConfig in the request exceeds the maximum
allowed nesting depth"), oversized ones, and keywords the form does not have (python-genai #1150: a
``response_schema`` the JSONL parser did not take was refused with a 400).

Paths in messages are JSON Pointers into the schema as given (``#/properties/items/items``).

>>> schema = {"type": "object", "properties": {"n": {"anyOf": [{"type": "integer"},
...                                                          {"type": "null"}]}}}
>>> to_openapi(schema)
{'type': 'OBJECT', 'properties': {'n': {'type': 'INTEGER', 'nullable': True}}, \
'propertyOrdering': ['n']}
>>> to_json_schema(to_openapi(schema))["properties"]["n"]
{'anyOf': [{'type': 'integer'}, {'type': 'null'}]}
>>> check(schema, "json_schema")
"""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

from ..exceptions import ConfigError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_DEPTH",
    "FORMS",
    "Form",
    "check",
    "form_of",
    "inline_refs",
    "schema_depth",
    "to_json_schema",
    "to_openapi",
    "with_form",
]

Form = Literal["openapi", "json_schema"]

#: Deepest schema :func:`check` lets through by default, counted as :func:`schema_depth` counts (a
#: leaf is 1; each properties / items / anyOf / ... level adds 1). The service documents a nesting
#: limit without its number; the schema of python-genai #1307 (depth 11 this way) made a batch job
#: FAILED, and other reports put failures between 5 and 10 object/array levels.
DEFAULT_MAX_DEPTH = 10
#: Largest schema (compact JSON, ``$ref``\\ s inlined) :func:`check` lets through by default. No
#: limit is documented; the schema is repeated in every request line (64 KiB x 1 M rows = 64 GB of
#: upload), and large schemas are refused at serving time ("too many states").
DEFAULT_MAX_BYTES = 64 * 1024

#: Keywords that describe but never constrain an answer.
ANNOTATIONS = frozenset(
    {
        "title",
        "description",
        "default",
        "examples",
        "example",
        "$comment",
        "$schema",
        "$id",
        "$anchor",
        "deprecated",
        "readOnly",
        "writeOnly",
        "discriminator",
        "propertyOrdering",
        "$defs",
        "definitions",
    }
)
#: ``responseSchema`` (OpenAPI subset): the fields of the API's ``Schema`` message, REST spelling.
OPENAPI_KEYWORDS = frozenset(
    {
        "type",
        "format",
        "title",
        "description",
        "nullable",
        "default",
        "example",
        "items",
        "minItems",
        "maxItems",
        "enum",
        "properties",
        "propertyOrdering",
        "required",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "minimum",
        "maximum",
        "anyOf",
        "additionalProperties",
    }
)
#: ``responseJsonSchema``: the keywords the API documents as supported (others "may be sent" and are
#: not enforced: gembatch checks the answers against them, see :data:`LOCAL_KEYWORDS`).
JSON_SCHEMA_KEYWORDS = frozenset(
    {
        "$id",
        "$defs",
        "$ref",
        "$anchor",
        "type",
        "format",
        "title",
        "description",
        "enum",
        "items",
        "prefixItems",
        "minItems",
        "maxItems",
        "minimum",
        "maximum",
        "anyOf",
        "oneOf",
        "properties",
        "additionalProperties",
        "required",
        "propertyOrdering",
    }
)
#: JSON Schema keywords the API does not enforce but gembatch's answer validation does, and
#: annotations pydantic writes; :func:`check` lets them through in the JSON Schema form.
LOCAL_KEYWORDS = frozenset(
    {
        "const",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minLength",
        "maxLength",
        "pattern",
        "uniqueItems",
        "minProperties",
        "maxProperties",
        "allOf",
        "not",
        "patternProperties",
        "propertyNames",
        "definitions",
    }
    | ANNOTATIONS
)
_OPENAPI_TYPES = frozenset({"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"})
_JSON_TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object", "null"})
# where subschemas sit: one schema, a list of schemas, a map of name -> schema
_ONE = (
    "items",
    "additionalProperties",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "additionalItems",
    "unevaluatedItems",
    "unevaluatedProperties",
)
_MANY = ("anyOf", "oneOf", "allOf", "prefixItems")
_NAMED = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_COUNTS = ("minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties")


def _pointer(at: str, *tokens: str | int) -> str:
    escaped = (str(t).replace("~", "~0").replace("/", "~1") for t in tokens)
    return "/".join((at, *escaped))


def subschemas(node: Any, at: str = "#") -> Iterator[tuple[str, Any]]:
    """``(pointer, subschema)`` for every schema directly inside ``node`` (not enum/const/default
    values, which are data)."""
    if not isinstance(node, Mapping):
        return
    for key in _ONE:
        value = node.get(key)
        if isinstance(value, (Mapping, bool)):
            yield _pointer(at, key), value
        elif key == "items" and isinstance(value, list):  # the draft-4 tuple form
            yield from ((_pointer(at, key, i), v) for i, v in enumerate(value))
    for key in _MANY:
        if isinstance(node.get(key), list):
            yield from ((_pointer(at, key, i), v) for i, v in enumerate(node[key]))
    for key in _NAMED:
        if isinstance(node.get(key), Mapping):
            yield from ((_pointer(at, key, n), v) for n, v in node[key].items())


def _rebuild(node: Mapping[str, Any], at: str, fn: Callable[[Any, str], Any]) -> dict[str, Any]:
    """``node`` with ``fn(subschema, pointer)`` in place of each subschema (other values copied)."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _ONE and isinstance(value, (Mapping, bool)):
            out[key] = fn(value, _pointer(at, key))
        elif key in _MANY and isinstance(value, list) or key == "items" and isinstance(value, list):
            out[key] = [fn(v, _pointer(at, key, i)) for i, v in enumerate(value)]
        elif key in _NAMED and isinstance(value, Mapping):
            out[key] = {n: fn(v, _pointer(at, key, n)) for n, v in value.items()}
        else:
            out[key] = copy.deepcopy(value)  # data (enum, const, default, ...), copied
    return out


def form_of(schema: Any) -> Form:
    """``"openapi"`` when any ``type`` in ``schema`` is an UPPERCASE OpenAPI type, else
    ``"json_schema"`` (the rule ``Config`` uses to pick the request field).

    >>> form_of({"type": "OBJECT", "properties": {}}), form_of({"type": "object"})
    ('openapi', 'json_schema')
    """
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping):
            if node.get("type") in _OPENAPI_TYPES:
                return "openapi"
            stack.extend(v for _, v in subschemas(node))
    return "json_schema"


def inline_refs(schema: Any, *, max_nodes: int = 100_000) -> Any:
    """``schema`` with every local ``$ref`` replaced by what it points to and ``$defs`` /
    ``definitions`` dropped.

    A ``$ref`` whose siblings only annotate (pydantic's ``{"$ref": ..., "description": ...}``) is
    merged with its target; siblings that constrain are kept beside it in an ``allOf``. Raises
    :class:`ConfigError` naming the path for a recursive schema, a ``$ref`` that points nowhere or
    outside the document, and a schema over ``max_nodes`` nodes once inlined.

    >>> inline_refs({"$defs": {"A": {"type": "integer"}}, "items": {"$ref": "#/$defs/A"}})
    {'items': {'type': 'integer'}}
    """
    budget = [max_nodes]

    def resolve(ref: str, at: str) -> Any:
        if not ref.startswith("#"):
            raise ConfigError(
                f"response schema: $ref {ref!r} at {at} points outside the schema."
                "\nHint: put the definition under $defs and refer to it as #/$defs/Name."
            )
        node: Any = schema
        for raw in [t for t in ref[1:].split("/") if t]:
            token = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and token in node:
                node = node[token]
            elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
                node = node[int(token)]
            else:
                raise ConfigError(
                    f"response schema: $ref {ref!r} at {at} points to nothing."
                    "\nHint: check the name under $defs."
                )
        return node

    def walk(node: Any, at: str, chain: tuple[str, ...]) -> Any:
        budget[0] -= 1
        if budget[0] < 0:
            raise ConfigError(
                f"response schema: more than {max_nodes:,} nodes once its $refs are inlined."
                "\nHint: a definition used in many places multiplies; simplify the model."
            )
        if not isinstance(node, Mapping):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str):
            if ref in chain:
                loop = " -> ".join((*chain[chain.index(ref) :], ref))
                raise ConfigError(
                    f"response schema is recursive: {at} refers back to {ref} ({loop})."
                    "\nHint: gembatch gives every answer fixed columns, so the schema must be "
                    "finite: unroll the model a fixed number of levels, or make the recursive "
                    "field a JSON string."
                )
            target = walk(resolve(ref, at), at, (*chain, ref))
            rest = walk({k: v for k, v in node.items() if k != "$ref"}, at, chain)
            return _merge(target, rest)
        kept = {k: v for k, v in node.items() if k not in ("$defs", "definitions")}
        return _rebuild(kept, at, lambda sub, where: walk(sub, where, chain))

    return walk(schema, "#", ())


def _merge(target: Any, rest: dict[str, Any]) -> Any:
    if not rest:
        return target
    if target is True or target == {}:
        return rest
    if not isinstance(target, Mapping):
        return {"allOf": [target, rest]}
    clash = (set(target) & set(rest)) - ANNOTATIONS
    constraining = set(rest) - ANNOTATIONS
    if clash or (constraining and "allOf" in target):
        return {"allOf": [dict(target), rest]}
    return {**target, **rest}


def schema_depth(schema: Any) -> int:
    """How deep ``schema`` nests: a leaf is 1, each level of subschemas (properties, items,
    prefixItems, additionalProperties, anyOf / oneOf / allOf, not, ...) adds 1; a boolean subschema
    is 0. ``$ref``\\ s count as what they point to (inline them first: :func:`inline_refs`).

    >>> schema_depth({"type": "object", "properties": {"a": {"type": "array", "items": {}}}})
    3
    """
    return _deepest(schema, "#")[0]


def _deepest(node: Any, at: str) -> tuple[int, str]:
    if not isinstance(node, Mapping):
        return (0, at)
    best = (0, at)
    for where, sub in subschemas(node, at):
        found = _deepest(sub, where)
        if found[0] > best[0]:
            best = found
    return (1 + best[0], best[1])


def check(
    schema: Any,
    form: Form | None = None,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> None:
    """Refuse, with a :class:`ConfigError` naming the path, a response schema that cannot be sent
    in ``form`` (default: :func:`form_of`) or that gembatch cannot map to columns.

    Refused: a schema that is not a dict (``True`` is allowed in the JSON Schema form), recursion,
    ``$ref``\\ s that point nowhere, nesting deeper than ``max_depth`` (:func:`schema_depth`, after
    inlining), more than ``max_bytes`` of compact JSON after inlining, keywords the form does not
    have (``responseSchema``: :data:`OPENAPI_KEYWORDS`, UPPERCASE types, string enums;
    ``responseJsonSchema``: :data:`JSON_SCHEMA_KEYWORDS` and :data:`LOCAL_KEYWORDS`, lowercase
    types), and misspelt keywords (with the nearest known one).

    >>> check({"type": "object", "properties": {"n": {"type": "integr"}}})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    gembatch.exceptions.ConfigError: response schema: type 'integr' at #/properties/n is not a ...
    """
    form = form or form_of(schema)
    if form not in ("openapi", "json_schema"):
        raise ConfigError(f"schema form must be 'openapi' or 'json_schema' (got {form!r}).")
    if not isinstance(schema, Mapping) and not (form == "json_schema" and schema is True):
        raise ConfigError(
            f"response schema must be a dict (got {type(schema).__name__})."
            "\nHint: pass a pydantic model, a type like list[Model], or a JSON Schema dict."
        )
    _check_keywords(schema, "#", form)
    inlined = inline_refs(schema)
    depth, deepest = _deepest(inlined, "#")
    if depth > max_depth:
        raise ConfigError(
            f"response schema nests {depth} levels deep (down to {deepest}), more than "
            f"max_depth={max_depth}."
            "\nHint: batch jobs with deeply nested schemas are reported to fail (python-genai "
            "#1307, js-genai #882); flatten the model, or raise max_depth if you know the "
            "service takes it."
        )
    size = len(json.dumps(inlined, separators=(",", ":"), ensure_ascii=False).encode())
    if size > max_bytes:
        raise ConfigError(
            f"response schema is {size:,} bytes once its $refs are inlined, more than "
            f"max_bytes={max_bytes:,}; it is sent with every request."
            "\nHint: shorten descriptions and enums, or split the task."
        )


def _check_keywords(node: Any, at: str, form: Form) -> None:
    if isinstance(node, bool):
        if form == "openapi":
            raise ConfigError(
                f"response schema: {at} is {node}, which the OpenAPI form does not have."
                "\nHint: write {} for any value, or send the schema as JSON Schema."
            )
        return
    if not isinstance(node, Mapping):
        raise ConfigError(f"response schema: {at} must be a schema dict (got {node!r}).")
    known = OPENAPI_KEYWORDS if form == "openapi" else JSON_SCHEMA_KEYWORDS | LOCAL_KEYWORDS
    for key in node:
        if key not in known:
            raise ConfigError(_unknown_keyword(key, at, form, known))
    kinds = node.get("type")
    if form == "openapi":
        if kinds is not None and kinds not in _OPENAPI_TYPES:
            raise ConfigError(
                f"response schema: type {kinds!r} at {at} is not an OpenAPI type "
                f"({', '.join(sorted(_OPENAPI_TYPES))})."
                "\nHint: the OpenAPI form takes one UPPERCASE type; write nullable: true for null."
            )
        enum = node.get("enum")
        if enum is not None and not all(isinstance(v, str) for v in enum):
            raise ConfigError(
                f"response schema: enum at {at} holds non-strings {enum!r}; the OpenAPI form's "
                "enum values are strings.\nHint: to_openapi() writes integer enums as "
                '{"type": "INTEGER", "format": "enum", "enum": ["1", "2"]}.'
            )
    else:
        for kind in kinds if isinstance(kinds, list) else [] if kinds is None else [kinds]:
            if kind not in _JSON_TYPES:
                hint = (
                    " It is an OpenAPI type: send the whole schema in the OpenAPI form."
                    if kind in _OPENAPI_TYPES
                    else ""
                )
                raise ConfigError(
                    f"response schema: type {kind!r} at {at} is not a JSON Schema type "
                    f"(string, number, integer, boolean, array, object, null).{hint}"
                )
    for where, sub in subschemas(node, at):
        _check_keywords(sub, where, form)


def _unknown_keyword(key: str, at: str, form: Form, known: frozenset[str]) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)
    near = f" Did you mean {close[0]!r}?" if close else ""
    if form == "openapi":
        hint = (
            "send the schema as JSON Schema (lowercase types), or drop it: "
            "to_openapi(schema, lossy=True) drops what the OpenAPI form cannot say"
        )
        what = "the OpenAPI form (responseSchema) does not have it"
    elif key == "nullable":
        what = "nullable is OpenAPI, not JSON Schema"
        hint = 'write {"anyOf": [..., {"type": "null"}]} or "type": [..., "null"]'
    else:
        what = "neither the API nor gembatch's answer checks know it"
        hint = "remove it, or express it with the keywords listed in gembatch._build.schemas"
    return f"response schema: keyword {key!r} at {at}: {what}.{near}\nHint: {hint}."


# ------------------------------------------------------------------------------------------ forms
_APPLIES = {
    "string": ("minLength", "maxLength", "pattern", "format"),
    "number": (
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "format",
    ),
    "array": ("items", "prefixItems", "minItems", "maxItems", "uniqueItems", "contains"),
    "object": (
        "properties",
        "required",
        "additionalProperties",
        "patternProperties",
        "minProperties",
        "maxProperties",
        "propertyNames",
        "propertyOrdering",
    ),
    "boolean": (),
    "null": (),
}
_APPLIES["integer"] = _APPLIES["number"]
_TYPED = frozenset(k for keys in _APPLIES.values() for k in keys)
# JSON Schema constraints the OpenAPI form cannot say (refused, or dropped with lossy=True)
_NO_OPENAPI = (
    "multipleOf",
    "uniqueItems",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "minContains",
    "maxContains",
    "patternProperties",
    "propertyNames",
    "dependentRequired",
    "dependentSchemas",
    "unevaluatedItems",
    "unevaluatedProperties",
    "additionalItems",
)
#: Annotations the OpenAPI form has no field for (the rest it keeps, or rewrites).
_DROPPED_ANNOTATIONS = ANNOTATIONS - {
    "title",
    "description",
    "default",
    "examples",
    "example",
    "propertyOrdering",
    "$defs",
    "definitions",
}


def to_openapi(json_schema: Any, *, lossy: bool = False) -> dict[str, Any]:
    """``json_schema`` in the API's OpenAPI form (``responseSchema``).

    ``$ref``\\ s are inlined; types become UPPERCASE; ``type: [T, "null"]`` and ``anyOf [X, null]``
    become ``nullable: true``; other unions ``anyOf``; ``const`` and enums become string enums
    (integer / number enums as ``{"format": "enum", "enum": ["1", "2"]}``); ``propertyOrdering`` is
    the order the properties are written in (or the one given); ``examples`` becomes ``example``.
    Annotations the form lacks (``$comment``, ``$schema``, ``$id``, ``deprecated``, ``readOnly``,
    ``writeOnly``, ``discriminator``) are dropped. Constraints it cannot say (``oneOf``, ``allOf``
    of several, ``prefixItems``, ``exclusiveMinimum`` / ``exclusiveMaximum``, ``multipleOf``,
    ``uniqueItems``, ``not``, ``if``/``then``/``else``, ``contains``, ``patternProperties``,
    ``propertyNames``, boolean or mixed enums, ``false``) raise :class:`ConfigError` naming the
    path; with ``lossy=True`` they are loosened (``oneOf`` -> ``anyOf``, exclusive bounds ->
    inclusive, ``prefixItems`` -> ``items: anyOf``) or dropped: the answers are still checked
    against the full JSON Schema by gembatch.

    >>> to_openapi({"enum": [1, 2], "type": "integer"})
    {'type': 'INTEGER', 'format': 'enum', 'enum': ['1', '2']}
    """
    if not isinstance(json_schema, (Mapping, bool)):
        raise ConfigError(f"response schema must be a dict (got {type(json_schema).__name__}).")
    return _openapi(inline_refs(json_schema), "#", lossy)


def _refuse(at: str, what: str) -> ConfigError:
    return ConfigError(
        f"response schema: {what} at {at} has no OpenAPI (responseSchema) form."
        "\nHint: send the schema as JSON Schema (responseJsonSchema), or convert with "
        "to_openapi(schema, lossy=True): gembatch still checks every answer against it."
    )


def _openapi(node: Any, at: str, lossy: bool) -> dict[str, Any]:
    if node is True:
        return {}
    if node is False or not isinstance(node, Mapping):
        if lossy:
            return {}
        raise _refuse(at, f"the schema {node!r}")
    node = dict(node)
    kinds = node.get("type")
    listed = [str(k) for k in kinds] if isinstance(kinds, list) else None
    values = _enum_values(node)
    # null is a value here when the type, enum and const all let it be, and one names it
    named_null = (
        node.pop("nullable", False) is True
        or (listed is not None and "null" in listed)
        or (values is not None and None in values)
    )
    allows_null = _allows_null(node)
    nullable = allows_null and named_null
    if values is not None:
        values = [v for v in values if v is not None]
        node.pop("const", None)
        node["enum"] = values
    if listed is not None:
        named = [k for k in listed if k != "null"]
        if len(named) > 1:  # each type with the keywords (and enum values) that apply to it
            node.pop("type")
            branches = []
            for name in named:
                branch = {"type": name, **{x: node[x] for x in _APPLIES.get(name, ()) if x in node}}
                if values is not None:
                    branch["enum"] = [v for v in values if _is_kind(v, name)]
                    if not branch["enum"]:
                        continue
                branches.append(branch)
            node = {k: v for k, v in node.items() if k not in _TYPED and k != "enum"}
            if not branches:  # no enum value has any of the types: null at most
                if nullable:
                    return {**node, "type": "NULL"}
                raise _refuse(at, f"enum {values!r} with none of the types {named}")
            node["anyOf"] = branches
            values = None
        else:
            node["type"] = named[0] if named else "null"
    for combo in ("anyOf", "oneOf"):
        if combo not in node:
            continue
        if combo == "oneOf" and not lossy:
            raise _refuse(at, "oneOf (exactly one of)")
        branches = list(node.pop(combo))
        kept = [b for b in branches if not _is_null(b)]
        nullable = nullable or (allows_null and len(kept) < len(branches))
        rest = {k: v for k, v in node.items() if k not in ANNOTATIONS}
        if len(kept) == 1 and not rest:
            inner = _openapi(kept[0], _pointer(at, combo, branches.index(kept[0])), lossy)
            merged = {**inner, **{k: v for k, v in node.items() if k in ANNOTATIONS}}
            return _nullable(merged, nullable)
        node["anyOf"] = [_openapi(b, _pointer(at, combo, branches.index(b)), lossy) for b in kept]
    if "allOf" in node:
        parts = node.pop("allOf")
        if len(parts) == 1 and not (set(node) - ANNOTATIONS):
            inner = _openapi(parts[0], _pointer(at, "allOf", 0), lossy)
            merged = {**inner, **{k: v for k, v in node.items() if k in ANNOTATIONS}}
            return _nullable(merged, nullable)
        if not lossy:
            raise _refuse(at, "allOf of several schemas")
        for part in parts:
            if isinstance(part, Mapping):
                for key, value in part.items():
                    if key == "properties":
                        node["properties"] = {**node.get("properties", {}), **value}
                    elif key == "required":
                        node["required"] = [*node.get("required", []), *value]
                    else:
                        node.setdefault(key, value)
    out: dict[str, Any] = {}
    kind = str(node["type"]).lower() if isinstance(node.get("type"), str) else None
    if values is not None:
        kind = kind or _kind_of(values)
    if kind is None:
        kind = "object" if "properties" in node else "array" if "items" in node else None
    if kind is not None:
        out["type"] = kind.upper()
    for key, value in node.items():
        where = _pointer(at, key)
        if key in ("type", "enum", "const", "anyOf") or key in _DROPPED_ANNOTATIONS:
            continue
        if key == "properties":
            out[key] = {n: _openapi(s, _pointer(where, n), lossy) for n, s in value.items()}
        elif key == "items" and isinstance(value, (Mapping, bool)):
            out[key] = _openapi(value, where, lossy)
        elif key == "additionalProperties":
            out[key] = value if isinstance(value, bool) else _openapi(value, where, lossy)
        elif key == "prefixItems":
            if not lossy:
                raise _refuse(at, "prefixItems (a tuple)")
            rest_items = [node["items"]] if isinstance(node.get("items"), Mapping) else []
            choices = [_openapi(s, where, lossy) for s in [*value, *rest_items]]
            out["items"] = choices[0] if len(choices) == 1 else {"anyOf": choices}
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            if not lossy:
                raise _refuse(at, key)
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out.setdefault(bound, value)
        elif key == "examples":
            if isinstance(value, list) and value:
                out.setdefault("example", value[0])
        elif key in OPENAPI_KEYWORDS:
            out[key] = value
        elif not lossy and (key in _NO_OPENAPI or key not in ANNOTATIONS):
            raise _refuse(at, f"keyword {key!r}")
    if "anyOf" in node:
        out["anyOf"] = node["anyOf"]
    if values is not None:
        out.update(_openapi_enum(values, kind, at, lossy))
    if isinstance(out.get("properties"), Mapping) and out["properties"]:
        order = node.get("propertyOrdering")
        out["propertyOrdering"] = list(order if isinstance(order, list) else out["properties"])
    return _nullable(out, nullable)


def _nullable(out: dict[str, Any], nullable: bool) -> dict[str, Any]:
    if nullable and out.get("type") != "NULL":
        out["nullable"] = True
    return out


def _is_null(node: Any) -> bool:
    if not isinstance(node, Mapping):
        return False
    body = {k: v for k, v in node.items() if k not in ANNOTATIONS}
    return body in ({"type": "null"}, {"type": "NULL"}, {"enum": [None]}, {"const": None})


def _allows_null(node: Mapping[str, Any]) -> bool:
    """Whether null meets the node's type, enum and const (other keywords ignore null)."""
    kinds = node.get("type")
    if kinds is not None:
        listed = kinds if isinstance(kinds, list) else [kinds]
        if "null" not in listed and "NULL" not in listed and node.get("nullable") is not True:
            return False
    values = _enum_values(node)
    return values is None or None in values


def _is_kind(value: Any, kind: str) -> bool:
    if kind == "integer":
        return (
            isinstance(value, int)
            and not isinstance(value, bool)
            or (isinstance(value, float) and value.is_integer())
        )
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    types = {"string": str, "boolean": bool, "array": list, "object": dict}
    return kind in types and isinstance(value, types[kind])


def _enum_values(node: Mapping[str, Any]) -> list[Any] | None:
    if "const" in node:
        return [node["const"]]
    enum = node.get("enum")
    return list(enum) if isinstance(enum, list) else None


def _kind_of(values: list[Any]) -> str | None:
    if not values:
        return None
    if all(isinstance(v, str) for v in values):
        return "string"
    if all(isinstance(v, bool) for v in values):
        return "boolean"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "integer"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "number"
    return None


def _openapi_enum(values: list[Any], kind: str | None, at: str, lossy: bool) -> dict[str, Any]:
    if kind == "string" and all(isinstance(v, str) for v in values):
        return {"enum": values}
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if kind in ("integer", "number") and numbers:
        return {"format": "enum", "enum": [_number_text(v) for v in values]}
    if lossy:
        return {}
    raise _refuse(at, f"enum {values!r} (the OpenAPI form's enums are strings of one type)")


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**63 else repr(value)


def to_json_schema(openapi: Any) -> Any:
    """``openapi`` (the API's ``responseSchema`` form) as JSON Schema: types lowercase,
    ``nullable: true`` as ``anyOf [X, {"type": "null"}]`` (annotations kept outside), enums of
    INTEGER / NUMBER schemas back to numbers, ``format: enum`` dropped, ``example`` as
    ``examples``, counts given as strings (``"minItems": "2"``) as integers. Keywords and nodes
    already in JSON Schema pass unchanged, so the result of :func:`to_openapi` comes back with the
    same meaning.

    >>> to_json_schema({"type": "STRING", "nullable": True, "enum": ["a"], "title": "T"})
    {'anyOf': [{'type': 'string', 'enum': ['a']}, {'type': 'null'}], 'title': 'T'}
    """
    return _json(openapi, "#")


def _json(node: Any, at: str) -> Any:
    if not isinstance(node, Mapping):
        return node
    kind = node.get("type")
    upper = isinstance(kind, str) and kind in _OPENAPI_TYPES
    out = _rebuild(node, at, _json)
    if upper:
        out["type"] = str(kind).lower()
        if out["type"] in ("integer", "number") and isinstance(out.get("enum"), list):
            out["enum"] = [_number(v) for v in out["enum"]]
    if out.get("format") == "enum":
        del out["format"]
    if "example" in out:
        out.setdefault("examples", [out.pop("example")])
    for key in _COUNTS:
        value = out.get(key)
        if isinstance(value, str) and value.strip().isdigit():
            out[key] = int(value)
    if out.pop("nullable", False) is True and out.get("type") != "null":
        outer = {k: out.pop(k) for k in list(out) if k in ("title", "description", "default")}
        outer.update({k: out.pop(k) for k in list(out) if k == "examples"})
        inner: list[Any] = list(out["anyOf"]) if set(out) == {"anyOf"} else [out] if out else [True]
        if not any(_is_null(b) for b in inner):
            inner.append({"type": "null"})
        out = {"anyOf": inner, **outer}
    return out


def _number(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    for parse in (int, float):
        try:
            return parse(value)
        except ValueError:
            pass
    return value


#: The forms a request can carry a response schema in, by the request field's name.
FORMS: dict[str, str] = {"json_schema": "responseJsonSchema", "schema": "responseSchema"}


def with_form(static: Mapping[str, Any], form: str) -> dict[str, Any]:
    """The wire request fields ``static`` with its response schema in ``form``: ``"json_schema"``
    (``responseJsonSchema``) or ``"schema"`` (``responseSchema``, the OpenAPI subset; raises
    ConfigError naming the path when the schema says what that form cannot). Without a schema,
    ``static`` unchanged.

    >>> s = {"generationConfig": {"responseJsonSchema": {"type": "string"}}}
    >>> with_form(s, "schema")
    {'generationConfig': {'responseSchema': {'type': 'STRING'}}}
    """
    out = copy.deepcopy(dict(static))
    gen = out.get("generationConfig") or {}
    schema = gen.pop("responseJsonSchema", None)
    if schema is None:
        schema = gen.pop("responseSchema", None)
    if schema is None:
        return out
    if form == "schema":
        gen["responseSchema"] = schema if form_of(schema) == "openapi" else to_openapi(schema)
    elif form == "json_schema":
        json_form = schema if form_of(schema) == "json_schema" else to_json_schema(schema)
        gen["responseJsonSchema"] = json_form
    else:
        raise ConfigError(f"schema form must be one of {sorted(FORMS)} (got {form!r}).")
    out["generationConfig"] = dict(sorted(gen.items()))
    return out
