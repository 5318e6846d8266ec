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
            "--interactive-rows",
            "40",
            "--interactive-concurrency",
            "4",
            "--interactive-latency",
            "0.02",
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
    for section in ("kernels", "hashing", "e2e", "streaming", "peer", "validation", "interactive"):
        assert any(line.startswith(section) for line in table), f"no {section} rows:\n{out}"
    correctness = [line for line in table if "output rows, all ok and in order" in line]
    assert len(correctness) == 3 and all(line.rstrip().endswith("ok") for line in correctness), out
    for proof in (
        "loop output byte-identical: yes",
        "digests identical to the loop: yes",
        "same texts and tokens as the loop: yes",
        "ids in input order: yes",
        "answers ok and own: yes",
    ):
        assert proof in out, f"missing {proof!r}:\n{out}"
    assert ": NO" not in out and "NO;" not in out


@pytest.mark.slow
def test_peer_section_runs_the_guides_recipe_and_gembatch_and_prints_every_figure(tmp_path):
    """The guide's recipe, the in-memory call and the streaming call, at two tiny sizes against one
    emulator: gembatch's answers equal the recipe's row by row, and every figure (CPU, peak RSS,
    wall, head, tail) is printed for each client and size. Whether targets are met is not checked
    (meaningless at this size)."""
    sizes = ("3,000 rows", "1,000 rows")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--only",
            "peer",
            "--rows",
            "3000",
            "--peer-small",
            "1000",
            "--repeat",
            "1",
            "--workdir",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    out = done.stdout
    assert done.returncode in (0, 1), done.stderr[-2000:]  # 1: a target missed (expected here)
    table = [line for line in out.splitlines() if line.startswith("peer ")]
    for size in sizes:
        for client in ("in-memory", "streaming"):
            same = [
                line for line in table if f"{client}: same answers as the recipe ({size})" in line
            ]
            assert len(same) == 1 and same[0].rstrip().endswith(" ok"), out
            for figure in ("CPU", "peak RSS", "wall", "head", "tail"):
                rows = [line for line in table if f"{client}: {figure}" in line and size in line]
                assert len(rows) == 1, f"no {client} {figure} row at {size}:\n{out}"
                assert "recipe: " in rows[0] and "% of it" in rows[0], rows[0]
                assert "nan" not in rows[0].lower(), rows[0]
    summary = [line for line in out.splitlines() if line.startswith("  [peer]   ")]
    for who in (
        "recipe (best of 1)",
        "in-memory (best of 1)",
        "streaming (best of 1)",
        "in-memory / recipe",
        "streaming / recipe",
    ):
        lines = [line for line in summary if who in line]
        assert len(lines) == len(sizes), f"{who!r} not printed for both sizes:\n{out}"
        for line in lines:
            figures = line.split(who, 1)[1].split()
            assert len(figures) == 5 and "nan" not in line, line
    assert "same answers as the recipe: yes" in out and "differs" not in out, out


def test_peer_tier_option_reaches_gembatchs_options():
    """``--peer-tier N`` runs both gembatch clients with ``Options(tier=N)`` (fewer, larger shards
    than the default's tier-1 cut); unset, gembatch's default (tier unknown) is used."""
    import argparse

    from benchmarks import peer

    parser = argparse.ArgumentParser()
    peer.add_arguments(parser)
    assert parser.parse_args([]).peer_tier is None
    assert parser.parse_args(["--peer-tier", "2"]).peer_tier == 2
    with pytest.raises(SystemExit):
        parser.parse_args(["--peer-tier", "4"])
    assert peer._gembatch_options(0.5).tier is None
    assert peer._gembatch_options(0.5, 2).tier == 2
