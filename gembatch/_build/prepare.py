"""The prepare step: input rows -> validated, keyed request shards written to the run directory.

Everything here happens before anything is uploaded or created: a bad row stops the run with nothing
spent. Input is consumed in bounded slices; each slice is checked (:mod:`.checks`), turned into
request lines (:mod:`.lines`), routed (its own line, a duplicate of an earlier row of the shard, or
answered by the result cache), cut into shards (:mod:`.shards`) and streamed, by one background
writer thread one slice behind, into the open shard's files:

- ``requests.jsonl``: the lines to send;
- ``input.parquet``: the user's rows, exactly as given (no column added);
- ``keys.parquet``: row for row, gembatch's own columns (key, hash, send, route), kept beside the
  user's frame so that no user column can ever clash with them;
- ``cached.jsonl``: the answers the result cache already held, as result lines.

:func:`write_shards` returns the shard records and counts; the caller writes the manifest.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

import polars as pl

from .._state.journal import seal_file
from .._state.records import HASH, KEY, SEND, TOKENS, VIA, Fingerprint, ShardRecord
from .._storage import DigestWriter, Directory
from ..config import Options
from ..exceptions import ResultWarning
from . import checks
from . import lines as ln
from .shards import ShardCutter, fits_inline
from .sources import Source
from .spec import RequestSpec

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..cache import ResultCache

__all__ = ["Prepared", "digests", "iter_checked", "write_shards"]


@dataclass(frozen=True)
class Prepared:
    """What :func:`write_shards` wrote: the shard records and the counts the manifest keeps."""

    shards: list[ShardRecord]
    fingerprint: Fingerprint
    rows: int
    lines: int
    requests: int  # rows that ask something (not skipped)
    deduplicated: int
    cached: int


def check_keys(source: Source, spec: RequestSpec) -> None:
    """Null or repeated keys anywhere in the input (slices are checked one by one as well)."""
    if spec.key_column is None:
        return
    if spec.key_column not in source.schema:
        checks.check_inputs(
            pl.DataFrame(schema=source.schema),
            prompt=spec.prompt,
            key_column=spec.key_column,
            columns_needed=spec.columns_needed,
        )
    keys = source.column(spec.key_column)
    checks.check_keys(keys.to_frame(), spec.key_column)


def iter_checked(
    source: Source, spec: RequestSpec, options: Options
) -> Iterator[tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]]:
    """Check the input, then yield ``(user rows, keys, lines)`` per slice: ``keys`` holds each row's
    ``key``, ``send`` (and ``hash``); ``lines`` each row's ``key``, ``line``, (``hash``) and
    ``nbytes``.

    Every slice is checked before it is yielded, and every key across slices first, so any bad row
    stops the run before the caller sends anything (shards are only sent after the last slice).
    """
    check_keys(source, spec)
    start = 0
    for part in source.slices(options.slice_rows):
        mask = checks.check_inputs(
            part,
            prompt=spec.prompt,
            key_column=spec.key_column,
            columns_needed=spec.columns_needed,
            skip_null_prompts=spec.skip_null_prompts,
            row_offset=start,
            system_instruction=spec.system_instruction,
        )
        lines = _lines(spec, part, start)
        checks.check_sizes(
            lines, max_request_bytes=options.max_request_bytes, row_offset=start, send_mask=mask
        )
        nbytes = pl.when(mask).then(ln.request_bytes(lines).cast(pl.Int64)).otherwise(0)
        tokens = pl.when(mask).then(spec.tokens(part)).otherwise(0)
        lines = lines.with_columns(nbytes.alias("nbytes"), tokens.alias("tokens"))
        keys = pl.DataFrame(
            [
                lines["key"].alias(KEY),
                mask.alias(SEND),
                *([lines["hash"].alias(HASH)] if "hash" in lines.columns else []),
                lines["tokens"].cast(pl.Int64).alias(TOKENS),
            ]
        )
        yield part, keys, lines
        start += part.height


#: Rows whose request lines are built at once: the streaming engine's scratch memory, which the
#: allocator keeps for a while, is a few times the size of the lines (100 k rows: ~100 MB).
LINES_ROWS = 25_000


def _lines(spec: RequestSpec, part: pl.DataFrame, start: int) -> pl.DataFrame:
    """``spec.lines`` of a slice, built ``LINES_ROWS`` rows at a time (the same lines: each row's
    line depends on that row and its position alone)."""
    if part.height <= 2 * LINES_ROWS:
        return spec.lines(part, start)
    return pl.concat(
        [
            spec.lines(part.slice(s, LINES_ROWS), start + s)
            for s in range(0, part.height, LINES_ROWS)
        ]
    )


class _Digesting:
    """A binary writer that feeds what it writes to some hashes first (``sink`` None: only
    hashes)."""

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
    too when given: straight from the polars writer's buffers, never joined into one bytes
    object."""
    if len(lines):
        ln.write_jsonl(lines, _Digesting(sink, *hashes))  # type: ignore[arg-type]


def _parquet_writer(
    fh: IO[bytes], schema: pa.Schema, plain: frozenset[str] = frozenset()
) -> pq.ParquetWriter:
    """A working Parquet file, written once and read once (at the join), so it is made for speed:
    snappy (half zstd's time, ~1.5x its size), no statistics; ``plain`` columns (unique,
    incompressible hex) stored without compression or dictionary. For 1 M rows of ~200-character
    prompts: 0.5 s and 156 MB, against zstd's 1.25 s and 95 MB."""
    import pyarrow.parquet as pq

    return pq.ParquetWriter(
        fh,
        schema,
        compression={name: "none" if name in plain else "snappy" for name in schema.names},
        use_dictionary=[name for name in schema.names if name not in plain],
        write_statistics=False,
    )


class _Writer:
    """The prepare's file writes and digests, done in order on one background thread, one slice
    behind the main thread: while slice i is encoded, compressed and hashed there, slice i+1 is
    read,
    checked and built here. At most one slice waits for it, so memory stays bounded."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gembatch-prepare")
        self._pending: Future[None] | None = None

    def submit(self, jobs: list[Callable[[], None]]) -> None:
        """Run ``jobs`` in order after everything submitted before (waits for the previous
        slice)."""
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


class _Table:
    """A Parquet file written slice by slice (its writer opened on the first slice)."""

    def __init__(self, store: Directory, rel: str, plain: frozenset[str] = frozenset()) -> None:
        self.fh: IO[bytes] = store.open(rel, "wb")
        self.out = DigestWriter(self.fh)  # the file's digest, taken as it is written
        self.plain = plain
        self.writer: pq.ParquetWriter | None = None

    def write(self, frame: pl.DataFrame) -> None:
        table = frame.to_arrow()
        if self.writer is None:
            self.writer = _parquet_writer(self.out, table.schema, self.plain)  # type: ignore[arg-type]
        self.writer.write_table(table)

    def close(self, schema: pa.Schema | None) -> None:
        if self.writer is None and schema is not None:
            self.writer = _parquet_writer(self.out, schema, self.plain)  # type: ignore[arg-type]
        if self.writer is not None:
            self.writer.close()
        self.fh.close()


class _ShardFiles:
    """The open shard's files, written as slices arrive. The counts are kept by the caller's thread
    (:meth:`add`); the writing itself is a job it returns, for the :class:`_Writer`."""

    def __init__(self, store: Directory, index: int) -> None:
        self.store = store
        self.index = index
        self.dir = f"shards/{index:06d}"
        store.makedirs(self.dir)
        self.jsonl: IO[bytes] = store.open(f"{self.dir}/requests.jsonl", "wb")
        self.rows_file = _Table(store, f"{self.dir}/input.parquet")
        self.keys_file = _Table(store, f"{self.dir}/keys.parquet", frozenset({KEY, HASH}))
        self.cached_fh: IO[bytes] | None = None
        self.cached_out: DigestWriter | None = None
        self.sha = hashlib.sha256()
        self.rows = self.lines = self.bytes = self.dedup = self.cached = self.tokens = 0
        self.seen = pl.Series(
            "hash", [], dtype=pl.Utf8
        )  # hashes sent by this shard (bounded by its rows)

    def route(self, keys: pl.DataFrame, hits: pl.Series, *, dedup: bool) -> pl.Series:
        """Each row's route: its own ``line``, a ``dup`` of a line of this shard, or from the
        ``cache``."""
        send = pl.col(SEND)
        if HASH not in keys.columns:
            return keys.select(pl.when(send).then(pl.lit("line")).alias(VIA)).to_series()
        h = pl.col(HASH)
        route: Any = pl.when(~send).then(pl.lit(None, dtype=pl.Utf8))
        if dedup:
            route = route.when(h.is_in(self.seen.implode())).then(pl.lit("dup"))
        route = route.when(h.is_in(hits.implode())).then(pl.lit("cache"))
        first = pl.when(send).then(h).is_first_distinct() if dedup else pl.lit(True)
        via = keys.select(
            route.when(first).then(pl.lit("line")).otherwise(pl.lit("dup")).alias(VIA)
        )
        return via.to_series()

    def add(
        self,
        rows: pl.DataFrame,
        keys: pl.DataFrame,
        lines: pl.Series,
        nbytes: int,
        answers: pl.Series | None = None,
        *,
        asked: pl.Series | None = None,
        digest: Any = None,
    ) -> Callable[[], None]:
        """Count rows (with their route), the lines to send (``nbytes``: their JSONL bytes) and
        cached answers; return the job that writes them. The job also feeds ``digest`` the JSONL of
        ``asked``
        (default: ``lines``)."""
        if rows.height:
            self.rows += rows.height
            if HASH in keys.columns:
                via = keys[VIA]
                self.seen = pl.concat([self.seen, keys.filter(via == "line")[HASH].rename("hash")])
                self.dedup += int((via == "dup").sum())
        self.lines += len(lines)
        self.bytes += nbytes
        self.cached += 0 if answers is None else len(answers)

        def write() -> None:
            if rows.height:
                self.rows_file.write(rows)
                self.keys_file.write(keys)
            same = digest is not None and asked is None  # the digest takes the lines written
            _digest_jsonl(lines, self.sha, *([digest] if same else []), sink=self.jsonl)
            if digest is not None and asked is not None:
                _digest_jsonl(asked, digest)
            if answers is not None and len(answers):
                if self.cached_fh is None:
                    self.cached_fh = self.store.open(f"{self.dir}/cached.jsonl", "wb")
                    self.cached_out = DigestWriter(self.cached_fh)
                ln.write_jsonl(answers, self.cached_out)  # type: ignore[arg-type]

        return write

    def close(self, schemas: tuple[pa.Schema, pa.Schema] | None) -> Callable[[], None]:
        """Let go of the shard's dedup set; return the job that closes its files."""
        self.seen = self.seen.clear()  # closed shards keep only their counts (memory stays flat)

        def close() -> None:
            self.rows_file.close(None if schemas is None else schemas[0])
            self.keys_file.close(None if schemas is None else schemas[1])
            self.jsonl.close()
            if self.cached_fh is not None:
                self.cached_fh.close()

        return close

    def seal(self, record: ShardRecord) -> None:
        """Record in ``record`` what the closed shard's files hold (digests taken as they were
        written: nothing is read back)."""
        store = self.store
        seal_file(
            store, record, "requests.jsonl", rows=record.lines, digest=(record.sha256, record.bytes)
        )
        seal_file(store, record, "input.parquet", rows=self.rows, digest=self.rows_file.out.digest)
        seal_file(store, record, "keys.parquet", rows=self.rows, digest=self.keys_file.out.digest)
        if self.cached_out is not None:
            seal_file(
                store, record, "cached.jsonl", rows=self.cached, digest=self.cached_out.digest
            )


def _cache_hits(cache: ResultCache | None, keys: pl.DataFrame) -> pl.DataFrame:
    """The cached answers (``hash``, ``response``) for the requests of ``keys`` (empty without a
    cache)."""
    empty = pl.DataFrame(schema={"hash": pl.Utf8, "response": pl.Utf8})
    if cache is None or HASH not in keys.columns:
        return empty
    wanted = keys.filter(pl.col(SEND))[HASH]
    if not len(wanted):
        return empty
    try:
        return cache.lookup(wanted).select("hash", "response")
    except OSError as exc:  # the cache saves money; an unreadable one must not stop the run
        warnings.warn(
            f"gembatch could not read the result cache {cache.path!r} ({exc}); these rows are "
            "sent instead.",
            ResultWarning,
            stacklevel=2,
        )
        return empty


def _answers(keys: pl.DataFrame, hits: pl.DataFrame) -> pl.Series | None:
    """Result lines for the rows routed to the cache, keyed by each row's own key."""
    cached = keys.filter(pl.col(VIA) == "cache")
    if not cached.height:
        return None
    responses = cached.select(HASH).join(
        hits, left_on=HASH, right_on="hash", how="left", maintain_order="left"
    )["response"]
    return ln.answer_lines(cached[KEY], responses)


def write_shards(
    store: Directory,
    source: Source,
    spec: RequestSpec,
    options: Options,
    *,
    run_id: str,
    cache: ResultCache | None = None,
    max_tokens: int | None = None,
) -> Prepared:
    """Validate the input and write its shards (see the module docstring); nothing is sent.

    With a hashed spec, identical requests within a shard are written once (``options.dedup``) and
    requests ``cache`` already answered are not written at all: their answers go to
    ``cached.jsonl``.
    """
    store.remove("shards", recursive=True)  # leftovers of a prepare that died before run.json
    cutter = ShardCutter(
        max_rows=options.shard_max_rows,
        max_bytes=options.shard_max_bytes,
        max_tokens=max_tokens,
        first_rows=options.first_shard_rows,
    )
    done: list[_ShardFiles] = []
    current: _ShardFiles | None = None
    line_sha, data_sha = hashlib.sha256(), _data_digest(source)
    schemas: tuple[pa.Schema, pa.Schema] | None = None
    height = asked = 0
    writer = _Writer()
    try:
        for rows, keys, lines in iter_checked(source, spec, options):
            jobs: list[Callable[[], None]] = []
            height += rows.height
            asked += int(keys[SEND].sum())
            _update_data_digest(data_sha, rows)
            hits = _cache_hits(cache, keys)
            positions = cutter.cuts(lines["nbytes"], lines["tokens"])
            if positions[:1] == [0] and current is not None:
                jobs.append(current.close(schemas))
                done.append(current)
                current = None
            bounds = [0, *(p for p in positions if p > 0), rows.height]
            for a, b in itertools.pairwise(bounds):
                if a > 0 and current is not None:  # a new shard begins at a
                    jobs.append(current.close(schemas))
                    done.append(current)
                    current = None
                if current is None:
                    current = _ShardFiles(store, len(done))
                part_rows, part_keys, part_lines = (
                    rows.slice(a, b - a),
                    keys.slice(a, b - a),
                    lines.slice(a, b - a),
                )
                via = current.route(part_keys, hits["hash"], dedup=options.dedup)
                part_keys = part_keys.with_columns(via)
                if schemas is None:
                    schemas = (part_rows.to_arrow().schema, part_keys.to_arrow().schema)
                sent, asked_here = via == "line", part_keys[SEND]
                same = bool((sent == asked_here).all())  # else the digest needs the asked lines
                every = not sent.null_count() and bool(sent.all())  # (skipped rows: null)
                to_send = part_lines if every else part_lines.filter(sent)
                current.tokens += int(to_send["tokens"].sum())
                jobs.append(
                    current.add(
                        part_rows,
                        part_keys,
                        to_send["line"],
                        int(to_send["nbytes"].sum()),
                        _answers(part_keys, hits),
                        asked=None if same else part_lines.filter(asked_here)["line"],
                        digest=line_sha,
                    )
                )  # the digest is independent of dedup/cache
            writer.submit(jobs)
        if current is not None:
            writer.submit([current.close(schemas)])
            done.append(current)
            current = None
        writer.wait()
    finally:
        if (
            current is not None
        ):  # stopped by an error: let the files go (the next prepare removes them)
            with contextlib.suppress(Exception):
                writer.wait()
            with contextlib.suppress(Exception):
                current.close(schemas)()
        writer.close()
    inline = (
        spec.kind == "generate"
        and len(done) == 1
        and fits_inline(
            done[0].lines,
            done[0].bytes,
            max_rows=options.inline_max_rows,
            max_bytes=options.inline_max_bytes,
        )
    )
    shards = [
        ShardRecord(
            index=f.index,
            rows=f.rows,
            tokens=f.tokens,
            reused=f.dedup + f.cached,
            lines=f.lines,
            bytes=f.bytes,
            sha256=f.sha.hexdigest(),
            mode="none" if f.lines == 0 else ("inline" if inline else "file"),
            display_name=f"gembatch-{run_id}-{f.index:05d}-{f.sha.hexdigest()[:8]}",
        )
        for f in done
    ]
    for f, shard in zip(done, shards):
        f.seal(shard)
    return Prepared(
        shards=shards,
        fingerprint=Fingerprint(line_sha.hexdigest(), data_sha.hexdigest(), pl.__version__),
        rows=height,
        lines=sum(s.lines for s in shards),
        requests=asked,
        deduplicated=sum(f.dedup for f in done),
        cached=sum(f.cached for f in done),
    )


def _data_digest(source: Source) -> Any:
    digest = hashlib.sha256()
    digest.update(repr(source.schema).encode())
    return digest


def _update_data_digest(digest: Any, rows: pl.DataFrame) -> None:
    if rows.height:
        digest.update(bytes(rows.hash_rows(seed=7).rechunk().to_arrow().buffers()[1] or b""))


def digests(source: Source, spec: RequestSpec, options: Options) -> tuple[str, str]:
    """The sha256 of the request lines the input would send, and of the input rows."""
    lines_sha, data_sha = hashlib.sha256(), _data_digest(source)
    for rows, keys, lines in iter_checked(source, spec, options):
        _digest_jsonl(lines.filter(keys[SEND])["line"], lines_sha)
        _update_data_digest(data_sha, rows)
    return lines_sha.hexdigest(), data_sha.hexdigest()
