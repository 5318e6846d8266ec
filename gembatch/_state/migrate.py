"""Bring run directories written by earlier releases up to the current layout, when they are opened.

Each step takes the JSON of one version to the next. Steps only rename or fill in fields; a step
that must rewrite a file says so in its docstring. A run directory of a *newer* version than this
release reads is refused (:class:`gembatch.CorruptRunError`), never guessed at.

>>> migrate_shard({"version": 1, "retries": [1]})["resubmissions"]
[1]
"""

from __future__ import annotations

from typing import Any

from ..exceptions import CorruptRunError
from .records import FORMAT_VERSION

__all__ = ["migrate_manifest", "migrate_shard", "split_v1_input"]


def _version(data: dict[str, Any], what: str) -> int:
    version = data.get("version", 1)
    if not isinstance(version, int) or version < 1 or version > FORMAT_VERSION:
        raise CorruptRunError(
            f"The {what} has format version {version!r}; this gembatch reads versions 1 to "
            f"{FORMAT_VERSION}. Hint: open it with the gembatch release that wrote it (or a newer "
            "one)."
        )
    return version


def migrate_manifest(data: dict[str, Any]) -> dict[str, Any]:
    """``run.json`` of any known version, as the current version's JSON."""
    data = dict(data)
    if _version(data, "run directory (run.json)") == 1:
        data.setdefault("frame", {})  # 0.1.0 gave polars frames back only for polars input
        data["version"] = 2
    return data


def migrate_shard(data: dict[str, Any]) -> dict[str, Any]:
    """A shard's ``state.json`` of any known version, as the current version's JSON."""
    data = dict(data)
    if _version(data, "shard state file") == 1:
        data["resubmissions"] = data.pop("retries", [])  # one word for row resubmissions
        data.setdefault("files", {})
        data["version"] = 2
    return data


#: gembatch 0.1.0 kept its own columns inside a shard's input.parquet, under these names.
_V1_COLUMNS = {
    "__gembatch_key": "key",
    "__gembatch_hash": "hash",
    "__gembatch_send": "send",
    "__gembatch_via": "via",
}


def split_v1_input(store: Any, shard_dir: str) -> None:
    """Format 1 -> 2 for a shard's files: gembatch's own columns move out of ``input.parquet``
    (which then holds the user's rows only) into ``keys.parquet`` beside it. Rewrites both files
    (atomically;
    a crash in between leaves a state this step finishes on the next open)."""
    import polars as pl

    rows_rel, keys_rel = f"{shard_dir}/input.parquet", f"{shard_dir}/keys.parquet"
    if not store.exists(rows_rel):
        return
    rows = store.read_parquet(rows_rel)
    own = [c for c in _V1_COLUMNS if c in rows.columns]
    if not own:
        return
    if not store.exists(keys_rel):
        keys = rows.select(pl.col(c).alias(_V1_COLUMNS[c]) for c in own)
        store.write_parquet(keys_rel, keys, compression="snappy")
    store.write_parquet(rows_rel, rows.drop(own), compression="snappy")
