"""Input, output and run directory on S3, against a local S3 server (moto) on loopback."""

from __future__ import annotations

import polars as pl
import pytest

import gembatch
from gembatch import Config, Options

moto_server = pytest.importorskip("moto.server")
s3fs = pytest.importorskip("s3fs")


@pytest.fixture()
def s3(monkeypatch):
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    options = {"client_kwargs": {"endpoint_url": endpoint}, "key": "testing", "secret": "testing"}
    import urllib.request

    urllib.request.urlopen(
        urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    )  # moto's state is per process
    fs = s3fs.S3FileSystem(**options, skip_instance_cache=True)
    fs.mkdir("gembatch-test")
    try:
        yield fs, options
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        server.stop()


def test_s3_round_trip_with_resume(s3, emu, tmp_path):
    fs, options = s3
    frame = pl.DataFrame(
        {"id": [f"r{i}" for i in range(40)], "text": [f"S3 row {i}" for i in range(40)]}
    )
    with fs.open("gembatch-test/in/data.parquet", "wb") as fh:
        frame.write_parquet(fh)
    opts = Options(
        poll_interval=0.01, max_poll_interval=0.05, shard_max_rows=15, inline_max_bytes=0
    )
    run = gembatch.batch_generate_parquet(
        "s3://gembatch-test/in/data.parquet",
        "s3://gembatch-test/out/",
        prompt="text",
        config=Config(model="gemini-2.5-flash"),
        key="id",
        job_dir="s3://gembatch-test/runs/one",
        options=opts,
        progress=False,
        storage_options=options,
    )
    parts = sorted(fs.ls("gembatch-test/out/"))
    assert len(parts) == 3
    out = pl.concat([pl.read_parquet(fs.open(p, "rb")) for p in parts])
    assert out["id"].to_list() == frame["id"].to_list() and (out["gemini_status"] == "ok").all()
    assert fs.exists("gembatch-test/runs/one/run.json")
    reopened = gembatch.BatchRun.open(
        "s3://gembatch-test/runs/one", storage_options=options, progress=False
    )
    assert reopened.result().equals(out)
    assert emu.stats()["batches_created"] == 3
    assert run.status(refresh=False).state == "done"


def test_result_cache_on_s3(s3, emu, tmp_path):
    fs, options = s3
    frame = pl.DataFrame(
        {"id": [f"r{i}" for i in range(20)], "text": [f"cached row {i}" for i in range(20)]}
    )
    cache = gembatch.ResultCache("s3://gembatch-test/cache", storage_options=options)
    opts = Options(poll_interval=0.01, max_poll_interval=0.05)
    first = frame.gemini.batch_generate(
        "text",
        config=Config(model="gemini-2.5-flash"),
        key="id",
        job_dir=tmp_path / "a",
        options=opts,
        progress=False,
        cache=cache,
    )
    assert first["gemini_origin"].eq("batch").all()
    assert cache.stats().entries == 20 and fs.ls("gembatch-test/cache/segments")
    second = frame.gemini.batch_generate(
        "text",
        config=Config(model="gemini-2.5-flash"),
        key="id",
        job_dir=tmp_path / "b",
        options=opts,
        progress=False,
        cache=cache,
    )
    assert second["gemini_origin"].eq("cache").all()
    assert second.drop("gemini_origin", "gemini_batch_job").equals(
        first.drop("gemini_origin", "gemini_batch_job")
    )
    assert emu.stats()["lines_processed"] == 20
