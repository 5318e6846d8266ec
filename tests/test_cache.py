from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import polars as pl
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gembatch import cache as cache_mod
from gembatch._storage import Directory
from gembatch.cache import (
    LOOKUP_SCHEMA,
    CacheStats,
    CacheWarning,
    ResultCache,
    default_path,
)
from gembatch.exceptions import ConfigError, InputError

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


class Clock:
    """Each call returns the next second after T0."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> datetime:
        self.calls += 1
        return T0 + timedelta(seconds=self.calls)


def h(i: int) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


def entries(ids: list[int], tag: str = "r") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "hash": [h(i) for i in ids],
            "response": [json.dumps({"i": i, "tag": tag}) for i in ids],
            "model": ["gemini-2.5-flash"] * len(ids),
            "model_version": [None if i % 2 else "gemini-2.5-flash-001" for i in ids],
        },
        schema_overrides={"model_version": pl.Utf8},
    )


def found(cache: ResultCache, ids: list[int | None]) -> set[str]:
    query = pl.Series("q", [None if i is None else h(i) for i in ids], dtype=pl.Utf8)
    return set(cache.lookup(query)["hash"])


@pytest.fixture(params=["local", "memory"])
def root(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    if request.param == "local":
        yield str(tmp_path / "cache")
    else:
        url = f"memory://gembatch-test-cache/{uuid.uuid4().hex}"
        yield url
        Directory(url).remove("", recursive=True)


def make(root: str, **kwargs) -> ResultCache:
    return ResultCache(root, clock=Clock(), **kwargs)


def segments(cache: ResultCache) -> list[str]:
    return cache._segment_names()


# -- round trip --------------------------------------------------------------------------------


def test_put_lookup_round_trip(root):
    cache = make(root)
    assert cache.path == root
    assert cache.put(entries([1, 2, 3])) == 3
    out = cache.lookup(pl.Series([h(1), h(1), None, h(2), h(99)], dtype=pl.Utf8))
    assert out.schema == LOOKUP_SCHEMA
    out = out.sort("hash")
    expected = entries([1, 2]).sort("hash")
    assert out["hash"].to_list() == expected["hash"].to_list()
    assert out["response"].to_list() == expected["response"].to_list()
    assert out["model_version"].to_list() == expected["model_version"].to_list()
    assert out["created_at"].to_list() == [T0 + timedelta(seconds=1)] * 2


def test_segment_holds_only_the_cache_fields(tmp_path):
    cache = make(str(tmp_path))
    cache.put(entries([1]).with_columns(api_key=pl.lit("AIza-secret"), prompt=pl.lit("p")))
    (name,) = segments(cache)
    schema = pq.read_schema(tmp_path / "segments" / name)
    assert schema.names == ["hash", "response", "model", "model_version", "created_at"]
    assert b"AIza-secret" not in (tmp_path / "segments" / name).read_bytes()


def test_repeat_puts_do_not_duplicate(root):
    cache = make(root)
    assert cache.put(entries([0, 1, 2, 3, 4])) == 5
    assert cache.put(entries([3, 4, 5, 6, 7])) == 3
    assert cache.put(entries([1, 2, 7])) == 0
    assert cache.put(entries([8, 8, 8])) == 1
    assert cache.put(entries([])) == 0
    s = cache.stats()
    assert (s.entries, s.segments) == (9, 3)
    assert found(cache, list(range(10))) == {h(i) for i in range(9)}


def test_newest_entry_wins(tmp_path):
    """Two processes that both missed the cache each write the hash; lookups agree on the newest."""
    older, newer = make(str(tmp_path / "a")), make(str(tmp_path / "b"))
    newer._clock = lambda: T0 + timedelta(days=1)
    older.put(entries([1, 2], tag="old"))
    newer.put(entries([1], tag="new"))
    (name,) = segments(newer)
    os.replace(tmp_path / "b" / "segments" / name, tmp_path / "a" / "segments" / name)
    out = older.lookup(pl.Series([h(1), h(2)]))
    assert out.height == 2
    by_hash = dict(zip(out["hash"], out["response"]))
    assert json.loads(by_hash[h(1)])["tag"] == "new"
    assert json.loads(by_hash[h(2)])["tag"] == "old"
    assert older.stats().entries == 3  # the stored rows, duplicate included


def test_lookup_of_unknown_null_and_empty(root):
    cache = make(root)
    empty = cache.lookup(pl.Series([h(1)]))  # the directory does not even exist yet
    assert empty.schema == LOOKUP_SCHEMA and empty.is_empty()
    cache.put(entries([1]))
    assert cache.lookup(pl.Series([h(2), "not-a-hash"])).is_empty()
    assert cache.lookup(pl.Series([None, None], dtype=pl.Utf8)).schema == LOOKUP_SCHEMA
    assert cache.lookup(pl.Series([None, None])).is_empty()  # dtype Null
    assert cache.lookup(pl.Series([], dtype=pl.Utf8)).is_empty()


# -- bad arguments -----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "10", None])
def test_max_bytes_must_be_a_positive_int(bad):
    with pytest.raises(ConfigError, match="max_bytes must be a positive int"):
        ResultCache("memory://gembatch-test-cache/x", max_bytes=bad)


def test_lookup_rejects_non_utf8():
    cache = ResultCache("memory://gembatch-test-cache/x")
    with pytest.raises(InputError, match="Utf8"):
        cache.lookup(pl.Series([1, 2]))
    with pytest.raises(InputError, match="Series"):
        cache.lookup([h(1)])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "frame, match",
    [
        (entries([1]).drop("response"), r"lack column\(s\) \['response'\]"),
        (entries([1]).with_columns(response=pl.lit(None, pl.Utf8)), "'response' has 1 null"),
        (entries([1]).with_columns(hash=pl.lit(None, pl.Utf8)), "'hash' has 1 null"),
        (entries([1]).with_columns(hash=pl.col("hash").str.to_uppercase()), "lowercase hex"),
        (entries([1]).with_columns(hash=pl.lit("abc")), "e.g. 'abc'"),
        (entries([1]).with_columns(model=pl.lit(3)), "'model' must be Utf8"),
    ],
)
def test_put_rejects_bad_entries(frame, match):
    cache = ResultCache("memory://gembatch-test-cache/x")
    with pytest.raises(InputError, match=match):
        cache.put(frame)


def test_model_version_is_optional(tmp_path):
    cache = make(str(tmp_path))
    assert cache.put(entries([1]).drop("model_version")) == 1
    assert cache.lookup(pl.Series([h(1)]))["model_version"].to_list() == [None]


# -- stats, clear, bound -----------------------------------------------------------------------


def test_stats(root):
    cache = make(root, max_bytes=10**6)
    s = cache.stats()
    assert s == CacheStats(root, 0, 0, 0, None, None, 10**6)
    assert "0 entries" in str(s) and "empty" in str(s)
    cache.put(entries([1, 2, 3]))
    cache.put(entries([3, 4]))
    s = cache.stats()
    store = Directory(root)
    assert s.entries == 4 and s.segments == 2
    assert s.bytes == sum(store.size(f"segments/{n}") for n in segments(cache)) > 0
    assert (s.oldest, s.newest) == (T0 + timedelta(seconds=1), T0 + timedelta(seconds=2))
    assert f"at {root}" in str(s) and "4 entries in 2 segments" in str(s)
    assert "entries=4" in repr(cache) and root in repr(cache)
    assert cache_mod.stats(root).entries == 4


def test_clear(root):
    cache = make(root)
    cache.clear()  # nothing there yet
    cache.put(entries([1, 2]))
    store = Directory(root)
    store.write_bytes("notes.txt", b"not ours")
    with store.open("segments/.tmp-deadbeef-x.parquet", "wb") as fh:  # a crashed writer's leftover
        fh.write(b"partial")
    cache.clear()
    assert cache.stats().entries == 0 and cache.lookup(pl.Series([h(1)])).is_empty()
    assert store.listdir("segments") == []
    assert store.exists("notes.txt")
    cache_mod.clear(root)  # idempotent, module-level form
    assert cache.put(entries([1])) == 1


def test_size_bound_evicts_oldest_segments(root):
    probe = make(root + "-probe")
    probe.put(entries([100]))
    one = probe.stats().bytes
    cache = make(root, max_bytes=2 * one + one // 2)
    for i in range(5):
        cache.put(entries([i]))
    s = cache.stats()
    assert s.segments == 2 and s.bytes <= cache.max_bytes
    assert found(cache, list(range(5))) == {h(3), h(4)}
    assert s.oldest == T0 + timedelta(seconds=4)


def test_oversized_newest_segment_stays(root):
    cache = make(root, max_bytes=1)
    cache.put(entries([1, 2]))
    assert cache.stats().segments == 1
    cache.put(entries([3]))
    assert cache.stats().segments == 1
    assert found(cache, [1, 2, 3]) == {h(3)}


# -- concurrency and damage --------------------------------------------------------------------


@pytest.mark.filterwarnings("error::gembatch.cache.CacheWarning")
def test_segment_vanishing_between_listing_and_reading(root, monkeypatch):
    cache = make(root)
    cache.put(entries([1]))
    cache.put(entries([2]))
    listing = ResultCache._segment_names

    def list_then_prune(self: ResultCache) -> list[str]:
        names = listing(self)
        Directory(root).remove(
            f"segments/{names[0]}"
        )  # a concurrent prune, right after our listing
        return names

    monkeypatch.setattr(ResultCache, "_segment_names", list_then_prune)
    assert found(cache, [1, 2]) == {h(2)}


@pytest.mark.parametrize("damage", ["garbage", "truncated", "foreign"])
def test_corrupt_segment_warns_and_is_skipped(root, damage):
    cache = make(root)
    cache.put(entries([1]))
    store = Directory(root)
    bad = "20240101T000000000000Z-" + "0" * 32 + ".parquet"
    if damage == "garbage":
        store.write_bytes(f"segments/{bad}", b"PAR1 this is not parquet")
    elif damage == "truncated":
        data = store.read_bytes(f"segments/{segments(cache)[0]}")
        store.write_bytes(f"segments/{bad}", data[: len(data) // 2])
    else:
        store.write_parquet(f"segments/{bad}", pl.DataFrame({"hash": [h(2)], "other": [1]}))
    with pytest.warns(CacheWarning, match=bad):
        assert found(cache, [1, 2]) == {h(1)}
    with pytest.warns(CacheWarning, match=bad):
        s = cache.stats()
    assert (s.entries, s.segments) == (1, 2)
    with pytest.warns(CacheWarning, match=bad):
        assert cache.put(entries([1, 2])) == 1


@pytest.mark.filterwarnings("error::gembatch.cache.CacheWarning")
def test_concurrent_writers_and_readers(tmp_path):
    """Threads put overlapping entries and prune while others look up: no error, no torn segment."""
    path = str(tmp_path)

    def writer(k: int) -> None:
        c = ResultCache(path, max_bytes=20_000)
        for i in range(8):
            c.put(entries([k * 100 + i, i]))

    def reader() -> None:
        c = ResultCache(path)
        for _ in range(15):
            out = c.lookup(pl.Series([h(i) for i in range(8)]))
            assert out["hash"].is_unique().all()
            c.stats()

    with ThreadPoolExecutor(5) as pool:
        jobs = [pool.submit(writer, k) for k in range(3)] + [pool.submit(reader) for _ in range(2)]
        for job in jobs:
            job.result()  # re-raises what the thread raised
    assert not [n for n in os.listdir(tmp_path / "segments") if n.startswith(".tmp-")]
    for name in segments(ResultCache(path)):
        pq.read_table(tmp_path / "segments" / name)  # every segment complete


# -- default location --------------------------------------------------------------------------


def test_default_path(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("GEMBATCH_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert default_path() == str(tmp_path / "home" / ".cache" / "gembatch" / "results")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert default_path() == str(tmp_path / "home" / ".cache" / "gembatch" / "results")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_path() == str(tmp_path / "xdg" / "gembatch" / "results")
    monkeypatch.setenv("GEMBATCH_CACHE_DIR", "~/mine")
    assert default_path() == str(tmp_path / "home" / "mine")
    monkeypatch.setenv("GEMBATCH_CACHE_DIR", "s3://bucket/cache/")
    assert default_path() == "s3://bucket/cache"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GEMBATCH_CACHE_DIR", "rel")
    assert default_path() == str(tmp_path / "rel")


def test_default_cache_and_module_functions(monkeypatch, tmp_path):
    monkeypatch.setenv("GEMBATCH_CACHE_DIR", str(tmp_path / "c"))
    cache = ResultCache()
    assert cache.path == str(tmp_path / "c")
    cache.put(entries([1]))
    assert cache_mod.stats().entries == 1
    cache_mod.clear()
    assert cache_mod.stats().entries == 0


# -- property ----------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    puts=st.lists(st.lists(st.integers(0, 40), max_size=12), max_size=4),
    query=st.lists(st.one_of(st.none(), st.integers(0, 60)), max_size=30),
)
def test_lookup_returns_put_hashes_that_were_asked(puts, query):
    url = f"memory://gembatch-test-cache/prop-{uuid.uuid4().hex}"
    cache = ResultCache(url)
    try:
        for ids in puts:
            cache.put(entries(ids))
        stored = {i for ids in puts for i in ids}
        out = cache.lookup(pl.Series([None if i is None else h(i) for i in query], dtype=pl.Utf8))
        assert out["hash"].is_unique().all()
        assert set(out["hash"]) == {h(i) for i in stored & {i for i in query if i is not None}}
        assert cache.stats().entries == len(stored)
    finally:
        Directory(url).remove("", recursive=True)
