"""Amounts in the home currency at the rate valid on each row's date."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal

from tasks.config import parse_config
from tasks.currency import rate_table, to_home
from tasks.sources.plan import REASON, ROW
from tasks.validate import validate_dataset

# monthly rates to USD: EUR 1.10 then 1.20 from February; GBP 1.25 then 1.30 from March
RATES = rate_table(
    pl.DataFrame(
        {
            "currency": ["EUR", "EUR", "GBP", "gbp"],
            "rate_to_home": [1.10, 1.20, 1.25, 1.30],
            "valid_from": [date(2026, 1, 1), date(2026, 2, 1), date(2026, 1, 1), date(2026, 3, 1)],
        }
    )
)


def _orders() -> pl.DataFrame:
    return pl.DataFrame(
        {
            ROW: [1, 2, 3, 4, 5, 6],
            "order_id": ["o1", "o2", "o3", "o4", "o5", "o6"],
            "account_id": ["a", "a", "b", "b", "c", "c"],
            "ordered_at": [
                datetime(2026, 1, 15),  # EUR at January's 1.10
                datetime(2026, 2, 1, 9),  # EUR at February's 1.20 (valid from that day)
                datetime(2026, 2, 20),  # GBP at January's 1.25: March's rate is not yet valid
                datetime(2026, 3, 2),  # GBP at 1.30 (the rate file wrote it in lower case)
                datetime(2026, 3, 5),  # USD: the home currency needs no rate
                datetime(2026, 3, 6),  # JPY: no rate at all -> quarantined
            ],
            "amount": [100.0, 100.0, 200.0, 10.0, 50.0, 1000.0],
            "currency": ["EUR", "eur", "GBP", "GBP", "USD", "JPY"],
            "kind": ["order"] * 6,
            "cost": [40.0, None, 100.0, 5.0, 20.0, 1.0],
            REASON: pl.Series([None] * 6, dtype=pl.String),
        }
    )


def test_orders_in_three_currencies_convert_at_the_rate_of_their_date() -> None:
    out = to_home(_orders(), "orders", RATES, "USD", date(2026, 3, 31))
    expected = pl.DataFrame(
        {
            "amount": [110.0, 120.0, 250.0, 13.0, 50.0, 1000.0],  # JPY left as read
            "cost": [44.0, None, 125.0, 6.5, 20.0, 1.0],
            "currency": ["USD", "USD", "USD", "USD", "USD", "JPY"],
        }
    )
    assert_frame_equal(out.select("amount", "cost", "currency"), expected, rel_tol=1e-12)
    assert out[REASON].to_list()[:5] == [None] * 5
    assert out[REASON][5] == (
        "currency: 'JPY' is not convertible: fx_rates has no JPY rate to USD on or before 2026-03-06"
    )
    assert out.columns == _orders().columns


def test_a_missing_rate_quarantines_exactly_those_rows_and_counts_reconcile() -> None:
    cfg = parse_config({"sources": {"accounts": {"uri": "a.csv"}}}, Path())
    typed = to_home(_orders(), "orders", RATES, "USD", date(2026, 3, 31))
    v = validate_dataset(typed, "orders", cfg, datetime(2026, 4, 1), account_ids=["a", "b", "c"])
    assert v.quarantined["order_id"].to_list() == ["o6"]
    assert v.accepted["amount"].sum() == 110.0 + 120.0 + 250.0 + 13.0 + 50.0  # 543 USD
    s = v.summary()
    assert s["rows_read"] == s["rows_accepted"] + s["rows_quarantined"] == 6
    [failed] = [f for f in s["failed_expectations"] if f["column"] == "currency"]
    assert failed["count"] == 1


def test_accounts_arr_converts_at_the_as_of_rate() -> None:
    accounts = pl.DataFrame(
        {
            ROW: [1, 2, 3],
            "account_id": ["a", "b", "c"],
            "arr": [1000.0, 1000.0, None],
            "currency": ["EUR", None, "GBP"],  # no currency: already in the home currency
            REASON: pl.Series([None] * 3, dtype=pl.String),
        }
    )
    out = to_home(accounts, "accounts", RATES, "USD", date(2026, 2, 10))
    expected = accounts.with_columns(
        pl.Series("arr", [1200.0, 1000.0, None]), pl.Series("currency", ["USD", None, "USD"])
    )
    assert_frame_equal(out, expected)
