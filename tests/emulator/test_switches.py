"""Every Behaviour switch, both values, seen through the real SDK over HTTP (or httpx2 on the wire
where the SDK hides the field)."""

from __future__ import annotations

import io
import json
import re

import httpx2
import pytest
from emu_helpers import (
    LENIENT,
    MODEL,
    STRICT,
    keyed,
    lines_of,
    make_client,
    raw_get,
    upload,
    wait_for,
    write_jsonl,
)
from google.genai import errors

from gembatch.emulator import Emulator, HttpFault, JobOutcome, LineFaults

pytestmark = pytest.mark.filterwarnings("ignore:batches.create_embeddings")
NAMED = {"display_name": "switch-test"}


def finished(emu: Emulator, name: str) -> dict:
    """Wait until the job is in a final state, looking through ``emu.batches()`` (not a client
    read, so ``output_lag_polls`` is not spent), and return that operation."""
    terminal = ("SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED")

    def done() -> bool:
        ops = [op for op in emu.batches() if op["name"] == name]
        return bool(ops) and ops[0]["metadata"]["state"].removeprefix("BATCH_STATE_") in terminal

    wait_for(done)
    return next(op for op in emu.batches() if op["name"] == name)


def snake_line(i: int, text: str | None = None, **config: object) -> dict:
    request: dict = {"contents": [{"role": "user", "parts": [{"text": text or f"Prompt {i}"}]}]}
    if config:
        request["generation_config"] = config
    return {"key": f"k{i}", "request": request}


# -- long_result_ids -------------------------------------------------------------------------------
def test_long_result_ids_strict(tmp_path):
    with Emulator(behaviour=STRICT) as emu:
        client = make_client(emu)
        up = upload(client, write_jsonl(tmp_path / "in.jsonl", [snake_line(0)]))
        assert len(up.name.removeprefix("files/")) == 12  # uploaded files keep short ids
        job = client.batches.create(model=MODEL, src=up.name, config=NAMED)
        batch_id = job.name.removeprefix("batches/")
        assert re.fullmatch(r"[a-z0-9]{36}", batch_id)
        finished(emu, job.name)
        for _ in range(2):  # output_lag_polls: the output shows on the third read
            client.batches.get(name=job.name)
        result = client.batches.get(name=job.name).dest.file_name
        assert result == f"files/batch-{batch_id}" and len(result.removeprefix("files/")) == 42
        assert client.files.get(name=result).name == result  # get and download work
        assert lines_of(client.files.download(file=result))[0]["key"] == "k0"
        with pytest.raises(errors.ClientError) as info:
            client.files.delete(name=result)
        assert info.value.code == 400 and info.value.status == "INVALID_ARGUMENT"
        assert info.value.message == (
            "* DeleteFileRequest.name: File ID (name excluding 'files/') cannot be more than 40 "
            "characters.\n"
        )
        client.files.delete(name=up.name)  # an uploaded file deletes fine


def test_long_result_ids_lenient(client, emulator, tmp_path):
    up = upload(client, write_jsonl(tmp_path / "in.jsonl", [keyed(0)]))
    job = client.batches.create(model=MODEL, src=up.name)
    assert re.fullmatch(r"batches/[a-z0-9]{12}", job.name)
    result = finished(emulator, job.name)["metadata"]["output"]["responsesFile"]
    assert len(result.removeprefix("files/")) == 18  # batch- + 12
    client.files.delete(name=result)
    assert [f["name"] for f in emulator.files()] == [up.name]


# -- line_error_codes ------------------------------------------------------------------------------
def _error_rows(emu: Emulator, tmp_path) -> tuple[list[dict], list]:
    client = make_client(emu)
    rows = [
        snake_line(0),
        snake_line(1, "[[error:400]] bad"),
        snake_line(2, "[[error:429]] x"),
        snake_line(3, "[[error:503]] x"),
        {"key": "k4", "request": {"contents": []}},
    ]
    up = upload(client, write_jsonl(tmp_path / "in.jsonl", rows))
    job = client.batches.create(model=MODEL, src=up.name, config=NAMED)
    result = finished(emu, job.name)["metadata"]["output"]["responsesFile"]
    out = lines_of(client.files.download(file=result))
    src = [
        {"contents": "fine", "metadata": {"key": "a"}},
        {"contents": "[[error:500]] boom", "metadata": {"key": "b"}},
    ]
    inline = client.batches.create(model=MODEL, src=src, config=NAMED)
    finished(emu, inline.name)
    return out, raw_get(emu, inline.name)["response"]["inlinedResponses"]["inlinedResponses"]


def test_line_error_codes_grpc(tmp_path):
    with Emulator(behaviour=STRICT.with_(output_lag_polls=0, inline_order="ordered")) as emu:
        out, inline = _error_rows(emu, tmp_path)
        errors_by_key = {r["key"]: r["error"] for r in out if "error" in r}
        assert errors_by_key["k1"] == {
            "code": 3,
            "message": "Request contains an invalid argument.",
        }
        assert errors_by_key["k2"]["code"] == 8 and errors_by_key["k3"]["code"] == 14
        assert errors_by_key["k4"]["code"] == 3 and "status" not in errors_by_key["k4"]
        assert inline[1] == {"error": {"code": 13, "message": inline[1]["error"]["message"]}}
        client = make_client(emu)
        with pytest.raises(errors.ClientError) as info:  # interactive calls still answer HTTP
            client.models.generate_content(model=MODEL, contents="[[error:400]] x")
        assert info.value.code == 400 and info.value.status == "INVALID_ARGUMENT"


def test_line_error_codes_http(tmp_path):
    with Emulator(behaviour=LENIENT) as emu:
        out, inline = _error_rows(emu, tmp_path)
        errors_by_key = {r["key"]: r["error"] for r in out if "error" in r}
        assert errors_by_key["k1"] == {
            "code": 400,
            "message": "Request contains an invalid argument.",
            "status": "INVALID_ARGUMENT",
        }
        assert errors_by_key["k2"]["status"] == "RESOURCE_EXHAUSTED"
        assert inline[1]["error"]["code"] == 500 and inline[1]["error"]["status"] == "INTERNAL"


@pytest.mark.parametrize(("codes", "expected"), [("grpc", {"code": 13}), ("http", {"code": 500})])
def test_line_faults_follow_the_codes(tmp_path, codes, expected):
    behaviour = LENIENT.with_(line_error_codes=codes)
    with Emulator(behaviour=behaviour, faults=[LineFaults(error_rate=1.0)]) as emu:
        client = make_client(emu)
        up = upload(client, write_jsonl(tmp_path / "in.jsonl", [keyed(0)]))
        job = client.batches.create(model=MODEL, src=up.name)
        out = finished(emu, job.name)["metadata"]["output"]["responsesFile"]
        (line,) = lines_of(client.files.download(file=out))
        assert line["error"]["code"] == expected["code"]
        assert ("status" in line["error"]) == (codes == "http")


# -- output_lag_polls ------------------------------------------------------------------------------
@pytest.mark.parametrize("lag", [0, 2, 5])
def test_output_lag_polls(lag):
    with Emulator(behaviour=LENIENT.with_(output_lag_polls=lag)) as emu:
        client = make_client(emu)
        job = client.batches.create(model=MODEL, src=[{"contents": "hi"}])
        finished(emu, job.name)
        for read in range(lag):  # SDK get, SDK list and a raw get: each read counts
            if read % 3 == 2:
                raw = raw_get(emu, job.name)
                assert raw["done"] is True and raw["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"
                assert "response" not in raw and "output" not in raw["metadata"]
                continue
            seen = (
                client.batches.get(name=job.name)
                if read % 3 == 0
                else next(j for j in client.batches.list() if j.name == job.name)
            )
            assert seen.state.name == "JOB_STATE_SUCCEEDED" and seen.dest is None
        assert client.batches.get(name=job.name).dest.inlined_responses[0].response.text


def test_output_lag_holds_back_succeeded_jobs_only():
    with Emulator(behaviour=STRICT, faults=[JobOutcome(state="FAILED", after_lines=1)]) as emu:
        client = make_client(emu)
        src = [{"contents": f"q{i}"} for i in range(3)]
        job = client.batches.create(model=MODEL, src=src, config=NAMED)
        finished(emu, job.name)
        failed = client.batches.get(name=job.name)  # partial results show at once
        assert failed.state.name == "JOB_STATE_FAILED" and len(failed.dest.inlined_responses) == 1


# -- inline_order and inline_metadata --------------------------------------------------------------
def _inline_answers(behaviour) -> tuple[list, list]:
    with Emulator(behaviour=behaviour.with_(output_lag_polls=0)) as emu:
        client = make_client(emu)
        src = [
            {"contents": f"Inline prompt {i}", "metadata": {"key": f"row-{i}"}} for i in range(30)
        ]
        job = client.batches.create(model=MODEL, src=src, config=NAMED)
        finished(emu, job.name)
        first = client.batches.get(name=job.name).dest.inlined_responses
        again = client.batches.get(name=job.name).dest.inlined_responses
        return first, again


def test_inline_shuffled_and_metadata_dropped():
    answers, again = _inline_answers(STRICT)
    texts = [a.response.text for a in answers]
    order = [int(t.split('"Inline prompt ')[1].split('"')[0]) for t in texts]
    assert sorted(order) == list(range(30)) and order != list(range(30))
    assert texts == [a.response.text for a in again]  # deterministic for the job
    assert all(a.metadata is None for a in answers)


def test_inline_ordered_with_metadata_echoed():
    answers, _ = _inline_answers(LENIENT)
    assert [a.metadata for a in answers] == [{"key": f"row-{i}"} for i in range(30)]
    assert [a.response.text.split('"')[1] for a in answers] == [
        f"Inline prompt {i}" for i in range(30)
    ]


@pytest.mark.parametrize(("order", "metadata"), [("shuffled", "echoed"), ("ordered", "dropped")])
def test_inline_switches_are_independent(order, metadata):
    answers, _ = _inline_answers(LENIENT.with_(inline_order=order, inline_metadata=metadata))
    keys = [a.metadata["key"] if a.metadata else None for a in answers]
    if metadata == "dropped":
        assert keys == [None] * 30
    else:
        assert sorted(keys) == sorted(f"row-{i}" for i in range(30))
        assert keys != [f"row-{i}" for i in range(30)]


# -- jsonl_validation, jsonl_errors_reported -------------------------------------------------------
BAD_ROWS = [
    snake_line(0),
    {
        "key": "k1",
        "request": {
            "contents": [{"parts": [{"text": "x"}]}],
            "thinking_config": {"thinking_budget": 0},
        },
    },  # not a request field
    '{"key": "k2", "request": {"contents": [',
    snake_line(3),
    {"key": "k4", "request": {"contents": []}},  # well formed, semantically empty: a line error
]


def test_jsonl_checked_at_create_lists_every_bad_line(tmp_path):
    with Emulator(behaviour=STRICT) as emu:
        client = make_client(emu)
        up = upload(client, write_jsonl(tmp_path / "in.jsonl", BAD_ROWS))
        with pytest.raises(errors.ClientError) as info:
            client.batches.create(model=MODEL, src=up.name, config=NAMED)
        assert info.value.code == 400 and info.value.status == "INVALID_ARGUMENT"
        assert info.value.message.split("\n") == [
            "Error on line 2: invalid JSON, near column 69: no such field: 'thinking_config'",
            "Error on line 3: invalid JSON, near column 40: unexpected end of data",
        ]
        assert emu.batches() == [] and emu.stats()["batches_created"] == 0


def test_jsonl_errors_reported_first(tmp_path):
    with Emulator(behaviour=STRICT.with_(jsonl_errors_reported="first")) as emu:
        client = make_client(emu)
        up = upload(client, write_jsonl(tmp_path / "in.jsonl", BAD_ROWS))
        with pytest.raises(errors.ClientError) as info:
            client.batches.create(model=MODEL, src=up.name, config=NAMED)
        assert info.value.message == (
            "Error on line 2: invalid JSON, near column 69: no such field: 'thinking_config'"
        )


def test_jsonl_per_line_answers_bad_lines_in_the_results(tmp_path):
    with Emulator(behaviour=STRICT.with_(jsonl_validation="per_line", output_lag_polls=0)) as emu:
        client = make_client(emu)
        up = upload(client, write_jsonl(tmp_path / "in.jsonl", BAD_ROWS))
        job = client.batches.create(model=MODEL, src=up.name, config=NAMED)
        out = lines_of(
            client.files.download(
                file=finished(emu, job.name)["metadata"]["output"]["responsesFile"]
            )
        )
        by_key = {r.get("key"): r for r in out}
        assert "response" in by_key["k0"] and "response" in by_key["k3"]
        assert (
            by_key["k1"]["error"]["code"] == 3
            and "thinking_config" in by_key["k1"]["error"]["message"]
        )
        assert by_key["k2"]["error"]["code"] == 3 and by_key["k4"]["error"]["code"] == 3


def test_semantic_errors_stay_line_errors_even_when_checked_at_create(tmp_path):
    with Emulator(behaviour=STRICT.with_(output_lag_polls=0)) as emu:
        client = make_client(emu)
        up = upload(client, write_jsonl(tmp_path / "in.jsonl", [BAD_ROWS[0], BAD_ROWS[4]]))
        job = client.batches.create(model=MODEL, src=up.name, config=NAMED)
        out = lines_of(
            client.files.download(
                file=finished(emu, job.name)["metadata"]["output"]["responsesFile"]
            )
        )
        assert out[1] == {
            "key": "k4",
            "error": {
                "code": 3,
                "message": "* GenerateContentRequest.contents: contents is not specified\n",
            },
        }


# -- jsonl_field_names -----------------------------------------------------------------------------
SCHEMA = {
    "type": "object",
    "properties": {"userName": {"type": "string"}, "Score": {"type": "integer", "minimum": 1}},
    "required": ["userName", "Score"],
    "propertyOrdering": ["Score", "userName"],
}


def _snake_and_camel_rows() -> list:
    snake = {
        "key": "snake",
        "request": {
            "contents": [{"role": "user", "parts": [{"text": "Rate me"}]}],
            "system_instruction": {"parts": [{"text": "Be fair"}]},
            "generation_config": {
                "response_mime_type": "application/json",
                "response_json_schema": SCHEMA,
                "max_output_tokens": 500,
                "thinking_config": {"thinking_budget": 0},
            },
            "tool_config": {"function_calling_config": {"mode": "NONE"}},
        },
    }
    camel = {
        "key": "camel",
        "request": {
            "contents": [{"role": "user", "parts": [{"text": "Rate me"}]}],
            "generationConfig": {
                "responseMimeType": "application/json",
                "responseJsonSchema": SCHEMA,
            },
        },
    }
    return [snake, camel]


def test_jsonl_field_names_snake(tmp_path):
    with Emulator(behaviour=STRICT.with_(output_lag_polls=0)) as emu:
        client = make_client(emu)
        rows = _snake_and_camel_rows()
        up = upload(client, write_jsonl(tmp_path / "both.jsonl", rows))
        with pytest.raises(errors.ClientError) as info:
            client.batches.create(model=MODEL, src=up.name, config=NAMED)
        assert info.value.message.startswith("Error on line 2: invalid JSON, near column ")
        assert info.value.message.endswith("no such field: 'generationConfig'")
        up = upload(client, write_jsonl(tmp_path / "snake.jsonl", rows[:1]))
        job = client.batches.create(model=MODEL, src=up.name, config=NAMED)
        (line,) = lines_of(
            client.files.download(
                file=finished(emu, job.name)["metadata"]["output"]["responsesFile"]
            )
        )
        answer = json.loads(line["response"]["candidates"][0]["content"]["parts"][0]["text"])
        assert list(answer) == ["Score", "userName"]  # the schema (user data) kept verbatim
        assert answer["Score"] >= 1 and answer["userName"].startswith("Rate me")


def test_jsonl_field_names_both(tmp_path):
    with Emulator(behaviour=STRICT.with_(jsonl_field_names="both", output_lag_polls=0)) as emu:
        client = make_client(emu)
        up = upload(client, write_jsonl(tmp_path / "both.jsonl", _snake_and_camel_rows()))
        job = client.batches.create(model=MODEL, src=up.name, config=NAMED)
        out = lines_of(
            client.files.download(
                file=finished(emu, job.name)["metadata"]["output"]["responsesFile"]
            )
        )
        texts = [r["response"]["candidates"][0]["content"]["parts"][-1]["text"] for r in out]
        assert [list(json.loads(t)) for t in texts] == [["Score", "userName"]] * 2


def test_inline_requests_take_both_spellings_under_strict():
    with Emulator(behaviour=STRICT.with_(output_lag_polls=0)) as emu:
        with httpx2.Client(base_url=emu.base_url, headers={"x-goog-api-key": "k"}) as http:
            created = http.post(
                f"/v1beta/models/{MODEL}:batchGenerateContent",
                json={
                    "batch": {
                        "display_name": "mixed",
                        "input_config": {
                            "requests": {
                                "requests": [
                                    {
                                        "request": {
                                            "contents": [{"parts": [{"text": "a"}]}],
                                            "generationConfig": {"maxOutputTokens": 50},
                                        }
                                    },
                                    {
                                        "request": {
                                            "contents": [{"parts": [{"text": "b"}]}],
                                            "generation_config": {"max_output_tokens": 50},
                                        }
                                    },
                                ]
                            }
                        },
                    }
                },
            )
        assert created.status_code == 200, created.text
        op = finished(emu, created.json()["name"])
        assert op["metadata"]["batchStats"]["successfulRequestCount"] == "2"


# -- jsonl_response_schema -------------------------------------------------------------------------
def _schema_line() -> dict:
    return snake_line(
        0,
        "Give JSON",
        response_mime_type="application/json",
        response_schema={"type": "OBJECT", "properties": {"a": {"type": "STRING"}}},
    )


def test_jsonl_response_schema_refused(tmp_path):
    with Emulator(behaviour=STRICT) as emu:
        client = make_client(emu)
        up = upload(client, write_jsonl(tmp_path / "in.jsonl", [snake_line(1), _schema_line()]))
        with pytest.raises(errors.ClientError) as info:
            client.batches.create(model=MODEL, src=up.name, config=NAMED)
        assert info.value.code == 400
        assert info.value.message == "Request contains an invalid argument."
    behaviour = STRICT.with_(jsonl_validation="per_line", output_lag_polls=0)
    with Emulator(behaviour=behaviour) as emu:  # checked per line: that line fails
        client = make_client(emu)
        up = upload(client, write_jsonl(tmp_path / "in.jsonl", [snake_line(1), _schema_line()]))
        job = client.batches.create(model=MODEL, src=up.name, config=NAMED)
        out = lines_of(
            client.files.download(
                file=finished(emu, job.name)["metadata"]["output"]["responsesFile"]
            )
        )
        assert out[1]["error"] == {"code": 3, "message": "Request contains an invalid argument."}


def test_jsonl_response_schema_accepted(tmp_path):
    behaviour = STRICT.with_(jsonl_response_schema="accepted", output_lag_polls=0)
    with Emulator(behaviour=behaviour) as emu:
        client = make_client(emu)
        up = upload(client, write_jsonl(tmp_path / "in.jsonl", [_schema_line()]))
        job = client.batches.create(model=MODEL, src=up.name, config=NAMED)
        (line,) = lines_of(
            client.files.download(
                file=finished(emu, job.name)["metadata"]["output"]["responsesFile"]
            )
        )
        assert json.loads(line["response"]["candidates"][0]["content"]["parts"][-1]["text"])["a"]


# -- missing_file_status ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("behaviour", "code", "status"),
    [(STRICT, 403, "PERMISSION_DENIED"), (LENIENT, 404, "NOT_FOUND")],
)
def test_missing_file_status(behaviour, code, status):
    with Emulator(behaviour=behaviour) as emu:
        client = make_client(emu)
        calls = [
            lambda: client.files.get(name="files/gone12345678"),
            lambda: client.files.delete(name="files/gone12345678"),
            lambda: client.files.download(file="files/gone12345678"),
            lambda: client.batches.create(model=MODEL, src="files/gone12345678", config=NAMED),
        ]
        for call in calls:
            with pytest.raises(errors.ClientError) as info:
                call()
            assert (info.value.code, info.value.status) == (code, status)
        if code == 403:
            assert info.value.message == (
                "You do not have permission to access the File gone12345678 or it may not exist."
            )


def test_an_expired_file_is_missing_too(tmp_path):
    now = [1_800_000_000.0]
    with Emulator(behaviour=STRICT, wall=lambda: now[0]) as emu:
        client = make_client(emu)
        up = upload(client, write_jsonl(tmp_path / "a.jsonl", [snake_line(0)]))
        now[0] += 48 * 3600
        with pytest.raises(errors.ClientError) as info:
            client.files.get(name=up.name)
        assert info.value.code == 403


# -- retry_after_header ----------------------------------------------------------------------------
def test_retry_after_strict_is_a_retry_info_detail():
    with Emulator(
        behaviour=STRICT, faults=[HttpFault(endpoint="batches.list", status=429, retry_after=30)]
    ) as emu:
        client = make_client(emu)
        with pytest.raises(errors.ClientError) as info:
            client.batches.list()
        assert "retry-after" not in info.value.response.headers
        assert info.value.details["error"]["details"] == [
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "30s"}
        ]
        emu.faults.add(HttpFault(endpoint="batches.list", status=429))  # none given: no detail
        with pytest.raises(errors.ClientError) as info:
            client.batches.list()
        assert "details" not in info.value.details["error"]


def test_retry_after_lenient_is_a_header():
    with Emulator(
        behaviour=LENIENT, faults=[HttpFault(endpoint="batches.list", status=429, retry_after=2.5)]
    ) as emu:
        client = make_client(emu)
        with pytest.raises(errors.ClientError) as info:
            client.batches.list()
        assert info.value.response.headers["retry-after"] == "2.5"


# -- known_models_only -----------------------------------------------------------------------------
def test_known_models_only_strict():
    with Emulator(behaviour=STRICT) as emu:
        client = make_client(emu)
        message = (
            "models/gemini-0.9-ultra is not found for API version v1, or is not supported "
            "for {}. Call ListModels to see the list of available models and their "
            "supported methods."
        )
        calls = {
            "generateContent": lambda: client.models.generate_content(
                model="gemini-0.9-ultra", contents="x"
            ),
            "countTokens": lambda: client.models.count_tokens(
                model="gemini-0.9-ultra", contents="x"
            ),
            "batchEmbedContents": lambda: client.models.embed_content(
                model="gemini-0.9-ultra", contents="x"
            ),
            "batchGenerateContent": lambda: client.batches.create(
                model="gemini-0.9-ultra", src=[{"contents": "x"}], config=NAMED
            ),
        }
        for method, call in calls.items():
            with pytest.raises(errors.ClientError) as info:
                call()
            assert info.value.code == 404 and info.value.message == message.format(method)
        with pytest.raises(errors.ClientError) as info:  # known, but not for that method
            client.batches.create_embeddings(
                model="text-embedding-004",
                src={"inlined_requests": {"contents": ["x"]}},
                config=NAMED,
            )
        assert info.value.code == 404 and "asyncBatchEmbedContent" in info.value.message
        assert client.models.generate_content(model="gemini-2.5-flash-lite", contents="x").text


def test_known_models_only_lenient():
    with Emulator(behaviour=LENIENT) as emu:
        client = make_client(emu)
        assert client.models.generate_content(model="gemini-0.9-ultra", contents="x").text
        job = client.batches.create(model="any-model-at-all", src=[{"contents": "x"}])
        assert job.model == "models/any-model-at-all"


@pytest.mark.parametrize("behaviour", [STRICT, LENIENT])
def test_the_model_list_parses_in_the_sdk(behaviour):
    with Emulator(behaviour=behaviour) as emu:
        client = make_client(emu)
        pager = client.models.list(config={"page_size": 4})
        assert len(pager.page) == 4
        names = [m.name for m in pager]
        for name in (
            "gemini-2.5-pro",
            "gemini-2.5-flash",
            "gemini-2.5-flash-lite",
            "gemini-2.0-flash",
            "gemini-2.0-flash-lite",
            "gemini-3-pro-preview",
            "gemini-3-flash-preview",
            "gemini-embedding-001",
            "text-embedding-004",
        ):
            assert f"models/{name}" in names
        flash = client.models.get(model="gemini-2.5-flash")
        assert (flash.display_name, flash.input_token_limit, flash.output_token_limit) == (
            "Gemini 2.5 Flash",
            1_048_576,
            65_536,
        )
        assert "batchGenerateContent" in flash.supported_actions
        embed = client.models.get(model="models/gemini-embedding-001")
        assert "asyncBatchEmbedContent" in embed.supported_actions
        if behaviour.known_models_only:
            with pytest.raises(errors.ClientError) as info:
                client.models.get(model="gemini-0.9-ultra")
            assert info.value.code == 404
        else:  # the lenient service knows every name, its model resource too
            anything = client.models.get(model="gemini-0.9-ultra")
            assert "batchGenerateContent" in anything.supported_actions


# -- require_display_name --------------------------------------------------------------------------
def test_require_display_name():
    with Emulator(behaviour=STRICT) as emu:
        client = make_client(emu)
        for config in (None, {"display_name": ""}):
            with pytest.raises(errors.ClientError) as info:
                client.batches.create(model=MODEL, src=[{"contents": "x"}], config=config)
            assert info.value.code == 400 and "display_name is required" in info.value.message
        assert client.batches.create(model=MODEL, src=[{"contents": "x"}], config=NAMED).name
    with Emulator(behaviour=LENIENT) as emu:
        client = make_client(emu)
        assert client.batches.create(model=MODEL, src=[{"contents": "x"}]).name


# -- upload_mime_check -----------------------------------------------------------------------------
ACCEPTED = [
    "jsonl",
    "application/jsonl",
    "application/json",
    "text/plain",
    "image/png",
    "image/jpeg",
    "audio/wav",
    "video/mp4",
    "application/pdf",
    "application/octet-stream",
]


def test_upload_mime_check_strict():
    with Emulator(behaviour=STRICT) as emu:
        client = make_client(emu)
        with pytest.raises(errors.APIError) as info:
            client.files.upload(file=io.BytesIO(b"test"), config={"mime_type": "bad/mime_type"})
        assert info.value.code == 400 and info.value.message == (
            "Unsupported MIME type: bad/mime_type"
        )
        assert emu.files() == [] and emu.stats()["upload_sessions"] == 1
        for mime in ACCEPTED:
            assert (
                client.files.upload(file=io.BytesIO(b"test"), config={"mime_type": mime}).mime_type
                == mime
            )


def test_upload_mime_check_lenient():
    with Emulator(behaviour=LENIENT) as emu:
        client = make_client(emu)
        up = client.files.upload(file=io.BytesIO(b"test"), config={"mime_type": "bad/mime_type"})
        assert up.mime_type == "bad/mime_type"
