"""What the account pages read from history, once per run: 52 weeks of scores and the runs.

The weeks where the scoring config changed come from each run's ``config_hash`` in the store;
the report's portfolio trend marks the same weeks.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import polars as pl

from tasks.history.schema import HistoryStore
from tasks.report.accounts.svg import Mark
from tasks.schemas import DIMENSIONS

HISTORY_WEEKS = 52  # the pages show up to this many weekly points, this run's included
SERIES_COLUMNS = ("account_id", "as_of", "score", *DIMENSIONS)


def history_start(as_of: date) -> date:
    """Return the first date the pages show: 51 weeks before ``as_of`` (52 points with it)."""
    return as_of - timedelta(days=7 * (HISTORY_WEEKS - 1))


def read_series(store: HistoryStore, as_of: date, accounts: list[str]) -> pl.DataFrame:
    """Read the stored score and dimensions of ``accounts`` for the weeks before ``as_of``."""
    rows = store.scores_between(history_start(as_of), as_of - timedelta(days=1))
    keep = pl.Series(accounts, dtype=pl.String).implode()
    return (
        rows.select(SERIES_COLUMNS)
        .filter(pl.col("account_id").is_in(keep))
        .sort("account_id", "as_of")
    )


def config_marks(runs: pl.DataFrame | None, as_of: date, current: str) -> list[Mark]:
    """Return the dates up to ``as_of`` whose run used another config than the run before.

    ``runs`` holds the stored runs (``as_of``, ``config_hash``); this run, of ``as_of`` with the
    ``current`` hash, replaces a stored run of the same date.
    """
    stored: list[tuple[date, str | None]] = []
    if runs is not None and not runs.is_empty():
        stored = [
            (d, h)
            for d, h in runs.select("as_of", "config_hash").sort("as_of").iter_rows()
            if d < as_of
        ]
    marks = []
    prev: str | None = None
    for d, h in [*stored, (as_of, current)]:
        if prev is not None and h is not None and h != prev:
            marks.append(Mark(d.isoformat(), f"{d}: scoring config changed ({prev} → {h})"))
        prev = h if h is not None else prev
    return marks


def trend_marks(dates: list[str], marks: list[Mark]) -> list[dict[str, Any]]:
    """Return the config-change marks of the weeks the report's portfolio trend shows."""
    shown = set(dates)
    return [{"as_of": m.as_of, "label": m.label} for m in marks if m.as_of in shown]
