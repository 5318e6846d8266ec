"""gembatch's own view of the service's objects: a file and a batch job, as the run needs them."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TERMINAL_JOB_STATES", "RemoteFile", "RemoteJob"]

TERMINAL_JOB_STATES = frozenset(
    {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"}
)


@dataclass(frozen=True)
class RemoteFile:
    """A File API file."""

    name: str
    display_name: str | None
    state: str | None
    size_bytes: int | None


@dataclass(frozen=True)
class RemoteJob:
    """A batch job. ``state`` is a ``JOB_STATE_*`` name; ``inline_lines`` holds the answers of an
    inline job as result lines; ``stats`` the job's ``batchStats`` counts when the service sent
    them."""

    name: str
    display_name: str | None
    state: str
    error: str | None = None
    result_file: str | None = None
    inline_lines: tuple[str, ...] | None = None
    stats: dict[str, int] | None = None

    @property
    def done(self) -> bool:
        return self.state in TERMINAL_JOB_STATES
