"""Amounts in the home currency at the rate valid on each row's date."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tasks.backfill import SpanWindow, as_of_slice
from tasks.config import Config, parse_config
from tasks.currency import accounts_on, rate_table, to_home
from tasks.sources.plan import REASON, ROW, Window
from tasks.sources.read import extract_dataset
from tasks.validate import ValidatedDataset, validate_dataset

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


RUN = datetime(2026, 4, 1, 12)

# A CRM history export: a moves from EUR to GBP on 15 February; c to JPY (no rate) on 20 February
HISTORY = """\
account_id,name,arr,currency,snapshot
a,Acme,1000,EUR,2026-01-01
a,Acme,900,GBP,2026-02-15
c,Cobalt,2000,EUR,2026-01-01
c,Cobalt,3000,JPY,2026-02-20
"""


def _single(cfg: Config, day: date) -> ValidatedDataset:
    raw = extract_dataset("accounts", cfg, Window(day, RUN))
    native = validate_dataset(raw, "accounts", cfg, RUN, keep_rows=True)
    return accounts_on(native, RATES, "USD", day)


def test_an_accounts_currency_change_converts_each_dates_record_at_its_rate(
    tmp_path: Path,
) -> None:
    (tmp_path / "accounts.csv").write_text(HISTORY)
    cfg = parse_config(
        {"sources": {"accounts": {"uri": "accounts.csv", "latest_by": "snapshot"}}}, tmp_path
    )
    before, after = _single(cfg, date(2026, 2, 10)), _single(cfg, date(2026, 3, 2))
    arr = {
        day: dict(v.accepted.select("account_id", "arr").iter_rows())
        for day, v in (("before", before), ("after", after))
    }
    # 10 Feb: both EUR records at February's 1.20. 2 Mar: a's GBP record at March's 1.30; c's
    # JPY record has no rate, so c keeps its EUR record, at February's 1.20 still
    assert arr == {
        "before": pytest.approx({"a": 1200.0, "c": 2400.0}),
        "after": pytest.approx({"a": 1170.0, "c": 2400.0}),
    }
    assert set(after.accepted["currency"]) == {"USD"}
    assert ROW not in after.accepted.columns
    assert after.quarantined.select("account_id", "currency", "source_row").rows() == [
        ("c", "JPY", 4)
    ]
    assert after.quarantined["reason"].item() == (
        "currency: 'JPY' is not convertible: fx_rates has no JPY rate to USD on or before 2026-03-02"
    )
    s = after.summary()
    assert (s["rows_read"], s["rows_accepted"], s["rows_quarantined"]) == (4, 3, 1)
    assert [(f["column"], f["count"]) for f in s["failed_expectations"]] == [("currency", 1)]
    assert before.quarantined.is_empty()
    assert before.summary()["rows_read"] == 2

    # a backfill validates the span once as exported; each date's slice equals its single run
    span = extract_dataset("accounts", cfg, SpanWindow(date(2026, 3, 2), RUN, date(2026, 2, 10)))
    whole = {"accounts": validate_dataset(span, "accounts", cfg, RUN, keep_rows=True)}
    whole["fx_rates"] = ValidatedDataset("fx_rates", RATES, RATES.clear(), [])
    for day, alone in ((date(2026, 2, 10), before), (date(2026, 3, 2), after)):
        sliced = as_of_slice(whole, day, RUN, cfg)["accounts"]
        assert sliced.summary() == alone.summary(), day
        assert_frame_equal(sliced.accepted.sort("account_id"), alone.accepted.sort("account_id"))
        assert_frame_equal(sliced.quarantined, alone.quarantined)
