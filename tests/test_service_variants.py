"""The core flows against every reported variant of the real service (docs/service-behaviour.md):
the strict emulator (what the evidence says the service does) and the lenient one. Every row gets
its own answer, nothing is lost, no job is created twice."""

from __future__ import annotations

import functools
import json
import socket
import time

import polars as pl
import pytest
from pydantic import BaseModel

import gembatch
from gembatch import Config, Options
from gembatch.emulator import Behaviour, Delays, Emulator

CFG = Config(model="gemini-2.5-flash")
FILES = Options(poll_interval=0.01, max_poll_interval=0.05, shard_max_rows=6)
INLINE = Options(poll_interval=0.01, max_poll_interval=0.05, inline_max_rows=5_000)
VARIANTS = {
    "strict": Behaviour.strict(),
    "lenient": Behaviour.lenient(),
    "first-bad-line-only": Behaviour.strict().with_(jsonl_errors_reported="first"),
    "slow-output": Behaviour.strict().with_(output_lag_polls=6),
    "camel-accepted": Behaviour.strict().with_(jsonl_field_names="both", missing_file_status=404),
}


class Label(BaseModel):
    sentiment: str
    score: int


@pytest.fixture(params=sorted(VARIANTS))
def service(request, monkeypatch):
    with Emulator(behaviour=VARIANTS[request.param]) as emu:
        for name, value in emu.environ().items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
        yield emu


def _frame(n: int = 14, bad: dict[int, str] | None = None) -> pl.DataFrame:
    prompts = [
        f"Prompt number {i} about topic {i * 7 % 5}" + (bad or {}).get(i, "") for i in range(n)
    ]
    return pl.DataFrame({"id": [f"row-{i:03d}" for i in range(n)], "prompt": prompts})


def _files_run(tmp_path, frame: pl.DataFrame | None = None, **kw):
    """``frame`` (default: 14 rows) through files, keyed by id, without the result cache."""
    args = {"config": CFG, "job_dir": tmp_path / "run", **kw}
    return (frame if frame is not None else _frame()).gemini.batch_generate(
        "prompt", key="id", options=FILES, progress=False, cache=False, **args
    )


def _own(out: pl.DataFrame) -> bool:
    """Each answer quotes its own prompt (the emulator's model does): a wrong join would show."""
    ok = out.filter(pl.col("gemini_status") == "ok")
    return all(
        t.startswith(f'Answer to "{p[:80]}"') for p, t in zip(ok["prompt"], ok["gemini_text"])
    )


def test_file_runs_answer_every_row_and_report_undeletable_result_files(service, tmp_path):
    out = _files_run(tmp_path)
    assert (out["gemini_status"] == "ok").all() and _own(out)
    assert service.stats()["batches_created"] == 3
    status = gembatch.BatchRun.open(tmp_path / "run").status()
    records = [json.loads(p.read_text()) for p in (tmp_path / "run").glob("shards/*/state.json")]
    if service.behaviour.long_result_ids:  # the service refuses to delete its result files
        assert all(r["cleanup_error"] and not r["cleaned"] for r in records)
        assert all(f["name"].startswith("files/batch-") for f in service.files())
        assert len(service.files()) == 3  # the uploaded request files were deleted
    else:
        assert all(r["cleaned"] for r in records) and service.files() == []
    assert status.state == "done"


def test_inline_answers_never_join_by_position(service, tmp_path):
    """Inline answers come back shuffled and without their keys on the strict service: every row
    must still get the answer to its own request (compared with generateContent of that request)."""
    df = _frame(9)
    out = df.gemini.batch_generate(
        "prompt",
        config=CFG,
        key="id",
        options=INLINE,
        progress=False,
        job_dir=tmp_path / "run",
        cache=False,
    )
    assert (out["gemini_status"] == "ok").all()
    client = gembatch._service.backend.Backend().client  # the SDK, pointed at the same service
    for prompt, text in zip(out["prompt"], out["gemini_text"]):
        alone = client.models.generate_content(model="gemini-2.5-flash", contents=prompt)
        assert alone.text == text
    created = service.stats()["batches_created"]
    assert created == (2 if service.behaviour.inline_metadata == "dropped" else 1)


def test_a_one_request_inline_job_needs_no_key(service, tmp_path):
    """One request, one answer: nothing to mix up, so it is joined with or without its key."""
    out = _frame(1).gemini.batch_generate(
        "prompt", config=CFG, options=INLINE, progress=False, job_dir=tmp_path / "r", cache=False
    )
    assert (out["gemini_status"] == "ok").all() and _own(out)
    assert service.stats()["batches_created"] == 1 and service.stats()["files_created"] == 0


def test_structured_output_and_embeddings(service, tmp_path):
    out = _files_run(tmp_path, config=CFG.replace(response_schema=Label), job_dir=tmp_path / "s")
    assert (out["gemini_status"] == "ok").all()
    assert out["gemini_parsed"].struct.fields == ["sentiment", "score"]
    assert out["gemini_parsed"].struct.field("score").null_count() == 0
    emb = gembatch.batch_embed(
        _frame(),
        "prompt",
        key="id",
        options=FILES,
        progress=False,
        job_dir=tmp_path / "e",
        cache=False,
        output_dimensionality=8,
    )
    assert (emb["gemini_status"] == "ok").all() and emb["gemini_embedding"].dtype == pl.Array(
        pl.Float32, 8
    )


def test_retry_failed_resends_exactly_the_retryable_rows(service, tmp_path):
    """Per-row errors come with gRPC codes (13, 14: retryable; 3: not) on the strict service and
    HTTP codes (500, 503; 400) on the lenient one: the same rows are sent again either way."""
    bad = {1: " [[error:500]]", 4: " [[error:503]]", 7: " [[error:400]]", 9: " [[error:429]]"}
    out = _files_run(tmp_path, _frame(bad=bad))
    errors = out.filter(pl.col("gemini_status") == "error")
    assert sorted(errors["id"]) == ["row-001", "row-004", "row-007", "row-009"]
    assert dict(zip(errors["id"], errors["gemini_error_status"])) == {
        "row-001": "INTERNAL",
        "row-004": "UNAVAILABLE",
        "row-007": "INVALID_ARGUMENT",
        "row-009": "RESOURCE_EXHAUSTED",
    }
    grpc = service.behaviour.line_error_codes == "grpc"
    assert sorted(errors["gemini_error_code"]) == (
        sorted([13, 14, 3, 8]) if grpc else [400, 429, 500, 503]
    )
    before = service.stats()["lines_processed"]
    run = gembatch.BatchRun.open(tmp_path / "run", progress=False, poll_interval=0.01)
    assert run.retry_failed() == 3  # 500, 503, 429: not the 400
    assert service.stats()["lines_processed"] == before + 3


def test_lines_the_create_refuses_fail_alone_and_the_rest_is_answered(service, tmp_path):
    """A shard holding three lines the service refuses: where JSONL is checked at create the
    create fails naming them (all, or only the first), those rows get INVALID_ARGUMENT and the
    shard's other rows go out again without them; where it is answered line by line they fail in
    the results. Either way: 3 errors, every other row answered once, by its own answer."""
    bad = {1: " [[invalid]]", 3: " [[invalid]]", 5: " [[invalid]]"}
    out = _files_run(tmp_path, _frame(bad=bad))
    errors = out.filter(pl.col("gemini_status") == "error")
    assert sorted(errors["id"]) == ["row-001", "row-003", "row-005"]
    assert set(errors["gemini_error_status"]) == {"INVALID_ARGUMENT"}
    assert _own(out) and out.filter(pl.col("gemini_status") == "ok").height == 11
    assert service.stats()["lines_processed"] == (
        11 if service.behaviour.jsonl_validation == "create" else 14
    )
    if service.behaviour.jsonl_validation == "create":
        assert all("line" in m for m in errors["gemini_error_message"])
    run = gembatch.BatchRun.open(tmp_path / "run", progress=False, poll_interval=0.01)
    assert run.retry_failed() == 0  # refused requests are not sent again


def test_a_job_reported_succeeded_before_its_output_still_gives_every_answer(service, tmp_path):
    out = _files_run(tmp_path)
    assert (out["gemini_status"] == "ok").all() and _own(out)
    notes = [
        h[1]
        for p in (tmp_path / "run").glob("shards/*/state.json")
        for h in json.loads(p.read_text())["history"]
    ]
    lagging = service.behaviour.output_lag_polls > 0
    assert any("result file not set yet" in n for n in notes) == lagging


def test_cancel_and_cancel_after_the_end(service, tmp_path):
    service.faults.add(Delays(pending_s=60))
    run = _files_run(tmp_path, wait=False)
    run.cancel()
    out = run.result()
    assert (out["gemini_status"] == "cancelled").all()
    run.cancel()  # every job has ended: nothing to do, no error
    assert service.stats()["batches_created"] == 3


def test_an_expired_result_file_sends_its_rows_again(service, tmp_path):
    """A result file that is gone when it is fetched (403 "may not exist" on the strict service,
    404 on the lenient one): the rows are sent again, once, and every row is answered."""
    run = _files_run(tmp_path, wait=False)
    client = gembatch._service.backend.Backend().client
    first = json.loads((tmp_path / "run/shards/000000/state.json").read_text())["job_name"]
    deadline = time.monotonic() + 30
    while not (job := client.batches.get(name=first)).dest or not job.dest.file_name:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    service.handler.store.delete_file(job.dest.file_name)  # expired before gembatch fetched it
    out = run.result()
    assert (out["gemini_status"] == "ok").all() and _own(out)
    assert service.stats()["batches_created"] == 4  # one more job, for that shard's rows only


def test_an_unknown_model_is_named_before_anything_is_sent(service, tmp_path):
    """The strict service answers 404 for a model it does not list: a ConfigError with the near
    names, before any upload or job. The lenient one knows every name: the run goes through."""
    run = functools.partial(
        _frame(3).gemini.batch_generate,
        "prompt",
        config=CFG.replace(model="gemini-2.5-flahs"),
        options=FILES,
        progress=False,
        job_dir=tmp_path / "run",
        cache=False,
    )
    if not service.behaviour.known_models_only:
        assert (run()["gemini_status"] == "ok").all()
        return
    with pytest.raises(gembatch.ConfigError, match=r"Did you mean 'gemini-2.5-flash'"):
        run()
    stats = service.stats()
    assert stats["upload_sessions"] == 0 and stats["batches_created"] == 0


def test_a_service_that_does_not_answer_is_named_quickly(tmp_path, monkeypatch):
    """No service at the configured URL: the error names the URL within seconds, nothing sent."""
    with socket.socket() as s:  # a port that was free a moment ago: connections are refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("GEMINI_API_KEY", "not-a-real-key")
    started = time.monotonic()
    with pytest.raises(gembatch.GembatchError, match=f"127.0.0.1:{port}") as caught:
        _frame(3).gemini.batch_generate(
            "prompt", config=CFG, progress=False, job_dir=tmp_path / "run", cache=False
        )
    assert time.monotonic() - started < 30
    assert "not-a-real-key" not in str(caught.value)
