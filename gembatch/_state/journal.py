"""The run directory: gembatch's database and the source of truth of a run.

Layout (every file written atomically; ``run.json`` is written once, last, when the shards are ready)::

    job_dir/
      run.json                    manifest: version, kind, run id, config, input fingerprint, shards
      lock.json                   who drives the run now (pid, host); stale locks are taken over
      shards/000000/requests.jsonl   the keyed request lines of shard 0
      shards/000000/input.parquet    the input rows of shard 0 (+ key and send columns)
      shards/000000/state.json       the shard's state machine record (below)
      shards/000000/results.jsonl    the result lines, downloaded (or converted from inline)
      shards/000000/output.parquet   the input rows joined with their results

A shard moves through named states; each move is recorded (with the time) before the next remote call,
so a process that dies anywhere can be resumed without repeating a paid call::

    PREPARED -> UPLOADING -> UPLOADED -> CREATING -> SUBMITTED -> FINISHED -> FETCHED -> JOINED
               (file mode only)

``UPLOADING`` and ``CREATING`` are *intents*: on resume the runner first looks on the service for a file or
job with the shard's deterministic display name and adopts it, and only then uploads or creates.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import enum
import json
import math
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import CorruptRunError, RunDirectoryError, RunLockedError
from .._build.shards import fits_inline
from .._storage import Store

__all__ = ["FORMAT_VERSION", "Journal", "ShardRecord", "ShardState"]

PROGRESS_SAVE_EVERY = 15.0
"""Seconds between two saves of a running job's counts alone (a change of job state is saved at once)."""

FORMAT_VERSION = 1
RUN_FILE = "run.json"
LOCK_FILE = "lock.json"


class ShardState(str, enum.Enum):
    """Where a shard is in its life. Ordered: a later state implies every earlier one happened."""

    PREPARED = "prepared"
    UPLOADING = "uploading"
    UPLOADED = "uploaded"
    CREATING = "creating"
    SUBMITTED = "submitted"
    FINISHED = "finished"
    FETCHED = "fetched"
    JOINED = "joined"

    @property
    def rank(self) -> int:
        return list(ShardState).index(self)


TERMINAL_JOB_STATES = frozenset(
    {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"}
)


def utcnow() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class ShardRecord:
    """The journal entry of one shard (one request file, one batch job)."""

    index: int
    rows: int
    lines: int
    bytes: int
    sha256: str
    mode: str  # "inline" | "file"
    display_name: str
    state: ShardState = ShardState.PREPARED
    file_name: str | None = None
    job_name: str | None = None
    job_state: str | None = None
    job_error: str | None = None
    result_file: str | None = None
    stats: dict[str, int] | None = None
    report: dict[str, int] | None = None
    cleaned: bool = False
    parent: int | None = None  # a resubmission: the index of the shard whose rows it answers
    attempt: int = 0  # 0 for a shard, 1, 2, ... for its resubmissions
    reason: str | None = None  # why a resubmission exists: expired / watchdog / retry_failed
    retries: list[int] = field(default_factory=list)  # attempts of this shard's resubmissions
    submitted_at: float | None = None  # wall-clock seconds, for the stuck-job watchdog
    progress_at: float | None = None
    watchdog: bool = False  # cancelled by the watchdog: its unanswered rows go out again, split
    history: list[list[str]] = field(default_factory=list)

    @property
    def dir(self) -> str:
        if self.parent is not None:
            return f"shards/{self.parent:06d}/retry-{self.attempt:02d}"
        return f"shards/{self.index:06d}"

    def path(self, name: str) -> str:
        return f"{self.dir}/{name}"

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["state"] = self.state.value
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ShardRecord:
        data = dict(data)
        data["state"] = ShardState(data["state"])
        return cls(**data)


class Journal:
    """Read and write one run directory.

    >>> from gembatch.storage import Store
    >>> j = Journal.create(Store("memory://doc-run"), {"kind": "generate"}, [])
    >>> Journal.open(Store("memory://doc-run")).manifest["kind"]
    'generate'
    """

    progress_save_every: float = PROGRESS_SAVE_EVERY

    def __init__(
        self, store: Store, manifest: dict[str, Any], shards: list[ShardRecord],
        retries: dict[int, list[ShardRecord]] | None = None,
    ) -> None:
        self.store = store
        self.manifest = manifest
        self.shards = shards  # the shards of the input, in input order
        self.retries: dict[int, list[ShardRecord]] = retries or {s.index: [] for s in shards}
        self._progress_saved: dict[tuple[int, int], float] = {}  # (index, attempt) -> monotonic time

    def records(self) -> list[ShardRecord]:
        """Every shard and resubmission, each shard followed by its resubmissions."""
        return [r for s in self.shards for r in (s, *self.retries.get(s.index, []))]

    def add_retry(self, shard: ShardRecord, lines: list[str], reason: str) -> ShardRecord:
        """Record a resubmission of some of ``shard``'s request lines (written before it is sent)."""
        import hashlib

        attempt = max(shard.retries, default=0) + 1
        data = "".join(line + "\n" for line in lines).encode()
        sha = hashlib.sha256(data).hexdigest()
        run_id, options = self.manifest.get("run_id", "run"), self.manifest.get("options", {})
        child = ShardRecord(
            index=shard.index, rows=0, lines=len(lines), bytes=len(data), sha256=sha,
            mode="inline" if fits_inline(len(lines), len(data), max_rows=int(options.get("inline_max_rows", 5_000)),
                                         max_bytes=int(options.get("inline_max_bytes", 0))) else "file",
            display_name=f"gembatch-{run_id}-{shard.index:05d}r{attempt}-{sha[:8]}",
            parent=shard.index, attempt=attempt, reason=reason,
        )
        self.store.write_bytes(child.path("requests.jsonl"), data)
        self.save(child, note=f"prepared ({reason})")
        shard.retries.append(attempt)
        self.save(shard, note=f"resubmitting {len(lines)} rows as attempt {attempt} ({reason})")
        self.retries.setdefault(shard.index, []).append(child)
        return child

    # -- create / open ---------------------------------------------------------------------------
    @staticmethod
    def exists(store: Store) -> bool:
        return store.exists(RUN_FILE)

    @classmethod
    def create(
        cls, store: Store, manifest: dict[str, Any], shards: list[ShardRecord]
    ) -> Journal:
        """Write the shard states, then the manifest (last: its presence means 'prepared')."""
        manifest = {**manifest, "version": FORMAT_VERSION, "created": utcnow(),
                    "shards": [s.index for s in shards]}
        journal = cls(store, manifest, shards)
        for shard in shards:
            journal.save(shard, note="prepared")
        store.write_json(RUN_FILE, manifest)
        return journal

    @classmethod
    def open(cls, store: Store) -> Journal:
        if not store.exists(RUN_FILE):
            raise RunDirectoryError(
                f"No gembatch run in {store.url!r} (no {RUN_FILE}). Hint: check the path, or start "
                "a run there with batch_generate(..., job_dir=...)."
            )
        try:
            manifest = store.read_json(RUN_FILE)
            if manifest.get("version") != FORMAT_VERSION:
                raise CorruptRunError(
                    f"The run in {store.url!r} has format version {manifest.get('version')!r}; this "
                    f"gembatch reads version {FORMAT_VERSION}. Hint: open it with the gembatch "
                    "version that created it."
                )
            shards = [
                ShardRecord.from_json(store.read_json(f"shards/{i:06d}/state.json"))
                for i in manifest["shards"]
            ]
            retries = {
                s.index: [ShardRecord.from_json(store.read_json(f"{s.dir}/retry-{a:02d}/state.json"))
                          for a in s.retries]
                for s in shards
            }
        except (ValueError, KeyError, TypeError, FileNotFoundError) as exc:
            raise CorruptRunError(
                f"The run directory {store.url!r} cannot be read ({exc!r}). Hint: if it was copied, "
                "copy it again whole; the shard files are needed to resume."
            ) from exc
        return cls(store, manifest, shards, retries)

    # -- state changes ---------------------------------------------------------------------------
    def save(self, shard: ShardRecord, *, note: str | None = None) -> None:
        """Record the shard's current fields atomically (with a history entry)."""
        shard.history.append([utcnow(), note or shard.state.value])
        self.store.write_json(shard.path("state.json"), shard.to_json())

    def move(self, shard: ShardRecord, state: ShardState, note: str | None = None, **fields: Any) -> None:
        """Set ``fields``, move the shard to ``state`` and record it, all in one atomic write."""
        for name, value in fields.items():
            if not hasattr(shard, name):
                raise AttributeError(name)
            setattr(shard, name, value)
        shard.state = state
        self.save(shard, note=note or state.value)

    def progress(self, shard: ShardRecord, *, job_state: str, stats: dict[str, int] | None, at: float) -> None:
        """Record a running job's state and batch stats (``at``: when it was seen to progress).

        The fields change in memory at once. A new job state is saved at once; new counts alone at
        most every ``progress_save_every`` seconds per shard: they are read from the service again
        on resume, so a lost update costs nothing, and a fast-polled run does not rewrite its state
        files hundreds of times.
        """
        ident, now = (shard.index, shard.attempt), time.monotonic()
        last = self._progress_saved.get(ident, -math.inf)
        due = job_state != shard.job_state or now - last >= self.progress_save_every
        shard.job_state, shard.stats, shard.progress_at = job_state, stats, at
        if due:
            self._progress_saved[ident] = now
            self.save(shard, note=job_state)

    # -- the lock --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the run for this process; a second live process gets RunLockedError."""
        with run_lock(self.store):
            yield


@contextlib.contextmanager
def run_lock(store: Store) -> Iterator[None]:
    """An exclusive lock on a run directory, taken over when its holder process is dead."""
    me = {"pid": os.getpid(), "host": socket.gethostname(), "since": utcnow()}
    path = store.path(LOCK_FILE)
    for _ in range(2):
        if _try_create(store, path, me):
            break
        holder = _read_lock(store)
        if holder and holder.get("pid") == me["pid"] and holder.get("host") == me["host"]:
            yield  # re-entrant within one process
            return
        if holder and not _holder_alive(holder):
            store.remove(LOCK_FILE)
            continue
        raise RunLockedError(
            f"The run in {store.url!r} is being driven by another process "
            f"(pid {holder.get('pid') if holder else '?'} on {holder.get('host') if holder else '?'}, "
            f"since {holder.get('since') if holder else '?'}). Hint: wait for it to finish, or stop "
            "it; a lock left by a dead process on this machine is taken over automatically."
        )
    else:  # pragma: no cover - the lock kept reappearing
        raise RunLockedError(f"Could not take the lock of {store.url!r}; try again.")
    try:
        yield
    finally:
        holder = _read_lock(store)
        if holder and holder.get("pid") == me["pid"] and holder.get("host") == me["host"]:
            store.remove(LOCK_FILE)


def _try_create(store: Store, path: str, me: dict[str, Any]) -> bool:
    data = json.dumps(me).encode()
    if store.is_local:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return True
    if store.exists(LOCK_FILE):  # object stores have no O_EXCL; best effort
        return False
    store.write_bytes(LOCK_FILE, data)
    return True


def _read_lock(store: Store) -> dict[str, Any] | None:
    try:
        return dict(store.read_json(LOCK_FILE))
    except (FileNotFoundError, ValueError):
        return None


def _holder_alive(holder: dict[str, Any]) -> bool:
    if holder.get("host") != socket.gethostname():
        return True  # cannot tell; assume alive
    pid = int(holder.get("pid", 0))
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (killed child not yet reaped) is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True
