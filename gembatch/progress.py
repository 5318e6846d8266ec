"""Progress reporting as an object passed in; the core never draws or prints anything itself.

The run calls ``progress.update(snapshot)`` after every poll and ``progress.close()`` at the end;
a finished run's one-line cost summary goes to ``progress.summary(text)`` (the tqdm adapter prints
it).
:class:`TqdmProgress` draws a ``tqdm.auto`` bar (a widget in Jupyter, a line in a terminal) when
tqdm is installed (``pip install 'gembatch[progress]'``); :class:`NullProgress` draws nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["NullProgress", "Progress", "Snapshot", "TqdmProgress", "make_progress"]


@dataclass(frozen=True)
class Snapshot:
    """Where a run stands: request rows answered, failed, in total, and how many jobs are in each
    state."""

    total: int
    done: int
    failed: int
    jobs: Counter[str] = field(default_factory=Counter)

    def describe_jobs(self) -> str:
        return " ".join(
            f"{state.removeprefix('JOB_STATE_').lower()}={n}"
            for state, n in sorted(self.jobs.items())
        )


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
    """A ``tqdm.auto`` bar: rows done of total, failed rows and job states in the postfix."""

    def __init__(self, description: str = "gembatch", **tqdm_kwargs: Any) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(total=0, desc=description, unit="row", dynamic_ncols=True, **tqdm_kwargs)

    def update(self, snapshot: Snapshot) -> None:
        bar = self._bar
        if bar.total != snapshot.total:
            bar.total = snapshot.total
        bar.n = snapshot.done
        bar.set_postfix_str(f"failed={snapshot.failed} {snapshot.describe_jobs()}", refresh=False)
        bar.refresh()

    def close(self) -> None:
        self._bar.close()

    def summary(self, text: str) -> None:
        print(text)


def make_progress(progress: bool | Progress | None, description: str = "gembatch") -> Progress:
    """``True``: a tqdm bar if tqdm is installed (else nothing); ``False``/None: nothing; an
    object: itself."""
    if progress is None or progress is False:
        return NullProgress()
    if progress is True:
        try:
            return TqdmProgress(description)
        except ImportError:
            return NullProgress()
    return progress
