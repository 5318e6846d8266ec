"""The emulator's persistent state: one data directory, every record written atomically.

Layout (``STORE_VERSION`` 1)::

    <root>/store.json          {"version": 1}
    <root>/files/<id>.json     File metadata (wire names; fields starting with "_" are private)
    <root>/blobs/<id>          file contents
    <root>/uploads/<sid>.json  an open resumable upload session; its bytes in <sid>.part
    <root>/batches/<id>.json   a batch job record (see jobs.py); inline requests/results beside it
    <root>/work/               results being written by the worker (renamed into place when done)

JSON records are written to a temporary file in the same directory and renamed over the old one, so
a crash leaves either the old or the new record, never half of one. Records are kept in memory too;
the directory is read once, at start. Blobs are streamed, never read whole.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = [
    "STORE_VERSION",
    "Store",
    "atomic_write_json",
    "file_record",
    "new_id",
    "rfc3339",
    "sha256_b64",
]

STORE_VERSION = 1

#: Files expire this long after they are created, as on the service.
FILE_TTL_S = 48 * 3600.0


def rfc3339(seconds: float) -> str:
    """A wall-clock time as the service writes it, nanoseconds: ``2025-11-25T10:00:00.123456789Z``.

    >>> rfc3339(1764064800.5)
    '2025-11-25T10:00:00.500000000Z'
    """
    nanos = round(seconds * 1_000_000_000)
    whole, fraction = divmod(nanos, 1_000_000_000)
    stamp = datetime.fromtimestamp(whole, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{fraction:09d}Z"


def sha256_b64(hasher: Any) -> str:
    """``sha256Hash`` as the service writes it: base64 of the HEX digest string (not of the raw
    digest).

    >>> import hashlib
    >>> sha256_b64(hashlib.sha256(b""))[:16]
    'ZTNiMGM0NDI5OGZj'
    """
    return base64.b64encode(hasher.hexdigest().encode()).decode()


def file_record(
    *,
    name: str,
    display_name: str | None,
    mime_type: str,
    size: int,
    sha256_b64: str,
    source: str,
    now: float,
    seq: int,
    ttl_s: float = FILE_TTL_S,
) -> dict[str, Any]:
    """A File resource as stored (wire names; ``uri``/``downloadUri`` are added when served)."""
    record: dict[str, Any] = {"name": name}
    if display_name:
        record["displayName"] = display_name
    record.update(
        {
            "mimeType": mime_type,
            "sizeBytes": str(size),
            "createTime": rfc3339(now),
            "updateTime": rfc3339(now),
            "expirationTime": rfc3339(now + ttl_s),
            "sha256Hash": sha256_b64,
            "state": "ACTIVE",
            "source": source,
            "_created": now,
            "_expires": now + ttl_s,
            "_seq": seq,
        }
    )
    return record


_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def new_id(length: int = 12) -> str:
    """A fresh lowercase alphanumeric id, as the service's (the SDK only extracts ``[a-z0-9]+``
    from file URIs): 12 characters for a file, 36 for a batch."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def atomic_write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` via a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, separators=(",", ":"))
    os.replace(tmp, path)


def _read_records(directory: Path) -> Iterator[dict[str, Any]]:
    for path in sorted(directory.glob("*.json")):
        try:
            with open(path, encoding="utf-8") as f:
                yield json.load(f)
        except (OSError, ValueError):  # a record that cannot be read is skipped, not fatal
            continue


class Store:
    """Files, upload sessions and batch job records under ``root`` (created if missing)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._lock = threading.RLock()
        for sub in ("files", "blobs", "uploads", "batches", "work"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        marker = self.root / "store.json"
        if marker.exists():
            version = json.loads(marker.read_text()).get("version")
            if version != STORE_VERSION:
                raise ValueError(
                    f"emulator data directory {self.root} has store version {version!r}, "
                    f"this emulator reads version {STORE_VERSION}. Hint: use another "
                    "--data-dir, or delete this one."
                )
        else:
            atomic_write_json(marker, {"version": STORE_VERSION})
        for leftover in (self.root / "work").iterdir():  # half-written results of a previous run
            leftover.unlink()
        self._files = {r["name"]: r for r in _read_records(self.root / "files")}
        self._uploads = {r["id"]: r for r in _read_records(self.root / "uploads")}
        self._jobs = {r["id"]: r for r in _read_records(self.root / "batches")}
        seqs = [r.get("_seq", 0) for r in (*self._files.values(), *self._jobs.values())]
        self._seq = max(seqs, default=0)

    def next_seq(self) -> int:
        """A creation sequence number, increasing across restarts (orders lists, pages)."""
        with self._lock:
            self._seq += 1
            return self._seq

    # -- files -------------------------------------------------------------------------------
    def blob_path(self, name: str) -> Path:
        return self.root / "blobs" / name.removeprefix("files/")

    def put_file(self, record: dict[str, Any]) -> None:
        with self._lock:
            atomic_write_json(
                self.root / "files" / f"{record['name'].removeprefix('files/')}.json", record
            )
            self._files[record["name"]] = record

    def get_file(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            return self._files.get(name)

    def files(self) -> list[dict[str, Any]]:
        """Every file record, newest first."""
        with self._lock:
            return sorted(self._files.values(), key=lambda r: r.get("_seq", 0), reverse=True)

    def delete_file(self, name: str) -> bool:
        with self._lock:
            if self._files.pop(name, None) is None:
                return False
            fid = name.removeprefix("files/")
            (self.root / "files" / f"{fid}.json").unlink(missing_ok=True)
            self.blob_path(name).unlink(missing_ok=True)
            return True

    # -- upload sessions -----------------------------------------------------------------------
    def part_path(self, sid: str) -> Path:
        return self.root / "uploads" / f"{sid}.part"

    def put_upload(self, session: dict[str, Any]) -> None:
        with self._lock:
            atomic_write_json(self.root / "uploads" / f"{session['id']}.json", session)
            self._uploads[session["id"]] = session

    def get_upload(self, sid: str) -> dict[str, Any] | None:
        with self._lock:
            return self._uploads.get(sid)

    def delete_upload(self, sid: str) -> None:
        with self._lock:
            self._uploads.pop(sid, None)
            (self.root / "uploads" / f"{sid}.json").unlink(missing_ok=True)
            self.part_path(sid).unlink(missing_ok=True)

    # -- batch jobs ----------------------------------------------------------------------------
    def job_path(self, jid: str, suffix: str) -> Path:
        """A file that belongs to job ``jid`` (``.requests.jsonl``, ``.results.jsonl``)."""
        return self.root / "batches" / f"{jid}{suffix}"

    def work_path(self, jid: str) -> Path:
        return self.root / "work" / f"{jid}.part"

    def put_job(self, record: dict[str, Any]) -> None:
        with self._lock:
            atomic_write_json(self.root / "batches" / f"{record['id']}.json", record)
            self._jobs[record["id"]] = record

    def get_job(self, jid: str) -> dict[str, Any] | None:
        with self._lock:
            return self._jobs.get(jid)

    def jobs(self) -> list[dict[str, Any]]:
        """Every job record, newest first."""
        with self._lock:
            return sorted(self._jobs.values(), key=lambda r: r.get("_seq", 0), reverse=True)

    def delete_job(self, jid: str) -> bool:
        with self._lock:
            if self._jobs.pop(jid, None) is None:
                return False
            (self.root / "batches" / f"{jid}.json").unlink(missing_ok=True)
            for suffix in (".requests.jsonl", ".results.jsonl"):
                self.job_path(jid, suffix).unlink(missing_ok=True)
            self.work_path(jid).unlink(missing_ok=True)
            return True
