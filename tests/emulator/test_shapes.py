"""Real response shapes, always on (not switches): what the client must cope with in any mode."""

from __future__ import annotations

import re

import pytest
from emu_helpers import (
    LENIENT,
    MODEL,
    STRICT,
    keyed,
    lines_of,
    make_client,
    upload,
    wait_done,
    write_jsonl,
)
from google.genai import errors

from gembatch.emulator import Emulator

pytestmark = pytest.mark.filterwarnings("ignore:batches.create_embeddings")
NANOS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")


@pytest.mark.parametrize("behaviour", [STRICT, LENIENT])
def test_timestamps_have_nine_fractional_digits(behaviour, tmp_path):
    with Emulator(behaviour=behaviour) as emu:
        client = make_client(emu)
        up = upload(client, write_jsonl(tmp_path / "in.jsonl", [keyed(0)]))
        raw_file = next(f for f in emu.files() if f["name"] == up.name)
        for field in ("createTime", "updateTime", "expirationTime"):
            assert NANOS.match(raw_file[field]), raw_file[field]
        job = client.batches.create(
            model=MODEL, src=[{"contents": "x"}], config={"display_name": "t"}
        )
        meta = next(op for op in emu.batches() if op["name"] == job.name)["metadata"]
        assert NANOS.match(meta["createTime"]) and NANOS.match(meta["updateTime"])
        assert job.create_time is not None  # the SDK parses them


def test_operations_pending_have_no_done_key_and_lists_no_inline_answers(emulator, http):
    client = make_client(emulator)
    job = client.batches.create(model=MODEL, src=[{"contents": "x", "metadata": {"key": "m"}}])
    wait_done(client, job.name)
    got = http.get(f"/v1beta/{job.name}").json()
    assert got["done"] is True and got["response"]["inlinedResponses"]["inlinedResponses"]
    listed = http.get("/v1beta/batches").json()["operations"][0]
    assert listed["name"] == job.name and listed["done"] is True
    assert "output" not in listed["metadata"] and "response" not in listed
    listed_job = next(iter(client.batches.list()))
    assert listed_job.dest is None  # the SDK sees no answers in a list, as on the service


def test_embedding_results_carry_a_string_token_count(emulator, tmp_path):
    client = make_client(emulator)
    rows = [{"key": "e0", "request": {"content": {"parts": [{"text": "abcdefgh"}]}}}]
    up = upload(client, write_jsonl(tmp_path / "emb.jsonl", rows))
    job = wait_done(
        client,
        client.batches.create_embeddings(
            model="gemini-embedding-001", src={"file_name": up.name}
        ).name,
    )
    (line,) = lines_of(client.files.download(file=job.dest.file_name))
    assert line["response"]["tokenCount"] == "2" and len(line["response"]["embedding"]["values"])
    inline = wait_done(
        client,
        client.batches.create_embeddings(
            model="gemini-embedding-001", src={"inlined_requests": {"contents": ["abcdefgh"]}}
        ).name,
    )
    (answer,) = inline.dest.inlined_embed_content_responses
    assert answer.response.token_count == 2  # the SDK reads the int64 string


def test_usage_metadata_as_the_sdk_sees_it(emulator):
    client = make_client(emulator)
    response = client.models.generate_content(
        model="gemini-2.0-flash", contents=["Hello world.", _png_part()]
    )
    usage = response.usage_metadata
    assert [d.modality.name for d in usage.candidates_tokens_details] == ["TEXT"]
    assert usage.candidates_tokens_details[0].token_count == usage.candidates_token_count
    assert sorted(d.modality.name for d in usage.prompt_tokens_details) == ["IMAGE", "TEXT"]
    assert usage.thoughts_token_count is None and usage.cached_content_token_count is None


def _png_part():
    from google.genai import types

    return types.Part.from_bytes(data=b"\x89PNG\r\n\x1a\n", mime_type="image/png")


def test_result_file_hash_is_base64_of_the_hex_digest(emulator, tmp_path):
    import base64
    import hashlib

    client = make_client(emulator)
    up = upload(client, write_jsonl(tmp_path / "in.jsonl", [keyed(0), keyed(1)]))
    job = wait_done(client, client.batches.create(model=MODEL, src=up.name).name)
    result = client.files.get(name=job.dest.file_name)
    data = client.files.download(file=job.dest.file_name)
    hex_digest = hashlib.sha256(data).hexdigest()
    assert base64.b64decode(result.sha256_hash).decode() == hex_digest


@pytest.mark.parametrize("behaviour", [STRICT, LENIENT])
def test_stream_generate_content_in_server_sent_events(behaviour):
    with Emulator(behaviour=behaviour) as emu:
        client = make_client(emu)
        whole = client.models.generate_content(model=MODEL, contents="Tell me a story")
        chunks = list(
            client.models.generate_content_stream(model=MODEL, contents="Tell me a story")
        )
        assert len(chunks) == 3
        assert "".join(c.text or "" for c in chunks) == whole.text
        assert [c.candidates[0].finish_reason for c in chunks][-1].name == "STOP"
        assert chunks[0].candidates[0].finish_reason is None
        assert chunks[-1].usage_metadata == whole.usage_metadata
        assert (
            chunks[0].usage_metadata.prompt_token_count == whole.usage_metadata.prompt_token_count
        )
        assert emu.stats()["calls"]["models.stream_generate_content"] == 1


def test_image_models_refuse_a_system_instruction():
    with Emulator(behaviour=STRICT) as emu:
        client = make_client(emu)
        with pytest.raises(errors.ClientError) as info:
            client.models.generate_content(
                model="gemini-2.5-flash-image",
                contents="Sky",
                config={"system_instruction": "Be nice"},
            )
        assert info.value.code == 400 and info.value.message == (
            "Developer instruction is not enabled for models/gemini-2.5-flash-image"
        )
        assert client.models.generate_content(model="gemini-2.5-flash-image", contents="Sky").text
