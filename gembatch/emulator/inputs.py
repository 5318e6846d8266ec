"""Batch input checks at create: each JSONL line or inline request parsed, measured and counted.

``scan_file`` streams an uploaded JSONL file once and ``scan_inline`` goes over inline requests,
giving a ``Scan``: the number of requests, their input tokens (the emulator's token rule: the
enqueued-token quota), the deepest response schema, and, for JSONL, the lines the service's
protobuf JSON parser refuses (invalid JSON, an unknown field, a value of the wrong type, a
camelCase name where only proto names are accepted; for tests, a line holding ``[[invalid]]``), the
lines with an OpenAPI ``response_schema`` and the lines whose schema is too deep. ``create_error``
turns a scan into the 400 a create answers when the behaviour checks JSONL at create::

    Error on line 2: invalid JSON, near column 61: no such field: 'thinking_config'
    Error on line 5: invalid JSON, near column 1: expected a JSON object

Semantic mistakes of a well-formed request (empty ``contents``, a bad range) are not found here:
the service answers them line by line in the results.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from gembatch.emulator import proto
from gembatch.emulator.codec import json_loads
from gembatch.emulator.errors import ApiError
from gembatch.emulator.schema_faults import depth_error, schema_depth, schema_form
from gembatch.emulator.tokens import Prompt, count_text_tokens

__all__ = [
    "INVALID_DIRECTIVE",
    "LINE_FIELDS",
    "RESPONSE_SCHEMA_MESSAGE",
    "Scan",
    "create_error",
    "scan_file",
    "scan_inline",
]

#: The fields of a JSONL input line besides the bare-request form.
LINE_FIELDS = frozenset({"key", "request", "metadata"})
#: What the service answers for ``response_schema`` in a JSONL line (python-genai #1150).
RESPONSE_SCHEMA_MESSAGE = "Request contains an invalid argument."
_MAX_LISTED = 1000
#: A test directive: a line whose text holds it is refused like a malformed one.
INVALID_DIRECTIVE = b"[[invalid]]"


@dataclass
class Scan:
    """What a create learns of its input (line numbers are 1-based, blank lines counted)."""

    count: int = 0
    tokens: int = 0
    max_depth: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    response_schema_lines: list[int] = field(default_factory=list)
    too_deep: list[tuple[int, int]] = field(default_factory=list)


def scan_file(
    path: str | os.PathLike[str], kind: str, *, snake: bool = False, depth_limit: int | None = None
) -> Scan:
    """Scan a JSONL input file of a ``kind`` ("generate" or "embed") batch."""
    scan = Scan()
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            if not raw.isspace():
                scan.count += 1
                _scan_line(raw, number, kind, snake, depth_limit, scan)
    return scan


def scan_inline(items: Iterable[dict[str, Any]], kind: str) -> Scan:
    """Scan inline ``{"request": ...}`` items (already validated by the create)."""
    scan = Scan()
    for item in items:
        scan.count += 1
        _measure(_parse_loose(item["request"], kind), kind, scan.count, None, scan)
    return scan


def _scan_line(
    raw: bytes, number: int, kind: str, snake: bool, depth_limit: int | None, scan: Scan
) -> None:
    try:
        obj = json_loads(raw)
    except ValueError as exc:
        position = getattr(exc, "pos", None)
        column = min(position, len(raw.rstrip())) + 1 if isinstance(position, int) else 1
        reason = str(exc).split(":")[0].strip() or "syntax error"
        scan.errors.append((number, f"invalid JSON, near column {column}: {reason.lower()}"))
        return
    if not isinstance(obj, dict):
        scan.errors.append((number, "invalid JSON, near column 1: expected a JSON object"))
        return
    request: Any = obj
    if "request" in obj:
        unknown = [k for k in obj if k not in LINE_FIELDS]
        if unknown:
            scan.errors.append((number, _near(raw, unknown[0], f"no such field: '{unknown[0]}'")))
            return
        request = obj["request"]
    elif "key" in obj:
        return  # a key without a request: answered by a per-line error
    spec = proto.REQUEST if kind == "generate" else proto.EMBED
    try:
        normal = proto.parse(request, spec, snake=snake)
    except proto.ProtoError as exc:
        scan.errors.append((number, _near(raw, exc.key, exc.reason)))
        return
    if INVALID_DIRECTIVE in raw:
        scan.errors.append((number, _near(raw, "contents", "invalid value ([[invalid]])")))
        return
    _measure(normal, kind, number, depth_limit, scan)


def _measure(
    normal: dict[str, Any] | None, kind: str, number: int, depth_limit: int | None, scan: Scan
) -> None:
    if normal is None:
        return
    scan.tokens += _tokens(normal, kind)
    form, schema = schema_form(normal)
    if form is None:
        return
    if form == "schema":
        scan.response_schema_lines.append(number)
    depth = schema_depth(schema)
    scan.max_depth = max(scan.max_depth, depth)
    if depth_limit is not None and depth > depth_limit:
        scan.too_deep.append((number, depth))


def _parse_loose(request: Any, kind: str) -> dict[str, Any] | None:
    try:
        return proto.parse(request, proto.REQUEST if kind == "generate" else proto.EMBED)
    except ApiError:
        return None


def _tokens(normal: dict[str, Any], kind: str) -> int:
    """Input tokens of a parsed request (0 for one too malformed to count)."""
    try:
        if kind == "embed":
            parts = (normal.get("content") or {}).get("parts") or []
            return sum(count_text_tokens(p.get("text", "")) for p in parts)
        return Prompt(normal).tokens if normal.get("contents") else 0
    except (KeyError, TypeError, AttributeError):
        return 0


def _near(raw: bytes, key: str, reason: str) -> str:
    """``invalid JSON, near column C: reason`` with C the column of ``"key"`` in the line."""
    text = raw.decode("utf-8", errors="replace")
    column = 1
    for spelling in dict.fromkeys((key, _camel(key))):
        at = text.find(f'"{spelling}"')
        if at >= 0:
            column = at + 1
            break
    return f"invalid JSON, near column {column}: {reason}"


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def create_error(
    scan: Scan,
    *,
    report: str = "all",
    refuse_response_schema: bool = False,
    depth_limit: int | None = None,
) -> ApiError | None:
    """The 400 a create answers for ``scan`` when JSONL is checked at create (None: accepted).

    ``report``: "all" lists every bad line (newline-separated), "first" only the first.
    """
    problems = list(scan.errors)
    if depth_limit is not None:
        problems += [(n, depth_error(d, depth_limit).message) for n, d in scan.too_deep]
    if problems:
        problems.sort()
        shown = problems[:1] if report == "first" else problems[:_MAX_LISTED]
        return ApiError(400, "\n".join(f"Error on line {n}: {why}" for n, why in shown))
    if refuse_response_schema and scan.response_schema_lines:
        return ApiError(400, RESPONSE_SCHEMA_MESSAGE)
    return None
