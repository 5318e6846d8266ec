"""The server: authentication, loopback, clean stop, logging, the CLI, the in-process transport."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time

import httpx2
import pytest
from emu_helpers import LENIENT, MODEL, keyed, lines_of, make_client, upload, wait_done, write_jsonl
from google import genai
from google.genai import errors, types

import gembatch.emulator as emulator_pkg
from gembatch.emulator import DropConnection, Emulator
from gembatch.emulator.transport import EmulatorTransport

NO_KEY = (
    "Method doesn't allow unregistered callers (callers without established identity). Please use "
    "API Key or other form of API consumer identity to call this API."
)


def test_public_surface():
    assert sorted(emulator_pkg.__all__) == sorted(
        [
            "ApiError",
            "BEHAVIOUR_NAMES",
            "Behaviour",
            "DEFAULT_API_KEY",
            "DEFAULT_BEHAVIOUR",
            "DEFAULT_LIMITS",
            "Delays",
            "DropConnection",
            "ENDPOINTS",
            "Emulator",
            "Faults",
            "HttpFault",
            "JobOutcome",
            "LineFaults",
            "Limits",
            "parse_behaviour",
            "parse_fault",
        ]
    )


def test_a_call_without_a_key_is_refused(emulator):
    with httpx2.Client(base_url=emulator.base_url) as http:
        response = http.get("/v1beta/batches")
    assert response.status_code == 403
    assert response.json() == {
        "error": {"code": 403, "message": NO_KEY, "status": "PERMISSION_DENIED"}
    }
    assert "batches.list" not in emulator.stats()["calls"]


def test_any_key_is_accepted_by_default_in_header_or_query(emulator):
    assert emulator.api_key == "emulator-key"
    with httpx2.Client(base_url=emulator.base_url) as http:
        assert (
            http.get("/v1beta/batches", headers={"x-goog-api-key": "anything"}).status_code == 200
        )
        assert http.get("/v1beta/batches", params={"key": "another"}).status_code == 200


def test_a_wrong_key_gets_the_service_error():
    with Emulator(behaviour=LENIENT, api_key="right") as emu:
        wrong = genai.Client(api_key="wrong", http_options=types.HttpOptions(base_url=emu.base_url))
        with pytest.raises(errors.ClientError) as info:
            wrong.batches.list()
        assert info.value.code == 400 and info.value.status == "INVALID_ARGUMENT"
        assert info.value.message == "API key not valid. Please pass a valid API key."
        detail = info.value.details["error"]["details"][0]
        assert detail["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
        assert detail["reason"] == "API_KEY_INVALID"
        assert list(make_client(emu).batches.list()) == []
        assert emu.api_key == "right"


def test_environ_points_the_sdk_at_the_emulator(emulator, monkeypatch):
    assert emulator.environ() == {
        "GOOGLE_GEMINI_BASE_URL": emulator.base_url,
        "GEMINI_API_KEY": emulator.api_key,
    }
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    for name, value in emulator.environ().items():
        monkeypatch.setenv(name, value)
    client = genai.Client()  # reads both variables
    assert client.models.generate_content(model=MODEL, contents="Hello").text.startswith(
        'Answer to "Hello"'
    )


def test_loopback_only_and_unknown_routes(emulator, http):
    assert emulator.base_url.startswith("http://127.0.0.1:")
    assert emulator._server.server_address[0] == "127.0.0.1"
    missing = http.get("/v1beta/nothing/here")
    assert missing.status_code == 404 and missing.json()["error"]["status"] == "NOT_FOUND"
    wrong_method = http.put("/v1beta/batches")
    assert wrong_method.status_code == 405


def test_stop_ends_every_thread_and_keep_alive_connection(tmp_path):
    before = set(threading.enumerate())
    emu = Emulator(behaviour=LENIENT, workers=1).start()
    client = make_client(emu)
    up = upload(client, write_jsonl(tmp_path / "in.jsonl", [keyed(i) for i in range(25_000)]))
    job = wait_done(
        client, client.batches.create(model=MODEL, src=up.name).name
    )  # uses a worker process
    assert len(lines_of(client.files.download(file=job.dest.file_name))) == 25_000
    raw = httpx2.Client(base_url=emu.base_url, headers={"x-goog-api-key": "k"})
    raw.get("/v1beta/batches")  # leaves an idle keep-alive connection open
    assert any(t.name == "gembatch-emulator-conn" for t in threading.enumerate())
    emu.stop()
    leftover = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert leftover == []
    with pytest.raises(httpx2.TransportError):
        raw.get("/v1beta/batches")
    raw.close()


def test_the_api_key_is_never_logged(caplog):
    with (
        Emulator(behaviour=LENIENT, api_key="sekrit-key-123") as emu,
        caplog.at_level(logging.DEBUG, logger="gembatch.emulator"),
        httpx2.Client(base_url=emu.base_url) as http,
    ):
        http.get("/v1beta/batches", params={"key": "sekrit-key-123"})
        http.get("/v1beta/files", headers={"x-goog-api-key": "sekrit-key-123"})
        http.get("/v1beta/files", params={"key": "wrong-sekrit"})
    assert "/v1beta/batches?key=***" in caplog.text
    assert "sekrit" not in caplog.text


def test_in_process_transport_same_behaviour(tmp_path):
    with Emulator(behaviour=LENIENT) as emu:
        http = httpx2.Client(transport=emu.transport())
        assert isinstance(http._transport, EmulatorTransport)
        client = genai.Client(
            api_key=emu.api_key,
            http_options=types.HttpOptions(base_url="http://emulator.invalid", httpx_client=http),
        )
        up = upload(client, write_jsonl(tmp_path / "in.jsonl", [keyed(i) for i in range(5)]))
        assert up.uri == f"http://emulator.invalid/v1beta/files/{up.name.removeprefix('files/')}"
        job = wait_done(client, client.batches.create(model=MODEL, src=up.name).name)
        assert [r["key"] for r in lines_of(client.files.download(file=job.dest.file_name))] == [
            f"k{i}" for i in range(5)
        ]
        emu.faults.add(DropConnection(endpoint="files.download", when="mid_body", after_bytes=10))
        with pytest.raises(httpx2.RemoteProtocolError):
            client.files.download(file=job.dest.file_name)
        emu.faults.add(DropConnection(endpoint="batches.get"))
        with pytest.raises(httpx2.RemoteProtocolError):
            client.batches.get(name=job.name)
        assert emu.stats()["calls"]["files.upload_chunk"] == 1


def _start_cli(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gembatch.emulator", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if line.startswith("export GOOGLE_GEMINI_BASE_URL="):
            return proc, line.split("=", 1)[1].strip()
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"the emulator did not start: {''.join(lines)} {proc.stderr.read()}")


def test_command_line_serves_until_interrupted(tmp_path):
    data = tmp_path / "data"
    proc, base_url = _start_cli(
        "--data-dir", str(data), "--api-key", "cli-key", "--fault", "http:batches.list:503@1"
    )
    try:
        with httpx2.Client(base_url=base_url, headers={"x-goog-api-key": "cli-key"}) as http:
            assert http.get("/v1beta/batches").status_code == 503
            assert http.get("/v1beta/batches").status_code == 200
            assert (
                http.get("/v1beta/batches", headers={"x-goog-api-key": "nope"}).status_code == 400
            )
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "stopped" in out
    assert "cli-key" not in out  # the banner names the variable, not the secret
    assert (data / "store.json").exists()


def test_command_line_strict_with_a_switch_and_a_limit():
    proc, base_url = _start_cli(
        "--strict",
        "--behaviour",
        "require_display_name=false",
        "--max-concurrent-jobs",
        "1",
        "--latency",
        "0",
    )
    try:
        with httpx2.Client(base_url=base_url, headers={"x-goog-api-key": "k"}) as http:
            body = {
                "batch": {
                    "input_config": {
                        "requests": {
                            "requests": [{"request": {"contents": [{"parts": [{"text": "x"}]}]}}]
                        }
                    }
                }
            }
            url = f"/v1beta/models/{MODEL}:batchGenerateContent"
            created = http.post(url, json=body)
            assert created.status_code == 200  # no display name: allowed by the switch
            assert len(created.json()["name"]) == len("batches/") + 36  # strict ids
            assert http.get("/v1beta/models/gemini-0.9").status_code == 404
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_command_line_refuses_a_bad_fault():
    result = subprocess.run(
        [sys.executable, "-m", "gembatch.emulator", "--fault", "http:nowhere:500"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2 and "invalid fault" in result.stderr


@pytest.mark.skipif(os.name != "posix", reason="SIGTERM semantics")
def test_command_line_stops_on_sigterm():
    proc, _ = _start_cli()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "stopped" in out


def test_gembatch_cli_delegates_to_the_emulator(capsys):
    from gembatch.cli import main as gembatch_main

    with pytest.raises(SystemExit) as info:
        gembatch_main(["emulator", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: gembatch emulator") and "http:<endpoint>:<status>" in out
    assert "batches.create_embeddings" in out


def test_chunked_json_bodies_are_read_whole(emulator):
    import http.client

    body = json.dumps(
        {"contents": [{"role": "user", "parts": [{"text": "chunked " * 50}]}]}
    ).encode()
    conn = http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=10)
    conn.putrequest("POST", f"/v1beta/models/{MODEL}:generateContent")
    conn.putheader("x-goog-api-key", emulator.api_key)
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    for i in range(0, len(body), 7):
        piece = body[i : i + 7]
        conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
    conn.send(b"0\r\n\r\n")
    response = conn.getresponse()
    answer = json.loads(response.read())
    conn.close()
    assert response.status == 200
    assert answer["candidates"][0]["content"]["parts"][0]["text"].startswith(
        'Answer to "chunked chunked'
    )
