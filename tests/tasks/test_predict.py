"""Predictions: calibration on earlier snapshots, the renewal forecast, the full back-test
against a direct scikit-learn computation, and comparing two configs.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.calibration import calibration_curve
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    brier_score_loss,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from tasks.backtest_horizons import full_backtest
from tasks.calibrate import MIN_EVENTS, calibrate, forecast_churn
from tasks.compare import compare_configs
from tasks.config import parse_config
from tasks.errors import ConfigError
from tasks.forecast import (
    SIMULATE_UP_TO,
    normal_interval,
    renewals_due,
    renewing_interval,
    simulated_interval,
)
from tasks.report.prediction_view import prediction_view
from tests.tasks.test_backtest import CFG, KNOWN, synthetic


@pytest.fixture(scope="module")
def history() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    return synthetic(n=240, weeks=32, seed=3)


def _labels(scores: pl.DataFrame, accounts: pl.DataFrame, h: int) -> pl.DataFrame:
    """Label by hand: alive at the snapshot, churned within (as_of, as_of + h], horizon over."""
    churned_at = dict(accounts.select("account_id", "churned_at").iter_rows())
    out = []
    for r in scores.filter(pl.col("score").is_not_null()).iter_rows(named=True):
        c, d = churned_at[r["account_id"]], r["as_of"]
        if d + timedelta(days=h) > KNOWN or (c is not None and c <= d):
            continue
        out.append(r | {"churned": c is not None and c <= d + timedelta(days=h)})
    return pl.DataFrame(out).sort("as_of", "score", "account_id")


def _p_by_hand(rows: pl.DataFrame, h: int) -> np.ndarray:
    """Each snapshot's Platt fit on the labelled snapshots at least a horizon before it."""
    p = np.full(rows.height, np.nan)
    for d in rows["as_of"].unique().to_list():
        train = rows.filter(pl.col("as_of") <= d - timedelta(days=h))
        if train["churned"].sum() < MIN_EVENTS:
            continue
        # solved tightly: lbfgs's default tolerance stops 1e-3 short of the optimum on small sets
        m = LogisticRegression(C=1e4, max_iter=10_000, tol=1e-12).fit(
            train.select(pl.col("score") / 100).to_numpy(), train["churned"].to_numpy()
        )
        at = (rows["as_of"] == d).to_numpy()
        p[at] = m.predict_proba(
            rows.filter(pl.col("as_of") == d).select(pl.col("score") / 100).to_numpy()
        )[:, 1]
    return p


def test_backtest_metrics_equal_a_direct_scikit_learn_computation(history) -> None:
    scores, _, accounts = history
    report = full_backtest(scores, accounts, KNOWN, n_boot=20)
    assert set(report["horizons"]) == {"30", "60", "90", "180"}
    for h in (30, 90):
        got = report["horizons"][str(h)]
        rows = _labels(scores, accounts, h)
        y = rows["churned"].to_numpy()
        call = (rows["segment"] == "at_risk").to_numpy()
        assert got["n"] == rows.height
        assert got["churned_n"] == int(y.sum())
        assert got["auc"]["value"] == pytest.approx(roc_auc_score(y, -rows["score"]), abs=1e-4)
        assert got["precision_at_risk"]["value"] == pytest.approx(
            precision_score(y, call), abs=1e-4
        )
        assert got["recall_at_risk"]["value"] == pytest.approx(recall_score(y, call), abs=1e-4)
        p = _p_by_hand(rows, h)
        ok = ~np.isnan(p)
        assert ok.sum() > 0
        assert got["brier"]["value"] == pytest.approx(brier_score_loss(y[ok], p[ok]), abs=1e-4)
        assert got["log_loss"]["value"] == pytest.approx(log_loss(y[ok], p[ok]), abs=1e-4)
        for k in ("auc", "brier", "log_loss", "lift_top_decile", "recall_at_risk"):
            lo, hi = got[k]["ci95"]
            assert lo <= got[k]["value"] <= hi, k  # the estimate sits inside its interval
    # the calibration table of p_churn_90d equals scikit-learn's uniform ten bins
    rows = _labels(scores, accounts, 90)
    p = _p_by_hand(rows, 90)
    ok = ~np.isnan(p)
    observed, predicted = calibration_curve(rows["churned"].to_numpy()[ok], p[ok], n_bins=10)
    table = [b for b in report["calibration"] if b["n"]]
    assert len(report["calibration"]) == 10
    assert [b["observed"] for b in table] == pytest.approx(observed, abs=1e-4)
    assert [b["mean_predicted"] for b in table] == pytest.approx(predicted, abs=1e-4)
    assert 0 <= report["calibration_error"] < 0.05


def test_bootstrap_is_seeded(history) -> None:
    scores, _, accounts = history
    a = full_backtest(scores, accounts, KNOWN, n_boot=10)["horizons"]["90"]["auc"]
    b = full_backtest(scores, accounts, KNOWN, n_boot=10)["horizons"]["90"]["auc"]
    assert a == b


def test_calibration_never_looks_past_the_run_date(history) -> None:
    scores, _, accounts = history
    day = date(2025, 9, 1)
    cal = calibrate(scores, accounts, day)
    # snapshots within 90 days of the run, and churn after it, cannot change the fit
    early = scores.filter(pl.col("as_of") <= day - timedelta(days=90))
    later_churn = accounts.with_columns(
        pl.when(pl.col("churned_at") > day).then(None).otherwise(pl.col("churned_at"))
    )
    for other in (calibrate(early, accounts, day), calibrate(scores, later_churn, day)):
        assert other.summary() == cal.summary()
        grid = np.linspace(0, 100, 11)
        assert np.array_equal(other.predict(grid), cal.predict(grid))
    assert cal.window is not None
    assert cal.window[1] <= day - timedelta(days=90)


def test_too_few_churn_events_give_a_null_probability_and_say_why(history) -> None:
    scores, _, accounts = history
    day = scores["as_of"].min() + timedelta(days=91)  # one labelled snapshot only
    scored = scores.filter(pl.col("as_of") == day).with_columns(pl.lit(1000.0).alias("arr"))
    few = scores.filter(pl.col("account_id") < "a0040")  # 40 accounts: a few churn events
    out, churn = forecast_churn(scored, few, accounts, day)
    assert out["p_churn_90d"].null_count() == out.height
    assert "20 are needed" in churn.summary()["note"]
    full, churn = forecast_churn(scored, scores, accounts, KNOWN)
    p = full["p_churn_90d"].drop_nulls()
    assert p.len() == full["score"].drop_nulls().len()
    assert p.min() > 0
    assert p.max() < 1
    assert churn.summary()["note"] is None
    # lower scores mean more risk
    assert np.corrcoef(full["score"].to_numpy(), full["p_churn_90d"].to_numpy())[0, 1] < 0
    assert full["expected_arr_at_risk"].to_list() == pytest.approx(
        (full["p_churn_90d"] * 1000).round(2).to_list()
    )


def test_renewals_fall_due_on_anniversaries() -> None:
    d = date(2026, 1, 1)
    accounts = pl.DataFrame(
        {
            "renewal_date": [date(2026, 2, 1), date(2025, 3, 1), date(2026, 1, 1), None],
            "arr": [1.0, 2.0, 3.0, 4.0],
        }
    )
    # 1 Feb is due; 1 March 2025 recurs on 1 March 2026 (due); 1 January renews today, so next
    # on 1 January 2027 (not due within 90 days); no date, not due
    assert renewals_due(accounts, d, 90)["arr"].to_list() == [1.0, 2.0]


def test_many_due_accounts_take_the_normal_interval_within_the_simulations_noise() -> None:
    rng = np.random.default_rng(3)
    n = SIMULATE_UP_TO + 1
    arr = rng.lognormal(9, 1, n)  # skewed ARR, as portfolios are
    p = rng.uniform(0.01, 0.5, n)
    got = renewing_interval(arr, p)
    assert got == normal_interval(arr, p)
    sd = float(np.sqrt((arr * arr * p * (1 - p)).sum()))
    sims = [simulated_interval(arr, p, seed=s) for s in (17, 99)]
    noise = max(abs(a - b) for a, b in zip(*sims, strict=True))  # between two seeds
    for sim in sims:
        for a, b in zip(got, sim, strict=True):
            assert abs(a - b) < max(noise, 0.02 * sd) * 3
    assert renewing_interval(arr[:-1], p[:-1]) == simulated_interval(arr[:-1], p[:-1])


def test_platt_is_scikit_learns_objective_solved_exactly() -> None:
    from tasks.calibrate import Platt

    rng = np.random.default_rng(5)
    for n in (60, 3000, 200_000):
        x = rng.random(n)
        y = (rng.random(n) < 1 / (1 + np.exp(2 + 3 * x))).astype(int)
        ref = LogisticRegression(C=1e4, max_iter=10_000, tol=1e-12).fit(x.reshape(-1, 1), y)
        got = Platt.fit(x, y)
        assert got.intercept == pytest.approx(float(ref.intercept_[0]), abs=1e-5)
        assert got.slope == pytest.approx(float(ref.coef_[0, 0]), abs=1e-5)
        assert np.abs(got.predict(x) - ref.predict_proba(x.reshape(-1, 1))[:, 1]).max() < 1e-6
    every = Platt.fit(rng.random(50), np.ones(50, dtype=int))  # one outcome: no optimum
    assert np.all(every.predict(np.array([0.0, 0.5, 1.0])) > 0.99)


def test_renewing_interval_matches_the_exact_distribution() -> None:
    # two accounts of 100 renewing with p = 0.5: 0, 100 or 200 with 1/4, 1/2, 1/4
    lo, hi = renewing_interval(np.array([100.0, 100.0]), np.array([0.5, 0.5]))
    assert (lo, hi) == (0.0, 200.0)
    lo, hi = renewing_interval(np.array([100.0, 100.0]), np.array([0.0, 0.0]))
    assert (lo, hi) == (200.0, 200.0)


def test_a_config_on_the_noise_measure_compares_worse_with_an_interval_excluding_zero(
    history,
) -> None:
    _, measures, accounts = history
    body = CFG.model_dump(mode="json", exclude={"base_dir"})
    body["scoring"]["dimensions"] = {"usage": 0.0, "engagement": 1.0}  # all on noise
    worse = parse_config(body, Path())
    out = compare_configs(measures, accounts, CFG, worse, KNOWN, 10, n_boot=30)
    auc = out["horizons"]["90"]["auc"]
    assert auc["difference"] < 0
    assert auc["ci95"][1] < 0
    assert auc["verdict"] == "other is worse"
    same = compare_configs(measures, accounts, CFG, CFG, KNOWN, 10, n_boot=10)
    assert same["horizons"]["90"]["auc"]["difference"] == 0


def test_the_report_draws_the_calibration_bins_and_formats_the_forecast() -> None:
    table = [{"mean_predicted": None, "observed": None, "n": 0}] * 8 + [
        {"mean_predicted": 0.02, "observed": 0.03, "n": 400},
        {"mean_predicted": 0.2, "observed": 0.1, "n": 100},
    ]
    kpis = {
        "renewal_forecast": {
            "90": {
                "accounts_due": 2,
                "arr_due": 200.0,
                "expected_arr_renewing": 150.0,
                "interval80": [100.0, 200.0],
                "expected_grr": 0.95,
            }
        }
    }
    view = prediction_view({"calibration": table, "calibration_error": 0.012}, kpis)
    assert view["calibration"] is not None
    assert len(view["calibration"]["points"]) == 2  # empty bins are not drawn
    assert view["forecast"][0]["grr"] == "95.0%"
    assert view["calibration_error"] == "0.012"


def test_calibration_method_isotonic_is_a_monotone_step_fit_chosen_in_the_config(history) -> None:
    scores, _, accounts = history
    day = scores["as_of"].max()
    cfg = parse_config(
        {"sources": {"accounts": {"uri": "a.csv"}}, "calibration": {"method": "isotonic"}}, Path()
    )
    assert cfg.calibration.method == "isotonic"
    with pytest.raises(ConfigError):
        parse_config(
            {"sources": {"accounts": {"uri": "a.csv"}}, "calibration": {"method": "beta"}}, Path()
        )
    scored = scores.filter(pl.col("as_of") == day).with_columns(pl.lit(1000.0).alias("arr"))
    out, churn = forecast_churn(scored, scores, accounts, KNOWN, method=cfg.calibration.method)
    assert churn.summary()["method"] == "isotonic"
    assert isinstance(churn.main.model, IsotonicRegression)
    # pool-adjacent-violators: never more risk for a higher score, steps rather than a curve
    grid = churn.main.predict(np.linspace(0, 100, 101))
    assert (np.diff(grid) <= 1e-12).all()
    assert len(np.unique(grid)) < 50
    # the same training rows, fitted by hand: the probabilities of the run match
    rows = _labels(scores.filter(pl.col("as_of") <= KNOWN - timedelta(days=90)), accounts, 90)
    by_hand = IsotonicRegression(increasing=False, out_of_bounds="clip").fit(
        rows["score"].to_numpy() / 100, rows["churned"].to_numpy().astype(int)
    )
    x = out["score"].drop_nulls().to_numpy()
    expected = np.clip(by_hand.predict(x / 100), 1e-4, 1 - 1e-4)
    assert out["p_churn_90d"].drop_nulls().to_numpy() == pytest.approx(expected.round(6), abs=1e-6)
