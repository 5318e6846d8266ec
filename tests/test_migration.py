"""Run directories written by gembatch 0.1.0 (format 1) open, read and resume under this release."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest

import gembatch
from gembatch._state.records import FORMAT_VERSION

DATA = Path(__file__).parent / "data" / "runs-v1"
FAST = gembatch.Options(poll_interval=0.01, max_poll_interval=0.05)


def _copy(name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    shutil.copytree(DATA / name, target)
    return target


def test_a_finished_v1_run_reads_without_a_key_and_is_migrated(tmp_path, monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    job_dir = _copy("finished", tmp_path)
    expected = pl.concat(
        [pl.read_parquet(p) for p in sorted(job_dir.glob("shards/*/output.parquet"))]
    )
    run = gembatch.BatchRun.open(job_dir, progress=False)
    out = run.result()
    assert out.equals(expected)
    assert out["gemini_status"].to_list() == ["ok"] * 12
    assert out["gemini_parsed"].struct.field("score").null_count() == 0
    assert run.status().state == "done"
    assert json.loads((job_dir / "run.json").read_text())["version"] == FORMAT_VERSION
    state = json.loads((job_dir / "shards" / "000000" / "state.json").read_text())
    assert (
        state["version"] == FORMAT_VERSION
        and state["resubmissions"] == []
        and "retries" not in state
    )
    assert pl.read_parquet(job_dir / "shards" / "000000" / "input.parquet").columns == [
        "id",
        "text",
    ]
    assert pl.read_parquet(job_dir / "shards" / "000000" / "keys.parquet").columns == [
        "key",
        "hash",
        "send",
        "via",
    ]
    assert (
        gembatch.BatchRun.open(job_dir, progress=False).result().equals(expected)
    )  # a second open


def test_a_prepared_v1_run_is_sent_by_this_release(tmp_path, emu):
    job_dir = _copy("prepared", tmp_path)
    out = gembatch.BatchRun.open(job_dir, progress=False, poll_interval=0.01).result()
    assert out.columns[:2] == ["id", "text"] and out.height == 12
    assert out["gemini_status"].to_list() == ["ok"] * 12
    for text, answer in zip(out["text"], out["gemini_text"]):
        assert (
            f'"{text}"' in answer
        )  # every row got its own answer (the emulator quotes the prompt)
    assert emu.stats()["batches_created"] == 3


def test_a_finished_v1_embeddings_run_reads(tmp_path):
    job_dir = _copy("embed", tmp_path)
    out = gembatch.BatchRun.open(job_dir, progress=False).result()
    assert out["gemini_embedding"].dtype == pl.Array(pl.Float32, 8)
    assert out["gemini_status"].to_list() == ["ok"] * 12


def test_a_run_of_a_newer_format_is_refused(tmp_path):
    job_dir = _copy("finished", tmp_path)
    data = json.loads((job_dir / "run.json").read_text())
    data["version"] = FORMAT_VERSION + 1
    (job_dir / "run.json").write_text(json.dumps(data))
    with pytest.raises(gembatch.CorruptRunError, match="format version"):
        gembatch.BatchRun.open(job_dir)
