"""Per-account features as of one or many dates (validated datasets -> features).

Everything is point in time: a feature for date D uses only rows with timestamps <= D. When a
dataset is absent its features are null (no data, which lowers coverage); when it is present
but an account has no rows in the window, counts are 0 (a real signal: nobody used it).

One pass serves any number of as-of dates. Rows are bucketed per account and day once; each
bucket then holds for a run of consecutive dates (the dates whose window contains its day),
an interval ``[lo, hi)`` of date indices. A windowed sum at every date is the running sum of
+value at ``lo`` and -value at ``hi``; a distinct count merges each key's intervals first; a
"latest answer" holds until the next answer or the end of its window. Sums run in integers
(money in millionths), so a refund cancels its order exactly and every set of dates gives the
same bits. A single run is the same code with one date, so a backfill and ``chs run --as-of D``
cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import polars as pl

from tasks.clv_features import purchase_features
from tasks.config import Config

HIGH_PRIORITIES = ("high", "urgent")
KNOWN_FEATURES = frozenset(
    {
        "p_alive",
        "expected_purchases_90d",
        "p_alive_change_4w",
        "clv_bgnbd",
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
KEYS = ["account_id", "as_of"]
_DAY = "_day"
# sums run in integers, so they are exact in any order: money in millionths, ratios (0-2) finer
_FIXED = 1_000_000
_RATIO = 1_000_000_000_000


@dataclass(frozen=True)
class Span:
    """The as-of dates of one pass and the accounts they score, both as integer codes."""

    dates: pl.Series  # distinct, ascending
    ids: pl.DataFrame  # account_id -> _acc

    @classmethod
    def of(cls, dates: Iterable[date], accounts: pl.DataFrame) -> Span:
        ids = accounts.select(pl.col("account_id").unique(maintain_order=True))
        return cls(
            pl.Series("as_of", sorted(set(dates)), dtype=pl.Date),
            ids.with_row_index("_acc"),
        )

    @property
    def n(self) -> int:
        return self.dates.len()

    def coded(self, rows: pl.LazyFrame) -> pl.LazyFrame:
        """Replace ``account_id`` by its code; rows of unknown accounts drop out."""
        return rows.join(self.ids.lazy(), on="account_id", how="inner").drop("account_id")

    def index(self, day: pl.Expr, plus_days: int = 0) -> pl.Expr:
        """Index of the first as-of date on or after ``day + plus_days`` (n when there is none;
        null without a day)."""
        shifted = day + timedelta(days=plus_days) if plus_days else day
        found = pl.lit(self.dates).search_sorted(shifted, side="left").cast(pl.Int64)
        return pl.when(day.is_not_null()).then(found)

    def recent(self, rows: pl.LazyFrame, column: str, days: int) -> pl.LazyFrame:
        """Drop rows that no date's ``days``-day window holds (a backfill pass reads a year of
        events, and a pass of 13 weekly dates needs about 5 months of them)."""
        first: date = self.dates[0]  # ascending
        last: date = self.dates[-1]
        since = datetime.combine(first - timedelta(days=days - 1), datetime.min.time())
        until = datetime.combine(last + timedelta(days=1), datetime.min.time())
        return rows.filter(pl.col(column).is_between(since, until, closed="left"))

    def indices(self) -> pl.LazyFrame:
        """Every date index, as the column ``_i``."""
        return pl.LazyFrame({"_i": range(self.n)}, schema={"_i": pl.Int64})

    def keyed(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        """Turn ``(_acc, _i)`` keys back into ``(account_id, as_of)``."""
        dates = self.indices().with_columns(pl.lit(self.dates).alias("as_of"))
        return frame.join(self.ids.lazy(), on="_acc").join(dates, on="_i").drop("_acc", "_i")


def _running(parts: list[pl.LazyFrame], span: Span) -> pl.LazyFrame:
    """Sum every value column, at every date, over the rows whose ``[_lo, _hi)`` holds the date.

    Each part holds ``_acc``, ``_lo``, ``_hi`` and value columns of its own; the result has a
    row per account and date index with every part's columns.
    """
    deltas, values = [], []
    for rows in parts:
        schema = rows.collect_schema()
        cols = [c for c in schema.names() if c not in ("_acc", "_lo", "_hi")]
        values += cols
        # collected once: both ends of each interval read it
        live = (
            rows.filter(pl.col("_lo") < pl.col("_hi"))
            .select(
                "_acc",
                "_lo",
                "_hi",
                *[pl.col(c).cast(pl.Float64 if schema[c].is_float() else pl.Int64) for c in cols],
            )
            .collect()
            .lazy()
        )
        deltas.append(live.group_by("_acc", pl.col("_lo").alias("_i")).agg(pl.col(cols).sum()))
        deltas.append(
            live.filter(pl.col("_hi") < span.n)
            .group_by("_acc", pl.col("_hi").alias("_i"))
            .agg([(-pl.col(c).sum()).alias(c) for c in cols])
        )
    d = pl.concat(deltas, how="diagonal").group_by("_acc", "_i").agg(pl.col(values).sum())
    grid = d.select("_acc").unique().join(span.indices(), how="cross")
    return (
        grid.join(d, on=["_acc", "_i"], how="left")
        .sort("_acc", "_i")
        .with_columns(pl.col(values).fill_null(0).cum_sum().over("_acc"))
    )


def _islands(rows: pl.LazyFrame, key: str, name: str) -> pl.LazyFrame:
    """Merge each (account, key)'s overlapping intervals, so a key counts once per date."""
    # sorted by one hash of (account, key) and by (_lo, _hi) packed in one number: a two-key
    # sort is several times faster than four keys; with one window length _hi never falls as
    # _lo rises, so the row before holds the island's end
    ordered = (
        rows.filter(pl.col("_lo") < pl.col("_hi"))
        .select(
            "_acc",
            "_lo",
            "_hi",
            pl.struct("_acc", key).hash().alias("_who"),
            (pl.col("_lo") * 65_536 + pl.col("_hi")).alias("_at"),
        )
        .sort("_who", "_at")
        .collect()
        .lazy()
    )
    same = (pl.col("_who") == pl.col("_who").shift(1)) & (pl.col("_acc") == pl.col("_acc").shift(1))
    first = ~(same & (pl.col("_lo") <= pl.col("_hi").shift(1))).fill_null(False)
    last = first.shift(-1, fill_value=True)
    return pl.concat(
        [
            ordered.filter(first).select("_acc", "_lo"),
            ordered.filter(last).select("_hi", pl.lit(1).alias(name)),
        ],
        how="horizontal",
    )


def _current(rows: pl.LazyFrame, key: list[str], order: list[str]) -> pl.LazyFrame:
    """End each row's interval where the next row of its key (in ``order``) takes over."""
    same = pl.all_horizontal([pl.col(k).eq_missing(pl.col(k).shift(-1)) for k in key])
    nxt = pl.when(same).then(pl.col("_lo").shift(-1))
    return rows.sort(*key, *order).with_columns(
        pl.min_horizontal("_hi", nxt.fill_null(pl.col("_hi"))).alias("_hi")
    )


def _aged(span: Span, start: int, end: int, day: str = _DAY) -> list[pl.Expr]:
    """The dates on which ``day`` is ``start`` to ``end - 1`` days old, as ``[_lo, _hi)``."""
    return [span.index(pl.col(day), start).alias("_lo"), span.index(pl.col(day), end).alias("_hi")]


def _window(span: Span, day: str, days: int) -> list[pl.Expr]:
    """The dates whose ``days``-day window (ending on the date) holds ``day``."""
    return _aged(span, 0, days, day)


def active_on(as_of: pl.Expr) -> pl.Expr:
    """Is the account a customer on ``as_of`` (started, not yet churned)?"""
    started = pl.col("contract_start").is_null() | (pl.col("contract_start") <= as_of)
    # An account marked churned without a date cannot be placed in time; it is not scored.
    churned_by_then = (pl.col("churned_at") <= as_of) | (
        pl.col("churned_at").is_null() & (pl.col("status") == "churned")
    )
    return started & ~churned_by_then.fill_null(False)


def active_accounts(accounts: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """Return the accounts that are customers on ``as_of`` (started, not yet churned)."""
    return accounts.filter(active_on(pl.lit(as_of)))


def hashed_ids(events: pl.LazyFrame) -> pl.LazyFrame:
    """Replace the events' user and feature names by 64-bit hashes, unless they already are.

    Users and features are told apart by the hash: a collision inside one account (about
    n^2 / 2^65 for n ids) is far less likely than any data error. A backfill hashes its year
    of events once (smaller, and not hashed again by every pass); the result is the same.
    """
    schema = events.collect_schema()
    return events.with_columns(
        pl.col(c).hash() for c in ("user_id", "event") if schema[c] != pl.UInt64
    )


def usage_features(events: pl.LazyFrame, span: Span, days: int) -> pl.LazyFrame:
    """Active days and users, stickiness, breadth and trend from product events."""
    ev = (
        span.coded(
            span.recent(hashed_ids(events), "ts", 2 * days).select(
                "account_id", "user_id", "event", pl.col("ts").dt.date().alias(_DAY)
            )
        )
        .with_columns(*_window(span, _DAY, days))
        .collect()
        .lazy()
    )
    daily = (
        ev.group_by("_acc", _DAY)
        .agg(pl.len().alias("_n"), pl.col("user_id").n_unique())
        .collect()
        .lazy()
    )
    run = _running(
        [
            daily.select(
                "_acc",
                *_window(span, _DAY, days),
                pl.col("_n").alias("events_30d"),
                pl.col("user_id").alias("_dau_sum"),
                pl.lit(1).alias("active_days_30d"),
            ),
            # this window and the one before it together, for the trend
            daily.select("_acc", *_window(span, _DAY, 2 * days), pl.col("_n").alias("_n_60d")),
            _islands(ev.select("_acc", "user_id", "_lo", "_hi"), "user_id", "active_users_30d"),
            _islands(ev.select("_acc", "event", "_lo", "_hi"), "event", "feature_breadth_30d"),
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


def support_features(tickets: pl.LazyFrame, span: Span, days: int) -> pl.LazyFrame:
    """Ticket volume, open high/urgent tickets and resolution time as of each date."""
    t = (
        span.coded(
            tickets.select(
                "account_id",
                "priority",
                pl.col("opened_at").dt.date().alias(_DAY),
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
        span.index(pl.col(_DAY)).alias("_lo"),
        pl.coalesce(span.index(pl.col("_resolved")), pl.lit(span.n, pl.Int64)).alias("_hi"),
        pl.lit(1).alias("open_urgent_tickets"),
    )
    counts = _running(
        [t.select("_acc", *_window(span, _DAY, days), pl.lit(1).alias("tickets_90d")), urgent],
        span,
    )
    # a median does not run: each resolved ticket is listed at every date whose window holds it
    resolved = t.filter(pl.col("_resolved").is_not_null()).with_columns(
        pl.max_horizontal(span.index(pl.col(_DAY)), span.index(pl.col("_resolved"))).alias("_lo"),
        span.index(pl.col("_resolved"), days).alias("_hi"),
    )
    median = (
        resolved.filter(pl.col("_lo") < pl.col("_hi"))
        .select("_acc", "_h", pl.int_ranges("_lo", "_hi").alias("_i"))
        .explode("_i")
        .group_by("_acc", "_i")
        .agg(pl.col("_h").median().alias("median_resolution_hours"))
    )
    return counts.join(median, on=["_acc", "_i"], how="full", coalesce=True).select(
        "_acc",
        "_i",
        pl.col("tickets_90d").cast(pl.UInt32),
        pl.col("open_urgent_tickets").cast(pl.UInt32),
        "median_resolution_hours",
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
    responses: pl.LazyFrame, span: Span, days: int, ces_flip: tuple[float, float] | None
) -> pl.LazyFrame:
    """Account NPS (each respondent's latest answer), CSAT %, CES and participation."""
    r = (
        span.coded(responses.with_columns(pl.col("submitted_at").dt.date().alias(_DAY)))
        .with_columns(*_window(span, _DAY, days))
        .collect()  # once: the parts below are separate queries
        .lazy()
    )
    ces = pl.col("score")
    if ces_flip is not None:  # the config says lower CES is better: express it as ease
        ces = ces_flip[0] + ces_flip[1] - ces
    is_csat, is_ces = pl.col("survey") == "csat", pl.col("survey") == "ces"
    # each respondent's NPS answer holds until their next one or the end of its window
    who = pl.coalesce(pl.col("respondent_id"), pl.col("response_id")).alias("_who")
    nps = _current(
        r.filter(pl.col("survey") == "nps").with_columns(who),
        ["_acc", "_who"],
        ["submitted_at", "response_id"],
    )
    run = _running(
        [
            r.select(
                "_acc",
                "_lo",
                "_hi",
                pl.lit(1).alias("survey_responses"),
                is_csat.alias("_csat_n"),
                (is_csat & (pl.col("score") >= 4)).alias("_csat_ok"),
                is_ces.alias("_ces_n"),
                (pl.when(is_ces).then(ces).otherwise(0.0) * _FIXED).round().alias("_ces_sum"),
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
        pl.when(ces_n > 0).then(pl.col("_ces_sum") / _FIXED / ces_n).alias("ces_mean"),
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


def order_features(orders: pl.LazyFrame, span: Span, days: int) -> pl.LazyFrame:
    """Spend trend, repeat purchases, average order value and recency of the last order."""
    is_refund = pl.col("kind").fill_null("order") == "refund"
    signed = pl.when(is_refund).then(-pl.col("amount")).otherwise(pl.col("amount"))
    daily = (
        span.coded(
            orders.group_by("account_id", pl.col("ordered_at").dt.date().alias(_DAY)).agg(
                (~is_refund).sum().alias("_n"),
                (pl.col("amount").filter(~is_refund) * _FIXED).round().sum().alias("_amount"),
                (signed * _FIXED).round().sum().alias("_signed"),
            )
        )
        .collect()
        .lazy()
    )  # once: every part below reads it, each in its own query
    since = [span.index(pl.col(_DAY)).alias("_lo"), pl.lit(span.n, pl.Int64).alias("_hi")]
    # the last order holds until the next one: its day number runs through, not a sum
    last = _current(daily.filter(pl.col("_n") > 0).with_columns(since), ["_acc"], [_DAY])
    run = _running(
        [
            daily.select(
                "_acc",
                *_aged(span, 0, days),
                pl.col("_n").alias("orders_365d"),
                "_amount",
                pl.col("_signed").alias("spend_365d"),
            ),
            daily.select("_acc", *_aged(span, 0, 90), pl.col("_signed").alias("spend_90d")),
            daily.select("_acc", *_aged(span, 90, 180), pl.col("_signed").alias("spend_prev_90d")),
            # every account with an order (or refund) by D has a row: its sums are 0, not null
            daily.select("_acc", *since, pl.lit(1).alias("_days")),
            last.select(
                "_acc",
                "_lo",
                "_hi",
                pl.lit(1).alias("_has_last"),
                pl.col(_DAY).cast(pl.Int64).alias("_last_day"),
            ),
        ],
        span,
    )
    n = pl.col("orders_365d")
    money = [(pl.col(c) / _FIXED).alias(c) for c in ("spend_365d", "spend_90d", "spend_prev_90d")]
    last_day = pl.when(pl.col("_has_last") > 0).then(pl.col("_last_day").cast(pl.Date))
    as_of = pl.lit(span.dates).gather(pl.col("_i"))
    return (
        run.filter(pl.col("_days") > 0)
        .with_columns(money)
        .select(
            "_acc",
            "_i",
            n.cast(pl.UInt32),
            pl.when(n > 0).then(pl.col("_amount") / _FIXED / n).alias("avg_order_value"),
            "spend_365d",
            "spend_90d",
            "spend_prev_90d",
            pl.when(pl.col("spend_prev_90d") > 0)
            .then(pl.col("spend_90d") / pl.col("spend_prev_90d"))
            .alias("spend_trend"),
            (as_of - last_day).dt.total_days().cast(pl.Float64).alias("days_since_last_order"),
        )
    )


def outcome_features(outcomes: pl.LazyFrame, span: Span, days: int) -> pl.LazyFrame:
    """Goal attainment: mean over goals of the latest actual / target, capped at 2."""
    o = span.coded(
        outcomes.with_row_index("_row").with_columns(pl.col("measured_at").dt.date().alias(_DAY))
    ).with_columns(*_window(span, _DAY, days))
    ratio = (pl.col("actual") / pl.col("target")).clip(0, 2)
    latest = _current(o, ["_acc", "goal"], ["measured_at", "_row"]).with_columns(
        ratio.is_not_null().alias("_goals"), (ratio.fill_null(0.0) * _RATIO).round().alias("_ratio")
    )
    goals = _running([latest.select("_acc", "_lo", "_hi", "_goals", "_ratio")], span)
    return goals.select(
        "_acc",
        "_i",
        pl.when(pl.col("_goals") > 0)
        .then(pl.col("_ratio") / _RATIO / pl.col("_goals"))
        .alias("goal_attainment"),
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
    base = data["accounts"].lazy().join(as_of, how="cross").filter(active_on(pl.col("as_of")))
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
    out = base
    for p in parts:
        out = out.join(span.keyed(p), on=KEYS, how="left")
    zeros = [
        pl.col(c).fill_null(0)
        for ds, cols in _ZERO_WHEN_PRESENT.items()
        if ds in data
        for c in cols
    ]
    out = out.with_columns(zeros) if zeros else out
    derived = _derived(data)
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
