"""The sections of a CSM's digest (SPEC 10.1): new, carried, overdue, deferred and closed.

The actions' lifecycle columns (``tasks.lifecycle``: status, opened_on, weeks_open, overdue,
closed_on) say where each action goes. Hold-out actions are never shown to a CSM: they are
dropped here, whatever else their row says.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import polars as pl

from tasks.lifecycle import WORK

CLOSED = ("done", "dismissed", "expired")
SECTIONS = (
    ("new", "New this week", "Opened by this week's run."),
    ("carried", "Carried from earlier weeks", "Still open; the weeks it has been open are shown."),
    ("overdue", "Overdue", "Past their due date and not done yet."),
    ("deferred", "Deferred (over this week's capacity)", "They open first once there is room."),
    (
        "closed",
        "Closed since the last run",
        "Done, dismissed, or expired because the rule stopped firing.",
    ),
)
_DEFAULTS: dict[str, Any] = {
    "status": "open",
    "overdue": False,
    "holdout": False,
    "weeks_open": 0,
}


def _complete(actions: pl.DataFrame, as_of: date) -> pl.DataFrame:
    # plain recommendations (no lifecycle yet) are this week's new work
    missing = [pl.lit(v).alias(c) for c, v in _DEFAULTS.items() if c not in actions.columns]
    if "opened_on" not in actions.columns:
        missing.append(pl.lit(as_of).alias("opened_on"))
    if "closed_on" not in actions.columns:
        missing.append(pl.lit(None, pl.Date).alias("closed_on"))
    return actions.with_columns(missing) if missing else actions


def section_of(as_of: date, since: date) -> pl.Expr:
    """Which digest section an action belongs to (null: not shown; hold-outs never are)."""
    st = pl.col("status")
    work = st.is_in(WORK)
    closed_now = (pl.col("closed_on") > since) & (pl.col("closed_on") <= as_of)
    return (
        pl.when(pl.col("holdout").fill_null(False) | (st == "holdout"))
        .then(None)
        .when(work & pl.col("overdue").fill_null(False))
        .then(pl.lit("overdue"))
        .when(work & (pl.col("opened_on") >= as_of).fill_null(True))
        .then(pl.lit("new"))
        .when(work)
        .then(pl.lit("carried"))
        .when(st == "deferred")
        .then(pl.lit("deferred"))
        .when(st.is_in(CLOSED) & closed_now.fill_null(False))
        .then(pl.lit("closed"))
        .otherwise(None)
        .alias("section")
    )


def sectioned(actions: pl.DataFrame, as_of: date, since: date) -> pl.DataFrame:
    """Return the actions a digest may show, each with its ``section`` (hold-outs dropped)."""
    return (
        _complete(actions, as_of)
        .with_columns(section_of(as_of, since))
        .filter(pl.col("section").is_not_null())
    )


def digest_sections(rows: pl.DataFrame, top_n: int) -> list[dict[str, Any]]:
    """Group one CSM's sectioned actions, most urgent first, at most ``top_n`` rows each."""
    out = []
    for key, title, note in SECTIONS:
        part = rows.filter(pl.col("section") == key)
        shown = part.head(top_n)
        out.append(
            {
                "key": key,
                "title": title,
                "note": note,
                "count": part.height,
                "rows": shown.to_dicts(),
                "more": part.height - shown.height,
            }
        )
    return out
