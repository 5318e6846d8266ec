"""Shared fixtures: an emulator started in-process on an ephemeral loopback port, and an SDK client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from google import genai
from google.genai import types

from gembatch.emulator import Emulator


@pytest.fixture()
def emulator() -> Iterator[Emulator]:
    """A fresh ``Emulator()`` (temporary data directory, any key accepted), stopped afterwards."""
    with Emulator() as emu:
        yield emu


@pytest.fixture()
def client(emulator: Emulator) -> genai.Client:
    """The real google-genai SDK pointed at ``emulator`` over HTTP."""
    return genai.Client(api_key=emulator.api_key, http_options=types.HttpOptions(base_url=emulator.base_url))


@pytest.fixture()
def emu(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """The emulator, with the environment pointed at it the way a user would point it at Google
    (``GOOGLE_GEMINI_BASE_URL`` and ``GEMINI_API_KEY``, read by the SDK and by gembatch)."""
    for name, value in emulator.environ().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    return emulator
