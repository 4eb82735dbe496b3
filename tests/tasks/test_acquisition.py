"""Acquisition cost, CLV:CAC and the margin from data, against a hand computation."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl
import pytest

from tasks.acquisition import cac_kpis, gross_margin, spend_in_window

D = date(2026, 3, 31)  # a 90-day window: 2026-01-01 .. 2026-03-31

SPEND = pl.DataFrame(
    {
        "spent_at": [date(2026, 1, 10), date(2025, 12, 31), None, None],
        "period_start": [None, None, date(2026, 3, 1), date(2025, 12, 1)],
        "period_end": [None, None, date(2026, 3, 31), date(2026, 1, 31)],
        "amount": [1000.0, 5000.0, 3100.0, 620.0],
        "channel": ["ads", "ads", "events", "seo"],
    }
)
ACCOUNTS = pl.DataFrame(
    {
        "account_id": ["a", "b", "c", "d"],
        # a, b and c start in the window; d before it
        "contract_start": [
            date(2026, 1, 1),
            date(2026, 2, 14),
            date(2026, 3, 31),
            date(2025, 6, 1),
        ],
    }
)


def test_spend_counts_days_in_the_window_and_periods_pro_rata() -> None:
    # 1000 (Jan 10) + 0 (Dec 31 is outside) + 3100 (all of March) + 620 x 31/62 (January half)
    assert spend_in_window(SPEND, D, 90) == pytest.approx(4410.0)


def test_cac_and_clv_to_cac_by_hand() -> None:
    out = cac_kpis(SPEND, ACCOUNTS, 2940.0, D, 90)
    # 4410 / 3 new accounts = 1470; CLV 2940 / 1470 = 2
    assert out == {"cac": 1470.0, "cac_new_accounts": 3, "clv_to_cac": 2.0}


def test_without_spend_data_the_figures_are_null_not_zero() -> None:
    assert cac_kpis(None, ACCOUNTS, 2940.0, D, 90) == {
        "cac": None,
        "cac_new_accounts": None,
        "clv_to_cac": None,
    }
    # spend but no new account: no cost per account to state
    assert cac_kpis(SPEND, ACCOUNTS.head(0), 2940.0, D, 90)["cac"] is None


def test_gross_margin_comes_from_order_costs() -> None:
    orders = pl.DataFrame(
        {
            "ordered_at": [datetime(2026, 3, 1), datetime(2026, 3, 2), datetime(2026, 3, 3)],
            "amount": [100.0, 300.0, 50.0],
            "kind": ["order", "order", "refund"],  # the refund is not revenue
            "cost": [30.0, 70.0, None],
        }
    )
    assert gross_margin(orders, D, 365) == pytest.approx(1 - 100 / 400)  # 0.75
    assert gross_margin(orders.with_columns(pl.lit(None, pl.Float64).alias("cost")), D, 365) is None
