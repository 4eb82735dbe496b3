"""Assemble the report context: everything the report shows, computed, formatted and sorted."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, NotRequired, TypedDict

import polars as pl

from tasks.config import Config
from tasks.kpis import Kpis
from tasks.report.accounts.history import config_marks, trend_marks
from tasks.report.backtest_view import backtest_view
from tasks.report.cards import headline_cards, method_view, validation_rows
from tasks.report.charts import ChartSpec, histogram, segment_mix_chart, submit_svg, trend_chart
from tasks.report.effect_view import effectiveness_view
from tasks.report.format import SEGMENT_COLOURS, SEGMENT_LABELS, money
from tasks.report.parents import parent_rows
from tasks.report.prediction_view import prediction_view
from tasks.report.sections import (
    RENEWAL_SOON_DAYS,
    account_lists,
    account_rows,
    latest_comments,
    movement_matrix,
    p_alive_drops,
    segment_rows,
    summary_lines,
    trend_rows_of,
)
from tasks.report.voice_view import voice_cards, voice_view


@dataclass(frozen=True)
class ReportInputs:
    """What the report of one as-of date is built from: the run's results and its history."""

    cfg: Config
    as_of: date
    scores: pl.DataFrame
    actions: pl.DataFrame
    kpis: Kpis
    validation: dict[str, Any]  # the validation.json document
    prev_kpis: Kpis | None = None  # last week's stored KPIs
    prev_scores: pl.DataFrame | None = None  # last week's stored scores
    history: list[Kpis] | None = None  # the stored KPIs of earlier dates, oldest first
    surveys: pl.DataFrame | None = None  # accepted survey answers: the latest comment is quoted
    backtest: dict[str, Any] | None = None  # the latest backtest.json
    rollup: pl.DataFrame | None = None  # scores_rollup: parents with their children
    accounts: pl.DataFrame | None = None  # accepted accounts: the parent links
    runs: pl.DataFrame | None = None  # the stored runs' config hashes: config-change marks
    effectiveness: dict[str, Any] | None = None  # the run's effectiveness.json
    texts: pl.DataFrame | None = None  # every text read (tasks/text/annotate.texts_of)
    pages: list[str] = field(default_factory=list)  # the accounts given a page this run


class ReportContext(TypedDict):
    """Everything the report and the e-mails show, computed, formatted and sorted."""

    title: str
    company: str | None
    as_of: str
    prev_as_of: str | None
    summary: list[dict[str, str]]
    headline: list[dict[str, Any]]
    headline_rows: list[list[dict[str, Any]]]
    segments: list[dict[str, Any]]
    histogram: ChartSpec
    trend: ChartSpec | None
    segment_mix: ChartSpec | None
    trend_rows: list[dict[str, Any]]
    movement: dict[str, Any] | None
    at_risk: list[dict[str, Any]]
    at_risk_total: int
    at_risk_more: int
    at_risk_arr: str
    drops: list[dict[str, Any]]
    expansion: list[dict[str, Any]]
    p_alive_drops: list[dict[str, Any]] | None
    advocates: list[dict[str, Any]]
    insufficient: list[dict[str, Any]]
    insufficient_total: int
    insufficient_more: int
    validation: list[dict[str, Any]]
    method: dict[str, Any]
    backtest: dict[str, Any] | None
    prediction: dict[str, Any]
    segment_labels: dict[str, str]
    segment_colours: dict[str, str]
    actions_total: int
    accounts_total: int
    renewal_soon_days: int
    parents: list[dict[str, Any]]
    config_marks: list[dict[str, Any]]  # the weeks of the trend whose config changed
    account_pages: dict[str, dict[str, str]]  # account_id -> its page's href and e-mail url
    effectiveness: dict[str, Any] | None
    # voice of the customer (tasks/report/voice_view.py): None without a text source
    voice: NotRequired[dict[str, Any] | None]


def build_context(inputs: ReportInputs) -> ReportContext:
    """Assemble everything the report shows, already computed, formatted and sorted."""
    cfg, as_of, scores, actions = inputs.cfg, inputs.as_of, inputs.scores, inputs.actions
    kpis, validation, history = inputs.kpis, inputs.validation, inputs.history
    prev_kpis, prev_scores, backtest = inputs.prev_kpis, inputs.prev_scores, inputs.backtest
    surveys = inputs.surveys
    n = cfg.report.top_n
    comments = latest_comments(surveys, as_of, cfg.windows.survey_days)
    prev: Mapping[str, Any] = prev_kpis or {}
    lists = account_lists(scores, cfg)
    movement = movement_matrix(scores, prev_scores)
    weeks = [*(history or []), kpis]
    at_risk = lists["at_risk"]
    headline = headline_cards(kpis, prev) + voice_cards(kpis, prev)
    hist = histogram(scores["score"], cfg)
    points = [(k["as_of"], k.get("mean_score")) for k in weeks]
    marks = trend_marks(
        [d for d, v in points if v is not None],
        config_marks(inputs.runs, as_of, cfg.fingerprint()),
    )
    trend = trend_chart(points, cfg, [(m["as_of"], m["label"]) for m in marks])
    mix = segment_mix_chart(weeks)
    # drawn in the background while the rest of the context is computed
    svgs = {c["name"]: submit_svg(c) for c in (hist, trend, mix) if c is not None}
    ctx: ReportContext = {
        "title": cfg.report.title,
        "company": cfg.report.company,
        "as_of": as_of.isoformat(),
        "prev_as_of": prev.get("as_of"),
        "summary": summary_lines(scores, kpis, lists, movement, validation, cfg),
        "headline": headline,
        "headline_rows": [headline[i : i + 5] for i in range(0, len(headline), 5)],
        "segments": segment_rows(kpis, prev),
        "histogram": hist,
        "trend": trend,
        "segment_mix": mix,
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
        "prediction": prediction_view(backtest, dict(kpis)),
        "segment_labels": SEGMENT_LABELS,
        "segment_colours": SEGMENT_COLOURS,
        "actions_total": actions.height,
        "accounts_total": scores.height,
        "renewal_soon_days": RENEWAL_SOON_DAYS,
        "parents": parent_rows(
            inputs.rollup, scores, inputs.accounts if inputs.accounts is not None else scores, n
        ),
        "config_marks": marks,
        "account_pages": {},
        "effectiveness": effectiveness_view(inputs.effectiveness),
    }
    ctx["voice"] = voice_view(inputs.texts, scores, actions, cfg, as_of, inputs.pages)
    for chart in (hist, trend, mix):
        if chart is not None:
            chart["svg"] = svgs[chart["name"]].result()
    return ctx
