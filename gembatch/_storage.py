"""The only module that touches fsspec: literal paths, atomic writes, streaming Parquet/JSONL I/O.

A :class:`Directory` is a folder on any fsspec filesystem (a local path, ``memory://``, ``s3://``
...).
Paths are always *literal*: ``run?``, ``x[ab]`` or ``run*`` name exactly that folder or file, never
a pattern (fsspec's ``rm``/``mv``/``copy`` and polars' readers expand patterns, so they are not used
with user paths). Patterns are expanded only where a caller asks for them (:func:`parquet_dataset`
with ``glob=True``). Every write a resume relies on is atomic: the bytes go to a temporary sibling
first and are renamed into place, so a reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from typing import IO, Any

import fsspec
import polars as pl

from .exceptions import ConfigError

__all__ = [
    "DigestWriter",
    "DigestedFile",
    "Directory",
    "OutputSink",
    "has_pattern",
    "parquet_dataset",
]


#: How far in the past :meth:`Directory.pin` sets a sealed file's mtime (see there).
PIN_BACK_NS = 10 * 10**9


class DigestWriter:
    """A binary writer that passes what it writes on to ``sink`` (None: nowhere), hashing (sha256)
    and counting it on the way: a file's digest taken while it is written, never read back."""

    def __init__(self, sink: IO[bytes] | None = None) -> None:
        self.sink = sink
        self._sha = hashlib.sha256()
        self.bytes = 0

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._sha.update(view)
        self.bytes += view.nbytes
        if self.sink is not None:
            self.sink.write(view)
        return view.nbytes

    def flush(self) -> None:
        if self.sink is not None:
            self.sink.flush()

    def tell(self) -> int:
        return self.bytes

    def writable(self) -> bool:
        return True

    @property
    def closed(self) -> bool:
        return False

    @property
    def digest(self) -> tuple[str, int]:
        """``(sha256 hex, size)`` of everything written so far."""
        return self._sha.hexdigest(), self.bytes


class DigestedFile:
    """The file ``rel`` of ``store`` written atomically through a :class:`DigestWriter`: pass
    :meth:`open` where a writer's opener is wanted (each call starts the file over, e.g. a retried
    download); ``digest`` is that of the last file that landed (None before)."""

    def __init__(self, store: Directory, rel: str) -> None:
        self.store, self.rel = store, rel
        self.digest: tuple[str, int] | None = None

    @contextlib.contextmanager
    def open(self) -> Iterator[DigestWriter]:
        self.digest = None
        with self.store.atomic_writer(self.rel) as fh:
            writer = DigestWriter(fh)
            yield writer
        self.digest = writer.digest


def has_pattern(path: str) -> bool:
    """Whether ``path`` holds a glob character (``*``, ``?``, ``[``)."""
    return any(c in path for c in "*?[")


class Directory:
    """A directory on any fsspec filesystem; every path below it is literal.

    >>> d = Directory("memory://gembatch-doc[1]")
    >>> d.write_json("a/b.json", {"x": 1}); d.read_json("a/b.json")
    {'x': 1}
    """

    def __init__(self, root: str | os.PathLike[str], **storage_options: Any) -> None:
        root = os.fspath(root)
        self.fs, path = fsspec.core.url_to_fs(root, **storage_options)
        self.root = path.rstrip("/") or "/"
        self.url = root
        self.is_local = "file" in _protocols(self.fs)

    def __repr__(self) -> str:
        return f"Directory({self.url!r})"

    def child(self, rel: str) -> Directory:
        """The directory ``rel`` below this one (same filesystem and options)."""
        sub = Directory.__new__(Directory)
        sub.fs, sub.root, sub.is_local = self.fs, self.path(rel), self.is_local
        sub.url = f"{self.url.rstrip('/')}/{rel}"
        return sub

    def path(self, rel: str) -> str:
        """The filesystem path of ``rel`` under the root."""
        return f"{self.root}/{rel}" if rel else self.root

    def local_path(self, rel: str) -> str | None:
        """An OS path for ``rel`` when the directory is local, else None."""
        return self.path(rel) if self.is_local else None

    def exists(self, rel: str) -> bool:
        if self.is_local:
            return os.path.exists(self.path(rel))
        return bool(self.fs.exists(self.path(rel)))

    def makedirs(self, rel: str = "") -> None:
        self.fs.makedirs(self.path(rel), exist_ok=True)

    def listdir(self, rel: str = "") -> list[str]:
        """Names (not paths) directly under ``rel``; empty when it does not exist."""
        if self.is_local:
            try:
                return sorted(os.listdir(self.path(rel)))
            except (FileNotFoundError, NotADirectoryError):
                return []
        try:
            entries = self.fs.ls(self.path(rel), detail=False)
        except FileNotFoundError:
            return []
        return sorted(str(e).rstrip("/").rsplit("/", 1)[-1] for e in entries)

    def size(self, rel: str) -> int:
        if self.is_local:
            return os.path.getsize(self.path(rel))
        return int(self.fs.size(self.path(rel)))

    def digest(self, rel: str) -> tuple[str, int]:
        """The sha256 (hex) and size of the file ``rel``, read in blocks (FileNotFoundError when it
        is absent)."""
        sha, size = hashlib.sha256(), 0
        with self.open(rel, "rb") as fh:
            while block := fh.read(8 << 20):
                sha.update(block)
                size += len(block)
        return sha.hexdigest(), size

    def identity(self, rel: str) -> list[int] | None:
        """``[size, mtime_ns, ctime_ns, inode]`` of the local file ``rel`` (None on other
        filesystems); FileNotFoundError when it is absent."""
        if not self.is_local:
            return None
        st = os.stat(self.path(rel))
        return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]

    def pin(self, rel: str) -> list[int] | None:
        """Give the local file ``rel`` an mtime no later write can give it, and return its
        :meth:`identity` (None on other filesystems).

        A file whose identity is unchanged since it was pinned has not been written since: any
        write sets the mtime to the time of that write (at least the pin's moment, at any timestamp
        granularity up to 10 s), while the pin set it ``PIN_BACK_NS`` earlier; a file moved or
        copied into its place has another inode and ctime; a truncated one another size. Without
        the pin, a same-size write within one tick of the file system's clock after the identity
        was taken (on some kernels, some ms) could leave the mtime unchanged, as git's "racy" index
        entries."""
        if not self.is_local:
            return None
        path = self.path(rel)
        st = os.stat(path)
        os.utime(path, ns=(st.st_atime_ns, time.time_ns() - PIN_BACK_NS))
        return self.identity(rel)

    def mtime(self, rel: str) -> float:
        """The modification time of ``rel`` (epoch seconds); FileNotFoundError when absent."""
        if self.is_local:
            return os.path.getmtime(self.path(rel))
        info = self.fs.info(self.path(rel))
        for name in ("mtime", "LastModified", "last_modified", "created"):
            value = info.get(name)
            if value is not None:
                return float(value.timestamp()) if hasattr(value, "timestamp") else float(value)
        return 0.0

    def remove(self, rel: str, *, recursive: bool = False) -> None:
        """Remove the file (or, with ``recursive``, the folder) ``rel``; nothing if it is absent."""
        path = self.path(rel)
        if self.is_local:
            with contextlib.suppress(FileNotFoundError):
                if os.path.isdir(path) and not os.path.islink(path):
                    if recursive:
                        shutil.rmtree(path)
                else:
                    os.remove(path)
            return
        with contextlib.suppress(FileNotFoundError):
            if not self.fs.isdir(path):
                self.fs.rm_file(path)
                return
            if not recursive:
                return
            found = self.fs.find(path, withdirs=True, detail=True)
            for name, info in sorted(found.items(), key=lambda kv: -len(kv[0])):
                if info.get("type") == "directory":
                    with contextlib.suppress(Exception):
                        self.fs.rmdir(name)
                else:
                    self.fs.rm_file(name)
            with contextlib.suppress(Exception):
                self.fs.rmdir(path)

    def move(self, src: str, dst: str) -> None:
        """Move the file or folder ``src`` to ``dst`` (both below the root, literal; ``dst`` must
        not exist). Local: one rename; other filesystems: copied file by file, then removed."""
        if self.is_local:
            os.makedirs(os.path.dirname(self.path(dst)), exist_ok=True)
            os.replace(self.path(src), self.path(dst))
            return
        source = self.path(src)
        if not self.fs.isdir(source):
            self.fs.makedirs(self.path(dst).rsplit("/", 1)[0], exist_ok=True)
            self.fs.cp_file(source, self.path(dst))
        else:
            for name in self.fs.find(source, detail=False):
                target = self.path(dst) + name[len(source) :]
                self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
                self.fs.cp_file(name, target)
        self.remove(src, recursive=True)

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
            self.fs.cp_file(tmp, final)  # literal (fs.mv and fs.copy expand patterns)
            self.fs.rm_file(tmp)
        except BaseException:
            with contextlib.suppress(Exception):
                self.fs.rm_file(tmp)
            raise

    @contextlib.contextmanager
    def _atomic_local_path(self, rel: str) -> Iterator[str]:
        """A local path to write; its file replaces ``rel`` (synced) when the block ends without
        error."""
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
        # keys in their order: a response schema's property order is part of what it says
        self.write_bytes(rel, json.dumps(obj, indent=1).encode())

    def read_bytes(self, rel: str) -> bytes:
        if self.is_local:
            with open(self.path(rel), "rb") as fh:
                return fh.read()
        with self.fs.open(self.path(rel), "rb") as fh:
            return bytes(fh.read())

    def read_json(self, rel: str) -> Any:
        return json.loads(self.read_bytes(rel))

    def open(self, rel: str, mode: str = "rb") -> IO[Any]:
        """A plain (non-atomic) stream; used for reads and for uploads."""
        if self.is_local:
            return open(self.path(rel), mode)  # noqa: SIM115 - the caller closes it
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

    def read_parquet(self, rel: str, columns: list[str] | None = None) -> pl.DataFrame:
        """Read a Parquet file whole (a local one memory-mapped, not copied into memory first)."""
        if self.is_local:
            return pl.read_parquet(self.path(rel), columns=columns, glob=False)
        with self.open(rel) as fh:
            return pl.read_parquet(fh, columns=columns)

    def parquet_schema(self, rel: str) -> Any:
        import pyarrow.parquet as pq

        with self.open(rel) as fh:
            return pq.read_schema(fh)

    def read_lines(self, rel: str) -> pl.Series:
        """The lines of a text file as a Utf8 Series (newlines stripped, blank lines dropped)."""
        data = self.read_bytes(rel)
        if not data:
            return pl.Series("line", [], dtype=pl.Utf8)
        lines = (
            pl.Series("line", [data.decode("utf-8", errors="replace")]).str.split("\n").explode()
        )
        lines = lines.str.strip_suffix("\r")
        return lines.filter(lines.str.len_bytes() > 0)


def _protocols(fs: fsspec.AbstractFileSystem) -> set[str]:
    proto = fs.protocol
    return {proto} if isinstance(proto, str) else set(proto)


def parquet_dataset(
    source: str | os.PathLike[str],
    storage_options: dict[str, Any] | None = None,
    *,
    glob: bool | None = None,
) -> Any:
    """A pyarrow dataset over a Parquet file, a dataset directory or (``glob``) a pattern.

    ``glob=None`` (the default): a path that exists is taken literally (``reviews[2024].parquet`` is
    that file); a path that does not exist and holds ``*`` is a pattern. ``glob=True`` always
    expands the pattern (``?`` and ``[...]`` too); ``glob=False`` never does.
    """
    import pyarrow.dataset as ds

    from .exceptions import InputError

    text = os.fspath(source)
    fs, path = fsspec.core.url_to_fs(text, **(storage_options or {}))
    literal = bool(fs.exists(path))
    pattern = glob is True or (glob is None and not literal and "*" in path)
    if pattern:
        paths = sorted(fs.glob(path))
        if not paths:
            raise InputError(
                f"No Parquet file matches the pattern {text!r}. Hint: check the pattern."
            )
    elif literal:
        paths = [path]
    else:
        hint = (
            " It holds a pattern character: pass glob=True to expand it as a pattern."
            if has_pattern(path)
            else ""
        )
        raise InputError(
            f"No Parquet file or dataset directory at {text!r}.{hint} Hint: check the path."
        )
    if len(paths) == 1 and fs.isdir(paths[0]):  # a dataset directory: its files, listed literally
        top = paths[0].rstrip("/")
        found = fs.find(
            top, detail=False
        )  # like pyarrow's discovery: no hidden or _-prefixed parts
        paths = sorted(
            p
            for p in found
            if not any(part.startswith((".", "_")) for part in p[len(top) :].strip("/").split("/"))
        )
        parquet = [p for p in paths if p.lower().endswith((".parquet", ".parq", ".pq"))]
        paths = parquet or paths  # stray files beside Parquet ones (a README, a _SUCCESS) left out
        if not paths:
            raise InputError(f"The directory {text!r} holds no data file.")
        # hive-style directories (``p=1/part-0.parquet``): their keys are columns of the rows
        return ds.dataset(
            paths, filesystem=fs, format="parquet", partitioning="hive", partition_base_dir=top
        )
    return ds.dataset(paths, filesystem=fs, format="parquet")


_PART = re.compile(r"part-(\d{5,})\.parquet")
#: Names of other formats: a Parquet dataset directory named like one is a mistake.
_NOT_A_DIRECTORY = (
    ".csv",
    ".tsv",
    ".json",
    ".jsonl",
    ".ndjson",
    ".txt",
    ".arrow",
    ".feather",
    ".ipc",
    ".xlsx",
    ".xls",
    ".avro",
    ".orc",
)
#: Names of one Parquet file (any case).
_PARQUET_FILE = (".parquet", ".pq", ".parq")


def check_apart(source: str, dest: str) -> None:
    """Refuse an output that would overwrite its own input: the same path, an output directory
    holding the input, or an output inside the input's directory (a dataset read while its files
    are replaced loses rows). Paths compare as written, made absolute when local."""

    def norm(path: str, pattern: bool) -> str:
        remote = "://" in path and not path.startswith("file://")
        if not remote:
            path = os.path.expanduser(path.removeprefix("file://"))
        if pattern and has_pattern(path) and (remote or not os.path.exists(path)):
            # a pattern (an existing file of that name is literal): the folder it starts in
            head = path[: min(i for i, c in enumerate(path) if c in "*?[")]
            path = head.rsplit("/", 1)[0] if "/" in head else "."
        if remote:
            scheme, _, rest = path.partition("://")
            return f"{scheme}://{posixpath.normpath('/' + rest).lstrip('/')}"
        return os.path.realpath(path)

    text = os.path.expanduser(os.fspath(source).removeprefix("file://"))
    if "://" not in text and has_pattern(text) and not os.path.exists(text):
        import glob

        if not glob.glob(text):
            return  # matches nothing: the input's own error says so
    a, b = norm(os.fspath(source), True), norm(os.fspath(dest), False)  # outputs are literal
    inside = a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")
    if inside:
        raise ConfigError(
            f"The output {dest!r} would overwrite the input {source!r} (the same place, or one "
            "inside the other): rows would be lost while they are read. Nothing was sent. Hint: "
            "write the output somewhere else."
        )


class OutputSink:
    """Writes a run's output shard by shard, never holding more than one row group in memory.

    ``dest`` ending in ``.parquet`` is one file, written to a temporary name and renamed into place
    when the last shard is in; any other ``dest`` is a dataset directory whose
    ``part-00000.parquet``, ... files appear (atomically) as their shards finish, while later shards
    are still running. A directory must be new, empty, or hold only ``part-NNNNN.parquet`` files
    (an earlier output): those this run does not rewrite are removed once its output is complete,
    so the directory holds this run's rows alone. Anything else there, or a name of another format
    (``scored.csv``), is refused when the sink is made (before anything is sent).
    """

    def __init__(
        self,
        dest: str | os.PathLike[str],
        shards: int,
        *,
        own_columns: tuple[str, ...] = (),
        create: bool = True,
        **storage_options: Any,
    ) -> None:
        dest = os.fspath(dest)
        name = dest.rstrip("/").rsplit("/", 1)[-1].lower()
        if not dest.endswith("/") and name.endswith(_NOT_A_DIRECTORY):
            raise ConfigError(
                f"The output {dest!r} names another format: gembatch writes Parquet. Hint: a path "
                "ending in .parquet (one file) or a directory (a Parquet dataset); convert "
                "afterwards, or use the CLI's --out, which writes CSV and JSON too."
            )
        self.single = not dest.endswith("/") and name.endswith(_PARQUET_FILE)
        self.shards = shards
        self.written: set[int] = set()
        self._pending: dict[int, tuple[Directory, str]] = {}
        self._writer: Any = None
        self._tmp_ctx: Any = None
        self._stale: list[str] = []  # part files of an earlier output (a directory's)
        if self.single:
            parent, name = dest.rsplit("/", 1) if "/" in dest else (".", dest)
            self.store = Directory(parent or "/", **storage_options)
            self.name = name
            if self.store.fs.isdir(self.store.path(name)):
                raise ConfigError(
                    f"The output {dest!r} is a directory, not a file. Hint: another name for one "
                    "file, or the directory's path ending in / for a Parquet dataset there."
                )
        else:
            self.store = Directory(dest, **storage_options)
            entries = self.store.listdir()
            foreign = [e for e in entries if not _PART.fullmatch(e) and not e.startswith(".")]
            if foreign:
                shown = ", ".join(foreign[:3]) + (
                    f" (+{len(foreign) - 3} more)" if foreign[3:] else ""
                )
                raise ConfigError(
                    f"The output directory {dest!r} holds files gembatch did not write ({shown}); "
                    "its output would be mixed with them. Hint: write to a new or empty "
                    "directory (or to a path ending in .parquet for one file)."
                )
            self._stale = [e for e in entries if _PART.fullmatch(e)]
            strangers = [e for e in self._stale if not self._ours(e, own_columns)]
            if strangers:
                raise ConfigError(
                    f"The output directory {dest!r} holds {', '.join(strangers[:3])}, which "
                    "gembatch did not write (no result columns); writing there would replace "
                    "them. Hint: write to a new or empty directory."
                )
            if create:  # (create=False: only the checks, e.g. before a command line runs)
                self.store.makedirs()

    def _ours(self, name: str, own_columns: tuple[str, ...]) -> bool:
        """Whether the part file ``name`` is a gembatch output (it has the result columns)."""
        import pyarrow.parquet as pq

        try:
            with self.store.open(name) as fh:
                columns = set(pq.read_schema(fh).names)
        except Exception:  # noqa: BLE001 - unreadable: not an output of gembatch's
            return False
        return set(own_columns) <= columns

    def offer(self, index: int, source: Directory, rel: str) -> None:
        """Shard ``index`` is final at ``source/rel``; write it (and any shards it was holding
        up)."""
        import pyarrow.parquet as pq

        if index in self.written:
            return
        if not self.single:
            part = f"part-{index:05d}.parquet"
            local = source.local_path(rel)
            if local is not None and self.store.is_local:  # copied by the kernel, not through here
                with self.store._atomic_local_path(part) as tmp:
                    shutil.copyfile(local, tmp)
            else:
                with source.open(rel) as src, self.store.atomic_writer(part) as out:
                    shutil.copyfileobj(src, out, 8 << 20)
            self.written.add(index)
            if len(self.written) == self.shards:
                self.close()
            return
        self._pending[index] = (source, rel)
        while len(self.written) in self._pending:
            i = len(self.written)
            src_store, src_rel = self._pending.pop(i)
            with src_store.open(src_rel) as fh:
                parquet = pq.ParquetFile(fh)
                if self._writer is None:
                    self._tmp_ctx = self.store.atomic_writer(self.name)
                    out = self._tmp_ctx.__enter__()
                    self._writer = pq.ParquetWriter(out, parquet.schema_arrow, compression="zstd")
                for g in range(parquet.num_row_groups):
                    self._writer.write_table(parquet.read_row_group(g))
            self.written.add(i)
        if len(self.written) == self.shards:
            self.close()

    def close(self) -> None:
        if not self.single:  # the output is complete: parts of an earlier, longer output go
            mine = {f"part-{i:05d}.parquet" for i in self.written}
            for name in self._stale:
                if name not in mine:
                    with contextlib.suppress(FileNotFoundError):
                        self.store.remove(name)
            self._stale = []
        if self.single and self._writer is not None:
            self._writer.close()
            self._tmp_ctx.__exit__(None, None, None)
            self._writer = None
