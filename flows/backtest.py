"""The back-test flow: how well does the score predict churn? (history + accounts -> backtest.json)."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import polars as pl
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from tasks.backtest import HORIZON_DAYS, backtest
from tasks.clock import utc_now
from tasks.config import Config, load_config
from tasks.errors import ChsError
from tasks.history.connect import open_history
from tasks.sources.plan import Window
from tasks.sources.read import extract_dataset
from tasks.validate import gate, validate_dataset


@task(name="accounts", retries=2, retry_delay_seconds=[2, 10], cache_policy=NONE)
def read_accounts(cfg: Config, as_of: date, run_time: datetime) -> pl.DataFrame:
    """Read and validate the accounts source: who churned, and when."""
    raw = extract_dataset("accounts", cfg, Window(as_of, run_time))
    accounts = validate_dataset(raw, "accounts", cfg, run_time)
    gate(accounts, cfg)
    return accounts.accepted


@task(name="history-read-all", retries=2, retry_delay_seconds=[1, 5], cache_policy=NONE)
def read_snapshots(cfg: Config, as_of: date) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Read every stored snapshot up to the date: scores and measure points."""
    store = open_history(cfg)
    try:
        return store.scores_between(date.min, as_of), store.measures_between(date.min, as_of)
    finally:
        store.close()


@task(name="backtest", cache_policy=NONE)
def evaluate(
    cfg: Config,
    scores: pl.DataFrame,
    measures: pl.DataFrame,
    accounts: pl.DataFrame,
    as_of: date,
    horizon_days: int,
) -> dict[str, Any]:
    """Compute AUC, lift, churn by segment, lead times and the learned weights."""
    if scores.is_empty():
        raise ChsError("The history store has no snapshots to back-test; run `chs backfill` first.")
    return backtest(scores, measures, accounts, cfg, as_of, horizon_days)


@task(name="backtest-write", cache_policy=NONE)
def write_report(cfg: Config, report: dict[str, Any]) -> Path:
    """Write ``<out>/backtest.json`` and the learned weights as ``<out>/learned_weights.toml``."""
    log = get_run_logger()
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    path = cfg.out_dir / "backtest.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2))
    tmp.replace(path)
    snippet = report["learned"].get("config_toml")
    if snippet:
        (cfg.out_dir / "learned_weights.toml").write_text(snippet)
    log.info("back-test written to %s", path)
    return path


@flow(name="customer-health-backtest")
def backtest_flow(
    config_path: str, as_of: date | None = None, horizon_days: int = HORIZON_DAYS
) -> dict[str, Any]:
    """Back-test every stored snapshot against churn within the horizon and learn weights."""
    cfg = load_config(Path(config_path))
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
    return report
