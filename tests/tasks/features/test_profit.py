"""Each account's profit contribution from orders.cost: a financial measure to choose."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal

from tasks.config import parse_config
from tasks.features.build import build_features
from tasks.schemas import ACCOUNTS, ORDERS


def test_profit_is_spend_minus_cost_and_null_without_any_cost() -> None:
    accounts = pl.DataFrame(
        {"account_id": ["a", "b"], "name": ["A", "B"], "status": ["active", "active"]}
    ).with_columns(
        pl.lit(None).alias(c) for c in ACCOUNTS.schema if c not in ("account_id", "name", "status")
    )
    orders = pl.DataFrame(
        {
            "order_id": ["1", "2", "3", "4"],
            "account_id": ["a", "a", "a", "b"],
            "ordered_at": [
                datetime(2026, 3, 1),
                datetime(2026, 3, 2),
                datetime(2026, 3, 3),
                datetime(2026, 3, 1),
            ],
            "amount": [100.0, 300.0, 50.0, 80.0],
            "kind": ["order", "order", "refund", "order"],
            "cost": [30.0, 70.0, None, None],  # b's order has no cost
        }
    ).with_columns(pl.lit("USD").alias("currency"))
    cfg = parse_config({"sources": {"accounts": {"uri": "a.csv"}}}, Path())
    feats = build_features(
        {"accounts": accounts.cast(ACCOUNTS.schema), "orders": orders.cast(ORDERS.schema)},
        cfg,
        date(2026, 3, 31),
    )
    # a: spend 100 + 300 - 50 (refund) = 350, minus cost 100 = 250; b: no cost, no profit
    assert_frame_equal(
        feats.select("account_id", "spend_365d", "profit_365d"),
        pl.DataFrame(
            {"account_id": ["a", "b"], "spend_365d": [350.0, 80.0], "profit_365d": [250.0, None]}
        ),
    )
