"""Progress of a long command a person can follow: a live line on a terminal, one summary line
per stage or date elsewhere (CI, logs, a file).

Flows report through ``reporter()``: ``start`` a count (a backfill's dates), ``advance`` it
once a unit is done. The stages themselves are seen from Prefect's own "Finished in state"
records (``PrefectQuiet``), so no flow has to announce them. Without a command line (a
deployment served by ``chs serve``) the reporter logs each date to the run's log; ``chs``
installs a terminal or a line reporter instead. Prefect's per-task and per-flow INFO lines are
dropped from the console unless ``--verbose``: the run logs on the API keep them.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from pathlib import Path
from typing import IO

STAGE_DONE = "Finished in state Completed()"
_QUIET_PACKAGES = ("prefect", "great_expectations")  # whose INFO lines --verbose brings back


class Reporter:
    """The default: each counted unit is one INFO line of the flow run's log."""

    def __init__(self) -> None:
        self.label, self.total, self.done = "", 0, 0
        self.started = self.counting_since = time.perf_counter()
        self.repeats: dict[str, int] = {}  # warnings of a task held back during a count

    def start(self, label: str, total: int) -> None:
        """Begin counting ``total`` units of ``label`` (e.g. 14 dates of a backfill)."""
        self.label, self.total, self.done = label, total, 0
        self.counting_since = time.perf_counter()
        self.repeats = {}

    def repeated(self, task: str) -> bool:
        """Whether ``task`` already warned during this count (later warnings are only counted)."""
        if task not in self.repeats:
            self.repeats[task] = 0
            return False
        self.repeats[task] += 1
        return True

    def _counted(self) -> None:
        if self.done == self.total:
            for task, n in self.repeats.items():
                if n:
                    self.note(
                        f"{task}: {n} more warnings like the one above (--verbose shows each)"
                    )
            self.repeats = {}

    @property
    def counting(self) -> bool:
        """Whether a count is under way (stages inside it are not reported one by one)."""
        return self.total > 0 and self.done < self.total

    def advance(self, unit: str) -> None:
        """Count one unit (named ``unit``, e.g. a date) as done."""
        self.done += 1
        self.note(self.line(unit))
        self._counted()

    def line(self, unit: str) -> str:
        """Return the line of the unit just counted: done of total, rate and time left."""
        spent = time.perf_counter() - self.counting_since
        rate = self.done / spent if spent > 0 else 0.0
        left = (self.total - self.done) / rate if rate else 0.0
        return (
            f"{self.label} {self.done}/{self.total}: {unit} done "
            f"({_per_minute(rate)}, {_duration(left)} left)"
        )

    def stage(self, name: str) -> None:
        """Note that the task ``name`` finished (by default nothing: Prefect logs it itself)."""

    def note(self, text: str) -> None:
        """Report one line."""
        from prefect import get_run_logger
        from prefect.exceptions import MissingContextError

        try:
            get_run_logger().info("%s", text)
        except MissingContextError:
            logging.getLogger("chs").info("%s", text)

    def close(self) -> None:
        """Finish the display."""


class LineReporter(Reporter):
    """One line per stage (outside a count) and per counted unit, for a log or a file."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__()
        self.stream = stream

    def stage(self, name: str) -> None:
        """Print a line for the task, unless it is one of a counted unit's."""
        if not self.counting:
            self.note(f"{name} done ({_duration(time.perf_counter() - self.started)} in)")

    def note(self, text: str) -> None:
        """Print the line."""
        print(text, file=self.stream, flush=True)


class TerminalReporter(Reporter):
    """A live ``rich`` progress line: count, bar, rate, time left and the stage running."""

    def __init__(self, stream: IO[str], label: str = "working") -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        super().__init__()
        self.console = Console(file=stream)
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[stage]}"),
            console=self.console,
            transient=False,
        )
        self.task = self.progress.add_task(label, total=None, rate="", stage="")
        self.progress.start()

    def start(self, label: str, total: int) -> None:
        """Reset the bar to count ``total`` units."""
        super().start(label, total)
        self.progress.reset(self.task, total=total, description=label, rate="", stage="")

    def advance(self, unit: str) -> None:
        """Move the bar on by one and show the rate."""
        self.done += 1
        spent = time.perf_counter() - self.counting_since
        rate = _per_minute(self.done / spent) if spent > 0 else ""
        self.progress.update(self.task, advance=1, rate=rate, stage=unit)
        self._counted()

    def stage(self, name: str) -> None:
        """Show the task that just finished at the end of the line."""
        self.progress.update(self.task, stage=name)

    def adopt(self, handler: logging.Handler) -> None:
        """Let a rich log handler print through this display's console (above the live line)."""
        if hasattr(handler, "console"):
            handler.console = self.console

    def note(self, text: str) -> None:
        """Print the line above the live display."""
        self.progress.console.print(text, highlight=False)

    def close(self) -> None:
        """Stop the live display, leaving its last state on the terminal."""
        self.progress.stop()


def _per_minute(rate: float) -> str:
    return f"{rate * 60:.1f}/min" if rate < 1 else f"{rate:.1f}/s"


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    return f"{seconds:.1f} s" if seconds < 60 else f"{int(seconds // 60)} min {int(seconds % 60)} s"


_current: Reporter | None = None


def reporter() -> Reporter:
    """Return the reporter in use (the logging default when no command line installed one)."""
    global _current
    if _current is None:
        _current = Reporter()
    return _current


def install(new: Reporter | None) -> None:
    """Use ``new`` from now on (None: back to the default)."""
    global _current
    _current = new


def for_stream(stream: IO[str], label: str = "working") -> Reporter:
    """Return a live display when ``stream`` is a terminal, summary lines otherwise."""
    if stream.isatty() and not _dumb_terminal():
        return TerminalReporter(stream, label)
    return LineReporter(stream)


def _dumb_terminal() -> bool:
    return os.environ.get("TERM", "") == "dumb"


class PrefectQuiet(logging.Filter):
    """On Prefect's console handler: tell the reporter a task finished, and, unless
    ``verbose``, drop the INFO lines of Prefect and Great Expectations themselves.

    The project's own INFO lines (what was read and validated) stay, except during a count
    (a backfill's dates), where each date is one line and a task's warning is shown once.
    """

    def __init__(self, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose
        self.roots = [str(Path(_package_file(p)).parent) for p in _QUIET_PACKAGES]

    def filter(self, record: logging.LogRecord) -> bool:
        """Return whether the console shows the record."""
        task = getattr(record, "task_name", None)
        if task and record.name == "prefect.task_runs" and record.getMessage() == STAGE_DONE:
            reporter().stage(str(task))
        if self.verbose or record.levelno >= logging.ERROR:
            return True
        shown = reporter()
        if record.levelno >= logging.WARNING:
            return not (task and shown.counting and shown.repeated(str(task)))
        if shown.counting:
            return False
        return not any(record.pathname.startswith(root) for root in self.roots)


def _package_file(name: str) -> str:
    """Return the package's ``__init__.py``, found without importing it (GX is slow)."""
    spec = importlib.util.find_spec(name)
    return str(spec.origin if spec and spec.origin else name)
