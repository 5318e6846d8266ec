"""JSON encoding and decoding for the emulator: orjson when installed, the stdlib otherwise.

Example::

    >>> json_loads(json_dumps({"a": [1, "é"]}))
    {'a': [1, 'é']}
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["json_dumps", "json_loads"]

_orjson: Any
try:  # the "fast" extra; the stdlib codec is the fallback
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None


def json_loads(data: bytes | str) -> Any:
    """Decode JSON (orjson when installed)."""
    return _orjson.loads(data) if _orjson is not None else json.loads(data)


def json_dumps(obj: Any, *, pretty: bool = False) -> bytes:
    """Encode UTF-8 JSON (orjson when installed): compact, or indented with a final newline as the
    service answers HTTP calls."""
    if _orjson is not None:
        option = _orjson.OPT_INDENT_2 | _orjson.OPT_APPEND_NEWLINE if pretty else 0
        return _orjson.dumps(obj, option=option)  # type: ignore[no-any-return]
    if pretty:
        return json.dumps(obj, indent=2, ensure_ascii=False).encode() + b"\n"
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
