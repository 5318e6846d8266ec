"""Pay only for new work: dedup within a run, the result cache across runs, plan, max_cost, pilot,
cost."""

from __future__ import annotations

import json

import polars as pl
import pytest

import gembatch
from gembatch import Config, Options
from gembatch._money.pricing import PriceTable
from gembatch.cache import ResultCache
from gembatch.emulator import Emulator
from gembatch.emulator.faults import HttpFault

CFG = Config(model="gemini-2.5-flash", max_output_tokens=64)
FAST = Options(poll_interval=0.01, max_poll_interval=0.05)
FILES = Options(poll_interval=0.01, max_poll_interval=0.05, inline_max_bytes=0, shard_max_rows=250)


def _frame(n: int = 1000) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": list(range(n)),
            "prompt": [f"Describe item number {i} in one line." for i in range(n)],
        }
    )


def _sent(emu: Emulator) -> int:
    return int(emu.stats()["lines_processed"])


def test_identical_requests_are_sent_once_and_fanned_out(emu, tmp_path):
    df = pl.DataFrame(
        {"id": list(range(50)), "prompt": ["same question"] * 40 + [f"q{i}" for i in range(10)]}
    )
    out = df.gemini.batch_generate(
        "prompt",
        config=CFG,
        key="id",
        job_dir=tmp_path / "r",
        options=FAST,
        progress=False,
        cache=False,
    )
    assert _sent(emu) == 11  # one for the 40 identical rows, ten others
    assert out["gemini_status"].to_list() == ["ok"] * 50
    assert out["gemini_text"][:40].n_unique() == 1 and out["gemini_text"][40:].n_unique() == 10
    assert out["gemini_origin"].to_list() == ["batch"] + ["dedup"] * 39 + ["batch"] * 10
    assert (
        out["gemini_prompt_tokens"][:40].n_unique() == 1
    )  # the shared answer's usage, on every row
    cost = gembatch.BatchRun.open(tmp_path / "r").cost()
    assert cost.rows == {"batch": 11, "interactive": 0, "dedup": 39, "cache": 0, "skipped": 0}


def test_dedup_fans_out_errors_too_and_can_be_turned_off(emu, tmp_path):
    df = pl.DataFrame({"prompt": ["[[error:400]] bad"] * 3 + ["fine"] * 3})
    out = df.gemini.batch_generate(
        "prompt", config=CFG, job_dir=tmp_path / "a", options=FAST, progress=False, cache=False
    )
    assert out["gemini_status"].to_list() == ["error"] * 3 + ["ok"] * 3
    assert out["gemini_error_status"][:3].to_list() == ["INVALID_ARGUMENT"] * 3
    assert _sent(emu) == 2
    no_dedup = Options(poll_interval=0.01, max_poll_interval=0.05, dedup=False)
    df.gemini.batch_generate(
        "prompt", config=CFG, job_dir=tmp_path / "b", options=no_dedup, progress=False, cache=False
    )
    assert _sent(emu) == 2 + 6


def test_a_rerun_with_one_percent_changed_sends_exactly_those_rows(emu, tmp_path):
    df = _frame(1000)
    first = df.gemini.batch_generate(
        "prompt", config=CFG, key="id", job_dir=tmp_path / "one", options=FILES, progress=False
    )
    assert _sent(emu) == 1000
    changed = set(range(3, 1000, 100))  # 10 rows = 1 %
    df2 = df.with_columns(
        pl.when(pl.col("id").is_in(list(changed)))
        .then(pl.col("prompt") + " Be brief.")
        .otherwise(pl.col("prompt"))
        .alias("prompt")
    )
    second = df2.gemini.batch_generate(
        "prompt", config=CFG, key="id", job_dir=tmp_path / "two", options=FILES, progress=False
    )
    assert _sent(emu) == 1000 + 10
    origin = second["gemini_origin"]
    assert set(second.filter(origin == "batch")["id"].to_list()) == changed
    same = second.filter(origin == "cache")
    assert same.height == 990
    reference = first.filter(~pl.col("id").is_in(list(changed))).drop(
        "gemini_batch_job", "gemini_origin"
    )
    assert same.drop("gemini_batch_job", "gemini_origin").equals(
        reference
    )  # cached answers are identical
    assert same["gemini_batch_job"].null_count() == 990
    assert json.loads((tmp_path / "two" / "run.json").read_text())["cached"] == 990
    # a changed config asks something else: everything is sent again
    df.gemini.batch_generate(
        "prompt",
        config=Config(model="gemini-2.5-flash", max_output_tokens=65),
        key="id",
        job_dir=tmp_path / "three",
        options=FILES,
        progress=False,
    )
    assert _sent(emu) == 1000 + 10 + 1000


def test_errors_are_not_cached_and_the_cache_can_be_a_path_or_off(emu, tmp_path):
    df = pl.DataFrame({"prompt": ["[[error:500]] flaky", "fine"]})
    where = tmp_path / "my-cache"
    df.gemini.batch_generate(
        "prompt", config=CFG, job_dir=tmp_path / "a", options=FAST, progress=False, cache=where
    )
    assert ResultCache(where).stats().entries == 1
    out = df.gemini.batch_generate(
        "prompt", config=CFG, job_dir=tmp_path / "b", options=FAST, progress=False, cache=str(where)
    )
    assert out["gemini_origin"].to_list() == ["batch", "cache"]
    assert _sent(emu) == 3
    df.gemini.batch_generate(
        "prompt", config=CFG, job_dir=tmp_path / "c", options=FAST, progress=False, cache=False
    )
    assert _sent(emu) == 5


def test_answers_of_one_service_are_never_served_for_another(tmp_path, monkeypatch):
    df = pl.DataFrame({"prompt": ["hello"]})
    with Emulator() as emu:
        for name, value in emu.environ().items():
            monkeypatch.setenv(name, value)
        df.gemini.batch_generate(
            "prompt", config=CFG, job_dir=tmp_path / "a", options=FAST, progress=False
        )
    plan = df.gemini.batch_generate("prompt", config=CFG, job_dir=tmp_path / "b", dry_run=True)
    assert plan.cached == 1  # another emulator (another port) is the same service
    monkeypatch.delenv("GOOGLE_GEMINI_BASE_URL")
    plan = df.gemini.batch_generate("prompt", config=CFG, job_dir=tmp_path / "c", dry_run=True)
    assert plan.cached == 0 and plan.to_send == 1  # Google is another service


def test_plan_shows_rows_dedup_cache_shards_and_cost_without_spending(emu, tmp_path):
    df = pl.DataFrame(
        {"id": list(range(600)), "prompt": [f"p{i % 200}" for i in range(600)]}
    )  # 50 + 50 + 0 repeats within shards
    plan = df.gemini.batch_generate(
        "prompt", config=CFG, key="id", job_dir=tmp_path / "r", dry_run=True, options=FILES
    )
    assert isinstance(plan, gembatch.Plan)
    assert (plan.rows, plan.requests, plan.cached) == (600, 600, 0)
    assert plan.to_send == 600 - plan.deduplicated and plan.deduplicated == 100
    assert len(plan.shards) == 3 and all(
        s.mode == "file" and s.share_of_limit < 0.001 for s in plan.shards
    )
    assert plan.estimate is not None and plan.estimate.requests == 500
    assert plan.estimate.output_tokens_bound == 500 * 64
    assert emu.stats()["batches_created"] == 0 and emu.stats()["upload_sessions"] == 0
    assert "to send" in str(plan) and "<table>" in plan._repr_html_()
    # the same job_dir, without dry_run, sends the prepared run
    out = df.gemini.batch_generate(
        "prompt", config=CFG, key="id", job_dir=tmp_path / "r", options=FILES, progress=False
    )
    assert _sent(emu) == 500 and out["gemini_status"].eq("ok").all()
    # plan through the namespace and the module function, with no API key at all
    assert gembatch.plan(df, "prompt", config=CFG, key="id").to_send == 0  # all cached now


def test_max_cost_refuses_before_anything_is_sent(emu, tmp_path):
    df = _frame(200)
    with pytest.raises(gembatch.CostLimitError, match=r"max_cost=\$0\.0000") as info:
        df.gemini.batch_generate(
            "prompt", config=CFG, job_dir=tmp_path / "r", max_cost=0.0, progress=False
        )
    assert "Hint" in str(info.value)
    assert emu.stats()["batches_created"] == 0 and emu.stats()["upload_sessions"] == 0
    out = df.gemini.batch_generate(
        "prompt", config=CFG, job_dir=tmp_path / "r", max_cost=1.0, options=FAST, progress=False
    )
    assert out["gemini_status"].eq("ok").all()


def test_the_estimate_matches_the_bill_on_the_emulator(emu, tmp_path):
    df = _frame(300)
    estimate = gembatch.estimate(df, "prompt", config=CFG)
    out = df.gemini.batch_generate(
        "prompt", config=CFG, job_dir=tmp_path / "r", options=FAST, progress=False, cache=False
    )
    assert (
        estimate.input_tokens == out["gemini_prompt_tokens"].sum()
    )  # the local rule is the emulator's
    exact = gembatch.estimate(df, "prompt", config=CFG, exact=True)
    assert exact.input_exact and exact.input_tokens == estimate.input_tokens
    spent = (
        out["gemini_output_tokens"].fill_null(0).sum()
        + out["gemini_thoughts_tokens"].fill_null(0).sum()
    )
    assert 0 < spent <= estimate.output_tokens_bound  # maxOutputTokens covers thinking too


def test_cost_equals_usage_times_the_price_table(emu, tmp_path):
    df = _frame(120)
    cfg = Config(model="gemini-2.5-pro", max_output_tokens=40)
    run = df.gemini.batch_generate(
        "prompt", config=cfg, job_dir=tmp_path / "r", options=FAST, progress=False, wait=False
    )
    run.wait()
    out = run.result()
    cost = run.cost()
    price = PriceTable.default().for_model("gemini-2.5-pro")
    prompt = out["gemini_prompt_tokens"].sum()
    output = (
        out["gemini_output_tokens"].fill_null(0).sum()
        + out["gemini_thoughts_tokens"].fill_null(0).sum()
    )
    interactive = (prompt * price.input + output * price.output) / 1e6
    assert cost.interactive_usd == pytest.approx(interactive)
    assert cost.batch_usd == pytest.approx(interactive * PriceTable.default().batch_multiplier)
    assert cost.billed.tokens.prompt == prompt
    assert "batch rate" in cost.summary() and "<table>" in cost._repr_html_()


def test_pilot_stops_a_bad_config_before_the_full_batch(emu, tmp_path):
    df = pl.DataFrame({"prompt": [f"[[error:400]] row {i}" for i in range(300)]})
    with pytest.raises(gembatch.PilotFailedError, match=r"3 of 3 rows") as info:
        df.gemini.batch_generate(
            "prompt", config=CFG, job_dir=tmp_path / "r", pilot=0.01, options=FAST, progress=False
        )
    assert info.value.result.height == 3
    assert _sent(emu) == 3 and emu.stats()["batches_created"] == 1
    assert not (tmp_path / "r" / "run.json").exists()  # the full run was never prepared


def test_pilot_answers_are_reused_by_the_full_run(emu, tmp_path):
    df = _frame(400)
    out = df.gemini.batch_generate(
        "prompt",
        config=CFG,
        job_dir=tmp_path / "r",
        pilot=20,
        options=FAST,
        progress=False,
        cache=False,
    )
    assert out["gemini_status"].eq("ok").all()
    assert _sent(emu) == 400  # the 20 pilot rows were not paid twice
    assert out["gemini_origin"].value_counts().sort("gemini_origin").rows() == [
        ("batch", 380),
        ("cache", 20),
    ]


def test_pilot_and_bad_input_fail_before_anything_is_sent(emu, tmp_path):
    df = pl.DataFrame({"prompt": ["ok"] * 99 + [None]})
    with pytest.raises(gembatch.InvalidPromptError):
        df.gemini.batch_generate(
            "prompt", config=CFG, job_dir=tmp_path / "r", pilot=0.5, progress=False
        )
    assert emu.stats()["batches_created"] == 0


def test_a_cache_that_cannot_be_written_only_warns(emu, tmp_path):
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("x")
    with pytest.warns(gembatch.ResultWarning, match="result cache"):
        out = pl.DataFrame({"prompt": ["a"]}).gemini.batch_generate(
            "prompt",
            config=CFG,
            job_dir=tmp_path / "r",
            options=FAST,
            progress=False,
            cache=blocked / "c",
        )
    assert out["gemini_status"].to_list() == ["ok"]


def test_service_faults_do_not_poison_the_cache(emu, tmp_path):
    emu.faults.add(HttpFault(endpoint="batches.get", status=503, times=2))
    df = pl.DataFrame({"prompt": ["a", "b"]})
    out = df.gemini.batch_generate(
        "prompt", config=CFG, job_dir=tmp_path / "r", options=FAST, progress=False
    )
    assert out["gemini_status"].to_list() == ["ok", "ok"]
    again = df.gemini.batch_generate(
        "prompt", config=CFG, job_dir=tmp_path / "s", options=FAST, progress=False
    )
    assert again["gemini_text"].to_list() == out["gemini_text"].to_list()
    assert again["gemini_origin"].to_list() == ["cache", "cache"]


def test_retry_failed_refans_the_new_answer_to_duplicates(emu, tmp_path):
    from gembatch.emulator.faults import LineFaults

    df = pl.DataFrame({"id": list(range(6)), "prompt": ["same"] * 3 + ["other"] * 3})
    emu.faults.add(LineFaults(error_rate=1.0, error_code=503))
    run = df.gemini.batch_generate(
        "prompt",
        config=CFG,
        key="id",
        job_dir=tmp_path / "r",
        options=FAST,
        progress=False,
        wait=False,
        cache=False,
    )
    first = run.result()
    assert (
        first["gemini_status"].to_list() == ["error"] * 6
        and first["gemini_error_status"].to_list() == ["UNAVAILABLE"] * 6
    )
    emu.faults.clear()
    assert run.retry_failed() == 2  # one line per distinct request, not six
    out = run.result()
    assert out["gemini_status"].to_list() == ["ok"] * 6
    assert out["gemini_text"][:3].n_unique() == 1 and out["gemini_text"][3:].n_unique() == 1
    assert out["gemini_origin"].to_list() == ["batch", "dedup", "dedup"] * 2
    assert _sent(emu) == 4


def test_embeddings_from_the_cache_count_what_they_saved(emu, tmp_path):
    """Embedding answers carry no token counts: a row the cache answered counts its own local
    estimate as saved (it counted 0 tokens and $0), as it was billed when it was sent."""
    df = pl.DataFrame({"id": range(20), "text": [f"text number {i} " * 5 for i in range(20)]})
    where = tmp_path / "cache"
    costs = []
    for name in ("first", "again"):
        df.gemini.batch_embed(
            "text", key="id", job_dir=tmp_path / name, options=FAST, progress=False, cache=where
        )
        costs.append(gembatch.BatchRun.open(tmp_path / name).cost())
    first, again = costs
    assert again.rows["cache"] == 20 and again.billed.tokens.prompt == 0
    assert again.reused.tokens.prompt == first.billed.tokens.prompt > 0
    assert again.reused.batch_usd == pytest.approx(first.billed.batch_usd)


def test_plan_takes_an_embed_config(tmp_path):
    """``gembatch.plan`` of an embedding run (it took a generation Config only), nothing sent."""
    frame = pl.DataFrame({"text": ["a", "b", "a"]})
    plan = gembatch.plan(frame, "text", config=gembatch.EmbedConfig(output_dimensionality=8))
    assert (plan.rows, plan.to_send) == (3, 2)
