"""Text measures per account and as-of date (texts -> features).

Over the ``[text] days`` window (90 by default) ending on each date:

- ``sentiment_90d``: mean sentiment of the texts in a supported language, with
  ``sentiment_n_90d`` the number of them; null without such a text (never neutral);
- ``negative_share_90d``: the share of those texts labelled negative;
- ``complaints_90d``: complaints (feedback of channel ``complaint``, complaint tickets);
  ``complaints_per_seat_90d`` divides by seats (the default measure reads it);
- ``complaint_resolution_hours``: median hours from opening to resolution of the complaint
  tickets resolved in the window.

Texts in ``language_unsupported`` count nowhere.
"""

from __future__ import annotations

import polars as pl

from tasks.features.windows import DAY, FIXED, Span, in_window, median_since_resolved, running_sum

TEXT_FEATURES: tuple[str, ...] = (
    "sentiment_90d",
    "sentiment_n_90d",
    "negative_share_90d",
    "complaints_90d",
    "complaints_per_seat_90d",
    "complaint_resolution_hours",
)
COUNTS: tuple[str, ...] = ("sentiment_n_90d", "complaints_90d")  # 0 when an account has none


def text_features(texts: pl.LazyFrame, span: Span, days: int) -> pl.LazyFrame:
    """Mean sentiment, negative share, complaints and complaint resolution as of each date."""
    t = (
        span.coded(
            texts.select(
                "account_id",
                "sentiment",
                "complaint",
                "resolved_hours",
                pl.col("label") == "negative",
                pl.col("created_at").dt.date().alias(DAY),
                pl.col("resolved_at").dt.date().alias("_resolved"),
            )
        )
        .collect()
        .lazy()
    )  # once: the parts below are separate queries
    scored = t.filter(pl.col("sentiment").is_not_null()).select(
        "_acc",
        *in_window(span, DAY, days),
        pl.lit(1).alias("_n"),
        (pl.col("sentiment") * FIXED).round().cast(pl.Int64).alias("_sum"),
        pl.col("label").alias("_neg"),
    )
    complaints = t.filter(pl.col("complaint")).select(
        "_acc", *in_window(span, DAY, days), pl.lit(1).alias("complaints_90d")
    )
    run = running_sum([scored, complaints], span)
    median = median_since_resolved(
        t.filter(pl.col("resolved_hours").is_not_null()),
        span,
        days,
        "resolved_hours",
        "complaint_resolution_hours",
    )
    n = pl.col("_n")
    return run.join(median, on=["_acc", "_i"], how="full", coalesce=True).select(
        "_acc",
        "_i",
        pl.when(n > 0).then(pl.col("_sum") / FIXED / n).alias("sentiment_90d"),
        n.cast(pl.UInt32).alias("sentiment_n_90d"),
        pl.when(n > 0).then(pl.col("_neg") / n).alias("negative_share_90d"),
        pl.col("complaints_90d").cast(pl.UInt32),
        "complaint_resolution_hours",
    )


def per_seat() -> pl.Expr:
    """Complaints per seat (null without seats)."""
    seats = pl.when(pl.col("seats") > 0).then(pl.col("seats"))
    return (pl.col("complaints_90d") / seats).alias("complaints_per_seat_90d")
