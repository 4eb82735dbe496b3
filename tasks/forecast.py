"""The renewal forecast: which renewals fall due, and how much of their ARR is expected to stay.

An account renews on the anniversaries of its ``renewal_date`` (annual contracts), so the same
rule tells a run of today and a back-test of an earlier date which renewals fell due within
the next 90 or 180 days. Each due account renews with probability 1 - p, where p is calibrated
like ``p_churn_90d`` but on the earlier snapshots whose renewal fell due within the window
(churn concentrates at renewals, so the all-accounts probability would understate it); the
renewing ARR is the sum of independent Bernoulli draws
weighted by ARR (an ARR-weighted Poisson-binomial), whose 80% interval comes from a seeded
simulation of up to ``SIMULATE_UP_TO`` due accounts, and above that from the normal
distribution with the sum's exact mean and variance: there the two differ by less than the
simulation's own draw-to-draw noise (measured at 2,000 to 45,000 due accounts: 0.00-0.05
standard deviations, against 0.01-0.11 between two seeds), and 4,000 draws of 45,000 accounts
took 2 s of every date.
"""

from __future__ import annotations

from datetime import date, timedelta
from statistics import NormalDist
from typing import Any

import numpy as np
import polars as pl

FORECAST_DAYS = (90, 180)
DRAWS = 4000
SEED = 17
_CHUNK = 2048  # accounts per block of draws, to bound memory at 100k accounts
SIMULATE_UP_TO = 5000  # due accounts; more take the normal approximation


def next_renewal(renewal: pl.Expr, as_of: pl.Expr) -> pl.Expr:
    """Return the first anniversary of ``renewal`` after ``as_of`` (29 Feb falls on 28 Feb)."""
    month, day = renewal.dt.month(), renewal.dt.day()
    day = pl.when((month == 2) & (day == 29)).then(28).otherwise(day)
    this_year = pl.date(as_of.dt.year(), month, day)
    next_year = pl.date(as_of.dt.year() + 1, month, day)
    return pl.when(this_year > as_of).then(this_year).otherwise(next_year)


def is_due(as_of: pl.Expr, days: int) -> pl.Expr:
    """Whether the account's next renewal falls in (as_of, as_of + days] (False without a date)."""
    due = next_renewal(pl.col("renewal_date"), as_of)
    return (due <= as_of + timedelta(days=days)).fill_null(False)


def renewals_due(accounts: pl.DataFrame, as_of: date, days: int) -> pl.DataFrame:
    """Keep the accounts with a renewal in (as_of, as_of + days]."""
    return accounts.filter(is_due(pl.lit(as_of), days))


def due_rows(rows: pl.DataFrame, accounts: pl.DataFrame, days: int) -> pl.DataFrame:
    """Keep the snapshot rows (``as_of``, ``account_id``) whose renewal fell due within ``days``."""
    if "renewal_date" not in accounts.columns or rows.is_empty():
        return rows.clear()
    dates = accounts.select("account_id", "renewal_date")
    joined = rows.drop("renewal_date", strict=False).join(
        dates, on="account_id", how="left", maintain_order="left"
    )
    # whether a renewal is due depends on the two dates only: computed once per distinct pair
    # (thousands), not per snapshot row (millions by the end of a year's backfill)
    pairs = (
        joined.select("renewal_date", "as_of")
        .unique()
        .with_columns(is_due(pl.col("as_of"), days).alias("_due"))
    )
    return (
        joined.join(
            pairs, on=["renewal_date", "as_of"], how="left", nulls_equal=True, maintain_order="left"
        )
        .filter(pl.col("_due"))
        .drop("_due")
    )


def renewing_interval(
    arr: np.ndarray, p: np.ndarray, level: float = 0.8, draws: int = DRAWS, seed: int = SEED
) -> tuple[float, float]:
    """Return the central ``level`` interval of sum(ARR x renewed), renewed ~ Bernoulli(1 - p):
    simulated up to ``SIMULATE_UP_TO`` accounts, else the normal approximation.
    """
    if len(arr) > SIMULATE_UP_TO:
        return normal_interval(arr, p, level)
    return simulated_interval(arr, p, level, draws, seed)


def simulated_interval(
    arr: np.ndarray, p: np.ndarray, level: float = 0.8, draws: int = DRAWS, seed: int = SEED
) -> tuple[float, float]:
    """Return the interval of ``draws`` seeded draws of every account's renewal."""
    rng = np.random.default_rng(seed)
    total = np.zeros(draws)
    for i in range(0, len(arr), _CHUNK):
        a, q = arr[i : i + _CHUNK], p[i : i + _CHUNK]
        total += (rng.random((draws, len(a))) >= q) @ a
    lo, hi = np.quantile(total, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def normal_interval(arr: np.ndarray, p: np.ndarray, level: float = 0.8) -> tuple[float, float]:
    """Return the interval of the normal distribution with the sum's mean and variance."""
    mean = float((arr * (1 - p)).sum())
    sd = float(np.sqrt((arr * arr * p * (1 - p)).sum()))
    z = float(NormalDist().inv_cdf((1 + level) / 2))
    return mean - z * sd, mean + z * sd


def forecast_one(due: pl.DataFrame, p: str, arr_total: float | None) -> dict[str, Any]:
    """Forecast one window's renewals from the due accounts' ARR and churn probability ``p``."""
    arr = due["arr"].cast(pl.Float64).fill_null(0.0).to_numpy()
    out: dict[str, Any] = {"accounts_due": due.height, "arr_due": round(float(arr.sum()), 2)}
    prob = due[p].cast(pl.Float64).to_numpy() if p in due.columns else np.full(len(arr), np.nan)
    if due.height and np.isnan(prob).any():
        out |= {"expected_arr_renewing": None, "interval80": None, "expected_grr": None}
        return out
    expected = float((arr * (1 - prob)).sum())
    lo, hi = renewing_interval(arr, prob) if due.height else (0.0, 0.0)
    lost = float(arr.sum()) - expected
    grr = None if not arr_total else round((arr_total - lost) / arr_total, 4)
    out |= {
        "expected_arr_renewing": round(expected, 2),
        "interval80": [round(lo, 2), round(hi, 2)],
        "expected_grr": grr,
    }
    return out


def renewal_forecast(
    scored: pl.DataFrame, probabilities: dict[int, pl.Series], as_of: date
) -> dict[str, dict[str, Any]]:
    """Return ``renewal_forecast`` for kpis.json: per window of days, the renewals due and the
    ARR expected to renew. ``probabilities`` holds each window's churn probability per row.
    """
    if "renewal_date" not in scored.columns or "arr" not in scored.columns:
        return {}
    arr_total = float(scored["arr"].cast(pl.Float64).fill_null(0.0).sum())
    out = {}
    for days in FORECAST_DAYS:
        frame = scored.select("renewal_date", "arr").with_columns(
            probabilities[days].alias("_p") if days in probabilities else pl.lit(None, pl.Float64)
        )
        out[str(days)] = forecast_one(renewals_due(frame, as_of, days), "_p", arr_total)
    return out
