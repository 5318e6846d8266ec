"""The only module that touches fsspec: paths, atomic writes, streaming reads and writes.

A :class:`Store` is a directory (local path or any fsspec URL: ``memory://``, ``s3://`` ...). Every
write that a resume relies on is atomic: the bytes go to a temporary sibling first and are renamed into
place, so a reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from typing import IO, Any

import fsspec
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["Store"]


class Store:
    """A directory on any fsspec filesystem.

    >>> s = Store("memory://gembatch-doc")
    >>> s.write_json("a/b.json", {"x": 1}); s.read_json("a/b.json")
    {'x': 1}
    """

    def __init__(self, root: str | os.PathLike[str], **storage_options: Any) -> None:
        root = os.fspath(root)
        self.fs, path = fsspec.core.url_to_fs(root, **storage_options)
        self.root = path.rstrip("/") or "/"
        self.url = root
        self.is_local = "file" in _protocols(self.fs)

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def path(self, rel: str) -> str:
        """The filesystem path of ``rel`` under the root."""
        return f"{self.root}/{rel}" if rel else self.root

    def local_path(self, rel: str) -> str | None:
        """An OS path for ``rel`` when the store is local, else None."""
        return self.path(rel) if self.is_local else None

    def exists(self, rel: str) -> bool:
        return bool(self.fs.exists(self.path(rel)))

    def makedirs(self, rel: str = "") -> None:
        self.fs.makedirs(self.path(rel), exist_ok=True)

    def listdir(self, rel: str = "") -> list[str]:
        """Names (not paths) directly under ``rel``; empty when it does not exist."""
        try:
            entries = self.fs.ls(self.path(rel), detail=False)
        except FileNotFoundError:
            return []
        return sorted(str(e).rstrip("/").rsplit("/", 1)[-1] for e in entries)

    def size(self, rel: str) -> int:
        return int(self.fs.size(self.path(rel)))

    def remove(self, rel: str, *, recursive: bool = False) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(self.path(rel), recursive=recursive)

    # -- atomic writes ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def atomic_writer(self, rel: str) -> Iterator[IO[bytes]]:
        """A binary stream whose content replaces ``rel`` only when the block ends without error."""
        final = self.path(rel)
        parent = final.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        tmp = f"{parent}/.tmp-{uuid.uuid4().hex}-{final.rsplit('/', 1)[-1]}"
        try:
            if self.is_local:
                with open(tmp, "wb") as fh:
                    yield fh
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, final)
            else:
                with self.fs.open(tmp, "wb") as fh:
                    yield fh
                self.fs.mv(tmp, final)
        except BaseException:
            with contextlib.suppress(Exception):
                self.fs.rm(tmp)
            raise

    def write_bytes(self, rel: str, data: bytes) -> None:
        with self.atomic_writer(rel) as fh:
            fh.write(data)

    def write_json(self, rel: str, obj: Any) -> None:
        self.write_bytes(rel, json.dumps(obj, indent=1, sort_keys=True).encode())

    def read_bytes(self, rel: str) -> bytes:
        with self.fs.open(self.path(rel), "rb") as fh:
            return bytes(fh.read())

    def read_json(self, rel: str) -> Any:
        return json.loads(self.read_bytes(rel))

    def open(self, rel: str, mode: str = "rb") -> IO[Any]:
        """A plain (non-atomic) stream; used for reads and for uploads."""
        return self.fs.open(self.path(rel), mode)  # type: ignore[no-any-return]

    # -- tables ----------------------------------------------------------------------------------
    def write_parquet(self, rel: str, frame: pl.DataFrame) -> None:
        with self.atomic_writer(rel) as fh:
            frame.write_parquet(fh, compression="zstd", statistics=False)

    def read_parquet(self, rel: str) -> pl.DataFrame:
        with self.open(rel) as fh:
            return pl.read_parquet(fh)

    def parquet_schema(self, rel: str) -> pa.Schema:
        with self.open(rel) as fh:
            return pq.read_schema(fh)

    def read_lines(self, rel: str) -> pl.Series:
        """The lines of a text file as a Utf8 Series (newlines stripped, blank lines dropped)."""
        data = self.read_bytes(rel)
        if not data:
            return pl.Series("line", [], dtype=pl.Utf8)
        lines = pl.Series("line", [data.decode("utf-8", errors="replace")]).str.split("\n").explode()
        lines = lines.str.strip_suffix("\r")
        return lines.filter(lines.str.len_bytes() > 0)


def _protocols(fs: fsspec.AbstractFileSystem) -> set[str]:
    proto = fs.protocol
    return {proto} if isinstance(proto, str) else set(proto)
