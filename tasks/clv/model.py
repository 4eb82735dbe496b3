"""Probabilistic customer lifetime value: BG/NBD purchase counts and Gamma-Gamma spend.

The models follow Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way: An
Alternative to the Pareto/NBD Model", and Fader & Hardie (2013), "The Gamma-Gamma Model of
Monetary Value". Notation: ``x`` = frequency (repeat transactions), ``t_x`` = recency (time of
the last purchase since the first), ``T`` = age (time from the first purchase to the end of
calibration), ``m`` = mean value of the repeat transactions. Time is in units of
``time_unit_days`` days (weeks by default), as in the papers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date, datetime

import numpy as np
import numpy.typing as npt
import polars as pl
from scipy.special import betaln, gammaln, hyp2f1

from tasks.clv.rfm import cutoff, holdout_counts, rfm_from_orders
from tasks.errors import ChsError

# Below this many repeat buyers the likelihoods are too flat to pin down 3-4 parameters.
MIN_REPEAT_BUYERS = 5
# Estimates beyond these bounds mean the optimiser ran to a boundary of the parameter space.
_PARAM_BOUNDS = (1e-6, 1e6)
DAYS_PER_YEAR = 365.25
FloatArray = npt.NDArray[np.float64]
ArrayLike = FloatArray | float


@dataclass(frozen=True)
class BGNBDParams:
    """Fitted BG/NBD parameters: purchase rate ~ Gamma(r, alpha), dropout ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float


@dataclass(frozen=True)
class GammaGammaParams:
    """Fitted Gamma-Gamma parameters: spend ~ Gamma(p, nu), nu ~ Gamma(q, gamma)."""

    p: float
    q: float
    gamma: float
    log_likelihood: float


@dataclass(frozen=True)
class HoldoutComparison:
    """Actual vs predicted repeat purchases of the calibration cohort after calibration ends."""

    length_weeks: float
    customers: pl.DataFrame  # account_id, actual, predicted
    actual_total: float
    predicted_total: float


@dataclass(frozen=True)
class ClvResult:
    """Fitted models, per-customer predictions and, when orders follow, a holdout check."""

    bgnbd: BGNBDParams
    gamma_gamma: GammaGammaParams
    customers: pl.DataFrame
    holdout: HoldoutComparison | None
    calibration_end: date | datetime
    horizon_weeks: float
    time_unit_days: float
    fit_seconds: float


def _as_float(values: ArrayLike | pl.Series) -> FloatArray:
    """Return values as a float64 numpy array."""
    if isinstance(values, pl.Series):
        return values.cast(pl.Float64).to_numpy()
    return np.asarray(values, dtype=np.float64)


def _bgnbd_log_likelihood(
    params: FloatArray, x: FloatArray, t_x: FloatArray, T: FloatArray
) -> FloatArray:
    """Return each customer's BG/NBD log-likelihood (FHL 2005, eq. 6)."""
    r, alpha, a, b = params
    ln_a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    ln_a2 = betaln(a, b + x) - betaln(a, b) - (r + x) * np.log(alpha + T)
    # b + x - 1 is only used where x > 0; max(x, 1) keeps betaln's argument valid elsewhere.
    ln_a3 = betaln(a + 1, b + np.maximum(x, 1) - 1) - betaln(a, b) - (r + x) * np.log(alpha + t_x)
    # scipy ships no type hints, so gammaln and betaln (and ln_a1 with them) are Any to mypy.
    return ln_a1 + np.logaddexp(ln_a2, np.where(x > 0, ln_a3, -np.inf))  # type: ignore[no-any-return]


def _gg_log_likelihood(params: FloatArray, x: FloatArray, m: FloatArray) -> FloatArray:
    """Return each repeat buyer's Gamma-Gamma log-likelihood (Fader & Hardie 2013, eq. 1a)."""
    p, q, gamma = params
    px = p * x
    # scipy ships no type hints, so gammaln is Any to mypy.
    return (  # type: ignore[no-any-return]
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(gamma)
        + (px - 1) * np.log(m)
        + px * np.log(x)
        - (px + q) * np.log(gamma + m * x)
    )


def _maximise(
    log_likelihood: Callable[[FloatArray], FloatArray], start: FloatArray, model: str
) -> tuple[FloatArray, float]:
    """Maximise a summed log-likelihood over log-parameters; raise ChsError if it fails."""
    # scipy.optimize costs ~1 s to import: only runs that fit a model (bgnbd, chs clv) pay it
    from scipy.optimize import minimize

    def objective(log_params: FloatArray) -> float:
        value = -float(np.sum(log_likelihood(np.exp(log_params))))
        return value if math.isfinite(value) else 1e300

    # Nelder-Mead copes with the flat, curved likelihood surfaces far from the optimum better
    # than gradient methods; a restart from its end guards against a collapsed simplex.
    options = {"maxiter": 4000, "xatol": 1e-7, "fatol": 1e-9}
    first = minimize(objective, np.log(start), method="Nelder-Mead", options=options)
    best = minimize(objective, first.x, method="Nelder-Mead", options=options)
    if not best.success:
        raise ChsError(f"The {model} fit did not converge ({best.message}).")
    params = np.exp(best.x)
    bounded = np.all((params > _PARAM_BOUNDS[0]) & (params < _PARAM_BOUNDS[1]))
    if not (math.isfinite(best.fun) and best.fun < 1e300 and bounded):
        raise ChsError(f"The {model} fit did not converge to finite parameter estimates.")
    return params, -float(best.fun)


def fit_bgnbd(
    frequency: ArrayLike | pl.Series, recency: ArrayLike | pl.Series, T: ArrayLike | pl.Series
) -> BGNBDParams:
    """Fit the BG/NBD model by maximum likelihood."""
    x, t_x, age = _as_float(frequency), _as_float(recency), _as_float(T)
    if x.size == 0:
        raise ChsError("There are no customers to fit the BG/NBD model on.")
    if int(np.sum(x > 0)) < MIN_REPEAT_BUYERS:
        raise ChsError(
            f"Too few repeat buyers to fit the BG/NBD model (need {MIN_REPEAT_BUYERS}, "
            f"found {int(np.sum(x > 0))})."
        )
    start = np.array([1.0, max(float(np.mean(age)), 1e-3), 1.0, 1.0])
    params, ll = _maximise(lambda p: _bgnbd_log_likelihood(p, x, t_x, age), start, "BG/NBD")
    r, alpha, a, b = map(float, params)
    return BGNBDParams(r=r, alpha=alpha, a=a, b=b, log_likelihood=ll)


def fit_gamma_gamma(
    frequency: ArrayLike | pl.Series, monetary_value: ArrayLike | pl.Series
) -> GammaGammaParams:
    """Fit the Gamma-Gamma spend model on the customers with repeat purchases."""
    x, m = _as_float(frequency), _as_float(monetary_value)
    repeat = (x > 0) & (m > 0)
    if int(np.sum(repeat)) < MIN_REPEAT_BUYERS:
        raise ChsError(
            f"Too few repeat buyers with positive spend to fit the Gamma-Gamma model "
            f"(need {MIN_REPEAT_BUYERS}, found {int(np.sum(repeat))})."
        )
    x, m = x[repeat], m[repeat]
    start = np.array([1.0, 1.0, float(np.mean(m))])
    params, ll = _maximise(lambda p: _gg_log_likelihood(p, x, m), start, "Gamma-Gamma")
    p, q, gamma = map(float, params)
    return GammaGammaParams(p=p, q=q, gamma=gamma, log_likelihood=ll)


def _dropout_odds(params: BGNBDParams, x: FloatArray, t_x: FloatArray, T: FloatArray) -> FloatArray:
    """Return the odds a customer has already dropped out (zero without repeat purchases)."""
    b_x = params.b + np.maximum(x, 1) - 1
    odds = params.a / b_x * ((params.alpha + T) / (params.alpha + t_x)) ** (params.r + x)
    return np.where(x > 0, odds, 0.0)


def p_alive(
    params: BGNBDParams,
    frequency: ArrayLike | pl.Series,
    recency: ArrayLike | pl.Series,
    T: ArrayLike | pl.Series,
) -> FloatArray:
    """Return P(alive | x, t_x, T) (FHL 2005, eq. 11)."""
    x, t_x, age = _as_float(frequency), _as_float(recency), _as_float(T)
    return 1.0 / (1.0 + _dropout_odds(params, x, t_x, age))


def expected_purchases(
    params: BGNBDParams,
    t: ArrayLike,
    frequency: ArrayLike | pl.Series,
    recency: ArrayLike | pl.Series,
    T: ArrayLike | pl.Series,
) -> FloatArray:
    """Return E[Y(t) | x, t_x, T], the expected purchases in the next t (FHL 2005, eq. 10)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    x, t_x, age = _as_float(frequency), _as_float(recency), _as_float(T)
    horizon = _as_float(t)
    shrink = (alpha + age) / (alpha + age + horizon)
    tail = shrink ** (r + x) * hyp2f1(
        r + x, b + x, a + b + x - 1, horizon / (alpha + age + horizon)
    )
    numerator = (a + b + x - 1) / (a - 1) * (1.0 - tail)
    # scipy ships no type hints, so hyp2f1 (and tail, numerator with it) is Any to mypy.
    return numerator / (1.0 + _dropout_odds(params, x, t_x, age))  # type: ignore[no-any-return]


def expected_spend(
    params: GammaGammaParams,
    frequency: ArrayLike | pl.Series,
    monetary_value: ArrayLike | pl.Series,
) -> FloatArray:
    """Return E[M | x, m], the expected mean spend per transaction (Fader & Hardie 2013, eq. 5).

    Customers without repeat purchases (x = 0) get the population mean p * gamma / (q - 1).
    """
    if params.q <= 1:
        raise ChsError("The Gamma-Gamma fit has q <= 1, so the expected spend is undefined.")
    x, m = _as_float(frequency), np.nan_to_num(_as_float(monetary_value))
    return params.p * (params.gamma + m * x) / (params.p * x + params.q - 1)


def clv(
    bgnbd: BGNBDParams,
    gamma_gamma: GammaGammaParams,
    frequency: ArrayLike | pl.Series,
    recency: ArrayLike | pl.Series,
    T: ArrayLike | pl.Series,
    monetary_value: ArrayLike | pl.Series,
    horizon_weeks: float,
    annual_discount_rate: float = 0.10,
    margin: float = 1.0,
    time_unit_days: float = 7.0,
) -> FloatArray:
    """Return each customer's discounted expected value over the next horizon_weeks.

    CLV = margin * E[M | x, m] * sum_k (E[Y(t_k)] - E[Y(t_{k-1})]) / (1 + d) ** (t_k / year)

    with weekly steps t_k = min(k, horizon) weeks for k = 1..ceil(horizon), E[Y(t)] the BG/NBD
    conditional expected purchases (eq. 10), E[M] the Gamma-Gamma expected spend, d the annual
    discount rate and year = 365.25 days; each week's purchases are discounted at its end.
    """
    x, t_x, age = _as_float(frequency), _as_float(recency), _as_float(T)
    weeks = np.minimum(np.arange(1, math.ceil(horizon_weeks) + 1, dtype=float), horizon_weeks)
    steps = (weeks * 7.0 / time_unit_days)[:, None]
    cumulative = expected_purchases(bgnbd, steps, x, t_x, age)  # shape (weeks, customers)
    per_week = np.diff(cumulative, axis=0, prepend=0.0)
    discount = (1.0 + annual_discount_rate) ** -(weeks * 7.0 / DAYS_PER_YEAR)
    purchases = discount @ per_week if weeks.size else np.zeros_like(x)
    return margin * expected_spend(gamma_gamma, x, monetary_value) * purchases


def subscription_clv(arpa: float, gross_margin: float, churn_rate: float | None) -> float | None:
    """Return ARPA * gross margin / churn rate, or None when the churn rate is 0 or unknown."""
    if churn_rate is None or churn_rate == 0:
        return None
    if churn_rate < 0:
        raise ChsError(f"The churn rate must not be negative, got {churn_rate}.")
    return arpa * gross_margin / churn_rate


def fit_clv(
    orders: pl.DataFrame,
    calibration_end: date | datetime,
    horizon_weeks: float = 39.0,
    time_unit_days: float = 7.0,
    annual_discount_rate: float = 0.10,
    margin: float = 1.0,
) -> ClvResult:
    """Fit BG/NBD and Gamma-Gamma on orders up to calibration_end and score every customer."""
    if horizon_weeks <= 0 or time_unit_days <= 0:
        raise ChsError("The horizon and the time unit must both be positive numbers of weeks/days.")
    started = time.perf_counter()
    rfm = rfm_from_orders(orders, calibration_end, time_unit_days)
    if rfm.height == 0:
        raise ChsError(f"There are no purchases on or before {calibration_end} to fit on.")
    x, t_x, age, m = (
        rfm[c].cast(pl.Float64).to_numpy() for c in ("frequency", "recency", "T", "monetary_value")
    )
    bg = fit_bgnbd(x, t_x, age)
    gg = fit_gamma_gamma(x, m)
    horizon = horizon_weeks * 7.0 / time_unit_days
    customers = rfm.with_columns(
        pl.Series("p_alive", p_alive(bg, x, t_x, age)),
        pl.Series("expected_purchases", expected_purchases(bg, horizon, x, t_x, age)),
        pl.Series("expected_spend", expected_spend(gg, x, m)),
        pl.Series(
            "clv",
            clv(
                bg, gg, x, t_x, age, m, horizon_weeks, annual_discount_rate, margin, time_unit_days
            ),
        ),
    )
    holdout = _holdout(orders, calibration_end, customers, bg, time_unit_days)
    return ClvResult(
        bg,
        gg,
        customers,
        holdout,
        calibration_end,
        horizon_weeks,
        time_unit_days,
        time.perf_counter() - started,
    )


def _holdout(
    orders: pl.DataFrame,
    calibration_end: date | datetime,
    customers: pl.DataFrame,
    bg: BGNBDParams,
    time_unit_days: float,
) -> HoldoutComparison | None:
    """Compare actual and predicted purchases after calibration_end, if any orders follow."""
    if orders.filter(pl.col("ordered_at") > cutoff(calibration_end)).height == 0:
        return None
    actual, days = holdout_counts(orders, calibration_end, customers["account_id"])
    predicted = expected_purchases(
        bg, days / time_unit_days, *(customers[c].to_numpy() for c in ("frequency", "recency", "T"))
    )
    frame = actual.with_columns(pl.Series("predicted", predicted))
    return HoldoutComparison(
        length_weeks=days / 7.0,
        customers=frame,
        actual_total=float(frame["actual"].sum()),
        predicted_total=float(frame["predicted"].sum()),
    )


def params_dict(result: ClvResult) -> dict[str, object]:
    """Return the fitted parameters and fit facts as a JSON-ready dict."""
    bg, gg = asdict(result.bgnbd), asdict(result.gamma_gamma)
    holdout = result.holdout
    return {
        **{k: bg[k] for k in ("r", "alpha", "a", "b")},
        **{k: gg[k] for k in ("p", "q", "gamma")},
        "log_likelihood": bg["log_likelihood"],
        "gg_log_likelihood": gg["log_likelihood"],
        "calibration_end": result.calibration_end.isoformat(),
        "time_unit_days": result.time_unit_days,
        "horizon_weeks": result.horizon_weeks,
        "n_customers": result.customers.height,
        "n_repeat_buyers": int((result.customers["frequency"] > 0).sum()),
        "fit_seconds": result.fit_seconds,
        "holdout": None
        if holdout is None
        else {
            "length_weeks": holdout.length_weeks,
            "actual_total": holdout.actual_total,
            "predicted_total": holdout.predicted_total,
        },
    }
