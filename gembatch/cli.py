"""The ``gembatch`` command line: a thin shell over the functions.

Examples::

    gembatch demo --rows 2000 --out reviews_scored.parquet  # a real batch on the local emulator
    gembatch run reviews.parquet --prompt-template "Summarise: {review}" \
        --model gemini-2.5-flash --out scored.parquet --job-dir runs/reviews
    gembatch list                                            # batch jobs on the service
    gembatch emulator --port 8765 --data-dir ./emulator-data # serve the emulator
    gembatch status runs/reviews                             # where a run stands
    gembatch wait runs/reviews && gembatch results runs/reviews --out scored.parquet
    gembatch estimate reviews.parquet --prompt-col review --model gemini-2.5-flash
    gembatch cost runs/reviews                               # tokens and money of a run
    gembatch cache stats                                     # the result cache (or: cache clear)

The service is the one ``GEMINI_API_KEY`` / ``GOOGLE_GEMINI_BASE_URL`` name (or ``--base-url``).

Exit codes: 0 success, 1 a gembatch error (message on stderr), 2 bad usage, 3 the run is not
finished (``status``), 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

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

    demo = sub.add_parser(
        "demo", help="run a real batch over a sample dataset on the embedded emulator"
    )
    demo.add_argument("--rows", type=int, default=2_000, help="sample rows (default 2000)")
    demo.add_argument("--out", default="gembatch_demo.parquet", help="output Parquet file")
    demo.add_argument("--job-dir", default=None, help="run directory (default: a fresh one)")
    demo.add_argument(
        "--shard-rows",
        type=int,
        default=None,
        help="rows per shard; small values force the File API path with several jobs",
    )

    sub.add_parser(
        "emulator", help="serve the Batch + File API emulator (see --help)", add_help=False
    )

    run = sub.add_parser("run", help="run a batch over a Parquet / CSV / JSONL file")
    estimate = sub.add_parser(
        "estimate", help="show the plan and cost bound of a batch, sending nothing"
    )
    for p in (run, estimate):
        p.add_argument(
            "input", help="input file (.parquet, .csv, .jsonl; local path or fsspec URL)"
        )
        prompt = p.add_mutually_exclusive_group(required=True)
        prompt.add_argument("--prompt-col", help="the column holding the prompt")
        prompt.add_argument(
            "--prompt-template", help="a template over columns, e.g. 'Summarise: {review}'"
        )
        p.add_argument("--model", required=True, help="e.g. gemini-2.5-flash")
        p.add_argument(
            "--key", default=None, help="a column of unique row keys (default: row position)"
        )
        p.add_argument("--system-instruction", default=None)
        p.add_argument("--temperature", type=float, default=None)
        p.add_argument("--max-output-tokens", type=int, default=None)
        p.add_argument("--skip-null-prompts", action="store_true")
        p.add_argument(
            "--base-url",
            default=None,
            help="service URL (default: GOOGLE_GEMINI_BASE_URL or Google)",
        )
        cache = p.add_mutually_exclusive_group()
        cache.add_argument(
            "--cache", default=None, help="result cache path or URL (default: the user cache)"
        )
        cache.add_argument(
            "--no-cache", action="store_true", help="neither read nor fill the result cache"
        )
    run.add_argument(
        "--out", required=True, help="output (.parquet file or directory, .csv, .jsonl)"
    )
    run.add_argument("--job-dir", required=True, help="the run directory (resumable)")
    run.add_argument("--poll-interval", type=float, default=None)
    run.add_argument("--no-progress", action="store_true")
    run.add_argument(
        "--max-cost", type=float, default=None, help="refuse to send above this many US dollars"
    )
    run.add_argument(
        "--pilot",
        type=float,
        default=None,
        help="first send this share (e.g. 0.01) or number (e.g. 50) of random rows as a pilot",
    )
    run.add_argument(
        "--dry-run", action="store_true", help="prepare the run directory and print the plan only"
    )
    estimate.add_argument(
        "--exact", action="store_true", help="count input tokens with countTokens (needs a key)"
    )
    estimate.add_argument(
        "--job-dir", default=None, help="keep the prepared run there (send it later with run)"
    )

    cost = sub.add_parser(
        "cost", help="tokens and money of a run, and what dedup and the cache saved"
    )
    cost.add_argument("job_dir", help="the run directory (local path or fsspec URL)")

    cache_cmd = sub.add_parser("cache", help="the result cache: stats or clear")
    cache_cmd.add_argument("action", choices=("stats", "clear"))
    cache_cmd.add_argument(
        "--path", default=None, help="cache path or URL (default: the user cache)"
    )

    listing = sub.add_parser("list", help="list the batch jobs on the service")
    listing.add_argument("--base-url", default=None)

    for name, text in (
        ("status", "show where a run stands"),
        ("wait", "wait for a run to finish"),
        ("cancel", "cancel a run's jobs"),
        ("results", "write a run's results"),
    ):
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
        frame.with_columns(
            pl.struct(n).struct.json_encode().str.slice(len(n) + 4).str.head(-1).alias(n)
            for n in nested
        ).write_csv(out)
    elif out.endswith((".jsonl", ".ndjson")):
        frame.write_ndjson(out)
    else:
        frame.write_parquet(out)


def _template(template: str) -> Any:
    """``'Summarise: {review}'`` -> ``pl.format('Summarise: {}', pl.col('review'))``."""
    import re

    import polars as pl

    names = re.findall(r"\{([^{}]+)\}", template)
    if not names:
        return pl.lit(template)
    return pl.format(re.sub(r"\{[^{}]+\}", "{}", template), *[pl.col(n) for n in names])


def _read(path: str) -> Any:
    import fsspec
    import polars as pl

    if path.endswith((".parquet", "/")) or "*" in path:
        return path  # streamed by gembatch
    with fsspec.open(path, "rb") as fh:
        if path.endswith(".csv"):
            return pl.read_csv(fh)
        if path.endswith((".jsonl", ".ndjson", ".json")):
            return pl.read_ndjson(fh)
    raise SystemExit(f"gembatch: cannot tell the format of {path!r} (use .parquet, .csv or .jsonl)")


def _call_args(args: argparse.Namespace) -> tuple[Any, Any, dict[str, Any]]:
    """(data, prompt, keyword arguments) shared by ``run`` and ``estimate``."""
    from ._service.backend import make_client
    from .config import Config

    config = Config(
        model=args.model,
        temperature=args.temperature,
        max_output_tokens=args.max_output_tokens,
        system_instruction=args.system_instruction,
    )
    prompt = args.prompt_col or _template(args.prompt_template)
    client = make_client(base_url=args.base_url) if args.base_url else None
    cache: object = False if args.no_cache else (args.cache or True)
    return (
        _read(args.input),
        prompt,
        {
            "config": config,
            "key": args.key,
            "client": client,
            "cache": cache,
            "skip_null_prompts": args.skip_null_prompts,
        },
    )


def _estimate(args: argparse.Namespace) -> int:
    import os

    from .api import plan

    data, prompt, kwargs = _call_args(args)
    if kwargs["client"] is None and args.base_url is None and not args.exact:
        kwargs.pop("client")
    print(plan(data, prompt, job_dir=args.job_dir, exact=args.exact, progress=False, **kwargs))
    if args.job_dir:
        print(
            f"prepared in {os.fspath(args.job_dir)}: `gembatch run ... --job-dir {args.job_dir}` "
            "sends it"
        )
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from ._money.plan import Plan
    from .api import batch_generate
    from .config import Options

    data, prompt, kwargs = _call_args(args)
    options = Options(
        **(
            {
                "poll_interval": args.poll_interval,
                "max_poll_interval": max(120.0, args.poll_interval),
            }
            if args.poll_interval
            else {}
        )
    )
    streaming = isinstance(data, str) and (
        args.out.endswith(".parquet") or "." not in args.out.rsplit("/", 1)[-1]
    )
    pilot = None if args.pilot is None else (int(args.pilot) if args.pilot >= 1 else args.pilot)
    result = batch_generate(
        data,
        prompt,
        job_dir=args.job_dir,  # type: ignore[call-overload]
        progress=not args.no_progress,
        options=options,
        max_cost=args.max_cost,
        pilot=pilot,
        dry_run=args.dry_run,
        sink=args.out if streaming else None,
        **kwargs,
    )
    if isinstance(result, Plan):
        print(result)
        return EXIT_OK
    if not streaming:
        from .handle import BatchRun

        _write(result.result() if isinstance(result, BatchRun) else result, args.out)
    print(f"wrote {args.out}")
    return EXIT_OK


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
        if args.command == "run":
            return _run(args)
        if args.command == "estimate":
            return _estimate(args)
        if args.command == "cache":
            from . import cache

            if args.action == "clear":
                cache.clear(args.path)
                print(f"cleared {cache.ResultCache(args.path).path}")
            else:
                print(cache.stats(args.path))
            return EXIT_OK
        if args.command == "list":
            from ._service.backend import Backend, make_client

            for job in Backend(make_client(base_url=args.base_url)).iter_jobs():
                print(
                    f"{job.name}\t{job.state.removeprefix('JOB_STATE_')}\t{job.display_name or ''}"
                )
            return EXIT_OK
        from .handle import BatchRun

        run = BatchRun.open(args.job_dir, poll_interval=getattr(args, "poll_interval", None))
        if args.command == "cost":
            print(run.cost())
            return EXIT_OK
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
        print(
            "gembatch: interrupted; the run directory is intact, run the same command to resume.",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    return EXIT_USAGE  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
