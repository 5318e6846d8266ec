"""Parquet in, Parquet out, in bounded slices: the streaming path gives what the in-memory call
gives."""

from __future__ import annotations

import fsspec
import polars as pl
import pytest

import gembatch
from gembatch import Config, Options

CFG = Config(model="gemini-2.5-flash", temperature=0.1)
OPTS = Options(
    poll_interval=0.01,
    max_poll_interval=0.05,
    slice_rows=70,
    shard_max_rows=100,
    inline_max_bytes=0,
)


def _frame(n: int = 450) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": [f"k{i}" for i in range(n)],
            "text": [f"Streaming row {i}" for i in range(n)],
            "x": list(range(n)),
        }
    )


@pytest.fixture()
def reference(emu, tmp_path):
    out = _frame().gemini.batch_generate(
        "text",
        config=CFG,
        key="id",
        job_dir=tmp_path / "ref",
        options=OPTS,
        progress=False,
        cache=False,
    )
    return out.drop("gemini_batch_job")


def test_parquet_file_to_parquet_file(emu, tmp_path, reference):
    _frame().write_parquet(tmp_path / "in.parquet", row_group_size=64)
    run = gembatch.batch_generate_parquet(
        tmp_path / "in.parquet",
        tmp_path / "out.parquet",
        prompt="text",
        config=CFG,
        key="id",
        job_dir=tmp_path / "run",
        options=OPTS,
        progress=False,
    )
    assert isinstance(run, gembatch.BatchRun)
    out = pl.read_parquet(tmp_path / "out.parquet")
    assert out.drop("gemini_batch_job").equals(reference)
    assert out["gemini_batch_job"].n_unique() == 5


def test_a_dry_run_of_parquet_to_parquet_gives_the_plan_and_sends_nothing(emu, tmp_path):
    _frame().write_parquet(tmp_path / "in.parquet")
    plan = gembatch.batch_generate_parquet(
        tmp_path / "in.parquet", tmp_path / "out.parquet", prompt="text", config=CFG, key="id",
        job_dir=tmp_path / "run", options=OPTS, progress=False, dry_run=True,
    )  # fmt: skip
    assert isinstance(plan, gembatch.Plan) and plan.rows == 450
    assert not (tmp_path / "out.parquet").exists()
    assert emu.stats()["batches_created"] == 0 and emu.stats()["upload_sessions"] == 0


def test_glob_source_to_dataset_directory(emu, tmp_path, reference):
    frame = _frame()
    (tmp_path / "in").mkdir()
    for i, start in enumerate(range(0, frame.height, 200)):
        frame.slice(start, 200).write_parquet(tmp_path / "in" / f"part-{i}.parquet")
    gembatch.batch_generate_parquet(
        str(tmp_path / "in" / "*.parquet"),
        tmp_path / "out",
        prompt="text",
        config=CFG,
        key="id",
        job_dir=tmp_path / "run",
        options=OPTS,
        progress=False,
    )
    parts = sorted((tmp_path / "out").glob("part-*.parquet"))
    assert len(parts) == 5
    out = pl.concat([pl.read_parquet(p) for p in parts])
    assert out.drop("gemini_batch_job").equals(reference)


def test_lazyframe_with_sink_and_fsspec_urls(emu, tmp_path, reference):
    fs = fsspec.filesystem("memory")
    with fs.open("/stream-test/in.parquet", "wb") as fh:
        _frame().write_parquet(fh)
    _frame().write_parquet(tmp_path / "lazy.parquet")
    lf = pl.scan_parquet(tmp_path / "lazy.parquet")
    run = lf.gemini.batch_generate(
        "text",
        config=CFG,
        key="id",
        job_dir="memory://stream-test/run",
        sink="memory://stream-test/out.parquet",
        options=OPTS,
        progress=False,
    )
    assert isinstance(run, gembatch.BatchRun)
    with fs.open("/stream-test/out.parquet", "rb") as fh:
        out = pl.read_parquet(fh)
    assert out.drop("gemini_batch_job").equals(reference)
    again = gembatch.batch_generate_parquet(
        "memory://stream-test/in.parquet",
        "memory://stream-test/out2",
        prompt="text",
        config=CFG,
        key="id",
        job_dir="memory://stream-test/run2",
        options=OPTS,
        progress=False,
        cache=False,
    )
    assert again.result().drop("gemini_batch_job").equals(reference)


def test_duplicate_keys_across_slices_are_refused_before_any_upload(emu, tmp_path):
    frame = _frame().with_columns(
        pl.when(pl.col("x") == 400).then(pl.lit("k3")).otherwise(pl.col("id")).alias("id")
    )
    frame.write_parquet(tmp_path / "in.parquet")
    with pytest.raises(gembatch.DuplicateKeyError, match="k3"):
        gembatch.batch_generate_parquet(
            tmp_path / "in.parquet",
            tmp_path / "out.parquet",
            prompt="text",
            config=CFG,
            key="id",
            job_dir=tmp_path / "run",
            options=OPTS,
            progress=False,
        )
    assert emu.stats()["upload_sessions"] == 0 and emu.stats()["batches_created"] == 0
    with pytest.raises(gembatch.InputError, match="No Parquet file"):
        gembatch.batch_generate_parquet(
            tmp_path / "nope.parquet",
            tmp_path / "o.parquet",
            prompt="text",
            config=CFG,
            job_dir=tmp_path / "run2",
            progress=False,
        )


def test_a_hive_partitioned_dataset_keeps_its_partition_columns(emu, tmp_path):
    """``ds/p=1/part.parquet``: the partition key is a column of the rows, in the output too; a
    stray non-Parquet file beside the parts is left out."""
    for p in (1, 2):
        (tmp_path / "ds" / f"p={p}").mkdir(parents=True)
        pl.DataFrame({"prompt": [f"q{p}a", f"q{p}b"]}).write_parquet(
            tmp_path / "ds" / f"p={p}" / "part-0.parquet"
        )
    (tmp_path / "ds" / "README.txt").write_text("not data")
    run = gembatch.batch_generate_parquet(
        tmp_path / "ds",
        tmp_path / "out.parquet",
        prompt="prompt",
        config=gembatch.Config(model="gemini-2.5-flash"),
        options=gembatch.Options(poll_interval=0.01, max_poll_interval=0.05),
        progress=False,
    )
    out = pl.read_parquet(run.job_dir and tmp_path / "out.parquet")
    assert "p" in out.columns and sorted(out["p"].to_list()) == [1, 1, 2, 2]
    assert (out["gemini_status"] == "ok").all()


def test_a_dataset_directory_holds_this_runs_rows_alone(emu, tmp_path):
    """Writing into the directory of an earlier, longer output replaces it whole: its extra parts
    are removed once the new output is complete (a reader of the directory saw old rows mixed
    in)."""
    old, new = _frame(450), _frame(150).with_columns(pl.lit("new").alias("text"))
    for name, frame in (("old", old), ("new", new)):
        frame.write_parquet(tmp_path / f"{name}.parquet")
        gembatch.batch_generate_parquet(
            tmp_path / f"{name}.parquet",
            tmp_path / "out",
            prompt="text",
            config=CFG,
            key="id",
            job_dir=tmp_path / f"run-{name}",
            options=OPTS,
            progress=False,
        )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "part-00000.parquet",
        "part-00001.parquet",
    ]
    out = pl.read_parquet(tmp_path / "out" / "*.parquet")
    assert out.height == 150 and set(out["text"]) == {"new"}


def test_outputs_that_would_mix_or_mislead_are_refused_before_anything_is_sent(emu, tmp_path):
    """A directory holding files gembatch did not write, and a name of another format (a
    "scored.csv" directory of Parquet parts), are refused before any upload."""
    _frame(50).write_parquet(tmp_path / "in.parquet")
    (tmp_path / "mixed").mkdir()
    (tmp_path / "mixed" / "mine.parquet").write_bytes(b"user data")
    for dest, match in (
        (tmp_path / "mixed", "mine.parquet"),
        (tmp_path / "scored.csv", "another format"),
    ):
        with pytest.raises(gembatch.ConfigError, match=match):
            gembatch.batch_generate_parquet(
                tmp_path / "in.parquet",
                dest,
                prompt="text",
                config=CFG,
                key="id",
                job_dir=tmp_path / "run",
                options=OPTS,
                progress=False,
            )
    assert (tmp_path / "mixed" / "mine.parquet").read_bytes() == b"user data"
    assert not (tmp_path / "scored.csv").exists()
    stats = emu.stats()
    assert stats["batches_created"] == 0 and stats["upload_sessions"] == 0


def test_a_jsonl_source_streams_and_a_dataset_whose_files_disagree_is_named(emu, tmp_path):
    """A JSON lines file is an input like a Parquet one (a raw ArrowInvalid before); a dataset
    file whose column types disagree with the others is named, with the columns, before any
    upload."""
    frame = _frame(120)
    frame.write_ndjson(tmp_path / "in.jsonl")
    run = gembatch.batch_generate_parquet(
        tmp_path / "in.jsonl",
        tmp_path / "out.parquet",
        prompt="text",
        config=CFG,
        key="id",
        job_dir=tmp_path / "run",
        options=OPTS,
        progress=False,
    )
    out = pl.read_parquet(tmp_path / "out.parquet")
    assert run.done() and out["id"].to_list() == frame["id"].to_list()
    assert (out["gemini_status"] == "ok").all()
    (tmp_path / "ds").mkdir()
    frame.head(3).write_parquet(tmp_path / "ds" / "a.parquet")
    frame.tail(2).with_columns(pl.col("x").cast(pl.Utf8)).write_parquet(
        tmp_path / "ds" / "b.parquet"
    )
    before = emu.stats()["upload_sessions"]
    with pytest.raises(gembatch.InputError, match=r"b\.parquet.*x \((large_)?string there"):
        gembatch.batch_generate_parquet(
            tmp_path / "ds",
            tmp_path / "out2.parquet",
            prompt="text",
            config=CFG,
            key="id",
            job_dir=tmp_path / "run2",
            options=OPTS,
            progress=False,
        )
    assert emu.stats()["upload_sessions"] == before


def test_destinations_that_would_destroy_user_files_are_refused_before_anything_is_sent(
    emu, tmp_path
):
    """The input's own directory (rows were lost while read), a directory of the user's own
    ``part-NNNNN.parquet`` files (replaced before), and a ``.parquet`` name that is a directory
    (refused only after payment before) are refused before any upload; ``.PARQUET`` and ``.pq``
    name one file."""
    (tmp_path / "ds").mkdir()
    _frame(40).write_parquet(tmp_path / "ds" / "part-00000.parquet")
    (tmp_path / "mine").mkdir()
    _frame(5).write_parquet(tmp_path / "mine" / "part-00000.parquet")  # the user's, no results
    (tmp_path / "taken.parquet").mkdir()
    common = dict(prompt="text", config=CFG, key="id", options=OPTS, progress=False)
    for source, dest, match in (
        (tmp_path / "ds", tmp_path / "ds", "would overwrite the input"),
        (tmp_path / "ds", tmp_path / "ds" / "out.parquet", "would overwrite the input"),
        (tmp_path / "ds", tmp_path / "mine", "gembatch did not write"),
        (tmp_path / "ds", tmp_path / "taken.parquet", "is a directory"),
    ):
        with pytest.raises(gembatch.ConfigError, match=match):
            gembatch.batch_generate_parquet(
                source, dest, job_dir=tmp_path / f"run-{dest.name}", **common
            )
    assert emu.stats()["upload_sessions"] == 0
    assert pl.read_parquet(tmp_path / "mine" / "part-00000.parquet").equals(_frame(5))
    for name in ("upper.PARQUET", "short.pq"):
        gembatch.batch_generate_parquet(
            tmp_path / "ds", tmp_path / name, job_dir=tmp_path / "run-ok", **common
        )
        assert (tmp_path / name).is_file() and pl.read_parquet(tmp_path / name).height == 40


def test_a_dataset_file_whose_text_would_be_read_as_numbers_is_refused(emu, tmp_path):
    """Text "02139" in one file, integers in the first: the cast works (2139) but changes what the
    rows say, so it is refused naming the file and column, before any upload."""
    (tmp_path / "ds").mkdir()
    pl.DataFrame({"id": ["a", "b"], "zip": [2139, 501], "text": ["x", "y"]}).write_parquet(
        tmp_path / "ds" / "a.parquet"
    )
    pl.DataFrame({"id": ["c"], "zip": ["02139"], "text": ["z"]}).write_parquet(
        tmp_path / "ds" / "b.parquet"
    )
    said = r"b\.parquet.*zip \((large_)?string there, int64"
    with pytest.raises(gembatch.InputError, match=said):
        gembatch.batch_generate_parquet(
            tmp_path / "ds",
            tmp_path / "out.parquet",
            prompt="text",
            config=CFG,
            key="id",
            job_dir=tmp_path / "run",
            options=OPTS,
            progress=False,
        )
    assert emu.stats()["upload_sessions"] == 0


def test_a_path_that_is_not_parquet_nor_json_lines_is_an_input_error(emu, tmp_path):
    (tmp_path / "rows.json").write_text('[{"text": "a"}]')
    with pytest.raises(gembatch.InputError, match="cannot be read as Parquet"):
        gembatch.batch_generate_parquet(
            tmp_path / "rows.json",
            tmp_path / "o.parquet",
            prompt="text",
            config=CFG,
            job_dir=tmp_path / "run",
            options=OPTS,
            progress=False,
        )


def test_dataset_files_that_only_widen_are_read_in_the_widest_type(emu, tmp_path):
    """int32 then int64, float then double, nulls then text: read as the type every file promotes
    to, whatever the file order (the first file's type refused the next, or cut double to
    float)."""
    (tmp_path / "ds").mkdir()
    first = pl.DataFrame(
        {
            "id": ["a"],
            "n": pl.Series([1], dtype=pl.Int32),
            "v": pl.Series([1.5], dtype=pl.Float32),
            "note": pl.Series([None], dtype=pl.Null),
            "text": ["x"],
        }
    )
    second = pl.DataFrame({"id": ["b"], "n": [2**40], "v": [0.1], "note": ["hello"], "text": ["y"]})
    first.write_parquet(tmp_path / "ds" / "a.parquet")
    second.write_parquet(tmp_path / "ds" / "b.parquet")
    gembatch.batch_generate_parquet(
        tmp_path / "ds",
        tmp_path / "out.parquet",
        prompt="text",
        config=CFG,
        key="id",
        job_dir=tmp_path / "run",
        options=OPTS,
        progress=False,
    )
    out = pl.read_parquet(tmp_path / "out.parquet")
    assert out["n"].to_list() == [1, 2**40] and out["v"].to_list() == [1.5, 0.1]
    assert out["note"].to_list() == [None, "hello"]


@pytest.mark.parametrize(
    ("source", "dest", "refused"),
    [
        ("ds", "ds/", True),
        ("ds/*.parquet", "ds/out.parquet", True),
        ("*.parquet", "out.parquet", True),
        ("*.parquet", "/elsewhere/out.parquet", False),
        ("memory://m/in.parquet", "memory://x/../m/in.parquet", True),
        ("data/in.parquet", "data/out.parquet", False),
        ("data", "data2/", False),
        ("lit[1].parquet", "out.parquet", False),  # an existing file: its name is literal
    ],
)
def test_an_output_never_overwrites_its_input(tmp_path, monkeypatch, source, dest, refused):
    from gembatch._storage import check_apart

    monkeypatch.chdir(tmp_path)
    for folder in ("ds", "data"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "in.parquet").write_bytes(b"x")
    (tmp_path / "lit[1].parquet").write_bytes(b"x")
    (tmp_path / "top.parquet").write_bytes(b"x")
    if refused:
        with pytest.raises(gembatch.ConfigError, match="would overwrite the input"):
            check_apart(source, dest)
    else:
        check_apart(source, dest)
