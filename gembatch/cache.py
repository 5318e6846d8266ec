"""The result cache across runs: request hash -> raw response JSON, as Parquet segments.

A cache is a directory (local path or any fsspec URL) holding
``segments/<utc time>-<uuid>.parquet`` files. Each :meth:`ResultCache.put` writes one new segment
atomically (temporary name, then rename), so several processes can write at once and a reader never
sees half a segment; a reader treats a segment that disappears under it (a concurrent prune or
clear) as absent, and skips an unreadable one with a :class:`CacheWarning`. When segments add up to
more than ``max_bytes`` the oldest are removed, whole. A segment holds only ``hash``, ``response``,
``model``, ``model_version`` and ``created_at``.

>>> import polars as pl
>>> cache = ResultCache("memory://gembatch-cache-doc")
>>> h = "a" * 64
>>> cache.put(pl.DataFrame({"hash": [h], "response": ['{"candidates": []}'],
...                         "model": ["gemini-2.5-flash"], "model_version": [None]}))
1
>>> cache.lookup(pl.Series([h, h, None, "b" * 64]))["response"].to_list()
['{"candidates": []}']
>>> cache.stats().entries
1
>>> cache.clear()
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from ._storage import Directory
from .exceptions import ConfigError, InputError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "CacheStats",
    "CacheWarning",
    "ResultCache",
    "clear",
    "default_path",
    "stats",
]

DEFAULT_MAX_BYTES: int = 2 * 1024**3

#: What :meth:`ResultCache.lookup` returns, in this order.
LOOKUP_SCHEMA = pl.Schema(
    {
        "hash": pl.String(),
        "response": pl.String(),
        "model_version": pl.String(),
        "created_at": pl.Datetime("us", "UTC"),
    }
)
#: What a segment holds. A new layout would use a new directory name instead of ``segments``.
_SEGMENT_SCHEMA = pl.Schema(
    {
        "hash": pl.String(),
        "response": pl.String(),
        "model": pl.String(),
        "model_version": pl.String(),
        "created_at": pl.Datetime("us", "UTC"),
    }
)
_DIR = "segments"
#: Requests of running jobs, by run and shard (see ResultCache.mark_in_flight).
_INFLIGHT = "inflight"
_TIME_FORMAT = "%Y%m%dT%H%M%S%fZ"
_SEGMENT_NAME = re.compile(r"^(\d{8}T\d{12}Z)-[0-9a-f]{32}\.parquet$")
_TEMP_PREFIX = ".tmp-"  # Directory.atomic_writer's temporary names
_HASH = r"^[0-9a-f]{64}$"
#: What reading a vanished, truncated, foreign or garbage file raises (polars, pyarrow, fsspec).
_UNREADABLE = (OSError, ValueError, pl.exceptions.PolarsError, pa.ArrowException)


class CacheWarning(UserWarning):
    """A cache segment could not be read and was skipped; its answers are treated as not cached."""


def default_path() -> str:
    """The per-user cache location.

    ``$GEMBATCH_CACHE_DIR`` when set (a path or an fsspec URL), else
    ``$XDG_CACHE_HOME/gembatch/results`` (when that is an absolute path), else
    ``~/.cache/gembatch/results``.
    """
    env = os.environ.get("GEMBATCH_CACHE_DIR")
    if env:
        return _resolve(env)
    xdg = os.path.expanduser(os.environ.get("XDG_CACHE_HOME", ""))
    base = xdg if os.path.isabs(xdg) else os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.abspath(os.path.join(base, "gembatch", "results"))


def _resolve(path: str | os.PathLike[str]) -> str:
    """A URL as given (without a trailing slash); a local path expanded and made absolute."""
    text = os.fspath(path)
    if "://" in text:
        return text.rstrip("/")
    return os.path.abspath(os.path.expanduser(text))


@dataclass(frozen=True)
class CacheStats:
    """What is in a cache: entries (stored rows), bytes and number of segments, time span, bound."""

    path: str
    entries: int
    bytes: int
    segments: int
    oldest: datetime | None
    newest: datetime | None
    max_bytes: int

    def __str__(self) -> str:
        span = "empty"
        if self.oldest is not None and self.newest is not None:
            span = f"from {self.oldest:%Y-%m-%d %H:%M:%S} to {self.newest:%Y-%m-%d %H:%M:%S} UTC"
        return (
            f"gembatch result cache at {self.path}\n"
            f"  {self.entries:,} entries in {self.segments:,} segments, "
            f"{_human(self.bytes)} of {_human(self.max_bytes)}\n"
            f"  {span}"
        )


class ResultCache:
    """Content-addressed answers: request hash -> raw response JSON, as Parquet segments.

    ``path`` (local or any fsspec URL) defaults to :func:`default_path`; ``max_bytes`` bounds the
    total size of the segments; ``storage_options`` go to fsspec; ``clock`` (returning an aware
    datetime) stamps new entries.

    >>> ResultCache("memory://gembatch-cache-doc2", max_bytes=10**6).stats().entries
    0
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        storage_options: dict[str, Any] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
            raise ConfigError(
                f"max_bytes must be a positive int (a size in bytes), got {max_bytes!r} "
                f"({type(max_bytes).__name__}). Hint: e.g. max_bytes=2 * 1024**3 for 2 GiB."
            )
        if storage_options is not None and not isinstance(storage_options, dict):
            raise ConfigError(
                f"storage_options must be a dict of fsspec options or None, got "
                f"{type(storage_options).__name__}. Hint: e.g. storage_options={{'anon': False}}."
            )
        self.path: str = _resolve(default_path() if path is None else path)
        self.max_bytes = max_bytes
        self._store = Directory(self.path, **(storage_options or {}))
        self._clock = clock or (lambda: datetime.now(timezone.utc))

    def __repr__(self) -> str:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CacheWarning)
            s = self.stats()
        return f"ResultCache({self.path!r}, entries={s.entries:,}, size={_human(s.bytes)})"

    # -- reading ---------------------------------------------------------------------------------
    def lookup(self, hashes: pl.Series) -> pl.DataFrame:
        """The cached answers for ``hashes``: a row per distinct non-null hash found, newest wins.

        Columns: ``hash``, ``response`` (the raw JSON text), ``model_version``, ``created_at``; rows
        in no particular order. Hashes not in the cache (and nulls) are simply absent.
        """
        if not isinstance(hashes, pl.Series) or hashes.dtype not in (pl.String, pl.Null):
            got = hashes.dtype if isinstance(hashes, pl.Series) else type(hashes).__name__
            raise InputError(
                f"lookup() takes a Utf8 polars Series of sha256 hex digests, got {got}. "
                "Hint: pass pl.Series(hashes, dtype=pl.Utf8)."
            )
        wanted = hashes.cast(pl.String).drop_nulls().unique()
        if wanted.is_empty():
            return LOOKUP_SCHEMA.to_frame()
        found = self._read(wanted, list(LOOKUP_SCHEMA))
        if found.height > found["hash"].n_unique():  # concurrent writers stored a hash twice
            found = found.sort("created_at").unique("hash", keep="last")
        return found

    def _read(self, wanted: pl.Series, columns: list[str]) -> pl.DataFrame:
        """The rows of every segment whose hash is in ``wanted`` (a Utf8 Series without nulls)."""
        names = self._segment_names()
        schema = {c: _SEGMENT_SCHEMA[c] for c in columns}
        if not names:
            return pl.DataFrame(schema=schema)
        if self._store.is_local:
            # The fast path: one parallel scan, predicate pushed down, answers decoded for hits.
            # If a segment vanished or is unreadable, fall through and read them one by one.
            with contextlib.suppress(*_UNREADABLE):
                return _matching([self._store.path(f"{_DIR}/{n}") for n in names], wanted, columns)
        frames = [f for n in names if (f := self._read_segment(n, wanted, columns)) is not None]
        return pl.concat(frames) if frames else pl.DataFrame(schema=schema)

    def _read_segment(
        self, name: str, wanted: pl.Series, columns: list[str]
    ) -> pl.DataFrame | None:
        """One segment's matching rows; None if it vanished (silently) or is unreadable (warned)."""
        rel = f"{_DIR}/{name}"
        try:  # the hash column first (ranged reads on remote stores), the others only on a hit
            with self._store.open(rel) as fh:
                parquet = pq.ParquetFile(fh)
                _check_schema(parquet.schema_arrow)
                hit = pl.Series(parquet.read(columns=["hash"]).column(0)).is_in(wanted.implode())
                if not hit.any():
                    return None
                table = pl.DataFrame(parquet.read(columns=columns)).filter(hit)
                return table.select(pl.col(c).cast(_SEGMENT_SCHEMA[c]) for c in columns)
        except _UNREADABLE as exc:
            if not self._store.exists(rel):
                return None  # pruned or cleared by another process since we listed it
            _warn_unreadable(self._store.path(rel), exc)
            return None

    def _segment_names(self) -> list[str]:
        """Segment file names, oldest first (temporary files of writes in progress are not)."""
        return [n for n in self._store.listdir(_DIR) if _SEGMENT_NAME.match(n)]

    def _segment_sizes(self) -> list[tuple[str, int]]:
        sizes = []
        for name in self._segment_names():
            try:
                sizes.append((name, self._store.size(f"{_DIR}/{name}")))
            except FileNotFoundError:
                continue
        return sizes

    # -- writing ---------------------------------------------------------------------------------
    def put(self, entries: pl.DataFrame) -> int:
        """Store new answers as one segment; return how many were written (0 writes nothing).

        ``entries`` needs ``hash``, ``response`` and ``model`` (Utf8, not null) and may have
        ``model_version`` (Utf8, nullable); other columns are ignored. Hashes already cached, or
        repeated in ``entries``, are written once. Afterwards the oldest segments are removed while
        the cache is over ``max_bytes``.
        """
        frame = _checked_entries(entries).unique("hash", keep="first", maintain_order=True)
        if frame.height and self._segment_names():
            known = self._read(frame["hash"], ["hash"])["hash"]
            frame = frame.filter(~pl.col("hash").is_in(known.implode()))
        if frame.is_empty():
            return 0
        now = self._clock().astimezone(timezone.utc)
        frame = frame.with_columns(created_at=pl.lit(now, dtype=pl.Datetime("us", "UTC")))
        name = f"{now.strftime(_TIME_FORMAT)}-{uuid.uuid4().hex}.parquet"
        self._store.write_parquet(f"{_DIR}/{name}", frame.select(list(_SEGMENT_SCHEMA)))
        self._prune()
        return frame.height

    def _prune(self) -> None:
        """Remove the oldest segments while the total is above ``max_bytes``; the newest stays."""
        sizes = self._segment_sizes()
        total = sum(size for _, size in sizes)
        for name, size in sizes[:-1]:
            if total <= self.max_bytes:
                break
            self._store.remove(f"{_DIR}/{name}")
            total -= size

    def clear(self) -> None:
        """Remove every segment (and leftover temporary files); other files under ``path`` stay."""
        for name in self._store.listdir(_DIR):
            if _SEGMENT_NAME.match(name) or name.startswith(_TEMP_PREFIX):
                self._store.remove(f"{_DIR}/{name}")

    # -- requests in flight ---------------------------------------------------------------------
    def mark_in_flight(self, name: str, hashes: pl.Series, run_dir: str) -> None:
        """Record that the run in ``run_dir`` has the requests ``hashes`` on the service (a job
        under way): another run that needs them waits for those answers or drives that run to
        them, instead of paying for them again (:meth:`in_flight`)."""
        rel = f"{_INFLIGHT}/{name}"
        frame = pl.DataFrame({"hash": hashes.cast(pl.String).drop_nulls().unique()})
        self._store.write_parquet(f"{rel}.parquet", frame)
        self._store.write_json(f"{rel}.json", {"run_dir": run_dir})

    def unmark_in_flight(self, name: str) -> None:
        """The answers of ``name`` are in (or will never come): forget it."""
        for ext in (".json", ".parquet"):
            with contextlib.suppress(FileNotFoundError):
                self._store.remove(f"{_INFLIGHT}/{name}{ext}")

    def in_flight(self, hashes: pl.Series) -> dict[str, int]:
        """Run directories with some of ``hashes`` in flight, and how many of them each."""
        if not self._store.exists(_INFLIGHT):
            return {}
        wanted = hashes.cast(pl.String).drop_nulls().unique().implode()
        found: dict[str, int] = {}
        for entry in self._store.listdir(_INFLIGHT):
            if not entry.endswith(".json"):
                continue
            rel = f"{_INFLIGHT}/{entry[: -len('.json')]}"
            try:
                run_dir = str(self._store.read_json(f"{rel}.json")["run_dir"])
                marked = self._store.read_parquet(f"{rel}.parquet")["hash"]
            except (FileNotFoundError, KeyError, ValueError, OSError):
                continue  # being written or removed right now
            overlap = int(marked.is_in(wanted).sum())
            if overlap:
                found[run_dir] = found.get(run_dir, 0) + overlap
        return found

    # -- inspecting ------------------------------------------------------------------------------
    def stats(self) -> CacheStats:
        """Entries, bytes, segments and time span, from the segments' Parquet footers only.

        An unreadable segment is warned about; it counts in ``bytes`` and ``segments`` (it takes
        space until it is evicted or cleared) but not in ``entries``.
        """
        entries, total, count, times = 0, 0, 0, []
        for name, size in self._segment_sizes():
            rel = f"{_DIR}/{name}"
            try:
                with self._store.open(rel) as fh:
                    meta = pq.read_metadata(fh)
                _check_schema(meta.schema.to_arrow_schema())
                entries += meta.num_rows
            except _UNREADABLE as exc:
                if not self._store.exists(rel):
                    continue
                _warn_unreadable(self._store.path(rel), exc)
            else:
                times.append(_segment_time(name))
            total += size
            count += 1
        return CacheStats(
            path=self.path,
            entries=entries,
            bytes=total,
            segments=count,
            oldest=min(times, default=None),
            newest=max(times, default=None),
            max_bytes=self.max_bytes,
        )


def _matching(paths: list[str], wanted: pl.Series, columns: list[str]) -> pl.DataFrame:
    """The rows of local segment files whose hash is in ``wanted``: one streaming scan (memory
    bounded by the matches, not by the size of the cache)."""
    scan = pl.scan_parquet(paths, schema=_SEGMENT_SCHEMA, hive_partitioning=False, glob=False)
    return (
        scan.filter(pl.col("hash").is_in(wanted.implode()))
        .select(columns)
        .collect(engine="streaming")
    )


def _check_schema(schema: pa.Schema) -> None:
    got = pl.Schema(schema)
    if got != _SEGMENT_SCHEMA:
        raise ValueError(f"not a cache segment: its columns are {dict(got)}")


def _checked_entries(entries: pl.DataFrame) -> pl.DataFrame:
    """``entries`` reduced to the segment columns, or an InputError saying what is wrong."""
    if not isinstance(entries, pl.DataFrame):
        raise InputError(f"put() takes a polars DataFrame, got {type(entries).__name__}.")
    if "model_version" not in entries.columns:
        entries = entries.with_columns(model_version=pl.lit(None, dtype=pl.String))
    missing = [c for c in ("hash", "response", "model") if c not in entries.columns]
    if missing:
        raise InputError(
            f"put() entries lack column(s) {missing}; they have {entries.columns}. "
            "Hint: pass hash, response, model and (optionally) model_version."
        )
    for col in ("hash", "response", "model", "model_version"):
        dtype = entries.schema[col]
        if dtype not in (pl.String, pl.Null):
            raise InputError(
                f"put() column {col!r} must be Utf8, got {dtype}. Hint: .cast(pl.Utf8) it first."
            )
    frame = entries.select(pl.col("hash", "response", "model", "model_version").cast(pl.String))
    for col in ("hash", "response", "model"):
        nulls = frame[col].null_count()
        if nulls:
            raise InputError(
                f"put() column {col!r} has {nulls} null value(s). Hint: cache only successful "
                "answers; filter failed rows out before put()."
            )
    bad = frame.filter(~pl.col("hash").str.contains(_HASH))["hash"]
    if bad.len():
        raise InputError(
            f"put() column 'hash' has {bad.len()} value(s) that are not 64-char lowercase hex "
            f"sha256 digests, e.g. {bad[0]!r}. Hint: hash requests with gembatch's canonical "
            "request hash."
        )
    return frame


def _segment_time(name: str) -> datetime:
    match = _SEGMENT_NAME.match(name)
    assert match is not None
    return datetime.strptime(match.group(1), _TIME_FORMAT).replace(tzinfo=timezone.utc)


def _warn_unreadable(where: str, exc: BaseException) -> None:
    warnings.warn(
        f"Skipping unreadable cache segment {where} ({type(exc).__name__}: {exc}); its answers are "
        "treated as not cached. Hint: delete that file, or run gembatch.cache.clear().",
        CacheWarning,
        stacklevel=4,
    )


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError  # pragma: no cover


def stats(path: str | os.PathLike[str] | None = None) -> CacheStats:
    """The :class:`CacheStats` of the cache at ``path`` (the default cache when None)."""
    return ResultCache(path).stats()


def clear(path: str | os.PathLike[str] | None = None) -> None:
    """Empty the cache at ``path`` (the default cache when None)."""
    ResultCache(path).clear()
