"""Satisfaction features from survey answers (NPS, CSAT, CES, participation)."""

from __future__ import annotations

import polars as pl

from tasks.features.windows import DAY, FIXED, Span, current, in_window, running_sum


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
    responses: pl.LazyFrame, span: Span, days: int, ces_flip: tuple[float, float] | None
) -> pl.LazyFrame:
    """Account NPS (each respondent's latest answer), CSAT %, CES and participation."""
    r = (
        span.coded(responses.with_columns(pl.col("submitted_at").dt.date().alias(DAY)))
        .with_columns(*in_window(span, DAY, days))
        .collect()  # once: the parts below are separate queries
        .lazy()
    )
    ces = pl.col("score")
    if ces_flip is not None:  # the config says lower CES is better: express it as ease
        ces = ces_flip[0] + ces_flip[1] - ces
    is_csat, is_ces = pl.col("survey") == "csat", pl.col("survey") == "ces"
    # each respondent's NPS answer holds until their next one or the end of its window
    who = pl.coalesce(pl.col("respondent_id"), pl.col("response_id")).alias("_who")
    nps = current(
        r.filter(pl.col("survey") == "nps").with_columns(who),
        ["_acc", "_who"],
        ["submitted_at", "response_id"],
    )
    run = running_sum(
        [
            r.select(
                "_acc",
                "_lo",
                "_hi",
                pl.lit(1).alias("survey_responses"),
                is_csat.alias("_csat_n"),
                (is_csat & (pl.col("score") >= 4)).alias("_csat_ok"),
                is_ces.alias("_ces_n"),
                (pl.when(is_ces).then(ces).otherwise(0.0) * FIXED).round().alias("_ces_sum"),
            ),
            nps.select(
                "_acc",
                "_lo",
                "_hi",
                pl.lit(1).alias("_nps_n"),
                (pl.col("score") >= 9).alias("_promoters"),
                (pl.col("score") <= 6).alias("_detractors"),
            ),
        ],
        span,
    )
    n, csat_n, ces_n = pl.col("_nps_n"), pl.col("_csat_n"), pl.col("_ces_n")
    return run.select(
        "_acc",
        "_i",
        pl.when(csat_n > 0)
        .then(pl.col("_csat_ok").cast(pl.UInt32) * 100.0 / csat_n)
        .alias("csat_pct"),
        pl.when(ces_n > 0).then(pl.col("_ces_sum") / FIXED / ces_n).alias("ces_mean"),
        pl.col("survey_responses").cast(pl.UInt32),
        pl.when(n > 0)
        .then(
            (pl.col("_promoters").cast(pl.Float64) - pl.col("_detractors").cast(pl.Float64))
            * 100.0
            / n
        )
        .alias("nps_account"),
        pl.when(n > 0).then(n.cast(pl.UInt32)).alias("nps_respondents"),
    )
