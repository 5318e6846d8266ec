"""Frame types in and out: a pandas DataFrame or a pyarrow Table goes in as polars, and the output
comes back in the type that went in, with what made it that frame (a pandas index, Arrow schema
metadata). What is needed to give it back is kept in the run directory (``Manifest.frame``), so a
run reopened after a restart gives back the same type.

>>> import pyarrow as pa
>>> table = pa.table({"prompt": ["hi"]}).replace_schema_metadata({"origin": "survey"})
>>> frame, kind = as_polars(table)
>>> give_back(frame, kind).schema.metadata
{b'origin': b'survey'}
"""

from __future__ import annotations

import base64
import os
from typing import Any

import polars as pl

__all__ = ["as_polars", "give_back"]


def as_polars(data: Any) -> tuple[Any, dict[str, Any]]:
    """``data`` as gembatch reads it (a polars frame, or a path left as it is), and the description
    :func:`give_back` needs to return an output of ``data``'s type."""
    if isinstance(data, (pl.DataFrame, pl.LazyFrame, str, os.PathLike)):
        return data, {}
    module = type(data).__module__.split(".")[0]
    if module == "pyarrow" and hasattr(data, "schema"):
        return pl.from_arrow(data), {"type": "arrow", "metadata": _encode(data.schema.metadata)}
    if module == "pandas":
        import pyarrow as pa

        table = pa.Table.from_pandas(data)  # a non-default index becomes columns, named in metadata
        return pl.from_arrow(table), {"type": "pandas", "metadata": _encode(table.schema.metadata)}
    return data, {}


def give_back(out: pl.DataFrame, frame: dict[str, Any]) -> Any:
    """``out`` in the type described by ``frame`` (see :func:`as_polars`): pandas with its index,
    a pyarrow Table with its schema metadata, else polars."""
    kind = frame.get("type")
    if kind not in ("pandas", "arrow"):
        return out
    table = out.to_arrow()
    metadata = _decode(frame.get("metadata") or {})
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    return table.to_pandas() if kind == "pandas" else table


def _encode(metadata: dict[bytes, bytes] | None) -> dict[str, str]:
    """Arrow schema metadata as JSON-able text (base64: keys and values are arbitrary bytes)."""
    return {
        base64.b64encode(k).decode(): base64.b64encode(v).decode()
        for k, v in (metadata or {}).items()
    }


def _decode(metadata: dict[str, str]) -> dict[bytes, bytes]:
    return {base64.b64decode(k): base64.b64decode(v) for k, v in metadata.items()}
