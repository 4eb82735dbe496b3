"""Each measure in words a CSM understands: "12 of 50 seats active in 30 days (24%)".

One table, ``PHRASES``, maps a measure to a function of the account's row (its feature values)
and the config's windows; a measure without an entry (a user's own) reads as its name and value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tasks.config import WindowsConfig

Row = Mapping[str, Any]
Phrase = Callable[[float, Row, WindowsConfig], str]


def _int(row: Row, column: str) -> int | None:
    v = row.get(column)
    return None if v is None else round(float(v))


def _seats(v: float, row: Row, w: WindowsConfig) -> str:
    users, seats = _int(row, "active_users_30d"), _int(row, "seats")
    if users is not None and seats:
        return f"{users} of {seats} seats active in {w.usage_days} days ({v:.0%})"
    return f"{v:.0%} of seats active in {w.usage_days} days"


def _activity(v: float, row: Row, w: WindowsConfig) -> str:
    now, before = _int(row, "events_30d"), _int(row, "events_prev_30d")
    if now is not None and before is not None:
        return (
            f"{now:,} product events in the last {w.usage_days} days against {before:,} "
            f"in the {w.usage_days} before ({v:.0%})"
        )
    return f"activity at {v:.0%} of the previous {w.usage_days} days"


def _tickets_per_seat(v: float, row: Row, w: WindowsConfig) -> str:
    n, seats = _int(row, "tickets_90d"), _int(row, "seats")
    if n is not None and seats:
        return f"{n} tickets in {w.support_days} days for {seats} seats ({v:.2f} per seat)"
    return f"{v:.2f} tickets per seat in {w.support_days} days"


def _nps(v: float, row: Row, w: WindowsConfig) -> str:
    n = _int(row, "nps_respondents")
    who = f" from {n} respondent{'s' if n != 1 else ''}" if n else ""
    return f"account NPS {v:+.0f}{who} in {w.survey_days} days"


def _last_order(v: float, row: Row, w: WindowsConfig) -> str:
    return "ordered today" if v < 1 else f"last order {v:.0f} days ago"


PHRASES: dict[str, Phrase] = {
    "active_days_30d": lambda v, r, w: f"active on {v:.0f} of the last {w.usage_days} days",
    "license_utilisation": _seats,
    "stickiness": lambda v, r, w: f"daily users are {v:.0%} of monthly users (stickiness)",
    "feature_breadth_30d": lambda v, r, w: (
        f"{v:.0f} different features used in {w.usage_days} days"
    ),
    "activity_trend": _activity,
    "survey_responses": lambda v, r, w: f"{v:.0f} survey answers in {w.survey_days} days",
    "spend_trend": lambda v, r, w: f"spend in the last 90 days at {v:.0%} of the 90 days before",
    "orders_365d": lambda v, r, w: f"{v:.0f} orders in the last {w.orders_days} days",
    "days_since_last_order": _last_order,
    "tickets_per_seat_90d": _tickets_per_seat,
    "open_urgent_tickets": lambda v, r, w: (
        f"{v:.0f} high or urgent ticket{'s' if round(v) != 1 else ''} open"
    ),
    "median_resolution_hours": lambda v, r, w: f"tickets take a median {v:.0f} hours to resolve",
    "goal_attainment": lambda v, r, w: f"{v:.0%} of their goals reached",
    "nps_account": _nps,
    "csat_pct": lambda v, r, w: f"{v:.0f}% satisfied in CSAT answers",
    "ces_mean": lambda v, r, w: f"customer effort score {v:.1f} (1 hard to 7 easy)",
    "p_alive": lambda v, r, w: f"{v:.0%} chance they are still buying (purchase model)",
    "expected_purchases_90d": lambda v, r, w: f"{v:.1f} purchases expected in the next 90 days",
}


def label(measure: str) -> str:
    """Return a measure's name as words: ``open_urgent_tickets`` -> "open urgent tickets"."""
    return measure.replace("_", " ")


def describe(measure: str, value: Any, row: Row, windows: WindowsConfig) -> str:
    """Say what the account's value of ``measure`` means; "no data" when it has none."""
    if value is None:
        return "no data"
    v = float(value)
    phrase = PHRASES.get(measure)
    return phrase(v, row, windows) if phrase else f"{label(measure)}: {v:,.4g}"
