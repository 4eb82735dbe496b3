"""Assemble the report context: everything the report shows, computed, formatted and sorted."""

from __future__ import annotations

from datetime import date
from typing import Any

import polars as pl

from tasks.config import Config
from tasks.report.backtest_view import backtest_view
from tasks.report.charts import histogram, segment_mix_chart, trend_chart
from tasks.report.format import SEGMENT_COLOURS, SEGMENT_LABELS, money
from tasks.report.sections import (
    RENEWAL_SOON_DAYS,
    account_lists,
    account_rows,
    headline_cards,
    latest_comments,
    method_view,
    movement_matrix,
    p_alive_drops,
    segment_rows,
    summary_lines,
    trend_rows_of,
    validation_rows,
)


def build_context(
    scores: pl.DataFrame,
    actions: pl.DataFrame,
    kpis: dict[str, Any],
    validation: dict[str, Any],
    cfg: Config,
    as_of: date,
    prev_kpis: dict[str, Any] | None = None,
    prev_scores: pl.DataFrame | None = None,
    history: list[dict[str, Any]] | None = None,
    surveys: pl.DataFrame | None = None,
    backtest: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble everything the report shows, already computed, formatted and sorted.

    ``history`` holds the stored KPIs of earlier dates, oldest first; ``surveys`` the accepted
    survey responses, whose latest comment per account is quoted beside it.
    """
    n = cfg.report.top_n
    comments = latest_comments(surveys, as_of, cfg.windows.survey_days)
    prev = prev_kpis or {}
    lists = account_lists(scores, cfg)
    movement = movement_matrix(scores, prev_scores)
    weeks = [*(history or []), kpis]
    at_risk = lists["at_risk"]
    headline = headline_cards(kpis, prev)
    return {
        "title": cfg.report.title,
        "company": cfg.report.company,
        "as_of": as_of.isoformat(),
        "prev_as_of": prev.get("as_of"),
        "summary": summary_lines(scores, kpis, lists, movement, validation, cfg),
        "headline": headline,
        "headline_rows": [headline[:5], headline[5:]],
        "segments": segment_rows(kpis, prev),
        "histogram": histogram(scores["score"], cfg),
        "trend": trend_chart([(k["as_of"], k.get("mean_score")) for k in weeks], cfg),
        "segment_mix": segment_mix_chart(weeks),
        "trend_rows": trend_rows_of(weeks),
        "movement": movement,
        "at_risk": account_rows(at_risk.head(n), actions, comments),
        "at_risk_total": at_risk.height,
        "at_risk_more": max(0, at_risk.height - n),
        "at_risk_arr": money(float(at_risk["arr"].sum() or 0.0))
        if "arr" in at_risk.columns
        else "–",
        "drops": account_rows(lists["drops"], actions, comments),
        "expansion": account_rows(lists["expansion"], actions),
        "p_alive_drops": p_alive_drops(scores, cfg.report.top_n),
        "advocates": account_rows(lists["advocates"], actions, comments),
        "insufficient": account_rows(lists["insufficient"].head(n), actions),
        "insufficient_total": lists["insufficient"].height,
        "insufficient_more": max(0, lists["insufficient"].height - n),
        "validation": validation_rows(validation),
        "method": method_view(cfg),
        "backtest": backtest_view(backtest),
        "segment_labels": SEGMENT_LABELS,
        "segment_colours": SEGMENT_COLOURS,
        "actions_total": actions.height,
        "accounts_total": scores.height,
        "renewal_soon_days": RENEWAL_SOON_DAYS,
    }
