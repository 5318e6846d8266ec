"""The run directory checks itself: a file that is not what gembatch wrote never sends or joins the
wrong rows; a deleted run.json is rebuilt or refused, never a second payment; literal paths."""

from __future__ import annotations

import json
import shutil

import polars as pl
import pytest

import gembatch
from gembatch import Config, Options
from gembatch.emulator import Delays, JobOutcome

CFG = Config(model="gemini-2.5-flash")
FILES = Options(poll_interval=0.01, max_poll_interval=0.05, shard_max_rows=5)


def _frame(n: int = 10) -> pl.DataFrame:
    return pl.DataFrame(
        {"id": [f"r{i}" for i in range(n)], "prompt": [f"Prompt {i}" for i in range(n)]}
    )


def _own_answers(out: pl.DataFrame) -> bool:
    """The emulator quotes each prompt in its answer: a row holding another row's answer shows."""
    return all(f'"{p}"' in t for p, t in zip(out["prompt"], out["gemini_text"]))


def _send(frame: pl.DataFrame, job_dir) -> pl.DataFrame:
    """``frame`` keyed by id, through files, without the result cache."""
    return frame.gemini.batch_generate(
        "prompt", config=CFG, key="id", job_dir=job_dir, options=FILES, progress=False, cache=False
    )


def _run(job_dir, **kw):
    return _frame().gemini.batch_generate(
        "prompt", config=CFG, key="id", job_dir=job_dir, options=FILES, progress=False, **kw
    )


def test_swapped_output_files_are_detected_and_joined_again(emu, tmp_path):
    job_dir = tmp_path / "run"
    first = _run(job_dir)
    a, b = job_dir / "shards/000000/output.parquet", job_dir / "shards/000001/output.parquet"
    tmp = tmp_path / "swap"
    shutil.move(a, tmp)
    shutil.move(b, a)
    shutil.move(tmp, b)
    with pytest.warns(gembatch.ResultWarning, match="changed since gembatch wrote it"):
        out = gembatch.BatchRun.open(job_dir, progress=False).result()
    assert out.equals(first) and _own_answers(out)
    assert emu.stats()["batches_created"] == 2  # nothing sent again


def test_a_truncated_request_file_is_refused_before_upload(emu, tmp_path):
    job_dir = tmp_path / "run"
    _frame().gemini.batch_generate(
        "prompt", config=CFG, key="id", job_dir=job_dir, options=FILES, progress=False, dry_run=True
    )
    path = job_dir / "shards/000001/requests.jsonl"
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(
        gembatch.CorruptRunError, match=r"000001/requests.jsonl changed since"
    ) as info:
        _run(job_dir)
    assert info.value.path == "shards/000001/requests.jsonl"
    assert emu.stats()["files_created"] <= 1 and emu.stats()["batches_created"] <= 1  # not shard 1


def test_an_edited_prompt_in_a_prepared_shard_is_never_sent(emu, tmp_path):
    job_dir = tmp_path / "run"
    _frame().gemini.batch_generate(
        "prompt", config=CFG, key="id", job_dir=job_dir, options=FILES, progress=False, dry_run=True
    )
    path = job_dir / "shards/000000/requests.jsonl"
    path.write_text(path.read_text().replace("Prompt 3", "Prompt X"))
    with pytest.raises(gembatch.CorruptRunError, match="requests.jsonl changed"):
        _run(job_dir)
    assert emu.stats()["calls"].get("files.upload_start", 0) <= 1


def test_a_deleted_cached_answers_file_is_restored_from_the_cache(emu, tmp_path):
    _run(tmp_path / "first")  # fills the result cache
    job_dir = tmp_path / "second"
    _frame().gemini.batch_generate(
        "prompt", config=CFG, key="id", job_dir=job_dir, options=FILES, progress=False, dry_run=True
    )
    (job_dir / "shards/000000/cached.jsonl").unlink()
    with pytest.warns(gembatch.ResultWarning, match="restored from the result cache"):
        out = _run(job_dir)
    assert (out["gemini_status"] == "ok").all() and (out["gemini_origin"] == "cache").all()
    assert _own_answers(out) and emu.stats()["batches_created"] == 2  # the first run's only


def test_a_deleted_manifest_is_rebuilt_from_its_copy(emu, tmp_path):
    job_dir = tmp_path / "run"
    first = _run(job_dir)
    (job_dir / "run.json").unlink()
    with pytest.warns(gembatch.ResultWarning, match="rebuilt it from"):
        again = _run(job_dir)
    assert again.equals(first) and emu.stats()["batches_created"] == 2


def test_a_run_without_any_manifest_whose_shards_were_sent_is_refused(emu, tmp_path):
    job_dir = tmp_path / "run"
    _frame().gemini.batch_generate(
        "prompt", config=CFG, key="id", job_dir=job_dir, options=FILES, progress=False, wait=False
    )
    (job_dir / "run.json").unlink()
    (job_dir / "shards/run.json").unlink()
    with pytest.raises(gembatch.RunDirectoryError, match="would be paid for again"):
        _run(job_dir)
    assert emu.stats()["batches_created"] == 2


def test_a_state_file_rolled_back_to_prepared_adopts_its_job(emu, tmp_path):
    job_dir = tmp_path / "run"
    _frame().gemini.batch_generate(
        "prompt", config=CFG, key="id", job_dir=job_dir, options=FILES, progress=False, wait=False
    )
    state = job_dir / "shards/000000/state.json"
    record = json.loads(state.read_text())
    record.update(state="prepared", job_name=None, file_name=None, job_state=None)
    state.write_text(json.dumps(record))
    out = gembatch.BatchRun.open(job_dir, progress=False, poll_interval=0.01).result()
    assert (out["gemini_status"] == "ok").all() and _own_answers(out)
    assert emu.stats()["batches_created"] == 2  # found by its display name, not created again


@pytest.mark.parametrize("name", ["run?", "x[ab]", "run*", "emb[1]", "run (copy)"])
def test_run_directories_with_pattern_characters_are_literal(emu, tmp_path, name):
    """A job_dir of ``run?`` or ``x[ab]`` next to a finished sibling (``run0``, ``xa``) is its own
    run: never the sibling's answers."""
    sibling = {
        "run?": "run0",
        "x[ab]": "xa",
        "run*": "run (copy)",
        "emb[1]": "emb1",
        "run (copy)": "run*",
    }[name]
    other = pl.DataFrame(
        {"id": [f"r{i}" for i in range(10)], "prompt": [f"Other {i}" for i in range(10)]}
    )
    other.gemini.batch_generate(
        "prompt",
        config=CFG,
        key="id",
        job_dir=tmp_path / sibling,
        options=FILES,
        progress=False,
        cache=False,
    )
    out = _run(tmp_path / name, cache=False)
    assert _own_answers(out) and (out["gemini_origin"] == "batch").all()
    again = gembatch.BatchRun.open(tmp_path / name, progress=False).result()
    assert again.equals(out)
    emb = gembatch.batch_embed(
        _frame(),
        "prompt",
        key="id",
        job_dir=tmp_path / f"e-{name}",
        options=FILES,
        progress=False,
        output_dimensionality=4,
        cache=False,
    )
    assert (emb["gemini_status"] == "ok").all()


def test_an_input_file_name_with_brackets_is_read_literally(emu, tmp_path):
    _frame().write_parquet(tmp_path / "reviews[2024].parquet")
    pl.DataFrame({"id": ["x"], "prompt": ["Wrong file"]}).write_parquet(
        tmp_path / "reviews2.parquet"
    )
    out = gembatch.batch_generate_parquet(
        tmp_path / "reviews[2024].parquet",
        tmp_path / "out.parquet",
        prompt="prompt",
        config=CFG,
        key="id",
        options=FILES,
        progress=False,
    )
    assert pl.read_parquet(tmp_path / "out.parquet")["id"].to_list() == [f"r{i}" for i in range(10)]
    assert out.done()
    with pytest.raises(gembatch.InputError, match="glob=True"):
        gembatch.batch_generate_parquet(
            tmp_path / "missing[2024].parquet",
            tmp_path / "o2.parquet",
            prompt="prompt",
            config=CFG,
            options=FILES,
            progress=False,
        )


def test_a_cached_shard_killed_before_it_was_marked_does_not_hang_the_resume(emu, tmp_path):
    """Every row of the shard came from the cache ("nothing to send"); a kill left its state at
    prepared: the resume marks it and finishes at once, sending nothing."""
    cache = tmp_path / "cache"
    _run(tmp_path / "warm", cache=cache)
    job_dir = tmp_path / "run"
    _run(job_dir, cache=cache)
    for state_file in job_dir.glob("shards/*/state.json"):
        state = json.loads(state_file.read_text())
        state["state"], state["history"] = "prepared", state["history"][:1]
        for name in ("results.jsonl", "output.parquet"):
            state["files"].pop(name, None)
            (state_file.parent / name).unlink(missing_ok=True)
        state_file.write_text(json.dumps(state))
    before = emu.stats()["batches_created"]
    out = _run(job_dir, cache=cache)
    assert (out["gemini_origin"] == "cache").all() and _own_answers(out)
    assert emu.stats()["batches_created"] == before


def test_an_update_killed_after_the_old_run_was_retired_reuses_its_answers(
    emu, tmp_path, monkeypatch
):
    """The old run was moved under history/ and the process died before the new run was
    written: the next call reuses the retired answers (7 requests sent, not 45)."""
    from gembatch._run import flow

    job_dir = tmp_path / "run"
    base = _frame(40)
    first = _send(base, job_dir)
    changed = pl.concat(
        [
            base.with_columns(
                pl.when(pl.col("id").is_in(["r1", "r2"]))
                .then(pl.col("prompt") + " (edited)")
                .otherwise(pl.col("prompt"))
                .alias("prompt")
            ),
            pl.DataFrame(
                {"id": [f"n{i}" for i in range(5)], "prompt": [f"New {i}" for i in range(5)]}
            ),
        ]
    )

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies right after retiring the old run

    with monkeypatch.context() as patch:
        patch.setattr(flow, "prepare", killed)
        with pytest.raises(KeyboardInterrupt):
            _send(changed, job_dir)
    assert not (job_dir / "run.json").exists() and list((job_dir / "history").iterdir())
    before = emu.stats()["lines_processed"]
    out = _send(changed, job_dir)
    assert emu.stats()["lines_processed"] - before == 7
    assert (out["gemini_status"] == "ok").all() and _own_answers(out)
    kept = out.filter(~pl.col("id").is_in(["r1", "r2"]) & pl.col("id").str.starts_with("r"))
    assert kept["gemini_text"].equals(
        first.filter(~pl.col("id").is_in(["r1", "r2"]))["gemini_text"]
    )


def test_going_back_to_an_earlier_input_reuses_every_retired_run(emu, tmp_path):
    """A -> B -> A on one job_dir without the cache: the way back pays nothing (the answers of A
    are kept under history/, not only those of the run it replaces)."""
    job_dir = tmp_path / "run"
    a = _frame(30)
    b = a.with_columns(
        pl.when(pl.col("id").is_in(["r1", "r2", "r3"]))
        .then(pl.col("prompt") + " (edited)")
        .otherwise(pl.col("prompt"))
        .alias("prompt")
    )
    first = _send(a, job_dir)
    sent = emu.stats()["lines_processed"]
    _send(b, job_dir)
    assert emu.stats()["lines_processed"] - sent == 3
    back = _send(a, job_dir)
    assert emu.stats()["lines_processed"] - sent == 3  # nothing more
    assert back["gemini_text"].equals(first["gemini_text"]) and _own_answers(back)


@pytest.mark.parametrize("expires", [False, True])
def test_an_update_sends_nothing_of_the_old_run_it_no_longer_needs(emu, tmp_path, expires):
    """The old run had one job in flight and two shards not sent yet (one job at a time; their
    files uploaded): the update waits for the job (paid) but never creates jobs for the old
    shards, nor resends the old rows that job leaves unanswered (expired); only its own rows
    go."""
    job_dir = tmp_path / "run"
    emu.faults.add(Delays(running_s=0.3))
    if expires:
        emu.faults.add(JobOutcome(state="EXPIRED", nth_job=1))
    old = _frame(30).gemini.batch_generate(
        "prompt", config=CFG, key="id", job_dir=job_dir, progress=False, cache=False,
        options=FILES.replace(shard_max_rows=10, max_jobs=1), wait=False,
    )  # fmt: skip
    states = [s.state.value for s in old._journal.shards]
    assert states[0] == "submitted" and set(states[1:]) <= {"prepared", "uploaded"}, states
    new = _frame(30).with_columns(pl.col("prompt") + " (new)")
    out = _send(new, job_dir)
    old_lines = 0 if expires else 10  # an expired job answers nothing
    assert emu.stats()["lines_processed"] == old_lines + 30  # then the new 30, once
    assert (out["gemini_status"] == "ok").all() and _own_answers(out)


@pytest.mark.parametrize("how", [{"dry_run": True}, {"wait": False}])
def test_a_call_that_must_not_wait_leaves_a_running_old_run_untouched(emu, tmp_path, how):
    job_dir = tmp_path / "run"
    emu.faults.add(Delays(running_s=0.3))
    opts = FILES.replace(shard_max_rows=10, max_jobs=1)
    old = _frame(30).gemini.batch_generate(
        "prompt", config=CFG, key="id", job_dir=job_dir, progress=False, cache=False,
        options=opts, wait=False,
    )  # fmt: skip
    before = [s.state for s in old._journal.shards]
    new = _frame(30).with_columns(pl.col("prompt") + " (new)")
    with pytest.raises(gembatch.RunMismatchError, match="still running"):
        new.gemini.batch_generate(
            "prompt", config=CFG, key="id", job_dir=job_dir, progress=False, cache=False,
            options=opts, **how,
        )  # fmt: skip
    assert not (job_dir / "history").exists()
    assert [s.state for s in gembatch.BatchRun.open(job_dir)._journal.shards] == before
    out = gembatch.BatchRun.open(job_dir, progress=False).result()  # the old run, whole
    assert (out["gemini_status"] == "ok").all() and _own_answers(out)


def test_a_handle_of_a_replaced_run_refuses_instead_of_undoing_the_update(emu, tmp_path):
    job_dir = tmp_path / "run"
    old = _frame(10).gemini.batch_generate(
        "prompt", config=CFG, key="id", job_dir=job_dir, options=FILES, progress=False, wait=False
    )
    new = _frame(12).gemini.batch_generate(
        "prompt", config=CFG, key="id", job_dir=job_dir, options=FILES, progress=False
    )
    with pytest.raises(gembatch.RunMismatchError, match="replaced"):
        old.result()
    again = gembatch.BatchRun.open(job_dir, progress=False).result()
    assert again.equals(new) and again.height == 12
