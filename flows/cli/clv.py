"""The ``chs clv`` command: fit BG/NBD + Gamma-Gamma on an orders file and write the results."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

from tasks.clv.model import ClvResult, fit_clv, params_dict
from tasks.clv.rfm import read_orders
from tasks.csvfile import write_csv

PARAMS_FILE = "clv_params.json"
CUSTOMERS_FILE = "clv_customers.csv"


def clv_command(
    orders_path: Path,
    calibration_end: date,
    out_dir: Path,
    horizon_weeks: float = 39.0,
    time_unit_days: float = 7.0,
) -> dict[str, Any]:
    """Fit the CLV models on an orders file, write params and per-customer CSV, return a summary."""
    orders = read_orders(orders_path)
    result = fit_clv(orders, calibration_end, horizon_weeks, time_unit_days)
    out_dir.mkdir(parents=True, exist_ok=True)
    params = params_dict(result)
    params_path, customers_path = out_dir / PARAMS_FILE, out_dir / CUSTOMERS_FILE
    params_path.write_text(json.dumps(params, indent=2) + "\n")
    write_csv(_customers_with_holdout(result), customers_path)
    return {
        **params,
        "expected_purchases_total": float(result.customers["expected_purchases"].sum()),
        "clv_total": float(result.customers["clv"].sum()),
        "params_path": str(params_path),
        "customers_path": str(customers_path),
    }


def _customers_with_holdout(result: ClvResult) -> pl.DataFrame:
    """Return the per-customer frame, with holdout actual/predicted columns when there are any."""
    if result.holdout is None:
        return result.customers
    holdout = result.holdout.customers.rename(
        {"actual": "holdout_actual", "predicted": "holdout_predicted"}
    )
    return result.customers.join(holdout, on="account_id", how="left")


def _g3(value: float) -> str:
    """Format a number to 3 significant digits."""
    return f"{value:.3g}"


def format_summary(summary: dict[str, Any]) -> str:
    """Render the summary of ``clv_command`` as the lines the command line prints."""
    lines = [
        f"CLV fit on {summary['n_customers']} customers ({summary['n_repeat_buyers']} repeat "
        f"buyers), calibration ending {summary['calibration_end']}, "
        f"fitted in {summary['fit_seconds']:.2f} s",
        f"BG/NBD: r={_g3(summary['r'])} alpha={_g3(summary['alpha'])} a={_g3(summary['a'])} "
        f"b={_g3(summary['b'])} (log-likelihood {summary['log_likelihood']:.1f})",
        f"Gamma-Gamma: p={_g3(summary['p'])} q={_g3(summary['q'])} "
        f"gamma={_g3(summary['gamma'])} (log-likelihood {summary['gg_log_likelihood']:.1f})",
        f"Next {summary['horizon_weeks']:g} weeks: "
        f"{summary['expected_purchases_total']:.0f} expected purchases, "
        f"CLV total {summary['clv_total']:,.2f}",
    ]
    holdout = summary.get("holdout")
    if holdout:
        actual, predicted = holdout["actual_total"], holdout["predicted_total"]
        error = f" ({(predicted - actual) / actual:+.1%})" if actual else ""
        lines.append(
            f"Holdout ({holdout['length_weeks']:.3g} weeks): predicted {predicted:.0f} vs "
            f"actual {actual:.0f} repeat purchases{error}"
        )
    lines.append(f"Wrote {summary['params_path']} and {summary['customers_path']}")
    return "\n".join(lines)
