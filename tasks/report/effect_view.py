"""The report's playbook effectiveness section: effectiveness.json as rows and a footnote.

The footnote says what the hold-out group is: which share of the newly qualifying accounts it
takes, that nobody was told about them (their actions are never shown as work), and what
"too few to tell" (``n_too_small``) means.
"""

from __future__ import annotations

from typing import Any

from tasks.report.format import pct_filter


def _points(v: float | None) -> str:
    """Format a difference of shares in percentage points, with its sign."""
    return "–" if v is None else f"{v * 100:+.1f} pts"


def _interval(d: dict[str, float | None]) -> str:
    low, high = d.get("low"), d.get("high")
    if low is None or high is None:
        return "–"
    return f"{low * 100:+.1f} to {high * 100:+.1f}"


def _verdict(p: dict[str, Any]) -> str:
    """Say in words what the recovery difference shows."""
    d = p["recovered_difference"]
    if d.get("estimate") is None:
        return "no hold-out yet"
    if p["n_too_small"]:
        return "too few to tell"
    if d["low"] > 0:
        return "helps"
    if d["high"] < 0:
        return "hurts"
    return "no clear effect"


def effectiveness_view(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    """Return the section's rows and footnote (None when the run measured nothing)."""
    if not doc:
        return None
    rows = [
        {
            "action": p["action"],
            "treated_n": p["treated_n"],
            "holdout_n": p["holdout_n"],
            "recovered_treated": pct_filter(p["recovered_share"]["treated"]),
            "recovered_holdout": pct_filter(p["recovered_share"]["holdout"]),
            "recovered_difference": _points(p["recovered_difference"].get("estimate")),
            "recovered_interval": _interval(p["recovered_difference"]),
            "churned_difference": _points(p["churned_difference"].get("estimate")),
            "churned_interval": _interval(p["churned_difference"]),
            "verdict": _verdict(p),
        }
        for p in doc["playbooks"]
        if p["treated_n"] or p["holdout_n"]
    ]
    return {
        "rows": rows,
        "holdout_share": pct_filter(doc["holdout_share"]),
        "holdout_on": bool(doc["holdout_share"]),
        "min_group": doc["min_group"],
        "cohort": doc["cohort"],
        "recovery": doc["recovery"],
        "churn_days": doc["churn_days"],
        "method": doc["method"],
    }
