"""The backfill flow: compute every snapshot in a date range, oldest first."""

from __future__ import annotations

from datetime import date, timedelta

from prefect import flow, get_run_logger

from flows.weekly import RunResult, weekly_flow


def dates_between(start: date, end: date, every_days: int) -> list[date]:
    """Return start, start + step, ... up to and including end."""
    out, d = [], start
    while d <= end:
        out.append(d)
        d += timedelta(days=every_days)
    return out


@flow(name="customer-health-backfill")
def backfill_flow(
    config_path: str, start: date, end: date, every_days: int = 7, send: bool = False
) -> list[RunResult]:
    """Score every date from start to end; each date replaces its previous results."""
    log = get_run_logger()
    results = []
    dates = dates_between(start, end, every_days)
    for i, day in enumerate(dates, start=1):
        results.append(weekly_flow(config_path=config_path, as_of=day, send=send))
        log.info("backfill %d/%d: %s done", i, len(dates), day)
    return results
