"""The File API: resumable uploads, get, list, delete, download, and what the service refuses.

An upload is a session: ``start`` (metadata, declared size and MIME type) then chunks at offsets,
the last with ``finalize``; bytes stream to a part file and are hashed as they come, so an upload
of any size holds little memory. Refusals follow the emulator's ``Behaviour``: an unsupported
MIME type answers 400 ``Unsupported MIME type: <type>`` on the first chunk
(``upload_mime_check``), a missing or expired file 403 or 404 (``missing_file_status``), a
delete of a 42-character result file id 400 (``long_result_ids``); an upload over the storage
budget answers 429 ``file_storage_bytes`` at start (declared size) or at finalize (``Quotas``).
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

from .behaviour import Behaviour
from .errors import ApiError
from .quota import Quotas
from .store import Store, file_record, new_id, sha256_b64
from .web import Request, Response, base_url, json_response, page, pick, read_json

__all__ = ["MAX_FILE_ID", "FileApi", "render_file", "supported_upload_mime"]

_BLOCK = 1 << 20
#: The longest file id (the name without ``files/``) the File API takes.
MAX_FILE_ID = 40
_FILE_ID = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")
_MIME_TYPES = frozenset({"text", "image", "audio", "video", "application"})
_MIME_WORDS = frozenset({"jsonl"})  # the guide uploads with mime_type='jsonl'


def supported_upload_mime(mime: str) -> bool:
    """Whether the File API takes an upload of this MIME type: ``type/subtype`` of a text, image,
    audio, video or application type, or the guide's bare ``jsonl``.

    >>> [supported_upload_mime(m) for m in ("jsonl", "application/jsonl", "bad/mime_type")]
    [True, True, False]
    """
    value = mime.split(";", 1)[0].strip().lower()
    if value in _MIME_WORDS:
        return True
    top, slash, sub = value.partition("/")
    return bool(slash and sub) and top in _MIME_TYPES


def render_file(record: dict[str, Any], base: str) -> dict[str, Any]:
    """A File record as the service sends it (private fields dropped, URIs added)."""
    out = {k: v for k, v in record.items() if not k.startswith("_")}
    fid = record["name"].removeprefix("files/")
    out["uri"] = f"{base}/v1beta/files/{fid}"
    if record.get("source") == "GENERATED":
        out["downloadUri"] = f"{base}/download/v1beta/files/{fid}:download?alt=media"
    return out


class FileApi:
    """The File API of one emulator (the handler routes ``files.*`` calls here)."""

    def __init__(
        self,
        store: Store,
        *,
        behaviour: Behaviour,
        quotas: Quotas,
        stats: Any,
        wall: Callable[[], float],
        max_file_bytes: int,
        max_json_bytes: int,
    ) -> None:
        self.store, self.behaviour, self.quotas, self.stats = store, behaviour, quotas, stats
        self.wall, self.max_file_bytes, self.max_json_bytes = wall, max_file_bytes, max_json_bytes
        self._upload_locks: dict[str, threading.Lock] = {}
        self._upload_hashes: dict[str, list[Any]] = {}
        self._locks_lock = threading.Lock()

    def file(self, fid: str) -> dict[str, Any]:
        """A live file's record; a missing or expired one answers 403 or 404 (``Behaviour``)."""
        record = self.store.get_file(f"files/{fid}")
        if record is not None and self.wall() >= record.get("_expires", float("inf")):
            self.store.delete_file(record["name"])
            record = None
        if record is None:
            if self.behaviour.missing_file_status == 403:
                raise ApiError(
                    403, f"You do not have permission to access the File {fid} or it may not exist."
                )
            raise ApiError(404, f"Requested entity was not found: files/{fid}.")
        return record

    # -- uploads ---------------------------------------------------------------------------------
    def upload_start(self, request: Request) -> Response:
        headers = request.headers
        if headers.get("x-goog-upload-protocol", "").lower() != "resumable":
            raise ApiError(
                400,
                "Only resumable uploads are supported: send "
                "X-Goog-Upload-Protocol: resumable and X-Goog-Upload-Command: "
                "start.",
            )
        if "start" not in _commands(headers):
            raise ApiError(
                400, "The first request of a resumable upload needs X-Goog-Upload-Command: start."
            )
        file_meta = read_json(request, self.max_json_bytes).get("file") or {}
        size_text = headers.get("x-goog-upload-header-content-length") or str(
            pick(file_meta, "sizeBytes", "size_bytes") or ""
        )
        size = int(size_text) if size_text.strip().isdigit() else None
        if size is not None and size > self.max_file_bytes:
            raise _file_too_large(size, self.max_file_bytes)
        if size is not None:
            self.quotas.check_storage(size)
        name = pick(file_meta, "name")
        if name:
            fid = name.removeprefix("files/")
            if not _FILE_ID.match(fid):
                raise ApiError(
                    400,
                    f"Invalid file name {name!r}: up to {MAX_FILE_ID} characters, "
                    "lowercase letters, digits and dashes, not starting or ending "
                    "with a dash.",
                )
            if self.store.get_file(f"files/{fid}") is not None:
                raise ApiError(409, f"A file named files/{fid} already exists.")
        sid = new_id(24)
        mime = (
            headers.get("x-goog-upload-header-content-type")
            or pick(file_meta, "mimeType", "mime_type")
            or "application/octet-stream"
        )
        self.store.put_upload(
            {
                "id": sid,
                "name": f"files/{name.removeprefix('files/')}" if name else None,
                "displayName": pick(file_meta, "displayName", "display_name"),
                "mimeType": mime,
                "size": size,
                "received": 0,
            }
        )
        self.stats.add("upload_sessions")
        url = f"{base_url(request)}/upload/v1beta/files?upload_id={sid}&upload_protocol=resumable"
        return Response(
            200,
            [
                ("X-Goog-Upload-URL", url),
                ("X-Goog-Upload-Status", "active"),
                ("X-Goog-Upload-Chunk-Granularity", str(8 * 1024 * 1024)),
                ("X-GUploader-UploadID", sid),
                ("Content-Length", "0"),
            ],
        )

    def upload_chunk(self, request: Request) -> Response:
        sid = request.query["upload_id"]
        with self._locks_lock:
            lock = self._upload_locks.setdefault(sid, threading.Lock())
        with lock:
            session = self.store.get_upload(sid)
            if session is None:
                raise _upload_error(
                    404, f"No upload session {sid} (finished, cancelled or unknown)."
                )
            commands = _commands(request.headers)
            if "cancel" in commands:
                self._forget_upload(sid)
                return Response(200, [("X-Goog-Upload-Status", "cancelled")])
            if (
                self.behaviour.upload_mime_check
                and commands & {"upload", "finalize"}
                and not supported_upload_mime(session["mimeType"])
            ):
                self._forget_upload(sid)
                raise _upload_error(400, f"Unsupported MIME type: {session['mimeType']}")
            if "upload" in commands:
                self._receive(request, session)
            if "finalize" in commands:
                return self._finalize(request, session)
            if "upload" not in commands and "query" not in commands:
                raise _upload_error(
                    400, "X-Goog-Upload-Command must be upload, finalize, query or cancel."
                )
            return Response(
                200,
                [
                    ("X-Goog-Upload-Status", "active"),
                    ("X-Goog-Upload-Size-Received", str(session["received"])),
                ],
            )

    def _receive(self, request: Request, session: dict[str, Any]) -> None:
        """Stream one chunk to the session's part file at its offset."""
        sid, received = session["id"], session["received"]
        offset_text = request.headers.get("x-goog-upload-offset", "")
        if not offset_text.isdigit():
            raise _upload_error(
                400, "X-Goog-Upload-Offset is required with X-Goog-Upload-Command: upload."
            )
        offset = int(offset_text)
        if offset > received:
            raise _upload_error(
                400,
                f"Invalid X-Goog-Upload-Offset {offset}: only {received} "
                "bytes were received so far.",
            )
        limit = session["size"] if session["size"] is not None else self.max_file_bytes
        part = self.store.part_path(sid)
        digest = self._upload_hashes.setdefault(sid, [hashlib.sha256(), 0])  # [hasher, hashed]
        position = offset
        with open(part, "r+b" if part.exists() else "wb") as f:
            f.seek(offset)
            while block := request.read(_BLOCK):
                if position + len(block) > limit:
                    raise _file_too_large(position + len(block), limit, declared=session["size"])
                f.write(block)
                if position == digest[1]:  # in order: hash as it streams by
                    digest[0].update(block)
                    digest[1] += len(block)
                position += len(block)
        if position > received:
            session["received"] = position
            self.store.put_upload(session)

    def _finalize(self, request: Request, session: dict[str, Any]) -> Response:
        sid, size = session["id"], session["received"]
        if session["size"] is not None and size != session["size"]:
            raise _upload_error(
                400,
                f"Upload finalized after {size} bytes, but "
                "X-Goog-Upload-Header-Content-Length declared "
                f"{session['size']}.",
            )
        name = session["name"] or f"files/{new_id()}"
        if self.store.get_file(name) is not None:  # another session took the chosen name first
            raise _upload_error(409, f"A file named {name} already exists.")
        try:
            self.quotas.check_storage(size)
        except ApiError as exc:
            self._forget_upload(sid)
            exc.upload_status = "final"  # type: ignore[attr-defined]
            raise
        part = self.store.part_path(sid)
        if not part.exists():
            part.touch()
        hasher, hashed = self._upload_hashes.pop(sid, (None, 0))
        if hasher is None or hashed != size:  # out of order, or resumed after a restart
            hasher = hashlib.sha256()
            with open(part, "rb") as f:
                while block := f.read(_BLOCK):
                    hasher.update(block)
        os.replace(part, self.store.blob_path(name))
        record = file_record(
            name=name,
            display_name=session.get("displayName"),
            mime_type=session["mimeType"],
            size=size,
            sha256_b64=sha256_b64(hasher),
            source="UPLOADED",
            now=self.wall(),
            seq=self.store.next_seq(),
        )
        self.store.put_file(record)
        self._forget_upload(sid)
        self.stats.add("files_created")
        self.quotas.note_storage()
        return json_response(
            {"file": render_file(record, base_url(request))},
            headers=[("X-Goog-Upload-Status", "final")],
        )

    def _forget_upload(self, sid: str) -> None:
        self.store.delete_upload(sid)
        self._upload_hashes.pop(sid, None)
        with self._locks_lock:
            self._upload_locks.pop(sid, None)

    # -- the other calls -------------------------------------------------------------------------
    def get(self, request: Request, fid: str) -> Response:
        return json_response(render_file(self.file(fid), base_url(request)))

    def list(self, request: Request) -> Response:
        now = self.wall()
        live = [r for r in self.store.files() if now < r.get("_expires", float("inf"))]
        chosen, token = page(live, request.query, default=10, maximum=100)
        body: dict[str, Any] = {}
        if chosen:
            body["files"] = [render_file(r, base_url(request)) for r in chosen]
        if token:
            body["nextPageToken"] = token
        return json_response(body)

    def delete(self, request: Request, fid: str) -> Response:
        if self.behaviour.long_result_ids and len(fid) > MAX_FILE_ID:
            raise ApiError(
                400,
                "* DeleteFileRequest.name: File ID (name excluding 'files/') "
                f"cannot be more than {MAX_FILE_ID} characters.\n",
            )
        self.file(fid)
        self.store.delete_file(f"files/{fid}")
        return json_response({})

    def download(self, request: Request, fid: str) -> Response:
        record = self.file(fid)
        if request.query.get("alt") != "media":
            raise ApiError(400, "Add ?alt=media to download the file's contents.")
        if record.get("source") != "GENERATED":
            raise ApiError(
                400, "Only generated files can be downloaded, uploaded files can't be downloaded."
            )
        path = self.store.blob_path(record["name"])
        return Response(
            200,
            [("Content-Type", record.get("mimeType", "application/octet-stream"))],
            path,
            length=path.stat().st_size,
        )


def _commands(headers: Mapping[str, str]) -> set[str]:
    return {
        c.strip().lower() for c in headers.get("x-goog-upload-command", "").split(",") if c.strip()
    }


def _upload_error(code: int, message: str) -> ApiError:
    exc = ApiError(code, message)
    exc.upload_status = "final"  # type: ignore[attr-defined]
    return exc


def _file_too_large(size: int, limit: int, declared: int | None = None) -> ApiError:
    if declared is not None and size > declared:
        return _upload_error(
            400,
            f"More bytes were sent ({size}) than "
            f"X-Goog-Upload-Header-Content-Length declared ({declared}).",
        )
    return _upload_error(
        400, f"File size {size} bytes exceeds the maximum allowed size of {limit} bytes."
    )
