"""Where a stage's time goes: a rich progress bar (done/total, rate, elapsed, ETA) for
every long step, and the wall time of each named step, recorded in the stage's record
file (score.json, eval.json: "timings").

    steps = StepTimes()
    with steps.step("embed"):
        with progress_bar(console, total, "embedding texts", unit="texts") as bar:
            for chunk in ...:
                bar.advance(len(chunk))
    record.timings = steps.to_json()

Without a console (a library call, a test) the bar is a no-op: nothing is drawn and
nothing is slower. The bars are transient (they disappear when their step ends), so the
stage's own summary lines stay readable.
"""

from __future__ import annotations

import contextlib
import time


class StepTimes:
    """Wall seconds per named step, in the order the steps first ran (a step run twice,
    e.g. embedding for the shared estimator's other models, adds up)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._start = time.perf_counter()

    @contextlib.contextmanager
    def step(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - t0)

    def add(self, name: str, seconds: float) -> None:
        """A step timed by the caller (one that does not fit a with-block)."""
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def to_json(self) -> dict:
        """{"steps": {name: seconds}, "total": seconds since this object was made, "unit"}; ms resolution."""
        return {"steps": {k: round(v, 3) for k, v in self.seconds.items()},
                "total": round(time.perf_counter() - self._start, 3), "unit": "wall seconds"}


class _NoBar:
    def advance(self, n: int = 1) -> None:
        pass

    def describe(self, text: str) -> None:
        pass


class _Bar:
    def __init__(self, progress, task):
        self.progress, self.task = progress, task

    def advance(self, n: int = 1) -> None:
        self.progress.advance(self.task, n)

    def describe(self, text: str) -> None:
        self.progress.update(self.task, description=text)


def make_progress(console, unit: str = "items"):
    """A rich Progress with description, bar, done/total, rate (unit/s), elapsed and ETA."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task):
            speed = task.finished_speed or task.speed or 0
            return Text(f"{speed:.3g} {unit}/s")

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), Rate(),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=True)


@contextlib.contextmanager
def progress_bar(console, total: int, label: str, unit: str = "items"):
    """A bar for one step of `total` units; a no-op without a console or work."""
    if console is None or total <= 0:
        yield _NoBar()
        return
    progress = make_progress(console, unit)
    task = progress.add_task(label, total=total)
    progress.start()
    try:
        yield _Bar(progress, task)
    finally:
        progress.stop()
