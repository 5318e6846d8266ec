"""Pure: the request's field names as the Batch API's JSONL parser takes them (proto snake_case).

gembatch's config speaks the REST spelling (``generationConfig``, ``maxOutputTokens``), which the
HTTP API accepts. Input *files* are read by a protobuf JSON parser that is reported to refuse it
(only ``generation_config``, ``max_output_tokens``, ... as the official guide's own JSONL example
writes), so every request line is written with proto field names. The conversion renames message
fields only: user data stays verbatim, in its order (a JSON schema's keywords and property names,
function-call arguments, labels, examples and defaults).

>>> schema = {"type": "object", "properties": {"fullName": {"type": "string"}},
...           "additionalProperties": False}
>>> to_proto({"generationConfig": {"maxOutputTokens": 5, "responseJsonSchema": schema}})
... # doctest: +NORMALIZE_WHITESPACE
{'generation_config': {'max_output_tokens': 5, 'response_json_schema': {'type': 'object',
 'properties': {'fullName': {'type': 'string'}}, 'additionalProperties': False}}}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["snake", "to_proto"]

_UPPER = re.compile(r"(?<=[a-z0-9])([A-Z])")

#: Fields whose value is free JSON (``google.protobuf.Value`` / ``Struct``) in the part of a request
#: shared by every row (generation config, system instruction, tools): kept verbatim.
_OPAQUE = frozenset({"response_json_schema", "parameters_json_schema", "example", "default"})
#: Fields whose value is a map: its keys are user names (kept), its values messages (converted).
_MAPS = frozenset({"properties", "defs", "labels"})


def snake(name: str) -> str:
    """A field name in proto spelling: ``maxOutputTokens`` -> ``max_output_tokens`` (``$ref`` and
    names already in snake_case unchanged).

    >>> snake("responseMimeType"), snake("topK"), snake("max_output_tokens")
    ('response_mime_type', 'top_k', 'max_output_tokens')
    """
    if name.startswith("$"):
        return name
    return _UPPER.sub(lambda m: "_" + m.group(1).lower(), name)


def to_proto(value: Any) -> Any:
    """``value`` (a request part in REST or proto spelling) with every message field name in proto
    spelling, message fields in sorted order (a canonical form: equal requests give equal text);
    free JSON values, and the keys (and order) of maps such as a schema's ``properties``,
    untouched."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in sorted(value.items(), key=lambda kv: snake(str(kv[0]))):
            name = snake(str(key))
            if name in _OPAQUE:
                out[name] = item
            elif name in _MAPS and isinstance(item, Mapping):
                out[name] = (
                    {k: to_proto(v) for k, v in item.items()} if name != "labels" else dict(item)
                )
            else:
                out[name] = to_proto(item)
        return out
    if isinstance(value, (list, tuple)):
        return [to_proto(v) for v in value]
    return value
