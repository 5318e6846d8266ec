"""pandas and Arrow in, the same type out."""

from __future__ import annotations

import pandas as pd
import polars as pl
import pyarrow as pa

import gembatch
import gembatch.pandas
from gembatch import Config, Options

FAST = Options(poll_interval=0.01, max_poll_interval=0.05)
CFG = Config(model="gemini-2.5-flash")


def test_pandas_accessor_returns_pandas(emu, tmp_path):
    pdf = pd.DataFrame({"id": ["a", "b", "c"], "prompt": ["one", "two", "three"]})
    out = pdf.gemini.batch_generate(
        "prompt", config=CFG, key="id", job_dir=tmp_path / "p", options=FAST, progress=False
    )
    assert isinstance(out, pd.DataFrame)
    assert list(out["id"]) == ["a", "b", "c"] and (out["gemini_status"] == "ok").all()
    assert out["gemini_text"].str.contains('"two"').tolist() == [False, True, False]


def test_arrow_table_in_arrow_table_out(emu, tmp_path):
    table = pa.table({"prompt": ["x", "y"]})
    out = gembatch.batch_generate(
        table, "prompt", config=CFG, job_dir=tmp_path / "a", options=FAST, progress=False
    )
    assert isinstance(out, pa.Table)
    assert pl.from_arrow(out)["gemini_status"].to_list() == ["ok", "ok"]
