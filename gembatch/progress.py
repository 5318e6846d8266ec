"""Progress reporting as an object passed in; the core never draws or prints anything itself.

The run calls ``progress.update(snapshot)`` after every poll and ``progress.close()`` at the end;
a finished run's one-line cost summary goes to ``progress.summary(text)``. ``progress=True`` gives
a tqdm bar when tqdm is installed (``pip install 'gembatch[progress]'``): a widget in Jupyter when
ipywidgets is installed too (``gembatch[jupyter]``), a text bar otherwise (never tqdm's warning
about a missing widget; on stdout in a notebook, where stderr shows as an error); without tqdm,
:class:`TextProgress` prints a line now and then (and says once how to get the bar).
:class:`NullProgress` reports nothing.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

__all__ = ["NullProgress", "Progress", "Snapshot", "TextProgress", "TqdmProgress", "make_progress"]


@dataclass(frozen=True)
class Snapshot:
    """Where a run stands, in rows of the input (what a progress bar counts) and in requests.

    ``rows``: the input's rows; ``done``: rows with their final answer (or error, or skip);
    ``failed``: of those, rows with an error; ``requests``: request lines sent to the service
    (after dedup and the cache); ``answered``: of those, answered so far; ``reused``: rows answered
    by dedup or the result cache (nothing sent for them); ``skipped``: rows asking nothing;
    ``jobs``: batch jobs by state; ``shards``: shards by phase (queued, uploading, running, done);
    ``tokens`` / ``token_budget``: estimated input tokens in flight and the budget; ``rate``: rows
    done per second so far; ``eta``: seconds to the last row at that rate (None: unknown yet).
    """

    rows: int
    done: int
    failed: int = 0
    requests: int = 0
    answered: int = 0
    reused: int = 0
    skipped: int = 0
    jobs: Counter[str] = field(default_factory=Counter)
    shards: Counter[str] = field(default_factory=Counter)
    tokens: int = 0
    token_budget: int = 0
    rate: float | None = None
    eta: float | None = None

    @property
    def total(self) -> int:
        """The rows of the input (a progress bar's total)."""
        return self.rows

    def describe_jobs(self) -> str:
        """``jobs: running 2, succeeded 3``."""
        states = ", ".join(
            f"{state.removeprefix('JOB_STATE_').lower()} {n}"
            for state, n in sorted(self.jobs.items())
        )
        return f"jobs: {states}" if states else "jobs: none yet"

    def describe(self) -> str:
        """One line: rows, requests answered, reuse, failures, jobs, ETA."""
        parts = [
            f"{self.done:,}/{self.rows:,} rows",
            f"{self.answered:,}/{self.requests:,} requests answered",
        ]
        if self.reused:
            parts.append(f"{self.reused:,} reused")
        if self.failed:
            parts.append(f"{self.failed:,} failed")
        parts.append(self.describe_jobs())
        if self.eta is not None and self.done < self.rows:
            parts.append(f"ETA {_duration(self.eta)}")
        return "; ".join(parts)


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class Progress(Protocol):
    """What a run reports to (``summary``, the finished run's one-line cost report, is optional)."""

    def update(self, snapshot: Snapshot) -> None: ...
    def close(self) -> None: ...


class NullProgress:
    """Reports nothing."""

    def update(self, snapshot: Snapshot) -> None:
        pass

    def close(self) -> None:
        pass

    def summary(self, text: str) -> None:
        pass


class TqdmProgress:
    """A tqdm bar of rows done (of the input's rows): requests answered, reused and failed rows and
    the jobs by state in its postfix. A widget in Jupyter when ipywidgets is there, else text."""

    def __init__(self, description: str = "gembatch", **tqdm_kwargs: Any) -> None:
        bar = _tqdm()
        if bar.__module__ == "tqdm.std":
            tqdm_kwargs.setdefault("file", _text_stream())
        self._bar = bar(total=0, desc=description, unit="row", dynamic_ncols=True, **tqdm_kwargs)

    def update(self, snapshot: Snapshot) -> None:
        bar = self._bar
        if bar.total != snapshot.rows:
            bar.total = snapshot.rows
        bar.n = snapshot.done
        extra = [f"{snapshot.answered:,}/{snapshot.requests:,} requests"]
        if snapshot.reused:
            extra.append(f"{snapshot.reused:,} reused")
        if snapshot.failed:
            extra.append(f"{snapshot.failed:,} failed")
        bar.set_postfix_str(", ".join(extra) + f"; {snapshot.describe_jobs()}", refresh=False)
        bar.refresh()

    def close(self) -> None:
        self._bar.close()

    def summary(self, text: str) -> None:
        print(text)


def _text_stream() -> TextIO:
    """Where text progress goes: stdout in a Jupyter kernel (a notebook shows stderr as an error,
    in red), else stderr (a shell pipeline's stdout stays the data's)."""
    return sys.stdout if "ipykernel" in sys.modules else sys.stderr


def _tqdm() -> Any:
    """tqdm's notebook widget when it can draw one (ipywidgets there, in a notebook), else the text
    bar: ``tqdm.auto`` would warn in a notebook without ipywidgets."""
    from tqdm.std import tqdm

    if "ipykernel" not in sys.modules:
        return tqdm
    try:
        import ipywidgets  # noqa: F401 - only its presence matters
        from tqdm.notebook import tqdm as notebook
    except ImportError:
        return tqdm
    return notebook


class TextProgress:
    """Without tqdm: one line on ``stream`` (default: stderr, stdout in a notebook) at most every
    ``every`` seconds (and the last one), the first saying how to get a bar."""

    def __init__(
        self,
        stream: TextIO | None = None,
        every: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream, self._every, self._clock = stream or _text_stream(), every, clock
        self._last: float | None = None
        self._snapshot: Snapshot | None = None

    def update(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        now = self._clock()
        if self._last is None:
            print(
                "gembatch: for a progress bar, pip install 'gembatch[progress]'", file=self._stream
            )
        if self._last is None or now - self._last >= self._every:
            self._last = now
            print(f"gembatch: {snapshot.describe()}", file=self._stream, flush=True)

    def close(self) -> None:
        if self._snapshot is not None and self._last is not None:
            print(f"gembatch: {self._snapshot.describe()}", file=self._stream, flush=True)
            self._last = None

    def summary(self, text: str) -> None:
        print(text)


def make_progress(progress: bool | Progress | None, description: str = "gembatch") -> Progress:
    """``True``: a tqdm bar, or lines of text without tqdm; ``False``/None: nothing; an object:
    itself."""
    if progress is None or progress is False:
        return NullProgress()
    if progress is True:
        try:
            return TqdmProgress(description)
        except ImportError:
            return TextProgress()
    return progress
