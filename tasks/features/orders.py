"""Financial and outcome features from orders and goals (spend trend, orders, recency, attainment)."""

from __future__ import annotations

import polars as pl

from tasks.features.windows import DAY, FIXED, RATIO, Span, aged, current, in_window, running_sum


def order_features(orders: pl.LazyFrame, span: Span, days: int) -> pl.LazyFrame:
    """Spend trend, repeat purchases, average order value and recency of the last order."""
    is_refund = pl.col("kind").fill_null("order") == "refund"
    signed = pl.when(is_refund).then(-pl.col("amount")).otherwise(pl.col("amount"))
    # cost of sales, where the source has it: profit contribution = signed spend - cost
    has_cost = "cost" in orders.collect_schema().names()
    cost = pl.col("cost") if has_cost else pl.lit(None, pl.Float64)
    daily = (
        span.coded(
            orders.group_by("account_id", pl.col("ordered_at").dt.date().alias(DAY)).agg(
                (~is_refund).sum().alias("_n"),
                (pl.col("amount").filter(~is_refund) * FIXED).round().sum().alias("_amount"),
                (signed * FIXED).round().sum().alias("_signed"),
                (cost.fill_null(0.0) * FIXED).round().sum().alias("_cost"),
                cost.is_not_null().sum().alias("_costed"),
            )
        )
        .collect()
        .lazy()
    )  # once: every part below reads it, each in its own query
    since = [span.index(pl.col(DAY)).alias("_lo"), pl.lit(span.n, pl.Int64).alias("_hi")]
    # the last order holds until the next one: its day number runs through, not a sum
    last = current(daily.filter(pl.col("_n") > 0).with_columns(since), ["_acc"], [DAY])
    run = running_sum(
        [
            daily.select(
                "_acc",
                *aged(span, 0, days),
                pl.col("_n").alias("orders_365d"),
                "_amount",
                pl.col("_signed").alias("spend_365d"),
                "_cost",
                "_costed",
            ),
            daily.select("_acc", *aged(span, 0, 90), pl.col("_signed").alias("spend_90d")),
            daily.select("_acc", *aged(span, 90, 180), pl.col("_signed").alias("spend_prev_90d")),
            # every account with an order (or refund) by D has a row: its sums are 0, not null
            daily.select("_acc", *since, pl.lit(1).alias("_days")),
            last.select(
                "_acc",
                "_lo",
                "_hi",
                pl.lit(1).alias("_has_last"),
                pl.col(DAY).cast(pl.Int64).alias("_last_day"),
            ),
        ],
        span,
    )
    n = pl.col("orders_365d")
    money = [(pl.col(c) / FIXED).alias(c) for c in ("spend_365d", "spend_90d", "spend_prev_90d")]
    last_day = pl.when(pl.col("_has_last") > 0).then(pl.col("_last_day").cast(pl.Date))
    as_of = pl.lit(span.dates).gather(pl.col("_i"))
    return (
        run.filter(pl.col("_days") > 0)
        .with_columns(money)
        .select(
            "_acc",
            "_i",
            n.cast(pl.UInt32),
            pl.when(n > 0).then(pl.col("_amount") / FIXED / n).alias("avg_order_value"),
            "spend_365d",
            "spend_90d",
            "spend_prev_90d",
            pl.when(pl.col("spend_prev_90d") > 0)
            .then(pl.col("spend_90d") / pl.col("spend_prev_90d"))
            .alias("spend_trend"),
            pl.when(pl.col("_costed") > 0)
            .then(pl.col("spend_365d") - pl.col("_cost") / FIXED)
            .alias("profit_365d"),
            (as_of - last_day).dt.total_days().cast(pl.Float64).alias("days_since_last_order"),
        )
    )


def outcome_features(outcomes: pl.LazyFrame, span: Span, days: int) -> pl.LazyFrame:
    """Goal attainment: mean over goals of the latest actual / target, capped at 2."""
    o = span.coded(
        outcomes.with_row_index("_row").with_columns(pl.col("measured_at").dt.date().alias(DAY))
    ).with_columns(*in_window(span, DAY, days))
    ratio = (pl.col("actual") / pl.col("target")).clip(0, 2)
    latest = current(o, ["_acc", "goal"], ["measured_at", "_row"]).with_columns(
        ratio.is_not_null().alias("_goals"), (ratio.fill_null(0.0) * RATIO).round().alias("_ratio")
    )
    goals = running_sum([latest.select("_acc", "_lo", "_hi", "_goals", "_ratio")], span)
    return goals.select(
        "_acc",
        "_i",
        pl.when(pl.col("_goals") > 0)
        .then(pl.col("_ratio") / RATIO / pl.col("_goals"))
        .alias("goal_attainment"),
    )
