"""Doctests: every ``>>>`` example in gembatch's docstrings runs in the test suite.

Examples that call the service run against an emulator started once for the session (the
environment points the SDK at it, as a user would point it at Google), with a small sample frame
``df`` (columns ``id``, ``prompt``, ``text``) and a run directory ``job_dir`` per example.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def _doctest_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from gembatch.emulator import Emulator

    with Emulator() as emu:
        yield emu


@pytest.fixture(autouse=True)
def _doctest_namespace(
    request: pytest.FixtureRequest,
    doctest_namespace: dict[str, Any],
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not isinstance(request.node, pytest.DoctestItem):
        return
    import polars as pl

    import gembatch

    emu = request.getfixturevalue("_doctest_emulator")
    for name, value in emu.environ().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GEMBATCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    doctest_namespace.update(
        gembatch=gembatch,
        pl=pl,
        emu=emu,
        job_dir=str(tmp_path / "run"),
        df=pl.DataFrame(
            {
                "id": ["a", "b"],
                "prompt": ["Say hi", "Say bye"],
                "text": ["a short text", "another text"],
            }
        ),
        cfg=gembatch.Config(model="gemini-2.5-flash"),
        FAST=gembatch.Options(poll_interval=0.01, max_poll_interval=0.05),
    )
    os.environ.setdefault("GEMBATCH_DOCTEST", "1")
