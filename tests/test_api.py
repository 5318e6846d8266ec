"""The core call end to end: the real google-genai SDK over HTTP against the emulator."""

from __future__ import annotations

import json

import polars as pl
import pytest
from pydantic import BaseModel

import gembatch
from gembatch import Config, Options
from gembatch.emulator import LineFaults

FAST = Options(poll_interval=0.01, max_poll_interval=0.05)
CFG = Config(model="gemini-2.5-flash")


def _frame(n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": [f"k{i:06d}" for i in range(n)],
            "prompt": [f"Question number {i}: what is {i} squared?" for i in range(n)],
            "n": list(range(n)),
        }
    )


def _answers_match_prompts(out: pl.DataFrame) -> None:
    # the fake model quotes the first 80 characters of the prompt in its answer
    quoted = out["gemini_text"].str.extract(r'^Answer to "(.*?)":', 1)
    assert (quoted == out["prompt"].str.slice(0, 80)).all()


ECHOED = pytest.mark.parametrize("emulator", [{"inline_metadata": "echoed"}], indirect=True)


@pytest.mark.parametrize(
    "emulator", [{"inline_metadata": "echoed"}, {"inline_metadata": "dropped"}], indirect=True
)
def test_small_frame_inline_every_row_in_order(emu, tmp_path):
    """Inline answers come back shuffled; with their keys they are joined, without them (the
    strict service) the rows go again in a file, and the rest of the run is sent in files."""
    df = _frame(10)
    out = df.gemini.batch_generate(
        "prompt",
        config=CFG,
        job_dir=tmp_path / "run",
        options=FAST.replace(inline_max_rows=5_000),
        progress=False,
    )
    assert out.columns[:3] == ["id", "prompt", "n"]
    assert out["n"].to_list() == list(range(10))
    assert (out["gemini_status"] == "ok").all()
    _answers_match_prompts(out)
    assert out.schema["gemini_prompt_tokens"] == pl.Int64
    assert (
        out["gemini_total_tokens"]
        == out["gemini_prompt_tokens"] + out["gemini_output_tokens"] + out["gemini_thoughts_tokens"]
    ).all()
    assert out["gemini_batch_job"].str.starts_with("batches/").all()
    stats = emu.stats()
    if emu.behaviour.inline_metadata == "echoed":
        assert stats["batches_created"] == 1 and stats["files_created"] == 0  # inline: no upload
    else:
        assert stats["batches_created"] == 2 and stats["files_created"] == 1
        assert json.loads((tmp_path / "run" / "run.json").read_text())["inline_unkeyed"]
    cost = gembatch.BatchRun.open(tmp_path / "run", progress=False).cost()
    once = int(out["gemini_prompt_tokens"].sum())  # the answers joined: each row's once
    if emu.behaviour.inline_metadata == "echoed":
        assert cost.billed.tokens.prompt == once and "unkeyed" not in cost.rows
    else:  # the inline job's answers were paid for too, then their rows went again
        assert cost.rows["unkeyed"] == 10 and cost.billed.tokens.prompt == 2 * once
        assert "10 inline answers came back without their keys" in cost.summary()


@ECHOED
def test_inline_and_file_paths_give_identical_answers(emu, tmp_path):
    df = _frame(30)
    cfg = Config(
        model="gemini-2.5-flash",
        temperature=0.3,
        system_instruction="Be terse.",
        max_output_tokens=500,
        stop_sequences=["ZZZ"],
    )
    inline = gembatch.batch_generate(
        df,
        "prompt",
        config=cfg,
        job_dir=tmp_path / "a",
        progress=False,
        cache=False,
        options=FAST.replace(inline_max_rows=5_000),
    )
    files = gembatch.batch_generate(
        df,
        "prompt",
        config=cfg,
        job_dir=tmp_path / "b",
        progress=False,
        cache=False,
        options=Options(
            poll_interval=0.01, max_poll_interval=0.05, inline_max_bytes=0, shard_max_rows=7
        ),
    )
    assert inline.drop("gemini_batch_job").equals(files.drop("gemini_batch_job"))
    assert inline["gemini_batch_job"].n_unique() == 1 and emu.stats()["batches_created"] == 6
    assert files["gemini_batch_job"].n_unique() == 5  # 30 rows / 7 per shard
    assert inline["gemini_text"].str.starts_with("[system: Be terse.]").all()


@ECHOED
def test_inline_only_up_to_inline_max_rows_then_one_uploaded_file(emu, tmp_path):
    df = _frame(30)
    small = Options(poll_interval=0.01, max_poll_interval=0.05, inline_max_rows=30)
    gembatch.batch_generate(
        df, "prompt", config=CFG, job_dir=tmp_path / "a", options=small, progress=False, cache=False
    )
    assert emu.stats()["files_created"] == 0  # 30 rows: inline
    capped = Options(poll_interval=0.01, max_poll_interval=0.05, inline_max_rows=29)
    out = gembatch.batch_generate(
        df,
        "prompt",
        config=CFG,
        job_dir=tmp_path / "b",
        options=capped,
        progress=False,
        cache=False,
    )
    stats = emu.stats()
    assert stats["files_created"] == 1 and stats["batches_created"] == 2  # one more row: one file
    assert (out["gemini_status"] == "ok").all()
    with pytest.raises(gembatch.ConfigError, match="inline_max_rows"):
        Options(inline_max_rows=-1)


def test_large_frame_several_shards_keyed_by_position(emu, tmp_path):
    n = 200_000
    df = pl.select(pl.format("Item {} of the catalogue", pl.int_range(n)).alias("prompt"))
    out = df.gemini.batch_generate(
        "prompt",
        config=CFG,
        job_dir=tmp_path / "big",
        progress=False,
        options=Options(
            poll_interval=0.05, max_poll_interval=0.2, shard_max_rows=60_000, first_shard_rows=None
        ),
    )
    assert out.height == n
    assert (out["gemini_status"] == "ok").all()
    _answers_match_prompts(out)
    assert out["gemini_batch_job"].n_unique() == 4
    stats = emu.stats()
    assert stats["batches_created"] == 4 and stats["files_created"] == 4


class Label(BaseModel):
    sentiment: str
    score: int
    tags: list[str]


def test_structured_output_is_parsed_into_a_struct(emu, tmp_path):
    df = _frame(12)
    out = df.gemini.batch_generate(
        "prompt",
        config=Config(model="gemini-2.5-flash", response_schema=Label),
        key="id",
        job_dir=tmp_path / "s",
        options=FAST,
        progress=False,
    )
    parsed = out["gemini_parsed"]
    assert parsed.dtype == pl.Struct(
        {"sentiment": pl.Utf8, "score": pl.Int64, "tags": pl.List(pl.Utf8)}
    )
    assert parsed.struct.field("score").is_not_null().all()
    for text, row in zip(out["gemini_text"], parsed.to_list()):
        assert json.loads(text) == row


def test_per_row_errors_missing_rows_and_skipped_rows(emu, tmp_path):
    prompts = ["fine", "[[error:500]] boom", None, "also fine", "[[error:400]] bad", ""]
    df = pl.DataFrame({"prompt": prompts, "id": [1, 2, 3, 4, 5, 6]})
    out = df.gemini.batch_generate(
        "prompt",
        config=CFG,
        key="id",
        job_dir=tmp_path / "e",
        skip_null_prompts=True,
        options=FAST,
        progress=False,
    )
    assert out["gemini_status"].to_list() == ["ok", "error", "skipped", "ok", "error", "skipped"]
    jobs = out["gemini_batch_job"].to_list()  # a skipped row was never sent: no job answered it
    assert jobs[2] is None and jobs[5] is None and all(jobs[i] for i in (0, 1, 3, 4))
    assert out["gemini_error_code"].to_list()[:2] == [None, 13]  # gRPC INTERNAL
    assert out["gemini_error_status"].to_list()[:2] == [None, "INTERNAL"]
    assert out["gemini_error_message"][1]
    emu.faults.add(LineFaults(missing_rate=1.0))
    with pytest.warns(gembatch.ResultWarning, match="4 rows missing"):
        out2 = df.gemini.batch_generate(
            "prompt",
            config=CFG,
            key="id",
            job_dir=tmp_path / "m",
            skip_null_prompts=True,
            options=FAST,
            progress=False,
            cache=False,
        )
    assert set(out2["gemini_status"].to_list()) == {"missing", "skipped"}
    assert out2.height == 6


def test_bad_input_fails_before_anything_is_sent(emu, tmp_path):
    df = pl.DataFrame({"id": [1, 2, 2], "prompt": ["a", None, "c"]})
    with pytest.raises(gembatch.InvalidPromptError, match="1"):
        df.gemini.batch_generate("prompt", config=CFG, job_dir=tmp_path / "x", progress=False)
    with pytest.raises(gembatch.DuplicateKeyError, match="2"):
        df.gemini.batch_generate(
            "prompt",
            config=CFG,
            key="id",
            job_dir=tmp_path / "y",
            skip_null_prompts=True,
            progress=False,
        )
    with pytest.raises(gembatch.ColumnNotFoundError, match="promt"):
        df.gemini.batch_generate("promt", config=CFG, job_dir=tmp_path / "z", progress=False)
    stats = emu.stats()
    assert stats["batches_created"] == 0 and stats["upload_sessions"] == 0


def test_missing_api_key_is_a_clear_error(emu, tmp_path, monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY")
    with pytest.raises(gembatch.AuthenticationError, match="GEMINI_API_KEY"):
        _frame(2).gemini.batch_generate(
            "prompt", config=CFG, job_dir=tmp_path / "k", progress=False
        )
    assert not (tmp_path / "k").exists()


def test_same_job_dir_resumes_and_changed_input_is_an_update(emu, tmp_path):
    """Same input: resumed (nothing sent). Changed input on the same job_dir: an update that sends
    only the new or changed requests (even with the result cache off), the rest answered by the
    run's own earlier answers. Another config: refused."""
    df = _frame(20)
    kw = dict(
        config=CFG, key="id", job_dir=tmp_path / "r", options=FAST, progress=False, cache=False
    )
    first = df.gemini.batch_generate("prompt", **kw)
    again = df.gemini.batch_generate("prompt", **kw)
    assert first.equals(again)
    assert emu.stats()["batches_created"] == 1 and emu.stats()["lines_processed"] == 20
    changed = df.with_columns(
        pl.when(pl.col("n") == 3).then(pl.lit("other")).otherwise(pl.col("prompt")).alias("prompt")
    )
    grown = pl.concat([changed, _frame(22).tail(2)])
    out = grown.gemini.batch_generate("prompt", **kw)
    assert emu.stats()["lines_processed"] == 20 + 3  # the changed row and the two new ones
    assert out["id"].to_list() == grown["id"].to_list() and (out["gemini_status"] == "ok").all()
    _answers_match_prompts(out)
    unchanged = out.filter(~pl.col("n").is_in([3, 20, 21]))
    assert (
        unchanged["gemini_text"].to_list()
        == first.filter(pl.col("n") != 3)["gemini_text"].to_list()
    )
    assert (unchanged["gemini_origin"] == "cache").all()
    extra = grown.with_columns(pl.lit(1).alias("unrelated"))
    assert extra.gemini.batch_generate("prompt", **kw)["unrelated"].to_list() == [1] * 22
    assert emu.stats()["lines_processed"] == 23  # a new column alone sends nothing
    assert len(list((tmp_path / "r" / "history").iterdir())) == 2
    with pytest.raises(gembatch.RunMismatchError, match="another config"):
        df.gemini.batch_generate(
            "prompt",
            config=Config(model="gemini-2.5-flash", temperature=1.0),
            key="id",
            job_dir=tmp_path / "r",
            progress=False,
        )


def test_wait_false_returns_a_handle(emu, tmp_path):
    run = _frame(5).gemini.batch_generate(
        "prompt", config=CFG, job_dir=tmp_path / "h", wait=False, options=FAST, progress=False
    )
    assert isinstance(run, gembatch.BatchRun)
    assert "BatchRun(" in repr(run) and emu.api_key not in repr(run)
    out = run.result()
    assert out.height == 5 and run.status().state == "done"
    assert "<table>" in run._repr_html_()
    reopened = gembatch.BatchRun.open(tmp_path / "h")
    assert reopened.result().equals(out)
    assert emu.stats()["batches_created"] == 1


def test_lazyframe_and_expression_prompt(emu, tmp_path):
    lf = _frame(4).lazy()
    out = lf.gemini.batch_generate(
        pl.format("Say {} twice", pl.col("n")),
        config=CFG,
        job_dir=tmp_path / "l",
        options=FAST,
        progress=False,
    )
    assert out["gemini_text"].str.contains('Answer to "Say 2 twice"').to_list() == [
        False,
        False,
        True,
        False,
    ]


def test_embeddings_have_the_requested_dimension(emu, tmp_path):
    df = pl.DataFrame({"text": ["alpha", "beta", "gamma"]})
    out = df.gemini.batch_embed(
        "text",
        output_dimensionality=16,
        task_type="CLUSTERING",
        job_dir=tmp_path / "emb",
        options=FAST,
        progress=False,
    )
    assert out.schema["gemini_embedding"] == pl.Array(pl.Float32, 16)
    assert (out["gemini_status"] == "ok").all()
    vecs = out["gemini_embedding"].to_list()
    assert vecs[0] != vecs[1]
    files = df.gemini.batch_embed(
        "text",
        output_dimensionality=16,
        task_type="CLUSTERING",
        job_dir=tmp_path / "emb2",
        progress=False,
        options=Options(poll_interval=0.01, max_poll_interval=0.05, inline_max_bytes=0),
    )
    assert files["gemini_embedding"].to_list() == vecs


def test_by_default_every_run_goes_through_a_file_and_embeddings_never_inline(emu, tmp_path):
    """Inline answers may come back out of order without their keys (the real service): files are
    the default; embeddings (whose inline batches carry no keys at all) always use files."""
    _frame(5).gemini.batch_generate(
        "prompt", config=CFG, job_dir=tmp_path / "g", options=FAST, progress=False
    )
    assert emu.stats()["files_created"] == 1 and emu.stats()["batches_created"] == 1
    gembatch.batch_embed(
        _frame(5),
        "prompt",
        job_dir=tmp_path / "e",
        progress=False,
        options=FAST.replace(inline_max_rows=5_000),
        output_dimensionality=4,
    )
    assert emu.stats()["files_created"] == 2 and emu.stats()["batches_created"] == 2


def test_without_job_dir_running_the_same_cell_again_resumes(emu, tmp_path, monkeypatch):
    """The default run directory is derived from the content: an interrupted cell run again (or a
    finished one) pays nothing twice; changed content gets its own run directory."""
    monkeypatch.chdir(tmp_path)

    class CtrlC:  # the user interrupts the kernel while the run waits
        def update(self, snapshot):
            raise KeyboardInterrupt

        def close(self):
            pass

    df = _frame(8)
    with pytest.raises(KeyboardInterrupt, match="run the same call again") as info:
        df.gemini.batch_generate("prompt", config=CFG, options=FAST, progress=CtrlC())
    assert ".gembatch/runs/generate-" in str(info.value)
    out = df.gemini.batch_generate("prompt", config=CFG, options=FAST, progress=False)
    again = df.gemini.batch_generate("prompt", config=CFG, options=FAST, progress=False)
    assert out.equals(again) and (out["gemini_status"] == "ok").all()
    assert emu.stats()["batches_created"] == 1
    runs = sorted(p.name for p in (tmp_path / ".gembatch" / "runs").iterdir())
    df.head(4).gemini.batch_generate("prompt", config=CFG, options=FAST, progress=False)
    assert len(list((tmp_path / ".gembatch" / "runs").iterdir())) == len(runs) + 1


def test_a_model_that_cannot_do_the_work_is_refused_before_anything_is_sent(emu, tmp_path):
    """An embedding model asked to generate (and a generation model asked to embed) is refused
    from the methods the model lists, before any upload (the create failed with a bare 404 and
    left the uploaded file behind)."""
    frame = pl.DataFrame({"text": ["a", "b"]})
    with pytest.raises(gembatch.ConfigError, match="batch_embed"):
        frame.gemini.batch_generate(
            "text",
            config=gembatch.Config(model="gemini-embedding-001"),
            job_dir=tmp_path / "g",
            progress=False,
        )
    with pytest.raises(gembatch.ConfigError, match="embedding model"):
        frame.gemini.batch_embed(
            "text", model="gemini-2.5-flash", job_dir=tmp_path / "e", progress=False
        )
    stats = emu.stats()
    assert stats["batches_created"] == 0 and stats["upload_sessions"] == 0


def test_an_empty_per_row_system_instruction_is_refused_before_anything_is_sent(emu, tmp_path):
    """A row's system instruction may be null (the shared one applies) but not empty: the service
    refuses that request after it was paid to send."""
    frame = pl.DataFrame(
        {"id": ["a", "b", "c"], "q": ["x", "y", "z"], "sys": ["be terse", None, "  "]}
    )
    with pytest.raises(gembatch.InvalidPromptError, match=r"empty system instruction: row 2.*'c'"):
        frame.gemini.batch_generate(
            "q",
            config=CFG,
            key="id",
            system_instruction="sys",
            job_dir=tmp_path / "r",
            progress=False,
        )
    stats = emu.stats()
    assert stats["batches_created"] == 0 and stats["upload_sessions"] == 0
    out = frame.head(2).gemini.batch_generate(
        "q",
        config=CFG,
        key="id",
        system_instruction="sys",
        job_dir=tmp_path / "ok",
        options=FAST,
        progress=False,
    )
    assert out["gemini_status"].to_list() == ["ok", "ok"]
