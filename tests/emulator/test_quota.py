"""Quotas and rate limits: batch limits on create and upload, per-minute limits on an injected
clock, latency that overlaps, and the counters a test asserts "never more than the limits" on."""

from __future__ import annotations

import io
import threading
import time

import httpx2
import pytest
from emu_helpers import (
    LENIENT,
    MODEL,
    STRICT,
    FakeClock,
    keyed,
    make_client,
    upload,
    wait_done,
    write_jsonl,
)
from google.genai import errors

from gembatch.emulator import Delays, Emulator, Limits

OFF = Limits.off()
NAMED = {"display_name": "quota-test"}


def quota_detail(exc: errors.APIError, kind: str) -> dict:
    details = {d["@type"].rsplit(".", 1)[1]: d for d in exc.details["error"]["details"]}
    assert details["QuotaFailure"]["violations"][0]["quotaMetric"].endswith(kind)
    return details


# -- batch limits ----------------------------------------------------------------------------------
def test_concurrent_jobs_limit_and_release():
    limits = OFF.with_(max_concurrent_jobs=2, batch_retry_delay_s=45)
    with Emulator(
        behaviour=STRICT, limits=limits, faults=[Delays(pending_s=1000)], clock=FakeClock()
    ) as emu:
        client = make_client(emu)
        first = client.batches.create(model=MODEL, src=[{"contents": "a"}], config=NAMED)
        client.batches.create(model=MODEL, src=[{"contents": "b"}], config=NAMED)
        with pytest.raises(errors.ClientError) as info:
            client.batches.create(model=MODEL, src=[{"contents": "c"}], config=NAMED)
        exc = info.value
        assert exc.code == 429 and exc.status == "RESOURCE_EXHAUSTED"
        assert "batch_concurrent_requests, limit: 2" in exc.message
        details = quota_detail(exc, "batch_concurrent_requests")
        assert details["RetryInfo"]["retryDelay"] == "45s"
        assert "retry-after" not in exc.response.headers
        client.batches.cancel(name=first.name)  # any terminal state gives the slot back
        client.batches.create(model=MODEL, src=[{"contents": "c"}], config=NAMED)
        stats = emu.stats()
        assert stats["peak_concurrent_jobs"] == 2 and stats["concurrent_jobs"] == 2
        assert stats["quota_429s"]["concurrent_jobs"] == 1


def test_enqueued_tokens_per_model(tmp_path):
    # "abcdefgh" is 2 tokens under the emulator's rule; 3 lines of it: 6 tokens
    limits = OFF.with_(enqueued_tokens={"gemini-2.5-flash": 10, "*": 4})
    with Emulator(
        behaviour=LENIENT, limits=limits, faults=[Delays(pending_s=1000)], clock=FakeClock()
    ) as emu:
        client = make_client(emu)
        rows = [keyed(i, "abcdefgh") for i in range(3)]
        up = upload(client, write_jsonl(tmp_path / "in.jsonl", rows))
        first = client.batches.create(model=MODEL, src=up.name)  # 6 of 10
        with pytest.raises(errors.ClientError) as info:  # 6 + 6 > 10
            client.batches.create(model=MODEL, src=up.name)
        assert info.value.code == 429
        assert "batch_enqueued_tokens, limit: 10, model: gemini-2.5-flash" in info.value.message
        details = quota_detail(info.value, "batch_enqueued_tokens")
        assert details["QuotaFailure"]["violations"][0]["quotaDimensions"]["model"] == MODEL
        assert info.value.response.headers["retry-after"] == "60"  # lenient: a header too
        client.batches.create(model=MODEL, src=[{"contents": "abcdefgh"}] * 2)  # 4 more: 10
        with pytest.raises(errors.ClientError):  # other models: the "*" figure, 4
            client.batches.create(model="gemini-2.5-pro", src=[{"contents": "abcdefghijkl"}] * 2)
        client.batches.create(model="gemini-2.5-pro", src=[{"contents": "abcdefgh"}] * 2)
        client.batches.cancel(name=first.name)
        client.batches.create(model=MODEL, src=up.name)  # 6 released, 6 taken
        stats = emu.stats()
        assert stats["enqueued_tokens"] == {MODEL: 10, "gemini-2.5-pro": 4}
        assert stats["peak_enqueued_tokens"] == {MODEL: 10, "gemini-2.5-pro": 4}
        assert stats["quota_429s"]["enqueued_tokens"] == 2


def test_finished_jobs_release_their_tokens():
    with Emulator(behaviour=LENIENT, limits=OFF.with_(enqueued_tokens={"*": 3})) as emu:
        client = make_client(emu)
        for _ in range(3):  # each 2 tokens, each finished before the next
            wait_done(
                client, client.batches.create(model=MODEL, src=[{"contents": "abcdefgh"}]).name
            )
        assert emu.stats()["peak_enqueued_tokens"] == {MODEL: 2}
        assert emu.stats()["enqueued_tokens"] == {}


def test_storage_budget_refuses_uploads_at_start_and_gives_back_on_delete():
    with Emulator(behaviour=STRICT, limits=OFF.with_(storage_bytes=100)) as emu:
        client = make_client(emu)
        first = client.files.upload(file=io.BytesIO(b"x" * 60), config={"mime_type": "text/plain"})
        with pytest.raises(errors.ClientError) as info:
            client.files.upload(file=io.BytesIO(b"y" * 60), config={"mime_type": "text/plain"})
        exc = info.value
        assert exc.code == 429 and exc.status == "RESOURCE_EXHAUSTED"
        assert exc.message.endswith("file_storage_bytes, limit: 100")
        details = quota_detail(exc, "file_storage_bytes")
        assert details["QuotaFailure"]["violations"][0]["quotaId"] == "FileStorageBytesPerProject"
        assert "RetryInfo" not in details
        assert emu.stats()["upload_sessions"] == 1  # refused at start: no session
        client.files.delete(name=first.name)
        client.files.upload(file=io.BytesIO(b"y" * 60), config={"mime_type": "text/plain"})
        stats = emu.stats()
        assert stats["storage_bytes"] == 60 and stats["peak_storage_bytes"] == 60
        assert stats["quota_429s"]["storage_bytes"] == 1


def test_storage_budget_refuses_at_finalize_without_a_declared_size():
    with Emulator(behaviour=STRICT, limits=OFF.with_(storage_bytes=10)) as emu:
        with httpx2.Client(base_url=emu.base_url, headers={"x-goog-api-key": "k"}) as http:
            start = http.post(
                "/upload/v1beta/files",
                headers={"X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start"},
            )
            url = start.headers["x-goog-upload-url"]
            done = http.post(
                url,
                content=b"z" * 11,
                headers={"X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "0"},
            )
        assert done.status_code == 429 and done.headers["x-goog-upload-status"] == "final"
        assert emu.files() == []


def test_expired_files_give_their_storage_back(tmp_path):
    now = [1_800_000_000.0]
    with Emulator(
        behaviour=STRICT, limits=OFF.with_(storage_bytes=100), wall=lambda: now[0]
    ) as emu:
        client = make_client(emu)
        client.files.upload(file=io.BytesIO(b"x" * 80), config={"mime_type": "text/plain"})
        with pytest.raises(errors.ClientError):
            client.files.upload(file=io.BytesIO(b"x" * 80), config={"mime_type": "text/plain"})
        now[0] += 48 * 3600
        client.files.upload(file=io.BytesIO(b"x" * 80), config={"mime_type": "text/plain"})


def test_result_files_do_not_count_against_storage(tmp_path):
    with Emulator(behaviour=LENIENT, limits=OFF.with_(storage_bytes=2000)) as emu:
        client = make_client(emu)
        up = upload(client, write_jsonl(tmp_path / "in.jsonl", [keyed(i) for i in range(5)]))
        wait_done(client, client.batches.create(model=MODEL, src=up.name).name)
        assert emu.stats()["storage_bytes"] == up.size_bytes


# -- per-minute limits -----------------------------------------------------------------------------
def test_requests_per_minute_on_the_injected_clock():
    clock = FakeClock(start=960.0)  # the start of a clock minute
    limits = OFF.with_(requests_per_minute={MODEL: 3})
    with Emulator(behaviour=STRICT, limits=limits, clock=clock) as emu:
        client = make_client(emu)
        for _ in range(3):
            client.models.generate_content(model=MODEL, contents="hi")
            clock.advance(10)
        with pytest.raises(errors.ClientError) as info:
            client.models.generate_content(model=MODEL, contents="hi")
        exc = info.value
        assert exc.code == 429 and "generate_content_paid_tier_requests, limit: 3" in exc.message
        details = quota_detail(exc, "generate_content_paid_tier_requests")
        assert details["RetryInfo"]["retryDelay"] == "30s"  # the first call leaves at 60 s
        assert client.models.count_tokens(model=MODEL, contents="hi").total_tokens  # exempt
        client.models.generate_content(model="gemini-2.5-pro", contents="hi")  # its own window
        clock.advance(30)
        client.models.generate_content(model=MODEL, contents="hi")
        stats = emu.stats()
        assert stats["peak_requests_per_minute"][MODEL] == 3
        assert stats["quota_429s"]["requests_per_minute"] == 1
        assert [m["requests"] for m in stats["per_minute"][MODEL]] == [3, 1]


def test_tokens_per_minute_and_embeddings():
    clock = FakeClock()
    limits = OFF.with_(tokens_per_minute={"*": 10})
    with Emulator(behaviour=LENIENT, limits=limits, clock=clock) as emu:
        client = make_client(emu)
        client.models.generate_content(model=MODEL, contents="a" * 32)  # 8 tokens
        clock.advance(15)
        with pytest.raises(errors.ClientError) as info:
            client.models.generate_content(model=MODEL, contents="a" * 12)  # 3 more: 11
        assert "input_token_count, limit: 10" in info.value.message
        assert info.value.response.headers["retry-after"] == "45"
        client.models.embed_content(model="gemini-embedding-001", contents=["a" * 16] * 2)
        with pytest.raises(errors.ClientError):  # 8 + 8 + 8 over the embedding model's 10
            client.models.embed_content(model="gemini-embedding-001", contents=["a" * 32])
        stats = emu.stats()
        assert stats["peak_tokens_per_minute"] == {MODEL: 8, "gemini-embedding-001": 8}
        assert stats["per_minute"]["gemini-embedding-001"][0]["requests"] == 2


def test_latency_is_real_and_calls_overlap():
    with Emulator(behaviour=LENIENT, limits=OFF.with_(latency_s=0.3)) as emu:
        client = make_client(emu)
        started = time.monotonic()
        threads = [
            threading.Thread(
                target=client.models.generate_content, kwargs={"model": MODEL, "contents": f"q{i}"}
            )
            for i in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        assert 0.3 <= elapsed < 1.0  # four 0.3 s calls at once, not one after the other
        assert emu.stats()["peak_interactive_in_flight"] >= 2
        assert emu.stats()["interactive_in_flight"] == 0


def test_default_limits_are_the_tier1_figures():
    limits = Limits()
    assert limits.max_concurrent_jobs == 100 and limits.storage_bytes == 20 * 1024**3
    assert limits.enqueued_limit("models/gemini-2.5-flash") == 3_000_000
    assert limits.enqueued_limit("gemini-2.5-pro") == 5_000_000
    assert limits.enqueued_limit("gemini-2.5-flash-lite") == 10_000_000
    assert limits.enqueued_limit("some-future-model") == 3_000_000
    with Emulator(behaviour=LENIENT) as emu:
        assert emu.limits == limits


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"max_concurrent_jobs": 0}, "max_concurrent_jobs"),
        ({"storage_bytes": -1}, "storage_bytes"),
        ({"enqueued_tokens": {"gemini-2.5-flash": "many"}}, "enqueued_tokens"),
        ({"requests_per_minute": [1, 2]}, "requests_per_minute"),
        ({"latency_s": -0.5}, "latency_s"),
    ],
)
def test_limits_validate_their_fields(changes, field):
    with pytest.raises(ValueError, match=field):
        Limits(**changes)
