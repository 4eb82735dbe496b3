"""Acquisition cost and margin from data (acquisition_spend, accounts, orders -> KPIs).

``cac`` = acquisition spend in the KPI window / accounts whose ``contract_start`` falls in it.
A spend row is a day (``spent_at``) or a period (``period_start``..``period_end``, both days
included); a period counts with the share of its days inside the window. Without spend data
the three figures are null, never 0. The gross margin comes from ``orders.cost`` when orders
carry it (1 - cost / revenue over the orders window); otherwise ``[kpis] gross_margin``.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import polars as pl


def spend_in_window(spend: pl.DataFrame, as_of: date, days: int) -> float:
    """Sum the spend of the ``days`` days ending on ``as_of`` (periods pro rata by day)."""
    lo, hi = pl.lit(as_of - timedelta(days=days - 1)), pl.lit(as_of)
    cols = spend.columns
    day = pl.col("spent_at") if "spent_at" in cols else pl.lit(None, pl.Date)
    start = pl.col("period_start") if "period_start" in cols else pl.lit(None, pl.Date)
    end = pl.col("period_end") if "period_end" in cols else pl.lit(None, pl.Date)
    start, end = pl.coalesce(day, start, end), pl.coalesce(day, end, start)
    overlap = (pl.min_horizontal(end, hi) - pl.max_horizontal(start, lo)).dt.total_days() + 1
    length = (end - start).dt.total_days() + 1
    share = pl.when(overlap > 0).then(overlap / length).otherwise(0.0)
    total = spend.select((pl.col("amount") * share).sum()).item()
    return float(total or 0.0)


def new_accounts(accounts: pl.DataFrame, as_of: date, days: int) -> int:
    """Count the accounts whose contract started in the ``days`` days ending on ``as_of``."""
    if "contract_start" not in accounts.columns:
        return 0
    lo = as_of - timedelta(days=days - 1)
    return accounts.filter(pl.col("contract_start").is_between(lo, as_of)).height


def cac_kpis(
    spend: pl.DataFrame | None,
    accounts: pl.DataFrame,
    clv: float | None,
    as_of: date,
    days: int,
) -> dict[str, Any]:
    """Return ``cac``, ``cac_new_accounts`` and ``clv_to_cac`` (null without spend data)."""
    if spend is None:
        return {"cac": None, "cac_new_accounts": None, "clv_to_cac": None}
    n = new_accounts(accounts, as_of, days)
    cac = spend_in_window(spend, as_of, days) / n if n else None
    return {
        "cac": None if cac is None else round(cac, 2),
        "cac_new_accounts": n,
        "clv_to_cac": round(clv / cac, 4) if clv is not None and cac else None,
    }


def gross_margin(orders: pl.DataFrame | None, as_of: date, days: int) -> float | None:
    """Return 1 - cost / revenue of the orders with a cost in the window, or None without any."""
    if orders is None or "cost" not in orders.columns:
        return None
    lo = as_of - timedelta(days=days - 1)
    costed = orders.filter(
        pl.col("cost").is_not_null()
        & pl.col("ordered_at").dt.date().is_between(lo, as_of)
        & (pl.col("kind").fill_null("order") != "refund")
    )
    revenue, cost = costed.select(pl.col("amount").sum(), pl.col("cost").sum()).row(0)
    if not costed.height or not revenue:
        return None
    return round(1 - float(cost) / float(revenue), 4)
