"""pandas and Arrow in, the same type out."""

from __future__ import annotations

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

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


def test_pandas_keeps_its_index_and_wait_false_gives_pandas_back(emu, tmp_path):
    import pandas as pd

    pdf = pd.DataFrame(
        {"prompt": [f"Prompt {i}" for i in range(6)]},
        index=pd.Index([f"id{i}" for i in (5, 3, 9, 0, 1, 7)], name="review_id"),
    )
    out = pdf.gemini.batch_generate(
        "prompt", config=CFG, options=FAST, progress=False, job_dir=tmp_path / "run"
    )
    assert isinstance(out, pd.DataFrame) and out.index.equals(pdf.index)
    pdf["answer"] = out["gemini_text"]  # aligned by index: every row gets its own answer
    assert all(f'"{p}"' in a for p, a in zip(pdf["prompt"], pdf["answer"]))
    run = pdf.gemini.batch_generate(
        "prompt",
        config=CFG,
        options=FAST,
        progress=False,
        wait=False,
        job_dir=tmp_path / "later",
        key="review_id",
    )
    again = gembatch.BatchRun.open(tmp_path / "later", progress=False).result()
    assert isinstance(again, pd.DataFrame) and again.index.equals(pdf.index)
    assert run.result()["gemini_status"].eq("ok").all()


def test_arrow_keeps_its_schema_metadata(emu, tmp_path):
    import pyarrow as pa

    table = pa.table({"prompt": ["a", "b"]}).replace_schema_metadata({"source": "survey-7"})
    out = gembatch.batch_generate(
        table, "prompt", config=CFG, options=FAST, progress=False, job_dir=tmp_path / "run"
    )
    assert isinstance(out, pa.Table) and out.schema.metadata[b"source"] == b"survey-7"


@pytest.mark.parametrize("column", ["gemini_parsed", "gemini_text", "gemini_origin"])
def test_a_user_column_named_like_a_result_column_is_refused_before_spend(emu, tmp_path, column):
    from pydantic import BaseModel

    class Label(BaseModel):
        label: str

    df = pl.DataFrame({"prompt": ["a", "b"], column: ["mine", "mine"]})
    with pytest.raises(gembatch.InputError, match=column):
        df.gemini.batch_generate(
            "prompt",
            config=CFG.replace(response_schema=Label),
            options=FAST,
            progress=False,
            job_dir=tmp_path / "run",
        )
    assert emu.stats()["calls"].get("batches.create", 0) == 0
    out = df.gemini.batch_generate(
        "prompt", config=CFG, options=FAST, progress=False, prefix="llm_", job_dir=tmp_path / "ok"
    )
    assert out[column].to_list() == ["mine", "mine"]


@pytest.mark.parametrize(
    "column",
    [
        "__gembatch_key",
        "__gembatch_hash",
        "__gembatch_send",
        "__gembatch_via",
        "__gembatch_sender",
        "__gembatch_join_key__",
        "key",
        "hash",
        "send",
        "via",
    ],
)
def test_user_columns_named_like_gembatchs_own_are_kept(emu, tmp_path, column):
    df = pl.DataFrame({"prompt": ["a", "b", "a"], column: ["x", "y", "z"]})
    out = df.gemini.batch_generate(
        "prompt", config=CFG, options=FAST, progress=False, job_dir=tmp_path / "run"
    )
    assert out.columns[:2] == ["prompt", column] and out[column].to_list() == ["x", "y", "z"]
    assert out["gemini_origin"].to_list() == ["batch", "batch", "dedup"]


def test_float_keys_and_unstorable_columns_are_refused_before_spend(emu, tmp_path):
    with pytest.raises(gembatch.DuplicateKeyError, match="floating-point"):
        pl.DataFrame({"id": [0.0, -0.0], "prompt": ["a", "b"]}).gemini.batch_generate(
            "prompt", config=CFG, key="id", options=FAST, progress=False, job_dir=tmp_path / "f"
        )
    wide = pl.DataFrame({"prompt": ["a"], "big": pl.Series([10**30], dtype=pl.Int128)})
    with pytest.raises(gembatch.InputError, match="Parquet cannot store"):
        wide.gemini.batch_generate(
            "prompt", config=CFG, options=FAST, progress=False, job_dir=tmp_path / "i"
        )
    assert emu.stats()["calls"].get("batches.create", 0) == 0


def test_input_columns_come_back_exactly_as_they_went_in(emu, tmp_path):
    """pandas: an ordered Categorical keeps its order and unused categories, the integer result
    columns are nullable integers (not float64); Arrow: field types, metadata and non-null flags
    are the Table's own (a round trip through polars changed them)."""
    size = pd.Categorical(["small", "large"], categories=["small", "large", "xl"], ordered=True)
    pdf = pd.DataFrame({"prompt": ["a", "b"], "size": size})
    out = pdf.gemini.batch_generate(
        "prompt", config=CFG, options=FAST, progress=False, job_dir=tmp_path / "p"
    )
    assert out["size"].dtype == pdf["size"].dtype and out["size"].cat.ordered
    assert str(out["gemini_error_code"].dtype) == "Int32"
    assert str(out["gemini_total_tokens"].dtype) == "Int64"
    schema = pa.schema(
        [
            pa.field("prompt", pa.string(), nullable=False, metadata={"about": "the question"}),
            pa.field("tag", pa.dictionary(pa.int8(), pa.string())),
            pa.field("t", pa.time64("us")),
        ]
    )
    table = pa.table(
        {
            "prompt": ["x", "y"],
            "tag": pa.array(["u", "v"]).dictionary_encode().cast(schema.field("tag").type),
            "t": pa.array([1, 2], pa.time64("us")),
        },
        schema=schema,
    )
    got = gembatch.batch_generate(
        table, "prompt", config=CFG, job_dir=tmp_path / "a", options=FAST, progress=False
    )
    for name in schema.names:
        assert got.schema.field(name).equals(schema.field(name), check_metadata=True)
    assert got.column("gemini_status").to_pylist() == ["ok", "ok"]


def test_a_pandas_column_arrow_cannot_hold_is_named_before_spend(emu, tmp_path):
    pdf = pd.DataFrame({"prompt": ["a", "b"], "notes": [12, "see ticket"]})
    with pytest.raises(gembatch.InputError, match=r"column 'notes'.*astype\(str\)"):
        pdf.gemini.batch_generate(
            "prompt", config=CFG, options=FAST, progress=False, job_dir=tmp_path / "m"
        )
    assert emu.stats()["calls"].get("batches.create", 0) == 0


def test_pandas_imported_after_gembatch_gets_the_accessor():
    """``import gembatch`` then ``import pandas`` (isort's order) gives ``pd.DataFrame.gemini``
    too (an AttributeError before), without gembatch importing pandas itself."""
    import subprocess
    import sys

    code = (
        "import sys, importlib.util\n"
        "import gembatch\n"
        "assert 'pandas' not in sys.modules\n"
        "importlib.util.find_spec('pandas')\n"  # a mere lookup does not use the hook up
        "import pandas as pd\n"
        "print(hasattr(pd.DataFrame({'a': [1]}), 'gemini'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0 and done.stdout.strip() == "True", done.stderr


def test_a_blocked_pandas_does_not_break_import_gembatch():
    """``sys.modules["pandas"] = None`` (how tests simulate a missing pandas) and then
    ``import gembatch`` works: gembatch never imports pandas itself."""
    import subprocess
    import sys

    code = "import sys\nsys.modules['pandas'] = None\nimport gembatch\nprint('ok')\n"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_pandas_column_labels_that_are_not_plain_text(emu, tmp_path):
    """An int label (``pd.read_csv(header=None)``) comes back once, not as 0 and '0'; labels
    alike as text, and an index Arrow cannot hold, are InputErrors naming them, before spend."""
    pdf = pd.DataFrame({0: ["a", "b"], "prompt": ["x", "y"]})
    out = pdf.gemini.batch_generate(
        "prompt", config=CFG, options=FAST, progress=False, job_dir=tmp_path / "i"
    )
    assert list(out.columns[:2]) == [0, "prompt"] and "0" not in out.columns
    twins = pd.DataFrame([["a", "x", "y"]], columns=["n", "prompt", "prompt"])
    with pytest.raises(gembatch.InputError, match="named alike: 'prompt'"):
        twins.gemini.batch_generate("n", config=CFG, progress=False, job_dir=tmp_path / "t")
    mixed = pd.DataFrame({"prompt": ["x", "y"]}, index=pd.Index([1, "b"], dtype=object))
    with pytest.raises(gembatch.InputError, match="index mixes values"):
        mixed.gemini.batch_generate("prompt", config=CFG, progress=False, job_dir=tmp_path / "m")
    assert emu.stats()["calls"].get("batches.create", 0) == 1
