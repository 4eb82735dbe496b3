"""Usage and engagement features from product events (active days, seats used, breadth, trend)."""

from __future__ import annotations

import polars as pl

from tasks.features.windows import DAY, Span, hashed_ids, in_window, islands, running_sum


def usage_features(events: pl.LazyFrame, span: Span, days: int) -> pl.LazyFrame:
    """Active days and users, stickiness, breadth and trend from product events."""
    ev = (
        span.coded(
            span.recent(hashed_ids(events), "ts", 2 * days).select(
                "account_id", "user_id", "event", pl.col("ts").dt.date().alias(DAY)
            )
        )
        .with_columns(*in_window(span, DAY, days))
        .collect()
        .lazy()
    )
    daily = (
        ev.group_by("_acc", DAY)
        .agg(pl.len().alias("_n"), pl.col("user_id").n_unique())
        .collect()
        .lazy()
    )
    run = running_sum(
        [
            daily.select(
                "_acc",
                *in_window(span, DAY, days),
                pl.col("_n").alias("events_30d"),
                pl.col("user_id").alias("_dau_sum"),
                pl.lit(1).alias("active_days_30d"),
            ),
            # this window and the one before it together, for the trend
            daily.select("_acc", *in_window(span, DAY, 2 * days), pl.col("_n").alias("_n_60d")),
            islands(ev.select("_acc", "user_id", "_lo", "_hi"), "user_id", "active_users_30d"),
            islands(ev.select("_acc", "event", "_lo", "_hi"), "event", "feature_breadth_30d"),
        ],
        span,
    )
    counts = ["active_users_30d", "feature_breadth_30d", "events_30d", "events_prev_30d"]
    return run.with_columns(
        (pl.col("_n_60d") - pl.col("events_30d")).alias("events_prev_30d"),
        pl.when(pl.col("active_days_30d") > 0)
        .then(pl.col("_dau_sum") / days / pl.col("active_users_30d"))
        .alias("stickiness"),
    ).select(
        "_acc",
        "_i",
        *[pl.col(c).cast(pl.UInt32) for c in (*counts, "active_days_30d")],
        "stickiness",
    )
