"""The run directory: gembatch's database and the source of truth of a run; read and written only
here.

Layout (every file written atomically; ``run.json`` is written last, when the shards are ready)::

    job_dir/
      run.json                       the Manifest (records.py): what the run asks, of which input
      lock.json                      who drives the run now (lock.py)
      shards/run.json                a copy of the manifest, to rebuild a deleted run.json from
      shards/000000/state.json       shard 0's ShardRecord: its state, remote names, file digests
      shards/000000/requests.jsonl   the keyed request lines it sends
      shards/000000/input.parquet    its input rows (+ key, hash, route and send columns)
      shards/000000/cached.jsonl     answers the result cache already held, as result lines
      shards/000000/results.jsonl    the result lines, downloaded (or converted from inline answers)
      shards/000000/output.parquet   the input rows joined with their results
      shards/000000/retry-01/...     a resubmission of some of its rows (same files, own state)

Every state change is recorded (with the time) before the next remote call, so a process that dies
anywhere can be resumed without repeating a paid call (see records.py for the states).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import logging
import math
import time
import uuid
import warnings
from collections.abc import Iterator
from typing import Any

from .._storage import Directory
from ..exceptions import CorruptRunError, ResultWarning, RunDirectoryError
from .lock import run_lock
from .migrate import migrate_manifest, migrate_shard, split_v1_input
from .records import FORMAT_VERSION, FileDigest, Manifest, ShardRecord, ShardState

__all__ = ["Journal", "seal_file", "utcnow"]

logger = logging.getLogger("gembatch")

RUN_FILE = "run.json"
RUN_COPY = "shards/run.json"
PROGRESS_SAVE_EVERY = 15.0
"""Seconds between two saves of a running job's counts alone (a change of job state is saved at
once)."""


def utcnow() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def seal_file(
    store: Directory,
    record: ShardRecord,
    name: str,
    *,
    rows: int | None = None,
    digest: tuple[str, int] | None = None,
) -> None:
    """Record in ``record`` what its file ``name`` holds now (see :meth:`Journal.seal`)."""
    rel = record.path(name)
    sealed = record.files.get(name)
    if digest is None and sealed is not None and sealed.stat is not None:
        with contextlib.suppress(FileNotFoundError):
            if store.identity(rel) == sealed.stat:  # unchanged since it was sealed: same digest
                record.files[name] = dataclasses.replace(sealed, rows=rows)
                return
    pinned = store.pin(rel)  # before it is read: a change while it is read shows below
    sha, size = digest if digest is not None else store.digest(rel)
    if pinned is not None and (pinned[0] != size or store.identity(rel) != pinned):
        pinned = None  # changed under us: it will be read and checked whole
    record.files[name] = FileDigest(sha256=sha, bytes=size, rows=rows, stat=pinned)


class Journal:
    """Read and write one run directory.

    >>> from gembatch._storage import Directory
    >>> m = Manifest(run_id="r", kind="generate", model="models/m", static={}, config={},
    ...              options={},
    ...              prompt="x")
    >>> _ = Journal.create(Directory("memory://doc-run"), m, [])
    >>> Journal.open(Directory("memory://doc-run")).manifest.kind
    'generate'
    """

    progress_save_every: float = PROGRESS_SAVE_EVERY

    def __init__(
        self,
        store: Directory,
        manifest: Manifest,
        shards: list[ShardRecord],
        resubmissions: dict[int, list[ShardRecord]] | None = None,
    ) -> None:
        self.store = store
        self.manifest = manifest
        self.shards = shards  # the shards of the input, in input order
        self.resubmissions: dict[int, list[ShardRecord]] = resubmissions or {
            s.index: [] for s in shards
        }
        self._progress_saved: dict[
            tuple[int, int], float
        ] = {}  # (index, attempt) -> monotonic time
        #: Created by this process (:meth:`create`, a new run id): nothing of it can be on the
        #: service before this process sends it.
        self.fresh = False

    def records(self) -> list[ShardRecord]:
        """Every shard and resubmission, each shard followed by its resubmissions."""
        return [r for s in self.shards for r in (s, *self.resubmissions.get(s.index, []))]

    def family(self, shard: ShardRecord) -> list[ShardRecord]:
        """A shard and its resubmissions."""
        return [shard, *self.resubmissions.get(shard.index, [])]

    # -- create / open ---------------------------------------------------------------------------
    @staticmethod
    def exists(store: Directory) -> bool:
        """Whether ``store`` holds a run (its manifest, or the copy of it a deleted one is rebuilt
        from)."""
        return store.exists(RUN_FILE) or store.exists(RUN_COPY)

    @classmethod
    def create(cls, store: Directory, manifest: Manifest, shards: list[ShardRecord]) -> Journal:
        """Write the shard states, then the manifest (last: its presence means 'prepared')."""
        manifest.version, manifest.created = FORMAT_VERSION, manifest.created or utcnow()
        manifest.shards = [s.index for s in shards]
        journal = cls(store, manifest, shards)
        journal.fresh = True
        for shard in shards:
            journal.save(shard, note=shard.state.value)
        data = manifest.to_json()
        store.write_json(RUN_COPY, data)
        store.write_json(RUN_FILE, data)
        return journal

    @classmethod
    def open(cls, store: Directory) -> Journal:
        """Read a run directory (any known format version). A deleted ``run.json`` is rebuilt from
        its
        copy; a run directory without either is refused."""
        if not store.exists(RUN_FILE):
            if not store.exists(RUN_COPY):
                raise RunDirectoryError(
                    f"No gembatch run in {store.url!r} (no {RUN_FILE}). Hint: check the path, or "
                    "start "
                    "a run there with batch_generate(..., job_dir=...)."
                )
            warnings.warn(
                ResultWarning(f"{store.url}: {RUN_FILE} was missing; rebuilt it from {RUN_COPY}."),
                stacklevel=3,
            )
            store.write_bytes(RUN_FILE, store.read_bytes(RUN_COPY))
        reading = RUN_FILE  # named in the error

        def read_record(rel: str) -> ShardRecord:
            nonlocal reading
            reading = rel
            return cls._read_record(store, rel)

        try:
            raw = store.read_json(RUN_FILE)
            migrated = migrate_manifest(raw)
            manifest = Manifest.from_json(migrated)
            shards = [read_record(f"shards/{i:06d}/state.json") for i in manifest.shards]
            resubmissions = {
                s.index: [read_record(f"{s.dir}/retry-{a:02d}/state.json") for a in s.resubmissions]
                for s in shards
            }
        except CorruptRunError:
            raise
        except (ValueError, KeyError, TypeError, FileNotFoundError) as exc:
            problem = "is missing" if isinstance(exc, FileNotFoundError) else "cannot be read"
            raise CorruptRunError(
                f"The run directory {store.url!r} cannot be read: {reading} {problem} "
                f"({type(exc).__name__}: {exc}). Hint: if the directory was copied, copy it again "
                "whole: the shard files are needed to resume."
            ) from exc
        journal = cls(store, manifest, shards, resubmissions)
        if (
            raw.get("version") != FORMAT_VERSION
        ):  # written by an earlier release: now in this layout
            for shard in shards:
                split_v1_input(store, shard.dir)
            data = manifest.to_json()
            store.write_json(RUN_COPY, data)
            store.write_json(RUN_FILE, data)
            for record in journal.records():
                journal.save(record, note=f"migrated to format {FORMAT_VERSION}")
        return journal

    @staticmethod
    def _read_record(store: Directory, rel: str) -> ShardRecord:
        return ShardRecord.from_json(migrate_shard(store.read_json(rel)))

    def save_manifest(self) -> None:
        data = self.manifest.to_json()
        self.store.write_json(RUN_COPY, data)
        self.store.write_json(RUN_FILE, data)

    # -- state changes ---------------------------------------------------------------------------
    def save(self, record: ShardRecord, *, note: str | None = None) -> None:
        """Record the shard's current fields atomically (with a history entry, also logged at INFO
        on the ``gembatch`` logger: job names, states, retries and decisions)."""
        record.history.append([utcnow(), note or record.state.value])
        logger.info("gembatch: shard %s: %s", record.name, note or record.state.value)
        self.store.write_json(record.path("state.json"), record.to_json())

    def move(
        self, record: ShardRecord, state: ShardState, note: str | None = None, **fields: Any
    ) -> None:
        """Set ``fields``, move the record to ``state`` (a legal move only) and save it,
        atomically."""
        record.move(state, **fields)
        self.save(record, note=note or state.value)

    def progress(
        self, record: ShardRecord, *, job_state: str, stats: dict[str, int] | None, at: float
    ) -> None:
        """Record a running job's state and batch stats (``at``: when it was seen to progress).

        The fields change in memory at once. A new job state is saved at once; new counts alone at
        most every ``progress_save_every`` seconds per record: they are read from the service again
        on resume, so a lost update costs nothing, and a fast-polled run does not rewrite its state
        files hundreds of times.
        """
        ident, now = (record.index, record.attempt), time.monotonic()
        last = self._progress_saved.get(ident, -math.inf)
        due = job_state != record.job_state or now - last >= self.progress_save_every
        record.job_state, record.stats, record.progress_at = job_state, stats, at
        if due:
            self._progress_saved[ident] = now
            self.save(record, note=job_state)

    def add_resubmission(
        self, shard: ShardRecord, lines: list[str], reason: str, *, mode: str
    ) -> ShardRecord:
        """Record a resubmission of some of ``shard``'s request lines (written before it is
        sent)."""
        attempt = max(shard.resubmissions, default=0) + 1
        data = "".join(line + "\n" for line in lines).encode()
        sha = hashlib.sha256(data).hexdigest()
        child = ShardRecord(
            index=shard.index,
            rows=0,
            lines=len(lines),
            bytes=len(data),
            sha256=sha,
            mode=mode,
            display_name=f"gembatch-{self.manifest.run_id}-{shard.index:05d}r{attempt}-{sha[:8]}",
            parent=shard.index,
            attempt=attempt,
            reason=reason,
        )
        self.store.write_bytes(child.path("requests.jsonl"), data)
        seal_file(self.store, child, "requests.jsonl", rows=len(lines), digest=(sha, len(data)))
        self.save(child, note=f"prepared ({reason})")
        shard.resubmissions.append(attempt)
        self.save(shard, note=f"resubmitting {len(lines)} rows as attempt {attempt} ({reason})")
        self.resubmissions.setdefault(shard.index, []).append(child)
        return child

    # -- file digests ----------------------------------------------------------------------------
    def seal(
        self,
        record: ShardRecord,
        name: str,
        *,
        rows: int | None = None,
        digest: tuple[str, int] | None = None,
    ) -> None:
        """Remember what the record's file ``name`` holds now (its sha256 and size, read back unless
        ``digest`` is given, taken while it was written; and a local file's identity, see
        ``Directory.pin``): :meth:`verify` checks it before the file is used again. The record is
        saved by its next move."""
        seal_file(self.store, record, name, rows=rows, digest=digest)

    def verify(self, record: ShardRecord, name: str) -> None:
        """Check that the record's file ``name`` is what gembatch wrote (a file gembatch never
        sealed, e.g. of a run of 0.1.0, is not checked): a local file whose identity (size, mtime,
        ctime, inode) is the one it was sealed with is; any other is read and its sha256 compared.
        CorruptRunError names the file and what to do."""
        expected = record.files.get(name)
        if expected is None:
            return
        rel = record.path(name)
        try:
            if expected.stat is not None and self.store.identity(rel) == expected.stat:
                return  # not written, moved or truncated since it was sealed: no need to read it
            sha, size = self.store.digest(rel)
        except FileNotFoundError:
            problem = "is missing"
        else:
            if (sha, size) == (expected.sha256, expected.bytes):
                return
            problem = (
                f"changed since gembatch wrote it ({size:,} bytes, sha256 {sha[:12]}..., "
                f"expected {expected.bytes:,} bytes, {expected.sha256[:12]}...)"
            )
        raise CorruptRunError(
            f"The run directory file {self.store.path(rel)} {problem}. gembatch stops rather than "
            "send or join the wrong rows. Hint: restore the run directory from a copy; or start a "
            "new run with another job_dir: answers already paid for come from the result cache.",
            path=rel,
        )

    # -- the lock --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the run for this process; a second live process gets RunLockedError."""
        with run_lock(self.store):
            yield
