"""Typed run state: the manifest and the shard records, their JSON form, and the legal state moves.

Every field a run directory holds is declared here, once, with its type and default; nothing else
reads ``run.json`` or a ``state.json`` with ``.get(key, default)``. The JSON form carries
``FORMAT_VERSION``; :mod:`gembatch._state.migrate` brings older run directories up to it when they
are opened.

A shard (or a resubmission of some of its rows) moves through named states; :data:`MOVES` lists the
legal moves and :meth:`ShardRecord.move` refuses any other::

    PREPARED -> UPLOADING -> UPLOADED -> CREATING -> SUBMITTED -> FINISHED -> FETCHED -> JOINED
                (file mode only)                          (inline: SUBMITTED -> FETCHED)
    (interactive, mode "live": PREPARED -> SUBMITTED, answered call by call, -> FETCHED)

``UPLOADING`` and ``CREATING`` are *intents*, recorded before the paid call: on resume the file or
job is first looked up on the service by the record's deterministic display name.

>>> s = ShardRecord(index=0, rows=2, lines=2, bytes=10, sha256="0" * 64, mode="file",
...                 display_name="d")
>>> s.move(ShardState.UPLOADING).state.value
'uploading'
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import CorruptRunError

__all__ = [
    "FORMAT_VERSION",
    "HASH",
    "KEY",
    "MOVES",
    "SEND",
    "VIA",
    "FileDigest",
    "Fingerprint",
    "Manifest",
    "ShardRecord",
    "ShardState",
]

#: The version of the run directory's JSON layout written by this release.
FORMAT_VERSION = 2

#: The columns of a shard's ``keys.parquet``, row for row beside its ``input.parquet`` (the user's
#: rows, untouched): the row's key (as sent), its request's content address, whether it asks
#: anything, and how it gets its answer: ``line`` (its own request line), ``dup`` (the same request
#: of an earlier row of the shard), ``cache`` (the result cache), null when skipped. They never
#: share the user's frame.
KEY, HASH, SEND, VIA = "key", "hash", "send", "via"
TOKENS = "tokens"  # keys.parquet: each row's input tokens, estimated locally (0: not sent)


class ShardState(str, enum.Enum):
    """Where a shard (or a resubmission) is in its life."""

    PREPARED = "prepared"  # written to the run directory; waiting for its turn to be sent
    UPLOADING = "uploading"  # intent: upload the request file
    UPLOADED = "uploaded"  # the request file is on the File API
    CREATING = "creating"  # intent: create the batch job
    SUBMITTED = "submitted"  # a batch job works on it
    FINISHED = "finished"  # the job ended; its result file is not saved yet
    FETCHED = "fetched"  # its result lines are saved in the run directory
    JOINED = "joined"  # the result lines are joined onto the input rows (output written)

    @property
    def rank(self) -> int:
        """Position in the life above (a record never moves to a lower rank)."""
        return _RANKS[self]


_RANKS = {state: i for i, state in enumerate(ShardState)}
S = ShardState
#: The legal moves: ``MOVES[a]`` holds every state a record in ``a`` may move to (staying in ``a``
#: records new fields). Nothing ever moves back.
MOVES: dict[ShardState, frozenset[ShardState]] = {
    S.PREPARED: frozenset({S.PREPARED, S.UPLOADING, S.CREATING, S.SUBMITTED, S.FETCHED}),
    S.UPLOADING: frozenset({S.UPLOADING, S.UPLOADED}),
    S.UPLOADED: frozenset({S.UPLOADED, S.CREATING, S.FETCHED}),  # FETCHED: split, never sent
    S.CREATING: frozenset({S.CREATING, S.SUBMITTED, S.FETCHED}),
    S.SUBMITTED: frozenset({S.SUBMITTED, S.FINISHED, S.FETCHED}),
    S.FINISHED: frozenset({S.FINISHED, S.FETCHED}),
    S.FETCHED: frozenset({S.FETCHED, S.JOINED}),
    S.JOINED: frozenset({S.JOINED}),
}


@dataclass
class FileDigest:
    """What a run-directory file held when gembatch wrote it: its sha256, size and row count; and,
    for a local file, its identity once sealed (``[size, mtime_ns, ctime_ns, inode]``, see
    ``Directory.pin``): a file whose identity is unchanged is not read again to be checked."""

    sha256: str
    bytes: int
    rows: int | None = None
    stat: list[int] | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FileDigest:
        return cls(**_known(cls, data))


@dataclass
class ShardRecord:
    """The journal entry of one shard (one request file, one batch job) or of a resubmission of some
    of its rows (``parent`` set)."""

    index: int
    rows: int  # input rows (0 for a resubmission: its rows belong to the parent)
    lines: int  # request lines it sends
    bytes: int  # their JSONL bytes
    sha256: str  # of requests.jsonl
    mode: str  # "file" | "inline" | "live" (interactive calls) | "none" (nothing to send)
    display_name: str
    state: ShardState = ShardState.PREPARED
    tokens: int = 0  # estimated input tokens of its lines
    in_flight: bool = False  # its requests are recorded in flight in the result cache
    reused: int = 0  # rows answered without a line of their own (dedup within it, the cache)
    file_name: str | None = None
    job_name: str | None = None
    job_state: str | None = None
    job_error: str | None = None
    result_file: str | None = None
    stats: dict[str, int] | None = None
    report: dict[str, int] | None = None
    cleaned: bool = False
    cleanup_error: str | None = None  # why a remote file could not be deleted (never fatal)
    parent: int | None = None  # a resubmission: the index of the shard whose rows it answers
    attempt: int = 0  # 0 for a shard, 1, 2, ... for its resubmissions
    reason: str | None = None  # why a resubmission exists: expired / watchdog / retry_failed / ...
    resubmissions: list[int] = field(default_factory=list)  # attempts of this shard's resubmissions
    submitted_at: float | None = None  # wall-clock seconds
    progress_at: float | None = None
    finished_at: float | None = None
    watchdog: bool = False  # cancelled by the watchdog: its unanswered rows go out again, split
    lost: bool = False  # its job or result file disappeared: its rows go out again
    file_deleted: bool = False  # its request file was deleted from the File API (storage freed)
    output_wait_since: float | None = None  # SUCCEEDED seen without a result file since (wall s)
    # inline answers that came back without their keys: paid for, unused (their rows go again);
    # per answer [prompt, output, thoughts, cached] tokens, for cost()
    unkeyed_usage: list[list[int]] | None = None
    files: dict[str, FileDigest] = field(default_factory=dict)  # run-directory files it wrote
    history: list[list[str]] = field(default_factory=list)

    @property
    def dir(self) -> str:
        if self.parent is not None:
            return f"shards/{self.parent:06d}/retry-{self.attempt:02d}"
        return f"shards/{self.index:06d}"

    @property
    def name(self) -> str:
        """``3`` for shard 3, ``3.r1`` for its first resubmission."""
        return str(self.index) if self.parent is None else f"{self.index}.r{self.attempt}"

    def path(self, name: str) -> str:
        return f"{self.dir}/{name}"

    def move(self, state: ShardState, **fields: Any) -> ShardRecord:
        """Set ``fields`` and move to ``state``; an illegal move raises CorruptRunError."""
        if state not in MOVES[self.state]:
            raise CorruptRunError(
                f"Shard {self.name} cannot move from {self.state.value} to {state.value}. Hint: "
                "its "
                f"state file ({self.path('state.json')}) was edited or mixed with another run's; "
                "restore "
                "the run directory from a copy."
            )
        for name, value in fields.items():
            if name not in _FIELDS[ShardRecord]:
                raise AttributeError(f"ShardRecord has no field {name!r}")
            setattr(self, name, value)
        self.state = state
        return self

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["state"] = self.state.value
        out["files"] = {k: v.to_json() for k, v in self.files.items()}
        out["version"] = FORMAT_VERSION
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ShardRecord:
        data = _known(cls, data)
        data["state"] = ShardState(data["state"])
        data["files"] = {k: FileDigest.from_json(v) for k, v in (data.get("files") or {}).items()}
        return cls(**data)


@dataclass
class Fingerprint:
    """What identifies a run's input: the sha256 of the request lines it sends and of its rows."""

    requests_sha256: str
    data_sha256: str
    polars: str  # the polars version that hashed the rows (row hashes may change across versions)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fingerprint:
        return cls(**_known(cls, data))


@dataclass
class Manifest:
    """``run.json``: what a run asks, of which input, with which options, and its shards."""

    run_id: str
    kind: str  # "generate" | "embed"
    model: str  # "models/..."
    static: dict[str, Any]  # the wire-form request fields shared by every row
    config: dict[str, Any]  # Config.to_dict() / EmbedConfig.to_dict(), for people and the CLI
    options: dict[str, Any]  # Options.to_dict()
    prompt: str  # the prompt expression, as text
    key: str | None = None
    response_schema: dict[str, Any] | None = None
    dimensions: int | None = None  # embeddings: the vector size
    service: str = ""  # who answers (see gembatch._service.backend.service_of)
    cache: str | None = None  # the result cache's path, None without one
    fingerprint: Fingerprint | None = None
    rows: int = 0
    lines: int = 0
    requests: int = 0  # rows that ask something (not skipped)
    deduplicated: int = 0
    cached: int = 0
    shards: list[int] = field(default_factory=list)
    pilot: bool = False  # this run is the pilot sample of another
    previous: list[str] = field(default_factory=list)  # run ids this run updated (history/<id>)
    budget: dict[str, int] = field(default_factory=dict)  # what may be in flight (_run/budget.py)
    # the service sent inline answers back without their keys: the rest goes through files
    inline_unkeyed: bool = False
    schema_form: str | None = None  # the response schema form a pilot chose ("json_schema", ...)
    frame: dict[str, Any] = field(
        default_factory=dict
    )  # how to give the output back (type, metadata)
    gembatch: str = ""
    created: str = ""
    version: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["fingerprint"] = None if self.fingerprint is None else self.fingerprint.to_json()
        out["version"] = FORMAT_VERSION
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        data = _known(cls, data)
        fp = data.get("fingerprint")
        data["fingerprint"] = None if fp is None else Fingerprint.from_json(fp)
        return cls(**data)


_FIELDS: dict[type, frozenset[str]] = {
    cls: frozenset(f.name for f in dataclasses.fields(cls))
    for cls in (FileDigest, ShardRecord, Fingerprint, Manifest)
}


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` without the keys ``cls`` does not declare (``version``, or fields of a newer
    release)."""
    if not isinstance(data, dict):
        raise CorruptRunError(
            f"A {cls.__name__} record must be a JSON object (got {type(data).__name__})."
        )
    return {k: v for k, v in data.items() if k in _FIELDS[cls]}
