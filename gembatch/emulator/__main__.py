"""``python -m gembatch.emulator`` (also ``gembatch emulator``): serve the emulator until Ctrl-C.

Example::

    python -m gembatch.emulator --port 8765 --data-dir ./emulator-data --strict \\
        --behaviour output_lag_polls=5 --fault http:batches.create:429@2 --fault lines:error=0.1
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import textwrap
import threading
from typing import Any

from . import behaviour as _behaviour
from .behaviour import BEHAVIOUR_NAMES, Behaviour, parse_behaviour
from .faults import ENDPOINTS, parse_fault
from .limits import Limits, parse_model_limit
from .server import DEFAULT_API_KEY, Emulator

__all__ = ["main"]


def _wrap(text: str, indent: str) -> str:
    return textwrap.fill(text, width=98, subsequent_indent=indent, break_on_hyphens=False)


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

{_wrap("endpoints: * " + " ".join(ENDPOINTS), "  ")}

service behaviour (--strict | --lenient, then --behaviour NAME=VALUE, repeatable):
  --strict   every switch as the real service is reported to behave (Behaviour.strict())
  --lenient  the emulator's kind behaviour (Behaviour.lenient()); neither: DEFAULT_BEHAVIOUR
  NAME=VALUE overrides one switch on top, e.g. output_lag_polls=5  line_error_codes=http
        missing_file_status=404  jsonl_field_names=both  schema_depth_limit=none
{_wrap("  switches: " + " ".join(BEHAVIOUR_NAMES), "    ")}
  values: true/false for flags, an int (or none where optional), or one of the named choices

quotas and rate limits (defaults: the published tier-1 figures; --no-limits turns all off):
  --max-concurrent-jobs N|off   --storage-bytes N|off   --enqueued-tokens MODEL=N|off
  --requests-per-minute MODEL=N|off   --tokens-per-minute MODEL=N|off   (MODEL * = all others;
  the MODEL flags are repeatable)   --latency SECONDS (per interactive call)
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gembatch emulator",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Serve a local Gemini Batch + File API (v1beta) on 127.0.0.1 for the "
        "google-genai SDK, curl and gembatch.",
        epilog=_FAULT_HELP,
    )
    parser.add_argument(
        "--port",
        type=int,
        default=8765,
        help="TCP port on 127.0.0.1 (0: any free port; default 8765)",
    )
    parser.add_argument(
        "--data-dir",
        help="directory where files and jobs persist across restarts "
        "(default: a temporary directory removed at exit)",
    )
    parser.add_argument("--api-key", help="accept only this key (default: any non-empty key)")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="a fault rule, see below (repeatable)",
    )
    parser.add_argument(
        "--max-file-bytes",
        type=int,
        default=2 * 1024**3,
        help="largest upload accepted (default 2 GiB, as the service)",
    )
    parser.add_argument(
        "--max-inline-bytes",
        type=int,
        default=20 * 1024**2,
        help="largest JSON request body, e.g. an inline batch (default 20 MiB)",
    )
    parser.add_argument(
        "--shuffle-output",
        action="store_true",
        help="write result files out of input order (the service does not promise order)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes answering the lines of big jobs (default: CPUs up to 4; 0: none)",
    )
    preset = parser.add_mutually_exclusive_group()
    preset.add_argument(
        "--strict",
        action="store_true",
        help="behave as the real service is reported to (see below)",
    )
    preset.add_argument(
        "--lenient",
        action="store_true",
        help="the kind behaviour: short ids, HTTP error codes in lines, ...",
    )
    parser.add_argument(
        "--behaviour",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set one behaviour switch, see below (repeatable)",
    )
    parser.add_argument("--no-limits", action="store_true", help="no quota, no rate limit")
    parser.add_argument(
        "--max-concurrent-jobs", metavar="N|off", help="unfinished batch jobs at once (default 100)"
    )
    parser.add_argument(
        "--storage-bytes", metavar="N|off", help="bytes of uploaded files (default 20 GiB)"
    )
    parser.add_argument(
        "--enqueued-tokens",
        action="append",
        default=[],
        metavar="MODEL=N",
        help="input tokens of a model's unfinished batch jobs (repeatable)",
    )
    parser.add_argument(
        "--requests-per-minute",
        action="append",
        default=[],
        metavar="MODEL=N",
        help="interactive requests per minute of a model (repeatable)",
    )
    parser.add_argument(
        "--tokens-per-minute",
        action="append",
        default=[],
        metavar="MODEL=N",
        help="interactive input tokens per minute of a model (repeatable)",
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=None,
        metavar="SECONDS",
        help="delay of each interactive call (default 0)",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log every request (keys redacted)"
    )
    return parser


def behaviour_from(args: argparse.Namespace) -> Behaviour:
    """The ``Behaviour`` the command line asks for (ValueError naming the switches if bad)."""
    base = (
        Behaviour.strict()
        if args.strict
        else Behaviour.lenient()
        if args.lenient
        else _behaviour.DEFAULT_BEHAVIOUR
    )
    changes = dict(parse_behaviour(spec) for spec in args.behaviour)
    return base.with_(**changes) if changes else base


def limits_from(args: argparse.Namespace) -> Limits:
    """The ``Limits`` the command line asks for."""
    base = Limits.off() if args.no_limits else Limits()
    changes: dict[str, Any] = {}
    for flag, name in (
        ("max_concurrent_jobs", "max_concurrent_jobs"),
        ("storage_bytes", "storage_bytes"),
    ):
        text = getattr(args, flag)
        if text is not None:
            changes[name] = _count(f"--{flag.replace('_', '-')}", text)
    for flag in ("enqueued_tokens", "requests_per_minute", "tokens_per_minute"):
        specs = getattr(args, flag)
        if specs:
            changes[flag] = dict(parse_model_limit(spec) for spec in specs)
    if args.latency is not None:
        changes["latency_s"] = args.latency
    return base.with_(**changes) if changes else base


def _count(flag: str, text: str) -> int | None:
    if text.strip().lower() in ("off", "none"):
        return None
    if not text.strip().isdigit() or int(text) < 1:
        raise ValueError(f"{flag} takes an int >= 1 or 'off' (got {text!r})")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    """Run the emulator until interrupted; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        faults = [parse_fault(spec) for spec in args.fault]
        behaviour, limits = behaviour_from(args), limits_from(args)
        emulator = Emulator(
            api_key=args.api_key,
            data_dir=args.data_dir,
            port=args.port,
            faults=faults,
            max_file_bytes=args.max_file_bytes,
            max_inline_bytes=args.max_inline_bytes,
            shuffle_output=args.shuffle_output,
            workers=args.workers,
            behaviour=behaviour,
            limits=limits,
        )
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(asctime)s %(message)s"
    )
    try:
        emulator.start()
    except OSError as exc:
        print(
            f"error: cannot listen on 127.0.0.1:{args.port}: {exc}. Hint: choose another --port "
            "(0 picks a free one).",
            file=sys.stderr,
        )
        return 1
    stop = threading.Event()

    def _on_signal(signum: int, frame: Any) -> None:
        stop.set()

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_signal) if in_main_thread else None
    key_line = (
        f"export GEMINI_API_KEY={DEFAULT_API_KEY}    # any non-empty key is accepted"
        if args.api_key is None
        else "export GEMINI_API_KEY=<the key given with --api-key>"
    )
    print(
        f"gembatch emulator: {emulator.base_url}  (data: {emulator.data_dir}"
        f"{'' if args.data_dir else ', temporary'})\n"
        f"export GOOGLE_GEMINI_BASE_URL={emulator.base_url}\n{key_line}\n"
        f"{len(faults)} fault rule(s) active; behaviour: {_describe(behaviour)}. "
        "Press Ctrl-C to stop.",
        flush=True,
    )
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


def _describe(behaviour: Behaviour) -> str:
    if behaviour == Behaviour.strict():
        return "strict"
    lenient = Behaviour.lenient()
    if behaviour == lenient:
        return "lenient"
    changed = behaviour.changed()
    return "strict with " + ", ".join(f"{k}={v}" for k, v in changed.items())


if __name__ == "__main__":
    sys.exit(main())
