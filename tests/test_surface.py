"""The package's shape: the public names (pinned), private internals, a light import, clean code."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import gembatch

ROOT = Path(__file__).resolve().parents[1]

PUBLIC = [
    "AuthenticationError",
    "BatchRun",
    "ColumnNotFoundError",
    "Config",
    "ConfigError",
    "CorruptRunError",
    "Cost",
    "CostLimitError",
    "DuplicateKeyError",
    "EmbedConfig",
    "Estimate",
    "GembatchError",
    "InputError",
    "InvalidPromptError",
    "MediaParts",
    "NullProgress",
    "Options",
    "PilotFailedError",
    "Plan",
    "PriceTable",
    "Progress",
    "RequestTooLargeError",
    "ResultCache",
    "ResultWarning",
    "RetryPolicy",
    "RunCost",
    "RunDirectoryError",
    "RunLockedError",
    "RunMismatchError",
    "RunNotFinishedError",
    "RunStatus",
    "ServiceError",
    "Snapshot",
    "TerminalServiceError",
    "TextProgress",
    "TokenCounts",
    "TqdmProgress",
    "TransientServiceError",
    "__version__",
    "batch_embed",
    "batch_generate",
    "batch_generate_parquet",
    "cache",
    "estimate",
    "plan",
    "sample_reviews",
]
#: Modules a user may import by name; everything else is private (``_``-prefixed).
PUBLIC_MODULES = {
    "api",
    "cache",
    "cli",
    "config",
    "demo",
    "emulator",
    "exceptions",
    "handle",
    "namespace",
    "pandas",
    "progress",
    "sample",
}


def test_the_public_surface_is_exactly_the_pinned_one():
    assert sorted(gembatch.__all__) == PUBLIC
    for name in gembatch.__all__:
        assert hasattr(gembatch, name), name
    assert gembatch.emulator.Emulator.__name__ == "Emulator"  # reachable after `import gembatch`


def test_internal_modules_are_private_and_every_module_declares_its_names():
    names = {m.name for m in pkgutil.iter_modules(gembatch.__path__)}
    assert {n for n in names if not n.startswith("_")} == PUBLIC_MODULES
    for info in pkgutil.walk_packages(gembatch.__path__, "gembatch."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        first = (module.__doc__ or "").strip().splitlines()
        assert first and len(first[0]) > 20, f"{info.name} has no one-line docstring"
        if not info.ispkg:
            assert isinstance(getattr(module, "__all__", None), list), f"{info.name} has no __all__"


def test_import_gembatch_does_not_load_the_sdk():
    code = (
        "import sys, gembatch, polars as pl; pl.DataFrame({'a': [1]}).gemini; "
        "print(sorted(m for m in ('google.genai', 'tenacity', 'gembatch.emulator') "
        "if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def _tool(name: str) -> str:
    path = Path(sys.executable).parent / name
    if not path.exists():
        pytest.fail(f"{name} is not installed: `pip install -e '.[test]'` installs it")
    return str(path)


def test_ruff_finds_nothing():
    done = subprocess.run(
        [_tool("ruff"), "check", "gembatch", "tests", "benchmarks", "conftest.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:]


def test_mypy_finds_nothing():
    done = subprocess.run(
        [_tool("mypy"), "gembatch"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:]
