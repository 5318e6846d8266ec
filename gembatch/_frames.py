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
import warnings
from typing import Any

import polars as pl

__all__ = ["as_polars", "give_back", "with_results"]


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

        from .exceptions import InputError

        names = [str(c) for c in data.columns]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise InputError(
                f"The pandas frame has columns named alike: {', '.join(map(repr, repeated))} "
                "(as text). gembatch keeps every input column by name. Hint: rename them "
                "(df.columns = [...]) or drop the extra ones."
            )
        try:  # a non-default index becomes columns, named in the metadata
            with warnings.catch_warnings():  # mixed-type labels: the call gives the user's own
                warnings.filterwarnings("ignore", "The DataFrame has column names of mixed type")
                table = pa.Table.from_pandas(data)  # object back (see with_results)
        except (pa.ArrowException, ValueError, TypeError) as exc:
            raise _unconvertible(data, exc) from exc
        return pl.from_arrow(table), {"type": "pandas", "metadata": _encode(table.schema.metadata)}
    return data, {}


def _unconvertible(data: Any, exc: Exception) -> Exception:
    """An InputError naming the pandas columns Arrow cannot hold (e.g. ints and text mixed in one
    object column): gembatch keeps every input column in its run directory, as Arrow."""
    import pyarrow as pa

    from .exceptions import InputError

    bad = []
    for i, name in enumerate(data.columns):
        try:
            pa.array(data.iloc[:, i], from_pandas=True)
        except (pa.ArrowException, ValueError, TypeError):
            bad.append(str(name))
    if not bad:  # then the index (or its levels)
        for level in range(getattr(data.index, "nlevels", 1)):
            try:
                pa.array(data.index.get_level_values(level), from_pandas=True)
            except (pa.ArrowException, ValueError, TypeError) as err:
                return InputError(
                    f"The pandas frame's index mixes values Arrow cannot hold in one column "
                    f"({(str(err).strip().splitlines() or [''])[0]}). Hint: give it one type "
                    "(e.g. df.index = df.index.astype(str)) or reset it (df.reset_index())."
                )
    first = (str(exc).strip().splitlines() or [""])[0]
    where = f"column {bad[0]!r}" if len(bad) == 1 else f"columns {bad!r}" if bad else "a column"
    return InputError(
        f"The pandas frame cannot be sent: {where} mixes values Arrow cannot hold in one column "
        f"({first}). gembatch keeps every input column in its run directory. Hint: give the "
        f"column one type (e.g. df[{(bad or ['col'])[0]!r}] = df[{(bad or ['col'])[0]!r}]"
        ".astype(str)), or pass only the columns you need."
    )


def with_results(original: Any, out: Any, frame: dict[str, Any]) -> Any:
    """The user's own pandas frame or pyarrow Table with the result columns of ``out`` (its
    output, same rows in the same order) added: the input columns come back exactly as they went
    in (categories and their order, dtypes, field metadata), not as a round trip through Arrow and
    polars gives them. ``out`` itself when it cannot be lined up (another type or length)."""
    kind = frame.get("type")
    if kind == "arrow" and type(out) is type(original) and out.num_rows == original.num_rows:
        table = original
        for name in out.column_names:
            if name not in original.column_names:
                table = table.append_column(out.schema.field(name), out.column(name))
        return table
    if kind == "pandas" and type(out) is type(original) and len(out) == len(original):
        result = original.copy(deep=False)
        given = {str(c) for c in original.columns}  # (labels go through Arrow as text)
        for name in out.columns:
            if str(name) not in given:
                result[name] = out[name].array  # by position: the rows are the input's
        return result
    return out


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
    return _to_pandas(table, metadata) if kind == "pandas" else table


def _to_pandas(table: Any, metadata: dict[bytes, bytes]) -> Any:
    """The Table as pandas; gembatch's integer columns (codes, token counts) as pandas' nullable
    integers (``Int32`` / ``Int64``), not floats with NaN for their nulls."""
    import json

    import pandas as pd
    import pyarrow as pa

    frame = table.to_pandas()
    described = json.loads(metadata.get(b"pandas", b"{}") or b"{}")
    given = {c.get("field_name") for c in described.get("columns", [])}
    for field in table.schema:
        if field.name not in given and pa.types.is_integer(field.type):
            bits = field.type.bit_width
            own = pa.table([table.column(field.name)], names=["c"])
            mapper = {field.type: pd.api.types.pandas_dtype(f"Int{bits}")}.get
            frame[field.name] = own.to_pandas(types_mapper=mapper)["c"].array
    return frame


def _encode(metadata: dict[bytes, bytes] | None) -> dict[str, str]:
    """Arrow schema metadata as JSON-able text (base64: keys and values are arbitrary bytes)."""
    return {
        base64.b64encode(k).decode(): base64.b64encode(v).decode()
        for k, v in (metadata or {}).items()
    }


def _decode(metadata: dict[str, str]) -> dict[bytes, bytes]:
    return {base64.b64decode(k): base64.b64decode(v) for k, v in metadata.items()}
