"""The benchmark command runs every section end to end at a tiny size (so it cannot rot between the
runs people do by hand). Speed ratios mean nothing at this size; what is checked is that each
section measures the right thing: identical bytes, digests and answers to its baseline, and every
row
back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_every_benchmark_section_runs_and_checks_its_output(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--rows",
            "3000",
            "--repeat",
            "1",
            "--stream-rows-large",
            "6000",
            "--stream-shard-rows",
            "2000",
            "--workdir",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = done.stdout
    assert done.returncode in (0, 1), done.stderr[
        -2000:
    ]  # 1: a speed target missed (meaningless here)
    table = [line for line in out.splitlines() if " | " in line]
    for section in ("kernels", "hashing", "e2e", "streaming"):
        assert any(line.startswith(section) for line in table), f"no {section} rows:\n{out}"
    correctness = [line for line in table if "output rows, all ok and in order" in line]
    assert len(correctness) == 3 and all(line.rstrip().endswith("ok") for line in correctness), out
    for proof in (
        "loop output byte-identical: yes",
        "digests identical to the loop: yes",
        "same texts and tokens as the loop: yes",
        "ids in input order: yes",
    ):
        assert proof in out, f"missing {proof!r}:\n{out}"
    assert ": NO" not in out and "NO;" not in out
