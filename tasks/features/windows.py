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

KEYS = ["account_id", "as_of"]
DAY = "_day"
# sums run in integers, so they are exact in any order: money in millionths, ratios (0-2) finer
FIXED = 1_000_000
RATIO = 1_000_000_000_000


@dataclass(frozen=True)
class Span:
    """The as-of dates of one pass and the accounts they score, both as integer codes."""

    dates: pl.Series  # distinct, ascending
    ids: pl.DataFrame  # account_id -> _acc

    @classmethod
    def of(cls, dates: Iterable[date], accounts: pl.DataFrame) -> Span:
        """Build the span of ``dates`` over the accounts of ``accounts``."""
        ids = accounts.select(pl.col("account_id").unique(maintain_order=True))
        return cls(
            pl.Series("as_of", sorted(set(dates)), dtype=pl.Date),
            ids.with_row_index("_acc"),
        )

    @property
    def n(self) -> int:
        """The number of as-of dates."""
        return self.dates.len()

    def coded(self, rows: pl.LazyFrame) -> pl.LazyFrame:
        """Replace ``account_id`` by its code; rows of unknown accounts drop out."""
        return rows.join(self.ids.lazy(), on="account_id", how="inner").drop("account_id")

    def index(self, day: pl.Expr, plus_days: int = 0) -> pl.Expr:
        """Return the index of the first as-of date on or after ``day + plus_days``.

        The index is n when there is none, and null without a day.
        """
        shifted = day + timedelta(days=plus_days) if plus_days else day
        found = pl.lit(self.dates).search_sorted(shifted, side="left").cast(pl.Int64)
        return pl.when(day.is_not_null()).then(found)

    def recent(self, rows: pl.LazyFrame, column: str, days: int) -> pl.LazyFrame:
        """Drop rows that no date's ``days``-day window holds.

        A backfill pass reads a year of events, and a pass of 13 weekly dates needs about 5
        months of them.
        """
        first: date = self.dates[0]  # ascending
        last: date = self.dates[-1]
        since = datetime.combine(first - timedelta(days=days - 1), datetime.min.time())
        until = datetime.combine(last + timedelta(days=1), datetime.min.time())
        return rows.filter(pl.col(column).is_between(since, until, closed="left"))

    def indices(self) -> pl.LazyFrame:
        """Every date index, as the column ``_i``."""
        return pl.LazyFrame({"_i": range(self.n)}, schema={"_i": pl.Int64})


def running_sum(parts: list[pl.LazyFrame], span: Span) -> pl.LazyFrame:
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


def median_since_resolved(
    rows: pl.LazyFrame, span: Span, days: int, value: str, name: str
) -> pl.LazyFrame:
    """Median ``value`` at each date of the rows resolved in its window (``_acc``, ``DAY``,
    ``_resolved`` columns; unresolved rows drop out).

    A median does not run: each resolved row is listed at every date whose window holds it.
    """
    resolved = rows.filter(pl.col("_resolved").is_not_null()).with_columns(
        pl.max_horizontal(span.index(pl.col(DAY)), span.index(pl.col("_resolved"))).alias("_lo"),
        span.index(pl.col("_resolved"), days).alias("_hi"),
    )
    return (
        resolved.filter(pl.col("_lo") < pl.col("_hi"))
        .select("_acc", value, pl.int_ranges("_lo", "_hi").alias("_i"))
        .explode("_i")
        .group_by("_acc", "_i")
        .agg(pl.col(value).median().alias(name))
    )


def islands(rows: pl.LazyFrame, key: str, name: str) -> pl.LazyFrame:
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


def current(rows: pl.LazyFrame, key: list[str], order: list[str]) -> pl.LazyFrame:
    """End each row's interval where the next row of its key (in ``order``) takes over."""
    same = pl.all_horizontal([pl.col(k).eq_missing(pl.col(k).shift(-1)) for k in key])
    nxt = pl.when(same).then(pl.col("_lo").shift(-1))
    return rows.sort(*key, *order).with_columns(
        pl.min_horizontal("_hi", nxt.fill_null(pl.col("_hi"))).alias("_hi")
    )


def aged(span: Span, start: int, end: int, day: str = DAY) -> list[pl.Expr]:
    """Return the dates on which ``day`` is ``start`` to ``end - 1`` days old, as ``[_lo, _hi)``."""
    return [span.index(pl.col(day), start).alias("_lo"), span.index(pl.col(day), end).alias("_hi")]


def in_window(span: Span, day: str, days: int) -> list[pl.Expr]:
    """Return the dates whose ``days``-day window (ending on the date) holds ``day``."""
    return aged(span, 0, days, day)


def active_on(as_of: pl.Expr) -> pl.Expr:
    """Return whether the account is a customer on ``as_of`` (started, not yet churned)."""
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
