"""The schema-value generator: seeded JSON values that validate against a response schema.

``ValueMaker`` fills an OpenAPI-subset ``responseSchema`` or a JSON Schema ``responseJsonSchema``
(``$ref``/``$defs``, ``allOf``/``anyOf``/``oneOf`` included) with a value that validates: every
property present, in ``propertyOrdering`` order, then (OpenAPI schemas) alphabetical or (JSON
Schema) schema order; ``enum``/``const`` values; numbers within ``minimum``/``maximum`` (exclusive
bounds too) and integer ``multipleOf``; strings within ``minLength``/``maxLength``, in a known
``format``, or matching ``pattern`` (a sample of the regular expression, when it can be drawn);
arrays within ``minItems``/``maxItems`` (1-3 items otherwise), ``uniqueItems`` honoured. The
first string is the prompt excerpt and later ones start with it, so an answer shows its prompt.
Not honoured: ``not``, ``if``/``then``, ``dependentSchemas``, float ``multipleOf``.

Example::

    >>> import random
    >>> ValueMaker(random.Random(1), "Hi", None, True).make(
    ...     {"type": "OBJECT", "properties": {"b": {"type": "STRING"}, "a": {"enum": ["x"]}}}, 0)
    {'a': 'x', 'b': 'Hi'}
"""

from __future__ import annotations

import math
import random
import re
import uuid
from collections.abc import Callable
from typing import Any

from gembatch.emulator.draws import VOCAB
from gembatch.emulator.tokens import canonical_json

try:  # the regular-expression parser: re._parser from 3.11, sre_parse before
    import re._parser as _sre  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - Python 3.10
    import sre_parse as _sre  # type: ignore[no-redef]

__all__ = ["ValueMaker", "sample_pattern"]

_MAX_DEPTH = 6
_FORMATS: dict[str, Callable[[random.Random], str]] = {
    "date-time": lambda r: (
        f"2025-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}T"
        f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:00Z"
    ),
    "date": lambda r: f"2025-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}",
    "time": lambda r: f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:00Z",
    "email": lambda r: f"{r.choice(VOCAB)}@example.com",
    "uri": lambda r: f"https://example.com/{r.choice(VOCAB)}",
    "uuid": lambda r: str(uuid.UUID(int=r.getrandbits(128), version=4)),
}
_FORMATS["url"] = _FORMATS["uri"]
_KINDS = frozenset({"string", "integer", "number", "boolean", "array", "object", "null"})
_LOWER = {"minimum", "minLength", "minItems", "minProperties", "exclusiveMinimum"}
_UPPER = {"maximum", "maxLength", "maxItems", "maxProperties", "exclusiveMaximum"}


class ValueMaker:
    """Seeded values that validate against an OpenAPI-subset or JSON Schema (see the module).

    ``rng`` draws every choice, ``excerpt`` starts the strings, ``root`` is the schema ``$ref``s
    resolve in, ``alphabetical`` orders object keys alphabetically after ``propertyOrdering``
    (OpenAPI schemas, as the service orders ``responseSchema`` output).
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
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            sample = self._pattern(pattern, schema)
            if sample is not None:
                return sample
        self.strings += 1
        text = self.excerpt
        if self.strings > 1:
            text = f"{text} {rng.choice(VOCAB)}".lstrip()
        while len(text) < schema.get("minLength", 0):
            text += " " + rng.choice(VOCAB)
        if schema.get("maxLength") is not None:
            text = text[: int(schema["maxLength"])]
        return text

    def _pattern(self, pattern: str, schema: dict[str, Any]) -> str | None:
        """A string matching ``pattern`` within the length bounds, if a few draws find one."""
        low, high = schema.get("minLength", 0), schema.get("maxLength")
        for _ in range(8):
            sample = sample_pattern(pattern, self.rng)
            if sample is not None and len(sample) >= low and (high is None or len(sample) <= high):
                return sample
        return None

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
                key = canonical_json(value)
                if key not in seen:
                    break
            seen.add(key)
            out.append(value)
        if schema.get("uniqueItems"):
            out = list({canonical_json(v): v for v in out}.values())
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


# -- regular expressions ---------------------------------------------------------------------------
_MAX_EXTRA_REPEATS = 3
_POOL = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_.,:@"
_CATEGORIES = {
    "CATEGORY_DIGIT": "0123456789",
    "CATEGORY_SPACE": " ",
    "CATEGORY_WORD": "abcdefghijklmnopqrstuvwxyz_0123456789",
    "CATEGORY_NOT_DIGIT": "abcdefghijklmnopqrstuvwxyz",
    "CATEGORY_NOT_WORD": " -.",
    "CATEGORY_NOT_SPACE": "abcdefghijklmnopqrstuvwxyz0123456789",
}


def sample_pattern(pattern: str, rng: random.Random) -> str | None:
    """A string ``re.search(pattern, s)`` accepts, drawn with ``rng``; None when the pattern uses
    what the sampler cannot draw (back-references, look-arounds) or is not a valid expression.

    >>> s = sample_pattern(r"^[A-Z]{2}-\\d{3}$", random.Random(0))
    >>> bool(re.fullmatch(r"[A-Z]{2}-\\d{3}", s))
    True
    """
    try:
        parsed = _sre.parse(pattern)
        text = _draw(parsed, rng)
    except (re.error, ValueError, KeyError, IndexError, OverflowError):
        return None
    try:
        return text if re.search(pattern, text) else None
    except re.error:
        return None


def _draw(items: Any, rng: random.Random) -> str:
    out: list[str] = []
    for op, arg in items:
        name = str(op)
        if name == "LITERAL":
            out.append(chr(arg))
        elif name == "NOT_LITERAL":
            out.append(rng.choice([c for c in _POOL if ord(c) != arg]))
        elif name == "ANY":
            out.append(rng.choice(_POOL[:52]))
        elif name == "IN":
            out.append(_draw_class(arg, rng))
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, high, sub = arg
            count = rng.randint(low, min(high, low + _MAX_EXTRA_REPEATS))
            out.extend(_draw(sub, rng) for _ in range(count))
        elif name in ("SUBPATTERN", "ATOMIC_GROUP"):
            out.append(_draw(arg[-1], rng))
        elif name == "BRANCH":
            out.append(_draw(rng.choice(arg[1]), rng))
        elif name == "AT":
            continue
        else:  # back-references, look-arounds, conditionals
            raise ValueError(f"cannot sample {name}")
    return "".join(out)


def _draw_class(items: list[tuple[Any, Any]], rng: random.Random) -> str:
    """One character of a class ``[...]`` (or ``\\d``, ``\\w``, ``\\s``)."""
    chars: list[str] = []
    negate = False
    for op, arg in items:
        name = str(op)
        if name == "NEGATE":
            negate = True
        elif name == "LITERAL":
            chars.append(chr(arg))
        elif name == "RANGE":
            low, high = arg
            chars.extend(chr(c) for c in range(low, min(high, low + 255) + 1))
        elif name == "CATEGORY":
            chars.extend(_CATEGORIES.get(str(arg), ""))
        else:
            raise ValueError(f"cannot sample {name} in a class")
    if negate:
        chars = [c for c in _POOL if c not in chars]
    return rng.choice(chars)
