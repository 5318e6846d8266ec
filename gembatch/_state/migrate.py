"""Bring run directories written by earlier releases up to the current layout, when they are opened.

Each step takes the JSON of one version to the next. Steps only rename or fill in fields; a step that
must rewrite a file says so in its docstring. A run directory of a *newer* version than this release
reads is refused (:class:`gembatch.CorruptRunError`), never guessed at.

>>> migrate_shard({"version": 1, "retries": [1]})["resubmissions"]
[1]
"""

from __future__ import annotations

from typing import Any

from ..exceptions import CorruptRunError
from .records import FORMAT_VERSION

__all__ = ["migrate_manifest", "migrate_shard"]


def _version(data: dict[str, Any], what: str) -> int:
    version = data.get("version", 1)
    if not isinstance(version, int) or version < 1 or version > FORMAT_VERSION:
        raise CorruptRunError(
            f"The {what} has format version {version!r}; this gembatch reads versions 1 to "
            f"{FORMAT_VERSION}. Hint: open it with the gembatch release that wrote it (or a newer one).")
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
