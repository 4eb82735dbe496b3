"""What one run reads from history before it scores: earlier scores, KPIs and the trend."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from tasks.config import Config
from tasks.history.schema import TREND_WEEKS, HistoryReader


def lookback_days(cfg: Config) -> int:
    """Return how far back ``history_context`` reads scores: 4 weeks, or the KPI window."""
    return max(28 + 3, cfg.windows.kpi_days + 7)


def history_context(store: HistoryReader, cfg: Config, as_of: date) -> dict[str, Any]:
    """Fetch what a run of ``as_of`` needs: last week's and 4 weeks' ago scores, the ARR at the
    KPI window start, the KPIs of the last 13 weeks and the portfolio trend before this date."""
    return {
        "prev_1w": store.scores_near(as_of - timedelta(days=7), 3),
        "prev_4w": store.scores_near(as_of - timedelta(days=28), 3),
        "arr_start": store.scores_near(as_of - timedelta(days=cfg.windows.kpi_days), 7),
        "kpis": store.kpis_between(as_of - timedelta(days=7 * 13), as_of - timedelta(days=1)),
        "trend": store.trend(as_of - timedelta(days=1), TREND_WEEKS),
    }
