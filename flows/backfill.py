"""The backfill flow: score every date of a range in one pass over the data, oldest first.

The sources are read and validated once for the whole range; ``flows.passes`` then computes
the features of a run of dates at once and takes each date through the weekly run's steps. A
date's history and files are replaced atomically, so a backfill killed half-way and re-run
finishes with no duplicates; dates it already wrote with the same config, code and data are
skipped.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from flows.alerts import report_failure
from flows.params import BackfillParams
from flows.passes import PassPlan, open_store, plan, run_passes
from flows.steps import RunResult, extract, validate
from tasks.backfill import counted_only, dates_between, hashed_events
from tasks.clock import utc_now
from tasks.config import Config, load_config
from tasks.history.context import lookback_days
from tasks.history.memory import PassHistory
from tasks.report.charts import warm_up as warm_up_charts
from tasks.report.templates import preload as preload_templates
from tasks.runlock import run_lock
from tasks.text.annotate import preload_text
from tasks.validate import preload

__all__ = ["backfill_flow", "dates_between"]


def _backfill(
    cfg: Config, params: BackfillParams, dates: list[date], run_time: datetime
) -> tuple[list[RunResult], set[date]]:
    """Read and validate once, then score and store every date not yet written."""
    history = open_store(cfg)
    try:
        raw = extract(cfg, dates[-1], run_time, first=dates[0])
        validated = validate(cfg, raw, run_time, dates[-1], span=True)  # ARR: per date
        del raw  # the validated frames are all the rest reads
        batch, done = plan(cfg, dates, validated, history)
        validated = hashed_events(validated)  # after the plan: it fingerprints the data read
        view = PassHistory(history, keep_days=lookback_days(cfg), span=(dates[0], dates[-1]))
        results = run_passes(
            PassPlan(cfg, params, dates, run_time, batch),
            [d for d in dates if d not in done],
            validated,
            counted_only(validated),  # what the dates read of the sources after features
            view,
            history,
        )
    finally:
        history.close()
    return results, done


@flow(name="customer-health-backfill", on_failure=[report_failure], on_crashed=[report_failure])
def backfill_flow(params: BackfillParams) -> list[RunResult]:
    """Score every date from start to end in one pass; each date replaces its previous results."""
    preload()  # Great Expectations loads while history and sources are read
    warm_up_charts()  # the chart engine starts too (~1 s, off the GIL), long before a chart
    preload_templates()  # and the report's and e-mails' templates are compiled
    cfg = load_config(Path(params.config_path))
    preload_text(cfg)  # and the text models, with a text source
    dates = dates_between(params.start, params.end, params.every_days)
    run_time = params.run_time or utc_now()
    with run_lock(cfg.out_dir):  # one writer per output folder
        results, done = _backfill(cfg, params, dates, run_time)
    create_markdown_artifact(
        key="backfill-summary",
        markdown=(
            f"# Backfill {dates[0]} to {dates[-1]}\n\n{len(results)} dates written, "
            f"{len(done)} already written by an interrupted run of the same backfill."
        ),
    )
    return results
