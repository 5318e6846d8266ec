"""Interactive mode: the same requests answered by generateContent / embedContent calls now, with
the same columns, cache, resume and cost report, within the per-minute limits (counted by the
emulator), and "auto" choosing it for small work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import polars as pl
import pytest
from pydantic import BaseModel

import gembatch
from gembatch import Config, Options, RetryPolicy
from gembatch._run.live import LiveSender
from gembatch.emulator import Emulator, HttpFault, Limits

CFG = Config(model="gemini-2.5-flash")
FAST = Options(poll_interval=0.01, max_poll_interval=0.05)


class Label(BaseModel):
    sentiment: str
    score: int


def _frame(n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {"id": [f"r{i:04d}" for i in range(n)], "prompt": [f"Review {i}: fine" for i in range(n)]}
    )


def _point_at(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    for name, value in emu.environ().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    return emu


@pytest.fixture()
def limited(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """An emulator with per-minute limits and 20 ms of model latency."""
    limits = Limits(
        requests_per_minute={"*": 10_000}, tokens_per_minute={"*": 10_000_000}, latency_s=0.02
    )
    with Emulator(limits=limits) as emu:
        yield _point_at(emu, monkeypatch)


class FastClock:
    """Time running ``speed`` times faster, shared by the emulator and the client's limiter: the
    emulator's per-minute windows pass in a second."""

    def __init__(self, speed: float = 60.0) -> None:
        self.speed, self.start = speed, time.monotonic()

    def __call__(self) -> float:
        return self.start + (time.monotonic() - self.start) * self.speed

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds / self.speed)


def test_interactive_answers_are_the_batch_answers(limited, tmp_path):
    """200 rows with structured output: the same gemini_text and gemini_parsed (and every other
    column but the job and the origin) as the batch path, without any job or file."""
    df = _frame(200)
    cfg = CFG.replace(response_schema=Label, system_instruction="Label reviews.")
    common = dict(config=cfg, key="id", progress=False, cache=False, options=FAST)
    live = df.gemini.batch_generate("prompt", job_dir=tmp_path / "i", mode="interactive", **common)
    stats = limited.stats()
    assert stats["batches_created"] == 0 and stats["files_created"] == 0
    assert stats["calls"]["models.generate_content"] == 200
    batch = df.gemini.batch_generate("prompt", job_dir=tmp_path / "b", **common)
    assert live["gemini_origin"].unique().to_list() == ["interactive"]
    assert live["gemini_batch_job"].null_count() == 200
    assert (live["gemini_status"] == "ok").all()
    assert live["gemini_parsed"].struct.field("score").null_count() == 0
    rest = ["gemini_batch_job", "gemini_origin"]
    assert live.drop(rest).equals(batch.drop(rest))
    embed = dict(output_dimensionality=8, progress=False, cache=False, options=FAST)
    e_live = gembatch.batch_embed(
        df, "prompt", job_dir=tmp_path / "ei", mode="interactive", **embed
    )
    e_batch = gembatch.batch_embed(df, "prompt", job_dir=tmp_path / "eb", **embed)
    assert e_live.drop(rest).equals(e_batch.drop(rest))
    assert limited.stats()["calls"]["models.embed_content"] == 2  # 100 texts a call


def _paced(limits: Limits, options: Options, rows: int, tmp_path, monkeypatch):
    """``rows`` rows sent interactively with ``options`` against an emulator with ``limits``, both
    on one clock 15x faster than real time; (output, emulator stats, clock seconds taken)."""
    clock = FastClock(speed=15.0)
    with Emulator(limits=limits, clock=clock) as emu:
        _point_at(emu, monkeypatch)
        run = _frame(rows).gemini.batch_generate(
            "prompt",
            config=CFG,
            mode="interactive",
            options=options,
            job_dir=tmp_path / "r",
            progress=False,
            cache=False,
            wait=False,
        )
        sender = LiveSender(run._run, clock=clock, sleep=clock.sleep)
        # the fast clock magnifies a loaded machine's thread stalls 15 times (a call leaves some
        # time after its turn): 4 s of margin (0.27 s of real time) where the real service gets 1 s
        sender.limiter.window = 60.0 + 4.0
        run._run._live = sender
        started = clock()
        out = run.result()
        return out, emu.stats(), clock() - started


def test_the_limiter_keeps_under_the_per_minute_limits(tmp_path, monkeypatch):
    """The client's limits (Options) below the emulator's: the emulator counts every call and
    never refuses one; the limits really bind (the run spans several minutes of its clock)."""
    out, stats, elapsed = _paced(  # 6 tokens a request: 60 requests, 360 tokens
        Limits(requests_per_minute={"*": 25}, tokens_per_minute={"*": 1_000}),
        FAST.replace(requests_per_minute=25, tokens_per_minute=1_000, concurrency=8),
        60,
        tmp_path,
        monkeypatch,
    )
    assert (out["gemini_status"] == "ok").all()
    assert stats["quota_429s"].get("requests_per_minute", 0) == 0
    assert stats["quota_429s"].get("tokens_per_minute", 0) == 0
    assert max(stats["peak_requests_per_minute"].values()) <= 25
    assert elapsed >= 2 * 60  # 60 requests at 25 a minute: the limit held them back


def test_tokens_per_minute_bind_too(tmp_path, monkeypatch):
    out, stats, _ = _paced(
        Limits(requests_per_minute={"*": 10_000}, tokens_per_minute={"*": 150}),
        FAST.replace(tokens_per_minute=150, concurrency=8),
        60,
        tmp_path,
        monkeypatch,
    )
    assert (out["gemini_status"] == "ok").all()
    assert stats["quota_429s"].get("tokens_per_minute", 0) == 0
    assert max(stats["peak_tokens_per_minute"].values()) <= 150


def test_faults_are_retried_and_row_errors_reported(limited, tmp_path):
    limited.faults.add(
        HttpFault(endpoint="models.generate_content", status=503, nth=3, times=2, retry_after=0.01)
    )
    limited.faults.add(
        HttpFault(endpoint="models.generate_content", status=429, nth=9, times=1, retry_after=0.01)
    )
    df = _frame(20).with_columns(
        pl.when(pl.col("id") == "r0007")
        .then(pl.lit("[[error:400]] bad"))
        .otherwise(pl.col("prompt"))
        .alias("prompt")
    )
    out = df.gemini.batch_generate(
        "prompt",
        config=CFG,
        key="id",
        mode="interactive",
        options=FAST,
        retry=RetryPolicy(attempts=4, initial_delay=0.01, max_delay=0.02, jitter=0),
        job_dir=tmp_path / "r",
        progress=False,
        cache=False,
    )
    bad = out.filter(pl.col("gemini_status") != "ok")
    assert bad["id"].to_list() == ["r0007"]
    assert bad["gemini_error_status"].to_list() == ["INVALID_ARGUMENT"]
    assert bad["gemini_error_code"].to_list() == [400]


def test_exhausted_retries_leave_retryable_errors_that_retry_failed_sends_again(limited, tmp_path):
    limited.faults.add(HttpFault(endpoint="models.generate_content", status=503, nth=1, times=4))
    run = _frame(6).gemini.batch_generate(
        "prompt",
        config=CFG,
        key="id",
        mode="interactive",
        options=FAST.replace(concurrency=1),
        retry=RetryPolicy(attempts=2, initial_delay=0.01, max_delay=0.02, jitter=0),
        job_dir=tmp_path / "r",
        progress=False,
        cache=False,
        wait=False,
    )
    first = run.result()
    assert first["gemini_error_status"].drop_nulls().to_list() == ["UNAVAILABLE"] * 2
    before = limited.stats()["calls"]["models.generate_content"]
    assert run.retry_failed() == 2
    second = run.result()
    assert (second["gemini_status"] == "ok").all()
    assert second["gemini_origin"].unique().to_list() == ["interactive"]
    assert limited.stats()["calls"]["models.generate_content"] == before + 2
    assert limited.stats()["batches_created"] == 0


def test_calls_that_time_out_are_retryable_errors_that_retry_failed_sends_again(
    tmp_path, monkeypatch
):
    slow = RetryPolicy(attempts=2, initial_delay=0.01, max_delay=0.02, jitter=0, timeout=0.3)
    with Emulator(limits=Limits(latency_s=1.0)) as emu:
        _point_at(emu, monkeypatch)
        run = _frame(2).gemini.batch_generate(
            "prompt", config=CFG, key="id", mode="interactive", options=FAST, retry=slow,
            job_dir=tmp_path / "r", progress=False, cache=False, wait=False,
        )  # fmt: skip
        first = run.result()
    assert first["gemini_error_status"].to_list() == ["DEADLINE_EXCEEDED"] * 2
    assert first["gemini_error_code"].to_list() == [504, 504]
    assert first["gemini_error_message"].str.starts_with("DEADLINE_EXCEEDED: Could not").all()
    with Emulator() as healthy:
        _point_at(healthy, monkeypatch)
        assert gembatch.BatchRun.open(tmp_path / "r").retry_failed() == 2
        second = gembatch.BatchRun.open(tmp_path / "r").result()
        assert healthy.stats()["calls"]["models.generate_content"] == 2
    assert (second["gemini_status"] == "ok").all()


KILLED = textwrap.dedent(
    """
    import sys, polars as pl, gembatch
    df = pl.DataFrame({"id": [f"r{i:04d}" for i in range(200)],
                       "prompt": [f"Review {i}: fine" for i in range(200)]})
    df.gemini.batch_generate("prompt", config=gembatch.Config(model="gemini-2.5-flash"), key="id",
                             mode="interactive", job_dir=sys.argv[1], progress=False, cache=False,
                             options=gembatch.Options(concurrency=2))
    """
)


def _killed_after(job_dir, answered: int) -> int:
    """Run KILLED into ``job_dir`` and SIGKILL it once ``answered`` answers are journaled; the
    answers it kept."""
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED, str(job_dir)],
        env={**os.environ},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    answers = job_dir / "shards" / "000000" / "answers.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if answers.exists() and answers.read_bytes().count(b"\n") >= answered:
            break
        assert child.poll() is None, child.stderr.read() if child.stderr else ""
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()
    return answers.read_bytes().count(b"\n")


def test_a_run_killed_half_way_resends_only_the_unanswered_rows(tmp_path, monkeypatch):
    limits = Limits(latency_s=0.03)
    with Emulator(limits=limits) as emu:
        _point_at(emu, monkeypatch)
        job_dir = tmp_path / "r"
        kept = _killed_after(job_dir, 60)
        sent = emu.stats()["calls"]["models.generate_content"]
        assert 60 <= kept < 200
        out = _frame(200).gemini.batch_generate(
            "prompt",
            config=CFG,
            key="id",
            mode="interactive",
            job_dir=job_dir,
            progress=False,
            cache=False,
            options=FAST,
        )
        total = emu.stats()["calls"]["models.generate_content"]
    assert (out["gemini_status"] == "ok").all() and out.height == 200
    quoted = out["gemini_text"].str.extract(r'^Answer to "(.*?)":', 1)
    assert (quoted == out["prompt"]).all()
    assert total - sent == 200 - kept  # only the unanswered rows went again
    assert sent - kept <= 2  # at most the calls in flight at the kill were lost (concurrency 2)


def test_an_interrupted_interactive_run_called_in_batch_mode_sends_the_rest_by_batch(
    tmp_path, monkeypatch
):
    with Emulator(limits=Limits(latency_s=0.03)) as emu:
        _point_at(emu, monkeypatch)
        job_dir = tmp_path / "r"
        kept = _killed_after(job_dir, 40)
        live = emu.stats()["calls"]["models.generate_content"]
        out = _frame(200).gemini.batch_generate(
            "prompt", config=CFG, key="id", mode="batch", job_dir=job_dir, progress=False,
            cache=False, options=FAST,
        )  # fmt: skip
        stats = emu.stats()
    assert stats["calls"]["models.generate_content"] == live  # not one more interactive call
    assert stats["batches_created"] == 1 and stats["lines_processed"] == 200 - kept
    assert (out["gemini_status"] == "ok").all() and out.height == 200
    quoted = out["gemini_text"].str.extract(r'^Answer to "(.*?)":', 1)
    assert (quoted == out["prompt"]).all()
    origins = dict(out["gemini_origin"].value_counts().rows())
    assert origins == {"interactive": kept, "batch": 200 - kept}


def test_a_prototype_makes_its_rows_free_in_the_batch_run_that_follows(limited, tmp_path):
    df = _frame(80)
    proto = df.head(20).gemini.batch_generate(
        "prompt", config=CFG, key="id", mode="interactive", options=FAST, progress=False
    )
    assert (proto["gemini_origin"] == "interactive").all()
    out = df.gemini.batch_generate("prompt", config=CFG, key="id", options=FAST, progress=False)
    assert out["gemini_origin"].value_counts(sort=True).rows() == [("batch", 60), ("cache", 20)]
    assert limited.stats()["lines_processed"] == 60  # 0 of the prototype's rows sent again
    assert out.head(20)["gemini_text"].equals(proto["gemini_text"])
    again = df.head(20).gemini.batch_generate(  # and the other way: batch answers serve it
        "prompt",
        config=CFG,
        key="id",
        mode="interactive",
        options=FAST,
        progress=False,
        job_dir=tmp_path / "again",
    )
    assert (again["gemini_origin"] == "cache").all()
    assert limited.stats()["calls"]["models.generate_content"] == 20


def test_auto_answers_small_work_interactively_and_big_work_by_batch(limited, tmp_path):
    small = _frame(10).gemini.batch_generate(
        "prompt", config=CFG, mode="auto", options=FAST, progress=False, cache=False
    )
    assert (small["gemini_origin"] == "interactive").all()
    big = _frame(30).gemini.batch_generate(
        "prompt",
        config=CFG,
        mode="auto",
        options=FAST.replace(auto_max_rows=20),
        progress=False,
        cache=False,
    )
    assert (big["gemini_origin"] == "batch").all()
    costly = _frame(30).gemini.batch_generate(  # few rows, but the batch rate saves too much
        "prompt",
        config=CFG.replace(model="gemini-2.5-pro"),
        mode="auto",
        options=FAST.replace(auto_max_savings=0.0001),
        progress=False,
        cache=False,
    )
    assert (costly["gemini_origin"] == "batch").all()


def test_cost_prices_interactive_rows_at_the_interactive_rate(limited, tmp_path):
    df = _frame(30)
    gembatch.batch_generate(
        df,
        "prompt",
        config=CFG,
        mode="interactive",
        job_dir=tmp_path / "i",
        progress=False,
        cache=False,
        options=FAST,
    )
    gembatch.batch_generate(
        df, "prompt", config=CFG, job_dir=tmp_path / "b", progress=False, cache=False, options=FAST
    )
    live = gembatch.BatchRun.open(tmp_path / "i").cost()
    batch = gembatch.BatchRun.open(tmp_path / "b").cost()
    assert live.rows["interactive"] == 30 and live.rows["batch"] == 0
    assert live.spent_usd == pytest.approx(batch.interactive_usd)
    assert live.spent_usd == pytest.approx(2 * batch.spent_usd)
    assert "30 rows answered interactively" in live.summary()


def test_an_interactive_pilot_answers_and_its_rows_are_reused(limited, tmp_path):
    out = _frame(100).gemini.batch_generate(
        "prompt",
        config=CFG,
        key="id",
        pilot=10,
        pilot_mode="interactive",
        options=FAST,
        progress=False,
        job_dir=tmp_path / "r",
    )
    assert limited.stats()["calls"]["models.generate_content"] == 10
    assert limited.stats()["lines_processed"] == 90
    assert out["gemini_origin"].value_counts(sort=True).rows() == [("batch", 90), ("cache", 10)]


def test_mode_is_checked_before_anything_is_sent(limited, tmp_path):
    with pytest.raises(gembatch.ConfigError, match="mode must be one of"):
        _frame(3).gemini.batch_generate("prompt", config=CFG, mode="live", progress=False)
    with pytest.raises(gembatch.ConfigError, match="concurrency"):
        Options(concurrency=0)
    assert limited.stats()["calls"].get("models.generate_content", 0) == 0


def test_the_answers_file_survives_a_cut_last_line(limited, tmp_path):
    """A kill while an answer was being written leaves half a line: it is dropped and its row
    asked again; nothing else is sent."""
    df = _frame(10)
    run = df.gemini.batch_generate(
        "prompt",
        config=CFG,
        key="id",
        mode="interactive",
        options=FAST,
        progress=False,
        job_dir=tmp_path / "r",
        cache=False,
        wait=False,
    )
    shard = tmp_path / "r" / "shards" / "000000"
    lines = (shard / "requests.jsonl").read_text().splitlines()
    good = [
        json.dumps({"key": json.loads(x)["key"], "error": {"code": 400, "message": "m"}})
        for x in lines[:4]
    ]
    (shard / "answers.jsonl").write_text("\n".join(good) + "\n" + good[0][:10])
    out = run.result()
    assert limited.stats()["calls"]["models.generate_content"] == 6
    assert (out["gemini_status"] == "error").sum() == 4


def test_embed_cost_counts_each_row_once_under_its_origin(limited, tmp_path):
    """Embedding answers carry no token counts: the local estimate of each row's request prices it,
    at the interactive rate for rows answered interactively, as generate's usage does."""
    df = _frame(30).vstack(_frame(10).with_columns(pl.col("id") + "-again"))  # 10 repeated prompts
    common = dict(key="id", progress=False, cache=False, options=FAST)
    costs = {}
    for kind in ("embed", "generate"):
        for mode in ("interactive", "batch"):
            job_dir = tmp_path / f"{kind}-{mode}"
            if kind == "embed":
                gembatch.batch_embed(df, "prompt", mode=mode, job_dir=job_dir, **common)
            else:
                gembatch.batch_generate(
                    df, "prompt", config=CFG, mode=mode, job_dir=job_dir, **common
                )
            costs[kind, mode] = gembatch.BatchRun.open(job_dir).cost()
    for kind in ("embed", "generate"):
        live, batch = costs[kind, "interactive"], costs[kind, "batch"]
        assert live.rows == {"batch": 0, "interactive": 30, "dedup": 10, "cache": 0, "skipped": 0}
        assert batch.rows == {"batch": 30, "interactive": 0, "dedup": 10, "cache": 0, "skipped": 0}
        assert live.live is not None and live.billed.tokens.prompt == 0
        assert live.live.tokens.prompt == batch.billed.tokens.prompt > 0
        assert live.spent_usd == pytest.approx(batch.interactive_usd) and live.spent_usd > 0
        assert live.spent_usd == pytest.approx(2 * batch.spent_usd)
        assert live.reused.tokens.prompt == batch.reused.tokens.prompt > 0  # dedup rows saved
        assert "30 rows answered interactively" in live.summary()
    embed = costs["embed", "batch"].billed.tokens.prompt
    assert embed == sum((len(p) + 3) // 4 for p in df["prompt"][:30])  # ceil(chars / 4) a row


KILLED_EMBED = KILLED.replace(
    'batch_generate("prompt", config=gembatch.Config(model="gemini-2.5-flash"),',
    'batch_embed("prompt",',
).replace("range(200)", "range(300)")


def test_embed_cost_of_an_interactive_run_finished_by_batch(tmp_path, monkeypatch):
    """Rows answered interactively before the kill at the interactive rate, the rest at the batch
    rate: each row counted once."""
    assert "batch_embed" in KILLED_EMBED and "range(300)" in KILLED_EMBED
    with Emulator(limits=Limits(latency_s=0.05)) as emu:
        _point_at(emu, monkeypatch)
        job_dir = tmp_path / "r"
        child = subprocess.Popen(
            [sys.executable, "-c", KILLED_EMBED, str(job_dir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        answers = job_dir / "shards" / "000000" / "answers.jsonl"
        deadline = time.monotonic() + 60
        while not (answers.exists() and answers.read_bytes().count(b"\n") >= 1):
            assert child.poll() is None, child.stderr.read() if child.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
        child.wait()
        df = pl.DataFrame(
            {
                "id": [f"r{i:04d}" for i in range(300)],
                "prompt": [f"Review {i}: fine" for i in range(300)],
            }
        )
        out = gembatch.batch_embed(
            df, "prompt", key="id", mode="batch", job_dir=job_dir, progress=False, cache=False,
            options=FAST,
        )  # fmt: skip
    live = int((out["gemini_origin"] == "interactive").sum())
    assert 0 < live < 300 and (out["gemini_status"] == "ok").all()
    cost = gembatch.BatchRun.open(job_dir).cost()
    assert cost.rows == {
        "batch": 300 - live, "interactive": live, "dedup": 0, "cache": 0, "skipped": 0
    }  # fmt: skip
    tokens = (df["prompt"].str.len_chars() + 3) // 4
    in_live = (out["gemini_origin"] == "interactive").to_list()
    assert cost.live is not None
    assert cost.live.tokens.prompt == tokens.filter(pl.Series(in_live)).sum()
    assert cost.billed.tokens.prompt == tokens.filter(~pl.Series(in_live)).sum()
    price = cost.live.interactive_usd + cost.billed.batch_usd
    assert cost.spent_usd == pytest.approx(price) and cost.billed.batch_usd > 0


def test_an_update_of_an_interrupted_interactive_run_does_not_finish_the_old_rows(
    tmp_path, monkeypatch
):
    with Emulator(limits=Limits(latency_s=0.03)) as emu:
        _point_at(emu, monkeypatch)
        job_dir = tmp_path / "r"
        _killed_after(job_dir, 30)
        live = emu.stats()["calls"]["models.generate_content"]
        new = _frame(200).with_columns(pl.col("prompt") + " (new)")
        out = new.gemini.batch_generate(
            "prompt", config=CFG, key="id", job_dir=job_dir, progress=False, cache=False,
            options=FAST,
        )  # fmt: skip
        stats = emu.stats()
    assert stats["calls"]["models.generate_content"] == live  # none of the old rows finished
    assert stats["lines_processed"] == 200 and (out["gemini_status"] == "ok").all()
    assert (out["gemini_origin"] == "batch").all()
