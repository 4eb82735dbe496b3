"""Build the report context and render it with Jinja2 (scores -> report.html).

All arithmetic happens here; the templates in ``reports/templates`` only place finished values.
Charts are inline SVG, so the report needs no JavaScript and no network.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from tasks.config import Config
from tasks.schemas import DIMENSIONS, SEGMENTS

TEMPLATES = Path(__file__).resolve().parent.parent / "reports" / "templates"
# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
SEGMENT_COLOURS = {
    "healthy": "#009E73",
    "neutral": "#E69F00",
    "at_risk": "#D55E00",
    "insufficient_data": "#999999",
}
SEGMENT_LABELS = {
    "healthy": "Healthy",
    "neutral": "Neutral",
    "at_risk": "At risk",
    "insufficient_data": "Insufficient data",
}


def environment() -> Environment:
    """Return the Jinja2 environment; autoescaping is on for every template."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = lambda v, d=0: "–" if v is None else f"{v:,.{d}f}"
    env.filters["pct"] = lambda v, d=0: "–" if v is None else f"{v * 100:.{d}f}%"
    env.filters["signed"] = lambda v, d=1: "–" if v is None else f"{v:+.{d}f}"
    return env


def histogram_svg(
    scores: pl.Series, cfg: Config, width: int = 560, height: int = 160
) -> dict[str, Any]:
    """Return the bars of a 10-point score histogram, coloured by segment band."""
    counts = [0] * 10
    for s in scores.drop_nulls().to_list():
        counts[min(int(s // 10), 9)] += 1
    top = max(counts) or 1
    bw = width / 10
    seg = cfg.scoring.segments
    bars = []
    for i, c in enumerate(counts):
        mid = i * 10 + 5
        band = "healthy" if mid >= seg.healthy else "at_risk" if mid < seg.at_risk else "neutral"
        h = (height - 30) * c / top
        bars.append(
            {
                "x": round(i * bw + 2, 1),
                "y": round(height - 20 - h, 1),
                "w": round(bw - 4, 1),
                "h": round(h, 1),
                "colour": SEGMENT_COLOURS[band],
                "count": c,
                "label": f"{i * 10}–{i * 10 + 10}",
                "lx": round(i * bw + bw / 2, 1),
            }
        )
    return {"width": width, "height": height, "bars": bars, "axis_y": height - 20}


def trend_svg(
    points: list[tuple[str, float | None]], width: int = 560, height: int = 140
) -> dict[str, Any] | None:
    """Return a polyline of the mean score per week (needs two or more weeks of history)."""
    pts = [(d, v) for d, v in points if v is not None]
    if len(pts) < 2:
        return None
    lo, hi = min(v for _, v in pts), max(v for _, v in pts)
    span = max(hi - lo, 1.0)
    step = (width - 60) / (len(pts) - 1)
    coords = [
        (30 + i * step, 15 + (height - 40) * (1 - (v - lo) / span)) for i, (_, v) in enumerate(pts)
    ]
    return {
        "width": width,
        "height": height,
        "polyline": " ".join(f"{x:.1f},{y:.1f}" for x, y in coords),
        "dots": [
            {"x": round(x, 1), "y": round(y, 1), "label": f"{d}: {v:.1f}"}
            for (x, y), (d, v) in zip(coords, pts, strict=True)
        ],
        "first": pts[0][0],
        "last": pts[-1][0],
        "lo": round(lo, 1),
        "hi": round(hi, 1),
    }


def _account_rows(df: pl.DataFrame, actions: pl.DataFrame) -> list[dict[str, Any]]:
    acts = actions.group_by("account_id").agg(pl.col("action").str.join("; ").alias("actions"))
    rows = df.join(acts, on="account_id", how="left", maintain_order="left")
    return rows.to_dicts()


def movement_matrix(scores: pl.DataFrame, prev: pl.DataFrame | None) -> dict[str, Any] | None:
    """Count accounts by last week's segment (rows) and this week's (columns)."""
    if prev is None or prev.is_empty():
        return None
    segs = [*SEGMENTS, "insufficient_data"]
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
    return {
        "segments": [{"key": s, "label": SEGMENT_LABELS[s]} for s in segs],
        "rows": [
            {"label": SEGMENT_LABELS[b], "cells": [counts.get((b, n), 0) for n in segs]}
            for b in segs
        ],
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
    trend: list[tuple[str, float | None]] | None = None,
) -> dict[str, Any]:
    """Assemble everything the report shows, already computed and sorted."""
    n = cfg.report.top_n
    cols = [
        "account_id",
        "name",
        "csm_email",
        "tier",
        "arr",
        "score",
        "segment",
        "score_delta_1w",
        "top_drivers",
        "change_drivers",
        "coverage",
    ]
    view = scores.select([c for c in cols if c in scores.columns])
    at_risk = view.filter(pl.col("segment") == "at_risk").sort(
        "arr", "score", descending=[True, False], nulls_last=True
    )
    drops = view.filter(pl.col("score_delta_1w").is_not_null()).sort("score_delta_1w").head(n)
    drops = drops.filter(pl.col("score_delta_1w") < 0)
    expansion = (
        scores.filter(
            (pl.col("segment") == "healthy")
            & (
                pl.col("license_utilisation") >= 0.85
                if "license_utilisation" in scores.columns
                else pl.lit(False)
            )
        )
        .sort("arr", descending=True, nulls_last=True)
        .head(n)
        .select(view.columns)
    )
    advocates = (
        scores.filter(
            (pl.col("segment") == "healthy")
            & (pl.col("nps_account") >= 50 if "nps_account" in scores.columns else pl.lit(False))
        )
        .sort("score", descending=True)
        .head(n)
        .select(view.columns)
    )
    insufficient = (
        view.filter(pl.col("score").is_null()).sort("arr", descending=True, nulls_last=True).head(n)
    )
    seg_counts = kpis["accounts_by_segment"]
    prev = prev_kpis or {}
    headline = [
        _kpi("Accounts", kpis["accounts_active"], prev.get("accounts_active"), 0),
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
            note=f"n = {kpis.get('ces_n', 0)}, higher is easier",
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
        ),
        _kpi(
            "Repeat purchase rate",
            _pct(kpis.get("repeat_purchase_rate")),
            _pct(prev.get("repeat_purchase_rate")),
            1,
            unit="%",
        ),
    ]
    return {
        "title": cfg.report.title,
        "company": cfg.report.company,
        "as_of": as_of.isoformat(),
        "headline": headline,
        "segments": [
            {
                "key": s,
                "label": SEGMENT_LABELS[s],
                "colour": SEGMENT_COLOURS[s],
                "count": seg_counts.get(s, 0),
                "arr": kpis["arr_by_segment"].get(s, 0.0),
            }
            for s in (*SEGMENTS, "insufficient_data")
        ],
        "histogram": histogram_svg(scores["score"], cfg),
        "trend": trend_svg(trend or []),
        "movement": movement_matrix(scores, prev_scores),
        "at_risk": _account_rows(at_risk.head(n), actions),
        "at_risk_total": at_risk.height,
        "at_risk_arr": float(at_risk["arr"].sum() or 0.0) if "arr" in at_risk.columns else 0.0,
        "drops": _account_rows(drops, actions),
        "expansion": _account_rows(expansion, actions),
        "advocates": _account_rows(advocates, actions),
        "insufficient": insufficient.to_dicts(),
        "insufficient_total": int(scores["score"].null_count()),
        "validation": [{"dataset": k, **v} for k, v in validation["datasets"].items()],
        "method": _method(cfg),
        "segment_labels": SEGMENT_LABELS,
        "segment_colours": SEGMENT_COLOURS,
        "actions_total": actions.height,
    }


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
    label: str, value: float | None, prev: float | None, digits: int, unit: str = "", note: str = ""
) -> dict[str, Any]:
    delta = None if value is None or prev is None else value - prev
    return {
        "label": label,
        "value": "–" if value is None else f"{value:,.{digits}f}{unit}",
        "delta": None if delta is None else f"{delta:+,.{digits}f}",
        "direction": None
        if delta is None
        else ("up" if delta > 0 else "down" if delta < 0 else "flat"),
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
                "weight": m.weight,
                "method": m.method,
                "direction": m.direction,
                "bands": ", ".join(f"{b:g}" for b in m.bands or []),
            }
            for m in cfg.scoring.measures
        ],
        "healthy": cfg.scoring.segments.healthy,
        "at_risk": cfg.scoring.segments.at_risk,
        "min_coverage": cfg.scoring.min_coverage,
        "drop_alert": cfg.scoring.drop_alert,
        "config_hash": cfg.fingerprint(),
    }


def render_report(context: dict[str, Any]) -> str:
    """Render the stakeholder report to HTML."""
    return environment().get_template("report.html.j2").render(**context)
