"""Run the benchmark sections and print one table: ``python -m benchmarks --rows 1000000``.

To add a section, write ``benchmarks/<name>.py`` with ``run(args) -> list[Row]`` (and, if it needs
options of its own, ``add_arguments(parser)``), and add its name to ``SECTIONS`` (and to ``MODULES``
when the module is named otherwise).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType

from . import Row, machine_note, print_table

#: Section names, in the order they run; each is the module ``benchmarks.<name>`` unless ``MODULES``
#: names another.
SECTIONS: tuple[str, ...] = (
    "kernels",
    "hashing",
    "e2e",
    "streaming",
    "peer",
    "validation",
    "interactive",
    "scheduler",
)
MODULES: dict[str, str] = {"e2e": "end_to_end"}


def _parser(modules: Mapping[str, ModuleType]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--rows", type=int, default=1_000_000, help="rows of synthetic data (default 1,000,000)"
    )
    parser.add_argument(
        "--only", default="", help=f"comma-separated sections to run (of: {', '.join(SECTIONS)})"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per measurement; the fastest counts (default 3)"
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where files are written (default: a temp dir)"
    )
    for module in modules.values():
        add = getattr(module, "add_arguments", None)
        if add is not None:
            add(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    modules = {
        name: importlib.import_module(f"{__package__}.{MODULES.get(name, name)}")
        for name in SECTIONS
    }
    args = _parser(modules).parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()] or list(SECTIONS)
    unknown = [s for s in chosen if s not in modules]
    if unknown:
        print(f"unknown section(s) {unknown}; choose from {list(SECTIONS)}", file=sys.stderr)
        return 2
    print(machine_note(), flush=True)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="gembatch-bench-") as tmp:
        base = args.workdir or Path(tmp)
        for name in chosen:
            args.workdir_for = base / name
            args.workdir_for.mkdir(parents=True, exist_ok=True)
            started = time.perf_counter()
            rows.extend(modules[name].run(args))
            print(f"[{name}] done in {time.perf_counter() - started:.1f} s", flush=True)
    print()
    print_table(rows)
    print(f"\n{machine_note()}")
    return 1 if any(r.ok is False for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
