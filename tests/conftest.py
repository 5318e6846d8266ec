"""Shared fixtures: an emulator started in-process on an ephemeral loopback port, and an SDK
client."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from google import genai
from google.genai import types

from gembatch.emulator import Behaviour, Emulator


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Fixtures wider than a test (module references) get a cache of the session, never
    ``~/.cache``."""
    path = tmp_path_factory.mktemp("session-cache")
    old = os.environ.get("GEMBATCH_CACHE_DIR")
    os.environ["GEMBATCH_CACHE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("GEMBATCH_CACHE_DIR", None)
    else:
        os.environ["GEMBATCH_CACHE_DIR"] = old


@pytest.fixture(autouse=True)
def private_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every test gets its own empty result cache (``GEMBATCH_CACHE_DIR``): no test sees another's
    answers, and none touches the user's ``~/.cache``."""
    path = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("GEMBATCH_CACHE_DIR", str(path))
    return path


@pytest.fixture(autouse=True)
def _cwd_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs in its own empty directory: default run directories (``.gembatch/runs``)
    and relative outputs never land in the checkout, and no test sees another's."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture()
def emulator(request: pytest.FixtureRequest) -> Iterator[Emulator]:
    """A fresh ``Emulator()`` (the strict service; temporary data directory, any key accepted),
    stopped afterwards. Another variant: parametrize ``emulator`` indirectly with a dict of
    switches over the strict ones (or a ``Behaviour``)::

        @pytest.mark.parametrize("emulator", [{"inline_metadata": "echoed"}], indirect=True)
    """
    behaviour = getattr(request, "param", None)
    if isinstance(behaviour, dict):
        behaviour = Behaviour.strict().with_(**behaviour)
    with Emulator(behaviour=behaviour) as emu:
        yield emu


@pytest.fixture()
def client(emulator: Emulator) -> genai.Client:
    """The real google-genai SDK pointed at ``emulator`` over HTTP."""
    return genai.Client(
        api_key=emulator.api_key, http_options=types.HttpOptions(base_url=emulator.base_url)
    )


@pytest.fixture()
def emu(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """The emulator, with the environment pointed at it the way a user would point it at Google
    (``GOOGLE_GEMINI_BASE_URL`` and ``GEMINI_API_KEY``, read by the SDK and by gembatch)."""
    for name, value in emulator.environ().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    return emulator
