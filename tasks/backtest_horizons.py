"""The full back-test (SPEC 10.3): metrics at 30, 60, 90 and 180 days with bootstrap intervals,
the calibration table of ``p_churn_90d``, and the renewal forecast checked at earlier dates.

Every probability is point-in-time: the one of snapshot S comes from a calibration fitted on
the snapshots whose outcome was known at S (``tasks/calibrate.py``), exactly what a run of S
computes. Intervals resample accounts (all of an account's snapshots together), seeded, and
every metric is scikit-learn's, with the resampling as frequency weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
from sklearn.metrics import (
    brier_score_loss,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from tasks.backtest import labelled
from tasks.calibrate import HORIZON_DAYS, METHOD, fit_calibration
from tasks.forecast import due_rows, renewing_interval

HORIZONS = (30, 60, 90, 180)
N_BOOT = 100
SEED = 17
CALIBRATION_BINS = 10
DEFAULT_CAPACITY = 10  # accounts per CSM when no playbook sets max_new_per_owner
METRICS = ("auc", "brier", "log_loss", "lift_top_decile", "precision_at_risk", "recall_at_risk")


def with_point_in_time_p(rows: pl.DataFrame, horizon_days: int) -> pl.DataFrame:
    """Add ``p``: each snapshot's probability from a calibration on the snapshots before it whose
    outcome was known then (``as_of + horizon <= S``); null where too few churn events.
    """
    scored = rows.filter(pl.col("score").is_not_null()).sort("as_of", "account_id")
    parts = []
    for (day,), part in sorted(scored.partition_by("as_of", as_dict=True).items()):
        train = scored.filter(pl.col("as_of") <= day - timedelta(days=horizon_days))
        cal = fit_calibration(train, horizon_days)
        p = cal.predict(part["score"].to_numpy())
        parts.append(part.with_columns(pl.Series("p", p).fill_nan(None)))
    empty = scored.with_columns(pl.lit(None, pl.Float64).alias("p"))
    return pl.concat(parts) if parts else empty


def evaluation_rows(
    scores: pl.DataFrame,
    accounts: pl.DataFrame,
    known_until: date,
    horizon_days: int,
    owner: str = "csm_email",
) -> pl.DataFrame:
    """Label every stored snapshot at the horizon and add its point-in-time probability."""
    rows = labelled(scores, accounts, horizon_days, known_until)
    rows = with_point_in_time_p(rows, horizon_days)
    owners = (
        accounts.select("account_id", pl.col(owner).alias("owner"))
        if owner in accounts.columns
        else None
    )
    if owners is not None:
        rows = rows.join(owners, on="account_id", how="left")
    else:
        rows = rows.with_columns(pl.lit(None, pl.String).alias("owner"))
    return rows.with_columns(pl.col("owner").fill_null("(no owner)")).sort(
        "as_of", "score", "account_id"
    )


class Arrays:
    """One horizon's rows as arrays, ordered by snapshot then risk, ready for weighted metrics."""

    def __init__(
        self, rows: pl.DataFrame, capacity: int, universe: np.ndarray | None = None
    ) -> None:
        ids = rows["account_id"].to_numpy()
        universe = np.unique(ids) if universe is None else universe  # shared when paired
        self.y = rows["churned"].to_numpy().astype(int)
        self.risk = -rows["score"].to_numpy()
        self.p = rows["p"].cast(pl.Float64).fill_null(np.nan).to_numpy()
        self.call = (rows["segment"] == "at_risk").fill_null(False).to_numpy().astype(int)
        self.account = np.searchsorted(universe, ids)
        self.n_accounts = len(universe)
        self.snapshot = rows["as_of"].rank("dense").to_numpy().astype(int) - 1
        # rows are sorted by snapshot and score: a group's riskiest come first
        self.capacity = capacity
        self.owner_group = (
            rows.select(
                pl.concat_str(pl.col("as_of").cast(pl.String), pl.lit("|"), "owner").rank("dense")
            )
            .to_series()
            .to_numpy()
            .astype(int)
            - 1
        )
        self.owner_order = np.lexsort((np.arange(len(self.y)), self.owner_group))


def _top(group: np.ndarray, order: np.ndarray, w: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """Return how many copies of each row fall in its group's first ``limit`` (in ``order``)."""
    wo, go = w[order], group[order]
    cum = np.cumsum(wo)
    starts = np.r_[0, cum][np.searchsorted(go, go, side="left")]
    before = cum - wo - starts
    taken = np.clip(limit[go] - before, 0, wo)
    out: npt.NDArray[Any] = np.empty_like(taken)
    out[order] = taken
    return out


def _metrics(a: Arrays, w: np.ndarray) -> dict[str, float]:
    """Compute every metric with row weights ``w`` (1 each, or bootstrap counts)."""
    nan = float("nan")
    both = len(np.unique(a.y[w > 0])) == 2
    has_p = ~np.isnan(a.p) & (w > 0)
    yp, pp, wp = a.y[has_p], a.p[has_p], w[has_p]
    per_snapshot = np.bincount(a.snapshot, weights=w)
    top = _top(a.snapshot, np.arange(len(w)), w, np.ceil(per_snapshot / 10))
    base = np.average(a.y, weights=w) if w.sum() else nan
    cap = _top(a.owner_group, a.owner_order, w, np.full(a.owner_group.max() + 1, a.capacity))
    return {
        "auc": roc_auc_score(a.y, a.risk, sample_weight=w) if both else nan,
        "brier": brier_score_loss(yp, pp, sample_weight=wp) if len(yp) else nan,
        "log_loss": log_loss(yp, pp, sample_weight=wp, labels=[0, 1]) if len(yp) else nan,
        "lift_top_decile": (np.average(a.y, weights=top) / base) if top.sum() and base else nan,
        "precision_at_risk": precision_score(a.y, a.call, sample_weight=w, zero_division=np.nan),
        "recall_at_risk": recall_score(a.y, a.call, sample_weight=w, zero_division=np.nan),
        "precision_at_capacity": np.average(a.y, weights=cap) if cap.sum() else nan,
    }


def _draw(n_accounts: int, rng: np.random.Generator) -> np.ndarray:
    """Resample accounts with replacement: how often each account was drawn."""
    return np.bincount(rng.integers(0, n_accounts, n_accounts), minlength=n_accounts)


def _round(x: float, digits: int = 4) -> float | None:
    return None if x is None or math.isnan(x) else round(float(x), digits)


def _ci(samples: list[float]) -> list[float | None]:
    s = np.array([x for x in samples if not math.isnan(x)])
    if len(s) < 10:
        return [None, None]
    lo, hi = np.quantile(s, [0.025, 0.975])
    return [_round(lo), _round(hi)]


def bootstrap(
    arrays: list[Arrays],
    stat: Callable[[list[dict[str, float]]], dict[str, float]],
    n_boot: int = N_BOOT,
    seed: int = SEED,
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Return ``stat`` on the data and on ``n_boot`` account resamples (paired across ``arrays``,
    which must share their accounts' codes).
    """
    point = stat([_metrics(a, np.ones(len(a.y))) for a in arrays])
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {k: [] for k in point}
    for _ in range(n_boot):
        drawn = _draw(arrays[0].n_accounts, rng)  # each row counts as often as its account
        for k, v in stat([_metrics(a, drawn[a.account].astype(float)) for a in arrays]).items():
            draws[k].append(v)
    return point, draws


def horizon_metrics(rows: pl.DataFrame, capacity: int, n_boot: int = N_BOOT) -> dict[str, Any]:
    """Every metric of one horizon with its bootstrap 95% interval, ``n`` and ``churned_n``."""
    rows = rows.filter(pl.col("score").is_not_null())
    if rows.is_empty():
        return {k: {"value": None, "ci95": [None, None]} for k in METRICS} | {
            "n": 0,
            "churned_n": 0,
        }
    point, draws = bootstrap([Arrays(rows, capacity)], lambda m: m[0], n_boot)
    out: dict[str, Any] = {k: {"value": _round(point[k]), "ci95": _ci(draws[k])} for k in point}
    out["precision_at_capacity"]["k_per_owner"] = capacity
    out["n"] = rows.height
    out["churned_n"] = int(rows["churned"].sum())
    out["n_calibrated"] = int(rows["p"].is_not_null().sum())
    return out


def calibration_table(rows: pl.DataFrame, bins: int = CALIBRATION_BINS) -> list[dict[str, Any]]:
    """Ten equal-width bins of the predicted probability: mean prediction, observed rate, n."""
    scored = rows.filter(pl.col("p").is_not_null())
    p, y = scored["p"].to_numpy(), scored["churned"].to_numpy().astype(float)
    which = np.clip((p * bins).astype(int), 0, bins - 1)
    out = []
    for b in range(bins):
        inside = which == b
        n = int(inside.sum())
        out.append(
            {
                "bin": [b / bins, (b + 1) / bins],
                "mean_predicted": _round(p[inside].mean()) if n else None,
                "observed": _round(y[inside].mean()) if n else None,
                "n": n,
            }
        )
    return out


def calibration_error(table: list[dict[str, Any]]) -> float | None:
    """Return the expected calibration error: the n-weighted mean gap of prediction and outcome."""
    n = sum(b["n"] for b in table)
    if not n:
        return None
    gap = sum(b["n"] * abs(b["mean_predicted"] - b["observed"]) for b in table if b["n"])
    return _round(gap / n)


def forecast_check(
    rows: pl.DataFrame, scores: pl.DataFrame, accounts: pl.DataFrame, horizon_days: int
) -> dict[str, Any]:
    """Forecast the renewing ARR at each earlier snapshot as a run of it would (probabilities
    calibrated on earlier due renewals), and count how often the 80% interval held what
    happened: the ARR of the due accounts that did not churn within the window.
    """
    if "arr" not in scores.columns or "renewal_date" not in accounts.columns:
        return {"n_dates": 0, "coverage80": None, "by_snapshot": []}
    due = due_rows(rows.drop("p"), accounts, horizon_days)
    due = with_point_in_time_p(due, horizon_days).join(
        scores.select("as_of", "account_id", "arr"), on=["as_of", "account_id"], how="left"
    )
    checks = []
    for (day,), part in sorted(due.partition_by("as_of", as_dict=True).items()):
        if part["p"].is_null().any():
            continue
        a = part["arr"].cast(pl.Float64).fill_null(0.0).to_numpy()
        p = part["p"].to_numpy()
        lo, hi = renewing_interval(a, p)
        actual = float(a[~part["churned"].to_numpy()].sum())
        checks.append(
            {
                "as_of": day.isoformat(),
                "accounts_due": part.height,
                "expected": round(float((a * (1 - p)).sum()), 2),
                "interval80": [round(lo, 2), round(hi, 2)],
                "actual": round(actual, 2),
                "covered": bool(lo <= actual <= hi),
            }
        )
    covered = [c["covered"] for c in checks]
    return {
        "n_dates": len(checks),
        "coverage80": _round(sum(covered) / len(covered)) if covered else None,
        "by_snapshot": checks,
    }


def capacity_of(cfg_actions: Any) -> int:
    """Return the playbooks' ``max_new_per_owner`` when the config sets one, else the default."""
    k = getattr(cfg_actions, "max_new_per_owner", None)
    return int(k) if isinstance(k, int) and k > 0 else DEFAULT_CAPACITY


def full_backtest(
    scores: pl.DataFrame,
    accounts: pl.DataFrame,
    known_until: date,
    capacity: int = DEFAULT_CAPACITY,
    n_boot: int = N_BOOT,
) -> dict[str, Any]:
    """Return ``horizons``, ``calibration`` and the renewal forecast check for backtest.json."""
    horizons, forecast, table = {}, {}, []
    for h in HORIZONS:
        rows = evaluation_rows(scores, accounts, known_until, h)
        horizons[str(h)] = horizon_metrics(rows, capacity, n_boot)
        if h == HORIZON_DAYS:
            table = calibration_table(rows)
        if h in (90, 180):
            forecast[str(h)] = forecast_check(rows, scores, accounts, h)
    return {
        "horizons": horizons,
        "calibration": table,
        "calibration_error": calibration_error(table),
        "calibration_method": METHOD,
        "calibration_training": "each snapshot's probability is fitted on the snapshots whose "
        "outcome was known at it (at least 20 churn events)",
        "renewal_forecast_check": forecast,
        "bootstrap": {"resamples": n_boot, "seed": SEED, "unit": "account"},
    }


def format_horizons(report: dict[str, Any]) -> str:
    """Describe the horizons, calibration and forecast check in a few lines."""
    lines = ["  by horizon (95% bootstrap interval over accounts):"]
    for h, m in report.get("horizons", {}).items():
        auc, brier = m["auc"], m["brier"]
        lines.append(
            f"    {h} days: AUC {auc['value']} {auc['ci95']}, Brier {brier['value']} "
            f"{brier['ci95']}, n={m['n']}, churned {m['churned_n']}"
        )
    lines.append(
        f"  p_churn_90d ({report.get('calibration_method')}): ten-bin calibration error "
        f"{report.get('calibration_error')}"
    )
    for h, c in report.get("renewal_forecast_check", {}).items():
        lines.append(
            f"  renewal forecast, {h} days: the 80% interval held the outcome at "
            f"{c['coverage80']} of {c['n_dates']} earlier dates"
        )
    return "\n".join(lines)
