"""gembatch against the Batch API guide's own recipe: local cost and latency, same data, same
emulator.

One emulator process (``python -m gembatch.emulator --no-limits --shuffle-output``: no quotas or
rate limits, zero model latency, results out of input order) serves every run of the section. An
input Parquet of N rows (``id``: shuffled unique string keys, not row positions; ``prompt``: ~200
characters) is written once per size, and each client runs in a child process of its own
(``python -m benchmarks.peer --child ...``, working directory: a fresh scratch directory):

* ``recipe``: what the Batch API guide teaches, with the google-genai SDK alone (gembatch is not
  imported): read the Parquet with polars; a per-row ``json.dumps`` loop writing the JSONL in the
  spelling of the guide's JSONL example (``{"key": ..., "request": {"contents": [{"parts":
  [{"text": ...}], "role": "user"}]}}``, with the ``role`` its request examples give, see below);
  ``client.files.upload``; ``client.batches.create`` with a ``display_name``; ``client.batches.get``
  every P seconds until a final state (and, while SUCCEEDED, until ``dest.file_name`` is set);
  ``client.files.download``; a ``json.loads`` loop over the result lines building the key, text,
  token-count and error columns; a polars left join on the key back onto the input (input order);
* ``in-memory``: the same Parquet read with polars, then ``df.gemini.batch_generate(...)``;
* ``streaming``: ``gembatch.batch_generate_parquet(input, output_dir, ...)``.

All three use the same model, poll every P seconds (``--peer-poll``; gembatch with
``poll_interval = max_poll_interval = P``), and gembatch runs with ``key="id"``, ``cache=False``,
``progress=False`` and otherwise its default options (``--peer-tier N``: ``Options(tier=N)``, whose
larger enqueued-token limit cuts fewer, larger shards; by default the tier is unknown and shards
are cut for tier 1's limit). Figures per client process:

* CPU s: user + system CPU of the child from its start to the moment the call returned (its own
  ``getrusage`` of itself and of any children it waited for; interpreter start and imports
  included, the comparison file written afterwards excluded);
* peak RSS MiB: the child's ``VmHWM`` (/proc/self/status) read right after the call returned (the
  parent's psutil samples, printed as "sampled", span the whole child, the comparison file too);
* wall s: the child launched -> the call returned;
* head s: the call began (just before the Parquet is read) -> the last batch job of the run was
  created;
* tail s: the last batch job of the run ended (SUCCEEDED) -> the call returned.

Job create and end times are the emulator's own (``batches.list`` over HTTP after the run:
``metadata.createTime`` and ``metadata.endTime``, wall-clock RFC 3339), compared with the child's
wall-clock timestamps (same machine clock); a run's jobs are those created while it ran (runs never
overlap). Files left on the emulator are deleted between runs (unmeasured).

Every run's output must equal the first recipe run's row by row (key, text and the token columns,
in input order), otherwise the section fails. The emulator draws each answer from a seed of the
literal request, and gembatch sends ``"role": "user"``: without that field in the recipe's lines
(the guide's JSONL example leaves it out; the service defaults it) every text and output token
count differs in its drawn words, so the recipe carries it (about 0.35 s more CPU in its
``json.dumps`` loop at 1 M rows).

Runs go in rounds (recipe, in-memory, streaming) ``--repeat`` times; each figure of each client is
the best (least) of its runs, taken on its own. ``--peer-recipe-once`` runs the recipe once per
size (its figures then come from one run: noisier, and on a busy machine in gembatch's favour).

Targets (gembatch / recipe): CPU <= 0.35x at ``--rows`` and <= 0.5x at the smaller size; peak RSS
<= 0.5x for the in-memory call and < 600 MiB (absolute) for streaming, at both sizes; tail <= 0.5x;
head <= 1.0x. CPU, head and tail targets apply to both gembatch clients.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import resource
import shutil
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from . import Row

SECTION = "peer"
ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
MODEL = "gemini-2.5-flash"
CLIENTS = ("recipe", "in-memory", "streaming")
TOKENS = ("prompt_tokens", "output_tokens", "thoughts_tokens", "total_tokens")
COMPARED = ("id", "text", *TOKENS)
STREAM_RSS_LIMIT = 600.0  # MiB, absolute
_FINAL = ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--peer-small",
        type=int,
        default=200_000,
        help="peer: the second, smaller size (default 200,000; when not below --rows, --rows / 5 "
        "is used instead; 0: --rows only)",
    )
    parser.add_argument(
        "--peer-poll",
        type=float,
        default=0.5,
        help="peer: seconds between job polls, the same for every client (default 0.5)",
    )
    parser.add_argument(
        "--peer-tier",
        type=int,
        choices=(1, 2, 3),
        default=None,
        help="peer: gembatch's Options(tier=N) (default: unset, gembatch's default: tier unknown, "
        "shards cut for tier 1's enqueued-token limit; a higher tier cuts fewer, larger shards)",
    )
    parser.add_argument(
        "--peer-recipe-once",
        action="store_true",
        help="peer: run the guide's recipe once per size (default: --repeat times, like gembatch)",
    )
    parser.add_argument(
        "--peer-timeout",
        type=float,
        default=3600.0,
        help="peer: seconds before a client process is killed (default 3600)",
    )


# --------------------------------------------------------------------------------------------
# the clients (each runs in a child process: ``python -m benchmarks.peer --child SPEC``)
def recipe(source: str, workdir: Path, poll: float) -> Any:
    """The guide's recipe, step by step, with the google-genai SDK; the joined frame, input
    order."""
    import polars as pl
    from google import genai
    from google.genai import types

    client: Any = genai.Client()  # typed Any: the guide's code, without None checks
    df = pl.read_parquet(source)

    # one JSONL line per row, as the guide writes them (the role as in its request examples)
    requests_path = workdir / "my-batch-requests.jsonl"
    with open(requests_path, "w") as f:
        for key, prompt in zip(df["id"].to_list(), df["prompt"].to_list()):
            content = {"parts": [{"text": prompt}], "role": "user"}
            req = {"key": key, "request": {"contents": [content]}}
            f.write(json.dumps(req) + "\n")

    uploaded_file = client.files.upload(
        file=str(requests_path),
        config=types.UploadFileConfig(display_name="my-batch-requests", mime_type="jsonl"),
    )
    file_batch_job = client.batches.create(
        model=MODEL, src=uploaded_file.name, config={"display_name": "file-upload-job-1"}
    )

    batch_job = client.batches.get(name=file_batch_job.name)
    while batch_job.state.name not in _FINAL or (
        batch_job.state.name == "JOB_STATE_SUCCEEDED"
        and not (batch_job.dest and batch_job.dest.file_name)
    ):
        time.sleep(poll)
        batch_job = client.batches.get(name=file_batch_job.name)
    if batch_job.state.name != "JOB_STATE_SUCCEEDED":
        raise RuntimeError(f"job ended {batch_job.state.name}: {batch_job.error}")
    file_content = client.files.download(file=batch_job.dest.file_name)

    cols: dict[str, list[Any]] = {name: [] for name in ("key", "text", *TOKENS, "error")}
    for line in file_content.decode("utf-8").splitlines():
        if not line.strip():
            continue
        obj = json.loads(line)
        response: dict[str, Any] = obj.get("response") or {}
        candidates: list[Any] = response.get("candidates") or []
        message: dict[str, Any] = (candidates[0].get("content") or {}) if candidates else {}
        parts: list[dict[str, Any]] = message.get("parts") or []
        texts = [p["text"] for p in parts if "text" in p and not p.get("thought")]
        usage = response.get("usageMetadata") or {}
        cols["key"].append(obj.get("key"))
        cols["text"].append("".join(texts) if texts else None)
        cols["prompt_tokens"].append(usage.get("promptTokenCount"))
        cols["output_tokens"].append(usage.get("candidatesTokenCount"))
        cols["thoughts_tokens"].append(usage.get("thoughtsTokenCount"))
        cols["total_tokens"].append(usage.get("totalTokenCount"))
        cols["error"].append(json.dumps(obj["error"]) if obj.get("error") else None)
    results = pl.DataFrame(
        cols,
        schema={
            "key": pl.String,
            "text": pl.String,
            **{name: pl.Int64 for name in TOKENS},
            "error": pl.String,
        },
    )
    return df.join(results, left_on="id", right_on="key", how="left", maintain_order="left")


def _gembatch_options(poll: float, tier: int | None = None) -> Any:
    import gembatch

    return gembatch.Options(poll_interval=poll, max_poll_interval=poll, tier=tier)


def in_memory(source: str, poll: float, tier: int | None = None) -> Any:
    """The same Parquet read into memory, then ``df.gemini.batch_generate``."""
    import polars as pl

    import gembatch

    df = pl.read_parquet(source)
    return df.gemini.batch_generate(  # type: ignore[attr-defined]
        "prompt",
        config=gembatch.Config(model=MODEL),
        key="id",
        cache=False,
        progress=False,
        options=_gembatch_options(poll, tier),
    )


def streaming(source: str, dest: str, poll: float, tier: int | None = None) -> Any:
    """``gembatch.batch_generate_parquet`` from the input Parquet to an output directory."""
    import gembatch

    return gembatch.batch_generate_parquet(
        source,
        dest,
        prompt="prompt",
        config=gembatch.Config(model=MODEL),
        key="id",
        cache=False,
        progress=False,
        options=_gembatch_options(poll, tier),
    )


def _cpu_now() -> float:
    """CPU seconds of this process so far, and of the children it has waited for."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def _vm_hwm() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _child(spec: dict[str, Any]) -> int:
    """The measured process: imports, one call, the figures, then (unmeasured) the answers."""
    import polars as pl

    client, source, poll = spec["client"], spec["input"], spec["poll"]
    if client != "recipe":
        import gembatch  # noqa: F401  (imported before the clock starts, as a user's script does)
    else:
        from google import genai  # noqa: F401
    cpu_imports, started = _cpu_now(), time.time()
    if client == "recipe":
        out = recipe(source, Path.cwd(), poll)
    elif client == "in-memory":
        out = in_memory(source, poll, spec.get("tier"))
    else:
        out = streaming(source, spec["output"], poll, spec.get("tier"))
    ended, cpu_total, hwm = time.time(), _cpu_now(), _vm_hwm()
    if client == "recipe":
        out.select(COMPARED).write_parquet(spec["answers"])
    elif client == "in-memory":
        out.select("id", *(pl.col(f"gemini_{c}").alias(c) for c in COMPARED[1:])).write_parquet(
            spec["answers"]
        )
    report = {
        "started": started,
        "ended": ended,
        "cpu_imports": cpu_imports,
        "cpu_total": cpu_total,
        "vm_hwm": hwm,
    }
    print(json.dumps(report), flush=True)
    return 0


# --------------------------------------------------------------------------------------------
# the parent: data, the emulator, runs, checks, rows
def write_input(path: Path, n: int) -> int:
    """``n`` rows: ``id`` unique string keys in shuffled order, ``prompt`` ~200 characters."""
    import polars as pl

    from .kernels import _texts

    keys = pl.int_range(n, eager=True).shuffle(seed=11).cast(pl.String).str.zfill(9)
    frame = pl.DataFrame({"id": "k" + keys, "prompt": _texts(n, 40, 200, seed=5)})
    frame.write_parquet(path)
    return path.stat().st_size


def _stamp(text: str) -> float:
    """An RFC 3339 time (the emulator writes nanoseconds; Python 3.10 wants at most micro)."""
    head, _, frac = text.rstrip("Z").partition(".")
    return dt.datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}+00:00").timestamp()


def _http(base_url: str, path: str, method: str = "GET") -> dict[str, Any]:
    request = urllib.request.Request(
        f"{base_url.rstrip('/')}/v1beta/{path}",
        method=method,
        headers={"x-goog-api-key": "emulator-key"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        body = response.read()
    return json.loads(body) if body.strip() else {}


def _pages(base_url: str, what: str, field: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    token = ""
    while True:
        query = {"pageSize": "1000", **({"pageToken": token} if token else {})}
        page = _http(base_url, f"{what}?{urllib.parse.urlencode(query)}")
        items += page.get(field, [])
        token = page.get("nextPageToken", "")
        if not token:
            return items


def _jobs(base_url: str, since: float, until: float) -> list[tuple[float, float | None, str]]:
    """``(create time, end time or None, state)`` of the batch jobs created in [since, until]."""
    out = []
    for op in _pages(base_url, "batches", "operations"):
        meta = op.get("metadata", {})
        created = _stamp(meta["createTime"])
        if since <= created <= until:
            end = meta.get("endTime")
            out.append((created, _stamp(end) if end else None, str(meta.get("state"))))
    return out


def _clear_files(base_url: str) -> None:
    """Delete every file left on the emulator (the recipe's uploads and results), between runs."""
    for item in _pages(base_url, "files", "files"):
        try:
            _http(base_url, item["name"], method="DELETE")
        except OSError:
            pass  # some result files refuse deletion; they are only disk space


def _run(
    client: str, base: Path, source: Path, args: argparse.Namespace, emulator: Any, run: int
) -> dict[str, Any]:
    """One client in its own process; its figures and the emulator's jobs of the run."""
    from .pipeline import run_sampled

    workdir = base / f"{client}-{run}"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    spec = {
        "client": client,
        "input": str(source),
        "output": str(workdir / "out"),
        "answers": str(workdir / "answers.parquet"),
        "poll": args.peer_poll,
        "tier": args.peer_tier,
    }
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env = {**emulator.env, "PYTHONPATH": path}
    launched = time.time()
    code, _, sampled, stdout = run_sampled(
        [sys.executable, "-m", "benchmarks.peer", "--child", json.dumps(spec)],
        env=env,
        cwd=workdir,
        timeout=args.peer_timeout,
    )
    if code != 0:
        raise RuntimeError(f"the {client} client exited with {code} (its stderr is above)")
    report = json.loads(stdout.strip().splitlines()[-1])
    jobs = _jobs(emulator.base_url, launched, report["ended"])
    created = max((c for c, _, _ in jobs), default=math.nan)
    ends = [e for _, e, _ in jobs if e is not None]
    last_end = max(ends) if len(ends) == len(jobs) and ends else math.nan
    states = sorted({s for _, _, s in jobs})
    _clear_files(emulator.base_url)
    return {
        "client": client,
        "workdir": workdir,
        "answers": workdir / "answers.parquet",
        "output": workdir / "out",
        "cpu": report["cpu_total"],
        "cpu_imports": report["cpu_imports"],
        "rss": report["vm_hwm"] / MiB,
        "rss_sampled": sampled / MiB,
        "wall": report["ended"] - launched,
        "wall_call": report["ended"] - report["started"],
        "head": created - report["started"],
        "tail": report["ended"] - last_end,
        "jobs": len(jobs),
        "states": ", ".join(states),
    }


def _answers(run: dict[str, Any]) -> Any:
    import polars as pl

    if run["client"] == "streaming":
        files = sorted(Path(run["output"]).glob("*.parquet"))
        scan = pl.scan_parquet(files).select(
            "id", *(pl.col(f"gemini_{c}").alias(c) for c in COMPARED[1:])
        )
        return scan.collect()
    return pl.read_parquet(run["answers"])


def _agree(recipe_frame: Any, run: dict[str, Any], input_ids: Any) -> tuple[int, str]:
    """Rows equal to the recipe's (key, text, token columns, same position); a description."""
    import polars as pl

    got = _answers(run)
    problems = []
    if got.height != recipe_frame.height:
        problems.append(f"{got.height:,} rows, the recipe {recipe_frame.height:,}")
    if not recipe_frame["id"].equals(input_ids):
        problems.append("the recipe's rows are not in input order")
    height = min(got.height, recipe_frame.height)
    a = recipe_frame.head(height).select(
        pl.col("id"), pl.col("text"), *(pl.col(t).cast(pl.Int64) for t in TOKENS)
    )
    b = got.head(height).select(
        pl.col("id"), pl.col("text"), *(pl.col(t).cast(pl.Int64) for t in TOKENS)
    )
    same = pl.Series([True] * height, dtype=pl.Boolean)
    for c in COMPARED:
        equal_here = a[c].eq_missing(b[c])  # nulls equal nulls, row by row
        differ = int((~equal_here).sum())
        if differ:
            problems.append(f"{c} differs in {differ:,} rows")
        same &= equal_here
    equal = int(same.sum())
    answered = int(a["text"].is_not_null().sum())
    if answered != height:
        problems.append(f"the recipe has {height - answered:,} rows without text")
    return equal, "; ".join(problems) or "yes"


def _best(runs: list[dict[str, Any]], key: str) -> float:
    values = [r[key] for r in runs if not math.isnan(r[key])]
    return min(values) if values else math.nan


FIGURES = ("cpu", "rss", "wall", "head", "tail", "cpu_imports", "wall_call")


def _summary(n: int, best: dict[str, dict[str, float]], counts: dict[str, int]) -> None:
    """The figures at one size as a small table: each client's best, then gembatch / recipe."""
    figures = ("cpu", "rss", "wall", "head", "tail")
    header = f"  [peer] {n:,} rows".ljust(36) + "".join(
        h.rjust(13) for h in ("CPU s", "peak RSS MiB", "wall s", "head s", "tail s")
    )
    lines = [header]
    for client in CLIENTS:
        row = best[client]
        lines.append(
            f"  [peer]   {client} (best of {counts[client]})".ljust(36)
            + "".join(f"{row[f]:13.2f}" for f in figures)
        )
    recipe_best = best["recipe"]
    for client in CLIENTS[1:]:
        ratios = [best[client][f] / recipe_best[f] if recipe_best[f] else math.nan for f in figures]
        lines.append(
            f"  [peer]   {client} / recipe".ljust(36) + "".join(f"{r:12.2f}x" for r in ratios)
        )
    print("\n".join(lines), flush=True)


def _size(n: int, large: bool, args: argparse.Namespace, emulator: Any, work: Path) -> list[Row]:
    """Every run at ``n`` rows (rounds of recipe, in-memory, streaming) and the section's rows."""
    import polars as pl

    base = work / f"n{n}"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    source = base / "input.parquet"
    size = write_input(source, n)
    input_ids = pl.read_parquet(source, columns=["id"])["id"]
    print(f"  [peer] {n:,} rows: input written ({size / MiB:,.0f} MiB)", flush=True)
    repeat = max(1, args.repeat)
    counts = {c: repeat for c in CLIENTS}
    if args.peer_recipe_once:
        counts["recipe"] = 1

    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in CLIENTS}
    agreement: dict[str, list[tuple[int, str]]] = {c: [] for c in CLIENTS}
    reference: Any = None  # the first recipe run's answers
    for i in range(repeat):
        for client in CLIENTS:
            if i >= counts[client]:
                continue
            got = _run(client, base, source, args, emulator, i)
            if reference is None:
                reference = pl.read_parquet(got["answers"])
                agreement[client].append(_agree(reference, got, input_ids))
                said = "the reference for every other run"
            else:
                agreement[client].append(_agree(reference, got, input_ids))
                said = f"same answers as the recipe: {agreement[client][-1][1]}"
            print(
                f"  [peer] {n:,} rows: {client} run {i + 1}/{counts[client]} {_describe(got)}; "
                f"{said}",
                flush=True,
            )
            shutil.rmtree(got["workdir"], ignore_errors=True)
            runs[client].append(got)
    shutil.rmtree(base, ignore_errors=True)

    best = {c: {f: _best(runs[c], f) for f in FIGURES} for c in CLIENTS}
    _summary(n, best, counts)

    label = f"{n:,} rows"
    cpu_target = 0.35 if large else 0.5
    of_runs = f"best of {repeat} run(s), each figure on its own; the recipe: " + (
        "1 run" if counts["recipe"] == 1 else f"best of {counts['recipe']} likewise"
    )
    r = best["recipe"]
    recipe_problems = [d for _, d in agreement["recipe"][1:] if d != "yes"]
    out: list[Row] = []
    for client in CLIENTS[1:]:
        equal = min(e for e, _ in agreement[client])
        problems = [d for _, d in agreement[client] if d != "yes"]
        out.append(
            Row(
                SECTION,
                f"{client}: same answers as the recipe ({label})",
                equal,
                "rows",
                "input rows",
                n,
                target="equal (key, text, tokens, row by row)",
                ok=equal == n and not problems and not recipe_problems,
                share=True,
                note=f"every run against the first recipe run: {'; '.join(problems) or 'yes'} "
                f"(the recipe's other runs: {'; '.join(recipe_problems) or 'yes'}); jobs per "
                "run: "
                + ", ".join(f"{g['jobs']} ({g['states']})" for g in runs[client])
                + "; the recipe's: "
                + ", ".join(f"{g['jobs']} ({g['states']})" for g in runs["recipe"]),
            )
        )
    for client in CLIENTS[1:]:
        b = best[client]
        rss_target = (
            ("<= 0.5x", b["rss"] <= 0.5 * r["rss"])
            if client == "in-memory"
            else (f"< {STREAM_RSS_LIMIT:.0f} MiB", b["rss"] < STREAM_RSS_LIMIT)
        )
        rows = [
            (
                "CPU",
                "cpu",
                "s",
                (f"<= {cpu_target}x", b["cpu"] <= cpu_target * r["cpu"]),
                f"interpreter + imports: {b['cpu_imports']:.1f} s, the recipe's "
                f"{r['cpu_imports']:.1f} s (the SDK's import is inside gembatch's call)",
            ),
            (
                "peak RSS",
                "rss",
                "MiB",
                rss_target,
                "VmHWM at the call's return",
            ),
            (
                "wall",
                "wall",
                "s",
                None,
                f"launch -> return; the call alone: {b['wall_call']:.1f} s, the recipe's "
                f"{r['wall_call']:.1f} s",
            ),
            (
                "head (call -> last job created)",
                "head",
                "s",
                ("<= 1.0x", b["head"] <= r["head"]),
                "",
            ),
            (
                "tail (last job ended -> returned)",
                "tail",
                "s",
                ("<= 0.5x", b["tail"] <= 0.5 * r["tail"]),
                f"polls every {args.peer_poll:g} s (all clients)",
            ),
        ]
        for measure, key, unit, target, why in rows:
            value, base_value = b[key], r[key]
            ratio = value / base_value if base_value else math.nan
            out.append(
                Row(
                    SECTION,
                    f"{client}: {measure} ({label})",
                    value,
                    unit,
                    "recipe",
                    base_value,
                    higher_is_better=False,
                    target="" if target is None else target[0],
                    ok=None if target is None else bool(target[1]) and not math.isnan(value),
                    note=f"gembatch / recipe = {ratio:.2f}x; {of_runs}"
                    + (f"; {why}" if why else ""),
                    share=True,
                )
            )
    return out


def _describe(run: dict[str, Any]) -> str:
    return (
        f"CPU {run['cpu']:.1f} s, peak RSS {run['rss']:,.0f} MiB (sampled "
        f"{run['rss_sampled']:,.0f}), wall {run['wall']:.1f} s, head {run['head']:.1f} s, tail "
        f"{run['tail']:.1f} s, {run['jobs']} job(s)"
    )


def sizes(args: argparse.Namespace) -> list[int]:
    """``--rows`` and the smaller size (``--peer-small``, or ``--rows / 5`` when that is not
    smaller; none when 0)."""
    small = args.peer_small
    if small and small >= args.rows:
        small = max(1, args.rows // 5)
    return [args.rows] + ([small] if small else [])


def run(args: argparse.Namespace) -> list[Row]:
    from .pipeline import EmulatorProcess

    work = Path(args.workdir_for)
    emulator = EmulatorProcess(work / "emulator")
    emulator.args.append("--no-limits")
    out: list[Row] = []
    with emulator:
        print(f"  [peer] one emulator for every run: {' '.join(emulator.args[1:])}", flush=True)
        tier = "unknown (default)" if args.peer_tier is None else args.peer_tier
        print(f"  [peer] gembatch's tier: {tier}", flush=True)
        for i, n in enumerate(sizes(args)):
            out.extend(_size(n, i == 0, args, emulator, work))
    return out


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        sys.exit(_child(json.loads(sys.argv[2])))
    sys.exit("usage: python -m benchmarks --only peer (this module is a section of it)")
