"""Per-account features as of a date (validated datasets -> features).

Everything is point in time: a feature for date D uses only rows with timestamps <= D. When a
dataset is absent its features are null (no data, which lowers coverage); when it is present
but an account has no rows in the window, counts are 0 (a real signal: nobody used it).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import polars as pl

from tasks.config import Config

HIGH_PRIORITIES = ("high", "urgent")
KNOWN_FEATURES = frozenset(
    {
        "active_days_30d",
        "active_users_30d",
        "feature_breadth_30d",
        "events_30d",
        "events_prev_30d",
        "stickiness",
        "license_utilisation",
        "activity_trend",
        "tickets_90d",
        "open_urgent_tickets",
        "median_resolution_hours",
        "tickets_per_seat_90d",
        "nps_account",
        "nps_respondents",
        "csat_pct",
        "ces_mean",
        "survey_responses",
        "orders_365d",
        "avg_order_value",
        "spend_365d",
        "spend_90d",
        "spend_prev_90d",
        "spend_trend",
        "days_since_last_order",
        "goal_attainment",
        "days_to_renewal",
    }
)


def _end(as_of: date) -> datetime:
    return datetime.combine(as_of, time.max)


def _start(as_of: date, days: int) -> datetime:
    """Return the first instant of the ``days``-day window that ends with ``as_of``."""
    return datetime.combine(as_of - timedelta(days=days - 1), time.min)


def active_accounts(accounts: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """Return the accounts that are customers on ``as_of`` (started, not yet churned)."""
    started = pl.col("contract_start").is_null() | (pl.col("contract_start") <= as_of)
    # An account marked churned without a date cannot be placed in time; it is not scored.
    churned_by_then = (pl.col("churned_at") <= as_of) | (
        pl.col("churned_at").is_null() & (pl.col("status") == "churned")
    )
    return accounts.filter(started & ~churned_by_then.fill_null(False))


def usage_features(events: pl.LazyFrame, as_of: date, days: int) -> pl.LazyFrame:
    """Active days and users, stickiness, breadth and trend from product events."""
    cur_start, prev_start, end = _start(as_of, days), _start(as_of, 2 * days), _end(as_of)
    ev = events.filter((pl.col("ts") >= prev_start) & (pl.col("ts") <= end)).select(
        "account_id", "user_id", "event", "ts", (pl.col("ts") >= cur_start).alias("cur")
    )
    cur = pl.col("cur")
    daily_users = (
        ev.filter(cur)
        .group_by("account_id", pl.col("ts").dt.date().alias("d"))
        .agg(pl.col("user_id").n_unique().alias("dau"))
        .group_by("account_id")
        .agg(pl.len().alias("active_days_30d"), pl.col("dau").sum().alias("_dau_sum"))
    )
    per_account = ev.group_by("account_id").agg(
        pl.col("user_id").filter(cur).n_unique().alias("active_users_30d"),
        pl.col("event").filter(cur).n_unique().alias("feature_breadth_30d"),
        cur.sum().alias("events_30d"),
        (~cur).sum().alias("events_prev_30d"),
    )
    return per_account.join(daily_users, on="account_id", how="left").with_columns(
        (pl.col("_dau_sum") / days / pl.col("active_users_30d")).alias("stickiness")
    )


def support_features(tickets: pl.LazyFrame, as_of: date, days: int) -> pl.LazyFrame:
    """Ticket volume, open high/urgent tickets and resolution time as of ``as_of``."""
    start, end = _start(as_of, days), _end(as_of)
    t = tickets.filter(pl.col("opened_at") <= end)
    resolved_by_then = pl.col("resolved_at").is_not_null() & (pl.col("resolved_at") <= end)
    hours = (pl.col("resolved_at") - pl.col("opened_at")).dt.total_seconds() / 3600
    recent_resolved = resolved_by_then & (pl.col("resolved_at") >= start)
    return t.group_by("account_id").agg(
        (pl.col("opened_at") >= start).sum().alias("tickets_90d"),
        (pl.col("priority").is_in(HIGH_PRIORITIES) & ~resolved_by_then)
        .sum()
        .alias("open_urgent_tickets"),
        hours.filter(recent_resolved).median().alias("median_resolution_hours"),
    )


def nps_of(scores: pl.Expr) -> pl.Expr:
    """NPS = % promoters (9-10) - % detractors (0-6); null without answers."""
    n = scores.count()
    # cast before subtracting: boolean sums are unsigned and would wrap below zero
    value = (
        ((scores >= 9).sum().cast(pl.Float64) - (scores <= 6).sum().cast(pl.Float64)) * 100.0 / n
    )
    return pl.when(n > 0).then(value)


def csat_pct_of(scores: pl.Expr) -> pl.Expr:
    """CSAT % = answers of 4 or 5 / answers x 100; null without answers."""
    n = scores.count()
    return pl.when(n > 0).then((scores >= 4).sum() * 100.0 / n)


def survey_features(
    responses: pl.LazyFrame, as_of: date, days: int, ces_flip: tuple[float, float] | None
) -> pl.LazyFrame:
    """Account NPS (each respondent's latest answer), CSAT %, CES and participation."""
    r = responses.filter(
        (pl.col("submitted_at") >= _start(as_of, days)) & (pl.col("submitted_at") <= _end(as_of))
    )
    who = pl.coalesce(pl.col("respondent_id"), pl.col("response_id"))
    latest_nps = (
        r.filter(pl.col("survey") == "nps")
        .sort("submitted_at", "response_id")
        .group_by("account_id", who.alias("_who"))
        .agg(pl.col("score").last())
        .group_by("account_id")
        .agg(nps_of(pl.col("score")).alias("nps_account"), pl.len().alias("nps_respondents"))
    )
    ces = pl.col("score")
    if ces_flip is not None:  # the config says lower CES is better: express it as ease
        ces = ces_flip[0] + ces_flip[1] - ces
    others = r.group_by("account_id").agg(
        csat_pct_of(pl.col("score").filter(pl.col("survey") == "csat")).alias("csat_pct"),
        ces.filter(pl.col("survey") == "ces").mean().alias("ces_mean"),
        pl.len().alias("survey_responses"),
    )
    return others.join(latest_nps, on="account_id", how="full", coalesce=True)


def order_features(orders: pl.LazyFrame, as_of: date, days: int) -> pl.LazyFrame:
    """Spend trend, repeat purchases, average order value and recency of the last order."""
    end = _end(as_of)
    o = orders.filter(pl.col("ordered_at") <= end)
    is_refund = pl.col("kind").fill_null("order") == "refund"
    signed = pl.when(is_refund).then(-pl.col("amount")).otherwise(pl.col("amount"))
    in_days = lambda n: pl.col("ordered_at") >= _start(as_of, n)  # noqa: E731
    prev_90 = (pl.col("ordered_at") >= _start(as_of, 180)) & ~in_days(90)
    return (
        o.group_by("account_id")
        .agg(
            (in_days(days) & ~is_refund).sum().alias("orders_365d"),
            pl.col("amount").filter(in_days(days) & ~is_refund).mean().alias("avg_order_value"),
            signed.filter(in_days(days)).sum().alias("spend_365d"),
            signed.filter(in_days(90)).sum().alias("spend_90d"),
            signed.filter(prev_90).sum().alias("spend_prev_90d"),
            pl.col("ordered_at").filter(~is_refund).max().alias("_last_order"),
        )
        .with_columns(
            pl.when(pl.col("spend_prev_90d") > 0)
            .then(pl.col("spend_90d") / pl.col("spend_prev_90d"))
            .alias("spend_trend"),
            (pl.lit(as_of) - pl.col("_last_order").dt.date())
            .dt.total_days()
            .cast(pl.Float64)
            .alias("days_since_last_order"),
        )
    )


def outcome_features(outcomes: pl.LazyFrame, as_of: date, days: int) -> pl.LazyFrame:
    """Goal attainment: mean over goals of the latest actual / target, capped at 2."""
    o = outcomes.filter(
        (pl.col("measured_at") >= _start(as_of, days)) & (pl.col("measured_at") <= _end(as_of))
    )
    latest = (
        o.sort("measured_at")
        .group_by("account_id", "goal")
        .agg(pl.col("actual").last(), pl.col("target").last())
    )
    return latest.group_by("account_id").agg(
        (pl.col("actual") / pl.col("target")).clip(0, 2).mean().alias("goal_attainment")
    )


_ZERO_WHEN_PRESENT = {
    "usage_events": (
        "active_days_30d",
        "active_users_30d",
        "feature_breadth_30d",
        "events_30d",
        "events_prev_30d",
    ),
    "tickets": ("tickets_90d", "open_urgent_tickets"),
    "survey_responses": ("survey_responses",),
    "orders": ("orders_365d",),
}


def build_features(data: dict[str, pl.DataFrame], cfg: Config, as_of: date) -> pl.DataFrame:
    """Return one row of features per account active on ``as_of``."""
    w = cfg.windows
    base = active_accounts(data["accounts"], as_of).lazy()
    parts: list[pl.LazyFrame] = []
    if "usage_events" in data:
        parts.append(usage_features(data["usage_events"].lazy(), as_of, w.usage_days))
    if "tickets" in data:
        parts.append(support_features(data["tickets"].lazy(), as_of, w.support_days))
    if "survey_responses" in data:
        ces = cfg.surveys.get("ces")
        flip = (ces.min, ces.max) if ces is not None and not ces.higher_is_better else None
        parts.append(survey_features(data["survey_responses"].lazy(), as_of, w.survey_days, flip))
    if "orders" in data:
        parts.append(order_features(data["orders"].lazy(), as_of, w.orders_days))
    if "outcomes" in data:
        parts.append(outcome_features(data["outcomes"].lazy(), as_of, w.outcomes_days))
    out = base
    for p in parts:
        out = out.join(p, on="account_id", how="left")
    zeros = [
        pl.col(c).fill_null(0)
        for ds, cols in _ZERO_WHEN_PRESENT.items()
        if ds in data
        for c in cols
    ]
    out = out.with_columns(zeros) if zeros else out
    out = out.with_columns(*_derived(data, as_of))
    drop = [c for c in out.collect_schema().names() if c.startswith("_")]
    return out.drop(drop).sort("account_id").collect()


def _derived(data: dict[str, pl.DataFrame], as_of: date) -> list[pl.Expr]:
    seats = pl.when(pl.col("seats") > 0).then(pl.col("seats"))
    exprs = [
        pl.lit(as_of).alias("as_of"),
        (pl.col("renewal_date") - pl.lit(as_of)).dt.total_days().alias("days_to_renewal"),
    ]
    if "usage_events" in data:
        prev, cur = pl.col("events_prev_30d"), pl.col("events_30d")
        exprs += [
            (pl.col("active_users_30d") / seats).alias("license_utilisation"),
            pl.when(prev > 0).then(cur / prev).alias("activity_trend"),
        ]
    if "tickets" in data:
        exprs.append((pl.col("tickets_90d") / seats).alias("tickets_per_seat_90d"))
    return exprs
