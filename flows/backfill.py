"""The backfill flow: score every date of a range in one pass over the data, oldest first.

The sources are read and validated once for the whole range and every date's features come
from one query; each date then goes through the same steps as a weekly run (score, recommend,
KPIs, render, store), reading last week's scores from the dates computed before it. A date's
history and files are replaced atomically, so a backfill killed half-way and re-run finishes
with no duplicates; dates it already wrote with the same config, code and data are skipped.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import polars as pl
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from flows.params import BackfillParams
from flows.weekly import (
    RunResult,
    code_version,
    compute_features,
    deliver,
    extract,
    publish_date,
    result_of,
    validate,
)
from tasks.backfill import as_of_slice, batch_id, dates_between
from tasks.config import Config, load_config
from tasks.features import by_date
from tasks.store import (
    HistoryStore,
    PassHistory,
    history_context,
    lookback_days,
    open_history,
)
from tasks.validate import ValidatedDataset, preload

__all__ = ["backfill_flow", "dates_between"]

DATES_PER_PASS = 13


def chunked(dates: list[date], size: int) -> list[list[date]]:
    """Split the dates, in order, into runs of at most ``size``."""
    return [dates[i : i + size] for i in range(0, len(dates), size)]


@task(
    name="history-open",
    retries=2,
    retry_delay_seconds=[1, 5],
    cache_policy=NONE,
    persist_result=False,  # a live connection: never a stored result
)
def open_store(cfg: Config) -> HistoryStore:
    """Open the history store for the whole pass."""
    return open_history(cfg)


@task(name="plan", cache_policy=NONE)
def plan(
    cfg: Config, dates: list[date], validated: dict[str, ValidatedDataset], history: HistoryStore
) -> tuple[str, set[date]]:
    """Fingerprint the pass and find the dates an interrupted run of it already wrote."""
    log = get_run_logger()
    batch = batch_id(cfg, code_version(), dates, validated)
    written = sorted(set(history.runs().filter(pl.col("batch") == batch)["as_of"]) & set(dates))
    # dates run oldest first and each is published before the next is stored, so only the
    # latest date an interrupted run stored may lack its files: it is done again
    done = set(written[:-1])
    dup = [
        f["column"] for v in validated.values() for f in v.failed if "unique" in f["expectation"]
    ]
    if dup:
        log.warning(
            "duplicate %s rows are quarantined on every date of the backfill; a run of an early "
            "date alone accepts a copy that was the only one then",
            ", ".join(sorted(set(dup))),
        )
    if done:
        log.info(
            "resuming: %d of %d dates are already written by this backfill", len(done), len(dates)
        )
    return batch, done


@task(name="history-context", cache_policy=NONE)
def read_pass(view: PassHistory, cfg: Config, as_of: date) -> dict[str, Any]:
    """Read what a run of the date would read from history, including this pass's dates."""
    return history_context(view, cfg, as_of)


@task(name="as-of-slice", cache_policy=NONE)
def slice_date(
    validated: dict[str, ValidatedDataset], as_of: date, run_time: datetime, cfg: Config
) -> dict[str, ValidatedDataset]:
    """Keep the validated rows a run of the date alone would have read."""
    return as_of_slice(validated, as_of, run_time, cfg)


@flow(name="customer-health-backfill")
def backfill_flow(params: BackfillParams) -> list[RunResult]:
    """Score every date from start to end in one pass; each date replaces its previous results."""
    log = get_run_logger()
    preload()  # Great Expectations loads while history and sources are read
    cfg = load_config(Path(params.config_path))
    dates = dates_between(params.start, params.end, params.every_days)
    send = params.send
    run_time = datetime.now()
    history = open_store(cfg)
    try:
        raw = extract(cfg, dates[-1], run_time, first=dates[0])
        validated = validate(cfg, raw, run_time)
        # DATES_PER_PASS dates per features pass: one pass over 52 dates at 100k accounts
        # peaked at 8 GiB; each date's features do not depend on the other dates of its pass
        # (with partitions > 1, each pass starts its own local Dask cluster)
        per_date: dict[date, pl.DataFrame] = {}
        for chunk in chunked(dates, DATES_PER_PASS):
            per_date |= by_date(compute_features(cfg, validated, chunk, params), chunk)
        batch, done = plan(cfg, dates, validated, history)
        view = PassHistory(history, keep_days=lookback_days(cfg))
        results = []
        for i, day in enumerate(dates, start=1):
            if day in done:
                continue
            context = read_pass(view, cfg, day)
            seen = slice_date(validated, day, run_time, cfg)
            emails = send or params.emails == "all" or day == dates[-1]
            today = publish_date(cfg, day, per_date.pop(day), seen, context, history, batch, emails)
            view.add(today.snapshot)
            # without --send nothing is delivered; the last date's e-mails stay in its outbox
            results.append(result_of(today, deliver(today.out, send) if send else (0, 0, False)))
            log.info("backfill %d/%d: %s done", i, len(dates), day)
    finally:
        history.close()
    create_markdown_artifact(
        key="backfill-summary",
        markdown=(
            f"# Backfill {dates[0]} to {dates[-1]}\n\n{len(results)} dates written, "
            f"{len(done)} already written by an interrupted run of the same backfill."
        ),
    )
    return results
