"""What a run needs from a source: its point in time and the columns and rows to ask for.

A ``Window`` holds the point in time, a ``ReadPlan`` the columns and rows.

Databases and Parquet files are asked only for what a run needs: the mapped canonical columns,
and the rows whose time column can fall in the run's window (with a day of margin for time
zones). The exact point-in-time filter (``point_in_time``) runs after the cast, in Polars.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import polars as pl

from tasks.config import Config, SourceConfig
from tasks.schemas import DATASETS, Dataset
from tasks.sources.latest import not_after, source_column

# the row's position in its file (for a database: in what was read), kept for quarantine files
ROW = "_row"
REASON = "_reason"  # why a row is rejected (null while it is fine)
_MARGIN = timedelta(days=1)  # covers any offset between a source's local time and UTC


@dataclass(frozen=True)
class Window:
    """The point in time a run looks from: rows after ``end`` do not exist for it."""

    as_of: date
    run_time: datetime  # wall-clock time of the run: later timestamps are impossible, not future

    @property
    def end(self) -> datetime:
        """The last instant of the as-of date."""
        return datetime.combine(self.as_of, time.max).replace(microsecond=999999)

    def since(self, days: int) -> datetime:
        """Return the start of a ``days``-day look-back ending on the as-of date."""
        return datetime.combine(self.as_of - timedelta(days=days - 1), time.min)


@dataclass(frozen=True)
class ReadPlan:
    """What a run needs from one source; databases and Parquet scans apply it at the source.

    A row is needed when its time column is null, not comparable (text in another format),
    in ``[start, end]``, or after ``keep_after`` (impossible dates, kept for quarantine).
    """

    columns: tuple[str, ...] | None = None  # source columns to read; None reads all of them
    time_column: str | None = None  # the source column that places a row in time
    start: datetime | None = None
    end: datetime | None = None
    keep_after: datetime | None = None
    iso_text: bool = True  # text timestamps start with YYYY-MM-DD, so they sort as text


def bounds(plan: ReadPlan, day_after_end: bool = False) -> tuple[datetime, datetime, datetime]:
    """Return the plan's start, end (a day later if asked) and keep-after; year 1 means none."""
    far = datetime(1, 1, 1)
    end = plan.end or far
    return (
        plan.start or far,
        end + timedelta(days=1) if day_after_end and plan.end else end,
        plan.keep_after or far,
    )


def format_list(fmt: str | list[str] | None) -> list[str]:
    """Return the configured timestamp format or formats as a list."""
    return [fmt] if isinstance(fmt, str) else list(fmt or [])


def cutoff_filter(
    df: pl.DataFrame, ds: Dataset, window: Window, lookback_days: int | None
) -> pl.DataFrame:
    """Drop rows after the as-of date or before the look-back; null and impossible times stay."""
    if ds.time_column is None:
        return df
    t = pl.col(ds.time_column)
    # Null and impossible (after the run time) timestamps stay, so validation quarantines them.
    keep = t.is_null() | (t <= window.end) | (t > window.run_time)
    if lookback_days:
        keep = keep & (t.is_null() | (t >= window.since(lookback_days)))
    return df.filter(keep)


def lookback_days(dataset: str, cfg: Config) -> int | None:
    """Return how far back a run needs ``dataset`` (None: all of it)."""
    if dataset == "usage_events":
        return 2 * cfg.windows.usage_days  # this window and the one before it, for the trend
    return None


def _latest_read(src: SourceConfig) -> list[str]:
    col = source_column(src)  # a change log's version column is read with the rest
    return [] if col is None else [col]


def plan_read(name: str, cfg: Config, window: Window) -> ReadPlan:
    """Return the source columns and the time range a run needs from ``name``, with a margin."""
    src, ds = cfg.sources[name], DATASETS[name]
    columns = (
        None  # accounts keep every column: custom CRM attributes can be measures
        if name == "accounts"
        else tuple(
            dict.fromkeys([*(src.columns.get(c, c) for c in ds.schema.names()), *_latest_read(src)])
        )
    )
    if ds.time_column is None:
        return ReadPlan(columns)
    days = lookback_days(name, cfg)
    start = window.since(days) - _MARGIN if days else None
    # from the start of the run's day: a re-run later that day asks for the same rows (the
    # exact cut at the run time is point_in_time's), so the extraction cache can serve it
    run_day = datetime.combine(window.run_time.date(), time.min)
    end, keep_after = window.end + _MARGIN, run_day - _MARGIN
    gap = keep_after > end  # none when the run is as of today: every later row is impossible
    return ReadPlan(
        columns,
        src.columns.get(ds.time_column, ds.time_column),
        start,
        end if gap else None,
        keep_after if gap else None,
        iso_text=all(f.startswith("%Y-%m-%d") for f in format_list(src.datetime_format)),
    )


def point_in_time(typed: pl.DataFrame, name: str, cfg: Config, window: Window) -> pl.DataFrame:
    """Keep the rows a run as of ``window`` sees (and the impossible ones, for quarantine).

    In a change log (``latest_by``) an update after the as-of date has not happened yet.
    """
    seen = cutoff_filter(typed, DATASETS[name], window, lookback_days(name, cfg))
    return not_after(seen, window.end)
