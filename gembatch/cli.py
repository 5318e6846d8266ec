"""The ``gembatch`` command line: a thin shell over the functions.

Examples::

    gembatch demo --rows 2000 --out reviews_scored.parquet   # a real batch on the embedded emulator
    gembatch emulator --port 8765 --data-dir ./emulator-data  # serve the emulator for other programs
    gembatch status runs/reviews                               # where a run stands
    gembatch wait runs/reviews && gembatch results runs/reviews --out scored.parquet

Exit codes: 0 success, 1 a gembatch error (message on stderr), 2 bad usage, 3 the run is not finished
(``status``), 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NOT_DONE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gembatch",
        description="Push a dataframe through the Gemini Batch API at batch price.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("Examples::", 1)[1] if __doc__ else None,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run a real batch over a sample dataset on the embedded emulator")
    demo.add_argument("--rows", type=int, default=2_000, help="sample rows (default 2000)")
    demo.add_argument("--out", default="gembatch_demo.parquet", help="output Parquet file")
    demo.add_argument("--job-dir", default=None, help="run directory (default: a fresh one)")
    demo.add_argument("--shard-rows", type=int, default=None,
                      help="rows per shard; small values force the File API path with several jobs")

    sub.add_parser("emulator", help="serve the Batch + File API emulator (see --help)", add_help=False)

    for name, text in (("status", "show where a run stands"), ("wait", "wait for a run to finish"),
                       ("cancel", "cancel a run's jobs"), ("results", "write a run's results")):
        p = sub.add_parser(name, help=text)
        p.add_argument("job_dir", help="the run directory (local path or fsspec URL)")
        p.add_argument("--poll-interval", type=float, default=None)
        if name == "results":
            p.add_argument("--out", required=True, help="output file (.parquet, .csv or .jsonl)")
    return parser


def _write(frame: object, out: str) -> None:
    import polars as pl

    assert isinstance(frame, pl.DataFrame)
    if out.endswith(".csv"):  # CSV has no nested types: struct/list columns become JSON text
        nested = [n for n, t in frame.schema.items() if t.is_nested()]
        frame.with_columns(pl.struct(n).struct.json_encode().str.slice(len(n) + 4).str.head(-1).alias(n)
                           for n in nested).write_csv(out)
    elif out.endswith((".jsonl", ".ndjson")):
        frame.write_ndjson(out)
    else:
        frame.write_parquet(out)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["emulator"]:
        from .emulator.__main__ import main as emulator_main

        return emulator_main(args_list[1:])
    args = _parser().parse_args(args_list)
    from .exceptions import GembatchError

    try:
        if args.command == "demo":
            from .demo import run_demo

            run_demo(rows=args.rows, out=args.out, job_dir=args.job_dir, shard_rows=args.shard_rows)
            return EXIT_OK
        from .run import BatchRun

        run = BatchRun.open(args.job_dir, poll_interval=args.poll_interval)
        if args.command == "status":
            status = run.status()
            print(status)
            return EXIT_OK if status.state == "done" else EXIT_NOT_DONE
        if args.command == "wait":
            run.wait()
            print(run.status(refresh=False))
            return EXIT_OK
        if args.command == "cancel":
            run.cancel()
            print(run.status(refresh=False))
            return EXIT_OK
        if args.command == "results":
            _write(run.result(), args.out)
            print(f"wrote {args.out}")
            return EXIT_OK
    except GembatchError as exc:
        print(f"gembatch: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("gembatch: interrupted; the run directory is intact, run the same command to resume.",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_USAGE  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
