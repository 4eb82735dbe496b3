"""Tests for the BG/NBD + Gamma-Gamma CLV module, including the published CDNOW figures."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from flows.cli.clv import clv_command, format_summary
from tasks.clv.model import (
    BGNBDParams,
    ClvResult,
    GammaGammaParams,
    clv,
    expected_purchases,
    expected_spend,
    fit_bgnbd,
    fit_clv,
    fit_gamma_gamma,
    p_alive,
    subscription_clv,
)
from tasks.clv.rfm import read_cdnow, read_orders, rfm_from_orders
from tasks.errors import ChsError

CDNOW = Path(__file__).parents[2] / "data" / "CDNOW_sample.txt"  # see tests/data/README.md
CDNOW_CALIBRATION_END = date(1997, 9, 30)
PARAMS_KEYS = {"r", "alpha", "a", "b", "p", "q", "gamma", "log_likelihood"}


def _orders(rows: list[tuple[str, str, datetime, float, str]]) -> pl.DataFrame:
    """Build a canonical orders frame from (order_id, account_id, ordered_at, amount, kind)."""
    return pl.DataFrame(
        rows,
        schema={
            "order_id": pl.String,
            "account_id": pl.String,
            "ordered_at": pl.Datetime("us"),
            "amount": pl.Float64,
            "kind": pl.String,
        },
        orient="row",
    )


@pytest.fixture
def small_orders() -> pl.DataFrame:
    """Two accounts: A buys on four days (two orders on day one), B buys once."""
    return _orders(
        [
            ("o1", "A", datetime(2024, 1, 1, 10), 10.0, "order"),
            ("o2", "A", datetime(2024, 1, 1, 15), 5.0, "order"),
            ("o3", "A", datetime(2024, 1, 8, 9), 20.0, "order"),
            ("o4", "A", datetime(2024, 1, 22, 18), 30.0, "order"),
            ("o5", "B", datetime(2024, 1, 15, 12), 40.0, "order"),
        ]
    )


def _row(rfm: pl.DataFrame, account: str) -> dict:
    """Return one account's RFM row as a dict."""
    return rfm.filter(pl.col("account_id") == account).row(0, named=True)


# ---------------------------------------------------------------------------- RFM summary


def test_rfm_values_hand_computed(small_orders: pl.DataFrame) -> None:
    rfm = rfm_from_orders(small_orders, date(2024, 1, 29))
    a, b = _row(rfm, "A"), _row(rfm, "B")
    # A: purchase days Jan 1, 8, 22 -> 2 repeats, last 21 days after first, 28 days of age.
    assert a["frequency"] == 2
    assert a["recency"] == pytest.approx(3.0)
    assert a["T"] == pytest.approx(4.0)
    assert a["monetary_value"] == pytest.approx(25.0)  # mean of the repeats 20 and 30
    assert (b["frequency"], b["recency"], b["monetary_value"]) == (0, 0.0, 0.0)
    assert b["T"] == pytest.approx(2.0)


def test_same_day_orders_merge_into_one_transaction(small_orders: pl.DataFrame) -> None:
    later_same_day = small_orders.with_columns(
        pl.when(pl.col("order_id") == "o3")
        .then(pl.lit(datetime(2024, 1, 22, 8)))
        .otherwise(pl.col("ordered_at"))
        .alias("ordered_at")
    )
    a = _row(rfm_from_orders(later_same_day, date(2024, 1, 29)), "A")
    assert a["frequency"] == 1
    assert a["monetary_value"] == pytest.approx(50.0)  # 20 + 30 on Jan 22 summed


def test_refunds_are_ignored(small_orders: pl.DataFrame) -> None:
    refunds = _orders(
        [
            ("r1", "A", datetime(2024, 1, 15), -20.0, "refund"),
            ("r2", "C", datetime(2024, 1, 10), -5.0, "refund"),
        ]
    )
    rfm = rfm_from_orders(pl.concat([small_orders, refunds]), date(2024, 1, 29))
    assert rfm.equals(rfm_from_orders(small_orders, date(2024, 1, 29)))
    assert "C" not in rfm["account_id"].to_list()


def test_orders_after_calibration_end_are_ignored(small_orders: pl.DataFrame) -> None:
    extra = _orders(
        [
            ("o6", "A", datetime(2024, 1, 29, 23), 7.0, "order"),
            ("o7", "A", datetime(2024, 2, 5), 9.0, "order"),
            ("o8", "D", datetime(2024, 2, 5), 9.0, "order"),
        ]
    )
    orders = pl.concat([small_orders, extra])
    # A date counts its whole day: the Jan 29 23:00 order is in, Feb 5 is out.
    by_date = rfm_from_orders(orders, date(2024, 1, 29))
    assert _row(by_date, "A")["frequency"] == 3
    assert "D" not in by_date["account_id"].to_list()
    # A datetime is a point in time: the 23:00 order comes after noon.
    by_instant = rfm_from_orders(orders, datetime(2024, 1, 29, 12))
    assert _row(by_instant, "A")["frequency"] == 2
    assert _row(by_instant, "A")["T"] == pytest.approx(4.0 + 0.5 / 7)


def test_time_unit_days_scales_recency_and_t(small_orders: pl.DataFrame) -> None:
    a = _row(rfm_from_orders(small_orders, date(2024, 1, 29), time_unit_days=1.0), "A")
    assert (a["recency"], a["T"]) == (pytest.approx(21.0), pytest.approx(28.0))


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_read_orders_formats_round_trip(
    small_orders: pl.DataFrame, tmp_path: Path, suffix: str
) -> None:
    path = tmp_path / f"orders{suffix}"
    if suffix == ".csv":
        small_orders.write_csv(path)
    elif suffix == ".parquet":
        small_orders.write_parquet(path)
    else:
        small_orders.write_ndjson(path)
    assert read_orders(path).equals(small_orders)


def test_read_cdnow_maps_columns(tmp_path: Path) -> None:
    path = tmp_path / "cdnow.txt"
    path.write_text(" 00004 0001 19970101  2   29.33\r\n 00004 0001 19970118  2   29.73\r\n")
    orders = read_cdnow(path)
    assert orders["account_id"].to_list() == ["00004", "00004"]
    assert orders["ordered_at"].to_list() == [datetime(1997, 1, 1), datetime(1997, 1, 18)]
    assert orders["amount"].to_list() == [29.33, 29.73]
    assert orders["order_id"].n_unique() == 2


# ---------------------------------------------------------------------------- model formulas

_BG = BGNBDParams(r=0.243, alpha=4.414, a=0.793, b=2.426, log_likelihood=0.0)
_GG = GammaGammaParams(p=6.25, q=3.74, gamma=15.44, log_likelihood=0.0)


def test_formulas_edge_cases() -> None:
    x, t_x, age = np.array([0.0, 3.0]), np.array([0.0, 10.0]), np.array([20.0, 20.0])
    assert p_alive(_BG, x, t_x, age)[0] == 1.0  # no repeats: BG/NBD cannot have seen a dropout
    assert np.all(expected_purchases(_BG, 0.0, x, t_x, age) == 0.0)
    population_mean = _GG.p * _GG.gamma / (_GG.q - 1)
    assert expected_spend(_GG, x, np.array([0.0, 30.0]))[0] == pytest.approx(population_mean)


def test_clv_without_discount_is_spend_times_purchases() -> None:
    x, t_x, age, m = (
        np.array(v) for v in ([0.0, 2.0, 5.0], [0, 30.43, 12.0], [38.86] * 3, [0, 20, 40])
    )
    value = clv(_BG, _GG, x, t_x, age, m, 26.5, annual_discount_rate=0.0, margin=0.3)
    expected = 0.3 * expected_spend(_GG, x, m) * expected_purchases(_BG, 26.5, x, t_x, age)
    assert value == pytest.approx(expected)
    discounted = clv(_BG, _GG, x, t_x, age, m, 26.5, annual_discount_rate=0.2, margin=0.3)
    assert np.all(discounted < value)


def test_subscription_clv() -> None:
    assert subscription_clv(1000.0, 0.8, 0.02) == pytest.approx(40_000.0)
    assert subscription_clv(1000.0, 0.8, 0.0) is None
    assert subscription_clv(1000.0, 0.8, None) is None


# ---------------------------------------------------------------------------- errors


def test_empty_orders_raise_chs_error(small_orders: pl.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(ChsError, match="no orders"):
        fit_clv(small_orders.clear(), date(2024, 1, 29))
    path = tmp_path / "orders.csv"
    small_orders.clear().write_csv(path)
    with pytest.raises(ChsError, match="no orders"):
        clv_command(path, date(2024, 1, 29), tmp_path / "out")


def test_no_repeat_buyers_raise_chs_error(tmp_path: Path) -> None:
    one_each = _orders(
        [(f"o{i}", f"acct{i}", datetime(2024, 1, 1 + i), 10.0, "order") for i in range(20)]
    )
    path = tmp_path / "orders.parquet"
    one_each.write_parquet(path)
    with pytest.raises(ChsError, match="Too few repeat buyers"):
        clv_command(path, date(2024, 3, 1), tmp_path / "out")
    with pytest.raises(ChsError, match="Too few repeat buyers"):
        fit_gamma_gamma(np.zeros(20), np.zeros(20))


def test_degenerate_data_raise_chs_error_not_nonsense() -> None:
    # Identical spend for everyone: the likelihood grows without bound as p and q run away.
    with pytest.raises(ChsError, match="did not converge"):
        fit_gamma_gamma(np.array([1.0, 2, 3, 1, 2, 4]), np.full(6, 10.0))


def test_missing_column_raises_chs_error(small_orders: pl.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    small_orders.drop("amount").write_csv(path)
    with pytest.raises(ChsError, match="amount"):
        read_orders(path)


# ---------------------------------------------------------------------------- CDNOW


@pytest.fixture(scope="session")
def cdnow_path() -> Path:
    """Return CDNOW_sample.txt as shipped in tests/data (taken from the lifetimes 0.11.3 wheel)."""
    return CDNOW


@pytest.fixture(scope="session")
def cdnow_fit(cdnow_path: Path) -> ClvResult:
    """Fit both models on CDNOW with the published 39-week calibration period."""
    return fit_clv(read_cdnow(cdnow_path), CDNOW_CALIBRATION_END, horizon_weeks=39.0)


def test_cdnow_rfm_matches_published_summary(cdnow_fit: ClvResult) -> None:
    customers = cdnow_fit.customers
    assert customers.height == 2357
    assert int((customers["frequency"] > 0).sum()) == 946
    assert int(customers["frequency"].sum()) == 2457
    first = customers.filter(pl.col("account_id") == "00004").row(0, named=True)
    assert (first["frequency"], round(first["recency"], 2), round(first["T"], 2)) == (
        2,
        30.43,
        38.86,
    )


def test_cdnow_bgnbd_reproduces_fader_hardie_lee_2005(cdnow_fit: ClvResult) -> None:
    bg = cdnow_fit.bgnbd
    assert bg.r == pytest.approx(0.243, rel=5e-3)
    assert bg.alpha == pytest.approx(4.414, rel=5e-3)
    assert bg.a == pytest.approx(0.793, rel=5e-3)
    assert bg.b == pytest.approx(2.426, rel=5e-3)
    assert bg.log_likelihood == pytest.approx(-9582.4, abs=0.5)


def test_cdnow_gamma_gamma_reproduces_fader_hardie_2013(cdnow_fit: ClvResult) -> None:
    # The published figures come from the unrounded mean of the same-day-merged repeat
    # transactions (lifetimes' convention); rounding the means to cents gives gamma = 15.45.
    gg = cdnow_fit.gamma_gamma
    assert gg.p == pytest.approx(6.25, rel=5e-3)
    assert gg.q == pytest.approx(3.74, rel=5e-3)
    assert gg.gamma == pytest.approx(15.44, rel=5e-3)


def test_cdnow_conditional_expectation(cdnow_fit: ClvResult) -> None:
    assert expected_purchases(cdnow_fit.bgnbd, 39.0, 2, 30.43, 38.86) == pytest.approx(
        1.226, abs=5e-4
    )


def test_fit_is_independent_of_input_type(cdnow_fit: ClvResult) -> None:
    c = cdnow_fit.customers
    bg = fit_bgnbd(c["frequency"], c["recency"], c["T"])
    assert bg.log_likelihood == pytest.approx(cdnow_fit.bgnbd.log_likelihood, abs=1e-3)


def test_cdnow_holdout_comparison(cdnow_fit: ClvResult) -> None:
    holdout = cdnow_fit.holdout
    assert holdout is not None
    assert holdout.length_weeks == pytest.approx(39.0)
    assert holdout.customers.height == 2357
    # 1,882 repeat transactions (distinct customer-days) in weeks 40-78; BG/NBD predicts ~1,653.
    assert holdout.actual_total == 1882
    assert holdout.predicted_total == pytest.approx(1653.4, abs=1.0)


def test_clv_command_writes_params_and_customers(cdnow_path: Path, tmp_path: Path) -> None:
    summary = clv_command(cdnow_path, CDNOW_CALIBRATION_END, tmp_path)
    params = json.loads((tmp_path / "clv_params.json").read_text())
    assert params.keys() >= PARAMS_KEYS
    assert params["log_likelihood"] == pytest.approx(-9582.4, abs=0.5)
    assert params["holdout"]["actual_total"] == 1882
    customers = pl.read_csv(
        tmp_path / "clv_customers.csv", schema_overrides={"account_id": pl.String}
    )
    assert customers.height == 2357
    assert set(customers.columns) >= {
        "account_id",
        "frequency",
        "recency",
        "T",
        "p_alive",
        "expected_purchases",
        "expected_spend",
        "clv",
        "holdout_actual",
        "holdout_predicted",
    }
    text = format_summary(summary)
    assert "r=0.243 alpha=4.41 a=0.793 b=2.43" in text
    assert "Holdout (39 weeks): predicted 1653 vs actual 1882" in text
