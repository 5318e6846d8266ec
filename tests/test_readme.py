"""The README runs as pasted: every ```python block of README.md, in order, in one namespace, in a
fresh directory, with the environment pointed at the emulator (as a new user's notebook would be
after the README's emulator recipe). A block that cannot run here is marked in the README with
``<!-- not-tested: reason -->`` on the line before its fence; only a few may be.

Also: the "Start here" commands are the ones CI runs, and the hint of the no-key error works as
written after a plain ``import gembatch``."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import textwrap
import traceback
import warnings
from pathlib import Path

import polars as pl
import pytest

import gembatch
from gembatch.emulator import Emulator

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
NOT_TESTED = re.compile(r"<!--\s*not-tested:\s*(?P<reason>\S.*?)\s*-->")
MAX_NOT_TESTED = 3


@dataclasses.dataclass(frozen=True)
class Block:
    line: int  # of the block's first line of code, 1-based
    source: str
    not_tested: str | None  # the reason, when marked


def readme_blocks(text: str, language: str = "python") -> list[Block]:
    """The fenced blocks of ``language``, in order, each with its ``not-tested`` reason if the
    nearest non-blank line above its fence is such a marker."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == f"```{language}":
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
            above = next((lines[k].strip() for k in range(i - 1, -1, -1) if lines[k].strip()), "")
            marker = NOT_TESTED.fullmatch(above)
            blocks.append(
                Block(i + 2, "\n".join(lines[i + 1 : end]), marker["reason"] if marker else None)
            )
            i = end
        i += 1
    return blocks


def test_blocks_are_found_and_marked_blocks_say_why():
    text = "a\n<!-- not-tested: needs Google -->\n\n```python\nx = 1\n```\n```python\ny = 2\n```\n"
    assert readme_blocks(text) == [Block(5, "x = 1", "needs Google"), Block(8, "y = 2", None)]


def test_every_python_block_of_the_readme_is_fenced_as_python_and_few_are_not_tested():
    text = README.read_text(encoding="utf-8")
    fences = [line.strip() for line in text.splitlines() if line.strip().startswith("```")]
    assert not [f for f in fences if re.fullmatch(r"```(py|python3|pycon|ipython)", f)], (
        "fence Python as ```python, so the README test runs it"
    )
    blocks = readme_blocks(text)
    skipped = [b for b in blocks if b.not_tested]
    assert len(blocks) >= 8
    assert len(skipped) <= MAX_NOT_TESTED, [(b.line, b.not_tested) for b in skipped]


@pytest.fixture()
def quick_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Timing only: the emulator answers in milliseconds while gembatch's default first poll waits
    10 s (the right pace for Google). The README's calls keep their defaults; the default
    ``Options()`` they get polls every 0.05 s here."""
    init = gembatch.Options.__init__
    defaults = getattr(init, "__wrapped__", init).__kwdefaults__
    monkeypatch.setitem(defaults, "poll_interval", 0.05)
    monkeypatch.setitem(defaults, "max_poll_interval", 0.2)
    assert gembatch.Options().poll_interval == 0.05


def test_the_readme_runs_as_pasted(emu, tmp_path, monkeypatch, quick_polls):
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__main__"}
    blocks = [b for b in readme_blocks(README.read_text(encoding="utf-8")) if not b.not_tested]
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            for category in (DeprecationWarning, PendingDeprecationWarning, ResourceWarning):
                warnings.simplefilter("ignore", category)
            for block in blocks:
                code = compile(block.source, f"README.md:{block.line}", "exec")
                try:
                    exec(code, namespace)
                except Exception:
                    pytest.fail(
                        f"the README block at line {block.line} fails as pasted:\n"
                        f"{textwrap.indent(block.source, '    ')}\n{traceback.format_exc()}"
                    )
        assert [f"{w.category.__name__}: {w.message}" for w in caught] == []
    finally:
        started = namespace.get("emu")
        if isinstance(started, Emulator) and started is not emu:
            started.stop()
    # what a reader was promised came out of it
    out = namespace["out"]
    assert isinstance(out, pl.DataFrame) and out.height == 1_000
    assert set(out["gemini_status"]) == {"ok"}
    assert (tmp_path / "reviews.parquet").exists() and (tmp_path / "scored.parquet").exists()
    assert pl.read_parquet(tmp_path / "scored/").height == 1_000
    for job_dir in ("runs/reviews", "runs/later", "runs/scored"):
        assert gembatch.BatchRun.open(tmp_path / job_dir).status().state == "done", job_dir
    readme_emu = namespace["emu"]
    assert isinstance(readme_emu, Emulator) and readme_emu is not emu
    assert repr(readme_emu) == "Emulator(stopped)", "the README's last block stops its emulator"


def _bash_commands(block: str) -> list[str]:
    """The commands of a bash block: comments dropped, continued lines joined."""
    joined = re.sub(r"\\\n\s*", "", block)
    return [line.strip() for line in joined.splitlines() if line.strip() and line[0] != "#"]


def test_start_here_is_two_commands_and_ci_runs_the_same():
    text = README.read_text(encoding="utf-8")
    section = text.split("## Start here (two commands)", 1)[1].split("\n## ", 1)[0]
    (block,) = readme_blocks(section, "bash")
    install, tests = _bash_commands(block.source)
    steps = [s.strip() for s in install.split("&&")]
    assert steps[:3] == [
        "python -m venv .venv",
        ". .venv/bin/activate",
        'python -m pip install -e ".[test]"',
    ]
    assert steps[3].startswith("gembatch demo")
    assert tests == "python -m pytest -q"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r'pip install .*-e "\.\[test\]"', ci)
    assert re.search(r"^python -m pytest -q(\s|$)", ci, re.MULTILINE)


def test_the_no_key_hint_runs_as_written_after_import_gembatch(private_cache):
    """The AuthenticationError's emulator recipe, pasted into a fresh interpreter that only did
    ``import gembatch``, starts an emulator that later calls use, until ``emu.stop()``."""
    code = textwrap.dedent(
        """
        import os, re, sys
        for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL"):
            os.environ.pop(name, None)
        import polars as pl
        import gembatch

        frame = pl.DataFrame({"prompt": ["Say hi."]})
        config = gembatch.Config(model="gemini-2.5-flash")
        try:
            frame.gemini.batch_generate("prompt", config=config, progress=False)
        except gembatch.AuthenticationError as exc:
            message = str(exc)
        else:
            sys.exit("no AuthenticationError without a key")
        assert "gembatch.emulator" not in sys.modules
        (hint,) = [h for h in re.findall(r"`([^`]+)`", message) if "Emulator" in h]
        print(hint)
        pasted = {}
        exec(hint, pasted)
        out = frame.gemini.batch_generate("prompt", config=config, progress=False,
                                          poll_interval=0.05)
        print(out["gemini_status"].to_list())
        pasted["emu"].stop()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    hint, statuses = done.stdout.strip().splitlines()
    assert ".start()" in hint and "os.environ.update(emu.environ())" in hint
    assert statuses == "['ok']"
    assert done.stderr == ""
