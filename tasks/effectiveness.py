"""Does a playbook help? Treated vs hold-out accounts, per playbook (SPEC 10.1).

The unit is an account's first action of a playbook. It counts once it is old enough for both
outcomes to be known (``max(recovery_days, churn_days)`` before the as-of date):

- recovered: within ``recovery_days`` of opening, the score came back above the at-risk band
  (for an account that was at risk) or rose by at least ``recovery_points``;
- churned: the account churned within ``churn_days`` of opening.

The difference treated - hold-out of each share comes with a 95% interval by Newcombe's hybrid
score method (his method 10: the two Wilson intervals combined), which keeps its coverage for
small groups and shares near 0 or 1 where the Wald interval does not. Below 30 accounts in a
group the estimate is flagged ``n_too_small``.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Any

import polars as pl

from tasks.config import Config

Z95 = 1.959963984540054
MIN_GROUP = 30
METHOD = (
    "difference of proportions (treated - hold-out) with Newcombe's hybrid score interval "
    "(method 10, from Wilson intervals), 95%"
)


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Return the Wilson score interval of k successes in n trials."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    den = 1 + z * z / n
    return (centre - half) / den, (centre + half) / den


def newcombe(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> dict[str, float | None]:
    """Return p1 - p2 with Newcombe's hybrid score interval (None when a group is empty)."""
    if n1 == 0 or n2 == 0:
        return {"estimate": None, "low": None, "high": None}
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1, z)
    l2, u2 = wilson(k2, n2, z)
    d = p1 - p2
    return {
        "estimate": round(d, 4),
        "low": round(d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), 4),
        "high": round(d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2), 4),
    }


def outcomes(
    openings: pl.DataFrame,
    scores: pl.DataFrame,
    accounts: pl.DataFrame,
    cfg: Config,
    as_of: date,
) -> pl.DataFrame:
    """Return one row per mature (account, playbook): held out or not, recovered, churned."""
    s = cfg.playbook_settings
    mature = as_of - timedelta(days=max(s.recovery_days, s.churn_days))
    first = (
        openings.filter(pl.col("opened_on") <= mature)
        .sort("opened_on", "action_id")
        .unique(["account_id", "action"], keep="first", maintain_order=True)
    )
    later = (
        first.select("account_id", "action", "opened_on")
        .join(scores.select("account_id", pl.col("as_of").alias("t"), "score"), on="account_id")
        .filter(
            (pl.col("t") > pl.col("opened_on"))
            & (pl.col("t") <= pl.col("opened_on") + timedelta(days=s.recovery_days))
        )
        .group_by("account_id", "action")
        .agg(pl.col("score").max().alias("best"))
    )
    churn = (
        accounts.select("account_id", "churned_at")
        if "churned_at" in accounts.columns
        else accounts.select("account_id", pl.lit(None, pl.Date).alias("churned_at"))
    )
    at_risk = cfg.scoring.segments.at_risk
    back = (pl.col("opened_segment") == "at_risk") & (pl.col("best") >= at_risk)
    gain = (pl.col("best") - pl.col("opened_score")) >= s.recovery_points
    gone = pl.col("churned_at").cast(pl.Date)
    return (
        first.join(later, on=["account_id", "action"], how="left")
        .join(churn, on="account_id", how="left")
        .select(
            "account_id",
            "action",
            "holdout",
            (back | gain).fill_null(False).alias("recovered"),
            (
                (gone > pl.col("opened_on"))
                & (gone <= pl.col("opened_on") + timedelta(days=s.churn_days))
                & (gone <= as_of)  # a re-run of a past date does not know later churn
            )
            .fill_null(False)
            .alias("churned"),
        )
    )


def _share(k: int, n: int) -> float | None:
    return round(k / n, 4) if n else None


def estimate(rows: pl.DataFrame, playbooks: list[str]) -> list[dict[str, Any]]:
    """Summarise treated vs hold-out per playbook (in the config's order)."""
    out = []
    for action in playbooks:
        mine = rows.filter(pl.col("action") == action)
        t, h = mine.filter(~pl.col("holdout")), mine.filter(pl.col("holdout"))
        rec = (int(t["recovered"].sum()), int(h["recovered"].sum()))
        chu = (int(t["churned"].sum()), int(h["churned"].sum()))
        out.append(
            {
                "action": action,
                "treated_n": t.height,
                "holdout_n": h.height,
                "recovered_share": {
                    "treated": _share(rec[0], t.height),
                    "holdout": _share(rec[1], h.height),
                },
                "churned_share": {
                    "treated": _share(chu[0], t.height),
                    "holdout": _share(chu[1], h.height),
                },
                "recovered_difference": newcombe(rec[0], t.height, rec[1], h.height),
                "churned_difference": newcombe(chu[0], t.height, chu[1], h.height),
                "n_too_small": min(t.height, h.height) < MIN_GROUP,
            }
        )
    return out


def effectiveness(
    openings: pl.DataFrame | None,
    scores: pl.DataFrame | None,
    accounts: pl.DataFrame,
    cfg: Config,
    as_of: date,
) -> dict[str, Any]:
    """Return the effectiveness.json document of one as-of date."""
    s = cfg.playbook_settings
    playbooks = [r.action for r in cfg.actions]
    empty = openings is None or scores is None or openings.is_empty()
    rows = (
        pl.DataFrame(
            schema={
                "action": pl.String,
                "holdout": pl.Boolean,
                "recovered": pl.Boolean,
                "churned": pl.Boolean,
            }
        )
        if empty
        else outcomes(openings, scores, accounts, cfg, as_of)  # type: ignore[arg-type]
    )
    return {
        "as_of": as_of.isoformat(),
        "method": METHOD,
        "cohort": (
            f"each account's first action of a playbook opened at least "
            f"{max(s.recovery_days, s.churn_days)} days before as_of"
        ),
        "recovery": (
            f"score back to {cfg.scoring.segments.at_risk:g} or more (from at risk) or up "
            f"{s.recovery_points:g} points within {s.recovery_days} days"
        ),
        "churn_days": s.churn_days,
        "holdout_share": s.holdout_share,
        "min_group": MIN_GROUP,
        "playbooks": estimate(rows, playbooks),
    }
