"""One clock for a run: the wall-clock time in UTC, read once at the start and passed down.

Every timestamp the pipeline reads is naive UTC (sources with a ``timezone`` are converted on
read), so the run's own time must be naive UTC too: a local ``datetime.now()`` under
``TZ=America/Los_Angeles`` is eight hours behind the data, and rows from the last hours look
like impossible future rows. Nothing else in the pipeline reads the time of day.
"""

from __future__ import annotations

from datetime import UTC, date, datetime


def utc_now() -> datetime:
    """Return the current time as naive UTC, the form of every timestamp the pipeline holds."""
    return datetime.now(UTC).replace(tzinfo=None)


def utc_today() -> date:
    """Return today's date in UTC: the default as-of date of a run."""
    return utc_now().date()
