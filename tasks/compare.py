"""Judge a config change before it ships: score the same stored history under two configs and
compare every back-test metric, with the difference's paired bootstrap interval.

Both configs re-weight the measure points stored in ``measure_history`` (``tasks/backtest.py``
``rescore``), so the comparison holds the data fixed and varies only weights, coverage and
segment thresholds; a change of normalisation needs a backfill to show.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import polars as pl

from tasks.backtest import points_wide, rescore
from tasks.backtest_horizons import (
    HORIZONS,
    METRICS,
    N_BOOT,
    Arrays,
    _ci,
    _round,
    bootstrap,
    evaluation_rows,
)
from tasks.config import Config
from tasks.score import segment_of

LOWER_IS_BETTER = {"brier", "log_loss"}


def rescored(points: pl.DataFrame, cfg: Config) -> pl.DataFrame:
    """Score stored measure points with ``cfg``: score and segment per snapshot and account."""
    return rescore(points, cfg).with_columns(segment_of(pl.col("score"), cfg).alias("segment"))


def _verdict(metric: str, ci: list[float | None]) -> str:
    lo, hi = ci
    if lo is None or hi is None or lo <= 0 <= hi:
        return "no clear difference"
    better = (lo > 0) != (metric in LOWER_IS_BETTER)
    return "other is better" if better else "other is worse"


def compare_horizon(
    base: pl.DataFrame, other: pl.DataFrame, capacity: int, n_boot: int
) -> dict[str, Any]:
    """Metrics of both configs at one horizon and the paired difference (other - base)."""
    base, other = (r.filter(pl.col("score").is_not_null()) for r in (base, other))
    if base.is_empty() or other.is_empty():
        return {"n": 0}
    universe = np.unique(
        np.concatenate([base["account_id"].to_numpy(), other["account_id"].to_numpy()])
    )
    arrays = [Arrays(base, capacity, universe), Arrays(other, capacity, universe)]

    def stat(m: list[dict[str, float]]) -> dict[str, float]:
        return (
            {k: m[1][k] - m[0][k] for k in METRICS}
            | {f"base_{k}": m[0][k] for k in METRICS}
            | {f"other_{k}": m[1][k] for k in METRICS}
        )

    point, draws = bootstrap(arrays, stat, n_boot)
    out: dict[str, Any] = {"n": base.height, "churned_n": int(base["churned"].sum())}
    for k in METRICS:
        ci = _ci(draws[k])
        out[k] = {
            "base": _round(point[f"base_{k}"]),
            "other": _round(point[f"other_{k}"]),
            "difference": _round(point[k]),
            "ci95": ci,
            "verdict": _verdict(k, ci),
        }
    return out


def compare_configs(
    measures: pl.DataFrame,
    accounts: pl.DataFrame,
    base_cfg: Config,
    other_cfg: Config,
    known_until: date,
    capacity: int,
    n_boot: int = N_BOOT,
) -> dict[str, Any]:
    """Return ``backtest_compare.json``: both configs' metrics per horizon and the difference."""
    points = points_wide(measures)
    frames = [rescored(points, c) for c in (base_cfg, other_cfg)]
    horizons = {}
    for h in HORIZONS:
        base, other = (evaluation_rows(f, accounts, known_until, h) for f in frames)
        horizons[str(h)] = compare_horizon(base, other, capacity, n_boot)
    return {
        "known_until": known_until.isoformat(),
        "base_config_hash": base_cfg.fingerprint(),
        "other_config_hash": other_cfg.fingerprint(),
        "method": "both configs re-weight the stored measure points; difference = other - base, "
        "with a paired bootstrap over accounts",
        "bootstrap": {"resamples": n_boot, "unit": "account"},
        "horizons": horizons,
    }


def format_compare(report: dict[str, Any], other: str) -> str:
    """Describe a comparison in a few lines for the command line."""
    lines = [f"config compared with {other} on the same stored history (other - base, 95% CI):"]
    for h, m in report["horizons"].items():
        if not m.get("n"):
            lines.append(f"  {h} days: no labelled snapshots")
            continue
        for k in ("auc", "brier", "lift_top_decile"):
            v = m[k]
            lines.append(
                f"  {h} days {k}: {v['base']} vs {v['other']}, difference {v['difference']} "
                f"{v['ci95']} — {v['verdict']}"
            )
    return "\n".join(lines)
