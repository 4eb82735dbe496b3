"""The account pages step: read 52 weeks of history once, write one page per planned account."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
from prefect import get_run_logger
from prefect.cache_policies import NONE

from flows.step import step
from tasks.config import Config
from tasks.history.connect import open_history
from tasks.report.accounts.context import PageData
from tasks.report.accounts.history import config_marks, read_series
from tasks.report.accounts.pages import PagePlan, own_hrefs, write_pages
from tasks.validate import ValidatedDataset

if TYPE_CHECKING:  # importing it here would pull in scikit-learn (calibration) before
    # flows.steps does: the CLI imports the flows while Great Expectations loads in a thread,
    # and both reach narwhals (a cross-thread import deadlock that main's order avoids)
    from tasks.history.context import HistoryContext


@step(name="account-pages", cache_policy=NONE)
def account_pages(
    cfg: Config,
    day: date,
    plan: PagePlan,
    frames: Mapping[str, pl.DataFrame | None],
    validated: dict[str, ValidatedDataset],
    history: HistoryContext,
    stage: Path,
    voice: list[dict[str, Any]] | None = None,
) -> int:
    """Write ``accounts/<account_id>.html`` for each planned account into the staging folder.

    ``voice`` is the report's list of accounts with text evidence (``ctx["voice"]["accounts"]``).
    """
    if not plan.ids:
        return 0
    t = time.perf_counter()
    store = open_history(cfg)
    try:
        series = read_series(store, day, plan.ids)  # the one history read of every page
    finally:
        store.close()
    accepted = {k: v.accepted for k, v in validated.items()}
    data = PageData.of(
        cfg,
        day,
        {
            **frames,
            "series": series,
            "prev": history.prev_1w,
            "surveys": accepted.get("survey_responses"),
            "tickets": accepted.get("tickets"),
            "accounts": accepted["accounts"],
        },
        plan.ids,
        config_marks(history.runs, day, cfg.fingerprint()),
        own_hrefs(plan.ids),
        voice,
    )
    n = write_pages(data, stage)
    get_run_logger().info(
        "wrote %d account pages to %s (%.1f s)", n, stage / "accounts", time.perf_counter() - t
    )
    return n
