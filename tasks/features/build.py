"""Per-account features as of one or many dates (validated datasets -> features).

``build_features_many`` joins every feature family over the accounts active at each date.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

import polars as pl

from tasks.clv.features import purchase_features
from tasks.config import Config
from tasks.features.orders import order_features, outcome_features
from tasks.features.support import support_features
from tasks.features.surveys import survey_features
from tasks.features.usage import usage_features
from tasks.features.windows import KEYS, Span, active_on
from tasks.text.annotate import texts_of
from tasks.text.features import COUNTS, TEXT_FEATURES, per_seat, text_features

# Every feature this module computes, by the dataset it comes from (tasks/rules.py names the
# missing source when a playbook's feature has no data).
FEATURE_SOURCES: dict[str, tuple[str, ...]] = {
    "usage_events": (
        "active_days_30d",
        "active_users_30d",
        "feature_breadth_30d",
        "events_30d",
        "events_prev_30d",
        "stickiness",
        "license_utilisation",
        "activity_trend",
    ),
    "tickets": (
        "tickets_90d",
        "open_urgent_tickets",
        "median_resolution_hours",
        "tickets_per_seat_90d",
    ),
    "survey_responses": (
        "nps_account",
        "nps_respondents",
        "csat_pct",
        "ces_mean",
        "survey_responses",
    ),
    "orders": (
        "orders_365d",
        "avg_order_value",
        "spend_365d",
        "spend_90d",
        "spend_prev_90d",
        "spend_trend",
        "profit_365d",
        "days_since_last_order",
        "p_alive",
        "expected_purchases_90d",
        "p_alive_change_4w",
        "clv_bgnbd",
    ),
    "outcomes": ("goal_attainment",),
    "feedback": TEXT_FEATURES,  # or survey comments / ticket text with [text] enabled = true
}
KNOWN_FEATURES = frozenset(
    {"days_to_renewal", *(f for cols in FEATURE_SOURCES.values() for f in cols)}
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


def build_features_many(
    data: dict[str, pl.DataFrame], cfg: Config, dates: Iterable[date], population: bool = True
) -> pl.DataFrame:
    """Return one row of features per account active on each date, sorted by date and account.

    Every feature is a function of one account's rows, except the purchase model, which is
    fitted over the whole population: with ``population=False`` it is left out, so a partition
    of the accounts can be computed alone and the model added after the partitions are joined
    (``add_population_features``).
    """
    dates = list(dates)
    w = cfg.windows
    span = Span.of(dates, data["accounts"])
    as_of = pl.LazyFrame({"as_of": span.dates})
    # every part is keyed by integer codes (_acc, _i): the joins below match numbers, not ids
    base = (
        data["accounts"]
        .lazy()
        .join(as_of, how="cross")
        .filter(active_on(pl.col("as_of")))
        .join(span.ids.lazy(), on="account_id", how="left")
        .join(span.indices().with_columns(pl.lit(span.dates).alias("as_of")), on="as_of")
    )
    parts: list[pl.LazyFrame] = []
    if "usage_events" in data:
        parts.append(usage_features(data["usage_events"].lazy(), span, w.usage_days))
    if "tickets" in data:
        parts.append(support_features(data["tickets"].lazy(), span, w.support_days))
    if "survey_responses" in data:
        ces = cfg.surveys.get("ces")
        flip = (ces.min, ces.max) if ces is not None and not ces.higher_is_better else None
        parts.append(survey_features(data["survey_responses"].lazy(), span, w.survey_days, flip))
    if "orders" in data:
        parts.append(order_features(data["orders"].lazy(), span, w.orders_days))
    if "outcomes" in data:
        parts.append(outcome_features(data["outcomes"].lazy(), span, w.outcomes_days))
    if cfg.text_stage:  # feedback, survey comments, ticket text (tasks/text/)
        parts.append(text_features(texts_of(data, cfg).lazy(), span, cfg.text.days))
    out = base
    for p in parts:
        out = out.join(p, on=["_acc", "_i"], how="left")
    zeros = [
        pl.col(c).fill_null(0)
        for ds, cols in _ZERO_WHEN_PRESENT.items()
        if ds in data
        for c in cols
    ]
    zeros += [pl.col(c).fill_null(0) for c in COUNTS if cfg.text_stage]
    out = out.with_columns(zeros) if zeros else out
    derived = _derived(data) + ([per_seat()] if cfg.text_stage else [])
    names = [e.meta.output_name() for e in derived]
    out = out.with_columns(derived)
    skip = {"as_of", *names}
    keep = [c for c in out.collect_schema().names() if not c.startswith("_") and c not in skip]
    features = out.select(*keep, "as_of", *names).sort("as_of", "account_id").collect()
    return add_population_features(features, data, cfg, dates) if population else features


def add_population_features(
    features: pl.DataFrame, data: dict[str, pl.DataFrame], cfg: Config, dates: Iterable[date]
) -> pl.DataFrame:
    """Add the features fitted over every account (the BG/NBD purchase model, when chosen)."""
    if cfg.kpis.clv_method == "bgnbd" and "orders" in data:
        model = _purchase_model(data["orders"], sorted(set(dates)))
        return features.join(model, on=KEYS, how="left")
    return features


def _purchase_model(orders: pl.DataFrame, dates: Iterable[date]) -> pl.DataFrame:
    """P(alive), expected purchases and their 4-week change, fitted point in time per date."""
    wanted = list(dates)
    back = timedelta(days=28)
    # one fit per distinct date: in a weekly backfill "4 weeks before" is an earlier date's fit
    fits = {d: purchase_features(orders, d) for d in sorted({*wanted, *(w - back for w in wanted)})}
    frames = []
    for d in wanted:
        before = fits[d - back].select("account_id", pl.col("p_alive").alias("_p_before"))
        frames.append(
            fits[d]
            .join(before, on="account_id", how="left")
            .with_columns(
                (pl.col("p_alive") - pl.col("_p_before")).alias("p_alive_change_4w"),
                pl.lit(d).alias("as_of"),
            )
            .drop("_p_before")
        )
    return (
        pl.concat(frames)
        if frames
        else pl.DataFrame(schema={"account_id": pl.String, "as_of": pl.Date})
    )


def build_features(data: dict[str, pl.DataFrame], cfg: Config, as_of: date) -> pl.DataFrame:
    """Return one row of features per account active on ``as_of``."""
    return build_features_many(data, cfg, [as_of])


def by_date(features: pl.DataFrame, dates: Iterable[date]) -> dict[date, pl.DataFrame]:
    """Split a many-date feature frame into one frame per as-of date (empty when none is active)."""
    # the frame is sorted by date: each date is a zero-copy slice, not a copy of its rows
    found: dict[date, pl.DataFrame] = {}
    offset = 0
    for run in features["as_of"].rle().to_list():
        found[run["value"]] = features.slice(offset, run["len"])
        offset += run["len"]
    if offset != features.height or len(found) != features["as_of"].n_unique():
        raise ValueError("features must be sorted by as_of")
    return {d: found.get(d, features.clear()) for d in dates}


def _derived(data: dict[str, pl.DataFrame]) -> list[pl.Expr]:
    seats = pl.when(pl.col("seats") > 0).then(pl.col("seats"))
    exprs = [
        (pl.col("renewal_date") - pl.col("as_of")).dt.total_days().alias("days_to_renewal"),
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
