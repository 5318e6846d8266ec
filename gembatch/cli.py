"""The ``gembatch`` command line: a thin shell over the functions.

Examples::

    gembatch demo --rows 2000 --out reviews_scored.parquet  # a real batch on the local emulator
    gembatch run reviews.parquet --prompt-template "Summarise: {review}" \\
        --model gemini-2.5-flash --out scored.parquet --job-dir runs/reviews
    gembatch run reviews.parquet --prompt-col review --model gemini-2.5-flash \\
        --job-dir runs/reviews --no-wait                     # submit, return at once
    gembatch status runs/reviews                             # exit 0 done, 3 not yet (read-only
                                                             # while another process drives it)
    gembatch wait runs/reviews && gembatch results runs/reviews --out scored.csv
    gembatch status runs/reviews --json | jq .state          # --json: one JSON document
    gembatch estimate reviews.parquet --prompt-col review --model gemini-2.5-flash
    gembatch cost runs/reviews                               # tokens and money (partial: exit 3)
    gembatch cleanup runs/reviews                            # delete its files on the service
    gembatch cancel runs/reviews                             # cancel its running jobs
    gembatch list                                            # batch jobs on the service
    gembatch runs                                            # local run directories
    gembatch gc --older-than 7 --yes                         # remove finished ones
    gembatch cache stats                                     # the result cache (or: cache clear)
    gembatch emulator --port 8765 --data-dir ./emulator-data # serve the emulator

The service is the one ``GEMINI_API_KEY`` / ``GOOGLE_GEMINI_BASE_URL`` name (or ``--base-url``).

Inputs: .parquet (a file, a glob or a dataset directory), .csv, .jsonl / .ndjson, .json; outputs
(``--out``): .parquet, .csv, .jsonl / .ndjson, .json (an array of rows), or a directory (a path
ending in "/" or without extension) for a Parquet dataset; any other is refused before anything
is sent. Calls without a job directory keep their runs in ``.gembatch/runs``: ``gembatch runs``
lists them, ``gembatch gc`` removes the finished ones.

``--json`` (status, wait, cancel, run, estimate, cost, list, runs, gc, cleanup, cache) prints one
JSON document on stdout, its keys listed in the command's ``--help``; everything else goes to
stderr. A command that fails prints instead ``{"error": <the exception's class>, "message": ...,
"exit_code": ...}`` (and the message on stderr); a usage error too (``"error": "UsageError"``,
exit code 2), whenever ``--json`` is among the arguments.

Exit codes: 0 success (the run is finished), 1 a gembatch error (a message on stderr, never a
traceback; ``GEMBATCH_DEBUG=1`` shows one), 2 bad usage, 3 the run is not finished (``status``,
``wait --timeout``, ``cost``, ``cleanup``), 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import json
import math
import os
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from . import __version__

if TYPE_CHECKING:
    from .handle import BatchRun

__all__ = ["main"]

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NOT_DONE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
RUNS_ROOT = os.path.join(".gembatch", "runs")  # gembatch._run.flow.RUNS_DIR, without the import
FOLLOW_POLL_S = 5.0  # seconds between two reads of a run another process drives

#: The keys of each command's ``--json`` document (documented in its --help; tests hold them).
STATUS_KEYS = tuple(
    "job_dir state rows done failed requests answered reused skipped jobs shards_by_phase "
    "tokens_in_flight token_budget rows_per_second eta_seconds driven_by shards".split()
)
JSON_KEYS: dict[str, tuple[str, ...]] = {
    "status": STATUS_KEYS,
    "wait": STATUS_KEYS,
    "cancel": STATUS_KEYS,
    "run": (*STATUS_KEYS, "out"),
    "estimate": tuple(
        "job_dir model rows requests skipped deduplicated cached to_send shards estimate".split()
    ),
    "cost": tuple(
        "job_dir model finished input_rows finished_rows rows_by_origin tokens batch_usd "
        "interactive_usd saved_usd reused_usd prices_as_of".split()
    ),
    "list": ("jobs",),
    "runs": ("root", "runs"),
    "gc": ("root", "dry_run", "removed", "kept", "freed_bytes"),
    "cleanup": ("job_dir", "deleted", "left", "unfinished"),
    "cache": ("path", "entries", "bytes", "segments", "oldest", "newest", "max_bytes"),
}
JOB_KEYS = ("name", "state", "display_name", "error")
RUN_KEYS = tuple(
    "job_dir state driven_by kind model rows done failed bytes created changed error".split()
)
_JSON_NOTES = {
    "status": "state: submitting, running or done; driven_by: the process driving the run "
    "(then read from the run directory only) or null; shards: per-shard detail",
    "wait": "the status once the run is finished (or --timeout passed)",
    "cancel": "the status after the cancel",
    "run": "the run's status (after submission with --no-wait); out: the output written, or "
    "null; with --dry-run, the plan instead, as estimate --json prints it",
    "estimate": "estimate: the tokens and cost bound, or null; job_dir: null without --job-dir",
    "cost": "finished: false means the figures are partial (exit 3); rows_by_origin: batch, "
    "dedup, cache, skipped; tokens: prompt, output, thoughts, cached; reused_usd: what dedup "
    "and the cache saved at the batch rate",
    "list": f"jobs: a list of objects with {', '.join(JOB_KEYS)}",
    "runs": f"runs: a list of objects with {', '.join(RUN_KEYS)} (times in ISO 8601 UTC)",
    "gc": "removed: objects with job_dir, state, bytes; kept: objects with job_dir, reason",
    "cleanup": "deleted: file names; left: 'name: why' the service kept; unfinished: shard names",
    "cache": "the cache's figures (after clearing it, for clear)",
}

_IN_FORMATS = ".parquet (a file, a glob or a dataset directory), .csv, .jsonl / .ndjson, .json"
_OUT_SUFFIXES = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".parq": "parquet",
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
}
_OUT_FORMATS = (
    ".parquet (or .pq), .csv, .jsonl / .ndjson, .json (an array of rows), or a directory (a "
    "path ending in '/' or without extension) for a Parquet dataset"
)


# ------------------------------------------------------------------------------------ the parser
def _json_flag(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument(
        "--json",
        action="store_true",
        help=f"print one JSON object on stdout instead of text, with the keys "
        f"{', '.join(JSON_KEYS[command])} ({_JSON_NOTES[command]})",
    )


def _out_kind(out: str) -> str:
    """``parquet``, ``dataset``, ``csv``, ``jsonl`` or ``json``: what ``--out`` asks for."""
    if out.endswith("/") or os.path.isdir(out):
        return "dataset"
    suffix = os.path.splitext(out.rsplit("/", 1)[-1])[1].lower()
    if not suffix:
        return "dataset"
    if suffix not in _OUT_SUFFIXES:
        raise argparse.ArgumentTypeError(
            f"cannot write {out!r}: {suffix} is not an output format gembatch writes "
            f"(supported: {_OUT_FORMATS})"
        )
    return _OUT_SUFFIXES[suffix]


def _out_arg(value: str) -> str:
    """``--out``: checked when the command line is read, before anything is sent."""
    _out_kind(value)
    return value


def _positive(value: str) -> float:
    """A finite number >= 0 (seconds, days, dollars)."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {value!r}")
    return number


def _pilot(value: str) -> float:
    """``--pilot``: what ``batch_generate(pilot=)`` takes, a share of the rows in (0, 1) or a whole
    number of rows >= 1 (``2.5`` or ``50.0`` is neither, as in Python)."""
    try:
        number: float = int(value)
    except ValueError:
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if 0 < number < 1:
            return number
    else:
        if number >= 1:
            return number
    raise argparse.ArgumentTypeError(
        f"expected a share of the rows in (0, 1), e.g. 0.01, or a whole number of rows >= 1, "
        f"e.g. 50 (got {value!r})"
    )


class _Parser(argparse.ArgumentParser):
    """argparse's parser whose usage errors (exit 2) also print, when the command line asks for
    ``--json``, one JSON object on stdout, as every other failure does: ``{"error": "UsageError",
    "message": ..., "exit_code": 2}``. Its subcommands' parsers are of the same kind."""

    def __init__(self, *args: Any, json_errors: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.json_errors = json_errors

    def add_subparsers(self, **kwargs: Any) -> Any:
        kwargs.setdefault("parser_class", functools.partial(_Parser, json_errors=self.json_errors))
        return super().add_subparsers(**kwargs)

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr, flush=True)
        if self.json_errors:
            doc = {"error": "UsageError", "message": message, "exit_code": EXIT_USAGE}
            print(json.dumps(doc), file=sys.stdout, flush=True)
        sys.exit(EXIT_USAGE)


def _parser(*, json_errors: bool = False) -> argparse.ArgumentParser:
    """The command line's parser; ``json_errors``: usage errors also print a JSON object on stdout
    (``main`` asks for it when ``--json`` is among the arguments)."""
    parser = _Parser(
        json_errors=json_errors,
        prog="gembatch",
        description="Push a dataframe through the Gemini Batch API at batch price.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("Examples::", 1)[1] if __doc__ else None,
    )
    parser.add_argument(
        "--version", action="version", version=f"gembatch {__version__}", help="print the version"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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

    run = sub.add_parser(
        "run",
        help="run a batch over a Parquet / CSV / JSON lines file",
        description="Run a batch over an input file and write the output (or, with --no-wait, "
        "submit it and return). Exit 0 once written (or submitted).",
    )
    estimate = sub.add_parser(
        "estimate",
        help="show the plan and cost bound of a batch, sending nothing",
        description="Show what a run would send and its cost bound; nothing is sent.",
    )
    for p in (run, estimate):
        p.add_argument("input", help=f"input file: {_IN_FORMATS}; a local path or fsspec URL")
        prompt = p.add_mutually_exclusive_group(required=True)
        prompt.add_argument("--prompt-col", help="the column holding the prompt")
        prompt.add_argument(
            "--prompt-template", help="a template over columns, e.g. 'Summarise: {review}'"
        )
        p.add_argument("--model", required=True, help="the model, e.g. gemini-2.5-flash")
        p.add_argument(
            "--key", default=None, help="a column of unique row keys (default: row position)"
        )
        p.add_argument(
            "--system-instruction", default=None, help="a system instruction sent with every row"
        )
        p.add_argument(
            "--temperature", type=float, default=None, help="sampling temperature (e.g. 0.2)"
        )
        p.add_argument(
            "--max-output-tokens",
            type=int,
            default=None,
            help="cap on each answer's tokens (also bounds the cost estimate)",
        )
        p.add_argument(
            "--skip-null-prompts",
            action="store_true",
            help="rows with a null or empty prompt get status 'skipped' instead of an error",
        )
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
        "--out",
        type=_out_arg,
        default=None,
        help=f"the output: {_OUT_FORMATS}; required unless --no-wait or --dry-run",
    )
    run.add_argument(
        "--job-dir",
        default=None,
        help="the run directory (resumable: the same command again continues it; default: "
        f"{RUNS_ROOT}/<derived from the input and the request>, see `gembatch runs`)",
    )
    run.add_argument(
        "--poll-interval",
        type=_positive,
        default=None,
        help="seconds between status polls at first (backs off; default 10)",
    )
    run.add_argument(
        "--no-progress", action="store_true", help="no progress bar (stderr) and no cost summary"
    )
    run.add_argument(
        "--max-cost",
        type=_positive,
        default=None,
        help="refuse to send above this many US dollars (estimated bound)",
    )
    run.add_argument(
        "--pilot",
        type=_pilot,
        default=None,
        help="first send this share (e.g. 0.01) or number (e.g. 50) of random rows as a pilot",
    )
    run.add_argument(
        "--mode",
        choices=("batch", "interactive", "auto"),
        default="batch",
        help="batch: batch jobs at half the price (default); interactive: one call per row now, "
        "at the interactive price (to try a prompt on a few rows); auto: interactive for small "
        "work",
    )
    when = run.add_mutually_exclusive_group()
    when.add_argument(
        "--dry-run", action="store_true", help="prepare the run directory and print the plan only"
    )
    when.add_argument(
        "--no-wait",
        action="store_true",
        help="submit and return at once; follow with `gembatch status DIR` / `gembatch wait "
        "DIR`, collect with `gembatch results DIR --out FILE`",
    )
    _json_flag(run, "run")
    run.set_defaults(usage_error=run.error)
    estimate.add_argument(
        "--exact", action="store_true", help="count input tokens with countTokens (needs a key)"
    )
    estimate.add_argument(
        "--job-dir", default=None, help="keep the prepared run there (send it later with run)"
    )
    _json_flag(estimate, "estimate")

    cost = sub.add_parser(
        "cost",
        help="tokens and money of a run, and what dedup and the cache saved",
        description="Tokens and money of a run. On an unfinished run the figures are partial "
        "(its finished shards only), said so, and the exit code is 3.",
    )
    cost.add_argument("job_dir", help="the run directory (local path or fsspec URL)")
    _json_flag(cost, "cost")

    cache_cmd = sub.add_parser("cache", help="the result cache: stats or clear")
    cache_cmd.add_argument(
        "action", choices=("stats", "clear"), help="stats: what it holds; clear: empty it"
    )
    cache_cmd.add_argument(
        "--path", default=None, help="cache path or URL (default: the user cache)"
    )
    _json_flag(cache_cmd, "cache")

    listing = sub.add_parser("list", help="list the batch jobs on the service")
    listing.add_argument(
        "--base-url", default=None, help="service URL (default: GOOGLE_GEMINI_BASE_URL or Google)"
    )
    _json_flag(listing, "list")

    for name, text, description in (
        (
            "status",
            "show where a run stands (exit 0 done, 3 not finished)",
            "Where a run stands. It asks the service about an unfinished run; while another "
            "process drives the run, it reads the run directory only (and says so). Exit 0: "
            "finished; 3: not finished; 1: an error.",
        ),
        (
            "wait",
            "wait for a run to finish (drives it, or follows the process that does)",
            "Submit what is left and poll until the run is finished. While another process "
            "drives the run, follow it from the run directory (and take over if it stops). "
            "Exit 0: finished; 3: --timeout passed first.",
        ),
        ("cancel", "cancel a run's running jobs", "Cancel every job of the run still running."),
        (
            "results",
            "write a run's results (waits for it first)",
            "Write a run's output, waiting for the run first.",
        ),
        (
            "cleanup",
            "delete a run's files on the service (request and result files)",
            "Delete the run's request and result files left on the service (the jobs and the "
            "local run directory are kept) and list what the service refused to delete (such "
            "files expire after 48 h). Exit 3 when shards are not finished: their files stay "
            "until they are.",
        ),
    ):
        p = sub.add_parser(name, help=text, description=description)
        p.add_argument("job_dir", help="the run directory (local path or fsspec URL)")
        p.add_argument(
            "--base-url",
            default=None,
            help="service URL (default: GOOGLE_GEMINI_BASE_URL or Google)",
        )
        if name in ("wait", "results"):
            p.add_argument(
                "--poll-interval",
                type=_positive,
                default=None,
                help="seconds between status polls at first (default: the run's own)",
            )
        if name == "wait":
            p.add_argument(
                "--timeout",
                type=_positive,
                default=None,
                help="give up after this many seconds (exit 3; the run goes on)",
            )
        if name == "results":
            p.add_argument("--out", type=_out_arg, required=True, help=f"output: {_OUT_FORMATS}")
        else:
            _json_flag(p, name)

    runs = sub.add_parser(
        "runs",
        help="list local run directories: state, rows, size, times",
        description="List the run directories under ROOT (local): state (prepared, submitting, "
        "running, done, unreadable), the process driving each, rows, size on disk, created "
        "and last changed.",
    )
    gc = sub.add_parser(
        "gc",
        help="remove finished run directories",
        description="Remove the directories of finished runs under ROOT and print what that "
        "freed. A run another process drives is never removed; unfinished ones only with "
        "--include-unfinished. Without --yes (or --dry-run) it asks, or refuses when not on a "
        "terminal (exit 2). Remote files are not touched (`gembatch cleanup DIR` first).",
    )
    for p in (runs, gc):
        p.add_argument(
            "root",
            nargs="?",
            default=RUNS_ROOT,
            help=f"a directory of run directories, or one run directory (default: {RUNS_ROOT}, "
            "where calls without a job directory keep their runs)",
        )
    gc.add_argument(
        "--older-than",
        type=_positive,
        default=None,
        metavar="DAYS",
        help="only runs last changed more than DAYS days ago",
    )
    gc.add_argument("--dry-run", action="store_true", help="list what would be removed, only")
    gc.add_argument("--yes", action="store_true", help="remove without asking")
    gc.add_argument(
        "--include-unfinished",
        action="store_true",
        help="also remove unfinished (or unreadable) runs no process drives; their jobs are not "
        "cancelled and their answers are lost (`gembatch cancel DIR` first)",
    )
    _json_flag(runs, "runs")
    _json_flag(gc, "gc")
    return parser


# ------------------------------------------------------------------------------- input and output
def _emit(args: argparse.Namespace, payload: Any, text: str) -> None:
    """The command's answer: ``payload`` as one JSON document with --json, else ``text``."""
    stream = getattr(args, "stdout", None) or sys.stdout
    if getattr(args, "json", False):
        print(json.dumps(payload, default=str), file=stream, flush=True)
    elif text:
        print(text, file=stream, flush=True)


def _write(frame: Any, out: str, kind: str) -> None:
    import polars as pl

    if type(frame).__module__.split(".")[0] == "pandas":  # a run of a pandas frame: its index
        plain = type(frame.index).__name__ == "RangeIndex" and frame.index.name is None
        frame = pl.from_pandas(frame, include_index=not plain)  # kept, unless the default one
    elif not isinstance(frame, pl.DataFrame):  # a run of a pyarrow Table
        frame = pl.from_arrow(frame)
    assert isinstance(frame, pl.DataFrame)
    if kind == "csv":  # CSV has no nested types: struct/list columns become JSON text
        nested = [n for n, t in frame.schema.items() if t.is_nested()]
        frame.with_columns(
            pl.struct(n).struct.json_encode().str.slice(len(n) + 4).str.head(-1).alias(n)
            for n in nested
        ).write_csv(out)
    elif kind == "jsonl":
        frame.write_ndjson(out)
    elif kind == "json":
        frame.write_json(out)
    else:
        frame.write_parquet(out)


def _save(run: BatchRun, out: str) -> None:
    """Write a finished run's output to ``out`` (Parquet streamed from the run directory)."""
    kind = _out_kind(out)
    if kind in ("dataset", "parquet"):
        run.write(_sink_path(out, kind))
    else:
        _write(run.result(), out, kind)


def _sink_path(out: str, kind: str) -> str:
    """``--out`` as the library's destination: a dataset directory ends in ``/`` (whatever its
    name), one Parquet file does not."""
    return out.rstrip("/") + "/" if kind == "dataset" else out


def _check_out(out: str) -> None:
    """Refuse, before anything runs, a Parquet destination the run could not write at its end (a
    directory holding files gembatch did not write, a file name that is a directory)."""
    from ._storage import OutputSink
    from .exceptions import ConfigError

    kind = _out_kind(out)
    if os.path.isdir(out) and not out.endswith("/") and os.path.splitext(out)[1]:
        raise ConfigError(
            f"--out {out!r} is a directory, not a file. Hint: another name for one file, or "
            f"{out.rstrip('/')}/ to write a Parquet dataset into that directory."
        )
    if kind in ("dataset", "parquet"):
        OutputSink(
            _sink_path(out, kind), 0, own_columns=("gemini_status", "gemini_origin"), create=False
        )


def _template(template: str) -> Any:
    """``'Summarise: {review}'`` -> the prompt expression ``'Summarise: ' + review`` (``{{`` and
    ``}}`` are literal braces). A template that names no column, or whose braces do not pair, is
    refused before anything is read or sent."""
    import string

    import polars as pl

    from .exceptions import ConfigError

    parts: list[Any] = []
    try:
        for literal, field, spec, conversion in string.Formatter().parse(template):
            if literal:
                parts.append(pl.lit(literal))
            if field is None:
                continue
            if spec or conversion:
                extra = ("!" + conversion if conversion else "") + (":" + spec if spec else "")
                shown = f"{{{field}{extra}}}"
                raise ValueError(
                    f"{shown}: formats and conversions are not supported, only {{{field}}} (the "
                    "column's value as text); format the column before the run"
                )
            if not field.strip():
                raise ValueError(f"{{{field}}} is not a column name")
            parts.append(pl.col(field.strip()).cast(pl.Utf8))
    except ValueError as exc:
        raise ConfigError(
            f"--prompt-template {template!r}: {exc}. Hint: name columns as {{column}}; write {{{{ "
            "and }} for literal braces."
        ) from None
    if not any(isinstance(p, pl.Expr) and p.meta.root_names() for p in parts):
        raise ConfigError(
            f"--prompt-template {template!r} names no column: every row would send the same "
            "prompt. Hint: name columns as {column}, e.g. 'Summarise: {review}'."
        )
    return pl.concat_str(parts)


def _read_json(fh: Any) -> Any:
    """A JSON array of rows, or (failing that) JSON lines."""
    import io

    import polars as pl

    data = fh.read()
    try:
        return pl.read_json(io.BytesIO(data))
    except Exception:  # noqa: BLE001 - not an array: maybe JSON lines
        return pl.read_ndjson(io.BytesIO(data))


def _read(path: str) -> Any:
    """The input: a Parquet path (streamed by gembatch) or a frame read from CSV / JSON."""
    import fsspec
    import polars as pl

    from .exceptions import InputError

    # The rule of gembatch's Parquet reader (_storage.parquet_dataset, glob=None): a path that
    # exists is that file, brackets and all ('reviews[1].parquet'); one that does not and holds a
    # '*' is a pattern.
    local = "://" not in path
    exists = local and os.path.exists(path)
    pattern = not exists and "*" in path
    if local and not exists and not pattern:
        odd = " (only '*' patterns are expanded)" if any(c in path for c in "?[") else ""
        raise InputError(
            f"No input file {path!r}{odd}. Hint: check the path; inputs: {_IN_FORMATS}."
        )
    name = path.rstrip("/").rsplit("/", 1)[-1]
    suffix = os.path.splitext(name)[1].lower()
    if suffix == ".parquet" or path.endswith("/") or pattern or (local and os.path.isdir(path)):
        if local and os.path.isfile(path):
            try:
                with open(path, "rb") as fh:  # a file object: polars never globs its name
                    pl.read_parquet_schema(fh)
            except Exception as exc:  # noqa: BLE001 - whatever the reader says, said cleanly
                first = (str(exc).strip().splitlines() or [""])[0]
                raise InputError(
                    f"{path!r} cannot be read as Parquet ({first}). Hint: the format is told by "
                    f"the name; inputs: {_IN_FORMATS}."
                ) from exc
        return path  # streamed by gembatch
    readers: dict[str, tuple[str, Callable[[Any], Any]]] = {
        ".csv": ("CSV", _read_csv),
        ".jsonl": ("JSON lines", _read_ndjson),
        ".ndjson": ("JSON lines", _read_ndjson),
        ".json": ("JSON", _read_json),
    }
    if suffix not in readers:
        raise InputError(
            f"Cannot tell the format of {path!r} from its name. Hint: inputs are {_IN_FORMATS}."
        )
    label, reader = readers[suffix]
    try:
        with fsspec.open(path, "rb") as fh:
            return reader(fh)
    except FileNotFoundError as exc:
        raise InputError(f"No input file {path!r}. Hint: check the path.") from exc
    except Exception as exc:  # noqa: BLE001 - a reader's error, said cleanly
        first = (str(exc).strip().splitlines() or [""])[0]
        raise InputError(
            f"{path!r} cannot be read as {label} ({type(exc).__name__}: {first}). Hint: the "
            f"format is told by the name; inputs: {_IN_FORMATS}."
        ) from exc


def _read_ndjson(fh: Any) -> Any:
    """JSON lines, types taken from every line (a field first seen late is kept)."""
    import polars as pl

    return pl.read_ndjson(fh, infer_schema_length=None)


def _read_csv(fh: Any) -> Any:
    """A CSV as it is written: every column text (type guessing would send ``02139`` as ``2139``,
    ``1e5`` as ``100000.0``, and merge keys ``007`` and ``7``)."""
    import polars as pl

    return pl.read_csv(fh, infer_schema=False)


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
    data = _read(args.input)
    client = make_client(base_url=args.base_url) if args.base_url else None
    cache: object = False if args.no_cache else (args.cache or True)
    return (
        data,
        prompt,
        {
            "config": config,
            "key": args.key,
            "client": client,
            "cache": cache,
            "skip_null_prompts": args.skip_null_prompts,
        },
    )


# ------------------------------------------------------------------------------------- the runs
def _opener(args: argparse.Namespace, job_dir: str, progress: bool = False) -> Callable[[], Any]:
    """A function (re)opening the run in ``job_dir`` with the command's service and polling."""
    from ._service.backend import make_client
    from .handle import BatchRun

    base_url = getattr(args, "base_url", None)
    client = make_client(base_url=base_url) if base_url else None
    poll = getattr(args, "poll_interval", None)

    def reopen() -> BatchRun:
        return BatchRun.open(job_dir, client=client, poll_interval=poll, progress=progress)

    return reopen


def _until_done(
    run: BatchRun, reopen: Callable[[], BatchRun], *, timeout: float | None, poll: float
) -> BatchRun:
    """Wait for the run: drive it, or, while another process drives it, follow it from the run
    directory (taking over when that process stops). The handle returned may be unfinished when
    ``timeout`` seconds passed first."""
    from .exceptions import RunLockedError

    deadline = None if timeout is None else time.monotonic() + timeout
    told = False
    while True:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        driver = _driver(run.job_dir)
        if driver is None:  # nobody drives it: drive it here
            try:
                return run.wait(left)
            except RunLockedError as exc:  # a process took it meanwhile
                driver = exc.holder or "another process"
        status = run.status()  # read from the run directory while another process holds it
        if status.state == "done":
            return reopen()
        if not told and status.driven_by:
            told = True
            print(
                f"gembatch: {run.job_dir} is driven by {driver}; following it from the run "
                "directory",
                file=sys.stderr,
            )
        if deadline is not None and time.monotonic() >= deadline:
            return run
        pause = poll if deadline is None else min(poll, deadline - time.monotonic())
        time.sleep(max(0.0, pause))
        run = reopen()  # what that process recorded, before driving it here


def _follow_poll(args: argparse.Namespace) -> float:
    return min(FOLLOW_POLL_S, args.poll_interval) if args.poll_interval else FOLLOW_POLL_S


def _estimate(args: argparse.Namespace) -> int:
    from .api import plan

    data, prompt, kwargs = _call_args(args)
    if kwargs["client"] is None and args.base_url is None and not args.exact:
        kwargs.pop("client")
    result = plan(data, prompt, job_dir=args.job_dir, exact=args.exact, progress=False, **kwargs)
    text = str(result)
    payload = result.to_dict()
    if args.job_dir:
        text += (
            f"\nprepared in {args.job_dir}: "
            f"`gembatch run ... --job-dir {shlex.quote(args.job_dir)}` sends it"
        )
    else:  # prepared in a temporary directory, removed already: not a place to show
        text = text.replace(f" in {result.job_dir}", "", 1)
        payload["job_dir"] = None
    _emit(args, payload, text)
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
    result = batch_generate(  # type: ignore[call-overload]
        data,
        prompt,
        job_dir=args.job_dir,
        wait=False,  # submitted here, then waited for below (or not: --no-wait)
        progress=not args.no_progress,
        options=options,
        max_cost=args.max_cost,
        pilot=args.pilot,
        dry_run=args.dry_run,
        mode=args.mode,
        **kwargs,
    )
    if isinstance(result, Plan):
        _emit(args, result.to_dict(), str(result))
        return EXIT_OK
    run: BatchRun = result
    job_dir = run.job_dir
    if args.no_wait:
        status = run.status(refresh=False)
        quoted = shlex.quote(job_dir)
        collect = shlex.quote(args.out) if args.out else "FILE"
        text = "\n".join(
            (
                f"submitted: {job_dir} ({status.progress.describe()})",
                f"  follow it:   gembatch status {quoted}   (exit 0 when done, 3 before)",
                f"  wait for it: gembatch wait {quoted}",
                f"  collect:     gembatch results {quoted} --out {collect}",
            )
        )
        _emit(args, {**status.to_dict(), "out": None}, text)
        return EXIT_OK
    reopen = _opener(args, job_dir, progress=not args.no_progress)
    run = _until_done(run, reopen, timeout=None, poll=_follow_poll(args))
    _save(run, args.out)
    _emit(args, {**run.status(refresh=False).to_dict(), "out": args.out}, f"wrote {args.out}")
    return EXIT_OK


def _cost(args: argparse.Namespace, run: BatchRun) -> int:
    status = run.status(refresh=False)
    cost = run.cost()
    finished = status.state == "done"
    t = cost.billed.tokens
    payload = {
        "job_dir": run.job_dir,
        "model": cost.model,
        "finished": finished,
        "input_rows": status.progress.rows,
        "finished_rows": status.progress.done,
        "rows_by_origin": dict(cost.rows),
        "tokens": {
            "prompt": t.prompt,
            "output": t.output,
            "thoughts": t.thoughts,
            "cached": t.cached,
        },
        "batch_usd": cost.batch_usd,
        "interactive_usd": cost.interactive_usd,
        "saved_usd": cost.saved_usd,
        "reused_usd": cost.reused.batch_usd,
        "prices_as_of": cost.billed.as_of,
    }
    text = str(cost)
    if not finished:
        text = (
            f"PARTIAL: the run in {run.job_dir} is not finished ({status.state}, "
            f"{status.progress.done:,}/{status.progress.rows:,} rows): the figures count only "
            f"its finished shards so far.\n{text}"
        )
    _emit(args, payload, text)
    return EXIT_OK if finished else EXIT_NOT_DONE


def _cleanup(args: argparse.Namespace, run: BatchRun) -> int:
    report = run.cleanup()
    lines = [f"deleted {len(report['deleted'])} remote file(s) of {run.job_dir}"]
    if report["left"]:
        lines.append("left on the service (such files expire 48 h after they were made):")
        lines += [f"  {item}" for item in report["left"]]
    if report["unfinished"]:
        lines.append(
            f"{len(report['unfinished'])} shard(s) not finished: their files are deleted when "
            "they finish (or by this command then)"
        )
    _emit(args, {"job_dir": run.job_dir, **report}, "\n".join(lines))
    return EXIT_NOT_DONE if report["unfinished"] else EXIT_OK


def _on_run(args: argparse.Namespace) -> int:
    """The commands over one run directory."""
    reopen = _opener(args, args.job_dir, progress=args.command in ("wait", "results"))
    run = reopen()
    if args.command == "results" and run.done():  # nothing to wait for: no progress bar
        run = _opener(args, args.job_dir, progress=False)()
    if args.command == "cost":
        return _cost(args, run)
    if args.command == "cleanup":
        return _cleanup(args, run)
    if args.command == "status":
        status = run.status()
        _emit(args, status.to_dict(), str(status))
        return EXIT_OK if status.state == "done" else EXIT_NOT_DONE
    if args.command == "wait":
        run = _until_done(run, reopen, timeout=args.timeout, poll=_follow_poll(args))
        status = run.status(refresh=False)
        _emit(args, status.to_dict(), str(status))
        return EXIT_OK if status.state == "done" else EXIT_NOT_DONE
    if args.command == "cancel":
        run.cancel()
        status = run.status(refresh=False)
        _emit(args, status.to_dict(), str(status))
        return EXIT_OK
    # results
    run = _until_done(run, reopen, timeout=None, poll=_follow_poll(args))
    _save(run, args.out)
    print(f"wrote {args.out}")
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    from ._service.backend import Backend, make_client

    jobs = list(Backend(make_client(base_url=args.base_url)).iter_jobs())
    payload = {
        "jobs": [
            {"name": j.name, "state": j.state, "display_name": j.display_name, "error": j.error}
            for j in jobs
        ]
    }
    text = "\n".join(
        f"{j.name}\t{j.state.removeprefix('JOB_STATE_')}\t{j.display_name or ''}" for j in jobs
    )
    _emit(args, payload, text)
    return EXIT_OK


def _cache_cmd(args: argparse.Namespace) -> int:
    from . import cache

    if args.action == "clear":
        cache.clear(args.path)
        if not args.json:
            print(f"cleared {cache.ResultCache(args.path).path}")
    stats = cache.stats(args.path)
    payload = {key: getattr(stats, key) for key in JSON_KEYS["cache"]}
    for key in ("oldest", "newest"):
        payload[key] = None if payload[key] is None else payload[key].isoformat()
    _emit(args, payload, "" if args.action == "clear" else str(stats))
    return EXIT_OK


# ------------------------------------------------------------------------------- run directories
def _is_run(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "run.json"))


def _run_dirs(root: str) -> list[str]:
    """``root`` itself when it is a run directory, else its child directories that are."""
    if _is_run(root):
        return [root]
    if not os.path.isdir(root):
        return []
    return sorted(
        entry.path
        for entry in os.scandir(root)
        if entry.is_dir(follow_symlinks=False) and _is_run(entry.path)
    )


def _disk(path: str) -> tuple[int, float]:
    """(bytes on disk, the last change: the newest mtime) of a directory tree."""
    size, latest = 0, os.lstat(path).st_mtime
    for folder, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(folder, name))
            except OSError:  # removed meanwhile
                continue
            size += st.st_size
            latest = max(latest, st.st_mtime)
    return size, latest


def _driver(path: str) -> str | None:
    """The live process holding the run's lock ('pid N on HOST'), read without taking it."""
    from ._state.lock import STALE_UNREADABLE_S, _alive, _read
    from ._storage import Directory

    holder, age = _read(Directory(path))
    if age is None:
        return None  # no lock file
    if holder is None:  # unreadable: being written, or left by a dead process
        return "an unknown process (unreadable lock file)" if age < STALE_UNREADABLE_S else None
    if not _alive(holder):
        return None
    return f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}"


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).isoformat(timespec="seconds")


def _run_info(path: str) -> dict[str, Any]:
    """What ``gembatch runs`` shows of one run directory (read only)."""
    from .exceptions import GembatchError
    from .handle import BatchRun

    size, changed = _disk(path)
    info: dict[str, Any] = dict.fromkeys(RUN_KEYS)
    info.update(job_dir=path, bytes=size, changed=_iso(changed), driven_by=_driver(path))
    info["_changed"] = changed
    try:
        with open(os.path.join(path, "run.json"), encoding="utf-8") as fh:
            manifest = json.load(fh)
        info.update(kind=manifest.get("kind"), model=manifest.get("model"))
        info["created"] = manifest.get("created") or None
        status = BatchRun.open(path, progress=False).status(refresh=False)
    except (GembatchError, OSError, ValueError) as exc:
        info.update(state="unreadable", error=str(exc))
        return info
    state = status.state
    if status.shards and all(s["state"] == "prepared" for s in status.shards):
        state = "prepared"  # nothing sent yet
    p = status.progress
    info.update(state=state, rows=p.rows, done=p.done, failed=p.failed)
    return info


def _human(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1000
    return f"{size:,.1f} TB"  # pragma: no cover


def _count(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


def _local_time(iso: str | None) -> str:
    if not iso:
        return "-"
    try:
        return dt.datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso[:16]


def _public(info: dict[str, Any]) -> dict[str, Any]:
    return {k: info[k] for k in RUN_KEYS}


def _runs(args: argparse.Namespace) -> int:
    infos = sorted((_run_info(p) for p in _run_dirs(args.root)), key=lambda i: i["_changed"])
    lines = [f"no run directories under {args.root}"] if not infos else []
    if infos:
        lines.append(
            f"{'STATE':<11} {'ROWS DONE':>19} {'FAILED':>7} {'SIZE':>9}  {'CREATED':<16}  "
            f"{'CHANGED':<16}  RUN DIRECTORY"
        )
    for i in infos:
        rows = "-" if i["rows"] is None else f"{i['done']:,}/{i['rows']:,}"
        failed = "-" if i["failed"] is None else f"{i['failed']:,}"
        note = f"  (driven by {i['driven_by']})" if i["driven_by"] else ""
        lines.append(
            f"{i['state']:<11} {rows:>19} {failed:>7} {_human(i['bytes']):>9}  "
            f"{_local_time(i['created']):<16}  {_local_time(i['changed']):<16}  "
            f"{i['job_dir']}{note}"
        )
    if infos:
        total = sum(i["bytes"] for i in infos)
        lines.append(f"{_count(len(infos), 'run directory', 'run directories')}, {_human(total)}")
    _emit(args, {"root": args.root, "runs": [_public(i) for i in infos]}, "\n".join(lines))
    return EXIT_OK


def _gc(args: argparse.Namespace) -> int:
    now = time.time()
    remove: list[dict[str, Any]] = []
    kept: list[dict[str, Any]] = []
    for info in (_run_info(p) for p in _run_dirs(args.root)):
        reason = None
        if info["driven_by"]:
            reason = f"driven by {info['driven_by']}"
        elif info["state"] != "done" and not args.include_unfinished:
            reason = f"{info['state']}: not finished (--include-unfinished removes it)"
        elif args.older_than is not None and now - info["_changed"] < args.older_than * 86400:
            days = "day" if args.older_than == 1 else "days"
            reason = f"changed less than {args.older_than:g} {days} ago"
        if reason is None:
            remove.append(info)
        else:
            kept.append({"job_dir": info["job_dir"], "reason": reason})
    planned = sum(i["bytes"] for i in remove)
    if remove and not args.dry_run and not args.yes:
        listed = "\n".join(f"  {i['job_dir']} ({i['state']}, {_human(i['bytes'])})" for i in remove)
        count = _count(len(remove), "run directory", "run directories")
        question = f"remove {count} ({_human(planned)}):\n{listed}\n"
        if not sys.stdin.isatty():
            message = (
                f"gembatch: would {question}Nothing removed: pass --yes to remove them "
                "(or --dry-run to list them only)."
            )
            return _fail(args, "NotConfirmed", message, EXIT_USAGE)
        print(question, end="", file=sys.stderr)
        if input("proceed? [y/N] ").strip().lower() not in ("y", "yes"):
            print("gembatch: nothing removed", file=sys.stderr)
            kept += [{"job_dir": i["job_dir"], "reason": "not confirmed"} for i in remove]
            remove = []
    removed: list[dict[str, Any]] = []
    failed = False
    for info in remove:
        path = info["job_dir"]
        if not args.dry_run:
            driver = _driver(path)  # again, just before: a process may have taken it meanwhile
            if driver:
                kept.append({"job_dir": path, "reason": f"driven by {driver}"})
                continue
            try:
                shutil.rmtree(path)
            except OSError as exc:
                kept.append({"job_dir": path, "reason": f"could not remove: {exc}"})
                failed = True
                continue
        removed.append({"job_dir": path, "state": info["state"], "bytes": info["bytes"]})
    freed = sum(i["bytes"] for i in removed)
    verb = "would remove" if args.dry_run else "removed"
    dirs = _count(len(removed), "run directory", "run directories")
    lines = [f"{verb} {i['job_dir']} ({i['state']}, {_human(i['bytes'])})" for i in removed]
    lines += [f"kept {k['job_dir']}: {k['reason']}" for k in kept]
    lines.append(
        f"{'would free' if args.dry_run else 'freed'} {_human(freed)} in {dirs} under {args.root}"
    )
    payload = {
        "root": args.root,
        "dry_run": args.dry_run,
        "removed": removed,
        "kept": kept,
        "freed_bytes": freed,
    }
    _emit(args, payload, "\n".join(lines))
    return EXIT_ERROR if failed else EXIT_OK


# -------------------------------------------------------------------------------------- main
def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from .demo import run_demo

        run_demo(rows=args.rows, out=args.out, job_dir=args.job_dir, shard_rows=args.shard_rows)
        return EXIT_OK
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "run": _run,
        "estimate": _estimate,
        "cache": _cache_cmd,
        "list": _list,
        "runs": _runs,
        "gc": _gc,
    }
    return commands.get(args.command, _on_run)(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["emulator"]:
        from .emulator.__main__ import main as emulator_main

        return emulator_main(args_list[1:])
    parser = _parser(json_errors="--json" in args_list)
    args = parser.parse_args(args_list)
    if args.command == "run" and args.out is None and not (args.no_wait or args.dry_run):
        args.usage_error(
            "the following arguments are required: --out (unless --no-wait or --dry-run)"
        )
    if (
        args.command == "run"
        and args.out is not None
        and os.path.abspath(args.out) == os.path.abspath(str(args.input))
    ):
        args.usage_error(f"--out {args.out!r} is the input file: write the results elsewhere")
    from .exceptions import GembatchError

    if getattr(args, "out", None) is not None and args.command in ("run", "results"):
        try:
            _check_out(args.out)
            if args.command == "run":
                from ._storage import check_apart

                check_apart(str(args.input), args.out)
        except GembatchError as exc:
            return _fail(args, exc, f"gembatch: {exc}", EXIT_ERROR)

    args.stdout = sys.stdout  # the answer; with --json everything else goes to stderr
    as_json = getattr(args, "json", False)
    quiet = contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext()
    try:
        with quiet:
            return _dispatch(args)
    except GembatchError as exc:
        return _fail(args, exc, f"gembatch: {_cli_hints(args, str(exc))}", EXIT_ERROR)
    except KeyboardInterrupt as exc:
        message = "gembatch: interrupted; the run directory is intact, run the same command to "
        return _fail(args, exc, message + "resume.", EXIT_INTERRUPTED)
    except OSError as exc:
        if os.environ.get("GEMBATCH_DEBUG"):
            raise
        where = f": {exc.filename}" if exc.filename else ""
        return _fail(args, exc, f"gembatch: {exc.strerror or exc}{where}", EXIT_ERROR)
    except Exception as exc:
        if os.environ.get("GEMBATCH_DEBUG"):
            raise
        message = (
            f"gembatch: unexpected {type(exc).__name__}: {exc}\nHint: this may be a gembatch bug; "
            "GEMBATCH_DEBUG=1 shows the traceback."
        )
        return _fail(args, exc, message, EXIT_ERROR)


def _fail(args: argparse.Namespace, error: BaseException | str, message: str, code: int) -> int:
    """A failed command: ``message`` on stderr; with --json also one JSON object on stdout,
    ``{"error": <exception class>, "message": ..., "exit_code": ...}``, for scripts."""
    print(message, file=sys.stderr)
    if getattr(args, "json", False):
        doc = {
            "error": error if isinstance(error, str) else type(error).__name__,
            "message": message.removeprefix("gembatch: "),
            "exit_code": code,
        }
        print(json.dumps(doc), file=getattr(args, "stdout", None) or sys.stdout, flush=True)
    return code


#: Python-API hints in gembatch's messages -> the same advice in this command line's flags, for
#: the commands that have those flags.
_RUN_ESTIMATE = ("run", "estimate")
_HINTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (r"(?:set )?Config\(max_output_tokens=\.\.\.\)", "set --max-output-tokens N", _RUN_ESTIMATE),
    (r"\bmax_cost=", "--max-cost ", ("run",)),
    (r"\bmax_cost\b", "--max-cost", ("run",)),
    (r"pass skip_null_prompts=True", "pass --skip-null-prompts", _RUN_ESTIMATE),
    (r"\bpass key=None", "leave out --key", _RUN_ESTIMATE),
    (r"\bor key=None", "or leave out --key", _RUN_ESTIMATE),
    (r"pass backend=\S+, or exact=False", "leave out --exact", ("estimate",)),
)
_QUOTED = r"""('[^']*'|"[^"]*")"""  # a Python string literal: a run directory in a hint
#: Python-API hints naming a run directory -> the command that does the same ({} is the directory).
_PATH_HINTS: tuple[tuple[str, str, tuple[str, ...] | None], ...] = (
    (rf"call again with job_dir={_QUOTED}", "run again with --job-dir {}", ("run",)),
    (rf"(?:gembatch\.)?BatchRun\.open\({_QUOTED}\)\.wait\(\)", "`gembatch wait {}`", None),
    (
        rf"(?:gembatch\.)?BatchRun\.open\({_QUOTED}\)\.result\(\)",
        "`gembatch results {} --out FILE`",
        None,
    ),
)


def _path_hint(template: str, match: Any) -> str:
    """``template`` with the run directory a hint named (a Python literal) quoted for a shell."""
    import ast

    try:
        return template.format(shlex.quote(str(ast.literal_eval(match[1]))))
    except (ValueError, SyntaxError):  # not a plain literal after all: left as it was
        return str(match[0])


def _cli_hints(args: argparse.Namespace, message: str) -> str:
    """``message`` with the Python-API hints it gives said as this command line's flags and
    commands (only those this command has)."""
    import re

    for pattern, replacement, commands in _HINTS:
        if args.command in commands:
            message = re.sub(pattern, replacement, message)
    for pattern, template, only in _PATH_HINTS:
        if only is None or args.command in only:
            message = re.sub(pattern, functools.partial(_path_hint, template), message)
    message = message.replace(
        "start a run there with batch_generate(..., job_dir=...)",
        "start a run there with `gembatch run ... --job-dir DIR`",
    )
    return message


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
