"""Peak memory of the emulator while the real SDK uploads a 1 GB file to it (must stay < 200 MB).

Starts ``python -m gembatch.emulator`` in a subprocess, uploads a file of ``--size-mb`` MB with
``client.files.upload`` from this process, samples the emulator process's RSS with psutil every few
milliseconds, and prints the peak. Exit status 1 when the peak reaches ``--limit-mb``.

    python benchmarks/emulator_upload_memory.py            # 1024 MB
    python benchmarks/emulator_upload_memory.py --size-mb 200
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from google import genai
from google.genai import types


def _write_file(path: Path, size: int) -> None:
    block = (
        b'{"key": "k", "request": {"contents": [{"parts": [{"text": "' + b"x" * 900 + b'"}]}]}}\n'
    )
    with open(path, "wb") as f:
        written = 0
        chunk = block * (8 * 1024 * 1024 // len(block))
        while written < size:
            piece = chunk[: size - written]
            f.write(piece)
            written += len(piece)


def _start_emulator(data_dir: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gembatch.emulator", "--port", "0", "--data-dir", data_dir],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("export GOOGLE_GEMINI_BASE_URL="):
            return proc, line.split("=", 1)[1].strip()
    raise SystemExit("the emulator did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--limit-mb", type=float, default=200.0)
    args = parser.parse_args()
    size = args.size_mb * 1024 * 1024
    with tempfile.TemporaryDirectory(prefix="gembatch-bench-") as tmp:
        source = Path(tmp) / "upload.jsonl"
        _write_file(source, size)
        proc, base_url = _start_emulator(os.path.join(tmp, "data"))
        emulator = psutil.Process(proc.pid)
        baseline = emulator.memory_info().rss
        peak = baseline
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, emulator.memory_info().rss)
                time.sleep(0.005)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        client = genai.Client(api_key="bench", http_options=types.HttpOptions(base_url=base_url))
        started = time.perf_counter()
        uploaded = client.files.upload(file=str(source), config={"mime_type": "application/jsonl"})
        elapsed = time.perf_counter() - started
        done.set()
        sampler.join()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    assert uploaded.size_bytes == size, (uploaded.size_bytes, size)
    mb = 1024 * 1024
    print(
        f"uploaded {size / mb:.0f} MB in {elapsed:.1f} s ({size / mb / elapsed:.0f} MB/s); "
        "emulator RSS: "
        f"baseline {baseline / mb:.1f} MB, peak {peak / mb:.1f} MB (limit {args.limit_mb:.0f} MB)"
    )
    return 0 if peak / mb < args.limit_mb else 1


if __name__ == "__main__":
    sys.exit(main())
