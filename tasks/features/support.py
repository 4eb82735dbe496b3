"""Support features from tickets (volume per seat, open urgent tickets, resolution time)."""

from __future__ import annotations

import polars as pl

from tasks.features.windows import DAY, Span, in_window, median_since_resolved, running_sum

HIGH_PRIORITIES = ("high", "urgent")


def support_features(tickets: pl.LazyFrame, span: Span, days: int) -> pl.LazyFrame:
    """Ticket volume, open high/urgent tickets and resolution time as of each date."""
    t = (
        span.coded(
            tickets.select(
                "account_id",
                "priority",
                pl.col("opened_at").dt.date().alias(DAY),
                pl.col("resolved_at").dt.date().alias("_resolved"),
                ((pl.col("resolved_at") - pl.col("opened_at")).dt.total_seconds() / 3600).alias(
                    "_h"
                ),
            )
        )
        .collect()
        .lazy()
    )  # once: the parts below are separate queries
    # open on D: opened by D and not resolved by the end of D
    urgent = t.filter(pl.col("priority").is_in(HIGH_PRIORITIES)).select(
        "_acc",
        span.index(pl.col(DAY)).alias("_lo"),
        pl.coalesce(span.index(pl.col("_resolved")), pl.lit(span.n, pl.Int64)).alias("_hi"),
        pl.lit(1).alias("open_urgent_tickets"),
    )
    counts = running_sum(
        [t.select("_acc", *in_window(span, DAY, days), pl.lit(1).alias("tickets_90d")), urgent],
        span,
    )
    median = median_since_resolved(t, span, days, "_h", "median_resolution_hours")
    return counts.join(median, on=["_acc", "_i"], how="full", coalesce=True).select(
        "_acc",
        "_i",
        pl.col("tickets_90d").cast(pl.UInt32),
        pl.col("open_urgent_tickets").cast(pl.UInt32),
        "median_resolution_hours",
    )
