"""Amounts in the home currency: each row converted at the rate valid on its date (typed -> typed).

Rates come from the ``fx_rates`` dataset (``currency``, ``rate_to_home``, ``valid_from``); a row
takes the latest rate whose ``valid_from`` is on or before the row's date (an order's
``ordered_at``, a spend's day, an account's as-of date). A row in the home currency, or with
no currency, needs no rate. A row whose currency has no rate on its date cannot be counted
in any total: it is marked with that reason and validation quarantines it, so
``rows_read = rows_accepted + rows_quarantined`` still holds.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from tasks.sources.plan import REASON

# per dataset: the column that dates a row (None: the as-of date), and its amounts
AMOUNTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "orders": (("ordered_at",), ("amount", "cost")),
    "accounts": ((), ("arr",)),
    "acquisition_spend": (("spent_at", "period_start"), ("amount",)),
}
_DAY, _RATE, _I = "_fx_day", "_fx_rate", "_fx_i"


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


def to_home(
    df: pl.DataFrame, dataset: str, rates: pl.DataFrame, home: str, as_of: date
) -> pl.DataFrame:
    """Convert a typed dataset's amounts to ``home``; mark rows without a rate for quarantine."""
    if dataset not in AMOUNTS or "currency" not in df.columns:
        return df
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
        pl.when(missing)
        .then(pl.concat_str([REASON, why], separator="; ", ignore_nulls=True))
        .otherwise(pl.col(REASON))
        .alias(REASON),
    ).select(df.columns)
