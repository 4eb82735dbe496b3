"""Portfolio KPIs as SPEC section 4 defines them (validated data + scores -> kpis.json).

A KPI without data is None (null in JSON), never 0. Rates are fractions in [0, 1].
"""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta
from typing import Any, NotRequired, TypedDict, cast

import polars as pl

from tasks.acquisition import cac_kpis, gross_margin
from tasks.clv.model import subscription_clv
from tasks.config import Config
from tasks.features.surveys import csat_pct_of, nps_of
from tasks.features.windows import active_accounts
from tasks.schemas import SEGMENTS


class Kpis(TypedDict):
    """The portfolio KPIs of one as-of date: ``kpis.json`` and a row of the history store.

    Rates are fractions in [0, 1], NPS in [-100, 100], CSAT % in [0, 100]; a KPI without data
    is None (null), never 0. ``*_n`` are the counts behind a KPI.
    """

    as_of: str
    accounts_active: int
    nps: float | None
    nps_n: int
    nps_ci95: list[float | None] | None
    csat_pct: float | None
    csat_n: int
    ces_mean: float | None
    ces_n: int
    ces_direction: str
    logo_churn_rate: float | None
    retention_rate: float | None
    accounts_active_at_start: int
    accounts_churned: int
    gross_revenue_retention: float | None
    net_revenue_retention: float | None
    revenue_retention_basis: str
    avg_resolution_hours: float | None
    median_resolution_hours: float | None
    resolved_tickets_n: int
    repeat_purchase_rate: float | None
    purchasing_customers_n: int
    accounts_by_segment: dict[str, int]
    arr_by_segment: dict[str, float]
    clv: float | None
    clv_method: str | None
    mean_score: float | None
    window_days: dict[str, int]
    cac: float | None
    cac_new_accounts: int | None
    clv_to_cac: float | None
    gross_margin: float
    gross_margin_basis: str
    renewal_forecast: NotRequired[dict[str, dict[str, Any]]]  # SPEC 10.3 (tasks/forecast.py)
    churn_calibration: NotRequired[dict[str, Any]]  # what p_churn_90d was fitted on
    # voice of the customer, with a text source (tasks/text/evidence.voice_kpis)
    complaints_n: NotRequired[int]
    complaint_rate: NotRequired[float | None]  # complaints in the window per active account
    sentiment_mean: NotRequired[float | None]
    sentiment_n: NotRequired[int]
    texts_unsupported_n: NotRequired[int]
    voice_days: NotRequired[int]


def _window(as_of: date, days: int) -> tuple[datetime, datetime]:
    return datetime.combine(as_of - timedelta(days=days - 1), time.min), datetime.combine(
        as_of, time.max
    )


def _f(value: Any, digits: int = 4) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return round(float(value), digits)


def nps_ci95(scores: pl.Series) -> tuple[float, float] | None:
    """Return the 95% confidence interval of NPS (normal approximation of a difference of shares)."""
    n = scores.len()
    if n == 0:
        return None
    p = float((scores >= 9).sum()) / n
    d = float((scores <= 6).sum()) / n
    nps = p - d
    se = math.sqrt(max(p + d - nps * nps, 0.0) / n)
    return (max(-100.0, (nps - 1.96 * se) * 100), min(100.0, (nps + 1.96 * se) * 100))


def survey_kpis(
    responses: pl.DataFrame | None, as_of: date, days: int, cfg: Config
) -> dict[str, Any]:
    """NPS (with n and CI), CSAT % and mean CES over all responses in the window."""
    empty = pl.DataFrame(
        schema={"survey": pl.String, "score": pl.Float64, "submitted_at": pl.Datetime("us")}
    )
    r = responses if responses is not None else empty
    start, end = _window(as_of, days)
    r = r.filter(pl.col("submitted_at").is_between(start, end))
    nps = r.filter(pl.col("survey") == "nps")["score"]
    csat = r.filter(pl.col("survey") == "csat")["score"]
    ces = r.filter(pl.col("survey") == "ces")["score"]
    ci = nps_ci95(nps)
    ces_scale = cfg.surveys.get("ces")
    return {
        "nps": _f(pl.select(nps_of(pl.lit(nps))).item() if nps.len() else None, 2),
        "nps_n": nps.len(),
        "nps_ci95": [_f(ci[0], 2), _f(ci[1], 2)] if ci else None,
        "csat_pct": _f(pl.select(csat_pct_of(pl.lit(csat))).item() if csat.len() else None, 2),
        "csat_n": csat.len(),
        "ces_mean": _f(ces.mean() if ces.len() else None, 3),
        "ces_n": ces.len(),
        "ces_direction": "higher_is_easier"
        if ces_scale is None or ces_scale.higher_is_better
        else "lower_is_easier",
    }


def churn_kpis(
    accounts: pl.DataFrame, as_of: date, days: int, arr_at_start: pl.DataFrame | None
) -> dict[str, Any]:
    """Logo churn, retention and gross/net revenue retention over the window ending ``as_of``."""
    start = as_of - timedelta(days=days)
    at_start = active_accounts(accounts, start)
    churned = at_start.filter(pl.col("churned_at").is_not_null() & (pl.col("churned_at") <= as_of))
    n0 = at_start.height
    churn = churned.height / n0 if n0 else None
    # ARR at the start comes from the history snapshot nearest the start when there is one;
    # without history we only know today's ARR, so contraction and expansion read as zero.
    arr = at_start.select("account_id", pl.col("arr").alias("arr_now"))
    if arr_at_start is not None and not arr_at_start.is_empty():
        arr = arr.join(
            arr_at_start.select("account_id", pl.col("arr").alias("arr0")),
            on="account_id",
            how="left",
        )
        arr = arr.with_columns(pl.coalesce("arr0", "arr_now").alias("arr0"))
    else:
        arr = arr.with_columns(pl.col("arr_now").alias("arr0"))
    is_churned = pl.col("account_id").is_in(churned["account_id"].implode())
    sums = arr.select(
        pl.col("arr0").sum().alias("start"),
        pl.col("arr0").filter(is_churned).sum().alias("churned"),
        (pl.col("arr0") - pl.col("arr_now"))
        .clip(lower_bound=0)
        .filter(~is_churned)
        .sum()
        .alias("contraction"),
        (pl.col("arr_now") - pl.col("arr0"))
        .clip(lower_bound=0)
        .filter(~is_churned)
        .sum()
        .alias("expansion"),
    ).row(0, named=True)
    s0 = sums["start"] or 0.0
    grr = (s0 - sums["churned"] - sums["contraction"]) / s0 if s0 > 0 else None
    nrr = grr + sums["expansion"] / s0 if grr is not None else None
    return {
        "logo_churn_rate": _f(churn),
        "retention_rate": _f(1 - churn if churn is not None else None),
        "accounts_active_at_start": n0,
        "accounts_churned": churned.height,
        "gross_revenue_retention": _f(grr),
        "net_revenue_retention": _f(nrr),
        "revenue_retention_basis": "history"
        if arr_at_start is not None and not arr_at_start.is_empty()
        else "current_arr",
    }


def resolution_kpis(tickets: pl.DataFrame | None, as_of: date, days: int) -> dict[str, Any]:
    """Mean and median hours from open to resolution for tickets resolved in the window."""
    if tickets is None:
        return {
            "avg_resolution_hours": None,
            "median_resolution_hours": None,
            "resolved_tickets_n": 0,
        }
    start, end = _window(as_of, days)
    hours = tickets.filter(pl.col("resolved_at").is_between(start, end)).select(
        ((pl.col("resolved_at") - pl.col("opened_at")).dt.total_seconds() / 3600).alias("h")
    )["h"]
    return {
        "avg_resolution_hours": _f(hours.mean() if hours.len() else None, 2),
        "median_resolution_hours": _f(hours.median() if hours.len() else None, 2),
        "resolved_tickets_n": hours.len(),
    }


def repeat_purchase_kpis(orders: pl.DataFrame | None, as_of: date, days: int) -> dict[str, Any]:
    """Share of purchasing customers with two or more orders in the window."""
    if orders is None:
        return {"repeat_purchase_rate": None, "purchasing_customers_n": 0}
    start, end = _window(as_of, days)
    per = (
        orders.filter(
            pl.col("ordered_at").is_between(start, end)
            & (pl.col("kind").fill_null("order") != "refund")
        )
        .group_by("account_id")
        .len()
    )
    n = per.height
    return {
        "repeat_purchase_rate": _f((per["len"] >= 2).sum() / n if n else None),
        "purchasing_customers_n": n,
    }


def segment_kpis(scores: pl.DataFrame) -> dict[str, Any]:
    """Count accounts and sum ARR per segment (accounts without a score under insufficient_data)."""
    seg = scores.with_columns(pl.col("segment").fill_null("insufficient_data"))
    agg = seg.group_by("segment").agg(pl.len().alias("n"), pl.col("arr").sum().alias("arr"))
    counts = {s: 0 for s in (*SEGMENTS, "insufficient_data")}
    arr = {s: 0.0 for s in counts}
    for row in agg.iter_rows(named=True):
        counts[row["segment"]] = row["n"]
        arr[row["segment"]] = round(float(row["arr"] or 0.0), 2)
    return {"accounts_by_segment": counts, "arr_by_segment": arr}


def clv_kpis(
    scores: pl.DataFrame, churn_rate: float | None, days: int, cfg: Config
) -> dict[str, Any]:
    """Portfolio CLV per account: BG/NBD + Gamma-Gamma, or ARPA x margin / annual churn."""
    if cfg.kpis.clv_method == "bgnbd":
        values = (
            scores["clv_bgnbd"].drop_nulls()
            if "clv_bgnbd" in scores.columns
            else pl.Series([], dtype=pl.Float64)
        )
        mean = float(values.mean()) * cfg.kpis.gross_margin if values.len() else None  # type: ignore[arg-type]
        return {
            "clv": _f(mean, 2),
            "clv_method": "bgnbd: mean over accounts of 90-day expected spend x gross margin"
            if mean is not None
            else None,
        }
    # Subscription: the window's logo churn, annualised.
    arr = scores["arr"].drop_nulls() if "arr" in scores.columns else pl.Series([], dtype=pl.Float64)
    if arr.is_empty() or churn_rate is None:
        return {"clv": None, "clv_method": None}
    annual_churn = 1 - (1 - churn_rate) ** (365 / days)
    value = subscription_clv(float(arr.mean()), cfg.kpis.gross_margin, annual_churn)  # type: ignore[arg-type]
    return {
        "clv": _f(value, 2),
        "clv_method": "subscription: ARPA x gross margin / annual churn" if value else None,
    }


def compute_kpis(
    data: dict[str, pl.DataFrame],
    scores: pl.DataFrame,
    cfg: Config,
    as_of: date,
    arr_at_start: pl.DataFrame | None = None,
) -> Kpis:
    """Compute every portfolio KPI of SPEC section 8.2 for ``as_of``."""
    days = cfg.windows.kpi_days
    out: dict[str, Any] = {"as_of": as_of.isoformat(), "accounts_active": scores.height}
    out |= survey_kpis(data.get("survey_responses"), as_of, days, cfg)
    out |= churn_kpis(data["accounts"], as_of, days, arr_at_start)
    out |= resolution_kpis(data.get("tickets"), as_of, days)
    out |= repeat_purchase_kpis(data.get("orders"), as_of, days)
    out |= segment_kpis(scores)
    margin = gross_margin(data.get("orders"), as_of, cfg.windows.orders_days)
    out["gross_margin"] = cfg.kpis.gross_margin if margin is None else margin
    out["gross_margin_basis"] = "configured" if margin is None else "orders.cost"
    kpi_cfg = cfg.kpis.model_copy(update={"gross_margin": out["gross_margin"]})
    out |= clv_kpis(scores, out["logo_churn_rate"], days, cfg.model_copy(update={"kpis": kpi_cfg}))
    out |= cac_kpis(data.get("acquisition_spend"), data["accounts"], out["clv"], as_of, days)
    scored = scores["score"].drop_nulls()
    out["mean_score"] = _f(scored.mean() if scored.len() else None, 2)
    out["window_days"] = {
        k: days
        for k in (
            "nps",
            "csat_pct",
            "ces_mean",
            "logo_churn_rate",
            "revenue_retention",
            "resolution",
            "repeat_purchase_rate",
        )
    }
    return cast(Kpis, out)
