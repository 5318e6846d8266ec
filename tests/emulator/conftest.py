"""Fixtures of the emulator tests (helpers live in emu_helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest

from gembatch.emulator import Emulator


@pytest.fixture()
def http(emulator: Emulator) -> Iterator[httpx2.Client]:
    """Plain HTTP with the key, for checking the wire format the SDK hides."""
    with httpx2.Client(base_url=emulator.base_url, headers={"x-goog-api-key": emulator.api_key}) as c:
        yield c
