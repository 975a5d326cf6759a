"""Wall-clock seconds per stage, and per callback that reports its own (the query, the maps)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager


class TimedCallback:
    """A callback whose work is timed apart from the stage that triggers it.

    `timing_name` names its entry in the run's timings; `timed()` wraps the work.
    """

    timing_name: str = "callback"
    seconds: float = 0.0

    @contextmanager
    def timed(self) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - start


def callback_seconds(callbacks: Iterable) -> dict[str, float]:
    """The seconds each timed callback has spent so far, by `timing_name`."""
    spent: dict[str, float] = {}
    for callback in callbacks:
        if isinstance(callback, TimedCallback):
            spent[callback.timing_name] = spent.get(callback.timing_name, 0.0) + callback.seconds
    return spent


def timings_line(timings: dict[str, float]) -> str:
    """One line: every stage's seconds in run order, then the total."""
    parts = [f"{name} {seconds:.1f}" for name, seconds in timings.items() if name != "total"]
    return f"Seconds per stage: {', '.join(parts)}; total {timings.get('total', 0.0):.1f}"
