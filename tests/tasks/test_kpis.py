"""Metric formulas of SPEC section 4, checked on hand-computed vectors."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tasks.config import parse_config
from tasks.features.build import build_features
from tasks.features.surveys import csat_pct_of, nps_of
from tasks.features.windows import active_accounts
from tasks.kpis import (
    churn_kpis,
    clv_kpis,
    nps_ci95,
    repeat_purchase_kpis,
    resolution_kpis,
    survey_kpis,
)

CFG = parse_config({"sources": {"accounts": {"uri": "a.csv"}}}, Path())
AS_OF = date(2026, 3, 31)


def _nps(scores: list[float]) -> float:
    return pl.select(nps_of(pl.lit(pl.Series(scores, dtype=pl.Float64)))).item()


def test_nps_of_mixed_answers() -> None:
    # promoters 9, 10 (2/6); detractors 5, 1, 0 (3/6); passive 7 -> (2 - 3) / 6 = -16.7
    assert _nps([9, 10, 5, 1, 0, 7]) == pytest.approx(-16.6667, abs=1e-3)


def test_nps_of_shares() -> None:
    # 10 detractors, 30 passives, 60 promoters -> 60% - 10% = 50
    assert _nps([3] * 10 + [8] * 30 + [10] * 60) == pytest.approx(50.0)


def test_nps_without_answers_is_null() -> None:
    assert _nps([]) is None


def test_csat_pct() -> None:
    # 4 and 5 count as satisfied: 3 of 5 answers -> 60 %
    assert pl.select(csat_pct_of(pl.lit(pl.Series([5.0, 4, 3, 4, 1])))).item() == pytest.approx(
        60.0
    )


def test_nps_ci_narrows_with_n() -> None:
    small = nps_ci95(pl.Series([10.0] * 6 + [0.0] * 6))
    large = nps_ci95(pl.Series([10.0] * 600 + [0.0] * 600))
    assert small is not None
    assert large is not None
    assert small[1] - small[0] > 5 * (large[1] - large[0])
    assert small[0] < 0 < small[1]


def _responses() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "response_id": ["r1", "r2", "r3", "r4", "r5", "r6", "r7"],
            "account_id": ["a", "a", "a", "b", "b", "b", "a"],
            "survey": ["nps", "nps", "nps", "csat", "csat", "ces", "nps"],
            "score": [0.0, 10.0, 9.0, 5.0, 2.0, 6.0, 10.0],
            "submitted_at": [datetime(2026, 3, d) for d in (1, 2, 3, 4, 5, 6)]
            + [datetime(2026, 4, 2)],
            "respondent_id": ["u1", "u1", "u2", "u3", "u4", "u5", "u2"],
            "comment": [None] * 7,
        }
    )


def test_survey_kpis_portfolio() -> None:
    k = survey_kpis(_responses(), AS_OF, 90, CFG)
    # r7 is after the as-of date and ignored; NPS over 0, 10, 9 -> (2 - 1) / 3 = 33.3
    assert k["nps"] == pytest.approx(33.33, abs=0.01)
    assert k["nps_n"] == 3
    assert k["csat_pct"] == pytest.approx(50.0)  # 5 satisfied, 2 not
    assert (k["csat_n"], k["ces_mean"], k["ces_n"]) == (2, 6.0, 1)
    assert k["ces_direction"] == "higher_is_easier"


def test_account_nps_uses_each_respondents_latest_answer() -> None:
    accounts = pl.DataFrame({"account_id": ["a", "b"], "name": ["A", "B"]}).with_columns(
        pl.lit(None, pl.Date).alias("contract_start"),
        pl.lit(None, pl.Date).alias("churned_at"),
        pl.lit("active").alias("status"),
        pl.lit(None, pl.Date).alias("renewal_date"),
        pl.lit(10).alias("seats"),
    )
    f = build_features({"accounts": accounts, "survey_responses": _responses()}, CFG, AS_OF)
    a = f.filter(pl.col("account_id") == "a").row(0, named=True)
    # u1 answered 0 then 10 (latest 10: promoter), u2 answered 9 -> 2 promoters of 2 -> 100
    assert a["nps_account"] == pytest.approx(100.0)
    assert a["nps_respondents"] == 2
    b = f.filter(pl.col("account_id") == "b").row(0, named=True)
    assert b["nps_account"] is None  # no NPS answers: no data, not 0
    assert b["csat_pct"] == pytest.approx(50.0)


def _accounts() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "account_id": ["a", "b", "c", "d", "e"],
            "contract_start": [
                date(2025, 1, 1),
                date(2025, 1, 1),
                date(2025, 1, 1),
                date(2026, 3, 1),
                date(2025, 6, 1),
            ],
            "churned_at": [None, date(2026, 2, 15), None, None, date(2025, 12, 1)],
            "status": ["active", "churned", "active", "active", "churned"],
            "arr": [100.0, 50.0, 200.0, 40.0, 10.0],
        }
    )


def test_active_accounts_point_in_time() -> None:
    # d started after the date, e churned before it; b churned after it and still counts
    ids = active_accounts(_accounts(), date(2026, 1, 1))["account_id"].to_list()
    assert ids == ["a", "b", "c"]


def test_logo_churn_and_revenue_retention() -> None:
    start_arr = pl.DataFrame({"account_id": ["a", "b", "c"], "arr": [80.0, 50.0, 250.0]})
    k = churn_kpis(_accounts(), AS_OF, 90, start_arr)
    # active at 2025-12-31: a, b, c; b churned in the window -> 1 / 3
    assert k["logo_churn_rate"] == pytest.approx(0.3333, abs=1e-4)
    assert k["retention_rate"] == pytest.approx(0.6667, abs=1e-4)
    # start 380; churned 50; contraction c 250 -> 200 = 50; expansion a 80 -> 100 = 20
    assert k["gross_revenue_retention"] == pytest.approx((380 - 50 - 50) / 380, abs=1e-4)
    assert k["net_revenue_retention"] == pytest.approx((380 - 50 - 50 + 20) / 380, abs=1e-4)


def test_resolution_hours() -> None:
    t = pl.DataFrame(
        {
            "opened_at": [
                datetime(2026, 3, 1),
                datetime(2026, 3, 2),
                datetime(2026, 3, 3),
                datetime(2025, 1, 1),
            ],
            "resolved_at": [
                datetime(2026, 3, 1, 10),
                datetime(2026, 3, 3),
                None,
                datetime(2025, 1, 2),
            ],
        }
    )
    k = resolution_kpis(t, AS_OF, 90)
    # 10 h and 24 h resolved in the window; the open one and the old one do not count
    assert (k["avg_resolution_hours"], k["median_resolution_hours"], k["resolved_tickets_n"]) == (
        17.0,
        17.0,
        2,
    )
    assert resolution_kpis(None, AS_OF, 90)["avg_resolution_hours"] is None


def test_repeat_purchase_rate() -> None:
    o = pl.DataFrame(
        {
            "account_id": ["a", "a", "b", "c", "c"],
            "ordered_at": [
                datetime(2026, 3, 1),
                datetime(2026, 3, 5),
                datetime(2026, 3, 1),
                datetime(2026, 3, 1),
                datetime(2026, 3, 2),
            ],
            "kind": ["order", "order", "order", "order", "refund"],
        }
    )
    # a has two orders; b one; c one order and a refund (not a purchase) -> 1 of 3
    assert repeat_purchase_kpis(o, AS_OF, 90)["repeat_purchase_rate"] == pytest.approx(
        0.3333, abs=1e-4
    )


def test_usage_features_license_utilisation_and_trend() -> None:
    accounts = pl.DataFrame(
        {"account_id": ["a", "b"], "name": ["A", "B"], "seats": [4, 0]}
    ).with_columns(
        pl.lit(None, pl.Date).alias("contract_start"),
        pl.lit(None, pl.Date).alias("churned_at"),
        pl.lit("active").alias("status"),
        pl.lit(None, pl.Date).alias("renewal_date"),
    )
    ev = pl.DataFrame(
        {
            "account_id": ["a", "a", "a", "a", "a"],
            "user_id": ["u1", "u2", "u1", "u3", "u1"],
            "event": ["login", "export", "login", "login", "login"],
            "ts": [
                datetime(2026, 3, 30),
                datetime(2026, 3, 30),
                datetime(2026, 3, 31, 23),
                datetime(2026, 2, 20),
                datetime(2026, 4, 1),
            ],
        }
    )
    f = build_features({"accounts": accounts, "usage_events": ev}, CFG, AS_OF)
    expected = pl.DataFrame(
        {
            "account_id": ["a", "b"],
            "active_days_30d": [2, 0],
            "active_users_30d": [2, 0],  # u1 and u2; u3 was active in the prior window only
            "feature_breadth_30d": [2, 0],
            "license_utilisation": [0.5, None],  # 2 of 4 seats; b has no seats to use
            "activity_trend": [3.0, None],  # 3 events now vs 1 before; none before for b
            "stickiness": [3 / 30 / 2, None],  # DAU sum 3 over 30 days / MAU 2
        },
        schema_overrides={
            "active_days_30d": pl.UInt32,
            "active_users_30d": pl.UInt32,
            "feature_breadth_30d": pl.UInt32,
        },
    )
    assert_frame_equal(f.select(expected.columns), expected)


def test_subscription_clv_annualises_the_window_churn() -> None:
    scores = pl.DataFrame({"arr": [100.0, 300.0]})
    # ARPA 200, margin 0.8; 90-day churn 0.1 -> annual 1 - 0.9^(365/90) = 0.3476
    k = clv_kpis(scores, 0.1, 90, CFG)
    assert k["clv"] == pytest.approx(200 * 0.8 / (1 - 0.9 ** (365 / 90)), abs=0.01)
    assert (
        clv_kpis(scores, 0.0, 90, CFG)["clv"] is None
    )  # no churn observed: CLV undefined, not infinite
