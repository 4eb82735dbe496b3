"""The report's KPI cards (value, week-over-week delta, tone), its data-quality table and the
method footnote.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tasks.config import Config
from tasks.kpis import Kpis
from tasks.report.format import (
    pct,
)
from tasks.schemas import DIMENSIONS


def validation_rows(validation: dict[str, Any]) -> list[dict[str, Any]]:
    """Return one row per dataset: rows read and quarantined, and the failed checks."""
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


def headline_cards(kpis: Kpis, prev: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return the KPI cards with their change since last week."""
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
            pct(kpis.get("retention_rate")),
            pct(prev.get("retention_rate")),
            1,
            unit="%",
        ),
        _kpi(
            "Gross revenue retention",
            pct(kpis.get("gross_revenue_retention")),
            pct(prev.get("gross_revenue_retention")),
            1,
            unit="%",
        ),
        _kpi(
            "Net revenue retention",
            pct(kpis.get("net_revenue_retention")),
            pct(prev.get("net_revenue_retention")),
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
            pct(kpis.get("repeat_purchase_rate")),
            pct(prev.get("repeat_purchase_rate")),
            1,
            unit="%",
        ),
        *_acquisition_cards(kpis, prev),
    ]


def _acquisition_cards(kpis: Kpis, prev: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return the CAC and CLV:CAC cards when kpis.json has them (null without spend data)."""
    cards = []
    if kpis.get("cac") is not None:
        n = kpis.get("cac_new_accounts")
        note = f"spend per new account, {n:,} new accounts" if n is not None else ""
        cards.append(_kpi("CAC", kpis.get("cac"), prev.get("cac"), 0, note=note, better="lower"))
    if kpis.get("clv_to_cac") is not None:
        cards.append(_kpi("CLV : CAC", kpis.get("clv_to_cac"), prev.get("clv_to_cac"), 1, unit="×"))
    return cards


def _nps_note(kpis: Kpis) -> str:
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


def method_view(cfg: Config) -> dict[str, Any]:
    """Return the method footnote: weights, measures, bands and thresholds of the config."""
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
