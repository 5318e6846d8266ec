"""Kill a real subprocess (SIGKILL) at every step boundary; resuming must give the same output with
zero extra jobs and zero extra uploads on the emulator.

The child process is an ordinary gembatch user; the only thing added is a hook that kills the
process (``os.kill(os.getpid(), SIGKILL)``: no cleanup, no finally blocks) at a chosen point in
gembatch's own code. The SDK and the HTTP traffic are real.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import polars as pl
import pytest

import gembatch
from gembatch import Config, Options
from gembatch.emulator import Emulator

N_ROWS = 60
SHARD_ROWS = 20  # three shards, three uploads, three jobs
OPTIONS = {
    "poll_interval": 0.02,
    "max_poll_interval": 0.05,
    "shard_max_rows": SHARD_ROWS,
    "inline_max_bytes": 0,
}

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import polars as pl
    import gembatch
    from gembatch._service import backend
    from gembatch._state import journal
    from gembatch import _storage as storage

    point, job_dir = sys.argv[1], sys.argv[2]

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def after(cls, name, when=lambda *a, **k: True, nth=1):
        original = getattr(cls, name)
        calls = {"n": 0}
        def wrapper(*args, **kwargs):
            out = original(*args, **kwargs)
            if when(*args, **kwargs):
                calls["n"] += 1
                if calls["n"] == nth:
                    die()
            return out
        setattr(cls, name, wrapper)

    def before(cls, name, when=lambda *a, **k: True, nth=1):
        original = getattr(cls, name)
        calls = {"n": 0}
        def wrapper(*args, **kwargs):
            if when(*args, **kwargs):
                calls["n"] += 1
                if calls["n"] == nth:
                    die()
            return original(*args, **kwargs)
        setattr(cls, name, wrapper)

    S = journal.ShardState
    if point == "after_shards_written":
        after(journal.Journal, "create")
    elif point == "during_upload":
        import io
        original_upload = backend.Backend.upload
        class Dying(io.RawIOBase):  # the upload session is open; the process dies reading the bytes
            def __init__(self, inner): self.inner = inner
            def readable(self): return True
            def seekable(self): return True
            def seek(self, *a): return self.inner.seek(*a)
            def tell(self): return self.inner.tell()
            def read(self, n=-1): die()
        uploads = {"n": 0}
        def upload(self, stream, **kw):
            uploads["n"] += 1
            return original_upload(self, Dying(stream) if uploads["n"] == 2 else stream, **kw)
        backend.Backend.upload = upload
    elif point == "after_upload_before_record":
        after(backend.Backend, "upload", nth=2)
    elif point == "after_create_before_record":
        after(backend.Backend, "create", nth=2)
    elif point == "while_polling":
        before(backend.Backend, "get", nth=2)
    elif point == "mid_download":
        original_download = backend.Backend.download
        def download(self, name, open_dest):
            import contextlib
            @contextlib.contextmanager
            def dying():
                with open_dest() as fh:
                    class W:
                        def write(self, data):
                            fh.write(data[: max(1, len(data) // 2)])
                            die()
                    yield W()
            return original_download(self, name, dying)
        backend.Backend.download = download
    elif point == "after_download_before_parse":
        after(backend.Backend, "download", nth=2)
    elif point == "while_writing_output":
        original_write = storage.Directory.write_parquet
        def write_parquet(self, rel, frame, **kw):
            if rel.endswith("output.parquet") and "000001" in rel:
                with self.atomic_writer(rel) as fh:
                    fh.write(b"PAR1partial")
                    die()
            return original_write(self, rel, frame, **kw)
        storage.Directory.write_parquet = write_parquet
    elif point != "none":
        raise SystemExit("unknown point " + point)

    df = pl.DataFrame({"id": [f"row{i}" for i in range(%(n)d)],
                       "prompt": [f"Tell me about item {i}" for i in range(%(n)d)]})
    out = df.gemini.batch_generate("prompt", config=gembatch.Config(model="gemini-2.5-flash"),
                                   key="id", job_dir=job_dir, progress=False,
                                   options=gembatch.Options(**%(options)r))
    out.write_parquet(os.path.join(job_dir, "child-output.parquet"))
    """
) % {"n": N_ROWS, "options": OPTIONS}

POINTS = [
    "after_shards_written",
    "during_upload",
    "after_upload_before_record",
    "after_create_before_record",
    "while_polling",
    "mid_download",
    "after_download_before_parse",
    "while_writing_output",
]


def _frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": [f"row{i}" for i in range(N_ROWS)],
            "prompt": [f"Tell me about item {i}" for i in range(N_ROWS)],
        }
    )


def _run_child(emu: Emulator, point: str, job_dir: str) -> int:
    env = {**os.environ, **emu.environ()}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, point, job_dir],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode not in (0, -9):
        raise AssertionError(f"child failed ({proc.returncode}):\n{proc.stderr}")
    return proc.returncode


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    with Emulator() as emu:
        job_dir = str(tmp_path_factory.mktemp("reference") / "run")
        assert _run_child(emu, "none", job_dir) == 0
        return pl.read_parquet(os.path.join(job_dir, "child-output.parquet"))


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("resume", ["rerun", "open"])
def test_killed_at_every_step_resumes_exactly_once(point, resume, reference, tmp_path, monkeypatch):
    with Emulator() as emu:
        job_dir = str(tmp_path / "run")
        assert _run_child(emu, point, job_dir) == -9, "the child was meant to die at " + point
        for name, value in emu.environ().items():
            monkeypatch.setenv(name, value)
        if resume == "open" and os.path.exists(os.path.join(job_dir, "run.json")):
            out = gembatch.BatchRun.open(job_dir, poll_interval=0.02, progress=False).result()
        else:
            out = _frame().gemini.batch_generate(
                "prompt",
                config=Config(model="gemini-2.5-flash"),
                key="id",
                job_dir=job_dir,
                progress=False,
                options=Options(**OPTIONS),
            )
        assert out.equals(reference.select(out.columns)) or out.drop("gemini_batch_job").equals(
            reference.drop("gemini_batch_job")
        )
        assert (out["gemini_status"] == "ok").all()
        stats = emu.stats()
        shards = N_ROWS // SHARD_ROWS
        assert stats["batches_created"] == shards, f"duplicate jobs after a kill at {point}"
        assert stats["files_created"] == shards, f"duplicate uploads after a kill at {point}"
        # every uploaded request file is cleaned up once the results are safe
        remaining = [f for f in emu.files() if f.get("source") != "GENERATED"]
        assert remaining == []
