"""The lock of a run directory: at most one live process drives a run.

The lock file is written whole under a temporary name and then linked into place (``os.link`` fails
when the lock exists), so it is taken atomically and is never seen empty. A lock whose holder
process is dead (same host) is taken over; so is one that cannot be read (left by a full disk, or
half-copied) once it is older than :data:`STALE_UNREADABLE_S`. Object stores have no atomic create:
there the lock is best effort (written if absent, then read back).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

from .._storage import Directory
from ..exceptions import RunLockedError

__all__ = ["LOCK_FILE", "STALE_UNREADABLE_S", "run_lock"]

LOCK_FILE = "lock.json"
# : Seconds after which an unreadable (empty, truncated) lock file is taken to be left by a dead
# process.
STALE_UNREADABLE_S = 30.0


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


@contextlib.contextmanager
def run_lock(store: Directory) -> Iterator[None]:
    """Hold the run in ``store`` for this process (re-entrant within it); RunLockedError if another
    live process holds it."""
    me = {"pid": os.getpid(), "host": socket.gethostname(), "since": _now()}
    store.makedirs()
    for _ in range(3):
        if _try_create(store, me):
            break
        holder, age = _read(store)
        if (
            holder is not None
            and holder.get("pid") == me["pid"]
            and holder.get("host") == me["host"]
        ):
            yield  # re-entrant within one process
            return
        if holder is None and age is not None and age < STALE_UNREADABLE_S:
            raise RunLockedError(
                f"The run in {store.url!r} has a lock file that cannot be read yet (written "
                f"{age:.0f} s ago). Hint: if no other process drives this run, wait "
                f"{STALE_UNREADABLE_S:.0f} s, or delete {store.path(LOCK_FILE)!r}."
            )
        if holder is None or not _alive(holder):
            store.remove(LOCK_FILE)
            continue
        who = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}"
        raise RunLockedError(
            f"The run in {store.url!r} is being driven by another process ({who}, since "
            f"{holder.get('since', '?')}). Hint: wait for it to finish or stop it (gembatch status "
            "works meanwhile); a lock left by a dead process on this machine is taken over "
            f"automatically. If no gembatch process drives it any more (a process id reused "
            f"since), delete {store.path(LOCK_FILE)!r}.",
            holder=who,
        )
    else:  # pragma: no cover - the lock kept reappearing
        raise RunLockedError(f"Could not take the lock of {store.url!r}; try again.")
    try:
        yield
    finally:
        holder, _ = _read(store)
        if holder and holder.get("pid") == me["pid"] and holder.get("host") == me["host"]:
            store.remove(LOCK_FILE)


def _try_create(store: Directory, me: dict[str, Any]) -> bool:
    data = json.dumps(me).encode()
    local = store.local_path(LOCK_FILE)
    if local is not None:
        tmp = f"{local}.{uuid.uuid4().hex}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, local)  # atomic, and fails if the lock exists: never an empty lock file
        except FileExistsError:
            return False
        finally:
            os.remove(tmp)
        return True
    if store.exists(LOCK_FILE):
        return False
    store.write_bytes(LOCK_FILE, data)
    holder, _ = _read(store)
    return holder == me


def _read(store: Directory) -> tuple[dict[str, Any] | None, float | None]:
    """(the holder, or None when the lock cannot be read; the lock file's age in seconds, or None
    when there is no lock file)."""
    try:
        age = max(0.0, time.time() - store.mtime(LOCK_FILE))
    except FileNotFoundError:
        return None, None
    try:
        holder = json.loads(store.read_bytes(LOCK_FILE))
    except FileNotFoundError:
        return None, None
    except ValueError:
        return None, age
    return (holder if isinstance(holder, dict) and "pid" in holder else None), age


def _alive(holder: dict[str, Any]) -> bool:
    if holder.get("host") != socket.gethostname():
        return True  # cannot tell; assume alive
    try:
        pid = int(holder.get("pid", 0))
    except (TypeError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed child not yet reaped) is dead for our purposes
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True
