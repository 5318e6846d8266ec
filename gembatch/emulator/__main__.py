"""``python -m gembatch.emulator`` (also ``gembatch emulator``): serve the emulator until Ctrl-C.

Example::

    python -m gembatch.emulator --port 8765 --data-dir ./emulator-data \\
        --fault http:batches.create:429@2 --fault lines:error=0.1
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Any

from .faults import ENDPOINTS, parse_fault
from .server import DEFAULT_API_KEY, Emulator

__all__ = ["main"]

_FAULT_HELP = f"""\
fault rules (--fault, repeatable):
  http:<endpoint>:<status>[@<nth>][x<times>|x*][,retry_after=<s>]
        answer the nth matching call (and times-1 more; x* = every call from nth on) with an
        HTTP error, e.g. http:batches.create:429@2,retry_after=1   http:*:503@1x3
  drop:<endpoint>:<before|after|mid>[@<nth>][x<times>][,bytes=<n>]
        close the connection before / after carrying the call out, or mid-body after n bytes
        (request body of files.upload_chunk, response body otherwise), e.g.
        drop:files.download:mid@1,bytes=100   drop:batches.create:after@1
  job:<FAILED|EXPIRED|CANCELLED>[@<nth_job>][,after_lines=<n>]
        end jobs (every job, or the nth created) in that state after n lines, e.g. job:FAILED@1
  lines:error=<p>,missing=<p>,duplicate=<p>,malformed=<p>[,seed=<n>]
        per-line result faults, deterministic per key, e.g. lines:error=0.1,missing=0.05
  delay:pending=<s>,running=<s>,results_after=<s>
        state-transition delays of new jobs ("slow mode": results_after), e.g. delay:pending=2

endpoints: * {' '.join(ENDPOINTS)}
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gembatch emulator", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Serve a local Gemini Batch + File API (v1beta) on 127.0.0.1 for the google-genai "
                    "SDK, curl and gembatch.", epilog=_FAULT_HELP)
    parser.add_argument("--port", type=int, default=8765, help="TCP port on 127.0.0.1 (0: any free port; "
                        "default 8765)")
    parser.add_argument("--data-dir", help="directory where files and jobs persist across restarts "
                        "(default: a temporary directory removed at exit)")
    parser.add_argument("--api-key", help="accept only this key (default: any non-empty key)")
    parser.add_argument("--fault", action="append", default=[], metavar="SPEC",
                        help="a fault rule, see below (repeatable)")
    parser.add_argument("--max-file-bytes", type=int, default=2 * 1024**3,
                        help="largest upload accepted (default 2 GiB, as the service)")
    parser.add_argument("--max-inline-bytes", type=int, default=20 * 1024**2,
                        help="largest JSON request body, e.g. an inline batch (default 20 MiB)")
    parser.add_argument("--shuffle-output", action="store_true",
                        help="write result files out of input order (the service does not promise order)")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes answering the lines of big jobs (default: CPUs up to 4; 0: none)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request (keys redacted)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the emulator until interrupted; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        faults = [parse_fault(spec) for spec in args.fault]
        emulator = Emulator(api_key=args.api_key, data_dir=args.data_dir, port=args.port, faults=faults,
                            max_file_bytes=args.max_file_bytes, max_inline_bytes=args.max_inline_bytes,
                            shuffle_output=args.shuffle_output, workers=args.workers)
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(message)s")
    try:
        emulator.start()
    except OSError as exc:
        print(f"error: cannot listen on 127.0.0.1:{args.port}: {exc}. Hint: choose another --port "
              "(0 picks a free one).", file=sys.stderr)
        return 1
    stop = threading.Event()

    def _on_signal(signum: int, frame: Any) -> None:
        stop.set()

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_signal) if in_main_thread else None
    key_line = (f"export GEMINI_API_KEY={DEFAULT_API_KEY}    # any non-empty key is accepted"
                if args.api_key is None else "export GEMINI_API_KEY=<the key given with --api-key>")
    print(f"gembatch emulator: {emulator.base_url}  (data: {emulator.data_dir}"
          f"{'' if args.data_dir else ', temporary'})\n"
          f"export GOOGLE_GEMINI_BASE_URL={emulator.base_url}\n{key_line}\n"
          f"{len(faults)} fault rule(s) active. Press Ctrl-C to stop.", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
        emulator.stop()
        print("gembatch emulator stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
