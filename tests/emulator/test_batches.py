"""Batches: file and inline input, the Operation on the wire, states, counts, cancel, delete,
list."""

from __future__ import annotations

import json

import pytest
from emu_helpers import (
    LENIENT,
    MODEL,
    FakeClock,
    keyed,
    lines_of,
    make_client,
    upload,
    wait_done,
    wait_for,
    write_jsonl,
)
from google.genai import errors

from gembatch.emulator import Delays, Emulator

pytestmark = pytest.mark.filterwarnings("ignore:batches.create_embeddings")


@pytest.mark.parametrize("n", [1, 10, 1000])
def test_file_batch_returns_one_line_per_key(client, tmp_path, n):
    up = upload(client, write_jsonl(tmp_path / "in.jsonl", [keyed(i) for i in range(n)]))
    created = client.batches.create(model=MODEL, src=up.name, config={"display_name": "file-job"})
    assert created.name.startswith("batches/") and created.state.name == "JOB_STATE_PENDING"
    assert created.model == f"models/{MODEL}" and created.display_name == "file-job"
    job = wait_done(client, created.name)
    assert job.state.name == "JOB_STATE_SUCCEEDED" and job.end_time >= job.create_time
    assert job.dest.file_name.startswith("files/") and job.dest.inlined_responses is None
    rows = lines_of(client.files.download(file=job.dest.file_name))
    assert [r["key"] for r in rows] == [f"k{i}" for i in range(n)]
    assert all(r["response"]["candidates"][0]["content"]["parts"] for r in rows)


@pytest.mark.slow
def test_file_batch_of_100000_lines(client, emulator, http, tmp_path):
    n = 100_000
    up = upload(client, write_jsonl(tmp_path / "in.jsonl", (keyed(i) for i in range(n))))
    job = wait_done(client, client.batches.create(model=MODEL, src=up.name).name, timeout=120)
    assert job.state.name == "JOB_STATE_SUCCEEDED"
    data = client.files.download(file=job.dest.file_name)
    keys = [json.loads(line)["key"] for line in data.splitlines()]
    assert len(keys) == n and set(keys) == {f"k{i}" for i in range(n)}
    stats = http.get(f"/v1beta/{job.name}").json()["metadata"]["batchStats"]
    assert stats == {"requestCount": str(n), "successfulRequestCount": str(n)}
    assert emulator.stats()["lines_processed"] == n


def test_operation_on_the_wire(client, http, tmp_path):
    up = upload(client, write_jsonl(tmp_path / "in.jsonl", [keyed(0), keyed(1, "[[error:500]] x")]))
    created = http.post(
        f"/v1beta/models/{MODEL}:batchGenerateContent",
        json={"batch": {"displayName": "wire", "inputConfig": {"fileName": up.name}}},
    ).json()
    assert created["name"].startswith("batches/") and "done" not in created  # pending: no key
    meta = created["metadata"]
    assert (
        meta["@type"]
        == "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"
    )
    assert meta["model"] == f"models/{MODEL}" and meta["displayName"] == "wire"
    assert meta["state"] == "BATCH_STATE_PENDING" and meta["name"] == created["name"]
    assert meta["batchStats"] == {"requestCount": "2", "pendingRequestCount": "2"}
    assert meta["createTime"].endswith("Z") and "endTime" not in meta and "response" not in created
    wait_done(client, created["name"])
    done = http.get(f"/v1beta/{created['name']}").json()
    assert done["done"] is True and done["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"
    assert done["metadata"]["batchStats"] == {
        "requestCount": "2",
        "successfulRequestCount": "1",
        "failedRequestCount": "1",
    }
    out = done["metadata"]["output"]
    assert out == {"responsesFile": out["responsesFile"]}
    assert done["response"] == {
        "@type": "type.googleapis.com/google.ai.generativelanguage.v1main."
        "GenerateContentBatchOutput",
        **out,
    }
    assert done["metadata"]["endTime"] >= done["metadata"]["createTime"]
    assert (
        http.get("/v1/" + created["name"]).json() == http.get(f"/v1beta/{created['name']}").json()
    )


def test_inline_results_in_input_order_with_metadata(client, emulator):
    src = [
        {
            "contents": [{"parts": [{"text": f"Inline prompt {i}"}], "role": "user"}],
            "metadata": {"key": f"row-{i}"},
            "config": {"temperature": 0.2},
        }
        for i in range(25)
    ]
    src[3]["contents"][0]["parts"][0]["text"] = "[[error:400]] refused"
    job = wait_done(client, client.batches.create(model=MODEL, src=src).name)
    assert job.state.name == "JOB_STATE_SUCCEEDED" and job.dest.file_name is None
    answers = job.dest.inlined_responses
    assert [a.metadata for a in answers] == [{"key": f"row-{i}"} for i in range(25)]
    assert answers[3].response is None and answers[3].error.code == 400
    for i, answer in enumerate(answers):
        if i == 3:
            continue
        single = client.models.generate_content(
            model=MODEL, contents=f"Inline prompt {i}", config={"temperature": 0.2}
        )
        assert answer.response.text == single.text
        assert answer.response.usage_metadata == single.usage_metadata
    assert emulator.stats()["files_created"] == 0


def test_invalid_lines_get_per_line_errors(client, http, tmp_path):
    rows = [
        keyed(0),
        '{"key": "broken", "request": {"contents": [',  # not JSON
        {"key": "no-request"},  # no request
        {"key": "extra", "request": keyed(9)["request"], "foo": 1},  # unknown field on the line
        {"key": "empty", "request": {}},  # no contents
        {"key": "unknown", "request": {**keyed(9)["request"], "bogus": True}},
        "   ",  # blank: skipped
        {"key": "boom", "request": keyed(9, "[[error:500]] fail")["request"]},
        {"key": 7, "request": keyed(7)["request"]},  # a key that is not a string
    ]
    up = upload(client, write_jsonl(tmp_path / "in.jsonl", rows))
    job = wait_done(client, client.batches.create(model=MODEL, src=up.name).name)
    assert job.state.name == "JOB_STATE_SUCCEEDED"
    out = lines_of(client.files.download(file=job.dest.file_name))
    assert [r.get("key") for r in out] == [
        "k0",
        "broken",
        "no-request",
        "extra",
        "empty",
        "unknown",
        "boom",
        7,
    ]
    by_key = {r.get("key"): r for r in out}
    assert "response" in by_key["k0"] and "response" in by_key[7]
    for key in ("broken", "no-request", "extra", "empty", "unknown"):
        assert (
            by_key[key]["error"]["code"] == 400
            and by_key[key]["error"]["status"] == "INVALID_ARGUMENT"
        )
    assert by_key["boom"]["error"]["code"] == 500
    stats = http.get(f"/v1beta/{job.name}").json()["metadata"]["batchStats"]
    assert stats == {"requestCount": "8", "successfulRequestCount": "2", "failedRequestCount": "6"}


def test_bare_request_lines_have_no_key_and_keep_order(client, tmp_path):
    rows = [
        {
            "contents": [{"role": "user", "parts": [{"text": f"Bare {i}"}]}],
            "generationConfig": {"temperature": 0.7},
        }
        for i in range(5)
    ]
    up = upload(client, write_jsonl(tmp_path / "in.jsonl", rows))
    job = wait_done(client, client.batches.create(model=MODEL, src=up.name).name)
    out = lines_of(client.files.download(file=job.dest.file_name))
    assert len(out) == 5 and all(set(r) == {"response"} for r in out)
    for i, row in enumerate(out):
        single = client.models.generate_content(
            model=MODEL, contents=f"Bare {i}", config={"temperature": 0.7}
        )
        assert row["response"]["candidates"][0]["content"]["parts"][0]["text"] == single.text


def test_states_and_counts_follow_the_delays(tmp_path):
    clock = FakeClock()
    with Emulator(behaviour=LENIENT, clock=clock, faults=[Delays(pending_s=5, running_s=5)]) as emu:
        client = make_client(emu)
        up = upload(client, write_jsonl(tmp_path / "in.jsonl", [keyed(i) for i in range(50)]))
        name = client.batches.create(model=MODEL, src=up.name).name

        def raw() -> dict:
            return next(op for op in emu.batches() if op["name"] == name)["metadata"]

        assert client.batches.get(name=name).state.name == "JOB_STATE_PENDING"
        assert raw()["batchStats"] == {"requestCount": "50", "pendingRequestCount": "50"}
        clock.advance(5)
        assert client.batches.get(name=name).state.name == "JOB_STATE_RUNNING"
        wait_for(
            lambda: raw()["batchStats"] == {"requestCount": "50", "successfulRequestCount": "50"}
        )
        assert client.batches.get(name=name).state.name == "JOB_STATE_RUNNING"  # running_s not over
        clock.advance(5)
        job = client.batches.get(name=name)
        assert job.state.name == "JOB_STATE_SUCCEEDED" and job.dest.file_name


def test_slow_mode_holds_results_back(tmp_path):
    clock = FakeClock()
    with Emulator(behaviour=LENIENT, clock=clock, faults=[Delays(results_after_s=60)]) as emu:
        client = make_client(emu)
        name = client.batches.create(model=MODEL, src=[{"contents": "hi"}]).name
        wait_for(lambda: "successfulRequestCount" in emu.batches()[0]["metadata"]["batchStats"])
        clock.advance(59)
        assert client.batches.get(name=name).state.name == "JOB_STATE_RUNNING"
        clock.advance(1)
        assert client.batches.get(name=name).dest.inlined_responses[0].response.text


def test_list_pages_newest_first(client, emulator):
    names = [
        client.batches.create(model=MODEL, src=[{"contents": f"job {i}"}]).name for i in range(5)
    ]
    pager = client.batches.list(config={"page_size": 2})
    assert [j.name for j in pager.page] == names[::-1][:2]
    assert [j.name for j in pager] == names[::-1]
    assert [op["name"] for op in emulator.batches()] == names[::-1]
    assert emulator.stats()["batches_created"] == 5


def test_cancel_and_delete_as_in_the_guide(tmp_path):
    clock = FakeClock()
    with Emulator(behaviour=LENIENT, clock=clock, faults=[Delays(pending_s=100)]) as emu:
        client = make_client(emu)
        job = client.batches.create(model=MODEL, src=[{"contents": "wait"}])
        client.batches.cancel(name=job.name)
        cancelled = client.batches.get(name=job.name)
        assert cancelled.state.name == "JOB_STATE_CANCELLED" and cancelled.dest is None
        assert cancelled.end_time is not None
        client.batches.cancel(name=job.name)  # again: still fine
        client.batches.delete(name=job.name)
        with pytest.raises(errors.ClientError) as info:
            client.batches.get(name=job.name)
        assert info.value.code == 404 and info.value.status == "NOT_FOUND"
        assert list(client.batches.list()) == []
        with pytest.raises(errors.ClientError) as info:
            client.batches.delete(name=job.name)
        assert info.value.code == 404


def test_cancel_a_finished_job_is_refused(client):
    job = wait_done(client, client.batches.create(model=MODEL, src=[{"contents": "x"}]).name)
    with pytest.raises(errors.ClientError) as info:
        client.batches.cancel(name=job.name)
    assert info.value.code == 400 and info.value.status == "FAILED_PRECONDITION"


def test_cancel_while_running_keeps_the_lines_done(client, emulator, http, tmp_path):
    n = 200_000
    up = upload(client, write_jsonl(tmp_path / "in.jsonl", (keyed(i) for i in range(n))))
    job = client.batches.create(model=MODEL, src=up.name)
    wait_for(
        lambda: (
            "successfulRequestCount"
            in http.get(f"/v1beta/{job.name}").json()["metadata"]["batchStats"]
        )
    )
    client.batches.cancel(name=job.name)
    done = http.get(f"/v1beta/{job.name}").json()
    assert done["metadata"]["state"] == "BATCH_STATE_CANCELLED"
    succeeded = int(done["metadata"]["batchStats"]["successfulRequestCount"])
    assert 0 < succeeded < n
    assert int(done["metadata"]["batchStats"]["pendingRequestCount"]) == n - succeeded
    out = lines_of(client.files.download(file=done["metadata"]["output"]["responsesFile"]))
    assert [r["key"] for r in out] == [f"k{i}" for i in range(succeeded)]


def test_delete_a_running_job_stops_it(client, emulator, tmp_path):
    up = upload(client, write_jsonl(tmp_path / "in.jsonl", (keyed(i) for i in range(100_000))))
    job = client.batches.create(model=MODEL, src=up.name)
    client.batches.delete(name=job.name)
    processed = emulator.stats()["lines_processed"]
    assert processed < 100_000 and emulator.batches() == []
    assert len(emulator.files()) == 1  # no results file appeared


def test_inline_request_over_the_limit_is_refused():
    with Emulator(behaviour=LENIENT, max_inline_bytes=2_000) as emu:
        client = make_client(emu)
        with pytest.raises(errors.ClientError) as info:
            client.batches.create(model=MODEL, src=[{"contents": "x" * 3_000}])
        assert (
            info.value.code == 400 and "payload size exceeds the limit: 2000" in info.value.message
        )
        assert client.batches.create(model=MODEL, src=[{"contents": "x" * 100}]).name
        assert emu.stats()["batches_created"] == 1


@pytest.mark.parametrize(
    ("body", "code", "text"),
    [
        ({"batch": {"inputConfig": {"fileName": "files/nope"}}}, 404, "files/nope"),
        ({"batch": {"inputConfig": {}}}, 400, "exactly one"),
        ({"batch": {"displayName": "x"}}, 400, "input_config"),
        ({"batch": {"inputConfig": {"requests": {"requests": []}}}}, 400, "non-empty"),
        (
            {"batch": {"inputConfig": {"requests": {"requests": [{"request": {"contents": []}}]}}}},
            400,
            "requests[0]",
        ),
        (
            {"batch": {"colour": 1, "inputConfig": {"fileName": "files/x"}}},
            400,
            'Unknown name "colour"',
        ),
        ({"batches": {}}, 400, "batch"),
    ],
)
def test_create_refuses_bad_bodies(emulator, http, body, code, text):
    response = http.post(f"/v1beta/models/{MODEL}:batchGenerateContent", json=body)
    assert response.status_code == code, response.text
    assert text in response.json()["error"]["message"]
    assert emulator.stats()["batches_created"] == 0


def test_snake_case_and_single_quoted_bodies(client, http, tmp_path):
    up = upload(client, write_jsonl(tmp_path / "in.jsonl", [keyed(0)]))
    snake = http.post(
        f"/v1beta/models/{MODEL}:batchGenerateContent",
        json={"batch": {"display_name": "snake", "input_config": {"file_name": up.name}}},
    )
    assert snake.status_code == 200 and snake.json()["metadata"]["displayName"] == "snake"
    quoted = http.post(
        f"/v1beta/models/{MODEL}:batchGenerateContent",
        content=f"{{'batch': {{'display_name': 'q', "
        f"'input_config': {{'file_name': '{up.name}'}}}}}}",
    )
    assert quoted.status_code == 200 and quoted.json()["metadata"]["displayName"] == "q"
    inline = http.post(
        f"/v1beta/models/{MODEL}:batchGenerateContent",
        json={
            "batch": {
                "display_name": "my-batch-requests",
                "input_config": {
                    "requests": {
                        "requests": [
                            {
                                "request": {
                                    "contents": [{"parts": [{"text": "Describe photosynthesis."}]}]
                                },
                                "metadata": {"key": "request-1"},
                            }
                        ]
                    }
                },
            }
        },
    )
    job = wait_done(client, inline.json()["name"])
    assert job.dest.inlined_responses[0].metadata == {"key": "request-1"}


def test_embeddings_from_a_file_and_inline(client, http, tmp_path):
    rows = [
        {"key": f"e{i}", "request": {"content": {"parts": [{"text": f"embed me {i}"}]}}}
        for i in range(4)
    ]
    up = upload(client, write_jsonl(tmp_path / "emb.jsonl", rows))
    file_job = client.batches.create_embeddings(
        model="gemini-embedding-001",
        src={"file_name": up.name},
        config={"display_name": "Input embeddings batch"},
    )
    file_job = wait_done(client, file_job.name)
    assert file_job.state.name == "JOB_STATE_SUCCEEDED"
    meta = http.get(f"/v1beta/{file_job.name}").json()["metadata"]
    assert (
        meta["@type"].endswith("EmbedContentBatch")
        and meta["model"] == "models/gemini-embedding-001"
    )
    out = lines_of(client.files.download(file=file_job.dest.file_name))
    assert [r["key"] for r in out] == [f"e{i}" for i in range(4)]
    single = client.models.embed_content(model="gemini-embedding-001", contents="embed me 2")
    assert out[2]["response"]["embedding"]["values"] == pytest.approx(single.embeddings[0].values)

    inline_job = client.batches.create_embeddings(
        model="gemini-embedding-001",
        src={"inlined_requests": {"contents": ["embed me 0", "embed me 1"]}},
        config={"display_name": "Inlined embeddings batch"},
    )
    inline_job = wait_done(client, inline_job.name)
    answers = inline_job.dest.inlined_embed_content_responses
    assert len(answers) == 2 and inline_job.dest.inlined_responses is None
    assert answers[0].response.embedding.values == pytest.approx(
        out[0]["response"]["embedding"]["values"]
    )


def test_single_calls_match_the_batch_answers(client, tmp_path):
    prompts = ["What is 2 + 2?", "Name three colours.", "[[parts:3]] Explain batching."]
    rows = [
        {"key": f"q{i}", "request": {"contents": [{"role": "user", "parts": [{"text": p}]}]}}
        for i, p in enumerate(prompts)
    ]
    up = upload(client, write_jsonl(tmp_path / "in.jsonl", rows))
    job = wait_done(client, client.batches.create(model=MODEL, src=up.name).name)
    out = {
        r["key"]: r["response"] for r in lines_of(client.files.download(file=job.dest.file_name))
    }
    for i, prompt in enumerate(prompts):
        single = client.models.generate_content(model=MODEL, contents=prompt)
        batch = out[f"q{i}"]
        assert [p["text"] for p in batch["candidates"][0]["content"]["parts"]] == [
            p.text for p in single.candidates[0].content.parts
        ]
        assert (
            batch["usageMetadata"]["promptTokenCount"] == single.usage_metadata.prompt_token_count
        )
        assert (
            batch["usageMetadata"]["candidatesTokenCount"]
            == single.usage_metadata.candidates_token_count
        )
        tokens = client.models.count_tokens(model=MODEL, contents=prompt)
        assert tokens.total_tokens == batch["usageMetadata"]["promptTokenCount"]


def test_shuffled_output_is_a_permutation(tmp_path):
    with Emulator(behaviour=LENIENT, shuffle_output=True) as emu:
        client = make_client(emu)
        up = upload(client, write_jsonl(tmp_path / "in.jsonl", [keyed(i) for i in range(3000)]))
        job = wait_done(client, client.batches.create(model=MODEL, src=up.name).name)
        keys = [r["key"] for r in lines_of(client.files.download(file=job.dest.file_name))]
        assert sorted(keys) == sorted(f"k{i}" for i in range(3000)) and keys != [
            f"k{i}" for i in range(3000)
        ]


def test_jobs_expire_after_48_hours(tmp_path):
    now = [1_800_000_000.0]
    with Emulator(
        behaviour=LENIENT, clock=FakeClock(), wall=lambda: now[0], faults=[Delays(pending_s=10)]
    ) as emu:
        client = make_client(emu)
        job = client.batches.create(model=MODEL, src=[{"contents": "late"}])
        now[0] += 48 * 3600
        expired = client.batches.get(name=job.name)
        assert expired.state.name == "JOB_STATE_EXPIRED" and expired.dest is None
