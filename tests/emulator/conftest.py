"""Fixtures of the emulator tests (helpers live in emu_helpers.py).

The ``emulator`` fixture here overrides the suite-wide one: the emulator's own tests say which
service they mean (``Behaviour.lenient()`` unless a test asks for strict), whatever
``DEFAULT_BEHAVIOUR`` is.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest
from emu_helpers import LENIENT

from gembatch.emulator import Emulator


@pytest.fixture()
def emulator() -> Iterator[Emulator]:
    """A fresh lenient ``Emulator`` (temporary data directory, any key accepted), stopped after."""
    with Emulator(behaviour=LENIENT) as emu:
        yield emu


@pytest.fixture()
def http(emulator: Emulator) -> Iterator[httpx2.Client]:
    """Plain HTTP with the key, for checking the wire format the SDK hides."""
    with httpx2.Client(
        base_url=emulator.base_url, headers={"x-goog-api-key": emulator.api_key}
    ) as c:
        yield c
