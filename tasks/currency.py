"""Amounts in the home currency: each row converted at the rate valid on its date (typed -> typed).

Rates come from the ``fx_rates`` dataset (``currency``, ``rate_to_home``, ``valid_from``); a row
takes the latest rate whose ``valid_from`` is on or before the row's date (an order's
``ordered_at``, a spend's day, an account's as-of date). A row in the home currency, or with
no currency, needs no rate. A row whose currency has no rate on its date cannot be counted
in any total: it is marked with that reason and validation quarantines it, so
``rows_read = rows_accepted + rows_quarantined`` still holds.

An account's ARR is a stock, not an event: it is validated in the currency it was exported in
and converted afterwards at the rate of the date a run is for (``accounts_on``), so each date of
a backfill takes its own record (``latest_by``: an account that moved from EUR to GBP) and its
own rate, exactly as a run of that date alone.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

import polars as pl

from tasks.schemas import ACCOUNTS
from tasks.sources.latest import pick_records
from tasks.sources.plan import REASON, ROW
from tasks.validate import ValidatedDataset, cast_failures

# per dataset: the column that dates a row (None: the as-of date), and its amounts
AMOUNTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "orders": (("ordered_at",), ("amount", "cost")),
    "accounts": ((), ("arr",)),
    "acquisition_spend": (("spent_at", "period_start"), ("amount",)),
}
_DAY, _RATE, _I, _WHY = "_fx_day", "_fx_rate", "_fx_i", "_fx_why"


def rate_table(fx: pl.DataFrame | None) -> pl.DataFrame:
    """Return the rates as (currency, valid_from, rate_to_home), sorted for an as-of join."""
    schema = {"currency": pl.String, "valid_from": pl.Date, "rate_to_home": pl.Float64}
    if fx is None:
        return pl.DataFrame(schema=schema)
    return (
        fx.select(
            pl.col("currency").str.strip_chars().str.to_uppercase(),
            pl.col("valid_from").cast(pl.Date),
            pl.col("rate_to_home").cast(pl.Float64),
        )
        .unique(["currency", "valid_from"], keep="last", maintain_order=True)
        .sort("valid_from", "currency")
    )


def _row_day(df: pl.DataFrame, dated_by: tuple[str, ...], as_of: date) -> pl.Expr:
    cols = [pl.col(c).cast(pl.Date) for c in dated_by if c in df.columns]
    return pl.coalesce(cols) if cols else pl.lit(as_of, pl.Date)


def _convert(
    df: pl.DataFrame, dataset: str, rates: pl.DataFrame, home: str, as_of: date
) -> pl.DataFrame:
    """Return ``df`` with its amounts in ``home`` and ``_WHY``: why a row has no rate (or null)."""
    dated_by, amounts = AMOUNTS[dataset]
    amounts = tuple(a for a in amounts if a in df.columns)
    cur = pl.col("currency").str.strip_chars().str.to_uppercase()
    keyed = (
        df.with_row_index(_I)
        .with_columns(_row_day(df, dated_by, as_of).alias(_DAY), cur.alias("_fx_cur"))
        .sort(_DAY, nulls_last=True)
    )
    joined = keyed.join_asof(
        rates.rename({"currency": "_fx_cur", "valid_from": _DAY, "rate_to_home": _RATE}),
        on=_DAY,
        by="_fx_cur",
        strategy="backward",
        check_sortedness=False,  # sorted by the day; the `by` groups keep that order
    ).sort(_I)
    native = pl.col("_fx_cur").is_null() | (pl.col("_fx_cur") == home)
    rate = pl.when(native).then(pl.lit(1.0)).otherwise(pl.col(_RATE))
    missing = rate.is_null() & pl.col(_DAY).is_not_null()
    why = pl.format(
        "currency: '{}' is not convertible: fx_rates has no {} rate to {} on or before {}",
        pl.col("_fx_cur"),
        pl.col("_fx_cur"),
        pl.lit(home),
        pl.col(_DAY).cast(pl.String),
    )
    return joined.with_columns(
        *[pl.when(missing).then(pl.col(a)).otherwise(pl.col(a) * rate).alias(a) for a in amounts],
        pl.when(rate.is_not_null() & pl.col("currency").is_not_null())
        .then(pl.lit(home))
        .otherwise(pl.col("currency"))
        .alias("currency"),
        pl.when(missing).then(why).alias(_WHY),
    ).select(*df.columns, _WHY)


def to_home(
    df: pl.DataFrame, dataset: str, rates: pl.DataFrame, home: str, as_of: date
) -> pl.DataFrame:
    """Convert a typed dataset's amounts to ``home``; mark rows without a rate for quarantine."""
    if dataset not in AMOUNTS or "currency" not in df.columns:
        return df
    return (
        _convert(df, dataset, rates, home, as_of)
        .select(
            pl.exclude(REASON, _WHY),
            pl.when(pl.col(_WHY).is_not_null())
            .then(pl.concat_str([REASON, _WHY], separator="; ", ignore_nulls=True))
            .otherwise(pl.col(REASON))
            .alias(REASON),
        )
        .select(df.columns)
    )


def accounts_on(
    v: ValidatedDataset, rates: pl.DataFrame, home: str, as_of: date
) -> ValidatedDataset:
    """Return the accounts a run of ``as_of`` sees, their ARR in ``home`` at that date's rate.

    ``v`` holds the accounts validated in the currency they were exported in, each accepted row
    with its source row (``ROW``). Every row a run of the date reads, record or superseded, is
    converted at the rate valid on ``as_of``; a row whose currency has no rate then is
    quarantined with that reason, and with a change log (``latest_by``) each account's record
    is picked again from the rest, so an account whose new currency has no rate yet keeps its
    previous record. A single run and each date of a backfill call this with their date, so
    both convert the same rows at the same rate.
    """
    pool = v.accepted
    if v.superseded is not None:
        pool = pl.concat([pool, v.superseded], how="vertical_relaxed")
    if "currency" not in pool.columns:
        return _drop_rows(v, v.accepted, v.superseded, v.quarantined, v.failed)
    conv = _convert(pool, "accounts", rates, home, as_of)
    missing = pl.col(_WHY).is_not_null()
    moved = conv.filter(missing).rename({_WHY: "reason"})
    moved = (
        moved.rename({ROW: "source_row"})
        if ROW in moved.columns
        else moved.with_columns(pl.lit(None, pl.Int64).alias("source_row"))
    )
    held = v.quarantined
    if "currency" in held.columns:  # rows bad for another reason: also say when they lack a rate
        held = _convert(held, "accounts", rates, home, as_of)
        whys = pl.concat([moved["reason"], held[_WHY].drop_nulls()])
        held = held.with_columns(
            pl.concat_str(["reason", _WHY], separator="; ", ignore_nulls=True).alias("reason")
        ).drop(_WHY)
    else:
        whys = moved["reason"]
    quarantined = pl.concat([held, moved], how="diagonal_relaxed").select(held.columns)
    kept = conv.filter(~missing).drop(_WHY)
    records, superseded = (kept, None) if v.superseded is None else pick_records(kept, ACCOUNTS)
    failed = v.failed + cast_failures(pl.DataFrame({REASON: whys}, schema={REASON: pl.String}))
    return _drop_rows(v, records, superseded, quarantined, failed)


def _drop_rows(
    v: ValidatedDataset,
    accepted: pl.DataFrame,
    superseded: pl.DataFrame | None,
    quarantined: pl.DataFrame,
    failed: list[dict[str, Any]],
) -> ValidatedDataset:
    def plain(df: pl.DataFrame) -> pl.DataFrame:
        return df.drop(ROW, strict=False)

    return replace(
        v,
        accepted=plain(accepted),
        superseded=None if superseded is None else plain(superseded),
        quarantined=quarantined,
        failed=failed,
    )
