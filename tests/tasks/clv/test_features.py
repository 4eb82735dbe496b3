"""P(alive) and expected purchases as account features, point in time."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import polars as pl

from tasks.clv.features import purchase_features


def _orders(n: int = 600, seed: int = 1) -> pl.DataFrame:
    """Simulate the BG/NBD story: Poisson buying at a gamma rate, dropping out after a purchase."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        rate = rng.gamma(1.5, 1 / 20)  # purchases per day
        spend = rng.gamma(4.0, 10.0)  # this customer's typical basket
        drop = rng.beta(1.0, 4.0)
        day = rng.uniform(0, 60)
        k = 0
        while day < 365:
            rows.append(
                (
                    f"o{i}-{k}",
                    f"a{i:04d}",
                    datetime(2025, 1, 1) + timedelta(days=float(day)),
                    float(rng.gamma(8.0, spend / 8.0)),
                )
            )
            k += 1
            if rng.random() < drop:
                break
            day += rng.exponential(1 / rate)
    return pl.DataFrame(
        rows, schema=["order_id", "account_id", "ordered_at", "amount"], orient="row"
    )


def test_recent_buyers_have_higher_p_alive_than_lapsed_ones() -> None:
    as_of = date(2025, 12, 31)
    f = purchase_features(_orders(), as_of)
    last = (
        _orders()
        .group_by("account_id")
        .agg(pl.col("ordered_at").max().alias("last"), pl.len().alias("n"))
    )
    j = f.join(last, on="account_id").filter(pl.col("n") >= 3)
    recent = j.filter(pl.col("last") >= datetime(2025, 11, 1))
    lapsed = j.filter(pl.col("last") < datetime(2025, 5, 1))
    assert recent.height > 10
    assert lapsed.height > 10
    assert recent["p_alive"].mean() > lapsed["p_alive"].mean() + 0.3  # type: ignore[operator]
    assert recent["expected_purchases_90d"].mean() > lapsed["expected_purchases_90d"].mean()  # type: ignore[operator]
    assert f["p_alive"].is_between(0, 1).all()
    assert f["clv_bgnbd"].null_count() == 0  # spend varies by customer here, so Gamma-Gamma fits


def test_orders_after_the_as_of_date_change_nothing() -> None:
    orders = _orders()
    as_of = date(2025, 6, 30)
    cut = orders.filter(pl.col("ordered_at") <= datetime(2025, 6, 30, 23, 59, 59))
    assert purchase_features(orders, as_of).equals(purchase_features(cut, as_of))


def test_too_few_repeat_buyers_gives_nulls_not_numbers() -> None:
    one_each = _orders().group_by("account_id").head(1)
    f = purchase_features(one_each, date(2025, 12, 31))
    assert f.height > 0
    assert f["p_alive"].null_count() == f.height
