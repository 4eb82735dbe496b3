"""The report's parent accounts: each with its roll-up and its worst children (scores_rollup)."""

from __future__ import annotations

from typing import Any

import polars as pl

from tasks.report.format import SEGMENT_LABELS, fmt_num, money, pct_filter
from tasks.rollup import ancestors

_WORST = 3  # children shown under each parent


def parent_rows(
    rollup: pl.DataFrame | None, scores: pl.DataFrame, accounts: pl.DataFrame, n: int
) -> list[dict[str, Any]]:
    """Return the ``n`` parents with the most ARR at risk, each with its worst children."""
    if rollup is None or rollup.is_empty():
        return []
    names = dict(scores.select("account_id", "name").iter_rows()) if "name" in scores else {}
    kids = ancestors(accounts).join(
        scores.select("account_id", "score", "segment"), on="account_id", how="inner"
    )
    top = rollup.with_columns(
        (pl.col("share_at_risk").fill_null(0) * pl.col("children_arr")).alias("_risk")
    ).sort(["_risk", "score", "account_id"], descending=[True, False, False], nulls_last=True)
    rows = []
    for r in top.head(n).iter_rows(named=True):
        worst = (
            kids.filter(pl.col("ancestor_id") == r["account_id"])
            .sort(["score", "account_id"], nulls_last=True)
            .head(_WORST)
        )
        rows.append(
            {
                "account_id": r["account_id"],
                "name": names.get(r["account_id"]) or r["account_id"],
                "score": fmt_num(r["score"]),
                "segment": SEGMENT_LABELS.get(r["segment"] or "", "Insufficient data"),
                "children_n": r["children_n"],
                "children_arr": money(r["children_arr"]),
                "share_at_risk": pct_filter(r["share_at_risk"]),
                "top_drivers": r["top_drivers"] or "",
                "worst": [
                    {
                        "name": names.get(w["account_id"]) or w["account_id"],
                        "account_id": w["account_id"],
                        "score": fmt_num(w["score"]),
                    }
                    for w in worst.iter_rows(named=True)
                ],
            }
        )
    return rows
