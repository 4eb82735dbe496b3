"""The report's predictions: the calibration plot, the metrics by horizon, the renewal
forecast, a config comparison and the method footnote (from kpis.json and backtest.json).
"""

from __future__ import annotations

from typing import Any

from tasks.report.format import money

_W, _H, _PAD = 260, 220, 34


def calibration_plot(table: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Lay out predicted vs observed churn per bin as inline SVG points on the diagonal's frame."""
    full = [b for b in table if b.get("n")]
    if not full:
        return None
    top = max(0.05, *(max(b["mean_predicted"], b["observed"]) for b in full))
    top = min(1.0, round(top * 1.15 + 0.005, 2))
    side = _W - 2 * _PAD

    def xy(px: float, py: float) -> tuple[float, float]:
        return round(_PAD + side * px / top, 1), round(_H - _PAD - side * py / top, 1)

    biggest = max(b["n"] for b in full)
    points = [
        {
            "x": xy(b["mean_predicted"], b["observed"])[0],
            "y": xy(b["mean_predicted"], b["observed"])[1],
            "r": round(2.5 + 5 * (b["n"] / biggest) ** 0.5, 1),
            "label": f"predicted {b['mean_predicted']:.1%}, observed {b['observed']:.1%}, n={b['n']:,}",
        }
        for b in full
    ]
    (x0, y0), (x1, y1) = xy(0, 0), xy(top, top)
    return {
        "width": _W,
        "height": _H,
        "diagonal": {"x0": x0, "y0": y0, "x1": x1, "y1": y1},
        "points": points,
        "top": f"{top:.0%}",
        "axis_x": x1,
        "axis_y": y1,
        "label_y": _H - 8,
    }


def _v(m: dict[str, Any], key: str, pct: bool = False) -> str:
    cell = m.get(key) or {}
    v, (lo, hi) = cell.get("value"), cell.get("ci95") or [None, None]
    if v is None:
        return "–"

    def fmt(x: float) -> str:
        return f"{x:.1%}" if pct else f"{x:.3f}"

    return f"{fmt(v)} ({fmt(lo)}–{fmt(hi)})" if lo is not None else fmt(v)


def _forecast_rows(kpis: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for days, f in (kpis.get("renewal_forecast") or {}).items():
        lo, hi = f.get("interval80") or [None, None]
        rows.append(
            {
                "days": days,
                "due": f"{f['accounts_due']:,}",
                "arr_due": money(f["arr_due"]),
                "expected": "–"
                if f.get("expected_arr_renewing") is None
                else money(f["expected_arr_renewing"]),
                "interval": "–" if lo is None else f"{money(lo)} – {money(hi)}",
                "grr": "–" if f.get("expected_grr") is None else f"{f['expected_grr']:.1%}",
            }
        )
    return rows


def _compare_rows(compare: dict[str, Any] | None) -> list[dict[str, Any]]:
    rows = []
    for h, m in ((compare or {}).get("horizons") or {}).items():
        for k in ("auc", "brier", "lift_top_decile"):
            if m.get(k):
                v = m[k]
                lo, hi = v["ci95"]
                rows.append(
                    {
                        "horizon": h,
                        "metric": k,
                        "base": v["base"],
                        "other": v["other"],
                        "difference": v["difference"],
                        "ci": "–" if lo is None else f"{lo} to {hi}",
                        "verdict": v["verdict"],
                    }
                )
    return rows


def prediction_view(backtest: dict[str, Any] | None, kpis: dict[str, Any]) -> dict[str, Any]:
    """Format the predictions for the report's back-test section."""
    bt = backtest or {}
    cal = kpis.get("churn_calibration") or {}
    window = cal.get("training_window")
    check = bt.get("renewal_forecast_check") or {}
    return {
        "calibration": calibration_plot(bt.get("calibration") or []),
        "calibration_error": None
        if bt.get("calibration_error") is None
        else f"{bt['calibration_error']:.3f}",
        "horizons": [
            {
                "days": h,
                "auc": _v(m, "auc"),
                "brier": _v(m, "brier"),
                "lift": _v(m, "lift_top_decile"),
                "precision": _v(m, "precision_at_risk", True),
                "recall": _v(m, "recall_at_risk", True),
                "n": f"{m.get('n', 0):,}",
            }
            for h, m in (bt.get("horizons") or {}).items()
        ],
        "forecast": _forecast_rows(kpis),
        "coverage": [
            {"days": h, "coverage": f"{c['coverage80']:.0%}", "n": c["n_dates"]}
            for h, c in check.items()
            if c.get("coverage80") is not None
        ],
        "compare": _compare_rows(bt.get("compare")),
        "compare_with": (bt.get("compare") or {}).get("other_config"),
        "method": (
            f"p_churn_90d: churn within {cal.get('horizon_days', 90)} days, {cal.get('method', 'platt')} "
            f"calibration of the score on snapshots {window[0]} to {window[1]} "
            f"({cal.get('n_events', 0):,} churn events); renewals use the same calibration fitted "
            "on earlier renewals that fell due within the window."
            if window and cal.get("fitted")
            else f"p_churn_90d: {cal['note']}."
            if cal.get("note")
            else None
        ),
    }
