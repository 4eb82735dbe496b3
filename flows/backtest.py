"""The back-test flow: how well does the score predict churn? (history + accounts -> backtest.json)."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import polars as pl
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE

from flows.alerts import report_failure
from flows.step import step
from tasks.backtest import HORIZON_DAYS, backtest
from tasks.backtest_horizons import capacity_of, full_backtest
from tasks.clock import utc_now
from tasks.compare import compare_configs
from tasks.config import Config, load_config
from tasks.errors import ChsError
from tasks.history.connect import open_history
from tasks.sources.plan import Window
from tasks.sources.read import extract_dataset
from tasks.validate import gate, validate_dataset


@step(name="accounts", retries=2, retry_delay_seconds=[2, 10], cache_policy=NONE)
def read_accounts(cfg: Config, as_of: date, run_time: datetime) -> pl.DataFrame:
    """Read and validate the accounts source: who churned, and when."""
    raw = extract_dataset("accounts", cfg, Window(as_of, run_time))
    accounts = validate_dataset(raw, "accounts", cfg, run_time)
    gate(accounts, cfg)
    return accounts.accepted


@step(name="history-read-all", retries=2, retry_delay_seconds=[1, 5], cache_policy=NONE)
def read_snapshots(cfg: Config, as_of: date) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Read every stored snapshot up to the date: scores and measure points."""
    store = open_history(cfg)
    try:
        return store.scores_between(date.min, as_of), store.measures_between(date.min, as_of)
    finally:
        store.close()


@step(name="backtest", cache_policy=NONE)
def evaluate(
    cfg: Config,
    scores: pl.DataFrame,
    measures: pl.DataFrame,
    accounts: pl.DataFrame,
    as_of: date,
    horizon_days: int,
) -> dict[str, Any]:
    """Compute AUC, lift, churn by segment, lead times, the learned weights and, at every
    horizon, the metrics with intervals, the calibration table and the forecast check.
    """
    if scores.is_empty():
        raise ChsError("The history store has no snapshots to back-test; run `chs backfill` first.")
    report = backtest(scores, measures, accounts, cfg, as_of, horizon_days)
    return report | full_backtest(scores, accounts, as_of, capacity_of(cfg.actions))


@step(name="backtest-compare", cache_policy=NONE)
def compare(
    cfg: Config, other: Config, measures: pl.DataFrame, accounts: pl.DataFrame, as_of: date
) -> dict[str, Any]:
    """Score the stored history under both configs and compare their metrics."""
    return compare_configs(measures, accounts, cfg, other, as_of, capacity_of(cfg.actions))


def _write_json(path: Path, body: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(body, indent=2))
    tmp.replace(path)


@step(name="backtest-compare-write", cache_policy=NONE)
def write_compare(cfg: Config, report: dict[str, Any], other_path: str) -> Path:
    """Write ``<out>/backtest_compare.json`` and publish the side-by-side table as an artifact."""
    path = cfg.out_dir / "backtest_compare.json"
    _write_json(path, report | {"other_config": other_path})
    rows = [
        {
            "horizon_days": h,
            "metric": k,
            **{f: v[f] for f in ("base", "other", "difference")},
            "ci95": str(v["ci95"]),
            "verdict": v["verdict"],
        }
        for h, m in report["horizons"].items()
        if m.get("n")
        for k, v in m.items()
        if isinstance(v, dict)
    ]
    create_table_artifact(
        key="backtest-compare", table=rows, description=f"This config vs {other_path}"
    )
    return path


@step(name="backtest-write", cache_policy=NONE)
def write_report(cfg: Config, report: dict[str, Any]) -> Path:
    """Write ``<out>/backtest.json`` and the learned weights as ``<out>/learned_weights.toml``."""
    log = get_run_logger()
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    path = cfg.out_dir / "backtest.json"
    _write_json(path, report)
    snippet = report["learned"].get("config_toml")
    if snippet:
        (cfg.out_dir / "learned_weights.toml").write_text(snippet)
    log.info("back-test written to %s", path)
    return path


@flow(name="customer-health-backtest", on_failure=[report_failure], on_crashed=[report_failure])
def backtest_flow(
    config_path: str,
    as_of: date | None = None,
    horizon_days: int = HORIZON_DAYS,
    compare_with: str | None = None,
) -> dict[str, Any]:
    """Back-test every stored snapshot against churn within the horizon and learn weights; with
    ``compare_with``, also score the same history under that config and compare.
    """
    cfg = load_config(Path(config_path))
    other = load_config(Path(compare_with)) if compare_with else None
    run_time = utc_now()
    day = as_of or run_time.date()
    accounts = read_accounts(cfg, day, run_time)
    scores, measures = read_snapshots(cfg, day)
    report = evaluate(cfg, scores, measures, accounts, day, horizon_days)
    path = write_report(cfg, report)
    create_markdown_artifact(
        key="backtest",
        markdown=(
            f"# Back-test\n\n| snapshots | AUC | lift (top decile) | learned AUC |\n|---|---|---|---|\n"
            f"| {report['n_snapshots']} | {report['auc']} | {report['lift_top_decile']} | "
            f"{report['learned']['auc']} |\n\nFile: `{path}`"
        ),
        description="How well the score predicts churn",
    )
    if other is not None and compare_with is not None:
        compared = compare(cfg, other, measures, accounts, day)
        write_compare(cfg, compared, compare_with)
        report["compare"] = compared
    return report
