"""What one run reads from history before it scores: earlier scores, KPIs and the trend."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import polars as pl

from tasks.config import Config
from tasks.history.schema import TREND_WEEKS, HistoryReader
from tasks.kpis import Kpis


@dataclass(frozen=True)
class HistoryContext:
    """The history a run of one as-of date reads: earlier scores, KPIs and the portfolio trend."""

    prev_1w: pl.DataFrame | None  # the stored scores nearest a week before (±3 days)
    prev_4w: pl.DataFrame | None  # ... nearest 4 weeks before (±3 days)
    arr_start: pl.DataFrame | None  # ... nearest the KPI window's start (±7 days), for GRR/NRR
    kpis: list[Kpis]  # the KPIs of the 13 weeks before, oldest first
    trend: pl.DataFrame  # one row per stored date of the TREND_WEEKS weeks before

    def kpis_before(self, as_of: date, days: int = 4) -> Kpis | None:
        """Return the latest stored KPIs at least ``days`` before ``as_of`` (last week's)."""
        limit = (as_of - timedelta(days=days)).isoformat()
        return next((k for k in reversed(self.kpis) if k["as_of"] <= limit), None)


def lookback_days(cfg: Config) -> int:
    """Return how far back ``history_context`` reads scores: 4 weeks, or the KPI window."""
    return max(28 + 3, cfg.windows.kpi_days + 7)


def history_context(store: HistoryReader, cfg: Config, as_of: date) -> HistoryContext:
    """Fetch what a run of ``as_of`` needs from the history.

    That is last week's and 4 weeks' ago scores, the ARR at the KPI window start, the KPIs of
    the last 13 weeks and the portfolio trend before this date.
    """
    return HistoryContext(
        prev_1w=store.scores_near(as_of - timedelta(days=7), 3),
        prev_4w=store.scores_near(as_of - timedelta(days=28), 3),
        arr_start=store.scores_near(as_of - timedelta(days=cfg.windows.kpi_days), 7),
        kpis=store.kpis_between(as_of - timedelta(days=7 * 13), as_of - timedelta(days=1)),
        trend=store.trend(as_of - timedelta(days=1), TREND_WEEKS),
    )
