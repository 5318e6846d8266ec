"""File API: resumable upload, get, list with paging, delete, download, limits, expiry."""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import json

import httpx2
import pytest
from emu_helpers import LENIENT, keyed, make_client, upload, wait_done, write_jsonl
from google.genai import errors, types

from gembatch.emulator import Emulator


def sha256_hex_b64(data: bytes) -> str:
    """``sha256Hash`` as the service writes it: base64 of the hex digest string."""
    return base64.b64encode(hashlib.sha256(data).hexdigest().encode()).decode()


def test_upload_get_and_the_file_resource(client, emulator, tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [keyed(i) for i in range(3)])
    up = client.files.upload(
        file=str(path),
        config=types.UploadFileConfig(display_name="my-batch-requests", mime_type="jsonl"),
    )
    data = path.read_bytes()
    assert up.name.startswith("files/") and up.display_name == "my-batch-requests"
    assert up.size_bytes == len(data) and up.mime_type == "jsonl"
    assert up.sha256_hash == sha256_hex_b64(data)
    assert up.state.name == "ACTIVE" and up.source.name == "UPLOADED" and up.download_uri is None
    assert up.uri == f"{emulator.base_url}/v1beta/files/{up.name.removeprefix('files/')}"
    assert (up.expiration_time - up.create_time).total_seconds() == pytest.approx(48 * 3600)
    got = client.files.get(name=up.name)
    assert got == up
    assert (emulator.data_dir / "blobs" / up.name.removeprefix("files/")).read_bytes() == data
    stats = emulator.stats()
    assert stats["upload_sessions"] == 1 and stats["files_created"] == 1
    assert [f["name"] for f in emulator.files()] == [up.name]


def test_multi_chunk_upload_from_a_stream(client):
    data = bytes(range(256)) * (33 * 1024 + 7)  # a bit over 8 MiB: two chunks of the SDK
    up = client.files.upload(
        file=io.BytesIO(data), config={"mime_type": "application/octet-stream"}
    )
    assert up.size_bytes == len(data)
    assert up.sha256_hash == sha256_hex_b64(data)


def test_user_chosen_name_and_conflict(client, tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [keyed(0)])
    up = client.files.upload(file=str(path), config={"name": "my-input-1", "mime_type": "jsonl"})
    assert up.name == "files/my-input-1"
    with pytest.raises(errors.ClientError) as info:
        client.files.upload(file=str(path), config={"name": "my-input-1", "mime_type": "jsonl"})
    assert info.value.code == 409 and info.value.status == "ALREADY_EXISTS"


def test_list_pages_newest_first_and_delete(client, emulator, tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [keyed(0)])
    names = [upload(client, path).name for _ in range(7)]
    pager = client.files.list(config={"page_size": 3})
    assert [f.name for f in pager.page] == names[::-1][:3]
    assert [f.name for f in pager] == names[::-1]  # the pager follows nextPageToken
    assert emulator.stats()["calls"]["files.list"] == 3
    client.files.delete(name=names[0])
    with pytest.raises(errors.ClientError) as info:
        client.files.get(name=names[0])
    assert info.value.code == 404 and info.value.status == "NOT_FOUND"
    assert len(list(client.files.list())) == 6
    with pytest.raises(errors.ClientError) as info:
        client.files.delete(name=names[0])
    assert info.value.code == 404


def test_empty_list_and_bad_page_token(http):
    assert http.get("/v1beta/files").json() == {}
    bad = http.get("/v1beta/files", params={"pageToken": "???"})
    assert bad.status_code == 400 and bad.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_download_generated_files_only(client, emulator, tmp_path):
    up = upload(client, write_jsonl(tmp_path / "in.jsonl", [keyed(0)]))
    with pytest.raises(ValueError, match="Only generated files can be downloaded"):
        client.files.download(file=up)  # the SDK refuses an uploaded File itself
    with pytest.raises(errors.ClientError) as info:
        client.files.download(file=up.name)  # by name it asks; the emulator refuses
    assert info.value.code == 400
    job = wait_done(client, client.batches.create(model="gemini-2.5-flash", src=up.name).name)
    result = client.files.get(name=job.dest.file_name)
    assert result.source.name == "GENERATED" and result.mime_type == "application/jsonl"
    assert result.download_uri == (
        f"{emulator.base_url}/download/v1beta/files/"
        f"{result.name.removeprefix('files/')}:download?alt=media"
    )
    data = client.files.download(file=result)
    assert data == client.files.download(file=job.dest.file_name)
    assert result.size_bytes == len(data)
    assert result.sha256_hash == sha256_hex_b64(data)
    target = tmp_path / "out.jsonl"
    client.files.download(file=result, destination=str(target))  # streamed to disk
    assert target.read_bytes() == data


def test_file_over_the_limit_is_refused_at_upload_start(tmp_path):
    with Emulator(behaviour=LENIENT, max_file_bytes=100) as emu:
        client = make_client(emu)
        path = tmp_path / "big.jsonl"
        path.write_bytes(b"x" * 101)
        with pytest.raises(errors.ClientError) as info:
            client.files.upload(file=str(path), config={"mime_type": "jsonl"})
        assert info.value.code == 400 and info.value.status == "INVALID_ARGUMENT"
        assert "exceeds the maximum allowed size of 100 bytes" in info.value.message
        path.write_bytes(b"x" * 100)
        assert client.files.upload(file=str(path), config={"mime_type": "jsonl"}).size_bytes == 100
        assert emu.stats()["upload_sessions"] == 1


def _start(http: httpx2.Client, size: int) -> str:
    response = http.post(
        "/upload/v1beta/files",
        headers={
            "X-Goog-Upload-Protocol": "resumable",
            "X-Goog-Upload-Command": "start",
            "X-Goog-Upload-Header-Content-Length": str(size),
            "X-Goog-Upload-Header-Content-Type": "jsonl",
        },
        json={"file": {"display_name": "raw"}},
    )
    assert response.status_code == 200 and response.headers["x-goog-upload-status"] == "active"
    return response.headers["x-goog-upload-url"]


def test_resumable_protocol_offsets_query_and_size_checks(http):
    url = _start(http, 10)
    part = http.post(
        url,
        content=b"01234",
        headers={"X-Goog-Upload-Command": "upload", "X-Goog-Upload-Offset": "0"},
    )
    assert part.headers["x-goog-upload-status"] == "active"
    query = http.post(url, headers={"X-Goog-Upload-Command": "query"})
    assert query.headers["x-goog-upload-size-received"] == "5"
    gap = http.post(
        url, content=b"9", headers={"X-Goog-Upload-Command": "upload", "X-Goog-Upload-Offset": "9"}
    )
    assert gap.status_code == 400 and gap.headers["x-goog-upload-status"] == "final"
    again = http.post(
        url,
        content=b"01234",
        headers={"X-Goog-Upload-Command": "upload", "X-Goog-Upload-Offset": "0"},
    )  # a re-sent chunk
    assert again.status_code == 200
    early = http.post(url, headers={"X-Goog-Upload-Command": "finalize"})
    assert early.status_code == 400 and "declared 10" in early.json()["error"]["message"]
    too_much = http.post(
        url,
        content=b"56789X",
        headers={"X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "5"},
    )
    assert too_much.status_code == 400
    done = http.post(
        url,
        content=b"56789",
        headers={"X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "5"},
    )
    assert done.status_code == 200 and done.headers["x-goog-upload-status"] == "final"
    assert done.json()["file"]["sizeBytes"] == "10" and done.json()["file"]["displayName"] == "raw"
    gone = http.post(
        url, content=b"x", headers={"X-Goog-Upload-Command": "upload", "X-Goog-Upload-Offset": "0"}
    )
    assert gone.status_code == 404


def test_upload_url_is_its_own_credential_and_chunked_bodies_work(emulator, http):
    url = _start(http, 6)
    conn = http_client_for(emulator)
    path = url.split(emulator.base_url, 1)[1]
    conn.putrequest("POST", path)  # no API key, chunked transfer encoding
    conn.putheader("X-Goog-Upload-Command", "upload, finalize")
    conn.putheader("X-Goog-Upload-Offset", "0")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    for piece in (b"abc", b"def"):
        conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
    conn.send(b"0\r\n\r\n")
    response = conn.getresponse()
    assert response.status == 200
    assert json.loads(response.read())["file"]["sizeBytes"] == "6"
    conn.close()


def http_client_for(emulator: Emulator) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=10)


def test_upload_start_requires_the_resumable_protocol(http):
    response = http.post("/upload/v1beta/files", content=b"raw bytes")
    assert response.status_code == 400 and "resumable" in response.json()["error"]["message"]


def test_files_expire_after_48_hours(tmp_path):
    now = [1_800_000_000.0]
    with Emulator(behaviour=LENIENT, wall=lambda: now[0]) as emu:
        client = make_client(emu)
        up = upload(client, write_jsonl(tmp_path / "a.jsonl", [keyed(0)]))
        now[0] += 48 * 3600 - 1
        assert client.files.get(name=up.name).name == up.name
        now[0] += 1
        with pytest.raises(errors.ClientError) as info:
            client.files.get(name=up.name)
        assert info.value.code == 404
        assert list(client.files.list()) == [] and emu.files() == []
