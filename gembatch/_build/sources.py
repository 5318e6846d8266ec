"""Input rows, read in bounded consecutive slices: a DataFrame, a LazyFrame or Parquet files.

Memory stays flat for any input size: a consumer sees one slice (``Options.slice_rows`` rows) at a
time.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterator
from typing import Any

import polars as pl

from .._storage import parquet_dataset
from ..exceptions import InputError

__all__ = ["FrameSource", "LazySource", "ParquetSource", "Source", "as_source"]


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

    def fingerprint(self) -> str:
        """A digest of the rows (and the schema): equal for equal input, different when a value, a
        row or a column changes. Read slice by slice."""
        digest = hashlib.sha256(repr(self.schema).encode())
        for part in self.slices(1_000_000):
            if part.height:
                digest.update(
                    bytes(part.hash_rows(seed=11).rechunk().to_arrow().buffers()[1] or b"")
                )
        return digest.hexdigest()

    def sample(self, size: float, *, seed: int = 0, slice_rows: int = 100_000) -> pl.DataFrame:
        """A random sample of the rows, the same for the same input and seed: ``size`` rows if an
        int, else that fraction of the rows (at least one), drawn slice by slice."""
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

    def __init__(
        self,
        source: str | os.PathLike[str],
        storage_options: dict[str, Any] | None = None,
        *,
        glob: bool | None = None,
    ) -> None:
        self.dataset = _unified(parquet_dataset(source, storage_options, glob=glob))
        empty = pl.from_arrow(self.dataset.schema.empty_table())
        assert isinstance(empty, pl.DataFrame)
        self.schema = empty.schema

    def slices(self, rows: int) -> Iterator[pl.DataFrame]:
        """File by file, ``rows`` at a time, without pre-buffering: the dataset scanner's buffers
        grow
        with the input (+150 MB from 0.5 M to 2 M rows), a file reader's do not (+30 MB)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        empty = True
        schema = self.dataset.schema
        pool = pa.default_memory_pool()
        for fragment in self.dataset.get_fragments():
            with self.dataset.filesystem.open_input_file(fragment.path) as fh:
                reader = pq.ParquetFile(fh, pre_buffer=False)
                if reader.schema_arrow == schema:
                    batches: Iterator[pa.RecordBatch] = reader.iter_batches(batch_size=rows)
                else:  # columns in another order or missing: the dataset's unified schema
                    batches = _disagreeing(
                        fragment.path, reader.schema_arrow, schema, fragment, rows
                    )
                for batch in batches:
                    if batch.num_rows:
                        empty = False
                        frame = pl.from_arrow(batch)
                        del batch
                        pool.release_unused()  # the decoded batch, copied: back to the system
                        yield frame  # type: ignore[misc]
        if empty:
            yield pl.from_arrow(schema.empty_table())  # type: ignore[misc]

    def fingerprint(self) -> str:
        """The files' paths, sizes and modification times, and the schema (cheap: no data read)."""
        digest = hashlib.sha256(repr(self.schema).encode())
        fs = self.dataset.filesystem
        for path in self.dataset.files:
            info = fs.get_file_info(path)
            digest.update(f"{path}\x00{info.size}\x00{info.mtime_ns}\x00".encode())
        return digest.hexdigest()

    def column(self, name: str) -> pl.Series:
        """One whole column, read file by file (a file reader holds less memory than the dataset
        scanner: 1 M string keys, +65 MB instead of +70..125 MB, and 5x less CPU)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        field = self.dataset.schema.field(name)
        chunks: list[pa.Array] = []
        for fragment in self.dataset.get_fragments():
            with self.dataset.filesystem.open_input_file(fragment.path) as fh:
                reader = pq.ParquetFile(fh, pre_buffer=False)
                schema = reader.schema_arrow
                if schema.get_field_index(name) >= 0 and schema.field(name).type == field.type:
                    part = reader.read(columns=[name]).column(name)
                else:  # missing, or of another type: as the dataset's unified schema has it
                    part = fragment.to_table(schema=self.dataset.schema, columns=[name]).column(
                        name
                    )
            chunks.extend(part.chunks)
        column = pl.from_arrow(pa.chunked_array(chunks, type=field.type))
        assert isinstance(column, pl.Series)
        del chunks
        pa.default_memory_pool().release_unused()  # the readers' scratch memory, back to the system
        return column.alias(name)

    def height(self) -> int:
        return int(self.dataset.count_rows())


def _unified(dataset: Any) -> Any:
    """The dataset with the schema all its files promote to (the first file's schema is pyarrow's
    guess: an int32 first file would refuse the int64 values of the next); as it was when the
    files do not promote to one schema (each file is then checked as it is read)."""
    import pyarrow as pa

    files = list(dataset.get_fragments())
    if len(files) < 2:
        return dataset
    try:
        schemas = [dataset.schema, *(f.physical_schema for f in files)]
        schema = pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return dataset
    if schema == dataset.schema:
        return dataset
    import pyarrow.dataset as ds

    return ds.FileSystemDataset.from_paths(  # the same files and partition keys, one schema
        [f.path for f in files],
        schema=schema,
        format=dataset.format,
        filesystem=dataset.filesystem,
        partitions=[f.partition_expression for f in files],
    )


def _disagreeing(path: str, own: Any, schema: Any, fragment: Any, rows: int) -> Iterator[Any]:
    """A file's batches in the dataset's schema (taken from its first file); an InputError naming
    the file and the columns whose types disagree when its values do not fit."""
    import pyarrow as pa

    differ = [
        f"{f.name} ({f.type} there, {schema.field(f.name).type} in the dataset)"
        for f in own
        if f.name in schema.names and f.type != schema.field(f.name).type
    ]

    def refuse(why: str) -> InputError:
        return InputError(
            f"The input file {path!r} disagrees with the rest of the dataset on "
            f"{', '.join(differ) or 'its column types'}{why}. Nothing was sent. Hint: give "
            "every file the same column types (e.g. cast and rewrite that file)."
        )

    lossy = [
        f.name
        for f in own
        if f.name in schema.names and not _widens(f.type, schema.field(f.name).type)
    ]
    if lossy:  # e.g. text "02139" read as the integer 2139: refused even where the cast works
        raise refuse("")
    try:
        yield from fragment.to_batches(schema=schema, batch_size=rows)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise refuse(f": {first}") from exc


def _widens(have: Any, want: Any) -> bool:
    """Whether values of type ``have`` read as ``want`` keep what they say: Arrow's own type
    promotion of ``have`` gives ``want`` (int32 as int64, float as double, string as large_string,
    timestamp[ms] as [us], a column of nulls as anything); a cast it would not promote to (text
    to numbers, double to float, signed to unsigned) does not."""
    import pyarrow as pa

    if have == want or pa.types.is_null(have):
        return True
    try:
        both = [pa.schema([pa.field("c", have)]), pa.schema([pa.field("c", want)])]
        return bool(pa.unify_schemas(both, promote_options="permissive").field("c").type == want)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return False


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


def _jsonl_source(path: str, storage_options: dict[str, Any] | None) -> Source:
    """JSON lines, one object per row, scanned by polars (types from every line, so a value that
    appears late counts) and read in slices like any lazy frame."""
    try:
        frame = pl.scan_ndjson(path, storage_options=storage_options, infer_schema_length=None)
        return LazySource(frame)
    except FileNotFoundError as exc:
        raise InputError(f"No input file {path!r}. Hint: check the path.") from exc
    except pl.exceptions.PolarsError as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise InputError(
            f"{path!r} cannot be read as JSON lines ({first}). Hint: one JSON object per line, "
            "the same fields in each (or convert it to Parquet)."
        ) from exc


def as_source(
    data: Any, storage_options: dict[str, Any] | None = None, *, glob: bool | None = None
) -> Source:
    if isinstance(data, Source):
        return data
    if isinstance(data, pl.DataFrame):
        return FrameSource(data)
    if isinstance(data, pl.LazyFrame):
        return LazySource(data)
    if isinstance(data, (str, os.PathLike)):
        if os.fspath(data).lower().endswith((".jsonl", ".ndjson")):
            return _jsonl_source(os.fspath(data), storage_options)
        import pyarrow as pa

        try:
            return ParquetSource(data, storage_options, glob=glob)
        except pa.ArrowInvalid as exc:  # e.g. a .json file, or a folder of .jsonl files
            first = (str(exc).strip().splitlines() or [""])[0]
            raise InputError(
                f"{os.fspath(data)!r} cannot be read as Parquet ({first}). Hint: a path input is "
                "Parquet (a file, a glob or a dataset directory) or one .jsonl / .ndjson file; "
                "read other formats with polars and pass the frame (or pl.scan_ndjson(...) for "
                "several JSON lines files)."
            ) from exc
    raise InputError(
        "gembatch takes a polars DataFrame or LazyFrame, or a Parquet path (got "
        f"{type(data).__name__}). "
        "Hint: pl.from_pandas(df) or pl.from_arrow(table) converts other frames."
    )
