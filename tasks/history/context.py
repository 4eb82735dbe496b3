"""What one run reads from history before it scores: earlier scores, KPIs and the trend."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import polars as pl

from tasks.calibrate import risk_window_end
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
    actions: pl.DataFrame | None = None  # the actions as the previous run left them
    action_ids: frozenset[str] = frozenset()  # every action id of earlier runs
    openings: pl.DataFrame | None = None  # each action's opening row (for the effectiveness)
    effect_scores: pl.DataFrame | None = None  # the scores the effectiveness reads
    risk: pl.DataFrame | None = (
        None  # the scores of dates whose 90-day label is known (calibration)
    )
    runs: pl.DataFrame | None = None  # every stored run's date and config hash (config marks)

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
        actions=store.actions_before(as_of),
        action_ids=frozenset(store.action_ids_before(as_of)),
        **_scored_history(store, cfg, as_of),
        runs=_runs(store),
    )


def _runs(store: HistoryReader) -> pl.DataFrame | None:
    """Return the stored runs (date, config hash) when the store keeps them."""
    runs = getattr(store, "runs", None)
    return runs() if callable(runs) else None


def _scored_history(store: HistoryReader, cfg: Config, as_of: date) -> dict[str, pl.DataFrame]:
    """Read the earlier scores once, for calibration and for the effectiveness.

    Calibration trains on dates whose 90-day outcome is known; the effectiveness reads the
    scores after the openings old enough to judge. Both come from one read of the store (a
    backfill pass serves it from memory), not one read of a year of scores each.
    """
    s = cfg.playbook_settings
    risk_end = risk_window_end(as_of)
    mature = as_of - timedelta(days=max(s.recovery_days, s.churn_days))
    effect_end = mature + timedelta(days=s.recovery_days)
    openings = store.action_openings(mature)
    rows = store.risk_history(max(risk_end, effect_end))
    out = {"openings": openings, "risk": rows.filter(pl.col("as_of") <= risk_end)}
    if openings.is_empty():
        return out | {"effect_scores": pl.DataFrame()}
    first = openings["opened_on"].min()
    assert isinstance(first, date)
    window = pl.col("as_of").is_between(first, effect_end)
    return out | {"effect_scores": rows.filter(window).select("account_id", "as_of", "score")}
