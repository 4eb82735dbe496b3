"""The back-test section of the report: read ``backtest.json`` and say what it means."""

from __future__ import annotations

import json
from typing import Any

from tasks.config import Config
from tasks.errors import ChsError
from tasks.report.format import SEGMENT_LABELS


def _verdict(auc: float | None) -> str:
    if auc is None:
        return "not enough churn history yet to tell"
    if auc >= 0.75:
        return "the score separates accounts that churned from those that stayed well"
    if auc >= 0.65:
        return "the score predicts churn only fairly: review the weights"
    return "the score barely predicts churn: do not act on it without a better model"


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v * 100:.1f}%"


def _two(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f}"


def read_backtest(cfg: Config) -> dict[str, Any] | None:
    """Return the latest back-test written by `chs backtest`, or None when there is none."""
    path = cfg.out_dir / "backtest.json"
    if not path.is_file():
        return None
    try:
        report = dict(json.loads(path.read_text(encoding="utf-8")))
        compare = path.with_name("backtest_compare.json")  # chs backtest --compare
        if compare.is_file():
            report["compare"] = json.loads(compare.read_text(encoding="utf-8"))
        return report
    except (OSError, ValueError) as err:
        raise ChsError(
            f"Back-test file {path} cannot be read ({err}); re-run `chs backtest`."
        ) from None


def backtest_view(report: dict[str, Any] | None) -> dict[str, Any] | None:
    """Format the latest back-test (backtest.json) for the report, or None without one."""
    if not report or not report.get("n_snapshots"):
        return None
    segs = report.get("churn_rate_by_segment") or {}
    learned = report.get("learned") or {}
    hand = report.get("hand_set_test") or {}
    test = (report.get("split") or {}).get("test") or [None, None]
    return {
        "auc": _two(report.get("auc")),
        "verdict": _verdict(report.get("auc")),
        "lift": _two(report.get("lift_top_decile")),
        "n_snapshots": report["n_snapshots"],
        "first": report.get("first_snapshot"),
        "last": report.get("last_snapshot"),
        "horizon": report.get("horizon_days"),
        "base_rate": _pct(report.get("base_churn_rate")),
        "lead_days": "–"
        if report.get("median_lead_days") is None
        else f"{report['median_lead_days']:.0f}",
        "segments": [
            {
                "label": SEGMENT_LABELS.get(k, k),
                "rate": _pct(v.get("churn_rate")),
                "n": f"{v.get('n', 0):,}",
            }
            for k, v in segs.items()
        ],
        "test_period": f"{test[0]} to {test[1]}" if test[0] else None,
        "hand_auc": _two(hand.get("auc")),
        "learned_auc": _two(learned.get("auc")),
        "learned_lift": _two(learned.get("lift_top_decile")),
        "hand_lift": _two(hand.get("lift_top_decile")),
    }
