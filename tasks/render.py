"""Build the report context and render it with Jinja2 (scores -> report.html).

All arithmetic happens here; the templates in ``reports/templates`` only place finished values.
Charts are inline SVG, so the report needs no JavaScript and no network; the e-mails draw the
same chart data as PNG images (``tasks.charts``).
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import polars as pl
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from tasks.config import Config
from tasks.errors import ChsError
from tasks.schemas import DIMENSIONS, SEGMENTS

TEMPLATES = Path(__file__).resolve().parent.parent / "reports" / "templates"
ALL_SEGMENTS = (*SEGMENTS, "insufficient_data")
# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies. Every use of a
# colour also carries its segment's name, so colour is never the only cue.
SEGMENT_COLOURS = {
    "healthy": "#009E73",
    "neutral": "#E69F00",
    "at_risk": "#D55E00",
    "insufficient_data": "#999999",
}
# Darker shades of the same hues for text on white (WCAG AA contrast).
SEGMENT_INK = {
    "healthy": "#006D4F",
    "neutral": "#7A5400",
    "at_risk": "#A13F00",
    "insufficient_data": "#5A5A5A",
}
SEGMENT_LABELS = {
    "healthy": "Healthy",
    "neutral": "Neutral",
    "at_risk": "At risk",
    "insufficient_data": "Insufficient data",
}
_RANK = {"healthy": 0, "neutral": 1, "at_risk": 2}
RENEWAL_SOON_DAYS = 90
_ACCOUNT_COLUMNS = (
    "account_id",
    "name",
    "csm_email",
    "tier",
    "arr",
    "score",
    "segment",
    "score_delta_1w",
    "drop_alert",
    "top_drivers",
    "change_drivers",
    "coverage",
    "renewal_date",
    "days_to_renewal",
    "license_utilisation",
    "nps_account",
)


def _num(v: float | None, d: int = 0) -> str:
    return "–" if v is None else f"{v:,.{d}f}"


def _pct_filter(v: float | None, d: int = 0) -> str:
    return "–" if v is None else f"{v * 100:.{d}f}%"


def _signed(v: float | None, d: int = 1) -> str:
    return "–" if v is None else f"{v:+.{d}f}"


@cache
def environment() -> Environment:
    """Return the shared Jinja2 environment; autoescaping is on for every template."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _num
    env.filters["pct"] = _pct_filter
    env.filters["signed"] = _signed
    env.filters["oneline"] = lambda v: " ".join(str(v).split()) if v is not None else ""
    return env


def money(v: float | None) -> str:
    """Format an amount compactly: 950, 12.3k, 4.70M."""
    if v is None:
        return "–"
    a = abs(v)
    if a >= 1e9:
        return f"{v / 1e9:.2f}B"
    if a >= 1e6:
        return f"{v / 1e6:.2f}M"
    if a >= 1e4:
        return f"{v / 1e3:.0f}k"
    return f"{v:,.0f}"


def _band(score_mid: float, cfg: Config) -> str:
    seg = cfg.scoring.segments
    if score_mid >= seg.healthy:
        return "healthy"
    return "at_risk" if score_mid < seg.at_risk else "neutral"


def histogram(
    scores: pl.Series, cfg: Config, width: int = 560, height: int = 180
) -> dict[str, Any]:
    """Lay out a 10-point score histogram, each bar coloured by its segment band."""
    bins = (scores.drop_nulls() // 10).clip(0, 9).cast(pl.Int64).value_counts()
    counts = dict.fromkeys(range(10), 0) | dict(bins.iter_rows())
    top = max(counts.values()) or 1
    bw, base = width / 10, height - 34
    bars = []
    for i, c in counts.items():
        h = (base - 20) * c / top
        band = _band(i * 10 + 5, cfg)
        bars.append(
            {
                "x": round(i * bw + 3, 1),
                "y": round(base - h, 1),
                "w": round(bw - 6, 1),
                "h": round(h, 1),
                "colour": SEGMENT_COLOURS[band],
                "segment": SEGMENT_LABELS[band],
                "count": c,
                "count_y": round(base - h - 4, 1),
                "label": f"{i * 10}–{i * 10 + 10}",
                "lx": round(i * bw + bw / 2, 1),
            }
        )
    seg = cfg.scoring.segments
    edges = [
        ("at_risk", 0.0, seg.at_risk, f"At risk < {seg.at_risk:g}"),
        ("neutral", seg.at_risk, seg.healthy, "Neutral"),
        ("healthy", seg.healthy, 100.0, f"Healthy ≥ {seg.healthy:g}"),
    ]
    return {
        "width": width,
        "height": height,
        "bars": bars,
        "axis_y": base,
        "label_y": base + 14,
        "band_y": height - 4,
        "bands": [
            {"x": round((lo + hi) / 2 / 100 * width, 1), "label": label, "ink": SEGMENT_INK[key]}
            for key, lo, hi, label in edges
            if hi > lo
        ],
        "thresholds": [
            {"x": round(t / 100 * width, 1), "y1": 8, "y2": base}
            for t in (seg.at_risk, seg.healthy)
        ],
        "total": sum(counts.values()),
    }


def _nice_range(values: list[float]) -> tuple[float, float, float]:
    lo = max(0.0, math.floor((min(values) - 2) / 5) * 5)
    hi = min(100.0, math.ceil((max(values) + 2) / 5) * 5)
    if hi - lo < 10:
        lo, hi = max(0.0, hi - 10), max(hi, lo + 10)
    step = 5.0 if hi - lo <= 30 else 10.0 if hi - lo <= 60 else 20.0
    return lo, hi, step


def trend_chart(
    points: list[tuple[str, float | None]], cfg: Config, width: int = 560, height: int = 180
) -> dict[str, Any] | None:
    """Lay out the mean score per week on a labelled axis (needs two or more weeks)."""
    pts = [(d, v) for d, v in points if v is not None]
    if len(pts) < 2:
        return None
    lo, hi, step = _nice_range([v for _, v in pts])
    left, right, top, bottom = 40, width - 14, 12, height - 26

    def y_of(v: float) -> float:
        return round(bottom - (bottom - top) * (v - lo) / (hi - lo), 1)

    dx = (right - left) / (len(pts) - 1)
    dots = [
        {
            "x": round(left + i * dx, 1),
            "y": y_of(v),
            "value": f"{v:.1f}",
            "label": f"{d}: mean score {v:.1f}",
        }
        for i, (d, v) in enumerate(pts)
    ]
    seg = cfg.scoring.segments
    refs = [
        {"y": y_of(t), "colour": SEGMENT_COLOURS[k], "ink": SEGMENT_INK[k], "label": label}
        for k, t, label in (
            ("healthy", seg.healthy, f"healthy ≥ {seg.healthy:g}"),
            ("at_risk", seg.at_risk, f"at risk < {seg.at_risk:g}"),
        )
        if lo <= t <= hi
    ]
    n_ticks = round((hi - lo) / step)
    return {
        "width": width,
        "height": height,
        "left": left,
        "right": right,
        "tick_x": left - 6,
        "polyline": " ".join(f"{d['x']},{d['y']}" for d in dots),
        "dots": dots,
        "ticks": [
            {"y": y_of(lo + i * step), "label": f"{lo + i * step:g}"} for i in range(n_ticks + 1)
        ],
        "references": refs,
        "xlabels": [
            {"x": left, "label": pts[0][0], "anchor": "start"},
            {"x": right, "label": pts[-1][0], "anchor": "end"},
        ],
        "xlabel_y": height - 4,
        "last": dots[-1],
        "last_label_x": round(left + (len(pts) - 1) * dx - 4, 1),
        "last_label_y": round(y_of(pts[-1][1]) - 8, 1),
        "weeks": len(pts),
        "first_date": pts[0][0],
        "last_date": pts[-1][0],
        "lo": f"{min(v for _, v in pts):.1f}",
        "hi": f"{max(v for _, v in pts):.1f}",
    }


def segment_mix_chart(
    history: list[dict[str, Any]], width: int = 560, height: int = 150
) -> dict[str, Any] | None:
    """Lay out one stacked column per week: the share of accounts in each segment."""
    weeks = [k for k in history if sum((k.get("accounts_by_segment") or {}).values())]
    if len(weeks) < 2:
        return None
    left, right, top, bottom = 40, width - 14, 8, height - 22
    slot = (right - left) / len(weeks)
    cols = []
    for i, k in enumerate(weeks):
        counts = k["accounts_by_segment"]
        total = sum(counts.values())
        y = float(bottom)
        parts = []
        for s in ("at_risk", "neutral", "healthy", "insufficient_data"):
            h = (bottom - top) * counts.get(s, 0) / total
            y -= h
            parts.append(
                {
                    "y": round(y, 1),
                    "h": round(h, 1),
                    "colour": SEGMENT_COLOURS[s],
                    "title": f"{k['as_of']}: {SEGMENT_LABELS[s]} {counts.get(s, 0)} "
                    f"({100 * counts.get(s, 0) / total:.0f}%)",
                }
            )
        cols.append({"x": round(left + i * slot + 2, 1), "w": round(slot - 4, 1), "parts": parts})
    return {
        "width": width,
        "height": height,
        "columns": cols,
        "ticks": [
            {"y": round(bottom - (bottom - top) * f, 1), "label": f"{f:.0%}"} for f in (0, 0.5, 1)
        ],
        "left": left,
        "right": right,
        "tick_x": left - 6,
        "xlabels": [
            {"x": left, "label": weeks[0]["as_of"], "anchor": "start"},
            {"x": right, "label": weeks[-1]["as_of"], "anchor": "end"},
        ],
        "xlabel_y": height - 4,
        "legend": [
            {"label": SEGMENT_LABELS[s], "colour": SEGMENT_COLOURS[s]}
            for s in ("healthy", "neutral", "at_risk", "insufficient_data")
        ],
    }


def _trend_rows(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for k in reversed(history):
        seg = k.get("accounts_by_segment") or {}
        rows.append(
            {
                "as_of": k["as_of"],
                "mean_score": _num(k.get("mean_score"), 1),
                "counts": [seg.get(s, 0) for s in ALL_SEGMENTS],
                "at_risk_arr": money((k.get("arr_by_segment") or {}).get("at_risk")),
                "nps": _num(k.get("nps"), 1),
            }
        )
    return rows


def movement_matrix(scores: pl.DataFrame, prev: pl.DataFrame | None) -> dict[str, Any] | None:
    """Count accounts by last week's segment (rows) and this week's (columns)."""
    if prev is None or prev.is_empty():
        return None
    j = scores.select(
        "account_id", pl.col("segment").fill_null("insufficient_data").alias("now")
    ).join(
        prev.select("account_id", pl.col("segment").fill_null("insufficient_data").alias("before")),
        on="account_id",
        how="inner",
    )
    counts = {
        (r["before"], r["now"]): r["len"]
        for r in j.group_by("before", "now").len().iter_rows(named=True)
    }

    def tone(b: str, n: str) -> str:
        if b == n:
            return "same"
        if b in _RANK and n in _RANK:
            return "worse" if _RANK[n] > _RANK[b] else "better"
        return "other"

    return {
        "segments": [{"key": s, "label": SEGMENT_LABELS[s]} for s in ALL_SEGMENTS],
        "rows": [
            {
                "label": SEGMENT_LABELS[b],
                "cells": [
                    {"count": counts.get((b, n), 0), "tone": tone(b, n)} for n in ALL_SEGMENTS
                ],
                "total": sum(counts.get((b, n), 0) for n in ALL_SEGMENTS),
            }
            for b in ALL_SEGMENTS
        ],
        "compared": j.height,
        "into_at_risk": sum(c for (b, n), c in counts.items() if n == "at_risk" and b != n),
        "out_of_at_risk": sum(c for (b, n), c in counts.items() if b == "at_risk" and b != n),
        "worse": sum(c for (b, n), c in counts.items() if tone(b, n) == "worse"),
        "better": sum(c for (b, n), c in counts.items() if tone(b, n) == "better"),
    }


def latest_comments(surveys: pl.DataFrame | None, as_of: date, days: int) -> pl.DataFrame | None:
    """Return each account's latest survey comment in the window, with its survey and score."""
    if surveys is None or "comment" not in surveys.columns:
        return None
    start = datetime.combine(as_of - timedelta(days=days), time())
    end = datetime.combine(as_of + timedelta(days=1), time())
    return (
        surveys.filter(
            pl.col("comment").str.strip_chars().str.len_chars().gt(0)
            & pl.col("submitted_at").is_between(start, end, closed="left")
        )
        .sort("submitted_at", descending=True)
        .group_by("account_id", maintain_order=True)
        .first()
        .select(
            "account_id",
            pl.format(
                "“{}” ({} {}, {})",
                pl.col("comment").str.strip_chars(),
                pl.col("survey").str.to_uppercase(),
                pl.col("score").round(0).cast(pl.Int64),
                pl.col("submitted_at").dt.date(),
            ).alias("comment"),
        )
    )


def _account_rows(
    df: pl.DataFrame, actions: pl.DataFrame, comments: pl.DataFrame | None = None
) -> list[dict[str, Any]]:
    # the listed accounts only: grouping every action (100k at scale) cost 0.1 s per list
    listed = actions.join(df.select("account_id"), on="account_id", how="semi")
    acts = listed.group_by("account_id", maintain_order=True).agg(
        pl.col("action").str.join("; ").alias("actions")
    )
    rows = df.join(acts, on="account_id", how="left", maintain_order="left")
    if comments is not None:
        rows = rows.join(comments, on="account_id", how="left", maintain_order="left")
    out = []
    for r in rows.to_dicts():
        days = r.get("days_to_renewal")
        r["renewal"] = "" if r.get("renewal_date") is None else str(r["renewal_date"])
        r["renewal_soon"] = days is not None and 0 <= days <= RENEWAL_SOON_DAYS
        r["renewal_passed"] = days is not None and days < 0
        r["segment_label"] = SEGMENT_LABELS.get(r.get("segment") or "insufficient_data", "")
        r["utilisation"] = _pct_filter(r.get("license_utilisation"))
        r.setdefault("comment", None)
        out.append(r)
    return out


def _optional(scores: pl.DataFrame, column: str) -> pl.Expr:
    return pl.col(column) if column in scores.columns else pl.lit(None, pl.Float64)


def _lists(scores: pl.DataFrame, cfg: Config) -> dict[str, pl.DataFrame]:
    n = cfg.report.top_n
    view = scores.select([c for c in _ACCOUNT_COLUMNS if c in scores.columns])
    healthy = pl.col("segment") == "healthy"
    return {
        "at_risk": view.filter(pl.col("segment") == "at_risk").sort(
            "arr", "score", descending=[True, False], nulls_last=True
        ),
        "drops": view.filter(pl.col("score_delta_1w") < 0).sort("score_delta_1w").head(n),
        "expansion": view.filter(healthy & (_optional(scores, "license_utilisation") >= 0.85))
        .sort("arr", descending=True, nulls_last=True)
        .head(n),
        "advocates": view.filter(healthy & (_optional(scores, "nps_account") >= 50))
        .sort("score", "arr", descending=True, nulls_last=True)
        .head(n),
        "insufficient": view.filter(pl.col("score").is_null()).sort(
            "arr", descending=True, nulls_last=True
        ),
    }


def p_alive_drops(scores: pl.DataFrame, n: int) -> list[dict[str, Any]] | None:
    """List the accounts whose P(alive) fell most in 4 weeks (None without the purchase model)."""
    if "p_alive_change_4w" not in scores.columns:
        return None
    rows = (
        scores.filter(pl.col("p_alive_change_4w") < 0)
        .sort("p_alive_change_4w")
        .head(n)
        .select("account_id", "name", "arr", "p_alive", "p_alive_change_4w")
    )
    return [
        {
            "account_id": r["account_id"],
            "name": r["name"],
            "arr": "–" if r["arr"] is None else f"{r['arr']:,.0f}",
            "p_alive": f"{r['p_alive']:.0%}",
            "change": f"{r['p_alive_change_4w'] * 100:+.0f} pts",
        }
        for r in rows.iter_rows(named=True)
    ]


def _segments(kpis: dict[str, Any], prev: dict[str, Any]) -> list[dict[str, Any]]:
    counts, arr = kpis["accounts_by_segment"], kpis["arr_by_segment"]
    before = prev.get("accounts_by_segment") or {}
    n_total, arr_total = sum(counts.values()) or 1, sum(arr.values()) or 1.0
    return [
        {
            "key": s,
            "label": SEGMENT_LABELS[s],
            "colour": SEGMENT_COLOURS[s],
            "count": counts.get(s, 0),
            "share": f"{100 * counts.get(s, 0) / n_total:.0f}%",
            "delta": f"{counts.get(s, 0) - before[s]:+d}" if s in before else None,
            "arr": arr.get(s, 0.0),
            "arr_share": f"{100 * arr.get(s, 0.0) / arr_total:.1f}%",
        }
        for s in ALL_SEGMENTS
    ]


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _summary(
    scores: pl.DataFrame,
    kpis: dict[str, Any],
    lists: dict[str, pl.DataFrame],
    movement: dict[str, Any] | None,
    validation: dict[str, Any],
    cfg: Config,
) -> list[dict[str, str]]:
    at_risk, arr = lists["at_risk"], kpis["arr_by_segment"]
    share = 100 * arr.get("at_risk", 0.0) / (sum(arr.values()) or 1.0)
    out = [
        (
            "bad" if at_risk.height else "good",
            f"{_count(at_risk.height, 'account')} at risk, holding "
            f"{money(arr.get('at_risk', 0.0))} ARR ({share:.1f}% of the portfolio).",
        )
    ]
    if "days_to_renewal" in at_risk.columns:
        soon = at_risk.filter(pl.col("days_to_renewal").is_between(0, RENEWAL_SOON_DAYS))
        if soon.height:
            out.append(
                (
                    "bad",
                    f"{soon.height:,} of them renew{'s' if soon.height == 1 else ''} within "
                    f"{RENEWAL_SOON_DAYS} days ({money(float(soon['arr'].sum()))} ARR).",
                )
            )
    if movement:
        out.append(
            (
                "bad" if movement["into_at_risk"] > movement["out_of_at_risk"] else "info",
                f"Since last week {movement['into_at_risk']:,} moved into at risk and "
                f"{movement['out_of_at_risk']:,} moved out; {_count(movement['worse'], 'account')} "
                f"went to a worse segment, {movement['better']:,} to a better one.",
            )
        )
    alerts = int(scores["drop_alert"].sum()) if "drop_alert" in scores.columns else 0
    if alerts:
        out.append(
            (
                "bad",
                f"{_count(alerts, 'account')} lost {cfg.scoring.drop_alert:g} points or more "
                "since last week.",
            )
        )
    if n := lists["insufficient"].height:
        out.append(("info", f"Too little data to score {_count(n, 'account')}."))
    if q := sum(v["rows_quarantined"] for v in validation["datasets"].values()):
        out.append(("info", f"The data checks quarantined {_count(q, 'input row')}."))
    return [{"tone": tone, "text": text} for tone, text in out]


def _verdict(auc: float | None) -> str:
    if auc is None:
        return "not enough churn history yet to tell"
    if auc >= 0.75:
        return "the score separates accounts that churned from those that stayed well"
    if auc >= 0.65:
        return "the score predicts churn only fairly: review the weights"
    return "the score barely predicts churn: do not act on it without a better model"


def read_backtest(cfg: Config) -> dict[str, Any] | None:
    """Return the latest back-test written by `chs backtest`, or None when there is none."""
    path = cfg.out_dir / "backtest.json"
    if not path.is_file():
        return None
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as err:
        raise ChsError(
            f"Back-test file {path} cannot be read ({err}); re-run `chs backtest`."
        ) from None


def backtest_view(report: dict[str, Any] | None) -> dict[str, Any] | None:
    """Format the latest back-test (backtest.json) for the report, or None without one."""
    if not report or not report.get("n_snapshots"):
        return None
    pct = lambda v: "–" if v is None else f"{v * 100:.1f}%"  # noqa: E731
    two = lambda v: "–" if v is None else f"{v:.2f}"  # noqa: E731
    segs = report.get("churn_rate_by_segment") or {}
    learned = report.get("learned") or {}
    hand = report.get("hand_set_test") or {}
    test = (report.get("split") or {}).get("test") or [None, None]
    return {
        "auc": two(report.get("auc")),
        "verdict": _verdict(report.get("auc")),
        "lift": two(report.get("lift_top_decile")),
        "n_snapshots": report["n_snapshots"],
        "first": report.get("first_snapshot"),
        "last": report.get("last_snapshot"),
        "horizon": report.get("horizon_days"),
        "base_rate": pct(report.get("base_churn_rate")),
        "lead_days": "–"
        if report.get("median_lead_days") is None
        else f"{report['median_lead_days']:.0f}",
        "segments": [
            {
                "label": SEGMENT_LABELS.get(k, k),
                "rate": pct(v.get("churn_rate")),
                "n": f"{v.get('n', 0):,}",
            }
            for k, v in segs.items()
        ],
        "test_period": f"{test[0]} to {test[1]}" if test[0] else None,
        "hand_auc": two(hand.get("auc")),
        "learned_auc": two(learned.get("auc")),
        "learned_lift": two(learned.get("lift_top_decile")),
        "hand_lift": two(hand.get("lift_top_decile")),
    }


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
    lists = _lists(scores, cfg)
    movement = movement_matrix(scores, prev_scores)
    weeks = [*(history or []), kpis]
    at_risk = lists["at_risk"]
    headline = _headline(kpis, prev)
    return {
        "title": cfg.report.title,
        "company": cfg.report.company,
        "as_of": as_of.isoformat(),
        "prev_as_of": prev.get("as_of"),
        "summary": _summary(scores, kpis, lists, movement, validation, cfg),
        "headline": headline,
        "headline_rows": [headline[:5], headline[5:]],
        "segments": _segments(kpis, prev),
        "histogram": histogram(scores["score"], cfg),
        "trend": trend_chart([(k["as_of"], k.get("mean_score")) for k in weeks], cfg),
        "segment_mix": segment_mix_chart(weeks),
        "trend_rows": _trend_rows(weeks),
        "movement": movement,
        "at_risk": _account_rows(at_risk.head(n), actions, comments),
        "at_risk_total": at_risk.height,
        "at_risk_more": max(0, at_risk.height - n),
        "at_risk_arr": money(float(at_risk["arr"].sum() or 0.0))
        if "arr" in at_risk.columns
        else "–",
        "drops": _account_rows(lists["drops"], actions, comments),
        "expansion": _account_rows(lists["expansion"], actions),
        "p_alive_drops": p_alive_drops(scores, cfg.report.top_n),
        "advocates": _account_rows(lists["advocates"], actions, comments),
        "insufficient": _account_rows(lists["insufficient"].head(n), actions),
        "insufficient_total": lists["insufficient"].height,
        "insufficient_more": max(0, lists["insufficient"].height - n),
        "validation": _validation_rows(validation),
        "method": _method(cfg),
        "backtest": backtest_view(backtest),
        "segment_labels": SEGMENT_LABELS,
        "segment_colours": SEGMENT_COLOURS,
        "actions_total": actions.height,
        "accounts_total": scores.height,
        "renewal_soon_days": RENEWAL_SOON_DAYS,
    }


def _validation_rows(validation: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name, v in validation["datasets"].items():
        read = v["rows_read"]
        rows.append(
            {
                "dataset": name,
                **v,
                "share": f"{100 * v['rows_quarantined'] / read:.1f}%" if read else "–",
                "checks": [
                    f"{f['column']}: {f.get('reason') or f['expectation']} ({f['count']:,})"
                    for f in v["failed_expectations"]
                ],
            }
        )
    return rows


def _headline(kpis: dict[str, Any], prev: dict[str, Any]) -> list[dict[str, Any]]:
    ces_better = "lower" if kpis.get("ces_direction") == "lower_is_easier" else "higher"
    ces_note = "lower is easier" if ces_better == "lower" else "higher is easier"
    return [
        _kpi("Accounts", kpis["accounts_active"], prev.get("accounts_active"), 0, better=None),
        _kpi("Mean score", kpis.get("mean_score"), prev.get("mean_score"), 1),
        _kpi("NPS", kpis.get("nps"), prev.get("nps"), 1, note=_nps_note(kpis)),
        _kpi(
            "CSAT",
            kpis.get("csat_pct"),
            prev.get("csat_pct"),
            1,
            unit="%",
            note=f"n = {kpis.get('csat_n', 0)}",
        ),
        _kpi(
            "CES",
            kpis.get("ces_mean"),
            prev.get("ces_mean"),
            2,
            note=f"n = {kpis.get('ces_n', 0)}, {ces_note}",
            better=ces_better,
        ),
        _kpi(
            "Logo retention",
            _pct(kpis.get("retention_rate")),
            _pct(prev.get("retention_rate")),
            1,
            unit="%",
        ),
        _kpi(
            "Gross revenue retention",
            _pct(kpis.get("gross_revenue_retention")),
            _pct(prev.get("gross_revenue_retention")),
            1,
            unit="%",
        ),
        _kpi(
            "Net revenue retention",
            _pct(kpis.get("net_revenue_retention")),
            _pct(prev.get("net_revenue_retention")),
            1,
            unit="%",
        ),
        _kpi(
            "Median resolution",
            kpis.get("median_resolution_hours"),
            prev.get("median_resolution_hours"),
            1,
            unit=" h",
            better="lower",
        ),
        _kpi(
            "Repeat purchase rate",
            _pct(kpis.get("repeat_purchase_rate")),
            _pct(prev.get("repeat_purchase_rate")),
            1,
            unit="%",
        ),
    ]


def _pct(v: float | None) -> float | None:
    return None if v is None else v * 100


def _nps_note(kpis: dict[str, Any]) -> str:
    n = kpis.get("nps_n", 0)
    ci = kpis.get("nps_ci95")
    if not n:
        return "no answers"
    note = f"n = {n}" + (f", 95% CI {ci[0]:.0f} to {ci[1]:.0f}" if ci else "")
    return note + (" — too few answers to read as a trend" if n < 30 else "")


def _kpi(
    label: str,
    value: float | None,
    prev: float | None,
    digits: int,
    unit: str = "",
    note: str = "",
    better: str | None = "higher",
) -> dict[str, Any]:
    delta = None if value is None or prev is None else round(value - prev, digits)
    direction = None if delta is None else "up" if delta > 0 else "down" if delta < 0 else "flat"
    tone = None if direction is None else "flat"
    if direction in ("up", "down") and better is not None:
        tone = "good" if (direction == "up") == (better == "higher") else "bad"
    arrow = {"up": "▲", "down": "▼"}.get(direction or "", "")
    return {
        "label": label,
        "value": "–" if value is None else f"{value:,.{digits}f}{unit}",
        "delta": None if delta is None else f"{delta:+,.{digits}f}",
        "delta_text": None
        if delta is None
        else "no change vs last week"
        if direction == "flat"
        else f"{arrow} {delta:+,.{digits}f} vs last week",
        "direction": direction,
        "tone": tone,
        "note": note,
    }


def _method(cfg: Config) -> dict[str, Any]:
    dims = cfg.scoring.dimensions
    total = sum(dims.values()) or 1.0
    return {
        "dimensions": [{"name": d, "weight": f"{dims.get(d, 0) / total:.0%}"} for d in DIMENSIONS],
        "measures": [
            {
                "name": m.name,
                "dimension": m.dimension,
                "weight": f"{m.weight:g}",
                "method": m.method,
                "direction": m.direction,
                "bands": ", ".join(f"{b:g}" for b in m.bands or []),
            }
            for m in cfg.scoring.measures
        ],
        "healthy": f"{cfg.scoring.segments.healthy:g}",
        "at_risk": f"{cfg.scoring.segments.at_risk:g}",
        "min_coverage": f"{cfg.scoring.min_coverage:.0%}",
        "drop_alert": f"{cfg.scoring.drop_alert:g}",
        "config_hash": cfg.fingerprint(),
    }


def render_report(context: dict[str, Any]) -> str:
    """Render the stakeholder report to HTML."""
    return environment().get_template("report.html.j2").render(**context)
