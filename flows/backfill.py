"""The backfill flow: score every date of a range in one pass over the data, oldest first.

The sources are read and validated once for the whole range, and the features come from one
pass over the data per DATES_PER_PASS dates. Each date then goes through the same steps as a
weekly run (score, recommend, KPIs, render, store), reading last week's scores from the dates
computed before it; a date is stored in the background while the next one is computed. A
date's history and files are replaced atomically, so a backfill killed half-way and re-run
finishes with no duplicates; dates it already wrote with the same config, code and data are
skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import polars as pl
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE
from prefect.futures import PrefectFuture

from flows.params import BackfillParams
from flows.weekly import (
    Published,
    RunResult,
    code_version,
    compute_features,
    deliver,
    extract,
    prepare_date,
    result_of,
    store,
    validate,
)
from tasks.backfill import as_of_slice, batch_id, counted_only, dates_between, hashed_events
from tasks.config import Config, load_config
from tasks.features.build import by_date
from tasks.history.connect import open_history
from tasks.history.context import history_context, lookback_days
from tasks.history.memory import PassHistory
from tasks.history.schema import HistoryStore
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


@dataclass
class Storing:
    """A prepared date whose history and files are being written by a background task."""

    prepared: Published
    future: PrefectFuture[Path]

    def finish(self, send: bool, dates: list[date]) -> RunResult:
        """Wait until the date is stored and published (a failure raises), then deliver it."""
        done = replace(self.prepared, out=self.future.result())
        # without --send nothing is delivered; the last date's e-mails stay in its outbox
        delivered = deliver(done.out, send) if send else (0, 0, False)
        day = done.snapshot.as_of
        get_run_logger().info("backfill %d/%d: %s done", dates.index(day) + 1, len(dates), day)
        return result_of(done, delivered)


@flow(name="customer-health-backfill")
def backfill_flow(params: BackfillParams) -> list[RunResult]:
    """Score every date from start to end in one pass; each date replaces its previous results."""
    preload()  # Great Expectations loads while history and sources are read
    cfg = load_config(Path(params.config_path))
    dates = dates_between(params.start, params.end, params.every_days)
    send = params.send
    run_time = datetime.now()
    history = open_store(cfg)
    storing: Storing | None = None  # the date being stored while the next one is computed
    try:
        raw = extract(cfg, dates[-1], run_time, first=dates[0])
        validated = validate(cfg, raw, run_time)
        del raw  # the validated frames are all the rest reads
        batch, done = plan(cfg, dates, validated, history)
        validated = hashed_events(validated)  # after the plan: it fingerprints the data read
        todo = [d for d in dates if d not in done]
        view = PassHistory(history, keep_days=lookback_days(cfg), span=(dates[0], dates[-1]))
        counted = counted_only(validated)  # what the dates read of the sources after features
        results: list[RunResult] = []
        # features in passes of DATES_PER_PASS dates, each pass's dates published before the
        # next pass: one pass over 52 dates at 100k accounts peaked at 8 GiB; each date's
        # features do not depend on the other dates of its pass (with partitions > 1, each
        # pass starts its own local Dask cluster)
        for chunk in chunked(todo, DATES_PER_PASS):
            per_date = by_date(compute_features(cfg, validated, chunk, params), chunk)
            for day in chunk:
                context = read_pass(view, cfg, day)
                seen = slice_date(counted, day, run_time, cfg)
                emails = send or params.emails == "all" or day == dates[-1]
                today = prepare_date(cfg, day, per_date.pop(day), seen, context, batch, emails)
                view.add(today.snapshot)  # the next date reads it from here, not the store
                if storing is not None:
                    results.append(storing.finish(send, dates))
                # one date in the background, oldest first: each is stored and published
                # before the next is stored, so a resumed backfill still redoes at most one
                storing = Storing(today, store.submit(cfg, today.snapshot, today.out, history))
        if storing is not None:
            results.append(storing.finish(send, dates))
            storing = None
    finally:
        if storing is not None:  # a failure while a date was being stored: let it finish
            storing.future.wait()
        history.close()
    create_markdown_artifact(
        key="backfill-summary",
        markdown=(
            f"# Backfill {dates[0]} to {dates[-1]}\n\n{len(results)} dates written, "
            f"{len(done)} already written by an interrupted run of the same backfill."
        ),
    )
    return results
