"""Helpers for the emulator tests: a settable clock, job polling, JSONL files, SDK clients."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from google import genai
from google.genai import types

from gembatch.emulator import Behaviour, Emulator

MODEL = "gemini-2.5-flash"
#: The two presets, named so a test says which service it means (never DEFAULT_BEHAVIOUR).
LENIENT = Behaviour.lenient()
STRICT = Behaviour.strict()
DONE = {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"}


class FakeClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def wait_done(client: genai.Client, name: str, timeout: float = 30.0) -> types.BatchJob:
    """Poll ``batches.get`` until the job is in a final state."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.batches.get(name=name)
        if job.state is not None and job.state.name in DONE:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} still {job.state} after {timeout} s")
        time.sleep(0.01)


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


def write_jsonl(path: Path, rows: Iterable[Any]) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        f.writelines((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows)
    return path


def keyed(i: int, text: str | None = None) -> dict[str, Any]:
    return {
        "key": f"k{i}",
        "request": {"contents": [{"role": "user", "parts": [{"text": text or f"Prompt {i}"}]}]},
    }


def lines_of(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def upload(client: genai.Client, path: Path) -> types.File:
    return client.files.upload(file=str(path), config=types.UploadFileConfig(mime_type="jsonl"))


def make_client(emu: Emulator) -> genai.Client:
    return genai.Client(api_key=emu.api_key, http_options=types.HttpOptions(base_url=emu.base_url))


def raw_get(emu: Emulator, path: str, **params: Any) -> dict[str, Any]:
    """GET a v1beta path on the wire (httpx2) and return the JSON body."""
    import httpx2

    with httpx2.Client(base_url=emu.base_url, headers={"x-goog-api-key": emu.api_key}) as http:
        return http.get(f"/v1beta/{path}", params=params).json()  # type: ignore[no-any-return]
