"""The default scoring model and playbooks that ship with the product (documented in README).

Plain data, so ``chs init`` can print it and a user's TOML can replace any part of it.
Bands are four ascending break points: for ``higher`` measures they map onto 0, 40, 70 and
100 points (red below the second, green from the third); for ``lower`` measures onto 100, 70,
40 and 0 (green up to the second, red from the third).
"""

from __future__ import annotations

from typing import Any

_MEASURES: list[dict[str, Any]] = [
    # usage: is what they bought really used?
    {"name": "active_days_30d", "dimension": "usage", "bands": [0, 4, 12, 22]},
    {
        "name": "license_utilisation",
        "dimension": "usage",
        "weight": 1.5,
        "bands": [0, 0.3, 0.6, 0.9],
    },
    {"name": "stickiness", "dimension": "usage", "bands": [0, 0.1, 0.25, 0.5]},
    # engagement: breadth, participation and direction of activity
    {"name": "feature_breadth_30d", "dimension": "engagement", "bands": [0, 2, 4, 7]},
    {
        "name": "activity_trend",
        "dimension": "engagement",
        "weight": 1.5,
        "bands": [0, 0.6, 0.95, 1.3],
    },
    {"name": "survey_responses", "dimension": "engagement", "weight": 0.5, "bands": [0, 0.5, 1, 3]},
    # financial: spend trend, repeat purchases, recency of the last order
    {"name": "spend_trend", "dimension": "financial", "bands": [0, 0.7, 0.95, 1.2]},
    {"name": "orders_365d", "dimension": "financial", "bands": [0, 2, 6, 12]},
    {
        "name": "days_since_last_order",
        "dimension": "financial",
        "direction": "lower",
        "bands": [0, 35, 70, 180],
    },
    # support: load relative to size, urgent open issues, how fast they get fixed
    {
        "name": "tickets_per_seat_90d",
        "dimension": "support",
        "direction": "lower",
        "bands": [0, 0.05, 0.2, 0.5],
    },
    {
        "name": "open_urgent_tickets",
        "dimension": "support",
        "direction": "lower",
        "weight": 1.5,
        "bands": [0, 0.5, 1.5, 3],
    },
    {
        "name": "median_resolution_hours",
        "dimension": "support",
        "direction": "lower",
        "bands": [0, 24, 72, 240],
    },
    # outcomes: did they reach the goals they bought the product for?
    {"name": "goal_attainment", "dimension": "outcomes", "bands": [0, 0.6, 0.9, 1.2]},
    # satisfaction: what they tell us
    {
        "name": "nps_account",
        "dimension": "satisfaction",
        "weight": 1.5,
        "bands": [-100, -20, 20, 70],
    },
    {"name": "csat_pct", "dimension": "satisfaction", "bands": [0, 60, 80, 95]},
    {"name": "ces_mean", "dimension": "satisfaction", "bands": [1, 3.5, 5, 6.5]},
]

_ACTIONS: list[dict[str, Any]] = [
    {
        "action": "Executive business review",
        "priority": "urgent",
        "due_days": 7,
        "when": {"segment": "at_risk", "arr": {"gte": 50000}},
        "reason": "At risk with ARR {arr:,.0f}; score {score:.0f}",
    },
    {
        "action": "Health-check call with the customer",
        "priority": "high",
        "due_days": 7,
        "when": {"segment": "at_risk", "arr": {"lt": 50000}},
        "reason": "At risk: score {score:.0f}, weakest {top_drivers}",
    },
    {
        "action": "Investigate the score drop",
        "priority": "high",
        "due_days": 3,
        "when": {"drop_alert": True},
        "reason": "Score fell {score_delta_1w:+.0f} points in a week",
    },
    {
        "action": "Escalate open urgent tickets with support",
        "priority": "high",
        "due_days": 2,
        "when": {"open_urgent_tickets": {"gte": 1}},
        "reason": "{open_urgent_tickets:.0f} high/urgent ticket(s) open",
    },
    {
        "action": "Adoption workshop for unused seats",
        "priority": "medium",
        "due_days": 14,
        # a neutral account big enough for a workshop (at-risk ones get a call or a review)
        "when": {"license_utilisation": {"lt": 0.3}, "seats": {"gte": 20}, "segment": "neutral"},
        "reason": "Only {license_utilisation:.0%} of {seats} seats active in 30 days",
    },
    {
        "action": "Renewal risk plan",
        "priority": "high",
        "due_days": 7,
        "when": {"days_to_renewal": {"lte": 60}, "score": {"lt": 55}},
        "reason": "Renewal in {days_to_renewal:.0f} days while {segment}",
    },
    {
        "action": "Ask for a reference or case study",
        "priority": "low",
        "due_days": 30,
        "when": {"segment": "healthy", "score": {"gte": 85}, "nps_account": {"gte": 50}},
        "reason": "Healthy promoter (account NPS {nps_account:.0f})",
    },
    {
        "action": "Expansion conversation: seats nearly full",
        "priority": "medium",
        "due_days": 21,
        "when": {"segment": "healthy", "license_utilisation": {"gte": 0.95}},
        "reason": "{license_utilisation:.0%} of {seats} seats in use",
    },
]


# For repeat-purchase businesses ([kpis] clv_method = "bgnbd"): the buying process itself.
_PURCHASE_MEASURES: list[dict[str, Any]] = [
    {"name": "p_alive", "dimension": "financial", "weight": 1.5, "bands": [0, 0.3, 0.6, 0.9]},
    {"name": "expected_purchases_90d", "dimension": "financial", "bands": [0, 0.3, 1, 3]},
]


# With a text source ([text], the feedback dataset; tasks/text/): what customers write.
# sentiment_90d is the mean sentiment in [-1, 1] of the texts of 90 days in a supported
# language; negative_share_90d the share of them that is negative; complaints_90d counts
# complaints per seat (feature complaints_per_seat_90d); complaint_resolution_hours is the
# median time to resolve a complaint ticket. No text: no data, never a neutral score.
_TEXT_MEASURES: list[dict[str, Any]] = [
    {"name": "sentiment_90d", "dimension": "satisfaction", "bands": [-0.6, -0.1, 0.15, 0.6]},
    {
        "name": "negative_share_90d",
        "dimension": "satisfaction",
        "direction": "lower",
        "bands": [0, 0.15, 0.4, 0.8],
    },
    {
        "name": "complaints_90d",
        "feature": "complaints_per_seat_90d",
        "dimension": "support",
        "direction": "lower",
        "bands": [0, 0.01, 0.05, 0.2],
    },
    {
        "name": "complaint_resolution_hours",
        "dimension": "support",
        "direction": "lower",
        "weight": 0.5,
        "bands": [0, 24, 96, 336],
    },
]
_TEXT_ACTIONS: list[dict[str, Any]] = [
    {
        "action": "Respond to a surge of negative feedback",
        "priority": "high",
        "due_days": 3,
        "when": {"negative_share_90d": {"gte": 0.5}, "sentiment_n_90d": {"gte": 3}},
        "reason": "{negative_share_90d:.0%} of {sentiment_n_90d:.0f} texts in 90 days are "
        "negative (sentiment {sentiment_90d:+.2f})",
    },
]


def default_measures(purchase_model: bool = False, text: bool = False) -> list[dict[str, Any]]:
    """Return a fresh copy of the default measures (with the BG/NBD and text ones when asked)."""
    extra = [*(_PURCHASE_MEASURES if purchase_model else []), *(_TEXT_MEASURES if text else [])]
    return [dict(m) for m in (*_MEASURES, *extra)]


def default_actions(text: bool = False) -> list[dict[str, Any]]:
    """Return a fresh copy of the default playbooks (with the text one when asked)."""
    return [dict(a) for a in (*_ACTIONS, *(_TEXT_ACTIONS if text else []))]
