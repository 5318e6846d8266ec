"""The only module that touches fsspec: paths, atomic writes, streaming reads and writes.

A :class:`Store` is a directory (local path or any fsspec URL: ``memory://``, ``s3://`` ...). Every
write that a resume relies on is atomic: the bytes go to a temporary sibling first and are renamed into
place, so a reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from typing import IO, Any

import fsspec
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["OutputSink", "Store", "parquet_dataset"]


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
    def _temporary(self, rel: str) -> tuple[str, str]:
        """``(temporary path, final path)`` of ``rel``: a fresh name beside it, its folder made."""
        final = self.path(rel)
        parent = final.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        return f"{parent}/.tmp-{uuid.uuid4().hex}-{final.rsplit('/', 1)[-1]}", final

    @contextlib.contextmanager
    def atomic_writer(self, rel: str) -> Iterator[IO[bytes]]:
        """A binary stream whose content replaces ``rel`` only when the block ends without error."""
        if self.is_local:
            with self._atomic_local_path(rel) as tmp, open(tmp, "wb") as fh:
                yield fh
            return
        tmp, final = self._temporary(rel)
        try:
            with self.fs.open(tmp, "wb") as fh:
                yield fh
            self.fs.mv(tmp, final)
        except BaseException:
            with contextlib.suppress(Exception):
                self.fs.rm(tmp)
            raise

    @contextlib.contextmanager
    def _atomic_local_path(self, rel: str) -> Iterator[str]:
        """A local path to write; its file replaces ``rel`` (synced) when the block ends without error."""
        tmp, final = self._temporary(rel)
        try:
            yield tmp
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
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
    def write_parquet(self, rel: str, frame: pl.DataFrame, compression: str = "zstd") -> None:
        """Write ``frame`` atomically. A local file is written by path: polars then encodes and
        writes it row group by row group instead of assembling the whole file in memory first."""
        options: dict[str, Any] = {"compression": compression, "statistics": False}
        if self.is_local:
            with self._atomic_local_path(rel) as tmp:
                frame.write_parquet(tmp, **options)
            return
        with self.atomic_writer(rel) as fh:
            frame.write_parquet(fh, **options)

    def read_parquet(self, rel: str) -> pl.DataFrame:
        """Read a Parquet file whole (a local one memory-mapped, not copied into memory first)."""
        if self.is_local:
            return pl.read_parquet(self.path(rel), glob=False)
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


def parquet_dataset(source: str | os.PathLike[str], storage_options: dict[str, Any] | None = None) -> Any:
    """A pyarrow dataset over a Parquet file, a glob or a dataset directory (local or fsspec URL)."""
    import pyarrow.dataset as ds

    from .exceptions import InputError

    fs, path = fsspec.core.url_to_fs(os.fspath(source), **(storage_options or {}))
    paths = sorted(fs.glob(path)) if any(c in path for c in "*?[") else [path]
    if not paths or not all(fs.exists(p) for p in paths):
        raise InputError(f"No Parquet file at {os.fspath(source)!r}. Hint: check the path or glob.")
    return ds.dataset(paths if len(paths) > 1 else paths[0], filesystem=fs, format="parquet")


class OutputSink:
    """Writes a run's output shard by shard, never holding more than one row group in memory.

    ``dest`` ending in ``.parquet`` is one file, written to a temporary name and renamed into place
    when the last shard is in; any other ``dest`` is a dataset directory whose ``part-00000.parquet``,
    ... files appear (atomically) as their shards finish, while later shards are still running.
    """

    def __init__(self, dest: str | os.PathLike[str], shards: int, **storage_options: Any) -> None:
        dest = os.fspath(dest)
        self.single = dest.endswith(".parquet")
        self.shards = shards
        self.written: set[int] = set()
        if self.single:
            parent, name = (dest.rsplit("/", 1) if "/" in dest else (".", dest))
            self.store = Store(parent, **storage_options)
            self.name = name
            self._writer: pq.ParquetWriter | None = None
            self._tmp_ctx: Any = None
            self._fh: Any = None
        else:
            self.store = Store(dest, **storage_options)
            self.store.makedirs()

    def offer(self, index: int, source: Store, rel: str) -> None:
        """Shard ``index`` is final at ``source/rel``; write it (and any shards it was holding up)."""
        if index in self.written:
            return
        if not self.single:
            with source.open(rel) as src, self.store.atomic_writer(f"part-{index:05d}.parquet") as out:
                shutil.copyfileobj(src, out, 8 << 20)
            self.written.add(index)
            return
        self._pending = getattr(self, "_pending", {})
        self._pending[index] = (source, rel)
        while len(self.written) in self._pending:
            i = len(self.written)
            src_store, src_rel = self._pending.pop(i)
            with src_store.open(src_rel) as fh:
                parquet = pq.ParquetFile(fh)
                if self._writer is None:
                    self._tmp_ctx = self.store.atomic_writer(self.name)
                    self._fh = self._tmp_ctx.__enter__()
                    self._writer = pq.ParquetWriter(self._fh, parquet.schema_arrow, compression="zstd")
                for g in range(parquet.num_row_groups):
                    self._writer.write_table(parquet.read_row_group(g))
            self.written.add(i)
        if len(self.written) == self.shards:
            self.close()

    def close(self) -> None:
        if self.single and self._writer is not None:
            self._writer.close()
            self._tmp_ctx.__exit__(None, None, None)
            self._writer = None
