"""The backfill's own steps and its passes: features for a run of dates at once, then each
date in turn.

Features come from one pass over the data per ``DATES_PER_PASS`` dates. Each date of a pass
then goes through the steps of a weekly run (score, recommend, KPIs, files, report, e-mails),
reading last week's scores from the dates computed before it, and is stored in the background
while the next one is computed: one date at a time, oldest first, so a resumed backfill redoes
at most one date.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path

import polars as pl
from prefect import get_run_logger
from prefect.cache_policies import NONE
from prefect.futures import PrefectFuture

from flows.params import BackfillParams
from flows.progress import reporter
from flows.step import step
from flows.steps import (
    Published,
    RunResult,
    code_version,
    compute_features,
    deliver,
    prepare_date,
    result_of,
    store,
)
from tasks.backfill import accounts_of_date, as_of_slice, batch_id
from tasks.config import Config
from tasks.features.build import by_date
from tasks.history.connect import open_history
from tasks.history.context import HistoryContext, history_context
from tasks.history.memory import PassHistory
from tasks.history.schema import HistoryStore
from tasks.validate import ValidatedDataset


@step(
    name="history-open",
    retries=2,
    retry_delay_seconds=[1, 5],
    cache_policy=NONE,
    persist_result=False,  # a live connection: never a stored result
)
def open_store(cfg: Config) -> HistoryStore:
    """Open the history store for the whole pass."""
    return open_history(cfg)


@step(name="plan", cache_policy=NONE)
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


@step(name="history-context", cache_policy=NONE)
def read_pass(view: PassHistory, cfg: Config, as_of: date) -> HistoryContext:
    """Read what a run of the date would read from history, including this pass's dates."""
    return history_context(view, cfg, as_of)


@step(name="as-of-slice", cache_policy=NONE)
def slice_date(
    validated: dict[str, ValidatedDataset], as_of: date, run_time: datetime, cfg: Config
) -> dict[str, ValidatedDataset]:
    """Keep the validated rows a run of the date alone would have read."""
    return as_of_slice(validated, as_of, run_time, cfg)


# One pass over 52 dates at 100k accounts peaked at 8 GiB; each date's features do not
# depend on the other dates of its pass (with partitions > 1, each pass starts its own
# local Dask cluster).
DATES_PER_PASS = 13


def chunked(dates: list[date], size: int) -> list[list[date]]:
    """Split the dates, in order, into runs of at most ``size``."""
    return [dates[i : i + size] for i in range(0, len(dates), size)]


@dataclass
class Storing:
    """A prepared date whose history and files are being written by a background task."""

    prepared: Published
    future: PrefectFuture[Path]

    def finish(self, send: bool) -> RunResult:
        """Wait until the date is stored and published (a failure raises), then deliver it."""
        done = replace(self.prepared, out=self.future.result())
        # without --send nothing is delivered; the last date's e-mails stay in its outbox
        delivered = deliver(done.out, send) if send else (0, 0, False)
        reporter().advance(done.snapshot.as_of.isoformat())
        return result_of(done, delivered)


@dataclass(frozen=True)
class PassPlan:
    """What every pass of one backfill shares."""

    cfg: Config
    params: BackfillParams
    dates: list[date]  # every date of the backfill, including those already written
    run_time: datetime
    batch: str  # the backfill's fingerprint, recorded with each date for resuming


def pass_features(
    plan: PassPlan, validated: dict[str, ValidatedDataset], chunk: list[date]
) -> dict[date, pl.DataFrame]:
    """Compute the features of a run of dates: in one pass, or date by date from each date's
    records when a source is a change log (``latest_by``: its record differs per date).
    """
    cfg, params = plan.cfg, plan.params
    if not any(v.superseded is not None for v in validated.values()):
        return by_date(compute_features(cfg, validated, chunk, params), chunk)
    return {
        day: by_date(
            compute_features(cfg, slice_date(validated, day, plan.run_time, cfg), [day], params),
            [day],
        )[day]
        for day in chunk
    }


def run_passes(
    plan: PassPlan,
    todo: list[date],
    validated: dict[str, ValidatedDataset],
    counted: dict[str, ValidatedDataset],
    view: PassHistory,
    history: HistoryStore,
) -> list[RunResult]:
    """Score, publish and store every date of ``todo``, pass by pass, oldest first."""
    cfg, params, last = plan.cfg, plan.params, plan.dates[-1]
    results: list[RunResult] = []
    storing: Storing | None = None  # the date being stored while the next one is computed
    reporter().start("backfill", len(todo))
    try:
        for chunk in chunked(todo, DATES_PER_PASS):
            per_date = pass_features(plan, validated, chunk)
            for day in chunk:
                context = read_pass(view, cfg, day)
                seen = slice_date(counted, day, plan.run_time, cfg)
                emails = params.send or params.emails == "all" or day == last
                features = accounts_of_date(per_date.pop(day), seen["accounts"].accepted)
                today = prepare_date(
                    cfg, day, features, seen, context, plan.run_time, plan.batch, emails
                )
                view.add(today.snapshot)  # the next date reads it from here, not the store
                if storing is not None:
                    results.append(storing.finish(params.send))
                storing = Storing(today, store.submit(cfg, today.snapshot, today.out, history))
        if storing is not None:
            results.append(storing.finish(params.send))
            storing = None
    finally:
        if storing is not None:  # a failure while a date was being stored: let it finish
            storing.future.wait()
    return results
