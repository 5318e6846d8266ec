"""Structured output against a service that misbehaves like the reports say: every answer checked
against the schema, degenerate answers caught across rows, the pilot choosing the schema form
that works, and retry_failed(schema=True) sending exactly the rows that failed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

import polars as pl
import pytest
from pydantic import BaseModel, Field

import gembatch
from gembatch import Config, Options
from gembatch.emulator import Behaviour, Emulator
from gembatch.emulator.schema_faults import DEGENERATE_PATTERNS

FAST = Options(poll_interval=0.01, max_poll_interval=0.05)


class Review(BaseModel):
    sentiment: str = Field(json_schema_extra={"enum": ["positive", "negative", "neutral"]})
    summary: str
    product: str
    score: int = Field(ge=1, le=5)


CFG = Config(model="gemini-2.5-flash", response_schema=Review)


def _frame(n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": [f"r{i:04d}" for i in range(n)],
            "review": [
                f"Review {i}: the kettle number {i} works {'well' * (i % 3)}" for i in range(n)
            ],
        }
    )


@pytest.fixture()
def service(request, monkeypatch) -> Iterator[Emulator]:
    """The strict service with the switches ``request.param`` gives."""
    with Emulator(behaviour=Behaviour.strict().with_(**request.param)) as emu:
        for name, value in emu.environ().items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
        yield emu


def _switches(**changes):
    return pytest.mark.parametrize("service", [changes], indirect=True)


@_switches(degenerate_schema_form="json_schema", jsonl_response_schema="accepted")
def test_the_pilot_catches_degenerate_json_schema_output_and_switches_form(service, tmp_path):
    """responseJsonSchema gives degenerate JSON in batch (ruby_llm #894) while responseSchema
    works: the pilot sees it on its sample, the full run goes out with responseSchema, and every
    row of the full run is valid."""
    out = _frame(120).gemini.batch_generate(
        "review",
        config=CFG,
        key="id",
        pilot=20,
        options=FAST,
        progress=False,
        job_dir=tmp_path / "run",
    )
    assert (out["gemini_status"] == "ok").all()
    assert out["gemini_parsed"].struct.field("score").is_between(1, 5).all()
    manifest = json.loads((tmp_path / "run" / "run.json").read_text())
    assert manifest["schema_form"] == "schema"
    assert "responseSchema" in manifest["static"]["generationConfig"]
    pilot = gembatch.BatchRun.open(tmp_path / "run" / "pilot").result()
    assert (pilot["gemini_error_status"] == "SCHEMA_MISMATCH").sum() > 0.2 * pilot.height
    again = _frame(120).gemini.batch_generate(  # the same call resumes: the chosen form holds
        "review",
        config=CFG,
        key="id",
        pilot=20,
        options=FAST,
        progress=False,
        job_dir=tmp_path / "run",
    )
    assert again.equals(out)


@_switches(degenerate_schema_form="json_schema")
def test_when_no_form_works_in_batch_the_pilot_stops_with_a_report(service, tmp_path):
    """The strict service refuses responseSchema in a JSONL line and degenerates
    responseJsonSchema: nothing works in batch; the full run is not sent."""
    with pytest.raises(gembatch.PilotFailedError) as caught:
        _frame(60).gemini.batch_generate(
            "review",
            config=CFG,
            key="id",
            check_schema=True,
            options=FAST,
            progress=False,
            job_dir=tmp_path / "run",
        )
    text = str(caught.value)
    assert "responseJsonSchema:" in text and "responseSchema:" in text
    assert "mode='interactive'" in text
    assert service.stats()["lines_processed"] <= 20  # only the pilot's sample was answered
    assert not (tmp_path / "run" / "run.json").exists()


@pytest.mark.parametrize("pattern", ["shifted", "null_template", "prose"])
def test_degenerate_answers_are_never_ok_and_retry_failed_schema_resends_exactly_them(
    pattern, tmp_path, monkeypatch
):
    behaviour = Behaviour.strict().with_(
        degenerate_schema_form="json_schema", degenerate_pattern=pattern
    )
    with Emulator(behaviour=behaviour) as emu:
        for name, value in emu.environ().items():
            monkeypatch.setenv(name, value)
        run = _frame(60).gemini.batch_generate(
            "review",
            config=CFG,
            key="id",
            check_schema=False,
            options=FAST,
            progress=False,
            job_dir=tmp_path / "run",
            wait=False,
        )
        out = run.result()
        failed = out.filter(pl.col("gemini_error_status") == "SCHEMA_MISMATCH")
        assert failed.height == out.height  # every answer degenerate: none passes as ok
        assert out.filter(pl.col("gemini_status") == "ok").height == 0
        assert failed["gemini_text"].null_count() == 0  # the text is kept
        assert "paid for 60 rows whose answers failed the schema" in run.cost().summary().lower()
        before = emu.stats()["lines_processed"]
        assert run.retry_failed() == 0  # not retryable by default
        assert run.retry_failed(schema=True) == 60
        assert emu.stats()["lines_processed"] == before + 60


class Book(BaseModel):  # free text only: shifted or prose values still decode
    title: str
    author: str
    genre: str
    blurb: str


@pytest.mark.parametrize("schema", [Review, Book])
def test_every_degenerate_answer_is_caught_by_the_schema_or_across_rows(
    schema, tmp_path, monkeypatch
):
    """A mixed degenerate batch (shifted values, prose, all-null templates): answers that break
    the schema name the JSON path; answers that meet it but carry nothing (free-text fields) are
    found across the rows. None passes as ok."""
    behaviour = Behaviour.strict().with_(
        degenerate_schema_form="json_schema", degenerate_pattern="mixed"
    )
    with Emulator(behaviour=behaviour) as emu:
        for name, value in emu.environ().items():
            monkeypatch.setenv(name, value)
        out = _frame(40).gemini.batch_generate(
            "review",
            config=CFG.replace(response_schema=schema),
            key="id",
            check_schema=False,
            options=FAST,
            progress=False,
            job_dir=tmp_path / "run",
        )
    shifted = [
        DEGENERATE_PATTERNS[hashlib.sha256(k.encode()).digest()[0] % 3] == "shifted"
        for k in out["id"]
    ]
    failed = (out["gemini_error_status"] == "SCHEMA_MISMATCH").fill_null(False)
    messages = out.filter(failed)["gemini_error_message"]
    assert any("$." in m for m in messages)  # validation problems name the JSON path
    if schema is Review:
        assert failed.all()  # a value moved into a field of another type breaks the schema
    else:
        # prose and null templates are caught; a shifted answer of free text only reads like
        # any other answer of this fake model (each field a phrase of the prompt): it passes
        assert any(m.startswith("degenerate answer") for m in messages)
        assert (~failed).to_list() == shifted


def test_a_well_behaved_service_answers_every_row_valid_without_a_pilot(emu, tmp_path):
    out = _frame(50).gemini.batch_generate(
        "review", config=CFG, key="id", options=FAST, progress=False, job_dir=tmp_path / "run"
    )
    assert (out["gemini_status"] == "ok").all()
    manifest = json.loads((tmp_path / "run" / "run.json").read_text())
    assert manifest["schema_form"] is None  # under 10,000 rows: no schema pilot by default
    assert emu.stats()["batches_created"] == 1


class Label(BaseModel):  # shifted values land in fields of other types: decoding fails
    sentiment: str
    score: int
    tags: list[str]


@_switches(degenerate_schema_form="json_schema", degenerate_pattern="shifted")
def test_wrong_typed_fields_are_reported_by_path_and_group_across_rows(service, tmp_path):
    """A shifted answer (values moved to fields of other types) names every failing JSON path,
    not polars' dump of one value, and the same mistake in many rows gives one message, so the
    pilot's 'most common errors' counts them together."""
    cfg = Config(model="gemini-2.5-flash", response_schema=Label)
    frame = pl.DataFrame({"id": range(40), "p": [f"review {i} was fine" for i in range(40)]})
    out = frame.head(6).gemini.batch_generate(
        "p", config=cfg, key="id", options=FAST, progress=False, job_dir=tmp_path / "run"
    )
    assert (out["gemini_error_status"] == "SCHEMA_MISMATCH").all()
    messages = out["gemini_error_message"].to_list()
    for message in messages:
        assert "$.sentiment: an integer is not of type string" in message
        assert "$.score: an array is not of type integer" in message
        assert "$.tags: a string is not of type array" in message
        assert "Array(" not in message and "deserializing" not in message
    assert len(set(messages)) == 1
    with pytest.raises(gembatch.PilotFailedError) as caught:
        frame.gemini.batch_generate(
            "p",
            config=cfg,
            key="id",
            options=FAST,
            progress=False,
            check_schema=True,
            job_dir=tmp_path / "pilot",
        )
    assert "most common errors: 20 x 'the answer does not match the schema: $.sentiment" in str(
        caught.value
    )


def test_an_integer_beyond_int64_the_schema_allows_is_kept(emu, tmp_path):
    """An integer schema bounded beyond int64 (minimum 1e20) parses to the value's JSON text:
    an Int64 column would hold null for the paid answer."""
    cfg = Config(model="gemini-2.5-flash", response_schema={"type": "integer", "minimum": 10**20})
    out = pl.DataFrame({"id": [0, 1], "p": ["a big number", "another"]}).gemini.batch_generate(
        "p", config=cfg, key="id", options=FAST, progress=False, job_dir=tmp_path / "run"
    )
    assert out["gemini_status"].to_list() == ["ok", "ok"]
    assert out["gemini_parsed"].dtype == pl.Utf8
    assert out["gemini_parsed"].to_list() == out["gemini_text"].to_list()
    assert int(out["gemini_parsed"][0]) >= 10**20
