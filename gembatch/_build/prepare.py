"""The prepare step: input rows -> validated, keyed request shards in the run directory.

Everything here happens before anything is uploaded or created: a bad row stops the run with nothing
spent. Input is consumed in bounded slices; each slice is checked, turned into request lines (pure
transforms in :mod:`gembatch.requests`), and streamed into the open shard's ``requests.jsonl`` and
``input.parquet`` (the input rows plus their key and send flag, needed to join results back after a
restart). The manifest is written last, by :meth:`Journal.create`.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import math
import os
import uuid
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from . import hashing
from . import lines as rq
from ..exceptions import InputError, ResultWarning, RunMismatchError
from .._state.journal import Journal, ShardRecord, ShardState
from .shards import ShardCutter, fits_inline
from .._storage import Store, parquet_dataset

if TYPE_CHECKING:
    from ..cache import ResultCache

__all__ = ["HASH_COL", "KEY_COL", "SEND_COL", "VIA_COL", "Options", "RequestPlan", "fingerprint",
           "prepare_run"]

KEY_COL = "__gembatch_key"
SEND_COL = "__gembatch_send"  # the row asks something (False: skipped, e.g. a null prompt)
HASH_COL = "__gembatch_hash"  # the request's content address (gembatch.hashing)
VIA_COL = "__gembatch_via"  # how the row gets its answer: "line" | "dup" | "cache" (null: skipped)


@dataclass(frozen=True, kw_only=True)
class Options:
    """How a run is cut up, sent and awaited. Defaults suit the real service."""

    shard_max_rows: int = 200_000
    shard_max_bytes: int = 1_000_000_000  # well under the 2 GB file limit
    inline_max_bytes: int = 10_000_000  # under the 20 MB inline request limit
    # inline requests and answers pass through the SDK as Python objects (20,000 rows inline: a peak
    # of 817 MiB, against 420 MiB through a file): a run of more lines uploads a file instead
    inline_max_rows: int = 5_000
    max_request_bytes: int = 20_000_000
    slice_rows: int = 100_000
    upload_concurrency: int = 4
    poll_interval: float = 10.0
    max_poll_interval: float = 120.0
    cleanup_remote: bool = True
    prefix: str = "gemini_"
    resubmit_expired: bool = True  # send the rows of an EXPIRED job again, automatically
    max_resubmits: int = 3  # resubmissions per shard (expired, watchdog, retry_failed together)
    stuck_after: float | None = None  # seconds without start or progress before the watchdog acts
    dedup: bool = True  # identical requests within a shard are sent once, the answer fanned out

    def __post_init__(self) -> None:
        from ..exceptions import ConfigError

        for name in ("shard_max_rows", "shard_max_bytes", "inline_max_bytes", "inline_max_rows",
                     "max_request_bytes", "slice_rows", "upload_concurrency"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name.startswith("inline") else 1):
                raise ConfigError(f"{name} must be a positive int (got {value!r}).")
        if self.inline_max_bytes > 20_000_000:
            raise ConfigError(
                f"inline_max_bytes must be at most 20,000,000: the Batch API refuses inline requests "
                f"over 20 MB (got {self.inline_max_bytes:,})."
            )
        if self.shard_max_bytes > 2_000_000_000:
            raise ConfigError(
                f"shard_max_bytes must be at most 2,000,000,000: the File API refuses files over 2 GB "
                f"(got {self.shard_max_bytes:,})."
            )
        if not (self.poll_interval > 0 and self.max_poll_interval >= self.poll_interval):
            raise ConfigError("poll_interval must be > 0 and <= max_poll_interval.")
        if self.stuck_after is not None and not self.stuck_after > 0:
            raise ConfigError(f"stuck_after must be None or a number of seconds > 0 (got {self.stuck_after!r}).")
        if isinstance(self.max_resubmits, bool) or not isinstance(self.max_resubmits, int) or self.max_resubmits < 0:
            raise ConfigError(f"max_resubmits must be an int >= 0 (got {self.max_resubmits!r}).")

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True, kw_only=True)
class RequestPlan:
    """What each row asks: the pure description the request lines are built from."""

    kind: str  # "generate" | "embed"
    model: str
    static: dict[str, Any]
    prompt: pl.Expr
    key_column: str | None = None
    system_instruction: pl.Expr | None = None
    media: tuple[rq.MediaParts, ...] = ()
    skip_null_prompts: bool = False
    columns_needed: tuple[str, ...] = field(default_factory=tuple)
    hashed: bool = True  # add each request's content address (for dedup and the result cache)
    service: str = hashing.GOOGLE  # who answers (part of the content address): Backend.service

    def keys(self, offset: int) -> pl.Expr:
        if self.key_column is not None:
            return pl.col(self.key_column).cast(pl.Utf8, strict=True)
        return (pl.int_range(pl.len(), dtype=pl.Int64) + offset).cast(pl.Utf8)

    def lines(self, frame: pl.DataFrame, offset: int) -> pl.DataFrame:
        """``key``, ``line`` (and ``hash`` when :attr:`hashed`) of every row of ``frame``."""
        prefix = hashing.hash_prefix(self.kind, self.model, self.service) if self.hashed else None
        if self.kind == "embed":
            return rq.build_embed_lines(frame, text=self.prompt, keys=self.keys(offset), static=self.static,
                                        hash_prefix=prefix)
        return rq.build_generate_lines(
            frame, prompt=self.prompt, keys=self.keys(offset), static=self.static,
            system_instruction=self.system_instruction, media=self.media, hash_prefix=prefix,
        )


class Source:
    """Input rows, read in bounded consecutive slices (memory stays flat for any input size)."""

    schema: pl.Schema

    def slices(self, rows: int) -> Iterator[pl.DataFrame]:
        raise NotImplementedError

    def column(self, name: str) -> pl.Series:
        """One whole column (for the global key check)."""
        return pl.concat([s.get_column(name) for s in self.slices(1_000_000)])

    def height(self) -> int:
        return sum(s.height for s in self.slices(1_000_000))

    def sample(self, size: float, *, seed: int = 0, slice_rows: int = 100_000) -> pl.DataFrame:
        """A random sample of the rows, the same for the same input and seed: ``size`` rows if an int,
        else that fraction of the rows (at least one), drawn slice by slice."""
        height = self.height()
        want = min(height, int(size) if isinstance(size, int) else max(1, math.ceil(size * height)))
        parts = []
        for i, part in enumerate(self.slices(slice_rows)):
            take = min(part.height, math.ceil(want * part.height / max(height, 1)))
            parts.append(part.sample(n=take, seed=seed + i))
        return pl.concat(parts).head(want) if parts else pl.DataFrame(schema=self.schema)


class FrameSource(Source):
    """An in-memory DataFrame."""

    def __init__(self, frame: pl.DataFrame) -> None:
        self.frame = frame
        self.schema = frame.schema

    def slices(self, rows: int) -> Iterator[pl.DataFrame]:
        for start in range(0, max(self.frame.height, 1), rows):
            yield self.frame.slice(start, rows)

    def column(self, name: str) -> pl.Series:
        return self.frame.get_column(name)

    def height(self) -> int:
        return self.frame.height


class ParquetSource(Source):
    """Parquet file(s): a path, a glob or a dataset directory, local or any fsspec URL."""

    def __init__(self, source: str | os.PathLike[str], storage_options: dict[str, Any] | None = None) -> None:
        self.dataset = parquet_dataset(source, storage_options)
        self.schema = pl.Schema(pl.from_arrow(self.dataset.schema.empty_table()).schema)  # type: ignore[union-attr]

    def slices(self, rows: int) -> Iterator[pl.DataFrame]:
        """File by file, ``rows`` at a time, without pre-buffering: the dataset scanner's buffers grow
        with the input (+150 MB from 0.5 M to 2 M rows), a file reader's do not (+30 MB)."""
        empty = True
        schema = self.dataset.schema
        for fragment in self.dataset.get_fragments():
            with self.dataset.filesystem.open_input_file(fragment.path) as fh:
                reader = pq.ParquetFile(fh, pre_buffer=False)
                if reader.schema_arrow == schema:
                    batches: Iterator[pa.RecordBatch] = reader.iter_batches(batch_size=rows)
                else:  # columns in another order or missing: the dataset's unified schema
                    batches = iter(fragment.to_batches(schema=schema, batch_size=rows))
                for batch in batches:
                    if batch.num_rows:
                        empty = False
                        yield pl.from_arrow(batch)  # type: ignore[misc]
        if empty:
            yield pl.from_arrow(schema.empty_table())  # type: ignore[misc]

    def column(self, name: str) -> pl.Series:
        return pl.from_arrow(self.dataset.to_table(columns=[name]).column(name))  # type: ignore[return-value]

    def height(self) -> int:
        return int(self.dataset.count_rows())


class LazySource(Source):
    """A LazyFrame, collected one bounded slice at a time (slice pushdown keeps scans cheap)."""

    def __init__(self, frame: pl.LazyFrame) -> None:
        self.frame = frame
        self.schema = frame.collect_schema()
        self._height = int(frame.select(pl.len()).collect().item())

    def height(self) -> int:
        return self._height

    def slices(self, rows: int) -> Iterator[pl.DataFrame]:
        for start in range(0, max(self._height, 1), rows):
            yield self.frame.slice(start, rows).collect()

    def column(self, name: str) -> pl.Series:
        return self.frame.select(name).collect().get_column(name)


def as_source(data: Any, storage_options: dict[str, Any] | None = None) -> Source:
    if isinstance(data, Source):
        return data
    if isinstance(data, pl.DataFrame):
        return FrameSource(data)
    if isinstance(data, pl.LazyFrame):
        return LazySource(data)
    if isinstance(data, (str, os.PathLike)):
        return ParquetSource(data, storage_options)
    raise InputError(
        f"gembatch takes a polars DataFrame or LazyFrame, or a Parquet path (got {type(data).__name__}). "
        "Hint: pl.from_pandas(df) or pl.from_arrow(table) converts other frames."
    )


def check_keys(source: Source, plan: RequestPlan) -> None:
    """Null or repeated keys anywhere in the input (slices are checked one by one as well)."""
    if plan.key_column is None:
        return
    if plan.key_column not in source.schema:
        rq.check_inputs(pl.DataFrame(schema=source.schema), prompt=plan.prompt, key_column=plan.key_column,
                        columns_needed=plan.columns_needed)
    keys = source.column(plan.key_column)
    rq.check_inputs(keys.to_frame(), prompt=pl.lit("x"), key_column=plan.key_column,
                    columns_needed=(plan.key_column,))


def iter_prepared(
    source: Source, plan: RequestPlan, options: Options
) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
    """Check the input, then yield ``(input slice + key/send columns, request lines)`` per slice.

    Every slice is checked before it is yielded, and every key across slices first, so any bad row
    stops the run before the caller sends anything (shards are only sent after the last slice).
    """
    check_keys(source, plan)
    start = 0
    for part in source.slices(options.slice_rows):
        mask = rq.check_inputs(
            part, prompt=plan.prompt, key_column=plan.key_column, columns_needed=plan.columns_needed,
            skip_null_prompts=plan.skip_null_prompts, row_offset=start,
        )
        lines = plan.lines(part, start)
        rq.check_sizes(lines, max_request_bytes=options.max_request_bytes, row_offset=start, send_mask=mask)
        rows = part.with_columns(lines["key"].alias(KEY_COL), mask.alias(SEND_COL),
                                 *([lines["hash"].alias(HASH_COL)] if "hash" in lines.columns else []))
        nbytes = pl.when(mask).then(rq.request_bytes(lines).cast(pl.Int64)).otherwise(0)
        yield rows, lines.with_columns(nbytes.alias("nbytes"))
        start += part.height


class _Digesting:
    """A binary writer that feeds what it writes to some hashes first (``sink`` None: only hashes)."""

    def __init__(self, sink: IO[bytes] | None, *hashes: Any) -> None:
        self.sink, self.hashes = sink, hashes

    def write(self, data: bytes) -> int:
        for h in self.hashes:
            h.update(data)
        return len(data) if self.sink is None else self.sink.write(data)

    def flush(self) -> None:
        if self.sink is not None:
            self.sink.flush()


def _digest_jsonl(lines: pl.Series, *hashes: Any, sink: IO[bytes] | None = None) -> None:
    """Feed ``hashes`` the JSONL of ``lines`` (each followed by a newline), writing it to ``sink``
    too when given: straight from the polars writer's buffers, never joined into one bytes object."""
    if len(lines):
        rq.write_jsonl(lines, _Digesting(sink, *hashes))  # type: ignore[arg-type]


def _input_writer(fh: IO[bytes], schema: pa.Schema) -> pq.ParquetWriter:
    """The writer of a shard's ``input.parquet``: a working file, written once and read once (at the
    join), so it is made for speed. The key and the hash (unique, incompressible hex) are stored
    plain; the user's columns snappy-compressed (half zstd's time, ~1.5x its size); no statistics.
    For 1 M rows of ~200-character prompts: 0.5 s and 156 MB, against zstd's 1.25 s and 95 MB."""
    plain = {KEY_COL, HASH_COL}
    return pq.ParquetWriter(
        fh, schema, compression={name: "none" if name in plain else "snappy" for name in schema.names},
        use_dictionary=[name for name in schema.names if name not in plain], write_statistics=False,
    )


class _Writer:
    """The prepare's file writes and digests, done in order on one background thread, one slice
    behind the main thread: while slice i is encoded, compressed and hashed there, slice i+1 is read,
    checked and built here. At most one slice waits for it, so memory stays bounded."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gembatch-prepare")
        self._pending: Future[None] | None = None

    def submit(self, jobs: list[Callable[[], None]]) -> None:
        """Run ``jobs`` in order after everything submitted before (waits for the previous slice)."""
        self.wait()
        if jobs:
            self._pending = self._pool.submit(_run_all, jobs)

    def wait(self) -> None:
        """Wait for what was submitted; re-raise its error here."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _run_all(jobs: list[Callable[[], None]]) -> None:
    for job in jobs:
        job()


class _ShardFiles:
    """The open shard's files, written as slices arrive: ``requests.jsonl`` (the lines to send),
    ``input.parquet`` (every row, with its key, hash and route) and ``cached.jsonl`` (answers the
    result cache already holds, as result lines).

    The counts are kept by the caller's thread (:meth:`add`); the writing itself is a job it returns,
    for the :class:`_Writer`."""

    def __init__(self, store: Store, index: int) -> None:
        self.store = store
        self.index = index
        self.dir = f"shards/{index:06d}"
        store.makedirs(self.dir)
        self.jsonl: IO[bytes] = store.open(f"{self.dir}/requests.jsonl", "wb")
        self.parquet_fh: IO[bytes] = store.open(f"{self.dir}/input.parquet", "wb")
        self.cached_fh: IO[bytes] | None = None
        self.writer: pq.ParquetWriter | None = None
        self.sha = hashlib.sha256()
        self.rows = self.lines = self.bytes = self.dedup = self.cached = 0
        self.seen = pl.Series("hash", [], dtype=pl.Utf8)  # hashes sent by this shard (bounded by its rows)

    def route(self, rows: pl.DataFrame, hits: pl.Series, *, dedup: bool) -> pl.Series:
        """Each row's route: its own ``line``, a ``dup`` of a line of this shard, or from the ``cache``."""
        send = pl.col(SEND_COL)
        if HASH_COL not in rows.columns:
            return rows.select(pl.when(send).then(pl.lit("line")).alias(VIA_COL)).to_series()
        h = pl.col(HASH_COL)
        route: Any = pl.when(~send).then(pl.lit(None, dtype=pl.Utf8))
        if dedup:
            route = route.when(h.is_in(self.seen.implode())).then(pl.lit("dup"))
        route = route.when(h.is_in(hits.implode())).then(pl.lit("cache"))
        first = pl.when(send).then(h).is_first_distinct() if dedup else pl.lit(True)
        via = rows.select(route.when(first).then(pl.lit("line")).otherwise(pl.lit("dup")).alias(VIA_COL))
        return via.to_series()

    def add(self, rows: pl.DataFrame, lines: pl.Series, nbytes: int, answers: pl.Series | None = None, *,
            asked: pl.Series | None = None, digest: Any = None) -> Callable[[], None]:
        """Count rows (with their route), the lines to send (``nbytes``: their JSONL bytes) and cached
        answers; return the job that writes them. The job also feeds ``digest`` the JSONL of ``asked``
        (default: ``lines``)."""
        if rows.height:
            self.rows += rows.height
            if HASH_COL in rows.columns:
                via = rows[VIA_COL]
                self.seen = pl.concat([self.seen, rows.filter(via == "line")[HASH_COL].rename("hash")])
                self.dedup += int((via == "dup").sum())
        self.lines += len(lines)
        self.bytes += nbytes
        self.cached += 0 if answers is None else len(answers)

        def write() -> None:
            if rows.height:
                table = rows.to_arrow()
                if self.writer is None:
                    self.writer = _input_writer(self.parquet_fh, table.schema)
                self.writer.write_table(table)
            same = digest is not None and asked is None  # the digest takes the lines written
            _digest_jsonl(lines, self.sha, *([digest] if same else []), sink=self.jsonl)
            if digest is not None and asked is not None:
                _digest_jsonl(asked, digest)
            if answers is not None and len(answers):
                if self.cached_fh is None:
                    self.cached_fh = self.store.open(f"{self.dir}/cached.jsonl", "wb")
                rq.write_jsonl(answers, self.cached_fh)

        return write

    def close(self, schema: pa.Schema | None) -> Callable[[], None]:
        """Let go of the shard's dedup set; return the job that closes its files."""
        self.seen = self.seen.clear()  # closed shards keep only their counts (memory stays flat)

        def close() -> None:
            if self.writer is None and schema is not None:
                self.writer = _input_writer(self.parquet_fh, schema)
            if self.writer is not None:
                self.writer.close()
            self.parquet_fh.close()
            self.jsonl.close()
            if self.cached_fh is not None:
                self.cached_fh.close()

        return close


def _cache_hits(cache: ResultCache | None, rows: pl.DataFrame) -> pl.DataFrame:
    """The cached answers (``hash``, ``response``) for the requests of ``rows`` (empty without a cache)."""
    empty = pl.DataFrame(schema={"hash": pl.Utf8, "response": pl.Utf8})
    if cache is None or HASH_COL not in rows.columns:
        return empty
    wanted = rows.filter(pl.col(SEND_COL))[HASH_COL]
    if not len(wanted):
        return empty
    try:
        return cache.lookup(wanted).select("hash", "response")
    except OSError as exc:  # the cache saves money; an unreadable one must not stop the run
        warnings.warn(f"gembatch could not read the result cache {cache.path!r} ({exc}); these rows are "
                      "sent instead.", ResultWarning, stacklevel=2)
        return empty


def _answers(rows: pl.DataFrame, hits: pl.DataFrame) -> pl.Series | None:
    """Result lines for the rows routed to the cache, keyed by each row's own key."""
    cached = rows.filter(pl.col(VIA_COL) == "cache")
    if not cached.height:
        return None
    responses = cached.select(HASH_COL).join(hits, left_on=HASH_COL, right_on="hash", how="left",
                                             maintain_order="left")["response"]
    return rq.answer_lines(cached[KEY_COL], responses)


def prepare_run(
    store: Store, source: Source, plan: RequestPlan, options: Options,
    manifest: dict[str, Any], cache: ResultCache | None = None,
) -> Journal:
    """Validate the input, write its shards and the manifest; return the new journal.

    With a hashed plan, identical requests within a shard are written once (``options.dedup``) and
    requests ``cache`` already answered are not written at all: their answers go to ``cached.jsonl``.
    """
    run_id = manifest.setdefault("run_id", uuid.uuid4().hex[:12])
    store.remove("shards", recursive=True)  # leftovers of a prepare that died before run.json
    planner = ShardCutter(max_rows=options.shard_max_rows, max_bytes=options.shard_max_bytes)
    done: list[_ShardFiles] = []
    current: _ShardFiles | None = None
    line_sha, data_sha = hashlib.sha256(), _data_digest(source)
    schema: pa.Schema | None = None
    total_bytes = height = asked = 0
    writer = _Writer()
    try:
        for rows, lines in iter_prepared(source, plan, options):
            jobs: list[Callable[[], None]] = []
            height += rows.height
            asked += int(rows[SEND_COL].sum())
            _update_data_digest(data_sha, _user_columns(rows))
            hits = _cache_hits(cache, rows)
            positions = planner.cuts(lines["nbytes"])
            if positions[:1] == [0] and current is not None:
                jobs.append(current.close(schema))
                done.append(current)
                current = None
            bounds = [0, *(p for p in positions if p > 0), rows.height]
            for a, b in itertools.pairwise(bounds):
                if a > 0 and current is not None:  # a new shard begins at a
                    jobs.append(current.close(schema))
                    done.append(current)
                    current = None
                if current is None:
                    current = _ShardFiles(store, len(done))
                part_rows, part_lines = rows.slice(a, b - a), lines.slice(a, b - a)
                via = current.route(part_rows, hits["hash"], dedup=options.dedup)
                part_rows = part_rows.with_columns(via)
                schema = part_rows.to_arrow().schema if schema is None else schema
                sent, asked_here = via == "line", part_rows[SEND_COL]
                same = bool((sent == asked_here).all())  # else the digest needs the asked lines
                to_send = part_lines.filter(sent)
                nbytes = int(to_send["nbytes"].sum())
                jobs.append(current.add(part_rows, to_send["line"], nbytes, _answers(part_rows, hits),
                                        asked=None if same else part_lines.filter(asked_here)["line"],
                                        digest=line_sha))  # the digest is independent of dedup/cache
                total_bytes += nbytes
            writer.submit(jobs)
        if current is not None:
            writer.submit([current.close(schema)])
            done.append(current)
            current = None
        writer.wait()
    finally:
        if current is not None:  # stopped by an error: let the files go (the next prepare removes them)
            with contextlib.suppress(Exception):
                writer.wait()
            with contextlib.suppress(Exception):
                current.close(schema)()
        writer.close()
    inline = len(done) == 1 and fits_inline(done[0].lines, total_bytes, max_rows=options.inline_max_rows,
                                            max_bytes=options.inline_max_bytes)
    shards = [
        ShardRecord(
            index=f.index, rows=f.rows, lines=f.lines, bytes=f.bytes, sha256=f.sha.hexdigest(),
            mode="none" if f.lines == 0 else ("inline" if inline else "file"),
            display_name=f"gembatch-{run_id}-{f.index:05d}-{f.sha.hexdigest()[:8]}",
        )
        for f in done
    ]
    manifest["fingerprint"] = fingerprint(line_sha.hexdigest(), data_sha.hexdigest(), plan)
    manifest["rows"] = height
    manifest["lines"] = sum(s.lines for s in shards)
    manifest["requests"] = asked  # rows that ask something (not skipped)
    manifest["deduplicated"] = sum(f.dedup for f in done)
    manifest["cached"] = sum(f.cached for f in done)
    journal = Journal.create(store, manifest, shards)
    for shard in shards:
        if shard.mode == "none":  # nothing to send: every row skipped or answered from the cache
            store.write_bytes(shard.path("results.jsonl"), b"")
            journal.move(shard, ShardState.FETCHED, note="nothing to send")
    return journal


def _user_columns(rows: pl.DataFrame) -> pl.DataFrame:
    return rows.drop([c for c in (KEY_COL, SEND_COL, HASH_COL, VIA_COL) if c in rows.columns])


def _data_digest(source: Source) -> Any:
    digest = hashlib.sha256()
    digest.update(repr(source.schema).encode())
    return digest


def _update_data_digest(digest: Any, rows: pl.DataFrame) -> None:
    if rows.height:
        digest.update(bytes(rows.hash_rows(seed=7).rechunk().to_arrow().buffers()[1] or b""))


def fingerprint(lines_sha: str, data_sha: str, plan: RequestPlan) -> dict[str, Any]:
    """What identifies a run's input: the request lines, and the input data itself."""
    return {"requests_sha256": lines_sha, "data_sha256": data_sha, "polars": pl.__version__,
            "model": plan.model, "kind": plan.kind}


def digests(source: Source, plan: RequestPlan, options: Options) -> tuple[str, str]:
    """The sha256 of the request lines the input would send, and of the input rows."""
    lines_sha, data_sha = hashlib.sha256(), _data_digest(source)
    for rows, lines in iter_prepared(source, plan, options):
        _digest_jsonl(lines.filter(rows[SEND_COL])["line"], lines_sha)
        _update_data_digest(data_sha, _user_columns(rows))
    return lines_sha.hexdigest(), data_sha.hexdigest()


def check_same_input(
    stored: dict[str, Any], source: Source, plan: RequestPlan, options: Options, where: str
) -> None:
    """Refuse to resume a run over different input or config."""
    fp = stored.get("fingerprint", {})
    lines_sha, data_sha = digests(source, plan, options)
    problems = []
    if fp.get("requests_sha256") != lines_sha:
        problems.append("the requests differ (prompts, keys or config changed)")
    elif fp.get("polars") == pl.__version__ and fp.get("data_sha256") != data_sha:
        problems.append("the input rows differ (other columns changed)")
    if problems:
        raise RunMismatchError(
            f"The run directory {where!r} holds a run over different input: {'; '.join(problems)}. "
            "Hint: use a new job_dir for new input, or BatchRun.open(job_dir) to look at the old run."
        )
